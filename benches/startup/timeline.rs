//! Section `timeline`: one start-up with both dependencies late, drawn as
//! `benches/startup-timeline.svg` (see `svg.rs`) from the gateway's log
//! lines and the protocol probes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::http::wait_for_200;
use crate::plan::{INTERVAL_MS, Report};
use crate::probe::{Kind, Watch};
use crate::spawn::{POLL, gateway, log_lines, stop};
use crate::stats::{self, ms};
use crate::support::{Postgres, Redis};
use crate::svg;

pub fn timeline(report: &mut Report) {
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
