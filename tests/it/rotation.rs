//! Issue 28, "Secrets and certificates rotate without a restart": real
//! PostgreSQL servers, secrets in a Kubernetes-style mounted directory
//! (`support::mounted`, the `..data` symlink swapped as the kubelet does),
//! rotated as an operator would: the server first, then the file, then
//! the sessions ended (`pg_terminate_backend`).

use std::time::{Duration, Instant};

use crate::support::{
    Gateway, MountedSecret, Passwords, Pki, Postgres, Redis, RedisClusterSet, RedisTlsFiles,
    SENTINEL_MASTER, SentinelSet,
};

const FIRST: &str = "first-Pass-7781";
const SECOND: &str = "second-Pass-9923";
const INTERVAL_MS: u64 = 200;

/// The server's failed logins for `app` so far.
fn failed_logins(pg: &Postgres) -> usize {
    pg.log()
        .matches("password authentication failed for user \"app\"")
        .count()
}

/// Ends every session of `user` on the server, once there is one (a
/// connection being made shows in `pg_stat_activity` with its user only
/// once authenticated).
fn terminate_sessions(pg: &Postgres, user: &str) {
    let others =
        format!("FROM pg_stat_activity WHERE usename = '{user}' AND pid <> pg_backend_pid()");
    assert!(
        crate::support::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            pg.psql(&format!("SELECT count(*) {others}")) != "0"
        }),
        "no session of {user} to end"
    );
    pg.psql(&format!("SELECT count(pg_terminate_backend(pid)) {others}"));
}

/// Waits until the application's pool and the checks' own connection are
/// both made, so that ending the sessions ends both.
fn wait_both_sessions(pg: &Postgres, user: &str, gw: &Gateway) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}' AND pid <> pg_backend_pid()"
    );
    assert!(
        crate::support::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            // At least: a psql of the test's that just ended may linger.
            pg.psql(&sql).parse::<u32>().is_ok_and(|n| n >= 2)
        }),
        "{}",
        gw.output()
    );
}

