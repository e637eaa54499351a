//! `readygate_http_requests_total` is part of the gateway's interface: a
//! scripted mix of requests (the gateway's routes, an application route,
//! unknown paths, other methods, a 503) must leave exactly the exposition
//! that the first implementation (a `from_fn` middleware reading
//! `match_pattern()`) produced, captured before the request path was made
//! faster. Any change to names, labels, the route patterns or which
//! requests count fails here.

use std::time::Duration;

use crate::embedding::app;
use crate::support::{InProcess, Redis, inprocess, wait_until};

/// The request counter's block of `/metrics` after the mix below, as the
/// first implementation wrote it (samples sorted: the family's order is a
/// hash map's). Note what it counts: a request that no route served but
/// whose path matches a route's pattern (`POST /health`, `HEAD /ready`)
/// is labelled with that pattern; `/heal%74h` is `/health`; the /ready 200
/// of the start-up wait is one of the two.
const EXPECTED: &str = r#"# HELP readygate_http_requests HTTP requests served, by route and status.
# TYPE readygate_http_requests counter
readygate_http_requests_total{path="/app/db-time",status="200"} 1
readygate_http_requests_total{path="/app/visits",status="200"} 2
readygate_http_requests_total{path="/app/visits",status="503"} 1
readygate_http_requests_total{path="/health",status="200"} 5
readygate_http_requests_total{path="/health",status="404"} 1
readygate_http_requests_total{path="/metrics",status="200"} 1
readygate_http_requests_total{path="/ready",status="200"} 2
readygate_http_requests_total{path="/ready",status="404"} 1
readygate_http_requests_total{path="/ready",status="503"} 2
readygate_http_requests_total{path="unmatched",status="404"} 5
"#;

/// The `readygate_http_requests` block of an exposition, samples sorted.
fn request_counter_block(exposition: &str) -> String {
    let (mut head, mut samples) = (Vec::new(), Vec::new());
    for line in exposition.lines() {
        if line.starts_with("# HELP readygate_http_requests ")
            || line.starts_with("# TYPE readygate_http_requests ")
        {
            head.push(line);
        } else if line.starts_with("readygate_http_requests_total") {
            samples.push(line);
        }
    }
    samples.sort_unstable();
    head.into_iter()
        .chain(samples)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_scripted_request_mix_leaves_the_same_request_counters() {
    // Arrange: SQLite and Redis, checked every 100 ms so that the outage
    // below shows quickly; the one /ready 200 of the start-up wait counts.
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start();
    let gw = InProcess::spawn(
        &[
            format!("--database-url=sqlite://{}/mix.db", dir.path().display()),
            "--cache-type=redis".into(),
            format!("--redis-url={}", redis.url()),
            "--health-check-interval-ms=100".into(),
            "--redis-retry-interval-ms=100".into(),
        ],
        app::routes,
    );
    let agent = inprocess::agent();
    let get = |path: &str| inprocess::get(&agent, &gw.url(path)).0;
    let status = |reply: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        reply.map_or(0, |r| r.status().as_u16())
    };

    // Act: known routes, an application route, unknown paths and methods.
    let mut seen = Vec::new();
    for path in [
        "/health",
        "/health",
        "/health?probe=liveness",
        "/heal%74h",
        "/ready",
        "/metrics",
        "/app/visits",
        "/app/visits",
        "/app/db-time",
        "/nope",
        "/nope",
        "/health/",
        "/app/visits/extra",
        "/app",
    ] {
        seen.push((path.to_owned(), get(path)));
    }
    seen.push((
        "POST /health".into(),
        status(agent.post(gw.url("/health")).send_empty()),
    ));
    seen.push((
        "HEAD /ready".into(),
        status(agent.head(gw.url("/ready")).call()),
    ));
    // An outage: /ready answers 503, the application route fails.
    redis.stop();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            !gw.health.ready_answer().0
        }),
        "the gateway never noticed that Redis stopped"
    );
    for path in ["/ready", "/ready", "/app/visits", "/health"] {
        seen.push((path.to_owned(), get(path)));
    }
    let (status, exposition) = inprocess::get(&agent, &gw.url("/metrics"));

    // Assert
    assert_eq!(status, 200);
    assert_eq!(
        request_counter_block(&exposition),
        EXPECTED,
        "answers seen: {seen:?}\nfull exposition:\n{exposition}"
    );
}
