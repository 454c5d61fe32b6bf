//! Certificate selection for servers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use super::pem::{in_file, load_certs, load_private_key};
use super::verify::{sha256, tls12_signature_by_key};
use crate::codec::SignatureScheme;
use crate::crypto::sign::SigningKey;
use crate::error::{Error, Result};

/// A certificate chain (leaf first) and its key.
#[derive(Debug)]
pub struct CertifiedKey {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: SigningKey,
}

impl CertifiedKey {
    /// Pairs a chain with its key. An empty chain, or a key that is not the
    /// leaf's, is a config error.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: SigningKey) -> Result<Self> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::config("certificate chain is empty"))?;
        check_key_matches(leaf, &key)?;
        Ok(CertifiedKey { chain, key })
    }

    /// Loads a PEM chain and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self> {
        let chain = load_certs(cert)?;
        let der = load_private_key(key)?;
        let signing_key = SigningKey::from_der(&der).map_err(|e| in_file(key, e))?;
        Self::new(chain, signing_key).map_err(|e| match e {
            Error::Config(why) => {
                Error::config(format!("{} and {}: {why}", cert.display(), key.display()))
            }
            other => other,
        })
    }

    /// SHA-256 of the leaf's DER (a WebRTC fingerprint).
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(self.chain.first().map(|c| c.as_ref()).unwrap_or_default())
    }
}

/// Signs a probe with the key and checks it with the leaf's public key: the
/// one check that works alike for every key type.
fn check_key_matches(leaf: &CertificateDer<'_>, key: &SigningKey) -> Result<()> {
    const PROBE: &[u8] = b"nbtls: does this private key belong to this certificate?";
    let scheme = key
        .schemes(false)
        .first()
        .copied()
        .ok_or_else(|| Error::config("private key has no signature scheme"))?;
    let sig = key
        .sign(scheme, PROBE)
        .map_err(|e| Error::config(format!("private key cannot sign: {e}")))?;
    // Key usage is the handshake's business: this asks only whose key it is.
    match tls12_signature_by_key(scheme, leaf, PROBE, &sig) {
        Ok(()) => Ok(()),
        Err(Error::Protocol { alert, reason })
            if alert == crate::codec::AlertDescription::BAD_CERTIFICATE =>
        {
            Err(Error::config(format!("certificate: {reason}")))
        }
        Err(_) => Err(Error::config("private key does not match certificate")),
    }
}

/// What the server knows from the ClientHello when it picks a certificate.
#[derive(Debug, Clone, Copy)]
pub struct ClientHelloInfo<'a> {
    /// The SNI host name, if the client sent one.
    pub server_name: Option<&'a str>,
    /// The client's signature_algorithms.
    pub signature_schemes: &'a [SignatureScheme],
    /// The client's ALPN protocols.
    pub alpn: &'a [Vec<u8>],
    /// Whether TLS 1.3 was negotiated (decides which schemes a key may use).
    pub tls13: bool,
}

/// Picks the server's certificate for a ClientHello.
pub trait ResolvesServerCert: Send + Sync + std::fmt::Debug {
    fn resolve(&self, hello: &ClientHelloInfo<'_>) -> Option<Arc<CertifiedKey>>;
}

/// One certificate for everyone (the handshake still checks that the
/// client accepts one of its schemes).
impl ResolvesServerCert for Arc<CertifiedKey> {
    fn resolve(&self, _hello: &ClientHelloInfo<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self))
    }
}

