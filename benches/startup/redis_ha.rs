//! Section `redis-ha`, item 9 (issue 23): Redis Sentinel and Redis Cluster
//! under the example application (this binary with `EXAMPLE_APP=1`).
//!
//! Sentinel: each round starts a master, a replica and three sentinels
//! (`down-after-milliseconds` 500, `failover-timeout` 3000: the tests'
//! support), runs the application with `CACHE_TYPE=redis-sentinel`, SIGKILLs
//! the master and times (a) the kill to the first `/ready` 503, (b) the
//! kill to the sentinels naming the replica (polled every 10 ms), (c) the
//! kill to the first `GET /app/visits` 200 after it (a working cache), and
//! (d) the promotion seen to that 200.
//!
//! Cluster: each round creates a three-master cluster, runs the application
//! with `CACHE_TYPE=redis-cluster`, kills a master, waits for `/ready` 503,
//! restarts it and times (e) the first node saying `cluster_state:ok`
//! (polled every 10 ms) to the first `/ready` 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::failover::{Poller, row, signed_ms};
use crate::plan::{Plan, Report, flush};
use crate::spawn::{EXAMPLE_APP_ENV, Spec, stop, time_to_ready};
use crate::stats::{max, median, spread};
use crate::support::{
    Gateway, RedisClusterSet, SENTINEL_MASTER, SentinelSet, cluster_ok, sentinel_master_port,
};

/// The application's settings (stated in the output).
const CHECK_MS: u64 = 1000;
const RETRY_MS: u64 = 500;
const CONNECT_TIMEOUT_MS: u64 = 2000;
/// The sentinels' `down-after-milliseconds` (the tests' support).
const DOWN_AFTER_MS: u64 = 500;
/// Added to each bound for the polling (10 ms) and the attempt.
const SLACK_MS: u64 = 250;
const EVERY: Duration = Duration::from_millis(10);
const LIMIT: Duration = Duration::from_secs(30);

fn settings(cache: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("LOG_FORMAT", "json".into()),
        ("HEALTH_CHECK_INTERVAL_MS", CHECK_MS.to_string()),
        ("REDIS_RETRY_INTERVAL_MS", RETRY_MS.to_string()),
        ("REDIS_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS.to_string()),
        ("REDIS_MAX_RETRIES", "20".into()),
    ];
    env.extend(cache);
    env
}

/// The first instant `condition` held, polled every [`EVERY`] on a thread
/// of its own from now on.
struct Watch {
    done: Arc<AtomicBool>,
    thread: JoinHandle<Option<Instant>>,
}

