//! Issue "Any number of named dependencies": `WAIT_FOR`'s TCP and HTTP
//! waits, an application's own dependency (the `upstream` example), and
//! optional dependencies (`CACHE_REQUIRED=false`, `WAIT_FOR_OPTIONAL`),
//! against real servers: PostgreSQL, Redis, an HTTP service and a TCP port
//! that the tests start, stop and start again.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::embedding::app;
use crate::startup::{PortWatch, lines_with, refused_postgres_url};
use crate::support::{
    Gateway, HttpService, InProcess, Postgres, Redis, StderrCapture, free_port, inprocess,
    wait_until,
};

#[allow(dead_code)]
#[path = "../../examples/upstream.rs"]
mod upstream;

const SECOND: Duration = Duration::from_secs(1);

fn ready_json(gw: &Gateway) -> serde_json::Value {
    let (_, body) = gw.get("/ready").unwrap();
    serde_json::from_str(&body).unwrap()
}

/// `/ready`'s entry for `name`.
fn entry(ready: &serde_json::Value, name: &str) -> serde_json::Value {
    ready["dependencies"][name].clone()
}

// ------------------------------------------------------------ WAIT_FOR

#[test]
fn three_dependencies_serve_only_when_all_are_up_and_each_is_checked_at_runtime() {
    // Arrange: PostgreSQL and Redis up, the HTTP service still starting
    // (503).
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut auth = HttpService::start(503);
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("WAIT_FOR", format!("auth={}", auth.url("/health")))
        .env("WAIT_FOR_MAX_RETRIES", "1000")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    let watch = PortWatch::start(gw.port());
    let third = gw.wait_for_line("auth connection failed (attempt 3/1000)", 10 * SECOND);
    assert!(third.is_some(), "{}", gw.output());
    assert!(
        third
            .unwrap()
            .contains("retrying in 0.1 s: HTTP 503, expected 2xx"),
        "{}",
        gw.output()
    );
    assert!(!watch.opened(), "served while auth answered 503");

    // Act: the service is up.
    auth.set_status(200);

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, 10 * SECOND),
        "{}",
        gw.output()
    );
    let starting = lines_with(&gw, "Starting:");
    assert!(
        starting[0].contains(&format!(
            "Starting: waiting for database, cache and auth (database {}, cache {}, auth {})",
            pg.url(),
            redis.url(),
            auth.url("/health")
        )),
        "{}",
        starting[0]
    );
    let ready = lines_with(&gw, "Ready:");
    assert!(
        ready[0].contains("Ready: auth (http), cache (redis), database (postgres) up after"),
        "{}",
        ready[0]
    );
    let json = ready_json(&gw);
    for name in ["database", "cache", "auth"] {
        assert_eq!(entry(&json, name)["state"], "up", "{json}");
        assert!(entry(&json, name).get("required").is_none(), "{json}");
    }
    assert_eq!(entry(&json, "auth")["backend"], "http");
    let (_, metrics) = gw.get("/metrics").unwrap();
    for name in ["database", "cache", "auth"] {
        assert!(
            metrics.contains(&format!(
                "readygate_dependency_up{{dependency=\"{name}\"}} 1"
            )),
            "{metrics}"
        );
    }

    // Act: the service stops while the gateway serves...
    auth.stop();

    // Assert: /ready turns 503 and names it...
    assert!(
        gw.wait_for_status("/ready", 503, 5 * SECOND),
        "{}",
        gw.output()
    );
    let json = ready_json(&gw);
    assert_eq!(entry(&json, "auth")["state"], "down", "{json}");
    assert_eq!(entry(&json, "database")["state"], "up", "{json}");
    assert!(
        gw.wait_for_line("auth connection lost: ", SECOND).is_some(),
        "{}",
        gw.output()
    );

    // ...and back when it comes back.
    auth.start_server();
    assert!(
        gw.wait_for_status("/ready", 200, 5 * SECOND),
        "{}",
        gw.output()
    );
    assert!(
        gw.wait_for_line("auth connection restored after ", SECOND)
            .is_some(),
        "{}",
        gw.output()
    );
    let (_, metrics) = gw.get("/metrics").unwrap();
    assert!(
        metrics.contains("readygate_dependency_up{dependency=\"auth\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_tcp_wait_holds_start_up_until_its_port_opens() {
    // Arrange: nothing listens on the port yet.
    let port = free_port();
    let gw = Gateway::builder()
        .env("WAIT_FOR", format!("broker=tcp://127.0.0.1:{port}"))
        .env("WAIT_FOR_MAX_RETRIES", "1000")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();
    let second = gw.wait_for_line("broker connection failed (attempt 2/1000)", 10 * SECOND);
    assert!(
        second
            .as_deref()
            .is_some_and(|l| l.contains("Connection refused")),
        "{}",
        gw.output()
    );
    assert!(!gw.port_is_open());

    // Act
    let opened = Instant::now();
    let _broker = TcpListener::bind(("127.0.0.1", port)).unwrap();

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, 10 * SECOND),
        "{}",
        gw.output()
    );
    assert!(opened.elapsed() < 5 * SECOND, "{:?}", opened.elapsed());
    let ready = lines_with(&gw, "Ready:");
    assert!(
        ready[0].contains("Ready: broker (tcp), cache (memory), database (sqlite) up after"),
        "{}",
        ready[0]
    );
    assert_eq!(entry(&ready_json(&gw), "broker")["backend"], "tcp");
}

