//! Trust anchors, the verifier traits the handshake calls, and their default
//! implementations. Path validation is webpki's; this module only maps its
//! verdicts to alerts and readable reasons.

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{SignatureVerificationAlgorithm, TrustAnchor};
use webpki::aws_lc_rs as algs;
use webpki::{EndEntityCert, KeyUsage};

pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::codec::{AlertDescription, SignatureScheme};
use crate::error::{Error, Result};

/// Trust anchors (owned).
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// Trust anchors from CA certificates; a certificate that does not parse
    /// is a config error.
    pub fn from_certs(certs: &[CertificateDer<'_>]) -> Result<Self> {
        let mut out = TrustAnchors::default();
        for (i, cert) in certs.iter().enumerate() {
            let anchor = webpki::anchor_from_trusted_cert(cert).map_err(|e| {
                Error::config(format!("trust anchor #{}: {}", i + 1, describe_webpki(&e)))
            })?;
            out.anchors.push(anchor.to_owned());
        }
        Ok(out)
    }

    /// Trust anchors from a PEM file of CA certificates.
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let certs = super::pem::load_certs(path)?;
        Self::from_certs(&certs).map_err(|e| super::pem::in_file(path, e))
    }

    /// The system store: `$SSL_CERT_FILE`, then `$SSL_CERT_DIR` (`*.pem` and
    /// `*.crt` files), then the usual Debian/RHEL/Alpine bundle paths; a
    /// config error if none is found. Certificates that fail to parse are
    /// skipped.
    pub fn system() -> Result<Self> {
        Self::system_from(
            std::env::var_os("SSL_CERT_FILE"),
            std::env::var_os("SSL_CERT_DIR"),
            SYSTEM_BUNDLES,
        )
    }

    fn system_from(
        cert_file: Option<OsString>,
        cert_dir: Option<OsString>,
        bundles: &[&str],
    ) -> Result<Self> {
        if let Some(file) = cert_file.filter(|f| !f.is_empty()) {
            let anchors = Self::lenient_from_file(Path::new(&file));
            if !anchors.is_empty() {
                return Ok(anchors);
            }
        }
        if let Some(dirs) = cert_dir.filter(|d| !d.is_empty()) {
            // OpenSSL allows a ':'-separated list here.
            let mut anchors = TrustAnchors::default();
            for dir in std::env::split_paths(&dirs) {
                for file in cert_files_in(&dir) {
                    anchors
                        .anchors
                        .extend(Self::lenient_from_file(&file).anchors);
                }
            }
            if !anchors.is_empty() {
                return Ok(anchors);
            }
        }
        for bundle in bundles {
            let anchors = Self::lenient_from_file(Path::new(bundle));
            if !anchors.is_empty() {
                return Ok(anchors);
            }
        }
        Err(Error::config(
            "no system trust store found (set SSL_CERT_FILE or SSL_CERT_DIR, or give a CA file)",
        ))
    }

    /// Everything usable in a PEM file; unreadable files, bad PEM and
    /// unparsable certificates are skipped.
    fn lenient_from_file(path: &Path) -> Self {
        let mut out = TrustAnchors::default();
        let Ok(iter) = CertificateDer::pem_file_iter(path) else {
            return out;
        };
        // Stop at the first PEM error: the reader cannot resynchronise.
        for cert in iter.map_while(|c| c.ok()) {
            if let Ok(anchor) = webpki::anchor_from_trusted_cert(&cert) {
                out.anchors.push(anchor.to_owned());
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Adds the anchors of `other` (for example, the system store plus a
    /// private CA).
    pub fn extend(&mut self, other: TrustAnchors) {
        self.anchors.extend(other.anchors);
    }

    /// The DER-encoded subject `Name` of each anchor, as TLS's
    /// `certificate_authorities` wants it (RFC 8446 §4.2.4).
    pub fn subjects(&self) -> Vec<Vec<u8>> {
        // webpki keeps the Name's contents without the outer SEQUENCE.
        self.anchors
            .iter()
            .map(|a| der_sequence(a.subject.as_ref()))
            .collect()
    }

    fn as_slice(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }
}

const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL, Fedora
    "/etc/pki/tls/certs/ca-bundle.crt",   // older RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine, macOS, BSDs
    "/usr/local/share/certs/ca-root-nss.crt", // FreeBSD
];

fn cert_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pem") | Some("crt")
            )
        })
        .collect();
    files.sort();
    files
}

fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(0x30);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
    out
}

/// Checks the server's chain; `now` comes from the config's `TimeSource`.
pub trait ServerCertVerifier: Send + Sync + std::fmt::Debug {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<()>;

    /// TLS 1.3 CertificateVerify signature check.
    fn verify_tls13_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        verify_tls13_signature(scheme, end_entity, message, signature)
    }

    /// TLS 1.2 ServerKeyExchange signature check.
    fn verify_tls12_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        verify_tls12_signature(scheme, end_entity, message, signature)
    }

    /// Schemes we accept in signature_algorithms.
    fn supported_schemes(&self) -> &[SignatureScheme] {
        SUPPORTED_TLS13_SCHEMES
    }
}

/// Checks a client's chain (mutual TLS).
pub trait ClientCertVerifier: Send + Sync + std::fmt::Debug {
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<()>;

    /// TLS 1.3 CertificateVerify signature check.
    fn verify_tls13_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        verify_tls13_signature(scheme, end_entity, message, signature)
    }

    /// TLS 1.2 CertificateVerify signature check.
    fn verify_tls12_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        verify_tls12_signature(scheme, end_entity, message, signature)
    }

    /// Schemes we accept in signature_algorithms.
    fn supported_schemes(&self) -> &[SignatureScheme] {
        SUPPORTED_TLS13_SCHEMES
    }

    /// DER subjects of acceptable CAs for certificate_authorities (may be
    /// empty).
    fn root_hint_subjects(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// Every algorithm we accept on certificates in a chain.
static CHAIN_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ECDSA_P521_SHA256,
    algs::ECDSA_P521_SHA384,
    algs::ECDSA_P521_SHA512,
    algs::ED25519,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
];

/// Default: path validation with webpki (serverAuth EKU), then the name
/// check (DNS or IP SAN).
#[derive(Debug)]
pub struct WebPkiServerVerifier {
    anchors: TrustAnchors,
}

impl WebPkiServerVerifier {
    pub fn new(anchors: TrustAnchors) -> Self {
        WebPkiServerVerifier { anchors }
    }
}

impl ServerCertVerifier for WebPkiServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<()> {
        let cert = EndEntityCert::try_from(end_entity).map_err(|e| cert_error(&e))?;
        cert.verify_for_usage(
            CHAIN_ALGS,
            self.anchors.as_slice(),
            intermediates,
            now,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| cert_error(&e))?;
        // webpki's error carries the expected and the presented names.
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|e| cert_error(&e))
    }
}

/// Default for clients: path validation with webpki (clientAuth EKU).
#[derive(Debug)]
pub struct WebPkiClientVerifier {
    anchors: TrustAnchors,
}

impl WebPkiClientVerifier {
    pub fn new(anchors: TrustAnchors) -> Self {
        WebPkiClientVerifier { anchors }
    }
}

impl ClientCertVerifier for WebPkiClientVerifier {
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<()> {
        let cert = EndEntityCert::try_from(end_entity).map_err(|e| cert_error(&e))?;
        cert.verify_for_usage(
            CHAIN_ALGS,
            self.anchors.as_slice(),
            intermediates,
            now,
            KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| cert_error(&e))
    }

    fn root_hint_subjects(&self) -> Vec<Vec<u8>> {
        self.anchors.subjects()
    }
}

/// `--insecure`: accepts any chain (CertificateVerify signatures are still
/// checked against the leaf's key).
#[derive(Debug)]
pub struct NoServerVerification;

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _now: UnixTime,
    ) -> Result<()> {
        Ok(())
    }
}

/// Pins: accepts a chain whose leaf's SHA-256 (of the DER) is in the set,
/// whatever its issuer, names or validity (WebRTC fingerprints, RFC 8122).
/// Also usable as a [`ClientCertVerifier`], since WebRTC pins both ends.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    fingerprints: Vec<[u8; 32]>,
}

