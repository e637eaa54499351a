//! Section `exec` (issue 26): what `readygate exec -- CMD` adds to a
//! program's start, and what the sidecar costs while the program runs.
//!
//! Start: the program is `sh -c 'date +%s%N > started'`; its first
//! instruction is approximated by the time `date` reads the clock. Each
//! round spawns it directly, then under `readygate exec` (SQLite in the
//! working directory, no cache: the least a dependency can take; and
//! against PostgreSQL), and takes the time from `spawn` to that clock
//! reading. The difference of the medians is what `exec` adds.
//!
//! Idle: `readygate exec -- sleep 3600` against PostgreSQL with the default
//! check interval (5 s); once the program started, its VmRSS, and the CPU
//! time (utime + stime from `/proc/PID/stat`) it used over one minute.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::plan::Report;
use crate::stats::{kib_to_mib, median, proc_status_kib, spread};
use crate::support::wait_until;

const PROGRAM: &str = "date +%s%N > started";

fn rounds() -> usize {
    if crate::plan::quick() { 5 } else { 20 }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Milliseconds from `spawned_ns` to the clock reading in `dir/started`.
fn started_after(dir: &std::path::Path, spawned_ns: u128) -> Option<f64> {
    let file = dir.join("started");
    wait_until(Duration::from_secs(10), Duration::from_millis(1), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.ends_with('\n'))
    });
    let ns: u128 = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    Some((ns.saturating_sub(spawned_ns)) as f64 / 1e6)
}

fn direct() -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let spawned = now_ns();
    let mut child = Command::new("sh")
        .args(["-c", PROGRAM])
        .current_dir(dir.path())
        .spawn()
        .ok()?;
    let at = started_after(dir.path(), spawned);
    let _ = child.wait();
    at
}

fn under_exec(env: &[(&str, String)]) -> Option<f64> {
    let mut env = env.to_vec();
    env.push(("CACHE_TYPE", "none".to_owned()));
    let gw = crate::support::Gateway::builder();
    let gw = env
        .iter()
        .fold(gw, |b, (k, v)| b.env(*k, v.clone()))
        .args(&["exec", "--", "sh", "-c", PROGRAM]);
    let spawned = now_ns();
    let gw = gw.spawn();
    let at = started_after(gw.workdir(), spawned);
    gw.wait_exit(Duration::from_secs(10));
    at
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat; after the comm, the state is the first.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn exec(db_url: &str, report: &mut Report) {
    let rounds = rounds();
    println!("\n[exec] spawn -> the program's first clock reading, {rounds} rounds each");
    let (mut plain, mut sqlite, mut postgres) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.extend(direct());
        sqlite.extend(under_exec(&[]));
        postgres.extend(under_exec(&[("DATABASE_URL", db_url.to_owned())]));
    }
    let (p, s, g) = (median(&plain), median(&sqlite), median(&postgres));
    report.check(
        "exec: spawn -> program start, SQLite (median; min/med/max)",
        format!("{s:.1} ms ({}); adds {:.1} ms", spread(&sqlite), s - p),
        format!(
            "the program spawned directly: {p:.1} ms ({})",
            spread(&plain)
        ),
        "(shown)",
        None,
    );
    report.check(
        "exec: spawn -> program start, PostgreSQL (median; min/med/max)",
        format!("{g:.1} ms ({}); adds {:.1} ms", spread(&postgres), g - p),
        format!("the program spawned directly: {p:.1} ms"),
        "(shown)",
        None,
    );

    println!("[exec] idle sidecar over 60 s");
    let idle = crate::support::Gateway::builder()
        .env("DATABASE_URL", db_url)
        .env("CACHE_TYPE", "none")
        .args(&["exec", "--", "sleep", "3600"])
        .spawn();
    let started = idle
        .wait_for_line("INFO  Started sleep", Duration::from_secs(10))
        .is_some();
    let pid = idle.pid();
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let before = cpu_ticks(pid);
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(if crate::plan::quick() {
        10
    } else {
        60
    }));
    let after = cpu_ticks(pid);
    let per_minute = match (before, after) {
        (Some(b), Some(a)) => {
            (a.saturating_sub(b)) as f64 / ticks_per_s * 1000.0 * 60.0
                / from.elapsed().as_secs_f64()
        }
        _ => f64::NAN,
    };
    let rss = proc_status_kib(pid, "VmRSS").map_or(f64::NAN, kib_to_mib);
    report.check(
        "exec: idle sidecar (PostgreSQL checked every 5 s): RSS; CPU",
        format!("{rss:.1} MiB; {per_minute:.0} ms CPU per minute"),
        format!("program started: {started}"),
        "(shown)",
        None,
    );
    idle.signal(nix::sys::signal::Signal::SIGTERM);
    idle.wait_exit_status(Duration::from_secs(15));
}
