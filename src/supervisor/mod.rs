//! The supervisor: starts one dependency actor per dependency, starts the
//! HTTP server on the port reserved at start-up once all are ready (or, for
//! `readygate check`, exits 0), stops everything with exit code 69 when one
//! gives up, and handles SIGTERM/SIGINT/SIGHUP itself from its first moment
//! (actix-web's own signal handling would only start with the server),
//! acting first on a signal recorded before it ran ([`crate::signals`]).
//!
//! A stop signal while serving drains as Kubernetes needs it: `/ready`
//! answers 503 at once, the server keeps serving for `SHUTDOWN_DELAY_MS`
//! (while the endpoint removal propagates), then stops accepting and waits
//! for in-flight requests at most `SHUTDOWN_TIMEOUT_MS`. A second signal
//! stops at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

use crate::config::{CacheSettings, Settings, ShutdownSettings};
use crate::dependencies::{DependencySpec, StartArgs};
use crate::dependency::{Abort, DependencyReport, FailureOutcome, StartupFailure, attempts_text};
use crate::exec::ExecCommand;
use crate::exit;
use crate::handles::{Cache, Connected, Database, Dependencies, MemoryCache, OtherHandles};
use crate::listener::BoundPort;
use crate::retry::{Limit, Seconds};
use crate::routes;
use crate::signals::{self, StopSignal};
use crate::status::{Dependency, Health, State};

/// Application routes added next to the gateway's own.
pub type ConfigureFn = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// What to do once every dependency is ready.
#[derive(Clone)]
pub enum Mode {
    /// Serve HTTP with the gateway's endpoints and these application routes.
    Serve(Option<ConfigureFn>),
    /// `readygate check`: report and exit 0.
    Check,
    /// `readygate exec`: serve the gateway's endpoints and run this program
    /// ([`program`]).
    Exec(Arc<ExecCommand>),
}

pub struct Supervisor {
    settings: Settings,
    mode: Mode,
    health: Health,
    started: Instant,
    /// The dependencies to start, in order (consumed when starting).
    specs: Vec<DependencySpec>,
    /// Every dependency's place in that order: the give-up line follows it.
    order: BTreeMap<Dependency, usize>,
    /// The required dependencies not ready yet.
    pending: BTreeSet<Dependency>,
    actors: BTreeMap<Dependency, Recipient<Abort>>,
    database: Option<Database>,
    cache: Option<Cache>,
    /// The handles of the application's own dependencies, shared with the
    /// routes' [`Dependencies`] (an optional one may come while serving).
    others: OtherHandles,
    /// The HTTP port, bound but not listening until every dependency is
    /// ready (`None` for `readygate check`).
    port: Option<BoundPort>,
    server: Option<ServerHandle>,
    /// `readygate exec`'s program, once started.
    program: Option<program::Running>,
    stopping: bool,
    exited: bool,
}

mod program;

#[derive(Message)]
#[rtype(result = "()")]
struct ShutdownSignal(StopSignal);

