//! PostgreSQL through deadpool-postgres.
//!
//! * The application's pool (`DB_POOL_SIZE` connections): waiting for one of
//!   its connections is bounded by `DB_POOL_TIMEOUT_MS`, making one by the
//!   connect timeout. A start-up attempt gets a connection from it and runs
//!   `SELECT 1`, so the pool the application receives has been proven.
//! * A probe pool of one connection, not counted in `DB_POOL_SIZE`, for the
//!   runtime checks: however busy the application keeps its pool, a check
//!   asks the server itself, so a busy database stays up and a frozen one
//!   goes down.
//! * Every connection of both pools watches one [`Severance`]: when a check
//!   fails, they all end, and queries waiting on them fail instead of
//!   hanging on a server that stopped answering.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
    Timeouts,
};
use futures_util::StreamExt;
use futures_util::future::{FutureExt, LocalBoxFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::AsyncMessage;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PostgresError;
use super::options::{PostgresOptions, SessionAttrs};
use super::servers::{Servers, role};
use crate::backends::{Database, DatabaseUrl, watch_database};
use crate::connector::{
    Connector, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES, PoolLimits, ServerInfo,
    TCP_USER_TIMEOUT, checked,
};
use crate::error::{ConnectError, cause_chain};
use crate::handles::Connected;
use crate::secrets::{Refresh, Watched};
use crate::severance::{Severance, Severed};
use crate::tls::Encrypted;

pub struct PostgresConnector {
    pool: Pool,
    probe: Pool,
    severance: Severance,
    timeout: Duration,
    encrypted: Arc<Encrypted>,
    /// When the current URL names several hosts or a
    /// `target_session_attrs`: which server, and whether it will do (see
    /// [`Servers`]).
    servers: Arc<Servers>,
    /// The configurations and TLS new connections, and the choice of a
    /// server, are made with.
    current: Arc<Watched<Current>>,
}

/// What a new connection is made with: the URL's configuration, each of its
/// hosts' and the TLS built from its files, all rebuilt when a secret file
/// rotates.
#[derive(Clone)]
pub struct Current {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// `host:port` and the configuration of each host, in the URL's order
    /// (what [`Servers`] chooses among).
    pub servers: Arc<[(String, tokio_postgres::Config)]>,
    /// `target_session_attrs`, when the URL gives it.
    pub attrs: Option<SessionAttrs>,
}

/// The connection settings every connection shares: the timeouts and the
/// keepalives.
fn finish(config: &mut tokio_postgres::Config, timeout: Duration) {
    config
        .connect_timeout(timeout)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
}

impl Current {
    /// The value of `options`, every configuration finished with `timeout`.
    pub(super) fn of(options: &PostgresOptions, timeout: Duration) -> Self {
        let mut config = (*options.config).clone();
        finish(&mut config, timeout);
        let servers = options
            .servers
            .iter()
            .map(|server| {
                let mut config = server.config.clone();
                finish(&mut config, timeout);
                (server.shown.clone(), config)
            })
            .collect();
        Current {
            config,
            tls: MakeRustlsConnect::new((*options.tls.client).clone()),
            servers,
            attrs: options.attrs,
        }
    }

    /// Whether readygate chooses among servers and checks their role (as
    /// [`PostgresOptions::several`]).
    pub fn several(&self) -> bool {
        self.servers.len() > 1 || self.attrs.is_some()
    }
}

/// The files `options` were built from, and how to build them again.
fn watched(options: &PostgresOptions, timeout: Duration) -> Arc<Watched<Current>> {
    let current = Current::of(options, timeout);
    watch_database(
        current,
        &options.files,
        options.source.clone(),
        move |url| match url {
            DatabaseUrl::Postgres(o) => Some((Current::of(&o, timeout), o.files)),
            _ => None,
        },
    )
}

impl PostgresConnector {
    /// Builds both pools; no connection is made until the first attempt.
    /// `timeout` bounds each connection's set-up.
    pub fn new(
        options: &PostgresOptions,
        limits: PoolLimits,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let current = watched(options, timeout);
        let config = current.current().config;
        let servers = Arc::new(Servers::default());
        let severance = Severance::default();
        let encrypted = Arc::new(Encrypted::default());
        let build = |size: usize, wait: Duration| {
            let manager = Manager::from_connect(
                config.clone(),
                SeverableConnect {
                    severed: severance.watch(),
                    current: Arc::clone(&current),
                    encrypted: Arc::clone(&encrypted),
                    servers: Arc::clone(&servers),
                },
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .timeouts(Timeouts {
                    wait: Some(wait),
                    create: Some(timeout),
                    recycle: Some(timeout),
                })
                .build()
                .map_err(PostgresError::Build)
        };
        Ok(PostgresConnector {
            pool: build(limits.size, limits.wait)?,
            probe: build(1, timeout)?,
            severance,
            timeout,
            encrypted,
            servers,
            current,
        })
    }

    /// A connection of `pool`; making it is bounded by `timeout`, and
    /// running out of it reads as the attempt's own timeout.
    async fn get(
        pool: &Pool,
        timeout: Duration,
    ) -> Result<deadpool_postgres::Object, ConnectError> {
        pool.get().await.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Create) => ConnectError::TimedOut(timeout),
            e => PostgresError::Pool(e).into(),
        })
    }

    /// With several servers: choose one first when `attempt` (or after a
    /// failed check, or when the URL's hosts changed), with the secrets as
    /// they are now, severing the pools' connections when the choice
    /// changed; then ask `pool`'s connection what its server is, and refuse
    /// it when it will not do.
    fn role_check(
        &self,
        pool: &Pool,
        attempt: bool,
    ) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let (pool, timeout) = (pool.clone(), self.timeout);
        if !self.current.current().several() {
            return Self::select_one(pool, timeout).boxed_local();
        }
        let (servers, current) = (Arc::clone(&self.servers), Arc::clone(&self.current));
        let severance = self.severance.clone();
        async move {
            if servers.must_choose(attempt, &current.current()) {
                // Choosing makes new connections: they read the files
                // first, as the pools' do.
                current.refresh();
                if servers.choose(&current.current(), timeout).await? {
                    severance.sever();
                    // Let the severed connections end before the pool is
                    // asked.
                    tokio::task::yield_now().await;
                }
            }
            let client = Self::get(&pool, timeout).await?;
            let role = role(&client).await.map_err(PostgresError::Query)?;
            servers.accept(&current.current(), role)
        }
        .boxed_local()
    }

    /// `SELECT 1` on a connection of `pool`; making the connection is
    /// bounded by `timeout`, and running out of it reads as the attempt's
    /// own timeout.
    async fn select_one(pool: Pool, timeout: Duration) -> Result<(), ConnectError> {
        let client = Self::get(&pool, timeout).await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(PostgresError::Query)?;
        Ok(())
    }
}

