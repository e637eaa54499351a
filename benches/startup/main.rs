#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Whole-process benchmarks of readygate (issue 6): start-up to ready,
//! reaction time and retry schedule, probe cost, memory, shutdown, a herd of
//! 200 gateways under four retry policies, the alternatives on paper, and a
//! PostgreSQL failover and a Redis Sentinel failover and Cluster outage
//! under the example application; each beside a floor
//! measured in the same run (a minimal actix-web server, this binary
//! re-executed with `FLOOR_SERVER=1`).
//!
//! ```sh
//! cargo bench --bench startup                  # everything (about 100 s)
//! cargo bench --bench startup -- herd probe    # only some sections
//! ```
//!
//! It runs the release binary `target/release/readygate` (what
//! `CARGO_BIN_EXE_readygate` names under `cargo bench`, which builds it
//! first) against real PostgreSQL and Redis servers on free loopback ports,
//! started by the integration tests' support code. It prints pass/miss
//! against the targets, writes the summary to
//! `target/readygate-bench/summary.md` and the timeline chart to
//! `benches/startup-timeline.svg`. Benchmarks are not tests: nothing here
//! fails `cargo test`, and under `cargo test --benches` (no `--bench`
//! argument) the binary does nothing.
//!
//! This file is only the entry point: it picks the sections named on the
//! command line, runs them and writes the report. Each section is a module
//! of its own (`startup.rs` with `tls.rs`, `reaction.rs`, `schedule.rs`,
//! `requests.rs` for `probe`, `shutdown.rs`, `signals.rs`, `herd.rs`,
//! `timeline.rs`, `on_paper.rs` for `paper`, `failover.rs`, `redis_ha.rs`
//! for `redis-ha`, `exec.rs`, `secrets.rs`); what they
//! share is in `plan.rs` (the plan, the report) and `spawn.rs` (the
//! processes, their log lines).

#[path = "../../tests/it/support/mod.rs"]
mod support;

/// The example application, run by this binary with `EXAMPLE_APP=1`; its
/// routes are also the floor's.
#[path = "../../examples/app.rs"]
mod app;
mod doc;
mod exec;
mod failover;
mod floor;
mod herd;
mod http;
mod load;
mod on_paper;
mod paper;
mod plan;
mod probe;
mod reaction;
mod redis_ha;
mod requests;
mod schedule;
mod secrets;
mod shutdown;
mod signals;
mod spawn;
mod startup;
mod stats;
mod svg;
mod timeline;
mod tls;

use std::path::PathBuf;
use std::time::Instant;

use crate::plan::{Plan, Report, quick};
use crate::spawn::{Deps, EXAMPLE_APP_ENV};
use crate::support::gateway::GATEWAY_BIN;
use crate::support::{Postgres, Redis};

const SECTIONS: [&str; 13] = [
    "startup", "reaction", "schedule", "probe", "shutdown", "signals", "herd", "timeline", "paper",
    "failover", "exec", "redis-ha", "secrets",
];

fn main() -> std::process::ExitCode {
    if std::env::var_os(floor::ENV).is_some() {
        return floor::run();
    }
    if std::env::var_os(EXAMPLE_APP_ENV).is_some() {
        return app::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // A test runner listing tests: there are none.
        return std::process::ExitCode::SUCCESS;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "readygate start-up benchmarks: run them with `cargo bench --bench startup` \
             (nothing runs under `cargo test`)"
        );
        return std::process::ExitCode::SUCCESS;
    }
    let wanted: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !SECTIONS.contains(w)) {
        eprintln!("unknown section {bad:?}; sections: {}", SECTIONS.join(", "));
        return std::process::ExitCode::from(2);
    }
    let run = |name: &str| wanted.is_empty() || wanted.contains(&name);
    let began = Instant::now();
    let plan = Plan::new();
    let mut report = Report::default();

    println!("readygate start-up benchmarks");
    println!("  machine: {}", stats::machine());
    println!("  gateway: {GATEWAY_BIN}");
    if !GATEWAY_BIN.contains("/release/") {
        println!("  WARNING: not a release binary; run through `cargo bench`");
    }

    println!("starting PostgreSQL and Redis on loopback ...");
    let pg = Postgres::start();
    let redis = Redis::start();
    let deps = Deps {
        db_url: pg.url(),
        redis_url: redis.url(),
    };

    if run("startup") {
        startup::startup(&plan, &deps, &mut report);
        tls::startup(&plan, &mut report);
    }
    if run("reaction") {
        reaction::reaction(&plan, &deps, &mut report);
    }
    if run("schedule") {
        schedule::schedule(&mut report);
    }
    if run("probe") {
        requests::request_path(&plan, &deps, &mut report);
    }
    if run("shutdown") {
        shutdown::shutdown(&plan, &deps, &mut report);
    }
    if run("signals") {
        signals::window(&mut report);
    }
    if run("herd") {
        herd::herd(&plan, &mut report);
    }
    if run("timeline") {
        timeline::timeline(&mut report);
    }
    if run("paper") {
        on_paper::on_paper(&mut report);
    }
    if run("failover") {
        failover::failover(&plan, &mut report);
    }
    if run("exec") {
        exec::exec(&deps.db_url, &mut report);
    }
    if run("redis-ha") {
        redis_ha::redis_ha(&plan, &mut report);
    }
    if run("secrets") {
        secrets::secrets(&deps, &mut report);
    }
    drop((pg, redis));

    let total = began.elapsed();
    let quick = quick();
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let summary = doc::write(
        &report,
        &doc::command(&wanted, quick),
        total,
        wanted.is_empty() && !quick,
        &doc,
    );
    println!("\n{summary}");
    std::process::ExitCode::SUCCESS
}
