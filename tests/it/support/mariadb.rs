//! A real MariaDB server in a temporary directory, on a free port.
//!
//! One template data directory is made per machine and per MariaDB version
//! (`mariadb-install-db`, then the accounts below) under
//! `temp_dir()/readygate-test-mariadb-template-<version>`; each [`Mariadb`]
//! copies it (about 20 MB: small InnoDB files) into its own [`TempDir`]. When
//! the tests run as root, `mariadbd` runs as the `mysql` user through
//! `CommandExt::uid/gid`, so the child we spawn *is* the server and can be
//! signalled and waited for directly.
//!
//! Accounts, with real grants: `root` without password (the tests' own
//! statements, over the unix socket) and [`APP_USER`] with [`APP_PASSWORD`],
//! allowed on the database [`DATABASE`] only (what the gateway uses).

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::ports::free_port;
use super::{process, template, wait_until};

/// How long to wait for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The account the gateway uses.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-Pass-8642";
/// The database [`APP_USER`] may use.
pub const DATABASE: &str = "app";

/// Options of every `mariadbd` run, the template's included (InnoDB's file
/// sizes must not change between them): small files, so that a copy is
/// quick, and no durability, which tests do not need.
const SERVER_OPTIONS: &[&str] = &[
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=16M",
    "--innodb-flush-log-at-trx-commit=0",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--performance-schema=OFF",
];

/// Where the MariaDB binaries are, and as whom to run the server.
#[derive(Debug)]
struct Install {
    server: PathBuf,
    install_db: PathBuf,
    client: PathBuf,
    /// `mariadbd --version`'s number, e.g. "10.11.19".
    version: String,
    run_as: Option<(u32, u32)>,
}

fn locate(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "MariaDB binary `{name}` not found (in PATH, /usr/sbin or /usr/bin). \
                 Install it with `apt-get install mariadb-server`"
            )
        })
}

fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let server = locate("mariadbd");
        let out = Command::new(&server)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", server.display()));
        // "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu ..."
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .split_whitespace()
            .skip_while(|word| *word != "Ver")
            .nth(1)
            .and_then(|v| v.split('-').next())
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        Install {
            server,
            install_db: locate("mariadb-install-db"),
            client: locate("mariadb"),
            version,
            run_as: template::server_user("mysql", "mariadb-server"),
        }
    })
}

impl Install {
    /// `mariadbd` on `data`, listening on the unix socket `socket` and, with
    /// a port, on 127.0.0.1; as the `mysql` user when we are root.
    fn server_command(&self, data: &Path, socket: &Path, port: Option<u16>) -> Command {
        let mut cmd = Command::new(&self.server);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .current_dir(data)
            .stdin(Stdio::null())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            // Its own temporary files, not the machine's shared /tmp (a
            // temp table file there vanished under one test, once).
            .arg(format!("--tmpdir={}", data.display()))
            .arg(format!(
                "--pid-file={}",
                data.join("mariadbd.pid").display()
            ))
            .args(SERVER_OPTIONS);
        match port {
            Some(port) => cmd.args([format!("--port={port}"), "--bind-address=127.0.0.1".into()]),
            None => cmd.arg("--skip-networking"),
        };
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// The `mariadb` client as `root` over the unix socket `socket`.
    fn client_command(&self, socket: &Path) -> Command {
        let mut cmd = Command::new(&self.client);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["-u", "root", "--connect-timeout=5", "-N", "-B"]);
        cmd
    }
}

/// Whether something answers on the unix socket `socket` as a MySQL server
/// does: it speaks first (a handshake, or an error such as "too many
/// connections").
fn answers(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).is_ok()
}

fn is_initialised(dir: &Path) -> bool {
    dir.join("mysql").join("global_priv.MAI").is_file()
        && dir.join(DATABASE).join("db.opt").is_file()
}

