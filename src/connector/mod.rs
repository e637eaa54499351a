//! One connector per backend. A connector knows how to make one attempt and
//! one runtime check; the retrying, timing and reporting live once, in
//! [`crate::dependency::DependencyActor`]. A new backend is a new connector.

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::error::ConnectError;
use crate::handles::Connected;
use crate::status::Dependency;

pub mod postgres;
pub mod redis;
pub mod sqlite;

pub use self::postgres::PostgresConnector;
pub use self::redis::RedisConnector;
pub use self::sqlite::SqliteConnector;

pub trait Connector: Unpin + 'static {
    /// What a successful attempt yields and later checks use.
    type Handle: Clone + Unpin + 'static;

    /// Which dependency this connects.
    fn dependency(&self) -> Dependency;

    /// The word that starts its log lines: `DB`, `Redis`.
    fn label(&self) -> &'static str;

    /// `postgres`, `sqlite`, `redis`: shown on `/ready`.
    fn backend(&self) -> &'static str;

    /// One connection attempt. The actor bounds it with the attempt timeout.
    fn connect(&self) -> LocalBoxFuture<'static, Result<Self::Handle, ConnectError>>;

    /// One check of a connected dependency (also used to reconnect).
    fn check(&self, handle: &Self::Handle) -> LocalBoxFuture<'static, Result<(), ConnectError>>;

    /// The handle as handed to the supervisor and the application.
    fn share(handle: &Self::Handle) -> Connected;
}

/// One attempt for a connector whose handle exists before any connection (a
/// pool): run its check, then hand out the handle.
fn checked<H: 'static>(
    handle: H,
    check: LocalBoxFuture<'static, Result<(), ConnectError>>,
) -> LocalBoxFuture<'static, Result<H, ConnectError>> {
    check
        .map(move |result| result.map(|()| handle))
        .boxed_local()
}

/// A pool whose every connection is checked out is a busy database, not a
/// dead one: a check that waited for a free connection would time out and
/// take a loaded gateway out of service. Such a check passes at once; the
/// next check, or the application's own queries, see a real outage.
fn saturated(status: deadpool_postgres::Status) -> bool {
    status.size >= status.max_size && status.available == 0
}

/// The check of a pool-based connector: [`saturated`], or `check`.
fn pool_check(
    status: deadpool_postgres::Status,
    check: impl std::future::Future<Output = Result<(), ConnectError>> + 'static,
) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
    if saturated(status) {
        futures_util::future::ready(Ok(())).boxed_local()
    } else {
        check.boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(max_size: usize, size: usize, available: usize) -> deadpool_postgres::Status {
        deadpool_postgres::Status {
            max_size,
            size,
            available,
            waiting: 0,
        }
    }

    #[test]
    fn only_a_full_pool_with_nothing_idle_is_saturated() {
        assert!(saturated(status(2, 2, 0)));
        assert!(!saturated(status(2, 2, 1)));
        assert!(!saturated(status(2, 1, 0)));
        assert!(!saturated(status(2, 0, 0)));
    }
}
