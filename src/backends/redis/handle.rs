//! The handle the application holds for every Redis topology: a
//! [`Switching`] connection, which the connector can point at a new
//! connection while the application keeps the same handle. A check moves it
//! when the old connection cannot be used again by itself:
//!
//! * Sentinel named another master (a failover);
//! * the server refused the password on a reconnection: the redis crate's
//!   `ConnectionManager` keeps that refusal for good
//!   ([redis-rs#984](https://github.com/redis-rs/redis-rs/issues/984)), and a
//!   new connection asks for the password again, which may have rotated;
//! * the `REDIS_TLS_*` files changed and the old connection failed: the
//!   crate fixes the certificates when a client is built, so its own
//!   reconnections would keep the old ones.
//!
//! Open connections that work are kept: a rotated certificate is used by
//! the next connection made, not forced on a working one.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::future::{FutureExt, LocalBoxFuture};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::error::RedisError;
use super::options::RedisTls;
use crate::error::ConnectError;

/// The connection commands go to now; every clone follows a switch. Cheap
/// to clone. It is a `redis::aio::ConnectionLike`, so `query_async` takes
/// it as it takes the crate's own connections.
///
/// Before the first connection (an optional cache whose Redis is down at
/// start), commands fail with "not connected".
pub struct Switching<C> {
    current: Arc<RwLock<Option<Slot<C>>>>,
    db: i64,
    /// Why there is no connection yet, for the "not connected" error.
    waiting: &'static str,
}

impl<C> Clone for Switching<C> {
    fn clone(&self) -> Self {
        Switching {
            current: Arc::clone(&self.current),
            db: self.db,
            waiting: self.waiting,
        }
    }
}

/// `CACHE_TYPE=redis`: the redis crate's `ConnectionManager` (which
/// reconnects by itself after an I/O error) behind a [`Switching`] handle.
pub type RedisManager = Switching<redis::aio::ConnectionManager>;

/// `CACHE_TYPE=redis-sentinel`: the master the sentinels name, followed
/// through failovers.
pub type SentinelManager = Switching<redis::aio::ConnectionManager>;

/// `CACHE_TYPE=redis-cluster`: the redis crate's cluster client (each key
/// to its slot's owner, `MOVED`/`ASK` followed).
pub type ClusterManager = Switching<redis::cluster_async::ClusterConnection>;

/// One connection and what it was made with.
#[derive(Clone)]
pub(super) struct Slot<C> {
    /// `host:port` (the first seed for a cluster).
    pub server: String,
    pub conn: C,
    /// The TLS files' content it was made with (`None`: plain).
    pub tls: Option<RedisTls>,
}

impl<C: Clone> Switching<C> {
    /// `waiting`: why there is no connection before the first one
    /// (`no master found through the sentinels yet`).
    pub(super) fn new(db: i64, waiting: &'static str) -> Self {
        Switching {
            current: Arc::new(RwLock::new(None)),
            db,
            waiting,
        }
    }

    /// The server in use now: `host:port`, `None` before the first
    /// connection.
    pub fn server(&self) -> Option<String> {
        self.read(|s| s.server.clone())
    }

    /// The connection in use now, for what `ConnectionLike` does not cover
    /// (the crate's own methods). It is not moved by a later switch: ask
    /// again rather than keep it.
    pub fn connection(&self) -> Option<C> {
        self.read(|s| s.conn.clone())
    }

    /// `f` of the slot, under the lock: every command takes the connection
    /// this way, so nothing else of the slot (its TLS files) is cloned.
    fn read<T>(&self, f: impl FnOnce(&Slot<C>) -> T) -> Option<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(f)
    }

    pub(super) fn slot(&self) -> Option<Slot<C>> {
        self.read(Slot::clone)
    }

    pub(super) fn set(&self, slot: Slot<C>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(slot);
    }

    fn not_connected(&self) -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::Io,
            "not connected",
            self.waiting.to_owned(),
        ))
    }
}

