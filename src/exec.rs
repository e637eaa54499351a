//! `readygate exec -- CMD`: the program readygate starts once every required
//! dependency is ready, and runs under its supervision.
//!
//! The program is readygate's child, with readygate's environment and its
//! stdin, stdout and stderr, so its logs stay where the platform reads
//! them. readygate reaps every child process itself ([`reap`]): its own
//! program's status gives readygate's exit code ([`exit_code`]), and any
//! other is an orphan handed to readygate (it is a child subreaper, and may
//! be PID 1 in a container), reaped so that no zombie piles up. The
//! supervisor ([`crate::supervisor`]) decides when to start the program
//! and which signals to forward; this module only spawns, signals and
//! reaps.

use std::ffi::OsString;
use std::fmt;
use std::io;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The program and its arguments, as given after `--`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecCommand {
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Exit code when the program is not found (the shell's convention).
pub const NOT_FOUND: i32 = 127;
/// Exit code when the program cannot be executed (the shell's convention).
pub const NOT_EXECUTABLE: i32 = 126;

/// The program could not be started.
#[derive(Debug, thiserror::Error)]
#[error("Cannot start {program}: {source}")]
pub struct SpawnError {
    program: String,
    #[source]
    source: io::Error,
}

impl SpawnError {
    /// 127 when the program does not exist, 126 for every other refusal
    /// (not executable, not a program, a directory).
    pub fn exit_code(&self) -> i32 {
        match self.source.kind() {
            io::ErrorKind::NotFound => NOT_FOUND,
            _ => NOT_EXECUTABLE,
        }
    }
}

impl ExecCommand {
    /// `CMD ARGS...` from what followed `--`; `None` when nothing did.
    pub fn from_args(mut words: Vec<OsString>) -> Option<Self> {
        if words.is_empty() {
            return None;
        }
        let program = words.remove(0);
        Some(ExecCommand {
            program,
            args: words,
        })
    }

    /// Start the program as a child and return its pid. It is never waited
    /// for through [`std::process::Child`]: [`reap`] collects it.
    pub fn spawn(&self) -> Result<u32, SpawnError> {
        std::process::Command::new(&self.program)
            .args(&self.args)
            .spawn()
            .map(|child| child.id())
            .map_err(|source| SpawnError {
                program: self.to_string(),
                source,
            })
    }
}

/// The program's name as the log lines show it (quoted when it holds a
/// space or is not UTF-8); never its arguments, which may hold secrets.
impl fmt::Display for ExecCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.program.to_string_lossy();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            write!(f, "{name:?}")
        } else {
            f.write_str(&name)
        }
    }
}

/// Make readygate a child subreaper: the program's orphaned children (a
/// daemonising script's, a shell's background jobs) become readygate's
/// children, which [`reap`] collects, also when readygate is not PID 1.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Reap every child that has ended, without waiting. Returns the exit code
/// the program `pid` ended with ([`exit_code`]) if it was among them;
/// every other child reaped is an orphan, counted in the second value.
pub fn reap(pid: u32) -> (Option<(i32, Ending)>, usize) {
    let program = i32::try_from(pid).ok().map(Pid::from_raw);
    let (mut ended, mut orphans) = (None, 0);
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(status) => {
                if status.pid().is_some() && status.pid() == program {
                    ended = exit_code(status).or(ended);
                } else {
                    orphans += 1;
                }
            }
        }
    }
    (ended, orphans)
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Killed(Signal),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Exited(code) => write!(f, "exited with code {code}"),
            Ending::Killed(signal) => write!(f, "was killed by {}", signal.as_str()),
        }
    }
}

/// readygate's exit code for a child's status: its own code, or 128+N when
/// signal N killed it (the shell's convention); `None` for a status that
/// is not an end (stopped, continued).
pub fn exit_code(status: WaitStatus) -> Option<(i32, Ending)> {
    match status {
        WaitStatus::Exited(_, code) => Some((code, Ending::Exited(code))),
        WaitStatus::Signaled(_, signal, _) => Some((128 + signal as i32, Ending::Killed(signal))),
        _ => None,
    }
}

/// Send `signal` to the program; an error only when it is not there any
/// more (it ended and is about to be reaped).
pub fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    kill(Pid::from_raw(pid), signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_programs_or_128_plus_the_signal() {
        let pid = Pid::from_raw(42);
        assert_eq!(
            exit_code(WaitStatus::Exited(pid, 7)),
            Some((7, Ending::Exited(7)))
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some((137, Ending::Killed(Signal::SIGKILL)))
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            Some((143, Ending::Killed(Signal::SIGTERM)))
        );
        assert_eq!(exit_code(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
        assert_eq!(
            Ending::Killed(Signal::SIGKILL).to_string(),
            "was killed by SIGKILL"
        );
    }

    #[test]
    fn a_missing_program_is_127_and_a_file_that_is_no_program_126() {
        let missing = ExecCommand::from_args(vec!["/nonexistent/readygate-test".into()]).unwrap();
        let err = missing.spawn().unwrap_err();
        assert_eq!(err.exit_code(), NOT_FOUND);
        assert!(
            err.to_string()
                .starts_with("Cannot start /nonexistent/readygate-test: "),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-a-program");
        std::fs::write(&plain, "echo hi\n").unwrap();
        let not_executable = ExecCommand::from_args(vec![plain.into()]).unwrap();
        assert_eq!(
            not_executable.spawn().unwrap_err().exit_code(),
            NOT_EXECUTABLE
        );
    }

    #[test]
    fn the_program_is_shown_without_its_arguments() {
        let cmd = ExecCommand::from_args(vec![
            "./server".into(),
            "--password".into(),
            "hunter2".into(),
        ])
        .unwrap();
        assert_eq!(cmd.to_string(), "./server");
        let spaced = ExecCommand::from_args(vec!["my server".into()]).unwrap();
        assert_eq!(spaced.to_string(), "\"my server\"");
        assert_eq!(ExecCommand::from_args(Vec::new()), None);
    }
}
