//! Settings: command line, then process environment, then `.env`, then
//! defaults (clap reads the environment; dotenvy fills it from `.env` without
//! overriding what the process already has). Every value is read as text and
//! validated here, so that one run reports every bad variable at once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use log::LevelFilter;

use crate::redact::{redact_url, register_url_secrets};
use crate::retry::RetryPolicy;

/// Longest accepted interval or timeout: one day.
const MAX_MILLIS: u64 = 86_400_000;
/// Most accepted connection attempts.
const MAX_RETRIES: u64 = 1_000_000;
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

/// Settings as written, before validation.
#[derive(clap::Args, Debug, Clone)]
pub struct RawSettings {
    /// Database: postgres://user:password@host:port/db (or postgresql://), or sqlite://PATH
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://readygate.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Connections in the database pool (>= 1)
    #[arg(long, env = "DB_POOL_SIZE", default_value = "10")]
    pub db_pool_size: String,
    /// Database connection attempts at start-up before giving up (>= 1)
    #[arg(long, env = "DB_MAX_RETRIES", default_value = "3")]
    pub db_max_retries: String,
    /// Wait between database attempts, in ms (>= 1)
    #[arg(long, env = "DB_RETRY_INTERVAL_MS", default_value = "2000")]
    pub db_retry_interval_ms: String,
    /// Limit for one database attempt (connect + SELECT 1), in ms (>= 1)
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value = "5000")]
    pub db_connect_timeout_ms: String,
    /// Cache: memory (in-process), redis, or none
    #[arg(long, env = "CACHE_TYPE", default_value = "memory")]
    pub cache_type: String,
    /// Redis: redis://[user:password@]host[:port][/db] (used when CACHE_TYPE=redis)
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://localhost:6379/0",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Redis connection attempts at start-up before giving up (>= 1)
    #[arg(long, env = "REDIS_MAX_RETRIES", default_value = "3")]
    pub redis_max_retries: String,
    /// Wait between Redis attempts, in ms (>= 1)
    #[arg(long, env = "REDIS_RETRY_INTERVAL_MS", default_value = "2000")]
    pub redis_retry_interval_ms: String,
    /// Limit for one Redis attempt (connect + PING), in ms (>= 1)
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_MS", default_value = "5000")]
    pub redis_connect_timeout_ms: String,
    /// Period of the dependency checks once started, in ms (>= 1)
    #[arg(long, env = "HEALTH_CHECK_INTERVAL_MS", default_value = "5000")]
    pub health_check_interval_ms: String,
    /// HTTP listen address: an IP address or a host name
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// HTTP listen port (0 picks a free port, printed when ready)
    #[arg(long, env = "PORT", default_value = "4444")]
    pub port: String,
    /// Log level: error, warn, info, debug, trace
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: text (human readable) or json (one object per line)
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub http: HttpSettings,
    /// Period of the runtime checks once a dependency is up.
    pub health_check_interval: Duration,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub pool_size: usize,
    pub retry: RetryPolicy,
}

#[derive(Clone)]
pub enum DatabaseUrl {
    Postgres {
        config: Box<tokio_postgres::Config>,
        /// The URL with its password hidden.
        display: String,
    },
    Sqlite {
        path: String,
    },
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
            DatabaseUrl::Postgres { display, .. } => display.clone(),
            DatabaseUrl::Sqlite { path } => format!("sqlite://{path}"),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres { .. } => "postgres",
            DatabaseUrl::Sqlite { .. } => "sqlite",
        }
    }
}

#[derive(Debug, Clone)]
pub enum CacheSettings {
    None,
    Memory,
    Redis(RedisSettings),
}

#[derive(Clone)]
pub struct RedisSettings {
    /// The URL as configured (with its password, for the client only).
    pub url: String,
    pub retry: RetryPolicy,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("retry", &self.retry)
            .finish()
    }
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

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    /// The value as it may be shown (URLs without password).
    pub shown: String,
    pub reason: String,
    pub accepted: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} {} (accepted: {})",
            self.variable, self.shown, self.reason, self.accepted
        )
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

