//! The retry schedule's unit and property tests.

use super::*;
use proptest::prelude::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn policy(max_attempts: u32, interval_ms: u64) -> RetryPolicy {
    RetryPolicy::fixed(max_attempts, MS(interval_ms), MS(5000))
}

fn exponential(interval_ms: u64, multiplier: u32, cap_ms: u64) -> RetryPolicy {
    RetryPolicy {
        longest_wait: MS(cap_ms),
        backoff: Backoff::Exponential {
            multiplier: Thousandths(multiplier),
            max_interval: MS(cap_ms),
        },
        ..policy(1000, interval_ms)
    }
}

fn failed(attempt: u32, elapsed_ms: u64) -> Failed {
    Failed {
        attempt,
        elapsed: MS(elapsed_ms),
        last: false,
    }
}

fn base_waits(p: &RetryPolicy, n: u32) -> Vec<u64> {
    (1..=n).map(|i| millis(p.base_wait(i))).collect()
}

/// What happened in one simulated start-up.
#[derive(Debug)]
struct Run {
    end: Duration,
    attempts: u32,
    /// (start of each attempt, its limit)
    starts: Vec<(Duration, Duration)>,
    limit: Limit,
}

/// Start-up as the actor runs it: each attempt takes `duration(limit)`
/// (at most its limit), each wait is drawn with `draw()`.
fn simulate(
    p: &RetryPolicy,
    mut draw: impl FnMut() -> f64,
    mut duration: impl FnMut(Duration) -> Duration,
) -> Run {
    let (mut t, mut attempt, mut last) = (Duration::ZERO, 1, false);
    let mut starts = Vec::new();
    loop {
        let limit = p.attempt_limit(t);
        starts.push((t, limit));
        t += duration(limit).min(limit);
        let failure = Failed {
            attempt,
            elapsed: t,
            last,
        };
        match p.after_failure(failure, draw()) {
            Next::RetryIn {
                delay,
                attempt: next,
                last: next_last,
            } => {
                assert_eq!(next, attempt + 1);
                t += delay;
                (attempt, last) = (next, next_last);
            }
            Next::GiveUp(limit) => {
                return Run {
                    end: t,
                    attempts: attempt,
                    starts,
                    limit,
                };
            }
        }
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
        assert_eq!(Seconds(MS(ms)).to_string(), want, "{ms} ms");
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
fn thousandths_print_as_decimals() {
    for (n, want) in [
        (2000, "2"),
        (1500, "1.5"),
        (250, "0.25"),
        (125, "0.125"),
        (0, "0"),
    ] {
        assert_eq!(Thousandths(n).to_string(), want);
    }
}

#[test]
fn failure_lines_match_the_documented_wording() {
    let p = policy(10, 5000);
    let line = |attempt| {
        let next = p.after_failure(failed(attempt, 0), 0.5);
        p.failure_line("DB", attempt, next, "connection refused")
    };
    assert_eq!(
        line(1),
        "DB connection failed (attempt 1/10), retrying in 5 s: connection refused"
    );
    assert_eq!(
        line(10),
        "DB connection failed (attempt 10/10): connection refused"
    );
    let p = policy(15, 2000);
    assert_eq!(
        p.failure_line("Redis", 1, p.after_failure(failed(1, 0), 0.9), "x"),
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
    assert_eq!(
        policy(1, 100).after_failure(failed(1, 0), 0.5),
        Next::GiveUp(Limit::Attempts)
    );
}

#[test]
fn worst_case_budget_counts_timeouts_and_waits() {
    // 3 attempts x 5 s timeout + 2 waits x 2 s
    assert_eq!(policy(3, 2000).worst_case_budget(), MS(19_000));
}

#[test]
fn exponential_waits_double_up_to_the_cap() {
    let p = exponential(100, 2000, 1000);
    assert_eq!(base_waits(&p, 7), [100, 200, 400, 800, 1000, 1000, 1000]);
    // Each step is rounded up to the millisecond: 337.5 -> 338.
    let p = exponential(100, 1500, 60_000);
    assert_eq!(base_waits(&p, 5), [100, 150, 225, 338, 507]);
    // A cap below the interval counts as the interval.
    assert_eq!(base_waits(&exponential(500, 2000, 100), 3), [500, 500, 500]);
}

#[test]
fn the_mcp_gateway_schedule_and_its_budget() {
    // 2 s doubling to 30 s, +-25 %: 10 attempts of at most 5 s, 9 waits
    // of at most 2.5 + 5 + 10 + 20 + 5 x 37.5 s.
    let p = RetryPolicy {
        max_attempts: 10,
        jitter: Thousandths(250),
        ..exponential(2000, 2000, 30_000)
    };
    assert_eq!(
        base_waits(&p, 9),
        [
            2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000
        ]
    );
    assert_eq!(p.max_wait(5), MS(37_500));
    assert_eq!(p.worst_case_budget(), MS(10 * 5000 + 225_000));
    let deadline = RetryPolicy {
        startup_deadline: Some(MS(60_000)),
        ..p
    };
    assert_eq!(deadline.worst_case_budget(), MS(60_000));
}

#[test]
fn jitter_spreads_each_wait_evenly_around_its_base() {
    let p = RetryPolicy {
        jitter: Thousandths(250),
        ..policy(10, 2000)
    };
    assert_eq!(p.wait(1, 0.0), MS(1500));
    assert_eq!(p.wait(1, 0.5), MS(2000));
    assert_eq!(p.wait(1, 0.999_999_9), MS(2500));
    // Every millisecond of [1500, 2500] has the same share of [0, 1).
    let choices = 1001.0;
    for k in [0u64, 1, 499, 500, 999, 1000] {
        let draw = (k as f64 + 0.5) / choices;
        assert_eq!(p.wait(1, draw), MS(1500 + k), "draw {draw}");
    }
    // Out-of-range draws stay within the bounds.
    for draw in [-1.0, 1.0, 7.0, f64::NAN, f64::INFINITY] {
        let w = p.wait(1, draw);
        assert!((MS(1500)..=MS(2500)).contains(&w), "{draw}: {w:?}");
    }
    // Without jitter the draw does not matter.
    assert_eq!(policy(3, 2000).wait(1, 0.0), MS(2000));
}

#[test]
fn the_deadline_shortens_the_last_wait_so_the_last_attempt_has_its_timeout() {
    // Deadline 1 s, attempts of at most 100 ms, waits of 200 ms.
    let p = RetryPolicy {
        startup_deadline: Some(MS(1000)),
        attempt_timeout: MS(100),
        ..policy(1000, 200)
    };
    assert_eq!(
        p.after_failure(failed(3, 500), 0.5),
        Next::RetryIn {
            delay: MS(200),
            attempt: 4,
            last: false
        }
    );
    // 150 ms left: the wait would reach the deadline; the last attempt
    // starts 100 ms (its timeout) before it.
    assert_eq!(
        p.after_failure(failed(4, 850), 0.5),
        Next::RetryIn {
            delay: MS(50),
            attempt: 5,
            last: true
        }
    );
    // A wait that would end exactly at the deadline is too long as well:
    // an attempt starting there would have no time at all.
    assert_eq!(
        p.after_failure(failed(4, 800), 0.5),
        Next::RetryIn {
            delay: MS(100),
            attempt: 5,
            last: true
        }
    );
    // Less than a timeout left: the last attempt starts at once...
    assert_eq!(
        p.after_failure(failed(4, 950), 0.5),
        Next::RetryIn {
            delay: MS(0),
            attempt: 5,
            last: true
        }
    );
    // ...cut at the deadline.
    assert_eq!(p.attempt_limit(MS(950)), MS(50));
    assert_eq!(p.attempt_limit(MS(100)), MS(100));
    // After the last attempt, or at the deadline, start-up ends.
    let last = Failed {
        last: true,
        ..failed(5, 960)
    };
    assert_eq!(p.after_failure(last, 0.5), Next::GiveUp(Limit::Deadline));
    assert_eq!(
        p.after_failure(failed(5, 1000), 0.5),
        Next::GiveUp(Limit::Deadline)
    );
    // Attempts still win when they run out first.
    let few = RetryPolicy {
        max_attempts: 5,
        ..p
    };
    assert_eq!(
        few.after_failure(failed(5, 1000), 0.5),
        Next::GiveUp(Limit::Attempts)
    );
}

/// Any policy the settings can express (smaller, to keep runs short).
fn any_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        1u32..60,
        1u64..5000,
        1u64..5000,
        prop_oneof![
            Just(Backoff::Fixed),
            (1000u32..=10_000, 1u64..50_000).prop_map(|(m, cap)| Backoff::Exponential {
                multiplier: Thousandths(m),
                max_interval: MS(cap),
            }),
        ],
        0u32..=1000,
        prop_oneof![Just(None), (0u64..200_000).prop_map(|d| Some(MS(d)))],
    )
        .prop_map(
            |(max_attempts, interval, timeout, backoff, jitter, deadline)| RetryPolicy {
                max_attempts,
                interval: MS(interval),
                attempt_timeout: MS(timeout),
                backoff,
                jitter: Thousandths(jitter),
                startup_deadline: deadline,
                longest_wait: match backoff {
                    Backoff::Fixed => MS(interval.saturating_mul(7)),
                    Backoff::Exponential { max_interval, .. } => max_interval,
                },
            },
        )
}

fn cap_of(p: &RetryPolicy) -> Duration {
    match p.backoff {
        Backoff::Fixed => p.interval,
        Backoff::Exponential { max_interval, .. } => max_interval.max(p.interval),
    }
}

/// A repeatable sequence of numbers in [0, 1) for a seed (xorshift64).
fn xorshift(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

proptest! {
    #[test]
    fn attempts_are_numbered_one_to_max(p in any_policy(), draw in 0.0f64..1.0) {
        let p = RetryPolicy { startup_deadline: None, ..p };
        let run = simulate(&p, || draw, |limit| limit);
        prop_assert_eq!(run.attempts, p.max_attempts);
        prop_assert_eq!(run.limit, Limit::Attempts);
        prop_assert_eq!(run.starts.len() as u32, p.max_attempts);
    }

    #[test]
    fn waits_stay_within_the_cap_and_the_jitter(p in any_policy(), n in 1u32..200, draw in proptest::num::f64::ANY) {
        // In integers (ms times thousandths): floats made 4500 x 1.118
        // slightly less than 5031, a wait the policy may rightly draw.
        let j = u128::from(p.jitter.0.min(1000));
        let base = p.base_wait(n).as_millis();
        let wait = p.wait(n, draw).as_millis();
        let cap = cap_of(&p).as_millis();
        prop_assert!(base <= cap);
        prop_assert!(wait * 1000 <= cap * (1000 + j), "{wait} > {cap} x (1 + {j}/1000)");
        prop_assert!(wait * 1000 <= base * (1000 + j), "{wait} > {base} x (1 + {j}/1000)");
        prop_assert!(wait * 1000 >= base * (1000 - j), "{wait} < {base} x (1 - {j}/1000)");
        prop_assert!(p.wait(n, draw) <= p.max_wait(n));
    }

    #[test]
    fn base_waits_never_decrease_and_follow_the_formula(p in any_policy(), n in 1u32..100) {
        prop_assert_eq!(p.base_wait(1), p.interval);
        prop_assert!(p.base_wait(n + 1) >= p.base_wait(n));
        if let Backoff::Exponential { multiplier, .. } = p.backoff {
            // min(interval x multiplier^(n-1), cap), rounded up at each step.
            let exact = millis(p.interval) as f64 * (f64::from(multiplier.0) / 1000.0).powi(n as i32 - 1);
            let want = exact.min(millis(cap_of(&p)) as f64);
            let got = millis(p.base_wait(n)) as f64;
            prop_assert!(got >= want.floor(), "{got} < {want}");
            if multiplier.0 % 1000 == 0 {
                prop_assert_eq!(got, want, "whole multipliers are exact");
            }
        } else {
            prop_assert_eq!(p.base_wait(n), p.interval);
        }
    }

    #[test]
    fn the_deadline_is_never_overrun(p in any_policy(), seeds in (1u64.., 1u64..)) {
        // Random waits and attempts that end anywhere within their limit.
        let (mut draws, mut fractions) = (xorshift(seeds.0), xorshift(seeds.1));
        let run = simulate(&p, &mut draws, |limit| limit.mul_f64(fractions()));
        prop_assert!(run.attempts <= p.max_attempts);
        if let Some(deadline) = p.startup_deadline {
            prop_assert!(run.end <= deadline, "{run:?}");
            for (start, limit) in &run.starts {
                prop_assert!(*start <= deadline, "a wait ran past the deadline: {run:?}");
                prop_assert!(*start + *limit <= deadline.max(*start), "{run:?}");
            }
        }
        prop_assert!(run.end <= p.worst_case_budget());
    }

    #[test]
    fn the_budget_is_exact(p in any_policy()) {
        // Every attempt runs into its limit, every wait is drawn at its
        // longest: start-up takes exactly the budget.
        let run = simulate(&p, || 1.0, |limit| limit);
        prop_assert_eq!(run.end, p.worst_case_budget(), "{:?}", run);
        if p.startup_deadline.is_some_and(|d| d < run.end) {
            prop_assert!(false, "overran the deadline: {run:?}");
        }
    }

    #[test]
    fn the_budget_grows_with_every_input(p in any_policy(), more in 1u64..10_000) {
        let b = p.worst_case_budget();
        let bigger = [
            RetryPolicy { max_attempts: p.max_attempts + 1, ..p },
            RetryPolicy { interval: p.interval + MS(more), ..p },
            RetryPolicy { attempt_timeout: p.attempt_timeout + MS(more), ..p },
            RetryPolicy { jitter: Thousandths((p.jitter.0 + 1).min(1000)), ..p },
            RetryPolicy { startup_deadline: p.startup_deadline.map(|d| d + MS(more)), ..p },
            RetryPolicy { startup_deadline: None, ..p },
            match p.backoff {
                Backoff::Fixed => RetryPolicy {
                    backoff: Backoff::Exponential { multiplier: Thousandths(2000), max_interval: p.interval },
                    ..p
                },
                Backoff::Exponential { multiplier, max_interval } => RetryPolicy {
                    backoff: Backoff::Exponential { multiplier: Thousandths(multiplier.0 + 1), max_interval: max_interval + MS(more) },
                    ..p
                },
            },
        ];
        for q in bigger {
            prop_assert!(q.worst_case_budget() >= b, "{q:?}: {:?} < {b:?}", q.worst_case_budget());
        }
        // Never below the fixed grid with the same attempts, interval
        // and timeout; never above the deadline.
        let grid = RetryPolicy::fixed(p.max_attempts, p.interval, p.attempt_timeout);
        let grid = RetryPolicy { startup_deadline: p.startup_deadline, ..grid };
        prop_assert!(b >= grid.worst_case_budget());
        if let Some(deadline) = p.startup_deadline {
            prop_assert!(b <= deadline);
        }
    }

    #[test]
    fn the_budget_saturates_instead_of_overflowing(
        max in 1u32..,
        interval in 0u64..,
        timeout in 0u64..,
        multiplier in 0u32..,
        jitter in 0u32..,
        cap in 0u64..,
    ) {
        let p = RetryPolicy {
            max_attempts: max,
            interval: MS(interval),
            attempt_timeout: MS(timeout),
            backoff: Backoff::Exponential { multiplier: Thousandths(multiplier), max_interval: MS(cap) },
            jitter: Thousandths(jitter),
            startup_deadline: None,
            longest_wait: MS(cap),
        };
        let fixed = RetryPolicy::fixed(max, MS(interval), MS(timeout));
        let b = p.worst_case_budget();
        prop_assert!(b >= fixed.worst_case_budget());
        prop_assert!(b >= MS(timeout));
        prop_assert!(b <= MS(u64::MAX));
    }

    #[test]
    fn seconds_round_trip_to_millis(ms in 0u64..10_000_000_000) {
        let printed = Seconds(MS(ms)).to_string();
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
        let line = p.failure_line("DB", attempt, p.after_failure(failed(attempt, 0), 0.5), "cause");
        let prefix = format!("DB connection failed (attempt {attempt}/{max})");
        prop_assert!(line.starts_with(&prefix));
        prop_assert_eq!(line.contains("retrying in"), attempt < max);
        prop_assert!(line.ends_with(": cause"));
    }
}

#[test]
fn a_permanent_error_at_runtime_waits_the_longest_and_watches_every_interval() {
    // Fixed 200 ms with DB_RETRY_MAX_INTERVAL_MS=60000: 60 s, watched every 200 ms.
    let fixed = RetryPolicy {
        longest_wait: MS(60_000),
        jitter: Thousandths(500),
        ..policy(10, 200)
    };
    assert_eq!(
        fixed.after_runtime_failure(1, true, 0.9),
        Reconnect {
            delay: MS(60_000),
            watch_every: Some(MS(200)),
        }
    );
    // A transient error keeps the back-off (wait 2, with its jitter).
    assert_eq!(
        fixed.after_runtime_failure(1, false, 0.0),
        Reconnect {
            delay: MS(100),
            watch_every: None,
        }
    );
    // Exponential: the cap, whatever the attempt.
    let exp = exponential(100, 2000, 5000);
    for attempt in [1, 2, 50] {
        assert_eq!(
            exp.after_runtime_failure(attempt, true, 0.5).delay,
            MS(5000)
        );
    }
    assert_eq!(exp.after_runtime_failure(1, false, 0.5).delay, MS(200));
    // A very short interval is watched at most ten times a second; a
    // longest wait below the interval counts as the interval.
    let quick = RetryPolicy {
        longest_wait: MS(1),
        ..policy(10, 5)
    };
    assert_eq!(
        quick.after_runtime_failure(3, true, 0.5),
        Reconnect {
            delay: MS(5),
            watch_every: Some(MS(5)),
        }
    );
    let quick = RetryPolicy {
        longest_wait: MS(30_000),
        ..quick
    };
    assert_eq!(
        quick.after_runtime_failure(3, true, 0.5).watch_every,
        Some(MIN_WATCH)
    );
}

proptest! {
    #[test]
    fn a_permanent_error_never_waits_less_than_any_transient_wait(
        p in any_policy(), attempt in 1u32..100, draw in 0.0f64..1.0,
    ) {
        let permanent = p.after_runtime_failure(attempt, true, draw);
        let watch = permanent.watch_every.unwrap();
        prop_assert!(permanent.delay >= p.base_wait(attempt + 1));
        prop_assert!(permanent.delay >= p.interval);
        prop_assert!(watch <= permanent.delay);
        prop_assert!(watch >= MIN_WATCH.min(permanent.delay));
        prop_assert!(watch >= p.interval.min(permanent.delay));
        let transient = p.after_runtime_failure(attempt, false, draw);
        prop_assert_eq!(transient.delay, p.wait(attempt + 1, draw));
        prop_assert_eq!(transient.watch_every, None);
    }
}