/// The template data directory for this machine and MariaDB version: the
/// system tables, then the accounts, set by a server run once on a unix
/// socket only (see [`template::template`]).
fn template_dir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let db = install();
        let name = format!("readygate-test-mariadb-template-{}", db.version);
        template::template(&name, db.run_as, is_initialised, |staging| {
            let mut cmd = Command::new(&db.install_db);
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", staging.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .args(SERVER_OPTIONS)
                .stdin(Stdio::null());
            if db.run_as.is_some() {
                cmd.arg("--user=mysql");
            }
            let out = cmd
                .output()
                .map_err(|e| format!("cannot run mariadb-install-db: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mariadb-install-db failed ({}):\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let socket = staging.join("setup.sock");
            let mut server = db
                .server_command(staging, &socket, None)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot spawn mariadbd: {e}"))?;
            let up = wait_until(START_TIMEOUT, Duration::from_millis(20), || {
                answers(&socket)
            });
            let setup = up.then(|| {
                db.client_command(&socket)
                    .arg("-e")
                    .arg(format!(
                        "CREATE DATABASE {DATABASE}; \
                         CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'; \
                         GRANT ALL ON {DATABASE}.* TO '{APP_USER}'@'%';"
                    ))
                    .output()
            });
            process::signal_pid(server.id(), Signal::SIGTERM);
            let mut stderr = String::new();
            if let Some(mut pipe) = server.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            let _ = server.wait();
            match setup {
                None => Err(format!(
                    "mariadbd did not start for the template:\n{stderr}"
                )),
                Some(Err(e)) => Err(format!("cannot run the mariadb client: {e}")),
                Some(Ok(out)) if !out.status.success() => Err(format!(
                    "setting up the template's accounts failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )),
                Some(Ok(_)) => Ok(()),
            }
        })
    })
}

/// A MariaDB server of its own, in a temporary directory, on a free port.
/// Killed when dropped.
#[derive(Debug)]
pub struct Mariadb {
    dir: TempDir,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The processes [`Mariadb::freeze`] stopped, until [`Mariadb::thaw`].
    frozen: Vec<u32>,
    /// More server options (TLS: see [`Mariadb::start_tls`]).
    options: Vec<String>,
}

impl Mariadb {
    /// A running server (see [`process::start_on_a_free_port`]).
    pub fn start() -> Mariadb {
        process::start_on_a_free_port(Mariadb::reserve())
    }

    /// A data directory and a port, with NO server running yet (for "the
    /// database comes up late" tests): call [`Mariadb::start_server`].
    pub fn reserve() -> Mariadb {
        let db = install();
        let (dir, data) = template::copy(template_dir(), "readygate-mariadb-", db.run_as);
        let log = dir.path().join("mariadbd.log");
        Mariadb {
            dir,
            data,
            log,
            port: free_port(),
            child: None,
            frozen: Vec::new(),
            options: Vec::new(),
        }
    }

    /// A running server with TLS: `server`'s certificate and key, `ca` for
    /// client certificates (the files copied into the data directory, for
    /// the server's user), and with `require_tls` plain TCP refused
    /// (`--require-secure-transport`).
    pub fn start_tls(server: &super::certs::CertFiles, ca: &Path, require_tls: bool) -> Mariadb {
        let mut db = Mariadb::reserve();
        let copy = |from: &Path, name: &str| {
            let to = db.data.join(name);
            std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
            template::chown(&to, install().run_as);
            to.display().to_string()
        };
        let (cert, key, ca) = (
            copy(&server.cert, "server.crt"),
            copy(&server.key, "server.key"),
            copy(ca, "ca.crt"),
        );
        db.options = vec![
            format!("--ssl-cert={cert}"),
            format!("--ssl-key={key}"),
            format!("--ssl-ca={ca}"),
        ];
        if require_tls {
            db.options.push("--require-secure-transport=ON".into());
        }
        process::start_on_a_free_port(db)
    }

    /// Starts the server (or restarts it, if running) on the same port and
    /// data directory, and waits until it accepts connections (panics with
    /// the server log's tail otherwise).
    pub fn start_server(&mut self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    fn try_start_server(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            self.stop();
        }
        let mut cmd = install().server_command(&self.data, &self.socket(), Some(self.port));
        cmd.args(&self.options);
        self.child = Some(process::spawn_logged(&mut cmd, &self.log, "mariadbd"));
        // Ready: answering on its own unix socket (so another server that
        // took the port cannot fool this).
        let socket = self.socket();
        process::wait_ready(
            &mut self.child,
            ("mariadbd", self.port, &self.log),
            START_TIMEOUT,
            "accept connections",
            || answers(&socket),
        )
    }

    /// Normal shutdown (SIGTERM): waits for the exit and for the port to be
    /// closed, so [`Mariadb::start_server`] can reuse it. No-op when not
    /// running.
    pub fn stop(&mut self) {
        process::shutdown_and_release(&mut self.child, Signal::SIGTERM, self.port, "mariadbd");
    }

    pub fn is_running(&mut self) -> bool {
        process::is_running(&mut self.child)
    }

    /// Freezes the server as a hung machine would (see
    /// [`process::freeze`]). Panics when the server is not running.
    pub fn freeze(&mut self) {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("freeze: mariadbd on port {} is not running", self.port));
        self.frozen = process::freeze(pid);
    }

    /// Undoes [`Mariadb::freeze`]. No-op when not frozen.
    pub fn thaw(&mut self) {
        process::thaw(&mut self.frozen);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn socket(&self) -> PathBuf {
        self.data.join("mysqld.sock")
    }

    /// `mysql://app:PASSWORD@127.0.0.1:PORT/app`
    pub fn url(&self) -> String {
        self.url_for("mysql", APP_USER, APP_PASSWORD, DATABASE)
    }

    /// `SCHEME://USER:PASSWORD@127.0.0.1:PORT/DATABASE` (no escaping: keep
    /// test passwords URL-safe).
    pub fn url_for(&self, scheme: &str, user: &str, password: &str, database: &str) -> String {
        format!(
            "{scheme}://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Runs `sql` as `root` over the unix socket (root may use the one
    /// connection MariaDB keeps for administrators when `max_connections`
    /// is reached) and returns its output (tab-separated rows, no header);
    /// panics with stderr on failure.
    pub fn sql(&self, sql: &str) -> String {
        sql_at(&self.socket(), sql)
    }

    /// Connections of [`APP_USER`] running a statement that starts with
    /// `prefix` right now.
    pub fn running(&self, prefix: &str) -> usize {
        self.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = '{APP_USER}' AND INFO LIKE '{prefix}%'"
        ))
        .parse()
        .unwrap_or_else(|e| panic!("PROCESSLIST count: {e}"))
    }

    /// Takes every connection slot: `n` other clients (`mariadb` processes,
    /// as [`APP_USER`] over TCP), each holding a connection in `SELECT
    /// SLEEP(600)`, then `max_connections = n` (set once they are all
    /// connected: a `root` statement made meanwhile would take a slot one of
    /// them needs). Only `root`'s extra administrator connection is left.
    pub fn fill_max_connections(&self, n: usize) -> Occupiers {
        let client = &install().client;
        let children = (0..n)
            .map(|_| {
                Command::new(client)
                    .env_clear()
                    .arg("--no-defaults")
                    .args(["-h", "127.0.0.1", "-P", &self.port.to_string()])
                    .args(["-u", APP_USER, &format!("-p{APP_PASSWORD}"), DATABASE])
                    .args(["-e", "SELECT SLEEP(600)"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot spawn mariadb: {e}"))
            })
            .collect();
        let occupiers = Occupiers {
            children,
            socket: self.socket(),
        };
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                self.running("SELECT SLEEP") == n
            }),
            "the {n} occupying clients never connected"
        );
        self.sql(&format!("SET GLOBAL max_connections = {n}"));
        occupiers
    }
}

