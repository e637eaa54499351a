//! Redis as the cache: its settings (`REDIS_URL`, `REDIS_TLS_*`:
//! [`options`]), how it connects and checks ([`connector`]: the redis
//! crate's `ConnectionManager`), what its errors mean ([`error`]) and the
//! handle the application receives (a `ConnectionManager`, in
//! [`crate::Cache::Redis`]). Behind Sentinel ([`sentinel`]) and as a
//! Redis Cluster ([`cluster`]), with the same settings plus their nodes.

pub mod cluster;
pub mod connector;
pub mod error;
pub mod options;
pub mod rotation;
pub mod sentinel;

pub use self::cluster::ClusterConnector;
pub use self::connector::RedisConnector;
pub use self::error::RedisError;
pub use self::options::{ClusterSettings, RedisSettings, RedisTls, SentinelSettings};
pub use self::sentinel::{SentinelConnector, SentinelManager};

use crate::error::ConnectError;

/// The handle the application receives
/// (`readygate::export::redis::aio::ConnectionManager`).
pub type Manager = redis::aio::ConnectionManager;

/// The handle of `CACHE_TYPE=redis-cluster`
/// (`readygate::export::redis::cluster_async::ClusterConnection`): it sends
/// each key to its slot's owner and follows `MOVED`/`ASK`.
pub type ClusterConnection = redis::cluster_async::ClusterConnection;

impl RedisSettings {
    /// The connector for these settings; it connects at the first attempt.
    pub fn connector(&self) -> Result<RedisConnector, ConnectError> {
        RedisConnector::new(&self.url, self.tls.as_ref(), self.retry.attempt_timeout)
            .map(|c| c.rotating(&self.url, &self.source))
    }
}

impl SentinelSettings {
    /// The connector for these settings; it asks the sentinels at the first
    /// attempt.
    pub fn connector(&self) -> Result<SentinelConnector, ConnectError> {
        SentinelConnector::new(self)
    }
}

impl ClusterSettings {
    /// The connector for these settings; it connects at the first attempt.
    pub fn connector(&self) -> Result<ClusterConnector, ConnectError> {
        ClusterConnector::new(self)
    }
}
