//! A real PostgreSQL server in a temporary directory, on a free port.
//!
//! One template cluster is initialised per machine and per PostgreSQL version
//! (`initdb` is slow) under `temp_dir()/readygate-test-pg-template-<version>`;
//! each [`Postgres`] copies it into its own [`TempDir`]. When the tests run as
//! root, `initdb` and `postgres` (which refuse to run as root) run as the
//! `postgres` user through `CommandExt::uid/gid`, so the child we spawn *is*
//! the postmaster and can be signalled and waited for directly.
//!
//! For high availability: a primary ([`Postgres::start_primary`]), its
//! streaming standbys (`pg_basebackup -R`, [`Postgres::start_standby`]),
//! promotion ([`Postgres::promote`]) and a server turned read-only
//! ([`Postgres::set_read_only`]); [`multi_host_url`] lists several servers
//! in one libpq URL.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::ports::free_port;
use super::{process, tail_file, template};

/// How long to wait for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the PostgreSQL binaries are, and as whom to run the server.
#[derive(Debug)]
struct PgInstall {
    bin: PathBuf,
    /// `postgres --version`, e.g. "15.14", sanitised for a file name.
    version: String,
    /// `Some((uid, gid))` of the `postgres` user when we are root.
    run_as: Option<(u32, u32)>,
}

impl PgInstall {
    fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A command for a server-side binary (`initdb`, `postgres`), run as the
    /// `postgres` user when we are root, with a clean environment.
    fn server_command(&self, name: &str, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.tool(name));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .current_dir(cwd)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            // std calls setgroups([]) then setgid then setuid in the child.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// A command for a client binary (`psql`, `pg_isready`), with a clean
    /// environment so no `PG*` variable of the caller leaks in.
    fn client_command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.tool(name));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .env("PGCONNECT_TIMEOUT", "5")
            // Plain, whatever the server offers: tests control TLS themselves.
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null());
        cmd
    }

    fn chown(&self, path: &Path) {
        template::chown(path, self.run_as);
    }

    /// The path of `name`, a binary that only some tests need (e.g.
    /// `pg_basebackup`, `pg_ctl`); panics naming the package when missing.
    fn required_tool(&self, name: &str) -> PathBuf {
        let path = self.tool(name);
        if !path.is_file() {
            panic!(
                "PostgreSQL binary `{name}` not found in {} (from PG_BIN or \
                 /usr/lib/postgresql/*/bin). Install it with `apt-get install postgresql`",
                self.bin.display()
            );
        }
        path
    }

    /// Runs the server-side tool `name` with `args` (as the `postgres` user
    /// when root, in `cwd`); panics with its output when it fails, with
    /// `context` (e.g. a log's tail) appended.
    fn run_server_tool(
        &self,
        name: &str,
        args: &[&OsStr],
        cwd: &Path,
        context: impl Fn() -> String,
    ) {
        self.required_tool(name);
        let out = self
            .server_command(name, cwd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        if !out.status.success() {
            panic!(
                "{name} {args:?} failed ({}):\n{}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                context()
            );
        }
    }
}

fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

fn locate_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            let bin = entry.path().join("bin");
            if !bin.join("postgres").is_file() {
                continue;
            }
            let key = version_key(&entry.file_name().to_string_lossy());
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, bin));
            }
        }
    }
    match best {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found: no /usr/lib/postgresql/<version>/bin/postgres \
             and PG_BIN is not set. Install them with `apt-get install postgresql` \
             (or set PG_BIN to the directory holding initdb, postgres, pg_isready and psql)"
        ),
    }
}

fn install() -> &'static PgInstall {
    static INSTALL: OnceLock<PgInstall> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let bin = locate_bin_dir();
        for name in ["initdb", "postgres", "pg_isready", "psql"] {
            if !bin.join(name).is_file() {
                panic!(
                    "PostgreSQL binary `{name}` not found in {} (from PG_BIN or \
                     /usr/lib/postgresql/*/bin). Install it with `apt-get install postgresql`",
                    bin.display()
                );
            }
        }
        let out = Command::new(bin.join("postgres"))
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}/postgres --version: {e}", bin.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
        let version: String = text
            .split_whitespace()
            .nth(2)
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let run_as = template::server_user("postgres", "postgresql");
        PgInstall {
            bin,
            version,
            run_as,
        }
    })
}

