//! A real NATS server (the machine's `nats-server`, never its standard
//! 4222 one) on a free loopback port, optionally requiring a user and
//! password, that can be stopped and started again on the same port: for
//! `WAIT_FOR=name=nats://...` entries that come late, go down, or are given
//! a wrong password.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::ports::{free_port, port_is_open};
use super::process::shutdown_and_release;
use super::wait_until;

pub struct Nats {
    port: u16,
    auth: Option<(String, String)>,
    child: Option<Child>,
}

fn nats_server_bin() -> PathBuf {
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        let path = PathBuf::from(candidate);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "`nats-server` not found (/usr/sbin, /usr/bin, /usr/local/bin). Install it with `apt-get install nats-server`"
    );
}

impl Nats {
    /// A port for it, nothing listening yet ([`Nats::start_server`]).
    pub fn reserve() -> Nats {
        nats_server_bin();
        Nats {
            port: free_port(),
            auth: None,
            child: None,
        }
    }

    /// Running now, without authentication.
    pub fn start() -> Nats {
        let mut nats = Nats::reserve();
        nats.start_server();
        nats
    }

    /// Running now, requiring `user` and `password`.
    pub fn start_with_auth(user: &str, password: &str) -> Nats {
        let mut nats = Nats::reserve();
        nats.auth = Some((user.to_owned(), password.to_owned()));
        nats.start_server();
        nats
    }

    /// Start (again) on its port; waits until the port accepts (5 s).
    pub fn start_server(&mut self) {
        assert!(self.child.is_none(), "nats-server runs already");
        let mut cmd = Command::new(nats_server_bin());
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((user, password)) = &self.auth {
            cmd.args(["--user", user, "--pass", password]);
        }
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("start nats-server: {e}")),
        );
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
                port_is_open(port)
            }),
            "nats-server did not open port {port}"
        );
    }

    /// Stop it: the port refuses from now on.
    pub fn stop(&mut self) {
        shutdown_and_release(&mut self.child, Signal::SIGTERM, self.port, "nats-server");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
