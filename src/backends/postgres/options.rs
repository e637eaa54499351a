//! `postgres://` and `postgresql://` URLs: tokio-postgres reads the URL,
//! readygate reads libpq's TLS parameters itself (tokio-postgres knows only
//! three of the five `sslmode`s, and no files), reads the files and builds
//! the rustls configuration, so that a bad one is exit 78 before any
//! connection. Passwords never reach a [`crate::config::Problem`]: the URL
//! is shown through [`crate::redact::redact_url`].

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use super::tls::{PgTls, PostgresTls, SslMode};
use crate::config::Checker;
use crate::secrets::{Source, UrlSource};
use crate::tls::{ClientIdentity, Roots, load_certs, load_key};

/// A PostgreSQL database, as `DATABASE_URL` names it.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The whole URL's configuration (every host).
    pub config: Box<tokio_postgres::Config>,
    pub tls: PostgresTls,
    /// The URL with its password hidden.
    pub display: String,
    /// Its hosts, in the URL's order, each with a configuration of its own.
    pub servers: Vec<Server>,
    /// `target_session_attrs`, when the URL gives it.
    pub attrs: Option<SessionAttrs>,
    /// The TLS files read (`sslrootcert`, `sslcert`, `sslkey`): watched for
    /// rotation.
    pub files: Vec<Source>,
    /// Where the URL came from, read again when it or a TLS file rotates
    /// (`None`: no rotation, the options stay as they are).
    pub source: Option<UrlSource>,
}

impl PostgresOptions {
    /// Whether readygate chooses among servers and checks their role: the
    /// URL names several hosts or a `target_session_attrs`.
    pub fn several(&self) -> bool {
        self.servers.len() > 1 || self.attrs.is_some()
    }
}

/// One host of a PostgreSQL URL.
#[derive(Clone)]
pub struct Server {
    /// `host:port`, as `/ready` and the logs show it.
    pub shown: String,
    /// The URL's configuration with this host alone.
    pub config: tokio_postgres::Config,
}

/// libpq's `target_session_attrs` (PostgreSQL 14's values): what a server
/// must be for readygate to use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

/// What a server says of itself: `pg_is_in_recovery()` and
/// `transaction_read_only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    pub standby: bool,
    pub read_only: bool,
}

impl Role {
    /// `primary` or `standby`.
    pub fn name(self) -> &'static str {
        if self.standby { "standby" } else { "primary" }
    }
}

impl SessionAttrs {
    pub const NAMES: &'static [(&'static str, SessionAttrs)] = &[
        ("any", SessionAttrs::Any),
        ("read-write", SessionAttrs::ReadWrite),
        ("read-only", SessionAttrs::ReadOnly),
        ("primary", SessionAttrs::Primary),
        ("standby", SessionAttrs::Standby),
        ("prefer-standby", SessionAttrs::PreferStandby),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("any", |(n, _)| n)
    }

    /// Why a server of `role` does not do, in a word (`read-only`, `not
    /// read-only`, `standby`, `not a standby`); `None` when it does.
    /// `prefer-standby` takes any server here: its preference is the order
    /// in which servers are tried.
    pub fn refusal(self, role: Role) -> Option<&'static str> {
        match self {
            SessionAttrs::ReadWrite if role.read_only => Some("read-only"),
            SessionAttrs::ReadOnly if !role.read_only => Some("not read-only"),
            SessionAttrs::Primary if role.standby => Some("standby"),
            SessionAttrs::Standby if !role.standby => Some("not a standby"),
            _ => None,
        }
    }
}

