//! Item 7, on paper: when is the service ready if PostgreSQL accepts
//! connections only `T` seconds after everything started, with
//!
//! - the gateway's own retries (N attempts, a fixed interval),
//! - a crash-and-restart loop under Kubernetes' CrashLoopBackOff (the
//!   kubelet restarts an exited container after 10 s, 20 s, 40 s, ...
//!   capped at 300 s),
//! - a wait script polling every second before starting the service,
//!
//! from the figures measured in the same run: the cost of one gap beyond the
//! interval, the start-up to ready of the gateway, the time a fail-fast
//! process needs to start, fail once and exit, and one `pg_isready` poll.

/// What the model is computed from (ms).
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Start-up to ready of the gateway with its dependencies up (median).
    pub startup: f64,
    /// Measured gap between attempts minus the configured interval (mean).
    pub gap_overhead: f64,
    /// Spawn to exit of a process that makes one refused attempt and exits
    /// (readygate with `DB_MAX_RETRIES=1`, median).
    pub fail_fast: f64,
    /// One `pg_isready -t 1` against a closed port (median).
    pub poll_cost: f64,
}

/// A start-up strategy.
#[derive(Clone, Copy, Debug)]
pub enum Strategy {
    /// The gateway retries `attempts` times, `interval` ms apart; it exits
    /// (69) when all failed.
    Retries { attempts: u32, interval: f64 },
    /// The same process, restarted under CrashLoopBackOff after each exit.
    RetriesUnderCrashLoop { attempts: u32, interval: f64 },
    /// Poll every `period` ms, then start the service.
    WaitScript { period: f64 },
}

/// Kubernetes' restart back-off before restart number `k` (1-based): 10 s,
/// 20 s, 40 s, ... capped at 300 s.
fn backoff_ms(k: u32) -> f64 {
    let exp = k.saturating_sub(1).min(16);
    (10_000.0 * f64::from(1u32 << exp)).min(300_000.0)
}

/// When the service answers ready (ms since everything started) if the
/// database accepts connections from `t_up` ms on; `None` if it never does
/// within an hour (the gateway alone gives up for good).
pub fn ready_at(strategy: Strategy, t_up: f64, m: Measured) -> Option<f64> {
    // One run of the retrying process starting at `start`: the attempts are
    // `gap` apart; the first at or after t_up succeeds.
    let run = |start: f64, attempts: u32, interval: f64| -> Option<f64> {
        let gap = interval + m.gap_overhead;
        (0..attempts)
            .map(|k| start + f64::from(k) * gap)
            .find(|at| *at >= t_up)
            .map(|at| at + m.startup)
    };
    match strategy {
        Strategy::Retries { attempts, interval } => run(0.0, attempts, interval),
        Strategy::RetriesUnderCrashLoop { attempts, interval } => {
            let gap = interval + m.gap_overhead;
            // Time a run takes to give up: its attempts and waits, plus the
            // process start and exit of a fail-fast run.
            let run_len = f64::from(attempts.saturating_sub(1)) * gap + m.fail_fast;
            let mut start = 0.0;
            for restart in 1..=200 {
                if let Some(ready) = run(start, attempts, interval) {
                    return Some(ready);
                }
                start += run_len + backoff_ms(restart);
                if start > 3_600_000.0 {
                    break;
                }
            }
            None
        }
        Strategy::WaitScript { period } => {
            // Polls at 0, period + cost, ...; the first at or after t_up
            // passes and the service starts.
            let step = period + m.poll_cost;
            let polls = ((t_up / step).ceil()).max(0.0);
            Some(polls * step + m.poll_cost + m.startup)
        }
    }
}

/// Mean and worst delay after `t_up` over `t_up` in [from, from + width),
/// sampled every millisecond.
pub fn delay_stats(strategy: Strategy, from: f64, width: f64, m: Measured) -> (f64, f64) {
    let mut sum = 0.0;
    let mut worst: f64 = 0.0;
    let mut n: f64 = 0.0;
    let mut t = from;
    while t < from + width {
        if let Some(ready) = ready_at(strategy, t, m) {
            let d = ready - t;
            sum += d;
            worst = worst.max(d);
            n += 1.0;
        }
        t += 1.0;
    }
    (sum / n.max(1.0), worst)
}
