//! Issue 25, "WAIT_FOR speaks the protocols, and checks what you expect":
//! `postgres://`, `mysql://`, `redis://`, `amqp://`, `nats://`, `mqtt://`
//! and `dns://` entries against the machine's real servers (read only: a
//! login, a `SELECT 1`, a `PING`, a handshake) and the tests' own (late,
//! down, with a password); HTTP expectations (status classes and lists, a
//! body regex, redirects not followed); per-entry policies; `readygate
//! check`; and exit 78 for what cannot be right.

use std::time::{Duration, Instant};

use crate::startup::lines_with;
use crate::support::{
    Gateway, HttpService, Mosquitto, Nats, Postgres, Redis, free_port, wait_until,
};

const SECOND: Duration = Duration::from_secs(1);

/// The machine's own services on their standard loopback ports (see
/// docs/testing.md): only logged into and asked, never changed.
const REAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REAL_MARIADB: &str = "mariadb://root@127.0.0.1:3306/test";
const REAL_REDIS: &str = "redis://127.0.0.1:6379/0";
const REAL_RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REAL_NATS: &str = "nats://127.0.0.1:4222";
const REAL_MOSQUITTO: &str = "mqtt://127.0.0.1:1883";

fn ready_json(gw: &Gateway) -> serde_json::Value {
    let (_, body) = gw.get("/ready").unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Every scheme, each against its real server.
fn every_scheme(http: &HttpService) -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("pg", REAL_POSTGRES.into(), "postgres"),
        ("maria", REAL_MARIADB.into(), "mariadb"),
        ("kv", REAL_REDIS.into(), "redis"),
        ("rabbit", REAL_RABBITMQ.into(), "amqp"),
        ("bus", REAL_NATS.into(), "nats"),
        ("mosquitto", REAL_MOSQUITTO.into(), "mqtt"),
        ("name", "dns://localhost".into(), "dns"),
        ("port", "tcp://127.0.0.1:5432".into(), "tcp"),
        ("web", http.url("/health"), "http"),
    ]
}

