//! Issue "Reliability": timeouts, transient vs permanent errors, signals,
//! bad input, secrets, load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::startup::{lines_with, refused_postgres_url};
use crate::support::{
    BlackHole, Gateway, InProcess, Postgres, Redis, StartingUpPostgres, free_port, inprocess,
};

// ---------------------------------------------------------------- timeouts

fn silent_listener_costs_one_timeout_per_attempt(
    prefix: &str,
    url_of: fn(&BlackHole) -> String,
    extra: &[(&str, &str)],
) {
    // Arrange: 3 attempts of at most 500 ms, 100 ms apart.
    let hole = BlackHole::start();
    let mut builder = Gateway::builder();
    for (k, v) in extra {
        builder = builder.env(*k, *v);
    }
    let url_var = if prefix == "DB" {
        "DATABASE_URL"
    } else {
        "REDIS_URL"
    };
    let gw = builder
        .env(url_var, url_of(&hole))
        .env(format!("{prefix}_MAX_RETRIES"), "3")
        .env(format!("{prefix}_RETRY_INTERVAL_MS"), "100")
        .env(format!("{prefix}_CONNECT_TIMEOUT_MS"), "500")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(15));
    let elapsed = gw.started_at().elapsed();

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let label = if prefix == "DB" { "DB" } else { "Redis" };
    let attempts = lines_with(&gw, &format!("{label} connection failed"));
    assert_eq!(attempts.len(), 3, "{}", gw.output());
    for line in &attempts {
        assert!(line.contains("timed out after 0.5 s"), "{line}");
    }
    assert!(hole.connections() >= 3, "each attempt reached the listener");
    // Each attempt lasts its timeout, measured from the lines' times (not
    // from the figure they print): the first ends 500 ms after the spawn,
    // each next one 100 ms of wait + 500 ms later, by the gateway's own
    // timestamps (cut to the ms: 1 ms short at worst). The slack of 300 ms
    // catches an attempt allowed twice its timeout.
    let failed: Vec<_> = gw
        .timed_lines()
        .into_iter()
        .filter(|l| l.text.contains(&format!("{label} connection failed")))
        .collect();
    let slack = Duration::from_millis(300);
    let first = failed[0].at - gw.started_at();
    assert!(first >= Duration::from_millis(500), "{first:?}");
    assert!(first < Duration::from_millis(500) + slack, "{first:?}");
    for gap in failed.windows(2).map(|w| w[1].logged_since(&w[0])) {
        assert!(gap >= Duration::from_millis(100 + 500 - 1), "{gap:?}");
        assert!(gap < Duration::from_millis(100 + 500) + slack, "{gap:?}");
    }
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(
        lines_with(&gw, "ERROR")[0].contains("timed out x3"),
        "{}",
        gw.output()
    );
}

#[test]
fn a_silent_postgres_costs_at_most_the_connect_timeout_per_attempt() {
    silent_listener_costs_one_timeout_per_attempt("DB", BlackHole::postgres_url, &[]);
}

#[test]
fn a_silent_redis_costs_at_most_the_connect_timeout_per_attempt() {
    silent_listener_costs_one_timeout_per_attempt(
        "REDIS",
        BlackHole::redis_url,
        &[("CACHE_TYPE", "redis")],
    );
}

// ------------------------------------------------- transient and permanent

#[test]
fn postgres_starting_up_57p03_is_retried() {
    // Arrange
    let fake = StartingUpPostgres::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", fake.url())
        .env("DB_MAX_RETRIES", "3")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(attempts.len(), 3, "{}", gw.output());
    assert!(
        attempts[0].contains("the database system is starting up (SQLSTATE 57P03)"),
        "{}",
        attempts[0]
    );
    assert!(fake.startups() >= 3, "one startup message per attempt");
}

