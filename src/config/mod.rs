//! Settings: command line, then process environment, then `.env`, then
//! defaults (clap reads the environment; dotenvy fills it from `.env` without
//! overriding what the process already has). Every value is read as text and
//! validated here, so that one run reports every bad variable at once.

mod check;
mod retry;
mod urls;
mod wait_for;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use log::LevelFilter;

use self::check::Checker;
pub use self::check::Problem;
use self::retry::{DB_RETRY, REDIS_RETRY, RetryFields};
pub use self::urls::{DatabaseUrl, PostgresTls};
pub use self::wait_for::{WaitFor, WaitTarget, valid_name};
use crate::redact::{redact_url, register_url_secrets};
use crate::retry::RetryPolicy;
use crate::tls::{PemError, PemFile, RedisTls, load_certs, load_key};

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

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Check every dependency with the configured retry settings, then exit:
    /// 0 when all are ready, 69 when one is not. Serves no HTTP (for init
    /// containers and compose health checks).
    Check,
}

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
    /// Cache: memory (in-process), redis, or none
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
    /// More dependencies to wait for: name=tcp://host:port or name=http(s)://host[:port][/path] (up on a 2xx answer), comma-separated
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
}

#[derive(Clone)]
pub struct RedisSettings {
    /// The URL as configured (with its password, for the client only).
    pub url: String,
    pub retry: RetryPolicy,
    /// `Some` for `rediss://`.
    pub tls: Option<RedisTls>,
    /// `CACHE_REQUIRED`: whether start-up and `/ready` wait for Redis.
    pub required: bool,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("retry", &self.retry)
            .field("tls", &self.tls)
            .finish()
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
/// The README, `.env.example` and the Helm chart are held to this list.
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
/// the Redis TLS files), in `--help` order. The README lists them as
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
        let wait_for = c.wait_for(self.wait_for.as_deref(), self.wait_for_optional.as_deref());
        let wait_retry = self.wait_retry(&mut c);
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
        let url = c
            .secret_or_file(
                ("DATABASE_URL", &self.database_url, self.given.database_url),
                ("DATABASE_URL_FILE", self.database_url_file.as_deref()),
            )
            .and_then(|(var, value)| c.database_url(var, &value));
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
            CacheType::Redis => {
                let url = c
                    .secret_or_file(
                        ("REDIS_URL", &self.redis_url, self.given.redis_url),
                        ("REDIS_URL_FILE", self.redis_url_file.as_deref()),
                    )
                    .and_then(|(var, value)| c.redis_url(var, &value));
                let tls = self.redis_tls(c);
                let required = c.choice("CACHE_REQUIRED", &self.cache_required, BOOLEANS);
                let retry = c.retry_policy(
                    &REDIS_RETRY,
                    &RetryFields {
                        max_retries: &self.redis_max_retries,
                        interval: &self.redis_retry_interval_ms,
                        backoff: &self.redis_retry_backoff,
                        multiplier: &self.redis_retry_multiplier,
                        max_interval: &self.redis_retry_max_interval_ms,
                        jitter: &self.redis_retry_jitter,
                        timeout: &self.redis_connect_timeout_ms,
                        startup_timeout: &self.redis_startup_timeout_ms,
                    },
                );
                let ((url, rediss), tls, required) = (url?, tls?, required?);
                let tls = match (rediss, tls) {
                    (true, RedisTlsSettings(mut tls)) => {
                        // `#insecure` in the URL itself is just as insecure.
                        tls.insecure |= url.ends_with("#insecure");
                        Some(tls)
                    }
                    (false, tls) if tls.is_configured() => {
                        for (var, value) in self.redis_tls_values() {
                            if value.is_some_and(|v| !v.trim().is_empty() && v.trim() != "false") {
                                c.fail(
                                    var,
                                    value.unwrap_or_default(),
                                    "is set, but REDIS_URL is redis:// (no TLS)",
                                    "rediss://... to use TLS, or unset it",
                                );
                            }
                        }
                        return None;
                    }
                    (false, _) => None,
                };
                Some(CacheSettings::Redis(Box::new(RedisSettings {
                    url: with_insecure_fragment(url, tls.as_ref()),
                    retry: retry?,
                    tls,
                    required,
                })))
            }
        }
    }

    /// The Redis TLS variables and their values as given.
    fn redis_tls_values(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("REDIS_TLS_CA_CERT", self.redis_tls_ca_cert.as_deref()),
            (
                "REDIS_TLS_CLIENT_CERT",
                self.redis_tls_client_cert.as_deref(),
            ),
            ("REDIS_TLS_CLIENT_KEY", self.redis_tls_client_key.as_deref()),
            ("REDIS_TLS_INSECURE", Some(self.redis_tls_insecure.as_str())),
        ]
    }

    /// The Redis TLS settings, their files read and parsed; used with
    /// `rediss://` only (see [`RawSettings::cache`]).
    fn redis_tls(&self, c: &mut Checker) -> Option<RedisTlsSettings> {
        let insecure = c.choice("REDIS_TLS_INSECURE", &self.redis_tls_insecure, BOOLEANS);
        let pem = |c: &mut Checker, var: &'static str, raw: Option<&str>, key: bool| {
            let raw = raw?;
            let path = c.present(var, raw, "a PEM file")?;
            let checked = if key {
                load_key(Path::new(path)).map(drop)
            } else {
                load_certs(Path::new(path)).map(drop)
            };
            match checked.and_then(|()| {
                std::fs::read(path).map_err(|source| PemError::Read {
                    path: path.into(),
                    source,
                })
            }) {
                Ok(pem) => Some(Some(PemFile {
                    path: PathBuf::from(path),
                    pem,
                })),
                Err(e) => {
                    c.fail(var, path, format!("cannot be used: {e}"), "a PEM file");
                    None
                }
            }
        };
        let ca = pem(
            c,
            "REDIS_TLS_CA_CERT",
            self.redis_tls_ca_cert.as_deref(),
            false,
        );
        let cert = pem(
            c,
            "REDIS_TLS_CLIENT_CERT",
            self.redis_tls_client_cert.as_deref(),
            false,
        );
        let key = pem(
            c,
            "REDIS_TLS_CLIENT_KEY",
            self.redis_tls_client_key.as_deref(),
            true,
        );
        let (ca, cert, key) = (
            ca.unwrap_or_default(),
            cert.unwrap_or_default(),
            key.unwrap_or_default(),
        );
        let client = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            (cert, _) => {
                let (set, missing) = if cert.is_some() {
                    ("REDIS_TLS_CLIENT_CERT", "REDIS_TLS_CLIENT_KEY")
                } else {
                    ("REDIS_TLS_CLIENT_KEY", "REDIS_TLS_CLIENT_CERT")
                };
                c.fail(
                    set,
                    "",
                    format!("is set without {missing}"),
                    "both, or neither",
                );
                return None;
            }
        };
        Some(RedisTlsSettings(RedisTls {
            ca,
            client,
            insecure: insecure?,
        }))
    }

    /// `WAIT_FOR_*`: one fixed-interval policy for every entry.
    fn wait_retry(&self, c: &mut Checker) -> Option<RetryPolicy> {
        let max = c.retries("WAIT_FOR_MAX_RETRIES", &self.wait_for_max_retries);
        let interval = c.millis(
            "WAIT_FOR_RETRY_INTERVAL_MS",
            &self.wait_for_retry_interval_ms,
        );
        let timeout = c.millis(
            "WAIT_FOR_CONNECT_TIMEOUT_MS",
            &self.wait_for_connect_timeout_ms,
        );
        Some(RetryPolicy::fixed(max?, interval?, timeout?))
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
}

