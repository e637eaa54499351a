//! Settings: command line, then process environment, then `.env`, then
//! defaults (clap reads the environment; dotenvy fills it from `.env` without
//! overriding what the process already has). Every value is read as text and
//! validated here, so that one run reports every bad variable at once.

mod check;
mod retry;
mod urls;
mod wait_for;

use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use log::LevelFilter;

pub(crate) use self::check::Checker;
pub use self::check::Problem;
use self::retry::DB_RETRY;
pub(crate) use self::retry::{REDIS_RETRY, RetryFields};
pub use self::wait_for::{PER_ENTRY, WaitFor, WaitTarget, env_key, valid_name};
pub use crate::backends::DatabaseUrl;
pub use crate::backends::redis::RedisSettings;
pub use crate::backends::redis::options::{ClusterSettings, SentinelSettings};
use crate::redact::register_url_secrets;
use crate::retry::RetryPolicy;
use crate::secrets::UrlSource;

/// Largest accepted pool.
const MAX_POOL_SIZE: u64 = 10_000;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "readygate",
    version,
    about = "Start-up supervisor for an actix-web gateway: waits for its database and cache \
             with a bounded retry policy, then serves HTTP.",
    after_help = "Every setting is read from the command line, then the process environment, \
                  then a .env file in the working directory, then its default. An empty value is \
                  an error: unset the variable to get the default.\n\
                  Exit codes: 0 stopped normally or by SIGTERM/SIGINT; 69 a dependency is \
                  unavailable; 78 bad configuration."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: RawSettings,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Check every dependency with the configured retry settings, then exit:
    /// 0 when all are ready, 69 when one is not. Serves no HTTP (for init
    /// containers and compose health checks).
    Check,
    /// Wait for every dependency, then run CMD as a child, serving /health,
    /// /ready and /metrics beside it and forwarding SIGTERM/SIGINT/SIGHUP;
    /// exits with CMD's exit code (128+N when signal N killed it).
    Exec {
        /// The program and its arguments, after `--`
        #[arg(last = true, value_name = "CMD", value_parser = clap::value_parser!(std::ffi::OsString))]
        command: Vec<std::ffi::OsString>,
    },
    /// Ask the readygate serving on this host (HOST, PORT; 0.0.0.0 and ::
    /// mean loopback) for /health, then exit: 0 on 200, 1 otherwise, within
    /// 2 s (a container HEALTHCHECK without an HTTP client in the image).
    Probe,
}

/// The form `readygate exec` takes, for its usage error.
pub const EXEC_USAGE: &str = "readygate exec [SETTINGS...] -- CMD [ARGS...]";

