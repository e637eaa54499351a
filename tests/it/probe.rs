//! `readygate probe`: the container HEALTHCHECK without an HTTP client in the
//! image. It asks the gateway on HOST/PORT for /health: 0 on 200, else 1.

use std::time::{Duration, Instant};

use crate::support::{BlackHole, Gateway, HttpService, free_port};

/// Runs `readygate probe` with `env`, returning its exit code and output.
fn probe(env: &[(&str, String)]) -> (Option<i32>, String, Duration) {
    let mut builder = Gateway::builder().args(&["probe"]);
    for (key, value) in env {
        builder = builder.env(*key, value.clone());
    }
    let started = Instant::now();
    let run = builder.spawn();
    let code = run.wait_exit(Duration::from_secs(20));
    (code, run.output(), started.elapsed())
}

/// A gateway serving on `host` (SQLite in its own directory), ready.
fn serving(host: &str) -> Gateway {
    let gw = Gateway::builder().env("HOST", host).spawn();
    assert!(
        gw.wait_for_status("/health", 200, Duration::from_secs(20)),
        "{}",
        gw.output()
    );
    gw
}

#[test]
fn probe_exits_0_when_the_gateway_on_host_and_port_answers() {
    let gw = serving("127.0.0.1");
    let (code, out, _) = probe(&[("PORT", gw.port().to_string())]);
    assert_eq!(code, Some(0), "{out}");
    let url = format!("http://127.0.0.1:{}/health", gw.port());
    assert!(
        out.contains(&format!("probe: GET {url} answered 200")),
        "{out}"
    );
}

#[test]
fn probe_reaches_a_wildcard_host_on_loopback() {
    // The image's HOST=0.0.0.0: the probe must not try to connect to 0.0.0.0.
    let gw = serving("0.0.0.0");
    let (code, out, _) = probe(&[
        ("HOST", "0.0.0.0".to_owned()),
        ("PORT", gw.port().to_string()),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("GET http://127.0.0.1:"), "{out}");
}

#[test]
fn probe_exits_1_when_nothing_listens() {
    let port = free_port();
    let (code, out, _) = probe(&[("PORT", port.to_string())]);
    assert_eq!(code, Some(1), "{out}");
    let url = format!("http://127.0.0.1:{port}/health");
    assert!(
        out.contains(&format!("probe: GET {url} failed: "))
            && out.contains("unhealthy; exiting with code 1"),
        "{out}"
    );
}

#[test]
fn probe_exits_1_on_an_answer_other_than_200() {
    let service = HttpService::start(503);
    let (code, out, _) = probe(&[("PORT", service.port().to_string())]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("answered 503, not 200: unhealthy"), "{out}");
}

#[test]
fn probe_gives_up_on_a_server_that_never_answers() {
    let hole = BlackHole::start();
    let (code, out, took) = probe(&[("PORT", hole.port().to_string())]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("(time limit 2 s): unhealthy"), "{out}");
    // Its own 2 s limit, not a hang until the HEALTHCHECK's timeout.
    assert!(took >= Duration::from_millis(1500), "{took:?}: {out}");
    assert!(took < Duration::from_secs(10), "{took:?}: {out}");
}