impl Supervisor {
    /// `specs`: the dependencies, in order ([`crate::dependencies`]);
    /// `port`: the reserved HTTP port ([`crate::listener::bind`]), needed
    /// to serve.
    pub fn new(
        settings: Settings,
        mode: Mode,
        health: Health,
        specs: Vec<DependencySpec>,
        port: Option<BoundPort>,
    ) -> Self {
        let order = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| (spec.id.dependency.clone(), i))
            .collect();
        Supervisor {
            settings,
            mode,
            health,
            started: signals::process_start(),
            specs,
            order,
            pending: BTreeSet::new(),
            actors: BTreeMap::new(),
            database: None,
            cache: None,
            others: OtherHandles::default(),
            port,
            server: None,
            program: None,
            stopping: false,
            exited: false,
        }
    }

    /// Start every dependency's actor, in order; a connector that cannot
    /// even be built stops start-up (69).
    fn start_dependencies(&mut self, ctx: &mut Context<Self>) -> Result<(), ()> {
        for spec in std::mem::take(&mut self.specs) {
            let (dependency, required) = (spec.id.dependency.clone(), spec.id.required);
            let args = StartArgs {
                health: self.health.clone(),
                check_interval: self.settings.health_check_interval,
                supervisor: ctx.address().recipient(),
            };
            let started = match spec.start(args) {
                Ok(started) => started,
                Err(e) => {
                    log::error!(
                        "Cannot set up {dependency}: {}; exiting with code {}",
                        e.chain(),
                        exit::UNAVAILABLE
                    );
                    self.exit(exit::UNAVAILABLE);
                    return Err(());
                }
            };
            if let Some(handle) = started.early {
                self.keep(&dependency, handle);
            }
            if required {
                self.pending.insert(dependency.clone());
            }
            self.actors.insert(dependency, started.actor);
        }
        Ok(())
    }

    /// Keep a handle a dependency reported, for the application's routes.
    fn keep(&mut self, dependency: &Dependency, handle: Connected) {
        match handle {
            Connected::Database(db) => {
                let pool = db.clone();
                self.health.metrics().watch_pool(move || pool.status());
                self.database = Some(db);
            }
            Connected::Cache(cache) => self.cache = Some(cache),
            Connected::Other(handle) => {
                if let Ok(mut others) = self.others.write() {
                    others.insert(dependency.name().to_owned(), handle);
                }
            }
            Connected::Nothing => {}
        }
    }

    /// Every way out goes through here. The database pool is closed while
    /// the runtime still runs: SQLite connections need it to close.
    fn exit(&mut self, code: i32) {
        self.stopping = true;
        if std::mem::replace(&mut self.exited, true) {
            return;
        }
        if let Some(db) = &self.database {
            db.close();
        }
        System::current().stop_with_code(code);
    }

    fn watch_signals(&self, ctx: &mut Context<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let addr = ctx.address();
        let streams = (|| {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            ))
        })();
        let (mut term, mut int, mut hup) = match streams {
            Ok(streams) => streams,
            Err(e) => {
                log::error!(
                    "Cannot watch SIGTERM/SIGINT/SIGHUP: {e}; stop the process with SIGKILL"
                );
                return;
            }
        };
        // A signal that came before the streams existed was recorded by the
        // handlers `main` installed first.
        if let Some(signal) = signals::take_pending() {
            addr.do_send(ShutdownSignal(signal));
        }
        ctx.spawn(
            async move {
                loop {
                    let signal = tokio::select! {
                        _ = term.recv() => StopSignal::Term,
                        _ = int.recv() => StopSignal::Int,
                        _ = hup.recv() => StopSignal::Hup,
                    };
                    addr.do_send(ShutdownSignal(signal));
                }
            }
            .into_actor(self),
        );
    }

    fn all_ready(&mut self, ctx: &mut Context<Self>) {
        let elapsed = self.started.elapsed();
        self.health
            .metrics()
            .startup_duration
            .set(elapsed.as_secs_f64());
        let report = self.health.report();
        let names = report
            .dependencies
            .iter()
            .map(|(name, s)| {
                let tls = if s.tls == Some(true) { ", TLS" } else { "" };
                let optional = match (s.required, s.state) {
                    (false, State::Up) => ", optional",
                    (false, _) => ", optional, not up yet",
                    (true, _) => "",
                };
                format!("{name} ({}{tls}{optional})", s.backend)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let Some(database) = self.database.clone() else {
            return;
        };
        let deps = Dependencies::new(
            database,
            self.cache.clone().unwrap_or(Cache::None),
            self.others.clone(),
            self.health.clone(),
        );
        let configure = match &self.mode {
            Mode::Check => {
                log::info!("Check passed: {names} ready after {}", Seconds(elapsed));
                self.exit(exit::OK);
                return;
            }
            Mode::Serve(configure) => configure.clone(),
            Mode::Exec(_) => None,
        };
        let listeners = match self.port.take().map(BoundPort::listen) {
            Some(Ok(listeners)) => listeners,
            Some(Err(e)) => {
                log::error!(
                    "Cannot listen on the reserved port: {e}; exiting with code {}",
                    exit::CONFIG
                );
                self.exit(exit::CONFIG);
                return;
            }
            None => {
                log::error!(
                    "No HTTP port was reserved; exiting with code {}",
                    exit::CONFIG
                );
                self.exit(exit::CONFIG);
                return;
            }
        };
        let health = web::Data::new(self.health.clone());
        let deps = web::Data::new(deps);
        // Our own timer cuts the drain at SHUTDOWN_TIMEOUT_MS (to the ms);
        // actix-web's, in whole seconds, must not cut it earlier.
        let drain_secs = self.settings.shutdown.timeout.as_secs().saturating_add(1);
        let server = listeners.into_iter().try_fold(
            HttpServer::new(move || {
                let app = App::new()
                    .app_data(health.clone())
                    .app_data(deps.clone())
                    .wrap(routes::CountRequests::new(health.get_ref().clone()))
                    .configure(routes::configure);
                match &configure {
                    Some(f) => app.configure(|cfg| f(cfg)),
                    None => app,
                }
            })
            .disable_signals()
            .shutdown_timeout(drain_secs),
            |server, listener| server.listen(listener),
        );
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "Cannot serve on the reserved port: {e}; exiting with code {}",
                    exit::CONFIG
                );
                self.exit(exit::CONFIG);
                return;
            }
        };
        let addrs = server
            .addrs()
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(", ");
        let server = server.run();
        self.server = Some(server.handle());
        ctx.spawn(
            async move {
                if let Err(e) = server.await {
                    log::error!("HTTP server failed: {e}");
                }
            }
            .into_actor(self),
        );
        log::info!(
            "Ready: {names} up after {}; listening on {addrs}",
            Seconds(elapsed)
        );
        if let Mode::Exec(command) = &self.mode {
            let command = Arc::clone(command);
            self.start_program(command, ctx);
        }
    }

    fn gave_up(&mut self, first: StartupFailure, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let others: Vec<_> = self
            .actors
            .iter()
            .filter(|(d, _)| **d != first.dependency)
            .map(|(_, a)| a.send(Abort))
            .collect();
        let wait = futures_util::future::join_all(others);
        ctx.wait(wait.into_actor(self).map(move |answers, act, _| {
            let mut failures = vec![first];
            failures.extend(answers.into_iter().filter_map(|a| a.ok().flatten()));
            failures.sort_by_key(|f| act.order.get(&f.dependency).copied());
            let text = failures.iter().map(describe).collect::<Vec<_>>().join("; ");
            log::error!(
                "Start-up failed: {text}; exiting with code {}",
                exit::UNAVAILABLE
            );
            act.exit(exit::UNAVAILABLE);
        }));
    }
}

