//! The table of transient and permanent errors (`docs/failure-behaviour.md`),
//! row by row, through the binary: a transient error is retried until the
//! attempts run out and counted by name in the give-up line; a permanent one
//! stops at the first attempt. Faults a real server cannot show on demand come from fake
//! servers speaking the real protocols (`support::faults`).

use std::time::Duration;

use crate::startup::lines_with;
use crate::support::{Gateway, LoadingRedis, Resetter, StartingUpPostgres};

/// Three attempts 100 ms apart against `url` (`DATABASE_URL`, or
/// `REDIS_URL` with the Redis cache); exits 69.
fn run(redis: bool, url: &str) -> Gateway {
    let builder = Gateway::builder()
        .env("DB_MAX_RETRIES", "3")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("REDIS_MAX_RETRIES", "3")
        .env("REDIS_RETRY_INTERVAL_MS", "100");
    let gw = if redis {
        builder
            .env("CACHE_TYPE", "redis")
            .env("REDIS_URL", url)
            .spawn()
    } else {
        builder.env("DATABASE_URL", url).spawn()
    };
    gw.expect_exit(69, Duration::from_secs(10));
    gw
}

/// Every attempt was made, and the give-up line counts them as `tally`.
fn assert_transient(gw: &Gateway, label: &str, tally: &str) {
    assert_eq!(
        lines_with(gw, &format!("{label} connection failed")).len(),
        3,
        "{}",
        gw.output()
    );
    assert!(lines_with(gw, "not retrying").is_empty(), "{}", gw.output());
    let error = lines_with(gw, "Start-up failed");
    assert_eq!(error.len(), 1, "{}", gw.output());
    assert!(
        error[0].contains("after 3 attempts in ") && error[0].contains(&format!("({tally})")),
        "want ({tally}): {}",
        error[0]
    );
}

#[test]
fn postgres_connection_exceptions_class_08_are_transient() {
    let fake = StartingUpPostgres::with_error("08006", "connection failure");
    let gw = run(false, &fake.url());
    assert_transient(&gw, "DB", "connection failure (SQLSTATE 08006) x3");
    assert_eq!(fake.startups(), 3);
}

#[test]
fn postgres_28000_invalid_authorization_is_permanent() {
    // Arrange
    let fake = StartingUpPostgres::with_error(
        "28000",
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\"",
    );

    // Act
    let gw = run(false, &fake.url());

    // Assert
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(attempts.len(), 1, "{}", gw.output());
    assert!(
        attempts[0].contains("(attempt 1/3), not retrying: the error is permanent: ")
            && attempts[0].contains("(SQLSTATE 28000)"),
        "{}",
        attempts[0]
    );
    assert_eq!(fake.startups(), 1);
}

#[test]
fn redis_masterdown_and_tryagain_are_transient() {
    for (reply, code) in [
        (
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "MASTERDOWN",
        ),
        (
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "TRYAGAIN",
        ),
    ] {
        let fake = LoadingRedis::with_error(reply);
        let gw = run(true, &fake.url());
        assert_transient(&gw, "Redis", &format!("{code} x3"));
        assert!(
            lines_with(&gw, "Redis connection failed")[0].contains(reply),
            "the cause is the server's own words: {}",
            gw.output()
        );
    }
}

#[test]
fn a_reset_connection_is_transient() {
    for (redis, label) in [(false, "DB"), (true, "Redis")] {
        let resetter = Resetter::start();
        let url = if redis {
            resetter.redis_url()
        } else {
            resetter.postgres_url()
        };
        let gw = run(redis, &url);
        assert_transient(&gw, label, "connection reset x3");
        assert!(resetter.connections() >= 3);
    }
}
