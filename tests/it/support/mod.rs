#![allow(dead_code)]
//! Test-support code shared by every integration test.
//!
//! - [`ports`]: free loopback ports.
//! - [`postgres`] / [`mariadb`] / [`redis`]: real servers in temporary directories, on free
//!   ports (never the machine's standard 5432/6379 services), that can be
//!   stopped and restarted on the same port; PostgreSQL also as a primary
//!   with streaming standbys ([`Postgres::start_primary`]).
//! - [`mosquitto`]: a real Mosquitto of the test's own that needs a password.
//! - [`nats`]: a real NATS server of the test's own, with or without a
//!   password, that can be stopped and restarted on the same port.
//! - [`pgbouncer`]: a real PgBouncer (transaction pooling) in front of a
//!   test PostgreSQL.
//! - [`faults`]: loopback listeners speaking the real wire protocols to
//!   produce faults a real server cannot produce on demand.
//! - [`gateway`]: the `readygate` binary as a child process, with its output
//!   captured line by line and a blocking HTTP client.
//!
//! Everything here is blocking (std threads and sockets): no async runtime.

pub mod certs;
pub mod faults;
pub mod gateway;
pub mod http_service;
pub mod inprocess;
pub mod mariadb;
pub mod mosquitto;
pub mod mounted;
pub mod nats;
pub mod pgbouncer;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod template;

// Re-exports for the tests' convenience; not every test uses each one.
#[allow(unused_imports)]
pub use certs::{CertFiles, Pki};
#[allow(unused_imports)]
pub use faults::{BlackHole, LoadingRedis, Relay, Resetter, StartingUpPostgres};
#[allow(unused_imports)]
pub use gateway::{Gateway, GatewayBuilder, HttpReply};
#[allow(unused_imports)]
pub use http_service::HttpService;
#[allow(unused_imports)]
pub use inprocess::{InProcess, StderrCapture};
#[allow(unused_imports)]
pub use mariadb::Mariadb;
#[allow(unused_imports)]
pub use mosquitto::Mosquitto;
pub use mounted::MountedSecret;
#[allow(unused_imports)]
pub use nats::Nats;
#[allow(unused_imports)]
pub use pgbouncer::PgBouncer;
#[allow(unused_imports)]
pub use ports::{free_port, port_is_open, wait_port_closed};
#[allow(unused_imports)]
pub use postgres::{Postgres, multi_host_url};
#[allow(unused_imports)]
pub use redis::{
    Passwords, Redis, RedisClusterSet, RedisTlsFiles, SENTINEL_MASTER, SentinelSet, cluster_ok,
    sentinel_master_port, start_sentinel,
};

use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `condition` every `every` until it holds or `timeout` has passed;
/// returns whether it held.
pub fn wait_until(timeout: Duration, every: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// The last `n` lines of a text file (for panic messages); a note if it
/// cannot be read.
pub(crate) fn tail_file(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
