//! The one retrying dependency actor. It makes one attempt per timed
//! self-message (`notify_later`, never a blocking sleep), asks the
//! [`RetryPolicy`] what follows a failure, logs, publishes its state and
//! reports to the supervisor. The database, the cache, `WAIT_FOR`'s entries
//! and the application's own dependencies are this actor with different
//! connectors (`DbActor`, `CacheActor`); an [`Identity`] says who it is.
//!
//! A dependency that is not required never stops start-up: when its
//! start-up attempts run out it says so once and goes on trying in the
//! background, with the same policy as a reconnection.

use std::time::{Duration, Instant};

use actix::prelude::*;

pub use crate::backends::{CacheActor, DbActor};
use crate::connector::{Connector, ServerInfo};
use crate::error::{ConnectError, ErrorClass};
use crate::handles::Connected;
use crate::retry::{CauseTally, Failed, Limit, Next, RetryPolicy, Seconds};
use crate::status::{Dependency, Health, State};

/// Who a dependency actor works for.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Its name on `/ready`, in metrics and in JSON log fields.
    pub dependency: Dependency,
    /// The word that starts its log lines: `DB`, `Redis`, or its name.
    pub label: String,
    /// How the give-up line names it: `database`, `Redis cache`,
    /// `auth (http)`.
    pub what: String,
    /// Whether start-up and `/ready` wait for it.
    pub required: bool,
    /// The prefix of its settings (`DB`, `REDIS`, `WAIT_FOR`), which the
    /// give-up line names; `None` for the application's own.
    pub settings: Option<String>,
}

/// What a dependency actor tells the supervisor.
#[derive(Message)]
#[rtype(result = "()")]
pub enum DependencyReport {
    Ready {
        dependency: Dependency,
        handle: Connected,
    },
    GaveUp(StartupFailure),
}

/// Why a dependency did not become ready at start-up.
#[derive(Clone, Debug)]
pub struct StartupFailure {
    pub dependency: Dependency,
    /// As [`Identity::what`].
    pub what: String,
    /// As [`Identity::settings`].
    pub settings: Option<String>,
    pub attempts: u32,
    pub elapsed: Duration,
    pub causes: CauseTally,
    pub outcome: FailureOutcome,
    /// The start-up deadline it had (`*_STARTUP_TIMEOUT_MS`), if any.
    pub deadline: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Every attempt failed until this limit was reached.
    Exhausted(Limit),
    /// An error that retrying cannot fix; its cause chain.
    Permanent(String),
    /// Stopped by the supervisor because another dependency gave up.
    Aborted,
}

/// The supervisor gives up on start-up: stop attempting and say how far
/// you got (`None` when already up).
#[derive(Message)]
#[rtype(result = "Option<StartupFailure>")]
pub struct Abort;

#[derive(Message)]
#[rtype(result = "()")]
struct Attempt;

#[derive(Message)]
#[rtype(result = "()")]
struct Check;

/// While a permanent error waits: look at the secret files (the number
/// tells this wait from a later one).
#[derive(Message)]
#[rtype(result = "()")]
struct WatchSecrets(u64);

enum Phase<H> {
    Starting {
        attempt: u32,
        causes: CauseTally,
        /// The deadline leaves room for no attempt after this one.
        last: bool,
    },
    Up {
        handle: H,
    },
    Down {
        handle: H,
        since: Instant,
        attempts: u32,
    },
    GaveUp(StartupFailure),
    /// Not required, its start-up attempts spent: trying on, with the
    /// reconnection policy, until it connects.
    Background {
        attempts: u32,
    },
}

pub struct DependencyActor<C: Connector> {
    id: Identity,
    connector: C,
    policy: RetryPolicy,
    check_interval: Duration,
    health: Health,
    supervisor: Recipient<DependencyReport>,
    started: Instant,
    phase: Phase<C::Handle>,
    /// The next check, when it is waited for (cancelled when a secret
    /// changes during a permanent error's wait).
    next_check: Option<SpawnHandle>,
    /// Counts the checks' waits: a [`WatchSecrets`] of an older wait does
    /// nothing.
    wait_number: u64,
}