/// Asserts one attempt, a line saying it is not retried with `needle` in
/// its cause, exit 69 within 5 s, and one ERROR line naming the cause too.
pub(crate) fn assert_permanent(gw: &Gateway, label: &str, needle: &str) {
    let code = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(69), "{}", gw.output());
    assert!(
        gw.started_at().elapsed() < Duration::from_secs(5),
        "a permanent error must not wait for retries"
    );
    let attempts = lines_with(gw, &format!("{label} connection failed"));
    assert_eq!(attempts.len(), 1, "{}", gw.output());
    assert!(
        attempts[0].contains("not retrying: the error is permanent"),
        "{}",
        attempts[0]
    );
    assert!(
        attempts[0].contains(needle),
        "want {needle:?}: {}",
        attempts[0]
    );
    let error = lines_with(gw, "Start-up failed");
    assert_eq!(error.len(), 1, "{}", gw.output());
    assert!(
        error[0].contains("permanent error, not retried") && error[0].contains(needle),
        "want {needle:?}: {}",
        error[0]
    );
}

#[test]
fn a_wrong_postgres_password_is_permanent() {
    // Arrange
    let mut pg = Postgres::start();
    pg.require_password("app", "right-password-1");
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url_for("app", "wrong-password-2"))
        .env("DB_MAX_RETRIES", "10")
        .env("DB_RETRY_INTERVAL_MS", "1000")
        .spawn();

    // Act + Assert
    assert_permanent(&gw, "DB", "28P01");
    assert!(!gw.output().contains("wrong-password-2"));
}

#[test]
fn a_missing_postgres_password_is_permanent() {
    let mut pg = Postgres::start();
    pg.require_password("app", "right-password-1");
    let gw = Gateway::builder()
        .env(
            "DATABASE_URL",
            format!("postgres://app@127.0.0.1:{}/postgres", pg.port()),
        )
        .env("DB_MAX_RETRIES", "10")
        .env("DB_RETRY_INTERVAL_MS", "1000")
        .spawn();
    assert_permanent(&gw, "DB", "password");
}

#[test]
fn an_unknown_database_is_permanent() {
    let pg = Postgres::start();
    let gw = Gateway::builder()
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{}/no_such_db", pg.port()),
        )
        .env("DB_MAX_RETRIES", "10")
        .env("DB_RETRY_INTERVAL_MS", "1000")
        .spawn();
    assert_permanent(&gw, "DB", "3D000");
}

#[test]
fn a_wrong_redis_password_is_permanent() {
    let redis = Redis::start_with_password("right-password-3");
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env(
            "REDIS_URL",
            format!("redis://:wrong-password-4@127.0.0.1:{}/0", redis.port()),
        )
        .env("REDIS_MAX_RETRIES", "10")
        .env("REDIS_RETRY_INTERVAL_MS", "1000")
        .spawn();
    // The redis crate turns the server's WRONGPASS into this kind.
    assert_permanent(&gw, "Redis", "Password authentication failed");
    assert!(!gw.output().contains("wrong-password-4"));
}

#[test]
fn a_missing_redis_password_is_permanent() {
    let redis = Redis::start_with_password("right-password-3");
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("REDIS_MAX_RETRIES", "10")
        .env("REDIS_RETRY_INTERVAL_MS", "1000")
        .spawn();
    assert_permanent(&gw, "Redis", "NOAUTH");
}

#[test]
fn the_right_passwords_connect() {
    let mut pg = Postgres::start();
    pg.require_password("app", "right-password-1");
    let redis = Redis::start_with_password("right-password-3");
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url_for("app", "right-password-1"))
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url_with_password())
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
}

// ----------------------------------------------------------------- signals

#[test]
fn sigterm_during_a_connect_attempt_exits_0_within_a_second() {
    signal_during_a_connect_attempt(Signal::SIGTERM);
}

#[test]
fn sigint_during_a_connect_attempt_exits_0_within_a_second() {
    signal_during_a_connect_attempt(Signal::SIGINT);
}

fn signal_during_a_connect_attempt(signal: Signal) {
    // Arrange: an attempt that would hang for a minute.
    let hole = BlackHole::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", hole.postgres_url())
        .env("DB_CONNECT_TIMEOUT_MS", "60000")
        .spawn();
    assert!(crate::support::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || hole.connections() > 0
    ));

    // Act
    let sent = Instant::now();
    gw.signal(signal);
    let code = gw.wait_exit(Duration::from_secs(5));

    // Assert
    assert_eq!(code, Some(0), "{}", gw.output());
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        lines_with(&gw, &format!("Received {signal} during start-up, stopping")).len(),
        1,
        "{}",
        gw.output()
    );
}

