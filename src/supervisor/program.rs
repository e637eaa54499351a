//! `readygate exec`: the supervisor starts the program once every required
//! dependency is ready and the HTTP endpoints listen, forwards stop signals
//! to it (after the drain delay), and exits with its exit code when it
//! ends. Spawning, signalling and reaping are [`crate::exec`]'s.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use nix::sys::signal::Signal;

use super::Supervisor;
use crate::config::ShutdownSettings;
use crate::exec::{self, Ending, ExecCommand};
use crate::retry::Seconds;
use crate::signals::StopSignal;
use crate::status::ProgramStatus;

/// The program while it runs.
pub(super) struct Running {
    pid: u32,
    command: Arc<ExecCommand>,
    /// A stop signal came (and is forwarded, or will be after the delay).
    signalled: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct ProgramEnded {
    code: i32,
    ending: Ending,
}

impl Supervisor {
    /// Start the program; a program that cannot be started ends readygate
    /// with 127 (not found) or 126 (not executable).
    pub(super) fn start_program(&mut self, command: Arc<ExecCommand>, ctx: &mut Context<Self>) {
        // SIGCHLD is watched before the program exists, so that its end is
        // never missed.
        let mut ended = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        {
            Ok(stream) => stream,
            Err(e) => {
                log::error!(
                    "Cannot watch SIGCHLD ({e}), so {command} is not started; exiting with code {}",
                    exec::NOT_EXECUTABLE
                );
                self.exit(exec::NOT_EXECUTABLE);
                return;
            }
        };
        if let Err(e) = exec::become_subreaper() {
            log::warn!(
                "Cannot become a child subreaper ({e}): orphans of {command} are reaped only \
                 when readygate is PID 1"
            );
        }
        let pid = match command.spawn() {
            Ok(pid) => pid,
            Err(e) => {
                let code = e.exit_code();
                log::error!("{e}; exiting with code {code}");
                self.exit(code);
                return;
            }
        };
        log::info!("Started {command} (pid {pid}); readygate exits with its exit code");
        self.health.set_program(ProgramStatus {
            command: command.to_string(),
            pid: Some(pid),
            running: true,
        });
        self.program = Some(Running {
            pid,
            command,
            signalled: false,
        });
        let addr = ctx.address();
        ctx.spawn(
            async move {
                loop {
                    // Every ended child is reaped: the program, and the
                    // orphans readygate inherits as subreaper or PID 1.
                    if let (Some((code, ending)), _) = exec::reap(pid) {
                        addr.do_send(ProgramEnded { code, ending });
                        return;
                    }
                    if ended.recv().await.is_none() {
                        return;
                    }
                }
            }
            .into_actor(self),
        );
    }

    /// A stop signal while the program runs: the first makes `/ready`
    /// answer 503 and reaches the program after `SHUTDOWN_DELAY_MS`, which
    /// then has `SHUTDOWN_TIMEOUT_MS` before SIGKILL; another is forwarded
    /// at once.
    pub(super) fn forward(&mut self, signal: StopSignal, ctx: &mut Context<Self>) {
        let Some(running) = &mut self.program else {
            return;
        };
        let (pid, command) = (running.pid, Arc::clone(&running.command));
        if std::mem::replace(&mut running.signalled, true) {
            log::info!("Received {signal} again: forwarding it to {command} (pid {pid}) now");
            send(pid, signal.nix());
            return;
        }
        self.stopping = true;
        self.health.set_draining();
        let ShutdownSettings { delay, timeout } = self.settings.shutdown;
        let when = if delay.is_zero() {
            "now".to_owned()
        } else {
            format!("in {} (SHUTDOWN_DELAY_MS)", Seconds(delay))
        };
        log::info!(
            "Received {signal}: /ready answers 503; forwarding it to {command} (pid {pid}) {when}, \
             and SIGKILL if it still runs {} later (SHUTDOWN_TIMEOUT_MS)",
            Seconds(timeout)
        );
        ctx.run_later(delay, move |act, ctx| {
            if act.program.is_none() {
                return;
            }
            send(pid, signal.nix());
            ctx.run_later(timeout, move |act, _| kill_if_running(act, pid, timeout));
        });
    }
}

fn kill_if_running(act: &mut Supervisor, pid: u32, timeout: Duration) {
    if let Some(running) = &act.program {
        log::warn!(
            "{} (pid {pid}) still runs {} after the stop signal (SHUTDOWN_TIMEOUT_MS): sending SIGKILL",
            running.command,
            Seconds(timeout)
        );
        send(pid, Signal::SIGKILL);
    }
}

/// Signal the program; it may have ended a moment ago (reaped next).
fn send(pid: u32, signal: Signal) {
    if let Err(e) = exec::signal(pid, signal) {
        log::debug!("Cannot send {signal} to pid {pid}: {e}");
    }
}

impl Handler<ProgramEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, ProgramEnded { code, ending }: ProgramEnded, _: &mut Context<Self>) {
        let Some(running) = self.program.take() else {
            return;
        };
        self.health.set_program(ProgramStatus {
            command: running.command.to_string(),
            pid: Some(running.pid),
            running: false,
        });
        log::info!(
            "{} (pid {}) {ending}; exiting with code {code}",
            running.command,
            running.pid
        );
        self.exit(code);
    }
}
