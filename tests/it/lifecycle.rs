//! Issue "Process lifecycle": the port is bound before any dependency
//! attempt; stop signals exit 0 from the first instruction of `main`, SIGHUP
//! included; a stop while serving drains as Kubernetes needs it; nothing
//! from outside forges a log line; `check` takes flags after it.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::web;
use nix::sys::signal::Signal;

use crate::startup::{PortWatch, lines_with, refused_postgres_url};
use crate::support::{BlackHole, Gateway, InProcess, StartingUpPostgres, inprocess, wait_until};

// ------------------------------------------------------------ bind first

/// Asserts a quick exit 78 naming `variable`, with no dependency attempt.
fn assert_fails_before_any_attempt(gw: &Gateway, hole: &BlackHole, variable: &str) {
    let code = gw.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(78), "{}", gw.output());
    assert!(
        gw.started_at().elapsed() < Duration::from_secs(1),
        "took {:?}",
        gw.started_at().elapsed()
    );
    let errors = lines_with(gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(errors[0].contains(&format!("{variable}=")), "{}", errors[0]);
    assert!(errors[0].contains("exiting with code 78"), "{}", errors[0]);
    assert!(
        lines_with(gw, "connection failed").is_empty(),
        "{}",
        gw.output()
    );
    assert_eq!(hole.connections(), 0, "a dependency was attempted");
}

#[test]
fn a_taken_port_exits_78_at_once_whatever_the_database_does() {
    // Arrange: the port is someone else's; the database would hang.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let hole = BlackHole::start();

    // Act
    let gw = Gateway::builder()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", hole.postgres_url())
        .env("DB_MAX_RETRIES", "3")
        .env("DB_RETRY_INTERVAL_MS", "1000")
        .spawn();

    // Assert
    assert_fails_before_any_attempt(&gw, &hole, "PORT");
}

#[test]
fn an_unresolvable_host_exits_78_at_once_whatever_the_database_does() {
    let hole = BlackHole::start();
    let gw = Gateway::builder()
        .env("HOST", "no-such-host.invalid")
        .env("DATABASE_URL", hole.postgres_url())
        .spawn();
    assert_fails_before_any_attempt(&gw, &hole, "HOST");
}

#[test]
fn the_port_refuses_connections_while_a_dependency_is_down() {
    // Arrange: a database that never answers, attempts of 10 s.
    let hole = BlackHole::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", hole.postgres_url())
        .env("DB_CONNECT_TIMEOUT_MS", "10000")
        .spawn();
    let watch = PortWatch::start(gw.port());
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || hole.connections() > 0
    ));

    // Act
    std::thread::sleep(Duration::from_millis(300));

    // Assert
    assert!(
        !watch.opened(),
        "the port accepted a connection before ready"
    );
    assert!(gw.is_running());
}

#[test]
fn port_0_serves_on_the_port_the_ready_line_prints() {
    // Arrange
    let gw = Gateway::builder().env("PORT", "0").spawn();

    // Act
    let ready = gw
        .wait_for_line("Ready: ", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{}", gw.output()));

    // Assert
    let port: u16 = ready
        .rsplit("http://127.0.0.1:")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {ready}"));
    assert_ne!(port, 0);
    let reply = crate::support::gateway::http_request(port, "GET", "/health", &[]).unwrap();
    assert_eq!(reply.status, 200);
}

// --------------------------------------------------------------- signals

/// Whether the process catches SIGTERM, SIGINT and SIGHUP (its handlers from
/// the first instruction of `main` are in place).
fn catches_stop_signals(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        // Bits: SIGHUP 1, SIGINT 2, SIGTERM 15 (bit n-1).
        .is_some_and(|mask| mask & 0x4003 == 0x4003)
}

#[test]
fn a_stop_signal_in_the_first_milliseconds_exits_0() {
    // The process reads settings, starts logging and the actix System in
    // its first milliseconds: today's window. A signal before `main` (the
    // loader's time) can be caught by no program, so each signal waits, if
    // need be, until the handlers are in place, then goes at once.
    let mut sent_before_handlers = 0;
    for delay_ms in [1, 2, 3, 5] {
        for round in 0..12 {
            // Arrange
            let signal = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP][round % 3];
            let gw = Gateway::builder()
                .env("DATABASE_URL", refused_postgres_url())
                .env("DB_MAX_RETRIES", "100")
                .spawn();
            let spawned = gw.started_at();
            while spawned.elapsed() < Duration::from_millis(delay_ms) {
                std::hint::spin_loop();
            }
            if !catches_stop_signals(gw.pid()) {
                sent_before_handlers += 1;
                assert!(wait_until(
                    Duration::from_secs(5),
                    Duration::from_micros(50),
                    || catches_stop_signals(gw.pid())
                ));
            }

            // Act
            gw.signal(signal);
            let code = gw.wait_exit(Duration::from_secs(5));

            // Assert: exit 0, never death by the signal (wait_exit panics).
            assert_eq!(code, Some(0), "{signal} at {delay_ms} ms: {}", gw.output());
        }
    }
    // Not an assertion: the loader's share depends on the machine's load.
    println!("{sent_before_handlers} of 48 signals waited for the handlers");
}

