//! The rules for the URL and address settings: `DATABASE_URL`,
//! `REDIS_URL` and `HOST`. Passwords never reach a [`super::Problem`]: a URL
//! is shown through [`redact_url`].

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::check::Checker;
use crate::redact::redact_url;
use crate::tls::{ClientIdentity, PgTls, Roots, SslMode, load_certs, load_key};

/// The database, as `DATABASE_URL` names it.
#[derive(Clone)]
pub enum DatabaseUrl {
    Postgres {
        config: Box<tokio_postgres::Config>,
        tls: PostgresTls,
        /// The URL with its password hidden.
        display: String,
    },
    /// `mysql://` or `mariadb://` (the same protocol).
    Mysql {
        opts: Box<mysql_async::Opts>,
        /// `mysql` or `mariadb`, as the URL said (shown on `/ready`).
        backend: &'static str,
        /// The URL with its password hidden.
        display: String,
    },
    Sqlite {
        path: String,
    },
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl DatabaseUrl {
    /// The URL as it may be shown: no password.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Postgres { display, .. } | DatabaseUrl::Mysql { display, .. } => {
                display.clone()
            }
            DatabaseUrl::Sqlite { path } => format!("sqlite://{path}"),
        }
    }

    /// `postgres`, `mysql`, `mariadb` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres { .. } => "postgres",
            DatabaseUrl::Mysql { backend, .. } => backend,
            DatabaseUrl::Sqlite { .. } => "sqlite",
        }
    }
}

/// PostgreSQL's TLS, ready to connect: the `sslmode` and the rustls
/// configuration built from the URL's files.
#[derive(Clone)]
pub struct PostgresTls {
    pub mode: SslMode,
    pub client: Arc<rustls::ClientConfig>,
}

/// The mysql client's TLS parameters of a MySQL URL, as written.
#[derive(Debug, Default)]
struct MysqlTlsParams {
    mode: Option<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// libpq's TLS parameters of a PostgreSQL URL, as written.
#[derive(Debug, Default)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

/// The URL without libpq's TLS parameters, and those parameters.
fn split_tls_params(url: &url::Url) -> (url::Url, TlsParams) {
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "sslmode" => &mut params.sslmode,
            "sslrootcert" => &mut params.sslrootcert,
            "sslcert" => &mut params.sslcert,
            "sslkey" => &mut params.sslkey,
            _ => {
                kept.push((key.into_owned(), value.into_owned()));
                continue;
            }
        };
        *slot = Some(value.into_owned());
    }
    let mut rest = url.clone();
    rest.set_query(None);
    if !kept.is_empty() {
        rest.query_pairs_mut().extend_pairs(kept);
    }
    (rest, params)
}

impl Checker {
    /// PostgreSQL's TLS from the URL's parameters: the mode, the files read
    /// and parsed, the rustls configuration built; every problem reported.
    fn pg_tls(
        &mut self,
        var: &'static str,
        shown: &str,
        params: &TlsParams,
    ) -> Option<PostgresTls> {
        const MODES: &str = "sslmode: disable, prefer, require, verify-ca, verify-full";
        let mut ok = true;
        let mode = match params.sslmode.as_deref() {
            None => SslMode::Prefer,
            Some(name) => match SslMode::NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, mode)) => *mode,
                None => {
                    self.fail(var, shown, format!("has sslmode={name:?}"), MODES);
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
                    self.fail(
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
            self.fail(
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
                            self.fail(
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
                self.fail(
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
                self.fail(
                    var,
                    shown,
                    format!("has TLS settings that cannot be used: {e}"),
                    "certificates and a key that belong together",
                );
                None
            }
        }
    }

    /// A URL's value (trimmed), how it may be shown, and its lower-case
    /// A URL's value (trimmed), how it may be shown, and its lower-case
    /// scheme and the rest; a problem when it is empty or has no `://`.
    pub(super) fn url<'a>(
        &mut self,
        variable: &'static str,
        raw: &'a str,
        accepted: &str,
    ) -> Option<(&'a str, String, String, &'a str)> {
        let value = self.present(variable, raw, accepted)?;
        let shown = redact_url(value);
        let Some((scheme, rest)) = value.split_once("://") else {
            self.fail(variable, &shown, "is not a URL", accepted);
            return None;
        };
        Some((value, shown, scheme.to_ascii_lowercase(), rest))
    }

    /// The parsed URL, which must name a host.
    pub(super) fn url_with_host(
        &mut self,
        variable: &'static str,
        value: &str,
        shown: &str,
        accepted: &str,
    ) -> Option<url::Url> {
        match url::Url::parse(value) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Some(u),
            Ok(_) => {
                self.fail(variable, shown, "names no host", accepted);
                None
            }
            Err(e) => {
                self.fail(
                    variable,
                    shown,
                    format!("is not a valid URL ({e})"),
                    accepted,
                );
                None
            }
        }
    }

