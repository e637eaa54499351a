//! Entry points: [`run_cli`] for the `readygate` binary, [`Gateway`] for
//! applications that embed the supervisor with their own routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, System};
use actix_web::http::StatusCode;
use actix_web::web;

use crate::backends::probe::Probe;
use crate::config::{Cli, Command, ConfigError, EXEC_USAGE, HttpSettings, Settings, load_dotenv};
use crate::dependencies::{self, DependencyOptions, DependencySpec};
use crate::exec::ExecCommand;
use crate::exit;
use crate::status::Health;
use crate::supervisor::{Mode, Supervisor};
use crate::{listener, signals, telemetry};

/// A gateway: settings, application routes, the application's own
/// dependencies, and what to do once ready.
pub struct Gateway {
    settings: Settings,
    mode: Mode,
    health: Health,
    own: Vec<DependencySpec>,
}

impl Gateway {
    pub fn new(settings: Settings) -> Self {
        Gateway {
            settings,
            mode: Mode::Serve(None),
            health: Health::default(),
            own: Vec::new(),
        }
    }

    /// Add a dependency of the application's own under `name` (1-63 of
    /// a-z, 0-9, `-`, `_`, starting with a letter; not `database`, `cache` or
    /// a `WAIT_FOR` name, else [`Gateway::run`] exits 78). readygate retries
    /// it with `options.policy`, shows it on `/ready` and `/metrics`, checks
    /// it at runtime, and hands its handle to the routes:
    /// `deps.get::<P::Handle>(name)`. A dependency that is not
    /// `options.required` never holds start-up or `/ready`.
    pub fn dependency<P: Probe>(
        mut self,
        name: &str,
        probe: P,
        options: DependencyOptions,
    ) -> Self {
        self.own.push(dependencies::custom(name, probe, options));
        self
    }

    /// Add application routes. They receive the connected dependencies as
    /// `web::Data<readygate::Dependencies>`.
    pub fn routes(
        mut self,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.mode = Mode::Serve(Some(Arc::new(configure)));
        self
    }

    /// Only check the dependencies, then exit: 0 when ready, 69 when not.
    pub fn check_only(mut self) -> Self {
        self.mode = Mode::Check;
        self
    }

    /// Once every dependency is ready, run `program` as a child and serve
    /// only the gateway's endpoints beside it; exit with the program's exit
    /// code ([`crate::exec`]).
    pub fn exec(mut self, program: ExecCommand) -> Self {
        self.mode = Mode::Exec(Arc::new(program));
        self
    }

    /// The live dependency state (what `/ready` and `/metrics` show).
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Run until stopped; returns the process exit code (0, 69 or 78).
    ///
    /// The HTTP port is bound first (a bad `HOST` or a taken `PORT` is 78 at
    /// once, before any dependency attempt) and listens only once every
    /// dependency is ready. Runs its own actix `System` on this thread:
    /// `#[actix_web::main]` would ignore the exit code. Call
    /// [`crate::signals::install`] first thing in `main` so that a stop
    /// signal before this point exits 0 too.
    pub fn run(self) -> i32 {
        signals::process_start();
        crate::tls::install_provider();
        let Gateway {
            settings,
            mode,
            health,
            own,
        } = self;
        let mut specs = dependencies::from_settings(&settings);
        for spec in own {
            let name = spec.id.dependency.name();
            let taken = specs.iter().any(|s| s.id.dependency == spec.id.dependency);
            if !crate::config::valid_name(name) || taken {
                log::error!(
                    "invalid configuration, nothing was started: the application's dependency \
                     {name:?} {}; exiting with code {}",
                    if taken {
                        "has a name another dependency has"
                    } else {
                        "has a name that is not 1-63 of a-z, 0-9, - and _, starting with a letter"
                    },
                    exit::CONFIG
                );
                return exit::CONFIG;
            }
            specs.push(spec);
        }
        let port = match &mode {
            Mode::Check => None,
            Mode::Serve(_) | Mode::Exec(_) => {
                match listener::bind(&settings.http.host, settings.http.port) {
                    Ok(port) => Some(port),
                    Err(e) => {
                        log::error!("{e}; exiting with code {}", exit::CONFIG);
                        return exit::CONFIG;
                    }
                }
            }
        };
        let system = System::new();
        system.block_on(async move {
            Supervisor::new(settings, mode, health, specs, port).start();
        });
        // The actors still alive when the System stops are dropped with its
        // runtime, outside any task: a SQLite connection closes through
        // the runtime's blocking pool (`spawn_blocking`), which panics
        // unless a runtime is entered. Entered here, their drop finds it.
        let runtime = system.runtime().tokio_runtime().handle().clone();
        let _entered = runtime.enter();
        match system.run_with_code() {
            Ok(code) => code,
            Err(e) => {
                log::error!("The actix runtime failed: {e}");
                exit::UNAVAILABLE
            }
        }
    }
}

