//! SQLite's connector, through deadpool-sqlite (rusqlite on blocking
//! threads): one attempt gets a connection from the application's
//! pool and runs `SELECT 1`; runtime checks use a probe pool of one
//! connection of their own, so a pool the application keeps busy is not
//! mistaken for a broken database. Waiting for a pooled connection is bounded
//! by `DB_POOL_TIMEOUT_MS`.

use std::time::Duration;

use deadpool_sqlite::{Config, Pool, PoolError, Runtime, TimeoutType};
use futures_util::future::{FutureExt, LocalBoxFuture};

use super::error::SqliteError;
use crate::backends::Database;
use crate::connector::{Connector, PoolLimits, checked};
use crate::error::ConnectError;
use crate::handles::Connected;

pub struct SqliteConnector {
    pool: Pool,
    probe: Pool,
    timeout: Duration,
}

impl SqliteConnector {
    pub fn new(path: &str, limits: PoolLimits, timeout: Duration) -> Result<Self, ConnectError> {
        let build = |size: usize, wait: Duration| {
            // deadpool-sqlite's configuration error is `Infallible`.
            let Ok(builder) = Config::new(path).builder(Runtime::Tokio1);
            builder
                .max_size(size)
                .wait_timeout(Some(wait))
                .create_timeout(Some(timeout))
                .recycle_timeout(Some(timeout))
                .build()
                .map_err(SqliteError::Build)
        };
        Ok(SqliteConnector {
            pool: build(limits.size, limits.wait)?,
            probe: build(1, timeout)?,
            timeout,
        })
    }

    /// `SELECT 1` on a connection of `pool`; opening it is bounded by
    /// `timeout`, and running out of it reads as the attempt's own timeout.
    async fn select_one(pool: Pool, timeout: Duration) -> Result<(), ConnectError> {
        let conn = pool.get().await.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Create) => ConnectError::TimedOut(timeout),
            e => SqliteError::Pool(e).into(),
        })?;
        conn.interact(|c| c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
            .await
            .map_err(|e| SqliteError::Interact(e.to_string()))?
            .map_err(SqliteError::Query)?;
        Ok(())
    }
}

impl Connector for SqliteConnector {
    type Handle = Pool;

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<Pool, ConnectError>> {
        checked(
            self.pool.clone(),
            Self::select_one(self.pool.clone(), self.timeout),
        )
    }

    fn check(&self, _: &Pool) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        Self::select_one(self.probe.clone(), self.timeout).boxed_local()
    }

    fn share(pool: &Pool) -> Connected {
        Connected::Database(Database::Sqlite(pool.clone()))
    }
}
