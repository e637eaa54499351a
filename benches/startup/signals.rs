//! Section `signals`: the window in which a stop signal can still kill
//! readygate by its default action. `readygate::signals::install` is the
//! first call of `main`; before it, only the dynamic loader and Rust's
//! runtime run, and no program can catch a signal there. This measures that
//! window from outside: the time from `spawn` returning (the `exec` has
//! happened) until `/proc/PID/status` shows SIGTERM, SIGINT and SIGHUP
//! caught, and checks that a SIGTERM sent the moment they are caught exits 0.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::plan::Report;
use crate::spawn::gateway;
use crate::stats::{max, median, min};

/// Runs of each measurement (fewer with `READYGATE_BENCH_QUICK`).
fn runs() -> usize {
    if crate::plan::quick() { 10 } else { 60 }
}

/// Whether SIGHUP (bit 0), SIGINT (bit 1) and SIGTERM (bit 14) are caught.
fn caught(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & 0x4003 == 0x4003)
}

pub fn window(report: &mut Report) {
    let runs = runs();
    println!("\n[signals] spawn -> stop signals caught, {runs} runs");
    let closed = crate::support::free_port();
    let env = [
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
        ),
        ("DB_MAX_RETRIES", "1000".to_owned()),
    ];
    let mut windows = Vec::new();
    let mut exits_0 = 0;
    for _ in 0..runs {
        let gw = gateway(&env);
        let spawned = gw.started_at();
        let pid = gw.pid();
        // Poll as fast as /proc answers: a few microseconds a read.
        let deadline = spawned + Duration::from_secs(5);
        while !caught(pid) && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        windows.push(spawned.elapsed().as_secs_f64() * 1000.0);
        gw.signal(Signal::SIGTERM);
        if let Some(status) = gw.wait_exit_status(Duration::from_secs(5))
            && status.code() == Some(0)
        {
            exits_0 += 1;
        }
    }
    let (lo, mid, hi) = (min(&windows), median(&windows), max(&windows));
    println!("  caught after {lo:.2} / {mid:.2} / {hi:.2} ms (min / median / max)");
    report.check(
        "Stop signals caught after spawn (the loader's window), median of runs",
        format!("**{mid:.2} ms** ({lo:.2} / {mid:.2} / {hi:.2})"),
        "before it only the loader and Rust's runtime run".into(),
        "(none: no program can catch a signal before main)",
        None,
    );
    report.check(
        "SIGTERM the moment the handlers are caught: exit 0",
        format!("**{exits_0} of {runs}**"),
        String::new(),
        "all",
        Some(exits_0 == runs),
    );
    // For scale: the whole life of a small dynamically linked C program.
    let mut shells = Vec::new();
    for _ in 0..runs.min(20) {
        let started = Instant::now();
        let ok = std::process::Command::new("/bin/true")
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            shells.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    report.note(format!(
        "For scale: spawning and waiting for `/bin/true` (a small dynamically linked C program) \
         took {:.2} ms (median of {}).",
        median(&shells),
        shells.len()
    ));
    report.block(
        "signals",
        format!(
            "| Measure | min | median | max |\n|---|---|---|---|\n\
             | `spawn` returned -> SIGTERM, SIGINT, SIGHUP caught ({runs} runs) | {lo:.2} ms | {mid:.2} ms | {hi:.2} ms |\n\
             | `/bin/true`: spawn -> exit ({} runs) | {:.2} ms | {:.2} ms | {:.2} ms |\n\n\
             A SIGTERM sent the moment the handlers were caught exited 0 in {exits_0} of {runs} runs.\n",
            shells.len(),
            min(&shells),
            median(&shells),
            max(&shells)
        ),
    );
}
