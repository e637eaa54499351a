//! The supervisor: starts one dependency actor per dependency, starts the
//! HTTP server once all are ready (or, for `readygate check`, exits 0), stops
//! everything with exit code 69 when one gives up, and handles SIGTERM/SIGINT
//! itself from the first moment (actix-web's own signal handling would only
//! start with the server).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

use crate::config::{CacheSettings, DatabaseUrl, Settings};
use crate::connector::{Connector, PostgresConnector, RedisConnector, SqliteConnector};
use crate::dependency::{Abort, DependencyActor, DependencyReport, FailureOutcome, StartupFailure};
use crate::error::ConnectError;
use crate::exit;
use crate::handles::{Cache, Connected, Database, Dependencies, MemoryCache};
use crate::retry::Seconds;
use crate::routes;
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
    server: Option<ServerHandle>,
    stopping: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct ShutdownSignal(&'static str);

impl Supervisor {
    pub fn new(settings: Settings, mode: Mode, health: Health) -> Self {
        Supervisor {
            settings,
            mode,
            health,
            started: Instant::now(),
            pending: BTreeSet::new(),
            actors: BTreeMap::new(),
            database: None,
            cache: None,
            server: None,
            stopping: false,
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
        if let Some(db) = &self.database {
            db.close();
        }
        System::current().stop_with_code(code);
    }

    fn watch_signals(&self, ctx: &mut Context<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let addr = ctx.address();
        let (term, int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("Cannot watch SIGTERM/SIGINT: {e}; stop the process with SIGKILL");
                return;
            }
        };
        ctx.spawn(
            async move {
                let (mut term, mut int) = (term, int);
                loop {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    addr.do_send(ShutdownSignal(name));
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
            .map(|(name, s)| format!("{name} ({})", s.backend))
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
        let health = web::Data::new(self.health.clone());
        let deps = web::Data::new(deps);
        let server = HttpServer::new(move || {
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
        .bind((self.settings.http.host.as_str(), self.settings.http.port));
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "Cannot listen on {}:{}: {e}; check HOST and PORT; exiting with code {}",
                    self.settings.http.host,
                    self.settings.http.port,
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

/// `database unavailable after 5 attempts in 1.6 s (connection refused x5)`.
fn describe(f: &StartupFailure) -> String {
    let what = match f.dependency {
        Dependency::Database => "database".to_owned(),
        Dependency::Cache => format!("{} cache", f.label),
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
        FailureOutcome::Exhausted => format!(
            "{what} unavailable after {attempts} in {elapsed} ({})",
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
        let (policy, pool_size) = (db.retry, db.pool_size);
        match db.url.clone() {
            DatabaseUrl::Postgres { config, .. } => {
                let c = PostgresConnector::new(&config, pool_size, policy.attempt_timeout);
                self.start_dependency(c, policy, ctx);
            }
            DatabaseUrl::Sqlite { path } => {
                let c = SqliteConnector::new(&path, pool_size);
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
                let c = RedisConnector::new(&redis.url, redis.retry.attempt_timeout);
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
                    Connected::Database(db) => self.database = Some(db),
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

    fn handle(&mut self, ShutdownSignal(name): ShutdownSignal, ctx: &mut Context<Self>) {
        if self.stopping {
            log::info!("Received {name} again, stopping now");
            self.exit(exit::OK);
            return;
        }
        self.stopping = true;
        match self.server.take() {
            Some(server) => {
                log::info!("Received {name}, finishing in-flight requests and stopping");
                ctx.spawn(server.stop(true).into_actor(self).map(|_, act, _| {
                    log::info!("Stopped");
                    act.exit(exit::OK);
                }));
            }
            None => {
                log::info!("Received {name} during start-up, stopping");
                self.exit(exit::OK);
            }
        }
    }
}
