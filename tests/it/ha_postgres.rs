//! Issue 22 "Highly available PostgreSQL": multi-host URLs, libpq's
//! `target_session_attrs`, readiness that knows a primary from a standby,
//! failover; PgBouncer in transaction mode; the keepalive settings of every
//! PostgreSQL connection. Against real servers: a primary, streaming
//! standbys (`pg_basebackup -R`), `pg_ctl promote`, a real PgBouncer.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};

use crate::startup::lines_with;
use crate::support::{
    BlackHole, Gateway, GatewayBuilder, InProcess, PgBouncer, Postgres, free_port, inprocess,
    multi_host_url, wait_until,
};

/// Runtime checks this far apart...
const CHECK_MS: u64 = 200;
/// ... reconnection attempts this far apart ...
const RETRY_MS: u64 = 200;
/// ... each bounded by this.
const CONNECT_TIMEOUT_MS: u64 = 1000;
/// Generous upper bound of any one reaction on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(15);

/// A gateway process on `url` with the short intervals above, no cache and
/// room for many start-up attempts.
fn builder(url: &str) -> GatewayBuilder {
    Gateway::builder()
        .env("DATABASE_URL", url)
        .env("CACHE_TYPE", "none")
        .env("HEALTH_CHECK_INTERVAL_MS", CHECK_MS.to_string())
        .env("DB_RETRY_INTERVAL_MS", RETRY_MS.to_string())
        .env("DB_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS.to_string())
        .env("DB_MAX_RETRIES", "50")
}

/// [`builder`], spawned, once `/ready` answers 200.
fn ready_gateway(url: &str) -> Gateway {
    let gw = builder(url).spawn();
    assert!(
        gw.wait_for_status("/ready", 200, LIMIT),
        "never ready on {url}:\n{}",
        gw.output()
    );
    gw
}

/// `/ready`'s `database` object.
fn database(gw: &Gateway) -> serde_json::Value {
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["dependencies"]["database"].clone()
}

/// The `readygate_dependency_server_info` samples of the database: their
/// (server, role) labels and values.
fn server_info(gw: &Gateway) -> Vec<(String, String, f64)> {
    gw.metrics()
        .samples
        .iter()
        .filter(|s| {
            s.metric == "readygate_dependency_server_info"
                && s.labels.get("dependency") == Some("database")
        })
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            (
                s.labels.get("server").unwrap_or_default().to_owned(),
                s.labels.get("role").unwrap_or_default().to_owned(),
                value,
            )
        })
        .collect()
}

/// The gateway is up on `server` (`127.0.0.1:PORT`) as `role`: on `/ready`
/// and as the one server-info series of `/metrics`.
fn assert_connected_to(gw: &Gateway, server: &str, role: &str) {
    let db = database(gw);
    assert_eq!(db["state"], "up", "{db}");
    assert_eq!(db["server"], server, "{db}\n{}", gw.output());
    assert_eq!(db["role"], role, "{db}");
    assert_eq!(
        server_info(gw),
        [(server.to_owned(), role.to_owned(), 1.0)],
        "only the current server's series"
    );
}

/// A PostgreSQL URL of one host, with `target_session_attrs`.
fn url_with_attrs(port: u16, attrs: &str) -> String {
    multi_host_url(&[port], Some(attrs))
}

// ---- choosing a server at start-up -------------------------------------

#[test]
fn a_refused_first_host_is_passed_over_for_the_second() {
    // Arrange: nothing listens on the first host's port.
    let refused = free_port();
    let pg = Postgres::start();
    let url = multi_host_url(&[refused, pg.port()], None);

    // Act
    let gw = ready_gateway(&url);

    // Assert: connected to the second, within the first attempt.
    assert_connected_to(&gw, &pg.addr(), "primary");
    assert!(
        lines_with(&gw, "DB connection failed").is_empty(),
        "the hosts are tried in order within one attempt:\n{}",
        gw.output()
    );
}

#[test]
fn read_write_passes_over_a_standby_listed_first() {
    // Arrange
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let url = multi_host_url(&[standby.port(), primary.port()], Some("read-write"));

    // Act
    let gw = ready_gateway(&url);

    // Assert
    assert_connected_to(&gw, &primary.addr(), "primary");
    assert!(
        lines_with(&gw, "DB connection failed").is_empty(),
        "{}",
        gw.output()
    );
}

