//! `mysql://` and `mariadb://` URLs: mysql_async reads the URL, readygate
//! reads the mysql client's TLS parameters (`ssl-mode`, `ssl-ca`,
//! `ssl-cert`, `ssl-key`) and the pool's size itself, and refuses the
//! parameters that would contradict them. Passwords never reach a
//! [`crate::config::Problem`]: the URL is shown through
//! [`crate::redact::redact_url`].

use std::path::{Path, PathBuf};

use crate::config::Checker;
use crate::secrets::{Source, UrlSource};
use crate::tls::{load_certs, load_key};

/// A MySQL or MariaDB database, as `DATABASE_URL` names it.
#[derive(Clone)]
pub struct MysqlOptions {
    pub opts: Box<mysql_async::Opts>,
    /// `mysql` or `mariadb`, as the URL said (shown on `/ready`).
    pub backend: &'static str,
    /// The URL with its password hidden.
    pub display: String,
    /// The TLS files read (`ssl-ca`, `ssl-cert`, `ssl-key`): watched for
    /// rotation.
    pub files: Vec<Source>,
    /// Where the URL came from, read again when it or a TLS file rotates
    /// (`None`: no rotation).
    pub source: Option<UrlSource>,
}

/// The options of a `mysql://` or `mariadb://` URL (`value`, shown as
/// `shown`; `scheme` in lower case), every problem recorded in `c` against
/// `var`.
pub(crate) fn parse(
    c: &mut Checker,
    var: &'static str,
    value: &str,
    shown: &str,
    scheme: &str,
    accepted: &str,
) -> Option<MysqlOptions> {
    let parsed = c.url_with_host(var, value, shown, accepted)?;
    let opts = driver_options(c, var, &parsed, shown, accepted)?;
    let files = parsed
        .query_pairs()
        .filter_map(|(key, path)| {
            let what = match key.as_ref() {
                "ssl-ca" | "ssl-cert" => "certificate",
                "ssl-key" => "key",
                _ => return None,
            };
            Some(Source::new(key.into_owned(), what, path.into_owned()))
        })
        .collect();
    Some(MysqlOptions {
        opts: Box::new(opts),
        files,
        source: None,
        backend: if scheme == "mysql" {
            "mysql"
        } else {
            "mariadb"
        },
        display: shown.to_owned(),
    })
}

