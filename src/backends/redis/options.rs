//! Redis's settings: `REDIS_URL` (`redis://`, or `rediss://` for TLS) and
//! the `REDIS_TLS_*` files, read and parsed when the settings are, so a bad
//! one is exit 78 before any connection. Read only when `CACHE_TYPE=redis`.
//! Passwords never reach a [`crate::config::Problem`]: the URL is shown
//! through [`crate::redact::redact_url`].

use std::fmt;
use std::path::Path;

use crate::config::{BOOLEANS, Checker, REDIS_RETRY, RawSettings, RetryFields};
use crate::redact::redact_url;
use crate::retry::RetryPolicy;
use crate::secrets::{Source, UrlSource};
use crate::tls::PemFile;

/// Redis as the cache (`CACHE_TYPE=redis`), as the settings give it.
#[derive(Clone)]
pub struct RedisSettings {
    /// The URL as configured (with its password, for the client only).
    pub url: String,
    pub retry: RetryPolicy,
    /// `Some` for `rediss://`.
    pub tls: Option<RedisTls>,
    /// `CACHE_REQUIRED`: whether start-up and `/ready` wait for Redis.
    pub required: bool,
    /// Where the URL came from: its password is read again when it rotates.
    pub source: UrlSource,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("retry", &self.retry)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisSettings {
    /// The WARN line of every start when the server's certificate is not
    /// checked (`REDIS_TLS_INSECURE=true`, or `#insecure` in the URL).
    pub fn insecure_warning(&self) -> Option<&'static str> {
        self.tls.as_ref().filter(|tls| tls.insecure).map(|_| {
            "Redis TLS certificate verification is OFF (REDIS_TLS_INSECURE=true or \
             #insecure in REDIS_URL): anyone on the network path can pose as Redis; \
             set REDIS_TLS_CA_CERT instead"
        })
    }
}

/// Redis's TLS files, for `rediss://`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// `REDIS_TLS_CA_CERT`: trust these roots instead of the platform's.
    pub ca: Option<PemFile>,
    /// `REDIS_TLS_CLIENT_CERT` + `REDIS_TLS_CLIENT_KEY`.
    pub client: Option<(PemFile, PemFile)>,
    /// `REDIS_TLS_INSECURE=true` (or `#insecure` in the URL): no check of
    /// the server's certificate at all.
    pub insecure: bool,
}

impl RedisTls {
    /// The files, each named by its variable, for [`crate::secrets`].
    pub fn sources(&self) -> Vec<Source> {
        let ca = self
            .ca
            .iter()
            .map(|ca| Source::new("REDIS_TLS_CA_CERT", "certificate", &ca.path));
        let client = self.client.iter().flat_map(|(cert, key)| {
            [
                Source::new("REDIS_TLS_CLIENT_CERT", "certificate", &cert.path),
                Source::new("REDIS_TLS_CLIENT_KEY", "key", &key.path),
            ]
        });
        ca.chain(client).collect()
    }

    /// The same files read again and checked as at start, and the client
    /// key against its certificate; why not, when they cannot be used.
    pub fn reread(&self) -> Result<RedisTls, String> {
        let ca = match &self.ca {
            Some(ca) => Some(PemFile::read(&ca.path, false).map_err(|e| e.to_string())?),
            None => None,
        };
        let client = match &self.client {
            Some((cert, key)) => {
                let cert = PemFile::read(&cert.path, false).map_err(|e| e.to_string())?;
                let key = PemFile::read(&key.path, true).map_err(|e| e.to_string())?;
                cert.identity(&key).map_err(|e| e.to_string())?;
                Some((cert, key))
            }
            None => None,
        };
        Ok(RedisTls {
            ca,
            client,
            insecure: self.insecure,
        })
    }

    /// What the redis crate takes.
    pub fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.pem.clone(),
                    client_key: key.pem.clone(),
                }),
            root_cert: self.ca.as_ref().map(|ca| ca.pem.clone()),
        }
    }
}