/// Collects problems while each variable is checked.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(
        &mut self,
        variable: &'static str,
        shown: &str,
        reason: impl Into<String>,
        accepted: &str,
    ) {
        self.problems.push(Problem {
            variable,
            shown: shown.to_owned(),
            reason: reason.into(),
            accepted: accepted.to_owned(),
        });
    }

    /// The trimmed value, or a problem when it is empty.
    fn present<'a>(
        &mut self,
        variable: &'static str,
        raw: &'a str,
        accepted: &str,
    ) -> Option<&'a str> {
        let value = raw.trim();
        if value.is_empty() {
            self.fail(
                variable,
                raw,
                "is empty (unset it to use the default)",
                accepted,
            );
            None
        } else {
            Some(value)
        }
    }

    fn number(&mut self, variable: &'static str, raw: &str, min: u64, max: u64) -> Option<u64> {
        let accepted = format!("a whole number from {min} to {max}");
        let value = self.present(variable, raw, &accepted)?;
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) if n < min => {
                self.fail(variable, value, format!("is below {min}"), &accepted);
                None
            }
            Ok(_) => {
                self.fail(variable, value, format!("is above {max}"), &accepted);
                None
            }
            Err(_) => {
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let reason = if digits(value) {
                    "is too large"
                } else if value.strip_prefix('-').is_some_and(digits) {
                    "is negative"
                } else if value.parse::<f64>().is_ok_and(f64::is_finite) {
                    "is not a whole number"
                } else {
                    "is not a number"
                };
                self.fail(variable, value, reason, &accepted);
                None
            }
        }
    }

    fn millis(&mut self, variable: &'static str, raw: &str) -> Option<Duration> {
        self.number(variable, raw, 1, MAX_MILLIS)
            .map(Duration::from_millis)
    }

    fn retries(&mut self, variable: &'static str, raw: &str) -> Option<u32> {
        self.number(variable, raw, 1, MAX_RETRIES)
            .and_then(|n| u32::try_from(n).ok())
    }

    fn choice<T: Copy>(
        &mut self,
        variable: &'static str,
        raw: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let accepted = choices
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        let value = self.present(variable, raw, &accepted)?;
        let found = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, v)| *v);
        if found.is_none() {
            self.fail(
                variable,
                value,
                "is not one of the accepted values",
                &accepted,
            );
        }
        found
    }

    /// A URL's value (trimmed), how it may be shown, and its lower-case
    /// scheme and the rest; a problem when it is empty or has no `://`.
    fn url<'a>(
        &mut self,
        variable: &'static str,
        raw: &'a str,
        accepted: &str,
    ) -> Option<(&'a str, String, String, &'a str)> {
        let value = self.present(variable, raw, accepted)?;
        let shown = redact_url(value);
        let Some((scheme, rest)) = value.split_once("://") else {
            self.fail(variable, &shown, "is not a URL", accepted);
            return None;
        };
        Some((value, shown, scheme.to_ascii_lowercase(), rest))
    }

    /// The parsed URL, which must name a host.
    fn url_with_host(
        &mut self,
        variable: &'static str,
        value: &str,
        shown: &str,
        accepted: &str,
    ) -> Option<url::Url> {
        match url::Url::parse(value) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Some(u),
            Ok(_) => {
                self.fail(variable, shown, "names no host", accepted);
                None
            }
            Err(e) => {
                self.fail(
                    variable,
                    shown,
                    format!("is not a valid URL ({e})"),
                    accepted,
                );
                None
            }
        }
    }

    fn unsupported_scheme(
        &mut self,
        variable: &'static str,
        shown: &str,
        scheme: &str,
        accepted: &str,
    ) {
        self.fail(
            variable,
            shown,
            format!("has an unsupported scheme {scheme:?}"),
            accepted,
        );
    }

    fn database_url(&mut self, raw: &str) -> Option<DatabaseUrl> {
        const VAR: &str = "DATABASE_URL";
        const ACCEPTED: &str = "postgres://[user[:password]@]host[:port][/database], postgresql://..., or sqlite://PATH";
        let (value, shown, scheme, rest) = self.url(VAR, raw, ACCEPTED)?;
        match scheme.as_str() {
            "sqlite" if rest.is_empty() => {
                self.fail(VAR, &shown, "names no file", ACCEPTED);
                None
            }
            "sqlite" => Some(DatabaseUrl::Sqlite {
                path: rest.to_owned(),
            }),
            "postgres" | "postgresql" => {
                self.url_with_host(VAR, value, &shown, ACCEPTED)?;
                match tokio_postgres::Config::from_str(value) {
                    Ok(config) => Some(DatabaseUrl::Postgres {
                        config: Box::new(config),
                        display: shown,
                    }),
                    Err(e) => {
                        self.fail(
                            VAR,
                            &shown,
                            format!("is not a valid PostgreSQL URL ({e})"),
                            ACCEPTED,
                        );
                        None
                    }
                }
            }
            other => {
                self.unsupported_scheme(VAR, &shown, other, ACCEPTED);
                None
            }
        }
    }

    fn redis_url(&mut self, raw: &str) -> Option<String> {
        const VAR: &str = "REDIS_URL";
        const ACCEPTED: &str = "redis://[user[:password]@]host[:port][/db]";
        let (value, shown, scheme, _) = self.url(VAR, raw, ACCEPTED)?;
        match scheme.as_str() {
            "redis" => {}
            "rediss" => {
                self.fail(
                    VAR,
                    &shown,
                    "uses TLS (rediss://), which readygate does not support yet",
                    ACCEPTED,
                );
                return None;
            }
            other => {
                self.unsupported_scheme(VAR, &shown, other, ACCEPTED);
                return None;
            }
        }
        let parsed = self.url_with_host(VAR, value, &shown, ACCEPTED)?;
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            self.fail(
                VAR,
                &shown,
                format!("names database {db:?}, which is not a number"),
                ACCEPTED,
            );
            return None;
        }
        if let Err(e) = redis::Client::open(value) {
            self.fail(
                VAR,
                &shown,
                format!("is not a valid Redis URL ({e})"),
                ACCEPTED,
            );
            return None;
        }
        Some(value.to_owned())
    }

    fn host(&mut self, raw: &str) -> Option<String> {
        const VAR: &str = "HOST";
        const ACCEPTED: &str = "an IP address (127.0.0.1, 0.0.0.0, ::) or a host name";
        let value = self.present(VAR, raw, ACCEPTED)?;
        if value.parse::<IpAddr>().is_ok() {
            return Some(value.to_owned());
        }
        let name_ok = value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if name_ok && value.len() <= 253 {
            Some(value.to_owned())
        } else {
            self.fail(
                VAR,
                value,
                "is neither an IP address nor a host name",
                ACCEPTED,
            );
            None
        }
    }
}

