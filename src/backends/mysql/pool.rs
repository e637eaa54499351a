//! The MySQL/MariaDB pool as the application receives it: a thin readygate
//! type over `mysql_async::Pool`, because that pool bounds none of its waits.
//!
//! * [`MysqlPool::get`] waits at most `DB_POOL_TIMEOUT_MS` for a free
//!   connection (of `DB_POOL_SIZE`), then at most `DB_CONNECT_TIMEOUT_MS` for
//!   mysql_async to hand one over (make it, or check an idle one), and fails
//!   with a [`MysqlError`] a route turns into 503. `mysql_async::Pool` alone
//!   would queue a request for ever behind a full pool or a silent server.
//! * [`MysqlConn::run`] runs the application's work on the connection and
//!   ends it ([`MysqlError::Severed`]) when a runtime check finds the server
//!   down: mysql_async has no read timeout and does not expose its socket,
//!   so this is the one place a query waiting on a frozen server can be cut.
//!   There is deliberately no `Deref` to the raw connection: work done
//!   outside `run` could hang for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::handles::PoolStatus;
use crate::retry::Seconds;
use crate::severance::{Severance, Severed};

/// Why [`MysqlPool::get`] or [`MysqlConn::run`] failed. Every variant is an
/// answer a route can turn into 503.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// Every connection was in use for `DB_POOL_TIMEOUT_MS`.
    #[error("timed out after {} waiting for a free connection", Seconds(*.0))]
    Timeout(Duration),
    /// Making a connection (or checking an idle one) took longer than
    /// `DB_CONNECT_TIMEOUT_MS`.
    #[error("timed out after {} making a connection", Seconds(*.0))]
    ConnectTimeout(Duration),
    /// Making a connection failed.
    #[error("cannot make a connection")]
    Connect(#[source] mysql_async::Error),
    /// The work run on the connection failed.
    #[error("query failed")]
    Query(#[source] mysql_async::Error),
    /// A runtime check found the server down while this connection was
    /// checked out: its work was ended, and it cannot be used again.
    #[error("connection closed: the server was found down")]
    Severed,
    /// The gateway is stopping.
    #[error("the pool is closed")]
    Closed,
}

impl MysqlError {
    /// Whether no connection could be had in time (the pool's own bounds),
    /// as opposed to an error of the server or of the work.
    pub fn is_timeout(&self) -> bool {
        matches!(self, MysqlError::Timeout(_) | MysqlError::ConnectTimeout(_))
    }
}

/// The application's MySQL/MariaDB pool; clones share it.
#[derive(Clone)]
pub struct MysqlPool {
    shared: Arc<Shared>,
}

struct Shared {
    /// Replaced when a secret rotates ([`MysqlPool::replace`]).
    pool: std::sync::RwLock<mysql_async::Pool>,
    /// One permit per connection the application may hold (`DB_POOL_SIZE`).
    permits: Arc<Semaphore>,
    size: usize,
    /// `DB_POOL_TIMEOUT_MS`.
    wait: Duration,
    /// `DB_CONNECT_TIMEOUT_MS`.
    connect: Duration,
    /// Requests waiting for a permit right now.
    waiting: AtomicUsize,
    severance: Severance,
}

impl std::fmt::Debug for MysqlPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlPool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Counts a request as waiting for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MysqlPool {
    /// `opts` must carry pool constraints of at most `size` connections.
    pub(crate) fn new(
        opts: mysql_async::Opts,
        size: usize,
        wait: Duration,
        connect: Duration,
    ) -> Self {
        MysqlPool {
            shared: Arc::new(Shared {
                pool: std::sync::RwLock::new(mysql_async::Pool::new(opts)),
                permits: Arc::new(Semaphore::new(size)),
                size,
                wait,
                connect,
                waiting: AtomicUsize::new(0),
                severance: Severance::default(),
            }),
        }
    }

    /// A connection of the pool: waits at most `DB_POOL_TIMEOUT_MS` for a
    /// free one, then at most `DB_CONNECT_TIMEOUT_MS` for it to be made or
    /// checked. It goes back to the pool when dropped.
    pub async fn get(&self) -> Result<MysqlConn, MysqlError> {
        let shared = &self.shared;
        let permit = {
            let _waiting = Waiting::enter(&shared.waiting);
            let acquire = shared.permits.clone().acquire_owned();
            match tokio::time::timeout(shared.wait, acquire).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(MysqlError::Closed),
                Err(_) => return Err(MysqlError::Timeout(shared.wait)),
            }
        };
        // Watching from the checkout on: a check that fails from now on
        // ends this connection's work.
        let severed = shared.severance.watch();
        let conn = match tokio::time::timeout(shared.connect, self.current().get_conn()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(mysql_async::Error::Driver(mysql_async::DriverError::PoolDisconnected))) => {
                return Err(MysqlError::Closed);
            }
            Ok(Err(e)) => return Err(MysqlError::Connect(e)),
            Err(_) => return Err(MysqlError::ConnectTimeout(shared.connect)),
        };
        Ok(MysqlConn {
            conn,
            severed,
            cut: false,
            _permit: permit,
        })
    }

    /// The pool's figures (shown on `/metrics`).
    pub fn status(&self) -> PoolStatus {
        let shared = &self.shared;
        let in_use = shared
            .size
            .saturating_sub(shared.permits.available_permits());
        PoolStatus {
            max: shared.size,
            in_use,
            idle: self
                .current()
                .metrics()
                .connections_in_pool
                .load(Ordering::Relaxed),
            waiting: shared.waiting.load(Ordering::Relaxed),
        }
    }

    /// Close the pool: waiting and later [`MysqlPool::get`] calls fail with
    /// [`MysqlError::Closed`]; the connections are closed once returned.
    pub fn close(&self) {
        self.shared.permits.close();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.current();
            runtime.spawn(async move {
                let _ = pool.disconnect().await;
            });
        }
    }

    /// The mysql_async pool new connections come from (a clone: one lock
    /// and a reference count, no file read).
    fn current(&self) -> mysql_async::Pool {
        let pool = self.shared.pool.read().unwrap_or_else(|e| e.into_inner());
        pool.clone()
    }

    /// New connections from now on are made with `opts` (a rotated
    /// secret); the connections of the old pool keep working until they
    /// are returned, then it closes.
    pub(crate) fn replace(&self, opts: mysql_async::Opts) {
        let new = mysql_async::Pool::new(opts);
        let old = {
            let mut pool = self.shared.pool.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *pool, new)
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = old.disconnect().await;
            });
        }
    }

    /// End the work of every connection checked out now (a runtime check
    /// found the server down).
    pub(crate) fn sever(&self) {
        self.shared.severance.sever();
    }
}

