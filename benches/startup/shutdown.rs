//! Section `shutdown`, item 5: SIGTERM to exit during a retry wait, while
//! serving, and with an idle keep-alive connection open, beside the floor.

use std::time::Duration;

use crate::http::Conn;
use crate::plan::{Plan, Report, flush};
use crate::spawn::{Deps, floor_server, gateway, gateway_with_deps, time_to_exit, time_to_ready};
use crate::stats::{max, median, spread};
use crate::support::free_port;

pub fn shutdown(plan: &Plan, deps: &Deps, report: &mut Report) {
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
