//! Section `startup`, item 1: spawn to the first `/ready` 200 with the
//! database (PostgreSQL, then MariaDB) and Redis up, beside the floor, in a
//! rotating order after one warm-up. (Its TLS part is in `tls.rs`.)

use crate::plan::{Plan, Report, flush};
use crate::spawn::{Deps, floor_server, gateway_with_deps, log_lines, stop, time_to_ready};
use crate::stats::{median, spread};
use crate::support::Mariadb;
use crate::support::mariadb::{APP_PASSWORD, APP_USER, DATABASE};

pub fn startup(plan: &Plan, deps: &Deps, report: &mut Report) {
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
