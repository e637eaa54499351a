//! What application routes receive once the dependencies are ready: the
//! connected pool and cache, as `web::Data<Dependencies>`.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::status::Health;

mod mysql;

pub use self::mysql::{MysqlConn, MysqlError, MysqlPool};

/// The database pool, one variant per backend `DATABASE_URL` can name.
///
/// `non_exhaustive`: an application matches the backends it uses (or takes
/// one with [`Database::postgres`], [`Database::mysql`], [`Database::sqlite`])
/// and answers the rest with one `_` arm, so a backend added to readygate
/// later breaks no application. The client crates of these types are
/// re-exported in [`crate::export`], in the versions readygate uses.
#[derive(Clone)]
#[non_exhaustive]
pub enum Database {
    /// `postgres://`, `postgresql://`.
    Postgres(deadpool_postgres::Pool),
    /// `mysql://`, `mariadb://`: a readygate pool over mysql_async, whose
    /// waits are bounded (see [`MysqlPool`]).
    Mysql(MysqlPool),
    /// `sqlite://`.
    Sqlite(deadpool_sqlite::Pool),
}

/// How the application's database pool is used right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections at most (`DB_POOL_SIZE`).
    pub max: usize,
    /// Connections checked out by the application.
    pub in_use: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

impl From<deadpool_postgres::Status> for PoolStatus {
    fn from(s: deadpool_postgres::Status) -> Self {
        PoolStatus {
            max: s.max_size,
            in_use: s.size.saturating_sub(s.available),
            idle: s.available,
            waiting: s.waiting,
        }
    }
}

impl Database {
    /// The PostgreSQL pool, when `DATABASE_URL` names PostgreSQL.
    pub fn postgres(&self) -> Option<&deadpool_postgres::Pool> {
        match self {
            Database::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// The MySQL/MariaDB pool, when `DATABASE_URL` names MySQL or MariaDB.
    pub fn mysql(&self) -> Option<&MysqlPool> {
        match self {
            Database::Mysql(pool) => Some(pool),
            _ => None,
        }
    }

    /// The SQLite pool, when `DATABASE_URL` names SQLite.
    pub fn sqlite(&self) -> Option<&deadpool_sqlite::Pool> {
        match self {
            Database::Sqlite(pool) => Some(pool),
            _ => None,
        }
    }

    /// The pool's figures (shown on `/metrics`).
    pub fn status(&self) -> PoolStatus {
        match self {
            Database::Postgres(pool) => pool.status().into(),
            Database::Mysql(pool) => pool.status(),
            Database::Sqlite(pool) => pool.status().into(),
        }
    }

    /// Close the pool: idle connections are dropped now, checked-out ones
    /// when returned.
    pub fn close(&self) {
        match self {
            Database::Postgres(pool) => pool.close(),
            Database::Mysql(pool) => pool.close(),
            Database::Sqlite(pool) => pool.close(),
        }
    }
}

/// The cache chosen by `CACHE_TYPE`.
#[derive(Clone)]
pub enum Cache {
    /// `CACHE_TYPE=none`.
    None,
    /// `CACHE_TYPE=memory`: in this process, lost on restart.
    Memory(MemoryCache),
    /// `CACHE_TYPE=redis`: a connection manager that reconnects by itself.
    Redis(redis::aio::ConnectionManager),
}

/// A process-local string cache for `CACHE_TYPE=memory`.
#[derive(Clone, Default)]
pub struct MemoryCache(Arc<RwLock<HashMap<String, String>>>);

impl MemoryCache {
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.read().ok()?.get(key).cloned()
    }

    pub fn set(&self, key: impl Into<String>, value: impl Into<String>) {
        if let Ok(mut map) = self.0.write() {
            map.insert(key.into(), value.into());
        }
    }
}

/// Every connected dependency, handed to application routes.
#[derive(Clone)]
pub struct Dependencies {
    pub database: Database,
    /// With `CACHE_REQUIRED=false`, Redis may be down when the gateway
    /// starts serving: `cache` is then a connection manager that connects on
    /// first use (its commands fail while Redis is down, each bounded by
    /// `REDIS_CONNECT_TIMEOUT_MS`); [`Dependencies::is_up`] says which.
    pub cache: Cache,
    /// The handles of the application's own dependencies, by name, as they
    /// connect (an optional one may come later).
    others: OtherHandles,
    health: Health,
}

/// The handles of the application's own dependencies, by name.
pub type OtherHandles = Arc<RwLock<BTreeMap<String, Arc<dyn Any + Send + Sync>>>>;

impl Dependencies {
    pub(crate) fn new(
        database: Database,
        cache: Cache,
        others: OtherHandles,
        health: Health,
    ) -> Self {
        Dependencies {
            database,
            cache,
            others,
            health,
        }
    }

    /// The handle of the application's own dependency `name`
    /// ([`crate::Gateway::dependency`]), once it has connected; `None`
    /// before (an optional one), or when `T` is not its handle type.
    pub fn get<T: Clone + 'static>(&self, name: &str) -> Option<T> {
        let others = self.others.read().ok()?;
        others.get(name)?.downcast_ref::<T>().cloned()
    }

    /// Whether dependency `name` (`database`, `cache`, a `WAIT_FOR` name or
    /// the application's own) is up right now, as `/ready` shows it.
    pub fn is_up(&self, name: &str) -> bool {
        self.health.is_up(name)
    }
}

/// A handle as a dependency actor reports it to the supervisor.
#[derive(Clone)]
pub enum Connected {
    Database(Database),
    Cache(Cache),
    /// The handle of an application's own dependency.
    Other(Arc<dyn Any + Send + Sync>),
    /// Nothing to hand out (`WAIT_FOR`'s waits).
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cache_is_shared_between_clones() {
        let a = MemoryCache::default();
        let b = a.clone();
        a.set("k", "v");
        assert_eq!(b.get("k").as_deref(), Some("v"));
        assert_eq!(b.get("missing"), None);
    }
}