/// The `readygate` program: `.env`, settings, logging, then the gateway.
/// `early_signals` is what [`signals::install`], the first call of `main`,
/// returned.
pub fn run_cli(early_signals: std::io::Result<()>) -> ExitCode {
    let code = match cli_settings(early_signals) {
        Ok((settings, command)) => {
            let settings_http = settings.http.clone();
            let gateway = Gateway::new(settings);
            match command {
                Some(Command::Check) => gateway.check_only().run(),
                Some(Command::Exec { command }) => match ExecCommand::from_args(command) {
                    Some(program) => gateway.exec(program).run(),
                    None => {
                        log::error!(
                            "{}; exiting with code {}",
                            ConfigError::CommandLine(format!(
                                "exec needs a program to run: {EXEC_USAGE}"
                            )),
                            exit::CONFIG
                        );
                        exit::CONFIG
                    }
                },
                Some(Command::Probe) => probe_health(&settings_http),
                None => gateway.run(),
            }
        }
        Err(code) => code,
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// How long `readygate probe` waits for the whole answer (connect included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `readygate probe`: `GET /health` from the gateway serving on this host, as
/// a container `HEALTHCHECK` does; 0 when it answers 200, else 1 (Docker's
/// "unhealthy"). A wildcard `HOST` is reached on loopback of its family.
fn probe_health(http: &HttpSettings) -> i32 {
    let host = match http.host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => format!("[{}]", Ipv6Addr::LOCALHOST),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => http.host.clone(),
    };
    let url = format!("http://{host}:{}/health", http.port);
    let answer = System::new().block_on(async {
        awc::Client::builder()
            .connector(awc::Connector::new().timeout(PROBE_TIMEOUT))
            .timeout(PROBE_TIMEOUT)
            .finish()
            .get(url.as_str())
            .send()
            .await
            .map(|response| response.status())
    });
    match answer {
        Ok(status) if status == StatusCode::OK => {
            log::info!("probe: GET {url} answered 200, healthy; exiting with code 0");
            exit::OK
        }
        Ok(status) => {
            log::error!(
                "probe: GET {url} answered {}, not 200: unhealthy; exiting with code 1",
                status.as_u16()
            );
            1
        }
        Err(e) => {
            log::error!(
                "probe: GET {url} failed: {e} (time limit {} s): unhealthy; exiting with code 1",
                PROBE_TIMEOUT.as_secs()
            );
            1
        }
    }
}

/// Parse and validate, logging any configuration error; `Err` holds the exit
/// code (0 after `--help`/`--version`, 78 for bad configuration).
fn cli_settings(early_signals: std::io::Result<()>) -> Result<(Settings, Option<Command>), i32> {
    let dotenv = load_dotenv();
    let cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Err(exit::OK);
        }
        Err(e) => {
            telemetry::init(Default::default());
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            log::error!(
                "{}; exiting with code {}",
                ConfigError::CommandLine(first.to_owned()),
                exit::CONFIG
            );
            return Err(exit::CONFIG);
        }
    };
    telemetry::init(cli.settings.log_settings_or_default());
    if let Err(e) = early_signals {
        log::warn!(
            "Cannot catch stop signals from the first instant: {e}; until the gateway starts, \
             SIGTERM/SIGINT/SIGHUP end the process by their default action"
        );
    }
    let settings = dotenv.and_then(|()| cli.settings.validate());
    match settings {
        Ok(settings) => Ok((settings, cli.command)),
        Err(e) => {
            log::error!("{e}; exiting with code {}", exit::CONFIG);
            Err(exit::CONFIG)
        }
    }
}