/// Several certificates: picked by SNI (exact name, then a `*.example.com`
/// wildcard covering one label), then by the client's signature schemes (so
/// one server serves RSA and ECDSA clients); a name with no usable
/// certificate falls back to the default set.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    defaults: Vec<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a certificate for the DNS names (case-insensitive;
    /// `*.example.com` wildcards allowed), or as a default when `names` is
    /// empty. Earlier registrations are preferred among equals.
    pub fn add(&mut self, names: &[&str], key: Arc<CertifiedKey>) {
        if names.is_empty() {
            self.defaults.push(key);
            return;
        }
        for name in names {
            let name = normalize(name);
            match name.strip_prefix("*.") {
                Some(suffix) => self
                    .wildcard
                    .entry(suffix.to_owned())
                    .or_default()
                    .push(Arc::clone(&key)),
                None => self.exact.entry(name).or_default().push(Arc::clone(&key)),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.defaults.is_empty()
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The first candidate with a scheme the client accepts. A client that
/// sent no signature_algorithms (possible only in TLS 1.2) takes the first.
fn pick(
    candidates: &[Arc<CertifiedKey>],
    hello: &ClientHelloInfo<'_>,
) -> Option<Arc<CertifiedKey>> {
    if hello.signature_schemes.is_empty() {
        return candidates.first().cloned();
    }
    candidates
        .iter()
        .find(|c| {
            c.key
                .choose_scheme(hello.signature_schemes, hello.tls13)
                .is_some()
        })
        .cloned()
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: &ClientHelloInfo<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name {
            let name = normalize(name);
            if let Some(found) = self.exact.get(&name).and_then(|c| pick(c, hello)) {
                return Some(found);
            }
            // A wildcard covers exactly one leftmost label (RFC 6125 §6.4.3).
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(found) = self.wildcard.get(parent).and_then(|c| pick(c, hello)) {
                    return Some(found);
                }
            }
        }
        pick(&self.defaults, hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sign::KeyKind;
    use crate::x509::testcerts::{temp_path, Alg, TestPki};

    const TLS13_ALL: &[SignatureScheme] = &[
        SignatureScheme::ECDSA_SECP256R1_SHA256,
        SignatureScheme::RSA_PSS_RSAE_SHA256,
        SignatureScheme::ED25519,
    ];
    const RSA_ONLY: &[SignatureScheme] = &[SignatureScheme::RSA_PSS_RSAE_SHA256];
    const ECDSA_ONLY: &[SignatureScheme] = &[SignatureScheme::ECDSA_SECP256R1_SHA256];

    fn hello<'a>(name: Option<&'a str>, schemes: &'a [SignatureScheme]) -> ClientHelloInfo<'a> {
        ClientHelloInfo {
            server_name: name,
            signature_schemes: schemes,
            alpn: &[],
            tls13: true,
        }
    }

    fn kind(ck: Option<Arc<CertifiedKey>>) -> Option<KeyKind> {
        ck.map(|c| c.key.kind())
    }

    #[test]
    fn mismatch_and_empty_chain_are_config_errors() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let a = pki.leaf(Alg::EcdsaP256, &["a.example"]);
        let b = pki.leaf(Alg::EcdsaP256, &["b.example"]);
        let rsa = pki.leaf(Alg::Rsa, &["c.example"]);
        let err = CertifiedKey::new(a.chain.clone(), b.signing_key()).unwrap_err();
        assert_eq!(err, Error::config("private key does not match certificate"));
        // Different key types, too.
        let err = CertifiedKey::new(a.chain.clone(), rsa.signing_key()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = CertifiedKey::new(rsa.chain.clone(), a.signing_key()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = CertifiedKey::new(Vec::new(), a.signing_key()).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        let err = CertifiedKey::new(vec![CertificateDer::from(vec![1u8, 2])], a.signing_key())
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");

        let ck = CertifiedKey::new(a.chain.clone(), a.signing_key()).unwrap();
        assert_eq!(ck.fingerprint(), sha256(a.chain[0].as_ref()));
    }

    #[test]
    fn from_pem_files() {
        let pki = TestPki::new(Alg::Ed25519);
        let (_, leaf) = pki.leaf_via_intermediate(Alg::EcdsaP384, &["x.example"]);
        let other = pki.leaf(Alg::EcdsaP384, &["y.example"]);
        let cert = temp_path("cert.pem");
        let key = temp_path("key.pem");
        let wrong = temp_path("wrong.pem");
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        std::fs::write(&wrong, &other.key_pem).unwrap();
        let ck = CertifiedKey::from_pem_files(&cert, &key).unwrap();
        assert_eq!(ck.chain.len(), 2);
        assert_eq!(ck.key.kind(), KeyKind::EcdsaP384);
        let err = CertifiedKey::from_pem_files(&cert, &wrong).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("does not match") && msg.contains("wrong.pem"),
            "{msg}"
        );
        for p in [cert, key, wrong] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn rsa_keys_in_every_encoding() {
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
        let pki = TestPki::new(Alg::EcdsaP256);
        let leaf = pki.leaf(Alg::Rsa, &["rsa.example"]);
        let pkcs1 = crate::x509::testcerts::pkcs1_from_pkcs8(leaf.key_der.secret_der());
        let key =
            SigningKey::from_der(&PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(pkcs1))).unwrap();
        assert_eq!(key.kind(), KeyKind::Rsa);
        CertifiedKey::new(leaf.chain.clone(), key).unwrap();
        let key = leaf.signing_key();
        assert_eq!(key.schemes(true).len(), 3);
        assert_eq!(key.schemes(false).len(), 6);
        // TLS 1.2 falls back to PKCS#1 only when the peer offers nothing else.
        assert_eq!(
            key.choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA384], false),
            Some(SignatureScheme::RSA_PKCS1_SHA384)
        );
        assert_eq!(
            key.choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA384], true),
            None
        );
    }

    #[test]
    fn cert_store_by_sni_and_scheme() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let rsa = pki.leaf(Alg::Rsa, &["www.example.com"]).certified_key();
        let ecdsa = pki
            .leaf(Alg::EcdsaP256, &["www.example.com"])
            .certified_key();
        let wild = pki.leaf(Alg::Ed25519, &["*.example.net"]).certified_key();
        let fallback = pki.leaf(Alg::EcdsaP384, &["default.test"]).certified_key();

        let mut store = CertStore::new();
        assert!(store.is_empty());
        assert!(store.resolve(&hello(None, TLS13_ALL)).is_none());
        store.add(&["WWW.Example.com"], rsa);
        store.add(&["www.example.com"], ecdsa);
        store.add(&["*.Example.net"], wild);
        store.add(&[], fallback);

        // By SNI, then by scheme.
        let h = hello(Some("www.example.com"), RSA_ONLY);
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::Rsa));
        let h = hello(Some("www.example.com."), ECDSA_ONLY);
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::EcdsaP256));
        let h = hello(Some("www.EXAMPLE.com"), TLS13_ALL);
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::Rsa));

        // Wildcards cover one label only.
        let h = hello(Some("api.example.net"), TLS13_ALL);
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::Ed25519));
        let h = hello(
            Some("a.b.example.net"),
            &[SignatureScheme::ECDSA_SECP384R1_SHA384],
        );
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::EcdsaP384));
        let h = hello(
            Some("example.net"),
            &[SignatureScheme::ECDSA_SECP384R1_SHA384],
        );
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::EcdsaP384));

        // Unknown name or no SNI: the default set, still filtered by scheme.
        let h = hello(None, &[SignatureScheme::ECDSA_SECP384R1_SHA384]);
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::EcdsaP384));
        let h = hello(Some("unknown.test"), &[SignatureScheme::ED448]);
        assert_eq!(kind(store.resolve(&h)), None);
        // A known name whose certificates the client cannot use falls back.
        let h = hello(
            Some("www.example.com"),
            &[SignatureScheme::ECDSA_SECP384R1_SHA384],
        );
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::EcdsaP384));
        // PKCS#1-only clients get RSA only under TLS 1.2.
        let mut h = hello(
            Some("www.example.com"),
            &[SignatureScheme::RSA_PKCS1_SHA256],
        );
        assert_eq!(kind(store.resolve(&h)), None);
        h.tls13 = false;
        assert_eq!(kind(store.resolve(&h)), Some(KeyKind::Rsa));
    }

    #[test]
    fn single_cert_resolver() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let ck = pki.leaf(Alg::EcdsaP256, &["one.example"]).certified_key();
        let resolver: &dyn ResolvesServerCert = &ck;
        let got = resolver.resolve(&hello(Some("other"), RSA_ONLY)).unwrap();
        assert!(Arc::ptr_eq(&got, &ck));
    }
}