/// `host` as a URL writes it (`[::1]`).
pub(super) fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `url` pointed at `host:port`, everything else (user, password, database,
/// `#insecure`) kept.
pub(super) fn at(url: &url::Url, host: &str, port: u16) -> Result<url::Url, redis::RedisError> {
    let mut url = url.clone();
    let invalid = |what: &str| {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "invalid address",
            format!("{what} {host}:{port}"),
        ))
    };
    url.set_host(Some(&url_host(host)))
        .map_err(|_| invalid("cannot use the host of"))?;
    url.set_port(Some(port))
        .map_err(|()| invalid("cannot use the port of"))?;
    Ok(url)
}

/// A client for `url`, with the TLS certificates when there are some.
pub(super) fn client(
    url: &str,
    tls: Option<&RedisTls>,
) -> Result<redis::Client, redis::RedisError> {
    match tls {
        Some(tls) => redis::Client::build_with_tls(url, tls.certificates()),
        None => redis::Client::open(url),
    }
}

/// The Redis settings (`CACHE_TYPE=redis`), every problem recorded in `c`.
pub(crate) fn settings(c: &mut Checker, raw: &RawSettings) -> Option<RedisSettings> {
    let (read, source) = UrlSource::read_setting(
        c,
        ("REDIS_URL", &raw.redis_url, raw.given.redis_url),
        ("REDIS_URL_FILE", raw.redis_url_file.as_deref()),
    );
    let url = read.and_then(|(var, value)| url(c, var, &value));
    let tls = tls_settings(c, raw);
    let required = c.choice("CACHE_REQUIRED", &raw.cache_required, BOOLEANS);
    let retry = c.retry_policy(
        &REDIS_RETRY,
        &RetryFields {
            max_retries: &raw.redis_max_retries,
            interval: &raw.redis_retry_interval_ms,
            backoff: &raw.redis_retry_backoff,
            multiplier: &raw.redis_retry_multiplier,
            max_interval: &raw.redis_retry_max_interval_ms,
            jitter: &raw.redis_retry_jitter,
            timeout: &raw.redis_connect_timeout_ms,
            startup_timeout: &raw.redis_startup_timeout_ms,
        },
    );
    let ((url, rediss), tls, required) = (url?, tls?, required?);
    let tls = match (rediss, tls) {
        (true, RedisTlsSettings(mut tls)) => {
            // `#insecure` in the URL itself is just as insecure.
            tls.insecure |= url.ends_with("#insecure");
            Some(tls)
        }
        (false, tls) if tls.is_configured() => {
            for (var, value) in tls_values(raw) {
                if value.is_some_and(|v| !v.trim().is_empty() && v.trim() != "false") {
                    c.fail(
                        var,
                        value.unwrap_or_default(),
                        "is set, but REDIS_URL is redis:// (no TLS)",
                        "rediss://... to use TLS, or unset it",
                    );
                }
            }
            return None;
        }
        (false, _) => None,
    };
    Some(RedisSettings {
        url: with_insecure_fragment(url, tls.as_ref()),
        retry: retry?,
        tls,
        required,
        source: source?,
    })
}

/// The Redis URL and whether it asks for TLS (`rediss://`).
pub(crate) fn url(c: &mut Checker, var: &'static str, raw: &str) -> Option<(String, bool)> {
    const ACCEPTED: &str = "redis://[user[:password]@]host[:port][/db], or rediss://... for TLS";
    let (value, shown, scheme, _) = c.url(var, raw, ACCEPTED)?;
    let tls = match scheme.as_str() {
        "redis" => false,
        "rediss" => true,
        other => {
            c.unsupported_scheme(var, &shown, other, ACCEPTED);
            return None;
        }
    };
    let parsed = c.url_with_host(var, value, &shown, ACCEPTED)?;
    let db = parsed.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u32>().is_err() {
        c.fail(
            var,
            &shown,
            format!("names database {db:?}, which is not a number"),
            ACCEPTED,
        );
        return None;
    }
    if let Err(e) = redis::Client::open(value) {
        c.fail(
            var,
            &shown,
            format!("is not a valid Redis URL ({e})"),
            ACCEPTED,
        );
        return None;
    }
    Some((value.to_owned(), tls))
}

