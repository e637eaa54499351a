//! The herd (item 6, issue 16): 200 gateway processes against one PostgreSQL,
//! for each retry policy, in two scenarios with the same processes: the
//! server comes up 3 s after they were spawned, then, once all are ready, it
//! goes away for 30 s.
//!
//! Attempts are counted as the server sees them: the gateways connect to a
//! counting relay in front of PostgreSQL, which timestamps every connection
//! it accepts and forwards it, or, while PostgreSQL is down, resets it at
//! once (as a closed port refuses: the attempt fails in microseconds). The
//! tests' `Relay` (`tests/it/support/faults.rs`) is not used: it keeps a
//! connection it cannot forward open until the client gives up (the black
//! hole its tests need), which would turn every refused attempt into a
//! 5 s timeout, and it polls each connection every 20 ms, which 400
//! connections on 2 cores would feel. This one is event-driven (tokio).

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::plan::{Plan, Report, flush};
use crate::spawn::log_lines;
use crate::stats::{self, max};
use crate::support::{Gateway, Postgres};
use crate::svg;

/// The base interval of every policy (the measurement of the
/// fixed grid used 500 ms).
const INTERVAL_MS: u64 = 500;
/// Width of the windows attempts are counted in.
const WINDOW_MS: f64 = 100.0;
/// Threads spawning the gateway processes.
const SPAWNERS: usize = 4;
/// Allowance for the successful attempt itself (connect, `SELECT 1`, the
/// log line) in the recovery bound "max wait + one attempt".
const ATTEMPT_MS: f64 = 250.0;

/// A retry policy under test.
struct Policy {
    name: &'static str,
    env: Vec<(&'static str, &'static str)>,
    /// The longest wait: what the recovery must stay within (plus an attempt).
    max_wait_ms: f64,
    jitter: bool,
    exponential: bool,
}

fn policies() -> Vec<Policy> {
    vec![
        Policy {
            name: "fixed",
            env: vec![],
            max_wait_ms: INTERVAL_MS as f64,
            jitter: false,
            exponential: false,
        },
        Policy {
            name: "fixed + jitter 0.5",
            env: vec![("DB_RETRY_JITTER", "0.5")],
            max_wait_ms: INTERVAL_MS as f64 * 1.5,
            jitter: true,
            exponential: false,
        },
        Policy {
            name: "exponential (x2, cap 5 s) + jitter 0.5",
            env: vec![
                ("DB_RETRY_BACKOFF", "exponential"),
                ("DB_RETRY_MAX_INTERVAL_MS", "5000"),
                ("DB_RETRY_JITTER", "0.5"),
            ],
            max_wait_ms: 5000.0 * 1.5,
            jitter: true,
            exponential: true,
        },
        Policy {
            name: "exponential (x2, cap 30 s, the default) + jitter 0.25",
            env: vec![
                ("DB_RETRY_BACKOFF", "exponential"),
                ("DB_RETRY_JITTER", "0.25"),
            ],
            max_wait_ms: 30_000.0 * 1.25,
            jitter: true,
            exponential: true,
        },
    ]
}

// ---- the counting relay -------------------------------------------------------------

