//! Issue "Startup supervisor core": retries, log lines, exit codes, HTTP
//! gating, `.env`, signals, the SQLite default.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Gateway, Postgres, free_port};

/// A PostgreSQL URL where nothing listens: every attempt is refused.
pub fn refused_postgres_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", free_port())
}

/// Watches `port` until dropped; `opened()` says whether it ever accepted.
pub struct PortWatch {
    opened: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl PortWatch {
    pub fn start(port: u16) -> PortWatch {
        let opened = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, s) = (opened.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if crate::support::port_is_open(port) {
                    o.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PortWatch { opened, stop }
    }

    pub fn opened(&self) -> bool {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for PortWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Lines containing `needle`.
pub fn lines_with(gw: &Gateway, needle: &str) -> Vec<String> {
    gw.lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

#[test]
fn unreachable_database_is_tried_n_times_then_exits_69_without_opening_the_port() {
    // Arrange
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "4")
        .env("DB_RETRY_INTERVAL_MS", "150")
        .spawn();
    let watch = PortWatch::start(gw.port());

    // Act
    let code = gw.wait_exit(Duration::from_secs(20));
    let elapsed = gw.started_at().elapsed();

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert!(
        !watch.opened(),
        "the HTTP port opened although the database never came up"
    );
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(attempts.len(), 4, "{}", gw.output());
    for (i, line) in attempts.iter().take(3).enumerate() {
        let want = format!(
            "WARN  DB connection failed (attempt {}/4), retrying in 0.15 s: ",
            i + 1
        );
        assert!(line.contains(&want), "{line}");
        assert!(
            line.contains("Connection refused"),
            "cause chain missing: {line}"
        );
    }
    assert!(
        attempts[3].contains("DB connection failed (attempt 4/4): "),
        "{}",
        attempts[3]
    );
    assert!(!attempts[3].contains("retrying"), "{}", attempts[3]);
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(
        errors[0].contains("database unavailable after 4 attempts in 0."),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("(connection refused x4)"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("exiting with code 69"), "{}", errors[0]);
    assert!(
        elapsed >= Duration::from_millis(450),
        "3 waits of 150 ms took only {elapsed:?}"
    );
}

#[test]
fn database_that_comes_up_late_is_waited_for_and_then_served() {
    // Arrange
    let mut pg = Postgres::reserve();
    let gw = Gateway::builder()
        .env("DATABASE_URL", pg.url())
        .env("DB_MAX_RETRIES", "50")
        .env("DB_RETRY_INTERVAL_MS", "200")
        .spawn();
    assert!(
        gw.wait_for_line(
            "DB connection failed (attempt 2/50)",
            Duration::from_secs(10)
        )
        .is_some(),
        "{}",
        gw.output()
    );
    assert!(!gw.port_is_open(), "HTTP must wait for the database");

    // Act
    pg.start_server();

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["dependencies"]["database"]["state"], "up");
    assert_eq!(body["dependencies"]["database"]["backend"], "postgres");
    let ready = lines_with(&gw, "INFO  Ready: ");
    assert_eq!(ready.len(), 1, "{}", gw.output());
    assert!(ready[0].contains("database (postgres)"), "{}", ready[0]);
    assert!(ready[0].contains(" up after "), "{}", ready[0]);
    assert!(
        ready[0].contains(&format!("listening on http://127.0.0.1:{}", gw.port())),
        "{}",
        ready[0]
    );
    assert_eq!(
        gw.get("/health").unwrap(),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
}

/// Waits for exit 69 and checks the documented default schedule of `label`
/// (`DB`, `Redis`): 3 attempts, 2 s apart.
pub fn assert_default_schedule(gw: &Gateway, label: &str) {
    let code = gw.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(69), "{}", gw.output());
    let attempts: Vec<_> = gw
        .timed_lines()
        .into_iter()
        .filter(|l| l.text.contains(&format!("{label} connection failed")))
        .collect();
    assert_eq!(attempts.len(), 3, "{}", gw.output());
    assert!(
        attempts[0]
            .text
            .contains("(attempt 1/3), retrying in 2 s: "),
        "{}",
        attempts[0].text
    );
    assert!(
        attempts[1]
            .text
            .contains("(attempt 2/3), retrying in 2 s: "),
        "{}",
        attempts[1].text
    );
    assert!(
        attempts[2].text.contains("(attempt 3/3): "),
        "{}",
        attempts[2].text
    );
    for pair in attempts.windows(2) {
        let gap = pair[1].logged_since(&pair[0]);
        assert!(gap >= Duration::from_millis(2000 - 1), "gap {gap:?}");
        assert!(gap < Duration::from_millis(4000), "gap {gap:?}");
    }
}

#[test]
fn without_retry_settings_it_makes_3_attempts_2_s_apart() {
    // Arrange
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .spawn();

    // Act + Assert
    assert_default_schedule(&gw, "DB");
}

#[test]
fn dotenv_is_read_and_the_process_environment_wins() {
    // Arrange: .env says 2 attempts 100 ms apart; the environment says 3.
    let dotenv = format!(
        "DATABASE_URL={}\nDB_MAX_RETRIES=2\nDB_RETRY_INTERVAL_MS=100\n",
        refused_postgres_url()
    );
    let gw = Gateway::builder()
        .dotenv_file(dotenv)
        .env("DB_MAX_RETRIES", "3")
        .spawn();

    // Act
    let code = gw.wait_exit(Duration::from_secs(10));

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let attempts = lines_with(&gw, "DB connection failed");
    assert_eq!(
        attempts.len(),
        3,
        "the environment's 3 must win: {}",
        gw.output()
    );
    assert!(
        attempts[0].contains("(attempt 1/3), retrying in 0.1 s"),
        "the interval comes from .env: {}",
        attempts[0]
    );
}

#[test]
fn a_malformed_dotenv_is_a_configuration_error() {
    let gw = Gateway::builder()
        .dotenv_file("DB_MAX_RETRIES='3\n")
        .spawn();
    gw.expect_exit(78, Duration::from_secs(10));
    assert_eq!(
        lines_with(&gw, "cannot read .env").len(),
        1,
        "{}",
        gw.output()
    );
}

/// A stop signal during a retry wait: exit 0 at once, one line naming it
/// as `name`.
fn signal_during_retry_wait(signal: Signal, name: &str) {
    // Arrange: a one-minute wait after the first failure.
    let gw = Gateway::builder()
        .env("DATABASE_URL", refused_postgres_url())
        .env("DB_MAX_RETRIES", "5")
        .env("DB_RETRY_INTERVAL_MS", "60000")
        .spawn();
    assert!(
        gw.wait_for_line("retrying in 60 s", Duration::from_secs(10))
            .is_some(),
        "{}",
        gw.output()
    );

    // Act
    let sent = Instant::now();
    gw.signal(signal);
    let code = gw.wait_exit(Duration::from_secs(5));

    // Assert
    assert_eq!(code, Some(0), "{}", gw.output());
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(
        lines_with(&gw, &format!("Received {name} during start-up, stopping")).len(),
        1,
        "{}",
        gw.output()
    );
}

#[test]
fn sigterm_during_a_retry_wait_exits_0_within_a_second() {
    signal_during_retry_wait(Signal::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_during_a_retry_wait_exits_0_within_a_second() {
    signal_during_retry_wait(Signal::SIGINT, "SIGINT");
}

#[test]
fn sighup_during_a_retry_wait_stops_like_sigterm_with_a_line_saying_so() {
    signal_during_retry_wait(Signal::SIGHUP, "SIGHUP (treated as SIGTERM)");
}

/// A stop signal while serving (no shutdown delay): exit 0 at once, the
/// draining line naming it as `name`, then `Stopped`.
fn signal_while_serving(signal: Signal, name: &str) {
    // Arrange
    let gw = Gateway::builder().spawn();
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );

    // Act
    let sent = Instant::now();
    gw.signal(signal);
    let code = gw.wait_exit(Duration::from_secs(5));

    // Assert
    assert_eq!(code, Some(0), "{}", gw.output());
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert!(!gw.output().contains("panicked"), "{}", gw.output());
    let draining = format!("Received {name}: /ready answers 503; finishing in-flight requests");
    assert_eq!(lines_with(&gw, &draining).len(), 1, "{}", gw.output());
    assert_eq!(lines_with(&gw, "INFO  Stopped").len(), 1, "{}", gw.output());
}

#[test]
fn sigterm_while_serving_exits_0_within_a_second() {
    signal_while_serving(Signal::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_while_serving_exits_0_within_a_second() {
    signal_while_serving(Signal::SIGINT, "SIGINT");
}

#[test]
fn sighup_while_serving_drains_like_sigterm_with_a_line_saying_so() {
    signal_while_serving(Signal::SIGHUP, "SIGHUP (treated as SIGTERM)");
}

#[test]
fn with_nothing_configured_it_serves_on_the_sqlite_default() {
    // Arrange: no DATABASE_URL, no cache setting, nothing but HOST/PORT.
    let gw = Gateway::builder().spawn();

    // Act
    let ready = gw.wait_for_status("/ready", 200, Duration::from_secs(10));

    // Assert
    assert!(ready, "{}", gw.output());
    let (_, body) = gw.get("/ready").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["dependencies"]["database"]["backend"], "sqlite");
    assert_eq!(body["dependencies"]["cache"]["backend"], "memory");
    assert!(
        gw.workdir().join("readygate.db").exists(),
        "the default file sqlite://readygate.db"
    );
}

#[test]
fn help_lists_every_setting_with_its_variable_and_default() {
    let gw = Gateway::builder().args(&["--help"]).spawn();
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    // clap wraps long lines: compare with whitespace folded.
    let help = gw.output().split_whitespace().collect::<Vec<_>>().join(" ");
    for (variable, default) in readygate::config::documented_settings() {
        assert!(
            help.contains(&format!("env: {variable}")),
            "{variable} missing from --help:\n{help}"
        );
        assert!(
            help.contains(&format!("[default: {default}]")),
            "default of {variable} missing:\n{help}"
        );
    }
}

#[test]
fn an_in_memory_sqlite_writes_no_file_and_no_cache_is_not_listed() {
    // Arrange
    let gw = Gateway::builder()
        .env("DATABASE_URL", "sqlite://:memory:")
        .env("CACHE_TYPE", "none")
        .spawn();

    // Act
    assert!(
        gw.wait_for_status("/ready", 200, Duration::from_secs(10)),
        "{}",
        gw.output()
    );
    let (_, body) = gw.get("/ready").unwrap();

    // Assert
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed: Vec<&String> = body["dependencies"].as_object().unwrap().keys().collect();
    assert_eq!(listed, ["database"], "{body}");
    assert_eq!(body["dependencies"]["database"]["backend"], "sqlite");
    let files: Vec<_> = std::fs::read_dir(gw.workdir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(files.is_empty(), "files written: {files:?}");
}

#[test]
fn metrics_are_served_as_openmetrics_text() {
    let gw = Gateway::builder().spawn();
    assert!(gw.wait_for_status("/ready", 200, Duration::from_secs(10)));
    let reply = gw.http("GET", "/metrics", &[]).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(reply.text().ends_with("# EOF\n"), "{}", reply.text());
}
