//! SQLite's errors: what failed (the pool, its build, the blocking worker,
//! a query). A pool wait that ran out is a timeout; everything else is
//! named by the shared rules.

use std::error::Error as StdError;

use crate::error::{ErrorVocabulary, named_by};

/// Why a SQLite attempt or check failed.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    #[error("cannot open the SQLite database")]
    Pool(#[source] deadpool_sqlite::PoolError),
    #[error("cannot build the SQLite pool")]
    Build(#[source] deadpool_sqlite::BuildError),
    #[error("SQLite query failed")]
    Query(#[source] deadpool_sqlite::rusqlite::Error),
    #[error("SQLite worker failed: {0}")]
    Interact(String),
}

named_by!(SqliteError, [Vocabulary]);

/// What deadpool-sqlite's errors mean.
pub struct Vocabulary;

impl ErrorVocabulary for Vocabulary {
    fn named_first(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        match err.downcast_ref::<SqliteError>() {
            Some(SqliteError::Pool(deadpool_sqlite::PoolError::Timeout(_))) => {
                Some("timed out".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConnectError, ErrorClass};

    #[test]
    fn a_pool_wait_that_runs_out_is_a_transient_timeout() {
        let wait: ConnectError = SqliteError::Pool(deadpool_sqlite::PoolError::Timeout(
            deadpool_sqlite::TimeoutType::Wait,
        ))
        .into();
        assert_eq!(wait.summary(), "timed out");
        assert_eq!(wait.class(), ErrorClass::Transient);
        let worker: ConnectError = SqliteError::Interact("panicked".into()).into();
        assert_eq!(worker.summary(), "SQLite worker failed: panicked");
    }
}
