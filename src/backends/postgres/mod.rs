//! PostgreSQL: everything readygate knows of it. Its URL and libpq's TLS
//! parameters ([`options`], [`tls`]), how it connects and checks
//! ([`connector`]: deadpool-postgres pools over tokio-postgres), what its
//! errors mean ([`error`]) and the pool the application receives
//! ([`Pool`], in [`crate::Database::Postgres`]).

pub mod connector;
pub mod error;
pub mod options;
pub mod servers;
pub mod tls;

pub use self::connector::PostgresConnector;
pub use self::error::PostgresError;
pub use self::options::PostgresOptions;

use crate::connector::PoolLimits;
use crate::error::ConnectError;
use crate::handles::PoolStatus;

/// The application's pool (`readygate::export::deadpool_postgres::Pool`).
pub type Pool = deadpool_postgres::Pool;

impl PostgresOptions {
    /// The connector for these options; its pools make no connection until
    /// the first attempt.
    pub fn connector(
        &self,
        limits: PoolLimits,
        timeout: std::time::Duration,
    ) -> Result<PostgresConnector, ConnectError> {
        PostgresConnector::new(self, limits, timeout)
    }
}

/// The pool's figures, as `/metrics` shows them.
pub fn status(pool: &Pool) -> PoolStatus {
    let s = pool.status();
    PoolStatus::of_deadpool(s.max_size, s.size, s.available, s.waiting)
}
