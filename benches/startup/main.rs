#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Whole-process benchmarks of readygate (issue 6): start-up to ready,
//! reaction time and retry schedule, probe cost, memory, shutdown, a herd of
//! 200 gateways under four retry policies, and the alternatives on paper; each beside a floor measured
//! in the same run (a minimal actix-web server, this binary re-executed with
//! `FLOOR_SERVER=1`).
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

#[path = "../../tests/it/support/mod.rs"]
mod support;

/// The example application, run by this binary with `EXAMPLE_APP=1`; its
/// routes are also the floor's.
#[path = "../../examples/app.rs"]
mod app;
mod doc;
mod floor;
mod herd;
mod http;
mod load;
mod paper;
mod probe;
mod requests;
mod signals;
mod stats;
mod svg;
mod tls;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::http::{Conn, wait_for_200};
use crate::paper::{Measured, Strategy};
use crate::probe::{Kind, Watch};
use crate::stats::{max, mean, median, ms, slope, spread};
use crate::support::gateway::GATEWAY_BIN;
use crate::support::mariadb::{APP_PASSWORD, APP_USER, DATABASE};
use crate::support::{Gateway, Mariadb, Postgres, Redis, free_port};

/// The retry interval of the reaction, schedule, timeline and herd runs.
const INTERVAL_MS: u64 = 200;
/// Poll period of the "first /ready 200" pollers.
const POLL: Duration = Duration::from_millis(1);
const SECTIONS: [&str; 9] = [
    "startup", "reaction", "schedule", "probe", "shutdown", "signals", "herd", "timeline", "paper",
];

/// How many runs of each kind (`READYGATE_BENCH_QUICK=1`: fewer, for a
/// smoke run of the harness itself).
struct Plan {
    startup_runs: usize,
    reaction_runs: usize,
    shutdown_runs: usize,
    herd_size: usize,
    herd_late: Duration,
    herd_outage: Duration,
    /// Request path: readygate runs per route and concurrency, each
    /// between two floor runs.
    pairs: usize,
    wrk_secs: u64,
    concurrency: [usize; 2],
}