#[test]
fn read_only_standby_and_prefer_standby_pass_over_a_primary_listed_first() {
    // Arrange
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let hosts = [primary.port(), standby.port()];

    for attrs in ["read-only", "standby", "prefer-standby"] {
        // Act
        let gw = ready_gateway(&multi_host_url(&hosts, Some(attrs)));

        // Assert
        assert_connected_to(&gw, &standby.addr(), "standby");
    }
}

#[test]
fn a_standby_alone_is_never_ready_under_read_write() {
    // Arrange
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let gw = builder(&url_with_attrs(standby.port(), "read-write"))
        .env("DB_MAX_RETRIES", "3")
        .spawn();

    // Act
    let code = gw.wait_exit(LIMIT);

    // Assert: every attempt made (transient, not permanent), each naming
    // why the server does not do.
    assert_eq!(code, Some(69), "{}", gw.output());
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(attempts.len(), 3, "{}", gw.output());
    for (n, line) in attempts.iter().enumerate() {
        assert!(line.contains(&format!("(attempt {}/3)", n + 1)), "{line}");
        assert!(
            line.contains("server is read-only (target_session_attrs=read-write)"),
            "{line}"
        );
    }
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(
        errors[0].contains("database unavailable after 3 attempts"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("read-only x3)"), "{}", errors[0]);
    assert!(!errors[0].contains("permanent"), "{}", errors[0]);
}

#[test]
fn no_suitable_host_names_each_host_and_its_cause() {
    // Arrange: a standby, then nothing, under read-write.
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let refused = free_port();
    let url = multi_host_url(&[standby.port(), refused], Some("read-write"));
    let gw = builder(&url).env("DB_MAX_RETRIES", "3").spawn();

    // Act
    let code = gw.wait_exit(LIMIT);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let hosts = format!(
        "{} read-only, 127.0.0.1:{refused} connection refused",
        standby.addr()
    );
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(attempts.len(), 3, "{}", gw.output());
    for line in &attempts {
        assert!(
            line.contains(&format!(
                "no suitable server (target_session_attrs=read-write): {hosts}"
            )),
            "{line}"
        );
    }
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(
        errors[0].contains("database unavailable after 3 attempts"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains(&format!("({hosts} x3)")),
        "{}",
        errors[0]
    );
}

#[test]
fn a_standby_serves_when_any_server_will_do() {
    // Arrange: the standby first, then nothing, without attributes; and
    // the standby alone with target_session_attrs=any.
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let two_hosts = multi_host_url(&[standby.port(), free_port()], None);
    let any = url_with_attrs(standby.port(), "any");

    for url in [two_hosts, any] {
        // Act
        let gw = ready_gateway(&url);

        // Assert
        assert_connected_to(&gw, &standby.addr(), "standby");
    }
}

#[test]
fn a_plain_single_host_url_shows_no_server_or_role() {
    // Arrange
    let pg = Postgres::start();

    // Act
    let gw = ready_gateway(&pg.url());

    // Assert: unchanged from before multi-host support.
    let db = database(&gw);
    assert!(db.get("server").is_none(), "{db}");
    assert!(db.get("role").is_none(), "{db}");
    assert!(server_info(&gw).is_empty());
}

// ---- target_session_attrs values ---------------------------------------

/// `readygate check` on `url` with `retries` attempts: its exit code.
fn check(url: &str, retries: u32) -> (Option<i32>, Gateway) {
    let gw = builder(url)
        .args(&["check"])
        .env("DB_MAX_RETRIES", retries.to_string())
        .spawn();
    (gw.wait_exit(LIMIT), gw)
}

#[test]
fn every_target_session_attrs_value_is_accepted_by_a_server_that_suits_it() {
    // Arrange
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let cases = [
        ("any", &primary),
        ("any", &standby),
        ("read-write", &primary),
        ("primary", &primary),
        ("read-only", &standby),
        ("standby", &standby),
        ("prefer-standby", &standby),
        // No standby to prefer: the primary will do.
        ("prefer-standby", &primary),
    ];

    for (attrs, server) in cases {
        // Act
        let (code, gw) = check(&url_with_attrs(server.port(), attrs), 1);

        // Assert
        assert_eq!(
            code,
            Some(0),
            "{attrs} on port {}: {}",
            server.port(),
            gw.output()
        );
        assert_eq!(
            lines_with(&gw, "Check passed: ").len(),
            1,
            "{}",
            gw.output()
        );
    }
}

#[test]
fn every_target_session_attrs_value_refuses_a_server_that_does_not_suit_it() {
    // Arrange
    let primary = Postgres::start_primary();
    let standby = primary.start_standby();
    let cases = [
        (
            "read-write",
            &standby,
            "server is read-only (target_session_attrs=read-write)",
        ),
        (
            "read-only",
            &primary,
            "server is not read-only (target_session_attrs=read-only)",
        ),
        (
            "primary",
            &standby,
            "server is a standby (target_session_attrs=primary)",
        ),
        (
            "standby",
            &primary,
            "server is not a standby (target_session_attrs=standby)",
        ),
    ];

    for (attrs, server, cause) in cases {
        // Act
        let (code, gw) = check(&url_with_attrs(server.port(), attrs), 2);

        // Assert: not ready, both attempts made (a transient cause).
        assert_eq!(code, Some(69), "{attrs}: {}", gw.output());
        let attempts = lines_with(&gw, "DB connection failed");
        assert_eq!(attempts.len(), 2, "{attrs}: {}", gw.output());
        for line in &attempts {
            assert!(line.contains(cause), "{attrs}: {cause:?} in {line}");
        }
    }
}

#[test]
fn an_unknown_target_session_attrs_value_exits_78_naming_database_url() {
    // Arrange: a listener that counts connections.
    let hole = BlackHole::start();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?target_session_attrs=sometimes",
        hole.port()
    );
    let gw = builder(&url).spawn();

    // Act
    let code = gw.wait_exit(LIMIT);

    // Assert
    assert_eq!(code, Some(78), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(errors[0].contains("DATABASE_URL="), "{}", errors[0]);
    // Named by the reason, not only inside the URL shown.
    let reason = errors[0].replace(&url, "");
    assert!(reason.contains("target_session_attrs"), "{}", errors[0]);
    assert!(errors[0].contains("exiting with code 78"), "{}", errors[0]);
    assert_eq!(hole.connections(), 0, "no connection before validation");
}

// ---- at runtime ---------------------------------------------------------

#[test]
fn a_primary_turned_read_only_is_down_under_read_write_until_writable_again() {
    // Arrange
    let mut pg = Postgres::start();
    let gw = ready_gateway(&url_with_attrs(pg.port(), "read-write"));
    assert_connected_to(&gw, &pg.addr(), "primary");
    let from = gw.line_count();

    // Act: the server turns read-only.
    pg.set_read_only(true);
    let turned = Instant::now();

    // Assert: down, logged once with the cause, and reconnection attempts
    // keep finding it read-only.
    let lost = "DB connection lost: server is read-only (target_session_attrs=read-write)";
    assert!(
        gw.wait_for_line_from(from, lost, LIMIT).is_some(),
        "{}",
        gw.output()
    );
    assert!(gw.wait_for_status("/ready", 503, LIMIT), "{}", gw.output());
    let reaction = turned.elapsed();
    assert!(
        reaction <= Duration::from_millis(2 * CHECK_MS + CONNECT_TIMEOUT_MS) + LIMIT / 3,
        "{reaction:?}"
    );
    let db = database(&gw);
    assert_eq!(db["state"], "down", "{db}");
    assert!(
        db["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("server is read-only")),
        "{db}"
    );
    let second = gw.wait_for_line_from(from, "DB reconnection attempt 2 failed", LIMIT);
    assert!(
        second
            .as_deref()
            .is_some_and(|l| l.contains("server is read-only")),
        "{second:?}\n{}",
        gw.output()
    );
    assert_eq!(lines_with(&gw, "DB connection lost: ").len(), 1);
    assert!(gw.is_running());

    // Act: writable again.
    pg.set_read_only(false);

    // Assert
    assert!(gw.wait_for_status("/ready", 200, LIMIT), "{}", gw.output());
    let restored = gw.wait_for_line_from(from, "DB connection restored after ", LIMIT);
    let server = format!("(server {}, primary)", pg.addr());
    assert!(
        restored.as_deref().is_some_and(|l| l.contains(&server)),
        "{server} in {restored:?}"
    );
    assert_connected_to(&gw, &pg.addr(), "primary");
}

#[test]
fn a_standby_promoted_is_down_under_standby_until_another_standby_serves() {
    // Arrange: two standbys of one primary; the gateway on the first.
    let primary = Postgres::start_primary();
    let mut first = primary.start_standby();
    let second = primary.start_standby();
    let url = multi_host_url(&[first.port(), second.port()], Some("standby"));
    let gw = ready_gateway(&url);
    assert_connected_to(&gw, &first.addr(), "standby");
    let from = gw.line_count();

    // Act: the first is promoted: no longer a standby.
    first.promote();

    // Assert: lost with the cause, restored on the second.
    let lost = gw.wait_for_line_from(from, "DB connection lost: ", LIMIT);
    assert!(
        lost.as_deref()
            .is_some_and(|l| l.contains("not a standby (target_session_attrs=standby)")),
        "{lost:?}\n{}",
        gw.output()
    );
    let restored = gw.wait_for_line_from(from, "DB connection restored after ", LIMIT);
    let server = format!("(server {}, standby)", second.addr());
    assert!(
        restored.as_deref().is_some_and(|l| l.contains(&server)),
        "{server} in {restored:?}\n{}",
        gw.output()
    );
    assert!(gw.wait_for_status("/ready", 200, LIMIT));
    assert_connected_to(&gw, &second.addr(), "standby");
}

/// The application's route for the failover test: `/write` inserts a row
/// through the handed pool (only a primary takes it); 503 with the error
/// when it fails.
fn write_routes(cfg: &mut web::ServiceConfig) {
    async fn write(deps: web::Data<readygate::Dependencies>) -> HttpResponse {
        let readygate::Database::Postgres(pool) = &deps.database else {
            return HttpResponse::NotImplemented().finish();
        };
        let result = match pool.get().await {
            Ok(client) => client
                .simple_query("INSERT INTO failover_writes DEFAULT VALUES")
                .await
                .map(drop)
                .map_err(|e| format!("query: {e}")),
            Err(e) => Err(format!("pool: {e}")),
        };
        match result {
            Ok(()) => HttpResponse::Ok().body("written"),
            Err(e) => HttpResponse::ServiceUnavailable().body(e),
        }
    }
    cfg.route("/write", web::get().to(write));
}

/// `GET path` on the in-process gateway: (status, body).
fn get(gw: &InProcess, path: &str) -> (u16, String) {
    inprocess::get(&inprocess::agent(), &gw.url(path))
}

/// Polls `GET path` every 20 ms until it answers `status`; how long that
/// took, at most [`LIMIT`].
fn time_until(gw: &InProcess, path: &str, status: u16) -> Option<Duration> {
    let started = Instant::now();
    wait_until(LIMIT, Duration::from_millis(20), || {
        get(gw, path).0 == status
    })
    .then(|| started.elapsed())
}

#[test]
fn failover_to_a_promoted_standby_is_followed_by_ready_and_by_the_application() {
    // Arrange: the application writes through the gateway's pool, on the
    // primary; the standby has replicated the table.
    let mut primary = Postgres::start_primary();
    primary.psql("CREATE TABLE failover_writes (at timestamptz NOT NULL DEFAULT now())");
    let mut standby = primary.start_standby();
    standby.wait_caught_up(&primary);
    let url = multi_host_url(&[primary.port(), standby.port()], Some("read-write"));
    let gw = InProcess::spawn(
        &[
            format!("--database-url={url}"),
            "--cache-type=none".into(),
            format!("--health-check-interval-ms={CHECK_MS}"),
            format!("--db-retry-interval-ms={RETRY_MS}"),
            format!("--db-connect-timeout-ms={CONNECT_TIMEOUT_MS}"),
            "--db-pool-timeout-ms=1000".into(),
        ],
        write_routes,
    );
    assert_eq!(get(&gw, "/write").0, 200);
    let ready: serde_json::Value = serde_json::from_str(&get(&gw, "/ready").1).unwrap();
    assert_eq!(
        ready["dependencies"]["database"]["server"],
        primary.addr(),
        "{ready}"
    );

    // Act: the primary goes away.
    primary.stop();
    let down = time_until(&gw, "/ready", 503);

    // Assert: not ready, and it stays so while only a standby is left.
    let down = down.unwrap_or_else(|| panic!("/ready never turned 503 without the primary"));
    let seen: Vec<u16> = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            get(&gw, "/ready").0
        })
        .collect();
    assert!(
        seen.iter().all(|s| *s == 503),
        "a standby is not read-write: {seen:?}"
    );

    // Act: the standby is promoted.
    standby.promote();
    let promoted = Instant::now();
    let ready_after = time_until(&gw, "/ready", 200);
    let query_after = time_until(&gw, "/write", 200).map(|_| promoted.elapsed());

    // Assert
    eprintln!(
        "failover: primary gone -> /ready 503 in {down:?}; promotion -> /ready 200 in \
         {ready_after:?}; promotion -> first application write in {query_after:?}"
    );
    let ready_after = ready_after.unwrap_or_else(|| panic!("/ready never 200 after promotion"));
    let query_after =
        query_after.unwrap_or_else(|| panic!("no application write succeeded after promotion"));
    assert!(down < LIMIT && ready_after < LIMIT && query_after < LIMIT);
    let ready: serde_json::Value = serde_json::from_str(&get(&gw, "/ready").1).unwrap();
    let db = &ready["dependencies"]["database"];
    assert_eq!(db["server"], standby.addr(), "{ready}");
    assert_eq!(db["role"], "primary", "{ready}");
    assert_eq!(
        standby.psql("SELECT count(*) >= 2 FROM failover_writes"),
        "t",
        "the write before failover, replicated, and the one after"
    );
}

// ---- PgBouncer ----------------------------------------------------------

#[test]
fn readygate_is_ready_through_pgbouncer_and_reports_an_outage_behind_it() {
    // Arrange
    let mut pg = Postgres::start();
    let bouncer = PgBouncer::start(&pg);
    let gw = ready_gateway(&bouncer.url());
    let queries = bouncer.query_count("postgres");

    // Act: several check intervals pass.
    std::thread::sleep(Duration::from_millis(8 * CHECK_MS));

    // Assert: the checks went through PgBouncer and kept passing.
    assert_eq!(gw.get("/ready").unwrap().0, 200);
    let checked = bouncer.query_count("postgres") - queries;
    assert!(checked >= 3, "{checked} queries through pgbouncer");
    let complaints: Vec<String> = gw
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");

    // Act: the server behind PgBouncer stops; PgBouncer stays.
    let from = gw.line_count();
    pg.stop();

    // Assert: down, then back when the server is.
    assert!(gw.wait_for_status("/ready", 503, LIMIT), "{}", gw.output());
    assert!(
        gw.wait_for_line_from(from, "DB connection lost: ", LIMIT)
            .is_some()
    );
    assert_eq!(database(&gw)["state"], "down");
    pg.start_server();
    assert!(gw.wait_for_status("/ready", 200, LIMIT), "{}", gw.output());
    assert!(
        gw.wait_for_line_from(from, "DB connection restored after ", LIMIT)
            .is_some(),
        "{}",
        gw.output()
    );
    assert!(lines_with(&gw, "ERROR").is_empty(), "{}", gw.output());
}

#[test]
fn target_session_attrs_see_the_server_behind_pgbouncer() {
    // Arrange
    let mut pg = Postgres::start();
    let bouncer = PgBouncer::start(&pg);
    let gw = ready_gateway(&url_with_attrs(bouncer.port(), "read-write"));
    assert_connected_to(&gw, &bouncer.addr(), "primary");
    let from = gw.line_count();

    // Act: the server behind it turns read-only.
    pg.set_read_only(true);

    // Assert
    assert!(
        gw.wait_for_line_from(
            from,
            "DB connection lost: server is read-only (target_session_attrs=read-write)",
            LIMIT
        )
        .is_some(),
        "{}",
        gw.output()
    );
    assert!(gw.wait_for_status("/ready", 503, LIMIT));

    // Act
    pg.set_read_only(false);

    // Assert
    assert!(gw.wait_for_status("/ready", 200, LIMIT), "{}", gw.output());
    assert_connected_to(&gw, &bouncer.addr(), "primary");
}

// ---- keepalive ----------------------------------------------------------

/// This process's TCP sockets whose peer is 127.0.0.1:`port`, each as a
/// duplicate of its descriptor (closing it leaves the original open).
fn sockets_connected_to(port: u16) -> Vec<(RawFd, OwnedFd)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was open a moment ago; it is only duplicated here,
        // and `dup` fails cleanly (EBADF) should it have been closed since.
        // Should its number have been reused, the peer check below sorts
        // it out.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(owned) = nix::unistd::dup(borrowed) else {
            continue;
        };
        let peer = socket2::SockRef::from(&owned)
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket());
        if peer.is_some_and(|p| p.ip().is_loopback() && p.port() == port) {
            found.push((fd, owned));
        }
    }
    found
}