/// Settings as written, before validation. Each is `global`, so that it
/// may come after the subcommand too (`readygate check --db-max-retries 1`).
#[derive(clap::Args, Debug, Clone)]
pub struct RawSettings {
    /// Database: postgres://user:password@host:port/db (or postgresql://), mysql://user:password@host:port/db (or mariadb://), or sqlite://PATH
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "sqlite://readygate.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Read DATABASE_URL from this file instead (a mounted secret; a trailing newline is ignored)
    #[arg(long, global = true, env = "DATABASE_URL_FILE", hide_env_values = true)]
    pub database_url_file: Option<String>,
    /// Connections in the database pool (>= 1)
    #[arg(long, global = true, env = "DB_POOL_SIZE", default_value = "10")]
    pub db_pool_size: String,
    /// Longest an application request waits for a pooled database connection before it gets an error, in ms (>= 1)
    #[arg(
        long,
        global = true,
        env = "DB_POOL_TIMEOUT_MS",
        default_value = "5000"
    )]
    pub db_pool_timeout_ms: String,
    /// Database connection attempts at start-up before giving up (>= 1)
    #[arg(long, global = true, env = "DB_MAX_RETRIES", default_value = "3")]
    pub db_max_retries: String,
    /// Wait between database attempts, in ms; with exponential back-off, the first wait (>= 1)
    #[arg(
        long,
        global = true,
        env = "DB_RETRY_INTERVAL_MS",
        default_value = "2000"
    )]
    pub db_retry_interval_ms: String,
    /// After each failed database attempt, the wait grows: fixed (every wait is the interval) or exponential (times the multiplier each time, up to the max interval)
    #[arg(long, global = true, env = "DB_RETRY_BACKOFF", default_value = "fixed")]
    pub db_retry_backoff: String,
    /// With exponential back-off, each wait is the previous one times this (1 to 10, at most 3 decimals)
    #[arg(long, global = true, env = "DB_RETRY_MULTIPLIER", default_value = "2")]
    pub db_retry_multiplier: String,
    /// With exponential back-off, the longest wait before jitter, in ms (>= the interval)
    #[arg(
        long,
        global = true,
        env = "DB_RETRY_MAX_INTERVAL_MS",
        default_value = "30000"
    )]
    pub db_retry_max_interval_ms: String,
    /// Each wait w is drawn uniformly from w x (1 - jitter) to w x (1 + jitter) (0 to 1, at most 3 decimals; 0: none)
    #[arg(long, global = true, env = "DB_RETRY_JITTER", default_value = "0")]
    pub db_retry_jitter: String,
    /// Limit for one database attempt (connect + SELECT 1), in ms (>= 1)
    #[arg(
        long,
        global = true,
        env = "DB_CONNECT_TIMEOUT_MS",
        default_value = "5000"
    )]
    pub db_connect_timeout_ms: String,
    /// Start-up deadline for the database, in ms: whichever of it and the attempts runs out first ends start-up (0: no deadline)
    #[arg(
        long,
        global = true,
        env = "DB_STARTUP_TIMEOUT_MS",
        default_value = "0"
    )]
    pub db_startup_timeout_ms: String,
    /// Cache: memory (in-process), redis, redis-sentinel, redis-cluster, or none
    #[arg(long, global = true, env = "CACHE_TYPE", default_value = "memory")]
    pub cache_type: String,
    /// false: serve without Redis while it is down (it is still checked and reconnected; /ready stays 200); CACHE_TYPE=redis only
    #[arg(long, global = true, env = "CACHE_REQUIRED", default_value = "true")]
    pub cache_required: String,
    /// Redis: redis://[user:password@]host[:port][/db] (used when CACHE_TYPE=redis)
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        default_value = "redis://localhost:6379/0",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Read REDIS_URL from this file instead (a mounted secret; a trailing newline is ignored)
    #[arg(long, global = true, env = "REDIS_URL_FILE", hide_env_values = true)]
    pub redis_url_file: Option<String>,
    /// rediss:// only: trust the CA certificates of this PEM file instead of the platform's
    #[arg(long, global = true, env = "REDIS_TLS_CA_CERT")]
    pub redis_tls_ca_cert: Option<String>,
    /// rediss:// only: present this client certificate (PEM; with REDIS_TLS_CLIENT_KEY)
    #[arg(long, global = true, env = "REDIS_TLS_CLIENT_CERT")]
    pub redis_tls_client_cert: Option<String>,
    /// rediss:// only: the client certificate's private key (PEM)
    #[arg(long, global = true, env = "REDIS_TLS_CLIENT_KEY")]
    pub redis_tls_client_key: Option<String>,
    /// rediss:// only: do NOT verify the server's certificate (true/false; a WARN line at every start)
    #[arg(
        long,
        global = true,
        env = "REDIS_TLS_INSECURE",
        default_value = "false"
    )]
    pub redis_tls_insecure: String,
    /// Redis connection attempts at start-up before giving up (>= 1)
    #[arg(long, global = true, env = "REDIS_MAX_RETRIES", default_value = "3")]
    pub redis_max_retries: String,
    /// Wait between Redis attempts, in ms; with exponential back-off, the first wait (>= 1)
    #[arg(
        long,
        global = true,
        env = "REDIS_RETRY_INTERVAL_MS",
        default_value = "2000"
    )]
    pub redis_retry_interval_ms: String,
    /// After each failed Redis attempt, the wait grows: fixed (every wait is the interval) or exponential (times the multiplier each time, up to the max interval)
    #[arg(
        long,
        global = true,
        env = "REDIS_RETRY_BACKOFF",
        default_value = "fixed"
    )]
    pub redis_retry_backoff: String,
    /// With exponential back-off, each wait is the previous one times this (1 to 10, at most 3 decimals)
    #[arg(
        long,
        global = true,
        env = "REDIS_RETRY_MULTIPLIER",
        default_value = "2"
    )]
    pub redis_retry_multiplier: String,
    /// With exponential back-off, the longest wait before jitter, in ms (>= the interval)
    #[arg(
        long,
        global = true,
        env = "REDIS_RETRY_MAX_INTERVAL_MS",
        default_value = "30000"
    )]
    pub redis_retry_max_interval_ms: String,
    /// Each wait w is drawn uniformly from w x (1 - jitter) to w x (1 + jitter) (0 to 1, at most 3 decimals; 0: none)
    #[arg(long, global = true, env = "REDIS_RETRY_JITTER", default_value = "0")]
    pub redis_retry_jitter: String,
    /// Limit for one Redis attempt (connect + PING), in ms (>= 1)
    #[arg(
        long,
        global = true,
        env = "REDIS_CONNECT_TIMEOUT_MS",
        default_value = "5000"
    )]
    pub redis_connect_timeout_ms: String,
    /// Start-up deadline for Redis, in ms: whichever of it and the attempts runs out first ends start-up (0: no deadline)
    #[arg(
        long,
        global = true,
        env = "REDIS_STARTUP_TIMEOUT_MS",
        default_value = "0"
    )]
    pub redis_startup_timeout_ms: String,
    /// CACHE_TYPE=redis-sentinel: the sentinels, host:port,host:port,... (asked in order for the master)
    #[arg(long, global = true, env = "REDIS_SENTINEL_NODES")]
    pub redis_sentinel_nodes: Option<String>,
    /// CACHE_TYPE=redis-sentinel: the name the sentinels monitor the master by (sentinel monitor NAME ...)
    #[arg(long, global = true, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// CACHE_TYPE=redis-sentinel: the sentinels' own password (requirepass in sentinel.conf), if they have one
    #[arg(
        long,
        global = true,
        env = "REDIS_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub redis_sentinel_password: Option<String>,
    /// Read REDIS_SENTINEL_PASSWORD from this file instead (a mounted secret; a trailing newline is ignored)
    #[arg(long, global = true, env = "REDIS_SENTINEL_PASSWORD_FILE")]
    pub redis_sentinel_password_file: Option<String>,
    /// CACHE_TYPE=redis-cluster: seed nodes of the cluster, host:port,host:port,... (the rest is discovered)
    #[arg(long, global = true, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    /// More dependencies to wait for, name=URL, comma-separated: tcp://, http(s):// (up on a 2xx answer), postgres://, mysql://, mariadb://, redis(s)://, amqp(s)://, nats://, mqtt://, dns://; WAIT_FOR_<NAME>_* sets one entry's policy and HTTP expectations
    #[arg(long, global = true, env = "WAIT_FOR", hide_env_values = true)]
    pub wait_for: Option<String>,
    /// Names of WAIT_FOR's entries that are optional (serve without them), comma-separated
    #[arg(long, global = true, env = "WAIT_FOR_OPTIONAL")]
    pub wait_for_optional: Option<String>,
    /// WAIT_FOR: attempts of each entry at start-up before giving up (>= 1)
    #[arg(long, global = true, env = "WAIT_FOR_MAX_RETRIES", default_value = "3")]
    pub wait_for_max_retries: String,
    /// WAIT_FOR: wait between attempts (fixed), in ms (>= 1)
    #[arg(
        long,
        global = true,
        env = "WAIT_FOR_RETRY_INTERVAL_MS",
        default_value = "2000"
    )]
    pub wait_for_retry_interval_ms: String,
    /// WAIT_FOR: limit for one attempt (connect, or the whole HTTP request), in ms (>= 1)
    #[arg(
        long,
        global = true,
        env = "WAIT_FOR_CONNECT_TIMEOUT_MS",
        default_value = "5000"
    )]
    pub wait_for_connect_timeout_ms: String,
    /// Period of the dependency checks once started, in ms (>= 1)
    #[arg(
        long,
        global = true,
        env = "HEALTH_CHECK_INTERVAL_MS",
        default_value = "5000"
    )]
    pub health_check_interval_ms: String,
    /// HTTP listen address: an IP address or a host name
    #[arg(long, global = true, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// HTTP listen port (0 picks a free port, printed when ready)
    #[arg(long, global = true, env = "PORT", default_value = "4444")]
    pub port: String,
    /// After SIGTERM/SIGINT while serving: keep serving (with /ready answering 503) this long before closing the port, in ms (>= 0)
    #[arg(long, global = true, env = "SHUTDOWN_DELAY_MS", default_value = "0")]
    pub shutdown_delay_ms: String,
    /// Then wait at most this long for in-flight requests before stopping anyway, in ms (>= 0)
    #[arg(
        long,
        global = true,
        env = "SHUTDOWN_TIMEOUT_MS",
        default_value = "10000"
    )]
    pub shutdown_timeout_ms: String,
    /// Log level: error, warn, info, debug, trace
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: text (human readable) or json (one object per line)
    #[arg(long, global = true, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Which URL settings were given rather than defaulted ([`Cli::parse_args`]).
    #[arg(skip)]
    pub given: Given,
    /// The environment's other `WAIT_FOR_*` variables, (name, value):
    /// `WAIT_FOR_<NAME>_<SETTING>`, one entry's own ([`Cli::parse_args`]
    /// reads them; each must name an entry and a setting).
    #[arg(skip)]
    pub wait_for_entries: Vec<(String, String)>,
}

