//! The processes the sections start and watch: the gateway (against the
//! running dependencies or any environment), the floor server and the
//! example application (this binary re-executed), the time from spawn to
//! the first `/ready` 200 and from SIGTERM to exit, and the gateway's JSON
//! log lines.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::floor;
use crate::http::wait_for_200;
use crate::stats::{self, ms};
use crate::support::Gateway;
use crate::support::gateway::GATEWAY_BIN;

/// Poll period of the "first /ready 200" pollers.
pub const POLL: Duration = Duration::from_millis(1);

/// The environment variable that turns the bench binary into the example
/// application.
pub const EXAMPLE_APP_ENV: &str = "EXAMPLE_APP";

/// The running dependencies every section shares.
pub struct Deps {
    /// `DATABASE_URL`: PostgreSQL's, except in the MariaDB runs of [`crate::startup`].
    pub db_url: String,
    pub redis_url: String,
}

/// A gateway process (JSON logs) with `env` on top of the support defaults
/// (`HOST=127.0.0.1`, a free `PORT`).
pub fn gateway(env: &[(&str, String)]) -> Gateway {
    let mut b = Gateway::builder().env("LOG_FORMAT", "json");
    for (k, v) in env {
        b = b.env(*k, v.clone());
    }
    b.spawn()
}

/// How to start a server process: a program and its environment, on top of
/// the support defaults (`HOST=127.0.0.1`, a free `PORT`).
pub struct Spec {
    pub program: PathBuf,
    pub env: Vec<(&'static str, String)>,
}

impl Spec {
    /// The gateway against the running PostgreSQL and Redis (JSON logs).
    pub fn gateway(deps: &Deps) -> Spec {
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
    pub fn this_binary(role: &'static str, env: Vec<(&'static str, String)>) -> Spec {
        let exe = std::env::current_exe().expect("the path of this bench binary");
        let mut env = env;
        env.push((role, "1".into()));
        Spec { program: exe, env }
    }

    /// The floor server; `/ready` answers `ready_body`.
    pub fn floor(ready_body: Option<&str>) -> Spec {
        let env = ready_body.map(|b| ("FLOOR_READY_BODY", b.to_owned()));
        Spec::this_binary(floor::ENV, env.into_iter().collect())
    }

    pub fn spawn(&self) -> Gateway {
        self.spawn_under(&[])
    }

    /// Spawned as the last argument of `wrapper` (e.g. `valgrind ...`);
    /// directly when `wrapper` is empty.
    pub fn spawn_under(&self, wrapper: &[String]) -> Gateway {
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
pub fn gateway_with_deps(deps: &Deps) -> Gateway {
    Spec::gateway(deps).spawn()
}

/// The floor server as its own process; `/ready` answers `ready_body`.
pub fn floor_server(ready_body: Option<&str>) -> Gateway {
    Spec::floor(ready_body).spawn()
}

/// Spawn to first `/ready` 200, in ms; `None` if it never came (10 s).
pub fn time_to_ready(p: &Gateway) -> Option<f64> {
    let at = wait_for_200(p.port(), "/ready", POLL, Duration::from_secs(10), || {
        !p.is_running()
    })?;
    Some(ms(at - p.started_at()))
}

/// SIGTERM, then the time until the process has exited and its exit code;
/// `None` if it did not exit within `limit`.
pub fn time_to_exit(p: &Gateway, limit: Duration) -> Option<(f64, Option<i32>)> {
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

pub fn stop(p: &Gateway) {
    let _ = time_to_exit(p, Duration::from_secs(5));
}

/// A log line of the gateway (`LOG_FORMAT=json`).
pub struct LogLine {
    /// When the harness read it.
    pub at: Instant,
    /// Its `timestamp` (ms since the epoch; millisecond resolution).
    pub wall_ms: f64,
    pub message: String,
    pub dependency: Option<String>,
}

pub fn log_lines(p: &Gateway) -> Vec<LogLine> {
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

pub fn failed_attempts<'a>(lines: &'a [LogLine], label: &str) -> Vec<&'a LogLine> {
    let prefix = format!("{label} connection failed (attempt ");
    lines
        .iter()
        .filter(|l| l.message.starts_with(&prefix))
        .collect()
}
