//! `WAIT_FOR=name=dns://host`: up when the system's resolver (what every
//! connection of the process will use: `/etc/hosts`, then DNS, as
//! `getaddrinfo` does) gives `host` at least one address, at start-up and at
//! every runtime check. A name that does not resolve (yet: a Kubernetes
//! Service created later, a DNS record on its way) is transient.

use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::connector::Exchange;
use crate::error::{ConnectError, named_by};

/// Why the name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot resolve {0}")]
    Lookup(String, #[source] std::io::Error),
    #[error("{0} resolves to no address")]
    Empty(String),
}

named_by!(DnsError, []);

pub struct DnsConnector {
    host: String,
}

impl DnsConnector {
    pub fn new(host: String) -> Self {
        DnsConnector { host }
    }

    fn resolve(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let host = self.host.clone();
        async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|mut addresses| addresses.next().is_some());
            match found {
                Ok(true) => Ok(()),
                Ok(false) => Err(DnsError::Empty(host).into()),
                Err(e) => Err(DnsError::Lookup(host, e).into()),
            }
        }
        .boxed_local()
    }
}

impl Exchange for DnsConnector {
    fn backend(&self) -> &'static str {
        "dns"
    }

    fn exchange(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.resolve()
    }
}