impl Watch {
    fn start(condition: impl Fn() -> bool + Send + 'static) -> Watch {
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + LIMIT;
            while !d.load(Ordering::Relaxed) && Instant::now() < deadline {
                if condition() {
                    return Some(Instant::now());
                }
                std::thread::sleep(EVERY);
            }
            None
        });
        Watch { done, thread }
    }

    fn finish(self) -> Option<Instant> {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// `at - from` in ms (`INFINITY`: it never happened).
fn since(from: Instant, at: Option<Instant>) -> f64 {
    at.map_or(f64::INFINITY, |at| signed_ms(from, at))
}

/// The example application with `cache` (and the settings above), once
/// `/ready` answered 200.
fn ready_app(cache: Vec<(&'static str, String)>) -> Gateway {
    let app = Spec::this_binary(EXAMPLE_APP_ENV, settings(cache)).spawn();
    time_to_ready(&app).unwrap_or_else(|| {
        panic!(
            "the application never answered /ready 200:\n{}",
            app.output()
        )
    });
    app
}

struct SentinelRound {
    down: f64,
    promoted: f64,
    working: f64,
    promoted_to_working: f64,
}

/// One Sentinel failover, the master killed `lead` after the first
/// `/app/visits` 200.
fn sentinel_round(lead: Duration) -> SentinelRound {
    let mut set = SentinelSet::start();
    let app = ready_app(vec![
        ("CACHE_TYPE", "redis-sentinel".into()),
        ("REDIS_SENTINEL_NODES", set.nodes()),
        ("REDIS_SENTINEL_MASTER", SENTINEL_MASTER.into()),
    ]);
    let ready = Poller::start(app.port(), "/ready");
    let visits = Poller::start(app.port(), "/app/visits");
    let Some(served) = visits.wait_for(200, Instant::now()) else {
        panic!("/app/visits never answered 200:\n{}", app.output());
    };
    std::thread::sleep((served + lead).saturating_duration_since(Instant::now()));

    let replica = set.replica.port();
    let sentinel = set.sentinels[0].port();
    let killed = Instant::now();
    set.master.kill();
    let promotion = Watch::start(move || sentinel_master_port(sentinel) == Some(replica));
    let down_at = ready.wait_for(503, killed);
    let working_at = visits.wait_for(200, down_at.unwrap_or(killed));
    let promoted_at = promotion.finish();
    ready.finish();
    visits.finish();
    let round = SentinelRound {
        down: since(killed, down_at),
        promoted: since(killed, promoted_at),
        working: since(killed, working_at),
        promoted_to_working: promoted_at.map_or(f64::INFINITY, |p| since(p, working_at)),
    };
    if [round.down, round.promoted, round.working].contains(&f64::INFINITY) {
        println!("  the application's output:\n{}", app.output());
    }
    stop(&app);
    round
}

/// One cluster outage: a master killed, restarted once `/ready` said 503;
/// the first node saying `cluster_state:ok` to `/ready` 200.
fn cluster_round() -> (f64, f64) {
    let mut cluster = RedisClusterSet::start();
    let ports = cluster.ports();
    let app = ready_app(vec![
        ("CACHE_TYPE", "redis-cluster".into()),
        (
            "REDIS_CLUSTER_NODES",
            format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]),
        ),
    ]);
    let ready = Poller::start(app.port(), "/ready");
    let killed = Instant::now();
    cluster.nodes[2].kill();
    let down_at = ready.wait_for(503, killed);
    let down = since(killed, down_at);
    let restarting = Instant::now();
    let ok = Watch::start(move || ports.iter().any(|p| cluster_ok(*p)));
    cluster.nodes[2].start_server();
    let up_at = ready.wait_for(200, restarting);
    let ok_at = ok.finish();
    ready.finish();
    let back = ok_at.map_or(f64::INFINITY, |ok| since(ok, up_at));
    if back == f64::INFINITY || down == f64::INFINITY {
        println!("  the application's output:\n{}", app.output());
    }
    stop(&app);
    (down, back)
}

