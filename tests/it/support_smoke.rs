//! Tests of the test-support code itself: each would fail if the helper it
//! covers were broken.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::faults::{
    LOADING_REPLY, PG_SSL_REQUEST, parse_resp_request, pg_startup_message,
};
use crate::support::gateway::http_request;
use crate::support::postgres::pg_isready;
use crate::support::redis::resp_request;
use crate::support::{
    BlackHole, Gateway, LoadingRedis, PgBouncer, Postgres, Redis, StartingUpPostgres, free_port,
    multi_host_url, port_is_open, wait_until,
};

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1))
}

fn assert_refused(port: u16) {
    match connect(port) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "port {port}: {e}"),
        Ok(_) => panic!("port {port} still accepts connections"),
    }
}

/// Reads from `stream` until `pred(bytes so far)` holds (2 s read timeout).
fn read_until(stream: &mut TcpStream, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !pred(&got) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "EOF after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn free_port_gives_distinct_bindable_ports() {
    let a = free_port();
    let b = free_port();
    assert_ne!(a, b);
    assert_ne!(a, 0);
    // Nothing listens there, and we can bind it.
    assert!(!port_is_open(a));
    drop(TcpListener::bind((Ipv4Addr::LOCALHOST, a)).unwrap());
}

#[test]
fn postgres_starts_and_answers_psql() {
    let pg = Postgres::start();
    assert_eq!(pg.psql("SELECT 1"), "1");
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    assert_ne!(pg.port(), 5432);
    // Trust over TCP as well, before require_password.
    assert_eq!(
        pg.psql_tcp("postgres", None, "SELECT current_user")
            .unwrap(),
        "postgres"
    );
    assert_eq!(pg_isready(pg.port()), 0);
}

#[test]
fn postgres_stops_and_restarts_on_the_same_port() {
    let mut pg = Postgres::start();
    let port = pg.port();
    pg.psql("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)");

    pg.stop();
    assert!(!pg.is_running());
    assert_refused(port);
    assert_eq!(pg_isready(port), 2);

    pg.start_server();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT v FROM kept"), "42", "same data directory");

    // Twice, and an immediate shutdown too.
    pg.stop_immediate();
    assert_refused(port);
    pg.start_server();
    assert_eq!(pg.psql("SELECT 1"), "1");
}

#[test]
fn postgres_reserve_does_not_run_until_started() {
    let mut pg = Postgres::reserve();
    assert!(!pg.is_running());
    assert_refused(pg.port());
    pg.start_server();
    assert!(pg.is_running());
    assert_eq!(pg.psql("SELECT 2"), "2");
}

#[test]
fn postgres_require_password_makes_tcp_logins_need_it() {
    let mut pg = Postgres::start();
    pg.require_password("app", "s3cret");

    assert_eq!(
        pg.psql_tcp("app", Some("s3cret"), "SELECT current_user")
            .unwrap(),
        "app"
    );
    let wrong = pg.psql_tcp("app", Some("wrong"), "SELECT 1").unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    let none = pg.psql_tcp("postgres", None, "SELECT 1").unwrap_err();
    assert!(none.contains("password"), "{none}");
    // The superuser still gets in over the unix socket.
    assert_eq!(pg.psql("SELECT 1"), "1");
    assert_eq!(
        pg.url_for("app", "s3cret"),
        format!("postgres://app:s3cret@127.0.0.1:{}/postgres", pg.port())
    );

    // On the wire: the server asks for SASL (AuthenticationSASL = 10).
    let mut stream = connect(pg.port()).unwrap();
    stream
        .write_all(&pg_startup_message("app", "postgres"))
        .unwrap();
    let got = read_until(&mut stream, |b| b.len() >= 9);
    assert_eq!(got[0], b'R', "{got:?}");
    assert_eq!(i32::from_be_bytes([got[5], got[6], got[7], got[8]]), 10);
}