/// Connects as deadpool-postgres does, but over rustls as the `sslmode`
/// says, noting whether the connection is encrypted; runs each connection
/// under the connector's [`Severance`] and logs its end with the whole
/// cause chain.
struct SeverableConnect {
    severed: Severed,
    /// Refreshed before each connection: a rotated secret is used by the
    /// next connection made.
    current: Arc<Watched<Current>>,
    encrypted: Arc<Encrypted>,
    /// With several servers, connections go to the chosen one, with its
    /// configuration in the current value.
    servers: Arc<Servers>,
}

type ConnectFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
            + Send
            + 'a,
    >,
>;

impl Connect for SeverableConnect {
    fn connect(&self, _: &tokio_postgres::Config) -> ConnectFuture<'_> {
        self.current.refresh();
        let current = self.current.current();
        let chosen = current
            .several()
            .then(|| self.servers.config(&current))
            .flatten();
        let config = chosen.unwrap_or_else(|| current.config.clone());
        let severed = self.severed.clone();
        let handshake = Arc::new(AtomicBool::new(false));
        let tls = Tracked {
            inner: current.tls,
            handshake: Arc::clone(&handshake),
        };
        let encrypted = Arc::clone(&self.encrypted);
        Box::pin(async move {
            let (client, mut connection) = config.connect(tls).await?;
            encrypted.set(handshake.load(Ordering::Relaxed));
            // Driven message by message rather than awaited, which would log
            // the server's notices itself, in words of its own.
            let messages = async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    if let AsyncMessage::Notice(notice) = message? {
                        log::debug!(
                            "DB pooled connection notice: {}: {}",
                            notice.severity(),
                            notice.message()
                        );
                    }
                }
                Ok::<(), tokio_postgres::Error>(())
            };
            let task = tokio::spawn(async move {
                match severed.run(messages).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        log::debug!("DB pooled connection ended: {}", cause_chain(&e));
                    }
                    None => log::debug!("DB pooled connection closed: the server was found down"),
                }
            });
            Ok((client, task))
        })
    }
}

/// rustls for tokio-postgres, noting whether the handshake took place
/// (tokio-postgres asks for it only once the server agreed to TLS).
#[derive(Clone)]
struct Tracked {
    inner: MakeRustlsConnect,
    handshake: Arc<AtomicBool>,
}

struct TrackedConnect<T> {
    inner: T,
    handshake: Arc<AtomicBool>,
}

impl<S> MakeTlsConnect<S> for Tracked
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = TrackedConnect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(TrackedConnect {
            inner: <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(
                &mut self.inner,
                domain,
            )?,
            handshake: Arc::clone(&self.handshake),
        })
    }
}

impl<S, T> TlsConnect<S> for TrackedConnect<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let handshake = self.handshake;
        let connecting = self.inner.connect(stream);
        Box::pin(async move {
            let stream = connecting.await?;
            handshake.store(true, Ordering::Relaxed);
            Ok(stream)
        })
    }
}

impl Connector for PostgresConnector {
    type Handle = Pool;

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<Pool, ConnectError>> {
        checked(self.pool.clone(), self.role_check(&self.pool, true))
    }

    fn check(&self, _: &Pool) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.role_check(&self.probe, false)
    }

    fn sever(&self) {
        self.severance.sever();
        self.servers.suspect();
    }

    fn server(&self) -> Option<ServerInfo> {
        let current = self.current.current();
        current
            .several()
            .then(|| self.servers.info(&current))
            .flatten()
    }

    fn refresh_secrets(&self) -> bool {
        self.current.refresh() == Refresh::Changed
    }

    fn watches_secrets(&self) -> bool {
        self.current.watches()
    }

    fn encrypted(&self) -> Option<bool> {
        self.encrypted.get()
    }

    fn share(pool: &Pool) -> Connected {
        Connected::Database(Database::Postgres(pool.clone()))
    }
}
