//! The settings' unit tests: every rule of validation, by variable.

use super::*;

pub(crate) fn raw(args: &[&str]) -> RawSettings {
    let mut argv = vec!["readygate"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().settings
}

pub(crate) fn problems(args: &[&str]) -> Vec<Problem> {
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
        if let (Some(long), Some(default)) = (arg.get_long(), arg.get_default_values().first()) {
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
            "REDIS_SENTINEL_NODES",
            "REDIS_SENTINEL_MASTER",
            "REDIS_SENTINEL_PASSWORD",
            "REDIS_SENTINEL_PASSWORD_FILE",
            "REDIS_CLUSTER_NODES",
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

/// A throwaway CA certificate and its key, as PEM files.
pub(crate) fn pem_files() -> (tempfile::TempDir, String, String) {
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
fn documented_settings_list_every_variable_with_its_default() {
    let s = documented_settings();
    assert_eq!(s.len(), 33);
    assert!(s.contains(&("DB_MAX_RETRIES".into(), "3".into())));
    assert!(s.contains(&("REDIS_RETRY_INTERVAL_MS".into(), "2000".into())));
}

#[test]
fn a_control_character_never_shows_a_password() {
    // Found by the fuzz target `settings`: a value with a control character
    // was shown whole unless its variable ended in `_URL`.
    let text = |p: Vec<Problem>| p.iter().map(ToString::to_string).collect::<String>();
    let listed = text(problems(&[
        "--wait-for",
        "auth=https://svc:w4itpass@auth/he\u{1}alth",
    ]));
    assert!(listed.contains("WAIT_FOR"), "{listed}");
    assert!(!listed.contains("w4itpass"), "{listed}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, "postgres://app:f1lepass@db/a\u{1}pp\n").unwrap();
    let from_file = text(problems(&["--database-url-file", file.to_str().unwrap()]));
    assert!(from_file.contains("DATABASE_URL_FILE"), "{from_file}");
    assert!(!from_file.contains("f1lepass"), "{from_file}");
}

/// The watched files of a backend's options, as (variable, what, path).
pub(crate) fn watched(files: &[crate::secrets::Source]) -> Vec<(&str, &'static str, String)> {
    files
        .iter()
        .map(|s| (s.variable.as_str(), s.what, s.path.display().to_string()))
        .collect()
}
