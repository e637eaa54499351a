//! Stopping and freezing a server child process: shared by
//! [`super::postgres`], [`super::mariadb`] and [`super::redis`].

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::ports::wait_port_closed;
use super::tail_file;

/// How long a server may take to stop before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `signal`, waits for the exit (SIGKILL after [`STOP_TIMEOUT`]).
/// No-op when there is no child.
pub fn shutdown(child: &mut Option<Child>, signal: Signal) {
    let Some(mut child) = child.take() else {
        return;
    };
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
}

/// [`shutdown`], then waits until `port` refuses connections, so the server
/// can be restarted on it; panics naming `what` if it does not.
pub fn shutdown_and_release(child: &mut Option<Child>, signal: Signal, port: u16, what: &str) {
    shutdown(child, signal);
    if !wait_port_closed(port, Duration::from_secs(5)) {
        panic!("port {port} still accepts connections after {what} stopped");
    }
}

pub fn is_running(child: &mut Option<Child>) -> bool {
    match child.as_mut() {
        Some(child) => matches!(child.try_wait(), Ok(None)),
        None => false,
    }
}

/// Sends `signal` to `pid`, ignoring a process that has already gone.
pub fn signal_pid(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// The PIDs whose parent is `parent` (from `/proc/*/stat`).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "PID (COMM) STATE PPID ...": COMM may hold spaces and ')'.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Freezes `pid` as a hung machine would: SIGSTOP to it (first, so that it
/// starts nothing more) and to every process it started. The kernel still
/// accepts TCP connections and acknowledges data; nothing answers. Returns
/// the stopped PIDs, for [`thaw`].
pub fn freeze(pid: u32) -> Vec<u32> {
    signal_pid(pid, Signal::SIGSTOP);
    let children = children_of(pid);
    for child in &children {
        signal_pid(*child, Signal::SIGSTOP);
    }
    std::iter::once(pid).chain(children).collect()
}

/// Undoes [`freeze`] (SIGCONT, children first) and empties `frozen`.
pub fn thaw(frozen: &mut Vec<u32>) {
    for pid in std::mem::take(frozen).iter().rev() {
        signal_pid(*pid, Signal::SIGCONT);
    }
}

/// Spawns `cmd` (named `what` in a panic) with its stdout and stderr
/// appended to `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path, what: &str) -> Child {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("dup log fd: {e}"));
    cmd.stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"))
}

/// Waits until `ready()` holds for the server `child` (`what` on `port`,
/// logging to `log`), polled every 10 ms for at most `timeout`. An error
/// with the log's tail when the server exits first (`child` is then
/// `None`) or time runs out (`not_ready` says what it did not do).
pub fn wait_ready(
    child: &mut Option<Child>,
    (what, port, log): (&str, u16, &Path),
    timeout: Duration,
    not_ready: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(running) = child.as_mut()
            && let Ok(Some(status)) = running.try_wait()
        {
            *child = None;
            return Err(format!(
                "{what} on port {port} exited during start-up ({status}); log tail:\n{}",
                tail_file(log, 40)
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} on port {port} did not {not_ready} within {timeout:?}; log tail:\n{}",
                tail_file(log, 40)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A server the support code starts on a free port.
pub trait Server {
    /// Starts it on its port; `Err` (with "already in use" when another
    /// process took the port) when it did not come up.
    fn try_start_server(&mut self) -> Result<(), String>;
    fn port_mut(&mut self) -> &mut u16;
}

/// Starts `server`; should another process take the port between
/// [`super::free_port`] and the server's bind, on another port (up to 3
/// times). Panics with the server's error otherwise.
pub fn start_on_a_free_port<S: Server>(mut server: S) -> S {
    for _ in 0..3 {
        match server.try_start_server() {
            Ok(()) => return server,
            Err(e) if e.contains("already in use") => *server.port_mut() = super::free_port(),
            Err(e) => panic!("{e}"),
        }
    }
    if let Err(e) = server.try_start_server() {
        panic!("{e}");
    }
    server
}
