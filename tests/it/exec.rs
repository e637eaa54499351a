//! Issue "`readygate exec -- CMD`": the program starts after every required
//! dependency is ready (never when start-up fails), its output passes
//! through, stop signals reach it after the drain delay, readygate exits
//! with its exit code (128+N for signal N), a runtime outage never touches
//! it, and orphans are reaped, as PID 1 too.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::startup::{lines_with, refused_postgres_url};
use crate::support::{Gateway, GatewayBuilder, Postgres};

const EXIT: Duration = Duration::from_secs(10);

/// `readygate exec -- sh -c SCRIPT`.
fn exec_sh(builder: GatewayBuilder, script: &str) -> Gateway {
    builder.args(&["exec", "--", "sh", "-c", script]).spawn()
}

fn ready_body(gw: &Gateway) -> serde_json::Value {
    let (_, body) = gw.get("/ready").unwrap();
    serde_json::from_str(&body).unwrap()
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", lines.join("\n")))
}

#[test]
fn the_program_starts_after_ready_its_output_passes_through_and_its_code_is_returned() {
    // Act
    let gw = exec_sh(
        Gateway::builder(),
        "echo program-out; echo program-err >&2; exit 7",
    );

    // Assert: its exit code, its output on readygate's streams, started
    // after the Ready line.
    gw.expect_exit(7, EXIT);
    assert!(
        gw.stdout_lines().iter().any(|l| l == "program-out"),
        "{}",
        gw.output()
    );
    let stderr = gw.stderr_lines();
    assert!(stderr.iter().any(|l| l == "program-err"), "{}", gw.output());
    let ready = position(&stderr, "INFO  Ready: ");
    let started = position(&stderr, "INFO  Started sh (pid ");
    assert!(ready < started, "{}", gw.output());
    assert!(
        stderr[started].ends_with("; readygate exits with its exit code"),
        "{}",
        stderr[started]
    );
    assert!(
        lines_with(&gw, "exited with code 7; exiting with code 7").len() == 1,
        "{}",
        gw.output()
    );
}

#[test]
fn the_program_never_starts_when_start_up_gives_up_or_the_settings_are_bad() {
    // A database that refuses, tried once: 69.
    let gave_up = exec_sh(
        Gateway::builder()
            .env("DATABASE_URL", refused_postgres_url())
            .env("DB_MAX_RETRIES", "1"),
        "touch started",
    );
    gave_up.expect_exit(69, EXIT);
    assert!(!gave_up.workdir().join("started").exists());
    assert!(lines_with(&gave_up, "Started").is_empty());

    // A bad setting: 78.
    let bad = exec_sh(
        Gateway::builder().env("DB_MAX_RETRIES", "many"),
        "touch started",
    );
    bad.expect_exit(78, EXIT);
    assert!(!bad.workdir().join("started").exists());
}

#[test]
fn sigterm_reaches_the_program_after_the_drain_delay_and_its_code_is_returned() {
    // Arrange: a program that answers SIGTERM with exit 3; a 600 ms delay.
    let gw = exec_sh(
        Gateway::builder().env("SHUTDOWN_DELAY_MS", "600"),
        "trap 'echo got-term; exit 3' TERM; echo running; while :; do sleep 0.05; done",
    );
    assert!(gw.wait_for_status("/ready", 200, EXIT), "{}", gw.output());
    let program = &ready_body(&gw)["program"];
    assert_eq!(program["command"], "sh");
    assert_eq!(program["running"], true);
    assert!(program["pid"].as_u64().is_some(), "{program}");

    // Act
    let signalled = Instant::now();
    gw.signal(Signal::SIGTERM);

    // Assert: 503 at once while the program still runs, then its code.
    assert!(
        gw.wait_for_status("/ready", 503, Duration::from_secs(2)),
        "{}",
        gw.output()
    );
    assert_eq!(ready_body(&gw)["status"], "draining");
    assert!(
        lines_with(&gw, "got-term").is_empty(),
        "forwarded too early"
    );
    gw.expect_exit(3, EXIT);
    assert!(signalled.elapsed() >= Duration::from_millis(600));
    assert_eq!(lines_with(&gw, "got-term").len(), 1, "{}", gw.output());
    assert_eq!(
        lines_with(&gw, "forwarding it to sh (pid ").len(),
        1,
        "{}",
        gw.output()
    );
}

