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
use crate::tls::{ClientIdentity, Roots, load_certs, load_key};

/// A PostgreSQL database, as `DATABASE_URL` names it.
#[derive(Clone)]
pub struct PostgresOptions {
    pub config: Box<tokio_postgres::Config>,
    pub tls: PostgresTls,
    /// The URL with its password hidden.
    pub display: String,
}

/// The options of a `postgres://` URL (`value`, shown as `shown`), every
/// problem recorded in `c` against `var`.
pub(crate) fn parse(
    c: &mut Checker,
    var: &'static str,
    value: &str,
    shown: &str,
    accepted: &str,
) -> Option<PostgresOptions> {
    let parsed = c.url_with_host(var, value, shown, accepted)?;
    // libpq's TLS parameters are ours to read: tokio-postgres knows only
    // three of the five sslmodes, and no files.
    let (rest, params) = split_tls_params(&parsed);
    let tls = tls_config(c, var, shown, &params);
    let config = match tokio_postgres::Config::from_str(rest.as_str()) {
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
    let (mut config, tls) = (config?, tls?);
    config.ssl_mode(tls.mode.driver_mode());
    Some(PostgresOptions {
        config: Box::new(config),
        tls,
        display: shown.to_owned(),
    })
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

/// PostgreSQL's TLS from the URL's parameters: the mode, the files read
/// and parsed, the rustls configuration built; every problem reported.
fn tls_config(
    c: &mut Checker,
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