#[test]
fn sigterm_while_serving_lets_in_flight_requests_finish() {
    use actix_web::web;

    // Arrange: the gateway in this process, with a route that takes 800 ms.
    let dir = tempfile::tempdir().unwrap();
    let gw = InProcess::spawn(
        &[
            format!("--database-url=sqlite://{}/gw.db", dir.path().display()),
            "--cache-type=none".to_owned(),
        ],
        |cfg| {
            cfg.route(
                "/slow",
                web::get().to(|| async {
                    actix_rt::time::sleep(Duration::from_millis(800)).await;
                    "finished"
                }),
            );
        },
    );
    let slow = {
        let url = gw.url("/slow");
        std::thread::spawn(move || inprocess::get(&inprocess::agent(), &url))
    };
    std::thread::sleep(Duration::from_millis(200));

    // Act
    let sent = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGTERM).unwrap();
    let code = gw.server.join().unwrap();

    // Assert
    assert_eq!(code, 0);
    assert_eq!(slow.join().unwrap(), (200, "finished".to_owned()));
    assert!(
        sent.elapsed() >= Duration::from_millis(400),
        "did not wait for the request"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
}

// ---------------------------------------------------------------- secrets

const SECRET: &str = "s3cr3t-P@ss/word";
const SECRET_ENCODED: &str = "s3cr3t-P%40ss%2Fword";

fn assert_no_secret(text: &str, what: &str) {
    for s in [SECRET, SECRET_ENCODED, "s3cr3t"] {
        assert!(
            !text.contains(s),
            "{what} leaks the password ({s}):\n{text}"
        );
    }
}

#[test]
fn passwords_never_appear_in_any_failure_output() {
    let mut pg = Postgres::start();
    pg.require_password("app", SECRET);
    let refused = free_port();
    // (name, settings, the one exit code the scenario has)
    type Scenario<'a> = (&'a str, Vec<(&'a str, String)>, i32);
    let scenarios: Vec<Scenario> = vec![
        (
            "wrong password",
            vec![(
                "DATABASE_URL",
                format!(
                    "postgres://app:{SECRET_ENCODED}x@127.0.0.1:{}/postgres",
                    pg.port()
                ),
            )],
            69,
        ),
        (
            "refused",
            vec![(
                "DATABASE_URL",
                format!("postgres://app:{SECRET_ENCODED}@127.0.0.1:{refused}/postgres"),
            )],
            69,
        ),
        (
            "bad port",
            vec![(
                "DATABASE_URL",
                format!("postgres://app:{SECRET_ENCODED}@127.0.0.1:99999/postgres"),
            )],
            78,
        ),
        (
            "bad scheme",
            vec![("DATABASE_URL", format!("mssql://app:{SECRET}@db/app"))],
            78,
        ),
        (
            "mysql refused",
            vec![(
                "DATABASE_URL",
                format!("mysql://app:{SECRET_ENCODED}@127.0.0.1:{refused}/app"),
            )],
            69,
        ),
        (
            "mariadb with TLS",
            vec![(
                "DATABASE_URL",
                format!("mariadb://app:{SECRET}@db/app?require_ssl=true"),
            )],
            78,
        ),
        (
            "not a url",
            vec![("DATABASE_URL", format!("host=db password={SECRET}"))],
            78,
        ),
        (
            "redis refused",
            vec![
                ("CACHE_TYPE", "redis".into()),
                (
                    "REDIS_URL",
                    format!("redis://:{SECRET_ENCODED}@127.0.0.1:{refused}/0"),
                ),
            ],
            69,
        ),
        (
            "rediss",
            vec![
                ("CACHE_TYPE", "redis".into()),
                ("REDIS_URL", format!("rediss://:{SECRET_ENCODED}@cache/0")),
            ],
            69,
        ),
        (
            "redis bad db",
            vec![
                ("CACHE_TYPE", "redis".into()),
                ("REDIS_URL", format!("redis://:{SECRET}@cache/x")),
            ],
            78,
        ),
    ];
    for format in ["text", "json"] {
        for (name, env, want) in &scenarios {
            // Arrange
            let mut builder = Gateway::builder()
                .env("LOG_FORMAT", format)
                .env("LOG_LEVEL", "trace")
                .env("DB_MAX_RETRIES", "2")
                .env("DB_RETRY_INTERVAL_MS", "100")
                .env("REDIS_MAX_RETRIES", "2")
                .env("REDIS_RETRY_INTERVAL_MS", "100");
            for (k, v) in env {
                builder = builder.env(*k, v.clone());
            }
            let gw = builder.spawn();

            // Act
            let code = gw.wait_exit(Duration::from_secs(10));

            // Assert
            assert_eq!(code, Some(*want), "{name}: {}", gw.output());
            assert!(!gw.output().is_empty());
            assert_no_secret(&gw.output(), &format!("{name} ({format})"));
        }
    }
}

#[test]
fn passwords_never_appear_on_ready_or_metrics_during_an_outage() {
    // Arrange
    let mut redis = Redis::start_with_password(SECRET);
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env(
            "REDIS_URL",
            format!("redis://:{SECRET_ENCODED}@127.0.0.1:{}/0", redis.port()),
        )
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .env("LOG_LEVEL", "trace")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );

    // Act
    redis.stop();
    assert!(gw.wait_for_status("/ready", 503, Duration::from_secs(5)));
    assert!(
        gw.wait_for_line(
            "Redis reconnection attempt 2 failed",
            Duration::from_secs(5)
        )
        .is_some()
    );

    // Assert
    assert_no_secret(&gw.get("/ready").unwrap().1, "/ready");
    assert_no_secret(&gw.get("/metrics").unwrap().1, "/metrics");
    assert_no_secret(&gw.output(), "the log");
}

