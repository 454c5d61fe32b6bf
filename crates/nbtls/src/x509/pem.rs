//! PEM loading of certificates and private keys. Every error is a config
//! error that names the file, since the CLI prints it as is.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// Reads every certificate in a PEM file, in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let data = read(path)?;
    certs_from_pem(&data).map_err(|e| in_file(path, e))
}

/// Reads the first private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC;
/// other sections such as certificates are skipped).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = read(path)?;
    private_key_from_pem(&data).map_err(|e| in_file(path, e))
}

/// Parses every `CERTIFICATE` section of a PEM buffer, in order; other
/// sections are skipped. No certificate at all is an error.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        certs.push(item.map_err(pem_error)?);
    }
    if certs.is_empty() {
        return Err(Error::config(
            "no certificates found (expected PEM \"BEGIN CERTIFICATE\" sections)",
        ));
    }
    Ok(certs)
}

/// Parses the first private key section of a PEM buffer.
pub fn private_key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) if contains(pem, b"ENCRYPTED PRIVATE KEY") => Err(
            Error::config("encrypted private keys are not supported; decrypt the key first"),
        ),
        Err(pem::Error::NoItemsFound) => Err(Error::config(
            "no private key found (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\")",
        )),
        Err(e) => Err(pem_error(e)),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::config(format!("{}: {e}", path.display())))
}

fn pem_error(e: pem::Error) -> Error {
    Error::config(format!("malformed PEM: {e}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Prefixes a config error with the file it came from.
pub(crate) fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Config(why) => Error::config(format!("{}: {why}", path.display())),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::testcerts::{temp_path, Alg, TestPki};

    #[test]
    fn round_trip_through_files() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let leaf = pki.leaf(Alg::Ed25519, &["example.com"]);
        let cert_path = temp_path("chain.pem");
        let key_path = temp_path("key.pem");
        // A chain file with the CA appended, and junk between sections.
        let chain_pem = format!("{}\nsome comment\n{}", leaf.cert_pem, pki.ca_pem);
        std::fs::write(&cert_path, chain_pem).unwrap();
        std::fs::write(&key_path, &leaf.key_pem).unwrap();

        let certs = load_certs(&cert_path).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0], leaf.chain[0]);
        assert_eq!(certs[1], pki.ca_cert);
        let key = load_private_key(&key_path).unwrap();
        assert_eq!(key.secret_der(), leaf.key_der.secret_der());

        // A key file that also carries the certificate still yields the key.
        let both = format!("{}{}", leaf.cert_pem, leaf.key_pem);
        assert!(private_key_from_pem(both.as_bytes()).is_ok());

        let _ = std::fs::remove_file(cert_path);
        let _ = std::fs::remove_file(key_path);
    }

    #[test]
    fn file_without_certificates_names_the_file() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let leaf = pki.leaf(Alg::EcdsaP256, &["example.com"]);
        let path = temp_path("only-key.pem");
        std::fs::write(&path, &leaf.key_pem).unwrap();
        let err = load_certs(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)));
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("no certificates found"), "{msg}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn missing_file_and_missing_key() {
        let path = temp_path("does-not-exist.pem");
        let err = load_private_key(&path).unwrap_err();
        assert!(err.to_string().contains("does-not-exist.pem"), "{err}");

        let pki = TestPki::new(Alg::EcdsaP256);
        let err = private_key_from_pem(pki.ca_pem.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no private key found"), "{err}");

        let enc =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = private_key_from_pem(enc).unwrap_err();
        assert!(err.to_string().contains("encrypted"), "{err}");
    }

    #[test]
    fn broken_pem_is_reported() {
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = certs_from_pem(bad).unwrap_err();
        assert!(err.to_string().contains("malformed PEM"), "{err}");
    }
}