impl process::Server for Mariadb {
    fn try_start_server(&mut self) -> Result<(), String> {
        Mariadb::try_start_server(self)
    }

    fn port_mut(&mut self) -> &mut u16 {
        &mut self.port
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        // A frozen server could not act on its shutdown signal.
        self.thaw();
        process::shutdown(&mut self.child, Signal::SIGKILL);
    }
}

/// `sql` as `root` over the unix socket `socket` (see [`Mariadb::sql`]).
fn sql_at(socket: &Path, sql: &str) -> String {
    let out = install()
        .client_command(socket)
        .arg("-e")
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mariadb: {e}"));
    if !out.status.success() {
        panic!(
            "mariadb -e {sql:?} on {} failed ({}): {}",
            socket.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// Clients holding connections of a [`Mariadb`]; killed when dropped.
#[derive(Debug)]
pub struct Occupiers {
    children: Vec<Child>,
    socket: PathBuf,
}

impl Occupiers {
    /// Ends one client's connection on the server (`KILL`: a sleeping
    /// connection whose client vanished would hold its slot for seconds),
    /// then the client.
    pub fn release_one(&mut self) {
        let id = sql_at(
            &self.socket,
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE USER = '{APP_USER}' AND INFO LIKE 'SELECT SLEEP%' LIMIT 1"
            ),
        );
        if !id.is_empty() {
            sql_at(&self.socket, &format!("KILL {id}"));
        }
        if let Some(mut child) = self.children.pop() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Occupiers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
