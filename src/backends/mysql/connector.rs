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
use crate::backends::Database;
use crate::connector::{Connector, KEEPALIVE_IDLE, PoolLimits, checked};
use crate::error::ConnectError;
use crate::handles::Connected;

pub struct MysqlConnector {
    pool: MysqlPool,
    /// How the checks' own connection is made.
    probe_opts: Opts,
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

impl MysqlConnector {
    /// Builds the pool; no connection is made until the first attempt.
    /// `timeout` bounds making a connection.
    pub fn new(opts: &Opts, backend: &'static str, limits: PoolLimits, timeout: Duration) -> Self {
        let connection = OptsBuilder::from_opts(opts.clone()).tcp_keepalive(Some(KEEPALIVE_IDLE));
        // Connections are made as requests need them and then kept, as
        // deadpool does for PostgreSQL: mysql_async keeps at most `min` idle
        // connections (without an idle TTL) and closes every other one it
        // gets back, so `min` is the size too (it makes none in advance).
        let constraints = PoolConstraints::new(limits.size, limits.size).unwrap_or_default();
        let pool_opts = PoolOpts::default().with_constraints(constraints);
        MysqlConnector {
            pool: MysqlPool::new(
                connection.clone().pool_opts(pool_opts).into(),
                limits.size,
                limits.wait,
                timeout,
            ),
            tls: opts.ssl_opts().is_some(),
            probe_opts: connection.into(),
            probe: Rc::default(),
            backend,
            timeout,
        }
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
        checked(
            self.pool.clone(),
            Self::select_one(self.pool.clone(), self.timeout),
        )
    }

    fn check(&self, _: &MysqlPool) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        Self::probe(self.probe.clone(), self.probe_opts.clone()).boxed_local()
    }

    fn sever(&self) {
        self.pool.sever();
    }

    fn share(pool: &MysqlPool) -> Connected {
        Connected::Database(Database::Mysql(pool.clone()))
    }
}
