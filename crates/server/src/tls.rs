//! HTTPS: loads a PEM certificate chain and private key (`serve --tls-cert --tls-key`)
//! into a rustls server config with HTTP/1.1 and h2 chosen by ALPN; `listen.rs` serves
//! with it.
//!
//! rustls with the `ring` provider only (no OpenSSL, no C build of aws-lc). Not here:
//! certificate reloading, client certificates; a proxy that terminates TLS is the other
//! way (`--behind-tls-proxy`).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::error::Error;

/// A loaded, checked certificate and key, ready to serve with.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &["h2", "http/1.1"])
            .finish_non_exhaustive()
    }
}

/// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1),
/// both PEM, and checks the key belongs to the certificate. Each failure is one line
/// naming the file and what to do.
pub fn load(cert: &Path, key: &Path) -> Result<TlsConfig, Error> {
    let certs = read_certs(cert)?;
    let private_key = read_key(key)?;
    let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => Error::Config(format!(
                "tls: the key in {} does not belong to the certificate in {}",
                key.display(),
                cert.display()
            )),
            other => Error::Config(format!(
                "tls: cannot use the key in {} with the certificate in {}: {other}",
                key.display(),
                cert.display()
            )),
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsConfig {
        server: Arc::new(server),
    })
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "tls: cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read_file(path, "certificate")?;
    let not_pem = |e: pem::Error| {
        Error::Config(format!(
            "tls: {} is not a PEM certificate file: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(not_pem)?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "tls: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read_file(path, "key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => Error::Config(format!(
            "tls: {} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
            path.display()
        )),
        other => Error::Config(format!(
            "tls: {} is not a PEM key file: {other}",
            path.display()
        )),
    })
}

impl TlsConfig {
    /// The acceptor that does the handshake on each connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_PEM: &str = "hello, this is not a certificate\n";

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    fn message(r: Result<TlsConfig, Error>) -> String {
        match r {
            Ok(_) => panic!("loaded"),
            Err(Error::Config(m)) => m,
            Err(other) => panic!("{other:?}"),
        }
    }

    /// Each bad input gets one line naming the file and the fault.
    #[test]
    fn bad_files_say_what_is_wrong_in_one_line() {
        let files = Files::new();
        let a = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let cert = files.write("cert.pem", &a.cert.pem());
        let key = files.write("key.pem", &a.signing_key.serialize_pem());
        let other_key = files.write("other.pem", &b.signing_key.serialize_pem());
        let junk = files.write("junk.pem", NOT_PEM);
        let missing = files.dir.path().join("missing.pem");
        assert!(load(&cert, &key).is_ok());
        let check = |r: Result<TlsConfig, Error>, needles: &[&str]| {
            let m = message(r);
            assert!(!m.contains('\n'), "{m:?} is not one line");
            for n in needles {
                assert!(m.contains(n), "{m:?} lacks {n:?}");
            }
        };
        check(load(&missing, &key), &["cannot read", "missing.pem"]);
        check(load(&cert, &missing), &["cannot read", "missing.pem"]);
        check(load(&junk, &key), &["junk.pem", "no PEM certificate"]);
        check(load(&cert, &junk), &["junk.pem", "no PEM private key"]);
        // A certificate given where the key belongs: PEM, but no key in it.
        check(load(&cert, &cert), &["cert.pem", "no PEM private key"]);
        check(
            load(&cert, &other_key),
            &["does not belong", "other.pem", "cert.pem"],
        );
    }
}