#[test]
fn a_program_killed_by_a_signal_gives_128_plus_its_number() {
    let gw = exec_sh(Gateway::builder(), "kill -9 $$");
    gw.expect_exit(137, EXIT);
    assert_eq!(
        lines_with(&gw, "was killed by SIGKILL; exiting with code 137").len(),
        1,
        "{}",
        gw.output()
    );
}

#[test]
fn a_second_signal_is_forwarded_at_once() {
    // A program that ends on the second SIGTERM only; no drain delay.
    let gw = exec_sh(
        Gateway::builder()
            .env("SHUTDOWN_DELAY_MS", "0")
            .env("SHUTDOWN_TIMEOUT_MS", "30000"),
        "n=0; trap 'n=$((n+1)); echo term-$n; [ $n -ge 2 ] && exit 5' TERM; \
         while :; do sleep 0.05; done",
    );
    assert!(gw.wait_for_status("/ready", 200, EXIT), "{}", gw.output());
    gw.signal(Signal::SIGTERM);
    assert!(gw.wait_for_line("term-1", Duration::from_secs(5)).is_some());
    assert!(gw.is_running());
    gw.signal(Signal::SIGTERM);
    gw.expect_exit(5, EXIT);
    assert_eq!(lines_with(&gw, "again: forwarding it to sh").len(), 1);
}

#[test]
fn a_program_still_running_after_the_shutdown_timeout_is_killed() {
    // A program that ignores SIGTERM.
    let gw = exec_sh(
        Gateway::builder()
            .env("SHUTDOWN_DELAY_MS", "0")
            .env("SHUTDOWN_TIMEOUT_MS", "500"),
        "trap '' TERM; while :; do sleep 0.05; done",
    );
    assert!(gw.wait_for_status("/ready", 200, EXIT), "{}", gw.output());
    let signalled = Instant::now();
    gw.signal(Signal::SIGTERM);
    gw.expect_exit(137, EXIT);
    assert!(signalled.elapsed() >= Duration::from_millis(500));
    assert_eq!(
        lines_with(&gw, "(SHUTDOWN_TIMEOUT_MS): sending SIGKILL").len(),
        1,
        "{}",
        gw.output()
    );
}

#[test]
fn a_runtime_outage_gives_503_and_never_touches_the_program() {
    // Arrange
    let mut pg = Postgres::start();
    let gw = exec_sh(
        Gateway::builder()
            .env("DATABASE_URL", pg.url())
            .env("HEALTH_CHECK_INTERVAL_MS", "200")
            .env("DB_RETRY_INTERVAL_MS", "200")
            .env("DB_CONNECT_TIMEOUT_MS", "1000"),
        "while :; do sleep 0.05; done",
    );
    assert!(gw.wait_for_status("/ready", 200, EXIT), "{}", gw.output());
    let pid = ready_body(&gw)["program"]["pid"].as_u64().unwrap();

    // Act: the database goes away, then comes back.
    pg.stop();
    assert!(
        gw.wait_for_status("/ready", 503, Duration::from_secs(5)),
        "{}",
        gw.output()
    );
    let during = ready_body(&gw);
    pg.start_server();

    // Assert: the program ran all along.
    assert_eq!(during["program"]["running"], true, "{during}");
    assert_eq!(during["program"]["pid"].as_u64(), Some(pid));
    assert!(gw.wait_for_status("/ready", 200, EXIT), "{}", gw.output());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    gw.signal(Signal::SIGTERM);
    // The shell is killed by SIGTERM (it traps nothing): 128 + 15.
    gw.expect_exit(143, EXIT);
}

