//! Redis through the `redis` crate's `ConnectionManager`: one attempt is
//! "connect and `PING`". The manager's own start-up retries are off, since
//! the dependency actor owns the retry policy.

use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Connector;
use crate::error::ConnectError;
use crate::handles::{Cache, Connected};
use crate::status::Dependency;
use crate::tls::RedisTls;

pub struct RedisConnector {
    client: redis::Client,
    config: ConnectionManagerConfig,
    tls: bool,
}

impl RedisConnector {
    /// `tls`: the certificates for a `rediss://` URL (`None`: plain).
    pub fn new(url: &str, tls: Option<&RedisTls>, timeout: Duration) -> Result<Self, ConnectError> {
        let client = match tls {
            Some(tls) => redis::Client::build_with_tls(url, tls.certificates()),
            None => redis::Client::open(url),
        }
        .map_err(ConnectError::RedisConnect)?;
        // The actor bounds each attempt by `timeout` and reports it as such;
        // the manager's own limits only bound what applications do with it
        // later (its background reconnections, their commands).
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout.saturating_mul(2)))
            .set_response_timeout(Some(timeout));
        Ok(RedisConnector {
            client,
            config,
            tls: tls.is_some(),
        })
    }

    async fn ping(mut manager: ConnectionManager) -> Result<(), ConnectError> {
        redis::cmd("PING")
            .query_async::<String>(&mut manager)
            .await
            .map_err(ConnectError::Redis)?;
        Ok(())
    }
}

impl Connector for RedisConnector {
    type Handle = ConnectionManager;

    fn dependency(&self) -> Dependency {
        Dependency::Cache
    }

    fn label(&self) -> &'static str {
        "Redis"
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<ConnectionManager, ConnectError>> {
        let (client, config) = (self.client.clone(), self.config.clone());
        async move {
            let manager = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(ConnectError::RedisConnect)?;
            Self::ping(manager.clone()).await?;
            Ok(manager)
        }
        .boxed_local()
    }

    fn check(
        &self,
        manager: &ConnectionManager,
    ) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        Self::ping(manager.clone()).boxed_local()
    }

    fn encrypted(&self) -> Option<bool> {
        Some(self.tls)
    }

    fn share(manager: &ConnectionManager) -> Connected {
        Connected::Cache(Cache::Redis(manager.clone()))
    }
}
