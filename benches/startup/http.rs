//! A minimal HTTP/1.1 client over loopback: a blocking keep-alive
//! connection, a "first 200" poller, and a fixed-duration load generator
//! built like wrk (a few event-loop threads, each driving several keep-alive
//! connections).
//!
//! Only what the two servers under test send is supported: responses with a
//! `Content-Length` (actix-web sets it for every sized body).

use std::collections::BTreeMap;
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

/// What one load run saw.
#[derive(Clone, Debug, Default)]
pub struct Load {
    pub requests: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Connection or protocol errors (each followed by a reconnect).
    pub errors: u64,
    pub elapsed: Duration,
}

impl Load {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Answers other than 200, plus connection errors.
    pub fn bad(&self) -> u64 {
        self.errors
            + self
                .statuses
                .iter()
                .filter(|(s, _)| **s != 200)
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    fn merge(&mut self, other: Load) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
    }
}

/// Reads one response from `stream` (bytes left over stay in `buf`): its
/// status.
async fn read_response_async(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<u16> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 8 * 1024];
    let mut fill = async |buf: &mut Vec<u8>| -> io::Result<()> {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed before a complete response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        fill(buf).await?;
    };
    let (status, length) = parse_head(&buf[..head_end])?;
    while buf.len() < head_end + length {
        fill(buf).await?;
    }
    buf.drain(..head_end + length);
    Ok(status)
}

/// One keep-alive connection sending `GET path` back to back until
/// `deadline` (reconnecting after an error).
async fn drive(port: u16, path: &str, deadline: Instant) -> Load {
    use tokio::io::AsyncWriteExt;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes();
    let mut seen = Load::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut conn: Option<tokio::net::TcpStream> = None;
    while Instant::now() < deadline {
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    buf.clear();
                    conn.insert(s)
                }
                Err(_) => {
                    seen.errors += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        let answer = match stream.write_all(&request).await {
            Ok(()) => read_response_async(stream, &mut buf).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(status) => {
                seen.requests += 1;
                *seen.statuses.entry(status).or_default() += 1;
            }
            Err(_) => {
                seen.errors += 1;
                conn = None;
            }
        }
    }
    seen
}

/// Closed-loop load like `wrk -tTHREADS -cTHREADS*PER_THREAD`: `threads`
/// threads, each an event loop (a current-thread tokio runtime) driving
/// `per_thread` keep-alive connections that send `GET path` back to back
/// for `duration` (bounded in time; loopback only).
pub fn load(port: u16, path: &str, threads: usize, per_thread: usize, duration: Duration) -> Load {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let path = path.to_owned();
            std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return Load {
                        errors: 1,
                        ..Load::default()
                    };
                };
                rt.block_on(async {
                    let conns = (0..per_thread).map(|_| drive(port, &path, deadline));
                    let mut total = Load::default();
                    for seen in futures_util::future::join_all(conns).await {
                        total.merge(seen);
                    }
                    total
                })
            })
        })
        .collect();
    let mut total = Load::default();
    for w in workers {
        if let Ok(seen) = w.join() {
            total.merge(seen);
        }
    }
    total.elapsed = start.elapsed();
    total
}
