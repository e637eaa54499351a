//! Redis behind Sentinel (`CACHE_TYPE=redis-sentinel`): an attempt asks
//! the sentinels, in the order of `REDIS_SENTINEL_NODES`, for the master's
//! address (`SENTINEL get-master-addr-by-name`), connects to it and checks
//! with `ROLE` that it really is the master. A runtime check takes the same
//! path, so a failover is seen: the old master stops answering (down), the
//! sentinels name the promoted replica, the check connects to it and the
//! handle the application holds ([`SentinelManager`]) switches to it.
//!
//! The redis crate's own `sentinel` feature answers "which master" but not
//! why none was found (which sentinel failed how, an unknown name), and its
//! clients stay on the address they were made for; so the sentinels are
//! asked here with plain commands, and each master gets the crate's
//! `ConnectionManager`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Value};

use super::error::RedisError;
use super::handle::{SentinelManager, Slot, db_of, replace};
use super::options::{RedisTls, SentinelSettings, at, client, url_host};
use super::rotation::{Auth, Provider, current_tls, watched, watched_password, watched_tls};
use crate::backends::Cache;
use crate::connector::{Connector, ServerInfo};
use crate::error::ConnectError;
use crate::handles::Connected;
use crate::secrets::{Refresh, Watched};

/// Asks the sentinels, connects to the master they name, and keeps the
/// application's [`SentinelManager`] on it.
pub struct SentinelConnector {
    /// Each sentinel's address as shown and its URL (without a password:
    /// the current one is put in at each attempt), in order.
    sentinels: Nodes,
    /// The sentinels' password, its file read again before they are asked.
    sentinel_auth: Arc<Watched<Option<String>>>,
    /// The master's rotating password (`REDIS_URL_FILE`), when it has one:
    /// each new connection to a master asks it (see [`super::rotation`]).
    master_auth: Option<Arc<Watched<Auth>>>,
    name: Arc<str>,
    /// `REDIS_URL`, whose host and port are replaced by the master's.
    master_url: Arc<url::Url>,
    /// The `REDIS_TLS_*` files (sentinels and masters alike), read again
    /// when they change.
    tls: Option<Arc<Watched<RedisTls>>>,
    config: ConnectionManagerConfig,
    timeout: Duration,
    handle: SentinelManager,
    /// What the last check or attempt connected to (`/ready`'s `server`).
    server: Arc<Mutex<Option<String>>>,
}

/// Each sentinel's address as shown and its URL, without a password.
type Nodes = Arc<[(String, url::Url)]>;

/// How to ask the sentinels at one attempt: their URLs, the password now,
/// TLS.
struct Asking {
    nodes: Nodes,
    password: Option<String>,
    tls: Option<RedisTls>,
}

