//! MySQL and MariaDB (one protocol): everything readygate knows of them.
//! Their URL and the mysql client's TLS parameters ([`options`]), how they
//! connect and check ([`connector`], over mysql_async), what their errors
//! mean ([`error`]) and the bounded pool the application receives
//! ([`pool`]: [`MysqlPool`], in [`crate::Database::Mysql`]).

pub mod connector;
pub mod error;
pub mod options;
pub mod pool;

pub use self::connector::MysqlConnector;
pub use self::error::MysqlAttemptError;
pub use self::options::MysqlOptions;
pub use self::pool::{MysqlConn, MysqlError, MysqlPool};

use crate::connector::PoolLimits;
use crate::error::ConnectError;

impl MysqlOptions {
    /// The connector for these options; its pool makes no connection until
    /// the first attempt.
    pub fn connector(
        &self,
        limits: PoolLimits,
        timeout: std::time::Duration,
    ) -> Result<MysqlConnector, ConnectError> {
        Ok(MysqlConnector::new(self, limits, timeout))
    }
}