#[test]
fn every_postgres_connection_carries_keepalive_and_a_user_timeout() {
    use readygate::connector::{
        KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES, TCP_USER_TIMEOUT,
    };

    // Arrange: the promise the settings keep: a connection whose peer
    // vanished ends within about 25-30 s.
    let silent_for = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES;
    assert!(
        (Duration::from_secs(25)..=Duration::from_secs(30)).contains(&silent_for),
        "{silent_for:?}"
    );
    assert!(TCP_USER_TIMEOUT <= Duration::from_secs(30));
    let pg = Postgres::start();
    let _gw = crate::readiness::spawn(&pg.url(), 2);

    // Act: ready (the pool's connection), then a runtime check (the
    // check's own connection).
    let mut sockets = Vec::new();
    let both = wait_until(LIMIT, Duration::from_millis(50), || {
        sockets = sockets_connected_to(pg.port());
        sockets.len() >= 2
    });

    // Assert
    assert!(
        both,
        "{} connection(s) to the server, expected the pool's and the check's",
        sockets.len()
    );
    for (fd, socket) in &sockets {
        let socket = socket2::SockRef::from(socket);
        assert!(socket.keepalive().unwrap(), "fd {fd}: SO_KEEPALIVE off");
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            KEEPALIVE_IDLE,
            "fd {fd}"
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            KEEPALIVE_INTERVAL,
            "fd {fd}"
        );
        assert_eq!(
            socket.tcp_keepalive_retries().unwrap(),
            KEEPALIVE_RETRIES,
            "fd {fd}"
        );
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(TCP_USER_TIMEOUT),
            "fd {fd}"
        );
    }
}