impl<C> ConnectionLike for Switching<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let conn = self.connection().ok_or_else(|| self.not_connected());
        Box::pin(async move {
            let mut conn = conn?;
            conn.req_packed_command(cmd).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let conn = self.connection().ok_or_else(|| self.not_connected());
        Box::pin(async move {
            let mut conn = conn?;
            conn.req_packed_commands(pipeline, offset, count).await
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

/// Whether `e` is a refused password (the class [`super::error`] calls
/// permanent).
pub(super) fn refused(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// Whether a connection whose last command failed with `e` is replaced by a
/// new one (see the module's documentation): its password was refused, or
/// it was made with other TLS files than `now`'s.
pub(super) fn replace<C>(slot: &Slot<C>, e: &redis::RedisError, now: Option<&RedisTls>) -> bool {
    refused(e) || slot.tls.as_ref() != now
}

/// The database number of a Redis URL's path (`/3`), 0 without one.
pub(super) fn db_of(url: &url::Url) -> i64 {
    url.path()
        .trim_start_matches('/')
        .parse::<i64>()
        .unwrap_or(0)
}

/// A new connection made for `handle` with the TLS files given, handed to
/// it once proven.
pub(super) type Fresh<C> = LocalBoxFuture<'static, Result<Switching<C>, ConnectError>>;

/// One runtime check of `handle`'s connection: `probe` on it, its answer
/// judged by `accept`; when the probe failed in a way that connection
/// cannot get over ([`replace`]), a `fresh` one, made with `tls` (the
/// current files), is proven and handed to the handle instead.
pub(super) fn check_or_replace<C, T, Fut>(
    handle: &Switching<C>,
    tls: Option<RedisTls>,
    probe: impl FnOnce(C) -> Fut,
    accept: fn(T) -> Result<(), ConnectError>,
    fresh: impl FnOnce(Option<RedisTls>) -> Fresh<C>,
) -> LocalBoxFuture<'static, Result<(), ConnectError>>
where
    C: Clone + 'static,
    T: 'static,
    Fut: Future<Output = Result<T, redis::RedisError>> + 'static,
{
    let Some(slot) = handle.slot() else {
        return fresh(tls).map(|r| r.map(drop)).boxed_local();
    };
    let probed = probe(slot.conn.clone());
    let fresh = fresh(tls.clone());
    async move {
        match probed.await {
            Ok(answer) => accept(answer),
            Err(e) if replace(&slot, &e, tls.as_ref()) => fresh.await.map(drop),
            Err(e) => Err(RedisError::Command(e).into()),
        }
    }
    .boxed_local()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::PemFile;

    fn slot(tls: Option<RedisTls>) -> Slot<()> {
        Slot {
            server: "127.0.0.1:6379".into(),
            conn: (),
            tls,
        }
    }

    fn ca(pem: &[u8]) -> Option<RedisTls> {
        Some(RedisTls {
            ca: Some(PemFile {
                path: "/run/secrets/redis/ca.crt".into(),
                pem: pem.to_vec(),
            }),
            ..RedisTls::default()
        })
    }

    #[test]
    fn a_connection_is_replaced_when_its_password_was_refused_or_its_tls_files_changed() {
        let refused: redis::RedisError = (redis::ErrorKind::AuthenticationFailed, "refused").into();
        let reset: redis::RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();

        // A refused password: whatever the TLS files.
        assert!(replace(&slot(None), &refused, None));
        assert!(replace(&slot(ca(b"one")), &refused, ca(b"one").as_ref()));
        // Any failure once the TLS files changed since it was made.
        assert!(replace(&slot(ca(b"one")), &reset, ca(b"two").as_ref()));
        // Otherwise the connection reconnects by itself: kept.
        assert!(!replace(&slot(None), &reset, None));
        assert!(!replace(&slot(ca(b"one")), &reset, ca(b"one").as_ref()));
    }
}
