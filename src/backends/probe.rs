//! The application's own dependencies: implement [`Probe`] (connect once,
//! check once, hand out a handle) and add it with
//! [`crate::Gateway::dependency`]. readygate retries it with its policy,
//! logs, publishes it on `/ready` and `/metrics`, checks it at runtime, and
//! hands the handle to the application's routes
//! ([`crate::Dependencies::get`]).

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::connector::Connector;
use crate::error::{BackendError, ConnectError, ErrorClass};
use crate::handles::Connected;

/// A dependency of the application's own (an HTTP service, a message
/// broker): how to connect to it once and check it once. Each call is
/// bounded by the dependency's attempt timeout; a future that never ends
/// counts as timed out.
///
/// ```
/// use futures_util::future::{FutureExt, LocalBoxFuture};
/// use readygate::{Probe, ProbeError};
///
/// /// A service that answers on a TCP port.
/// struct Upstream(std::net::SocketAddr);
///
/// impl Probe for Upstream {
///     type Handle = std::net::SocketAddr;
///
///     fn backend(&self) -> &'static str {
///         "tcp"
///     }
///
///     fn connect(&self) -> LocalBoxFuture<'static, Result<Self::Handle, ProbeError>> {
///         let addr = self.0;
///         async move {
///             tokio::net::TcpStream::connect(addr)
///                 .await
///                 .map_err(ProbeError::transient)?;
///             Ok(addr)
///         }
///         .boxed_local()
///     }
///
///     fn check(&self, addr: &Self::Handle) -> LocalBoxFuture<'static, Result<(), ProbeError>> {
///         let addr = *addr;
///         async move {
///             tokio::net::TcpStream::connect(addr)
///                 .await
///                 .map(drop)
///                 .map_err(ProbeError::transient)
///         }
///         .boxed_local()
///     }
/// }
/// ```
pub trait Probe: Send + 'static {
    /// What the application's routes receive once it is up (a client, a
    /// connection handle; `()` when there is nothing to hand out).
    type Handle: Clone + Send + Sync + Unpin + 'static;

    /// Shown on `/ready` as the backend: `http`, `nats`, `amqp`.
    fn backend(&self) -> &'static str;

    /// One attempt: connect and make sure it answers.
    fn connect(&self) -> LocalBoxFuture<'static, Result<Self::Handle, ProbeError>>;

    /// One check of a connected dependency; a failure marks it down (and
    /// the next successes reconnect it through this same check).
    fn check(&self, handle: &Self::Handle) -> LocalBoxFuture<'static, Result<(), ProbeError>>;
}

/// Why a [`Probe`] failed, and whether retrying can help.
#[derive(Debug)]
pub struct ProbeError {
    permanent: bool,
    source: Box<dyn StdError + Send + Sync>,
}

impl ProbeError {
    /// Worth retrying (refused, timed out, not ready yet).
    pub fn transient(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        ProbeError {
            permanent: false,
            source: source.into(),
        }
    }

    /// Retrying cannot help (bad credentials, wrong address): one ERROR
    /// line, and start-up stops if the dependency is required.
    pub fn permanent(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        ProbeError {
            permanent: true,
            source: source.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for ProbeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.source()
    }
}

/// The application's error says its class; its cause is named by every
/// backend's vocabulary, since a probe may wrap any client's error.
impl BackendError for ProbeError {
    fn summary(&self) -> String {
        crate::error::summary(self, crate::backends::VOCABULARIES)
    }

    fn class(&self) -> ErrorClass {
        if self.permanent {
            ErrorClass::Permanent
        } else {
            ErrorClass::Transient
        }
    }
}

/// A [`Probe`] as a connector of the one dependency actor.
pub struct ProbeConnector<P> {
    probe: Box<P>,
}

impl<P: Probe> ProbeConnector<P> {
    pub fn new(probe: P) -> Self {
        ProbeConnector {
            probe: Box::new(probe),
        }
    }
}

impl<P: Probe> Connector for ProbeConnector<P> {
    type Handle = P::Handle;

    fn backend(&self) -> &'static str {
        self.probe.backend()
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<P::Handle, ConnectError>> {
        self.probe
            .connect()
            .map(|r| r.map_err(ConnectError::from))
            .boxed_local()
    }

    fn check(&self, handle: &P::Handle) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.probe
            .check(handle)
            .map(|r| r.map_err(ConnectError::from))
            .boxed_local()
    }

    fn share(handle: &P::Handle) -> Connected {
        let handle: Arc<dyn Any + Send + Sync> = Arc::new(handle.clone());
        Connected::Other(handle)
    }
}
