//! `WAIT_FOR=name=tcp://host:port`: up when a TCP connection opens (what
//! wait-for-it checks), at start-up and at every runtime check.

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::config::Checker;
use crate::connector::Exchange;
use crate::error::{ConnectError, named_by};

/// Why the connection did not open (named by the I/O error's kind).
#[derive(Debug, thiserror::Error)]
#[error("cannot open a TCP connection")]
pub struct TcpError(#[source] std::io::Error);

named_by!(TcpError, []);

/// The host and port of a `tcp://` entry (`parsed`, naming `host`); a
/// problem recorded in `c` against `WAIT_FOR` when it has no port.
pub(crate) fn parse(
    c: &mut Checker,
    shown: &str,
    parsed: &url::Url,
    host: &str,
) -> Option<(String, u16)> {
    let Some(port) = parsed.port() else {
        c.fail(
            "WAIT_FOR",
            shown,
            "has a tcp:// entry without a port",
            super::WAIT_FOR_ACCEPTED,
        );
        return None;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port))
}

pub struct TcpConnector {
    host: String,
    port: u16,
}

impl TcpConnector {
    pub fn new(host: String, port: u16) -> Self {
        TcpConnector { host, port }
    }

    fn open(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let (host, port) = (self.host.clone(), self.port);
        async move {
            tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map(drop)
                .map_err(|e| TcpError(e).into())
        }
        .boxed_local()
    }
}

impl Exchange for TcpConnector {
    fn backend(&self) -> &'static str {
        "tcp"
    }

    fn exchange(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.open()
    }
}
