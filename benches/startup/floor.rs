//! The floor: a bare actix-web server, run as a separate process (this
//! bench binary re-executed with `FLOOR_SERVER=1`), so that it pays the same
//! exec, runtime start and bind as the gateway, and nothing else: no
//! middleware, no shared state.
//!
//! Same actix-web version, features and default worker count as the
//! gateway, and the same answers as static bytes: `/health` the gateway's
//! `{"status":"ok"}` with `content-type: application/json`; `/ready` 200
//! with the bytes of `FLOOR_READY_BODY` (the harness passes the gateway's
//! own `/ready` body); and the example application's routes
//! (`examples/app.rs`, the very handlers, `/app/hello` among them).
//! Listens on `HOST`:`PORT`; actix-web's own SIGTERM handling.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};

use crate::app;

/// The environment variable that turns the bench binary into the floor.
pub const ENV: &str = "FLOOR_SERVER";

/// A `/ready` body of the gateway's shape, when none is given.
const DEFAULT_READY_BODY: &str = r#"{"status":"ready","dependencies":{"cache":{"backend":"redis","state":"up","since":"2026-01-01T00:00:00.000Z","consecutive_failures":0,"last_error":null},"database":{"backend":"postgres","state":"up","since":"2026-01-01T00:00:00.000Z","consecutive_failures":0,"last_error":null}}}"#;

fn json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body)
}

pub fn run() -> std::process::ExitCode {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let ready = Bytes::from(
        std::env::var("FLOOR_READY_BODY").unwrap_or_else(|_| DEFAULT_READY_BODY.to_owned()),
    );
    let served = actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            // Each worker its own copy: a bare server shares nothing
            // between its workers.
            let ready = Bytes::copy_from_slice(&ready);
            App::new()
                .route(
                    "/health",
                    web::get().to(|| async { json(Bytes::from_static(br#"{"status":"ok"}"#)) }),
                )
                .route(
                    "/ready",
                    web::get().to(move || {
                        let body = ready.clone();
                        async move { json(body) }
                    }),
                )
                .configure(app::routes)
        })
        .bind((host.as_str(), port))?
        .run()
        .await
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