/// Which settings were given (on the command line, in the environment or
/// in `.env`) rather than left at their default: `X` and `X_FILE` together
/// are an error, and only the parse knows whether `X` was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Given {
    pub database_url: bool,
    pub redis_url: bool,
}

impl Cli {
    /// Parse `args` (the program name first) and the environment, noting
    /// which settings were [`Given`].
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        cli.settings.given = Given {
            database_url: given("database_url"),
            redis_url: given("redis_url"),
        };
        let shared: Vec<String> = documented_settings()
            .into_iter()
            .map(|(var, _)| var)
            .chain(optional_settings())
            .collect();
        cli.settings.wait_for_entries = std::env::vars_os()
            .filter_map(|(var, value)| {
                let var = var.into_string().ok()?;
                (var.starts_with("WAIT_FOR_") && !shared.contains(&var))
                    .then(|| (var, value.to_string_lossy().into_owned()))
            })
            .collect();
        cli.settings.wait_for_entries.sort();
        Ok(cli)
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub http: HttpSettings,
    /// `WAIT_FOR`'s entries, in order.
    pub wait_for: Vec<WaitFor>,
    /// Their shared retry policy (`WAIT_FOR_*`; a fixed interval).
    pub wait_retry: RetryPolicy,
    /// Period of the runtime checks once a dependency is up.
    pub health_check_interval: Duration,
    pub shutdown: ShutdownSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// Where the URL was read from: read again when it rotates.
    pub source: UrlSource,
    pub pool_size: usize,
    /// Longest wait for a pooled connection (`DB_POOL_TIMEOUT_MS`).
    pub pool_timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone)]
