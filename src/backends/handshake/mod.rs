//! `WAIT_FOR` entries whose check is a protocol's opening exchange:
//! `amqp://`/`amqps://` ([`amqp`]: an AMQP 0-9-1 connection opens on the
//! vhost), `nats://` ([`nats`]: `INFO`, then `CONNECT` and `PING`/`PONG`) and
//! `mqtt://` ([`mqtt`]: `CONNECT` answered by an accepting `CONNACK`). Each
//! attempt and each runtime check opens a connection of its own, makes the
//! exchange, and closes it as the protocol says.
//!
//! Why the wire protocol and not a client crate (lapin or amqprs,
//! async-nats, rumqttc): each check is a handful of frames (80 to 200 lines
//! here), while each client brings its own connection loop, reconnection,
//! heartbeats and executor glue (lapin: amq-protocol's parsers and
//! generators, pinky-swear, an executor trait; async-nats: nkeys, ed25519,
//! its own TLS set-up; rumqttc: flume and its event loop) that the
//! dependency actor already is, and tens of crates to build on every
//! change. The exchange itself is what the check must see: a broker that
//! accepts TCP but not the login, or not yet the vhost, is not up.

pub mod amqp;
pub mod mqtt;
pub mod nats;

use std::io;
use std::sync::Arc;

use futures_util::future::{FutureExt, LocalBoxFuture};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::config::Checker;
use crate::connector::Exchange;
use crate::error::{BackendError, ConnectError, ErrorClass};

/// Where a handshake entry connects, and as whom.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The URL's user name, percent-decoded.
    pub user: Option<String>,
    /// The URL's password, percent-decoded.
    pub password: Option<String>,
    /// `amqps://`.
    pub tls: bool,
    /// The URL's path without its first `/`, percent-decoded (AMQP's vhost).
    pub path: String,
}

impl Endpoint {
    /// The endpoint of `parsed` (naming `host`), `port` when the URL gives
    /// none; a problem in `c` against `WAIT_FOR` for what cannot be decoded.
    pub(crate) fn parse(
        c: &mut Checker,
        shown: &str,
        parsed: &url::Url,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Option<Endpoint> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
        };
        let user = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(decode);
        let password = parsed.password().map(decode);
        let path = decode(parsed.path().strip_prefix('/').unwrap_or(parsed.path()));
        match (user.transpose(), password.transpose(), path) {
            (Ok(user), Ok(password), Ok(path)) => Some(Endpoint {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port: parsed.port().unwrap_or(port),
                user,
                password,
                tls,
                path,
            }),
            _ => {
                c.fail(
                    "WAIT_FOR",
                    shown,
                    "has an entry whose user, password or path is not UTF-8 once decoded",
                    super::WAIT_FOR_ACCEPTED,
                );
                None
            }
        }
    }
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("cannot connect to {0}")]
    Connect(&'static str, #[source] io::Error),
    #[error("TLS with {0} failed")]
    Tls(&'static str, #[source] io::Error),
    #[error("TLS cannot be set up")]
    TlsConfig(#[source] crate::tls::TlsConfigError),
    #[error("{0} connection failed during the handshake")]
    Io(&'static str, #[source] io::Error),
    /// The port answers, but not as this protocol's server does: not up.
    #[error("the server does not speak {0}: {1}")]
    Protocol(&'static str, String),
    /// The server refused the credentials: permanent.
    #[error("{0} refused the credentials: {1}")]
    Auth(&'static str, String),
    /// The server refused the connection for another reason (a vhost not
    /// open yet, a server unavailable): transient.
    #[error("{0} refused the connection: {1}")]
    Refused(&'static str, String),
}

impl BackendError for HandshakeError {
    fn summary(&self) -> String {
        match self {
            HandshakeError::Protocol(what, _) => format!("does not speak {what}"),
            HandshakeError::Auth(..) => "authentication failed".into(),
            HandshakeError::Refused(_, why) => crate::error::one_line(why),
            _ => crate::error::summary(self, &[]),
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            HandshakeError::Auth(..) | HandshakeError::TlsConfig(_) => ErrorClass::Permanent,
            _ => crate::error::class(self, &[]),
        }
    }
}

/// A connection, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A TCP connection to `ep`, through TLS (verified against the platform's
/// roots, for the host's name) when it says so.
pub(crate) async fn open(what: &'static str, ep: &Endpoint) -> Result<Box<dyn Io>, HandshakeError> {
    let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| HandshakeError::Connect(what, e))?;
    if !ep.tls {
        return Ok(Box::new(tcp));
    }
    let config = crate::tls::client_config(
        crate::tls::Verify::ChainAndName(&crate::tls::Roots::System),
        None,
    )
    .map_err(HandshakeError::TlsConfig)?;
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|e| HandshakeError::Tls(what, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| HandshakeError::Tls(what, e))?;
    Ok(Box::new(tls))
}

/// Exactly `n` bytes (at most `limit`: a peer speaking another protocol
/// must not make us allocate what its bytes happen to say).
pub(crate) async fn read_n(
    what: &'static str,
    io: &mut (impl AsyncRead + Unpin + ?Sized),
    n: usize,
    limit: usize,
) -> Result<Vec<u8>, HandshakeError> {
    if n > limit {
        return Err(HandshakeError::Protocol(
            what,
            format!("announced {n} bytes, more than {limit}"),
        ));
    }
    let mut buf = vec![0; n];
    io.read_exact(&mut buf)
        .await
        .map_err(|e| HandshakeError::Io(what, e))?;
    Ok(buf)
}

/// Which handshake an entry makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Amqp,
    Nats,
    Mqtt,
}

impl Protocol {
    /// Its backend, shown on `/ready` and in the metrics' labels.
    pub fn backend(self) -> &'static str {
        match self {
            Protocol::Amqp => "amqp",
            Protocol::Nats => "nats",
            Protocol::Mqtt => "mqtt",
        }
    }
}

/// An attempt or a check: one whole handshake.
pub struct HandshakeConnector {
    protocol: Protocol,
    endpoint: Endpoint,
}

impl HandshakeConnector {
    pub fn new(protocol: Protocol, endpoint: Endpoint) -> Self {
        HandshakeConnector { protocol, endpoint }
    }

    fn shake(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let (protocol, ep) = (self.protocol, self.endpoint.clone());
        async move {
            match protocol {
                Protocol::Amqp => amqp::handshake(&ep).await,
                Protocol::Nats => nats::handshake(&ep).await,
                Protocol::Mqtt => mqtt::handshake(&ep).await,
            }
            .map_err(ConnectError::from)
        }
        .boxed_local()
    }
}

impl Exchange for HandshakeConnector {
    fn backend(&self) -> &'static str {
        self.protocol.backend()
    }

    fn exchange(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.shake()
    }

    fn encrypted(&self) -> Option<bool> {
        Some(self.endpoint.tls)
    }
}
