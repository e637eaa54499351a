//! Items 3 (request path) and 4 (memory): what readygate costs every
//! request, the gateway's probes and an application's own routes alike,
//! against a bare actix-web server answering the same bytes, under load
//! from `wrk`.
//!
//! The headline is **CPU per request**: the server's user + system CPU time
//! (`/proc/PID/stat`) over a `wrk` run divided by the requests it served. On
//! a shared 2-core machine it moves far less than requests per second,
//! which depend on what else gets the cores. Throughput and latency are
//! reported beside it.
//!
//! Every readygate run is bracketed by two floor runs (F R F R ... R F), and
//! each pair's ratio is readygate's figure over the mean of the two floor
//! runs around it; the figure is the median of the pairs' ratios, with
//! their min and max.

use std::fmt::Write as _;
use std::time::Duration;

use crate::http::Conn;
use crate::load::{self, Wrk};
use crate::plan::{Plan, Report, flush};
use crate::spawn::{Deps, Spec, stop, time_to_ready};
use crate::stats::{kib_to_mib, max, median, min};
use crate::support::Gateway;

/// What readygate must stay within, against the floor.
const CPU_LIMIT: f64 = 1.05;
const RPS_LIMIT: f64 = 0.95;

/// One `wrk` run against one server, with that server's CPU time.
#[derive(Clone, Copy)]
struct Run {
    wrk: Wrk,
    /// Server CPU time per request served, µs.
    cpu_us: f64,
}

fn run(server: &Gateway, path: &str, conns: usize, secs: u64) -> Option<Run> {
    let before = load::cpu_seconds(server.pid())?;
    let wrk = load::wrk(server.port(), path, conns, secs)?;
    let after = load::cpu_seconds(server.pid())?;
    Some(Run {
        wrk,
        cpu_us: (after - before) * 1e6 / wrk.requests.max(1) as f64,
    })
}

/// One route at one concurrency: `pairs` readygate runs, each between two
/// floor runs.
struct Bracketed {
    route: String,
    conns: usize,
    floor: Vec<Run>,
    gateway: Vec<Run>,
}

impl Bracketed {
    /// Pair `i`'s ratio of `f`: readygate over the mean of the floor runs
    /// before and after it.
    fn ratios(&self, f: impl Fn(&Run) -> f64) -> Vec<f64> {
        self.gateway
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let (a, b) = (self.floor.get(i)?, self.floor.get(i + 1)?);
                Some(f(g) / ((f(a) + f(b)) / 2.0))
            })
            .collect()
    }

    /// The sum of `f` over every run, both servers.
    fn total(&self, f: impl Fn(&Wrk) -> u64) -> u64 {
        self.gateway
            .iter()
            .chain(&self.floor)
            .map(|r| f(&r.wrk))
            .sum()
    }

    fn errors(&self) -> u64 {
        self.total(|w| w.errors)
    }

    fn requests(&self) -> u64 {
        self.total(|w| w.requests)
    }
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

/// `1.02x (0.98–1.05)`: the median ratio and the pairs' spread.
fn ratio_text(ratios: &[f64]) -> String {
    format!(
        "{:.2}x ({:.2}–{:.2})",
        median(ratios),
        min(ratios),
        max(ratios)
    )
}

fn measure(
    plan: &Plan,
    route: &str,
    conns: usize,
    readygate: &Gateway,
    floor: &Gateway,
) -> Bracketed {
    // Warm-up: connections, caches, the allocator's pools.
    for server in [readygate, floor] {
        let _ = load::wrk(server.port(), route, conns, 1);
    }
    let mut b = Bracketed {
        route: route.to_owned(),
        conns,
        floor: Vec::new(),
        gateway: Vec::new(),
    };
    let one = |server: &Gateway| {
        run(server, route, conns, plan.wrk_secs)
            .unwrap_or_else(|| panic!("wrk gave no result for {route} on port {}", server.port()))
    };
    b.floor.push(one(floor));
    for pair in 0..plan.pairs {
        b.gateway.push(one(readygate));
        b.floor.push(one(floor));
        let (g, f0, f1) = (&b.gateway[pair], &b.floor[pair], &b.floor[pair + 1]);
        println!(
            "  {route} -c{conns} pair {}: readygate {:.0} req/s, {:.2} µs CPU/req; floor \
             {:.0} / {:.0} req/s, {:.2} / {:.2} µs CPU/req",
            pair + 1,
            g.wrk.rps,
            g.cpu_us,
            f0.wrk.rps,
            f1.wrk.rps,
            f0.cpu_us,
            f1.cpu_us
        );
        flush();
    }
    b
}