const CACHE_TYPES: &[(&str, CacheType)] = &[
    ("memory", CacheType::Memory),
    ("redis", CacheType::Redis),
    ("none", CacheType::None),
];

const LEVELS: &[(&str, LevelFilter)] = &[
    ("error", LevelFilter::Error),
    ("warn", LevelFilter::Warn),
    ("info", LevelFilter::Info),
    ("debug", LevelFilter::Debug),
    ("trace", LevelFilter::Trace),
];

const BOOLEANS: &[(&str, bool)] = &[("false", false), ("true", true)];

/// The Redis TLS settings before the URL's scheme is known.
struct RedisTlsSettings(RedisTls);

impl RedisTlsSettings {
    fn is_configured(&self) -> bool {
        let t = &self.0;
        t.ca.is_some() || t.client.is_some() || t.insecure
    }
}

/// `REDIS_TLS_INSECURE=true` is the redis crate's `#insecure` fragment; a
/// URL that already has it is insecure too ([`RedisTls::insecure`]).
fn with_insecure_fragment(url: String, tls: Option<&RedisTls>) -> String {
    match tls {
        Some(tls) if tls.insecure && !url.ends_with("#insecure") => format!("{url}#insecure"),
        _ => url,
    }
}

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
mod tests {
    use super::*;

