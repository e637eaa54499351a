//! SQLite, the embedded default, through a deadpool-sqlite pool (rusqlite
//! on blocking threads): one attempt opens a connection and runs `SELECT 1`.

use deadpool_sqlite::{Config, Pool, Runtime};
use futures_util::future::LocalBoxFuture;

use super::{Connector, checked, pool_check};
use crate::error::ConnectError;
use crate::handles::{Connected, Database};
use crate::status::Dependency;

pub struct SqliteConnector {
    pool: Pool,
}

impl SqliteConnector {
    pub fn new(path: &str, pool_size: usize) -> Result<Self, ConnectError> {
        // deadpool-sqlite's configuration error is `Infallible`.
        let Ok(builder) = Config::new(path).builder(Runtime::Tokio1);
        let pool = builder
            .max_size(pool_size)
            .build()
            .map_err(ConnectError::SqliteBuild)?;
        Ok(SqliteConnector { pool })
    }

    async fn select_one(pool: Pool) -> Result<(), ConnectError> {
        let conn = pool.get().await.map_err(ConnectError::SqlitePool)?;
        conn.interact(|c| c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
            .await
            .map_err(|e| ConnectError::SqliteInteract(e.to_string()))?
            .map_err(ConnectError::Sqlite)?;
        Ok(())
    }
}

impl Connector for SqliteConnector {
    type Handle = Pool;

    fn dependency(&self) -> Dependency {
        Dependency::Database
    }

    fn label(&self) -> &'static str {
        "DB"
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<Pool, ConnectError>> {
        checked(self.pool.clone(), self.check(&self.pool))
    }

    fn check(&self, pool: &Pool) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        pool_check(pool.status(), Self::select_one(pool.clone()))
    }

    fn share(pool: &Pool) -> Connected {
        Connected::Database(Database::Sqlite(pool.clone()))
    }
}