// ---- servers that hang rather than refuse ------------------------------

/// Each host's share of the attempt when the first of two hangs: half of
/// this, long enough for the second on a loaded machine.
const HANGING_TIMEOUT_MS: u64 = 4000;

#[test]
fn a_first_host_that_never_answers_does_not_use_up_the_attempt() {
    // Arrange: the first host accepts connections and never says a word;
    // the second is a primary.
    let hole = BlackHole::start();
    let pg = Postgres::start();
    let url = multi_host_url(&[hole.port(), pg.port()], Some("read-write"));

    // Act: each host gets half of DB_CONNECT_TIMEOUT_MS; without that
    // share, the first would take the whole attempt, every attempt.
    let gw = builder(&url)
        .env("DB_CONNECT_TIMEOUT_MS", HANGING_TIMEOUT_MS.to_string())
        .spawn();

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, LIMIT),
        "never ready past a silent first host:\n{}",
        gw.output()
    );
    assert_connected_to(&gw, &pg.addr(), "primary");
    assert!(hole.connections() >= 1, "the first host was tried first");
}

#[test]
fn failover_from_a_frozen_primary_finds_the_promoted_standby() {
    // Arrange: connected to the primary; the standby follows it.
    let mut primary = Postgres::start_primary();
    let mut standby = primary.start_standby();
    let url = multi_host_url(&[primary.port(), standby.port()], Some("read-write"));
    let gw = builder(&url)
        .env("DB_CONNECT_TIMEOUT_MS", HANGING_TIMEOUT_MS.to_string())
        .spawn();
    assert!(gw.wait_for_status("/ready", 200, LIMIT), "{}", gw.output());
    assert_connected_to(&gw, &primary.addr(), "primary");

    // Act: the primary freezes (SIGSTOP: connections accepted by its
    // kernel, never answered), and the standby is promoted.
    primary.freeze();
    assert!(
        gw.wait_for_status("/ready", 503, LIMIT),
        "a frozen primary stayed ready:\n{}",
        gw.output()
    );
    standby.promote();

    // Assert: the checks choose again and find the new primary, although
    // the frozen one, listed first, never answers.
    assert!(
        gw.wait_for_status("/ready", 200, LIMIT),
        "the promoted standby was never found past the frozen primary:\n{}",
        gw.output()
    );
    assert_connected_to(&gw, &standby.addr(), "primary");
    let line = lines_with(&gw, "DB connection restored after");
    assert_eq!(line.len(), 1, "{}", gw.output());
    assert!(
        line[0].contains(&format!("(server {}, primary)", standby.addr())),
        "{}",
        line[0]
    );
    primary.thaw();
}
