//! PostgreSQL through a deadpool-postgres pool: one attempt is "get a
//! connection from the pool and run `SELECT 1`".

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::LocalBoxFuture;
use tokio_postgres::NoTls;

use super::{Connector, checked, pool_check};
use crate::error::ConnectError;
use crate::handles::{Connected, Database};
use crate::status::Dependency;

pub struct PostgresConnector {
    pool: Pool,
}

impl PostgresConnector {
    /// Builds the pool; no connection is made until the first attempt.
    pub fn new(
        config: &tokio_postgres::Config,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let mut config = config.clone();
        config.connect_timeout(timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .build()
            .map_err(ConnectError::PostgresBuild)?;
        Ok(PostgresConnector { pool })
    }

    async fn select_one(pool: Pool) -> Result<(), ConnectError> {
        let client = pool.get().await.map_err(ConnectError::PostgresPool)?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(ConnectError::Postgres)?;
        Ok(())
    }
}

impl Connector for PostgresConnector {
    type Handle = Pool;

    fn dependency(&self) -> Dependency {
        Dependency::Database
    }

    fn label(&self) -> &'static str {
        "DB"
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<Pool, ConnectError>> {
        checked(self.pool.clone(), self.check(&self.pool))
    }

    fn check(&self, pool: &Pool) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        pool_check(pool.status(), Self::select_one(pool.clone()))
    }

    fn share(pool: &Pool) -> Connected {
        Connected::Database(Database::Postgres(pool.clone()))
    }
}
