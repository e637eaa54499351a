//! Section `paper`, item 7: measures the inputs of the on-paper model that
//! no other section gives (a fail-fast run, one `pg_isready` poll), then
//! tabulates the model of `paper.rs` for five start-up strategies.

use std::time::{Duration, Instant};

use crate::paper::{self, Measured, Strategy};
use crate::plan::Report;
use crate::spawn::gateway;
use crate::stats::{median, ms};
use crate::support::free_port;

/// Spawn to exit of readygate making one refused attempt (`DB_MAX_RETRIES=1`).
fn fail_fast_ms() -> f64 {
    let closed = free_port();
    let mut v = Vec::new();
    for _ in 0..5 {
        let gw = gateway(&[
            (
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
            ),
            ("DB_MAX_RETRIES", "1".into()),
        ]);
        if gw.wait_exit_status(Duration::from_secs(10)).is_some() {
            v.push(ms(Instant::now() - gw.started_at()));
        }
    }
    median(&v)
}

/// One `pg_isready -t 1` against a closed port (what a wait script runs
/// each second).
fn poll_cost_ms() -> f64 {
    let closed = free_port();
    let mut v = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = crate::support::postgres::pg_isready(closed);
        v.push(ms(t.elapsed()));
    }
    median(&v)
}

pub fn on_paper(report: &mut Report) {
    println!("\n[7] the alternatives on paper: PostgreSQL accepting T s after start");
    let m = Measured {
        startup: report.startup_median.unwrap_or(f64::NAN),
        gap_overhead: report.gap_overhead.unwrap_or(0.0),
        fail_fast: fail_fast_ms(),
        poll_cost: poll_cost_ms(),
    };
    if m.startup.is_nan() {
        println!("  (the startup section did not run: start-up to ready counted as 0)");
    }
    let m = Measured {
        startup: if m.startup.is_nan() { 0.0 } else { m.startup },
        ..m
    };
    println!(
        "  inputs: start-up to ready {:.1} ms, gap overhead {:.2} ms, fail-fast run {:.1} ms, \
         one pg_isready poll {:.1} ms",
        m.startup, m.gap_overhead, m.fail_fast, m.poll_cost
    );
    let strategies = [
        (
            "readygate, 20 x 2000 ms",
            Strategy::Retries {
                attempts: 20,
                interval: 2000.0,
            },
        ),
        (
            "readygate, 300 x 200 ms",
            Strategy::Retries {
                attempts: 300,
                interval: 200.0,
            },
        ),
        (
            "fail-fast process (1 attempt) under CrashLoopBackOff",
            Strategy::RetriesUnderCrashLoop {
                attempts: 1,
                interval: 0.0,
            },
        ),
        (
            "readygate defaults (3 x 2000 ms) under CrashLoopBackOff",
            Strategy::RetriesUnderCrashLoop {
                attempts: 3,
                interval: 2000.0,
            },
        ),
        (
            "wait script polling pg_isready every 1 s",
            Strategy::WaitScript { period: 1000.0 },
        ),
    ];
    let mut table = String::from(
        "| Strategy | Ready, T = 30 s | T = 30.5 s | T = 31 s | T anywhere in [29 s, 31 s): \
         mean delay after T | worst delay |\n|---|---|---|---|---|---|\n",
    );
    for (name, strategy) in strategies {
        let fmt = |t: f64| {
            paper::ready_at(strategy, t, m)
                .map_or("never".to_owned(), |r| format!("{:.2} s", r / 1000.0))
        };
        let (mean_delay, worst) = paper::delay_stats(strategy, 29_000.0, 2_000.0, m);
        table.push_str(&format!(
            "| {name} | {} | {} | {} | {:.2} s | {:.2} s |\n",
            fmt(30_000.0),
            fmt(30_500.0),
            fmt(31_000.0),
            mean_delay / 1000.0,
            worst / 1000.0
        ));
        report.check(
            &format!("7. {name}"),
            format!("ready at {} (T = 30 s)", fmt(30_000.0)),
            format!(
                "T = 30.5 s: {}; T = 31 s: {}; T in [29, 31) s: mean delay {:.2} s, worst {:.2} s",
                fmt(30_500.0),
                fmt(31_000.0),
                mean_delay / 1000.0,
                worst / 1000.0
            ),
            "on paper",
            None,
        );
    }
    let inputs = format!(
        "Inputs, measured in this run: start-up to ready {:.1} ms, gap beyond the interval \
         {:.2} ms, fail-fast run (spawn to exit 69) {:.1} ms, one `pg_isready` poll {:.1} ms.\n\n",
        m.startup, m.gap_overhead, m.fail_fast, m.poll_cost
    );
    report.block("paper", inputs + &table);
}
