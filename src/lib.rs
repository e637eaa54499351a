//! readygate: a start-up supervisor for actix-web gateways.
//!
//! A [`supervisor::Supervisor`] actor starts one
//! [`dependency::DependencyActor`] per dependency (the database, and Redis
//! when `CACHE_TYPE=redis`). Each makes one attempt per timed message,
//! following a [`retry::RetryPolicy`], and reports ready or failed. The HTTP
//! server starts only when every dependency is ready; a dependency that gives
//! up stops the process with exit code 69, bad settings with 78.
//!
//! Embed it with your own routes:
//!
//! ```no_run
//! use actix_web::{get, web, HttpResponse};
//! use readygate::{Database, Dependencies, Gateway, Settings};
//!
//! #[get("/hello")]
//! async fn hello(deps: web::Data<Dependencies>) -> HttpResponse {
//!     match &deps.database {
//!         Database::Postgres(_) => HttpResponse::Ok().body("postgres"),
//!         Database::Mysql(_) => HttpResponse::Ok().body("mysql"),
//!         // Backends this application does not use (and any added later).
//!         _ => HttpResponse::NotImplemented().finish(),
//!     }
//! }
//!
//! // First: a SIGTERM from now on exits 0 (see `signals`).
//! readygate::signals::install().expect("signal handlers");
//! let settings = Settings::from_env().expect("valid settings");
//! let code = Gateway::new(settings).routes(|cfg| { cfg.service(hello); }).run();
//! std::process::exit(code);
//! ```

pub mod backends;
pub mod config;
pub mod connector;
pub mod dependencies;
pub mod dependency;
pub mod error;
pub mod exec;
pub mod handles;
pub mod listener;
pub mod metrics;
pub mod redact;
pub mod retry;
pub mod routes;
pub mod secrets;
pub mod severance;
pub mod signals;
pub mod startup;
pub mod status;
pub mod supervisor;
pub mod telemetry;
pub mod tls;

pub use backends::memory::MemoryCache;
pub use backends::mysql::{MysqlConn, MysqlError, MysqlPool};
pub use backends::probe::{Probe, ProbeError};
pub use backends::redis::{ClusterManager, RedisManager, SentinelManager};
pub use backends::{Cache, Database};
pub use config::Settings;
pub use dependencies::DependencyOptions;
pub use handles::Dependencies;

/// The client crates whose types readygate hands to the application, in the
/// versions it was built with: depend on readygate alone and name them as
/// `readygate::export::deadpool_postgres::...`, so that the pool's type and
/// the application's never come from two versions of one crate.
pub mod export {
    pub use deadpool_postgres;
    pub use deadpool_sqlite;
    pub use mysql_async;
    pub use redis;
    pub use tokio_postgres;
}
pub use retry::RetryPolicy;
pub use startup::{Gateway, run_cli};

/// Exit codes (sysexits.h).
pub mod exit {
    /// Stopped normally, or by SIGTERM/SIGINT.
    pub const OK: i32 = 0;
    /// A dependency is unavailable (EX_UNAVAILABLE).
    pub const UNAVAILABLE: i32 = 69;
    /// Bad configuration, or a `HOST`/`PORT` that cannot be had (EX_CONFIG).
    pub const CONFIG: i32 = 78;
}

#[cfg(doctest)]
mod doctests;
