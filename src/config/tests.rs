//! The settings' unit tests: every rule of validation, by variable.

use super::*;
use crate::backends::mysql::MysqlOptions;

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
fn mysql_urls() {
    for (ok, backend) in [
        ("mysql://app:pw@db:3307/app", "mysql"),
        ("MariaDB://db", "mariadb"),
        ("mariadb://app@db/app?stmt_cache_size=0", "mariadb"),
    ] {
        let s = raw(&["--database-url", ok]).validate().unwrap();
        assert_eq!(s.database.url.backend(), backend, "{ok}");
        let DatabaseUrl::Mysql(MysqlOptions { opts, .. }) = &s.database.url else {
            panic!("{ok} is not MySQL")
        };
        // readygate connects where the URL says, not to a local socket
        // the server names.
        assert!(!opts.prefer_socket(), "{ok}");
    }
    let s = raw(&["--database-url", "mysql://app:p%40ss@db:3307/app"])
        .validate()
        .unwrap();
    let DatabaseUrl::Mysql(MysqlOptions { opts, display, .. }) = &s.database.url else {
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
    let DatabaseUrl::Mysql(MysqlOptions { opts, .. }) = &prefer.database.url else {
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
        let DatabaseUrl::Mysql(MysqlOptions { opts, .. }) = s.database.url else {
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