/// The section's table (Markdown), one row per route and concurrency.
fn table(results: &[Bracketed], plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Each row: {} pairs of `wrk -t2 -cN -d{}s --latency`, every readygate run between \
         two floor runs; ratios are readygate over the mean of the two floor runs around it, \
         median of the pairs (min–max); the other figures are medians of the runs.\n",
        plan.pairs, plan.wrk_secs
    );
    let _ = writeln!(
        s,
        "| Route | wrk -c | CPU µs/request, floor → readygate | **CPU ratio** | req/s, floor → \
         readygate | req/s ratio | p50 latency, floor → readygate | p99 latency, floor → \
         readygate | Errors |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for b in results {
        let _ = writeln!(
            s,
            "| `{}` | {} | {:.2} → {:.2} | **{}** | {:.0} → {:.0} | {} | {:.3} → {:.3} ms | \
             {:.3} → {:.3} ms | {} of {} |",
            b.route,
            b.conns,
            med(&b.floor, |r| r.cpu_us),
            med(&b.gateway, |r| r.cpu_us),
            ratio_text(&b.ratios(|r| r.cpu_us)),
            med(&b.floor, |r| r.wrk.rps),
            med(&b.gateway, |r| r.wrk.rps),
            ratio_text(&b.ratios(|r| r.wrk.rps)),
            med(&b.floor, |r| r.wrk.p50_ms),
            med(&b.gateway, |r| r.wrk.p50_ms),
            med(&b.floor, |r| r.wrk.p99_ms),
            med(&b.gateway, |r| r.wrk.p99_ms),
            b.errors(),
            b.requests()
        );
    }
    s
}

/// The example application (`examples/app.rs`) run by this bench binary
/// (`EXAMPLE_APP=1`) against the running PostgreSQL and Redis, with the
/// gateway's settings.
fn example_app(deps: &Deps) -> Spec {
    Spec::this_binary(crate::spawn::EXAMPLE_APP_ENV, Spec::gateway(deps).env)
}

/// User-space instructions per request of `route` on `server`, from
/// callgrind (`valgrind --tool=callgrind`): two runs of `FEW` and `MANY`
/// requests on one keep-alive connection, the difference over `MANY - FEW`
/// (start-up and shutdown cancel out). Deterministic where CPU time is not,
/// but blind to the kernel, where most of a request's time goes. `None`
/// when valgrind cannot be run.
fn instructions_per_request(server: &Spec, route: &str) -> Option<f64> {
    const FEW: u64 = 500;
    const MANY: u64 = 3000;
    let dir = tempfile::tempdir().ok()?;
    let mut totals = Vec::new();
    for (i, n) in [FEW, MANY].into_iter().enumerate() {
        let out = dir.path().join(format!("callgrind.{i}"));
        let p = server.spawn_under(&[
            "valgrind".to_owned(),
            "--tool=callgrind".to_owned(),
            format!("--callgrind-out-file={}", out.display()),
        ]);
        let ready = crate::http::wait_for_200(
            p.port(),
            "/ready",
            Duration::from_millis(20),
            Duration::from_secs(60),
            || !p.is_running(),
        );
        ready?;
        let mut conn = Conn::connect(p.port(), Duration::from_secs(5)).ok()?;
        for _ in 0..n {
            conn.get(route, false).ok()?;
        }
        drop(conn);
        p.signal(nix::sys::signal::Signal::SIGTERM);
        p.wait_exit_status(Duration::from_secs(60))?;
        let text = std::fs::read_to_string(&out).ok()?;
        let total: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
            })?
            .trim()
            .parse()
            .ok()?;
        totals.push(total);
    }
    Some((totals[1] - totals[0]) / (MANY - FEW) as f64)
}