#[test]
fn postgres_standby_streams_what_the_primary_writes() {
    let primary = Postgres::start_primary();
    primary.psql("CREATE TABLE replicated (v int); INSERT INTO replicated VALUES (1)");

    let standby = primary.start_standby();
    assert_ne!(standby.port(), primary.port());
    assert_eq!(standby.addr(), format!("127.0.0.1:{}", standby.port()));
    assert!(standby.is_in_recovery());
    assert!(!primary.is_in_recovery());
    assert_eq!(
        primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"),
        "1"
    );

    // A row written after the base backup arrives by streaming.
    primary.psql("INSERT INTO replicated VALUES (2)");
    standby.wait_caught_up(&primary);
    assert_eq!(
        standby.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM replicated"),
        "1,2"
    );
    // Over TCP too, and read-only there.
    let write = standby.psql_tcp("postgres", None, "INSERT INTO replicated VALUES (3)");
    assert!(
        write
            .as_ref()
            .is_err_and(|e| e.contains("read-only transaction")),
        "{write:?}"
    );
    assert_eq!(
        multi_host_url(&[standby.port(), primary.port()], Some("read-write")),
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            standby.port(),
            primary.port()
        )
    );
    assert_eq!(
        multi_host_url(&[primary.port()], None),
        primary.url(),
        "one host, no attributes: the plain URL"
    );
}

#[test]
fn postgres_promote_makes_the_standby_a_writable_primary() {
    let mut primary = Postgres::start_primary();
    primary.psql("CREATE TABLE replicated (v int); INSERT INTO replicated VALUES (1)");
    let mut standby = primary.start_standby();
    standby.wait_caught_up(&primary);

    primary.stop();
    standby.promote();

    assert!(!standby.is_in_recovery());
    standby
        .psql_tcp("postgres", None, "INSERT INTO replicated VALUES (2)")
        .unwrap();
    assert_eq!(standby.psql("SELECT count(*) FROM replicated"), "2");
    assert_refused(primary.port());
}

#[test]
fn postgres_set_read_only_refuses_writes_until_set_back() {
    let mut pg = Postgres::start();
    pg.psql("CREATE TABLE t (v int)");

    pg.set_read_only(true);
    let write = pg.psql_tcp("postgres", None, "INSERT INTO t VALUES (1)");
    assert!(
        write
            .as_ref()
            .is_err_and(|e| e.contains("read-only transaction")),
        "{write:?}"
    );
    assert_eq!(
        pg.psql_tcp("postgres", None, "SHOW transaction_read_only")
            .unwrap(),
        "on"
    );
    assert!(!pg.is_in_recovery(), "read-only, yet a primary");

    pg.set_read_only(false);
    pg.psql_tcp("postgres", None, "INSERT INTO t VALUES (1)")
        .unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "1");
}

#[test]
fn pgbouncer_passes_queries_through_in_transaction_mode() {
    let mut pg = Postgres::start();
    let bouncer = PgBouncer::start(&pg);
    assert_ne!(bouncer.port(), pg.port());
    assert_eq!(
        bouncer.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", bouncer.port())
    );
    assert_eq!(bouncer.addr(), format!("127.0.0.1:{}", bouncer.port()));

    // Through it, to the server behind it, counted.
    let before = bouncer.query_count("postgres");
    assert_eq!(bouncer.psql("SELECT 1").unwrap(), "1");
    assert!(bouncer.query_count("postgres") > before);
    assert_eq!(
        bouncer.psql("SELECT inet_server_port()").unwrap(),
        pg.port().to_string()
    );
    let config = bouncer.admin("SHOW CONFIG").unwrap();
    assert!(
        config
            .lines()
            .any(|l| l.starts_with("pool_mode|transaction|")),
        "{config}"
    );

    // The server behind it goes away: queries fail, PgBouncer stays; back
    // again, they pass once more.
    pg.stop();
    let query = bouncer.psql("SELECT 1");
    assert!(
        query
            .as_ref()
            .is_err_and(|e| e.contains("query_wait_timeout")),
        "{query:?}"
    );
    assert!(port_is_open(bouncer.port()));
    pg.start_server();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            bouncer.psql("SELECT 1").is_ok()
        }),
        "{}",
        bouncer.log()
    );

    let port = bouncer.port();
    drop(bouncer);
    assert_refused(port);
}

#[test]
fn redis_starts_stops_and_restarts_on_the_same_port() {
    let mut redis = Redis::start();
    let port = redis.port();
    assert_ne!(port, 6379);
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/0"));
    assert_eq!(redis.ping().unwrap(), "+PONG\r\n");
    assert_eq!(redis.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    assert_eq!(redis.command(&["GET", "k"]).unwrap(), "$1\r\nv\r\n");

    redis.stop();
    assert!(!redis.is_running());
    assert_refused(port);

    redis.start_server();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.ping().unwrap(), "+PONG\r\n");
    // No persistence: the key is gone.
    assert_eq!(redis.command(&["GET", "k"]).unwrap(), "$-1\r\n");

    redis.kill();
    assert_refused(port);
    redis.start_server();
    assert_eq!(redis.ping().unwrap(), "+PONG\r\n");
}

