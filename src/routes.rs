//! HTTP endpoints: `/health` (liveness), `/ready` (readiness), `/metrics`.
//! None of them does network I/O: they read what the actors publish.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, Responder, get, web};
use serde_json::json;

use crate::status::Health;

/// Registers the gateway's own endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(liveness).service(readiness).service(metrics);
}

/// Liveness: 200 whenever the process serves; never checks a dependency, so a
/// database outage cannot get healthy pods restarted.
#[get("/health")]
async fn liveness() -> impl Responder {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when every dependency is up, else 503; the body names each
/// dependency with its state.
#[get("/ready")]
async fn readiness(health: web::Data<Health>) -> impl Responder {
    let (ready, body) = health.ready_answer();
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.content_type("application/json").body(body)
}

#[get("/metrics")]
async fn metrics(health: web::Data<Health>) -> impl Responder {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(health.metrics().encode())
}

/// Counts every answer in `readygate_http_requests_total{path,status}`.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let health = req.app_data::<web::Data<Health>>().cloned();
    let result = next.call(req).await;
    if let Some(health) = health {
        let (path, status) = match &result {
            Ok(res) => (
                res.request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into()),
                res.status().as_u16(),
            ),
            Err(e) => (
                "unmatched".into(),
                e.as_response_error().status_code().as_u16(),
            ),
        };
        health.metrics().request(&path, status);
    }
    result
}
