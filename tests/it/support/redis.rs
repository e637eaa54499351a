//! A real Redis server in a temporary directory, on a free port.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::certs::Pki;
use super::ports::free_port;
use super::process;

const START_TIMEOUT: Duration = Duration::from_secs(15);

fn redis_server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("REDIS_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "`redis-server` not found on PATH (nor /usr/bin, /usr/local/bin). \
                     Install it with `apt-get install redis-server`"
                )
            })
    })
}

/// `redis-cli`, next to `redis-server` (Redis Cluster is created with it).
fn redis_cli_bin() -> PathBuf {
    let bin = redis_server_bin().with_file_name("redis-cli");
    assert!(
        bin.is_file(),
        "`redis-cli` not found next to {}. Install it with `apt-get install redis-tools`",
        redis_server_bin().display()
    );
    bin
}

/// Encodes `args` as one RESP request (an array of bulk strings).
pub fn resp_request(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends each request of `requests` on one fresh connection to
/// 127.0.0.1:`port` and returns the raw reply bytes of the last one
/// (everything readable within a short while after it), lossily decoded.
fn raw_exchange(port: u16, requests: &[Vec<u8>]) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut last = Vec::new();
    for request in requests {
        stream.write_all(request)?;
        last.clear();
        let mut buf = [0u8; 4096];
        // A reply line ends in \r\n; read until we have a complete first
        // line and, for a bulk reply, its payload.
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            last.extend_from_slice(&buf[..n]);
            if reply_complete(&last) {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&last).into_owned())
}

/// Whether `buf` holds one complete simple RESP reply (`+`, `-`, `:` or a
/// `$` bulk string); arrays are treated as complete at their first line.
fn reply_complete(buf: &[u8]) -> bool {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if buf.first() == Some(&b'$') {
        let len: i64 = String::from_utf8_lossy(&buf[1..eol]).parse().unwrap_or(-1);
        if len < 0 {
            return true;
        }
        return buf.len() >= eol + 2 + len as usize + 2;
    }
    true
}

/// [`Redis::command`] on 127.0.0.1:`port`.
fn command_at(port: u16, password: Option<&str>, args: &[&str]) -> std::io::Result<String> {
    let mut requests = Vec::new();
    if let Some(pw) = password {
        requests.push(resp_request(&["AUTH", pw]));
    }
    requests.push(resp_request(args));
    raw_exchange(port, &requests)
}

/// A Redis server of its own, in a temporary directory, on a free port; no
/// persistence. Killed when dropped.
#[derive(Debug)]
pub struct Redis {
    dir: TempDir,
    log: PathBuf,
    port: u16,
    password: Option<String>,
    tls: Option<RedisTlsFiles>,
    /// With TLS: a plain-text port as well, on loopback, for the test's own
    /// commands (`CONFIG SET tls-*`, `CLIENT KILL`).
    admin_port: Option<u16>,
    /// A configuration file, given first (a sentinel's).
    conf: Option<PathBuf>,
    /// More arguments, after the usual ones (`--replicaof`, cluster mode).
    extra: Vec<String>,
    child: Option<Child>,
}

/// A TLS-only Redis: its certificate, the CA for client certificates, and
/// whether clients must present one.
#[derive(Debug, Clone)]
pub struct RedisTlsFiles {
    pub server: super::certs::CertFiles,
    pub ca: PathBuf,
    pub auth_clients: bool,
}

impl Redis {
    /// A running server without a password.
    ///
    /// Should another process take the port between [`free_port`] and the
    /// server's bind, this retries on other ports (up to 3 times).
    pub fn start() -> Redis {
        Redis::reserve().started_retrying()
    }

