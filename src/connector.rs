//! The seam between the core and the backends: a [`Connector`] knows how
//! to make one attempt and one runtime check of its backend; the retrying,
//! timing and reporting live once, in [`crate::dependency::DependencyActor`].
//! Each backend's connector lives in its folder under `src/backends/`; the
//! network and pool limits they share are here.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::error::ConnectError;
use crate::handles::Connected;

/// TCP keepalive on every connection: the first probe after this much
/// silence, then [`KEEPALIVE_INTERVAL`] apart, [`KEEPALIVE_RETRIES`] of them.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub const KEEPALIVE_RETRIES: u32 = 3;
/// `TCP_USER_TIMEOUT`: sent data unacknowledged this long closes the
/// connection (a peer that vanished from the network).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The sizes and waits of the application's pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Connections at most (`DB_POOL_SIZE`).
    pub size: usize,
    /// Longest wait for a connection (`DB_POOL_TIMEOUT_MS`).
    pub wait: Duration,
}

/// The server a dependency with several servers is connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// `host:port`, as `/ready` and the logs show it.
    pub server: String,
    /// `primary` or `standby`, when known.
    pub role: Option<&'static str>,
}

pub trait Connector: Unpin + 'static {
    /// What a successful attempt yields and later checks use.
    type Handle: Clone + Unpin + 'static;

    /// `postgres`, `mysql`, `mariadb`, `sqlite`, `redis`, `tcp`, `http`:
    /// shown on `/ready`.
    fn backend(&self) -> &'static str;

    /// One connection attempt. The actor bounds it with the attempt timeout.
    fn connect(&self) -> LocalBoxFuture<'static, Result<Self::Handle, ConnectError>>;

    /// One check of a connected dependency (also used to reconnect). It must
    /// ask the server itself, whatever the application is doing with the
    /// handle: a check that passes without asking would keep `/ready` green
    /// for a frozen server.
    fn check(&self, handle: &Self::Handle) -> LocalBoxFuture<'static, Result<(), ConnectError>>;

    /// A check failed: end the connections that work may be waiting on, so
    /// that it fails now instead of hanging on a server that stopped
    /// answering. Nothing to do where the client bounds its own waits.
    fn sever(&self) {}

    /// Whether the connection is encrypted (`/ready`'s `tls`, the Ready
    /// line); `None` where that says nothing (an embedded database, or no
    /// connection made yet).
    fn encrypted(&self) -> Option<bool> {
        None
    }

    /// Which of several servers the connection is to, after an attempt or
    /// check that passed (`/ready`'s `server` and `role`); `None` for a
    /// dependency with one server.
    fn server(&self) -> Option<ServerInfo> {
        None
    }

    /// Read the dependency's secret files again (see [`crate::secrets`]):
    /// `true` when one changed and the next connection will use it. The
    /// actor asks this while a permanent error waits, so that a rotated
    /// secret is tried at once. `false` where nothing rotates.
    fn refresh_secrets(&self) -> bool {
        false
    }

    /// Whether the dependency has secret files to watch (a `*_FILE`, a
    /// certificate): only then does a permanent error's wait look at them.
    fn watches_secrets(&self) -> bool {
        false
    }

    /// The handle as handed to the supervisor and the application.
    fn share(handle: &Self::Handle) -> Connected;
}

/// One attempt for a connector whose handle exists before any connection (a
/// pool): run `check` on it, then hand out the handle.
pub(crate) fn checked<H: 'static>(
    handle: H,
    check: impl Future<Output = Result<(), ConnectError>> + 'static,
) -> LocalBoxFuture<'static, Result<H, ConnectError>> {
    check
        .map(move |result| result.map(|()| handle))
        .boxed_local()
}

/// A dependency whose attempt and runtime check are one and the same
/// exchange with the server, and whose handle is nothing (`WAIT_FOR`'s
/// `tcp://`, `http(s)://`, `dns://` and handshake entries): it is a
/// [`Connector`] by this alone.
pub trait Exchange: Unpin + 'static {
    /// As [`Connector::backend`].
    fn backend(&self) -> &'static str;

    /// One whole exchange, from connecting to the answer.
    fn exchange(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>>;

    /// As [`Connector::encrypted`].
    fn encrypted(&self) -> Option<bool> {
        None
    }
}

impl<E: Exchange> Connector for E {
    type Handle = ();

    fn backend(&self) -> &'static str {
        Exchange::backend(self)
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.exchange()
    }

    fn check(&self, _: &()) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.exchange()
    }

    fn encrypted(&self) -> Option<bool> {
        Exchange::encrypted(self)
    }

    fn share(_: &()) -> Connected {
        Connected::Nothing
    }
}