pub enum CacheSettings {
    None,
    Memory,
    Redis(Box<RedisSettings>),
    /// `CACHE_TYPE=redis-sentinel`: the master the sentinels name.
    RedisSentinel(Box<SentinelSettings>),
    /// `CACHE_TYPE=redis-cluster`.
    RedisCluster(Box<ClusterSettings>),
}

impl CacheSettings {
    /// The Redis settings of any Redis topology (`REDIS_URL`, `REDIS_TLS_*`,
    /// the retry policy, `CACHE_REQUIRED`).
    pub fn redis(&self) -> Option<&RedisSettings> {
        match self {
            CacheSettings::Redis(r) => Some(r),
            CacheSettings::RedisSentinel(s) => Some(&s.redis),
            CacheSettings::RedisCluster(c) => Some(&c.redis),
            CacheSettings::None | CacheSettings::Memory => None,
        }
    }
}

/// How a stop signal ends the serving gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// Serve on, with `/ready` 503, this long (`SHUTDOWN_DELAY_MS`).
    pub delay: Duration,
    /// Then wait at most this long for in-flight requests
    /// (`SHUTDOWN_TIMEOUT_MS`).
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LevelFilter,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: LevelFilter::Info,
            format: LogFormat::Text,
        }
    }
}

/// Why the settings cannot be used. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration, nothing was started: {}", join(.0))]
    Invalid(Vec<Problem>),
    #[error("cannot read .env: {0}")]
    DotEnv(#[source] dotenvy::Error),
    #[error("invalid command line: {0}")]
    CommandLine(String),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fill the process environment from `.env` in the working directory; the
/// process environment wins. A missing file is fine, a malformed one is not.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::DotEnv(e)),
    }
}

/// Every setting the program reads: (variable, default), in `--help` order.
/// docs/configuration.md, `.env.example` and the Helm chart are held to
/// this list.
pub fn documented_settings() -> Vec<(String, String)> {
    Cli::command()
        .get_arguments()
        .filter_map(|arg| {
            let var = arg.get_env()?.to_str()?.to_owned();
            let default = arg.get_default_values().first()?.to_str()?.to_owned();
            Some((var, default))
        })
        .collect()
}

