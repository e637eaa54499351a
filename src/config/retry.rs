//! One dependency's retry settings (`DB_*`, `REDIS_*`): attempts, the waits
//! (back-off, multiplier, cap, jitter), the attempt timeout and the start-up
//! deadline, read into a [`RetryPolicy`].

use super::check::Checker;
use crate::retry::{Backoff, RetryPolicy, Thousandths};

/// One dependency's retry settings: their variable names
/// (`RetryFields<&'static str>`) or their values as written.
pub(crate) struct RetryFields<T> {
    pub max_retries: T,
    pub interval: T,
    pub backoff: T,
    pub multiplier: T,
    pub max_interval: T,
    pub jitter: T,
    pub timeout: T,
    pub startup_timeout: T,
}

impl RetryFields<String> {
    pub(crate) fn as_refs(&self) -> RetryFields<&String> {
        RetryFields {
            max_retries: &self.max_retries,
            interval: &self.interval,
            backoff: &self.backoff,
            multiplier: &self.multiplier,
            max_interval: &self.max_interval,
            jitter: &self.jitter,
            timeout: &self.timeout,
            startup_timeout: &self.startup_timeout,
        }
    }
}

pub(super) const DB_RETRY: RetryFields<&str> = RetryFields {
    max_retries: "DB_MAX_RETRIES",
    interval: "DB_RETRY_INTERVAL_MS",
    backoff: "DB_RETRY_BACKOFF",
    multiplier: "DB_RETRY_MULTIPLIER",
    max_interval: "DB_RETRY_MAX_INTERVAL_MS",
    jitter: "DB_RETRY_JITTER",
    timeout: "DB_CONNECT_TIMEOUT_MS",
    startup_timeout: "DB_STARTUP_TIMEOUT_MS",
};

