//! Test PKI, generated once per test binary with rcgen and written as PEM files so the
//! OpenSSL and GnuTLS command-line peers can load it.
//!
//! Layout (one unique directory under the system temp dir):
//!
//! ```text
//! ca.pem                       test CA (ECDSA P-256), the trust anchor
//! untrusted-ca.pem             a second CA nobody trusts (for negative tests)
//! <name>/leaf.pem              leaf certificate
//! <name>/chain.pem             leaf ‖ issuing CA (what a server or client presents)
//! <name>/key.pem               leaf private key, PKCS#8 ("PRIVATE KEY")
//! ```
//!
//! `<name>` is one of `server-ecdsa`, `server-rsa`, `server-ed25519` (SANs `localhost`
//! and IP `127.0.0.1`, serverAuth), `server-other` (SAN `other.test`, ECDSA),
//! `client-ecdsa`, `client-rsa` (clientAuth) and `untrusted-ecdsa` (`localhost`,
//! issued by the untrusted CA).
//!
//! All certificates are valid from [`NOT_BEFORE_UNIX`] to [`NOT_AFTER_UNIX`], so tests
//! that pass a clock can pick a time inside or outside that window.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// 2024-01-01T00:00:00Z: start of every test certificate's validity.
pub const NOT_BEFORE_UNIX: u64 = 1_704_067_200;
/// 2049-12-31T00:00:00Z: end of every test certificate's validity (still a UTCTime).
pub const NOT_AFTER_UNIX: u64 = 2_524_521_600;

/// One end-entity certificate with its key, as files and as DER.
#[derive(Debug)]
pub struct CertFiles {
    /// Directory holding the three files.
    pub dir: PathBuf,
    /// The leaf certificate alone (PEM).
    pub leaf_pem: PathBuf,
    /// Leaf followed by its issuing CA (PEM).
    pub chain_pem: PathBuf,
    /// The private key, PKCS#8 (PEM "PRIVATE KEY").
    pub key_pem: PathBuf,
    /// The leaf certificate (DER).
    pub leaf_der: Vec<u8>,
    /// Leaf then issuing CA (DER), the order a Certificate message carries.
    pub chain_der: Vec<Vec<u8>>,
    /// The private key, PKCS#8 v1 (DER).
    pub key_der: Vec<u8>,
}

impl CertFiles {
    /// `leaf_pem` as a `&str`, for command-line arguments.
    pub fn leaf_path(&self) -> &str {
        path_str(&self.leaf_pem)
    }

    /// `chain_pem` as a `&str`, for command-line arguments.
    pub fn chain_path(&self) -> &str {
        path_str(&self.chain_pem)
    }

    /// `key_pem` as a `&str`, for command-line arguments.
    pub fn key_path(&self) -> &str {
        path_str(&self.key_pem)
    }

    /// The chain (leaf first) as pki-types certificates.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain_der
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect()
    }

    /// The private key as a pki-types PKCS#8 key.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// The whole test PKI. Get it with [`pki()`].
#[derive(Debug)]
pub struct TestPki {
    /// Directory holding everything.
    pub dir: PathBuf,
    /// The trusted test CA certificate (PEM).
    pub ca_pem: PathBuf,
    /// The trusted test CA certificate (DER).
    pub ca_der: Vec<u8>,
    /// A CA that no test trusts (PEM).
    pub untrusted_ca_pem: PathBuf,
    /// A CA that no test trusts (DER).
    pub untrusted_ca_der: Vec<u8>,
    /// Server leaf, ECDSA P-256, `localhost` + `127.0.0.1`.
    pub server_ecdsa: CertFiles,
    /// Server leaf, RSA-2048, `localhost` + `127.0.0.1`.
    pub server_rsa: CertFiles,
    /// Server leaf, Ed25519, `localhost` + `127.0.0.1`.
    pub server_ed25519: CertFiles,
    /// Second server leaf for SNI tests, ECDSA P-256, `other.test` only.
    pub server_other: CertFiles,
    /// Client leaf, ECDSA P-256, clientAuth.
    pub client_ecdsa: CertFiles,
    /// Client leaf, RSA-2048, clientAuth.
    pub client_rsa: CertFiles,
    /// Server leaf for `localhost` + `127.0.0.1` issued by the untrusted CA.
    pub untrusted_ecdsa: CertFiles,
}

impl TestPki {
    /// `ca_pem` as a `&str`, for command-line arguments.
    pub fn ca_path(&self) -> &str {
        path_str(&self.ca_pem)
    }

    /// `untrusted_ca_pem` as a `&str`.
    pub fn untrusted_ca_path(&self) -> &str {
        path_str(&self.untrusted_ca_pem)
    }

    /// The trusted CA as a pki-types certificate.
    pub fn ca_cert(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.ca_der.clone())
    }
}

/// The test PKI, generated on first use and shared by every test in this binary.
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(generate)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Which key a leaf gets.
#[derive(Clone, Copy)]
enum KeyKind {
    EcdsaP256,
    Rsa2048,
    Ed25519,
}

enum Role {
    Server,
    Client,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    der: Vec<u8>,
}

