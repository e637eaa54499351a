//! Issue "Truthful readiness": `/ready` asks the server itself, never pool
//! arithmetic, so a frozen or black-holed database turns it 503 even while
//! the application holds every pooled connection, and a busy one keeps it
//! 200; every wait of the handed pool is bounded; the pool's figures are on
//! `/metrics`; the cause tally names DNS failures; `last_error` is `null`
//! while up; a PostgreSQL restart logs only documented lines.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use readygate::export::mysql_async::prelude::Queryable;

use crate::startup::lines_with;
use crate::support::{
    Gateway, InProcess, Mariadb, Postgres, Relay, StderrCapture, inprocess, wait_until,
};

/// Runtime checks this far apart...
pub(crate) const CHECK_MS: u64 = 200;
/// ... each bounded by this (also the bound of making a connection).
pub(crate) const TIMEOUT_MS: u64 = 500;
/// Longest wait for a pooled connection.
pub(crate) const POOL_WAIT_MS: u64 = 300;
/// Scheduling slack on a loaded 2-core machine.
pub(crate) const SLACK: Duration = Duration::from_millis(1000);

/// The application's routes: `/hold/{ms}` keeps a pooled connection busy
/// sleeping in the server (`pg_sleep`, `SLEEP`); `/query` runs `SELECT 1`.
/// Both answer 503 with the error when the pool or the query fails.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    async fn sql(deps: web::Data<readygate::Dependencies>, hold_ms: Option<u64>) -> HttpResponse {
        let result = match &deps.database {
            readygate::Database::Postgres(pool) => {
                let sql = match hold_ms {
                    Some(ms) => format!("SELECT pg_sleep({ms} / 1000.0)"),
                    None => "SELECT 1".into(),
                };
                match pool.get().await {
                    Ok(client) => client
                        .simple_query(&sql)
                        .await
                        .map(drop)
                        .map_err(|e| format!("query: {e}")),
                    Err(e) => Err(format!("pool: {e}")),
                }
            }
            readygate::Database::Mysql(pool) => {
                let sql = match hold_ms {
                    Some(ms) => format!("SELECT SLEEP({ms} / 1000.0)"),
                    None => "SELECT 1".into(),
                };
                match pool.get().await {
                    Ok(mut conn) => conn
                        .run(async |c| c.query_drop(sql).await)
                        .await
                        .map_err(|e| format!("query: {e}")),
                    Err(e) => Err(format!("pool: {e}")),
                }
            }
            _ => return HttpResponse::NotImplemented().finish(),
        };
        match result {
            Ok(()) => HttpResponse::Ok().body("done"),
            Err(e) => HttpResponse::ServiceUnavailable().body(e),
        }
    }
    cfg.route(
        "/hold/{ms}",
        web::get().to(|deps, ms: web::Path<u64>| sql(deps, Some(ms.into_inner()))),
    )
    .route("/query", web::get().to(|deps| sql(deps, None)));
}

/// An in-process gateway on `url` with a pool of `pool_size`, the short
/// check, retry and wait settings above, and [`routes`].
pub(crate) fn spawn(url: &str, pool_size: usize) -> InProcess {
    InProcess::spawn(
        &[
            format!("--database-url={url}"),
            "--cache-type=none".into(),
            format!("--db-pool-size={pool_size}"),
            format!("--db-pool-timeout-ms={POOL_WAIT_MS}"),
            format!("--health-check-interval-ms={CHECK_MS}"),
            format!("--db-connect-timeout-ms={TIMEOUT_MS}"),
            format!("--db-retry-interval-ms={CHECK_MS}"),
        ],
        routes,
    )
}

/// `GET path`: (status, body, how long it took).
pub(crate) fn timed_get(gw: &InProcess, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, body) = inprocess::get(&inprocess::agent(), &gw.url(path));
    (status, body, started.elapsed())
}

/// `GET path` on a thread of its own.
pub(crate) fn background_get(gw: &InProcess, path: &str) -> JoinHandle<(u16, String, Duration)> {
    let url = gw.url(path);
    std::thread::spawn(move || {
        let started = Instant::now();
        let (status, body) = inprocess::get(&inprocess::agent(), &url);
        (status, body, started.elapsed())
    })
}

/// `n` requests that each hold a pooled connection for `ms`; returns once
/// all `n` connections are checked out.
pub(crate) fn hold_connections(
    gw: &InProcess,
    n: i64,
    ms: u64,
) -> Vec<JoinHandle<(u16, String, Duration)>> {
    let holders = (0..n)
        .map(|_| background_get(gw, &format!("/hold/{ms}")))
        .collect();
    assert!(
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || in_use(gw) == n
        ),
        "the holders never got their connections"
    );
    holders
}