/// `database unavailable after 5 attempts in 1.6 s (connection refused x5)`;
/// with a start-up deadline, which of the two limits ended it.
fn describe(f: &StartupFailure) -> String {
    let what = &f.what;
    let (max_retries, deadline) = match &f.settings {
        Some(prefix) => (
            format!("{prefix}_MAX_RETRIES"),
            format!("{prefix}_STARTUP_TIMEOUT_MS"),
        ),
        None => (
            "the attempts".to_owned(),
            "the start-up deadline".to_owned(),
        ),
    };
    let attempts = attempts_text(f.attempts);
    // To the nearest 10 ms: enough for people, no timer noise.
    let millis = u64::try_from(f.elapsed.as_millis()).unwrap_or(u64::MAX);
    let elapsed = Seconds(std::time::Duration::from_millis(
        millis.saturating_add(5) / 10 * 10,
    ));
    match &f.outcome {
        FailureOutcome::Exhausted(Limit::Attempts) if f.deadline.is_some() => format!(
            "{what} unavailable after {attempts} in {elapsed}: {max_retries} reached first ({})",
            f.causes
        ),
        FailureOutcome::Exhausted(Limit::Attempts) => format!(
            "{what} unavailable after {attempts} in {elapsed} ({})",
            f.causes
        ),
        FailureOutcome::Exhausted(Limit::Deadline) => format!(
            "{what} unavailable after {attempts} in {elapsed}: {deadline} ({}) reached first ({})",
            Seconds(f.deadline.unwrap_or_default()),
            f.causes
        ),
        FailureOutcome::Permanent(cause) => {
            format!(
                "{what} unavailable: permanent error, not retried (after {attempts} in {elapsed}): {cause}"
            )
        }
        FailureOutcome::Aborted if f.attempts == 0 => format!("{what} not ready yet, stopped"),
        FailureOutcome::Aborted => {
            format!(
                "{what} not ready either, stopped after {attempts} in {elapsed} ({})",
                f.causes
            )
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.watch_signals(ctx);
        match &self.settings.cache {
            CacheSettings::None => self.cache = Some(Cache::None),
            CacheSettings::Memory => {
                self.health.register(&Dependency::cache(), "memory", true);
                self.health.set_state(&Dependency::cache(), State::Up);
                self.cache = Some(Cache::Memory(MemoryCache::default()));
            }
            CacheSettings::Redis(_)
            | CacheSettings::RedisSentinel(_)
            | CacheSettings::RedisCluster(_) => {
                if let Some(warning) = self
                    .settings
                    .cache
                    .redis()
                    .and_then(|r| r.insecure_warning())
                {
                    log::warn!("{warning}");
                }
            }
        }
        let line = self.starting_line();
        if self.start_dependencies(ctx).is_err() {
            return;
        }
        log::info!("{line}");
    }
}

impl Supervisor {
    /// `Starting: waiting for database and cache (database postgres://...,
    /// cache redis://...)`: the required dependencies, then where each one
    /// is.
    fn starting_line(&self) -> String {
        let names: Vec<&str> = self
            .specs
            .iter()
            .filter(|s| s.id.required)
            .map(|s| s.id.dependency.name())
            .collect();
        let waiting = match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => "nothing".to_owned(),
        };
        let mut places = Vec::new();
        for spec in &self.specs {
            let optional = if spec.id.required { "" } else { " (optional)" };
            places.push(format!("{} {}{optional}", spec.id.dependency, spec.shown));
            if spec.id.dependency == Dependency::database() {
                match &self.settings.cache {
                    CacheSettings::Memory => places.push("cache in memory".into()),
                    CacheSettings::None => places.push("no cache".into()),
                    CacheSettings::Redis(_)
                    | CacheSettings::RedisSentinel(_)
                    | CacheSettings::RedisCluster(_) => {}
                }
            }
        }
        format!("Starting: waiting for {waiting} ({})", places.join(", "))
    }
}