impl PinnedServerVerifier {
    pub fn new(sha256_fingerprints: Vec<[u8; 32]>) -> Self {
        PinnedServerVerifier {
            fingerprints: sha256_fingerprints,
        }
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<()> {
        let fp = sha256(end_entity.as_ref());
        if self.fingerprints.contains(&fp) {
            Ok(())
        } else {
            Err(Error::protocol(
                AlertDescription::BAD_CERTIFICATE,
                format!(
                    "certificate fingerprint sha-256 {} is not pinned",
                    hex_colon(&fp)
                ),
            ))
        }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _now: UnixTime,
    ) -> Result<()> {
        self.check(end_entity)
    }
}

impl ClientCertVerifier for PinnedServerVerifier {
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<()> {
        self.check(end_entity)
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What we accept in TLS 1.3 signature_algorithms, in preference order.
pub static SUPPORTED_TLS13_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_SECP256R1_SHA256,
    SignatureScheme::ECDSA_SECP384R1_SHA384,
    SignatureScheme::RSA_PSS_RSAE_SHA256,
    SignatureScheme::RSA_PSS_RSAE_SHA384,
    SignatureScheme::RSA_PSS_RSAE_SHA512,
    SignatureScheme::ED25519,
];

/// What a client offering TLS 1.2 accepts: the TLS 1.3 list, then PKCS#1
/// (which only TLS 1.2 may use).
pub static SUPPORTED_TLS12_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_SECP256R1_SHA256,
    SignatureScheme::ECDSA_SECP384R1_SHA384,
    SignatureScheme::RSA_PSS_RSAE_SHA256,
    SignatureScheme::RSA_PSS_RSAE_SHA384,
    SignatureScheme::RSA_PSS_RSAE_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// Checks a TLS 1.3 CertificateVerify signature against the leaf's key.
///
/// PKCS#1 v1.5 and SHA-1 schemes are illegal in TLS 1.3 (RFC 8446 §4.4.3),
/// and an ECDSA scheme names its curve, so it must match the key's. A leaf
/// whose keyUsage lacks digitalSignature may not sign.
pub fn verify_tls13_signature(
    scheme: SignatureScheme,
    end_entity: &CertificateDer<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    let alg: &dyn SignatureVerificationAlgorithm = match scheme {
        SignatureScheme::ECDSA_SECP256R1_SHA256 => algs::ECDSA_P256_SHA256,
        SignatureScheme::ECDSA_SECP384R1_SHA384 => algs::ECDSA_P384_SHA384,
        SignatureScheme::RSA_PSS_RSAE_SHA256 => algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        SignatureScheme::RSA_PSS_RSAE_SHA384 => algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        SignatureScheme::RSA_PSS_RSAE_SHA512 => algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        SignatureScheme::ED25519 => algs::ED25519,
        SignatureScheme::RSA_PKCS1_SHA1
        | SignatureScheme::RSA_PKCS1_SHA256
        | SignatureScheme::RSA_PKCS1_SHA384
        | SignatureScheme::RSA_PKCS1_SHA512 => {
            return Err(Error::illegal(
                "RSA PKCS#1 v1.5 signatures are not allowed in TLS 1.3",
            ))
        }
        SignatureScheme::ECDSA_SHA1 => {
            return Err(Error::illegal(
                "SHA-1 signatures are not allowed in TLS 1.3",
            ))
        }
        _ => return Err(unsupported_scheme(scheme)),
    };
    let cert = leaf(end_entity)?;
    check_signing_key_usage(end_entity)?;
    verify_with(&cert, scheme, alg, message, signature)
}

/// Checks a TLS 1.2 signature (ServerKeyExchange, CertificateVerify) against
/// the leaf's key. In TLS 1.2 an ECDSA scheme names only the hash
/// (RFC 5246 §7.4.1.4.1), so either curve is fine; SHA-1 and MD5 are refused.
/// A leaf whose keyUsage lacks digitalSignature may not sign.
pub fn verify_tls12_signature(
    scheme: SignatureScheme,
    end_entity: &CertificateDer<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    leaf(end_entity)?;
    check_signing_key_usage(end_entity)?;
    tls12_signature_by_key(scheme, end_entity, message, signature)
}

/// [`verify_tls12_signature`] without the key usage check: whether the
/// leaf's key made the signature.
pub(crate) fn tls12_signature_by_key(
    scheme: SignatureScheme,
    end_entity: &CertificateDer<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    let cert = leaf(end_entity)?;
    let (alg, other_curve): (
        &dyn SignatureVerificationAlgorithm,
        Option<&dyn SignatureVerificationAlgorithm>,
    ) = match scheme {
        SignatureScheme::ECDSA_SECP256R1_SHA256 => {
            (algs::ECDSA_P256_SHA256, Some(algs::ECDSA_P384_SHA256))
        }
        SignatureScheme::ECDSA_SECP384R1_SHA384 => {
            (algs::ECDSA_P384_SHA384, Some(algs::ECDSA_P256_SHA384))
        }
        SignatureScheme::RSA_PSS_RSAE_SHA256 => (algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY, None),
        SignatureScheme::RSA_PSS_RSAE_SHA384 => (algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY, None),
        SignatureScheme::RSA_PSS_RSAE_SHA512 => (algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY, None),
        SignatureScheme::RSA_PKCS1_SHA256 => (algs::RSA_PKCS1_2048_8192_SHA256, None),
        SignatureScheme::RSA_PKCS1_SHA384 => (algs::RSA_PKCS1_2048_8192_SHA384, None),
        SignatureScheme::RSA_PKCS1_SHA512 => (algs::RSA_PKCS1_2048_8192_SHA512, None),
        SignatureScheme::ED25519 => (algs::ED25519, None),
        SignatureScheme::RSA_PKCS1_SHA1 | SignatureScheme::ECDSA_SHA1 => {
            return Err(Error::illegal("SHA-1 signatures are refused"))
        }
        _ if scheme.0 >> 8 == 0x01 => return Err(Error::illegal("MD5 signatures are refused")),
        _ => return Err(unsupported_scheme(scheme)),
    };
    match (
        verify_with(&cert, scheme, alg, message, signature),
        other_curve,
    ) {
        (Err(e), Some(other)) if e.alert() == Some(AlertDescription::ILLEGAL_PARAMETER) => {
            verify_with(&cert, scheme, other, message, signature)
        }
        (result, _) => result,
    }
}

/// A leaf that signs the handshake must allow digitalSignature when it
/// has a keyUsage extension (RFC 5280 §4.2.1.3; RFC 8446 §4.4.2.2, RFC 5246
/// §7.4.2: the certificate must allow the key to be used this way).
fn check_signing_key_usage(end_entity: &CertificateDer<'_>) -> Result<()> {
    match super::key_usage::allows_digital_signature(end_entity.as_ref()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::protocol(
            AlertDescription::UNSUPPORTED_CERTIFICATE,
            "the certificate's key usage does not allow signing (no digitalSignature)",
        )),
        Err(()) => Err(Error::protocol(
            AlertDescription::BAD_CERTIFICATE,
            "cannot read the certificate's key usage",
        )),
    }
}

fn unsupported_scheme(scheme: SignatureScheme) -> Error {
    // We never offer anything else, so the peer picked a scheme we did not
    // offer (RFC 8446 §4.4.3).
    Error::protocol(
        AlertDescription::ILLEGAL_PARAMETER,
        format!("peer signed with {scheme}, which was not offered"),
    )
}

fn leaf<'a>(end_entity: &'a CertificateDer<'a>) -> Result<EndEntityCert<'a>> {
    EndEntityCert::try_from(end_entity).map_err(|e| {
        Error::protocol(
            AlertDescription::BAD_CERTIFICATE,
            format!(
                "cannot parse the peer's certificate: {}",
                describe_webpki(&e)
            ),
        )
    })
}

fn verify_with(
    cert: &EndEntityCert<'_>,
    scheme: SignatureScheme,
    alg: &dyn SignatureVerificationAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    #[allow(deprecated)]
    cert.verify_signature(alg, message, signature)
        .map_err(|e| match e {
            webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
            | webpki::Error::UnsupportedSignatureAlgorithmForPublicKey
            | webpki::Error::UnsupportedSignatureAlgorithmContext(_)
            | webpki::Error::UnsupportedSignatureAlgorithm => Error::protocol(
                AlertDescription::ILLEGAL_PARAMETER,
                format!("signature scheme {scheme} does not match the certificate's key type"),
            ),
            _ => Error::protocol(
                AlertDescription::DECRYPT_ERROR,
                format!("{scheme} signature does not verify with the certificate's public key"),
            ),
        })
}

/// Maps a webpki path-validation verdict to the alert we send and a reason a
/// person can read.
fn cert_error(e: &webpki::Error) -> Error {
    use webpki::Error as W;
    let alert = match e {
        W::UnknownIssuer => AlertDescription::UNKNOWN_CA,
        W::CertExpired { .. } | W::CertNotValidYet { .. } => AlertDescription::CERTIFICATE_EXPIRED,
        W::CertRevoked => AlertDescription::CERTIFICATE_REVOKED,
        #[allow(deprecated)]
        W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | W::UnsupportedCertVersion => AlertDescription::UNSUPPORTED_CERTIFICATE,
        _ => AlertDescription::BAD_CERTIFICATE,
    };
    Error::protocol(alert, describe_webpki(e))
}

fn describe_webpki(e: &webpki::Error) -> Cow<'static, str> {
    use webpki::Error as W;
    #[allow(deprecated)]
    let text: Cow<'static, str> = match e {
        W::UnknownIssuer => "certificate is not issued by a trusted CA (unknown issuer)".into(),
        W::CertExpired { time, not_after } => format!(
            "certificate expired at {} (now {})",
            fmt_time(*not_after),
            fmt_time(*time)
        )
        .into(),
        W::CertNotValidYet { time, not_before } => format!(
            "certificate is not valid before {} (now {})",
            fmt_time(*not_before),
            fmt_time(*time)
        )
        .into(),
        W::CertNotValidForName(ctx) => format!(
            "certificate is not valid for {}{}",
            name_str(&ctx.expected),
            if ctx.presented.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = ctx.presented.iter().map(|n| presented_name(n)).collect();
                format!(" (it is for {})", names.join(", "))
            }
        )
        .into(),
        W::CertRevoked => "certificate has been revoked".into(),
        W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "certificate is signed with an unsupported algorithm".into()
        }
        W::UnsupportedCertVersion => "unsupported certificate version (not X.509 v3)".into(),
        W::InvalidSignatureForPublicKey => {
            "a certificate's signature does not verify with its issuer's key".into()
        }
        W::CaUsedAsEndEntity => {
            "a CA certificate was presented as the end-entity certificate".into()
        }
        W::EndEntityUsedAsCa => "an end-entity certificate was used as a CA".into(),
        W::RequiredEkuNotFoundContext(ctx) => {
            let purpose = if ctx.required == KeyUsage::client_auth() {
                "TLS client authentication"
            } else {
                "TLS server authentication"
            };
            format!("certificate's extended key usage does not allow {purpose}").into()
        }
        W::RequiredEkuNotFound => "certificate's extended key usage does not allow this use".into(),
        W::NameConstraintViolation => "certificate violates its issuer's name constraints".into(),
        W::PathLenConstraintViolated => {
            "certificate chain violates a path length constraint".into()
        }
        W::CertDistrusted => "certificate chains to a distrusted key".into(),
        W::BadDer | W::BadDerTime | W::TrailingData(_) => "malformed certificate (bad DER)".into(),
        W::UnsupportedCriticalExtension => {
            "certificate has an unsupported critical extension".into()
        }
        W::MaximumPathDepthExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumSignatureChecksExceeded => {
            "certificate chain is too long or complex to validate".into()
        }
        other => format!("invalid certificate: {other:?}").into(),
    };
    text
}