fn generate() -> TestPki {
    let dir = super::unique_temp_dir("pki");
    let mut serial = 1u64;

    let ca = make_ca("nbtls test CA", &mut serial);
    let ca_pem = dir.join("ca.pem");
    write(&ca_pem, &ca.cert.pem());
    let untrusted = make_ca("nbtls untrusted CA", &mut serial);
    let untrusted_ca_pem = dir.join("untrusted-ca.pem");
    write(&untrusted_ca_pem, &untrusted.cert.pem());

    let local = ["localhost", "127.0.0.1"];
    let mut leaf = |name: &str, kind: KeyKind, role: Role, sans: &[&str], issuer: &Ca| {
        make_leaf(&dir, name, kind, role, sans, issuer, &mut serial)
    };
    let server_ecdsa = leaf(
        "server-ecdsa",
        KeyKind::EcdsaP256,
        Role::Server,
        &local,
        &ca,
    );
    let server_rsa = leaf("server-rsa", KeyKind::Rsa2048, Role::Server, &local, &ca);
    let server_ed25519 = leaf(
        "server-ed25519",
        KeyKind::Ed25519,
        Role::Server,
        &local,
        &ca,
    );
    let server_other = leaf(
        "server-other",
        KeyKind::EcdsaP256,
        Role::Server,
        &["other.test"],
        &ca,
    );
    let client_ecdsa = leaf(
        "client-ecdsa",
        KeyKind::EcdsaP256,
        Role::Client,
        &["client.test"],
        &ca,
    );
    let client_rsa = leaf(
        "client-rsa",
        KeyKind::Rsa2048,
        Role::Client,
        &["client.test"],
        &ca,
    );
    let untrusted_ecdsa = leaf(
        "untrusted-ecdsa",
        KeyKind::EcdsaP256,
        Role::Server,
        &local,
        &untrusted,
    );

    TestPki {
        dir,
        ca_pem,
        ca_der: ca.der,
        untrusted_ca_pem,
        untrusted_ca_der: untrusted.der,
        server_ecdsa,
        server_rsa,
        server_ed25519,
        server_other,
        client_ecdsa,
        client_rsa,
        untrusted_ecdsa,
    }
}

fn base_params(sans: &[&str], common_name: &str, serial: &mut u64) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("valid SANs");
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    params.serial_number = Some(rcgen::SerialNumber::from(*serial));
    *serial += 1;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "nbtls tests");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

fn make_ca(common_name: &str, serial: &mut u64) -> Ca {
    let key = generate_key(KeyKind::EcdsaP256);
    let mut params = base_params(&[], common_name, serial);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-sign CA");
    let der = cert.der().to_vec();
    Ca { cert, key, der }
}

fn make_leaf(
    root: &Path,
    name: &str,
    kind: KeyKind,
    role: Role,
    sans: &[&str],
    issuer: &Ca,
    serial: &mut u64,
) -> CertFiles {
    let key = generate_key(kind);
    let common_name = sans.first().copied().unwrap_or(name);
    let mut params = base_params(sans, common_name, serial);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = match kind {
        // keyEncipherment lets OpenSSL/GnuTLS also use the RSA leaf for TLS 1.2 suites
        // that check it; harmless for TLS 1.3.
        KeyKind::Rsa2048 => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        KeyKind::EcdsaP256 | KeyKind::Ed25519 => vec![KeyUsagePurpose::DigitalSignature],
    };
    params.extended_key_usages = vec![match role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    let cert = params
        .signed_by(&key, &issuer.cert, &issuer.key)
        .expect("sign leaf");

    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("create cert dir");
    let leaf_pem = dir.join("leaf.pem");
    let chain_pem = dir.join("chain.pem");
    let key_pem = dir.join("key.pem");
    write(&leaf_pem, &cert.pem());
    write(&chain_pem, &format!("{}{}", cert.pem(), issuer.cert.pem()));
    write(&key_pem, &key.serialize_pem());

    let leaf_der = cert.der().to_vec();
    CertFiles {
        dir,
        leaf_pem,
        chain_pem,
        key_pem,
        chain_der: vec![leaf_der.clone(), issuer.der.clone()],
        leaf_der,
        key_der: key.serialize_der(),
    }
}

fn generate_key(kind: KeyKind) -> KeyPair {
    if let KeyKind::Ed25519 = kind {
        return generate_ed25519_v1();
    }
    let alg: &'static SignatureAlgorithm = match kind {
        KeyKind::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
        KeyKind::Ed25519 => &PKCS_ED25519,
        KeyKind::Rsa2048 => &PKCS_RSA_SHA256,
    };
    match KeyPair::generate_for(alg) {
        Ok(key) => key,
        // rcgen generates RSA keys only with some backends: make one with aws-lc-rs.
        Err(_) if matches!(kind, KeyKind::Rsa2048) => generate_rsa_with_aws_lc(),
        Err(e) => panic!("key generation failed: {e}"),
    }
}

fn generate_rsa_with_aws_lc() -> KeyPair {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .expect("RSA-2048 generation");
    let der: Pkcs8V1Der<'static> = rsa.as_der().expect("RSA PKCS#8 export");
    let der = PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256).expect("load RSA key")
}

/// rcgen's Ed25519 keys are PKCS#8 v2 (with the public key), which OpenSSL 3.0 cannot
/// load ("unsupported"): write v1 (RFC 8410 §7) instead.
fn generate_ed25519_v1() -> KeyPair {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng).expect("Ed25519 generation");
    let der = PrivatePkcs8KeyDer::from(doc.as_ref().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ED25519).expect("load Ed25519 key")
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
