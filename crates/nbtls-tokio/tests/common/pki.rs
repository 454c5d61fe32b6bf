//! A small test PKI made with rcgen and written as PEM files (curl and
//! openssl read them): a CA, and ECDSA P-256 server leaves for
//! `localhost`/`127.0.0.1` and for `other.test`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

pub struct Leaf {
    /// Leaf then CA (PEM).
    pub chain_pem: PathBuf,
    /// PKCS#8 private key (PEM).
    pub key_pem: PathBuf,
}

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub localhost: Leaf,
    pub other: Leaf,
}

impl Pki {
    pub fn ca_path(&self) -> &str {
        self.ca_pem.to_str().expect("UTF-8 temp path")
    }
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(generate)
}

/// `<temp>/nbtls-tokio-pki-<pid>-<n>`: the name nbtls's harness sweeps
/// once the process is gone.
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nbtls-tokio-pki-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("creating {}: {e}", dir.display()),
        }
    }
}

fn params(sans: &[&str], cn: &str) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).expect("valid SANs");
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 12, 31);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

fn generate() -> Pki {
    let dir = temp_dir();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = params(&[], "nbtls-tokio test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let ca_pem = dir.join("ca.pem");
    write(&ca_pem, &ca.pem());

    let leaf = |name: &str, sans: &[&str]| {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let mut p = params(sans, sans[0]);
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &ca, &ca_key).expect("sign leaf");
        let chain_pem = dir.join(format!("{name}-chain.pem"));
        let key_pem = dir.join(format!("{name}-key.pem"));
        write(&chain_pem, &format!("{}{}", cert.pem(), ca.pem()));
        write(&key_pem, &key.serialize_pem());
        Leaf { chain_pem, key_pem }
    };
    let localhost = leaf("localhost", &["localhost", "127.0.0.1"]);
    let other = leaf("other", &["other.test"]);
    Pki {
        dir: dir.clone(),
        ca_pem,
        localhost,
        other,
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
