//! Issue "Runtime readiness": after start-up the actors keep checking; an
//! outage turns `/ready` to 503 (never exits), recovery turns it back;
//! `/metrics` and JSON logs.

use std::time::{Duration, Instant};

use crate::startup::lines_with;
use crate::support::{Gateway, Postgres, Redis};

const CHECK_MS: u64 = 200;

fn gateway(pg: &Postgres, redis: &Redis) -> Gateway {
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("HEALTH_CHECK_INTERVAL_MS", CHECK_MS.to_string())
        .env("DB_RETRY_INTERVAL_MS", "200")
        .env("REDIS_RETRY_INTERVAL_MS", "200")
        .env("DB_CONNECT_TIMEOUT_MS", "1000")
        .env("REDIS_CONNECT_TIMEOUT_MS", "1000")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    gw
}

fn ready_body(gw: &Gateway) -> serde_json::Value {
    let (_, body) = gw.get("/ready").unwrap();
    serde_json::from_str(&body).unwrap()
}

fn metric(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    gw.metrics()
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// Stops and restarts one dependency under a running gateway.
fn outage_and_recovery(
    dependency: &str,
    label: &str,
    stop: impl FnOnce(),
    start: impl FnOnce(),
    gw: &Gateway,
) {
    let up = [("dependency", dependency)];
    assert_eq!(metric(gw, "readygate_dependency_up", &up), Some(1.0));

    // Act: the dependency goes away.
    stop();
    let stopped = Instant::now();

    // Assert: not ready within two check intervals (plus slack for the
    // loaded CI machine), alive all along.
    assert!(
        gw.wait_for_status("/ready", 503, Duration::from_secs(3)),
        "{}",
        gw.output()
    );
    let reaction = stopped.elapsed();
    assert!(
        reaction < Duration::from_millis(2 * CHECK_MS + 1500),
        "{reaction:?}"
    );
    assert_eq!(gw.get("/health").unwrap().0, 200);
    let body = ready_body(gw);
    assert_eq!(body["status"], "not_ready");
    let dep = &body["dependencies"][dependency];
    assert_eq!(dep["state"], "down", "{body}");
    assert!(dep["consecutive_failures"].as_u64().unwrap() >= 1, "{body}");
    assert!(
        dep["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(dep["since"].as_str().is_some(), "{body}");
    assert_eq!(metric(gw, "readygate_dependency_up", &up), Some(0.0));
    // Several reconnection attempts later, still alive and still 503.
    let lost = format!("{label} connection lost: ");
    assert!(
        gw.wait_for_line(
            format!("{label} reconnection attempt 2 failed"),
            Duration::from_secs(5)
        )
        .is_some(),
        "{}",
        gw.output()
    );
    assert!(gw.is_running());
    assert_eq!(
        lines_with(gw, &lost).len(),
        1,
        "lost is logged once: {}",
        gw.output()
    );
    assert_eq!(gw.get("/ready").unwrap().0, 503);

    // Act: it comes back on the same port.
    start();

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    assert!(
        gw.wait_for_line(
            format!("{label} connection restored after "),
            Duration::from_secs(2)
        )
        .is_some()
    );
    assert_eq!(metric(gw, "readygate_dependency_up", &up), Some(1.0));
    let body = ready_body(gw);
    let dep = &body["dependencies"][dependency];
    assert_eq!(dep["state"], "up", "{body}");
    assert!(
        dep["last_error"].is_null(),
        "last_error is the current outage's: {body}"
    );
    assert_eq!(dep["consecutive_failures"], 0, "{body}");
    assert!(metric(gw, "readygate_dependency_state_changes_total", &up).unwrap() >= 3.0);
    let failures = [("dependency", dependency), ("outcome", "failure")];
    assert!(metric(gw, "readygate_dependency_connect_attempts_total", &failures).unwrap() >= 2.0);
    assert!(gw.is_running());
}

#[test]
fn a_database_outage_turns_ready_to_503_and_back_without_exiting() {
    // Arrange
    let mut pg = Postgres::start();
    let redis = Redis::start();
    let gw = gateway(&pg, &redis);
    let pg = std::cell::RefCell::new(&mut pg);

    // Act + Assert
    outage_and_recovery(
        "database",
        "DB",
        || pg.borrow_mut().stop(),
        || pg.borrow_mut().start_server(),
        &gw,
    );
}

#[test]
fn a_redis_outage_turns_ready_to_503_and_back_without_exiting() {
    // Arrange
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let gw = gateway(&pg, &redis);
    let redis = std::cell::RefCell::new(&mut redis);

    // Act + Assert
    outage_and_recovery(
        "cache",
        "Redis",
        || redis.borrow_mut().stop(),
        || redis.borrow_mut().start_server(),
        &gw,
    );
}

#[test]
fn ready_probes_cost_the_dependencies_nothing() {
    // Arrange: checks far apart, so only /ready could reach Redis.
    let pg = Postgres::start();
    let redis = Redis::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("HEALTH_CHECK_INTERVAL_MS", "600000")
        .spawn();
    assert!(gw.wait_for_status("/ready", 200, Duration::from_secs(10)));
    let commands = || -> u64 {
        let info = redis.command(&["INFO", "stats"]).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = commands();

    // Act
    for _ in 0..200 {
        assert_eq!(gw.get("/ready").unwrap().0, 200);
    }

    // Assert: only our own INFO commands were processed.
    let after = commands();
    assert!(
        after - before <= 1,
        "/ready reached Redis: {before} -> {after}"
    );
}

#[test]
fn metrics_expose_every_documented_series() {
    // Arrange
    let pg = Postgres::start();
    let redis = Redis::start();
    let gw = gateway(&pg, &redis);
    assert_eq!(gw.get("/health").unwrap().0, 200);

    // Act
    let (_, text) = gw.get("/metrics").unwrap();

    // Assert: each series with its exact value (a substring "... 1" would
    // also match 10).
    let db = [("dependency", "database")];
    let cache = [("dependency", "cache")];
    let exact = [
        ("readygate_dependency_up", &db[..], 1.0),
        ("readygate_dependency_up", &cache[..], 1.0),
        (
            "readygate_dependency_connect_attempts_total",
            &[("dependency", "database"), ("outcome", "success")][..],
            1.0,
        ),
        ("readygate_dependency_state_changes_total", &cache[..], 1.0),
        (
            "readygate_http_requests_total",
            &[("path", "/health"), ("status", "200")][..],
            1.0,
        ),
    ];
    for (name, labels, want) in exact {
        assert_eq!(
            metric(&gw, name, labels),
            Some(want),
            "{name}{labels:?}:\n{text}"
        );
    }
    assert!(
        metric(
            &gw,
            "readygate_http_requests_total",
            &[("path", "/ready"), ("status", "200")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let startup = metric(&gw, "readygate_startup_duration_seconds", &[]).unwrap();
    assert!(startup > 0.0 && startup < 10.0, "{startup}");
    assert_eq!(gw.get("/nowhere").unwrap().0, 404);
    let (_, text) = gw.get("/metrics").unwrap();
    assert!(
        text.contains(r#"readygate_http_requests_total{path="unmatched",status="404"} 1"#),
        "{text}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_same_messages_as_text() {
    // Arrange: the same failing start-up in both formats.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        crate::support::free_port()
    );
    let run = |format: &str| {
        let gw = Gateway::builder()
            .env("DATABASE_URL", &url)
            .env("DB_MAX_RETRIES", "2")
            .env("DB_RETRY_INTERVAL_MS", "100")
            .env("LOG_FORMAT", format)
            .spawn();
        gw.expect_exit(69, Duration::from_secs(10));
        gw.lines()
    };

    // Act
    let text = run("text");
    let json = run("json");

    // Assert
    assert_eq!(text.len(), json.len());
    let objects: Vec<serde_json::Value> = json
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for (object, line) in objects.iter().zip(&text) {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(object[field].is_string(), "{field} missing: {object}");
        }
        let message = object["message"].as_str().unwrap();
        // The two runs take slightly different times ("in 0.11 s"): compare
        // the wording with digits masked.
        let mask = |s: &str| {
            s.split(' ')
                .map(|w| if w.parse::<f64>().is_ok() { "#" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            mask(line).ends_with(&mask(message)),
            "text and JSON differ:\n{line}\n{message}"
        );
    }
    let first = objects
        .iter()
        .find(|o| o["message"].as_str().unwrap().contains("(attempt 1/2)"))
        .unwrap();
    assert_eq!(first["level"], "WARN");
    assert_eq!(first["dependency"], "database");
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["max_attempts"], 2);
    assert_eq!(first["delay_ms"], 100);
}

#[test]
fn reconnection_waits_the_retry_interval_not_the_check_interval() {
    // Arrange: checks every 100 ms, reconnection attempts 400 ms apart.
    let mut pg = Postgres::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .env("DB_RETRY_INTERVAL_MS", "400")
        .spawn();
    assert!(gw.wait_for_status("/ready", 200, Duration::from_secs(10)));

    // Act
    pg.stop();
    assert!(
        gw.wait_for_line("DB reconnection attempt 4 failed", Duration::from_secs(10))
            .is_some(),
        "{}",
        gw.output()
    );

    // Assert: the documented wording, and the gaps from the lines' times.
    let failed: Vec<_> = gw
        .timed_lines()
        .into_iter()
        .filter(|l| l.text.contains("DB reconnection attempt "))
        .collect();
    for (n, line) in failed.iter().enumerate().take(4) {
        let want = format!(
            "WARN  DB reconnection attempt {} failed, retrying in 0.4 s: ",
            n + 1
        );
        assert!(line.text.contains(&want), "{want:?} in {}", line.text);
    }
    for pair in failed.windows(2).take(3) {
        let gap = pair[1].logged_since(&pair[0]);
        assert!(gap >= Duration::from_millis(400 - 1), "{gap:?}");
        assert!(gap < Duration::from_millis(400 + 380), "{gap:?}");
    }
}

#[test]
fn a_dependency_is_connecting_until_its_first_success() {
    use clap::Parser;

    // Arrange: the library's gateway, its state read from this thread.
    let argv = [
        "readygate".to_owned(),
        format!("--database-url={}", crate::startup::refused_postgres_url()),
        "--db-retry-interval-ms=100".to_owned(),
        "--db-max-retries=1000".to_owned(),
        format!("--port={}", crate::support::free_port()),
    ];
    let settings = readygate::config::Cli::try_parse_from(argv)
        .unwrap()
        .settings
        .validate()
        .unwrap();
    let gateway = readygate::Gateway::new(settings);
    let health = gateway.health();
    let run = std::thread::spawn(move || gateway.run());

    // Act
    let connecting =
        crate::support::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            health
                .report()
                .dependencies
                .get("database")
                .is_some_and(|d| d.consecutive_failures >= 2)
        });

    // Assert
    assert!(connecting);
    let report = health.report();
    let db = &report.dependencies["database"];
    assert_eq!(db.state, readygate::status::State::Connecting);
    assert!(
        db.last_error
            .as_deref()
            .is_some_and(|e| e.contains("Connection refused")),
        "{db:?}"
    );
    assert_eq!(report.status, "not_ready");
    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(run.join().unwrap(), 0);
}
