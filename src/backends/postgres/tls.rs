//! libpq's TLS vocabulary, read from `DATABASE_URL`: `sslmode` =
//! `disable`, `prefer` (the default, as libpq), `require`, `verify-ca`,
//! `verify-full`; `sslrootcert` (a PEM file, or `system` for the platform's
//! roots), `sslcert` + `sslkey` (a client certificate). As in libpq,
//! `prefer` and `require` encrypt without verifying the server's
//! certificate, except that `require` with a root certificate verifies as
//! `verify-ca` does; `verify-ca` checks the chain, not the name;
//! `verify-full` checks both.

use std::sync::Arc;

use rustls::ClientConfig;

use crate::tls::{ClientIdentity, Roots, TlsConfigError, Verify, client_config};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static [(&'static str, SslMode)] = &[
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("prefer", |(n, _)| n)
    }

    /// What tokio-postgres is told: whether TLS is tried, and required.
    pub fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

/// PostgreSQL's TLS settings, as `DATABASE_URL` gave them.
#[derive(Clone, Debug)]
pub struct PgTls {
    pub mode: SslMode,
    pub roots: Option<Roots>,
    pub client: Option<ClientIdentity>,
}

impl Default for PgTls {
    fn default() -> Self {
        PgTls {
            mode: SslMode::Prefer,
            roots: None,
            client: None,
        }
    }
}

impl PgTls {
    /// The rustls configuration for this `sslmode` (unused with `disable`).
    pub fn client_config(&self) -> Result<ClientConfig, TlsConfigError> {
        let verify = match (&self.roots, self.mode) {
            (Some(roots), SslMode::VerifyFull) => Verify::ChainAndName(roots),
            (Some(roots), SslMode::Require | SslMode::VerifyCa) => Verify::Chain(roots),
            // Without roots, verify-ca and verify-full would trust no one:
            // the settings refuse that combination before we get here.
            _ => Verify::Nothing,
        };
        client_config(verify, self.client.as_ref())
    }
}

/// PostgreSQL's TLS, ready to connect: the `sslmode` and the rustls
/// configuration built from the URL's files.
#[derive(Clone)]
pub struct PostgresTls {
    pub mode: SslMode,
    pub client: Arc<ClientConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sslmode_has_its_libpq_name() {
        let names: Vec<_> = SslMode::NAMES.iter().map(|(_, m)| m.name()).collect();
        assert_eq!(
            names,
            ["disable", "prefer", "require", "verify-ca", "verify-full"]
        );
    }
}
