//! An application whose gateway also waits for a service of its own: an
//! upstream HTTP API (a pricing service, an auth service). It implements
//! [`readygate::Probe`] for it (connect once, check once, hand out a
//! handle) and adds it with [`Gateway::dependency`]. readygate then retries
//! it with its policy, logs every failed attempt, shows it on `/ready` and
//! `/metrics` as `upstream`, checks it every `HEALTH_CHECK_INTERVAL_MS`, and
//! the routes get its handle with `deps.get::<Upstream>("upstream")`.
//!
//! Run it like the binary (same settings, same `.env`), with the upstream's
//! base URL in `UPSTREAM_URL`:
//! `UPSTREAM_URL=http://127.0.0.1:8080 cargo run --example upstream`, then
//! `curl localhost:4444/ready` and `curl localhost:4444/app/upstream`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use futures_util::future::{FutureExt, LocalBoxFuture};
use readygate::retry::{Backoff, Thousandths};
use readygate::{
    Dependencies, DependencyOptions, Gateway, Probe, ProbeError, RetryPolicy, Settings,
};
use serde_json::json;

/// The dependency's name: on `/ready`, `/metrics` and in the log.
pub const NAME: &str = "upstream";

/// What the routes receive once the upstream answered: where it is. (A
/// handle must be `Send + Sync`; awc's client is neither, so each request
/// makes its own, which is cheap.)
#[derive(Clone, Debug)]
pub struct Upstream {
    base: Arc<str>,
}

impl Upstream {
    pub fn new(base: &str) -> Upstream {
        Upstream {
            base: base.trim_end_matches('/').into(),
        }
    }

    /// `GET {base}{path}`: the status and the body.
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut response = awc::Client::default()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = response.body().await.map_err(|e| e.to_string())?;
        Ok((
            response.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }

    /// One health check: `GET /health` answers 2xx. A 401 or 403 is
    /// permanent (our credentials will not get better by waiting); any
    /// other answer, or no answer, is worth retrying.
    async fn health(self) -> Result<Upstream, ProbeError> {
        let (status, _) = self.get("/health").await.map_err(ProbeError::transient)?;
        match status {
            200..=299 => Ok(self),
            401 | 403 => Err(ProbeError::permanent(format!(
                "the upstream refuses us: HTTP {status}"
            ))),
            _ => Err(ProbeError::transient(format!("HTTP {status}"))),
        }
    }
}

impl Probe for Upstream {
    type Handle = Upstream;

    fn backend(&self) -> &'static str {
        "http"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<Upstream, ProbeError>> {
        self.clone().health().boxed_local()
    }

    fn check(&self, handle: &Upstream) -> LocalBoxFuture<'static, Result<(), ProbeError>> {
        handle.clone().health().map(|r| r.map(drop)).boxed_local()
    }
}

/// Attempts of the upstream: 10, from 500 ms doubling to 5 s, +-20 %
/// (many gateways restarting together do not retry in step), 2 s each.
pub fn options() -> DependencyOptions {
    DependencyOptions {
        policy: RetryPolicy {
            backoff: Backoff::Exponential {
                multiplier: Thousandths(2000),
                max_interval: Duration::from_secs(5),
            },
            jitter: Thousandths(200),
            ..RetryPolicy::fixed(10, Duration::from_millis(500), Duration::from_secs(2))
        },
        required: true,
    }
}

/// The application's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(quote);
}

/// Passes `GET /quote` on to the upstream. The handle is there once the
/// upstream has answered (for a required dependency: before the port
/// opened); while a runtime check finds it down, `/ready` says so and this
/// route answers 503 itself rather than waiting on a dead service.
#[get("/app/upstream")]
async fn quote(deps: web::Data<Dependencies>) -> HttpResponse {
    let Some(upstream) = deps.get::<Upstream>(NAME) else {
        return HttpResponse::ServiceUnavailable().json(json!({ "error": "not connected yet" }));
    };
    if !deps.is_up(NAME) {
        return HttpResponse::ServiceUnavailable().json(json!({ "error": "the upstream is down" }));
    }
    match upstream.get("/quote").await {
        Ok((status, body)) => HttpResponse::Ok().json(json!({ "status": status, "body": body })),
        Err(error) => HttpResponse::BadGateway().json(json!({ "error": error })),
    }
}

pub fn main() -> ExitCode {
    // First, so that a stop signal at any moment exits 0 (see
    // `readygate::signals`).
    if let Err(e) = readygate::signals::install() {
        eprintln!("cannot catch stop signals yet: {e}");
    }
    let settings = readygate::config::load_dotenv().and_then(|()| Settings::from_env());
    let settings = match settings {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(78);
        }
    };
    readygate::telemetry::init(settings.log);
    let base = std::env::var("UPSTREAM_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let code = Gateway::new(settings)
        .dependency(NAME, Upstream::new(&base), options())
        .routes(routes)
        .run();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