fn wait_for_value(entries: &[(&str, String, &str)]) -> String {
    entries
        .iter()
        .map(|(name, url, _)| format!("{name}={url}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn each_scheme_is_ready_against_its_real_server_and_stays_up_through_runtime_checks() {
    // Arrange
    let http = HttpService::start(200);
    let entries = every_scheme(&http);
    let gw = Gateway::builder()
        .env("WAIT_FOR", wait_for_value(&entries))
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();

    // Act
    let ready = gw.wait_for_status("/ready", 200, 20 * SECOND);

    // Assert: each is up, named by its scheme on /ready and in the metrics.
    assert!(ready, "{}", gw.output());
    let json = ready_json(&gw);
    let metrics = gw.get("/metrics").unwrap().1;
    for (name, _, backend) in &entries {
        let entry = &json["dependencies"][name];
        assert_eq!(entry["state"], "up", "{name}: {json}");
        assert_eq!(entry["backend"], *backend, "{name}: {json}");
        assert!(
            metrics.contains(&format!(
                "readygate_dependency_info{{dependency=\"{name}\",backend=\"{backend}\"}} 1"
            )),
            "{name}: {metrics}"
        );
    }
    // Runtime checks ask every server again (the HTTP service counts them)
    // and every entry stays up through at least five of them.
    let requests = http.requests();
    let checked = wait_until(10 * SECOND, Duration::from_millis(50), || {
        http.requests() >= requests + 5
    });
    assert!(checked, "checks did not run: {}", gw.output());
    let json = ready_json(&gw);
    for (name, _, _) in &entries {
        assert_eq!(json["dependencies"][name]["state"], "up", "{name}: {json}");
    }
    assert!(
        lines_with(&gw, "connection lost").is_empty(),
        "{}",
        gw.output()
    );
}

#[test]
fn readygate_check_covers_every_scheme() {
    // Arrange
    let http = HttpService::start(200);
    let entries = every_scheme(&http);

    // Act
    let gw = Gateway::builder()
        .args(&["check"])
        .env("WAIT_FOR", wait_for_value(&entries))
        .spawn();
    let code = gw.wait_exit(20 * SECOND);

    // Assert
    assert_eq!(code, Some(0), "{}", gw.output());
    for (name, _, backend) in &entries {
        assert!(
            gw.output().contains(&format!("{name} ({backend}")),
            "{name}: {}",
            gw.output()
        );
    }

    // ...and a broker that is not there fails it.
    let gw = Gateway::builder()
        .args(&["check"])
        .env("WAIT_FOR", format!("bus=nats://127.0.0.1:{}", free_port()))
        .env("WAIT_FOR_MAX_RETRIES", "1")
        .spawn();
    gw.expect_exit(69, 10 * SECOND);
}

#[test]
fn a_port_speaking_another_protocol_is_not_up() {
    // Arrange: a real Redis, and every protocol pointed at its port.
    let redis = Redis::start();
    let port = redis.port();
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            format!(
                "pg=postgres://postgres@127.0.0.1:{port}/postgres,rabbit=amqp://127.0.0.1:{port},\
                 bus=nats://127.0.0.1:{port},mosquitto=mqtt://127.0.0.1:{port},\
                 secure=amqps://127.0.0.1:{port},tls=rediss://127.0.0.1:{port}"
            ),
        )
        .env("WAIT_FOR_MAX_RETRIES", "2")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .env("WAIT_FOR_CONNECT_TIMEOUT_MS", "1000")
        .spawn();

    // Act
    let code = gw.wait_exit(15 * SECOND);

    // Assert: none is up; each is named in the give-up line.
    assert_eq!(code, Some(69), "{}", gw.output());
    assert!(!gw.output().contains("connection ready"), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    for what in [
        "pg (postgres)",
        "rabbit (amqp)",
        "bus (nats)",
        "mosquitto (mqtt)",
        "secure (amqp)",
        "tls (redis)",
    ] {
        assert!(errors[0].contains(what), "{what}: {}", errors[0]);
    }
}

#[test]
fn a_late_postgres_is_found_within_one_interval() {
    // Arrange
    let mut pg = Postgres::reserve();
    let interval = Duration::from_millis(500);
    let gw = Gateway::builder()
        .env("WAIT_FOR", format!("pg={}", pg.url()))
        .env("WAIT_FOR_MAX_RETRIES", "1000")
        .env(
            "WAIT_FOR_RETRY_INTERVAL_MS",
            interval.as_millis().to_string(),
        )
        .spawn();
    assert!(
        gw.wait_for_line("pg connection failed (attempt 2/1000)", 10 * SECOND)
            .is_some(),
        "{}",
        gw.output()
    );

    // Act
    pg.start_server();
    let up = Instant::now();

    // Assert: the next attempt finds it.
    assert!(
        gw.wait_for_line("Ready: ", 10 * SECOND).is_some(),
        "{}",
        gw.output()
    );
    let found = up.elapsed();
    assert!(found < interval + 2 * SECOND, "found after {found:?}");
    assert!(
        gw.wait_for_status("/ready", 200, 5 * SECOND),
        "{}",
        gw.output()
    );
}

#[test]
fn a_wrong_password_fails_once_and_is_never_printed() {
    // Arrange: a PostgreSQL and a Redis of the test's own that need a
    // password, and the machine's RabbitMQ; each entry has a wrong one.
    // Optional, so that each gets its own attempts whatever the others do.
    let mut pg = Postgres::start();
    pg.require_password("app", "right-pg-secret");
    let redis = Redis::start_with_password("right-redis-secret");
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            format!(
                "pg={},kv=redis://:wrong-redis-secret@127.0.0.1:{}/0,\
                 rabbit=amqp://guest:wrong-amqp-secret@127.0.0.1:5672/%2f",
                pg.url_for("app", "wrong-pg-secret"),
                redis.port()
            ),
        )
        .env("WAIT_FOR_OPTIONAL", "pg,kv,rabbit")
        .env("WAIT_FOR_MAX_RETRIES", "5")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act: each gives up at its first attempt; then more than one interval
    // passes.
    for name in ["pg", "kv", "rabbit"] {
        let line = format!("{name} is optional: serving without it, not trying again");
        assert!(
            gw.wait_for_line(line.as_str(), 15 * SECOND).is_some(),
            "{name}: {}",
            gw.output()
        );
    }
    std::thread::sleep(5 * Duration::from_millis(100));

    // Assert: one attempt each (permanent), no password anywhere.
    let output = gw.output();
    for name in ["pg", "kv", "rabbit"] {
        let failed = lines_with(&gw, &format!("{name} connection failed"));
        assert_eq!(failed.len(), 1, "{name}: {output}");
        assert!(
            failed[0].contains("(attempt 1/5), not retrying"),
            "{name}: {output}"
        );
    }
    for secret in ["wrong-pg-secret", "wrong-redis-secret", "wrong-amqp-secret"] {
        assert!(!output.contains(secret), "{secret} printed: {output}");
    }
    let ready = ready_json(&gw).to_string();
    assert!(!ready.contains("wrong-"), "{ready}");
}

#[test]
fn a_wrong_amqp_password_is_permanent() {
    // Arrange: the machine's RabbitMQ, guest with a wrong password.
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            "rabbit=amqp://guest:not-the-guest-pw@127.0.0.1:5672/%2f",
        )
        .env("WAIT_FOR_MAX_RETRIES", "5")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(15 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert_eq!(
        lines_with(&gw, "rabbit connection failed").len(),
        1,
        "{}",
        gw.output()
    );
    let output = gw.output();
    assert!(
        output.contains("rabbit (amqp) unavailable: permanent error, not retried (after 1 attempt"),
        "{output}"
    );
    assert!(
        output.contains("AMQP refused the credentials: 403 ACCESS_REFUSED"),
        "{output}"
    );
    assert!(!output.contains("not-the-guest-pw"), "{output}");
}

#[test]
fn an_amqp_vhost_that_is_not_open_is_retried() {
    // Arrange: the machine's RabbitMQ, a vhost it does not have (as while
    // it imports its definitions at boot).
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            "rabbit=amqp://guest:guest@127.0.0.1:5672/not-there-yet",
        )
        .env("WAIT_FOR_MAX_RETRIES", "2")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(15 * SECOND);

    // Assert: transient: both attempts, each naming the server's refusal.
    assert_eq!(code, Some(69), "{}", gw.output());
    let failed = lines_with(&gw, "rabbit connection failed");
    assert_eq!(failed.len(), 2, "{}", gw.output());
    assert!(failed[0].contains("530 NOT_ALLOWED"), "{}", failed[0]);
}

