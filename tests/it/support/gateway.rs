//! The `readygate` binary as a child process (like zero2prod's `spawn_app`).
//!
//! The process gets a clean environment (only `PATH`, plus
//! `LLVM_PROFILE_FILE` when set, for coverage tools), `HOST=127.0.0.1` and
//! `PORT=<free port>` unless overridden, a fresh working directory (so `.env`
//! and the SQLite default file `readygate.db` are isolated), no stdin, and
//! its stdout and stderr captured line by line by reader threads.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::ports::free_port;

/// The binary under test.
pub const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_readygate");
/// Timeout of one HTTP request made by [`Gateway::get`] / [`Gateway::http`].
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// Which stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A captured line: when it was read, from which stream, its text (without
/// the line ending; invalid UTF-8 replaced).
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub stream: Stream,
    pub text: String,
}

impl Line {
    /// When the gateway logged it, by its own timestamp (text or JSON), as
    /// time of day (UTC): to the millisecond, and not delayed by the reader
    /// threads of a loaded machine, as [`Line::at`] can be.
    pub fn logged_at(&self) -> Duration {
        let line = &self.text;
        let stamp = if line.starts_with('{') {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            json["timestamp"].as_str().unwrap().to_owned()
        } else {
            line.split(' ').next().unwrap().to_owned()
        };
        // 2026-11-28T20:49:55.573Z
        let time = stamp
            .split('T')
            .nth(1)
            .and_then(|t| t.strip_suffix('Z'))
            .unwrap_or_else(|| panic!("no timestamp in {line}"));
        let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
        Duration::from_secs_f64(parts[0] * 3600.0 + parts[1] * 60.0 + parts[2])
    }

    /// The time from `earlier` to this line, by the gateway's timestamps.
    /// They are cut to the millisecond, so a gap can read up to 1 ms short:
    /// a lower bound of `w` is checked as `w - 1 ms`.
    pub fn logged_since(&self, earlier: &Line) -> Duration {
        let day = Duration::from_secs(86_400);
        let (a, b) = (earlier.logged_at(), self.logged_at());
        // Across midnight (UTC), the later one is a day on.
        if b >= a { b - a } else { b + day - a }
    }
}

/// Something a line can be matched with: a substring (`&str`, `String`) or
/// a predicate `Fn(&str) -> bool`.
pub trait LineMatch {
    fn matches(&self, line: &str) -> bool;
}

impl LineMatch for &str {
    fn matches(&self, line: &str) -> bool {
        line.contains(*self)
    }
}

impl LineMatch for String {
    fn matches(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
}

impl<F: Fn(&str) -> bool> LineMatch for F {
    fn matches(&self, line: &str) -> bool {
        self(line)
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Configures a gateway process; see [`Gateway::builder`].
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    /// `None`: removed (not even the default is set).
    env: BTreeMap<String, Option<String>>,
    args: Vec<String>,
    dotenv: Option<String>,
    files: Vec<(PathBuf, Vec<u8>)>,
    workdir: Option<PathBuf>,
    program: PathBuf,
}

impl GatewayBuilder {
    /// Sets an environment variable of the process (overrides the defaults
    /// `HOST=127.0.0.1`, `PORT=<free port>`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), Some(value.into()));
        self
    }

    /// Leaves a variable unset, including the defaults `HOST` and `PORT`
    /// (e.g. so that a value from `.env` applies: real environment
    /// variables win over `.env`).
    pub fn unset(mut self, key: impl Into<String>) -> Self {
        self.env.insert(key.into(), None);
        self
    }

    /// Appends command-line arguments (e.g. `&["check"]`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Writes `contents` as `.env` in the process's working directory.
    pub fn dotenv_file(mut self, contents: impl Into<String>) -> Self {
        self.dotenv = Some(contents.into());
        self
    }

    /// Writes another file (path relative to the working directory).
    pub fn file(mut self, relative: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((relative.into(), contents.into()));
        self
    }

    /// Runs in `dir` (which the caller keeps alive) instead of a fresh temp
    /// dir: e.g. a second run over the same SQLite file.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Runs another program instead of `readygate` (to test this support
    /// code itself, e.g. with `sh -c`).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// The value the process will see for `key` (defaults included).
    fn effective(&self, key: &str) -> Option<&str> {
        self.env.get(key).and_then(|v| v.as_deref())
    }

