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
        let port = free_port();
        let mut argv = vec!["readygate".to_owned(), format!("--port={port}")];
        argv.extend_from_slice(args);
        let settings = readygate::config::Cli::try_parse_from(argv)
            .unwrap()
            .settings
            .validate()
            .unwrap();
        let gateway = readygate::Gateway::new(settings).routes(routes);
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
