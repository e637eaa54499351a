//! A real HTTP/1.1 service on a free loopback port, for the dependencies
//! that are other services (`WAIT_FOR=name=http://...`, an application's
//! own HTTP dependency): it answers every request with the status the test
//! sets (503 while "starting", then 200), with the body the test sets
//! (`{"status":<code>}` unless set) and a `Location` when it sets one, and
//! can be stopped (the port refuses) and started again on the same port.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::free_port;

/// What the service answers besides its status.
#[derive(Default)]
struct Answer {
    body: Option<String>,
    location: Option<String>,
}

pub struct HttpService {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
    answer: Arc<Mutex<Answer>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl HttpService {
    /// Listening now, answering `status` to every request.
    pub fn start(status: u16) -> HttpService {
        let mut service = HttpService::reserve(status);
        service.start_server();
        service
    }

    /// A port for it, nothing listening yet ([`HttpService::start_server`]).
    pub fn reserve(status: u16) -> HttpService {
        HttpService {
            port: free_port(),
            status: Arc::new(AtomicU16::new(status)),
            requests: Arc::new(AtomicUsize::new(0)),
            answer: Arc::default(),
            running: None,
        }
    }

    /// Listen (again) on its port.
    pub fn start_server(&mut self) {
        assert!(self.running.is_none(), "the HTTP service runs already");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))
            .unwrap_or_else(|e| panic!("HTTP service: cannot bind 127.0.0.1:{}: {e}", self.port));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (status, requests, flag, answer) = (
            Arc::clone(&self.status),
            Arc::clone(&self.requests),
            Arc::clone(&stop),
            Arc::clone(&self.answer),
        );
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (status, requests, answer) = (
                            Arc::clone(&status),
                            Arc::clone(&requests),
                            Arc::clone(&answer),
                        );
                        std::thread::spawn(move || serve(stream, &status, &requests, &answer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        self.running = Some((stop, thread));
    }

    /// Stop listening: new connections are refused.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }

    /// The status every request gets from now on.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The body every request gets from now on.
    pub fn set_body(&self, body: &str) {
        self.answer.lock().unwrap().body = Some(body.to_owned());
    }

    /// A `Location` header on every answer from now on.
    pub fn set_location(&self, location: &str) {
        self.answer.lock().unwrap().location = Some(location.to_owned());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// [`HttpService::requests`], for another thread.
    pub fn requests_counter(&self) -> impl Fn() -> usize + Send + 'static {
        let requests = Arc::clone(&self.requests);
        move || requests.load(Ordering::SeqCst)
    }

    /// [`HttpService::set_status`], for another thread.
    pub fn status_setter(&self) -> impl Fn(u16) + Send + 'static {
        let status = Arc::clone(&self.status);
        move |value| status.store(value, Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HttpService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection: read the request head, answer, close.
fn serve(
    mut stream: TcpStream,
    status: &AtomicU16,
    requests: &AtomicUsize,
    answer: &Mutex<Answer>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let status = status.load(Ordering::SeqCst);
    let (body, location) = {
        let answer = answer.lock().unwrap();
        (answer.body.clone(), answer.location.clone())
    };
    let body = body.unwrap_or_else(|| format!("{{\"status\":{status}}}"));
    let location = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let reply = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