    pub(super) fn unsupported_scheme(
        &mut self,
        variable: &'static str,
        shown: &str,
        scheme: &str,
        accepted: &str,
    ) {
        self.fail(
            variable,
            shown,
            format!("has an unsupported scheme {scheme:?}"),
            accepted,
        );
    }

    pub(super) fn database_url(&mut self, var: &'static str, raw: &str) -> Option<DatabaseUrl> {
        const ACCEPTED: &str = "postgres://[user[:password]@]host[:port][/database], postgresql://..., mysql://[user[:password]@]host[:port][/database], mariadb://..., or sqlite://PATH";
        let (value, shown, scheme, rest) = self.url(var, raw, ACCEPTED)?;
        match scheme.as_str() {
            "sqlite" if rest.is_empty() => {
                self.fail(var, &shown, "names no file", ACCEPTED);
                None
            }
            "sqlite" => Some(DatabaseUrl::Sqlite {
                path: rest.to_owned(),
            }),
            "postgres" | "postgresql" => {
                let parsed = self.url_with_host(var, value, &shown, ACCEPTED)?;
                // libpq's TLS parameters are ours to read: tokio-postgres
                // knows only three of the five sslmodes, and no files.
                let (rest, tls) = split_tls_params(&parsed);
                let tls = self.pg_tls(var, &shown, &tls);
                let config = match tokio_postgres::Config::from_str(rest.as_str()) {
                    Ok(config) => Some(config),
                    Err(e) => {
                        self.fail(
                            var,
                            &shown,
                            format!("is not a valid PostgreSQL URL ({e})"),
                            ACCEPTED,
                        );
                        None
                    }
                };
                let (mut config, tls) = (config?, tls?);
                config.ssl_mode(tls.mode.driver_mode());
                Some(DatabaseUrl::Postgres {
                    config: Box::new(config),
                    tls,
                    display: shown,
                })
            }
            "mysql" | "mariadb" => {
                let parsed = self.url_with_host(var, value, &shown, ACCEPTED)?;
                let opts = self.mysql_opts(var, &parsed, &shown, ACCEPTED)?;
                Some(DatabaseUrl::Mysql {
                    opts: Box::new(opts),
                    backend: if scheme == "mysql" {
                        "mysql"
                    } else {
                        "mariadb"
                    },
                    display: shown,
                })
            }
            other => {
                self.unsupported_scheme(var, &shown, other, ACCEPTED);
                None
            }
        }
    }

