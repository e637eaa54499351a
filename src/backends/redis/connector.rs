//! Redis through the `redis` crate's `ConnectionManager`: one attempt is
//! "connect and `PING`". The manager's own start-up retries are off, since
//! the dependency actor owns the retry policy.
//!
//! Redis turns away a client over `maxclients` by writing `-ERR max number
//! of clients reached` as it accepts the connection, then closing it; the
//! client, which speaks first, only sees its write fail (a reset, a broken
//! pipe). After such a failure the connector opens one more connection and
//! reads what the server greets it with, so that the cause is named.

use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};
use redis::ConnectionAddr;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use std::sync::Arc;

use super::error::RedisError;
use super::handle::{RedisManager, Slot, check_or_replace, db_of};
use super::options::{RedisTls, client};
use super::rotation::{Auth, Provider, current_tls, watched, watched_tls};
use crate::backends::Cache;
use crate::connector::Connector;
use crate::error::ConnectError;
use crate::handles::Connected;
use crate::secrets::Watched;

pub struct RedisConnector {
    /// `REDIS_URL` as given (its password is the one read at start: new
    /// connections ask `auth` for the current one).
    url: String,
    config: ConnectionManagerConfig,
    /// The `REDIS_TLS_*` files of a `rediss://` URL, read again when they
    /// change.
    tls: Option<Arc<Watched<RedisTls>>>,
    /// The rotating password, when the URL has one.
    auth: Option<Arc<Watched<Auth>>>,
    /// What the application holds: the manager it uses now.
    handle: RedisManager,
    /// `host:port`, the handle's `server()`.
    server: String,
}

/// The error reply in `bytes`, the first read of a fresh connection before
/// it sent anything: the text of a RESP error (`-ERR max number of clients
/// reached\r\n` gives `ERR max number of clients reached`), up to the
/// first CR or LF, trimmed, invalid UTF-8 replaced; `None` for anything
/// else (no `-`, an empty reply). Pure, for the fuzz target `server_reply`.
pub fn parse_greeting(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let reply = text.strip_prefix('-')?.split(['\r', '\n']).next()?.trim();
    (!reply.is_empty()).then(|| reply.to_owned())
}

/// How long a fresh connection waits for a greeting: a server turning
/// clients away writes it at once; a healthy one writes nothing.
const GREETING_WAIT: Duration = Duration::from_millis(100);

impl RedisConnector {
    /// `tls`: the certificates for a `rediss://` URL (`None`: plain).
    pub fn new(url: &str, tls: Option<&RedisTls>, timeout: Duration) -> Result<Self, ConnectError> {
        // Refused here, not at the first attempt.
        let client = client(url, tls).map_err(RedisError::Connect)?;
        let server = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            other => other.to_string(),
        };
        let db = url::Url::parse(url).map(|u| db_of(&u)).unwrap_or(0);
        // The actor bounds each attempt by `timeout` and reports it as such;
        // the manager's own limits only bound what applications do with it
        // later (its background reconnections, their commands).
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout.saturating_mul(2)))
            .set_response_timeout(Some(timeout));
        Ok(RedisConnector {
            url: url.to_owned(),
            config,
            tls: watched_tls(tls),
            auth: None,
            handle: RedisManager::new(db, "no connection made yet"),
            server,
        })
    }

    /// Every new connection (the managers' reconnections included) asks
    /// `source` for the password, read again when its file changed (see
    /// [`super::rotation`]); nothing changes for a URL without a password.
    pub fn rotating(mut self, url: &str, source: &crate::secrets::UrlSource) -> Self {
        if let Some(auth) = watched(url, source) {
            self.config = self
                .config
                .set_credentials_provider(Provider(Arc::clone(&auth)));
            self.auth = Some(auth);
        }
        self
    }

    /// A new manager, made with the TLS files `tls` (the current ones),
    /// proven by a `PING`, and handed to the application's handle.
    fn fresh(
        &self,
        tls: Option<RedisTls>,
    ) -> LocalBoxFuture<'static, Result<RedisManager, ConnectError>> {
        let (url, config, handle, server) = (
            self.url.clone(),
            self.config.clone(),
            self.handle.clone(),
            self.server.clone(),
        );
        async move {
            let client = client(&url, tls.as_ref()).map_err(RedisError::Connect)?;
            let addr = client.get_connection_info().addr().clone();
            let manager = match ConnectionManager::new_with_config(client, config).await {
                Ok(manager) => manager,
                Err(e) => return Err(Self::connect_error(e, addr).await),
            };
            Self::ping(manager.clone())
                .await
                .map_err(RedisError::Command)?;
            handle.set(Slot {
                server,
                conn: manager,
                tls,
            });
            Ok(handle)
        }
        .boxed_local()
    }

    /// The error reply a fresh connection to `addr` is greeted with, before
    /// it sends anything (`ERR max number of clients reached`); `None` when
    /// it gets none within [`GREETING_WAIT`].
    async fn greeting(addr: ConnectionAddr) -> Option<String> {
        let ConnectionAddr::Tcp(host, port) = addr else {
            return None;
        };
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .ok()?;
        let mut buf = [0u8; 256];
        let read = async {
            loop {
                stream.readable().await?;
                match stream.try_read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            }
        };
        let n = tokio::time::timeout(GREETING_WAIT, read).await.ok()?.ok()?;
        parse_greeting(&buf[..n])
    }

    /// A failed connection attempt, with the server's greeting when it
    /// dropped the connection (see the module's documentation).
    async fn connect_error(err: redis::RedisError, addr: ConnectionAddr) -> ConnectError {
        if !err.is_connection_dropped() {
            return RedisError::Connect(err).into();
        }
        match Self::greeting(addr).await {
            Some(reply) => RedisError::TurnedAway { reply, source: err }.into(),
            None => RedisError::Connect(err).into(),
        }
    }

    async fn ping(mut manager: ConnectionManager) -> Result<(), redis::RedisError> {
        redis::cmd("PING")
            .query_async::<String>(&mut manager)
            .await
            .map(drop)
    }
}

