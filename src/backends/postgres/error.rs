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
}

named_by!(PostgresError, [Vocabulary]);

/// What tokio-postgres' and deadpool-postgres' errors mean.
pub struct Vocabulary;

impl ErrorVocabulary for Vocabulary {
    fn named_first(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        if let Some(PostgresError::Pool(deadpool_postgres::PoolError::Timeout(_))) =
            err.downcast_ref::<PostgresError>()
        {
            return Some("timed out".into());
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
}
