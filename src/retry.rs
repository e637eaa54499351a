//! The retry schedule as plain data: attempt numbering, the wait before the
//! next attempt (back-off, jitter, the start-up deadline), the worst-case
//! budget and how durations print.
//!
//! Nothing here touches an actor, a clock or a random number generator: the
//! actor passes in the time elapsed and a number it drew in [0, 1), so the
//! whole policy is covered by unit and property tests, and the actor only
//! asks it what to do next.
//!
//! The schedule is integer arithmetic on milliseconds, with the multiplier
//! and the jitter counted in thousandths ([`Thousandths`]): the Helm chart's
//! templates (int64 only) and its lint (Python) compute the same budget to
//! the millisecond, which floating point could not promise across the three.

use std::fmt;
use std::time::Duration;

/// A fraction with at most three decimals, counted in thousandths:
/// `Thousandths(1500)` is 1.5. The back-off multiplier and the jitter are
/// written so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Thousandths(pub u32);

impl Thousandths {
    pub const ZERO: Thousandths = Thousandths(0);
    pub const ONE: Thousandths = Thousandths(1000);

    /// `value x self`, rounded down (saturating).
    fn times_floor(self, value: u64) -> u64 {
        let product = u128::from(value) * u128::from(self.0) / 1000;
        u64::try_from(product).unwrap_or(u64::MAX)
    }

    /// `value x self`, rounded up (saturating).
    fn times_ceil(self, value: u64) -> u64 {
        let product = (u128::from(value) * u128::from(self.0)).div_ceil(1000);
        u64::try_from(product).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Thousandths {
    /// `2`, `1.5`, `0.25`, `0.125`: no trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:03}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// How the wait grows from one attempt to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Every wait is the interval (the default, and the seed's behaviour).
    Fixed,
    /// The n-th wait is `interval x multiplier^(n-1)`, at most
    /// `max_interval`: each wait is the previous one times the multiplier,
    /// rounded up to the millisecond, then capped. A cap below the interval
    /// counts as the interval, a multiplier below 1 as 1: waits never shrink.
    Exponential {
        multiplier: Thousandths,
        max_interval: Duration,
    },
}

/// How often and how patiently one dependency is attempted: at start-up
/// (attempts, deadline) and when it is reconnected at runtime (the waits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Connection attempts at start-up before giving up (>= 1).
    pub max_attempts: u32,
    /// The first wait, between the end of a failed attempt and the start of
    /// the next; every wait with [`Backoff::Fixed`].
    pub interval: Duration,
    /// Limit for one attempt.
    pub attempt_timeout: Duration,
    pub backoff: Backoff,
    /// Each wait `w` is drawn uniformly from `[w x (1 - jitter), w x (1 +
    /// jitter)]`, to the millisecond (0 to 1; 0: no randomness).
    pub jitter: Thousandths,
    /// Start-up of this dependency ends by this time after its first attempt
    /// began, whatever attempts are left (`None`: no deadline).
    pub startup_deadline: Option<Duration>,
    /// The longest wait (`*_RETRY_MAX_INTERVAL_MS`, whatever the back-off):
    /// after a permanent error at runtime, the wait before the next attempt
    /// unless a secret changes first ([`RetryPolicy::after_runtime_failure`]).
    /// Below `interval` it counts as `interval`.
    pub longest_wait: Duration,
}

/// Which limit ended start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Every attempt was made (`*_MAX_RETRIES`).
    Attempts,
    /// The start-up deadline came (`*_STARTUP_TIMEOUT_MS`).
    Deadline,
}