impl Plan {
    fn new() -> Plan {
        let quick = quick();
        Plan {
            startup_runs: if quick { 3 } else { 10 },
            reaction_runs: if quick { 3 } else { 10 },
            shutdown_runs: if quick { 2 } else { 5 },
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
fn quick() -> bool {
    std::env::var_os("READYGATE_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// One line of the summary table.
struct Check {
    figure: String,
    measured: String,
    reference: String,
    target: String,
    pass: Option<bool>,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    notes: Vec<String>,
    /// Markdown tables of the sections (name, text), copied verbatim into
    /// `BENCHMARKS.md` after a full run (see [`doc`]).
    blocks: Vec<(String, String)>,
    /// Inputs of the on-paper comparison, filled by the sections that
    /// measure them.
    startup_median: Option<f64>,
    gap_overhead: Option<f64>,
}

impl Report {
    fn check(
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

    fn note(&mut self, text: String) {
        println!("  {text}");
        self.notes.push(text);
    }

    fn block(&mut self, name: &str, markdown: String) {
        self.blocks.push((name.to_owned(), markdown));
    }
}

/// The environment variable that turns the bench binary into the example
/// application.
const EXAMPLE_APP_ENV: &str = "EXAMPLE_APP";

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
        startup(&plan, &deps, &mut report);
        tls::startup(&plan, &mut report);
    }
    if run("reaction") {
        reaction(&plan, &deps, &mut report);
    }
    if run("schedule") {
        schedule(&mut report);
    }
    if run("probe") {
        requests::request_path(&plan, &deps, &mut report);
    }
    if run("shutdown") {
        shutdown(&plan, &deps, &mut report);
    }
    if run("signals") {
        signals::window(&mut report);
    }
    if run("herd") {
        herd::herd(&plan, &mut report);
    }
    if run("timeline") {
        timeline(&mut report);
    }
    if run("paper") {
        on_paper(&mut report);
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

// ---- common ----------------------------------------------------------------

struct Deps {
    /// `DATABASE_URL`: PostgreSQL's, except in the MariaDB runs of [`startup`].
    db_url: String,
    redis_url: String,
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// A gateway process (JSON logs) with `env` on top of the support defaults
/// (`HOST=127.0.0.1`, a free `PORT`).
fn gateway(env: &[(&str, String)]) -> Gateway {
    let mut b = Gateway::builder().env("LOG_FORMAT", "json");
    for (k, v) in env {
        b = b.env(*k, v.clone());
    }
    b.spawn()
}

/// How to start a server process: a program and its environment, on top of
/// the support defaults (`HOST=127.0.0.1`, a free `PORT`).
struct Spec {
    program: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Spec {
    /// The gateway against the running PostgreSQL and Redis (JSON logs).
    fn gateway(deps: &Deps) -> Spec {
        Spec {
            program: PathBuf::from(GATEWAY_BIN),
            env: vec![
                ("LOG_FORMAT", "json".into()),
                ("DATABASE_URL", deps.db_url.clone()),
                ("CACHE_TYPE", "redis".into()),
                ("REDIS_URL", deps.redis_url.clone()),
            ],
        }
    }

    /// This bench binary, as the floor (`FLOOR_SERVER`) or the example
    /// application (`EXAMPLE_APP`).
    fn this_binary(role: &'static str, env: Vec<(&'static str, String)>) -> Spec {
        let exe = std::env::current_exe().expect("the path of this bench binary");
        let mut env = env;
        env.push((role, "1".into()));
        Spec { program: exe, env }
    }

    /// The floor server; `/ready` answers `ready_body`.
    fn floor(ready_body: Option<&str>) -> Spec {
        let env = ready_body.map(|b| ("FLOOR_READY_BODY", b.to_owned()));
        Spec::this_binary(floor::ENV, env.into_iter().collect())
    }

    fn spawn(&self) -> Gateway {
        self.spawn_under(&[])
    }

    /// Spawned as the last argument of `wrapper` (e.g. `valgrind ...`);
    /// directly when `wrapper` is empty.
    fn spawn_under(&self, wrapper: &[String]) -> Gateway {
        let mut b = Gateway::builder();
        for (k, v) in &self.env {
            b = b.env(*k, v.clone());
        }
        match wrapper.split_first() {
            None => b.program(&self.program),
            Some((program, args)) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                b.program(program)
                    .args(&args)
                    .args(&[&self.program.to_string_lossy()])
            }
        }
        .spawn()
    }
}

/// The gateway against the running PostgreSQL and Redis.
fn gateway_with_deps(deps: &Deps) -> Gateway {
    Spec::gateway(deps).spawn()
}

/// The floor server as its own process; `/ready` answers `ready_body`.
fn floor_server(ready_body: Option<&str>) -> Gateway {
    Spec::floor(ready_body).spawn()
}

/// Spawn to first `/ready` 200, in ms; `None` if it never came (10 s).
fn time_to_ready(p: &Gateway) -> Option<f64> {
    let at = wait_for_200(p.port(), "/ready", POLL, Duration::from_secs(10), || {
        !p.is_running()
    })?;
    Some(ms(at - p.started_at()))
}

/// SIGTERM, then the time until the process has exited and its exit code;
/// `None` if it did not exit within `limit`.
fn time_to_exit(p: &Gateway, limit: Duration) -> Option<(f64, Option<i32>)> {
    let t0 = Instant::now();
    p.signal(Signal::SIGTERM);
    loop {
        if let Some(status) = p.try_exit_status() {
            return Some((ms(t0.elapsed()), status.code()));
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn stop(p: &Gateway) {
    let _ = time_to_exit(p, Duration::from_secs(5));
}

/// A log line of the gateway (`LOG_FORMAT=json`).
struct LogLine {
    /// When the harness read it.
    at: Instant,
    /// Its `timestamp` (ms since the epoch; millisecond resolution).
    wall_ms: f64,
    message: String,
    dependency: Option<String>,
}

fn log_lines(p: &Gateway) -> Vec<LogLine> {
    p.timed_lines()
        .into_iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(&l.text).ok()?;
            let wall_ms = v["timestamp"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .map_or(f64::NAN, stats::epoch_ms);
            Some(LogLine {
                at: l.at,
                wall_ms,
                message: v["message"].as_str().unwrap_or_default().to_owned(),
                dependency: v["dependency"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

fn failed_attempts<'a>(lines: &'a [LogLine], label: &str) -> Vec<&'a LogLine> {
    let prefix = format!("{label} connection failed (attempt ");
    lines
        .iter()
        .filter(|l| l.message.starts_with(&prefix))
        .collect()
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---- 1. start-up to ready ----------------------------------------------------

fn startup(plan: &Plan, deps: &Deps, report: &mut Report) {
    println!(
        "\n[1] start-up to ready: spawn -> first /ready 200, the database (PostgreSQL, then \
         MariaDB) and Redis up ({} runs each + 1 warm-up, rotating the order)",
        plan.startup_runs
    );
    let mariadb = Mariadb::start();
    let on_mariadb = Deps {
        db_url: mariadb.url_for("mariadb", APP_USER, APP_PASSWORD, DATABASE),
        redis_url: deps.redis_url.clone(),
    };
    // (gateway on PostgreSQL, on MariaDB, floor), each with the gateway's
    // own `Ready: ... up after` figure where there is one.
    let (mut pg_ms, mut maria_ms, mut floor_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pg_own, mut maria_own) = (Vec::new(), Vec::new());
    let measure_gateway = |deps: &Deps| {
        let gw = gateway_with_deps(deps);
        let t = time_to_ready(&gw)
            .unwrap_or_else(|| panic!("the gateway never answered /ready 200:\n{}", gw.output()));
        let own = log_lines(&gw)
            .iter()
            .find(|l| l.message.starts_with("Ready:"))
            .and_then(|l| {
                let after = l.message.split("up after ").nth(1)?;
                after.split(" s;").next()?.parse::<f64>().ok()
            })
            .map_or(f64::NAN, |s| s * 1000.0);
        stop(&gw);
        (t, own)
    };
    let measure_floor = || {
        let f = floor_server(None);
        let t = time_to_ready(&f)
            .unwrap_or_else(|| panic!("the floor never answered:\n{}", f.output()));
        stop(&f);
        t
    };
    for run in 0..=plan.startup_runs {
        let (mut pg, mut maria, mut floor) = ((0.0, 0.0), (0.0, 0.0), 0.0);
        for slot in 0..3 {
            match (slot + run) % 3 {
                0 => pg = measure_gateway(deps),
                1 => maria = measure_gateway(&on_mariadb),
                _ => floor = measure_floor(),
            }
        }
        if run == 0 {
            println!(
                "  warm-up: gateway {:.1} ms on PostgreSQL, {:.1} ms on MariaDB, floor {floor:.1} ms \
                 (discarded)",
                pg.0, maria.0
            );
            continue;
        }
        println!(
            "  run {run}: gateway {:.1} ms on PostgreSQL (its own Ready line: {:.0} ms), {:.1} ms \
             on MariaDB ({:.0} ms), floor {floor:.1} ms",
            pg.0, pg.1, maria.0, maria.1
        );
        flush();
        pg_ms.push(pg.0);
        pg_own.push(pg.1);
        maria_ms.push(maria.0);
        maria_own.push(maria.1);
        floor_ms.push(floor);
    }
    let (g, m, f) = (median(&pg_ms), median(&maria_ms), median(&floor_ms));
    report.startup_median = Some(g);
    report.check(
        "1. Start-up to ready (median; min/med/max)",
        format!("{g:.1} ms ({})", spread(&pg_ms)),
        format!("floor {f:.1} ms ({})", spread(&floor_ms)),
        "<= floor + 100 ms",
        Some(g <= f + 100.0),
    );
    report.check(
        "1. Start-up to ready on MariaDB (median; min/med/max)",
        format!("{m:.1} ms ({})", spread(&maria_ms)),
        format!("floor {f:.1} ms ({})", spread(&floor_ms)),
        "<= floor + 100 ms",
        Some(m <= f + 100.0),
    );
    report.note(format!(
        "Start-up: the gateway's own `Ready: ... up after` figure (supervisor start to all \
         dependencies ready) has median {:.0} ms on PostgreSQL and {:.0} ms on MariaDB; the \
         rest of the {g:.1} ms (PostgreSQL) and {m:.1} ms (MariaDB) is process start, binding \
         and the first request.",
        median(&pg_own),
        median(&maria_own),
    ));
}

// ---- 2. reaction time ---------------------------------------------------------

/// One late start of a dependency under a gateway retrying every 200 ms:
/// (dependency accepting -> /ready 200, successful attempt's start -> /ready
/// 200) in ms; the attempt's start is the last failure line + the interval.
fn one_reaction(
    kind: Kind,
    env: &[(&str, String)],
    start_server: &mut dyn FnMut(),
    port: u16,
    phase: Duration,
) -> (f64, f64) {
    let label = match kind {
        Kind::Postgres => "DB",
        Kind::Redis => "Redis",
    };
    let gw = gateway(env);
    let first = format!("{label} connection failed (attempt 1/");
    if gw
        .wait_for_line(first.as_str(), Duration::from_secs(10))
        .is_none()
    {
        panic!("no failed attempt logged:\n{}", gw.output());
    }
    std::thread::sleep(phase);
    let stop_flag = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop_flag);
    let gw_port = gw.port();
    let poller = std::thread::spawn(move || {
        wait_for_200(gw_port, "/ready", POLL, Duration::from_secs(30), || {
            flag.load(Ordering::Relaxed)
        })
    });
    let watch = Watch::start(kind, port, Duration::from_secs(30));
    start_server();
    let up = watch.join();
    let ready = poller.join().ok().flatten();
    stop_flag.store(true, Ordering::Relaxed);
    let (Some(up), Some(ready)) = (up, ready) else {
        panic!(
            "no reaction measured (up {up:?}, ready {ready:?}):\n{}",
            gw.output()
        );
    };
    // The successful attempt began one interval after the last failure.
    let lines = log_lines(&gw);
    let last_fail = failed_attempts(&lines, label)
        .into_iter()
        .map(|l| l.at)
        .filter(|at| *at < ready)
        .max();
    let work = last_fail.map_or(f64::NAN, |at| {
        ms(ready.saturating_duration_since(at)) - INTERVAL_MS as f64
    });
    stop(&gw);
    let reaction = if ready >= up {
        ms(ready - up)
    } else {
        -ms(up - ready)
    };
    (reaction, work)
}

fn reaction(plan: &Plan, deps: &Deps, report: &mut Report) {
    let interval = INTERVAL_MS.to_string();
    println!(
        "\n[2] reaction time: dependency accepts sessions (protocol probe every 1-2 ms) -> \
         /ready 200 (poll every 1 ms), retry interval {INTERVAL_MS} ms, {} runs each",
        plan.reaction_runs
    );
    let runs = plan.reaction_runs;
    // Spread the start over the retry cycle.
    let phase = |run: usize| Duration::from_millis(150 + (run * 200 / runs.max(1)) as u64);

    let mut late_pg = Postgres::reserve();
    let pg_port = late_pg.port();
    let env_pg = [
        ("DATABASE_URL", late_pg.url()),
        ("DB_RETRY_INTERVAL_MS", interval.clone()),
        ("DB_MAX_RETRIES", "1000".into()),
        ("CACHE_TYPE", "redis".into()),
        ("REDIS_URL", deps.redis_url.clone()),
    ];
    let (mut pg_reaction, mut pg_work) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (r, w) = one_reaction(
            Kind::Postgres,
            &env_pg,
            &mut || late_pg.start_server(),
            pg_port,
            phase(run),
        );
        late_pg.stop();
        println!(
            "  PostgreSQL run {}: {r:.1} ms (successful attempt start -> 200: {w:.1} ms)",
            run + 1
        );
        flush();
        pg_reaction.push(r);
        pg_work.push(w);
    }
    drop(late_pg);

    let mut late_redis = Redis::reserve();
    let redis_port = late_redis.port();
    let env_redis = [
        ("DATABASE_URL", deps.db_url.clone()),
        ("CACHE_TYPE", "redis".into()),
        ("REDIS_URL", late_redis.url()),
        ("REDIS_RETRY_INTERVAL_MS", interval.clone()),
        ("REDIS_MAX_RETRIES", "1000".into()),
    ];
    let (mut redis_reaction, mut redis_work) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (r, w) = one_reaction(
            Kind::Redis,
            &env_redis,
            &mut || late_redis.start_server(),
            redis_port,
            phase(run),
        );
        late_redis.stop();
        println!(
            "  Redis run {}: {r:.1} ms (successful attempt start -> 200: {w:.1} ms)",
            run + 1
        );
        flush();
        redis_reaction.push(r);
        redis_work.push(w);
    }
    let limit = INTERVAL_MS as f64 + 50.0;
    for (name, reaction, work) in [
        ("PostgreSQL", &pg_reaction, &pg_work),
        ("Redis", &redis_reaction, &redis_work),
    ] {
        report.check(
            &format!("2. Reaction, {name} late (max; min/med/max)"),
            format!("{:.1} ms ({})", max(reaction), spread(reaction)),
            format!(
                "interval {INTERVAL_MS} ms; successful attempt start -> 200: {:.1} ms median",
                median(work)
            ),
            "<= interval + 50 ms",
            Some(max(reaction) <= limit),
        );
    }
}

// ---- 2b. schedule accuracy ------------------------------------------------------

fn schedule(report: &mut Report) {
    println!(
        "\n[2b] schedule accuracy: 21 refused attempts {INTERVAL_MS} ms apart = 20 gaps, \
         per dependency"
    );
    let interval = INTERVAL_MS.to_string();
    let closed = free_port();
    let runs = [
        (
            "DB",
            "database",
            vec![
                (
                    "DATABASE_URL",
                    format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
                ),
                ("DB_RETRY_INTERVAL_MS", interval.clone()),
                ("DB_MAX_RETRIES", "21".into()),
                ("CACHE_TYPE", "memory".into()),
            ],
        ),
        (
            "Redis",
            "cache",
            vec![
                ("DATABASE_URL", "sqlite://bench.db".into()),
                ("CACHE_TYPE", "redis".into()),
                ("REDIS_URL", format!("redis://127.0.0.1:{closed}/0")),
                ("REDIS_RETRY_INTERVAL_MS", interval.clone()),
                ("REDIS_MAX_RETRIES", "21".into()),
            ],
        ),
    ];
    let mut overheads = Vec::new();
    for (label, dependency, env) in runs {
        let gw = gateway(&env);
        let code = gw.wait_exit(Duration::from_secs(20));
        let lines = log_lines(&gw);
        let attempts: Vec<&LogLine> = failed_attempts(&lines, label)
            .into_iter()
            .filter(|l| l.dependency.as_deref() == Some(dependency))
            .collect();
        if code != Some(69) || attempts.len() != 21 {
            panic!(
                "expected 21 failed attempts and exit 69, got {} and {code:?}:\n{}",
                attempts.len(),
                gw.output()
            );
        }
        let gaps: Vec<f64> = attempts.windows(2).map(|w| ms(w[1].at - w[0].at)).collect();
        let json_gaps: Vec<f64> = attempts
            .windows(2)
            .map(|w| w[1].wall_ms - w[0].wall_ms)
            .collect();
        let nominal = INTERVAL_MS as f64;
        let devs: Vec<f64> = gaps.iter().map(|g| (g - nominal).abs()).collect();
        let lag = ms(attempts[20].at - attempts[0].at) - 20.0 * nominal;
        let s = slope(&gaps);
        overheads.push(mean(&gaps) - nominal);
        println!(
            "  {label}: gaps (ms) {}",
            gaps.iter()
                .map(|g| format!("{g:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "  {label}: from the JSON timestamps (1 ms resolution): mean {:.2} ms, max \
             deviation {:.0} ms",
            mean(&json_gaps),
            max(&json_gaps
                .iter()
                .map(|g| (g - nominal).abs())
                .collect::<Vec<_>>())
        );
        report.check(
            &format!("2. Schedule, {label}: 20 gaps (mean; max deviation; slope)"),
            format!(
                "mean {:.2} ms; max dev {:.2} ms; slope {:+.3} ms/attempt",
                mean(&gaps),
                max(&devs),
                s
            ),
            format!("interval {INTERVAL_MS} ms; lag after 20 gaps {lag:.1} ms"),
            "dev <= 20 ms, abs(slope) <= 0.25 ms/attempt",
            Some(max(&devs) <= 20.0 && s.abs() <= 0.25),
        );
    }
    report.gap_overhead = Some(mean(&overheads));
}

// ---- 5. shutdown ------------------------------------------------------------------

fn shutdown(plan: &Plan, deps: &Deps, report: &mut Report) {
    println!(
        "\n[5] shutdown: SIGTERM -> exit, {} runs each",
        plan.shutdown_runs
    );
    let runs = plan.shutdown_runs;
    let closed = free_port();
    let mut waiting = Vec::new();
    for run in 0..runs {
        let gw = gateway(&[
            (
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
            ),
            ("DB_RETRY_INTERVAL_MS", "2000".into()),
            ("DB_MAX_RETRIES", "100".into()),
        ]);
        if gw
            .wait_for_line("DB connection failed (attempt 1/", Duration::from_secs(10))
            .is_none()
        {
            panic!("no failed attempt:\n{}", gw.output());
        }
        // Somewhere inside the 2 s wait.
        std::thread::sleep(Duration::from_millis(
            200 + (run * 1600 / runs.max(1)) as u64,
        ));
        let (t, code) = time_to_exit(&gw, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no exit within 10 s after SIGTERM:\n{}", gw.output()));
        println!(
            "  during a retry wait, run {}: {t:.2} ms, exit {code:?}",
            run + 1
        );
        waiting.push(if code == Some(0) { t } else { f64::INFINITY });
    }
    let mut serving = Vec::new();
    let mut keepalive = Vec::new();
    let mut floor_serving = Vec::new();
    for run in 0..runs {
        let gw = gateway_with_deps(deps);
        time_to_ready(&gw).unwrap_or_else(|| panic!("not ready:\n{}", gw.output()));
        let (t, code) = time_to_exit(&gw, Duration::from_secs(40))
            .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", gw.output()));
        serving.push(if code == Some(0) { t } else { f64::INFINITY });

        // With an idle keep-alive connection open (a load balancer's).
        let gw = gateway_with_deps(deps);
        time_to_ready(&gw).unwrap_or_else(|| panic!("not ready:\n{}", gw.output()));
        let mut conn = Conn::connect(gw.port(), Duration::from_secs(1)).expect("connect");
        let _ = conn.get("/health", false);
        let (tk, code_k) = time_to_exit(&gw, Duration::from_secs(40))
            .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", gw.output()));
        drop(conn);
        keepalive.push(if code_k == Some(0) { tk } else { f64::INFINITY });

        let f = floor_server(None);
        time_to_ready(&f).unwrap_or_else(|| panic!("floor not ready:\n{}", f.output()));
        let (tf, _) = time_to_exit(&f, Duration::from_secs(40)).unwrap_or((f64::NAN, None));
        floor_serving.push(tf);
        println!(
            "  while serving, run {}: {t:.2} ms (exit {code:?}); with an idle keep-alive \
             connection {tk:.2} ms (exit {code_k:?}); floor {tf:.2} ms",
            run + 1
        );
        flush();
    }
    report.check(
        "5. SIGTERM during a retry wait (max; min/med/max)",
        format!("{:.2} ms ({})", max(&waiting), spread(&waiting)),
        "-".into(),
        "< 100 ms, exit 0",
        Some(max(&waiting) < 100.0),
    );
    report.check(
        "5. SIGTERM while serving (median; min/med/max)",
        format!("{:.2} ms ({})", median(&serving), spread(&serving)),
        format!(
            "floor {:.2} ms ({})",
            median(&floor_serving),
            spread(&floor_serving)
        ),
        "exit 0 (no time target)",
        Some(serving.iter().all(|t| t.is_finite())),
    );
    report.check(
        "5. SIGTERM while serving, idle keep-alive connection open",
        format!("{:.2} ms ({})", median(&keepalive), spread(&keepalive)),
        "-".into(),
        "exit 0 (no time target)",
        Some(keepalive.iter().all(|t| t.is_finite())),
    );
}

// ---- timeline chart ---------------------------------------------------------------

fn timeline(report: &mut Report) {
    println!(
        "\n[timeline] one start-up with both dependencies late: Redis at ~0.5 s, PostgreSQL \
         at ~1 s, interval {INTERVAL_MS} ms"
    );
    let mut late_pg = Postgres::reserve();
    let mut late_redis = Redis::reserve();
    let interval = INTERVAL_MS.to_string();
    let gw = gateway(&[
        ("DATABASE_URL", late_pg.url()),
        ("DB_RETRY_INTERVAL_MS", interval.clone()),
        ("DB_MAX_RETRIES", "100".into()),
        ("CACHE_TYPE", "redis".into()),
        ("REDIS_URL", late_redis.url()),
        ("REDIS_RETRY_INTERVAL_MS", interval.clone()),
        ("REDIS_MAX_RETRIES", "100".into()),
        ("LOG_LEVEL", "debug".into()),
    ]);
    let t0 = gw.started_at();
    let gw_port = gw.port();
    let poller = std::thread::spawn(move || {
        wait_for_200(gw_port, "/ready", POLL, Duration::from_secs(30), || false)
    });
    let redis_watch = Watch::start(Kind::Redis, late_redis.port(), Duration::from_secs(30));
    let pg_watch = Watch::start(Kind::Postgres, late_pg.port(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500).saturating_sub(t0.elapsed()));
    late_redis.start_server();
    std::thread::sleep(Duration::from_millis(1000).saturating_sub(t0.elapsed()));
    late_pg.start_server();
    let redis_up = redis_watch.join();
    let pg_up = pg_watch.join();
    let first_200 = poller.join().ok().flatten();
    let lines = log_lines(&gw);
    stop(&gw);
    let at = |i: Instant| ms(i.saturating_duration_since(t0));
    let lane = |name: &str, label: &str, dependency: &str, up: Option<Instant>, what: &str| {
        let attempts = lines
            .iter()
            .filter(|l| l.dependency.as_deref() == Some(dependency))
            .filter_map(|l| {
                if l.message.starts_with(&format!("{label} connection failed")) {
                    Some((at(l.at), false))
                } else if l.message.starts_with(&format!("{label} connection ready")) {
                    Some((at(l.at), true))
                } else {
                    None
                }
            })
            .collect::<Vec<_>>();
        svg::Lane {
            name: name.to_owned(),
            attempts,
            up: up.map(at),
            up_label: up.map_or(String::new(), |u| {
                format!("{what} accepts at {:.0} ms", at(u))
            }),
        }
    };
    let ready_line = lines
        .iter()
        .find(|l| l.message.starts_with("Ready:"))
        .map_or(f64::NAN, |l| at(l.at));
    let first_200 = first_200.map_or(f64::NAN, at);
    let chart = svg::Timeline {
        title: "readygate start-up timeline (one run)".into(),
        subtitle: format!(
            "PostgreSQL and Redis start late; both retried every {INTERVAL_MS} ms; markers are \
             log lines (attempt ends)\n{}",
            stats::machine()
        ),
        lanes: vec![
            lane(
                "database (PostgreSQL)",
                "DB",
                "database",
                pg_up,
                "PostgreSQL",
            ),
            lane("cache (Redis)", "Redis", "cache", redis_up, "Redis"),
        ],
        ready_line,
        first_200,
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/startup-timeline.svg");
    match std::fs::write(&path, svg::render(&chart)) {
        Ok(()) => println!("  chart written to {}", path.display()),
        Err(e) => println!("  cannot write {}: {e}", path.display()),
    }
    let pg_up_ms = pg_up.map_or(f64::NAN, at);
    report.note(format!(
        "Timeline run (benches/startup-timeline.svg): Redis accepting at {:.0} ms, PostgreSQL \
         at {pg_up_ms:.0} ms, Ready line at {ready_line:.0} ms, first /ready 200 at \
         {first_200:.0} ms ({:.0} ms after the later dependency).",
        redis_up.map_or(f64::NAN, at),
        first_200 - pg_up_ms
    ));
}

// ---- 7. the alternatives, on paper ---------------------------------------------------

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

fn on_paper(report: &mut Report) {
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
