//! Throwaway certificates for the TLS tests, generated at test time with
//! rcgen (ECDSA P-256) and written as PEM files in a temporary directory:
//! a CA, a second CA nobody trusts, a server certificate for `localhost`
//! and `127.0.0.1` signed by the CA, an expired one, and a client
//! certificate (CN `postgres`, as PostgreSQL's `cert` authentication wants
//! it) signed by the CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files of one test's PKI.
#[derive(Debug)]
pub struct Pki {
    dir: TempDir,
    /// The CA that signed `server`, `expired` and `client`.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    /// Valid for `localhost` and `127.0.0.1`.
    pub server: CertFiles,
    /// For `localhost` and `127.0.0.1` too, but expired in 2021.
    pub expired: CertFiles,
    /// A client certificate with CN `postgres`.
    pub client: CertFiles,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("readygate test CA {name}"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn generate() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("readygate-pki-")
            .tempdir()
            .unwrap();
        let root = ca("A");
        let other = ca("B");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let leaf = |name: &str, names: &[&str], purpose, expired: bool, cn: &str| {
            let mut params =
                CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![purpose];
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &root).unwrap();
            CertFiles {
                cert: write(&format!("{name}.crt"), cert.pem()),
                key: write(&format!("{name}.key"), key.serialize_pem()),
            }
        };
        let server_names = ["localhost", "127.0.0.1"];
        let server = leaf(
            "server",
            &server_names,
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
            "localhost",
        );
        let expired = leaf(
            "expired",
            &server_names,
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
            "localhost",
        );
        let client = leaf(
            "client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
            "postgres",
        );
        Pki {
            ca: write("ca.crt", root.pem()),
            other_ca: write("other-ca.crt", other.pem()),
            server,
            expired,
            client,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