/// The Redis TLS variables and their values as given.
fn tls_values(raw: &RawSettings) -> [(&'static str, Option<&str>); 4] {
    [
        ("REDIS_TLS_CA_CERT", raw.redis_tls_ca_cert.as_deref()),
        (
            "REDIS_TLS_CLIENT_CERT",
            raw.redis_tls_client_cert.as_deref(),
        ),
        ("REDIS_TLS_CLIENT_KEY", raw.redis_tls_client_key.as_deref()),
        ("REDIS_TLS_INSECURE", Some(raw.redis_tls_insecure.as_str())),
    ]
}

/// The Redis TLS settings, their files read and parsed; used with
/// `rediss://` only (see [`settings`]).
fn tls_settings(c: &mut Checker, raw: &RawSettings) -> Option<RedisTlsSettings> {
    let insecure = c.choice("REDIS_TLS_INSECURE", &raw.redis_tls_insecure, BOOLEANS);
    let pem = |c: &mut Checker, var: &'static str, raw: Option<&str>, key: bool| {
        let raw = raw?;
        let path = c.present(var, raw, "a PEM file")?;
        match PemFile::read(Path::new(path), key) {
            Ok(pem) => Some(Some(pem)),
            Err(e) => {
                c.fail(var, path, format!("cannot be used: {e}"), "a PEM file");
                None
            }
        }
    };
    let ca = pem(
        c,
        "REDIS_TLS_CA_CERT",
        raw.redis_tls_ca_cert.as_deref(),
        false,
    );
    let cert = pem(
        c,
        "REDIS_TLS_CLIENT_CERT",
        raw.redis_tls_client_cert.as_deref(),
        false,
    );
    let key = pem(
        c,
        "REDIS_TLS_CLIENT_KEY",
        raw.redis_tls_client_key.as_deref(),
        true,
    );
    let (ca, cert, key) = (
        ca.unwrap_or_default(),
        cert.unwrap_or_default(),
        key.unwrap_or_default(),
    );
    let client = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert, key)),
        (cert, _) => {
            let (set, missing) = if cert.is_some() {
                ("REDIS_TLS_CLIENT_CERT", "REDIS_TLS_CLIENT_KEY")
            } else {
                ("REDIS_TLS_CLIENT_KEY", "REDIS_TLS_CLIENT_CERT")
            };
            c.fail(
                set,
                "",
                format!("is set without {missing}"),
                "both, or neither",
            );
            return None;
        }
    };
    Some(RedisTlsSettings(RedisTls {
        ca,
        client,
        insecure: insecure?,
    }))
}

/// The Redis TLS settings before the URL's scheme is known.
struct RedisTlsSettings(RedisTls);

impl RedisTlsSettings {
    fn is_configured(&self) -> bool {
        let t = &self.0;
        t.ca.is_some() || t.client.is_some() || t.insecure
    }
}

/// `REDIS_TLS_INSECURE=true` is the redis crate's `#insecure` fragment; a
/// URL that already has it is insecure too ([`RedisTls::insecure`]).
fn with_insecure_fragment(url: String, tls: Option<&RedisTls>) -> String {
    match tls {
        Some(tls) if tls.insecure && !url.ends_with("#insecure") => format!("{url}#insecure"),
        _ => url,
    }
}

/// `CACHE_TYPE=redis-sentinel`: the sentinels, the master's name and the
/// sentinels' own password; the master's credentials, database and TLS come
/// from [`RedisSettings`] (`REDIS_URL`'s host is not used).
#[derive(Clone)]
pub struct SentinelSettings {
    pub redis: RedisSettings,
    /// `REDIS_SENTINEL_NODES`, in the order they are asked.
    pub nodes: Vec<(String, u16)>,
    /// `REDIS_SENTINEL_MASTER`.
    pub master: String,
    /// `REDIS_SENTINEL_PASSWORD` (or its file).
    pub password: Option<String>,
    /// Where the password came from: its file is read again when it
    /// changed, before the sentinels are asked. `None` without one.
    pub password_source: Option<UrlSource>,
}

impl fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("redis", &self.redis)
            .field("nodes", &self.nodes)
            .field("master", &self.master)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `CACHE_TYPE=redis-cluster`: the seed nodes; credentials and TLS from