/// The first line holding `text`, within 5 s; the output when none does.
fn expect_line(gw: &Gateway, text: &str) -> String {
    gw.wait_for_line(text, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no line with {text:?}:\n{}", gw.output()))
}

/// How many lines hold `text`.
fn count_lines(gw: &Gateway, text: &str) -> usize {
    gw.lines().iter().filter(|l| l.contains(text)).count()
}

fn assert_ready_within(gw: &Gateway, timeout: Duration) {
    assert!(
        gw.wait_for_status("/ready", 200, timeout),
        "not ready within {timeout:?}:\n{}",
        gw.output()
    );
}

fn assert_no_password(gw: &Gateway) {
    let out = gw.output();
    for pw in [FIRST, SECOND] {
        assert!(!out.contains(pw), "the output shows {pw:?}:\n{out}");
    }
}

/// The value of `readygate_secret_reloads_total{variable,outcome}`.
fn reloads(gw: &Gateway, variable: &str, outcome: &str) -> f64 {
    let (_, text) = gw.get("/metrics").unwrap();
    let series =
        format!("readygate_secret_reloads_total{{variable=\"{variable}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A server requiring `app`'s password, a mount holding its URL, and a
/// gateway reading it (checks every 100 ms, retries every 200 ms, longest
/// wait 60 s), ready.
fn rotating_postgres() -> (Postgres, MountedSecret, Gateway) {
    let mut pg = Postgres::start();
    pg.require_password("app", FIRST);
    let mount = MountedSecret::new(&[("url", pg.url_for("app", FIRST).as_bytes())]);
    let gw = Gateway::builder()
        .env("DATABASE_URL_FILE", mount.path("url").display().to_string())
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("DB_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    wait_both_sessions(&pg, "app", &gw);
    (pg, mount, gw)
}

#[test]
fn a_rotated_postgres_password_is_read_from_the_mounted_file() {
    // Arrange
    let (pg, mut mount, gw) = rotating_postgres();
    let path = mount.path("url").display().to_string();
    let before = failed_logins(&pg);

    // Act: the server, then the file, then the sessions.
    pg.psql(&format!("ALTER ROLE app PASSWORD '{SECOND}'"));
    mount.update(&[("url", pg.url_for("app", SECOND).as_bytes())]);
    let changed = Instant::now();
    terminate_sessions(&pg, "app");

    // Assert: back (or never gone) within a retry interval and a check,
    // with a fresh session that logged in with the new password.
    let line = format!("DB credentials re-read from DATABASE_URL_FILE ({path}): changed");
    expect_line(&gw, &line);
    assert_ready_within(&gw, Duration::from_secs(5));
    assert!(
        changed.elapsed() < Duration::from_millis(INTERVAL_MS + 100 + 2000),
        "{:?}",
        changed.elapsed()
    );
    assert!(
        crate::support::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") != "0"
        }),
        "no new session"
    );
    assert!(
        failed_logins(&pg) - before <= 2,
        "{} failed logins",
        failed_logins(&pg) - before
    );
    assert_eq!(reloads(&gw, "DATABASE_URL_FILE", "changed"), 1.0);
    assert_eq!(count_lines(&gw, "re-read"), 1);
    assert_no_password(&gw);
}

#[test]
fn a_permanent_error_at_runtime_waits_the_longest_then_retries_when_the_file_changes() {
    // Arrange: the password changes on the server, not (yet) in the file.
    let (pg, mut mount, gw) = rotating_postgres();
    let before = failed_logins(&pg);
    pg.psql(&format!("ALTER ROLE app PASSWORD '{SECOND}'"));
    terminate_sessions(&pg, "app");
    let first = expect_line(&gw, "DB reconnection attempt 1 failed");
    assert!(
        first.contains(
            "retrying in 60 s or as soon as a secret file changes (the error is permanent)"
        ),
        "{first}"
    );
    assert!(first.contains("28P01"), "{first}");

    // Act: 1.5 s pass (7 retries at the 200 ms interval), then the file.
    std::thread::sleep(Duration::from_millis(1500));
    let attempts = count_lines(&gw, "reconnection attempt");
    let logins = failed_logins(&pg) - before;
    mount.update(&[("url", pg.url_for("app", SECOND).as_bytes())]);
    let changed = Instant::now();

    // Assert: one attempt in the wait, then ready at once (not in 60 s).
    assert_eq!(attempts, 1, "{}", gw.output());
    assert!(logins <= 3, "{logins} failed logins");
    assert_ready_within(&gw, Duration::from_secs(5));
    assert!(
        changed.elapsed() < Duration::from_secs(3),
        "{:?}",
        changed.elapsed()
    );
    assert!(
        gw.output().contains("DB connection restored after"),
        "{}",
        gw.output()
    );
    assert_no_password(&gw);
}

#[test]
fn a_garbage_file_keeps_the_last_good_url_with_a_warn_then_a_good_one_is_taken() {
    // Arrange
    let (pg, mut mount, gw) = rotating_postgres();
    let path = mount.path("url").display().to_string();

    // Act: garbage, then a session ended so that a connection is made.
    mount.update(&[(
        "url",
        b"postgres://app:second-Pass-9923@[not a host/db".as_slice(),
    )]);
    terminate_sessions(&pg, "app");

    // Assert: a WARN naming the variable and why; the old URL still works.
    let warn = expect_line(&gw, "changed but cannot be used");
    assert!(
        warn.contains(&format!(
            "DB credentials in DATABASE_URL_FILE ({path}) changed but cannot be used, keeping the last good one: DATABASE_URL_FILE"
        )),
        "{warn}"
    );
    assert!(warn.contains("WARN"), "{warn}");
    assert_ready_within(&gw, Duration::from_secs(5));
    assert!(gw.is_running());
    assert_eq!(reloads(&gw, "DATABASE_URL_FILE", "rejected"), 1.0);

    // An empty file too.
    mount.update(&[("url", b"".as_slice())]);
    terminate_sessions(&pg, "app");
    assert!(
        crate::support::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            count_lines(&gw, "changed but cannot be used") == 2
        }),
        "{}",
        gw.output()
    );
    assert!(gw.output().contains("is empty"), "{}", gw.output());

    // A good value is taken.
    pg.psql(&format!("ALTER ROLE app PASSWORD '{SECOND}'"));
    mount.update(&[("url", pg.url_for("app", SECOND).as_bytes())]);
    terminate_sessions(&pg, "app");
    let line = format!("DB credentials re-read from DATABASE_URL_FILE ({path}): changed");
    expect_line(&gw, &line);
    assert_ready_within(&gw, Duration::from_secs(5));
    assert_no_password(&gw);
}

