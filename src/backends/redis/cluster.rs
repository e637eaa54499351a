//! Redis Cluster (`CACHE_TYPE=redis-cluster`): an attempt connects to the
//! seed nodes of `REDIS_CLUSTER_NODES` and reads the topology (the redis
//! crate's async cluster client), then asks `CLUSTER INFO`: up when the
//! cluster says `cluster_state:ok`. A runtime check asks again, so a
//! cluster that lost a master without a replica (`cluster_state:fail`) is
//! down until it recovers. The application gets the cluster client itself,
//! which sends each key to its slot's owner and follows `MOVED`/`ASK`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;

use super::error::RedisError;
use super::handle::{ClusterManager, Slot, check_or_replace, db_of};
use super::options::{ClusterSettings, RedisTls, at};
use super::rotation::{Auth, Provider, current_tls, watched, watched_tls};
use crate::backends::Cache;
use crate::connector::Connector;
use crate::error::ConnectError;
use crate::handles::Connected;
use crate::secrets::{Refresh, Watched};

pub struct ClusterConnector {
    /// Every seed node's URL, with `REDIS_URL`'s user, password and TLS.
    seeds: Vec<String>,
    timeout: Duration,
    /// The `REDIS_TLS_*` files, read again when they change: a new client
    /// is built with them when the old one's connection failed.
    tls: Option<Arc<Watched<RedisTls>>>,
    /// The rotating password (`REDIS_URL_FILE`), when the URL has one:
    /// every new node connection asks it (see [`super::rotation`]).
    auth: Option<Arc<Watched<Auth>>>,
    handle: ClusterManager,
    /// The first seed, as the handle's `server`.
    first: String,
}

/// The value of `cluster_state` in a `CLUSTER INFO` reply (`ok`, `fail`);
/// `None` when the reply has no such line.
pub fn cluster_state(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("cluster_state:"))
        .map(str::trim)
}

impl ClusterConnector {
    pub fn new(s: &ClusterSettings) -> Result<Self, ConnectError> {
        let timeout = s.redis.retry.attempt_timeout;
        let invalid = |e: url::ParseError| {
            RedisError::Connect(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid REDIS_URL",
                e.to_string(),
            )))
        };
        let url = url::Url::parse(&s.redis.url).map_err(invalid)?;
        // Every seed with REDIS_URL's user, password and TLS.
        let seeds = s
            .nodes
            .iter()
            .map(|(host, port)| at(&url, host, *port).map(String::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RedisError::Connect)?;
        let first = s
            .nodes
            .first()
            .map(|(host, port)| format!("{host}:{port}"))
            .unwrap_or_default();
        let connector = ClusterConnector {
            seeds,
            timeout,
            tls: watched_tls(s.redis.tls.as_ref()),
            auth: watched(&s.redis.url, &s.redis.source),
            handle: ClusterManager::new(db_of(&url), "no cluster connection made yet"),
            first,
        };
        // Refused here, not at the first attempt.
        connector
            .client(s.redis.tls.as_ref())
            .map_err(RedisError::Connect)?;
        Ok(connector)
    }

    /// A cluster client made with the TLS files `tls`.
    fn client(&self, tls: Option<&RedisTls>) -> Result<ClusterClient, redis::RedisError> {
        let mut builder = ClusterClient::builder(self.seeds.clone())
            .connection_timeout(self.timeout.saturating_mul(2))
            .response_timeout(self.timeout);
        if let Some(tls) = tls {
            builder = builder.certs(tls.certificates());
        }
        if let Some(auth) = &self.auth {
            builder = builder.set_credentials_provider(Provider(Arc::clone(auth)));
        }
        builder.build()
    }

    /// A handle whose cluster client connects on first use, for an
    /// optional cache.
    pub fn lazy(&self) -> Option<Connected> {
        let tls = current_tls(self.tls.as_ref());
        let config = ClusterConfig::new()
            .set_connection_timeout(self.timeout.saturating_mul(2))
            .set_response_timeout(self.timeout);
        let conn = self
            .client(tls.as_ref())
            .ok()?
            .get_pending_async_connection_with_config(config);
        self.handle.set(Slot {
            server: self.first.clone(),
            conn,
            tls,
        });
        Some(Self::share(&self.handle))
    }

    /// `CLUSTER INFO` (on a node the client picks).
    async fn info(mut conn: ClusterConnection) -> Result<String, redis::RedisError> {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut conn)
            .await
    }

    /// `cluster_state:ok`, or the error naming the state.
    fn state_ok(info: String) -> Result<(), ConnectError> {
        match cluster_state(&info) {
            Some("ok") => Ok(()),
            state => Err(RedisError::ClusterState {
                state: state.unwrap_or("unknown").to_owned(),
            }
            .into()),
        }
    }

    /// A new cluster connection, made with the TLS files `tls` (the current
    /// ones), whose cluster is up, handed to the application's handle.
    fn fresh(
        &self,
        tls: Option<RedisTls>,
    ) -> LocalBoxFuture<'static, Result<ClusterManager, ConnectError>> {
        let client = self.client(tls.as_ref());
        let (handle, server) = (self.handle.clone(), self.first.clone());
        async move {
            let conn = client
                .map_err(RedisError::Connect)?
                .get_async_connection()
                .await
                .map_err(RedisError::Connect)?;
            let info = Self::info(conn.clone())
                .await
                .map_err(RedisError::Command)?;
            Self::state_ok(info)?;
            handle.set(Slot { server, conn, tls });
            Ok(handle)
        }
        .boxed_local()
    }
}

impl Connector for ClusterConnector {
    type Handle = ClusterManager;

    fn backend(&self) -> &'static str {
        "redis-cluster"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<ClusterManager, ConnectError>> {
        self.fresh(current_tls(self.tls.as_ref()))
    }

    /// `CLUSTER INFO` on the connection in use; when it failed in a way
    /// that connection cannot get over (see [`super::handle`]), a new one
    /// is made.
    fn check(&self, handle: &ClusterManager) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let tls = current_tls(self.tls.as_ref());
        check_or_replace(handle, tls, Self::info, Self::state_ok, |tls| {
            self.fresh(tls)
        })
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
            .is_some_and(|t| t.refresh() == Refresh::Changed);
        auth || tls
    }

    fn share(handle: &ClusterManager) -> Connected {
        Connected::Cache(Cache::RedisCluster(handle.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_state;

    #[test]
    fn the_state_is_read_from_cluster_info() {
        let info = "cluster_enabled:1\r\ncluster_state:fail\r\ncluster_slots_assigned:16384\r\n";
        assert_eq!(cluster_state(info), Some("fail"));
        assert_eq!(cluster_state("cluster_state:ok\r\n"), Some("ok"));
        assert_eq!(cluster_state("cluster_enabled:1\r\n"), None);
    }
}