/// [`RedisSettings`].
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub redis: RedisSettings,
    /// `REDIS_CLUSTER_NODES`.
    pub nodes: Vec<(String, u16)>,
}

/// What a node list accepts, as its problems say.
const NODES_ACCEPTED: &str = "host:port,host:port,... (at least one)";

/// `REDIS_SENTINEL_*` with the Redis settings, every problem recorded in `c`.
pub(crate) fn sentinel(c: &mut Checker, raw: &RawSettings) -> Option<SentinelSettings> {
    let redis = settings(c, raw);
    let nodes = nodes(
        c,
        "REDIS_SENTINEL_NODES",
        raw.redis_sentinel_nodes.as_deref(),
    );
    let master = match raw.redis_sentinel_master.as_deref() {
        None => {
            c.fail(
                "REDIS_SENTINEL_MASTER",
                "",
                "is not set, and CACHE_TYPE=redis-sentinel needs it",
                "the master's name, as in the sentinels' `sentinel monitor NAME ...`",
            );
            None
        }
        Some(raw) => c
            .present(
                "REDIS_SENTINEL_MASTER",
                raw,
                "the master's name, as in the sentinels' `sentinel monitor NAME ...`",
            )
            .map(str::to_owned),
    };
    let (password, password_source) = match raw.redis_sentinel_password.as_deref() {
        None if raw.redis_sentinel_password_file.is_none() => (Some(None), None),
        value => {
            let (read, source) = UrlSource::read_setting(
                c,
                (
                    "REDIS_SENTINEL_PASSWORD",
                    value.unwrap_or_default(),
                    value.is_some(),
                ),
                (
                    "REDIS_SENTINEL_PASSWORD_FILE",
                    raw.redis_sentinel_password_file.as_deref(),
                ),
            );
            // An empty password is none.
            let password = read.map(|(_, password)| {
                crate::redact::register_secret(&password);
                (!password.is_empty()).then_some(password)
            });
            (password, source)
        }
    };
    Some(SentinelSettings {
        redis: redis?,
        nodes: nodes?,
        master: master?,
        password: password?,
        password_source,
    })
}

/// `REDIS_CLUSTER_NODES` with the Redis settings, every problem recorded in
/// `c`.
pub(crate) fn cluster(c: &mut Checker, raw: &RawSettings) -> Option<ClusterSettings> {
    let redis = settings(c, raw);
    let nodes = nodes(c, "REDIS_CLUSTER_NODES", raw.redis_cluster_nodes.as_deref());
    Some(ClusterSettings {
        redis: redis?,
        nodes: nodes?,
    })
}

/// A node list (`host:port,host:port`, `[::1]:port` for IPv6): unset, empty,
/// an empty entry or one without a port are problems of `var`.
fn nodes(c: &mut Checker, var: &'static str, raw: Option<&str>) -> Option<Vec<(String, u16)>> {
    let Some(raw) = raw else {
        c.fail(
            var,
            "",
            "is not set, and this CACHE_TYPE needs it",
            NODES_ACCEPTED,
        );
        return None;
    };
    let list = c.present(var, raw, NODES_ACCEPTED)?;
    let mut nodes = Vec::new();
    for entry in list.split(',').map(str::trim) {
        match parse_node(entry) {
            Ok(node) => nodes.push(node),
            Err(reason) => {
                c.fail(var, list, reason, NODES_ACCEPTED);
                return None;
            }
        }
    }
    Some(nodes)
}

