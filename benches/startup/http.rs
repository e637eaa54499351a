//! A minimal HTTP/1.1 client over loopback: a blocking keep-alive
//! connection and a "first 200" poller. (Load comes from `wrk`, see
//! `load.rs`.)
//!
//! Only what the two servers under test send is supported: responses with a
//! `Content-Length` (actix-web sets it for every sized body).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One keep-alive connection to 127.0.0.1:PORT.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    chunk: Box<[u8; 16 * 1024]>,
}

impl Conn {
    pub fn connect(port: u16, timeout: Duration) -> io::Result<Conn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            chunk: Box::new([0; 16 * 1024]),
        })
    }

    /// `GET path` on this connection (kept alive unless `close`): the status
    /// and the body.
    pub fn get(&mut self, path: &str, close: bool) -> io::Result<(u16, Vec<u8>)> {
        let connection = if close { "Connection: close\r\n" } else { "" };
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{connection}\r\n");
        self.stream.write_all(request.as_bytes())?;
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.chunk[..])?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed before a complete response",
            ));
        }
        self.buf.extend_from_slice(&self.chunk[..n]);
        Ok(())
    }

    fn read_response(&mut self) -> io::Result<(u16, Vec<u8>)> {
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            self.fill()?;
        };
        let (status, length) = parse_head(&self.buf[..head_end])?;
        while self.buf.len() < head_end + length {
            self.fill()?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok((status, body))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what.to_owned())
}

/// Status code and `Content-Length` of a response head.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| invalid("response without Content-Length"))?;
    Ok((status, length))
}

/// `GET path` on a fresh connection that is closed afterwards.
pub fn get_once(port: u16, path: &str) -> io::Result<(u16, Vec<u8>)> {
    Conn::connect(port, Duration::from_millis(500))?.get(path, true)
}

/// Polls `GET path` on 127.0.0.1:PORT every `every` (a refused connection
/// costs microseconds) until it answers 200; the instant the 200 arrived.
/// `None` after `timeout` or once `gave_up()` holds.
pub fn wait_for_200(
    port: u16,
    path: &str,
    every: Duration,
    timeout: Duration,
    mut gave_up: impl FnMut() -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = get_once(port, path) {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline || gave_up() {
            return None;
        }
        std::thread::sleep(every);
    }
}