#[test]
fn a_nats_server_that_goes_down_is_down_and_back_when_it_returns_and_a_wrong_password_is_permanent()
{
    // Arrange: a NATS server of the test's own, and one that needs a
    // password, given a wrong one (optional, so that the gateway serves).
    let mut nats = Nats::start();
    let locked = Nats::start_with_auth("app", "right-nats-secret");
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            format!(
                "bus={},locked=nats://app:wrong-nats-secret@127.0.0.1:{}",
                nats.url(),
                locked.port()
            ),
        )
        .env("WAIT_FOR_OPTIONAL", "locked")
        .env("WAIT_FOR_MAX_RETRIES", "5")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .spawn();
    assert!(
        gw.wait_for_status("/ready", 200, 10 * SECOND),
        "{}",
        gw.output()
    );
    assert!(
        gw.wait_for_line(
            "locked is optional: serving without it, not trying again",
            5 * SECOND
        )
        .is_some(),
        "{}",
        gw.output()
    );

    // Act: the server stops.
    nats.stop();

    // Assert: down, then back.
    assert!(
        gw.wait_for_status("/ready", 503, 5 * SECOND),
        "{}",
        gw.output()
    );
    assert_eq!(ready_json(&gw)["dependencies"]["bus"]["state"], "down");
    nats.start_server();
    assert!(
        gw.wait_for_status("/ready", 200, 5 * SECOND),
        "{}",
        gw.output()
    );
    let output = gw.output();
    assert_eq!(
        lines_with(&gw, "locked connection failed").len(),
        1,
        "{output}"
    );
    assert!(output.contains("NATS refused the credentials"), "{output}");
    assert!(!output.contains("wrong-nats-secret"), "{output}");
}

