//! A real PgBouncer in front of a test [`Postgres`], on a free port.
//!
//! Debian's `pgbouncer` package (`/usr/sbin/pgbouncer`), `pool_mode =
//! transaction`, `auth_type = trust` (the user still has to be listed in the
//! `auth_file`), its configuration and log in a [`TempDir`] of its own. When
//! the tests run as root, it runs as the `postgres` user (PgBouncer refuses
//! to run as root) through `CommandExt::uid/gid`, so the child we spawn is
//! PgBouncer itself.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::ports::free_port;
use super::postgres::{Postgres, psql_rows_at, psql_tcp_at};
use super::{process, template};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where Debian installs it; `PGBOUNCER_BIN` or `PATH` first.
fn pgbouncer_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PGBOUNCER_BIN") {
            return PathBuf::from(bin);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
            .map(|dir| dir.join("pgbouncer"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "`pgbouncer` not found on PATH (nor /usr/sbin, /usr/local/bin). \
                     Install it with `apt-get install pgbouncer` \
                     (or set PGBOUNCER_BIN to the binary)"
                )
            })
    })
}

/// A PgBouncer of its own in front of one [`Postgres`] (whichever database
/// name the client asks for), in transaction pooling mode, trusting user
/// `postgres`, who is also its admin (database `pgbouncer`). While the
/// server is down, a query waits for it up to 3 s (`query_wait_timeout`),
/// then fails with `query_wait_timeout`; a server back up is tried again
/// within 1 s (`server_login_retry`). Killed when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    dir: TempDir,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    /// The port of the PostgreSQL server behind it, on 127.0.0.1.
    upstream: u16,
    child: Option<Child>,
}

impl PgBouncer {
    /// A running PgBouncer in front of `server` (which need not be running:
    /// PgBouncer connects to it only when a client needs a connection).
    /// Returns once its admin console answers.
    ///
    /// Should another process take the port between [`free_port`] and the
    /// bind, this retries on other ports (up to 3 times).
    pub fn start(server: &Postgres) -> PgBouncer {
        // Its absence is a clear panic, before anything else.
        pgbouncer_bin();
        let run_as = template::server_user("postgres", "pgbouncer");
        let dir = tempfile::Builder::new()
            .prefix("readygate-pgbouncer-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
        template::chown(dir.path(), run_as);
        let userlist = dir.path().join("userlist.txt");
        fs::write(&userlist, "\"postgres\" \"\"\n")
            .unwrap_or_else(|e| panic!("write {}: {e}", userlist.display()));
        let bouncer = PgBouncer {
            config: dir.path().join("pgbouncer.ini"),
            log: dir.path().join("pgbouncer.log"),
            dir,
            port: free_port(),
            upstream: server.port(),
            child: None,
        };
        process::start_on_a_free_port(bouncer)
    }

    /// The configuration: listening on our port, in front of the server.
    fn write_config(&self) {
        let dir = self.dir.path().display();
        let text = format!(
            "# written by the readygate test support\n\
             [databases]\n\
             * = host=127.0.0.1 port={upstream}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             pidfile =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             admin_users = postgres\n\
             pool_mode = transaction\n\
             default_pool_size = 5\n\
             ignore_startup_parameters = extra_float_digits\n\
             ; a server that was down is tried again after 1 s, not 15\n\
             server_login_retry = 1\n\
             server_connect_timeout = 5\n\
             ; a client waiting for a server gets an error after 3 s, not 120\n\
             ; (still longer than the tests' 1 s connect timeouts)\n\
             query_wait_timeout = 3\n",
            port = self.port,
            upstream = self.upstream,
        );
        fs::write(&self.config, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.config.display()));
    }

    /// Starts it on its port (its log on stderr, appended to the log file),
    /// and waits until its admin console answers `SHOW VERSION`.
    fn try_start_server(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            self.stop();
        }
        // Written now: the port may have changed since the last try.
        self.write_config();

        let mut cmd = Command::new(pgbouncer_bin());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .arg(&self.config);
        if let Some((uid, gid)) = template::server_user("postgres", "pgbouncer") {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(process::spawn_logged(&mut cmd, &self.log, "pgbouncer"));
        let port = self.port;
        process::wait_ready(
            &mut self.child,
            ("pgbouncer", port, &self.log),
            START_TIMEOUT,
            "answer on its admin console",
            || admin_at(port, "SHOW VERSION").is_ok(),
        )
    }

    /// Stops it (SIGTERM: immediate shutdown; SIGKILL after 10 s) and waits
    /// until its port refuses connections. No-op when not running.
    pub fn stop(&mut self) {
        process::shutdown_and_release(&mut self.child, Signal::SIGTERM, self.port, "pgbouncer");
    }

    pub fn is_running(&mut self) -> bool {
        process::is_running(&mut self.child)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as `/ready` and the logs name a server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` through PgBouncer (database `postgres`, user `postgres`)
    /// with `psql -Atc`: `Ok(stdout)` or `Err(stderr)`.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        psql_tcp_at(self.port, ("postgres", None), "postgres", sql)
    }

    /// Runs an admin command (`SHOW POOLS`, `SHOW CONFIG`...) on its
    /// console (database `pgbouncer`): `Ok(stdout)`, one row a line, columns
    /// separated by `|`; or `Err(stderr)`.
    pub fn admin(&self, command: &str) -> Result<String, String> {
        admin_at(self.port, command)
    }

    /// How many queries it has passed to a server for `database` so far
    /// (`SHOW STATS`'s `total_query_count`).
    pub fn query_count(&self, database: &str) -> u64 {
        let rows = psql_rows_at(self.port, "postgres", "pgbouncer", "SHOW STATS")
            .unwrap_or_else(|e| panic!("SHOW STATS on pgbouncer port {}: {e}", self.port));
        rows.iter()
            .find(|row| row.get("database").map(String::as_str) == Some(database))
            .and_then(|row| row.get("total_query_count")?.parse().ok())
            .unwrap_or(0)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

fn admin_at(port: u16, command: &str) -> Result<String, String> {
    psql_tcp_at(port, ("postgres", None), "pgbouncer", command)
}

impl process::Server for PgBouncer {
    fn try_start_server(&mut self) -> Result<(), String> {
        PgBouncer::try_start_server(self)
    }

    fn port_mut(&mut self) -> &mut u16 {
        &mut self.port
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        process::shutdown(&mut self.child, Signal::SIGKILL);
    }
}