// ------------------------------------------------------------------- load

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn probes_under_load_answer_200_or_503_while_a_dependency_flaps() {
    // Arrange
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .spawn();
    assert!(gw.wait_for_status("/ready", 200, Duration::from_secs(10)));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let not_ready = Arc::new(AtomicUsize::new(0));
    let base = gw.base_url();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let (stop, answers, not_ready, base) = (
                stop.clone(),
                answers.clone(),
                not_ready.clone(),
                base.clone(),
            );
            std::thread::spawn(move || {
                let agent = inprocess::agent();
                let path = if i % 2 == 0 { "/ready" } else { "/health" };
                let mut bad = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match agent.get(&format!("{base}{path}")).call() {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) if r.status() == 503 && path == "/ready" => {
                            not_ready.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => bad.push(format!("{path}: status {}", r.status())),
                        Err(e) => bad.push(format!("{path}: {e}")),
                    }
                    answers.fetch_add(1, Ordering::Relaxed);
                }
                bad
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let rss_warm = rss_kib(gw.pid());

    // Act: Redis goes away and comes back twice under the load.
    for _ in 0..2 {
        let from = gw.line_count();
        redis.stop();
        assert!(
            gw.wait_for_line_from(from, "Redis connection lost", Duration::from_secs(5))
                .is_some(),
            "this outage was never seen: {}",
            gw.output()
        );
        std::thread::sleep(Duration::from_millis(700));
        redis.start_server();
        std::thread::sleep(Duration::from_millis(1000));
    }
    stop.store(true, Ordering::Relaxed);
    let bad: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let rss_end = rss_kib(gw.pid());

    // Assert
    assert!(
        bad.is_empty(),
        "{} bad answers, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        answers.load(Ordering::Relaxed) > 500,
        "load too light: {}",
        answers.load(Ordering::Relaxed)
    );
    assert!(
        not_ready.load(Ordering::Relaxed) > 0,
        "the outage never showed on /ready"
    );
    assert!(gw.is_running());
    assert!(
        rss_end < rss_warm + 8 * 1024,
        "memory grew from {rss_warm} KiB to {rss_end} KiB"
    );
    assert!(gw.wait_for_status("/ready", 200, Duration::from_secs(5)));
}

#[test]
fn refused_database_url_helper_is_refused() {
    // The helper other tests rely on: nothing listens there.
    let url = refused_postgres_url();
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(!crate::support::port_is_open(port));
}
