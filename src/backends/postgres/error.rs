//! PostgreSQL's errors: what failed (the pool, a query, the pool's build),
//! and what tokio-postgres' and the server's errors mean: SQLSTATEs named
//! by the server's message, the permanent ones (wrong password, no such
//! role or database, a configuration the server refuses).

use std::error::Error as StdError;

use tokio_postgres::error::{DbError, SqlState};

use crate::error::{ErrorClass, ErrorVocabulary, find, named_by};
use crate::redact::scrub;

/// Why a PostgreSQL attempt or check failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("cannot get a PostgreSQL connection")]
    Pool(#[source] deadpool_postgres::PoolError),
    #[error("PostgreSQL query failed")]
    Query(#[source] tokio_postgres::Error),
    #[error("cannot build the PostgreSQL pool")]
    Build(#[source] deadpool_postgres::BuildError),
    /// The server is not what `target_session_attrs` asks for (a primary
    /// turned read-only, a standby where a primary is wanted).
    #[error("server is {} (target_session_attrs={attrs})", long(why))]
    Unsuitable {
        /// In a word: `read-only`, `not read-only`, `standby`, `not a standby`.
        why: &'static str,
        attrs: &'static str,
    },
    /// Of several hosts, none accepted a connection and was what
    /// `target_session_attrs` asks for: each host with its cause.
    #[error("no suitable server (target_session_attrs={attrs}): {}", tried.join(", "))]
    NoSuitableServer {
        attrs: &'static str,
        /// `host:port read-only`, `host:port connection refused`, ...
        tried: Vec<String>,
        /// Whether every host failed with a permanent error (a wrong
        /// password everywhere): then retrying cannot help.
        permanent: bool,
    },
}

/// The words of [`PostgresError::Unsuitable`]: `read-only` → `read-only`,
/// `standby` → `a standby`, and so on.
fn long(why: &str) -> &str {
    match why {
        "standby" => "a standby",
        other => other,
    }
}

named_by!(PostgresError, [Vocabulary]);

/// What tokio-postgres' and deadpool-postgres' errors mean.
pub struct Vocabulary;

impl ErrorVocabulary for Vocabulary {
    fn named_first(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        match err.downcast_ref::<PostgresError>() {
            Some(PostgresError::Pool(deadpool_postgres::PoolError::Timeout(_))) => {
                return Some("timed out".into());
            }
            Some(PostgresError::NoSuitableServer { tried, .. }) => {
                return Some(scrub(&tried.join(", ")).into_owned());
            }
            // The tally's short name; the lines give the attributes.
            Some(PostgresError::Unsuitable { why, .. }) => {
                return Some(format!("server is {}", long(why)));
            }
            _ => {}
        }
        let db = find::<DbError>(err)?;
        Some(scrub(&format!("{} (SQLSTATE {})", db.message(), db.code().code())).into_owned())
    }

    fn tls_refusal(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        // tokio-postgres words it only as text (sslmode=require and more).
        crate::error::sources(err)
            .map(|e| e.to_string())
            .find(|text| text.contains("server does not support TLS"))
            .map(|_| "the server does not support TLS".to_owned())
    }

    fn class(&self, err: &(dyn StdError + 'static)) -> Option<ErrorClass> {
        match err.downcast_ref::<PostgresError>() {
            Some(PostgresError::NoSuitableServer { permanent, .. }) => {
                return Some(if *permanent {
                    ErrorClass::Permanent
                } else {
                    ErrorClass::Transient
                });
            }
            Some(PostgresError::Unsuitable { .. }) => return Some(ErrorClass::Transient),
            _ => {}
        }
        if let Some(db) = find::<DbError>(err) {
            let code = db.code();
            let permanent = *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *code == SqlState::INVALID_CATALOG_NAME;
            return Some(if permanent {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            });
        }
        // tokio-postgres does not expose its error kinds: a configuration
        // error (such as "password missing" when the server asks for one)
        // is only recognisable by its text.
        find::<tokio_postgres::Error>(err)
            .filter(|pg| pg.to_string().starts_with("invalid configuration"))
            .map(|_| ErrorClass::Permanent)
    }

    fn level(&self, e: &(dyn StdError + 'static)) -> Option<Option<String>> {
        let db = e.downcast_ref::<DbError>()?;
        Some(Some(format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConnectError;

    #[test]
    fn a_pool_wait_that_runs_out_is_a_transient_timeout() {
        let wait: ConnectError = PostgresError::Pool(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        ))
        .into();
        assert_eq!(wait.summary(), "timed out");
        assert_eq!(wait.class(), ErrorClass::Transient);
    }

    #[test]
    fn an_unsuitable_server_is_transient_and_says_why() {
        let err: ConnectError = PostgresError::Unsuitable {
            why: "read-only",
            attrs: "read-write",
        }
        .into();
        assert_eq!(
            err.chain(),
            "server is read-only (target_session_attrs=read-write)"
        );
        assert_eq!(err.summary(), "server is read-only");
        assert_eq!(err.class(), ErrorClass::Transient);
        let standby: ConnectError = PostgresError::Unsuitable {
            why: "standby",
            attrs: "primary",
        }
        .into();
        assert_eq!(
            standby.chain(),
            "server is a standby (target_session_attrs=primary)"
        );
    }

    #[test]
    fn no_suitable_server_names_each_host_and_is_permanent_only_when_every_host_was() {
        let tried = vec![
            "db-a:5432 read-only".to_owned(),
            "db-b:5432 connection refused".to_owned(),
        ];
        let err: ConnectError = PostgresError::NoSuitableServer {
            attrs: "read-write",
            tried: tried.clone(),
            permanent: false,
        }
        .into();
        assert_eq!(
            err.chain(),
            "no suitable server (target_session_attrs=read-write): \
             db-a:5432 read-only, db-b:5432 connection refused"
        );
        assert_eq!(
            err.summary(),
            "db-a:5432 read-only, db-b:5432 connection refused"
        );
        assert_eq!(err.class(), ErrorClass::Transient);
        let everywhere: ConnectError = PostgresError::NoSuitableServer {
            attrs: "any",
            tried,
            permanent: true,
        }
        .into();
        assert_eq!(everywhere.class(), ErrorClass::Permanent);
    }

    #[test]
    fn a_server_without_tls_when_tls_is_required_is_permanent() {
        // tokio-postgres says it only in words, whatever carries them.
        let err =
            std::io::Error::other("error performing TLS handshake: server does not support TLS");
        assert_eq!(
            crate::error::summary(&err, &[&Vocabulary]),
            "the server does not support TLS"
        );
        assert_eq!(
            crate::error::class(&err, &[&Vocabulary]),
            ErrorClass::Permanent
        );
    }
}