pub(crate) const REDIS_RETRY: RetryFields<&str> = RetryFields {
    max_retries: "REDIS_MAX_RETRIES",
    interval: "REDIS_RETRY_INTERVAL_MS",
    backoff: "REDIS_RETRY_BACKOFF",
    multiplier: "REDIS_RETRY_MULTIPLIER",
    max_interval: "REDIS_RETRY_MAX_INTERVAL_MS",
    jitter: "REDIS_RETRY_JITTER",
    timeout: "REDIS_CONNECT_TIMEOUT_MS",
    startup_timeout: "REDIS_STARTUP_TIMEOUT_MS",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackoffKind {
    Fixed,
    Exponential,
}

const BACKOFFS: &[(&str, BackoffKind)] = &[
    ("fixed", BackoffKind::Fixed),
    ("exponential", BackoffKind::Exponential),
];

/// Accepted back-off multipliers: 1 to 10.
const MULTIPLIERS: (Thousandths, Thousandths) = (Thousandths(1000), Thousandths(10_000));
/// Accepted jitter: 0 to 1.
const JITTERS: (Thousandths, Thousandths) = (Thousandths::ZERO, Thousandths::ONE);

impl Checker {
    /// One dependency's retry policy from its raw settings; every bad one is
    /// reported. Each setting is checked whatever the back-off, so that a
    /// typo shows before it matters; the cap must not be below the interval
    /// only when the back-off is exponential. A deadline of 0 is none.
    pub(crate) fn retry_policy(
        &mut self,
        vars: &RetryFields<&'static str>,
        raw: &RetryFields<&String>,
    ) -> Option<RetryPolicy> {
        let max_attempts = self.retries(vars.max_retries, raw.max_retries);
        let interval = self.millis(vars.interval, raw.interval);
        let backoff = self.choice(vars.backoff, raw.backoff, BACKOFFS);
        let multiplier = self.thousandths(vars.multiplier, raw.multiplier, MULTIPLIERS);
        let max_interval = self.millis(vars.max_interval, raw.max_interval);
        let jitter = self.thousandths(vars.jitter, raw.jitter, JITTERS);
        let attempt_timeout = self.millis(vars.timeout, raw.timeout);
        let deadline = self.millis_from(vars.startup_timeout, raw.startup_timeout, 0);
        let longest_wait = max_interval?;
        let backoff = match backoff? {
            BackoffKind::Fixed => Backoff::Fixed,
            BackoffKind::Exponential => {
                let (interval, max_interval) = (interval?, longest_wait);
                if max_interval < interval {
                    self.fail(
                        vars.max_interval,
                        raw.max_interval.trim(),
                        format!("is below {} ({} ms)", vars.interval, interval.as_millis()),
                        &format!(
                            "a whole number of ms, at least {} with {}=exponential",
                            vars.interval, vars.backoff
                        ),
                    );
                }
                Backoff::Exponential {
                    multiplier: multiplier?,
                    max_interval,
                }
            }
        };
        Some(RetryPolicy {
            max_attempts: max_attempts?,
            interval: interval?,
            attempt_timeout: attempt_timeout?,
            backoff,
            jitter: jitter?,
            startup_deadline: deadline.filter(|d| !d.is_zero()),
            longest_wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{CacheSettings, Cli, ConfigError, RawSettings};
    use clap::Parser;

    fn raw(args: &[&str]) -> RawSettings {
        let mut argv = vec!["readygate", "--cache-type", "redis"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    fn both(args: &[&str]) -> (RetryPolicy, RetryPolicy) {
        let s = raw(args).validate().unwrap();
        let CacheSettings::Redis(redis) = s.cache else {
            panic!("not redis")
        };
        (s.database.retry, redis.retry)
    }

    fn problems(args: &[&str]) -> Vec<(String, String)> {
        match raw(args).validate() {
            Err(ConfigError::Invalid(p)) => p
                .into_iter()
                .map(|p| (p.variable.to_owned(), p.reason))
                .collect(),
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_the_seeds_fixed_grid() {
        let (db, redis) = both(&[]);
        for p in [db, redis] {
            assert_eq!(
                p,
                RetryPolicy {
                    longest_wait: Duration::from_millis(30_000),
                    ..RetryPolicy::fixed(
                        3,
                        Duration::from_millis(2000),
                        Duration::from_millis(5000)
                    )
                }
            );
        }
    }

    #[test]
    fn every_retry_setting_reaches_its_own_dependency() {
        let (db, redis) = both(&[
            "--db-retry-backoff",
            "Exponential",
            "--db-retry-multiplier",
            "1.5",
            "--db-retry-max-interval-ms",
            "8000",
            "--db-retry-jitter",
            "0.25",
            "--db-startup-timeout-ms",
            "60000",
            "--redis-retry-jitter",
            "1",
        ]);
        assert_eq!(
            db.backoff,
            Backoff::Exponential {
                multiplier: Thousandths(1500),
                max_interval: Duration::from_millis(8000)
            }
        );
        assert_eq!(db.jitter, Thousandths(250));
        assert_eq!(db.startup_deadline, Some(Duration::from_millis(60_000)));
        assert_eq!(redis.backoff, Backoff::Fixed);
        assert_eq!(redis.jitter, Thousandths::ONE);
        assert_eq!(redis.startup_deadline, None);
    }

    /// Each limit docs/configuration.md gives is itself accepted: three decimals, the
    /// multiplier's 1 and 10, a cap equal to the interval.
    #[test]
    fn the_limits_themselves_are_accepted() {
        let (db, redis) = both(&[
            "--db-retry-backoff",
            "exponential",
            "--db-retry-multiplier",
            "10",
            "--db-retry-interval-ms",
            "3000",
            "--db-retry-max-interval-ms",
            "3000",
            "--db-retry-jitter",
            "0.125",
            "--redis-retry-backoff",
            "exponential",
            "--redis-retry-multiplier",
            "1",
        ]);
        assert_eq!(
            db.backoff,
            Backoff::Exponential {
                multiplier: Thousandths(10_000),
                max_interval: Duration::from_millis(3000)
            }
        );
        assert_eq!(db.jitter, Thousandths(125));
        assert_eq!(
            redis.backoff,
            Backoff::Exponential {
                multiplier: Thousandths::ONE,
                max_interval: Duration::from_millis(30_000)
            }
        );
    }

    /// The Helm chart sums exponential waits in a loop of at most 20000
    /// turns, counting on the waits to stop growing by then
    /// (`readygate.dependencyBudgetMs`): the slowest growth the settings
    /// accept (1 ms, times 1.001, up to one day) reaches its cap at the
    /// 11950th wait. Anything faster (a longer interval, a larger multiplier,
    /// a lower cap) gets there sooner.
    #[test]
    fn exponential_waits_stop_growing_within_the_charts_loop() {
        let cap = Duration::from_millis(super::super::check::MAX_MILLIS);
        let slowest = RetryPolicy {
            backoff: Backoff::Exponential {
                multiplier: Thousandths(MULTIPLIERS.0.0 + 1),
                max_interval: cap,
            },
            ..RetryPolicy::fixed(
                1_000_000,
                Duration::from_millis(1),
                Duration::from_millis(1),
            )
        };
        assert!(slowest.base_wait(11_949) < cap);
        assert_eq!(slowest.base_wait(11_950), cap);
    }

    #[test]
    fn bad_retry_settings_are_named() {
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &["--db-retry-backoff", "linear"],
                "DB_RETRY_BACKOFF",
                "is not one of",
            ),
            (
                &["--db-retry-jitter", "1.5"],
                "DB_RETRY_JITTER",
                "is above 1",
            ),
            (
                &["--db-retry-jitter=-0.1"],
                "DB_RETRY_JITTER",
                "is negative",
            ),
            (
                &["--db-retry-jitter", "0.2505"],
                "DB_RETRY_JITTER",
                "has more than 3 decimals",
            ),
            (
                &["--redis-retry-multiplier", "0.5"],
                "REDIS_RETRY_MULTIPLIER",
                "is below 1",
            ),
            (
                &["--redis-retry-multiplier", "x2"],
                "REDIS_RETRY_MULTIPLIER",
                "is not a decimal number",
            ),
            (
                &["--redis-startup-timeout-ms=-1"],
                "REDIS_STARTUP_TIMEOUT_MS",
                "is negative",
            ),
            (
                &["--db-retry-max-interval-ms", "0"],
                "DB_RETRY_MAX_INTERVAL_MS",
                "is below 1",
            ),
            (
                &[
                    "--db-retry-backoff",
                    "exponential",
                    "--db-retry-max-interval-ms",
                    "1000",
                ],
                "DB_RETRY_MAX_INTERVAL_MS",
                "is below DB_RETRY_INTERVAL_MS (2000 ms)",
            ),
        ];
        for (args, variable, reason) in cases {
            let p = problems(args);
            assert_eq!(p.len(), 1, "{args:?}: {p:?}");
            assert_eq!(p[0].0, *variable, "{args:?}");
            assert!(p[0].1.starts_with(reason), "{args:?}: {}", p[0].1);
        }
        // A cap below the interval only matters to the exponential back-off.
        assert!(
            raw(&["--db-retry-max-interval-ms", "1000"])
                .validate()
                .is_ok()
        );
    }
}