pub fn redis_ha(plan: &Plan, report: &mut Report) {
    let runs = plan.failover_rounds;
    let stated = format!(
        "`HEALTH_CHECK_INTERVAL_MS={CHECK_MS}`, `REDIS_RETRY_INTERVAL_MS={RETRY_MS}`, \
         `REDIS_CONNECT_TIMEOUT_MS={CONNECT_TIMEOUT_MS}`"
    );
    println!(
        "\n[9] redis-ha: the example application behind Sentinel (master SIGKILLed) and on a \
         Redis Cluster (a master killed and restarted); {runs} rounds each; {}",
        stated.replace('`', "")
    );
    let mut sentinel = Vec::new();
    for run in 0..runs {
        let lead = Duration::from_millis(run as u64 * CHECK_MS / runs.max(1) as u64);
        let r = sentinel_round(lead);
        println!(
            "  sentinel round {}: kill -> /ready 503 {:.0} ms, -> replica promoted {:.0} ms, -> \
             /app/visits 200 {:.0} ms (promotion -> 200 {:.0} ms)",
            run + 1,
            r.down,
            r.promoted,
            r.working,
            r.promoted_to_working
        );
        flush();
        sentinel.push(r);
    }
    let mut cluster = Vec::new();
    for run in 0..runs {
        let (down, back) = cluster_round();
        println!(
            "  cluster round {}: kill -> /ready 503 {down:.0} ms; cluster_state:ok -> /ready 200 \
             {back:.0} ms",
            run + 1
        );
        flush();
        cluster.push((down, back));
    }
    let pick = |f: fn(&SentinelRound) -> f64| sentinel.iter().map(f).collect::<Vec<f64>>();
    let (down, promoted, working, after) = (
        pick(|r| r.down),
        pick(|r| r.promoted),
        pick(|r| r.working),
        pick(|r| r.promoted_to_working),
    );
    let cluster_down: Vec<f64> = cluster.iter().map(|c| c.0).collect();
    let cluster_back: Vec<f64> = cluster.iter().map(|c| c.1).collect();
    let down_bound = CHECK_MS + CONNECT_TIMEOUT_MS + SLACK_MS;
    let after_bound = RETRY_MS + CONNECT_TIMEOUT_MS + SLACK_MS;
    let back_bound = RETRY_MS + CONNECT_TIMEOUT_MS + SLACK_MS;
    let down_formula = format!("check interval + connect timeout + {SLACK_MS} ms");
    let after_formula = format!("retry interval + connect timeout + {SLACK_MS} ms");

    let mut table = format!(
        "Settings: {stated}; Sentinel: a master, a replica, three sentinels (quorum 2, \
         `down-after-milliseconds {DOWN_AFTER_MS}`, `failover-timeout 3000`); Cluster: three \
         masters, no replicas, `cluster-node-timeout 1000`; {runs} rounds each, new servers in \
         each; `/ready`, `/app/visits`, the sentinel and the cluster's state polled every {} ms.\n\n\
         | Measure | per round (ms) | median | max | bound | |\n|---|---|---|---|---|---|\n",
        EVERY.as_millis()
    );
    table.push_str(&row(
        "(a) Sentinel: master SIGKILLed -> first `/ready` 503",
        &down,
        &down_formula,
        down_bound,
    ));
    let promoted_bound = DOWN_AFTER_MS + 3000;
    table.push_str(&row(
        "(b) Sentinel: master SIGKILLed -> the sentinels name the replica",
        &promoted,
        "down-after-milliseconds + failover-timeout (the sentinels' own)",
        promoted_bound,
    ));
    table.push_str(&row(
        "(c) Sentinel: master SIGKILLed -> first `GET /app/visits` 200 (a working cache)",
        &working,
        "(b)'s bound + retry interval + connect timeout + 250 ms",
        promoted_bound + after_bound,
    ));
    table.push_str(&row(
        "(d) Sentinel: promotion seen -> first `GET /app/visits` 200",
        &after,
        &after_formula,
        after_bound,
    ));
    table.push_str(&row(
        "(e) Cluster: master killed -> first `/ready` 503",
        &cluster_down,
        "check interval + connect timeout + node timeout 1000 + 250 ms",
        down_bound + 1000,
    ));
    table.push_str(&row(
        "(f) Cluster: first node says `cluster_state:ok` -> first `/ready` 200",
        &cluster_back,
        &after_formula,
        back_bound,
    ));
    report.block("redis-ha", table);

    report.check(
        "9. Sentinel: master killed -> working cache (max; min/med/max)",
        format!("{:.0} ms ({})", max(&working), spread(&working)),
        format!(
            "sentinels promoted after {:.0} ms median; promotion -> working {:.0} ms median",
            median(&promoted),
            median(&after)
        ),
        &format!("promotion -> working <= {after_formula} = {after_bound} ms"),
        Some(max(&after) <= after_bound as f64),
    );
    report.check(
        "9. Cluster: cluster_state:ok -> /ready 200 (max; min/med/max)",
        format!("{:.0} ms ({})", max(&cluster_back), spread(&cluster_back)),
        format!("retry every {RETRY_MS} ms"),
        &format!("<= {after_formula} = {back_bound} ms"),
        Some(max(&cluster_back) <= back_bound as f64),
    );
}
