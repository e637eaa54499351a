//! Issue 16, "Retry policy v2": exponential back-off, jitter, the start-up
//! deadline, the same policy when reconnecting at runtime, and "too many
//! connections" as a transient, named cause. Schedules are read from the
//! timestamped log lines, with lenient bounds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::startup::{lines_with, refused_postgres_url};
use crate::support::gateway::Line;
use crate::support::postgres::HeldSession;
use crate::support::{BlackHole, Gateway, Postgres, Redis, wait_until};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// The timed lines, from index `from` on, that contain `needle`.
fn timed(gw: &Gateway, from: usize, needle: &str) -> Vec<Line> {
    gw.timed_lines()
        .into_iter()
        .skip(from)
        .filter(|l| l.text.contains(needle))
        .collect()
}

/// The wait a line announces: `retrying in 0.25 s` -> 250 ms.
fn printed_wait(line: &str) -> Duration {
    let rest = line
        .split("retrying in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no wait in {line}"));
    let seconds: f64 = rest
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line}"));
    Duration::from_secs_f64(seconds)
}

/// The time between two lines, by the gateway's own timestamps.
fn logged_gap(first: &Line, second: &Line) -> Duration {
    second.logged_since(first)
}

/// How long start-up took by the gateway's own clock: from its `Starting`
/// line (logged just after the dependency actors started) to its `ERROR`.
fn start_up_took(gw: &Gateway) -> Duration {
    let start = timed(gw, 0, "INFO  Starting: ");
    let end = timed(gw, 0, "ERROR Start-up failed: ");
    assert!(!start.is_empty() && !end.is_empty(), "{}", gw.output());
    logged_gap(&start[0], &end[0])
}

/// The time between consecutive lines holds the wait each announced: at
/// least the wait (timestamps are cut to the millisecond), at most the wait
/// plus generous slack for a loaded machine.
fn assert_gaps_follow_the_waits(lines: &[Line]) {
    for pair in lines.windows(2) {
        let wait = printed_wait(&pair[0].text);
        let gap = logged_gap(&pair[0], &pair[1]);
        assert!(
            gap + MS(1) >= wait,
            "gap {gap:?} < announced {wait:?}: {}",
            pair[0].text
        );
        assert!(
            gap < wait + MS(400),
            "gap {gap:?} >> announced {wait:?}: {}",
            pair[0].text
        );
    }
}

/// A gateway with `env` against a database port where nothing listens:
/// waits for its exit 69 and returns it with its `attempts` failure lines.
fn refused_start_up(env: &[(&str, &str)], attempts: usize) -> (Gateway, Vec<Line>) {
    let mut builder = Gateway::builder().env("DATABASE_URL", refused_postgres_url());
    for (key, value) in env {
        builder = builder.env(*key, *value);
    }
    let gw = builder.spawn();
    gw.expect_exit(69, Duration::from_secs(20));
    let lines = timed(&gw, 0, "DB connection failed");
    assert_eq!(lines.len(), attempts, "{}", gw.output());
    (gw, lines)
}

#[test]
fn the_seeds_settings_log_the_seeds_line() {
    // Arrange: the seed's scenario, which the defaults must reproduce.
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "10")
        .env("DB_RETRY_INTERVAL_MS", "5000")
        .spawn();

    // Act
    let line = gw.wait_for_line("DB connection failed", Duration::from_secs(10));
    gw.signal(Signal::SIGTERM);

    // Assert
    let line = line.unwrap_or_else(|| panic!("{}", gw.output()));
    let (_, message) = line.split_once(" WARN  ").unwrap();
    assert!(
        message.starts_with("DB connection failed (attempt 1/10), retrying in 5 s: "),
        "{line}"
    );
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn exponential_back_off_doubles_each_wait_up_to_the_cap() {
    // Arrange + Act: 100 ms doubling, capped at 400 ms.
    let (gw, attempts) = refused_start_up(
        &[
            ("DB_MAX_RETRIES", "6"),
            ("DB_RETRY_INTERVAL_MS", "100"),
            ("DB_RETRY_BACKOFF", "exponential"),
            ("DB_RETRY_MAX_INTERVAL_MS", "400"),
        ],
        6,
    );

    // Assert
    let waits: Vec<_> = attempts[..5]
        .iter()
        .map(|l| printed_wait(&l.text))
        .collect();
    assert_eq!(waits, [MS(100), MS(200), MS(400), MS(400), MS(400)]);
    assert!(
        !attempts[5].text.contains("retrying"),
        "{}",
        attempts[5].text
    );
    assert_gaps_follow_the_waits(&attempts);
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains("database unavailable after 6 attempts in 1."),
        "{}",
        errors[0]
    );
}

