//! Redis Cluster (`CACHE_TYPE=redis-cluster`): an attempt connects to the
//! seed nodes of `REDIS_CLUSTER_NODES` and reads the topology (the redis
//! crate's async cluster client), then asks `CLUSTER INFO`: up when the
//! cluster says `cluster_state:ok`. A runtime check asks again, so a
//! cluster that lost a master without a replica (`cluster_state:fail`) is
//! down until it recovers. The application gets the cluster client itself,
//! which sends each key to its slot's owner and follows `MOVED`/`ASK`.

use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;

use super::error::RedisError;
use super::options::ClusterSettings;
use super::sentinel::at;
use crate::backends::Cache;
use crate::connector::Connector;
use crate::error::ConnectError;
use crate::handles::Connected;

pub struct ClusterConnector {
    client: ClusterClient,
    timeout: Duration,
    tls: bool,
    /// The rotating password (`REDIS_URL_FILE`), when the URL has one:
    /// every new node connection asks it (see [`super::rotation`]).
    auth: Option<std::sync::Arc<crate::secrets::Watched<super::rotation::Auth>>>,
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
        let mut builder = ClusterClient::builder(seeds)
            .connection_timeout(timeout.saturating_mul(2))
            .response_timeout(timeout);
        if let Some(tls) = &s.redis.tls {
            builder = builder.certs(tls.certificates());
        }
        let auth = super::rotation::watched(&s.redis.url, &s.redis.source);
        if let Some(auth) = &auth {
            builder = builder
                .set_credentials_provider(super::rotation::Provider(std::sync::Arc::clone(auth)));
        }
        let client = builder.build().map_err(RedisError::Connect)?;
        Ok(ClusterConnector {
            client,
            timeout,
            tls: s.redis.tls.is_some(),
            auth,
        })
    }

    /// A cluster client that connects on first use, for an optional cache.
    pub fn lazy(&self) -> Option<Connected> {
        let config = ClusterConfig::new()
            .set_connection_timeout(self.timeout.saturating_mul(2))
            .set_response_timeout(self.timeout);
        let conn = self.client.get_pending_async_connection_with_config(config);
        Some(Self::share(&conn))
    }

    /// `CLUSTER INFO` (on a node the client picks): `cluster_state:ok`, or
    /// the error naming the state.
    async fn state_ok(mut conn: ClusterConnection) -> Result<(), ConnectError> {
        let info = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut conn)
            .await
            .map_err(RedisError::Command)?;
        match cluster_state(&info) {
            Some("ok") => Ok(()),
            state => Err(RedisError::ClusterState {
                state: state.unwrap_or("unknown").to_owned(),
            }
            .into()),
        }
    }
}

impl Connector for ClusterConnector {
    type Handle = ClusterConnection;

    fn backend(&self) -> &'static str {
        "redis-cluster"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<ClusterConnection, ConnectError>> {
        let client = self.client.clone();
        async move {
            let conn = client
                .get_async_connection()
                .await
                .map_err(RedisError::Connect)?;
            Self::state_ok(conn.clone()).await?;
            Ok(conn)
        }
        .boxed_local()
    }

    fn check(&self, conn: &ClusterConnection) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        Self::state_ok(conn.clone()).boxed_local()
    }

    fn encrypted(&self) -> Option<bool> {
        Some(self.tls)
    }

    fn watches_secrets(&self) -> bool {
        super::rotation::watches(self.auth.as_ref())
    }

    fn refresh_secrets(&self) -> bool {
        super::rotation::refreshed(self.auth.as_ref())
    }

    fn share(conn: &ClusterConnection) -> Connected {
        Connected::Cache(Cache::RedisCluster(conn.clone()))
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