    /// Spawns the process.
    pub fn spawn(self) -> Gateway {
        let (tempdir, workdir) = match &self.workdir {
            Some(dir) => (None, dir.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("readygate-gw-")
                    .tempdir()
                    .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        if let Some(contents) = &self.dotenv {
            std::fs::write(workdir.join(".env"), contents)
                .unwrap_or_else(|e| panic!("write .env: {e}"));
        }
        for (relative, contents) in &self.files {
            let path = workdir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
            }
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }

        // The port HTTP requests go to: PORT from the environment, else from
        // `.env`, else the free port chosen for the default.
        let default_port = self
            .effective("PORT")
            .and_then(|p| p.trim().parse().ok())
            .or_else(|| self.dotenv.as_deref().and_then(dotenv_port));

        let mut cmd = Command::new(&self.program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
            cmd.env("LLVM_PROFILE_FILE", profile);
        }
        for (key, value) in &self.env {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd.args(&self.args)
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let started_at = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.program.display()));
        let port = default_port.unwrap_or(0);

        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers_done = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(spawn_reader(stdout, Stream::Stdout, &lines, &readers_done));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(spawn_reader(stderr, Stream::Stderr, &lines, &readers_done));
        }
        Gateway {
            child: Mutex::new(child),
            exit: Mutex::new(None),
            lines,
            readers_done,
            reader_count: readers.len(),
            _readers: readers,
            port,
            started_at,
            workdir,
            _tempdir: tempdir,
        }
    }
}

/// `PORT=...` in a `.env` text (last one wins), ignoring `export ` and quotes.
fn dotenv_port(contents: &str) -> Option<u16> {
    contents.lines().rev().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        (key.trim() == "PORT")
            .then(|| {
                value
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .parse()
                    .ok()
            })
            .flatten()
    })
}