#[test]
fn jitter_draws_each_wait_around_its_base_and_logs_the_wait_used() {
    // Arrange + Act: 100 ms doubling to 800 ms, each wait +-50 %; JSON
    // logs, so that delay_ms can be compared with the text.
    let (_, attempts) = refused_start_up(
        &[
            ("DB_MAX_RETRIES", "7"),
            ("DB_RETRY_INTERVAL_MS", "100"),
            ("DB_RETRY_BACKOFF", "exponential"),
            ("DB_RETRY_MAX_INTERVAL_MS", "800"),
            ("DB_RETRY_JITTER", "0.5"),
            ("LOG_FORMAT", "json"),
        ],
        7,
    );

    // Assert
    let bases = [100u64, 200, 400, 800, 800, 800];
    for (line, base) in attempts.iter().zip(bases) {
        let json: serde_json::Value = serde_json::from_str(&line.text).unwrap();
        let message = json["message"].as_str().unwrap();
        let wait = printed_wait(message);
        assert_eq!(json["delay_ms"].as_u64(), Some(wait.as_millis() as u64));
        assert!(
            (MS(base / 2)..=MS(base * 3 / 2)).contains(&wait),
            "{wait:?} outside {base} ms +-50 %: {message}"
        );
    }
    assert_gaps_follow_the_waits(&attempts);
}

#[test]
fn jitter_takes_a_fixed_grid_out_of_step() {
    // Arrange + Act: 200 ms +-50 %.
    let (_, attempts) = refused_start_up(
        &[
            ("DB_MAX_RETRIES", "10"),
            ("DB_RETRY_INTERVAL_MS", "200"),
            ("DB_RETRY_JITTER", "0.5"),
        ],
        10,
    );

    // Assert: the waits differ (9 draws from 201 values) and stay in range.
    let mut waits: Vec<_> = attempts[..9]
        .iter()
        .map(|l| printed_wait(&l.text))
        .collect();
    assert!(
        waits.iter().all(|w| (MS(100)..=MS(300)).contains(w)),
        "{waits:?}"
    );
    assert_gaps_follow_the_waits(&attempts);
    waits.sort();
    waits.dedup();
    assert!(waits.len() >= 3, "the waits are not drawn: {waits:?}");
}

#[test]
fn the_deadline_ends_start_up_shortening_the_last_wait() {
    // Arrange: attempts 400 ms apart, refused at once, within 1 s. After
    // the attempts at 0 and 0.4 s, the one at 0.8 s fails with 0.2 s left:
    // a full wait would pass the deadline, so the last attempt starts its
    // timeout (100 ms) before it, at 0.9 s.
    let (gw, attempts) = refused_start_up(
        &[
            ("DB_MAX_RETRIES", "1000"),
            ("DB_RETRY_INTERVAL_MS", "400"),
            ("DB_CONNECT_TIMEOUT_MS", "100"),
            ("DB_STARTUP_TIMEOUT_MS", "1000"),
        ],
        4,
    );

    // Assert
    assert!(
        attempts[0]
            .text
            .contains("(attempt 1/1000), retrying in 0.4 s")
    );
    assert!(
        attempts[1]
            .text
            .contains("(attempt 2/1000), retrying in 0.4 s")
    );
    let shortened = printed_wait(&attempts[2].text);
    assert!(
        shortened < MS(200),
        "the last wait was not shortened: {}",
        attempts[2].text
    );
    assert!(
        !attempts[3].text.contains("retrying"),
        "{}",
        attempts[3].text
    );
    assert_gaps_follow_the_waits(&attempts);
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(
        errors[0].contains("database unavailable after 4 attempts in 0.")
            && errors[0].contains(": DB_STARTUP_TIMEOUT_MS (1 s) reached first (connection refused x4); exiting with code 69"),
        "{}",
        errors[0]
    );
    let took = start_up_took(&gw);
    assert!(took >= MS(850), "gave up after {took:?}");
    assert!(took <= MS(1000 + 150), "deadline overrun: {took:?}");
}

