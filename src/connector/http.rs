//! `WAIT_FOR=name=http://host:port/path` (or `https://`): up when a `GET`
//! answers 2xx, at start-up and at every runtime check. Every other answer
//! is transient (a 5xx, a 404 while a service deploys its routes, a 401
//! from a proxy not configured yet: the wait is bounded anyway); so is a
//! refused or timed-out connection. The client is actix's own (awc), over
//! rustls for `https://` with the platform's roots.

use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};

use super::Connector;
use crate::error::ConnectError;
use crate::handles::Connected;

pub struct HttpConnector {
    url: String,
}

impl HttpConnector {
    pub fn new(url: String) -> Self {
        HttpConnector { url }
    }

    fn get(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let url = self.url.clone();
        async move {
            // The actor bounds the whole attempt (WAIT_FOR_CONNECT_TIMEOUT_MS);
            // awc's own limits (5 s for the request and for the connect)
            // must not cut it first.
            let unbounded = Duration::from_secs(86_400);
            let client = awc::Client::builder()
                .connector(awc::Connector::new().timeout(unbounded))
                .timeout(unbounded)
                .finish();
            let response = client
                .get(url.as_str())
                .send()
                .await
                .map_err(|e| ConnectError::Http(e.to_string()))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(ConnectError::HttpStatus(status.as_u16()))
            }
        }
        .boxed_local()
    }
}

impl Connector for HttpConnector {
    type Handle = ();

    fn backend(&self) -> &'static str {
        "http"
    }

    fn connect(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.get()
    }

    fn check(&self, _: &()) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.get()
    }

    fn share(_: &()) -> Connected {
        Connected::Nothing
    }
}
