//! SQLite, the embedded default: its URL (`sqlite://PATH`), its connector
//! ([`connector`]: deadpool-sqlite, rusqlite on blocking threads), its
//! errors ([`error`]) and the pool the application receives ([`Pool`], in
//! [`crate::Database::Sqlite`]).

pub mod connector;
pub mod error;

pub use self::connector::SqliteConnector;
pub use self::error::SqliteError;

use crate::config::Checker;
use crate::connector::PoolLimits;
use crate::error::ConnectError;
use crate::handles::PoolStatus;

/// The application's pool (`readygate::export::deadpool_sqlite::Pool`).
pub type Pool = deadpool_sqlite::Pool;

/// A SQLite database, as `DATABASE_URL` names it.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub path: String,
}

/// The options of `sqlite://PATH` (`rest`: what follows `://`), a problem
/// recorded in `c` against `var` when it names no file.
pub(crate) fn parse(
    c: &mut Checker,
    var: &'static str,
    rest: &str,
    shown: &str,
    accepted: &str,
) -> Option<SqliteOptions> {
    if rest.is_empty() {
        c.fail(var, shown, "names no file", accepted);
        return None;
    }
    Some(SqliteOptions {
        path: rest.to_owned(),
    })
}

impl SqliteOptions {
    /// The URL as shown (it holds no password).
    pub fn display(&self) -> String {
        format!("sqlite://{}", self.path)
    }

    /// The connector for this file; its pools open nothing until the first
    /// attempt.
    pub fn connector(
        &self,
        limits: PoolLimits,
        timeout: std::time::Duration,
    ) -> Result<SqliteConnector, ConnectError> {
        SqliteConnector::new(&self.path, limits, timeout)
    }
}

/// The pool's figures, as `/metrics` shows them.
pub fn status(pool: &Pool) -> PoolStatus {
    let s = pool.status();
    PoolStatus::of_deadpool(s.max_size, s.size, s.available, s.waiting)
}