#[test]
fn the_handlers_are_in_place_before_the_settings_are_read() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;

    // Arrange: a bad setting, and a stderr pipe already full, so the process
    // blocks writing its configuration error: after reading the settings,
    // before its gateway (and its tokio signal handlers) exist.
    let (mut reader, writer) = std::io::pipe().unwrap();
    let fill = vec![b'.'; 4096];
    nix::fcntl::fcntl(
        &writer,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    while nix::unistd::write(&writer, &fill).is_ok() {}
    nix::fcntl::fcntl(
        &writer,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::support::gateway::GATEWAY_BIN)
        .env_clear()
        .env("DB_MAX_RETRIES", "many")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let pid = child.id();
    let blocked = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/wchan"))
            .is_ok_and(|w| w.contains("pipe_write"))
    });
    assert!(blocked, "the process never blocked writing its error");

    // Act
    let caught = catches_stop_signals(pid);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let drain = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let status = child.wait().unwrap();
    let output = drain.join().unwrap();

    // Assert: caught, so the configuration error decides the exit code.
    assert!(
        caught,
        "SIGTERM/SIGINT/SIGHUP not caught while the settings are read"
    );
    assert_eq!(status.signal(), None, "killed by the signal: {output}");
    assert_eq!(status.code(), Some(78), "{output}");
    assert!(output.contains("DB_MAX_RETRIES=\"many\""), "{output}");
}

// ------------------------------------------------- Kubernetes-shaped stop

/// An in-process gateway with `/sleep/{ms}` and `/fast`, and the given
/// shutdown settings.
fn drained_gateway(delay_ms: u64, timeout_ms: u64) -> InProcess {
    let dir = tempfile::tempdir().unwrap().keep();
    InProcess::spawn(
        &[
            format!("--database-url=sqlite://{}/gw.db", dir.display()),
            "--cache-type=none".into(),
            format!("--shutdown-delay-ms={delay_ms}"),
            format!("--shutdown-timeout-ms={timeout_ms}"),
        ],
        |cfg| {
            cfg.route(
                "/sleep/{ms}",
                web::get().to(|ms: web::Path<u64>| async move {
                    actix_rt::time::sleep(Duration::from_millis(ms.into_inner())).await;
                    "finished"
                }),
            )
            .route("/fast", web::get().to(|| async { "fast" }));
        },
    )
}

/// `GET path` on a thread of its own; the test goes on 200 ms later.
fn in_flight(gw: &InProcess, path: &str) -> std::thread::JoinHandle<(u16, String)> {
    let url = gw.url(path);
    let request = std::thread::spawn(move || inprocess::get(&inprocess::agent(), &url));
    std::thread::sleep(Duration::from_millis(200));
    request
}

fn sigterm_to_this_process() -> Instant {
    let sent = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGTERM).unwrap();
    sent
}

fn get(gw: &InProcess, path: &str) -> (u16, String) {
    inprocess::get(&inprocess::agent(), &gw.url(path))
}

#[test]
fn a_stop_serves_on_with_ready_503_for_the_delay_then_lets_in_flight_requests_finish() {
    // Arrange: 800 ms of delay, 3 s for in-flight requests, and a request
    // that takes 1.5 s.
    let gw = drained_gateway(800, 3000);
    let slow = in_flight(&gw, "/sleep/1500");

    // Act
    let sent = sigterm_to_this_process();

    // Assert: during the delay /ready says draining, everything else serves.
    std::thread::sleep(Duration::from_millis(150));
    let (status, body) = get(&gw, "/ready");
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "draining"
    );
    assert_eq!(get(&gw, "/health").0, 200);
    assert_eq!(get(&gw, "/fast"), (200, "fast".into()));
    assert!(
        sent.elapsed() < Duration::from_millis(800),
        "the checks took too long"
    );

    // ... after it, the port is closed while the slow request finishes.
    std::thread::sleep(Duration::from_millis(800) - sent.elapsed().min(Duration::from_millis(800)));
    assert!(
        wait_until(
            Duration::from_millis(500),
            Duration::from_millis(20),
            || { get(&gw, "/fast").0 == 0 }
        ),
        "still accepting after the delay"
    );
    assert_eq!(slow.join().unwrap(), (200, "finished".to_owned()));
    assert_eq!(gw.server.join().unwrap(), 0);
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(1300 - 200), "{took:?}");
    assert!(took < Duration::from_millis(800 + 3000), "{took:?}");
}

