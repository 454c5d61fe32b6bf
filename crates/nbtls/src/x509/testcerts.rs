//! Test certificates made on the fly with rcgen: a CA, leaves signed by it
//! (optionally through an intermediate), their keys as DER and PEM. Other
//! modules' unit tests may use it (`crate::x509::testcerts`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use super::resolve::CertifiedKey;
use super::verify::TrustAnchors;
use crate::crypto::sign::SigningKey;

/// Key algorithms a test can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Rsa,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next_id() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// RSA-2048 generation is slow-ish, so every test shares one key.
fn rsa_pkcs8() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .expect("RSA key generation")
            .serialize_der()
    })
}

/// A fresh key (or the shared RSA key) for `alg`.
pub(crate) fn key_pair(alg: Alg) -> KeyPair {
    let generated = match alg {
        Alg::Rsa => KeyPair::try_from(rsa_pkcs8()),
        Alg::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        Alg::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        Alg::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
    };
    generated.expect("test key generation")
}

/// The PKCS#1 `RSAPrivateKey` inside an RSA PKCS#8 `PrivateKeyInfo`.
pub(crate) fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    // PrivateKeyInfo ::= SEQUENCE { INTEGER, AlgorithmIdentifier, OCTET STRING }
    let (_, body, _) = tlv(pkcs8);
    let (_, _, rest) = tlv(body); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

/// (tag, contents, rest) of one DER element; test-only, panics on junk.
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, hdr) = if der[1] < 0x80 {
        (der[1] as usize, 2)
    } else {
        let n = (der[1] & 0x7f) as usize;
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    (tag, &der[hdr..hdr + len], &der[hdr + len..])
}

/// A unique path in the temp directory (not created).
pub(crate) fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "nbtls-test-{}-{}-{name}",
        std::process::id(),
        next_id()
    ))
}

pub(crate) fn unix(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// A leaf certificate: chain (leaf first, then any intermediate) and key.
pub(crate) struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: PrivateKeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_der(&self.key_der).expect("test key parses")
    }

    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::new(CertifiedKey::new(self.chain.clone(), self.signing_key()).expect("key matches"))
    }
}

/// A root CA.
pub(crate) struct TestPki {
    pub ca_cert: CertificateDer<'static>,
    pub ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

fn ca_params(cn: String) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(names: &[&str], ekus: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
    let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("valid SANs");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    params.distinguished_name = dn;
    params.extended_key_usages = ekus;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}

fn both_ekus() -> Vec<ExtendedKeyUsagePurpose> {
    vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ]
}

impl TestPki {
    pub fn new(alg: Alg) -> Self {
        let ca_key = key_pair(alg);
        // Distinct names: webpki finds issuers by name.
        let ca = ca_params(format!("nbtls test CA {}", next_id()))
            .self_signed(&ca_key)
            .expect("CA");
        TestPki {
            ca_cert: ca.der().clone(),
            ca_pem: ca.pem(),
            ca,
            ca_key,
        }
    }

    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_certs(std::slice::from_ref(&self.ca_cert)).expect("CA parses")
    }

    fn issue(&self, alg: Alg, params: CertificateParams) -> Leaf {
        let key = key_pair(alg);
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses), for server and client
    /// use, valid 1975..4096.
    pub fn leaf(&self, alg: Alg, names: &[&str]) -> Leaf {
        self.issue(alg, leaf_params(names, both_ekus()))
    }

    /// A leaf valid from January 1st of `years.0` to January 1st of `years.1`.
    pub fn leaf_valid(&self, alg: Alg, names: &[&str], years: (i32, i32)) -> Leaf {
        let mut params = leaf_params(names, both_ekus());
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        self.issue(alg, params)
    }

    /// A leaf whose extended key usage is clientAuth only.
    pub fn leaf_client_only(&self, alg: Alg, names: &[&str]) -> Leaf {
        self.issue(
            alg,
            leaf_params(names, vec![ExtendedKeyUsagePurpose::ClientAuth]),
        )
    }

    /// An intermediate CA under this root, and a leaf under it (its chain
    /// holds leaf and intermediate).
    pub fn leaf_via_intermediate(
        &self,
        alg: Alg,
        names: &[&str],
    ) -> (CertificateDer<'static>, Leaf) {
        let inter_key = key_pair(Alg::EcdsaP256);
        let inter = ca_params(format!("nbtls test intermediate {}", next_id()))
            .signed_by(&inter_key, &self.ca, &self.ca_key)
            .expect("intermediate");
        let key = key_pair(alg);
        let cert = leaf_params(names, both_ekus())
            .signed_by(&key, &inter, &inter_key)
            .expect("leaf");
        let leaf = Leaf {
            chain: vec![cert.der().clone(), inter.der().clone()],
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: format!("{}{}", cert.pem(), inter.pem()),
            key_pem: key.serialize_pem(),
        };
        (inter.der().clone(), leaf)
    }
}
