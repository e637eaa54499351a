//! Bad settings: every class exits 78 before any connection attempt, names
//! the variable, never panics; several are reported together.

use std::time::Duration;

use crate::startup::{lines_with, refused_postgres_url};
use crate::support::{BlackHole, Gateway};

/// (variable, bad value, words the message must contain)
const CASES: &[(&str, &str, &str)] = &[
    ("DB_MAX_RETRIES", "abc", "is not a number"),
    ("DB_MAX_RETRIES", "-1", "is negative"),
    ("DB_MAX_RETRIES", "0", "is below 1"),
    ("DB_MAX_RETRIES", "2.5", "is not a whole number"),
    ("DB_MAX_RETRIES", "18446744073709551616", "is too large"),
    ("DB_MAX_RETRIES", "", "is empty"),
    ("DB_RETRY_INTERVAL_MS", "1e3", "is not a whole number"),
    ("DB_RETRY_INTERVAL_MS", "0", "is below 1"),
    (
        "DB_RETRY_INTERVAL_MS",
        "99999999999999999999",
        "is too large",
    ),
    ("DB_CONNECT_TIMEOUT_MS", "5s", "is not a number"),
    ("DB_CONNECT_TIMEOUT_MS", "-5000", "is negative"),
    ("DB_POOL_SIZE", "0", "is below 1"),
    ("DB_POOL_SIZE", "ten", "is not a number"),
    ("DATABASE_URL", "mssql://u@db/app", "unsupported scheme"),
    (
        "DATABASE_URL",
        "mysql://u@db/app?ssl-mode=PREFERRED",
        "cannot fall back to plain",
    ),
    ("DATABASE_URL", "localhost:5432", "is not a URL"),
    (
        "DATABASE_URL",
        "postgres://db:99999/app",
        "is not a valid URL",
    ),
    ("DATABASE_URL", "postgres:///app", "names no host"),
    ("DATABASE_URL", "sqlite://", "names no file"),
    ("DATABASE_URL", "", "is empty"),
    (
        "CACHE_TYPE",
        "memcached",
        "is not one of the accepted values",
    ),
    ("REDIS_URL", "http://cache", "unsupported scheme"),
    ("REDIS_TLS_CA_CERT", "/no/such/ca.pem", "cannot be read"),
    (
        "REDIS_TLS_INSECURE",
        "true",
        "is set, but REDIS_URL is redis:// (no TLS)",
    ),
    (
        "REDIS_TLS_INSECURE",
        "maybe",
        "is not one of the accepted values",
    ),
    // Every case here also sets the URLs themselves (see below).
    (
        "REDIS_URL_FILE",
        "/run/secrets/redis",
        "is set together with REDIS_URL",
    ),
    (
        "DATABASE_URL_FILE",
        "/run/secrets/db",
        "is set together with DATABASE_URL",
    ),
    (
        "DATABASE_URL",
        "postgres://db/app?sslmode=verify",
        "has sslmode=\"verify\"",
    ),
    (
        "DATABASE_URL",
        "postgres://db/app?sslmode=verify-full",
        "without sslrootcert",
    ),
    (
        "DATABASE_URL",
        "postgres://db/app?sslrootcert=/no/such/ca.pem",
        "cannot be read",
    ),
    (
        "DATABASE_URL",
        "postgres://db/app?sslcert=/etc/client.pem",
        "only one of sslcert and sslkey",
    ),
    ("REDIS_URL", "http://cache", "unsupported scheme"),
    ("REDIS_URL", "redis://cache:70000", "is not a valid URL"),
    ("REDIS_URL", "redis://cache/db1", "is not a number"),
    ("REDIS_MAX_RETRIES", "0", "is below 1"),
    ("REDIS_RETRY_INTERVAL_MS", "-200", "is negative"),
    ("REDIS_CONNECT_TIMEOUT_MS", "0.5", "is not a whole number"),
    (
        "DB_RETRY_BACKOFF",
        "linear",
        "is not one of the accepted values",
    ),
    ("DB_RETRY_MULTIPLIER", "0.9", "is below 1"),
    ("DB_RETRY_MULTIPLIER", "1,5", "is not a decimal number"),
    ("DB_RETRY_MAX_INTERVAL_MS", "0", "is below 1"),
    ("DB_RETRY_JITTER", "1.5", "is above 1"),
    ("DB_STARTUP_TIMEOUT_MS", "86400001", "is above 86400000"),
    ("REDIS_RETRY_BACKOFF", "", "is empty"),
    (
        "REDIS_RETRY_MULTIPLIER",
        "2.0001",
        "has more than 3 decimals",
    ),
    ("REDIS_RETRY_MAX_INTERVAL_MS", "30s", "is not a number"),
    ("REDIS_RETRY_JITTER", "-0.25", "is negative"),
    ("REDIS_STARTUP_TIMEOUT_MS", "soon", "is not a number"),
    ("HEALTH_CHECK_INTERVAL_MS", "never", "is not a number"),
    ("HEALTH_CHECK_INTERVAL_MS", "86400001", "is above 86400000"),
    ("PORT", "65536", "is above 65535"),
    ("PORT", "http", "is not a number"),
    (
        "HOST",
        "not a host",
        "is neither an IP address nor a host name",
    ),
    ("LOG_LEVEL", "verbose", "is not one of the accepted values"),
    ("LOG_FORMAT", "xml", "is not one of the accepted values"),
];