impl SentinelConnector {
    pub fn new(s: &SentinelSettings) -> Result<Self, ConnectError> {
        let timeout = s.redis.retry.attempt_timeout;
        let master_url = url::Url::parse(&s.redis.url).map_err(|e| {
            RedisError::Connect(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid REDIS_URL",
                e.to_string(),
            )))
        })?;
        // The sentinels speak TLS when the master does; they have their own
        // password (or none, put in at each attempt), and no database.
        let mut sentinel_url = master_url.clone();
        sentinel_url.set_path("");
        let _ = sentinel_url.set_username("");
        let _ = sentinel_url.set_password(None);
        let sentinels = s
            .nodes
            .iter()
            .map(|(host, port)| {
                let url = at(&sentinel_url, host, *port)?;
                // Refused here, not at the first attempt.
                client(url.as_str(), s.redis.tls.as_ref())?;
                Ok((format!("{}:{port}", url_host(host)), url))
            })
            .collect::<Result<Vec<_>, redis::RedisError>>()
            .map_err(RedisError::Connect)?;
        let sentinel_auth = watched_password(s.password.clone(), s.password_source.as_ref());
        let master_auth = watched(&s.redis.url, &s.redis.source);
        let db = db_of(&master_url);
        let mut config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout.saturating_mul(2)))
            .set_response_timeout(Some(timeout));
        if let Some(auth) = &master_auth {
            config = config.set_credentials_provider(Provider(Arc::clone(auth)));
        }
        Ok(SentinelConnector {
            sentinels: sentinels.into(),
            sentinel_auth,
            master_auth,
            name: s.master.as_str().into(),
            master_url: Arc::new(master_url),
            tls: watched_tls(s.redis.tls.as_ref()),
            config,
            timeout,
            handle: SentinelManager::new(db, "no master found through the sentinels yet"),
            server: Arc::new(Mutex::new(None)),
        })
    }

    /// The handle before any connection, for an optional cache.
    pub fn lazy(&self) -> Option<Connected> {
        Some(Self::share(&self.handle))
    }

    /// The master's address, from the first sentinel that knows it. Each
    /// sentinel gets an equal share of `timeout`, with one share left for
    /// the master's connection and `ROLE` ([`SentinelConnector::follow`]),
    /// so that a sentinel that hangs (frozen, or accepting and never
    /// answering) cannot take the whole attempt from the next one.
    async fn resolve(
        Asking {
            nodes: sentinels,
            password,
            tls,
        }: Asking,
        name: Arc<str>,
        timeout: Duration,
    ) -> Result<(String, u16), RedisError> {
        let shares = u32::try_from(sentinels.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let share = timeout / shares;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(share))
            .set_response_timeout(Some(share));
        let mut tried = Vec::new();
        let mut last_error = None;
        let mut answered = false;
        for (shown, url) in sentinels.iter() {
            let asked = async {
                let mut url = url.clone();
                let _ = url.set_password(password.as_deref());
                let mut conn = client(url.as_str(), tls.as_ref())?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&*name)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            let asked = async {
                tokio::time::timeout(share, asked)
                    .await
                    .unwrap_or_else(|_| {
                        Err(redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no answer within {}", crate::retry::Seconds(share)),
                        )))
                    })
            };
            match asked.await {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => {
                    answered = true;
                    tried.push(format!("{shown}: unknown master"));
                }
                Err(e) => {
                    tried.push(format!("{shown}: {}", crate::error::cause_chain(&e)));
                    last_error = Some(e);
                }
            }
        }
        let tried = tried.join("; ");
        match last_error {
            Some(source) if !answered => Err(RedisError::SentinelsUnreachable { tried, source }),
            _ => Err(RedisError::UnknownMaster {
                name: name.to_string(),
                tried,
            }),
        }
    }

    /// `ROLE`'s first word (`master`, `slave`, `sentinel`).
    async fn role(mut manager: ConnectionManager) -> Result<String, redis::RedisError> {
        let reply = redis::cmd("ROLE")
            .query_async::<Value>(&mut manager)
            .await?;
        let first = match reply {
            Value::Array(items) => items.into_iter().next(),
            _ => None,
        };
        Ok(first
            .and_then(|v| redis::from_redis_value::<String>(v).ok())
            .unwrap_or_else(|| "unknown".to_owned()))
    }

    /// One attempt or check: ask the sentinels; when they name another
    /// master than the handle's, connect to it; check it is the master;
    /// then point the handle at it.
    fn follow(&self) -> LocalBoxFuture<'static, Result<SentinelManager, ConnectError>> {
        let (name, timeout) = (self.name.clone(), self.timeout);
        self.sentinel_auth.refresh();
        let tls = current_tls(self.tls.as_ref());
        let sentinels = Asking {
            nodes: self.sentinels.clone(),
            password: self.sentinel_auth.current(),
            tls: tls.clone(),
        };
        let (url, config) = (self.master_url.clone(), self.config.clone());
        let (handle, shown) = (self.handle.clone(), self.server.clone());
        async move {
            let (host, port) = Self::resolve(sentinels, name.clone(), timeout).await?;
            let server = format!("{}:{port}", url_host(&host));
            let new_master = || async {
                let url = at(&url, &host, port).map_err(RedisError::Connect)?;
                let client = client(url.as_str(), tls.as_ref()).map_err(RedisError::Connect)?;
                let manager = ConnectionManager::new_with_config(client, config.clone())
                    .await
                    .map_err(|source| RedisError::Master {
                        server: server.clone(),
                        source,
                    })?;
                Ok::<_, RedisError>(Slot {
                    server: server.clone(),
                    conn: manager,
                    tls: tls.clone(),
                })
            };
            let (master, role) = match handle.slot() {
                Some(master) if master.server == server => {
                    match Self::role(master.conn.clone()).await {
                        // A manager that cannot get over its failure (a
                        // refused password, old TLS files: see
                        // `super::handle`) is replaced by a new one.
                        Err(e) if replace(&master, &e, tls.as_ref()) => {
                            let master = new_master().await?;
                            let role = Self::role(master.conn.clone()).await;
                            (master, role)
                        }
                        role => (master, role),
                    }
                }
                _ => {
                    let master = new_master().await?;
                    let role = Self::role(master.conn.clone()).await;
                    (master, role)
                }
            };
            let role = role.map_err(|source| RedisError::Master {
                server: server.clone(),
                source,
            })?;
            if role != "master" {
                return Err(RedisError::NotMaster {
                    name: name.to_string(),
                    server,
                    role,
                }
                .into());
            }
            *shown.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
            handle.set(master);
            Ok(handle)
        }
        .boxed_local()
    }
}