impl<C: Connector> DependencyActor<C> {
    pub fn new(
        id: Identity,
        connector: C,
        policy: RetryPolicy,
        check_interval: Duration,
        health: Health,
        supervisor: Recipient<DependencyReport>,
    ) -> Self {
        health.register(&id.dependency, connector.backend(), id.required);
        DependencyActor {
            id,
            connector,
            policy,
            check_interval,
            health,
            supervisor,
            started: Instant::now(),
            phase: Phase::Starting {
                attempt: 1,
                causes: CauseTally::default(),
                last: false,
            },
            next_check: None,
            wait_number: 0,
        }
    }

    fn dependency(&self) -> Dependency {
        self.id.dependency.clone()
    }

    /// Run `fut` bounded by `limit`, then hand its result to `then`. A limit
    /// shorter than the attempt timeout was cut by the start-up deadline,
    /// and its expiry says so.
    fn bounded<T: 'static>(
        &self,
        ctx: &mut Context<Self>,
        limit: Duration,
        fut: futures_util::future::LocalBoxFuture<'static, Result<T, ConnectError>>,
        then: impl FnOnce(&mut Self, Result<T, ConnectError>, &mut Context<Self>) + 'static,
    ) {
        let cut = limit < self.policy.attempt_timeout;
        let bounded = async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(result) => result,
                Err(_) if cut => Err(ConnectError::Deadline(limit)),
                Err(_) => Err(ConnectError::TimedOut(limit)),
            }
        };
        ctx.spawn(
            bounded
                .into_actor(self)
                .map(move |res, act, ctx| then(act, res, ctx)),
        );
    }

    fn on_attempt(&mut self, result: Result<C::Handle, ConnectError>, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Background { .. }) {
            self.on_background_attempt(result, ctx);
            return;
        }
        let Phase::Starting {
            attempt,
            causes,
            last,
        } = &mut self.phase
        else {
            return;
        };
        let failed = Failed {
            attempt: *attempt,
            elapsed: self.started.elapsed(),
            last: *last,
        };
        let attempt = *attempt;
        let (dependency, label) = (self.id.dependency.clone(), self.id.label.clone());
        let err = match result {
            Ok(handle) => {
                let max = self.policy.max_attempts;
                if self.id.required {
                    log::debug!(dependency = dependency.name(), attempt = attempt; "{label} connection ready (attempt {attempt}/{max})");
                } else {
                    // The Ready line may have called it "not up yet".
                    log::info!(dependency = dependency.name(), attempt = attempt; "{label} connection ready after {} (attempt {attempt}/{max})", Seconds(self.started.elapsed()));
                }
                self.connected(handle, ctx);
                return;
            }
            Err(err) => err,
        };
        let cause = err.chain();
        causes.add(err.summary());
        self.health.failed(&dependency, &cause, true);
        let max = self.policy.max_attempts;
        let outcome = if err.class() == ErrorClass::Permanent {
            log::error!(
                dependency = dependency.name(), attempt = attempt, max_attempts = max;
                "{label} connection failed (attempt {attempt}/{max}), not retrying: the error is permanent: {cause}"
            );
            FailureOutcome::Permanent(cause)
        } else {
            let next = self.policy.after_failure(failed, fastrand::f64());
            let line = self.policy.failure_line(&label, attempt, next, &cause);
            match next {
                Next::RetryIn {
                    delay,
                    attempt: next,
                    last: next_last,
                } => {
                    log::warn!(
                        dependency = dependency.name(), attempt = attempt, max_attempts = max,
                        delay_ms = millis(delay);
                        "{line}"
                    );
                    if let Phase::Starting { attempt, last, .. } = &mut self.phase {
                        (*attempt, *last) = (next, next_last);
                    }
                    ctx.notify_later(Attempt, delay);
                    return;
                }
                Next::GiveUp(limit) => {
                    log::warn!(
                        dependency = dependency.name(), attempt = attempt, max_attempts = max;
                        "{line}"
                    );
                    FailureOutcome::Exhausted(limit)
                }
            }
        };
        let failure = self.failure(outcome);
        if self.id.required {
            self.supervisor
                .do_send(DependencyReport::GaveUp(failure.clone()));
            self.phase = Phase::GaveUp(failure);
            return;
        }
        // Not required: start-up goes on without it.
        self.health.set_state(&dependency, State::Down);
        if let FailureOutcome::Permanent(_) = failure.outcome {
            log::warn!(dependency = dependency.name(); "{label} is optional: serving without it, not trying again (the error is permanent)");
            self.phase = Phase::GaveUp(failure);
            return;
        }
        let delay = self.policy.wait(1, fastrand::f64());
        log::warn!(
            dependency = dependency.name(), delay_ms = millis(delay);
            "{label} not ready after {} in {}; it is optional: serving without it, trying again in the background in {}",
            attempts_text(failure.attempts), Seconds(failure.elapsed), Seconds(delay)
        );
        self.phase = Phase::Background { attempts: 0 };
        ctx.notify_later(Attempt, delay);
    }

    /// A connection was made (at start-up or in the background): publish,
    /// report the handle, and check from now on.
    fn connected(&mut self, handle: C::Handle, ctx: &mut Context<Self>) {
        let dependency = &self.id.dependency;
        self.health.count_attempt(dependency, "success");
        self.publish_connection();
        self.health.set_state(dependency, State::Up);
        self.supervisor.do_send(DependencyReport::Ready {
            dependency: dependency.clone(),
            handle: C::share(&handle),
        });
        self.phase = Phase::Up { handle };
        ctx.notify_later(Check, self.check_interval);
    }

    /// An attempt of an optional dependency whose start-up attempts ran out.
    fn on_background_attempt(
        &mut self,
        result: Result<C::Handle, ConnectError>,
        ctx: &mut Context<Self>,
    ) {
        let Phase::Background { attempts } = &mut self.phase else {
            return;
        };
        let (dependency, label) = (self.id.dependency.clone(), self.id.label.clone());
        match result {
            Ok(handle) => {
                log::info!(dependency = dependency.name(); "{label} connection ready after {}, in the background", Seconds(self.started.elapsed()));
                self.connected(handle, ctx);
            }
            Err(err) => {
                *attempts = attempts.saturating_add(1);
                let n = *attempts;
                let cause = err.chain();
                let delay = self.policy.wait(n.saturating_add(1), fastrand::f64());
                log::warn!(
                    dependency = dependency.name(), attempt = n, delay_ms = millis(delay);
                    "{label} background attempt {n} failed, retrying in {}: {cause}", Seconds(delay)
                );
                self.health.failed(&dependency, &cause, true);
                ctx.notify_later(Attempt, delay);
            }
        }
    }

    /// What the connector saw of the connection that passed: whether it is
    /// encrypted, and which server it is to.
    fn publish_connection(&self) {
        let dependency = &self.id.dependency;
        self.health
            .set_encrypted(dependency, self.connector.encrypted());
        self.health.set_server(dependency, self.connector.server());
    }

    /// The start-up record so far.
    fn failure(&self, outcome: FailureOutcome) -> StartupFailure {
        let causes = match &self.phase {
            Phase::Starting { causes, .. } => causes.clone(),
            _ => CauseTally::default(),
        };
        StartupFailure {
            dependency: self.dependency(),
            what: self.id.what.clone(),
            settings: self.id.settings.clone(),
            attempts: causes.total(),
            elapsed: self.started.elapsed(),
            causes,
            outcome,
            deadline: self.policy.startup_deadline,
        }
    }

    fn on_check(&mut self, result: Result<(), ConnectError>, ctx: &mut Context<Self>) {
        let (dependency, label) = (&self.id.dependency, self.id.label.as_str());
        match &result {
            Ok(()) => self.publish_connection(),
            Err(_) => self.connector.sever(),
        }
        let mut watch = None;
        let next = match (&mut self.phase, result) {
            (Phase::Up { .. }, Ok(())) => self.check_interval,
            (Phase::Up { handle }, Err(err)) => {
                let cause = err.chain();
                log::warn!(dependency = dependency.name(); "{label} connection lost: {cause}");
                self.health.failed(dependency, &cause, false);
                self.health.set_state(dependency, State::Down);
                self.phase = Phase::Down {
                    handle: handle.clone(),
                    since: Instant::now(),
                    attempts: 0,
                };
                // Each outage starts the back-off again from the interval.
                self.policy.wait(1, fastrand::f64())
            }
            (Phase::Down { handle, since, .. }, Ok(())) => {
                let server = match self.connector.server() {
                    Some(ServerInfo {
                        server,
                        role: Some(role),
                    }) => format!(" (server {server}, {role})"),
                    Some(ServerInfo { server, role: None }) => format!(" (server {server})"),
                    None => String::new(),
                };
                log::info!(dependency = dependency.name(); "{label} connection restored after {}{server}", Seconds(since.elapsed()));
                self.health.count_attempt(dependency, "success");
                self.health.set_state(dependency, State::Up);
                self.phase = Phase::Up {
                    handle: handle.clone(),
                };
                self.check_interval
            }
            (Phase::Down { attempts, .. }, Err(err)) => {
                *attempts = attempts.saturating_add(1);
                let n = *attempts;
                let cause = err.chain();
                // Reconnection attempt N came after wait N; wait N + 1
                // follows, or the longest when the error is permanent.
                let permanent = err.class() == ErrorClass::Permanent;
                let next = self
                    .policy
                    .after_runtime_failure(n, permanent, fastrand::f64());
                let watches = self.connector.watches_secrets();
                let why = match (permanent, watches) {
                    (true, true) => " or as soon as a secret file changes (the error is permanent)",
                    (true, false) => " (the error is permanent)",
                    (false, _) => "",
                };
                log::warn!(
                    dependency = dependency.name(), attempt = n,
                    delay_ms = millis(next.delay);
                    "{label} reconnection attempt {n} failed, retrying in {}{why}: {cause}", Seconds(next.delay)
                );
                self.health.failed(dependency, &cause, true);
                watch = next.watch_every.filter(|_| watches);
                next.delay
            }
            _ => return,
        };
        self.wait_number = self.wait_number.wrapping_add(1);
        self.next_check = Some(ctx.notify_later(Check, next));
        if let Some(every) = watch {
            ctx.notify_later(WatchSecrets(self.wait_number), every);
        }
    }
}