#[test]
fn an_unresolvable_name_is_retried_then_named_in_the_give_up_line() {
    // Arrange
    let gw = Gateway::builder()
        .env("WAIT_FOR", "search=http://no-such-host.invalid:9200/health")
        .env("WAIT_FOR_MAX_RETRIES", "2")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(10 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert_eq!(lines_with(&gw, "search connection failed").len(), 2);
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(
        errors[0].contains("Start-up failed: search (http) unavailable after 2 attempts in "),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("(name resolution failed x2); exiting with code 69"),
        "{}",
        errors[0]
    );
}

#[test]
fn bad_wait_for_entries_exit_78_naming_each_without_its_password() {
    // Arrange
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            "auth=ftp://svc:hunter2@auth:21,=tcp://a:1,broker=tcp://rabbit,cache=tcp://b:1",
        )
        .spawn();

    // Act
    let code = gw.wait_exit(5 * SECOND);

    // Assert
    assert_eq!(code, Some(78), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    for (entry, why) in [
        (
            "auth=ftp://svc:***@auth:21",
            "has an entry with the scheme \"ftp\"",
        ),
        ("=tcp://a:1", "has an entry named \"\""),
        ("broker=tcp://rabbit", "has a tcp:// entry without a port"),
        (
            "cache=tcp://b:1",
            "has an entry named \"cache\", a name readygate keeps for its own dependency",
        ),
    ] {
        assert!(
            errors[0].contains(&format!("WAIT_FOR=\"{entry}\" {why}")),
            "{entry}: {}",
            errors[0]
        );
    }
    assert!(!gw.output().contains("hunter2"), "{}", gw.output());
    assert!(lines_with(&gw, "connection failed").is_empty());
}

#[test]
fn give_up_with_several_dependencies_names_each_in_one_error_line() {
    // Arrange: nothing answers anywhere; the optional one does not hold
    // start-up, so it is not named.
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "2")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", format!("redis://127.0.0.1:{}/0", free_port()))
        .env("REDIS_MAX_RETRIES", "2")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .env(
            "WAIT_FOR",
            format!(
                "auth=http://127.0.0.1:{}/health,broker=tcp://127.0.0.1:{},sink=tcp://127.0.0.1:{}",
                free_port(),
                free_port(),
                free_port()
            ),
        )
        .env("WAIT_FOR_OPTIONAL", "sink")
        .env("WAIT_FOR_MAX_RETRIES", "2")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(10 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    let line = &errors[0];
    let mut at = 0;
    for what in ["database ", "Redis cache ", "auth (http) ", "broker (tcp) "] {
        let found = line[at..]
            .find(what)
            .unwrap_or_else(|| panic!("{what:?} missing, or out of order: {line}"));
        at += found + what.len();
    }
    assert!(!line.contains("sink"), "{line}");
    assert!(line.ends_with("exiting with code 69"), "{line}");
}

// ------------------------------------------------------------ optional

#[test]
fn a_required_dependency_still_holds_start_up_while_an_optional_one_is_down() {
    // Arrange: PostgreSQL reserved but not started, Redis nowhere.
    let mut pg = Postgres::reserve();
    let redis_url = format!("redis://127.0.0.1:{}/0", free_port());
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("DB_MAX_RETRIES", "1000")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", &redis_url)
        .env("CACHE_REQUIRED", "false")
        .env("REDIS_MAX_RETRIES", "2")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .spawn();
    let watch = PortWatch::start(gw.port());
    let optional = gw.wait_for_line("Redis not ready after 2 attempts", 10 * SECOND);
    assert!(
        optional.as_deref().is_some_and(|l| l.contains(
            "; it is optional: serving without it, trying again in the background in 0.1 s"
        )),
        "{}",
        gw.output()
    );
    assert!(
        gw.wait_for_line("DB connection failed (attempt 5/1000)", 10 * SECOND)
            .is_some(),
        "{}",
        gw.output()
    );
    assert!(!watch.opened(), "served without the database");

    // Act
    pg.start_server();

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, 20 * SECOND),
        "{}",
        gw.output()
    );
    assert!(
        lines_with(&gw, "Starting:")[0].contains(&format!(
            "Starting: waiting for database (database {}, cache {redis_url} (optional))",
            pg.url()
        )),
        "{}",
        gw.output()
    );
    assert!(
        lines_with(&gw, "Ready:")[0]
            .contains("Ready: cache (redis, optional, not up yet), database (postgres) up after"),
        "{}",
        gw.output()
    );
    let json = ready_json(&gw);
    assert_eq!(json["status"], "ready", "{json}");
    assert_eq!(entry(&json, "cache")["state"], "down", "{json}");
    assert_eq!(entry(&json, "cache")["required"], false, "{json}");
    assert!(
        gw.wait_for_line(
            "Redis background attempt 1 failed, retrying in 0.1 s: ",
            SECOND
        )
        .is_some(),
        "{}",
        gw.output()
    );
}

