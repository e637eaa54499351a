//! Fault servers: loopback listeners that speak the real wire protocol to
//! produce faults a real server cannot produce on demand (see
//! `shared/notes/fault-servers.md`).
//!
//! Each listens on its own free port (bound at once, so nothing can take
//! it), serves every connection on its own thread, counts what it sees in
//! shared atomics, and stops when dropped (accepting stops and every
//! accepted connection is shut down).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a fault server shares between its threads.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    /// Clones of accepted streams, shut down on drop so handler threads end.
    streams: Mutex<Vec<TcpStream>>,
}

/// The listener and accept thread common to every fault server.
#[derive(Debug)]
struct Listener {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds 127.0.0.1:0 and serves each accepted connection with `handler`
    /// on its own thread.
    fn start<F>(name: &str, handler: F) -> Listener
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("{name}: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name}: local_addr: {e}"))
            .port();
        // Nonblocking accept polled every few ms: dropping never hangs on a
        // blocked accept (the kernel completes handshakes meanwhile anyway).
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{name}: set_nonblocking: {e}"));
        let shared = Arc::new(Shared::default());
        let handler = Arc::new(handler);
        let thread_shared = Arc::clone(&shared);
        let thread_name = format!("{name}-accept");
        let accept = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || accept_loop(&listener, &thread_shared, &handler))
            .unwrap_or_else(|e| panic!("{name}: spawn accept thread: {e}"));
        Listener {
            port,
            shared,
            accept: Some(accept),
        }
    }

    fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

fn accept_loop<F>(listener: &TcpListener, shared: &Arc<Shared>, handler: &Arc<F>)
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                if let Ok(clone) = stream.try_clone() {
                    shared
                        .streams
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(clone);
                }
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let handler = Arc::clone(handler);
                let _ = std::thread::Builder::new()
                    .name("fault-conn".into())
                    .spawn(move || handler(stream));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        let streams = std::mem::take(
            &mut *self
                .shared
                .streams
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

// ---------------------------------------------------------------------------
// Redis: LOADING

/// The reply [`LoadingRedis`] sends to every request.
pub const LOADING_REPLY: &[u8] = b"-LOADING Redis is loading the dataset in memory\r\n";

/// A parsed RESP request: the number of bytes it took and its arguments.
pub type RespRequest = (usize, Vec<Vec<u8>>);

/// One parsed RESP request: `Ok(Some((bytes consumed, args)))`,
/// `Ok(None)` when `buf` does not hold a complete request yet, `Err` on a
/// protocol error. Inline commands (`PING\r\n`) are accepted too; blank
/// lines give an empty `args`.
pub fn parse_resp_request(buf: &[u8]) -> Result<Option<RespRequest>, String> {
    fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
        let rel = buf.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[from..from + rel], from + rel + 2))
    }
    fn number(bytes: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad RESP length {:?}", String::from_utf8_lossy(bytes)))
    }
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        // Inline command: one line, words separated by spaces.
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let text = &buf[..end];
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let args = text
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(Some((end + 1, args)));
    }
    let Some((header, mut pos)) = line(buf, 0) else {
        return Ok(None);
    };
    let count = number(&header[1..])?;
    let mut args = Vec::new();
    for _ in 0..count.max(0) {
        let Some((len_line, after)) = line(buf, pos) else {
            return Ok(None);
        };
        if len_line.first() != Some(&b'$') {
            return Err(format!(
                "expected a bulk string, got {:?}",
                String::from_utf8_lossy(len_line)
            ));
        }
        let len = usize::try_from(number(&len_line[1..])?).map_err(|e| e.to_string())?;
        if buf.len() < after + len + 2 {
            return Ok(None);
        }
        args.push(buf[after..after + len].to_vec());
        pos = after + len + 2;
    }
    Ok(Some((pos, args)))
}

#[derive(Debug, Default)]
struct RedisCounters {
    requests: AtomicUsize,
    commands: Mutex<Vec<String>>,
}

/// A "Redis" that answers EVERY request on every connection with
/// `-LOADING Redis is loading the dataset in memory`, as a real Redis does
/// while it loads its dataset. Requests are counted one by one, also when
/// several arrive pipelined in one read.
#[derive(Debug)]
pub struct LoadingRedis {
    listener: Listener,
    counters: Arc<RedisCounters>,
}

impl LoadingRedis {
    pub fn start() -> LoadingRedis {
        LoadingRedis::with_error("LOADING Redis is loading the dataset in memory")
    }

