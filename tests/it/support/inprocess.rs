//! The gateway run through the library (`readygate::Gateway`) in the test's
//! own process, for tests that add routes of their own. nextest runs each
//! test in its own process, so one gateway (and one signal) per test.

use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::web;
use clap::Parser;

use super::{free_port, wait_until};

/// A blocking HTTP client: any status is an answer, 5 s at most.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent()
}

/// `GET url`: (status, body); status 0 when there is no answer.
pub fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(mut reply) => {
            let body = reply.body_mut().read_to_string().unwrap_or_default();
            (reply.status().as_u16(), body)
        }
        Err(_) => (0, String::new()),
    }
}

pub struct InProcess {
    pub base: String,
    /// The gateway's live state (what `/ready` and `/metrics` show), read
    /// without a request.
    pub health: readygate::status::Health,
    /// The gateway's thread; joins with its exit code.
    pub server: JoinHandle<i32>,
}

impl InProcess {
    /// Starts the gateway with `args` (command-line settings such as
    /// `--database-url=...`; the port is chosen here) and `routes`, and
    /// waits until `/ready` answers 200.
    pub fn spawn(
        args: &[String],
        routes: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> InProcess {
        InProcess::spawn_with(args, |gateway| gateway.routes(routes))
    }

    /// As [`InProcess::spawn`], with the gateway as `build` makes it (its
    /// own dependencies, routes).
    pub fn spawn_with(
        args: &[String],
        build: impl FnOnce(readygate::Gateway) -> readygate::Gateway,
    ) -> InProcess {
        let port = free_port();
        let mut argv = vec!["readygate".to_owned(), format!("--port={port}")];
        argv.extend_from_slice(args);
        let settings = readygate::config::Cli::try_parse_from(argv)
            .unwrap()
            .settings
            .validate()
            .unwrap();
        // The log goes to this process's stderr (see [`StderrCapture`]).
        readygate::telemetry::init(settings.log);
        let gateway = build(readygate::Gateway::new(settings));
        let health = gateway.health();
        let server = std::thread::spawn(move || gateway.run());
        let base = format!("http://127.0.0.1:{port}");
        let agent = agent();
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                get(&agent, &format!("{base}/ready")).0 == 200
            }),
            "the in-process gateway never became ready"
        );
        InProcess {
            base,
            health,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// This process's stderr, where an in-process gateway logs, kept in a file
/// from [`StderrCapture::start`] until it is dropped (stderr is then what it
/// was). nextest runs each test in a process of its own, so nothing else is
/// caught.
pub struct StderrCapture {
    file: tempfile::NamedTempFile,
    saved: Option<std::os::fd::OwnedFd>,
}

impl StderrCapture {
    pub fn start() -> StderrCapture {
        let file = tempfile::NamedTempFile::new().unwrap();
        let saved = nix::unistd::dup(std::io::stderr()).unwrap();
        nix::unistd::dup2_stderr(file.as_file()).unwrap();
        StderrCapture {
            file,
            saved: Some(saved),
        }
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.file.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Puts stderr back (also done on drop), so that a failing assertion
    /// shows; returns the lines captured.
    pub fn stop(mut self) -> Vec<String> {
        self.restore();
        self.lines()
    }

    fn restore(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = nix::unistd::dup2_stderr(&saved);
        }
    }
}

impl Drop for StderrCapture {
    fn drop(&mut self) {
        self.restore();
    }
}