/// Leaves three orphans (background jobs of shells that exit at once),
/// counts those adopted by readygate (field 4 of /proc/PID/stat is the
/// parent), waits until they ended, counts the zombies among readygate's
/// children (field 3: the state), and exits with their number.
const ORPHANS: &str = "for i in 1 2 3; do sh -c 'sleep 0.3 & exit 0'; done; \
     a=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v p=$PPID -v me=$$ '$4==p && $1!=me' | wc -l); \
     sleep 1; \
     z=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v p=$PPID '$4==p && $3==\"Z\"' | wc -l); \
     echo \"parent=$(cat /proc/$PPID/comm) adopted=$a zombies=$z\"; exit $z";

#[test]
fn orphans_are_reaped() {
    let gw = exec_sh(Gateway::builder(), ORPHANS);
    gw.expect_exit(0, EXIT);
    assert_eq!(
        lines_with(&gw, "parent=readygate adopted=3 zombies=0").len(),
        1,
        "{}",
        gw.output()
    );
}

/// `readygate exec ... -- sh -c SCRIPT` as PID 1 of a new PID namespace
/// (`unshare --pid --fork`, root only: CI runs as root).
fn exec_as_pid_1(builder: GatewayBuilder, script: &str) -> Gateway {
    builder
        .program("unshare")
        .args(&[
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_readygate"),
            "exec",
            "--",
            "sh",
            "-c",
            script,
        ])
        .spawn()
}

#[test]
fn as_pid_1_orphans_are_reaped_and_signals_reach_the_program() {
    // Orphans of a program under PID 1.
    let reaper = exec_as_pid_1(
        Gateway::builder(),
        &format!("[ $PPID = 1 ] || exit 99; {ORPHANS}"),
    );
    reaper.expect_exit(0, EXIT);
    assert_eq!(
        lines_with(&reaper, "parent=readygate adopted=3 zombies=0").len(),
        1,
        "{}",
        reaper.output()
    );

    // SIGTERM to PID 1 (which the kernel delivers only to a handler),
    // forwarded to the program.
    let gw = exec_as_pid_1(
        Gateway::builder().env("SHUTDOWN_DELAY_MS", "0"),
        "trap 'echo got-term; exit 3' TERM; while :; do sleep 0.05; done",
    );
    assert!(gw.wait_for_status("/ready", 200, EXIT), "{}", gw.output());
    let pid_1 = crate::support::process::children_of(gw.pid());
    assert_eq!(pid_1.len(), 1, "unshare's child: {pid_1:?}");
    crate::support::process::signal_pid(pid_1[0], Signal::SIGTERM);
    gw.expect_exit(3, EXIT);
    assert_eq!(lines_with(&gw, "got-term").len(), 1, "{}", gw.output());
}

#[test]
fn a_program_that_cannot_be_started_is_127_or_126_in_one_error_line() {
    let missing = Gateway::builder()
        .args(&["exec", "--", "/nonexistent/server"])
        .spawn();
    missing.expect_exit(127, EXIT);
    let errors = lines_with(&missing, "ERROR");
    assert_eq!(errors.len(), 1, "{}", missing.output());
    assert!(
        errors[0].contains("Cannot start /nonexistent/server: No such file or directory"),
        "{}",
        errors[0]
    );

    let not_executable = Gateway::builder()
        .file("server", "echo hi\n")
        .args(&["exec", "--", "./server"])
        .spawn();
    not_executable.expect_exit(126, EXIT);
    assert_eq!(
        lines_with(&not_executable, "Cannot start ./server").len(),
        1
    );
}

#[test]
fn exec_without_a_program_is_a_usage_error() {
    for args in [&["exec"][..], &["exec", "--"][..]] {
        let gw = Gateway::builder().args(args).spawn();
        gw.expect_exit(78, EXIT);
        let errors = lines_with(&gw, "ERROR");
        assert_eq!(errors.len(), 1, "{}", gw.output());
        assert!(
            errors[0].contains("readygate exec [SETTINGS...] -- CMD [ARGS...]"),
            "{}",
            errors[0]
        );
    }
}
