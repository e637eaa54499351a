//! Signals from the first instruction of `main`.
//!
//! Until a process installs a handler, SIGTERM, SIGINT and SIGHUP kill it by
//! their default action: a Kubernetes SIGTERM in the first milliseconds
//! (while settings are read and logging starts) would end the process by
//! the signal, not with exit 0. [`install`] is the first call of the
//! binary's `main`, before settings, logging or the actix `System`: its
//! handlers only record the signal (an atomic store, safe in a handler).
//! The supervisor watches the same signals with tokio once it runs, and
//! first acts on one recorded before ([`take_pending`]).
//!
//! The one window no program can cover is the dynamic loader's and the
//! runtime's, before `main` runs; `BENCHMARKS.md` measures it.
//!
//! SIGHUP is treated as SIGTERM: readygate reads its settings once, so
//! there is nothing to reload, and a hang-up must never be a silent death.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// A signal that stops readygate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
    Hup,
}

impl StopSignal {
    fn number(self) -> i32 {
        match self {
            StopSignal::Term => SIGTERM,
            StopSignal::Int => SIGINT,
            StopSignal::Hup => SIGHUP,
        }
    }

    fn from_number(n: usize) -> Option<StopSignal> {
        ALL.into_iter()
            .find(|s| usize::try_from(s.number()).ok() == Some(n))
    }

    pub(crate) fn nix(self) -> Signal {
        match self {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Hup => Signal::SIGHUP,
        }
    }
}

/// As the log lines name it: `SIGTERM`, `SIGHUP (treated as SIGTERM)`.
impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Hup => "SIGHUP (treated as SIGTERM)",
        })
    }
}

/// The signal number recorded before the supervisor watches; 0: none.
static PENDING: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
/// When [`install`] (or, without it, the gateway) started.
static START: OnceLock<Instant> = OnceLock::new();

/// Install the recording handlers for SIGTERM, SIGINT and SIGHUP, and note
/// the process's start. Call it first in `main`; calling it again does
/// nothing more.
pub fn install() -> io::Result<()> {
    START.get_or_init(Instant::now);
    let mut fresh = false;
    let pending = PENDING.get_or_init(|| {
        fresh = true;
        Arc::new(AtomicUsize::new(0))
    });
    if !fresh {
        return Ok(());
    }
    // signal-hook's registry installs its handler before it publishes the
    // action: a signal in between would be swallowed (measured: 1 in 100
    // SIGTERMs sent 0.7 ms after spawn). Blocked, it waits, and arrives once
    // the action is in place.
    let mut stop = SigSet::empty();
    for signal in ALL {
        stop.add(signal.nix());
    }
    let mut before = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop), Some(&mut before))?;
    let registered = ALL.iter().try_for_each(|signal| {
        let number = signal.number();
        signal_hook::flag::register_usize(
            number,
            Arc::clone(pending),
            usize::try_from(number).unwrap_or(0),
        )
        .map(drop)
    });
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)?;
    registered
}

const ALL: [StopSignal; 3] = [StopSignal::Term, StopSignal::Int, StopSignal::Hup];

/// The stop signal received since [`install`] and not taken yet.
pub fn take_pending() -> Option<StopSignal> {
    let number = PENDING.get()?.swap(0, Ordering::SeqCst);
    StopSignal::from_number(number)
}

/// When the process started, as far as readygate knows: the call of
/// [`install`], or the first call of this function.
pub fn process_start() -> Instant {
    *START.get_or_init(Instant::now)
}