fn is_initialised(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file() && dir.join("global").join("pg_control").is_file()
}

/// The template cluster for this machine and PostgreSQL version, made by
/// `initdb` on first use (see [`template::template`]).
fn template_dir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let pg = install();
        let name = format!("readygate-test-pg-template-{}", pg.version);
        template::template(&name, pg.run_as, is_initialised, |staging| {
            let out = pg
                .server_command("initdb", staging.parent().unwrap_or(staging))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "-D",
                ])
                .arg(staging)
                .output()
                .map_err(|e| format!("cannot run initdb: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "initdb failed ({}):\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
    })
}

/// A PostgreSQL server of its own, in a temporary directory, on a free port.
///
/// Superuser `postgres`, database `postgres`, trust authentication (until
/// [`Postgres::require_password`]). The server is killed when dropped.
#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The processes [`Postgres::freeze`] stopped, until [`Postgres::thaw`].
    frozen: Vec<u32>,
    /// Extra `-c name=value` server settings ([`Postgres::start_with`]).
    settings: Vec<String>,
}

impl Postgres {
    /// A running server.
    ///
    /// Should another process take the port between [`free_port`] and the
    /// server's bind, this retries on other ports (up to 3 times).
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// A running server with extra server settings, e.g.
    /// `[("max_connections", "2")]` (passed as `-c name=value`).
    pub fn start_with(settings: &[(&str, &str)]) -> Postgres {
        let mut pg = Postgres::reserve();
        pg.settings = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        process::start_on_a_free_port(pg)
    }