/// One `host:port` entry of a node list, or why it is not one.
pub fn parse_node(entry: &str) -> Result<(String, u16), String> {
    if entry.is_empty() {
        return Err("has an empty entry".into());
    }
    let Some((host, port)) = entry.rsplit_once(':') else {
        return Err(format!("has an entry without a port ({entry:?})"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(['/', '@', ' '])
        || (host.contains(':') && !entry.starts_with('['))
    {
        return Err(format!("has an entry without a valid host ({entry:?})"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host.to_owned(), port)),
        _ => Err(format!("has an entry without a valid port ({entry:?})")),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::CacheSettings;
    use crate::config::tests::{pem_files, problems, raw};

    #[test]
    fn redis_urls() {
        for ok in [
            "redis://h",
            "redis://:pw@h:6380/2",
            "redis://user:pw@h/0",
            "rediss://h:6380/0",
        ] {
            assert!(
                raw(&["--cache-type", "redis", "--redis-url", ok])
                    .validate()
                    .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "redis://h:70000",
            "redis://h/abc",
            "redis://",
            "memcached://h",
            "h:6379",
        ] {
            let p = problems(&["--cache-type", "redis", "--redis-url", bad]);
            assert_eq!(p[0].variable, "REDIS_URL", "{bad}");
        }
    }

    #[test]
    fn redis_tls_insecure_becomes_the_urls_fragment_once() {
        let url = |args: &[&str]| match raw(args).validate().unwrap().cache {
            CacheSettings::Redis(r) => r.url,
            _ => panic!("not Redis"),
        };
        let base = ["--cache-type", "redis", "--redis-url"];
        let with = |u: &'static str, insecure: &'static str| {
            let mut args = base.to_vec();
            args.extend([u, "--redis-tls-insecure", insecure]);
            url(&args)
        };
        assert_eq!(
            with("rediss://c:6380/0", "true"),
            "rediss://c:6380/0#insecure"
        );
        assert_eq!(
            with("rediss://c:6380/0#insecure", "true"),
            "rediss://c:6380/0#insecure"
        );
        assert_eq!(with("rediss://c:6380/0", "false"), "rediss://c:6380/0");
        assert_eq!(
            with("rediss://c:6380/0#insecure", "false"),
            "rediss://c:6380/0#insecure",
            "the URL's own fragment stays"
        );
        let s = raw(&[
            "--cache-type",
            "redis",
            "--redis-url",
            "rediss://c:6380/0#insecure",
        ])
        .validate()
        .unwrap();
        let CacheSettings::Redis(r) = s.cache else {
            panic!("not Redis")
        };
        assert!(
            r.tls.is_some_and(|tls| tls.insecure),
            "#insecure in the URL is as insecure as REDIS_TLS_INSECURE=true"
        );
    }

    #[test]
    fn redis_tls_files_with_a_plain_url_are_refused_each_by_name() {
        let (_dir, cert, key) = pem_files();
        let plain = ["--cache-type", "redis", "--redis-url", "redis://c:6379/0"];
        let refused = |extra: &[&str]| -> Vec<&'static str> {
            let mut args = plain.to_vec();
            args.extend_from_slice(extra);
            let p = problems(&args);
            assert!(
                p.iter()
                    .all(|p| p.reason.contains("REDIS_URL is redis:// (no TLS)")),
                "{p:?}"
            );
            p.iter().map(|p| p.variable).collect()
        };
        assert_eq!(
            refused(&["--redis-tls-ca-cert", &cert]),
            ["REDIS_TLS_CA_CERT"]
        );
        assert_eq!(
            refused(&[
                "--redis-tls-client-cert",
                &cert,
                "--redis-tls-client-key",
                &key
            ]),
            ["REDIS_TLS_CLIENT_CERT", "REDIS_TLS_CLIENT_KEY"]
        );
    }

    #[test]
    fn redis_tls_settings_with_a_plain_url_are_refused_by_name() {
        let p = problems(&[
            "--cache-type",
            "redis",
            "--redis-url",
            "redis://c:6379/0",
            "--redis-tls-insecure",
            "true",
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].variable, "REDIS_TLS_INSECURE");
        assert!(
            p[0].reason.contains("REDIS_URL is redis:// (no TLS)"),
            "{p:?}"
        );
        // Unset or false: nothing to refuse.
        assert!(
            raw(&["--cache-type", "redis", "--redis-url", "redis://c:6379/0"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn a_master_url_keeps_everything_but_its_address() {
        let url = url::Url::parse("rediss://u:p%40ss@ignored:1/3#insecure").unwrap();
        assert_eq!(
            super::at(&url, "10.0.0.5", 6380).unwrap().as_str(),
            "rediss://u:p%40ss@10.0.0.5:6380/3#insecure"
        );
        assert_eq!(
            super::at(&url, "::1", 6380).unwrap().as_str(),
            "rediss://u:p%40ss@[::1]:6380/3#insecure"
        );
    }
}
