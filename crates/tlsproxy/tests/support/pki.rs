//! A small test PKI made with rcgen, written as PEM files for the binary
//! and the OpenSSL/GnuTLS tools: a CA, a CA nobody trusts, a server leaf
//! (`localhost`, IP `127.0.0.1`, P-256) and a client leaf.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

pub struct Files {
    /// Leaf then issuing CA (PEM).
    pub chain: PathBuf,
    /// PKCS#8 key (PEM).
    pub key: PathBuf,
}

impl Files {
    pub fn chain_path(&self) -> &str {
        self.chain.to_str().expect("UTF-8 temp path")
    }
    pub fn key_path(&self) -> &str {
        self.key.to_str().expect("UTF-8 temp path")
    }
}

pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub untrusted_ca: PathBuf,
    pub server: Files,
    pub client: Files,
}

impl Pki {
    pub fn ca_path(&self) -> &str {
        self.ca.to_str().expect("UTF-8 temp path")
    }
    pub fn untrusted_ca_path(&self) -> &str {
        self.untrusted_ca.to_str().expect("UTF-8 temp path")
    }
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(generate)
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn params(sans: &[&str], cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("SANs");
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 12, 31);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key")
}

fn ca(cn: &str) -> Ca {
    let key = key();
    let mut p = params(&[], cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ca {
        cert: p.self_signed(&key).expect("CA"),
        key,
    }
}

fn leaf(dir: &Path, name: &str, sans: &[&str], eku: ExtendedKeyUsagePurpose, ca: &Ca) -> Files {
    let key = key();
    let mut p = params(sans, sans.first().copied().unwrap_or(name));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![eku];
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("leaf");
    let chain = dir.join(format!("{name}-chain.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&chain, format!("{}{}", cert.pem(), ca.cert.pem())).expect("write chain");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Files {
        chain,
        key: key_path,
    }
}

fn generate() -> Pki {
    let dir = super::temp_dir("pki");
    let trusted = ca("tlsproxy test CA");
    let other = ca("tlsproxy untrusted CA");
    let ca_path = dir.join("ca.pem");
    let untrusted = dir.join("untrusted-ca.pem");
    std::fs::write(&ca_path, trusted.cert.pem()).expect("write CA");
    std::fs::write(&untrusted, other.cert.pem()).expect("write CA");
    let server = leaf(
        &dir,
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &trusted,
    );
    let client = leaf(
        &dir,
        "client",
        &["client.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
        &trusted,
    );
    Pki {
        dir,
        ca: ca_path,
        untrusted_ca: untrusted,
        server,
        client,
    }
}