impl RawSettings {
    /// The log settings, falling back to defaults where they are invalid, so
    /// that the configuration error itself can be logged.
    pub fn log_settings_or_default(&self) -> LogSettings {
        let mut checker = Checker {
            problems: Vec::new(),
        };
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

        let mut c = Checker {
            problems: Vec::new(),
        };
        let database_url = c.database_url(&self.database_url);
        let pool_size = c.number("DB_POOL_SIZE", &self.db_pool_size, 1, MAX_POOL_SIZE);
        let db_retries = c.retries("DB_MAX_RETRIES", &self.db_max_retries);
        let db_interval = c.millis("DB_RETRY_INTERVAL_MS", &self.db_retry_interval_ms);
        let db_timeout = c.millis("DB_CONNECT_TIMEOUT_MS", &self.db_connect_timeout_ms);
        let cache_type = c.choice("CACHE_TYPE", &self.cache_type, CACHE_TYPES);
        let redis = if cache_type == Some(CacheType::Redis) {
            let url = c.redis_url(&self.redis_url);
            let retries = c.retries("REDIS_MAX_RETRIES", &self.redis_max_retries);
            let interval = c.millis("REDIS_RETRY_INTERVAL_MS", &self.redis_retry_interval_ms);
            let timeout = c.millis("REDIS_CONNECT_TIMEOUT_MS", &self.redis_connect_timeout_ms);
            Some((url, retries, interval, timeout))
        } else {
            None
        };
        let health = c.millis("HEALTH_CHECK_INTERVAL_MS", &self.health_check_interval_ms);
        let host = c.host(&self.host);
        let port = c.number("PORT", &self.port, 0, u64::from(u16::MAX));
        let level = c.choice("LOG_LEVEL", &self.log_level, LEVELS);
        let format = c.choice("LOG_FORMAT", &self.log_format, FORMATS);

        let cache = match (cache_type, redis) {
            (Some(CacheType::None), _) => Some(CacheSettings::None),
            (Some(CacheType::Memory), _) => Some(CacheSettings::Memory),
            (
                Some(CacheType::Redis),
                Some((Some(url), Some(max_attempts), Some(interval), Some(attempt_timeout))),
            ) => Some(CacheSettings::Redis(RedisSettings {
                url,
                retry: RetryPolicy {
                    max_attempts,
                    interval,
                    attempt_timeout,
                },
            })),
            _ => None,
        };

        match (
            database_url,
            pool_size,
            db_retries,
            db_interval,
            db_timeout,
            cache,
            health,
            host,
            port,
            level,
            format,
        ) {
            (
                Some(url),
                Some(pool_size),
                Some(max_attempts),
                Some(interval),
                Some(attempt_timeout),
                Some(cache),
                Some(health_check_interval),
                Some(host),
                Some(port),
                Some(level),
                Some(format),
            ) if c.problems.is_empty() => Ok(Settings {
                database: DatabaseSettings {
                    url,
                    pool_size: usize::try_from(pool_size).unwrap_or(usize::MAX),
                    retry: RetryPolicy {
                        max_attempts,
                        interval,
                        attempt_timeout,
                    },
                },
                cache,
                http: HttpSettings {
                    host,
                    port: u16::try_from(port).unwrap_or(u16::MAX),
                },
                health_check_interval,
                log: LogSettings { level, format },
            }),
            _ => Err(ConfigError::Invalid(c.problems)),
        }
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

const FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];

impl Settings {
    /// Settings from the process environment alone (no command line, no
    /// `.env`): for applications that embed readygate.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let cli = Cli::try_parse_from(["readygate"])
            .map_err(|e| ConfigError::CommandLine(e.to_string()))?;
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
        let bad = ["--redis-url", "rediss://cache", "--redis-max-retries", "x"];
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
        let p = problems(&["--database-url", "mysql://app:hunter22@db/app"]);
        assert_eq!(p[0].shown, "mysql://app:***@db/app");
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
    fn redis_urls() {
        for ok in ["redis://h", "redis://:pw@h:6380/2", "redis://user:pw@h/0"] {
            assert!(
                raw(&["--cache-type", "redis", "--redis-url", ok])
                    .validate()
                    .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "rediss://h",
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
    fn documented_settings_list_every_variable_with_its_default() {
        let s = documented_settings();
        assert_eq!(s.len(), 15);
        assert!(s.contains(&("DB_MAX_RETRIES".into(), "3".into())));
        assert!(s.contains(&("REDIS_RETRY_INTERVAL_MS".into(), "2000".into())));
    }
}
