//! Section `schedule`, item 2b: how closely the gaps between 21 refused
//! attempts keep the configured interval, per dependency, and whether they
//! drift; also the mean gap overhead that section `paper` uses.

use std::time::Duration;

use crate::plan::{INTERVAL_MS, Report};
use crate::spawn::{LogLine, failed_attempts, gateway, log_lines};
use crate::stats::{max, mean, ms, slope};
use crate::support::free_port;

pub fn schedule(report: &mut Report) {
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