impl Connector for RedisConnector {
    type Handle = RedisManager;

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<RedisManager, ConnectError>> {
        self.fresh(current_tls(self.tls.as_ref()))
    }

    /// `PING` on the manager in use; when it failed in a way that manager
    /// cannot get over (see [`super::handle`]), a new one is made.
    fn check(&self, handle: &RedisManager) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let tls = current_tls(self.tls.as_ref());
        check_or_replace(handle, tls, Self::ping, Ok, |tls| self.fresh(tls))
    }

    fn encrypted(&self) -> Option<bool> {
        Some(self.tls.is_some())
    }

    fn watches_secrets(&self) -> bool {
        super::rotation::watches(self.auth.as_ref())
            || self.tls.as_ref().is_some_and(|t| t.watches())
    }

    fn refresh_secrets(&self) -> bool {
        let auth = super::rotation::refreshed(self.auth.as_ref());
        let tls = self
            .tls
            .as_ref()
            .is_some_and(|t| t.refresh() == crate::secrets::Refresh::Changed);
        auth || tls
    }

    fn share(handle: &RedisManager) -> Connected {
        Connected::Cache(Cache::Redis(handle.clone()))
    }
}

impl RedisConnector {
    /// A handle whose manager connects on first use, for an optional cache
    /// that the application gets before Redis is up.
    pub fn lazy(&self) -> Option<Connected> {
        let tls = current_tls(self.tls.as_ref());
        let client = client(&self.url, tls.as_ref()).ok()?;
        let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone()).ok()?;
        self.handle.set(Slot {
            server: self.server.clone(),
            conn: manager,
            tls,
        });
        Some(Self::share(&self.handle))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_greeting;

    #[test]
    fn a_greeting_is_the_first_line_of_an_error_reply() {
        assert_eq!(
            parse_greeting(b"-ERR max number of clients reached\r\n").as_deref(),
            Some("ERR max number of clients reached")
        );
        assert_eq!(
            parse_greeting(b"-LOADING busy\r\n-ERR second\r\n").as_deref(),
            Some("LOADING busy")
        );
        assert_eq!(
            parse_greeting(b"-ERR caf\xff\r\n").as_deref(),
            Some("ERR caf\u{fffd}")
        );
        // Found by the fuzz target `server_reply`: a lone CR ends a RESP
        // line too (an error reply holds neither CR nor LF).
        assert_eq!(
            parse_greeting(b"-ERR one\rtwo\r\n").as_deref(),
            Some("ERR one")
        );
        for other in [&b""[..], b"+OK\r\n", b"-", b"-  \r\n", b"-\r\nERR late\r\n"] {
            assert_eq!(parse_greeting(other), None, "{other:?}");
        }
    }
}
