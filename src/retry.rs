//! The retry schedule as plain data: attempt numbering, the wait before the
//! next attempt, the worst-case budget and how durations print.
//!
//! Nothing here touches an actor or a clock, so the whole policy is covered by
//! unit and property tests; the dependency actor only asks it what to do next.

use std::fmt;
use std::time::Duration;

/// How often and how patiently one dependency is attempted at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Connection attempts before giving up (>= 1).
    pub max_attempts: u32,
    /// Wait between the end of a failed attempt and the start of the next.
    pub interval: Duration,
    /// Limit for one attempt.
    pub attempt_timeout: Duration,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then make attempt number `attempt`.
    RetryIn { delay: Duration, attempt: u32 },
    /// That was the last attempt.
    GiveUp,
}

impl RetryPolicy {
    /// Decide what follows the failure of attempt number `attempt` (1-based).
    pub fn after_failure(&self, attempt: u32) -> Next {
        if attempt >= self.max_attempts {
            Next::GiveUp
        } else {
            Next::RetryIn {
                delay: self.interval,
                attempt: attempt + 1,
            }
        }
    }

    /// The longest start-up can take before this policy gives up: every
    /// attempt runs into its timeout and every wait is served in full.
    pub fn worst_case_budget(&self) -> Duration {
        let attempts = self.max_attempts.max(1);
        self.attempt_timeout
            .saturating_mul(attempts)
            .saturating_add(self.interval.saturating_mul(attempts - 1))
    }

    /// The WARN line for a failed start-up attempt, for example
    /// `DB connection failed (attempt 1/10), retrying in 5 s: connection refused`.
    /// The last attempt carries no "retrying".
    pub fn failure_line(&self, label: &str, attempt: u32, cause: &str) -> String {
        match self.after_failure(attempt) {
            Next::RetryIn { delay, .. } => format!(
                "{label} connection failed (attempt {attempt}/{}), retrying in {}: {cause}",
                self.max_attempts,
                Seconds(delay)
            ),
            Next::GiveUp => format!(
                "{label} connection failed (attempt {attempt}/{}): {cause}",
                self.max_attempts
            ),
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(max_attempts: u32, interval_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            interval: Duration::from_millis(interval_ms),
            attempt_timeout: Duration::from_millis(5000),
        }
    }

    #[test]
    fn seconds_print_without_trailing_zeros() {
        let cases = [
            (5000, "5 s"),
            (300, "0.3 s"),
            (1500, "1.5 s"),
            (2000, "2 s"),
            (0, "0 s"),
            (1, "0.001 s"),
            (1010, "1.01 s"),
            (120_000, "120 s"),
        ];
        for (ms, want) in cases {
            assert_eq!(
                Seconds(Duration::from_millis(ms)).to_string(),
                want,
                "{ms} ms"
            );
        }
    }

    #[test]
    fn sub_millisecond_parts_are_cut() {
        assert_eq!(
            Seconds(Duration::from_micros(1_500_900)).to_string(),
            "1.5 s"
        );
    }

    #[test]
    fn failure_lines_match_the_documented_wording() {
        let p = policy(10, 5000);
        assert_eq!(
            p.failure_line("DB", 1, "connection refused"),
            "DB connection failed (attempt 1/10), retrying in 5 s: connection refused"
        );
        assert_eq!(
            p.failure_line("DB", 10, "connection refused"),
            "DB connection failed (attempt 10/10): connection refused"
        );
        assert_eq!(
            policy(15, 2000).failure_line("Redis", 1, "x"),
            "Redis connection failed (attempt 1/15), retrying in 2 s: x"
        );
    }

    #[test]
    fn tally_counts_distinct_causes_in_first_seen_order() {
        let mut t = CauseTally::default();
        for c in ["connection refused"; 14] {
            t.add(c);
        }
        t.add("timed out");
        assert_eq!(t.to_string(), "connection refused x14, timed out x1");
        assert_eq!(t.total(), 15);
        assert_eq!(CauseTally::default().to_string(), "");
    }

    #[test]
    fn a_single_attempt_gives_up_at_once() {
        assert_eq!(policy(1, 100).after_failure(1), Next::GiveUp);
    }

    #[test]
    fn worst_case_budget_counts_timeouts_and_waits() {
        // 3 attempts x 5 s timeout + 2 waits x 2 s
        assert_eq!(policy(3, 2000).worst_case_budget(), Duration::from_secs(19));
    }

    proptest! {
        #[test]
        fn attempts_are_numbered_one_to_max(max in 1u32..500, interval in 0u64..100_000) {
            let p = policy(max, interval);
            let mut attempt = 1;
            let mut waits = Vec::new();
            while let Next::RetryIn { delay, attempt: next } = p.after_failure(attempt) {
                prop_assert_eq!(next, attempt + 1);
                waits.push(delay);
                attempt = next;
            }
            prop_assert_eq!(attempt, max);
            prop_assert_eq!(waits.len() as u32, max - 1);
            prop_assert!(waits.iter().all(|d| *d == Duration::from_millis(interval)));
        }

        #[test]
        fn budget_is_the_sum_of_the_schedule(max in 1u32..500, interval in 0u64..100_000, timeout in 1u64..100_000) {
            let p = RetryPolicy {
                max_attempts: max,
                interval: Duration::from_millis(interval),
                attempt_timeout: Duration::from_millis(timeout),
            };
            let want = u64::from(max) * timeout + u64::from(max - 1) * interval;
            prop_assert_eq!(p.worst_case_budget(), Duration::from_millis(want));
        }

        #[test]
        fn budget_never_overflows(max in 1u32.., interval in 0u64.., timeout in 0u64..) {
            let p = RetryPolicy {
                max_attempts: max,
                interval: Duration::from_millis(interval),
                attempt_timeout: Duration::from_millis(timeout),
            };
            let _ = p.worst_case_budget();
        }

        #[test]
        fn seconds_round_trip_to_millis(ms in 0u64..10_000_000_000) {
            let printed = Seconds(Duration::from_millis(ms)).to_string();
            let number = printed.strip_suffix(" s").unwrap();
            prop_assert!(!number.ends_with('0') || !number.contains('.'));
            prop_assert!(!number.ends_with('.'));
            let back: f64 = number.parse().unwrap();
            prop_assert_eq!((back * 1000.0).round() as u64, ms);
        }

        #[test]
        fn only_the_last_line_omits_retrying(max in 1u32..200, attempt_off in 0u32..200) {
            let p = policy(max, 2000);
            let attempt = 1 + attempt_off % max;
            let line = p.failure_line("DB", attempt, "cause");
            let prefix = format!("DB connection failed (attempt {attempt}/{max})");
            prop_assert!(line.starts_with(&prefix));
            prop_assert_eq!(line.contains("retrying in"), attempt < max);
            prop_assert!(line.ends_with(": cause"));
        }
    }
}