    fn raw(args: &[&str]) -> RawSettings {
        let mut argv = vec!["readygate"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    fn problems(args: &[&str]) -> Vec<Problem> {
        match raw(args).validate() {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_match_the_documented_table() {
        // Pass every default explicitly, so the environment of whoever runs
        // the tests cannot change the outcome.
        let mut args = Vec::new();
        for arg in Cli::command().get_arguments() {
            if let (Some(long), Some(default)) = (arg.get_long(), arg.get_default_values().first())
            {
                args.push(format!("--{long}"));
                args.push(default.to_str().unwrap().to_owned());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = raw(&args).validate().unwrap();
        assert_eq!(s.database.retry.max_attempts, 3);
        assert_eq!(s.database.retry.interval, Duration::from_millis(2000));
        assert_eq!(
            s.database.retry.attempt_timeout,
            Duration::from_millis(5000)
        );
        assert_eq!(s.database.pool_size, 10);
        assert_eq!(s.database.pool_timeout, Duration::from_millis(5000));
        assert_eq!(s.database.url.display(), "sqlite://readygate.db");
        assert!(matches!(s.cache, CacheSettings::Memory));
        assert_eq!(
            s.http,
            HttpSettings {
                host: "127.0.0.1".into(),
                port: 4444
            }
        );
        assert_eq!(s.health_check_interval, Duration::from_millis(5000));
        assert_eq!(
            s.shutdown,
            ShutdownSettings {
                delay: Duration::ZERO,
                timeout: Duration::from_millis(10_000)
            }
        );
        assert_eq!(s.log, LogSettings::default());
        let redis = raw(&["--cache-type", "redis"]).validate().unwrap();
        let CacheSettings::Redis(r) = redis.cache else {
            panic!("not redis")
        };
        assert_eq!(r.retry.max_attempts, 3);
        assert_eq!(r.retry.interval, Duration::from_millis(2000));
        assert_eq!(r.retry.attempt_timeout, Duration::from_millis(5000));
    }

    #[test]
    fn numbers_are_classified() {
        let cases = [
            ("abc", "is not a number"),
            ("-3", "is negative"),
            ("1.5", "is not a whole number"),
            ("99999999999999999999999", "is too large"),
            ("0", "is below 1"),
            ("1000001", "is above 1000000"),
            ("", "is empty"),
            ("  ", "is empty"),
        ];
        for (value, reason) in cases {
            let p = problems(&[&format!("--db-max-retries={value}")]);
            assert_eq!(p.len(), 1, "{value:?}: {p:?}");
            assert_eq!(p[0].variable, "DB_MAX_RETRIES");
            assert!(
                p[0].reason.starts_with(reason),
                "{value:?}: {}",
                p[0].reason
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let s = raw(&["--db-max-retries", " 7 ", "--cache-type", "REDIS"])
            .validate()
            .unwrap();
        assert_eq!(s.database.retry.max_attempts, 7);
        assert!(matches!(s.cache, CacheSettings::Redis(_)));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(&[
            "--port",
            "70000",
            "--db-pool-size",
            "0",
            "--log-level",
            "loud",
        ]);
        let vars: Vec<_> = p.iter().map(|p| p.variable).collect();
        assert_eq!(vars, ["DB_POOL_SIZE", "PORT", "LOG_LEVEL"]);
    }

    #[test]
    fn redis_settings_are_checked_only_for_the_redis_cache() {
        let bad = [
            "--redis-url",
            "memcached://cache",
            "--redis-max-retries",
            "x",
        ];
        let mut args = vec!["--cache-type", "memory"];
        args.extend_from_slice(&bad);
        assert!(raw(&args).validate().is_ok());
        let mut args = vec!["--cache-type", "redis"];
        args.extend_from_slice(&bad);
        let vars: Vec<_> = problems(&args).iter().map(|p| p.variable).collect();
        assert_eq!(vars, ["REDIS_URL", "REDIS_MAX_RETRIES"]);
    }

    #[test]
    fn urls_are_shown_without_password() {
        let p = problems(&["--database-url", "mysql://app:hunter22@db/app?tls=1"]);
        assert_eq!(p[0].shown, "mysql://app:***@db/app?tls=1");
        let message = ConfigError::Invalid(p).to_string();
        assert!(!message.contains("hunter22"), "{message}");
    }

    #[test]
    fn database_urls() {
        for ok in [
            "postgres://u:p@h:5432/d",
            "postgresql://h/d",
            "sqlite://x.db",
            "sqlite:///var/lib/x.db",
        ] {
            assert!(raw(&["--database-url", ok]).validate().is_ok(), "{ok}");
        }
        for bad in [
            "postgres://h:99999/d",
            "postgres:///d",
            "localhost:5432",
            "http://h",
            "sqlite://",
        ] {
            let p = problems(&["--database-url", bad]);
            assert_eq!(p[0].variable, "DATABASE_URL", "{bad}");
        }
    }

    #[test]
    fn mysql_urls() {
        for (ok, backend) in [
            ("mysql://app:pw@db:3307/app", "mysql"),
            ("MariaDB://db", "mariadb"),
            ("mariadb://app@db/app?stmt_cache_size=0", "mariadb"),
        ] {
            let s = raw(&["--database-url", ok]).validate().unwrap();
            assert_eq!(s.database.url.backend(), backend, "{ok}");
            let DatabaseUrl::Mysql { opts, .. } = &s.database.url else {
                panic!("{ok} is not MySQL")
            };
            // readygate connects where the URL says, not to a local socket
            // the server names.
            assert!(!opts.prefer_socket(), "{ok}");
        }
        let s = raw(&["--database-url", "mysql://app:p%40ss@db:3307/app"])
            .validate()
            .unwrap();
        let DatabaseUrl::Mysql { opts, display, .. } = &s.database.url else {
            panic!("not MySQL")
        };
        assert_eq!(
            (opts.user(), opts.pass(), opts.db_name(), opts.tcp_port()),
            (Some("app"), Some("p@ss"), Some("app"), 3307)
        );
        assert_eq!(display, "mysql://app:***@db:3307/app");
        let prefer = raw(&["--database-url", "mysql://db/app?prefer_socket=true"])
            .validate()
            .unwrap();
        let DatabaseUrl::Mysql { opts, .. } = &prefer.database.url else {
            panic!("not MySQL")
        };
        assert!(opts.prefer_socket(), "the URL may ask for it");

        for (bad, reason) in [
            (
                "mysql://db/app?ssl-mode=PREFERRED",
                "cannot fall back to plain",
            ),
            (
                "mysql://db/app?require_ssl=true",
                "TLS is set with ssl-mode, ssl-ca, ssl-cert and ssl-key",
            ),
            (
                "mariadb://db/app?sslca=/ca.pem",
                "TLS is set with ssl-mode, ssl-ca, ssl-cert and ssl-key",
            ),
            (
                "mysql://db/app?pool_max=50",
                "the pool's size is DB_POOL_SIZE",
            ),
            (
                "mysql://db/app?colour=blue",
                "Unknown connection URL parameter",
            ),
            ("mysql:///app", "names no host"),
            ("mysql://db:99999/app", "is not a valid URL"),
        ] {
            let p = problems(&["--database-url", bad]);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].reason.contains(reason), "{bad}: {}", p[0].reason);
        }
    }

    #[test]
    fn redis_urls() {
        for ok in [
            "redis://h",
            "redis://:pw@h:6380/2",
            "redis://user:pw@h/0",
            "rediss://h:6380/0",
        ] {
            assert!(
                raw(&["--cache-type", "redis", "--redis-url", ok])
                    .validate()
                    .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "redis://h:70000",
            "redis://h/abc",
            "redis://",
            "memcached://h",
            "h:6379",
        ] {
            let p = problems(&["--cache-type", "redis", "--redis-url", bad]);
            assert_eq!(p[0].variable, "REDIS_URL", "{bad}");
        }
    }

    #[test]
    fn hosts() {
        for ok in ["0.0.0.0", "::", "localhost", "gateway-1.internal"] {
            assert!(raw(&["--host", ok]).validate().is_ok(), "{ok}");
        }
        for bad in ["bad host", "a..b", "-", "x/y"] {
            let p = problems(&["--host", bad]);
            assert_eq!(p[0].variable, "HOST", "{bad}");
        }
    }

    #[test]
    fn optional_settings_are_the_ones_without_a_default() {
        assert_eq!(
            optional_settings(),
            [
                "DATABASE_URL_FILE",
                "REDIS_URL_FILE",
                "REDIS_TLS_CA_CERT",
                "REDIS_TLS_CLIENT_CERT",
                "REDIS_TLS_CLIENT_KEY",
                "WAIT_FOR",
                "WAIT_FOR_OPTIONAL"
            ]
        );
    }

    #[test]
    fn settings_print_without_a_password() {
        let s = raw(&[
            "--database-url",
            "postgres://app:hunter22@db/app",
            "--cache-type",
            "redis",
            "--redis-url",
            "redis://:s3cretpw@cache:6379/0",
            "--wait-for",
            "auth=https://svc:w4itpass@auth/health",
        ])
        .validate()
        .unwrap();
        let shown = format!("{s:?}");
        for secret in ["hunter22", "s3cretpw", "w4itpass"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // Shown, with `***` for the password, not left out.
        for url in [
            "postgres://app:***@db/app",
            "redis://:***@cache:6379/0",
            "https://svc:***@auth/health",
        ] {
            assert!(shown.contains(url), "{url} missing: {shown}");
        }
    }

    #[test]
    fn every_bad_value_is_in_one_message_in_order() {
        let e = raw(&["--db-max-retries", "many", "--port", "99999"])
            .validate()
            .unwrap_err()
            .to_string();
        let first = e.find("DB_MAX_RETRIES=\"many\" is not a number").unwrap();
        let second = e.find("); PORT=\"99999\" ").unwrap();
        assert!(
            e.starts_with("invalid configuration, nothing was started: "),
            "{e}"
        );
        assert!(first < second, "{e}");
    }

    #[test]
    fn the_log_settings_fall_back_where_invalid_and_hold_where_valid() {
        let both = raw(&["--log-level", "debug", "--log-format", "json"]);
        assert_eq!(
            both.log_settings_or_default(),
            LogSettings {
                level: LevelFilter::Debug,
                format: LogFormat::Json
            }
        );
        let bad = raw(&["--log-level", "loud", "--log-format", "json"]);
        assert_eq!(
            bad.log_settings_or_default(),
            LogSettings {
                level: LogSettings::default().level,
                format: LogFormat::Json
            }
        );
    }

    #[test]
    fn redis_tls_insecure_becomes_the_urls_fragment_once() {
        let url = |args: &[&str]| match raw(args).validate().unwrap().cache {
            CacheSettings::Redis(r) => r.url,
            _ => panic!("not Redis"),
        };
        let base = ["--cache-type", "redis", "--redis-url"];
        let with = |u: &'static str, insecure: &'static str| {
            let mut args = base.to_vec();
            args.extend([u, "--redis-tls-insecure", insecure]);
            url(&args)
        };
        assert_eq!(
            with("rediss://c:6380/0", "true"),
            "rediss://c:6380/0#insecure"
        );
        assert_eq!(
            with("rediss://c:6380/0#insecure", "true"),
            "rediss://c:6380/0#insecure"
        );
        assert_eq!(with("rediss://c:6380/0", "false"), "rediss://c:6380/0");
        assert_eq!(
            with("rediss://c:6380/0#insecure", "false"),
            "rediss://c:6380/0#insecure",
            "the URL's own fragment stays"
        );
        let s = raw(&[
            "--cache-type",
            "redis",
            "--redis-url",
            "rediss://c:6380/0#insecure",
        ])
        .validate()
        .unwrap();
        let CacheSettings::Redis(r) = s.cache else {
            panic!("not Redis")
        };
        assert!(
            r.tls.is_some_and(|tls| tls.insecure),
            "#insecure in the URL is as insecure as REDIS_TLS_INSECURE=true"
        );
    }

    /// A throwaway CA certificate and its key, as PEM files.
    fn pem_files() -> (tempfile::TempDir, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let show = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
        (dir, show(cert_path), show(key_path))
    }

    #[test]
    fn mysql_tls_parameters_reach_the_client() {
        let (_dir, cert, key) = pem_files();
        let ssl_of = |query: &str| {
            let url = format!("mysql://app@db/app?{query}");
            let s = raw(&["--database-url", &url]).validate().unwrap();
            let DatabaseUrl::Mysql { opts, .. } = s.database.url else {
                panic!("not mysql: {:?}", s.database.url)
            };
            opts.ssl_opts().cloned().expect("TLS on")
        };
        let ssl = ssl_of(&format!(
            "ssl-mode=VERIFY_IDENTITY&ssl-ca={cert}&ssl-cert={cert}&ssl-key={key}"
        ));
        assert!(ssl.client_identity().is_some());
        assert_eq!(ssl.root_certs().len(), 1);

        // What each mode checks, as the mysql client: (any certificate
        // accepted, host name unchecked).
        for (query, checks) in [
            (
                format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={cert}"),
                (false, false),
            ),
            (format!("ssl-mode=VERIFY_CA&ssl-ca={cert}"), (false, true)),
            (format!("ssl-mode=REQUIRED&ssl-ca={cert}"), (false, true)),
            ("ssl-mode=REQUIRED".to_owned(), (true, true)),
        ] {
            let ssl = ssl_of(&query);
            let got = (ssl.accept_invalid_certs(), ssl.skip_domain_validation());
            assert_eq!(got, checks, "{query}");
        }

        // Any one file without ssl-mode, or half a client certificate, is
        // refused rather than ignored.
        for (query, reason) in [
            (format!("ssl-ca={cert}"), "has TLS files but no ssl-mode"),
            (format!("ssl-cert={cert}"), "has TLS files but no ssl-mode"),
            (format!("ssl-key={key}"), "has TLS files but no ssl-mode"),
            (
                format!("ssl-mode=REQUIRED&ssl-cert={cert}"),
                "has only one of ssl-cert and ssl-key",
            ),
            (
                format!("ssl-mode=REQUIRED&ssl-key={key}"),
                "has only one of ssl-cert and ssl-key",
            ),
        ] {
            let p = problems(&["--database-url", &format!("mysql://db/app?{query}")]);
            assert_eq!(p.len(), 1, "{query}: {p:?}");
            assert!(p[0].reason.contains(reason), "{query}: {p:?}");
        }
    }

    #[test]
    fn redis_tls_files_with_a_plain_url_are_refused_each_by_name() {
        let (_dir, cert, key) = pem_files();
        let plain = ["--cache-type", "redis", "--redis-url", "redis://c:6379/0"];
        let refused = |extra: &[&str]| -> Vec<&'static str> {
            let mut args = plain.to_vec();
            args.extend_from_slice(extra);
            let p = problems(&args);
            assert!(
                p.iter()
                    .all(|p| p.reason.contains("REDIS_URL is redis:// (no TLS)")),
                "{p:?}"
            );
            p.iter().map(|p| p.variable).collect()
        };
        assert_eq!(
            refused(&["--redis-tls-ca-cert", &cert]),
            ["REDIS_TLS_CA_CERT"]
        );
        assert_eq!(
            refused(&[
                "--redis-tls-client-cert",
                &cert,
                "--redis-tls-client-key",
                &key
            ]),
            ["REDIS_TLS_CLIENT_CERT", "REDIS_TLS_CLIENT_KEY"]
        );
    }

    #[test]
    fn redis_tls_settings_with_a_plain_url_are_refused_by_name() {
        let p = problems(&[
            "--cache-type",
            "redis",
            "--redis-url",
            "redis://c:6379/0",
            "--redis-tls-insecure",
            "true",
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].variable, "REDIS_TLS_INSECURE");
        assert!(
            p[0].reason.contains("REDIS_URL is redis:// (no TLS)"),
            "{p:?}"
        );
        // Unset or false: nothing to refuse.
        assert!(
            raw(&["--cache-type", "redis", "--redis-url", "redis://c:6379/0"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn documented_settings_list_every_variable_with_its_default() {
        let s = documented_settings();
        assert_eq!(s.len(), 33);
        assert!(s.contains(&("DB_MAX_RETRIES".into(), "3".into())));
        assert!(s.contains(&("REDIS_RETRY_INTERVAL_MS".into(), "2000".into())));
    }
}
