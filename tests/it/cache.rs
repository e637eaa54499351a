//! Issue "Redis cache layer": the cache is the same retrying actor as the
//! database, attempted concurrently, with one aggregated error.

use std::time::Duration;

use crate::startup::{PortWatch, assert_default_schedule, lines_with, refused_postgres_url};
use crate::support::{BlackHole, Gateway, LoadingRedis, Postgres, Redis, free_port};

fn refused_redis_url() -> String {
    format!("redis://127.0.0.1:{}/0", free_port())
}

/// A gateway with SQLite (always ready) and the Redis cache at `redis_url`.
fn with_redis(redis_url: &str) -> crate::support::GatewayBuilder {
    Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis_url)
}

#[test]
fn unreachable_redis_logs_each_attempt_then_one_aggregated_error_and_exits_69() {
    // Arrange
    let gw = with_redis(&refused_redis_url())
        .env("REDIS_MAX_RETRIES", "4")
        .env("REDIS_RETRY_INTERVAL_MS", "150")
        .spawn();
    let watch = PortWatch::start(gw.port());

    // Act
    let code = gw.wait_exit(Duration::from_secs(20));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert!(!watch.opened());
    let attempts = lines_with(&gw, "Redis connection failed");
    assert_eq!(attempts.len(), 4, "{}", gw.output());
    assert!(
        attempts[0].contains("WARN  Redis connection failed (attempt 1/4), retrying in 0.15 s: "),
        "{}",
        attempts[0]
    );
    assert!(
        attempts[3].contains("Redis connection failed (attempt 4/4): "),
        "{}",
        attempts[3]
    );
    assert!(!attempts[3].contains("retrying"));
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "exactly one ERROR line: {}", gw.output());
    assert!(
        errors[0].contains("Redis cache unavailable after 4 attempts in 0."),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("(connection refused x4)"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("exiting with code 69"), "{}", errors[0]);
}

#[test]
fn the_aggregated_error_counts_each_distinct_cause() {
    // Arrange: the first attempts time out on a silent listener, then
    // nothing listens there any more and the rest are refused.
    let hole = BlackHole::start();
    let url = format!("redis://127.0.0.1:{}/0", hole.port());
    let gw = with_redis(&url)
        .env("REDIS_MAX_RETRIES", "4")
        .env("REDIS_RETRY_INTERVAL_MS", "300")
        .env("REDIS_CONNECT_TIMEOUT_MS", "200")
        .spawn();
    assert!(
        gw.wait_for_line(
            "Redis connection failed (attempt 1/4)",
            Duration::from_secs(10)
        )
        .is_some()
    );

    // Act
    drop(hole);
    let code = gw.wait_exit(Duration::from_secs(20));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    // One attempt timed out before the listener went away, the three others
    // were refused: counted as counts, in the order first seen.
    let line = &errors[0];
    assert!(
        line.contains("after 4 attempts in ")
            && line.contains("(timed out x1, connection refused x3)"),
        "{line}"
    );
}

#[test]
fn redis_that_comes_up_late_is_waited_for() {
    // Arrange
    let mut redis = Redis::reserve();
    let gw = with_redis(&redis.url())
        .env("REDIS_MAX_RETRIES", "50")
        .env("REDIS_RETRY_INTERVAL_MS", "200")
        .spawn();
    assert!(
        gw.wait_for_line(
            "Redis connection failed (attempt 2/50)",
            Duration::from_secs(10)
        )
        .is_some(),
        "{}",
        gw.output()
    );
    assert!(!gw.port_is_open());

    // Act
    redis.start_server();

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["dependencies"]["cache"]["backend"], "redis");
    assert_eq!(body["dependencies"]["cache"]["state"], "up");
    assert!(lines_with(&gw, "INFO  Ready: ")[0].contains("cache (redis)"));
}

#[test]
fn a_redis_that_is_still_loading_is_not_ready_and_is_retried() {
    // Arrange
    let loading = LoadingRedis::start();
    let gw = with_redis(&loading.url())
        .env("REDIS_MAX_RETRIES", "3")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(20));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let attempts = lines_with(&gw, "Redis connection failed");
    assert_eq!(
        attempts.len(),
        3,
        "LOADING must be retried: {}",
        gw.output()
    );
    assert!(attempts[0].contains("LOADING"), "{}", attempts[0]);
    assert!(loading.connections() >= 3, "one connection per attempt");
    assert!(
        lines_with(&gw, "ERROR")[0].contains("LOADING x3"),
        "{}",
        gw.output()
    );
}

#[test]
fn database_and_redis_are_attempted_concurrently() {
    // Arrange: both down, 5 attempts x 400 ms each: 1.6 s if concurrent,
    // 3.2 s if one after the other.
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "5")
        .env("DB_RETRY_INTERVAL_MS", "400")
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", refused_redis_url())
        .env("REDIS_MAX_RETRIES", "5")
        .env("REDIS_RETRY_INTERVAL_MS", "400")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(20));
    let elapsed = gw.started_at().elapsed();

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert!(elapsed >= Duration::from_millis(1600), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(2900),
        "sequential, not concurrent: {elapsed:?}"
    );
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(errors[0].contains("database"), "{}", errors[0]);
    assert!(errors[0].contains("Redis cache"), "{}", errors[0]);
}

#[test]
fn when_the_database_gives_up_the_cache_attempts_stop_too() {
    // Arrange: the database gives up after 2 quick attempts while Redis
    // would go on for a minute.
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "2")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", refused_redis_url())
        .env("REDIS_MAX_RETRIES", "600")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert!(gw.started_at().elapsed() < Duration::from_secs(5));
    let error = &lines_with(&gw, "ERROR")[0];
    assert!(
        error.contains("database unavailable after 2 attempts"),
        "{error}"
    );
    assert!(error.contains("Redis cache not ready either"), "{error}");
}

#[test]
fn memory_cache_never_touches_redis() {
    // Arrange: a listener where REDIS_URL points, and settings that would be
    // invalid for Redis.
    let hole = BlackHole::start();
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "memory")
        .env("REDIS_URL", format!("redis://127.0.0.1:{}/0", hole.port()))
        .env("REDIS_MAX_RETRIES", "not-a-number")
        .spawn();

    // Act
    let ready = gw.wait_for_status("/ready", 200, Duration::from_secs(10));

    // Assert
    assert!(ready, "{}", gw.output());
    assert_eq!(hole.connections(), 0);
    assert!(lines_with(&gw, "Redis").is_empty(), "{}", gw.output());
}

#[test]
fn redis_defaults_are_3_attempts_2_s_apart() {
    // Arrange
    let gw = with_redis(&refused_redis_url()).spawn();

    // Act + Assert
    assert_default_schedule(&gw, "Redis");
}

#[test]
fn both_real_dependencies_ready_serve_the_connected_cache() {
    // Arrange
    let pg = Postgres::start();
    let redis = Redis::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .spawn();

    // Act
    let ready = gw.wait_for_status("/ready", 200, Duration::from_secs(10));

    // Assert
    assert!(ready, "{}", gw.output());
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["dependencies"]["database"]["state"], "up");
    assert_eq!(body["dependencies"]["cache"]["state"], "up");
}