/// Accepts on a loopback port and forwards to `127.0.0.1:target`, timestamping
/// every accepted connection (ms since the epoch); resets the connections it
/// cannot forward.
struct Relay {
    port: u16,
    accepted: Arc<Mutex<Vec<f64>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the relay");
        listener.set_nonblocking(true).expect("nonblocking relay");
        let port = listener.local_addr().expect("relay address").port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let log = Arc::clone(&accepted);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("relay listener");
                loop {
                    let client = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((client, _)) => client,
                            Err(_) => continue,
                        },
                    };
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(stats::epoch_ms(SystemTime::now()));
                    tokio::spawn(forward(client, target));
                }
            });
        });
        Relay {
            port,
            accepted,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Every accepted connection so far (ms since the epoch).
    fn accepted(&self) -> Vec<f64> {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn forward(mut client: tokio::net::TcpStream, target: u16) {
    let _ = client.set_nodelay(true);
    match tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await {
        Ok(mut server) => {
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        // The server is down: reset, as a closed port refuses.
        Err(_) => {
            let _ = client.set_zero_linger();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---- one run ------------------------------------------------------------------------

/// A PostgreSQL log line's timestamp (`log_line_prefix = '%m [%p] '`,
/// `log_timezone = UTC`), ms since the epoch.
fn pg_log_ms(line: &str) -> Option<f64> {
    let stamp = line.get(..23)?;
    humantime::parse_rfc3339_weak(stamp)
        .ok()
        .map(stats::epoch_ms)
}

/// How many of `times` fall in each `WINDOW_MS` window from `from` to `to`.
fn windows(times: &[f64], from: f64, to: f64) -> Vec<usize> {
    let n = ((to - from) / WINDOW_MS).ceil().max(0.0) as usize;
    let mut counts = vec![0; n];
    for t in times {
        if *t >= from && *t < to {
            counts[((t - from) / WINDOW_MS) as usize] += 1;
        }
    }
    counts
}

/// Attempts over one span: in all, per second, and the busiest window
/// against the mean window.
#[derive(Clone, Copy, Default)]
struct Span {
    attempts: usize,
    per_second: f64,
    peak: usize,
    mean: f64,
    /// What the busiest window would hold, against the mean, if the same
    /// attempts came at random (uniformly) over the span: the floor the
    /// ratio can reach without any lock-step, since a few attempts per
    /// window vary by chance alone.
    random: f64,
}

impl Span {
    fn of(times: &[f64], from: f64, to: f64) -> Span {
        let counts = windows(times, from, to);
        let attempts: usize = counts.iter().sum();
        let mean = attempts as f64 / counts.len().max(1) as f64;
        Span {
            attempts,
            per_second: attempts as f64 / ((to - from) / 1000.0),
            peak: counts.iter().copied().max().unwrap_or(0),
            mean,
            random: random_peak(attempts, counts.len()) / mean,
        }
    }

    fn ratio(&self) -> f64 {
        self.peak as f64 / self.mean
    }
}

/// The busiest of `windows` windows, on average over 200 trials, when
/// `attempts` fall uniformly at random into them (a fixed seed: the same
/// figure on every run).
fn random_peak(attempts: usize, windows: usize) -> f64 {
    if windows == 0 {
        return f64::NAN;
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let trials = 200;
    let mut total = 0usize;
    for _ in 0..trials {
        let mut counts = vec![0usize; windows];
        for _ in 0..attempts {
            counts[(next() % windows as u64) as usize] += 1;
        }
        total += counts.into_iter().max().unwrap_or(0);
    }
    total as f64 / trials as f64
}

struct HerdRun {
    ready: usize,
    restored: usize,
    spawn_spread: f64,
    /// First spawn -> PostgreSQL up (the 3 s).
    late: Span,
    /// The same from one base interval after the first spawn: the retries,
    /// without the first attempts (made at spawn, before any wait).
    retries: Span,
    /// PostgreSQL up -> the last gateway's Ready line.
    all_ready: f64,
    /// The whole outage.
    outage: Span,
    /// Its last 10 s.
    outage_end: Span,
    /// PostgreSQL up again -> the last gateway's "restored" line.
    all_restored: f64,
    /// Attempts per window: from the first spawn, and from the stop.
    start_series: Vec<usize>,
    outage_series: Vec<usize>,
}

fn run(plan: &Plan, policy: &Policy) -> HerdRun {
    let mut pg = Postgres::reserve();
    {
        use std::io::Write as _;
        let conf = pg.data_dir().join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .expect("open postgresql.conf");
        // 200 gateways hold 2 connections each (pool of 1, check of 1).
        writeln!(
            f,
            "\n# readygate herd benchmark\nlog_timezone = 'UTC'\n\
             log_line_prefix = '%m [%p] '\nmax_connections = {}",
            plan.herd_size * 2 + 50
        )
        .expect("append to postgresql.conf");
    }
    let relay = Relay::start(pg.port());
    let builders: Vec<_> = (0..plan.herd_size)
        .map(|_| {
            let mut b = Gateway::builder()
                .env("LOG_FORMAT", "json")
                .env("DATABASE_URL", relay.url())
                .env("DB_POOL_SIZE", "1")
                .env("DB_MAX_RETRIES", "1000")
                .env("DB_RETRY_INTERVAL_MS", INTERVAL_MS.to_string())
                .env("CACHE_TYPE", "memory");
            for (k, v) in &policy.env {
                b = b.env(*k, *v);
            }
            b
        })
        .collect();

    // Scenario 1: PostgreSQL up 3 s after the first spawn.
    let t0 = Instant::now();
    let spawned_ms = stats::epoch_ms(SystemTime::now());
    // Spawned from 4 threads: one thread takes a few ms per process, and 200
    // of them in a row would spread the herd over most of a second.
    let gws: Vec<Gateway> = std::thread::scope(|scope| {
        let mut chunks: Vec<Vec<_>> = (0..SPAWNERS).map(|_| Vec::new()).collect();
        for (i, b) in builders.into_iter().enumerate() {
            chunks[i % SPAWNERS].push(b);
        }
        let spawners: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || chunk.into_iter().map(|b| b.spawn()).collect::<Vec<_>>())
            })
            .collect();
        spawners
            .into_iter()
            .flat_map(|h| h.join().expect("a spawner thread"))
            .collect()
    });
    let starts: Vec<Instant> = gws.iter().map(Gateway::started_at).collect();
    let spawn_spread = stats::ms(
        starts.iter().max().copied().unwrap_or(t0) - starts.iter().min().copied().unwrap_or(t0),
    );
    std::thread::sleep(plan.herd_late.saturating_sub(t0.elapsed()));
    pg.start_server();
    let wait_all = |needle: &str, limit: Duration| {
        let deadline = Instant::now() + limit;
        for gw in &gws {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = gw.wait_for_line(needle, left);
        }
    };
    wait_all("\"Ready:", Duration::from_secs(30));
    // Settle: every gateway has made its first check.
    std::thread::sleep(Duration::from_secs(6));

    // Scenario 2: a 30 s outage.
    let stop_ms = stats::epoch_ms(SystemTime::now());
    let stopped = Instant::now();
    pg.stop();
    std::thread::sleep(plan.herd_outage.saturating_sub(stopped.elapsed()));
    pg.start_server();
    let restore_limit = Duration::from_secs_f64(policy.max_wait_ms / 1000.0 + 15.0);
    wait_all("connection restored after", restore_limit);
    std::thread::sleep(Duration::from_millis(200));

    let log = pg.log();
    let kept = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "target/readygate-bench/herd-postgres-{}.log",
        policy.name.split(' ').next().unwrap_or("policy")
    ));
    if kept
        .parent()
        .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
    {
        let _ = std::fs::write(&kept, &log);
    }
    let ups: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("database system is ready to accept connections"))
        .filter_map(pg_log_ms)
        .collect();
    let (up_ms, up_again_ms) = (
        ups.first().copied().unwrap_or(f64::NAN),
        ups.get(1).copied().unwrap_or(f64::NAN),
    );
    let (mut ready_ms, mut restored_ms) = (Vec::new(), Vec::new());
    for gw in &gws {
        let lines = log_lines(gw);
        if let Some(l) = lines.iter().find(|l| l.message.starts_with("Ready:")) {
            ready_ms.push(l.wall_ms);
        }
        if let Some(l) = lines
            .iter()
            .find(|l| l.message.starts_with("DB connection restored after"))
        {
            restored_ms.push(l.wall_ms);
        }
    }
    for gw in &gws {
        gw.signal(Signal::SIGTERM);
    }
    for gw in &gws {
        let _ = gw.wait_exit_status(Duration::from_secs(5));
    }
    let accepted = relay.accepted();
    drop(relay);

    let outage_end_ms = stop_ms + ms_of(plan.herd_outage);
    HerdRun {
        ready: ready_ms.len(),
        restored: restored_ms.len(),
        spawn_spread,
        late: Span::of(&accepted, spawned_ms, up_ms),
        retries: Span::of(&accepted, spawned_ms + INTERVAL_MS as f64, up_ms),
        all_ready: max(&ready_ms) - up_ms,
        outage: Span::of(&accepted, stop_ms, outage_end_ms),
        outage_end: Span::of(&accepted, outage_end_ms - 10_000.0, outage_end_ms),
        all_restored: max(&restored_ms) - up_again_ms,
        start_series: windows(&accepted, spawned_ms, up_ms + 2000.0),
        outage_series: windows(&accepted, stop_ms - 2000.0, up_again_ms + 2000.0),
    }
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---- the section ---------------------------------------------------------------------

/// One policy's row of the table (also its progress line).
fn row(policy: &Policy, r: &HerdRun) -> String {
    let bound = policy.max_wait_ms + ATTEMPT_MS;
    format!(
        "| {} | {} | {} / {:.1} = **{:.2}x** ({:.2}x) | {:.0} ms ({bound:.0} ms) | **{}** | \
         **{:.1}** | {} / {:.1} = **{:.2}x** ({:.2}x) | **{:.0} ms** ({bound:.0} ms) |",
        policy.name,
        r.late.attempts,
        r.retries.peak,
        r.retries.mean,
        r.retries.ratio(),
        r.retries.random,
        r.all_ready,
        r.outage.attempts,
        r.outage_end.per_second,
        r.outage_end.peak,
        r.outage_end.mean,
        r.outage_end.ratio(),
        r.outage_end.random,
        r.all_restored,
    )
}

pub fn herd(plan: &Plan, report: &mut Report) {
    println!(
        "\n[6] herd: {} gateways (pool of 1), one PostgreSQL behind a counting relay: up {} s \
         after the first spawn, then down for {} s once all are ready; base interval \
         {INTERVAL_MS} ms",
        plan.herd_size,
        plan.herd_late.as_secs_f64(),
        plan.herd_outage.as_secs_f64()
    );
    let policies = policies();
    let mut runs = Vec::new();
    for policy in &policies {
        let r = run(plan, policy);
        println!("  {}", row(policy, &r));
        println!(
            "    per 100 ms from the first spawn: {}",
            r.start_series
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        flush();
        runs.push(r);
    }

    let mut table = String::from(
        "| Policy (base interval 500 ms) | Start-up: attempts in the 3 s | its retries: peak / \
         mean per 100 ms (random) | all ready after PostgreSQL up (bound) | Outage: attempts in \
         the 30 s | per s, its last 10 s | peak / mean per 100 ms, last 10 s (random) | all ready \
         again after PostgreSQL back (bound) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (policy, r) in policies.iter().zip(&runs) {
        table.push_str(&row(policy, r));
        table.push('\n');
    }
    table.push_str(&format!(
        "\n{} gateways; spawn spread (first to last spawn) {} ms; ready / restored: {}.\n",
        plan.herd_size,
        runs.iter()
            .map(|r| format!("{:.0}", r.spawn_spread))
            .collect::<Vec<_>>()
            .join(" / "),
        runs.iter()
            .map(|r| format!("{}/{}", r.ready, r.restored))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.block("herd", table);

    let fixed = &runs[0];
    for (policy, r) in policies.iter().zip(&runs) {
        let all = r.ready == plan.herd_size && r.restored == plan.herd_size;
        if policy.jitter {
            let worst = r.outage_end.ratio().max(r.retries.ratio());
            // At the exponential policies' low rates a 100 ms window holds
            // a few attempts, and chance alone puts the busiest well above
            // 1.5x the mean (the random reference): shown, not judged.
            let judged = !policy.exponential;
            report.check(
                &format!("6. Herd, {}: lock-step", policy.name),
                format!(
                    "busiest 100 ms against the mean: {:.2}x over the outage's last 10 s \
                     (random arrivals: {:.2}x), {:.2}x over the start-up retries ({:.2}x)",
                    r.outage_end.ratio(),
                    r.outage_end.random,
                    r.retries.ratio(),
                    r.retries.random
                ),
                format!(
                    "fixed: {:.2}x and {:.2}x",
                    fixed.outage_end.ratio(),
                    fixed.retries.ratio()
                ),
                if judged {
                    "peak <= 1.5x the mean, both"
                } else {
                    "(shown: too few attempts per window to judge)"
                },
                judged.then_some(worst <= 1.5),
            );
        }
        if policy.exponential {
            let (total, end) = (
                r.outage.attempts as f64 / fixed.outage.attempts as f64,
                r.outage_end.per_second / fixed.outage_end.per_second,
            );
            report.check(
                &format!("6. Herd, {}: load while down", policy.name),
                format!(
                    "{} attempts in the outage ({:.2}x fixed's), {:.1}/s in its last 10 s \
                     ({:.2}x)",
                    r.outage.attempts, total, r.outage_end.per_second, end
                ),
                format!(
                    "fixed: {} attempts, {:.1}/s",
                    fixed.outage.attempts, fixed.outage_end.per_second
                ),
                "<= 0.25x fixed's, both",
                Some(total <= 0.25 && end <= 0.25),
            );
        }
        let bound = policy.max_wait_ms + ATTEMPT_MS;
        report.check(
            &format!("6. Herd, {}: recovery", policy.name),
            format!(
                "all {} ready again {:.0} ms after PostgreSQL was back (at start-up: {:.0} ms)",
                r.restored, r.all_restored, r.all_ready
            ),
            format!(
                "longest wait {:.0} ms + {ATTEMPT_MS:.0} ms for the attempt",
                policy.max_wait_ms
            ),
            &format!("<= {bound:.0} ms, every gateway"),
            Some(all && r.all_restored <= bound),
        );
    }

    let panel =
        |title: &str, offset_ms: f64, pick: &dyn Fn(&HerdRun) -> &Vec<usize>| svg::RatePanel {
            title: title.to_owned(),
            offset_ms,
            series: policies
                .iter()
                .zip(&runs)
                .map(|(p, r)| (p.name.to_owned(), pick(r).clone()))
                .collect(),
        };
    let chart = svg::rates(&svg::Rates {
        title: format!(
            "Connection attempts per 100 ms at the server, {} gateways, base interval {INTERVAL_MS} ms",
            plan.herd_size
        ),
        subtitle: "counted by a relay in front of PostgreSQL; left: start-up, PostgreSQL up at \
                   3 s; right: an outage, PostgreSQL stopped at 0 s and back at 30 s"
            .to_owned(),
        window_ms: WINDOW_MS,
        panels: vec![
            panel("start-up (s from the first spawn)", 0.0, &|r| {
                &r.start_series
            }),
            panel("outage (s from the stop)", -2000.0, &|r| &r.outage_series),
        ],
    });
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/herd-attempts.svg");
    match std::fs::write(&path, chart) {
        Ok(()) => println!("  chart written: {}", path.display()),
        Err(e) => println!("  cannot write {}: {e}", path.display()),
    }
}