#[test]
fn every_invalid_setting_exits_78_naming_it_before_any_connection() {
    // Arrange: valid URLs point at listeners that count connections.
    let db = BlackHole::start();
    let cache = BlackHole::start();
    assert!(CASES.len() >= 25);
    for (variable, value, words) in CASES {
        let gw = Gateway::builder()
            .env("DATABASE_URL", db.postgres_url())
            .env("CACHE_TYPE", "redis")
            .env("REDIS_URL", cache.redis_url())
            .env(*variable, *value)
            .spawn();

        // Act
        let code = gw.wait_exit(Duration::from_secs(10));

        // Assert
        let output = gw.output();
        assert_eq!(code, Some(78), "{variable}={value:?}: {output}");
        let errors = lines_with(&gw, "ERROR");
        assert_eq!(
            errors.len(),
            1,
            "{variable}={value:?}: one message: {output}"
        );
        assert!(
            errors[0].contains(&format!("{variable}=")),
            "{variable} not named: {output}"
        );
        assert!(
            errors[0].contains(words),
            "{variable}={value:?}: expected {words:?}: {output}"
        );
        assert!(errors[0].contains("accepted: "), "{output}");
        assert!(errors[0].contains("exiting with code 78"), "{output}");
        assert!(!output.contains("panicked"), "{output}");
        assert!(!output.contains("connection failed"), "{output}");
    }
    assert_eq!(
        db.connections() + cache.connections(),
        0,
        "a connection was opened despite bad settings"
    );
}

#[test]
fn several_bad_variables_are_reported_together() {
    // Arrange
    let gw = Gateway::builder()
        .env("DB_MAX_RETRIES", "zero")
        .env("PORT", "70000")
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", "memcached://cache")
        .env("LOG_FORMAT", "yaml")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(78));
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    for variable in ["DB_MAX_RETRIES=", "PORT=", "REDIS_URL=", "LOG_FORMAT="] {
        assert!(
            errors[0].contains(variable),
            "{variable} missing: {}",
            errors[0]
        );
    }
}

#[test]
fn surrounding_whitespace_is_ignored_and_case_does_not_matter_for_choices() {
    // " 2 " means 2 attempts.
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", " 2 ")
        .env("DB_RETRY_INTERVAL_MS", " 100\t")
        .spawn();
    gw.expect_exit(69, Duration::from_secs(10));
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(attempts.len(), 2, "{}", gw.output());
    assert!(
        attempts[0].contains("(attempt 1/2), retrying in 0.1 s"),
        "{}",
        attempts[0]
    );

    // "Memory" is the memory cache and "DEBUG" the debug level.
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "Memory")
        .env("LOG_LEVEL", "DEBUG")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["dependencies"]["cache"]["backend"], "memory", "{body}");
    assert_eq!(
        lines_with(&gw, "DEBUG DB connection ready (attempt 1/3)").len(),
        1,
        "{}",
        gw.output()
    );
}

#[test]
fn log_level_error_shows_errors_only() {
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "2")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("LOG_LEVEL", "error")
        .spawn();
    gw.expect_exit(69, Duration::from_secs(10));
    assert_eq!(gw.lines().len(), 1, "{}", gw.output());
    assert!(
        gw.lines()[0].contains(" ERROR Start-up failed: "),
        "{}",
        gw.output()
    );
}

#[test]
fn the_command_line_beats_the_environment() {
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "5")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .args(&["--db-max-retries", "2"])
        .spawn();
    gw.expect_exit(69, Duration::from_secs(10));
    assert_eq!(
        lines_with(&gw, "DB connection failed").len(),
        2,
        "{}",
        gw.output()
    );
}

#[test]
fn an_unknown_command_line_flag_exits_78() {
    let gw = Gateway::builder().args(&["--no-such-flag"]).spawn();
    gw.expect_exit(78, Duration::from_secs(10));
    assert!(gw.output().contains("--no-such-flag"), "{}", gw.output());
}

#[test]
fn a_port_in_use_exits_78_after_the_dependencies_are_ready() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let gw = Gateway::builder().env("PORT", port.to_string()).spawn();
    gw.expect_exit(78, Duration::from_secs(10));
    assert_eq!(
        lines_with(&gw, &format!("Cannot listen on 127.0.0.1:{port}")).len(),
        1,
        "{}",
        gw.output()
    );
}
