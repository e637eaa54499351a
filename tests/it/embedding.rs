//! Library use: the example application's routes get the connected pool and
//! cache; `readygate check` reports without serving.

use std::time::Duration;

use crate::startup::{PortWatch, lines_with, refused_postgres_url};
use crate::support::{Gateway, InProcess, Mariadb, Postgres, Redis, inprocess};

#[allow(dead_code)]
#[path = "../../examples/app.rs"]
pub(crate) mod app;

/// Runs the example's routes in this process; its base URL once ready.
fn spawn_example(args: &[String]) -> String {
    InProcess::spawn(args, app::routes).base
}

fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = inprocess::get(&inprocess::agent(), &format!("{base}{path}"));
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_example_queries_postgres_and_counts_in_redis() {
    // Arrange
    let pg = Postgres::start();
    let redis = Redis::start();
    let base = spawn_example(&[
        "--database-url".into(),
        pg.url(),
        "--cache-type".into(),
        "redis".into(),
        "--redis-url".into(),
        redis.url(),
    ]);

    // Act
    let (status, time) = get(&base, "/app/db-time");
    let first = get(&base, "/app/visits").1["visits"].as_i64();
    let second = get(&base, "/app/visits").1["visits"].as_i64();

    // Assert
    assert_eq!(status, 200, "{time}");
    assert!(
        time["now"].as_str().is_some_and(|t| t.starts_with("20")),
        "{time}"
    );
    assert_eq!((first, second), (Some(1), Some(2)));
    assert_eq!(
        redis.command(&["GET", "readygate:example:visits"]).unwrap(),
        "$1\r\n2\r\n",
        "the count lives in Redis"
    );
    assert_eq!(
        get(&base, "/health").0,
        200,
        "the gateway's own routes stay"
    );
}

#[test]
fn the_example_queries_mariadb() {
    // Arrange
    let db = Mariadb::start();
    let base = spawn_example(&[
        "--database-url".into(),
        db.url(),
        "--cache-type".into(),
        "memory".into(),
    ]);

    // Act
    let (status, time) = get(&base, "/app/db-time");

    // Assert: MariaDB's clock, `NOW(6)` as text.
    assert_eq!(status, 200, "{time}");
    let now = time["now"].as_str().unwrap_or_default();
    assert!(now.starts_with("20") && now.len() == 26, "{time}");
    assert_eq!(db.sql("SELECT 1"), "1");
}

#[test]
fn the_example_works_on_the_sqlite_and_memory_defaults() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let base = spawn_example(&[
        "--database-url".into(),
        format!("sqlite://{}/example.db", dir.path().display()),
        "--cache-type".into(),
        "memory".into(),
    ]);

    // Act
    let (status, time) = get(&base, "/app/db-time");
    let visits: Vec<_> = (0..3)
        .map(|_| get(&base, "/app/visits").1["visits"].as_i64())
        .collect();
    let hello = inprocess::get(&inprocess::agent(), &format!("{base}/app/hello"));

    // Assert
    assert_eq!(status, 200, "{time}");
    assert!(time["now"].is_string(), "{time}");
    assert_eq!(visits, [Some(1), Some(2), Some(3)]);
    assert_eq!(hello, (200, "Hello from the application\n".to_owned()));
}

#[test]
fn check_exits_0_when_ready_and_never_serves() {
    // Arrange
    let pg = Postgres::start();
    let redis = Redis::start();
    let gw = Gateway::builder()
        .args(&["check"])
        .env("DATABASE_URL", pg.url())
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .spawn();
    let watch = PortWatch::start(gw.port());

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(0), "{}", gw.output());
    assert_eq!(
        lines_with(&gw, "Check passed: ").len(),
        1,
        "{}",
        gw.output()
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(!watch.opened(), "check must not serve HTTP");
}

#[test]
fn check_uses_the_retry_settings_and_exits_69_when_not_ready() {
    // Arrange
    let gw = Gateway::builder()
        .args(&["check"])
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "2")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert_eq!(
        lines_with(&gw, "DB connection failed").len(),
        2,
        "{}",
        gw.output()
    );
    assert!(lines_with(&gw, "DB connection failed (attempt 1/2), retrying in 0.1 s").len() == 1);
}

#[test]
fn check_waits_for_a_late_database() {
    let mut pg = Postgres::reserve();
    let gw = Gateway::builder()
        .args(&["check"])
        .env("DATABASE_URL", pg.url())
        .env("DB_MAX_RETRIES", "50")
        .env("DB_RETRY_INTERVAL_MS", "200")
        .spawn();
    assert!(
        gw.wait_for_line("(attempt 2/50)", Duration::from_secs(10))
            .is_some()
    );
    pg.start_server();
    gw.expect_exit(0, Duration::from_secs(10));
}

#[test]
fn the_example_answers_a_database_error_with_its_whole_cause_chain() {
    // Arrange: serving; then the database refuses new connections and the
    // pooled ones end.
    let pg = Postgres::start();
    let base = spawn_example(&[
        "--database-url".into(),
        pg.url(),
        "--cache-type".into(),
        "none".into(),
    ]);
    assert_eq!(get(&base, "/app/db-time").0, 200);
    let elsewhere = |sql: &str| {
        crate::support::postgres::psql_tcp_at(pg.port(), ("postgres", None), "template1", sql)
            .unwrap()
    };
    elsewhere("ALTER DATABASE postgres ALLOW_CONNECTIONS false");
    elsewhere(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = 'postgres' AND pid <> pg_backend_pid()",
    );

    // Act: a pooled connection the server ended a moment ago, whose end
    // the client has not read yet, fails with its own words ("connection
    // closed", or the server's "terminating connection due to
    // administrator command (SQLSTATE 57P01)") and leaves the pool; a
    // request that gets a new connection meets the refusal.
    let mut reply = get(&base, "/app/db-time");
    // At most every connection of the pool (DB_POOL_SIZE, 10 by default).
    for _ in 0..10 {
        let text = reply.1.to_string();
        if !text.contains("connection closed") && !text.contains("SQLSTATE 57P01") {
            break;
        }
        reply = get(&base, "/app/db-time");
    }
    let (status, body) = reply;

    // Assert: the server's own words and code, not tokio-postgres' "db
    // error" alone.
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not currently accepting connections (SQLSTATE 55000)"),
        "{body}"
    );
    elsewhere("ALTER DATABASE postgres ALLOW_CONNECTIONS true");
}
