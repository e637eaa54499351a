//! `WAIT_FOR=name=http://host:port/path` (or `https://`): up when a `GET`
//! answers 2xx, at start-up and at every runtime check. Every other answer
//! is transient (a 5xx, a 404 while a service deploys its routes, a 401
//! from a proxy not configured yet: the wait is bounded anyway); so is a
//! refused or timed-out connection. The client is actix's own (awc), over
//! rustls for `https://` with the platform's roots.

use std::time::Duration;

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::connector::Connector;
use crate::error::{BackendError, ConnectError, ErrorClass};
use crate::handles::Connected;

/// Why a `GET` did not answer 2xx. Every case is transient.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP request failed: {0}")]
    Request(String),
    #[error("HTTP status {0}")]
    Status(u16),
}

impl BackendError for HttpError {
    fn summary(&self) -> String {
        match self {
            HttpError::Status(status) => format!("HTTP {status}"),
            HttpError::Request(_) => crate::error::summary(self, &[]),
        }
    }

    fn class(&self) -> ErrorClass {
        crate::error::class(self, &[])
    }
}

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
                .map_err(|e| HttpError::Request(e.to_string()))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(HttpError::Status(status.as_u16()).into())
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