/// An attempt that hangs (a server that accepts and never answers) is cut
/// at the deadline, well before its own timeout; the ERROR line names the
/// deadline variable of `label`'s dependency.
fn an_attempt_at_the_deadline_is_cut(dependency: &str, gw: Gateway, what: &str, var: &str) {
    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let failed = lines_with(
        &gw,
        &format!("{dependency} connection failed (attempt 1/50): "),
    );
    assert_eq!(failed.len(), 1, "{}", gw.output());
    // Cut at what was left of the 0.7 s when it began.
    assert!(
        failed[0].contains(": stopped at the start-up deadline after 0.6")
            || failed[0].ends_with(": stopped at the start-up deadline after 0.7 s"),
        "{}",
        failed[0]
    );
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains(&format!("{what} unavailable after 1 attempt in 0.7"))
            && errors[0].contains(&format!(
                ": {var} (0.7 s) reached first (stopped at the deadline x1); exiting with code 69"
            )),
        "{}",
        errors[0]
    );
    let took = start_up_took(&gw);
    assert!(took >= MS(650), "{took:?}");
    assert!(took <= MS(700 + 150), "the attempt was not cut: {took:?}");
}

#[test]
fn a_database_attempt_running_at_the_deadline_is_cut() {
    let hole = BlackHole::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", hole.postgres_url())
        .env("DB_MAX_RETRIES", "50")
        .env("DB_CONNECT_TIMEOUT_MS", "5000")
        .env("DB_STARTUP_TIMEOUT_MS", "700")
        .spawn();
    an_attempt_at_the_deadline_is_cut("DB", gw, "database", "DB_STARTUP_TIMEOUT_MS");
}

#[test]
fn a_redis_attempt_running_at_the_deadline_is_cut() {
    let hole = BlackHole::start();
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", hole.redis_url())
        .env("REDIS_MAX_RETRIES", "50")
        .env("REDIS_CONNECT_TIMEOUT_MS", "5000")
        .env("REDIS_STARTUP_TIMEOUT_MS", "700")
        .spawn();
    an_attempt_at_the_deadline_is_cut("Redis", gw, "Redis cache", "REDIS_STARTUP_TIMEOUT_MS");
}

#[test]
fn attempts_running_out_before_the_deadline_are_named() {
    let (gw, _) = refused_start_up(
        &[
            ("DB_MAX_RETRIES", "2"),
            ("DB_RETRY_INTERVAL_MS", "100"),
            ("DB_STARTUP_TIMEOUT_MS", "60000"),
        ],
        2,
    );
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains(
            ": DB_MAX_RETRIES reached first (connection refused x2); exiting with code 69"
        ),
        "{}",
        errors[0]
    );
}

#[test]
fn reconnection_backs_off_from_the_interval_again_for_each_outage() {
    // Arrange: checks every 100 ms; reconnection waits 100 ms doubling to
    // 400 ms.
    let mut pg = Postgres::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .env("DB_RETRY_BACKOFF", "exponential")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .env("DB_RETRY_MAX_INTERVAL_MS", "400")
        .env("DB_CONNECT_TIMEOUT_MS", "1000")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );

    for outage in 1..=2 {
        // Act: the server goes away...
        let from = gw.line_count();
        pg.stop();
        assert!(
            gw.wait_for_line_from(
                from,
                "DB reconnection attempt 3 failed",
                Duration::from_secs(10)
            )
            .is_some(),
            "outage {outage}: {}",
            gw.output()
        );

        // Assert: lost, then reconnection attempts after 100 (the interval:
        // promptly), 200 and 400 ms, each line announcing the next wait.
        let lost = timed(&gw, from, "DB connection lost: ");
        let attempts = timed(&gw, from, "DB reconnection attempt ");
        assert_eq!(lost.len(), 1, "outage {outage}: {}", gw.output());
        let waits: Vec<_> = attempts[..3]
            .iter()
            .map(|l| printed_wait(&l.text))
            .collect();
        assert_eq!(waits, [MS(200), MS(400), MS(400)], "outage {outage}");
        let first = logged_gap(&lost[0], &attempts[0]);
        assert!(
            first + MS(1) >= MS(100) && first < MS(100 + 250),
            "outage {outage}: first reconnection after {first:?}"
        );
        assert_gaps_follow_the_waits(&attempts[..3]);

        // ...and comes back.
        pg.start_server();
        assert!(
            gw.wait_for_line_from(
                from,
                "DB connection restored after ",
                Duration::from_secs(10)
            )
            .is_some(),
            "outage {outage}: {}",
            gw.output()
        );
        assert!(gw.wait_for_status("/ready", 200, Duration::from_secs(5)));
    }
}