/// The settings without a default (unset unless given: `DATABASE_URL_FILE`,
/// the Redis TLS files), in `--help` order. docs/configuration.md lists them as
/// `unset`, `.env.example` as commented lines, the chart as empty values it
/// leaves out of the ConfigMap.
pub fn optional_settings() -> Vec<String> {
    Cli::command()
        .get_arguments()
        .filter(|arg| arg.get_default_values().is_empty())
        .filter_map(|arg| Some(arg.get_env()?.to_str()?.to_owned()))
        .collect()
}

impl RawSettings {
    /// The log settings, falling back to defaults where they are invalid, so
    /// that the configuration error itself can be logged.
    pub fn log_settings_or_default(&self) -> LogSettings {
        let mut checker = Checker::default();
        let default = LogSettings::default();
        LogSettings {
            level: checker
                .choice("LOG_LEVEL", &self.log_level, LEVELS)
                .unwrap_or(default.level),
            format: checker
                .choice("LOG_FORMAT", &self.log_format, FORMATS)
                .unwrap_or(default.format),
        }
    }

    /// Validate every setting; all problems are reported together.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        // Known before anything can fail, so no message can show them.
        register_url_secrets(&self.database_url);
        register_url_secrets(&self.redis_url);

        let mut c = Checker::default();
        let database = self.database(&mut c);
        let cache = self.cache(&mut c);
        let (wait_for, wait_retry) = self.wait_for(&mut c);
        let health = c.millis("HEALTH_CHECK_INTERVAL_MS", &self.health_check_interval_ms);
        let http = self.http(&mut c);
        let shutdown = self.shutdown(&mut c);
        let log = self.log(&mut c);
        match (
            database,
            cache,
            (wait_for, wait_retry),
            health,
            http,
            shutdown,
            log,
        ) {
            (
                Some(database),
                Some(cache),
                (Some(wait_for), Some(wait_retry)),
                Some(health_check_interval),
                Some(http),
                Some(shutdown),
                Some(log),
            ) if c.problems.is_empty() => Ok(Settings {
                database,
                cache,
                wait_for,
                wait_retry,
                http,
                health_check_interval,
                shutdown,
                log,
            }),
            _ => Err(ConfigError::Invalid(c.problems)),
        }
    }

    fn database(&self, c: &mut Checker) -> Option<DatabaseSettings> {
        let (read, source) = UrlSource::read_setting(
            c,
            ("DATABASE_URL", &self.database_url, self.given.database_url),
            ("DATABASE_URL_FILE", self.database_url_file.as_deref()),
        );
        let url = read.and_then(|(var, value)| DatabaseUrl::parse(c, var, &value));
        let pool_size = c.number("DB_POOL_SIZE", &self.db_pool_size, 1, MAX_POOL_SIZE);
        let pool_timeout = c.millis("DB_POOL_TIMEOUT_MS", &self.db_pool_timeout_ms);
        let retry = c.retry_policy(
            &DB_RETRY,
            &RetryFields {
                max_retries: &self.db_max_retries,
                interval: &self.db_retry_interval_ms,
                backoff: &self.db_retry_backoff,
                multiplier: &self.db_retry_multiplier,
                max_interval: &self.db_retry_max_interval_ms,
                jitter: &self.db_retry_jitter,
                timeout: &self.db_connect_timeout_ms,
                startup_timeout: &self.db_startup_timeout_ms,
            },
        );
        Some(DatabaseSettings {
            url: url?,
            source: source?,
            pool_size: usize::try_from(pool_size?).unwrap_or(usize::MAX),
            pool_timeout: pool_timeout?,
            retry: retry?,
        })
    }

    /// The Redis settings are read only when `CACHE_TYPE=redis`.
    fn cache(&self, c: &mut Checker) -> Option<CacheSettings> {
        match c.choice("CACHE_TYPE", &self.cache_type, CACHE_TYPES)? {
            CacheType::None => Some(CacheSettings::None),
            CacheType::Memory => Some(CacheSettings::Memory),
            CacheType::Redis => crate::backends::redis::options::settings(c, self)
                .map(|redis| CacheSettings::Redis(Box::new(redis))),
            CacheType::RedisSentinel => crate::backends::redis::options::sentinel(c, self)
                .map(|s| CacheSettings::RedisSentinel(Box::new(s))),
            CacheType::RedisCluster => crate::backends::redis::options::cluster(c, self)
                .map(|s| CacheSettings::RedisCluster(Box::new(s))),
        }
    }

    /// `WAIT_FOR`'s entries and their shared policy (`WAIT_FOR_*`: a fixed
    /// interval), each entry's own settings (`WAIT_FOR_<NAME>_*`) applied.
    fn wait_for(&self, c: &mut Checker) -> (Option<Vec<WaitFor>>, Option<RetryPolicy>) {
        let max = c.retries("WAIT_FOR_MAX_RETRIES", &self.wait_for_max_retries);
        let interval = c.millis(
            "WAIT_FOR_RETRY_INTERVAL_MS",
            &self.wait_for_retry_interval_ms,
        );
        let timeout = c.millis(
            "WAIT_FOR_CONNECT_TIMEOUT_MS",
            &self.wait_for_connect_timeout_ms,
        );
        let shared = max
            .zip(interval)
            .zip(timeout)
            .map(|((max, interval), timeout)| RetryPolicy::fixed(max, interval, timeout));
        let fallback =
            RetryPolicy::fixed(3, Duration::from_millis(2000), Duration::from_millis(5000));
        let entries = c.wait_for(
            self.wait_for.as_deref(),
            self.wait_for_optional.as_deref(),
            shared.unwrap_or(fallback),
        );
        let (mut entries, all_good) = entries;
        {
            // Checked even when an entry is bad, so that one run names
            // every problem; a variable naming a bad entry is not one more.
            let list = &mut entries;
            if shared.is_some() {
                // The back-off an entry may choose starts from the database's
                // defaults (the shared policy is a fixed interval).
                let db_default = |var: &str| {
                    documented_settings()
                        .into_iter()
                        .find(|(v, _)| v == var)
                        .map(|(_, default)| default)
                        .unwrap_or_default()
                };
                let shared_raw = RetryFields {
                    max_retries: self.wait_for_max_retries.clone(),
                    interval: self.wait_for_retry_interval_ms.clone(),
                    backoff: db_default(DB_RETRY.backoff),
                    multiplier: db_default(DB_RETRY.multiplier),
                    max_interval: db_default(DB_RETRY.max_interval),
                    jitter: db_default(DB_RETRY.jitter),
                    timeout: self.wait_for_connect_timeout_ms.clone(),
                    startup_timeout: db_default(DB_RETRY.startup_timeout),
                };
                let named: Vec<&str> = self
                    .wait_for
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|entry| Some(entry.split_once('=')?.0.trim()))
                    .collect();
                c.per_entry(list, &named, &self.wait_for_entries, &shared_raw);
            }
        }
        (all_good.then_some(entries), shared)
    }

    fn http(&self, c: &mut Checker) -> Option<HttpSettings> {
        let host = c.host(&self.host);
        let port = c.number("PORT", &self.port, 0, u64::from(u16::MAX));
        Some(HttpSettings {
            host: host?,
            port: u16::try_from(port?).unwrap_or(u16::MAX),
        })
    }

    fn shutdown(&self, c: &mut Checker) -> Option<ShutdownSettings> {
        let delay = c.millis_from("SHUTDOWN_DELAY_MS", &self.shutdown_delay_ms, 0);
        let timeout = c.millis_from("SHUTDOWN_TIMEOUT_MS", &self.shutdown_timeout_ms, 0);
        Some(ShutdownSettings {
            delay: delay?,
            timeout: timeout?,
        })
    }

    fn log(&self, c: &mut Checker) -> Option<LogSettings> {
        let level = c.choice("LOG_LEVEL", &self.log_level, LEVELS);
        let format = c.choice("LOG_FORMAT", &self.log_format, FORMATS);
        Some(LogSettings {
            level: level?,
            format: format?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheType {
    None,
    Memory,
    Redis,
    RedisSentinel,
    RedisCluster,
}

const CACHE_TYPES: &[(&str, CacheType)] = &[
    ("memory", CacheType::Memory),
    ("redis", CacheType::Redis),
    ("redis-sentinel", CacheType::RedisSentinel),
    ("redis-cluster", CacheType::RedisCluster),
    ("none", CacheType::None),
];

const LEVELS: &[(&str, LevelFilter)] = &[
    ("error", LevelFilter::Error),
    ("warn", LevelFilter::Warn),
    ("info", LevelFilter::Info),
    ("debug", LevelFilter::Debug),
    ("trace", LevelFilter::Trace),
];

pub(crate) const BOOLEANS: &[(&str, bool)] = &[("false", false), ("true", true)];

const FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];

impl Settings {
    /// Settings from the process environment alone (no command line, no
    /// `.env`): for applications that embed readygate.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let cli =
            Cli::parse_args(["readygate"]).map_err(|e| ConfigError::CommandLine(e.to_string()))?;
        cli.settings.validate()
    }
}

#[cfg(test)]
pub(crate) mod tests;