/// The instructions table (Markdown): route, floor, readygate, ratio.
fn instructions_table(rows: &[(&str, f64, f64)]) -> String {
    let mut s = String::from(
        "| Route | User-space instructions per request, floor → readygate | Ratio | \
         Difference |\n|---|---|---|---|\n",
    );
    for (route, floor, gateway) in rows {
        let _ = writeln!(
            s,
            "| `{route}` | {floor:.0} → {gateway:.0} | {:.3}x | {:+.0} |",
            gateway / floor,
            gateway - floor
        );
    }
    s
}

pub fn request_path(plan: &Plan, deps: &Deps, report: &mut Report) {
    println!(
        "\n[3] request path: wrk -t2 -c{{{}}} -d{}s, {} pairs per route and concurrency, \
         each readygate run between two floor runs; [4] memory (VmRSS)",
        plan.concurrency
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        plan.wrk_secs,
        plan.pairs
    );
    let (gw_spec, app_spec) = (Spec::gateway(deps), example_app(deps));
    let gw = gw_spec.spawn();
    time_to_ready(&gw).unwrap_or_else(|| panic!("gateway not ready:\n{}", gw.output()));
    let app = app_spec.spawn();
    time_to_ready(&app).unwrap_or_else(|| panic!("example app not ready:\n{}", app.output()));
    let body = crate::http::get_once(gw.port(), "/ready")
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let floor_spec = Spec::floor(Some(&body));
    let floor = floor_spec.spawn();
    time_to_ready(&floor).unwrap_or_else(|| panic!("floor not ready:\n{}", floor.output()));
    std::thread::sleep(Duration::from_millis(200));
    let rss = |p: &Gateway, field: &str| crate::stats::proc_status_kib(p.pid(), field).unwrap_or(0);
    let (gw_rss0, floor_rss0) = (rss(&gw, "VmRSS"), rss(&floor, "VmRSS"));
    println!(
        "  RSS after start-up: gateway {:.1} MiB, floor {:.1} MiB; /ready body {} bytes \
         (the floor sends the same bytes)",
        kib_to_mib(gw_rss0),
        kib_to_mib(floor_rss0),
        body.len()
    );

    if load::installed() {
        let mut results = Vec::new();
        for conns in plan.concurrency.iter().copied() {
            for (route, server) in [("/health", &gw), ("/ready", &gw), ("/app/hello", &app)] {
                results.push(measure(plan, route, conns, server, &floor));
            }
        }
        for b in &results {
            let (cpu, rps) = (b.ratios(|r| r.cpu_us), b.ratios(|r| r.wrk.rps));
            report.check(
                &format!(
                    "3. Request path `{}`, wrk -c{} ({} pairs): CPU per request; throughput",
                    b.route, b.conns, plan.pairs
                ),
                format!("**{}**; {}", ratio_text(&cpu), ratio_text(&rps)),
                format!(
                    "floor {:.2} µs/req, {:.0} req/s",
                    med(&b.floor, |r| r.cpu_us),
                    med(&b.floor, |r| r.wrk.rps)
                ),
                &format!("CPU <= {CPU_LIMIT}x, throughput >= {RPS_LIMIT}x, no errors"),
                Some(median(&cpu) <= CPU_LIMIT && median(&rps) >= RPS_LIMIT && b.errors() == 0),
            );
        }
        let (errors, requests) = results
            .iter()
            .fold((0, 0), |(e, n), b| (e + b.errors(), n + b.requests()));
        report.note(format!(
            "Request path: {requests} requests from wrk, {errors} non-2xx answers or socket \
             errors."
        ));
        report.block("requests", table(&results, plan));
    } else {
        report.note(
            "Request path skipped: `wrk` is not installed (Debian/Ubuntu: `apt-get install \
             wrk`)."
                .to_owned(),
        );
    }
    let (gw_rss1, gw_hwm, floor_rss1) =
        (rss(&gw, "VmRSS"), rss(&gw, "VmHWM"), rss(&floor, "VmRSS"));
    for p in [&gw, &app, &floor] {
        stop(p);
    }
    in_process(report);
    println!("  callgrind: user-space instructions per request (valgrind --tool=callgrind)");
    let mut rows = Vec::new();
    for (route, server) in [
        ("/health", &gw_spec),
        ("/ready", &gw_spec),
        ("/app/hello", &app_spec),
    ] {
        let floor_i = instructions_per_request(&floor_spec, route);
        let gw_i = instructions_per_request(server, route);
        println!("  {route}: floor {floor_i:?}, readygate {gw_i:?}");
        if let (Some(f), Some(g)) = (floor_i, gw_i) {
            rows.push((route, f, g));
        }
    }
    if rows.is_empty() {
        report.note(
            "Instructions per request skipped: valgrind is not installed (`apt-get install \
             valgrind`)."
                .to_owned(),
        );
    } else {
        report.block("instructions", instructions_table(&rows));
    }

    let limit = 32.0;
    report.check(
        "4. Memory after start-up (VmRSS)",
        format!("{:.1} MiB", kib_to_mib(gw_rss0)),
        format!("floor {:.1} MiB", kib_to_mib(floor_rss0)),
        "< 32 MiB",
        Some(kib_to_mib(gw_rss0) < limit),
    );
    report.check(
        "4. Memory after the load (VmRSS; peak VmHWM)",
        format!(
            "{:.1} MiB (peak {:.1} MiB)",
            kib_to_mib(gw_rss1),
            kib_to_mib(gw_hwm)
        ),
        format!("floor {:.1} MiB", kib_to_mib(floor_rss1)),
        "< 32 MiB",
        Some(kib_to_mib(gw_rss1) < limit && kib_to_mib(gw_hwm) < limit),
    );
}