/// A failed start-up attempt, as the policy needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    /// Its number, from 1.
    pub attempt: u32,
    /// Time since the first attempt began, now that this one has failed.
    pub elapsed: Duration,
    /// It was the last attempt the deadline left room for.
    pub last: bool,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then make attempt number `attempt`; `last`: the
    /// deadline leaves room for no other after it.
    RetryIn {
        delay: Duration,
        attempt: u32,
        last: bool,
    },
    /// Start-up ends: this limit was reached.
    GiveUp(Limit),
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RetryPolicy {
    /// The seed's policy: a fixed interval, no jitter, no deadline.
    pub fn fixed(max_attempts: u32, interval: Duration, attempt_timeout: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            interval,
            attempt_timeout,
            backoff: Backoff::Fixed,
            jitter: Thousandths::ZERO,
            startup_deadline: None,
            longest_wait: interval,
        }
    }

    /// The base wait (before jitter) that follows `w` ms, in ms.
    fn grow(&self, w: u64) -> u64 {
        match self.backoff {
            Backoff::Fixed => w,
            Backoff::Exponential {
                multiplier,
                max_interval,
            } => {
                let cap = millis(max_interval).max(millis(self.interval));
                multiplier
                    .max(Thousandths::ONE)
                    .times_ceil(w)
                    .min(cap)
                    .max(w)
            }
        }
    }

    /// The jitter's half-width for a base wait of `w` ms: `w x jitter`,
    /// rounded down, never more than `w` (so no wait goes below zero).
    fn spread(&self, w: u64) -> u64 {
        self.jitter.min(Thousandths::ONE).times_floor(w)
    }

    /// The n-th wait before jitter (n >= 1: the wait after attempt n at
    /// start-up, before reconnection attempt n at runtime).
    pub fn base_wait(&self, n: u32) -> Duration {
        let mut w = millis(self.interval);
        for _ in 1..n {
            let next = self.grow(w);
            if next == w {
                break;
            }
            w = next;
        }
        Duration::from_millis(w)
    }

    /// The longest the n-th wait can be: its base times `1 + jitter`.
    pub fn max_wait(&self, n: u32) -> Duration {
        let w = millis(self.base_wait(n));
        Duration::from_millis(w.saturating_add(self.spread(w)))
    }

    /// The n-th wait with jitter, `draw` being a number drawn uniformly in
    /// [0, 1): each whole millisecond of `[w - spread, w + spread]` is
    /// equally likely. Without jitter `draw` does not matter.
    pub fn wait(&self, n: u32, draw: f64) -> Duration {
        let w = millis(self.base_wait(n));
        let spread = self.spread(w);
        if spread == 0 {
            return Duration::from_millis(w);
        }
        let choices = spread.saturating_mul(2);
        // `as` saturates: NaN and negative draws give 0, huge ones the top.
        let pick = ((draw * (choices as f64 + 1.0)) as u64).min(choices);
        Duration::from_millis(w - spread + pick)
    }

    /// How long the attempt that starts `elapsed` after the first one began
    /// may take: the attempt timeout, cut at the deadline.
    pub fn attempt_limit(&self, elapsed: Duration) -> Duration {
        match self.startup_deadline {
            Some(deadline) => self.attempt_timeout.min(deadline.saturating_sub(elapsed)),
            None => self.attempt_timeout,
        }
    }

    /// Decide what follows a failed start-up attempt; `draw` as for
    /// [`RetryPolicy::wait`].
    ///
    /// The deadline rule: a wait that would reach the deadline is shortened
    /// so that one last attempt starts with its whole timeout left before
    /// the deadline (at once when less is left), and that attempt is the
    /// last; every attempt is cut at the deadline
    /// ([`RetryPolicy::attempt_limit`]). So no wait runs past the deadline
    /// and start-up never outlasts it.
    pub fn after_failure(&self, failed: Failed, draw: f64) -> Next {
        if failed.attempt >= self.max_attempts {
            return Next::GiveUp(Limit::Attempts);
        }
        let attempt = failed.attempt.saturating_add(1);
        let delay = self.wait(failed.attempt, draw);
        let Some(deadline) = self.startup_deadline else {
            return Next::RetryIn {
                delay,
                attempt,
                last: false,
            };
        };
        let left = deadline.saturating_sub(failed.elapsed);
        if failed.last || left.is_zero() {
            return Next::GiveUp(Limit::Deadline);
        }
        if delay < left {
            return Next::RetryIn {
                delay,
                attempt,
                last: false,
            };
        }
        Next::RetryIn {
            delay: left.saturating_sub(self.attempt_timeout),
            attempt,
            last: true,
        }
    }

    /// The longest start-up of this dependency can take before the policy
    /// gives up, exactly: every attempt runs into its timeout and every wait
    /// is drawn at its maximum (`base x (1 + jitter)`), or the deadline when
    /// that comes first. Saturates instead of overflowing.
    pub fn worst_case_budget(&self) -> Duration {
        let attempts = u64::from(self.max_attempts.max(1));
        let mut total = millis(self.attempt_timeout).saturating_mul(attempts);
        let waits = attempts - 1;
        let mut w = millis(self.interval);
        let mut n = 1;
        while n <= waits {
            let longest = w.saturating_add(self.spread(w));
            let next = self.grow(w);
            if next == w {
                // Every remaining wait is this one.
                total = total.saturating_add(longest.saturating_mul(waits - n + 1));
                break;
            }
            total = total.saturating_add(longest);
            w = next;
            n += 1;
        }
        let schedule = Duration::from_millis(total);
        match self.startup_deadline {
            Some(deadline) => deadline.min(schedule),
            None => schedule,
        }
    }

    /// The WARN line for a failed start-up attempt followed by `next`, for
    /// example `DB connection failed (attempt 1/10), retrying in 5 s:
    /// connection refused`. The last attempt carries no "retrying".
    pub fn failure_line(&self, label: &str, attempt: u32, next: Next, cause: &str) -> String {
        match next {
            Next::RetryIn { delay, .. } => format!(
                "{label} connection failed (attempt {attempt}/{}), retrying in {}: {cause}",
                self.max_attempts,
                Seconds(delay)
            ),
            Next::GiveUp(_) => format!(
                "{label} connection failed (attempt {attempt}/{}): {cause}",
                self.max_attempts
            ),
        }
    }
}

