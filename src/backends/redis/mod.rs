//! Redis as the cache: its settings (`REDIS_URL`, `REDIS_TLS_*`:
//! [`options`]), how it connects and checks ([`connector`]: the redis
//! crate's `ConnectionManager`), what its errors mean ([`error`]) and the
//! handle the application receives (a `ConnectionManager`, in
//! [`crate::Cache::Redis`]).

pub mod connector;
pub mod error;
pub mod options;
pub mod rotation;

pub use self::connector::RedisConnector;
pub use self::error::RedisError;
pub use self::options::{RedisSettings, RedisTls};

use crate::error::ConnectError;

/// The handle the application receives
/// (`readygate::export::redis::aio::ConnectionManager`).
pub type Manager = redis::aio::ConnectionManager;

impl RedisSettings {
    /// The connector for these settings; it connects at the first attempt.
    pub fn connector(&self) -> Result<RedisConnector, ConnectError> {
        RedisConnector::new(&self.url, self.tls.as_ref(), self.retry.attempt_timeout)
            .map(|c| c.rotating(&self.url, &self.source))
    }
}