#[test]
fn redis_with_password_refuses_unauthenticated_commands() {
    let redis = Redis::start_with_password("pw123");
    assert_eq!(redis.ping().unwrap(), "+PONG\r\n");
    assert_eq!(
        redis.url_with_password(),
        format!("redis://:pw123@127.0.0.1:{}/0", redis.port())
    );

    let mut stream = connect(redis.port()).unwrap();
    stream.write_all(&resp_request(&["PING"])).unwrap();
    let got = read_until(&mut stream, |b| b.ends_with(b"\r\n"));
    assert!(
        got.starts_with(b"-NOAUTH"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn resp_parser_handles_partial_pipelined_and_inline_requests() {
    let mut two = resp_request(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]);
    let first_len = two.len();
    two.extend_from_slice(&resp_request(&["PING"]));
    let (used, args) = parse_resp_request(&two).unwrap().unwrap();
    assert_eq!(used, first_len);
    assert_eq!(args[1], b"SETINFO");
    let (_, args) = parse_resp_request(&two[used..]).unwrap().unwrap();
    assert_eq!(args, vec![b"PING".to_vec()]);
    // Incomplete: every strict prefix.
    for cut in 0..first_len {
        assert!(
            parse_resp_request(&two[..cut]).unwrap().is_none(),
            "cut {cut}"
        );
    }
    let (used, args) = parse_resp_request(b"PING\r\nrest").unwrap().unwrap();
    assert_eq!((used, args), (6, vec![b"PING".to_vec()]));
}

#[test]
fn loading_redis_answers_every_pipelined_request() {
    let loading = LoadingRedis::start();
    let mut stream = connect(loading.port()).unwrap();
    let mut both = resp_request(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]);
    both.extend_from_slice(&resp_request(&["PING"]));
    stream.write_all(&both).unwrap();

    let got = read_until(&mut stream, |b| b.len() >= 2 * LOADING_REPLY.len());
    assert_eq!(got, [LOADING_REPLY, LOADING_REPLY].concat());
    assert!(got.starts_with(b"-LOADING Redis is loading the dataset in memory\r\n"));
    assert_eq!(loading.requests(), 2);
    assert_eq!(loading.connections(), 1);
    assert_eq!(loading.commands(), ["CLIENT SETINFO", "PING"]);

    // A request split across two writes is answered once, when complete.
    let ping = resp_request(&["PING"]);
    stream.write_all(&ping[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(loading.requests(), 2);
    stream.write_all(&ping[5..]).unwrap();
    read_until(&mut stream, |b| b == LOADING_REPLY);
    assert_eq!(loading.requests(), 3);

    let port = loading.port();
    drop(loading);
    // Dropping closes the accepted connection and the listener.
    let mut buf = [0u8; 16];
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    assert_refused(port);
}

#[test]
fn starting_up_postgres_sends_57p03_after_the_startup_message() {
    let server = StartingUpPostgres::start();
    let mut stream = connect(server.port()).unwrap();

    // SSLRequest first, as libpq does with sslmode=prefer: answered `N`.
    let mut ssl = 8_i32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&PG_SSL_REQUEST.to_be_bytes());
    stream.write_all(&ssl).unwrap();
    assert_eq!(read_until(&mut stream, |b| !b.is_empty()), b"N");

    stream
        .write_all(&pg_startup_message("postgres", "postgres"))
        .unwrap();
    let got = read_until(&mut stream, |b| {
        b.len() >= 5 && b.len() > i32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize
    });
    assert_eq!(got[0], b'E');
    let len = i32::from_be_bytes([got[1], got[2], got[3], got[4]]) as usize;
    assert_eq!(got.len(), 1 + len);
    let fields = &got[5..];
    assert!(fields.ends_with(b"\0\0"));
    let text = String::from_utf8_lossy(fields);
    for field in [
        "SFATAL\0",
        "VFATAL\0",
        "C57P03\0",
        "Mthe database system is starting up\0",
    ] {
        assert!(text.contains(field), "{field:?} in {text:?}");
    }
    // Then the server closes.
    let mut buf = [0u8; 8];
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.startups(), 1);

    // libpq understands it: pg_isready says "rejecting connections" (1).
    assert_eq!(pg_isready(server.port()), 1);
    assert!(server.connections() >= 2);
}

#[test]
fn black_hole_accepts_and_never_answers() {
    let hole = BlackHole::start();
    let mut stream = connect(hole.port()).unwrap();
    stream
        .write_all(&pg_startup_message("postgres", "postgres"))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert!(wait_until(
        Duration::from_secs(2),
        Duration::from_millis(5),
        || hole.connections() == 1
    ));

    drop(hole);
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        stream.read(&mut buf).unwrap(),
        0,
        "dropping the hole closes its connections"
    );
}

