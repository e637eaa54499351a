//! Section `reaction`, item 2: how soon after a late dependency starts
//! accepting sessions `/ready` answers 200, for PostgreSQL and Redis, with
//! the start spread over the retry cycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::http::wait_for_200;
use crate::plan::{INTERVAL_MS, Plan, Report, flush};
use crate::probe::{Kind, Watch};
use crate::spawn::{Deps, POLL, failed_attempts, gateway, log_lines, stop};
use crate::stats::{max, median, ms, spread};
use crate::support::{Postgres, Redis};

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

pub fn reaction(plan: &Plan, deps: &Deps, report: &mut Report) {
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
