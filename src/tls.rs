//! TLS with rustls (the ring provider; no OpenSSL at build or run time):
//! what every backend's TLS shares. PEM files read and parsed when the
//! settings are (so a bad one is exit 78 before any connection), whom to
//! trust ([`Roots`]), a client certificate ([`ClientIdentity`]), the rustls
//! configuration for how much of the server's certificate is checked
//! ([`client_config`]), and whether a connection was encrypted
//! ([`Encrypted`]). Each backend's own vocabulary (libpq's `sslmode`, the
//! mysql client's `ssl-mode`, `rediss://`) lives in its folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Whom the server's certificate must chain to.
#[derive(Clone, Debug)]
pub enum Roots {
    /// A PEM file (`sslrootcert=/path`, `REDIS_TLS_CA_CERT`).
    File {
        path: PathBuf,
        certs: Vec<CertificateDer<'static>>,
    },
    /// The platform's roots (`sslrootcert=system`).
    System,
}

/// A client certificate and its key (`sslcert` + `sslkey`).
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
    pub key_path: PathBuf,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish()
    }
}

/// Why a certificate or key file cannot be used. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{} cannot be read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM {what}", path.display())]
    Empty { path: PathBuf, what: &'static str },
    #[error("{} is not valid PEM ({what}): {detail}", path.display())]
    Invalid {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    parse_certs(path, &read(path)?)
}

/// The certificates (at least one) of `bytes`, read from `path`.
fn parse_certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid {
            path: path.to_owned(),
            what: "certificates",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    parse_key(path, &read(path)?)
}

/// The private key of `bytes`, read from `path`.
fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::Empty {
            path: path.to_owned(),
            what: "private key",
        },
        e => PemError::Invalid {
            path: path.to_owned(),
            what: "private key",
            detail: e.to_string(),
        },
    })
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Why a TLS configuration cannot be built. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("the platform's root certificates cannot be loaded: {0}")]
    SystemRoots(String),
    #[error("{} holds a certificate rustls cannot use as a root: {source}", path.display())]
    BadRoot {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the client certificate {} and key {} do not make an identity: {source}", cert.display(), key.display())]
    BadIdentity {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
    #[error(transparent)]
    Pem(#[from] PemError),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring_provider())
}

/// rustls's ring provider. rustls 0.23.48 deprecates it ("no support for
/// post-quantum algorithms") in favour of aws-lc-rs, which needs a C and
/// CMake tool chain at build time; readygate keeps ring on purpose (a pure
/// Rust-and-assembly build, the same provider the redis crate is given) and
/// says so here, once, so that a `cargo update` does not break the build
/// (`.ci/latest-deps` checks that).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Install ring as the process's rustls provider (for the redis crate,
/// which builds its own configuration). Calling it again does nothing.
pub fn install_provider() {
    let _ = ring_provider().install_default();
}

fn root_store(roots: &Roots) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File { path, certs } => {
            for cert in certs {
                store
                    .add(cert.clone())
                    .map_err(|source| TlsConfigError::BadRoot {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or("none found".to_owned(), ToString::to_string);
                return Err(TlsConfigError::SystemRoots(why));
            }
            let (_added, _ignored) = store.add_parsable_certificates(found.certs);
        }
    }
    Ok(store)
}

/// How much of the server's certificate a client checks.
#[derive(Clone, Copy, Debug)]
pub enum Verify<'a> {
    /// Nothing: the connection is encrypted, the server's certificate is
    /// not checked (libpq's `prefer` and `require` without a root
    /// certificate); the handshake's signatures still are.
    Nothing,
    /// That it chains to these roots, whatever name it carries.
    Chain(&'a Roots),
    /// That it chains to these roots and names the host.
    ChainAndName(&'a Roots),
}

/// A rustls client configuration that verifies as `verify` says and
/// presents `client`, if any.
pub fn client_config(
    verify: Verify<'_>,
    client: Option<&ClientIdentity>,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(EncryptOnly(Arc::clone(&provider))),
        Verify::Chain(roots) | Verify::ChainAndName(roots) => {
            let chain = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(roots)?),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
            if matches!(verify, Verify::ChainAndName(_)) {
                chain
            } else {
                Arc::new(ChainOnly(chain))
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Verifier(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|source| TlsConfigError::BadIdentity {
                cert: id.cert_path.clone(),
                key: id.key_path.clone(),
                source,
            }),
    }
}

/// `prefer` and `require` without a root certificate: the connection is
/// encrypted, the server's certificate is not checked (libpq's meaning);
/// the handshake's signatures still are.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not
/// checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (and validity) before the name: a name
        // error means everything else passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether the connections a connector made were encrypted: unknown until
/// the first one, then the latest's. With `sslmode=prefer` a server without
/// TLS gets a plain connection, so the settings alone cannot say.
#[derive(Debug, Default)]
pub struct Encrypted(AtomicU8);

impl Encrypted {
    pub fn set(&self, encrypted: bool) {
        self.0
            .store(if encrypted { 2 } else { 1 }, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<bool> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }
}

/// A PEM file as read (at start-up, or again when it rotated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

impl PemFile {
    /// The file at `path`, read once and checked to hold certificates (a
    /// private key when `key`).
    pub fn read(path: &Path, key: bool) -> Result<PemFile, PemError> {
        let pem = read(path)?;
        if key {
            parse_key(path, &pem).map(drop)?;
        } else {
            parse_certs(path, &pem).map(drop)?;
        }
        Ok(PemFile {
            path: path.to_owned(),
            pem,
        })
    }

    /// The client identity of this certificate file and `key`, refused
    /// when the key is not the certificate's.
    pub fn identity(&self, key: &PemFile) -> Result<ClientIdentity, TlsConfigError> {
        let identity = ClientIdentity {
            cert_path: self.path.clone(),
            certs: parse_certs(&self.path, &self.pem)?,
            key_path: key.path.clone(),
            key: Arc::new(parse_key(&key.path, &key.pem)?),
        };
        client_config(Verify::Nothing, Some(&identity))?;
        Ok(identity)
    }
}