fn name_str(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// webpki shows presented names as `DnsName("a.example")` or
/// `IpAddress(192.0.2.1)`; keep only the name.
fn presented_name(debug: &str) -> &str {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(inner) = debug.strip_prefix(prefix) {
            return inner.trim_end_matches(')').trim_end_matches('"');
        }
    }
    debug
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a reason string.
fn fmt_time(t: UnixTime) -> String {
    let secs = t.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), counting
    // in 400-year eras that start on March 1st.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sign::SigningKey;
    use crate::x509::testcerts::{temp_path, unix, Alg, TestPki};

    const NOW: u64 = 1_750_000_000; // mid 2025

    fn now() -> UnixTime {
        unix(NOW)
    }

    fn dns(name: &str) -> ServerName<'static> {
        ServerName::try_from(name.to_owned()).unwrap()
    }

    fn alert(r: Result<()>) -> AlertDescription {
        r.unwrap_err().alert().unwrap()
    }

    #[test]
    fn sign_verify_round_trip_every_scheme() {
        let pki = TestPki::new(Alg::EcdsaP256);
        for alg in [Alg::Rsa, Alg::EcdsaP256, Alg::EcdsaP384, Alg::Ed25519] {
            let leaf = pki.leaf(alg, &["example.com"]);
            let key = SigningKey::from_der(&leaf.key_der).unwrap();
            let msg = b"TLS 1.3, server CertificateVerify\x00transcript hash";
            for &scheme in key.schemes(true) {
                let sig = key.sign(scheme, msg).unwrap();
                verify_tls13_signature(scheme, &leaf.chain[0], msg, &sig).unwrap();
                verify_tls12_signature(scheme, &leaf.chain[0], msg, &sig).unwrap();
                assert!(SUPPORTED_TLS13_SCHEMES.contains(&scheme));

                let mut bad = sig.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                let err = verify_tls13_signature(scheme, &leaf.chain[0], msg, &bad).unwrap_err();
                assert_eq!(err.alert(), Some(AlertDescription::DECRYPT_ERROR), "{err}");
                let err = verify_tls13_signature(scheme, &leaf.chain[0], b"other", &sig);
                assert_eq!(alert(err), AlertDescription::DECRYPT_ERROR);
            }
            for &scheme in key.schemes(false) {
                let sig = key.sign(scheme, msg).unwrap();
                verify_tls12_signature(scheme, &leaf.chain[0], msg, &sig).unwrap();
            }
        }
    }

    #[test]
    fn tls13_refuses_pkcs1_and_sha1() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let leaf = pki.leaf(Alg::Rsa, &["example.com"]);
        let key = SigningKey::from_der(&leaf.key_der).unwrap();
        let sig = key.sign(SignatureScheme::RSA_PKCS1_SHA256, b"m").unwrap();
        // Valid, but illegal in TLS 1.3.
        let r = verify_tls13_signature(
            SignatureScheme::RSA_PKCS1_SHA256,
            &leaf.chain[0],
            b"m",
            &sig,
        );
        assert_eq!(alert(r), AlertDescription::ILLEGAL_PARAMETER);
        verify_tls12_signature(
            SignatureScheme::RSA_PKCS1_SHA256,
            &leaf.chain[0],
            b"m",
            &sig,
        )
        .unwrap();
        for scheme in [SignatureScheme::RSA_PKCS1_SHA1, SignatureScheme::ECDSA_SHA1] {
            let r = verify_tls13_signature(scheme, &leaf.chain[0], b"m", &sig);
            assert_eq!(alert(r), AlertDescription::ILLEGAL_PARAMETER);
            let r = verify_tls12_signature(scheme, &leaf.chain[0], b"m", &sig);
            assert_eq!(alert(r), AlertDescription::ILLEGAL_PARAMETER);
        }
        // MD5 (rsa, 0x0101) in TLS 1.2.
        let r = verify_tls12_signature(SignatureScheme(0x0101), &leaf.chain[0], b"m", &sig);
        assert_eq!(alert(r), AlertDescription::ILLEGAL_PARAMETER);
    }

    #[test]
    fn scheme_must_match_key_type() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let p256 = pki.leaf(Alg::EcdsaP256, &["example.com"]);
        let key = SigningKey::from_der(&p256.key_der).unwrap();
        let sig = key
            .sign(SignatureScheme::ECDSA_SECP256R1_SHA256, b"m")
            .unwrap();
        for scheme in [
            SignatureScheme::ECDSA_SECP384R1_SHA384,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_RSAE_SHA256,
        ] {
            let r = verify_tls13_signature(scheme, &p256.chain[0], b"m", &sig);
            assert_eq!(alert(r), AlertDescription::ILLEGAL_PARAMETER, "{scheme}");
        }
        // TLS 1.2: the curve is not part of the scheme, but the hash is.
        let r = verify_tls12_signature(
            SignatureScheme::ECDSA_SECP384R1_SHA384,
            &p256.chain[0],
            b"m",
            &sig,
        );
        assert_eq!(alert(r), AlertDescription::DECRYPT_ERROR);
        // Unknown scheme.
        let r = verify_tls13_signature(SignatureScheme::ED448, &p256.chain[0], b"m", &sig);
        assert_eq!(alert(r), AlertDescription::ILLEGAL_PARAMETER);
    }

    #[test]
    fn unparsable_leaf_is_bad_certificate() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        let r = verify_tls13_signature(SignatureScheme::ED25519, &junk, b"m", &[0; 64]);
        assert_eq!(alert(r), AlertDescription::BAD_CERTIFICATE);
        let v = WebPkiServerVerifier::new(TrustAnchors::default());
        let r = v.verify_server_cert(&junk, &[], &dns("example.com"), now());
        assert_eq!(alert(r), AlertDescription::BAD_CERTIFICATE);
    }

    #[test]
    fn webpki_server_verifier() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let leaf = pki.leaf(
            Alg::EcdsaP256,
            &["example.com", "*.example.org", "192.0.2.7"],
        );
        let v = WebPkiServerVerifier::new(pki.anchors());
        let ee = &leaf.chain[0];
        v.verify_server_cert(ee, &[], &dns("example.com"), now())
            .unwrap();
        v.verify_server_cert(ee, &[], &dns("www.example.org"), now())
            .unwrap();
        let ip = ServerName::try_from("192.0.2.7").unwrap();
        v.verify_server_cert(ee, &[], &ip, now()).unwrap();

        let err = v
            .verify_server_cert(ee, &[], &dns("other.com"), now())
            .unwrap_err();
        assert_eq!(err.alert(), Some(AlertDescription::BAD_CERTIFICATE));
        let msg = err.to_string();
        assert!(
            msg.contains("other.com") && msg.contains("example.com"),
            "{msg}"
        );
        assert!(
            msg.contains("192.0.2.7") && !msg.contains("DnsName"),
            "{msg}"
        );

        let ip2 = ServerName::try_from("192.0.2.8").unwrap();
        let err = v.verify_server_cert(ee, &[], &ip2, now()).unwrap_err();
        assert_eq!(err.alert(), Some(AlertDescription::BAD_CERTIFICATE));
        assert!(err.to_string().contains("192.0.2.8"), "{err}");

        // A different CA.
        let other = TestPki::new(Alg::Ed25519);
        let v2 = WebPkiServerVerifier::new(other.anchors());
        let r = v2.verify_server_cert(ee, &[], &dns("example.com"), now());
        assert_eq!(alert(r), AlertDescription::UNKNOWN_CA);
        // No anchors at all.
        let v3 = WebPkiServerVerifier::new(TrustAnchors::default());
        let r = v3.verify_server_cert(ee, &[], &dns("example.com"), now());
        assert_eq!(alert(r), AlertDescription::UNKNOWN_CA);
    }

    #[test]
    fn validity_period_uses_now() {
        let pki = TestPki::new(Alg::EcdsaP256);
        // Valid 2020-01-01 .. 2030-01-01.
        let leaf = pki.leaf_valid(Alg::EcdsaP256, &["example.com"], (2020, 2030));
        let v = WebPkiServerVerifier::new(pki.anchors());
        let ee = &leaf.chain[0];
        v.verify_server_cert(ee, &[], &dns("example.com"), now())
            .unwrap();
        let later = unix(1_900_000_000); // 2030-03
        let err = v
            .verify_server_cert(ee, &[], &dns("example.com"), later)
            .unwrap_err();
        assert_eq!(err.alert(), Some(AlertDescription::CERTIFICATE_EXPIRED));
        assert!(err.to_string().contains("2030-01-01"), "{err}");
        let earlier = unix(1_500_000_000); // 2017
        let r = v.verify_server_cert(ee, &[], &dns("example.com"), earlier);
        assert_eq!(alert(r), AlertDescription::CERTIFICATE_EXPIRED);
    }

    #[test]
    fn intermediates_are_used() {
        let pki = TestPki::new(Alg::EcdsaP384);
        let (inter, leaf) = pki.leaf_via_intermediate(Alg::Rsa, &["example.com"]);
        let v = WebPkiServerVerifier::new(pki.anchors());
        v.verify_server_cert(
            &leaf.chain[0],
            std::slice::from_ref(&inter),
            &dns("example.com"),
            now(),
        )
        .unwrap();
        let r = v.verify_server_cert(&leaf.chain[0], &[], &dns("example.com"), now());
        assert_eq!(alert(r), AlertDescription::UNKNOWN_CA);
    }

    #[test]
    fn eku_is_enforced() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let client_only = pki.leaf_client_only(Alg::EcdsaP256, &["client.example"]);
        let server = WebPkiServerVerifier::new(pki.anchors());
        let r =
            server.verify_server_cert(&client_only.chain[0], &[], &dns("client.example"), now());
        let err = r.unwrap_err();
        assert_eq!(err.alert(), Some(AlertDescription::BAD_CERTIFICATE));
        assert!(err.to_string().contains("server authentication"), "{err}");
        let client = WebPkiClientVerifier::new(pki.anchors());
        client
            .verify_client_cert(&client_only.chain[0], &[], now())
            .unwrap();
        let hints = client.root_hint_subjects();
        assert_eq!(hints.len(), 1);
        assert_eq!(hints[0][0], 0x30);

        let other = TestPki::new(Alg::EcdsaP256);
        let r = WebPkiClientVerifier::new(other.anchors()).verify_client_cert(
            &client_only.chain[0],
            &[],
            now(),
        );
        assert_eq!(alert(r), AlertDescription::UNKNOWN_CA);
    }

    #[test]
    fn pinned_and_insecure() {
        let pki = TestPki::new(Alg::EcdsaP256);
        let leaf = pki.leaf(Alg::EcdsaP256, &["a.example"]);
        let other = pki.leaf(Alg::EcdsaP256, &["b.example"]);
        let fp = sha256(leaf.chain[0].as_ref());
        let v = PinnedServerVerifier::new(vec![[0u8; 32], fp]);
        // Name and time do not matter for pins.
        v.verify_server_cert(&leaf.chain[0], &[], &dns("whatever.test"), unix(0))
            .unwrap();
        ClientCertVerifier::verify_client_cert(&v, &leaf.chain[0], &[], unix(0)).unwrap();
        let err = v
            .verify_server_cert(&other.chain[0], &[], &dns("b.example"), now())
            .unwrap_err();
        assert_eq!(err.alert(), Some(AlertDescription::BAD_CERTIFICATE));

        let insecure = NoServerVerification;
        insecure
            .verify_server_cert(&other.chain[0], &[], &dns("nope.test"), unix(0))
            .unwrap();
        // Signatures are still checked.
        let r = ServerCertVerifier::verify_tls13_signature(
            &insecure,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
            &other.chain[0],
            b"m",
            &[0x30, 0x00],
        );
        assert_eq!(alert(r), AlertDescription::DECRYPT_ERROR);
    }

    #[test]
    fn trust_anchor_loading() {
        let pki = TestPki::new(Alg::Rsa);
        let bad = CertificateDer::from(vec![1, 2, 3]);
        let err = TrustAnchors::from_certs(&[pki.ca_cert.clone(), bad]).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(err.to_string().contains("#2"), "{err}");

        let path = temp_path("ca.pem");
        std::fs::write(&path, &pki.ca_pem).unwrap();
        let anchors = TrustAnchors::from_pem_file(&path).unwrap();
        assert_eq!(anchors.len(), 1);
        assert!(!anchors.is_empty());

        // system_from: SSL_CERT_FILE first, then the bundle list.
        let from_env =
            TrustAnchors::system_from(Some(path.clone().into_os_string()), None, &[]).unwrap();
        assert_eq!(from_env.len(), 1);
        let from_bundle = TrustAnchors::system_from(None, None, &[path.to_str().unwrap()]).unwrap();
        assert_eq!(from_bundle.len(), 1);
        let missing = temp_path("missing.pem");
        assert!(TrustAnchors::system_from(
            Some(missing.clone().into_os_string()),
            None,
            &[missing.to_str().unwrap()]
        )
        .is_err());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn trust_anchors_from_dir_skip_junk() {
        let dir = temp_path("certdir");
        std::fs::create_dir_all(&dir).unwrap();
        let a = TestPki::new(Alg::EcdsaP256);
        let b = TestPki::new(Alg::Ed25519);
        std::fs::write(dir.join("a.pem"), &a.ca_pem).unwrap();
        std::fs::write(dir.join("b.crt"), &b.ca_pem).unwrap();
        std::fs::write(dir.join("c.txt"), &b.ca_pem).unwrap(); // wrong extension
        std::fs::write(
            dir.join("d.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let anchors =
            TrustAnchors::system_from(None, Some(dir.clone().into_os_string()), &[]).unwrap();
        assert_eq!(anchors.len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn system_store_if_present() {
        // The machine's own store, where it has one.
        if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
            let anchors = TrustAnchors::system_from(None, None, SYSTEM_BUNDLES).unwrap();
            assert!(anchors.len() > 10);
        }
    }

    #[test]
    fn time_formatting() {
        assert_eq!(fmt_time(unix(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(unix(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(fmt_time(unix(1_893_456_000)), "2030-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(unix(1_750_000_000)), "2025-06-15 15:06:40 UTC");
    }

    #[test]
    fn der_sequence_lengths() {
        assert_eq!(der_sequence(&[1, 2]), vec![0x30, 2, 1, 2]);
        let long = der_sequence(&[0u8; 200]);
        assert_eq!(&long[..3], &[0x30, 0x81, 200]);
        let longer = der_sequence(&[0u8; 300]);
        assert_eq!(&longer[..4], &[0x30, 0x82, 0x01, 0x2c]);
    }
}
