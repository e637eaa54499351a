//! The rules for the URL and address settings: `DATABASE_URL`,
//! `REDIS_URL` and `HOST`. Passwords never reach a [`super::Problem`]: a URL
//! is shown through [`redact_url`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::check::Checker;
use crate::redact::redact_url;

/// The database, as `DATABASE_URL` names it.
#[derive(Clone)]
pub enum DatabaseUrl {
    Postgres {
        config: Box<tokio_postgres::Config>,
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

impl Checker {
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

    pub(super) fn database_url(&mut self, raw: &str) -> Option<DatabaseUrl> {
        const VAR: &str = "DATABASE_URL";
        const ACCEPTED: &str = "postgres://[user[:password]@]host[:port][/database], postgresql://..., mysql://[user[:password]@]host[:port][/database], mariadb://..., or sqlite://PATH";
        let (value, shown, scheme, rest) = self.url(VAR, raw, ACCEPTED)?;
        match scheme.as_str() {
            "sqlite" if rest.is_empty() => {
                self.fail(VAR, &shown, "names no file", ACCEPTED);
                None
            }
            "sqlite" => Some(DatabaseUrl::Sqlite {
                path: rest.to_owned(),
            }),
            "postgres" | "postgresql" => {
                self.url_with_host(VAR, value, &shown, ACCEPTED)?;
                match tokio_postgres::Config::from_str(value) {
                    Ok(config) => Some(DatabaseUrl::Postgres {
                        config: Box::new(config),
                        display: shown,
                    }),
                    Err(e) => {
                        self.fail(
                            VAR,
                            &shown,
                            format!("is not a valid PostgreSQL URL ({e})"),
                            ACCEPTED,
                        );
                        None
                    }
                }
            }
            "mysql" | "mariadb" => {
                let parsed = self.url_with_host(VAR, value, &shown, ACCEPTED)?;
                let opts = self.mysql_opts(VAR, &parsed, &shown, ACCEPTED)?;
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
                self.unsupported_scheme(VAR, &shown, other, ACCEPTED);
                None
            }
        }
    }

    /// mysql_async's options from a `mysql://` or `mariadb://` URL. Its
    /// query parameters are mysql_async's, except those readygate decides:
    /// the TLS ones (not supported yet) and the pool's size
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
        for (key, _) in parsed.query_pairs() {
            let key = key.to_ascii_lowercase();
            if is_mysql_tls_parameter(&key) {
                self.fail(
                    variable,
                    shown,
                    format!("sets {key:?}: TLS for MySQL is not supported yet"),
                    accepted,
                );
                return None;
            }
            if key == "pool_min" || key == "pool_max" {
                self.fail(
                    variable,
                    shown,
                    format!("sets {key:?}: the pool's size is DB_POOL_SIZE"),
                    accepted,
                );
                return None;
            }
            prefer_socket |= key == "prefer_socket";
        }
        // mysql_async knows the `mysql` scheme only; `mariadb` is the same.
        let mut url = parsed.clone();
        if url.set_scheme("mysql").is_err() {
            self.fail(variable, shown, "is not a valid MySQL URL", accepted);
            return None;
        }
        match mysql_async::Opts::from_url(url.as_str()) {
            Ok(opts) if prefer_socket => Some(opts),
            Ok(opts) => Some(
                mysql_async::OptsBuilder::from_opts(opts)
                    .prefer_socket(false)
                    .into(),
            ),
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

    pub(super) fn redis_url(&mut self, raw: &str) -> Option<String> {
        const VAR: &str = "REDIS_URL";
        const ACCEPTED: &str = "redis://[user[:password]@]host[:port][/db]";
        let (value, shown, scheme, _) = self.url(VAR, raw, ACCEPTED)?;
        match scheme.as_str() {
            "redis" => {}
            "rediss" => {
                self.fail(
                    VAR,
                    &shown,
                    "uses TLS (rediss://), which readygate does not support yet",
                    ACCEPTED,
                );
                return None;
            }
            other => {
                self.unsupported_scheme(VAR, &shown, other, ACCEPTED);
                return None;
            }
        }
        let parsed = self.url_with_host(VAR, value, &shown, ACCEPTED)?;
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            self.fail(
                VAR,
                &shown,
                format!("names database {db:?}, which is not a number"),
                ACCEPTED,
            );
            return None;
        }
        if let Err(e) = redis::Client::open(value) {
            self.fail(
                VAR,
                &shown,
                format!("is not a valid Redis URL ({e})"),
                ACCEPTED,
            );
            return None;
        }
        Some(value.to_owned())
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
fn is_mysql_tls_parameter(key: &str) -> bool {
    matches!(
        key,
        "require_ssl" | "verify_ca" | "verify_identity" | "built_in_roots"
    ) || key.starts_with("ssl")
        || key.starts_with("tls")
}