/// The mysql client's TLS parameters of a MySQL URL, as written.
#[derive(Debug, Default)]
struct MysqlTlsParams {
    mode: Option<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// mysql_async's options from a `mysql://` or `mariadb://` URL. Its
/// query parameters are mysql_async's, except those readygate decides:
/// TLS (the mysql client's `ssl-*` parameters, see [`tls_options`])
/// and the pool's size
/// (`DB_POOL_SIZE`). readygate connects where the URL says: mysql_async's
/// switch to the server's unix socket for a local address
/// (`prefer_socket`) is off unless the URL turns it on.
fn driver_options(
    c: &mut Checker,
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
                    c.fail(
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
                    c.fail(
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
    let ssl = tls_options(c, variable, shown, &tls)?;
    // mysql_async knows the `mysql` scheme only; `mariadb` is the same.
    let mut url = parsed.clone();
    if url.set_scheme("mysql").is_err() {
        c.fail(variable, shown, "is not a valid MySQL URL", accepted);
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
            c.fail(
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
fn tls_options(
    c: &mut Checker,
    var: &'static str,
    shown: &str,
    params: &MysqlTlsParams,
) -> Option<Option<mysql_async::SslOpts>> {
    const MODES: &str = "ssl-mode: DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY";
    let mode = params.mode.as_deref().map(str::to_ascii_uppercase);
    let mode = match mode.as_deref() {
        None | Some("DISABLED") => {
            if params.ca.is_some() || params.cert.is_some() || params.key.is_some() {
                c.fail(
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
            c.fail(
                var,
                shown,
                "has ssl-mode=PREFERRED, which readygate's MySQL client cannot do (it cannot fall back to plain)",
                MODES,
            );
            return None;
        }
        Some(other) => {
            c.fail(var, shown, format!("has ssl-mode={other:?}"), MODES);
            return None;
        }
    };
    let mut ok = true;
    if let Some(ca) = &params.ca
        && let Err(e) = load_certs(Path::new(ca))
    {
        c.fail(
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
                c.fail(
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
            c.fail(
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

/// Whether a MySQL URL parameter asks for TLS in a way readygate does not
/// read: mysql_async's own (`require_ssl`, `verify_ca`, `verify_identity`,
/// `built_in_roots`) and the spellings other MySQL clients use (`sslmode`,
/// `ssl_ca`, `tls`, ...), so that none of them is taken for a typo. TLS is
/// read from ssl-mode, ssl-ca, ssl-cert and ssl-key only (`key` is already
/// folded to lower case with `-`).
fn is_mysql_tls_parameter(key: &str) -> bool {
    matches!(
        key,
        "require-ssl" | "verify-ca" | "verify-identity" | "built-in-roots"
    ) || key.starts_with("ssl")
        || key.starts_with("tls")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::DatabaseUrl;
    use crate::config::tests::{pem_files, problems, raw};

    #[test]
    fn mysql_urls() {
        for (ok, backend) in [
            ("mysql://app:pw@db:3307/app", "mysql"),
            ("MariaDB://db", "mariadb"),
            ("mariadb://app@db/app?stmt_cache_size=0", "mariadb"),
        ] {
            let s = raw(&["--database-url", ok]).validate().unwrap();
            assert_eq!(s.database.url.backend(), backend, "{ok}");
            let DatabaseUrl::Mysql(MysqlOptions { opts, .. }) = &s.database.url else {
                panic!("{ok} is not MySQL")
            };
            // readygate connects where the URL says, not to a local socket
            // the server names.
            assert!(!opts.prefer_socket(), "{ok}");
        }
        let s = raw(&["--database-url", "mysql://app:p%40ss@db:3307/app"])
            .validate()
            .unwrap();
        let DatabaseUrl::Mysql(MysqlOptions { opts, display, .. }) = &s.database.url else {
            panic!("not MySQL")
        };
        assert_eq!(
            (opts.user(), opts.pass(), opts.db_name(), opts.tcp_port()),
            (Some("app"), Some("p@ss"), Some("app"), 3307)
        );
        assert_eq!(display, "mysql://app:***@db:3307/app");
        let prefer = raw(&["--database-url", "mysql://db/app?prefer_socket=true"])
            .validate()
            .unwrap();
        let DatabaseUrl::Mysql(MysqlOptions { opts, .. }) = &prefer.database.url else {
            panic!("not MySQL")
        };
        assert!(opts.prefer_socket(), "the URL may ask for it");

        for (bad, reason) in [
            (
                "mysql://db/app?ssl-mode=PREFERRED",
                "cannot fall back to plain",
            ),
            (
                "mysql://db/app?require_ssl=true",
                "TLS is set with ssl-mode, ssl-ca, ssl-cert and ssl-key",
            ),
            (
                "mariadb://db/app?sslca=/ca.pem",
                "TLS is set with ssl-mode, ssl-ca, ssl-cert and ssl-key",
            ),
            (
                "mysql://db/app?pool_max=50",
                "the pool's size is DB_POOL_SIZE",
            ),
            (
                "mysql://db/app?colour=blue",
                "Unknown connection URL parameter",
            ),
            ("mysql:///app", "names no host"),
            ("mysql://db:99999/app", "is not a valid URL"),
        ] {
            let p = problems(&["--database-url", bad]);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].reason.contains(reason), "{bad}: {}", p[0].reason);
        }
    }

    #[test]
    fn the_tls_files_read_are_watched() {
        let (_dir, cert, key) = pem_files();
        let url = format!(
            "mysql://app@db/app?ssl-mode=VERIFY_IDENTITY&ssl-ca={cert}&ssl-cert={cert}&ssl-key={key}"
        );
        let s = raw(&["--database-url", &url]).validate().unwrap();
        let DatabaseUrl::Mysql(o) = s.database.url else {
            panic!("not mysql")
        };
        assert_eq!(
            crate::config::tests::watched(&o.files),
            [
                ("ssl-ca", "certificate", cert.clone()),
                ("ssl-cert", "certificate", cert.clone()),
                ("ssl-key", "key", key.clone()),
            ]
        );
        assert!(o.source.is_none());
    }

    #[test]
    fn mysql_tls_parameters_reach_the_client() {
        let (_dir, cert, key) = pem_files();
        let ssl_of = |query: &str| {
            let url = format!("mysql://app@db/app?{query}");
            let s = raw(&["--database-url", &url]).validate().unwrap();
            let DatabaseUrl::Mysql(MysqlOptions { opts, .. }) = s.database.url else {
                panic!("not mysql: {:?}", s.database.url)
            };
            opts.ssl_opts().cloned().expect("TLS on")
        };
        let ssl = ssl_of(&format!(
            "ssl-mode=VERIFY_IDENTITY&ssl-ca={cert}&ssl-cert={cert}&ssl-key={key}"
        ));
        assert!(ssl.client_identity().is_some());
        assert_eq!(ssl.root_certs().len(), 1);

        // What each mode checks, as the mysql client: (any certificate
        // accepted, host name unchecked).
        for (query, checks) in [
            (
                format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={cert}"),
                (false, false),
            ),
            (format!("ssl-mode=VERIFY_CA&ssl-ca={cert}"), (false, true)),
            (format!("ssl-mode=REQUIRED&ssl-ca={cert}"), (false, true)),
            ("ssl-mode=REQUIRED".to_owned(), (true, true)),
        ] {
            let ssl = ssl_of(&query);
            let got = (ssl.accept_invalid_certs(), ssl.skip_domain_validation());
            assert_eq!(got, checks, "{query}");
        }

        // Any one file without ssl-mode, or half a client certificate, is
        // refused rather than ignored.
        for (query, reason) in [
            (format!("ssl-ca={cert}"), "has TLS files but no ssl-mode"),
            (format!("ssl-cert={cert}"), "has TLS files but no ssl-mode"),
            (format!("ssl-key={key}"), "has TLS files but no ssl-mode"),
            (
                format!("ssl-mode=REQUIRED&ssl-cert={cert}"),
                "has only one of ssl-cert and ssl-key",
            ),
            (
                format!("ssl-mode=REQUIRED&ssl-key={key}"),
                "has only one of ssl-cert and ssl-key",
            ),
        ] {
            let p = problems(&["--database-url", &format!("mysql://db/app?{query}")]);
            assert_eq!(p.len(), 1, "{query}: {p:?}");
            assert!(p[0].reason.contains(reason), "{query}: {p:?}");
        }
    }
}
