//! Stopping and freezing a server child process: shared by
//! [`super::postgres`], [`super::mariadb`] and [`super::redis`].

use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::ports::wait_port_closed;

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
