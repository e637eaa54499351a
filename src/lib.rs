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
//!         Database::Sqlite(_) => HttpResponse::Ok().body("sqlite"),
//!     }
//! }
//!
//! // First: a SIGTERM from now on exits 0 (see `signals`).
//! readygate::signals::install().expect("signal handlers");
//! let settings = Settings::from_env().expect("valid settings");
//! let code = Gateway::new(settings).routes(|cfg| { cfg.service(hello); }).run();
//! std::process::exit(code);
//! ```

pub mod config;
pub mod connector;
pub mod dependency;
pub mod error;
pub mod handles;
pub mod listener;
pub mod metrics;
pub mod redact;
pub mod retry;
pub mod routes;
pub mod signals;
pub mod startup;
pub mod status;
pub mod supervisor;
pub mod telemetry;
pub mod tls;

pub use config::Settings;
pub use handles::{Cache, Database, Dependencies, MemoryCache};
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