/// The example application with an optional Redis that is down at start.
#[test]
fn an_optional_redis_down_at_start_serves_and_the_cache_switches_over_when_it_comes() {
    // Arrange
    let mut redis = Redis::reserve();
    let log = StderrCapture::start();
    let gw = InProcess::spawn(
        &[
            "--cache-type=redis".into(),
            format!("--redis-url={}", redis.url()),
            "--cache-required=false".into(),
            "--redis-max-retries=2".into(),
            "--redis-retry-interval-ms=100".into(),
            "--redis-connect-timeout-ms=500".into(),
            "--health-check-interval-ms=100".into(),
        ],
        app::routes,
    );
    let agent = inprocess::agent();
    let (status, body) = inprocess::get(&agent, &gw.url("/ready"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(json["dependencies"]["cache"]["state"], "up", "{json}");
    assert_eq!(json["dependencies"]["cache"]["required"], false, "{json}");
    let (status, body) = inprocess::get(&agent, &gw.url("/app/visits"));
    assert_eq!(status, 503, "the cache is down: {body}");
    assert!(
        wait_until(5 * SECOND, Duration::from_millis(20), || {
            log.lines()
                .iter()
                .any(|l| l.contains("Redis not ready after 2 attempts"))
        }),
        "{:?}",
        log.lines()
    );

    // Act
    redis.start_server();

    // Assert: up, and the application's cache works, in Redis.
    assert!(
        wait_until(10 * SECOND, Duration::from_millis(50), || {
            gw.health.report().dependencies["cache"].state == readygate::status::State::Up
        }),
        "{:?}",
        log.lines()
    );
    let visits = || {
        let (status, body) = inprocess::get(&agent, &gw.url("/app/visits"));
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    assert!(
        wait_until(5 * SECOND, Duration::from_millis(50), || visits().0 == 200),
        "{:?}",
        visits()
    );
    let (status, body) = visits();
    assert_eq!(status, 200);
    let count = body["visits"].as_i64().unwrap();
    assert_eq!(
        redis.command(&["GET", "readygate:example:visits"]).unwrap(),
        format!("${}\r\n{count}\r\n", count.to_string().len()),
        "the count lives in Redis"
    );
    let lines = log.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Redis connection ready after ")
                && l.ends_with(", in the background")),
        "{lines:?}"
    );
}

// ------------------------------------------------------------ custom

/// The `upstream` example's probe and route, with a quick policy.
#[test]
fn an_applications_own_dependency_is_retried_reported_checked_and_reachable_from_a_route() {
    // Arrange: the upstream answers 503 to its first three health checks.
    let mut service = HttpService::start(503);
    let flip = {
        let requests = service.requests_counter();
        let status = service.status_setter();
        std::thread::spawn(move || {
            while requests() < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            status(200);
        })
    };
    let log = StderrCapture::start();
    let base = service.url("");
    let gw = InProcess::spawn_with(&["--health-check-interval-ms=100".into()], move |gateway| {
        gateway
            .dependency(
                upstream::NAME,
                upstream::Upstream::new(&base),
                readygate::DependencyOptions {
                    policy: readygate::RetryPolicy::fixed(100, Duration::from_millis(100), SECOND),
                    required: true,
                },
            )
            .routes(upstream::routes)
    });
    flip.join().unwrap();
    let agent = inprocess::agent();

    // Act
    let (status, body) = inprocess::get(&agent, &gw.url("/app/upstream"));

    // Assert: the handle reached the route, which called the upstream.
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], 200, "{json}");
    let (_, ready) = inprocess::get(&agent, &gw.url("/ready"));
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready["dependencies"]["upstream"]["backend"], "http",
        "{ready}"
    );
    assert_eq!(ready["dependencies"]["upstream"]["state"], "up", "{ready}");
    let (_, metrics) = inprocess::get(&agent, &gw.url("/metrics"));
    assert!(
        metrics.contains(
            "readygate_dependency_connect_attempts_total{dependency=\"upstream\",outcome=\"failure\"} 3"
        ),
        "{metrics}"
    );

    // Act: the upstream goes away while serving...
    service.stop();

    // Assert: checked at runtime: /ready and the route say so...
    assert!(wait_until(5 * SECOND, Duration::from_millis(20), || {
        inprocess::get(&agent, &gw.url("/ready")).0 == 503
    }));
    assert_eq!(inprocess::get(&agent, &gw.url("/app/upstream")).0, 503);

    // ...and back.
    service.start_server();
    assert!(wait_until(5 * SECOND, Duration::from_millis(20), || {
        inprocess::get(&agent, &gw.url("/ready")).0 == 200
    }));
    assert_eq!(inprocess::get(&agent, &gw.url("/app/upstream")).0, 200);
    let lines = log.stop();
    let failed: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("upstream connection failed"))
        .collect();
    assert_eq!(failed.len(), 3, "{lines:?}");
    assert!(
        failed[0]
            .contains("upstream connection failed (attempt 1/100), retrying in 0.1 s: HTTP 503"),
        "{}",
        failed[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("upstream connection lost: ")),
        "{lines:?}"
    );
}
