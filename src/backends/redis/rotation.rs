//! A rotating Redis password: the redis crate asks a credentials provider
//! for the user and password of every connection it makes (a
//! `ConnectionManager`'s reconnections included), and this one reads them
//! from the URL, its file read again when it changed ([`crate::secrets`]).
//!
//! Only the credentials rotate: a URL naming another server or database is
//! refused with a WARN (that needs a restart), as is one without a
//! password.
//!
//! The sentinels' password ([`watched_password`]) and the `REDIS_TLS_*`
//! files ([`watched_tls`]) are read again the same way; a new client is
//! built with the current TLS files (see [`super::handle`] for when an
//! open connection is replaced).

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use percent_encoding::percent_decode_str;
use redis::RedisResult;
use redis::auth::{BasicAuth, StreamingCredentialsProvider};

use super::options::RedisTls;
use crate::config::Checker;
use crate::secrets::{UrlSource, Watched, reasons};

/// The user and password of a Redis URL.
#[derive(Clone)]
pub struct Auth {
    username: String,
    password: String,
}

/// What must not change without a restart: host, port, database, TLS.
fn target(url: &url::Url) -> (String, Option<u16>, String, String) {
    (
        url.host_str().unwrap_or_default().to_owned(),
        url.port(),
        url.path().to_owned(),
        url.scheme().to_owned(),
    )
}

/// The credentials of `url`; `None` without a password. An empty user is
/// Redis's `default` user (`AUTH default PASSWORD` is `AUTH PASSWORD`).
fn auth(url: &url::Url) -> Option<Auth> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let password = decode(url.password()?);
    let username = match decode(url.username()) {
        user if user.is_empty() => "default".to_owned(),
        user => user,
    };
    Some(Auth { username, password })
}

/// The watched credentials of a URL with a password read from `source`.
pub fn watched(url: &str, source: &UrlSource) -> Option<Arc<Watched<Auth>>> {
    let first = url::Url::parse(url).ok()?;
    let current = auth(&first)?;
    let (source, want) = (source.clone(), target(&first));
    let files = source.watched("credentials").into_iter().collect();
    let load = move || {
        let mut c = Checker::default();
        let parsed = source
            .read(&mut c)
            .and_then(|(var, value)| super::options::url(&mut c, var, &value));
        let Some((text, _)) = parsed else {
            return Err(reasons(&c.problems));
        };
        let url = url::Url::parse(&text).map_err(|e| format!("is not a valid URL ({e})"))?;
        crate::redact::register_url_secrets(&text);
        if target(&url) != want {
            return Err(
                "names another server, database or scheme: that needs a restart".to_owned(),
            );
        }
        let auth = auth(&url).ok_or("has no password")?;
        Ok((auth, source.watched("credentials").into_iter().collect()))
    };
    Some(Watched::new("Redis", current, files, Box::new(load)))
}

/// [`crate::connector::Connector::watches_secrets`] for an optional
/// rotating password.
pub fn watches(auth: Option<&Arc<Watched<Auth>>>) -> bool {
    auth.is_some_and(|auth| auth.watches())
}

/// [`crate::connector::Connector::refresh_secrets`] for an optional
/// rotating password: whether it changed.
pub fn refreshed(auth: Option<&Arc<Watched<Auth>>>) -> bool {
    auth.is_some_and(|auth| auth.refresh() == crate::secrets::Refresh::Changed)
}

/// The credentials provider of the redis crate: each subscription (one per
/// new connection) refreshes the watched value and yields it once, then
/// nothing. It does not end: the crate warns when a stream ends, and the
/// task that reads it ends with its connection anyway.
pub struct Provider(pub Arc<Watched<Auth>>);

impl StreamingCredentialsProvider for Provider {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        self.0.refresh();
        let Auth { username, password } = self.0.current();
        let first =
            futures_util::stream::once(async move { Ok(BasicAuth::new(username, password)) });
        Box::pin(first.chain(futures_util::stream::pending()))
    }
}

/// The sentinels' password (`REDIS_SENTINEL_PASSWORD`, or its file read
/// again when it changed): `first` as read at start, `None` for none. A
/// rotated file that is empty is refused (the last good password stays):
/// a password that disappears is more likely a broken rotation than
/// sentinels that stopped requiring one.
pub fn watched_password(
    first: Option<String>,
    source: Option<&UrlSource>,
) -> Arc<Watched<Option<String>>> {
    let Some(source) = source.cloned() else {
        return Watched::new("Redis", first, Vec::new(), Box::new(|| Err(String::new())));
    };
    let files = source.watched("sentinel password").into_iter().collect();
    let load = move || {
        let mut c = Checker::default();
        let Some((_, password)) = source.read(&mut c) else {
            return Err(reasons(&c.problems));
        };
        if password.is_empty() {
            return Err("is empty".to_owned());
        }
        crate::redact::register_secret(&password);
        Ok((
            Some(password),
            source.watched("sentinel password").into_iter().collect(),
        ))
    };
    Watched::new("Redis", first, files, Box::new(load))
}

/// The `REDIS_TLS_*` files (`None` for `redis://`), read again when one
/// changed: the CA bundle, and the client certificate with its key (a key
/// that is not the certificate's is refused, the last good pair kept). New
/// connections are made with the current files; see [`super::handle`] for
/// when an open connection is replaced.
pub fn watched_tls(tls: Option<&RedisTls>) -> Option<Arc<Watched<RedisTls>>> {
    let first = tls?.clone();
    let files = first.sources();
    let files_again = files.clone();
    let at_start = first.clone();
    let load = move || Ok((at_start.reread()?, files_again.clone()));
    Some(Watched::new("Redis", first, files, Box::new(load)))
}

/// The current TLS files of an optional watched set, read again when one
/// changed.
pub fn current_tls(tls: Option<&Arc<Watched<RedisTls>>>) -> Option<RedisTls> {
    tls.map(|tls| {
        tls.refresh();
        tls.current()
    })
}
