//! Section `failover`, item 8 (issue 22): a PostgreSQL failover under the
//! example application. Each round starts a primary and a streaming
//! standby, runs the example application (this binary with `EXAMPLE_APP=1`)
//! on a multi-host URL with `target_session_attrs=read-write`, stops the
//! primary (fast shutdown), promotes the standby, and times (a) the stop to
//! the first `/ready` 503, (b) the promotion to the first `/ready` 200 and
//! (c) the promotion to the first `GET /app/db-time` 200, with `/ready` and
//! `/app/db-time` each polled every 10 ms on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::get_once;
use crate::plan::{Plan, Report, flush};
use crate::spawn::{EXAMPLE_APP_ENV, Spec, stop, time_to_ready};
use crate::stats::{max, median, ms, spread};
use crate::support::{Gateway, Postgres, multi_host_url};

/// The application's settings for the failover (stated in the output).
const CHECK_MS: u64 = 1000;
const RETRY_MS: u64 = 500;
const CONNECT_TIMEOUT_MS: u64 = 2000;
const POOL_TIMEOUT_MS: u64 = 1000;
/// Added to each bound for the polling (10 ms), the attempt's own queries
/// and the HTTP answer.
const SLACK_MS: u64 = 250;
/// Poll period of `/ready` and `/app/db-time`.
const EVERY: Duration = Duration::from_millis(10);
/// Longest wait for any one step of a round before it counts as never.
const LIMIT: Duration = Duration::from_secs(30);

/// Every answer of a [`Poller`]: the instant it arrived and its status
/// (`None`: no answer).
type Answers = Arc<Mutex<Vec<(Instant, Option<u16>)>>>;

/// `GET path` every [`EVERY`] on a fresh connection, on a thread of its own,
/// keeping every answer.
pub(crate) struct Poller {
    seen: Answers,
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Poller {
    pub(crate) fn start(port: u16, path: &'static str) -> Poller {
        let seen: Answers = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (s, d) = (Arc::clone(&seen), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                let status = get_once(port, path).ok().map(|(status, _)| status);
                s.lock().unwrap().push((Instant::now(), status));
                std::thread::sleep(EVERY);
            }
        });
        Poller { seen, done, thread }
    }

    /// The first answer `status` that arrived after `after`.
    fn first(&self, status: u16, after: Instant) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|(at, s)| *at > after && *s == Some(status))
            .map(|(at, _)| *at)
    }

    /// [`Poller::first`], waiting for it up to [`LIMIT`].
    pub(crate) fn wait_for(&self, status: u16, after: Instant) -> Option<Instant> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(at) = self.first(status, after) {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many answers `status` arrived between `from` and `to`.
    fn count(&self, status: u16, from: Instant, to: Instant) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, s)| *at > from && *at < to && *s == Some(status))
            .count()
    }

    pub(crate) fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// `to - from` in ms, negative when `to` came first.
pub(crate) fn signed_ms(from: Instant, to: Instant) -> f64 {
    if to >= from {
        ms(to - from)
    } else {
        -ms(from - to)
    }
}

/// One round's figures in ms (`INFINITY`: it never happened within
/// [`LIMIT`]).
struct Round {
    /// (a) `stop()` called -> first `/ready` 503.
    down: f64,
    /// (b) `promote()` returned -> first `/ready` 200.
    ready: f64,
    /// (c) `promote()` returned -> first `/app/db-time` 200.
    query: f64,
    /// How long `stop()` and `promote()` took.
    stop_took: f64,
    promote_took: f64,
    /// `/ready`'s database after (b): server and role.
    server: String,
    role: String,
    /// Whether it named the promoted standby, as primary.
    followed: bool,
    /// Whether nothing answered 200 while only the standby was left.
    held: bool,
}