fn concat(files: &[&std::path::Path]) -> Vec<u8> {
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

#[test]
fn a_ca_rotated_with_an_overlap_bundle_follows_the_servers_new_certificate() {
    // Arrange: the server's certificate is of CA 1; the mount trusts CA 1.
    let (old, new) = (Pki::generate(), Pki::generate());
    let mut pg = Postgres::start();
    pg.set_tls(&old.server, &old.ca);
    pg.require_tls(false);
    let mut mount = MountedSecret::new(&[("ca.crt", &std::fs::read(&old.ca).unwrap())]);
    let ca_path = mount.path("ca.crt").display().to_string();
    let gw = Gateway::builder()
        .env(
            "DATABASE_URL",
            format!("{}?sslmode=verify-full&sslrootcert={ca_path}", pg.url()),
        )
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    wait_both_sessions(&pg, "postgres", &gw);

    // Act: the bundle of both CAs, then the server on a certificate of CA 2,
    // then the sessions ended.
    mount.update(&[("ca.crt", &concat(&[&old.ca, &new.ca]))]);
    pg.set_tls(&new.server, &new.ca);
    terminate_sessions(&pg, "postgres");

    // Assert
    let line = format!("DB certificate re-read from sslrootcert ({ca_path}): changed");
    expect_line(&gw, &line);
    assert_ready_within(&gw, Duration::from_secs(5));
    // Still up after another check round, on a fresh session.
    std::thread::sleep(Duration::from_millis(500));
    assert_ready_within(&gw, Duration::from_secs(1));
    assert!(
        !gw.output().contains("invalid peer certificate"),
        "{}",
        gw.output()
    );
}

#[test]
fn a_renewed_client_certificate_is_used_by_the_next_connection() {
    // Arrange: `cert` authentication against CA 1's client certificate.
    let (old, new) = (Pki::generate(), Pki::generate());
    let mut pg = Postgres::start();
    pg.set_tls(&old.server, &old.ca);
    pg.require_tls(true);
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let mut mount = MountedSecret::new(&[
        ("tls.crt", &read(&old.client.cert)),
        ("tls.key", &read(&old.client.key)),
    ]);
    let (cert, key) = (
        mount.path("tls.crt").display().to_string(),
        mount.path("tls.key").display().to_string(),
    );
    let gw = Gateway::builder()
        .env(
            "DATABASE_URL",
            format!(
                "{}?sslmode=verify-full&sslrootcert={}&sslcert={cert}&sslkey={key}",
                pg.url(),
                old.ca.display()
            ),
        )
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    wait_both_sessions(&pg, "postgres", &gw);

    // Act: a key that does not match the certificate is refused first.
    mount.update(&[
        ("tls.crt", &read(&new.client.cert)),
        ("tls.key", &read(&old.client.key)),
    ]);
    terminate_sessions(&pg, "postgres");
    let warn = expect_line(&gw, "changed but cannot be used");
    assert!(
        warn.contains(&format!("({cert})")) || warn.contains(&format!("({key})")),
        "{warn}"
    );
    assert_ready_within(&gw, Duration::from_secs(5));

    // The renewed pair, then the server trusting client certificates of CA
    // 2 only, then the sessions ended.
    mount.update(&[
        ("tls.crt", &read(&new.client.cert)),
        ("tls.key", &read(&new.client.key)),
    ]);
    pg.set_tls(&old.server, &new.ca);
    terminate_sessions(&pg, "postgres");

    // Assert
    // The certificate was taken in the refused change already: the key is
    // what changed now.
    let line = format!("DB key re-read from sslkey ({key}): changed");
    expect_line(&gw, &line);
    std::thread::sleep(Duration::from_millis(500));
    assert_ready_within(&gw, Duration::from_secs(5));
    let (_, body) = gw.get("/ready").unwrap();
    assert!(
        body.contains("\"status\":\"ready\"") || body.contains("ready"),
        "{body}"
    );
}

/// A primary with `app` (password FIRST) and its streaming standby, both
/// requiring a password over TCP, the standby caught up (it has `app`).
fn replicated_with_password() -> (Postgres, Postgres) {
    let mut primary = Postgres::start_primary();
    let mut standby = primary.start_standby();
    primary.require_password("app", FIRST);
    standby.wait_caught_up(&primary);
    standby.require_tcp_passwords();
    (primary, standby)
}

/// A multi-host URL of `app` with `password` on `ports`, under
/// `target_session_attrs=read-write`.
fn read_write_url(ports: &[u16], password: &str) -> Vec<u8> {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!(
        "postgres://app:{password}@{}/postgres?target_session_attrs=read-write",
        hosts.join(",")
    )
    .into_bytes()
}

/// A gateway reading the database URL from `mount` (checks every 100 ms,
/// retries every 200 ms, longest wait 60 s), ready.
fn rotating_gateway(mount: &MountedSecret) -> Gateway {
    let gw = Gateway::builder()
        .env("DATABASE_URL_FILE", mount.path("url").display().to_string())
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("DB_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(15));
    gw
}

/// `/ready`'s database server and role.
fn chosen_server(gw: &Gateway) -> (String, String) {
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let db = &body["dependencies"]["database"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (text(&db["server"]), text(&db["role"]))
}

/// The backend pids of `user`'s sessions on the server.
fn session_pids(pg: &Postgres, user: &str) -> Vec<String> {
    pg.psql(&format!(
        "SELECT pid FROM pg_stat_activity WHERE usename = '{user}' AND pid <> pg_backend_pid()"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn a_rotated_password_reaches_the_chosen_host_of_a_multi_host_url() {
    // Arrange: the standby listed first, passed over for the primary.
    let (primary, standby) = replicated_with_password();
    let ports = [standby.port(), primary.port()];
    let mut mount = MountedSecret::new(&[("url", &read_write_url(&ports, FIRST))]);
    let path = mount.path("url").display().to_string();
    let gw = rotating_gateway(&mount);
    wait_both_sessions(&primary, "app", &gw);
    assert_eq!(chosen_server(&gw), (primary.addr(), "primary".into()));
    let before = failed_logins(&primary) + failed_logins(&standby);
    let old_sessions = session_pids(&primary, "app");

    // Act: the server (replicated to the standby), then the file, then the
    // sessions on both.
    primary.psql(&format!("ALTER ROLE app PASSWORD '{SECOND}'"));
    standby.wait_caught_up(&primary);
    mount.update(&[("url", &read_write_url(&ports, SECOND))]);
    let changed = Instant::now();
    terminate_sessions(&primary, "app");
    standby.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app'",
    );

    // Assert: the file read, new sessions logged in with the new password,
    // ready within about a retry interval and a check, and still so a
    // second later, on the primary.
    let line = format!("DB credentials re-read from DATABASE_URL_FILE ({path}): changed");
    expect_line(&gw, &line);
    assert!(
        crate::support::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            session_pids(&primary, "app")
                .iter()
                .any(|pid| !old_sessions.contains(pid))
        }),
        "no new session with the new password:\n{}",
        gw.output()
    );
    assert_ready_within(&gw, Duration::from_secs(10));
    let back = changed.elapsed();
    assert!(
        back < Duration::from_millis(INTERVAL_MS + 100) + Duration::from_secs(5),
        "{back:?}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_ready_within(&gw, Duration::from_millis(500));
    assert_eq!(chosen_server(&gw), (primary.addr(), "primary".into()));
    let failed = failed_logins(&primary) + failed_logins(&standby) - before;
    assert!(failed <= 2, "{failed} failed logins:\n{}", gw.output());
    assert_eq!(reloads(&gw, "DATABASE_URL_FILE", "changed"), 1.0);
    assert_no_password(&gw);
}

#[test]
fn the_choice_after_a_failover_logs_in_with_the_rotated_password() {
    // Arrange: the gateway on the primary, listed first.
    let (mut primary, mut standby) = replicated_with_password();
    let ports = [primary.port(), standby.port()];
    let mut mount = MountedSecret::new(&[("url", &read_write_url(&ports, FIRST))]);
    let path = mount.path("url").display().to_string();
    let gw = rotating_gateway(&mount);
    assert_eq!(chosen_server(&gw), (primary.addr(), "primary".into()));

    // Act: the password and the file rotate; then the primary stops, and
    // its standby, which only the next choice can find, is promoted.
    primary.psql(&format!("ALTER ROLE app PASSWORD '{SECOND}'"));
    standby.wait_caught_up(&primary);
    mount.update(&[("url", &read_write_url(&ports, SECOND))]);
    primary.stop();
    assert!(
        gw.wait_for_status("/ready", 503, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    standby.promote();
    let promoted = Instant::now();

    // Assert: the choice logged in to the promoted standby with the new
    // password.
    assert_ready_within(&gw, Duration::from_secs(10));
    eprintln!("promotion -> /ready 200 in {:?}", promoted.elapsed());
    assert_eq!(chosen_server(&gw), (standby.addr(), "primary".into()));
    expect_line(
        &gw,
        &format!("DB credentials re-read from DATABASE_URL_FILE ({path}): changed"),
    );
    assert_eq!(failed_logins(&standby), 0, "{}", gw.output());
    assert_no_password(&gw);
}

/// Redis's failed logins so far (`acl_access_denied_auth`, Redis 6+).
fn redis_failed_logins(redis: &Redis) -> u64 {
    let info = redis.command(&["INFO", "stats"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("acl_access_denied_auth:"))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A Redis requiring a password, a mount holding its URL, and a gateway
/// reading it (checks every 100 ms, retries every 200 ms, longest wait 60
/// s), ready.
fn rotating_redis() -> (Redis, MountedSecret, Gateway) {
    let redis = Redis::start_with_password(FIRST);
    let url = format!("redis://:{FIRST}@127.0.0.1:{}/0", redis.port());
    let mount = MountedSecret::new(&[("url", url.as_bytes())]);
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL_FILE", mount.path("url").display().to_string())
        .env("REDIS_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("REDIS_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    (redis, mount, gw)
}

/// After a rotation of REDIS_URL_FILE (at `path`): the INFO line, ready
/// within 5 s and still 300 ms later, counted once, no password shown.
fn assert_redis_url_rotated(gw: &Gateway, path: &str) {
    let line = format!("Redis credentials re-read from REDIS_URL_FILE ({path}): changed");
    expect_line(gw, &line);
    assert_ready_within(gw, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert_ready_within(gw, Duration::from_secs(1));
    assert_eq!(reloads(gw, "REDIS_URL_FILE", "changed"), 1.0);
    assert_no_password(gw);
}

fn redis_url(redis: &Redis, password: &str) -> Vec<u8> {
    format!("redis://:{password}@127.0.0.1:{}/0", redis.port()).into_bytes()
}

#[test]
fn a_rotated_redis_password_is_read_from_the_mounted_file() {
    // Arrange
    let (mut redis, mut mount, gw) = rotating_redis();
    let path = mount.path("url").display().to_string();
    let before = redis_failed_logins(&redis);

    // Act: the server, then the file, then the connections.
    redis.set_password(SECOND);
    mount.update(&[("url", &redis_url(&redis, SECOND))]);
    redis.drop_clients();

    // Assert
    assert_redis_url_rotated(&gw, &path);
    let failed = redis_failed_logins(&redis) - before;
    assert!(failed <= 2, "{failed} failed logins");
}

#[test]
fn a_permanent_redis_error_at_runtime_waits_for_the_file() {
    // Arrange: the password changes on the server, not (yet) in the file.
    let (mut redis, mut mount, gw) = rotating_redis();
    redis.set_password(SECOND);
    redis.drop_clients();
    let first = gw
        .wait_for_line(
            "Redis reconnection attempt 1 failed",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("{}", gw.output()));
    assert!(
        first.contains("retrying in 60 s or as soon as a secret file changes"),
        "{first}"
    );

    // Act
    std::thread::sleep(Duration::from_millis(1500));
    let attempts = count_lines(&gw, "reconnection attempt");
    mount.update(&[("url", &redis_url(&redis, SECOND))]);

    // Assert: one attempt in the wait; the change is read and tried at
    // once, not in 60 s, and the cache is back: the application's manager,
    // which keeps a refused reconnection's error for good (the redis crate
    // reconnects after I/O errors only, redis-rs#984), is replaced by a new
    // one behind the same handle.
    assert_eq!(attempts, 1, "{}", gw.output());
    expect_line(&gw, "Redis credentials re-read from REDIS_URL_FILE");
    expect_line(&gw, "Redis connection restored after");
    assert_ready_within(&gw, Duration::from_secs(2));
    assert_eq!(
        count_lines(&gw, "reconnection attempt"),
        1,
        "{}",
        gw.output()
    );
    assert_no_password(&gw);
}

#[test]
fn a_file_changed_during_start_up_attempts_is_read_by_the_next_attempt() {
    // Arrange: the file names a closed port (refused: transient, retried).
    let mut pg = Postgres::start();
    pg.require_password("app", FIRST);
    let closed = crate::support::free_port();
    let wrong = format!("postgres://app:{FIRST}@127.0.0.1:{closed}/postgres");
    let mut mount = MountedSecret::new(&[("url", wrong.as_bytes())]);
    let gw = Gateway::builder()
        .env("DATABASE_URL_FILE", mount.path("url").display().to_string())
        .env("DB_MAX_RETRIES", "100")
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .spawn();
    expect_line(&gw, "DB connection failed (attempt 2/100)");

    // Act
    mount.update(&[("url", pg.url_for("app", FIRST).as_bytes())]);

    // Assert: the next attempt reads it and start-up ends.
    assert_ready_within(&gw, Duration::from_secs(5));
    expect_line(&gw, "DB credentials re-read from DATABASE_URL_FILE");
    assert_no_password(&gw);
}

#[test]
fn without_secret_files_a_permanent_error_waits_the_longest_and_says_so() {
    // Arrange: the URL in the environment, no file to watch.
    let mut pg = Postgres::start();
    pg.require_password("app", FIRST);
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url_for("app", FIRST))
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("DB_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    wait_both_sessions(&pg, "app", &gw);

    // Act
    pg.psql(&format!("ALTER ROLE app PASSWORD '{SECOND}'"));
    terminate_sessions(&pg, "app");

    // Assert
    let line = expect_line(&gw, "DB reconnection attempt 1 failed");
    assert!(
        line.contains("retrying in 60 s (the error is permanent): "),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        count_lines(&gw, "reconnection attempt"),
        1,
        "{}",
        gw.output()
    );
    assert_no_password(&gw);
}

#[test]
fn a_rotated_mariadb_password_is_read_from_the_mounted_file() {
    use crate::support::Mariadb;
    use crate::support::mariadb::{APP_PASSWORD, APP_USER};
    // Arrange
    let db = Mariadb::start();
    let mut mount = MountedSecret::new(&[("url", db.url().as_bytes())]);
    let path = mount.path("url").display().to_string();
    let gw = Gateway::builder()
        .env("DATABASE_URL_FILE", path.clone())
        .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("DB_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(20));

    // Act: the server, then the file, then the sessions.
    db.sql(&format!(
        "ALTER USER '{APP_USER}'@'%' IDENTIFIED BY '{SECOND}'"
    ));
    mount.update(&[(
        "url",
        db.url_for("mysql", APP_USER, SECOND, "app").as_bytes(),
    )]);
    let ids = db.sql(&format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{APP_USER}'"
    ));
    for id in ids.split_whitespace() {
        let _ = std::panic::catch_unwind(|| db.sql(&format!("KILL {id}")));
    }

    // Assert: read within a check, and up on the new password.
    let line = format!("DB credentials re-read from DATABASE_URL_FILE ({path}): changed");
    expect_line(&gw, &line);
    std::thread::sleep(Duration::from_millis(500));
    assert_ready_within(&gw, Duration::from_secs(5));
    let out = gw.output();
    for pw in [APP_PASSWORD, SECOND] {
        assert!(!out.contains(pw), "the output shows {pw:?}:\n{out}");
    }
}

#[test]
fn a_redis_url_naming_another_database_is_refused_and_the_password_kept() {
    // Arrange
    let (redis, mut mount, gw) = rotating_redis();
    let path = mount.path("url").display().to_string();

    // Act: another database, then the connections dropped.
    let other = format!("redis://:{SECOND}@127.0.0.1:{}/5", redis.port());
    mount.update(&[("url", other.as_bytes())]);
    redis.drop_clients();

    // Assert: refused with a WARN, the last good password still used.
    let warn = expect_line(&gw, "changed but cannot be used");
    assert!(
        warn.contains(&format!(
            "Redis credentials in REDIS_URL_FILE ({path}) changed but cannot be used, keeping the last good one: names another server, database or scheme"
        )),
        "{warn}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_ready_within(&gw, Duration::from_secs(5));
    assert_eq!(reloads(&gw, "REDIS_URL_FILE", "rejected"), 1.0);
    assert_no_password(&gw);
}

/// A TLS Redis of CA 1 (client certificates of `client_ca` required when
/// given), with a plain-text port for the test's own commands.
fn tls_redis(server: &Pki, client_ca: Option<&Pki>) -> Redis {
    Redis::start_tls_with_admin_port(RedisTlsFiles {
        server: server.server.clone(),
        ca: client_ca.unwrap_or(server).ca.clone(),
        auth_clients: client_ca.is_some(),
    })
}

/// A gateway on a TLS Redis with `env` (checks every 100 ms, retries every
/// 200 ms), ready.
fn rediss_gateway(redis: &Redis, env: &[(&str, String)]) -> Gateway {
    let mut builder = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("REDIS_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("HEALTH_CHECK_INTERVAL_MS", "100");
    for (name, value) in env {
        builder = builder.env(*name, value);
    }
    let gw = builder.spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    gw
}

#[test]
fn a_redis_ca_rotated_with_an_overlap_bundle_follows_the_servers_new_certificate() {
    // Arrange: the server's certificate is of CA 1; the mount trusts CA 1.
    let (old, new) = (Pki::generate(), Pki::generate());
    let mut redis = tls_redis(&old, None);
    let mut mount = MountedSecret::new(&[("ca.crt", &std::fs::read(&old.ca).unwrap())]);
    let ca_path = mount.path("ca.crt").display().to_string();
    let gw = rediss_gateway(&redis, &[("REDIS_TLS_CA_CERT", ca_path.clone())]);

    // Act: the bundle of both CAs, then the server on a certificate of CA 2,
    // then the connections dropped.
    mount.update(&[("ca.crt", &concat(&[&old.ca, &new.ca]))]);
    redis.set_tls(&new.server, &new.ca);
    redis.drop_clients();

    // Assert: the bundle is read, and the manager the application holds is
    // replaced by one that trusts it (the old one's reconnections keep the
    // CA it was built with).
    let line = format!("Redis certificate re-read from REDIS_TLS_CA_CERT ({ca_path}): changed");
    expect_line(&gw, &line);
    std::thread::sleep(Duration::from_millis(500));
    assert_ready_within(&gw, Duration::from_secs(5));
    assert_eq!(reloads(&gw, "REDIS_TLS_CA_CERT", "changed"), 1.0);
    // The server saw a client on its new certificate: the cache works.
    let (_, body) = gw.get("/ready").unwrap();
    assert!(body.contains("\"tls\":true"), "{body}");
    assert!(
        !gw.output().contains("invalid peer certificate"),
        "{}",
        gw.output()
    );
}

#[test]
fn a_renewed_redis_client_certificate_is_used_by_the_next_connection() {
    // Arrange: client certificates of CA 1 required.
    let (old, new) = (Pki::generate(), Pki::generate());
    let mut redis = tls_redis(&old, Some(&old));
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let mut mount = MountedSecret::new(&[
        ("tls.crt", &read(&old.client.cert)),
        ("tls.key", &read(&old.client.key)),
    ]);
    let (cert, key) = (
        mount.path("tls.crt").display().to_string(),
        mount.path("tls.key").display().to_string(),
    );
    let gw = rediss_gateway(
        &redis,
        &[
            ("REDIS_TLS_CA_CERT", old.ca.display().to_string()),
            ("REDIS_TLS_CLIENT_CERT", cert.clone()),
            ("REDIS_TLS_CLIENT_KEY", key.clone()),
        ],
    );

    // Act: a key that does not match the certificate is refused first, and
    // the open connection keeps working.
    mount.update(&[
        ("tls.crt", &read(&new.client.cert)),
        ("tls.key", &read(&old.client.key)),
    ]);
    let warn = expect_line(&gw, "changed but cannot be used");
    assert!(
        warn.contains(&format!(
            "Redis certificate in REDIS_TLS_CLIENT_CERT ({cert}) changed but cannot be used"
        )),
        "{warn}"
    );
    assert_eq!(reloads(&gw, "REDIS_TLS_CLIENT_CERT", "rejected"), 1.0);
    assert_ready_within(&gw, Duration::from_secs(1));

    // The renewed pair, then the server trusting client certificates of CA
    // 2 only, then the connections dropped.
    mount.update(&[
        ("tls.crt", &read(&new.client.cert)),
        ("tls.key", &read(&new.client.key)),
    ]);
    redis.set_tls(&old.server, &new.ca);
    redis.drop_clients();

    // Assert: the certificate was taken in the refused change already; the
    // key is what changed now.
    let line = format!("Redis key re-read from REDIS_TLS_CLIENT_KEY ({key}): changed");
    expect_line(&gw, &line);
    std::thread::sleep(Duration::from_millis(500));
    assert_ready_within(&gw, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert_ready_within(&gw, Duration::from_secs(1));
}

/// A gateway on a [`SentinelSet`] (`CACHE_TYPE=redis-sentinel`, checks
/// every 100 ms, retries every 200 ms, longest wait 60 s) with `env`, ready.
fn sentinel_gateway(set: &SentinelSet, env: &[(&str, String)]) -> Gateway {
    let mut builder = Gateway::builder()
        .env("CACHE_TYPE", "redis-sentinel")
        .env("REDIS_SENTINEL_NODES", set.nodes())
        .env("REDIS_SENTINEL_MASTER", SENTINEL_MASTER)
        .env("REDIS_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("REDIS_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100");
    for (key, value) in env {
        builder = builder.env(*key, value);
    }
    let gw = builder.spawn();
    assert_ready_within(&gw, Duration::from_secs(10));
    gw
}

/// A [`SentinelSet`] whose master and replica require FIRST, a mount
/// holding the master's URL (the sentinels name the master: the URL's host
/// is the master's anyway), its path, and a ready gateway reading it.
fn rotating_sentinel_master() -> (SentinelSet, MountedSecret, String, Gateway) {
    let set = SentinelSet::start_with(Passwords {
        master: Some(FIRST),
        sentinels: None,
    });
    let mount = MountedSecret::new(&[("url", &redis_url(&set.master, FIRST))]);
    let path = mount.path("url").display().to_string();
    let gw = sentinel_gateway(&set, &[("REDIS_URL_FILE", path.clone())]);
    (set, mount, path, gw)
}

#[test]
fn a_rotated_master_password_behind_sentinel_is_read_from_the_mounted_file() {
    // Arrange
    let (mut set, mut mount, path, gw) = rotating_sentinel_master();

    // Act: the servers (and the sentinels' auth-pass), then the file, then
    // the connections.
    set.set_master_password(SECOND);
    mount.update(&[("url", &redis_url(&set.master, SECOND))]);
    set.master.drop_clients();

    // Assert: the master's reconnection reads the file, and stays up.
    assert_redis_url_rotated(&gw, &path);
}

#[test]
fn a_rotated_sentinel_password_file_is_read_before_the_sentinels_are_asked() {
    // Arrange: the sentinels require FIRST, from REDIS_SENTINEL_PASSWORD_FILE.
    let mut set = SentinelSet::start_with(Passwords {
        master: None,
        sentinels: Some(FIRST),
    });
    let mut mount = MountedSecret::new(&[("password", FIRST.as_bytes())]);
    let path = mount.path("password").display().to_string();
    let url = format!("redis://127.0.0.1:{}/0", set.master.port());
    let gw = sentinel_gateway(
        &set,
        &[
            ("REDIS_URL", url),
            ("REDIS_SENTINEL_PASSWORD_FILE", path.clone()),
        ],
    );

    // Act 1: an empty file (a broken rotation).
    mount.update(&[("password", b"")]);

    // Assert 1: a WARN, the last good password kept: still ready.
    expect_line(
        &gw,
        &format!(
            "Redis sentinel password in REDIS_SENTINEL_PASSWORD_FILE ({path}) changed but cannot be used, keeping the last good one: is empty"
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_ready_within(&gw, Duration::from_secs(1));
    assert_eq!(
        reloads(&gw, "REDIS_SENTINEL_PASSWORD_FILE", "rejected"),
        1.0
    );

    // Act 2: the sentinels' password changes (the checks fail: they ask
    // the sentinels each time), then the file.
    set.set_sentinel_password(SECOND);
    assert!(
        gw.wait_for_status("/ready", 503, Duration::from_secs(5)),
        "{}",
        gw.output()
    );
    // Refused by the sentinels: permanent, so the next attempt waits the
    // longest wait (60 s) or the file's change.
    let first = expect_line(&gw, "Redis reconnection attempt 1 failed");
    assert!(
        first.contains("retrying in 60 s or as soon as a secret file changes"),
        "{first}"
    );
    mount.update(&[("password", SECOND.as_bytes())]);

    // Assert 2: read before the next attempt, which passes.
    expect_line(
        &gw,
        &format!(
            "Redis sentinel password re-read from REDIS_SENTINEL_PASSWORD_FILE ({path}): changed"
        ),
    );
    assert_ready_within(&gw, Duration::from_secs(5));
    assert_eq!(
        count_lines(&gw, "Redis reconnection attempt"),
        1,
        "{}",
        gw.output()
    );
    assert_eq!(reloads(&gw, "REDIS_SENTINEL_PASSWORD_FILE", "changed"), 1.0);
    assert_no_password(&gw);
}

#[test]
fn a_rotated_cluster_password_is_read_from_the_mounted_file() {
    // Arrange: every node requires FIRST.
    let mut set = RedisClusterSet::start_with_password(Some(FIRST));
    let mut mount = MountedSecret::new(&[("url", &redis_url(&set.nodes[0], FIRST))]);
    let path = mount.path("url").display().to_string();
    let nodes: Vec<String> = set
        .ports()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis-cluster")
        .env("REDIS_CLUSTER_NODES", nodes.join(","))
        .env("REDIS_URL_FILE", path.clone())
        .env("REDIS_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("REDIS_RETRY_MAX_INTERVAL_MS", "60000")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));

    // Act: the nodes, then the file, then the connections.
    set.set_password(SECOND);
    mount.update(&[("url", &redis_url(&set.nodes[0], SECOND))]);
    for node in &set.nodes {
        node.drop_clients();
    }

    // Assert: the new node connections read the file, and stay up.
    assert_redis_url_rotated(&gw, &path);
}

#[test]
fn a_master_password_refused_behind_sentinel_waits_for_the_file_then_connects_anew() {
    // Arrange: the password changes on the servers and the sessions end
    // BEFORE the file changes (the master's reconnection is refused).
    let (mut set, mut mount, path, gw) = rotating_sentinel_master();
    set.set_master_password(SECOND);
    set.master.drop_clients();
    let first = expect_line(&gw, "Redis reconnection attempt 1 failed");
    assert!(
        first.contains("retrying in 60 s or as soon as a secret file changes"),
        "{first}"
    );

    // Act
    mount.update(&[("url", &redis_url(&set.master, SECOND))]);

    // Assert: a new connection to the master, with the new password, at
    // once (not in 60 s).
    assert_redis_url_rotated(&gw, &path);
}

/// A file holding CA 1 and CA 2, for the servers to trust both while their
/// certificates change.
fn server_bundle(old: &Pki, new: &Pki) -> std::path::PathBuf {
    let path = new.dir().join("servers-bundle.crt");
    std::fs::write(&path, concat(&[&old.ca, &new.ca])).unwrap();
    path
}

/// After a CA rotated in the mount at `ca_path` (the servers on CA 2, the
/// connections dropped): the INFO line; within 5 s a new connection of the
/// gateway's, which took the new certificate, on each of `servers`; ready,
/// and still after another 500 ms of checks; counted once.
fn assert_redis_ca_rotated(gw: &Gateway, ca_path: &str, servers: &[&Redis]) {
    let line = format!("Redis certificate re-read from REDIS_TLS_CA_CERT ({ca_path}): changed");
    expect_line(gw, &line);
    assert!(
        crate::support::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            servers.iter().all(|s| s.tls_clients() > 0)
        }),
        "no new connection on every server:\n{}",
        gw.output()
    );
    assert_ready_within(gw, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_ready_within(gw, Duration::from_secs(1));
    assert_eq!(reloads(gw, "REDIS_TLS_CA_CERT", "changed"), 1.0);
}

#[test]
fn a_redis_cluster_ca_rotated_with_an_overlap_bundle_follows_the_nodes_new_certificates() {
    // Arrange: every node (clients and bus over TLS) on a certificate of
    // CA 1; the mount trusts CA 1.
    let (old, new) = (Pki::generate(), Pki::generate());
    let mut set = RedisClusterSet::start_tls(&old);
    let mut mount = MountedSecret::new(&[("ca.crt", &std::fs::read(&old.ca).unwrap())]);
    let ca_path = mount.path("ca.crt").display().to_string();
    let nodes: Vec<String> = set
        .ports()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis-cluster")
        .env("REDIS_CLUSTER_NODES", nodes.join(","))
        .env("REDIS_URL", set.nodes[0].url())
        .env("REDIS_TLS_CA_CERT", ca_path.clone())
        .env("REDIS_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert_ready_within(&gw, Duration::from_secs(10));

    // Act: the bundle of both CAs in the mount; every node trusting both
    // (so that the bus keeps working), then on a certificate of CA 2; then
    // the connections dropped.
    mount.update(&[("ca.crt", &concat(&[&old.ca, &new.ca]))]);
    let both = server_bundle(&old, &new);
    set.set_tls(&old, &both);
    set.set_tls(&new, &both);
    set.drop_clients();

    // Assert: a new cluster client that trusts the bundle replaces the one
    // the application holds (whose reconnections keep CA 1), and connects
    // to every node.
    let nodes: Vec<&Redis> = set.nodes.iter().collect();
    assert_redis_ca_rotated(&gw, &ca_path, &nodes);
    assert!(set.wait_state("ok", Duration::from_secs(1)));
}

#[test]
fn a_redis_sentinel_ca_rotated_with_an_overlap_bundle_follows_the_servers_new_certificates() {
    // Arrange: master, replica and sentinels over TLS on certificates of
    // CA 1; the mount trusts CA 1, for the sentinels and the master alike.
    let (old, new) = (Pki::generate(), Pki::generate());
    let mut set = SentinelSet::start_tls(&old);
    let mut mount = MountedSecret::new(&[("ca.crt", &std::fs::read(&old.ca).unwrap())]);
    let ca_path = mount.path("ca.crt").display().to_string();
    let gw = sentinel_gateway(
        &set,
        &[
            ("REDIS_URL", set.master.url()),
            ("REDIS_TLS_CA_CERT", ca_path.clone()),
        ],
    );

    // Act: the bundle of both CAs in the mount; every server trusting both,
    // then on a certificate of CA 2 (the sentinels restarted); then the
    // master's connections dropped.
    mount.update(&[("ca.crt", &concat(&[&old.ca, &new.ca]))]);
    let both = server_bundle(&old, &new);
    set.set_tls(&old, &both);
    set.set_tls(&new, &both);
    set.master.drop_clients();

    // Assert: the sentinels are asked with the bundle, and the master's
    // manager is replaced by one that trusts it; no certificate refused.
    assert_redis_ca_rotated(&gw, &ca_path, &[&set.master]);
    assert!(
        !gw.output().contains("invalid peer certificate"),
        "{}",
        gw.output()
    );
    assert_eq!(set.master_port(), Some(set.master.port()));
}
