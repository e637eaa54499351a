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
            DatabaseUrl::Postgres { display, .. } => display.clone(),
            DatabaseUrl::Sqlite { path } => format!("sqlite://{path}"),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres { .. } => "postgres",
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
        const ACCEPTED: &str = "postgres://[user[:password]@]host[:port][/database], postgresql://..., or sqlite://PATH";
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
            other => {
                self.unsupported_scheme(VAR, &shown, other, ACCEPTED);
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