impl Connector for SentinelConnector {
    type Handle = SentinelManager;

    fn backend(&self) -> &'static str {
        "redis-sentinel"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<SentinelManager, ConnectError>> {
        self.follow()
    }

    fn check(&self, _: &SentinelManager) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.follow().map(|r| r.map(drop)).boxed_local()
    }

    fn encrypted(&self) -> Option<bool> {
        Some(self.tls.is_some())
    }

    fn watches_secrets(&self) -> bool {
        self.sentinel_auth.watches()
            || super::rotation::watches(self.master_auth.as_ref())
            || self.tls.as_ref().is_some_and(|t| t.watches())
    }

    fn refresh_secrets(&self) -> bool {
        let sentinels = self.sentinel_auth.refresh() == Refresh::Changed;
        let master = super::rotation::refreshed(self.master_auth.as_ref());
        let tls = self
            .tls
            .as_ref()
            .is_some_and(|t| t.refresh() == Refresh::Changed);
        sentinels || master || tls
    }

    fn server(&self) -> Option<ServerInfo> {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(ServerInfo {
            server,
            role: Some("primary"),
        })
    }

    fn share(handle: &SentinelManager) -> Connected {
        Connected::Cache(Cache::RedisSentinel(handle.clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::backends::redis::options::parse_node;
    use crate::config::{CacheSettings, Cli};

    #[test]
    fn node_entries_need_a_host_and_a_port() {
        assert_eq!(parse_node("s0:26379"), Ok(("s0".into(), 26379)));
        assert_eq!(parse_node("[::1]:26379"), Ok(("::1".into(), 26379)));
        for (bad, words) in [
            ("", "empty entry"),
            ("s0", "without a port"),
            ("s0:", "without a valid port"),
            ("s0:0", "without a valid port"),
            ("s0:65536", "without a valid port"),
            (":26379", "without a valid host"),
            ("::1:26379", "without a valid host"),
        ] {
            let err = parse_node(bad).unwrap_err();
            assert!(err.contains(words), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_sentinels_password_is_read_and_never_shown() {
        let settings = Cli::parse_args([
            "readygate",
            "--cache-type=redis-sentinel",
            "--redis-sentinel-nodes= s0:26379 , [::1]:26380",
            "--redis-sentinel-master=mymaster",
            "--redis-sentinel-password=sentinel-secret-1",
        ])
        .unwrap()
        .settings
        .validate()
        .unwrap();
        let CacheSettings::RedisSentinel(s) = &settings.cache else {
            panic!("not Sentinel: {:?}", settings.cache)
        };
        assert_eq!(
            s.nodes,
            [("s0".to_owned(), 26379), ("::1".to_owned(), 26380)]
        );
        assert_eq!(s.password.as_deref(), Some("sentinel-secret-1"));
        assert!(!format!("{settings:?}").contains("sentinel-secret-1"));
        assert_eq!(
            crate::redact::scrub("AUTH sentinel-secret-1 failed"),
            "AUTH *** failed"
        );
    }
}