#[test]
fn a_request_stuck_past_the_shutdown_timeout_is_cut_and_the_process_exits_0() {
    // Arrange: 300 ms of delay, 100 ms for in-flight requests (actix-web's
    // own drain timeout counts whole seconds: it would take 1 s more), and a
    // request that would take a minute.
    let gw = drained_gateway(300, 100);
    let stuck = in_flight(&gw, "/sleep/60000");

    // Act
    let sent = sigterm_to_this_process();
    let code = gw.server.join().unwrap();
    let took = sent.elapsed();

    // Assert
    assert_eq!(code, 0);
    assert!(took >= Duration::from_millis(300 + 100), "{took:?}");
    assert!(took < Duration::from_millis(300 + 100 + 600), "{took:?}");
    let (status, _) = stuck.join().unwrap();
    assert_ne!(status, 200, "the stuck request was not cut");
}

#[test]
fn a_second_signal_stops_at_once() {
    // Arrange: a 10 s delay that the second signal cuts short.
    let gw = drained_gateway(10_000, 10_000);
    let first = sigterm_to_this_process();
    assert!(wait_until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        || get(&gw, "/ready").0 == 503
    ));
    assert_eq!(get(&gw, "/health").0, 200, "still serving during the delay");

    // Act
    let second = sigterm_to_this_process();
    let code = gw.server.join().unwrap();

    // Assert
    assert_eq!(code, 0);
    assert!(
        second.elapsed() < Duration::from_millis(500),
        "{:?}",
        second.elapsed()
    );
    assert!(
        first.elapsed() < Duration::from_secs(3),
        "{:?}",
        first.elapsed()
    );
}

/// The actors still alive at the stop (the dependency checks) are dropped
/// with the runtime; a SQLite connection closes through the runtime's
/// blocking pool, which used to panic there ("there is no reactor running")
/// once a runtime check had run, at every stop of a default gateway.
#[test]
fn a_stop_after_runtime_checks_exits_0_without_a_panic() {
    // Arrange: SQLite (the default), checked every 50 ms.
    let gw = Gateway::builder()
        .env("HEALTH_CHECK_INTERVAL_MS", "50")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    std::thread::sleep(Duration::from_millis(300));

    // Act
    gw.signal(Signal::SIGTERM);
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(0), "{}", gw.output());
    assert!(
        gw.wait_for_line("Stopped", Duration::ZERO).is_some(),
        "{}",
        gw.output()
    );
    assert!(!gw.output().contains("panicked"), "{}", gw.output());
}

// ------------------------------------------------------------ log lines

/// Every line of `gw` starts with this run's timestamp and a level.
fn assert_no_forged_line(gw: &Gateway) {
    for line in gw.lines() {
        let (stamp, rest) = line.split_once(' ').unwrap_or_default();
        assert!(
            stamp.starts_with("20") && !stamp.starts_with("2001-02-03"),
            "a line that readygate did not start: {line:?}"
        );
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .iter()
                .any(|level| rest.starts_with(level)),
            "{line:?}"
        );
    }
}

#[test]
fn a_setting_with_a_newline_exits_78_without_forging_a_line() {
    // Arrange
    let forged = "2001-02-03T04:05:06.789Z INFO  Ready: all up";
    let gw = Gateway::builder()
        .env(
            "DATABASE_URL",
            format!("postgres://app:pw-1234@db/app\n{forged}"),
        )
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(5));

    // Assert
    assert_eq!(code, Some(78), "{}", gw.output());
    assert_eq!(gw.lines().len(), 1, "{}", gw.output());
    let line = &gw.lines()[0];
    assert!(line.contains("DATABASE_URL="), "{line}");
    assert!(line.contains("contains a control character"), "{line}");
    assert!(!line.contains("pw-1234"), "{line}");
    assert_no_forged_line(&gw);
}

#[test]
fn a_server_message_with_a_newline_is_escaped_in_the_log() {
    // Arrange: a "PostgreSQL" whose error message holds a line of its own.
    let fake = StartingUpPostgres::with_error(
        "57P03",
        "starting up\n2001-02-03T04:05:06.789Z INFO  Ready: all up",
    );
    let gw = Gateway::builder()
        .env("DATABASE_URL", fake.url())
        .env("DB_MAX_RETRIES", "2")
        .env("DB_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert_no_forged_line(&gw);
    let attempt = &lines_with(&gw, "(attempt 1/2)")[0];
    assert!(
        attempt.contains(r"starting up\n2001-02-03T04:05:06.789Z INFO  Ready: all up"),
        "{attempt}"
    );
}

// ----------------------------------------------------------------- check

#[test]
fn check_takes_the_settings_after_the_subcommand_too() {
    let gw = Gateway::builder()
        .args(&[
            "check",
            "--database-url",
            &refused_postgres_url(),
            "--db-max-retries",
            "2",
            "--db-retry-interval-ms",
            "100",
        ])
        .spawn();
    gw.expect_exit(69, Duration::from_secs(10));
    assert_eq!(
        lines_with(&gw, "DB connection failed (attempt 1/2), retrying in 0.1 s").len(),
        1,
        "{}",
        gw.output()
    );
}
