//! Free loopback ports.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ports this process already handed out: never hand one out twice, even
/// when the server that got it is not listening yet.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on 127.0.0.1 that nothing listens on right now: binds
/// `127.0.0.1:0`, reads the port the kernel chose, and drops the listener.
///
/// The same process never gets the same port twice. Another process could
/// still take the port before the caller binds it; the kernel hands out
/// ports for `bind(0)` at random over the whole ephemeral range, so this is
/// rare.
pub fn free_port() -> u16 {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr of a bound listener: {e}"))
            .port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("free_port: the kernel kept returning ports this process already handed out");
}

/// Whether a plain TCP connect to 127.0.0.1:`port` succeeds (500 ms timeout).
pub fn port_is_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Waits until nothing accepts connections on 127.0.0.1:`port`; returns
/// whether that happened within `timeout`.
pub fn wait_port_closed(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !port_is_open(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