impl<C: Connector> Actor for DependencyActor<C> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Attempt);
    }
}

impl<C: Connector> Handler<Attempt> for DependencyActor<C> {
    type Result = ();

    fn handle(&mut self, _: Attempt, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Background { .. }) {
            let fut = self.connector.connect();
            self.bounded(ctx, self.policy.attempt_timeout, fut, Self::on_attempt);
        } else if matches!(self.phase, Phase::Starting { .. }) {
            let limit = self.policy.attempt_limit(self.started.elapsed());
            let fut = self.connector.connect();
            self.bounded(ctx, limit, fut, Self::on_attempt);
        }
    }
}

impl<C: Connector> Handler<Check> for DependencyActor<C> {
    type Result = ();

    fn handle(&mut self, _: Check, ctx: &mut Context<Self>) {
        let fut = match &self.phase {
            Phase::Up { handle } | Phase::Down { handle, .. } => self.connector.check(handle),
            _ => return,
        };
        self.bounded(ctx, self.policy.attempt_timeout, fut, Self::on_check);
    }
}

impl<C: Connector> Handler<WatchSecrets> for DependencyActor<C> {
    type Result = ();

    /// A permanent error waits for its secret: a changed file ends the wait.
    fn handle(&mut self, WatchSecrets(number): WatchSecrets, ctx: &mut Context<Self>) {
        if number != self.wait_number || !matches!(self.phase, Phase::Down { .. }) {
            return;
        }
        if !self.connector.refresh_secrets() {
            let every = self
                .policy
                .after_runtime_failure(1, true, 0.0)
                .watch_every
                .unwrap_or(self.policy.interval);
            ctx.notify_later(WatchSecrets(number), every);
            return;
        }
        if let Some(pending) = self.next_check.take() {
            ctx.cancel_future(pending);
        }
        self.wait_number = self.wait_number.wrapping_add(1);
        ctx.notify(Check);
    }
}

impl<C: Connector> Handler<Abort> for DependencyActor<C> {
    type Result = MessageResult<Abort>;

    fn handle(&mut self, _: Abort, ctx: &mut Context<Self>) -> Self::Result {
        // The give-up line names what held start-up: an optional dependency
        // never did (its own WARN lines said how it went).
        let report = match &self.phase {
            _ if !self.id.required => None,
            Phase::Starting { .. } => Some(self.failure(FailureOutcome::Aborted)),
            Phase::GaveUp(failure) => Some(failure.clone()),
            Phase::Up { .. } | Phase::Down { .. } | Phase::Background { .. } => None,
        };
        ctx.stop();
        MessageResult(report)
    }
}

/// `1 attempt`, `5 attempts`.
pub fn attempts_text(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
