//! A real Mosquitto broker (the machine's `mosquitto`, never its standard
//! 1883 one) on a free loopback port that requires a user and password
//! (`mosquitto_passwd`), for `WAIT_FOR=name=mqtt://...` entries with right
//! and wrong credentials.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::ports::{free_port, port_is_open};
use super::process::shutdown_and_release;
use super::wait_until;

pub struct Mosquitto {
    port: u16,
    /// Its configuration and password file, removed when it is dropped.
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Running now, accepting only `user` with `password`.
    pub fn start_with_password(user: &str, password: &str) -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("readygate-mosquitto-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
        // Mosquitto drops root for its own user: it must read the files.
        let readable = |path: &std::path::Path, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        readable(dir.path(), 0o755);
        let passwords = dir.path().join("passwords");
        let status = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwords)
            .args([user, password])
            .status()
            .unwrap_or_else(|e| {
                panic!("`mosquitto_passwd` cannot run ({e}): apt-get install mosquitto")
            });
        assert!(status.success(), "mosquitto_passwd failed");
        readable(&passwords, 0o644);
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
                passwords.display()
            ),
        )
        .unwrap();
        readable(&conf, 0o644);
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("`mosquitto` cannot run ({e}): apt-get install mosquitto"));
        assert!(
            wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
                port_is_open(port)
            }),
            "mosquitto did not open port {port}"
        );
        Mosquitto {
            port,
            _dir: dir,
            child: Some(child),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        shutdown_and_release(&mut self.child, Signal::SIGTERM, self.port, "mosquitto");
    }
}