/// A connection checked out of a [`MysqlPool`]; back to the pool when
/// dropped. Use it through [`MysqlConn::run`].
pub struct MysqlConn {
    conn: mysql_async::Conn,
    severed: Severed,
    /// Its work was ended by a severing: the connection may be in the middle
    /// of a reply, and is not used again.
    cut: bool,
    _permit: OwnedSemaphorePermit,
}

impl MysqlConn {
    /// Runs `work` on the connection; ends it with [`MysqlError::Severed`]
    /// as soon as a runtime check finds the server down (so a query on a
    /// frozen server fails within `HEALTH_CHECK_INTERVAL_MS +
    /// DB_CONNECT_TIMEOUT_MS` instead of hanging).
    ///
    /// ```no_run
    /// # async fn f(pool: readygate::MysqlPool) -> Result<(), readygate::MysqlError> {
    /// use readygate::export::mysql_async::prelude::Queryable;
    /// let mut conn = pool.get().await?;
    /// let now: Option<String> = conn
    ///     .run(async |c| c.query_first("SELECT CAST(NOW(6) AS CHAR)").await)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut mysql_async::Conn) -> mysql_async::Result<T>,
    ) -> Result<T, MysqlError> {
        if self.cut {
            return Err(MysqlError::Severed);
        }
        match self.severed.until(work(&mut self.conn)).await {
            Some(result) => result.map_err(MysqlError::Query),
            None => {
                self.cut = true;
                Err(MysqlError::Severed)
            }
        }
    }
}