/// A server with no connection slot left (`settings` lead a gateway to it,
/// `prefix` names its retry settings): a gateway with 3 attempts retries
/// with the policy and gives up naming `tally` (its log lines holding
/// `cause`); one that waits gets in once `free` has released a slot.
fn no_slot_left(
    settings: &[(&str, String)],
    prefix: &str,
    (cause, tally): (&str, &str),
    free: impl FnOnce(),
) {
    let gateway = |max_retries: &str| {
        let mut builder = Gateway::builder()
            .env(format!("{prefix}_MAX_RETRIES"), max_retries)
            .env(format!("{prefix}_RETRY_INTERVAL_MS"), "100");
        for (key, value) in settings {
            builder = builder.env(*key, value.clone());
        }
        builder.spawn()
    };

    // Act + Assert: retried, then given up with the cause named.
    let gw = gateway("3");
    gw.expect_exit(69, Duration::from_secs(10));
    let retried = lines_with(&gw, "retrying in 0.1 s: ");
    assert_eq!(retried.len(), 2, "{}", gw.output());
    assert!(retried[0].contains(cause), "{}", retried[0]);
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains(&format!("({tally} x3)")),
        "{}",
        errors[0]
    );

    // Act + Assert: a gateway that waits gets in once a slot is free.
    let gw = gateway("100");
    assert!(
        gw.wait_for_line("(attempt 2/100), retrying", Duration::from_secs(10))
            .is_some(),
        "{}",
        gw.output()
    );
    let freed = Instant::now();
    free();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{} (freed {:?} ago)",
        gw.output(),
        freed.elapsed()
    );
}

#[test]
fn postgres_out_of_connection_slots_is_retried_and_named() {
    // Arrange: a real server with two connection slots, both held.
    let pg = Postgres::start_with(&[
        ("max_connections", "2"),
        ("superuser_reserved_connections", "0"),
    ]);
    // A holder that lost the race for a slot (to the check's own session,
    // or to the backend of a check still ending) exits: start another
    // until both slots are held. The server refusing a session while both
    // holders run is not enough: a holder that lost may not have exited
    // yet, and the backend that beat it ends a moment later (seen under
    // load: the gateway then got a slot). So both must hold, and the
    // server refuse, again half a second later.
    let full = |held: &mut Vec<HeldSession>| {
        pg.psql_tcp("postgres", None, "SELECT 1")
            .is_err_and(|e| e.contains("too many clients"))
            && held.iter_mut().all(HeldSession::is_alive)
    };
    let mut held = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), MS(50), || {
            held.retain_mut(|h: &mut HeldSession| h.is_alive());
            while held.len() < 2 {
                held.push(pg.hold_session());
            }
            full(&mut held) && {
                std::thread::sleep(MS(500));
                full(&mut held)
            }
        }),
        "the slots did not fill"
    );

    // Act + Assert
    no_slot_left(
        &[("DATABASE_URL", pg.url())],
        "DB",
        (
            "SQLSTATE 53300",
            "sorry, too many clients already (SQLSTATE 53300)",
        ),
        || drop(held),
    );
}

/// A client connection Redis has registered (it answered `PING`).
fn redis_client(redis: &Redis) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"PING\r\n").ok()?;
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).ok()?;
    reply[..n].starts_with(b"+PONG").then_some(stream)
}

#[test]
fn redis_out_of_client_slots_is_retried_and_named() {
    // Arrange: a real Redis that takes one client, and that client held.
    let redis = Redis::start();
    let reply = redis
        .command(&["CONFIG", "SET", "maxclients", "1"])
        .unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    let mut held = None;
    assert!(wait_until(Duration::from_secs(5), MS(20), || {
        held = redis_client(&redis);
        held.is_some()
    }));

    // Act + Assert
    no_slot_left(
        &[
            ("CACHE_TYPE", "redis".to_owned()),
            ("REDIS_URL", redis.url()),
        ],
        "REDIS",
        (
            "max number of clients reached",
            "max number of clients reached",
        ),
        || drop(held),
    );
}
