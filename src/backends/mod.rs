//! The backends, one folder (or file) each, and the one list of them. A
//! backend holds everything readygate knows of one kind of dependency: how
//! its URL and TLS parameters parse, how it connects and checks (a
//! [`crate::connector::Connector`]), what its errors mean (a
//! [`crate::error::BackendError`] and an [`ErrorVocabulary`]) and the handle
//! the application receives. This module is the only place that lists them:
//! which scheme of `DATABASE_URL` and which `CACHE_TYPE` is which backend,
//! the handles' enums ([`Database`], [`Cache`]), every error vocabulary
//! ([`VOCABULARIES`]) and the dependency each setting starts
//! ([`database`], [`cache`], [`wait_for`]). `docs/architecture.md` shows how
//! a new backend is added.

pub mod dns;
pub mod handshake;
pub mod http;
pub mod memory;
pub mod mysql;
pub mod postgres;
pub mod probe;
pub mod redis;
pub mod sqlite;
pub mod tcp;

use std::fmt;

use futures_util::future::LocalBoxFuture;

use self::handshake::{Endpoint, HandshakeConnector, Protocol};
use self::memory::MemoryCache;
use self::mysql::{MysqlOptions, MysqlPool};
use self::postgres::PostgresOptions;
use self::sqlite::SqliteOptions;
use crate::config::{CacheSettings, Checker, DatabaseSettings, WaitFor};
use crate::connector::{Connector, PoolLimits};
use crate::dependencies::DependencySpec;
use crate::dependency::{DependencyActor, Identity};
use crate::error::{ConnectError, ErrorVocabulary};
use crate::handles::{Connected, PoolStatus};
use crate::retry::RetryPolicy;
use crate::secrets::{Source, UrlSource, Watched, reasons};
use crate::status::Dependency;

/// The database actor: PostgreSQL, or another database with
/// `DbActor<SqliteConnector>` and the like.
pub type DbActor<C = postgres::PostgresConnector> = DependencyActor<C>;
/// The cache actor: Redis.
pub type CacheActor = DependencyActor<redis::RedisConnector>;

/// What each backend knows of its client's errors, asked wherever an error
/// chain is named or printed (an application's [`crate::Probe`] may wrap
/// any client's error).
pub static VOCABULARIES: &[&dyn ErrorVocabulary] = &[
    &postgres::error::Vocabulary,
    &mysql::error::Vocabulary,
    &sqlite::error::Vocabulary,
    &redis::error::Vocabulary,
];

/// The database, as `DATABASE_URL` names it.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// `postgres://`, `postgresql://`.
    Postgres(PostgresOptions),
    /// `mysql://` or `mariadb://` (the same protocol).
    Mysql(MysqlOptions),
    /// `sqlite://PATH`.
    Sqlite(SqliteOptions),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl DatabaseUrl {
    /// The URL as it may be shown: no password.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Postgres(o) => o.display.clone(),
            DatabaseUrl::Mysql(o) => o.display.clone(),
            DatabaseUrl::Sqlite(o) => o.display(),
        }
    }

    /// `postgres`, `mysql`, `mariadb` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Mysql(o) => o.backend,
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }

    /// `DATABASE_URL` (or the file's content, named by `var`), by scheme;
    /// every problem recorded in `c`.
    pub(crate) fn parse(c: &mut Checker, var: &'static str, raw: &str) -> Option<DatabaseUrl> {
        const ACCEPTED: &str = "postgres://[user[:password]@]host[:port][,host[:port]...][/database][?target_session_attrs=...], postgresql://..., mysql://[user[:password]@]host[:port][/database], mariadb://..., or sqlite://PATH";
        let (value, shown, scheme, rest) = c.url(var, raw, ACCEPTED)?;
        match scheme.as_str() {
            "sqlite" => sqlite::parse(c, var, rest, &shown, ACCEPTED).map(DatabaseUrl::Sqlite),
            "postgres" | "postgresql" => {
                postgres::options::parse(c, var, value, &shown, ACCEPTED).map(DatabaseUrl::Postgres)
            }
            "mysql" | "mariadb" => mysql::options::parse(c, var, value, &shown, &scheme, ACCEPTED)
                .map(DatabaseUrl::Mysql),
            other => {
                c.unsupported_scheme(var, &shown, other, ACCEPTED);
                None
            }
        }
    }
}

