//! What every section shares about a run: the plan (how many runs of each
//! kind; fewer under `READYGATE_BENCH_QUICK=1`), the retry interval of the
//! sections that time retries, and the report the sections fill (the summary
//! table's checks, notes, and the Markdown blocks for `BENCHMARKS.md`).

use std::io::Write as _;
use std::time::Duration;

/// The retry interval of the reaction, schedule and timeline runs (the herd
/// has its own).
pub const INTERVAL_MS: u64 = 200;

/// How many runs of each kind (`READYGATE_BENCH_QUICK=1`: fewer, for a
/// smoke run of the harness itself).
pub struct Plan {
    pub startup_runs: usize,
    pub reaction_runs: usize,
    pub shutdown_runs: usize,
    /// Failovers, each with a new primary and standby.
    pub failover_rounds: usize,
    pub herd_size: usize,
    pub herd_late: Duration,
    pub herd_outage: Duration,
    /// Request path: readygate runs per route and concurrency, each
    /// between two floor runs.
    pub pairs: usize,
    pub wrk_secs: u64,
    pub concurrency: [usize; 2],
}

impl Plan {
    pub fn new() -> Plan {
        let quick = quick();
        Plan {
            startup_runs: if quick { 3 } else { 10 },
            reaction_runs: if quick { 3 } else { 10 },
            shutdown_runs: if quick { 2 } else { 5 },
            failover_rounds: if quick { 2 } else { 5 },
            herd_size: if quick { 50 } else { 200 },
            herd_late: Duration::from_secs(3),
            herd_outage: Duration::from_secs(if quick { 12 } else { 30 }),
            pairs: if quick { 2 } else { 10 },
            wrk_secs: if quick { 1 } else { 2 },
            concurrency: [32, 256],
        }
    }
}

/// `READYGATE_BENCH_QUICK=1`: fewer runs (a smoke run of the harness).
pub fn quick() -> bool {
    std::env::var_os("READYGATE_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// One line of the summary table.
pub struct Check {
    pub figure: String,
    pub measured: String,
    pub reference: String,
    pub target: String,
    pub pass: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    /// Markdown tables of the sections (name, text), copied verbatim into
    /// `BENCHMARKS.md` after a full run (see [`crate::doc`]).
    pub blocks: Vec<(String, String)>,
    /// Inputs of the on-paper comparison, filled by the sections that
    /// measure them.
    pub startup_median: Option<f64>,
    pub gap_overhead: Option<f64>,
}

impl Report {
    pub fn check(
        &mut self,
        figure: &str,
        measured: String,
        reference: String,
        target: &str,
        pass: Option<bool>,
    ) {
        let verdict = match pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "info",
        };
        println!("  => {figure}: {measured} (ref {reference}; target {target}) {verdict}");
        self.checks.push(Check {
            figure: figure.to_owned(),
            measured,
            reference,
            target: target.to_owned(),
            pass,
        });
    }

    pub fn note(&mut self, text: String) {
        println!("  {text}");
        self.notes.push(text);
    }

    pub fn block(&mut self, name: &str, markdown: String) {
        self.blocks.push((name.to_owned(), markdown));
    }
}

/// Flushes stdout, so that a section's progress shows as it goes.
pub fn flush() {
    let _ = std::io::stdout().flush();
}