#[test]
fn an_mqtt_login_is_up_with_the_right_password_and_a_wrong_one_is_permanent() {
    // Arrange: a Mosquitto of the test's own that needs a password.
    let broker = Mosquitto::start_with_password("app", "right-mqtt-secret");
    let port = broker.port();
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            format!(
                "mq=mqtt://app:right-mqtt-secret@127.0.0.1:{port},\
                 wrong=mqtt://app:wrong-mqtt-secret@127.0.0.1:{port}"
            ),
        )
        .env("WAIT_FOR_OPTIONAL", "wrong")
        .env("WAIT_FOR_MAX_RETRIES", "5")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let served = gw.wait_for_status("/ready", 200, 10 * SECOND);
    let gave_up = gw
        .wait_for_line(
            "wrong is optional: serving without it, not trying again",
            5 * SECOND,
        )
        .is_some();

    // Assert
    assert!(served && gave_up, "{}", gw.output());
    let output = gw.output();
    assert_eq!(
        lines_with(&gw, "wrong connection failed").len(),
        1,
        "{output}"
    );
    assert!(output.contains("MQTT refused the credentials"), "{output}");
    assert!(
        lines_with(&gw, "mq connection failed").is_empty(),
        "{output}"
    );
    for secret in ["right-mqtt-secret", "wrong-mqtt-secret"] {
        assert!(!output.contains(secret), "{output}");
    }
}