    /// The same server answering every request with another error reply,
    /// e.g. `MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.`
    /// (`error` without the leading `-` and the line end).
    pub fn with_error(error: &str) -> LoadingRedis {
        let reply: Arc<[u8]> = format!("-{error}\r\n").into_bytes().into();
        let counters = Arc::new(RedisCounters::default());
        let handler_counters = Arc::clone(&counters);
        let listener = Listener::start("loading-redis", move |stream| {
            serve_loading(stream, &handler_counters, &reply);
        });
        LoadingRedis { listener, counters }
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.listener.connections()
    }

    /// Requests answered so far (all connections).
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// The requests' command names so far, upper-cased with a first
    /// sub-command where there is one: `["CLIENT SETINFO", "PING", ...]`.
    pub fn commands(&self) -> Vec<String> {
        self.counters
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn command_name(args: &[Vec<u8>]) -> String {
    let word = |i: usize| {
        args.get(i)
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default()
    };
    let first = word(0);
    match first.as_str() {
        "CLIENT" | "CONFIG" | "COMMAND" | "CLUSTER" | "SCRIPT" | "OBJECT" | "MEMORY" => {
            format!("{first} {}", word(1))
        }
        _ => first,
    }
}

fn serve_loading(mut stream: TcpStream, counters: &RedisCounters, error_reply: &[u8]) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut reply = Vec::new();
        loop {
            match parse_resp_request(&buf) {
                Ok(Some((used, args))) => {
                    buf.drain(..used);
                    if args.is_empty() {
                        continue; // blank inline line
                    }
                    counters.requests.fetch_add(1, Ordering::SeqCst);
                    counters
                        .commands
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(command_name(&args));
                    reply.extend_from_slice(error_reply);
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = stream.write_all(b"-ERR Protocol error\r\n");
                    return;
                }
            }
        }
        if !reply.is_empty() && stream.write_all(&reply).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL: 57P03

/// SSLRequest code.
pub const PG_SSL_REQUEST: i32 = 80_877_103;
/// GSSENCRequest code.
pub const PG_GSSENC_REQUEST: i32 = 80_877_104;

/// An ErrorResponse message (`E`, length, fields, terminator) with severity
/// FATAL and the given SQLSTATE and message.
pub fn pg_error_response(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let len = i32::try_from(fields.len() + 4).unwrap_or(i32::MAX);
    let mut out = vec![b'E'];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

/// A StartupMessage (protocol 3.0) for `user` and `database`.
pub fn pg_startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608_i32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = i32::try_from(body.len() + 4).unwrap_or(i32::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A "PostgreSQL" that refuses every connection as a real one does while it
/// starts up: after the StartupMessage (SSL/GSS requests are answered `N`)
/// it sends an ErrorResponse `FATAL 57P03 the database system is starting
/// up` and closes.
#[derive(Debug)]
pub struct StartingUpPostgres {
    listener: Listener,
    startups: Arc<AtomicUsize>,
}

impl StartingUpPostgres {
    pub fn start() -> StartingUpPostgres {
        StartingUpPostgres::with_error("57P03", "the database system is starting up")
    }

    /// The same server answering another FATAL error (e.g. `53300` "sorry,
    /// too many clients already").
    pub fn with_error(code: &str, message: &str) -> StartingUpPostgres {
        let reply = pg_error_response(code, message);
        let startups = Arc::new(AtomicUsize::new(0));
        let handler_startups = Arc::clone(&startups);
        let listener = Listener::start("starting-up-postgres", move |stream| {
            serve_pg_error(stream, &reply, &handler_startups);
        });
        StartingUpPostgres { listener, startups }
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.listener.connections()
    }

    /// StartupMessages received (and answered with the error) so far.
    pub fn startups(&self) -> usize {
        self.startups.load(Ordering::SeqCst)
    }
}

fn serve_pg_error(mut stream: TcpStream, reply: &[u8], startups: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    loop {
        let mut head = [0u8; 8];
        if stream.read_exact(&mut head).is_err() {
            return;
        }
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 8 && (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST) {
            if stream.write_all(b"N").is_err() {
                return;
            }
            continue;
        }
        let Some(Ok(rest)) = len.checked_sub(8).map(usize::try_from) else {
            return;
        };
        if rest > 1 << 16 {
            return;
        }
        let mut body = vec![0u8; rest];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        startups.fetch_add(1, Ordering::SeqCst);
        let _ = stream.write_all(reply);
        let _ = stream.flush();
        // Close after the client has had the reply (FIN, not RST: nothing
        // unread is left in our receive buffer).
        let _ = stream.shutdown(Shutdown::Write);
        return;
    }
}

// ---------------------------------------------------------------------------
// Black hole

/// Accepts TCP connections and never writes a byte; reads until the client
/// closes. Every protocol handshake against it hangs until the client's own
/// timeout.
#[derive(Debug)]
pub struct BlackHole {
    listener: Listener,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = Listener::start("black-hole", |mut stream| {
            let mut buf = [0u8; 4096];
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        });
        BlackHole { listener }
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn postgres_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port())
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.listener.connections()
    }
}

// ---------------------------------------------------------------------------
// A relay that can black-hole

/// What a [`Relay`] shares with its connection threads.
#[derive(Debug)]
struct RelayState {
    target: AtomicU16,
    blackholed: AtomicBool,
    /// Bumped by [`Relay::restore`]: connections of an older generation are
    /// closed (they may have lost data while black-holed).
    generation: AtomicU64,
    accepted: Mutex<Vec<Instant>>,
    stop: AtomicBool,
}

/// A TCP relay in front of a real server on 127.0.0.1:`target`: every
/// connection is forwarded both ways, and counted with the time it came.
///
/// [`Relay::blackhole`] makes it a network that swallows everything: bytes
/// on connections already open are read and dropped in both directions, and
/// new connections are accepted and never forwarded, so every client waits
/// on an open, silent connection (the kernel acknowledges, nothing answers).
/// [`Relay::restore`] closes the connections that lost data and forwards
/// again.
#[derive(Debug)]
pub struct Relay {
    listener: Listener,
    state: Arc<RelayState>,
}

impl Relay {
    pub fn start(target: u16) -> Relay {
        let state = Arc::new(RelayState {
            target: AtomicU16::new(target),
            blackholed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            accepted: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let handler_state = Arc::clone(&state);
        let listener = Listener::start("relay", move |client| relay(client, &handler_state));
        Relay { listener, state }
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` through the relay.
    pub fn postgres_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port())
    }

    /// Sends new connections to 127.0.0.1:`port` from now on, and closes
    /// the open ones (as a fail-over to another server would).
    pub fn set_target(&self, port: u16) {
        self.state.target.store(port, Ordering::SeqCst);
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn blackhole(&self) {
        self.state.blackholed.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.state.blackholed.store(false, Ordering::SeqCst);
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.listener.connections()
    }

    /// When each connection was accepted.
    pub fn accepted_at(&self) -> Vec<Instant> {
        self.state
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, state: &Arc<RelayState>) {
    state
        .accepted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Instant::now());
    let generation = state.generation.load(Ordering::SeqCst);
    let upstream = if state.blackholed.load(Ordering::SeqCst) {
        None
    } else {
        TcpStream::connect((Ipv4Addr::LOCALHOST, state.target.load(Ordering::SeqCst))).ok()
    };
    let Some(upstream) = upstream else {
        // Black-holed (or the server is down): read and drop until closed.
        pump(&client, None, state, generation);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (Ok(client_2), Ok(upstream_2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back_state = Arc::clone(state);
    let back = std::thread::Builder::new()
        .name("relay-back".into())
        .spawn(move || pump(&upstream_2, Some(&client_2), &back_state, generation));
    pump(&client, Some(&upstream), state, generation);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    if let Ok(back) = back {
        let _ = back.join();
    }
}

/// Copies `from` to `to` (drops the bytes while black-holed, or when there
/// is no `to`) until either side closes, the relay stops, or a restore ends
/// this connection's generation.
fn pump(from: &TcpStream, to: Option<&TcpStream>, state: &RelayState, generation: u64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 16 * 1024];
    let mut reader = from;
    loop {
        if state.stop.load(Ordering::SeqCst)
            || state.generation.load(Ordering::SeqCst) != generation
        {
            break;
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let forward = to.filter(|_| !state.blackholed.load(Ordering::SeqCst));
                if let Some(mut to) = forward
                    && to.write_all(&buf[..n]).is_err()
                {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    if let Some(to) = to {
        let _ = to.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------
// Connection reset

/// Accepts TCP connections and resets each at once (SO_LINGER 0, then
/// close: an RST), as a server behind a failing load balancer can. Every
/// client sees "connection reset". (Not built on [`Listener`], which keeps
/// a clone of each stream and so would never close one.)
#[derive(Debug)]
pub struct Resetter {
    port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Resetter {
    pub fn start() -> Resetter {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("resetter: cannot bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let _ = listener.set_nonblocking(true);
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&connections), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        // Let the client's first bytes arrive, so that the
                        // reset hits its read.
                        std::thread::sleep(Duration::from_millis(20));
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Resetter {
            port,
            connections,
            stop,
            accept: Some(accept),
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn postgres_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Resetter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