/// Where a `WAIT_FOR` entry points, by its URL's scheme.
#[derive(Clone)]
pub enum WaitTarget {
    Tcp {
        host: String,
        port: u16,
    },
    /// An `http://` or `https://` URL, as written (it may hold a password),
    /// and what its answer must be.
    Http {
        url: String,
        expect: http::Expect,
    },
    /// `postgres://`, `postgresql://`: the options `DATABASE_URL` takes.
    Postgres {
        url: String,
        options: Box<PostgresOptions>,
    },
    /// `mysql://`, `mariadb://`: the options `DATABASE_URL` takes.
    Mysql {
        url: String,
        options: Box<MysqlOptions>,
    },
    /// `redis://`, `rediss://` (the platform's roots; `#insecure` as for
    /// `REDIS_URL`).
    Redis {
        url: String,
        tls: Option<redis::RedisTls>,
    },
    /// `amqp://`, `amqps://`, `nats://`, `mqtt://`: a protocol's handshake.
    Handshake {
        url: String,
        protocol: Protocol,
        endpoint: Endpoint,
    },
    /// `dns://host`: the name resolves.
    Dns {
        host: String,
    },
}

impl PartialEq for WaitTarget {
    fn eq(&self, other: &Self) -> bool {
        let expect = |t: &WaitTarget| match t {
            WaitTarget::Http { expect, .. } => Some(expect.clone()),
            _ => None,
        };
        self.backend() == other.backend()
            && self.shown() == other.shown()
            && expect(self) == expect(other)
    }
}

impl std::fmt::Debug for WaitTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl WaitTarget {
    /// Its backend, shown on `/ready` and in the metrics' labels: the
    /// scheme (`https` is `http`, `rediss` `redis`, `amqps` `amqp`,
    /// `postgresql` `postgres`).
    pub fn backend(&self) -> &'static str {
        match self {
            WaitTarget::Tcp { .. } => "tcp",
            WaitTarget::Http { .. } => "http",
            WaitTarget::Postgres { .. } => "postgres",
            WaitTarget::Mysql { options, .. } => options.backend,
            WaitTarget::Redis { .. } => "redis",
            WaitTarget::Handshake { protocol, .. } => protocol.backend(),
            WaitTarget::Dns { .. } => "dns",
        }
    }

    /// As the `Starting:` line shows it: no password.
    pub fn shown(&self) -> String {
        match self {
            WaitTarget::Tcp { host, port } => format!("tcp://{host}:{port}"),
            WaitTarget::Dns { host } => format!("dns://{host}"),
            WaitTarget::Http { url, .. }
            | WaitTarget::Postgres { url, .. }
            | WaitTarget::Mysql { url, .. }
            | WaitTarget::Redis { url, .. }
            | WaitTarget::Handshake { url, .. } => crate::redact::redact_url(url),
        }
    }
}

/// What `WAIT_FOR` accepts, as a bad entry's problem says.
pub const WAIT_FOR_ACCEPTED: &str = "name=URL, comma-separated, the URL one of tcp://host:port, http(s)://host[:port][/path], \
                                     postgres(ql)://..., mysql://..., mariadb://..., redis(s)://..., amqp(s)://...[/vhost], \
                                     nats://host[:port], mqtt://host[:port], dns://host; \
                                     a name is 1-63 of a-z, 0-9, - and _, starting with a letter";