fn settings(url: String) -> Vec<(&'static str, String)> {
    vec![
        ("LOG_FORMAT", "json".into()),
        ("DATABASE_URL", url),
        ("CACHE_TYPE", "none".into()),
        ("HEALTH_CHECK_INTERVAL_MS", CHECK_MS.to_string()),
        ("DB_RETRY_INTERVAL_MS", RETRY_MS.to_string()),
        ("DB_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS.to_string()),
        ("DB_POOL_TIMEOUT_MS", POOL_TIMEOUT_MS.to_string()),
    ]
}

/// `/ready`'s `dependencies.database` server and role.
fn database_server(app: &Gateway) -> (String, String) {
    let body = get_once(app.port(), "/ready").map_or_else(|_| Vec::new(), |(_, b)| b);
    let ready: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let db = &ready["dependencies"]["database"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("(none)").to_owned();
    (text(&db["server"]), text(&db["role"]))
}

/// One failover: a new primary and standby, the application on both, the
/// primary stopped `lead` after its first `/app/db-time` 200, the standby
/// promoted `hold` after the first 503.
fn round(lead: Duration, hold: Duration) -> Round {
    let mut primary = Postgres::start_primary();
    let mut standby = primary.start_standby();
    standby.wait_caught_up(&primary);
    let url = multi_host_url(&[primary.port(), standby.port()], Some("read-write"));
    let app = Spec::this_binary(EXAMPLE_APP_ENV, settings(url)).spawn();
    time_to_ready(&app).unwrap_or_else(|| {
        panic!(
            "the application never answered /ready 200:\n{}",
            app.output()
        )
    });
    let (server, _) = database_server(&app);
    assert_eq!(
        server,
        primary.addr(),
        "not on the primary:\n{}",
        app.output()
    );

    let ready = Poller::start(app.port(), "/ready");
    let query = Poller::start(app.port(), "/app/db-time");
    let began = Instant::now();
    let Some(served) = query.wait_for(200, began) else {
        panic!("/app/db-time never answered 200:\n{}", app.output());
    };
    std::thread::sleep((served + lead).saturating_duration_since(Instant::now()));

    let stopping = Instant::now();
    primary.stop();
    let stop_took = ms(stopping.elapsed());
    let down_at = ready.wait_for(503, stopping);
    let down = down_at.map_or(f64::INFINITY, |at| ms(at - stopping));
    std::thread::sleep(
        (down_at.unwrap_or(stopping) + hold).saturating_duration_since(Instant::now()),
    );

    let promoting = Instant::now();
    standby.promote();
    let promoted = Instant::now();
    let after = down_at.unwrap_or(promoting);
    let held = ready.count(200, after, promoting) == 0 && query.count(200, after, promoting) == 0;
    let ready_at = ready.wait_for(200, after);
    let query_at = query.wait_for(200, after);
    let (server, role) = database_server(&app);
    ready.finish();
    query.finish();
    let round = Round {
        down,
        ready: ready_at.map_or(f64::INFINITY, |at| signed_ms(promoted, at)),
        query: query_at.map_or(f64::INFINITY, |at| signed_ms(promoted, at)),
        stop_took,
        promote_took: ms(promoted - promoting),
        followed: server == standby.addr() && role == "primary",
        server,
        role,
        held,
    };
    if !(round.followed && round.held)
        || [round.down, round.ready, round.query].contains(&f64::INFINITY)
    {
        println!("  the application's output:\n{}", app.output());
    }
    stop(&app);
    round
}

/// A row of the table: per round, median, max, against `bound`.
pub(crate) fn row(measure: &str, values: &[f64], bound: &str, bound_ms: u64) -> String {
    let rounds: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
    let verdict = if max(values) <= bound_ms as f64 {
        "pass"
    } else {
        "**miss**"
    };
    format!(
        "| {measure} | {} | {:.0} ms | {:.0} ms | {bound} = {bound_ms} ms | {verdict} |\n",
        rounds.join(", "),
        median(values),
        max(values)
    )
}

pub fn failover(plan: &Plan, report: &mut Report) {
    let runs = plan.failover_rounds;
    let stated = format!(
        "`HEALTH_CHECK_INTERVAL_MS={CHECK_MS}`, `DB_RETRY_INTERVAL_MS={RETRY_MS}`, \
         `DB_CONNECT_TIMEOUT_MS={CONNECT_TIMEOUT_MS}`, `DB_POOL_TIMEOUT_MS={POOL_TIMEOUT_MS}`, \
         `CACHE_TYPE=none`"
    );
    println!(
        "\n[8] failover: the example application on a primary and its streaming standby \
         (target_session_attrs=read-write); primary stopped, standby promoted; {runs} rounds; \
         {}; /ready and /app/db-time polled every {} ms",
        stated.replace('`', ""),
        EVERY.as_millis()
    );
    let mut rounds = Vec::new();
    for run in 0..runs {
        // Stop and promote at a different phase of the check and of the
        // retry cycle in each round.
        let phase = |cycle: u64| run as u64 * cycle / runs.max(1) as u64;
        let lead = Duration::from_millis(phase(CHECK_MS));
        let hold = Duration::from_millis(1000 + phase(RETRY_MS));
        let r = round(lead, hold);
        println!(
            "  round {}: stop -> /ready 503 {:.0} ms (stop() took {:.0} ms); promote() took {:.0} \
             ms; promotion -> /ready 200 {:.0} ms, -> /app/db-time 200 {:.0} ms; /ready names \
             {} ({}); nothing 200 while only the standby was left: {}",
            run + 1,
            r.down,
            r.stop_took,
            r.promote_took,
            r.ready,
            r.query,
            r.server,
            r.role,
            r.held
        );
        flush();
        rounds.push(r);
    }
    let pick = |f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let (down, ready, query) = (pick(|r| r.down), pick(|r| r.ready), pick(|r| r.query));
    let (stop_took, promote_took) = (pick(|r| r.stop_took), pick(|r| r.promote_took));
    let down_bound = CHECK_MS + CONNECT_TIMEOUT_MS + SLACK_MS;
    let back_bound = RETRY_MS + CONNECT_TIMEOUT_MS + SLACK_MS;
    let down_formula = format!("check interval + connect timeout + {SLACK_MS} ms");
    let back_formula = format!("retry interval + connect timeout + {SLACK_MS} ms");
    let followed = rounds.iter().filter(|r| r.followed).count();
    let held = rounds.iter().filter(|r| r.held).count();

    let mut table = format!(
        "Settings: `DATABASE_URL=postgres://postgres@127.0.0.1:PRIMARY,127.0.0.1:STANDBY/postgres?target_session_attrs=read-write`, \
         {stated}; {runs} rounds, a new primary and standby in each; `/ready` and \
         `/app/db-time` polled every {} ms.\n\n\
         | Measure | per round (ms) | median | max | bound | |\n|---|---|---|---|---|---|\n",
        EVERY.as_millis()
    );
    table.push_str(&row(
        "(a) primary stopped (fast shutdown) -> first `/ready` 503",
        &down,
        &down_formula,
        down_bound,
    ));
    table.push_str(&row(
        "(b) promotion done -> first `/ready` 200",
        &ready,
        &back_formula,
        back_bound,
    ));
    table.push_str(&row(
        "(c) promotion done -> first `GET /app/db-time` 200",
        &query,
        &back_formula,
        back_bound,
    ));
    table.push_str(&format!(
        "\nAfter (b), `/ready` named the promoted standby, role `primary`, in {followed} of \
         {runs} rounds; nothing answered 200 while only the standby was left in {held} of \
         {runs}. `stop()` (SIGINT, until the port is closed) took {} ms; `promote()` \
         (`pg_ctl promote -w`, then `pg_is_in_recovery()` false) {} ms (min / median / max).\n",
        spread(&stop_took),
        spread(&promote_took)
    ));
    report.block("failover", table);

    report.check(
        "8. Failover: primary stopped -> /ready 503 (max; min/med/max)",
        format!("{:.0} ms ({})", max(&down), spread(&down)),
        format!(
            "check every {CHECK_MS} ms, connect timeout {CONNECT_TIMEOUT_MS} ms; stop() took \
             {:.0} ms median",
            median(&stop_took)
        ),
        &format!("<= {down_formula} = {down_bound} ms"),
        Some(max(&down) <= down_bound as f64),
    );
    for (name, values) in [("/ready 200", &ready), ("first /app/db-time 200", &query)] {
        report.check(
            &format!("8. Failover: promotion -> {name} (max; min/med/max)"),
            format!("{:.0} ms ({})", max(values), spread(values)),
            format!(
                "retry every {RETRY_MS} ms, connect timeout {CONNECT_TIMEOUT_MS} ms; promote() \
                 took {:.0} ms median",
                median(&promote_took)
            ),
            &format!("<= {back_formula} = {back_bound} ms"),
            Some(max(values) <= back_bound as f64),
        );
    }
    report.check(
        "8. Failover: /ready names the promoted standby, role primary",
        format!("{followed} of {runs} rounds"),
        format!("no 200 while only the standby was left: {held} of {runs}"),
        "every round, both",
        Some(followed == runs && held == runs),
    );
}
