//! Redis as the cache: its settings (`REDIS_URL`, `REDIS_TLS_*`:
//! [`options`]), how it connects and checks ([`connector`]: the redis
//! crate's `ConnectionManager`), what its errors mean ([`error`]), its
//! secrets read again when they rotate ([`rotation`]) and the handle the
//! application receives ([`handle`]: one that a check can move to a new
//! connection, in [`crate::Cache::Redis`]). Behind Sentinel ([`sentinel`])
//! and as a Redis Cluster ([`cluster`]), with the same settings plus their
//! nodes.

pub mod cluster;
pub mod connector;
pub mod error;
pub mod handle;
pub mod options;
pub mod rotation;
pub mod sentinel;

pub use self::cluster::ClusterConnector;
pub use self::connector::RedisConnector;
pub use self::error::RedisError;
pub use self::handle::{ClusterManager, RedisManager, SentinelManager, Switching};
pub use self::options::{ClusterSettings, RedisSettings, RedisTls, SentinelSettings};
pub use self::sentinel::SentinelConnector;

use crate::error::ConnectError;

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
