//! What application routes receive once the dependencies are ready: the
//! connected pool and cache, as `web::Data<Dependencies>`.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::status::Health;

pub use crate::backends::memory::MemoryCache;
pub use crate::backends::mysql::{MysqlConn, MysqlError, MysqlPool};
pub use crate::backends::{Cache, Database};

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

impl PoolStatus {
    /// From a deadpool pool's figures (PostgreSQL's and SQLite's pools):
    /// its most, its open connections and how many of them are idle, and
    /// the requests waiting.
    pub fn of_deadpool(max_size: usize, size: usize, available: usize, waiting: usize) -> Self {
        PoolStatus {
            max: max_size,
            in_use: size.saturating_sub(available),
            idle: available,
            waiting,
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