/// The options of a `postgres://` URL (`value`, shown as `shown`), every
/// problem recorded in `c` against `var`. A URL with several hosts
/// (`host1:port1,host2:port2`, libpq's form) is read by tokio-postgres
/// alone, since it is not a URL to the `url` crate.
pub(crate) fn parse(
    c: &mut Checker,
    var: &'static str,
    value: &str,
    shown: &str,
    accepted: &str,
) -> Option<PostgresOptions> {
    // libpq's TLS parameters are ours to read: tokio-postgres knows only
    // three of the five sslmodes, and no files; so is target_session_attrs,
    // of which it knows two values.
    let (rest, params) = if has_several_hosts(value) {
        split_params_of_text(value)
    } else {
        let parsed = c.url_with_host(var, value, shown, accepted)?;
        split_params(&parsed)
    };
    let tls = tls_config(c, var, shown, &params);
    let attrs = match params.target_session_attrs.as_deref() {
        None => Some(None),
        Some(name) => match SessionAttrs::NAMES.iter().find(|(n, _)| *n == name) {
            Some((_, attrs)) => Some(Some(*attrs)),
            None => {
                c.fail(
                    var,
                    shown,
                    format!("has target_session_attrs={name:?}"),
                    "target_session_attrs: any, read-write, read-only, primary, standby, prefer-standby",
                );
                None
            }
        },
    };
    let config = match tokio_postgres::Config::from_str(&rest) {
        Ok(config) if config.get_hosts().is_empty() => {
            c.fail(var, shown, "names no host", accepted);
            None
        }
        Ok(config) => Some(config),
        Err(e) => {
            c.fail(
                var,
                shown,
                format!("is not a valid PostgreSQL URL ({e})"),
                accepted,
            );
            None
        }
    };
    let (mut config, tls, attrs) = (config?, tls?, attrs?);
    config.ssl_mode(tls.mode.driver_mode());
    let files = [
        ("sslrootcert", "certificate", params.sslrootcert.as_deref()),
        ("sslcert", "certificate", params.sslcert.as_deref()),
        ("sslkey", "key", params.sslkey.as_deref()),
    ]
    .into_iter()
    .filter_map(|(var, what, path)| {
        path.filter(|p| *p != "system")
            .map(|p| Source::new(var, what, p))
    })
    .collect();
    Some(PostgresOptions {
        servers: servers(&config),
        config: Box::new(config),
        tls,
        display: shown.to_owned(),
        attrs,
        files,
        source: None,
    })
}

/// Whether a URL's authority names several hosts (`a:1,b:2`).
fn has_several_hosts(value: &str) -> bool {
    let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    hosts.contains(',')
}

/// Each host of `config` with a configuration of its own: the URL's user,
/// password, database, options, application name, channel binding and
/// `sslmode`, with that host and its port (the port list's own, its only
/// one, or 5432).
fn servers(config: &tokio_postgres::Config) -> Vec<Server> {
    use tokio_postgres::config::Host;
    let (hosts, ports) = (config.get_hosts(), config.get_ports());
    if hosts.len() == 1 {
        let port = ports.first().copied().unwrap_or(5432);
        return vec![Server {
            shown: show(&hosts[0], port),
            config: config.clone(),
        }];
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = match ports {
                [one] => *one,
                ports => ports.get(i).copied().unwrap_or(5432),
            };
            let mut one = tokio_postgres::Config::new();
            match host {
                Host::Tcp(name) => one.host(name),
                Host::Unix(path) => one.host_path(path),
            };
            one.port(port)
                .ssl_mode(config.get_ssl_mode())
                .channel_binding(config.get_channel_binding());
            if let Some(user) = config.get_user() {
                one.user(user);
            }
            if let Some(password) = config.get_password() {
                one.password(password);
            }
            if let Some(dbname) = config.get_dbname() {
                one.dbname(dbname);
            }
            if let Some(options) = config.get_options() {
                one.options(options);
            }
            if let Some(name) = config.get_application_name() {
                one.application_name(name);
            }
            Server {
                shown: show(host, port),
                config: one,
            }
        })
        .collect()
}

/// `host:port` (`[::1]:port` for an IPv6 address, `path:port` for a unix
/// socket's directory).
fn show(host: &tokio_postgres::config::Host, port: u16) -> String {
    match host {
        tokio_postgres::config::Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
        tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
        tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
    }
}

/// The parameters of a PostgreSQL URL that readygate reads itself, as
/// written.
#[derive(Debug, Default)]
struct Params {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
    target_session_attrs: Option<String>,
}

impl Params {
    /// Takes `key` when it is one of ours; `false` leaves it to
    /// tokio-postgres.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "target_session_attrs" => &mut self.target_session_attrs,
            _ => return false,
        };
        *slot = Some(value.to_owned());
        true
    }
}

/// The URL without our parameters, and those parameters.
fn split_params(url: &url::Url) -> (String, Params) {
    let mut params = Params::default();
    let kept: Vec<_> = url
        .query_pairs()
        .filter(|(key, value)| !params.take(key, value))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut rest = url.clone();
    rest.set_query(None);
    if !kept.is_empty() {
        rest.query_pairs_mut().extend_pairs(kept);
    }
    (rest.into(), params)
}