/// In-process costs behind `/ready` and the request counter, on this
/// thread, from the library's own types.
fn in_process(report: &mut Report) {
    use readygate::status::{Dependency, Health, State};
    use std::hint::black_box;
    let health = Health::default();
    health.register(&Dependency::database(), "postgres", true);
    health.register(&Dependency::cache(), "redis", true);
    health.set_state(&Dependency::database(), State::Up);
    health.set_state(&Dependency::cache(), State::Up);
    // What the /ready handler does per request: take the answer rendered at
    // the last state change.
    let answer = ns_per_call(200_000, || {
        black_box(health.ready_answer());
    });
    // What rendering costs, once per state change.
    let render = ns_per_call(200_000, || {
        let report = health.report();
        black_box(serde_json::to_vec(&report).map(|v| v.len()).unwrap_or(0));
    });
    // Resolving a request counter (once per route, status and worker), and
    // counting with a resolved one (every request).
    let resolve = ns_per_call(200_000, || {
        black_box(health.metrics().request_counter(black_box("/ready"), 200));
    });
    let counter = health.metrics().request_counter("/ready", 200);
    let count = ns_per_call(200_000, || {
        black_box(counter.inc());
    });
    report.note(format!(
        "In-process (one thread): the /ready handler's Health::ready_answer() costs {answer:.0} ns \
         per request (rendering the body, done once per state change, {render:.0} ns); counting \
         a request in readygate_http_requests_total costs {count:.0} ns with the worker's \
         resolved counter (resolving it in the metric family, once per route, status and \
         worker, {resolve:.0} ns)."
    ));
}

/// Nanoseconds per call of `f` (median of 5 batches of `n`).
fn ns_per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let mut batches = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        batches.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(n));
    }
    median(&batches)
}
