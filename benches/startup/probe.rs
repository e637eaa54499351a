//! "The dependency accepts connections now": probes that speak just enough
//! of each wire protocol to tell a server that accepts sessions from one
//! that is still starting (PostgreSQL's listen socket opens before it
//! accepts sessions: it answers 57P03 "the database system is starting up"
//! in between).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::faults::pg_startup_message;
use crate::support::redis::resp_request;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Redis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// Nothing listens (or the connection failed).
    Closed,
    /// Listening, but no session yet (PostgreSQL 57P03, Redis LOADING).
    Starting,
    Accepting,
}

fn connect(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// A StartupMessage as `postgres` (trust authentication): `R` + 0
/// (AuthenticationOk) means sessions are accepted; then Terminate.
fn probe_postgres(port: u16) -> Seen {
    let Some(mut s) = connect(port) else {
        return Seen::Closed;
    };
    if s.write_all(&pg_startup_message("postgres", "postgres"))
        .is_err()
    {
        return Seen::Closed;
    }
    let mut head = [0u8; 9];
    if s.read_exact(&mut head).is_err() {
        return Seen::Starting;
    }
    if head[0] == b'R' && head[5..9] == [0, 0, 0, 0] {
        let _ = s.write_all(&[b'X', 0, 0, 0, 4]);
        Seen::Accepting
    } else {
        Seen::Starting
    }
}

fn probe_redis(port: u16) -> Seen {
    let Some(mut s) = connect(port) else {
        return Seen::Closed;
    };
    if s.write_all(&resp_request(&["PING"])).is_err() {
        return Seen::Closed;
    }
    let mut reply = [0u8; 5];
    match s.read_exact(&mut reply) {
        Ok(()) if &reply == b"+PONG" => Seen::Accepting,
        Ok(()) => Seen::Starting,
        Err(_) => Seen::Closed,
    }
}

/// A thread that probes `port` every millisecond (every 2 ms once the port
/// listens, so as not to fork a PostgreSQL backend per millisecond) and
/// returns the instant the first accepting answer arrived; `None` after
/// `timeout`.
pub struct Watch {
    thread: JoinHandle<Option<Instant>>,
}

impl Watch {
    pub fn start(kind: Kind, port: u16, timeout: Duration) -> Watch {
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                let seen = match kind {
                    Kind::Postgres => probe_postgres(port),
                    Kind::Redis => probe_redis(port),
                };
                match seen {
                    Seen::Accepting => return Some(Instant::now()),
                    Seen::Starting => std::thread::sleep(Duration::from_millis(2)),
                    Seen::Closed => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            None
        });
        Watch { thread }
    }

    /// Waits for the probe's answer (the server is expected to be up).
    pub fn join(self) -> Option<Instant> {
        self.thread.join().ok().flatten()
    }
}
