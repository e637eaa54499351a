//! Passwords never appear, layer by layer: each of the two mechanisms of
//! `src/redact.rs` is needed by a test here, whatever the other does.
//!
//! * URL redaction (`redact_url`): a password too short to be scrubbed from
//!   free text (under 4 characters) is still hidden where a URL is shown.
//! * Scrubbing (`scrub`, applied by the logger and on `/ready`): a password
//!   echoed by a server or written by the application itself is hidden,
//!   although no URL is involved.

use std::time::Duration;

use crate::startup::lines_with;
use crate::support::{
    Gateway, InProcess, Mariadb, Postgres, Redis, Relay, StartingUpPostgres, StderrCapture,
    free_port, inprocess, wait_until,
};

const SECRET: &str = "s3cr3t-Echo-42";

fn assert_hidden(text: &str, secret: &str, what: &str) {
    assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
}

#[test]
fn a_short_password_is_hidden_wherever_a_url_is_shown() {
    // Too short to scrub from free text: only URL redaction hides it.
    const SHORT: &str = "Zq9";
    let refused = free_port();
    for (env, code) in [
        (
            vec![(
                "DATABASE_URL",
                format!("postgres://app:{SHORT}@127.0.0.1:{refused}/app"),
            )],
            69,
        ),
        (
            vec![
                ("CACHE_TYPE", "redis".to_owned()),
                (
                    "REDIS_URL",
                    format!("redis://app:{SHORT}@127.0.0.1:{refused}/0"),
                ),
            ],
            69,
        ),
        (
            vec![(
                "DATABASE_URL",
                format!("mysql://app:{SHORT}@127.0.0.1:{refused}/app"),
            )],
            69,
        ),
        (
            vec![(
                "DATABASE_URL",
                format!("mariadb://app:{SHORT}@db/app?ssl-mode=PREFERRED"),
            )],
            78,
        ),
    ] {
        // Arrange
        let mut builder = Gateway::builder()
            .env("DB_MAX_RETRIES", "1")
            .env("REDIS_MAX_RETRIES", "1");
        for (k, v) in &env {
            builder = builder.env(*k, v.clone());
        }

        // Act
        let gw = builder.spawn();

        // Assert
        assert_eq!(
            gw.wait_exit(Duration::from_secs(10)),
            Some(code),
            "{}",
            gw.output()
        );
        assert!(
            gw.output().contains("app:***@"),
            "no redacted URL: {}",
            gw.output()
        );
        assert_hidden(&gw.output(), &format!(":{SHORT}@"), "the log");
    }
}

#[test]
fn a_password_echoed_by_the_server_is_scrubbed_from_the_log_and_ready() {
    // Arrange: the gateway reaches a real PostgreSQL (which needs the
    // password) through a relay...
    let mut pg = Postgres::start();
    pg.require_password("app", SECRET);
    let relay = Relay::start(pg.port());
    let echo = StartingUpPostgres::with_error(
        "57P03",
        &format!("the database system is starting up (you sent {SECRET})"),
    );
    let gw = Gateway::builder()
        .env(
            "DATABASE_URL",
            format!(
                "postgres://app:{SECRET}@127.0.0.1:{}/postgres",
                relay.port()
            ),
        )
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("LOG_LEVEL", "trace")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );

    // Act: ... which now leads to a server whose errors quote the password.
    relay.set_target(echo.port());
    assert!(gw.wait_for_status("/ready", 503, Duration::from_secs(5)));
    assert!(
        gw.wait_for_line("DB reconnection attempt 2 failed", Duration::from_secs(5))
            .is_some(),
        "{}",
        gw.output()
    );

    // Assert: the echo is there, the password is not.
    let (_, ready) = gw.get("/ready").unwrap();
    assert!(ready.contains("(you sent ***)"), "{ready}");
    assert_hidden(&ready, SECRET, "/ready");
    assert!(
        !lines_with(&gw, "(you sent ***)").is_empty(),
        "{}",
        gw.output()
    );
    assert_hidden(&gw.output(), SECRET, "the log");
}

#[test]
fn a_mysql_password_is_hidden_from_the_log_and_ready_when_refused_and_when_accepted() {
    // Arrange: a MariaDB account whose password is SECRET, first given a
    // wrong one (refused), then the right one.
    let db = Mariadb::start();
    db.sql(&format!(
        "CREATE USER 'secretive'@'%' IDENTIFIED BY '{SECRET}'; \
         GRANT ALL ON app.* TO 'secretive'@'%'"
    ));
    let refused = Gateway::builder()
        .env(
            "DATABASE_URL",
            db.url_for("mysql", "secretive", &format!("{SECRET}x"), "app"),
        )
        .spawn();
    let accepted = Gateway::builder()
        .env(
            "DATABASE_URL",
            db.url_for("mariadb", "secretive", SECRET, "app"),
        )
        .env("LOG_LEVEL", "trace")
        .spawn();

    // Act
    let code = refused.wait_exit(Duration::from_secs(10));
    let ready = accepted.wait_for_status("/ready", 200, Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", refused.output());
    assert!(
        refused.output().contains("secretive:***@"),
        "{}",
        refused.output()
    );
    assert_hidden(&refused.output(), SECRET, "the log of a refused login");
    assert!(ready, "{}", accepted.output());
    let (_, body) = accepted.get("/ready").unwrap();
    assert_hidden(&body, SECRET, "/ready");
    assert!(
        accepted.output().contains("secretive:***@"),
        "{}",
        accepted.output()
    );
    assert_hidden(&accepted.output(), SECRET, "the trace log");
}

/// A Redis with a password, and an in-process gateway using it whose
/// application route logs the password itself.
fn application_logs_the_password(format: &str) -> Vec<String> {
    let redis = Redis::start_with_password(SECRET);
    let capture = StderrCapture::start();
    let gw = InProcess::spawn(
        &[
            "--database-url=sqlite://:memory:".to_owned(),
            "--cache-type=redis".to_owned(),
            format!("--redis-url=redis://:{SECRET}@127.0.0.1:{}/0", redis.port()),
            format!("--log-format={format}"),
        ],
        |cfg| {
            cfg.route(
                "/careless",
                actix_web::web::get().to(|| async {
                    log::warn!("careless application: the password is {SECRET}");
                    "logged"
                }),
            );
        },
    );
    assert_eq!(
        inprocess::get(&inprocess::agent(), &gw.url("/careless")),
        (200, "logged".to_owned())
    );
    let lines = || capture.lines();
    assert!(wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || lines().iter().any(|l| l.contains("careless application"))
    ));
    capture.stop()
}

#[test]
fn the_text_log_scrubs_a_password_the_application_wrote() {
    let lines = application_logs_the_password("text");
    let line = lines
        .iter()
        .find(|l| l.contains("careless application"))
        .unwrap();
    assert!(line.ends_with("the password is ***"), "{line}");
    assert_hidden(&lines.join("\n"), SECRET, "the text log");
}

#[test]
fn the_json_log_scrubs_a_password_the_application_wrote() {
    let lines = application_logs_the_password("json");
    let line = lines
        .iter()
        .find(|l| l.contains("careless application"))
        .unwrap();
    let object: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        object["message"],
        "careless application: the password is ***"
    );
    assert_hidden(&lines.join("\n"), SECRET, "the JSON log");
}
