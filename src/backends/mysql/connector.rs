//! MySQL and MariaDB through mysql_async, following PostgreSQL's rules as
//! far as the client allows:
//!
//! * The application's pool ([`MysqlPool`], `DB_POOL_SIZE` connections):
//!   getting a connection waits at most `DB_POOL_TIMEOUT_MS` for a free one,
//!   then at most the connect timeout for it to be made. A start-up attempt
//!   gets a connection from it and runs `SELECT 1`, so the pool the
//!   application receives has been proven.
//! * The runtime checks run `SELECT 1` on a connection of their own, not
//!   counted in `DB_POOL_SIZE` and remade when a check fails: a busy pool
//!   stays up, a frozen server goes down.
//! * When a check fails, the work the application runs on its checked-out
//!   connections ([`super::MysqlConn::run`]) is ended.
//!
//! What the client does not allow: mysql_async sets only the first TCP
//! keepalive probe (10 s idle, as for PostgreSQL; the interval and count are
//! the kernel's) and no `TCP_USER_TIMEOUT`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, PoolConstraints, PoolOpts};

use super::error::MysqlAttemptError;
use super::pool::{MysqlError, MysqlPool};
use std::sync::Arc;

use super::options::MysqlOptions;
use crate::backends::{Database, DatabaseUrl, watch_database};
use crate::connector::{Connector, KEEPALIVE_IDLE, PoolLimits, checked};
use crate::error::ConnectError;
use crate::handles::Connected;
use crate::secrets::{Refresh, Watched};

pub struct MysqlConnector {
    pool: MysqlPool,
    /// The URL's options (rebuilt when a secret file rotates): how the
    /// pool's and the checks' connections are made.
    current: Arc<Watched<Opts>>,
    /// `DB_POOL_SIZE`.
    size: usize,
    /// The checks' connection between two checks; taken by a check, put back
    /// when it passed (a failed or timed-out one drops it).
    probe: Rc<RefCell<Option<Conn>>>,
    /// `mysql` or `mariadb`, as the URL said.
    backend: &'static str,
    timeout: Duration,
    /// Whether connections are encrypted (`ssl-mode` other than DISABLED:
    /// the client then refuses a plain connection).
    tls: bool,
}

/// The options of one connection (the URL's, with the keepalive), and of
/// the pool of at most `size` (mysql_async keeps at most `min` idle
/// connections, without an idle TTL, and closes every other one it gets
/// back, so `min` is the size too: it makes none in advance).
fn connection_opts(opts: &Opts) -> OptsBuilder {
    OptsBuilder::from_opts(opts.clone()).tcp_keepalive(Some(KEEPALIVE_IDLE))
}

fn pool_opts(opts: &Opts, size: usize) -> Opts {
    let constraints = PoolConstraints::new(size, size).unwrap_or_default();
    connection_opts(opts)
        .pool_opts(PoolOpts::default().with_constraints(constraints))
        .into()
}

/// The files `options` were built from, and how to build them again.
fn watched(options: &MysqlOptions) -> Arc<Watched<Opts>> {
    let current = (*options.opts).clone();
    watch_database(
        current,
        &options.files,
        options.source.clone(),
        |url| match url {
            DatabaseUrl::Mysql(o) => Some((*o.opts, o.files)),
            _ => None,
        },
    )
}

impl MysqlConnector {
    /// Builds the pool; no connection is made until the first attempt.
    pub fn new(options: &MysqlOptions, limits: PoolLimits, timeout: Duration) -> Self {
        let opts = &options.opts;
        MysqlConnector {
            pool: MysqlPool::new(
                pool_opts(opts, limits.size),
                limits.size,
                limits.wait,
                timeout,
            ),
            tls: opts.ssl_opts().is_some(),
            current: watched(options),
            size: limits.size,
            probe: Rc::default(),
            backend: options.backend,
            timeout,
        }
    }

    /// Reads the secret files again; when one changed, the pool's new
    /// connections and the checks' next one use it. Called before each
    /// attempt and check (mysql_async makes the pool's connections itself,
    /// so a change reaches them within a check interval).
    fn refresh(&self) -> bool {
        if self.current.refresh() != Refresh::Changed {
            return false;
        }
        self.pool
            .replace(pool_opts(&self.current.current(), self.size));
        true
    }

    /// The start-up attempt: `SELECT 1` on a connection of the application's
    /// pool; running out of time making it reads as the attempt's timeout.
    async fn select_one(pool: MysqlPool, timeout: Duration) -> Result<(), ConnectError> {
        let mut conn = pool.get().await.map_err(|e| match e {
            MysqlError::ConnectTimeout(_) => ConnectError::TimedOut(timeout),
            e => MysqlAttemptError::Pool(e).into(),
        })?;
        conn.run(async |c| c.query_drop("SELECT 1").await)
            .await
            .map_err(|e| match e {
                MysqlError::Query(e) => MysqlAttemptError::Query(e).into(),
                e => MysqlAttemptError::Pool(e).into(),
            })
    }

    /// A check: `SELECT 1` on the checks' own connection, made anew when
    /// there is none. The actor bounds it by the attempt timeout.
    async fn probe(slot: Rc<RefCell<Option<Conn>>>, opts: Opts) -> Result<(), ConnectError> {
        let kept = slot.borrow_mut().take();
        let mut conn = match kept {
            Some(conn) => conn,
            None => Conn::new(opts).await.map_err(MysqlAttemptError::Connect)?,
        };
        conn.query_drop("SELECT 1")
            .await
            .map_err(MysqlAttemptError::Query)?;
        *slot.borrow_mut() = Some(conn);
        Ok(())
    }
}

impl Connector for MysqlConnector {
    type Handle = MysqlPool;

    fn backend(&self) -> &'static str {
        self.backend
    }

    fn encrypted(&self) -> Option<bool> {
        Some(self.tls)
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<MysqlPool, ConnectError>> {
        self.refresh();
        checked(
            self.pool.clone(),
            Self::select_one(self.pool.clone(), self.timeout),
        )
    }

    fn check(&self, _: &MysqlPool) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.refresh();
        let opts = connection_opts(&self.current.current()).into();
        Self::probe(self.probe.clone(), opts).boxed_local()
    }

    fn refresh_secrets(&self) -> bool {
        self.refresh()
    }

    fn watches_secrets(&self) -> bool {
        self.current.watches()
    }

    fn sever(&self) {
        self.pool.sever();
    }

    fn share(pool: &MysqlPool) -> Connected {
        Connected::Database(Database::Mysql(pool.clone()))
    }
}