impl Handler<DependencyReport> for Supervisor {
    type Result = ();

    fn handle(&mut self, report: DependencyReport, ctx: &mut Context<Self>) {
        match report {
            DependencyReport::Ready { dependency, handle } => {
                // A handle of a required dependency is kept once: routes
                // got it already. An optional one may come while serving.
                self.keep(&dependency, handle);
                if self.pending.remove(&dependency)
                    && self.pending.is_empty()
                    && self.server.is_none()
                    && !self.stopping
                {
                    self.all_ready(ctx);
                }
            }
            DependencyReport::GaveUp(failure) => self.gave_up(failure, ctx),
        }
    }
}

impl Handler<ShutdownSignal> for Supervisor {
    type Result = ();

    fn handle(&mut self, ShutdownSignal(signal): ShutdownSignal, ctx: &mut Context<Self>) {
        if self.program.is_some() {
            self.forward(signal, ctx);
            return;
        }
        if self.stopping {
            log::info!("Received {signal} again, stopping now");
            self.exit(exit::OK);
            return;
        }
        self.stopping = true;
        let Some(server) = self.server.take() else {
            log::info!("Received {signal} during start-up, stopping");
            self.exit(exit::OK);
            return;
        };
        self.health.set_draining();
        let ShutdownSettings { delay, timeout } = self.settings.shutdown;
        if delay.is_zero() {
            log::info!(
                "Received {signal}: /ready answers 503; finishing in-flight requests (at most {}), then stopping",
                Seconds(timeout)
            );
        } else {
            log::info!(
                "Received {signal}: /ready answers 503; serving {} more, then finishing in-flight requests (at most {}) and stopping",
                Seconds(delay),
                Seconds(timeout)
            );
        }
        ctx.run_later(delay, move |act, ctx| {
            ctx.spawn(server.stop(true).into_actor(act).map(|(), act, _| {
                log::info!("Stopped");
                act.exit(exit::OK);
            }));
            ctx.run_later(timeout, move |act, _| {
                log::warn!(
                    "Requests still in flight after {} (SHUTDOWN_TIMEOUT_MS) were cut; stopped",
                    Seconds(timeout)
                );
                act.exit(exit::OK);
            });
        });
    }
}
