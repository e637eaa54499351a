//! The HTTP port: bound before the first dependency attempt, listening only
//! once every dependency is ready.
//!
//! A taken `PORT` or an unresolvable `HOST` must exit 78 at once, not after
//! the retry budget (or never, when a dependency gives up first and takes
//! the blame). So the port is reserved first: each address `HOST` resolves
//! to gets a socket bound to `PORT` but not listening, which refuses
//! connections as a closed port does. [`BoundPort::listen`] starts listening
//! when the supervisor starts the HTTP server.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Connections waiting to be accepted (actix-web's default).
const BACKLOG: i32 = 1024;

/// Why the HTTP port cannot be had. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("Cannot resolve HOST={host:?}: {source}; check HOST")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("HOST={host:?} resolves to no address; check HOST")]
    NoAddress { host: String },
    #[error("Cannot listen on {addr} (HOST={host:?}, PORT={port}): {source}; check HOST and PORT")]
    Bind {
        addr: SocketAddr,
        host: String,
        port: u16,
        #[source]
        source: io::Error,
    },
}

/// The reserved port: bound sockets, not listening yet.
#[derive(Debug)]
pub struct BoundPort {
    sockets: Vec<(SocketAddr, Socket)>,
}

/// Binds `port` on every address `host` resolves to. `PORT=0` takes the
/// port the kernel picks for the first address and the same one for the
/// others. A port in use anywhere is an error; an address the machine
/// cannot bind (say `::1` where IPv6 is off) is skipped when another works.
pub fn bind(host: &str, port: u16) -> Result<BoundPort, BindError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| BindError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    let mut sockets = Vec::new();
    let mut skipped = None;
    let mut chosen = port;
    for mut addr in addrs.iter().copied() {
        addr.set_port(chosen);
        match bind_one(addr) {
            Ok(socket) => {
                let bound = socket
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .unwrap_or(addr);
                chosen = bound.port();
                sockets.push((bound, socket));
            }
            Err(source) => {
                // EADDRNOTAVAIL, or EAFNOSUPPORT (97 on Linux): not this
                // machine's address or family; anything else is fatal.
                let unavailable = source.kind() == io::ErrorKind::AddrNotAvailable
                    || source.raw_os_error() == Some(97);
                let error = BindError::Bind {
                    addr,
                    host: host.to_owned(),
                    port,
                    source,
                };
                if !unavailable {
                    return Err(error);
                }
                skipped = Some(error);
            }
        }
    }
    match (sockets.is_empty(), skipped) {
        (false, _) => Ok(BoundPort { sockets }),
        (true, Some(error)) => Err(error),
        (true, None) => Err(BindError::NoAddress {
            host: host.to_owned(),
        }),
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

impl BoundPort {
    /// The bound addresses, with the port the kernel chose for `PORT=0`.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(addr, _)| *addr).collect()
    }

    /// Start listening: from now on connections are accepted (queued until
    /// the server takes them).
    pub fn listen(self) -> io::Result<Vec<TcpListener>> {
        self.sockets
            .into_iter()
            .map(|(_, socket)| {
                socket.listen(BACKLOG)?;
                Ok(TcpListener::from(socket))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn a_bound_port_refuses_connections_until_it_listens() {
        let port = bind("127.0.0.1", 0).unwrap();
        let addr = port.addrs()[0];
        assert_ne!(addr.port(), 0, "PORT=0 gets a real port");
        assert!(TcpStream::connect(addr).is_err(), "bound, not listening");
        let listeners = port.listen().unwrap();
        assert!(TcpStream::connect(addr).is_ok());
        drop(listeners);
    }

    #[test]
    fn a_taken_port_is_an_error_naming_host_and_port() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind("127.0.0.1", port).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("PORT={port}")), "{text}");
        assert!(text.contains("check HOST and PORT"), "{text}");
    }

    #[test]
    fn an_unresolvable_host_is_an_error_naming_it() {
        let err = bind("no-such-host.invalid", 0).unwrap_err();
        assert!(matches!(err, BindError::Resolve { .. }), "{err}");
        assert!(
            err.to_string().contains("HOST=\"no-such-host.invalid\""),
            "{err}"
        );
    }
}