    /// A running server that requires `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> Redis {
        Redis::reserve_with_password(password).started_retrying()
    }

    fn started_retrying(self) -> Redis {
        process::start_on_a_free_port(self)
    }

    /// A directory and a port, with NO server running yet: call
    /// [`Redis::start_server`].
    pub fn reserve() -> Redis {
        redis_server_bin();
        let dir = tempfile::Builder::new()
            .prefix("readygate-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
        let log = dir.path().join("redis.log");
        Redis {
            dir,
            log,
            port: free_port(),
            password: None,
            tls: None,
            admin_port: None,
            conf: None,
            extra: Vec::new(),
            child: None,
        }
    }

    /// A running TLS-only server (`--port 0 --tls-port PORT`).
    pub fn start_tls(files: RedisTlsFiles) -> Redis {
        let mut redis = Redis::reserve();
        redis.tls = Some(files);
        redis.started_retrying()
    }

    /// A running TLS server with a plain-text port of its own for the test
    /// ([`Redis::command`] uses it), so that its certificates can be
    /// changed while it runs ([`Redis::set_tls`]).
    pub fn start_tls_with_admin_port(files: RedisTlsFiles) -> Redis {
        Redis::reserve_tls_with_admin_port(files).started_retrying()
    }

    /// As [`Redis::start_tls_with_admin_port`], with NO server running yet
    /// (more arguments to come: see [`start_with`]).
    fn reserve_tls_with_admin_port(files: RedisTlsFiles) -> Redis {
        let mut redis = Redis::reserve();
        redis.tls = Some(files);
        redis.admin_port = Some(free_port());
        redis
    }

    /// `CONFIG SET` of the server's certificate, key and CA (for client
    /// certificates, and for the server's own TLS connections to its master
    /// or cluster peers): new connections get them, open ones keep theirs.
    /// Needs [`Redis::start_tls_with_admin_port`].
    pub fn set_tls(&mut self, server: &super::certs::CertFiles, ca: &Path) {
        let path = |p: &Path| p.display().to_string();
        let (cert, key, ca) = (path(&server.cert), path(&server.key), path(ca));
        self.config_set(&[
            ("tls-cert-file", &cert),
            ("tls-key-file", &key),
            ("tls-ca-cert-file", &ca),
        ]);
        if let Some(tls) = &mut self.tls {
            tls.server = server.clone();
            tls.ca = ca.into();
        }
    }

    /// `CONFIG SET name value ...` (over the admin port with TLS), which
    /// must answer `+OK`.
    fn config_set(&self, pairs: &[(&str, &str)]) {
        let mut args = vec!["CONFIG", "SET"];
        for (name, value) in pairs {
            args.extend([*name, *value]);
        }
        let reply = self.command(&args).unwrap();
        assert!(reply.ends_with("+OK\r\n"), "{args:?}: {reply:?}");
    }

    /// The server restarted on the same ports with the certificate `server`
    /// and the CA `ca`: a sentinel has no `CONFIG SET`, so this is how its
    /// certificates change (as a pod restarted on a renewed Secret). Its
    /// state (the configuration file it rewrote) is kept.
    pub fn restart_with_tls(&mut self, server: &super::certs::CertFiles, ca: &Path) {
        let tls = self
            .tls
            .as_mut()
            .expect("restart_with_tls needs a TLS server");
        tls.server = server.clone();
        tls.ca = ca.into();
        self.start_server();
    }

    /// As [`Redis::reserve`], for a server that will require `password`.
    pub fn reserve_with_password(password: &str) -> Redis {
        let mut redis = Redis::reserve();
        redis.password = Some(password.to_owned());
        redis
    }

    /// Starts the server (or restarts it, if running) on the same port and
    /// waits until it answers PING (up to 15 s; panics with the log's tail
    /// otherwise).
    pub fn start_server(&mut self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    fn try_start_server(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            self.stop();
        }
        let mut cmd = Command::new(redis_server_bin());
        if let Some(conf) = &self.conf {
            cmd.arg(conf);
        }
        let plain = self.admin_port.unwrap_or(0).to_string();
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some(tls) => cmd
                .args(["--port", &plain, "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.server.cert)
                .arg("--tls-key-file")
                .arg(&tls.server.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args([
                    "--tls-auth-clients",
                    if tls.auth_clients { "yes" } else { "no" },
                ]),
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--logfile", "", "--dir"])
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        cmd.args(&self.extra);
        let child = process::spawn_logged(&mut cmd, &self.log, "redis-server");
        self.child = Some(child);
        let (port, password, tls) = (self.port, self.password.clone(), self.tls.is_some());
        let admin = self.admin_port;
        process::wait_ready(
            &mut self.child,
            ("redis-server", port, &self.log),
            START_TIMEOUT,
            "answer PING",
            || {
                // A TLS-only server cannot be asked in plain text: its port
                // accepting connections is the sign.
                if tls {
                    super::ports::port_is_open(port)
                        && admin.is_none_or(|admin| {
                            command_at(admin, password.as_deref(), &["PING"])
                                .is_ok_and(|r| r.starts_with("+PONG"))
                        })
                } else {
                    command_at(port, password.as_deref(), &["PING"])
                        .is_ok_and(|r| r.starts_with("+PONG"))
                }
            },
        )
    }

    /// PING over a fresh connection (after AUTH when a password is set);
    /// the raw reply, e.g. `+PONG\r\n`.
    pub fn ping(&self) -> std::io::Result<String> {
        self.command(&["PING"])
    }

    /// Sends one command over a fresh connection (after AUTH when a password
    /// is set) and returns the raw RESP reply, e.g. `$3\r\nbar\r\n`.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let port = self.admin_port.unwrap_or(self.port);
        command_at(port, self.password.as_deref(), args)
    }

    /// `CLIENT KILL TYPE normal`: every client connection ends (the
    /// gateway's included), as a restart or a proxy would end them.
    pub fn drop_clients(&self) {
        let reply = self.command(&["CLIENT", "KILL", "TYPE", "normal"]).unwrap();
        assert!(reply.contains(':'), "CLIENT KILL: {reply:?}");
    }

    /// How many connections on the TLS port have completed their handshake
    /// and sent a command, leaving out those of other servers (a sentinel
    /// names its connections, a replica's is flagged `S`): the
    /// application's. From `CLIENT LIST`, over the admin port.
    pub fn tls_clients(&self) -> usize {
        let tls_port = format!(" laddr=127.0.0.1:{} ", self.port);
        let list = self.command(&["CLIENT", "LIST"]).unwrap_or_default();
        list.lines()
            .map(|line| format!(" {line} "))
            .filter(|line| {
                line.contains(&tls_port)
                    && line.contains(" name= ")
                    && !line.contains(" cmd=NULL ")
                    && !line
                        .split(" flags=")
                        .nth(1)
                        .is_some_and(|f| f.split(' ').next().unwrap_or_default().contains('S'))
            })
            .count()
    }

    /// `CONFIG SET requirepass NEW`: the password changes on the server
    /// (sessions stay logged in); this handle uses the new one from now on.
    pub fn set_password(&mut self, new: &str) {
        let reply = self
            .command(&["CONFIG", "SET", "requirepass", new])
            .unwrap();
        assert!(
            reply.ends_with("+OK\r\n"),
            "CONFIG SET requirepass: {reply:?}"
        );
        self.password = Some(new.to_owned());
    }

    fn shutdown_with(&mut self, signal: Signal) {
        process::shutdown(&mut self.child, signal);
    }

    /// SIGTERM (SIGKILL after 10 s), waits for the exit and for the port to
    /// be closed, so [`Redis::start_server`] can reuse it. No-op when not
    /// running.
    pub fn stop(&mut self) {
        process::shutdown_and_release(&mut self.child, Signal::SIGTERM, self.port, "redis-server");
    }

    /// SIGKILL (a crash), then waits as [`Redis::stop`].
    pub fn kill(&mut self) {
        process::shutdown_and_release(&mut self.child, Signal::SIGKILL, self.port, "redis-server");
    }

    pub fn is_running(&mut self) -> bool {
        process::is_running(&mut self.child)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `redis://127.0.0.1:PORT/0` (no password, even if one is required).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT/0` when a password is set, else
    /// [`Redis::url`] (no escaping: keep test passwords URL-safe).
    pub fn url_with_password(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => self.url(),
        }
    }

    /// The directory the server runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl process::Server for Redis {
    fn try_start_server(&mut self) -> Result<(), String> {
        Redis::try_start_server(self)
    }

    fn port_mut(&mut self) -> &mut u16 {
        &mut self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.shutdown_with(Signal::SIGKILL);
    }
}

/// `INFO section` on 127.0.0.1:`port`, as text (empty when unanswered).
fn info(port: u16, section: &str) -> String {
    command_at(port, None, &["INFO", section]).unwrap_or_default()
}

impl Redis {
    /// `INFO section`, after AUTH when a password is set; empty on error.
    fn info(&self, section: &str) -> String {
        self.command(&["INFO", section]).unwrap_or_default()
    }
}

/// Started `server`, with `extra` arguments and an optional configuration
/// file written into its directory first.
fn start_with(mut server: Redis, conf: Option<String>, extra: &[String]) -> Redis {
    if let Some(text) = conf {
        let path = server.dir.path().join("redis.conf");
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        server.conf = Some(path);
    }
    server.extra = extra.to_vec();
    server.started_retrying()
}

impl Redis {
    /// A running replica of the server on 127.0.0.1:`master_port`.
    pub fn start_replica_of(master_port: u16) -> Redis {
        start_with(
            Redis::reserve(),
            None,
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                master_port.to_string(),
            ],
        )
    }
}

/// The name the test sentinels monitor their master by.
pub const SENTINEL_MASTER: &str = "mymaster";

/// A sentinel (`redis-server --sentinel`) watching 127.0.0.1:`master_port`
/// as [`SENTINEL_MASTER`] (quorum 2, `down-after-milliseconds` 500,
/// `failover-timeout` 3000).
pub fn start_sentinel(master_port: u16) -> Redis {
    start_sentinel_with(master_port, Passwords::default())
}

/// The passwords of a [`SentinelSet`]: the master's and replica's
/// (`requirepass`, `masterauth`, the sentinels' `auth-pass`), and the
/// sentinels' own (`requirepass`, `sentinel-pass`). `None`: no password.
#[derive(Clone, Copy, Default)]
pub struct Passwords<'a> {
    pub master: Option<&'a str>,
    pub sentinels: Option<&'a str>,
}

fn reserve_with(password: Option<&str>) -> Redis {
    password.map_or_else(Redis::reserve, Redis::reserve_with_password)
}

/// A sentinel's configuration file: [`SENTINEL_MASTER`] on
/// 127.0.0.1:`master_port`, with `passwords`.
fn sentinel_conf(master_port: u16, passwords: Passwords) -> String {
    let mut conf = format!(
        "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {SENTINEL_MASTER} 500\n\
         sentinel failover-timeout {SENTINEL_MASTER} 3000\n"
    );
    if let Some(pw) = passwords.master {
        conf.push_str(&format!("sentinel auth-pass {SENTINEL_MASTER} {pw}\n"));
    }
    if let Some(pw) = passwords.sentinels {
        conf.push_str(&format!("sentinel sentinel-pass {pw}\n"));
    }
    conf
}

/// As [`start_sentinel`], with `passwords`.
fn start_sentinel_with(master_port: u16, passwords: Passwords) -> Redis {
    start_with(
        reserve_with(passwords.sentinels),
        Some(sentinel_conf(master_port, passwords)),
        &["--sentinel".into()],
    )
}

/// The TLS files of a test server on `pki`'s server certificate, trusting
/// its CA, not asking clients for certificates.
fn server_tls(pki: &Pki) -> RedisTlsFiles {
    RedisTlsFiles {
        server: pki.server.clone(),
        ca: pki.ca.clone(),
        auth_clients: false,
    }
}

/// A master, a replica of it and three sentinels watching them (quorum 2,
/// `down-after-milliseconds` 500, `failover-timeout` 3000), each a real
/// `redis-server` on a free port. Killed when dropped.
pub struct SentinelSet {
    pub master: Redis,
    pub replica: Redis,
    pub sentinels: Vec<Redis>,
}

impl SentinelSet {
    /// Started, once the replica is in sync and every sentinel sees the
    /// replica and the two other sentinels (so a failover can be agreed).
    pub fn start() -> SentinelSet {
        SentinelSet::start_with(Passwords::default())
    }

    /// As [`SentinelSet::start`], the master, replica and sentinels
    /// requiring `passwords`.
    pub fn start_with(passwords: Passwords) -> SentinelSet {
        let master = reserve_with(passwords.master).started_retrying();
        let mut replica_args = vec![
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.port.to_string(),
        ];
        if let Some(pw) = passwords.master {
            replica_args.extend(["--masterauth".to_owned(), pw.to_owned()]);
        }
        let replica = start_with(reserve_with(passwords.master), None, &replica_args);
        let sentinels: Vec<Redis> = (0..3)
            .map(|_| start_sentinel_with(master.port, passwords))
            .collect();
        SentinelSet {
            master,
            replica,
            sentinels,
        }
        .settled()
    }

    /// As [`SentinelSet::start`], every server over TLS only, on `pki`'s
    /// server certificate, trusting its CA, with a plain admin port of its
    /// own for the test ([`Redis::command`]); the replica replicates and
    /// the sentinels watch over TLS (`tls-replication yes`). No client
    /// certificates asked.
    pub fn start_tls(pki: &Pki) -> SentinelSet {
        let tls = || Redis::reserve_tls_with_admin_port(server_tls(pki));
        let over_tls = ["--tls-replication".to_owned(), "yes".to_owned()];
        let master = tls().started_retrying();
        let mut replica_args = vec![
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.port.to_string(),
        ];
        replica_args.extend(over_tls.clone());
        let replica = start_with(tls(), None, &replica_args);
        let conf = sentinel_conf(master.port, Passwords::default());
        let mut sentinel_args = vec!["--sentinel".to_owned()];
        sentinel_args.extend(over_tls);
        let sentinels: Vec<Redis> = (0..3)
            .map(|_| start_with(tls(), Some(conf.clone()), &sentinel_args))
            .collect();
        SentinelSet {
            master,
            replica,
            sentinels,
        }
        .settled()
    }

    /// Every server of a [`SentinelSet::start_tls`] on `certs`' server
    /// certificate, trusting `ca`: `CONFIG SET` on the master and the
    /// replica, each sentinel restarted in turn (it has no `CONFIG SET`).
    pub fn set_tls(&mut self, certs: &Pki, ca: &Path) {
        self.master.set_tls(&certs.server, ca);
        self.replica.set_tls(&certs.server, ca);
        for s in &mut self.sentinels {
            s.restart_with_tls(&certs.server, ca);
        }
    }

    /// `self`, once the replica is in sync and every sentinel sees the
    /// replica and the two other sentinels; panics after 20 s.
    fn settled(self) -> SentinelSet {
        let set = self;
        let settled =
            super::wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
                set.replica
                    .info("replication")
                    .contains("master_link_status:up")
                    && set.sentinels.iter().all(|s| {
                        let text = s.info("sentinel");
                        text.contains("slaves=1") && text.contains("sentinels=3")
                    })
            });
        assert!(
            settled,
            "the sentinels never settled: {}",
            set.sentinels[0].info("sentinel")
        );
        set
    }

    /// `REDIS_SENTINEL_NODES`: `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn nodes(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The master's (and replica's) password changes to `new`: `CONFIG SET
    /// requirepass` on both, the replica's `masterauth`, and each
    /// sentinel's `auth-pass`. Sessions stay logged in.
    pub fn set_master_password(&mut self, new: &str) {
        self.master.set_password(new);
        let reply = self
            .replica
            .command(&["CONFIG", "SET", "masterauth", new])
            .unwrap();
        assert!(reply.ends_with("+OK\r\n"), "masterauth: {reply:?}");
        self.replica.set_password(new);
        for s in &self.sentinels {
            let reply = s
                .command(&["SENTINEL", "SET", SENTINEL_MASTER, "auth-pass", new])
                .unwrap();
            assert!(reply.ends_with("+OK\r\n"), "auth-pass: {reply:?}");
        }
    }

    /// The sentinels' own password changes to `new` (`ACL SETUSER default`:
    /// a sentinel has no `CONFIG SET`).
    pub fn set_sentinel_password(&mut self, new: &str) {
        let pass = format!(">{new}");
        for s in &mut self.sentinels {
            let reply = s
                .command(&["ACL", "SETUSER", "default", "resetpass", &pass])
                .unwrap();
            assert!(reply.ends_with("+OK\r\n"), "ACL SETUSER: {reply:?}");
            s.password = Some(new.to_owned());
        }
    }

    /// The master's port as the first sentinel names it now.
    pub fn master_port(&self) -> Option<u16> {
        master_port_in(&self.sentinels[0].info("sentinel"))
    }
}

/// The master's port as the sentinel on 127.0.0.1:`sentinel_port` names it
/// now (`INFO sentinel`).
pub fn sentinel_master_port(sentinel_port: u16) -> Option<u16> {
    master_port_in(&info(sentinel_port, "sentinel"))
}

/// The master's port in a sentinel's `INFO sentinel`.
fn master_port_in(text: &str) -> Option<u16> {
    let address = text.split("address=").nth(1)?;
    address
        .split([',', '\r', '\n'])
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// A Redis Cluster of three masters without replicas (`--cluster-port`
/// chosen free, so the bus port fits; `cluster-node-timeout` 1000 ms),
/// created with `redis-cli --cluster create`. The first node holds slots
/// 0-5460, the second 5461-10922, the third the rest. Killed when dropped.
pub struct RedisClusterSet {
    pub nodes: Vec<Redis>,
}

impl RedisClusterSet {
    pub fn start() -> RedisClusterSet {
        RedisClusterSet::start_with_password(None)
    }

    /// As [`RedisClusterSet::start`], every node requiring `password`.
    pub fn start_with_password(password: Option<&str>) -> RedisClusterSet {
        RedisClusterSet::start_nodes(|| reserve_with(password), &[], password)
    }

    /// As [`RedisClusterSet::start`], every node over TLS only (clients and
    /// cluster bus: `tls-cluster yes`), on `pki`'s server certificate,
    /// trusting its CA, with a plain admin port of its own for the test
    /// ([`Redis::command`], and `redis-cli --cluster create` over them).
    /// No client certificates asked of clients; on the bus, where Redis
    /// always asks one, each node shows `pki`'s client certificate
    /// (`tls-client-cert-file`: the server certificate is for servers
    /// only). A client over TLS is shown the nodes' TLS ports.
    pub fn start_tls(pki: &Pki) -> RedisClusterSet {
        let path = |p: &Path| p.display().to_string();
        let args = [
            "--tls-cluster".to_owned(),
            "yes".to_owned(),
            "--tls-client-cert-file".to_owned(),
            path(&pki.client.cert),
            "--tls-client-key-file".to_owned(),
            path(&pki.client.key),
        ];
        RedisClusterSet::start_nodes(
            || Redis::reserve_tls_with_admin_port(server_tls(pki)),
            &args,
            None,
        )
    }

    /// Three nodes from `reserve`, started in cluster mode with `more`
    /// arguments, joined with `redis-cli --cluster create` (over their
    /// admin ports when they have some) with `password`.
    fn start_nodes(
        reserve: impl Fn() -> Redis,
        more: &[String],
        password: Option<&str>,
    ) -> RedisClusterSet {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                let args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-port",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([free_port().to_string()])
                .chain(more.iter().cloned())
                .collect();
                start_with(reserve(), None, &args)
            })
            .collect();
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args(["--cluster", "create"])
            .args(
                nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.admin_port.unwrap_or(n.port))),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null());
        if let Some(pw) = password {
            cmd.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("run redis-cli --cluster create: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let set = RedisClusterSet { nodes };
        assert!(
            set.wait_state("ok", Duration::from_secs(20)),
            "the cluster never reached cluster_state:ok"
        );
        set
    }

    /// Every node of a [`RedisClusterSet::start_tls`] on `certs`' server
    /// certificate (and its client certificate on the bus), trusting `ca`
    /// (`CONFIG SET`): new connections get them, open ones (the bus's
    /// included) keep theirs.
    pub fn set_tls(&mut self, certs: &Pki, ca: &Path) {
        let path = |p: &Path| p.display().to_string();
        let (cert, key) = (path(&certs.client.cert), path(&certs.client.key));
        for node in &mut self.nodes {
            node.set_tls(&certs.server, ca);
            node.config_set(&[
                ("tls-client-cert-file", &cert),
                ("tls-client-key-file", &key),
            ]);
        }
    }

    /// [`Redis::drop_clients`] on every node.
    pub fn drop_clients(&self) {
        for node in &self.nodes {
            node.drop_clients();
        }
    }

    /// Every node's password changes to `new` (`CONFIG SET requirepass`);
    /// sessions stay logged in.
    pub fn set_password(&mut self, new: &str) {
        for node in &mut self.nodes {
            node.set_password(new);
        }
    }

    /// The ports of the nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Whether every running node says `cluster_state:STATE` within
    /// `timeout`.
    pub fn wait_state(&self, state: &str, timeout: Duration) -> bool {
        let line = format!("cluster_state:{state}");
        super::wait_until(timeout, Duration::from_millis(100), || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                n.command(&["CLUSTER", "INFO"])
                    .is_ok_and(|r| r.contains(&line))
            })
        })
    }
}

/// Whether the cluster node on 127.0.0.1:`port` says `cluster_state:ok`.
pub fn cluster_ok(port: u16) -> bool {
    command_at(port, None, &["CLUSTER", "INFO"]).is_ok_and(|r| r.contains("cluster_state:ok"))
}