    /// mysql_async's options from a `mysql://` or `mariadb://` URL. Its
    /// query parameters are mysql_async's, except those readygate decides:
    /// TLS (the mysql client's `ssl-*` parameters, see [`Checker::mysql_tls`])
    /// and the pool's size
    /// (`DB_POOL_SIZE`). readygate connects where the URL says: mysql_async's
    /// switch to the server's unix socket for a local address
    /// (`prefer_socket`) is off unless the URL turns it on.
    fn mysql_opts(
        &mut self,
        variable: &'static str,
        parsed: &url::Url,
        shown: &str,
        accepted: &str,
    ) -> Option<mysql_async::Opts> {
        let mut prefer_socket = false;
        let mut tls = MysqlTlsParams::default();
        let mut kept = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let name = key.to_ascii_lowercase().replace('_', "-");
            let slot = match name.as_str() {
                "ssl-mode" => &mut tls.mode,
                "ssl-ca" => &mut tls.ca,
                "ssl-cert" => &mut tls.cert,
                "ssl-key" => &mut tls.key,
                _ => {
                    if is_mysql_tls_parameter(&name) {
                        self.fail(
                            variable,
                            shown,
                            format!(
                                "sets {key:?}: TLS is set with ssl-mode, ssl-ca, ssl-cert and ssl-key"
                            ),
                            accepted,
                        );
                        return None;
                    }
                    if name == "pool-min" || name == "pool-max" {
                        self.fail(
                            variable,
                            shown,
                            format!("sets {key:?}: the pool's size is DB_POOL_SIZE"),
                            accepted,
                        );
                        return None;
                    }
                    prefer_socket |= name == "prefer-socket";
                    kept.push((key.into_owned(), value.into_owned()));
                    continue;
                }
            };
            *slot = Some(value.into_owned());
        }
        let ssl = self.mysql_tls(variable, shown, &tls)?;
        // mysql_async knows the `mysql` scheme only; `mariadb` is the same.
        let mut url = parsed.clone();
        if url.set_scheme("mysql").is_err() {
            self.fail(variable, shown, "is not a valid MySQL URL", accepted);
            return None;
        }
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        match mysql_async::Opts::from_url(url.as_str()) {
            Ok(opts) => {
                let builder = mysql_async::OptsBuilder::from_opts(opts).ssl_opts(ssl);
                // The URL's own prefer_socket stands; else off.
                let builder = if prefer_socket {
                    builder
                } else {
                    builder.prefer_socket(false)
                };
                Some(builder.into())
            }
            Err(e) => {
                self.fail(
                    variable,
                    shown,
                    format!("is not a valid MySQL URL ({e})"),
                    accepted,
                );
                None
            }
        }
    }

    /// MySQL's TLS from the URL's parameters, with the mysql client's
    /// names and meanings: `ssl-mode` DISABLED (readygate's default),
    /// REQUIRED (encrypted, not verified; with `ssl-ca`, as VERIFY_CA),
    /// VERIFY_CA (the chain, not the name), VERIFY_IDENTITY (both; the
    /// built-in web roots when there is no `ssl-ca`); PREFERRED is refused:
    /// the client cannot fall back to a plain connection. The files are read
    /// and parsed now. `Ok(None)`: no TLS.
    fn mysql_tls(
        &mut self,
        var: &'static str,
        shown: &str,
        params: &MysqlTlsParams,
    ) -> Option<Option<mysql_async::SslOpts>> {
        const MODES: &str = "ssl-mode: DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY";
        let mode = params.mode.as_deref().map(str::to_ascii_uppercase);
        let mode = match mode.as_deref() {
            None | Some("DISABLED") => {
                if params.ca.is_some() || params.cert.is_some() || params.key.is_some() {
                    self.fail(
                        var,
                        shown,
                        "has TLS files but no ssl-mode to use them",
                        MODES,
                    );
                    return None;
                }
                return Some(None);
            }
            Some(mode @ ("REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY")) => mode.to_owned(),
            Some("PREFERRED") => {
                self.fail(
                    var,
                    shown,
                    "has ssl-mode=PREFERRED, which readygate's MySQL client cannot do (it cannot fall back to plain)",
                    MODES,
                );
                return None;
            }
            Some(other) => {
                self.fail(var, shown, format!("has ssl-mode={other:?}"), MODES);
                return None;
            }
        };
        let mut ok = true;
        if let Some(ca) = &params.ca
            && let Err(e) = load_certs(Path::new(ca))
        {
            self.fail(
                var,
                shown,
                format!("has ssl-ca: {e}"),
                "a PEM file of CA certificates",
            );
            ok = false;
        }
        let identity = match (&params.cert, &params.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let errors = [
                    load_certs(Path::new(cert)).err(),
                    load_key(Path::new(key)).err(),
                ];
                for e in errors.into_iter().flatten() {
                    self.fail(
                        var,
                        shown,
                        format!("has a client certificate that cannot be used: {e}"),
                        "ssl-cert and ssl-key: PEM files",
                    );
                    ok = false;
                }
                Some(mysql_async::ClientIdentity::new(
                    PathBuf::from(cert).into(),
                    PathBuf::from(key).into(),
                ))
            }
            _ => {
                self.fail(
                    var,
                    shown,
                    "has only one of ssl-cert and ssl-key",
                    "both, or neither",
                );
                ok = false;
                None
            }
        };
        if !ok {
            return None;
        }
        let verify = match mode.as_str() {
            "REQUIRED" if params.ca.is_none() => None,
            "VERIFY_IDENTITY" => Some(true),
            _ => Some(false),
        };
        let mut ssl = mysql_async::SslOpts::default()
            .with_client_identity(identity)
            .with_danger_accept_invalid_certs(verify.is_none())
            .with_danger_skip_domain_validation(verify != Some(true));
        if let Some(ca) = &params.ca {
            ssl = ssl
                .with_root_certs(vec![PathBuf::from(ca).into()])
                .with_disable_built_in_roots(true);
        }
        Some(Some(ssl))
    }

    /// The Redis URL and whether it asks for TLS (`rediss://`).
    pub(super) fn redis_url(&mut self, var: &'static str, raw: &str) -> Option<(String, bool)> {
        const ACCEPTED: &str =
            "redis://[user[:password]@]host[:port][/db], or rediss://... for TLS";
        let (value, shown, scheme, _) = self.url(var, raw, ACCEPTED)?;
        let tls = match scheme.as_str() {
            "redis" => false,
            "rediss" => true,
            other => {
                self.unsupported_scheme(var, &shown, other, ACCEPTED);
                return None;
            }
        };
        let parsed = self.url_with_host(var, value, &shown, ACCEPTED)?;
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            self.fail(
                var,
                &shown,
                format!("names database {db:?}, which is not a number"),
                ACCEPTED,
            );
            return None;
        }
        if let Err(e) = redis::Client::open(value) {
            self.fail(
                var,
                &shown,
                format!("is not a valid Redis URL ({e})"),
                ACCEPTED,
            );
            return None;
        }
        Some((value.to_owned(), tls))
    }

    pub(super) fn host(&mut self, raw: &str) -> Option<String> {
        const VAR: &str = "HOST";
        const ACCEPTED: &str = "an IP address (127.0.0.1, 0.0.0.0, ::) or a host name";
        let value = self.present(VAR, raw, ACCEPTED)?;
        if value.parse::<IpAddr>().is_ok() {
            return Some(value.to_owned());
        }
        let name_ok = value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if name_ok && value.len() <= 253 {
            Some(value.to_owned())
        } else {
            self.fail(
                VAR,
                value,
                "is neither an IP address nor a host name",
                ACCEPTED,
            );
            None
        }
    }
}

/// Whether a MySQL URL parameter asks for TLS: mysql_async's own
/// (`require_ssl`, `verify_ca`, `verify_identity`, `built_in_roots`) and the
/// spellings other MySQL clients use (`ssl-mode`, `sslmode`, `ssl_ca`,
/// `tls`, ...), so that none of them is taken for a typo.
/// mysql_async's own TLS parameters, and anything else that looks like
/// one: readygate reads TLS from ssl-mode, ssl-ca, ssl-cert and ssl-key
/// only (names already folded to lower case with `-`).
fn is_mysql_tls_parameter(key: &str) -> bool {
    matches!(
        key,
        "require-ssl" | "verify-ca" | "verify-identity" | "built-in-roots"
    ) || key.starts_with("ssl")
        || key.starts_with("tls")
}