impl WaitTarget {
    /// The target of a `WAIT_FOR` entry by its URL's scheme (`url` as
    /// written, `parsed`, naming `host`); a problem recorded in `c` against
    /// `WAIT_FOR`, the entry shown as `shown`, for an unknown scheme or a
    /// URL its backend refuses.
    pub(crate) fn parse(
        c: &mut Checker,
        shown: &str,
        url: &str,
        parsed: &url::Url,
        host: &str,
    ) -> Option<WaitTarget> {
        const VAR: &str = "WAIT_FOR";
        let owned = || url.to_owned();
        let handshake = |c: &mut Checker, protocol, port, tls| {
            Endpoint::parse(c, shown, parsed, host, port, tls).map(|endpoint| {
                WaitTarget::Handshake {
                    url: url.to_owned(),
                    protocol,
                    endpoint,
                }
            })
        };
        match parsed.scheme() {
            "tcp" => tcp::parse(c, shown, parsed, host)
                .map(|(host, port)| WaitTarget::Tcp { host, port }),
            "http" | "https" => Some(WaitTarget::Http {
                url: owned(),
                expect: http::Expect::default(),
            }),
            "postgres" | "postgresql" => postgres::options::parse(
                c,
                VAR,
                url,
                &crate::redact::redact_url(url),
                WAIT_FOR_ACCEPTED,
            )
            .map(|options| WaitTarget::Postgres {
                url: owned(),
                options: Box::new(options),
            }),
            scheme @ ("mysql" | "mariadb") => mysql::options::parse(
                c,
                VAR,
                url,
                &crate::redact::redact_url(url),
                scheme,
                WAIT_FOR_ACCEPTED,
            )
            .map(|options| WaitTarget::Mysql {
                url: owned(),
                options: Box::new(options),
            }),
            "redis" | "rediss" => redis::options::url(c, VAR, url).map(|(url, rediss)| {
                let tls = rediss.then(|| redis::RedisTls {
                    insecure: url.ends_with("#insecure"),
                    ..redis::RedisTls::default()
                });
                WaitTarget::Redis { url, tls }
            }),
            "amqp" => handshake(c, Protocol::Amqp, 5672, false),
            "amqps" => handshake(c, Protocol::Amqp, 5671, true),
            "nats" => handshake(c, Protocol::Nats, 4222, false),
            "mqtt" => handshake(c, Protocol::Mqtt, 1883, false),
            "dns" => Some(WaitTarget::Dns {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            }),
            other => {
                c.fail(
                    VAR,
                    shown,
                    format!("has an entry with the scheme {other:?}"),
                    WAIT_FOR_ACCEPTED,
                );
                None
            }
        }
    }
}

/// A backend's connector used for a `WAIT_FOR` entry: its attempts and
/// checks as they are for `DATABASE_URL` or `REDIS_URL`, but its handle
/// reaches no one (the application's database and cache are those).
pub struct Waited<C>(pub C);

impl<C: Connector> Connector for Waited<C> {
    type Handle = C::Handle;

    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<C::Handle, ConnectError>> {
        self.0.connect()
    }

    fn check(&self, handle: &C::Handle) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.0.check(handle)
    }

    fn sever(&self) {
        self.0.sever();
    }

    fn encrypted(&self) -> Option<bool> {
        self.0.encrypted()
    }

    fn server(&self) -> Option<crate::connector::ServerInfo> {
        self.0.server()
    }

    fn share(_: &C::Handle) -> Connected {
        Connected::Nothing
    }
}

/// The database pool, one variant per backend `DATABASE_URL` can name.
///
/// `non_exhaustive`: an application matches the backends it uses (or takes
/// one with [`Database::postgres`], [`Database::mysql`], [`Database::sqlite`])
/// and answers the rest with one `_` arm, so a backend added to readygate
/// later breaks no application. The client crates of these types are
/// re-exported in [`crate::export`], in the versions readygate uses.
#[derive(Clone)]
#[non_exhaustive]
pub enum Database {
    /// `postgres://`, `postgresql://`.
    Postgres(postgres::Pool),
    /// `mysql://`, `mariadb://`: a readygate pool over the MySQL client, whose
    /// waits are bounded (see [`MysqlPool`]).
    Mysql(MysqlPool),
    /// `sqlite://`.
    Sqlite(sqlite::Pool),
}