pub(crate) fn ready_status(gw: &InProcess) -> u16 {
    inprocess::get(&inprocess::agent(), &gw.url("/ready")).0
}

/// Polls `/ready` until it answers `status`; how long that took.
pub(crate) fn time_until_ready_is(
    gw: &InProcess,
    status: u16,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    wait_until(limit, Duration::from_millis(20), || {
        ready_status(gw) == status
    })
    .then(|| started.elapsed())
}

/// `/ready` answers for `span`, polled every 50 ms.
pub(crate) fn ready_answers_during(gw: &InProcess, span: Duration) -> Vec<u16> {
    let until = Instant::now() + span;
    let mut seen = Vec::new();
    while Instant::now() < until {
        seen.push(ready_status(gw));
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

/// A pool gauge from `/metrics`.
pub(crate) fn pool_gauge(gw: &InProcess, series: &str) -> i64 {
    let (_, text) = inprocess::get(&inprocess::agent(), &gw.url("/metrics"));
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
}

pub(crate) fn in_use(gw: &InProcess) -> i64 {
    pool_gauge(gw, r#"readygate_db_pool_connections{state="in_use"}"#)
}

/// The outage the two "hung server" tests share, from the moment it starts:
/// `/ready` 503 within one check interval plus one check timeout and stays
/// 503; the held connections and new requests fail within the bounds
/// instead of hanging.
pub(crate) fn assert_a_hung_server_is_down(
    gw: &InProcess,
    holders: Vec<JoinHandle<(u16, String, Duration)>>,
) {
    let hung = Instant::now();

    // /ready turns 503 within the check's bound.
    let reaction = time_until_ready_is(gw, 503, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("/ready never turned 503 for a hung server"));
    assert!(
        reaction <= Duration::from_millis(CHECK_MS + TIMEOUT_MS) + SLACK,
        "{reaction:?}"
    );

    // The queries in flight on the held connections fail once the server is
    // found down, long before their pg_sleep would have ended.
    for holder in holders {
        let (status, body, _) = holder.join().unwrap();
        assert_eq!(status, 503, "{body}");
    }
    assert!(
        hung.elapsed() <= Duration::from_millis(CHECK_MS + TIMEOUT_MS) + 2 * SLACK,
        "held queries ended {:?} after the server hung",
        hung.elapsed()
    );

    // A new request is answered within the pool's own bounds (waiting for a
    // connection, or making one against the silent server), never hangs.
    let (status, body, took) = timed_get(gw, "/query");
    assert_eq!(status, 503, "{body}");
    assert!(
        took <= Duration::from_millis(POOL_WAIT_MS.max(TIMEOUT_MS)) + SLACK,
        "{took:?}: {body}"
    );

    // ... and /ready stays 503 for as long as the server is hung.
    let seen = ready_answers_during(gw, Duration::from_millis(1500));
    assert!(seen.iter().all(|s| *s == 503), "{seen:?}");
}

#[test]
fn a_frozen_database_is_down_even_while_the_application_holds_every_connection() {
    // Arrange: both pooled connections busy for 10 s.
    let mut pg = Postgres::start();
    let gw = spawn(&pg.url(), 2);
    let holders = hold_connections(&gw, 2, 10000);
    assert_eq!(ready_status(&gw), 200, "a busy pool is not an outage");

    // Act: the server freezes.
    pg.freeze();

    // Assert
    assert_a_hung_server_is_down(&gw, holders);

    // Act: it thaws.
    pg.thaw();

    // Assert: ready again within a check interval (plus slack), and the
    // application's pool works again.
    let back = time_until_ready_is(&gw, 200, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("/ready never came back after SIGCONT"));
    assert!(back <= Duration::from_millis(CHECK_MS) + SLACK, "{back:?}");
    let (status, body, _) = timed_get(&gw, "/query");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_black_holed_database_is_down_even_while_the_application_holds_every_connection() {
    // Arrange: the gateway reaches PostgreSQL through a relay.
    let pg = Postgres::start();
    let relay = Relay::start(pg.port());
    let gw = spawn(&relay.postgres_url(), 2);
    let holders = hold_connections(&gw, 2, 10000);

    // Act: the network swallows everything, old connections and new.
    relay.blackhole();

    // Assert
    assert_a_hung_server_is_down(&gw, holders);

    // Act + Assert: the network heals.
    relay.restore();
    assert!(time_until_ready_is(&gw, 200, Duration::from_secs(5)).is_some());
    let (status, body, _) = timed_get(&gw, "/query");
    assert_eq!(status, 200, "{body}");
}

/// How long a MySQL connection holds the server in the two "hung server"
/// tests below. A statement cut by a severance still runs on the server
/// after the thaw, and its connection is back in the pool only once it
/// ends (mysql_async first reads the rest of its reply): kept short, so the
/// pool is whole again soon after the thaw.
const MYSQL_HOLD_MS: u64 = 4000;

/// After the server is back: `/ready` 200 within a check interval, and the
/// pool usable again once the held statements have ended on the server.
fn assert_a_mysql_server_is_back(gw: &InProcess, held_since: Instant) {
    let back = time_until_ready_is(gw, 200, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("/ready never came back"));
    assert!(back <= Duration::from_millis(CHECK_MS) + SLACK, "{back:?}");
    let usable = Duration::from_millis(MYSQL_HOLD_MS) + 2 * SLACK;
    assert!(
        wait_until(
            usable.saturating_sub(held_since.elapsed()),
            Duration::from_millis(50),
            || timed_get(gw, "/query").0 == 200
        ),
        "the pool was not usable again within {usable:?} of the hold"
    );
}

#[test]
fn a_frozen_mariadb_is_down_even_while_the_application_holds_every_connection() {
    // Arrange: both pooled connections busy sleeping on the server.
    let mut db = Mariadb::start();
    let gw = spawn(&db.url(), 2);
    let held_since = Instant::now();
    let holders = hold_connections(&gw, 2, MYSQL_HOLD_MS);
    assert_eq!(ready_status(&gw), 200, "a busy pool is not an outage");

    // Act: the server freezes.
    db.freeze();

    // Assert: the same bounds as for PostgreSQL.
    assert_a_hung_server_is_down(&gw, holders);

    // Act + Assert: it thaws.
    db.thaw();
    assert_a_mysql_server_is_back(&gw, held_since);
}

#[test]
fn a_black_holed_mariadb_is_down_even_while_the_application_holds_every_connection() {
    // Arrange: the gateway reaches MariaDB through a relay.
    let db = Mariadb::start();
    let relay = Relay::start(db.port());
    let url = db
        .url()
        .replace(&format!(":{}/", db.port()), &format!(":{}/", relay.port()));
    let gw = spawn(&url, 2);
    let held_since = Instant::now();
    let holders = hold_connections(&gw, 2, MYSQL_HOLD_MS);

    // Act: the network swallows everything, old connections and new.
    relay.blackhole();

    // Assert
    assert_a_hung_server_is_down(&gw, holders);

    // Act + Assert: the network heals (and the relay closes the connections
    // that lost data: their slots free at once).
    relay.restore();
    assert_a_mysql_server_is_back(&gw, held_since);
}

#[test]
fn a_saturated_pool_makes_requests_wait_at_most_the_pool_timeout_and_stays_ready() {
    let pg = Postgres::start();
    saturated_pool(&pg.url(), "Timeout occurred while waiting for a slot");
}

#[test]
fn a_saturated_mysql_pool_makes_requests_wait_at_most_the_pool_timeout_and_stays_ready() {
    let db = Mariadb::start();
    saturated_pool(
        &db.url(),
        "pool: timed out after 0.3 s waiting for a free connection",
    );
}

/// With the only pooled connection of a gateway on `url` busy for 2 s, a
/// request gets the pool's timeout error (`error`) after the pool wait, and
/// `/ready` stays 200.
fn saturated_pool(url: &str, error: &str) {
    // Arrange
    let gw = spawn(url, 1);
    let holder = hold_connections(&gw, 1, 2000);

    // Act
    let (status, body, waited) = timed_get(&gw, "/query");
    let seen = ready_answers_during(&gw, Duration::from_millis(1000));

    // Assert: the request waited for the pool's bound, then got an error it
    // can turn into 503; /ready stayed 200 (the server answers its checks).
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(error), "{body}");
    assert!(waited >= Duration::from_millis(POOL_WAIT_MS), "{waited:?}");
    assert!(
        waited <= Duration::from_millis(POOL_WAIT_MS) + SLACK,
        "{waited:?}"
    );
    assert!(
        seen.iter().all(|s| *s == 200),
        "a busy pool was reported down: {seen:?}"
    );
    for holder in holder {
        assert_eq!(holder.join().unwrap().0, 200);
    }
}

#[test]
fn pool_figures_follow_connections_taken_and_released() {
    let pg = Postgres::start();
    pool_figures(&pg.url());
}

#[test]
fn mysql_pool_figures_follow_connections_taken_and_released() {
    let db = Mariadb::start();
    pool_figures(&db.url());
}

/// The pool gauges of a gateway on `url` with a pool of 2, through a
/// saturation and back.
fn pool_figures(url: &str) {
    // Arrange
    let gw = spawn(url, 2);
    assert_eq!(pool_gauge(&gw, "readygate_db_pool_max_connections"), 2);
    assert_eq!(in_use(&gw), 0);

    // Act: two requests hold both connections, a third waits for one.
    let holders = hold_connections(&gw, 2, 1500);
    let waiter = background_get(&gw, "/query");

    // Assert
    assert!(
        wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
            pool_gauge(&gw, "readygate_db_pool_waiting") == 1
        }),
        "the waiting request never showed"
    );
    assert_eq!(
        pool_gauge(&gw, r#"readygate_db_pool_connections{state="idle"}"#),
        0
    );

    // Act: all finish.
    for holder in holders {
        assert_eq!(holder.join().unwrap().0, 200);
    }
    let _ = waiter.join().unwrap();

    // Assert: both connections are kept in the pool (mysql_async takes
    // them back on a task of its own: a moment later), nobody waits.
    assert_eq!(in_use(&gw), 0);
    assert!(
        wait_until(Duration::from_secs(1), Duration::from_millis(10), || {
            pool_gauge(&gw, r#"readygate_db_pool_connections{state="idle"}"#) == 2
        }),
        "the pool did not keep its connections"
    );
    assert_eq!(pool_gauge(&gw, "readygate_db_pool_waiting"), 0);
}

#[test]
fn name_resolution_failures_are_named_in_the_tally() {
    for (label, env) in [
        (
            "database",
            vec![(
                "DATABASE_URL",
                "postgres://app@no-such-host.invalid:5432/app",
            )],
        ),
        (
            "Redis cache",
            vec![
                ("CACHE_TYPE", "redis"),
                ("REDIS_URL", "redis://no-such-host.invalid:6379/0"),
            ],
        ),
    ] {
        // Arrange
        let mut builder = Gateway::builder()
            .env("DB_MAX_RETRIES", "2")
            .env("DB_RETRY_INTERVAL_MS", "100")
            .env("REDIS_MAX_RETRIES", "2")
            .env("REDIS_RETRY_INTERVAL_MS", "100");
        for (k, v) in env {
            builder = builder.env(k, v);
        }
        let gw = builder.spawn();

        // Act
        let code = gw.wait_exit(Duration::from_secs(10));

        // Assert
        assert_eq!(code, Some(69), "{}", gw.output());
        let error = lines_with(&gw, "Start-up failed");
        assert_eq!(error.len(), 1, "{}", gw.output());
        assert!(
            error[0].contains(&format!("{label} unavailable after 2 attempts in "))
                && error[0].contains("(name resolution failed x2)"),
            "{}",
            error[0]
        );
    }
}

/// The start of every line readygate may log at the default level while a
/// database restarts under load, as `docs/logs-and-endpoints.md` ("Log
/// lines") lists them.
const DOCUMENTED: &[&str] = &[
    "Starting: waiting for ",
    "Ready: ",
    "DB connection lost: ",
    "DB reconnection attempt ",
    "DB connection restored after ",
];

#[test]
fn a_postgres_restart_under_load_logs_only_documented_lines() {
    // Arrange: an application that keeps its pool busy.
    let mut pg = Postgres::start();
    let capture = StderrCapture::start();
    let gw = spawn(&pg.url(), 4);
    let load = |n: usize| {
        (0..n)
            .map(|_| background_get(&gw, "/query"))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap().0)
            .collect::<Vec<_>>()
    };
    assert!(load(8).iter().all(|s| *s == 200));

    // Act: a restart, with requests before, during and after.
    pg.stop();
    assert!(time_until_ready_is(&gw, 503, Duration::from_secs(5)).is_some());
    let during = load(8);
    pg.start_server();
    assert!(time_until_ready_is(&gw, 200, Duration::from_secs(10)).is_some());
    let after: Vec<u16> = (0..3).flat_map(|_| load(8)).collect();
    let lines = capture.stop();

    // Assert
    assert!(during.iter().all(|s| *s == 503), "{during:?}");
    assert!(
        after.iter().all(|s| *s == 200),
        "stale pooled connections: {after:?}"
    );
    let log_lines = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/logs-and-endpoints.md"
    ))
    .unwrap();
    for start in DOCUMENTED {
        assert!(
            log_lines.contains(start.trim()),
            "docs/logs-and-endpoints.md does not list {start:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("DB connection lost: ")),
        "{lines:#?}"
    );
    for line in &lines {
        // "2026-11-29T18:20:22.386Z WARN  message"
        let message = line.splitn(3, ' ').nth(2).unwrap_or("").trim_start();
        assert!(
            DOCUMENTED.iter().any(|start| message.starts_with(start)),
            "undocumented log line: {line}"
        );
    }
}