fn spawn_reader<R: Read + Send + 'static>(
    source: R,
    stream: Stream,
    lines: &Arc<Mutex<Vec<Line>>>,
    done: &Arc<AtomicUsize>,
) -> JoinHandle<()> {
    let lines = Arc::clone(lines);
    let done = Arc::clone(done);
    std::thread::Builder::new()
        .name(format!("gateway-{stream:?}").to_lowercase())
        .spawn(move || {
            let mut reader = BufReader::new(source);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let at = Instant::now();
                        let mut text = String::from_utf8_lossy(&buf).into_owned();
                        while text.ends_with('\n') || text.ends_with('\r') {
                            text.pop();
                        }
                        lines.lock().unwrap_or_else(|e| e.into_inner()).push(Line {
                            at,
                            stream,
                            text,
                        });
                    }
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_or_else(|e| panic!("spawn an output reader thread: {e}"))
}

/// A running (or exited) `readygate` process. SIGKILLed when dropped.
#[derive(Debug)]
pub struct Gateway {
    child: Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
    lines: Arc<Mutex<Vec<Line>>>,
    readers_done: Arc<AtomicUsize>,
    reader_count: usize,
    _readers: Vec<JoinHandle<()>>,
    port: u16,
    started_at: Instant,
    workdir: PathBuf,
    _tempdir: Option<TempDir>,
}

impl Gateway {
    /// A builder with the defaults `HOST=127.0.0.1`, `PORT=<free port>`.
    pub fn builder() -> GatewayBuilder {
        let mut env = BTreeMap::new();
        env.insert("HOST".to_owned(), Some("127.0.0.1".to_owned()));
        env.insert("PORT".to_owned(), Some(free_port().to_string()));
        GatewayBuilder {
            env,
            args: Vec::new(),
            dotenv: None,
            files: Vec::new(),
            workdir: None,
            program: PathBuf::from(GATEWAY_BIN),
        }
    }

    /// The HTTP port: `PORT` as given to the process (from the environment,
    /// else from the `.env` written by the builder); 0 if neither is known.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// When the process was spawned.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The process's working directory.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_lines(&self) -> MutexGuard<'_, Vec<Line>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- output ---------------------------------------------------------

    /// Every captured line so far, stdout and stderr interleaved in the
    /// order they were read.
    pub fn lines(&self) -> Vec<String> {
        self.lock_lines().iter().map(|l| l.text.clone()).collect()
    }

    /// Every captured line with its time and stream.
    pub fn timed_lines(&self) -> Vec<Line> {
        self.lock_lines().clone()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stream_lines(Stream::Stdout)
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stream_lines(Stream::Stderr)
    }

    fn stream_lines(&self, stream: Stream) -> Vec<String> {
        self.lock_lines()
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.clone())
            .collect()
    }

    /// All captured text, one line per line.
    pub fn output(&self) -> String {
        let mut out = self.lines().join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    /// How many lines have been captured so far (to wait for later lines
    /// only, with [`Gateway::wait_for_line_from`]).
    pub fn line_count(&self) -> usize {
        self.lock_lines().len()
    }

    /// Whether the output is complete: the process exited and both streams
    /// reached end of file.
    fn output_complete(&self) -> bool {
        self.readers_done.load(Ordering::SeqCst) >= self.reader_count
    }

    /// The first captured line (from the start) that matches, waiting up to
    /// `timeout`; `None` on timeout or once the output is complete without
    /// a match.
    pub fn wait_for_line(&self, matcher: impl LineMatch, timeout: Duration) -> Option<String> {
        self.wait_for_line_from(0, matcher, timeout)
    }

    /// As [`Gateway::wait_for_line`], looking only at lines from index
    /// `start` on (see [`Gateway::line_count`]).
    pub fn wait_for_line_from(
        &self,
        start: usize,
        matcher: impl LineMatch,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read "complete" before scanning, so no line can slip between.
            let complete = self.output_complete();
            if let Some(line) = self
                .lock_lines()
                .iter()
                .skip(start)
                .find(|l| matcher.matches(&l.text))
            {
                return Some(line.text.clone());
            }
            if complete || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // ---- process --------------------------------------------------------

    /// The exit status if the process has exited (never blocks).
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none()
            && let Ok(Some(status)) = self.lock_child().try_wait()
        {
            *exit = Some(status);
        }
        *exit
    }

    pub fn is_running(&self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Waits up to `timeout` for the process to exit; then waits (up to 2 s)
    /// for its output to be fully captured. `None` on timeout.
    pub fn wait_exit_status(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.try_exit_status() {
                break status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let drain_deadline = Instant::now() + Duration::from_secs(2);
        while !self.output_complete() && Instant::now() < drain_deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(status)
    }

    /// Waits up to `timeout` for the process to exit and returns its exit
    /// code; `None` on timeout. PANICS (with the output) when the process
    /// was killed by a signal: a test expecting an exit code never passes on
    /// a crash. Use [`Gateway::wait_exit_status`] to expect a signal.
    pub fn wait_exit(&self, timeout: Duration) -> Option<i32> {
        let status = self.wait_exit_status(timeout)?;
        match status.code() {
            Some(code) => Some(code),
            None => panic!(
                "readygate died from signal {:?} (core dumped: {}) instead of exiting; output:\n{}",
                status.signal().and_then(|s| Signal::try_from(s).ok()),
                status.core_dumped(),
                self.output()
            ),
        }
    }

    /// Asserts that the process exits with `code` within `timeout`,
    /// showing its output when it does not.
    #[track_caller]
    pub fn expect_exit(&self, code: i32, timeout: Duration) {
        assert_eq!(self.wait_exit(timeout), Some(code), "{}", self.output());
    }

    /// Sends `signal` to the process; does nothing if it has already exited
    /// (its PID may then belong to another process).
    pub fn signal(&self, signal: Signal) {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_some() {
            return;
        }
        let mut child = self.lock_child();
        if let Ok(Some(status)) = child.try_wait() {
            *exit = Some(status);
            return;
        }
        // Not reaped yet: the PID is still ours (at worst a zombie).
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
    }

    // ---- network --------------------------------------------------------

    /// Whether a plain TCP connect to 127.0.0.1:PORT succeeds (500 ms).
    pub fn port_is_open(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
    }

    /// A blocking HTTP request to 127.0.0.1:PORT; see [`http_request`].
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpReply, String> {
        http_request(self.port, method, path, headers)
    }

    /// `GET path`: `Ok((status, body text))`, or `Err(error text)` when there
    /// is no HTTP answer (e.g. connection refused).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        self.http("GET", path, &[]).map(|r| (r.status, r.text()))
    }

    /// `GET /metrics`, parsed (panics unless it is 200 and Prometheus
    /// text).
    pub fn metrics(&self) -> prometheus_parse::Scrape {
        let (status, text) = self
            .get("/metrics")
            .unwrap_or_else(|e| panic!("/metrics: {e}"));
        assert_eq!(status, 200, "/metrics: {text}");
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("/metrics is not Prometheus text ({e}):\n{text}"))
    }

    /// Polls `GET path` (every 25 ms) until it answers `status`; whether it
    /// did within `timeout`. Gives up early if the process exits.
    pub fn wait_for_status(&self, path: &str, status: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if matches!(self.get(path), Ok((s, _)) if s == status) {
                return true;
            }
            if Instant::now() >= deadline || !self.is_running() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let mut child = self.lock_child();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking HTTP request to `http://127.0.0.1:PORT/path` on a fresh
/// connection (2 s timeout, no redirects followed, no proxy). Any status is
/// `Ok`; `Err(error text)` when there is no HTTP answer (e.g. the connection
/// is refused: the port is closed; or the 2 s timeout).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<HttpReply, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build()
        .into();
    let slash = if path.starts_with('/') { "" } else { "/" };
    let url = format!("http://127.0.0.1:{port}{slash}{path}");
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).map_err(|e| format!("bad request: {e}"))?;
    let mut response = agent.run(request).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}