#[test]
fn a_name_that_does_not_resolve_is_retried_and_named() {
    // Arrange
    let gw = Gateway::builder()
        .env("WAIT_FOR", "name=dns://no-such-host.invalid")
        .env("WAIT_FOR_MAX_RETRIES", "2")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(15 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert_eq!(lines_with(&gw, "name connection failed").len(), 2);
    assert!(
        gw.output().contains("(name resolution failed x2)"),
        "{}",
        gw.output()
    );
}

// ------------------------------------------------------------ HTTP

#[test]
fn the_body_expectation_holds_start_up_until_the_body_changes() {
    // Arrange: 200, but still starting.
    let http = HttpService::start(200);
    http.set_body(r#"{"status":"starting"}"#);
    let gw = Gateway::builder()
        .env("WAIT_FOR", format!("web={}", http.url("/health")))
        .env("WAIT_FOR_WEB_EXPECT_BODY", r#""status":"ok""#)
        .env("WAIT_FOR_MAX_RETRIES", "1000")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();
    let third = gw.wait_for_line("web connection failed (attempt 3/1000)", 10 * SECOND);
    assert!(third.is_some(), "{}", gw.output());
    assert!(
        third
            .unwrap()
            .contains(r#"HTTP 200, body does not match ""status":"ok"""#),
        "{}",
        gw.output()
    );
    assert!(!gw.port_is_open(), "served while the body said starting");

    // Act
    http.set_body(r#"{"status":"ok"}"#);

    // Assert
    assert!(
        gw.wait_for_status("/ready", 200, 10 * SECOND),
        "{}",
        gw.output()
    );
}

#[test]
fn the_status_expectation_refuses_a_200_when_204_is_asked() {
    // Arrange
    let http = HttpService::start(200);
    let gw = Gateway::builder()
        .env("WAIT_FOR", format!("web={}", http.url("/health")))
        .env("WAIT_FOR_WEB_EXPECT_STATUS", "204")
        .env("WAIT_FOR_MAX_RETRIES", "2")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
        .spawn();

    // Act
    let code = gw.wait_exit(10 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let output = gw.output();
    assert!(
        output.contains("retrying in 0.1 s: HTTP 200, expected 204"),
        "{output}"
    );
    assert!(output.contains("(HTTP 200 x2)"), "{output}");
}

/// Every class by default (2xx up; 3xx, 4xx, 5xx not), a list and a class
/// that accept more, and a redirect whose target answers 200, not
/// followed.
#[test]
fn by_default_only_2xx_is_up_and_lists_and_classes_accept_what_they_name() {
    // Arrange
    let target = HttpService::start(200);
    let services: Vec<(&str, u16, Option<&str>)> = vec![
        ("ok", 200, None),
        ("created", 201, None),
        ("moved", 301, None),
        ("missing", 404, None),
        ("broken", 500, None),
        ("nocontent", 204, Some("200,204")),
        ("redirect", 302, Some("3xx")),
        ("gone", 404, Some("200,2xx")),
    ];
    let running: Vec<HttpService> = services
        .iter()
        .map(|(_, status, _)| {
            let s = HttpService::start(*status);
            if (300..400).contains(status) {
                s.set_location(&target.url("/health"));
            }
            s
        })
        .collect();
    let mut builder = Gateway::builder()
        .env(
            "WAIT_FOR",
            services
                .iter()
                .zip(&running)
                .map(|((name, _, _), s)| format!("{name}={}", s.url("/health")))
                .collect::<Vec<_>>()
                .join(","),
        )
        .env("WAIT_FOR_MAX_RETRIES", "3")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "200");
    for (name, _, expect) in &services {
        if let Some(expect) = expect {
            builder = builder.env(
                format!("WAIT_FOR_{}_EXPECT_STATUS", name.to_uppercase()),
                *expect,
            );
        }
    }
    // The ones that must not be up are optional, so that the gateway
    // serves and /ready shows every state.
    let down = [
        ("moved", 301),
        ("missing", 404),
        ("broken", 500),
        ("gone", 404),
    ];
    let gw = builder
        .env("WAIT_FOR_OPTIONAL", down.map(|(name, _)| name).join(","))
        .spawn();

    // Act
    let served = gw.wait_for_status("/ready", 200, 10 * SECOND);
    let tried = down.iter().all(|(name, _)| {
        gw.wait_for_line(
            format!("{name} connection failed (attempt 3/3)").as_str(),
            10 * SECOND,
        )
        .is_some()
    });

    // Assert
    assert!(served && tried, "{}", gw.output());
    let json = ready_json(&gw);
    let output = gw.output();
    for up in ["ok", "created", "nocontent", "redirect"] {
        assert_eq!(json["dependencies"][up]["state"], "up", "{up}: {json}");
        assert!(
            !output.contains(&format!("{up} connection failed")),
            "{up}: {output}"
        );
    }
    for (name, status) in down {
        assert_ne!(json["dependencies"][name]["state"], "up", "{name}: {json}");
        assert!(
            output.contains(&format!(
                "{name} connection failed (attempt 1/3), retrying in 0.2 s: HTTP {status}"
            )),
            "{name}: {output}"
        );
    }
    assert!(
        output.contains(&format!(
            "HTTP 301 (redirect to {}, not followed), expected 2xx",
            target.url("/health")
        )),
        "{output}"
    );
    assert_eq!(target.requests(), 0, "a redirect was followed");
}

/// docs/dependencies.md quotes the give-up tally of an entry answering 404;
/// the program must write the same words.
#[test]
fn the_give_up_tally_of_a_status_is_as_the_docs_say() {
    // Arrange
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dependencies.md"),
    )
    .unwrap();
    let quoted = regex_lite_find(&docs, "gives up with `", "`").expect("docs quote the tally");
    let http = HttpService::start(404);
    let gw = Gateway::builder()
        .env("WAIT_FOR", format!("web={}", http.url("/health")))
        .env("WAIT_FOR_MAX_RETRIES", "3")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "50")
        .spawn();

    // Act
    let code = gw.wait_exit(10 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    assert_eq!(quoted, "HTTP 404 x3", "the docs changed: {quoted}");
    let errors = lines_with(&gw, "ERROR");
    assert!(errors[0].contains(&format!("({quoted})")), "{}", errors[0]);
}

/// The text between `start` and the next `end` after it.
fn regex_lite_find<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

// ------------------------------------------------------------ policy

#[test]
fn a_per_entry_attempt_limit_and_interval_override_the_shared_ones() {
    // Arrange: two ports that refuse; `fast` has a policy of its own.
    let gw = Gateway::builder()
        .env(
            "WAIT_FOR",
            format!(
                "slow=tcp://127.0.0.1:{},fast-one=tcp://127.0.0.1:{}",
                free_port(),
                free_port()
            ),
        )
        .env("WAIT_FOR_MAX_RETRIES", "50")
        .env("WAIT_FOR_RETRY_INTERVAL_MS", "300")
        .env("WAIT_FOR_FAST_ONE_MAX_RETRIES", "2")
        .env("WAIT_FOR_FAST_ONE_RETRY_INTERVAL_MS", "50")
        .spawn();

    // Act
    let code = gw.wait_exit(10 * SECOND);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let output = gw.output();
    assert!(
        output.contains("fast-one connection failed (attempt 1/2), retrying in 0.05 s"),
        "{output}"
    );
    assert!(
        output.contains("slow connection failed (attempt 1/50), retrying in 0.3 s"),
        "{output}"
    );
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains("fast-one (tcp) unavailable after 2 attempts"),
        "{}",
        errors[0]
    );
}

#[test]
fn an_unsupported_scheme_and_per_entry_variables_without_an_entry_are_exit_78() {
    // Arrange
    let gw = Gateway::builder()
        .env("WAIT_FOR", "a=tcp://127.0.0.1:1,b=gopher://h:70")
        .env("WAIT_FOR_GHOST_MAX_RETRIES", "2")
        .env("WAIT_FOR_A_MAX_RETRYS", "2")
        .env("WAIT_FOR_A_EXPECT_STATUS", "200")
        .spawn();

    // Act
    let code = gw.wait_exit(5 * SECOND);

    // Assert: each named in the one ERROR line.
    assert_eq!(code, Some(78), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    for words in [
        "has an entry with the scheme \"gopher\"",
        "WAIT_FOR_GHOST_MAX_RETRIES=\"2\" names no WAIT_FOR entry",
        "WAIT_FOR_A_MAX_RETRYS=\"2\" is not a setting readygate knows",
        "WAIT_FOR_A_EXPECT_STATUS=\"200\" is set, but the entry \"a\" is tcp://",
    ] {
        assert!(errors[0].contains(words), "{words}: {}", errors[0]);
    }
    assert!(lines_with(&gw, "connection failed").is_empty());
}

#[test]
fn a_server_that_accepts_and_never_answers_is_not_up_and_each_attempt_is_bounded() {
    // Arrange: a port that accepts every connection and never writes.
    let hole = crate::support::BlackHole::start();
    let schemes = [
        "postgres://app:pw@127.0.0.1:{}/app",
        "mysql://app:pw@127.0.0.1:{}/app",
        "redis://127.0.0.1:{}/0",
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        "nats://127.0.0.1:{}",
        "mqtt://127.0.0.1:{}",
    ];

    // Act: each scheme against it, two attempts of 300 ms.
    let gateways: Vec<(String, Gateway, Instant)> = schemes
        .iter()
        .map(|s| {
            let url = s.replace("{}", &hole.port().to_string());
            let gw = Gateway::builder()
                .env("WAIT_FOR", format!("dep={url}"))
                .env("WAIT_FOR_MAX_RETRIES", "2")
                .env("WAIT_FOR_RETRY_INTERVAL_MS", "100")
                .env("WAIT_FOR_CONNECT_TIMEOUT_MS", "300")
                .spawn();
            (url, gw, Instant::now())
        })
        .collect();

    // Assert: not up, given up after two timed-out attempts, in bounded time.
    for (url, gw, started) in &gateways {
        assert_eq!(
            gw.wait_exit(20 * SECOND),
            Some(69),
            "{url}: {}",
            gw.output()
        );
        assert!(started.elapsed() >= Duration::from_millis(600), "{url}");
        let errors = lines_with(gw, "ERROR");
        assert!(
            errors.len() == 1 && errors[0].contains("(timed out x2)"),
            "{url}: {}",
            gw.output()
        );
    }
}