#[test]
fn gateway_process_output_env_and_workdir_are_captured() {
    // A stand-in program: the plumbing, not readygate's behaviour.
    let gw = Gateway::builder()
        .program("/bin/sh")
        .args(&[
            "-c",
            "echo out1; echo err1 >&2; cat .env; printf 'no newline'; \
             echo \"HOST=$HOST PORT=$PORT HOME=${HOME:-unset} X=$X\" >&2; exit 3",
        ])
        .env("X", "y")
        .dotenv_file("FROM_DOTENV=1\n")
        .spawn();
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(3));
    assert_eq!(gw.stdout_lines(), ["out1", "FROM_DOTENV=1", "no newline"]);
    let env_line = format!("HOST=127.0.0.1 PORT={} HOME=unset X=y", gw.port());
    assert_eq!(gw.stderr_lines(), ["err1", env_line.as_str()]);
    assert_eq!(gw.lines().len(), 5);
    assert!(gw.output().contains("err1\n"));
    assert_ne!(gw.port(), 0);
    assert!(gw.workdir().join(".env").is_file());
    assert!(gw.started_at().elapsed() < Duration::from_secs(10));

    assert_eq!(
        gw.wait_for_line("PORT=", Duration::from_secs(1)),
        Some(env_line.clone())
    );
    assert_eq!(
        gw.wait_for_line(|l: &str| l.starts_with("out"), Duration::from_secs(1)),
        Some("out1".to_owned())
    );
    // stdout and stderr are read by two threads, so "out1" is not always
    // line 0: skip past wherever it landed.
    let after_out1 = gw.lines().iter().position(|l| l == "out1").unwrap() + 1;
    assert_eq!(
        gw.wait_for_line_from(after_out1, "out1", Duration::from_secs(1)),
        None
    );
    // The output is complete: a missing line is reported at once.
    let started = Instant::now();
    assert_eq!(gw.wait_for_line("never", Duration::from_secs(10)), None);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn gateway_process_signals_timeouts_and_drop() {
    let gw = Gateway::builder()
        .program("/bin/sh")
        .args(&["-c", "echo started; exec sleep 30"])
        .spawn();
    assert!(
        gw.wait_for_line("started", Duration::from_secs(10))
            .is_some()
    );
    assert_eq!(gw.wait_exit(Duration::from_millis(100)), None);
    assert!(gw.is_running());
    assert!(!gw.port_is_open());
    let pid = Pid::from_raw(gw.pid() as i32);

    // Drop kills and reaps it.
    drop(gw);
    assert_eq!(kill(pid, None), Err(Errno::ESRCH));

    let gw = Gateway::builder()
        .program("/bin/sh")
        .args(&["-c", "echo started; exec sleep 30"])
        .spawn();
    gw.wait_for_line("started", Duration::from_secs(10))
        .unwrap();
    gw.signal(Signal::SIGKILL);
    let status = gw.wait_exit_status(Duration::from_secs(10)).unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    // A signal death is not an exit code: wait_exit panics.
    let caught =
        std::panic::catch_unwind(AssertUnwindSafe(|| gw.wait_exit(Duration::from_secs(1))));
    assert!(caught.is_err());
    // Signalling an exited process is a no-op.
    gw.signal(Signal::SIGTERM);
}

#[test]
fn http_request_returns_any_status_and_errors_without_an_answer() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_until(&mut stream, |b| b.ends_with(b"\r\n\r\n"));
        let body = r#"{"ready":false}"#;
        write!(
            stream,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8(request).unwrap()
    });
    let reply = http_request(port, "GET", "/ready", &[("X-Test", "1")]).unwrap();
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /ready HTTP/1.1\r\n"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("x-test: 1\r\n"),
        "{request}"
    );
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(reply.json()["ready"], false);

    // Nothing listening: an error, not a status.
    let closed = free_port();
    let err = http_request(closed, "GET", "/health", &[]).unwrap_err();
    assert!(err.to_lowercase().contains("refused"), "{err}");

    // No answer at all: an error after the 2 s timeout.
    let hole = BlackHole::start();
    let started = Instant::now();
    assert!(http_request(hole.port(), "GET", "/health", &[]).is_err());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