impl Database {
    /// The PostgreSQL pool, when `DATABASE_URL` names PostgreSQL.
    pub fn postgres(&self) -> Option<&postgres::Pool> {
        match self {
            Database::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// The MySQL/MariaDB pool, when `DATABASE_URL` names MySQL or MariaDB.
    pub fn mysql(&self) -> Option<&MysqlPool> {
        match self {
            Database::Mysql(pool) => Some(pool),
            _ => None,
        }
    }

    /// The SQLite pool, when `DATABASE_URL` names SQLite.
    pub fn sqlite(&self) -> Option<&sqlite::Pool> {
        match self {
            Database::Sqlite(pool) => Some(pool),
            _ => None,
        }
    }

    /// The pool's figures (shown on `/metrics`).
    pub fn status(&self) -> PoolStatus {
        match self {
            Database::Postgres(pool) => postgres::status(pool),
            Database::Mysql(pool) => pool.status(),
            Database::Sqlite(pool) => sqlite::status(pool),
        }
    }

    /// Close the pool: idle connections are dropped now, checked-out ones
    /// when returned.
    pub fn close(&self) {
        match self {
            Database::Postgres(pool) => pool.close(),
            Database::Mysql(pool) => pool.close(),
            Database::Sqlite(pool) => pool.close(),
        }
    }
}

/// The cache chosen by `CACHE_TYPE`.
///
/// `non_exhaustive`, as [`Database`]: an application matches the caches it
/// uses and answers the rest with one `_` arm.
#[derive(Clone)]
#[non_exhaustive]
pub enum Cache {
    /// `CACHE_TYPE=none`.
    None,
    /// `CACHE_TYPE=memory`: in this process, lost on restart.
    Memory(MemoryCache),
    /// `CACHE_TYPE=redis`: a connection manager that reconnects by itself,
    /// replaced by a new one when a rotated password or certificate needs
    /// it (the handle stays the same).
    Redis(self::redis::RedisManager),
    /// `CACHE_TYPE=redis-sentinel`: the master the sentinels name, followed
    /// through failovers.
    RedisSentinel(self::redis::SentinelManager),
    /// `CACHE_TYPE=redis-cluster`: the redis crate's cluster client.
    RedisCluster(self::redis::ClusterManager),
}

/// The database's dependency: its actor starts the connector the URL's
/// scheme names.
pub fn database(db: &DatabaseSettings) -> DependencySpec {
    let limits = PoolLimits {
        size: db.pool_size,
        wait: db.pool_timeout,
    };
    let timeout = db.retry.attempt_timeout;
    let id = Identity {
        dependency: Dependency::database(),
        label: "DB".into(),
        what: "database".into(),
        required: true,
        settings: Some("DB".into()),
    };
    let (policy, shown) = (db.retry, db.url.display());
    match db.url.clone() {
        DatabaseUrl::Postgres(o) => {
            let o = postgres::PostgresOptions {
                source: Some(db.source.clone()),
                ..o
            };
            DependencySpec::plain(id, policy, shown, move || o.connector(limits, timeout))
        }
        DatabaseUrl::Mysql(o) => {
            let o = mysql::MysqlOptions {
                source: Some(db.source.clone()),
                ..o
            };
            DependencySpec::plain(id, policy, shown, move || o.connector(limits, timeout))
        }
        DatabaseUrl::Sqlite(o) => {
            DependencySpec::plain(id, policy, shown, move || o.connector(limits, timeout))
        }
    }
}

/// A database connector's value (`current`, built from a URL and the TLS
/// `files` it names), rebuilt by `build` from the URL read again from
/// `source` when one of those files changed ([`crate::secrets`]); `build`
/// answers `None` for a URL of another backend, which needs a restart.
/// Without a source nothing is watched.
pub(crate) fn watch_database<T: Clone + 'static>(
    current: T,
    files: &[Source],
    source: Option<UrlSource>,
    build: impl Fn(DatabaseUrl) -> Option<(T, Vec<Source>)> + Send + Sync + 'static,
) -> std::sync::Arc<Watched<T>> {
    let Some(source) = source else {
        return Watched::new("DB", current, Vec::new(), Box::new(|| Err(String::new())));
    };
    let with_url = |source: &UrlSource, files: Vec<Source>| {
        source
            .watched("credentials")
            .into_iter()
            .chain(files)
            .collect()
    };
    let first = with_url(&source, files.to_vec());
    let load = move || {
        let mut c = Checker::default();
        let parsed = source
            .read(&mut c)
            .and_then(|(var, value)| DatabaseUrl::parse(&mut c, var, &value));
        match parsed.map(&build) {
            _ if !c.problems.is_empty() => Err(reasons(&c.problems)),
            Some(Some((value, files))) => Ok((value, with_url(&source, files))),
            _ => Err(
                "names another kind of database now; changing the database's kind needs a restart"
                    .to_owned(),
            ),
        }
    };
    Watched::new("DB", current, first, Box::new(load))
}

/// The cache's dependency, when it has one to wait for (Redis, in any of
/// its topologies).
pub fn cache(cache: &CacheSettings) -> Option<DependencySpec> {
    let settings = cache.redis()?;
    let required = settings.required;
    let id = Identity {
        dependency: Dependency::cache(),
        label: "Redis".into(),
        what: "Redis cache".into(),
        required,
        settings: Some("REDIS".into()),
    };
    let (policy, shown) = (settings.retry, crate::redact::redact_url(&settings.url));
    Some(match cache {
        CacheSettings::RedisSentinel(s) => {
            let s = (**s).clone();
            let shown = format!(
                "redis-sentinel://{}/{} (credentials and database of {shown})",
                nodes_shown(&s.nodes),
                s.master
            );
            cache_spec(id, policy, shown, move || s.connector(), |c| c.lazy())
        }
        CacheSettings::RedisCluster(s) => {
            let s = (**s).clone();
            let shown = format!(
                "redis-cluster://{} (credentials of {shown})",
                nodes_shown(&s.nodes)
            );
            cache_spec(id, policy, shown, move || s.connector(), |c| c.lazy())
        }
        _ => {
            let settings = settings.clone();
            cache_spec(
                id,
                policy,
                shown,
                move || settings.connector(),
                |c| c.lazy(),
            )
        }
    })
}

/// The cache's spec with connector `C`. An optional cache is handed to the
/// application at once: `lazy` makes a handle that connects on first use
/// (`Dependencies::is_up` says whether Redis is there).
fn cache_spec<C: crate::connector::Connector>(
    id: Identity,
    policy: RetryPolicy,
    shown: String,
    make: impl FnOnce() -> Result<C, crate::error::ConnectError> + Send + 'static,
    lazy: fn(&C) -> Option<crate::handles::Connected>,
) -> DependencySpec {
    let required = id.required;
    DependencySpec::new(id, policy, shown, make, move |c: &C| {
        if required { None } else { lazy(c) }
    })
}

/// A node list as the `Starting:` line shows it: `h1:p1,h2:p2`.
fn nodes_shown(nodes: &[(String, u16)]) -> String {
    nodes
        .iter()
        .map(|(host, port)| {
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A `WAIT_FOR` entry's dependency, by its scheme, with its own policy
/// (`WAIT_FOR_<NAME>_*`, else the shared `WAIT_FOR_*`).
pub fn wait_for(wait: &WaitFor) -> DependencySpec {
    let id = Identity {
        dependency: Dependency::named(&wait.name),
        label: wait.name.clone(),
        what: format!("{} ({})", wait.name, wait.target.backend()),
        required: wait.required,
        settings: Some("WAIT_FOR".into()),
    };
    let (policy, shown) = (wait.policy, wait.target.shown());
    let timeout = policy.attempt_timeout;
    // One connection: the entry is checked, not used.
    let limits = PoolLimits {
        size: 1,
        wait: timeout,
    };
    match wait.target.clone() {
        WaitTarget::Tcp { host, port } => DependencySpec::plain(id, policy, shown, move || {
            Ok(tcp::TcpConnector::new(host, port))
        }),
        WaitTarget::Http { url, expect } => DependencySpec::plain(id, policy, shown, move || {
            Ok(http::HttpConnector::new(url, expect))
        }),
        WaitTarget::Postgres { options, .. } => {
            DependencySpec::plain(id, policy, shown, move || {
                options.connector(limits, timeout).map(Waited)
            })
        }
        WaitTarget::Mysql { options, .. } => DependencySpec::plain(id, policy, shown, move || {
            options.connector(limits, timeout).map(Waited)
        }),
        WaitTarget::Redis { url, tls } => DependencySpec::plain(id, policy, shown, move || {
            redis::RedisConnector::new(&url, tls.as_ref(), timeout).map(Waited)
        }),
        WaitTarget::Handshake {
            protocol, endpoint, ..
        } => DependencySpec::plain(id, policy, shown, move || {
            Ok(HandshakeConnector::new(protocol, endpoint))
        }),
        WaitTarget::Dns { host } => {
            DependencySpec::plain(id, policy, shown, move || Ok(dns::DnsConnector::new(host)))
        }
    }
}