    /// A data directory and a port, with NO server running yet (for
    /// "the database comes up late" tests): call [`Postgres::start_server`].
    pub fn reserve() -> Postgres {
        let pg = install();
        let (dir, data) = template::copy(template_dir(), "readygate-pg-", pg.run_as);
        let log = dir.path().join("postgres.log");
        Postgres {
            dir,
            data,
            log,
            port: free_port(),
            child: None,
            frozen: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// Starts the server (or restarts it, if running) on the same port and
    /// data directory, and waits until it accepts connections (up to 15 s;
    /// panics with the server log's tail otherwise).
    pub fn start_server(&mut self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    fn try_start_server(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            self.stop();
        }
        let port = self.port.to_string();
        let mut cmd = install().server_command("postgres", self.dir.path());
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &port, "-k"])
            .arg(&self.data)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
            ])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]));
        self.child = Some(process::spawn_logged(&mut cmd, &self.log, "postgres"));
        // Ready: accepting connections on its own unix socket (so another
        // server that took the port cannot fool this).
        let (data, port) = (&self.data, self.port);
        process::wait_ready(
            &mut self.child,
            ("postgres", port, &self.log),
            START_TIMEOUT,
            "accept connections",
            || pg_isready_at(data.as_os_str(), port) == 0,
        )
    }

    fn shutdown_with(&mut self, signal: Signal) {
        process::shutdown(&mut self.child, signal);
    }

    /// Fast shutdown (SIGINT to the postmaster): waits for it to exit and for
    /// the port to be closed, so [`Postgres::start_server`] can reuse it.
    /// No-op when not running.
    pub fn stop(&mut self) {
        process::shutdown_and_release(&mut self.child, Signal::SIGINT, self.port, "postgres");
    }

    /// Immediate shutdown (SIGQUIT: no shutdown checkpoint, like a crash,
    /// but children exit with the postmaster); waits as [`Postgres::stop`].
    pub fn stop_immediate(&mut self) {
        process::shutdown_and_release(&mut self.child, Signal::SIGQUIT, self.port, "postgres");
    }

    pub fn is_running(&mut self) -> bool {
        process::is_running(&mut self.child)
    }

    /// Freezes the server as a hung machine would: the postmaster and every
    /// process it started (backends, background workers); see
    /// [`process::freeze`]. Panics when the server is not running.
    pub fn freeze(&mut self) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("freeze: postgres on port {} is not running", self.port));
        self.frozen = process::freeze(pid);
    }

    /// Undoes [`Postgres::freeze`]. No-op when not frozen.
    pub fn thaw(&mut self) {
        process::thaw(&mut self.frozen);
    }

    /// The postmaster's PID while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/postgres` (no escaping:
    /// keep test passwords URL-safe).
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The directory of the unix socket (also the data directory).
    pub fn socket_dir(&self) -> &Path {
        &self.data
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `psql` as superuser `postgres` over the unix socket, without
    /// `.psqlrc` and never prompting for a password.
    fn socket_psql(&self) -> Command {
        let mut cmd = install().client_command("psql");
        cmd.arg("-h")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-X", "-w"]);
        cmd
    }

    fn psql_output(&self, sql: &str) -> Output {
        self.socket_psql()
            .args(["-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"))
    }

    /// Runs `sql` as superuser `postgres` over the unix socket (so it works
    /// after [`Postgres::require_password`]) with `psql -Atc` and returns its
    /// stdout without the trailing newline; panics with stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_output(sql);
        if !out.status.success() {
            panic!(
                "psql -c {sql:?} on port {} failed ({}): {}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        while text.ends_with('\n') {
            text.pop();
        }
        text
    }

    /// Runs `sql` over TCP (127.0.0.1) as `user` with `password`
    /// (`PGPASSWORD`; `None`: no password, never prompts). `Ok(stdout)` or
    /// `Err(stderr)`.
    pub fn psql_tcp(
        &self,
        user: &str,
        password: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        psql_tcp_at(self.port, (user, password), "postgres", sql)
    }

    /// Creates `role` (LOGIN, `password`) and makes every TCP login need a
    /// password ([`Postgres::require_tcp_passwords`]). Needs a running
    /// server that takes writes (on a standby, create the role on its
    /// primary).
    pub fn require_password(&mut self, role: &str, password: &str) {
        let role_ident = format!("\"{}\"", role.replace('"', "\"\""));
        let pw_literal = format!("'{}'", password.replace('\'', "''"));
        self.psql(&format!(
            "CREATE ROLE {role_ident} LOGIN PASSWORD {pw_literal}"
        ));
        self.require_tcp_passwords();
    }

    /// Makes every TCP login need a password (`host all all 127.0.0.1/32
    /// scram-sha-256`; the unix socket stays `trust` for [`Postgres::psql`],
    /// and replication connections stay trusted, so that a standby keeps
    /// streaming), reloads the configuration and waits until a
    /// password-less TCP login is refused. Needs a running server, a
    /// standby too.
    pub fn require_tcp_passwords(&mut self) {
        let hba = self.data.join("pg_hba.conf");
        fs::write(
            &hba,
            "# written by the readygate test support (require_tcp_passwords)\n\
             local all all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n\
             local replication all trust\n\
             host replication all 127.0.0.1/32 trust\n",
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
        install().chown(&hba);
        assert_eq!(self.psql("SELECT pg_reload_conf()"), "t");
        // The reload is asynchronous: wait until it has taken effect.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.psql_tcp("postgres", None, "SELECT 1") {
                Err(e) if e.contains("password") => return,
                other => {
                    if Instant::now() >= deadline {
                        panic!(
                            "pg_hba.conf reload did not take effect on port {}: {other:?}",
                            self.port
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A session holding one connection slot of a [`Postgres`] until dropped:
/// an idle `psql` over the unix socket, waiting for input that never comes.
/// (An idle backend notices at once that its client is gone; one busy in
/// `pg_sleep` would keep the slot.)
#[derive(Debug)]
pub struct HeldSession(Child);

impl HeldSession {
    /// Whether `psql` still runs (it exits when it cannot connect, e.g.
    /// when the server has no slot left).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for HeldSession {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Postgres {
    /// Opens a session that holds a connection slot (see [`HeldSession`]).
    /// The session may still be connecting when this returns: wait for the
    /// effect you need (e.g. that the server refuses a new session).
    pub fn hold_session(&self) -> HeldSession {
        let child = self
            .socket_psql()
            .arg("-q")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        HeldSession(child)
    }
}

impl Postgres {
    /// Serves TLS with `server`'s certificate and key, trusting `ca` for
    /// client certificates: `ssl = on`, the files copied into the data
    /// directory (the key readable by the server's user only), then a
    /// reload, waited for. Calling it again swaps the certificate (a
    /// reload, as an operator rotating one would).
    pub fn set_tls(&mut self, server: &super::certs::CertFiles, ca: &Path) {
        let copy = |from: &Path, name: &str| {
            let to = self.data.join(name);
            fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
            fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
            install().chown(&to);
            to
        };
        // A new name each time, so that the reload can be seen to be done.
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let cert = copy(&server.cert, &format!("server-{serial}.crt"));
        let key = copy(&server.key, &format!("server-{serial}.key"));
        let ca = copy(ca, &format!("ca-{serial}.crt"));
        let conf = self.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "\n# readygate test support: TLS\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
            cert.display(),
            key.display(),
            ca.display()
        ));
        fs::write(&conf, text).unwrap();
        assert_eq!(self.psql("SELECT pg_reload_conf()"), "t");
        let want = cert.display().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.psql("SHOW ssl_cert_file") != want || self.psql("SHOW ssl") != "on" {
            if Instant::now() >= deadline {
                panic!(
                    "TLS settings not taken on port {}; log tail:\n{}",
                    self.port,
                    tail_file(&self.log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Accepts TCP connections over TLS only (`hostssl`; a plain client gets
    /// "no pg_hba.conf entry ... no encryption"), with a client certificate
    /// whose CN is the user name when `client_cert` (`cert` authentication).
    /// The unix socket stays `trust` for [`Postgres::psql`].
    pub fn require_tls(&mut self, client_cert: bool) {
        let method = if client_cert { "cert" } else { "trust" };
        let hba = self.data.join("pg_hba.conf");
        fs::write(
            &hba,
            format!(
                "# written by the readygate test support (require_tls)\n\
                 local all all trust\n\
                 hostssl all all 127.0.0.1/32 {method}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
        install().chown(&hba);
        assert_eq!(self.psql("SELECT pg_reload_conf()"), "t");
        // Wait until a plain TCP login is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(self.psql_tcp("postgres", None, "SELECT 1"), Err(e) if e.contains("no encryption"))
        {
            if Instant::now() >= deadline {
                panic!("pg_hba.conf (hostssl) not taken on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Settings of a primary that standbys stream from (`-c name=value`):
/// `wal_level = replica` is the default but is the point, so it is said;
/// WAL is kept for a standby that starts late.
const PRIMARY_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "replica"),
    ("max_wal_senders", "10"),
    ("wal_keep_size", "128MB"),
];

/// How long a standby may take to catch up, to be promoted, or a reload to
/// take effect.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Streaming replication: a primary and its standbys (`pg_basebackup -R`),
/// promotion, and a server turned read-only.
impl Postgres {
    /// A running server that standbys can stream from ([`Postgres::start_standby`]):
    /// `wal_level = replica`, `max_wal_senders`, and replication connections
    /// from 127.0.0.1 trusted in `pg_hba.conf`.
    pub fn start_primary() -> Postgres {
        let mut pg = Postgres::reserve();
        pg.settings = PRIMARY_SETTINGS
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let hba = pg.data.join("pg_hba.conf");
        fs::write(
            &hba,
            "# written by the readygate test support (start_primary)\n\
             local all all trust\n\
             host all all 127.0.0.1/32 trust\n\
             local replication all trust\n\
             host replication all 127.0.0.1/32 trust\n",
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
        install().chown(&hba);
        process::start_on_a_free_port(pg)
    }

    /// A streaming standby of this running primary (made by
    /// [`Postgres::start_primary`]), in a temporary directory of its own, on
    /// a free port: `pg_basebackup -h 127.0.0.1 -p <primary port> -U postgres
    /// -D <data> -R -X stream` (a fast checkpoint), then started with
    /// `hot_standby = on`. Returns once it accepts connections, is in
    /// recovery and streams from the primary (panics with its log's tail
    /// otherwise). Killed when dropped, like any [`Postgres`].
    pub fn start_standby(&self) -> Postgres {
        let pg = install();
        let dir = tempfile::Builder::new()
            .prefix("readygate-pg-standby-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap_or_else(|e| panic!("create {}: {e}", data.display()));
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", data.display()));
        pg.chown(&data);
        let port = self.port.to_string();
        let args: Vec<&OsStr> = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-w",
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
            "-D",
        ]
        .into_iter()
        .map(OsStr::new)
        .chain([data.as_os_str()])
        .collect();
        pg.run_server_tool("pg_basebackup", &args, dir.path(), || {
            format!("primary's log tail:\n{}", tail_file(&self.log, 20))
        });
        let log = dir.path().join("postgres.log");
        let mut settings = self.settings.clone();
        settings.push("hot_standby=on".to_owned());
        let standby = Postgres {
            dir,
            data,
            log,
            port: free_port(),
            child: None,
            frozen: Vec::new(),
            settings,
        };
        let standby = process::start_on_a_free_port(standby);
        standby.wait_for(
            &format!("be in recovery, streaming from port {}", self.port),
            || {
                standby.try_psql("SELECT pg_is_in_recovery()").as_deref() == Ok("t")
                    && standby
                        .try_psql("SELECT status FROM pg_stat_wal_receiver")
                        .as_deref()
                        == Ok("streaming")
            },
        );
        standby
    }

    /// Whether the server is in recovery (`SELECT pg_is_in_recovery()`): a
    /// standby. Panics when it cannot be asked.
    pub fn is_in_recovery(&self) -> bool {
        self.psql("SELECT pg_is_in_recovery()") == "t"
    }

    /// Waits until this standby has replayed everything `primary` has
    /// committed so far: a `CHECKPOINT` on the primary flushes its WAL (the
    /// servers run with `synchronous_commit = off`, and only flushed WAL is
    /// sent), then `pg_last_wal_replay_lsn()` must reach the primary's
    /// `pg_current_wal_flush_lsn()`.
    pub fn wait_caught_up(&self, primary: &Postgres) {
        primary.psql("CHECKPOINT");
        let lsn = primary.psql("SELECT pg_current_wal_flush_lsn()");
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        self.wait_for(&format!("replay the primary's WAL up to {lsn}"), || {
            self.try_psql(&sql).as_deref() == Ok("t")
        });
    }

    /// Promotes this standby (`pg_ctl promote -D <data> -w`) and waits
    /// until it has left recovery: it takes writes from then on.
    pub fn promote(&mut self) {
        let data = self.data.clone();
        let log = self.log.clone();
        let args: Vec<&OsStr> = ["promote", "-w", "-t", "30", "-D"]
            .into_iter()
            .map(OsStr::new)
            .chain([data.as_os_str()])
            .collect();
        install().run_server_tool("pg_ctl", &args, self.dir.path(), || {
            format!("log tail:\n{}", tail_file(&log, 20))
        });
        self.wait_for("leave recovery after pg_ctl promote", || {
            self.try_psql("SELECT pg_is_in_recovery()").as_deref() == Ok("f")
        });
    }

    /// Turns every new transaction read-only (`on`) or back
    /// (`ALTER SYSTEM SET default_transaction_read_only`, then
    /// `pg_reload_conf()`), and waits until a new session sees it.
    pub fn set_read_only(&mut self, on: bool) {
        let value = if on { "on" } else { "off" };
        self.psql(&format!(
            "ALTER SYSTEM SET default_transaction_read_only = {value}"
        ));
        assert_eq!(self.psql("SELECT pg_reload_conf()"), "t");
        self.wait_for(
            &format!("take default_transaction_read_only = {value}"),
            || {
                self.try_psql("SHOW default_transaction_read_only")
                    .as_deref()
                    == Ok(value)
            },
        );
    }

    /// `127.0.0.1:PORT`, as `/ready` and the logs name a server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// [`Postgres::psql`] without panicking: `Err(stderr)` on failure.
    fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = self.psql_output(sql);
        if out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            while text.ends_with('\n') {
                text.pop();
            }
            Ok(text)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Polls `condition` every 20 ms for [`REPLICATION_TIMEOUT`]; panics
    /// saying what the server did not `what`, with its log's tail.
    fn wait_for(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + REPLICATION_TIMEOUT;
        while !condition() {
            if Instant::now() >= deadline {
                panic!(
                    "postgres on port {} did not {what} within {REPLICATION_TIMEOUT:?}; log tail:\n{}",
                    self.port,
                    tail_file(&self.log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A libpq multi-host URL over 127.0.0.1: `postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres`,
/// with `?target_session_attrs=VALUE` when given.
pub fn multi_host_url(ports: &[u16], target_session_attrs: Option<&str>) -> String {
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut url = format!("postgres://postgres@{}/postgres", hosts.join(","));
    if let Some(value) = target_session_attrs {
        url.push_str(&format!("?target_session_attrs={value}"));
    }
    url
}

impl process::Server for Postgres {
    fn try_start_server(&mut self) -> Result<(), String> {
        Postgres::try_start_server(self)
    }

    fn port_mut(&mut self) -> &mut u16 {
        &mut self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A frozen server could not act on its shutdown signal.
        self.thaw();
        // SIGQUIT (immediate shutdown) also makes the postmaster's children
        // exit before it does; SIGKILL after 10 s.
        self.shutdown_with(Signal::SIGQUIT);
    }
}

/// Runs `sql` with `psql -Atc` over TCP on 127.0.0.1:`port` as `user` with
/// its password (`PGPASSWORD`; `None`: no password, never prompts), in
/// `database`, without `.psqlrc`: `Ok(stdout)` without the trailing
/// newline, or `Err(stderr)`. For any server speaking the protocol (a
/// [`Postgres`], a [`super::PgBouncer`] and its admin console).
pub fn psql_tcp_at(
    port: u16,
    (user, password): (&str, Option<&str>),
    database: &str,
    sql: &str,
) -> Result<String, String> {
    let mut cmd = install().client_command("psql");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        user,
        "-d",
        database,
    ])
    .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-Atc", sql]);
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    if out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        while text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `sql` as [`psql_tcp_at`] does, and reads its output as a table:
/// one map a row, from column name to value (for admin commands such as
/// PgBouncer's `SHOW STATS`, whose columns differ between versions).
pub fn psql_rows_at(
    port: u16,
    user: &str,
    database: &str,
    sql: &str,
) -> Result<Vec<BTreeMap<String, String>>, String> {
    let out = install()
        .client_command("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            database,
        ])
        .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-A", "-F", "|"])
        .args(["-P", "footer=off", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('|').collect();
    Ok(lines
        .map(|line| {
            header
                .iter()
                .zip(line.split('|'))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect()
        })
        .collect())
}

/// Runs `pg_isready -h 127.0.0.1 -p PORT` once (1 s timeout) and returns its
/// exit code: 0 accepting, 1 rejecting (e.g. starting up), 2 no response.
pub fn pg_isready(port: u16) -> i32 {
    pg_isready_at(std::ffi::OsStr::new("127.0.0.1"), port)
}

/// `pg_isready` against `host` (an address or a unix socket directory).
fn pg_isready_at(host: &std::ffi::OsStr, port: u16) -> i32 {
    install()
        .client_command("pg_isready")
        .arg("-q")
        .arg("-h")
        .arg(host)
        .args(["-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-t", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run pg_isready: {e}"))
        .code()
        .unwrap_or(-1)
}