/// The same for a URL the `url` crate cannot read (several hosts): the
/// query is split off the text and written back the way `url` would.
fn split_params_of_text(value: &str) -> (String, Params) {
    let (base, query) = value.split_once('?').unwrap_or((value, ""));
    let mut params = Params::default();
    let mut kept = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !params.take(&key, &value) {
            kept.append_pair(&key, &value);
        }
    }
    let kept = kept.finish();
    if kept.is_empty() {
        (base.to_owned(), params)
    } else {
        (format!("{base}?{kept}"), params)
    }
}

/// PostgreSQL's TLS from the URL's parameters: the mode, the files read
/// and parsed, the rustls configuration built; every problem reported.
fn tls_config(
    c: &mut Checker,
    var: &'static str,
    shown: &str,
    params: &Params,
) -> Option<PostgresTls> {
    const MODES: &str = "sslmode: disable, prefer, require, verify-ca, verify-full";
    let mut ok = true;
    let mode = match params.sslmode.as_deref() {
        None => SslMode::Prefer,
        Some(name) => match SslMode::NAMES.iter().find(|(n, _)| *n == name) {
            Some((_, mode)) => *mode,
            None => {
                c.fail(var, shown, format!("has sslmode={name:?}"), MODES);
                return None;
            }
        },
    };
    let roots = match params.sslrootcert.as_deref() {
        None => None,
        Some("system") => Some(Roots::System),
        Some(path) => match load_certs(Path::new(path)) {
            Ok(certs) => Some(Roots::File {
                path: path.into(),
                certs,
            }),
            Err(e) => {
                c.fail(
                    var,
                    shown,
                    format!("has sslrootcert: {e}"),
                    "a PEM file of CA certificates, or system",
                );
                ok = false;
                None
            }
        },
    };
    if roots.is_none() && ok && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        c.fail(
            var,
            shown,
            format!(
                "has sslmode={} without sslrootcert, so no certificate could be trusted",
                mode.name()
            ),
            "sslrootcert=/path/to/ca.pem (or system) with verify-ca and verify-full",
        );
        ok = false;
    }
    let client = match (params.sslcert.as_deref(), params.sslkey.as_deref()) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let certs = load_certs(Path::new(cert));
            let private = load_key(Path::new(key));
            match (certs, private) {
                (Ok(certs), Ok(private)) => Some(ClientIdentity {
                    cert_path: cert.into(),
                    certs,
                    key_path: key.into(),
                    key: Arc::new(private),
                }),
                (certs, private) => {
                    for e in [certs.err(), private.err()].into_iter().flatten() {
                        c.fail(
                            var,
                            shown,
                            format!("has a client certificate that cannot be used: {e}"),
                            "sslcert and sslkey: PEM files",
                        );
                    }
                    ok = false;
                    None
                }
            }
        }
        _ => {
            c.fail(
                var,
                shown,
                "has only one of sslcert and sslkey",
                "both, or neither",
            );
            ok = false;
            None
        }
    };
    if !ok {
        return None;
    }
    let tls = PgTls {
        mode,
        roots,
        client,
    };
    match tls.client_config() {
        Ok(client) => Some(PostgresTls {
            mode,
            client: Arc::new(client),
        }),
        Err(e) => {
            c.fail(
                var,
                shown,
                format!("has TLS settings that cannot be used: {e}"),
                "certificates and a key that belong together",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::DatabaseUrl;
    use crate::config::tests::{pem_files, problems, raw};

    fn options(url: &str) -> PostgresOptions {
        let s = raw(&["--database-url", url]).validate().unwrap();
        let DatabaseUrl::Postgres(options) = s.database.url else {
            panic!("not PostgreSQL: {url}");
        };
        options
    }

    #[test]
    fn our_parameters_are_read_and_the_rest_reach_tokio_postgres() {
        let (_dir, ca, _key) = pem_files();
        for (url, mode) in [
            (
                "postgres://h/db?sslmode=disable&application_name=gw",
                SslMode::Disable,
            ),
            (
                "postgres://h/db?application_name=gw&sslmode=require",
                SslMode::Require,
            ),
            (
                &format!("postgres://h/db?sslmode=verify-ca&sslrootcert={ca}&application_name=gw"),
                SslMode::VerifyCa,
            ),
        ] {
            let o = options(url);
            assert_eq!(o.tls.mode, mode, "{url}");
            assert_eq!(o.config.get_application_name(), Some("gw"), "{url}");
            assert_eq!(o.attrs, None, "{url}");
        }
        assert_eq!(options("postgres://h/db").tls.mode, SslMode::Prefer);
    }

    #[test]
    fn the_tls_files_read_are_watched_and_system_is_no_file() {
        let (_dir, ca, key) = pem_files();
        let o = options(&format!(
            "postgres://h/db?sslmode=verify-full&sslrootcert={ca}&sslcert={ca}&sslkey={key}"
        ));
        assert_eq!(
            crate::config::tests::watched(&o.files),
            [
                ("sslrootcert", "certificate", ca.clone()),
                ("sslcert", "certificate", ca.clone()),
                ("sslkey", "key", key.clone()),
            ]
        );
        assert!(
            options("postgres://h/db?sslmode=verify-full&sslrootcert=system")
                .files
                .is_empty()
        );
        assert!(options("postgres://h/db").files.is_empty());
        // The settings leave the source to the caller (backends::database).
        assert!(o.source.is_none());
    }

    #[test]
    fn several_hosts_each_get_their_port_and_the_urls_parameters() {
        let o = options(
            "postgres://app:pw@db-a:6432,db-b,[::1]:7000/app?target_session_attrs=primary&sslmode=disable&application_name=gw",
        );
        let shown: Vec<_> = o.servers.iter().map(|s| s.shown.as_str()).collect();
        assert_eq!(shown, ["db-a:6432", "db-b:5432", "[::1]:7000"]);
        assert_eq!(o.attrs, Some(SessionAttrs::Primary));
        assert!(o.several());
        for s in &o.servers {
            assert_eq!(s.config.get_hosts().len(), 1, "{}", s.shown);
            assert_eq!(s.config.get_user(), Some("app"));
            assert_eq!(s.config.get_password(), Some(&b"pw"[..]));
            assert_eq!(s.config.get_dbname(), Some("app"));
            assert_eq!(s.config.get_application_name(), Some("gw"));
            assert_eq!(
                s.config.get_ssl_mode(),
                tokio_postgres::config::SslMode::Disable
            );
        }
        let one = options("postgres://h:6000/db");
        assert!(!one.several());
        assert_eq!(one.servers[0].shown, "h:6000");
        assert!(options("postgres://h/db?target_session_attrs=any").several());
    }

    #[test]
    fn each_target_session_attrs_value_is_accepted_and_an_unknown_one_named() {
        for (name, attrs) in SessionAttrs::NAMES {
            let o = options(&format!("postgres://a,b/db?target_session_attrs={name}"));
            assert_eq!(o.attrs, Some(*attrs));
            assert_eq!(attrs.name(), *name);
        }
        let p = problems(&[
            "--database-url",
            "postgres://a,b/db?target_session_attrs=sometimes",
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].variable, "DATABASE_URL");
        assert_eq!(p[0].reason, "has target_session_attrs=\"sometimes\"");
        let p = problems(&["--database-url", "postgres://h/db?sslmode=sometimes"]);
        assert_eq!(p[0].reason, "has sslmode=\"sometimes\"");
    }

    #[test]
    fn what_each_value_refuses() {
        let (primary, read_only_primary, standby) = (
            Role {
                standby: false,
                read_only: false,
            },
            Role {
                standby: false,
                read_only: true,
            },
            Role {
                standby: true,
                read_only: true,
            },
        );
        use SessionAttrs::*;
        for (attrs, role, refusal) in [
            (Any, standby, None),
            (ReadWrite, primary, None),
            (ReadWrite, read_only_primary, Some("read-only")),
            (ReadWrite, standby, Some("read-only")),
            (ReadOnly, primary, Some("not read-only")),
            (ReadOnly, read_only_primary, None),
            (Primary, read_only_primary, None),
            (Primary, standby, Some("standby")),
            (Standby, primary, Some("not a standby")),
            (Standby, standby, None),
            (PreferStandby, primary, None),
        ] {
            assert_eq!(attrs.refusal(role), refusal, "{attrs:?} {role:?}");
        }
        assert_eq!((primary.name(), standby.name()), ("primary", "standby"));
    }
}
