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

use crate::config::{CacheSettings, DatabaseUrl, Settings, ShutdownSettings};
use crate::connector::{
    Connector, MysqlConnector, PoolLimits, PostgresConnector, RedisConnector, SqliteConnector,
};
use crate::dependency::{Abort, DependencyActor, DependencyReport, FailureOutcome, StartupFailure};
use crate::error::ConnectError;
use crate::exit;
use crate::handles::{Cache, Connected, Database, Dependencies, MemoryCache};
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
}

pub struct Supervisor {
    settings: Settings,
    mode: Mode,
    health: Health,
    started: Instant,
    pending: BTreeSet<Dependency>,
    actors: BTreeMap<Dependency, Recipient<Abort>>,
    database: Option<Database>,
    cache: Option<Cache>,
    /// The HTTP port, bound but not listening until every dependency is
    /// ready (`None` for `readygate check`).
    port: Option<BoundPort>,
    server: Option<ServerHandle>,
    stopping: bool,
    exited: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct ShutdownSignal(StopSignal);

impl Supervisor {
    /// `port`: the reserved HTTP port ([`crate::listener::bind`]), needed
    /// to serve.
    pub fn new(settings: Settings, mode: Mode, health: Health, port: Option<BoundPort>) -> Self {
        Supervisor {
            settings,
            mode,
            health,
            started: signals::process_start(),
            pending: BTreeSet::new(),
            actors: BTreeMap::new(),
            database: None,
            cache: None,
            port,
            server: None,
            stopping: false,
            exited: false,
        }
    }

    fn start_dependency<C: Connector>(
        &mut self,
        connector: Result<C, ConnectError>,
        policy: crate::retry::RetryPolicy,
        ctx: &mut Context<Self>,
    ) {
        let connector = match connector {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "Cannot set up a dependency: {}; exiting with code {}",
                    e.chain(),
                    exit::UNAVAILABLE
                );
                self.exit(exit::UNAVAILABLE);
                return;
            }
        };
        let dependency = connector.dependency();
        let actor = DependencyActor::new(
            connector,
            policy,
            self.settings.health_check_interval,
            self.health.clone(),
            ctx.address().recipient(),
        )
        .start();
        self.pending.insert(dependency);
        self.actors.insert(dependency, actor.recipient());
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
                format!("{name} ({}{tls})", s.backend)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let deps = Dependencies {
            database: match &self.database {
                Some(db) => db.clone(),
                None => return,
            },
            cache: self.cache.clone().unwrap_or(Cache::None),
        };
        let configure = match &self.mode {
            Mode::Check => {
                log::info!("Check passed: {names} ready after {}", Seconds(elapsed));
                self.exit(exit::OK);
                return;
            }
            Mode::Serve(configure) => configure.clone(),
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
            failures.sort_by_key(|f| f.dependency);
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
    let what = match f.dependency {
        Dependency::Database => "database".to_owned(),
        Dependency::Cache => format!("{} cache", f.label),
    };
    let prefix = match f.dependency {
        Dependency::Database => "DB",
        Dependency::Cache => "REDIS",
    };
    let attempts = if f.attempts == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{} attempts", f.attempts)
    };
    // To the nearest 10 ms: enough for people, no timer noise.
    let millis = u64::try_from(f.elapsed.as_millis()).unwrap_or(u64::MAX);
    let elapsed = Seconds(std::time::Duration::from_millis(
        millis.saturating_add(5) / 10 * 10,
    ));
    match &f.outcome {
        FailureOutcome::Exhausted(Limit::Attempts) if f.deadline.is_some() => format!(
            "{what} unavailable after {attempts} in {elapsed}: {prefix}_MAX_RETRIES reached first ({})",
            f.causes
        ),
        FailureOutcome::Exhausted(Limit::Attempts) => format!(
            "{what} unavailable after {attempts} in {elapsed} ({})",
            f.causes
        ),
        FailureOutcome::Exhausted(Limit::Deadline) => format!(
            "{what} unavailable after {attempts} in {elapsed}: {prefix}_STARTUP_TIMEOUT_MS ({}) reached first ({})",
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
        let db = &self.settings.database;
        let policy = db.retry;
        let limits = PoolLimits {
            size: db.pool_size,
            wait: db.pool_timeout,
        };
        match db.url.clone() {
            DatabaseUrl::Postgres { config, tls, .. } => {
                let c = PostgresConnector::new(&config, &tls, limits, policy.attempt_timeout);
                self.start_dependency(c, policy, ctx);
            }
            DatabaseUrl::Mysql { opts, backend, .. } => {
                let c = MysqlConnector::new(&opts, backend, limits, policy.attempt_timeout);
                self.start_dependency(Ok(c), policy, ctx);
            }
            DatabaseUrl::Sqlite { path } => {
                let c = SqliteConnector::new(&path, limits, policy.attempt_timeout);
                self.start_dependency(c, policy, ctx);
            }
        }
        match self.settings.cache.clone() {
            CacheSettings::None => self.cache = Some(Cache::None),
            CacheSettings::Memory => {
                self.health.register(Dependency::Cache, "memory");
                self.health.set_state(Dependency::Cache, State::Up);
                self.cache = Some(Cache::Memory(MemoryCache::default()));
            }
            CacheSettings::Redis(redis) => {
                if redis.tls.as_ref().is_some_and(|tls| tls.insecure) {
                    log::warn!(
                        "Redis TLS certificate verification is OFF (REDIS_TLS_INSECURE=true or \
                         #insecure in REDIS_URL): anyone on the network path can pose as Redis; \
                         set REDIS_TLS_CA_CERT instead"
                    );
                }
                let c = RedisConnector::new(
                    &redis.url,
                    redis.tls.as_ref(),
                    redis.retry.attempt_timeout,
                );
                self.start_dependency(c, redis.retry, ctx);
            }
        }
        let waiting = self
            .pending
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(" and ");
        log::info!(
            "Starting: waiting for {waiting} (database {}{})",
            self.settings.database.url.display(),
            match &self.settings.cache {
                CacheSettings::Redis(r) => format!(", cache {}", crate::redact::redact_url(&r.url)),
                CacheSettings::Memory => ", cache in memory".into(),
                CacheSettings::None => ", no cache".into(),
            }
        );
    }
}

impl Handler<DependencyReport> for Supervisor {
    type Result = ();

    fn handle(&mut self, report: DependencyReport, ctx: &mut Context<Self>) {
        match report {
            DependencyReport::Ready { dependency, handle } => {
                match handle {
                    Connected::Database(db) => {
                        let pool = db.clone();
                        self.health.metrics().watch_pool(move || pool.status());
                        self.database = Some(db);
                    }
                    Connected::Cache(cache) => self.cache = Some(cache),
                }
                self.pending.remove(&dependency);
                if self.pending.is_empty() && !self.stopping {
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
