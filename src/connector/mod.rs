//! One connector per backend. A connector knows how to make one attempt and
//! one runtime check; the retrying, timing and reporting live once, in
//! [`crate::dependency::DependencyActor`]. A new backend is a new connector.

use std::future::Future;

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::error::ConnectError;
use crate::handles::Connected;

pub mod custom;
pub mod http;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod severance;
pub mod sqlite;
pub mod tcp;

pub use self::http::HttpConnector;
pub use self::mysql::MysqlConnector;
pub use self::postgres::{PoolLimits, PostgresConnector};
pub use self::redis::RedisConnector;
pub use self::sqlite::SqliteConnector;
pub use self::tcp::TcpConnector;

pub trait Connector: Unpin + 'static {
    /// What a successful attempt yields and later checks use.
    type Handle: Clone + Unpin + 'static;

    /// `postgres`, `mysql`, `mariadb`, `sqlite`, `redis`, `tcp`, `http`:
    /// shown on `/ready`.
    fn backend(&self) -> &'static str;

    /// One connection attempt. The actor bounds it with the attempt timeout.
    fn connect(&self) -> LocalBoxFuture<'static, Result<Self::Handle, ConnectError>>;

    /// One check of a connected dependency (also used to reconnect). It must
    /// ask the server itself, whatever the application is doing with the
    /// handle: a check that passes without asking would keep `/ready` green
    /// for a frozen server.
    fn check(&self, handle: &Self::Handle) -> LocalBoxFuture<'static, Result<(), ConnectError>>;

    /// A check failed: end the connections that work may be waiting on, so
    /// that it fails now instead of hanging on a server that stopped
    /// answering. Nothing to do where the client bounds its own waits.
    fn sever(&self) {}

    /// Whether the connection is encrypted (`/ready`'s `tls`, the Ready
    /// line); `None` where that says nothing (an embedded database, or no
    /// connection made yet).
    fn encrypted(&self) -> Option<bool> {
        None
    }

    /// The handle as handed to the supervisor and the application.
    fn share(handle: &Self::Handle) -> Connected;
}

/// One attempt for a connector whose handle exists before any connection (a
/// pool): run `check` on it, then hand out the handle.
fn checked<H: 'static>(
    handle: H,
    check: impl Future<Output = Result<(), ConnectError>> + 'static,
) -> LocalBoxFuture<'static, Result<H, ConnectError>> {
    check
        .map(move |result| result.map(|()| handle))
        .boxed_local()
}