/// What follows a failed reconnection attempt at runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// The wait before the next attempt.
    pub delay: Duration,
    /// After a permanent error: look at the dependency's secret files this
    /// often while waiting, and attempt at once when one changed (`None`:
    /// just wait).
    pub watch_every: Option<Duration>,
}

/// The shortest period between two looks at the secret files while a
/// permanent error waits: however short the interval, the files are read
/// at most ten times a second.
pub const MIN_WATCH: Duration = Duration::from_millis(100);

impl RetryPolicy {
    /// The longest wait of the policy: `longest_wait`, never below the
    /// interval.
    pub fn longest(&self) -> Duration {
        self.longest_wait.max(self.interval)
    }

    /// What follows reconnection attempt `attempt` (from 1) failing at
    /// runtime. A transient error waits as the back-off says (wait
    /// `attempt + 1`, with jitter). A permanent one (authentication, a
    /// certificate refused) would fail the same way until the secret is
    /// rotated: it waits the policy's longest wait, without jitter, looking
    /// at the secret files every interval (at least [`MIN_WATCH`], at most
    /// the wait) so that a change is tried at once.
    pub fn after_runtime_failure(&self, attempt: u32, permanent: bool, draw: f64) -> Reconnect {
        if !permanent {
            return Reconnect {
                delay: self.wait(attempt.saturating_add(1), draw),
                watch_every: None,
            };
        }
        let delay = self.longest();
        Reconnect {
            delay,
            watch_every: Some(self.interval.max(MIN_WATCH).min(delay)),
        }
    }
}

/// Prints a duration in seconds without trailing zeros, at millisecond
/// precision: 5000 ms -> `5 s`, 300 ms -> `0.3 s`, 1500 ms -> `1.5 s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        let (whole, frac) = (millis / 1000, millis % 1000);
        if frac == 0 {
            return write!(f, "{whole} s");
        }
        let digits = format!("{frac:03}");
        write!(f, "{whole}.{} s", digits.trim_end_matches('0'))
    }
}

/// How often each distinct cause occurred over a series of attempts, in the
/// order first seen: prints as `connection refused x14, timed out x1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CauseTally(Vec<(String, u32)>);

impl CauseTally {
    pub fn add(&mut self, cause: impl Into<String>) {
        let cause = cause.into();
        match self.0.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => self.0.push((cause, 1)),
        }
    }

    /// Attempts counted.
    pub fn total(&self) -> u32 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for CauseTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (cause, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{cause} x{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
