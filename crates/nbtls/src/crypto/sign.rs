//! Signing with our own private key: CertificateVerify (TLS 1.3) and, later,
//! ServerKeyExchange / CertificateVerify in TLS 1.2.
//!
//! Keys live inside aws-lc (`EVP_PKEY`), which cleanses them when freed, so
//! nothing here holds private key bytes of its own.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaEncoding, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;

use crate::codec::SignatureScheme;
use crate::error::{Error, Result};

/// The kind of a private key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

enum Inner {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key we sign handshakes with.
pub struct SigningKey {
    kind: KeyKind,
    inner: Inner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey")
            .field("kind", &self.kind)
            .finish()
    }
}

// RFC 8446 §4.2.3: TLS 1.3 signs with RSASSA-PSS only.
static RSA_TLS13: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_RSAE_SHA256,
    SignatureScheme::RSA_PSS_RSAE_SHA384,
    SignatureScheme::RSA_PSS_RSAE_SHA512,
];
// TLS 1.2 also allows PKCS#1 v1.5; prefer PSS when the peer offers it.
static RSA_TLS12: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_RSAE_SHA256,
    SignatureScheme::RSA_PSS_RSAE_SHA384,
    SignatureScheme::RSA_PSS_RSAE_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];
// aws-lc-rs signs only with the curve's own hash (no P-256 with SHA-384), so
// ECDSA keys have one scheme in TLS 1.2 as well.
static P256: &[SignatureScheme] = &[SignatureScheme::ECDSA_SECP256R1_SHA256];
static P384: &[SignatureScheme] = &[SignatureScheme::ECDSA_SECP384R1_SHA384];
static ED25519: &[SignatureScheme] = &[SignatureScheme::ED25519];

// Algorithm OIDs (DER, with tag and length) used only to explain why a key
// was refused.
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_RSASSA_PSS: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_SECP521R1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
const OID_X25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl SigningKey {
    /// Parses a private key: PKCS#8 (RSA, EC P-256/P-384, Ed25519), PKCS#1
    /// RSA or SEC1 EC. An unsupported key is a config error naming the problem.
    pub fn from_der(key: &PrivateKeyDer<'_>) -> Result<Self> {
        match key {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                .map(Self::rsa)
                .map_err(|e| Error::config(format!("RSA (PKCS#1) private key rejected: {e}"))),
            PrivateKeyDer::Sec1(k) => Self::ecdsa_sec1(k.secret_sec1_der()),
            PrivateKeyDer::Pkcs8(k) => Self::pkcs8(k.secret_pkcs8_der()),
            _ => Err(Error::config("unsupported private key encoding")),
        }
    }

    fn rsa(kp: RsaKeyPair) -> Self {
        SigningKey {
            kind: KeyKind::Rsa,
            inner: Inner::Rsa(kp),
        }
    }

    fn ecdsa(kind: KeyKind, kp: EcdsaKeyPair) -> Self {
        SigningKey {
            kind,
            inner: Inner::Ecdsa(kp),
        }
    }

    fn ecdsa_sec1(der: &[u8]) -> Result<Self> {
        if let Ok(kp) =
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
        {
            return Ok(Self::ecdsa(KeyKind::EcdsaP256, kp));
        }
        if let Ok(kp) =
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der)
        {
            return Ok(Self::ecdsa(KeyKind::EcdsaP384, kp));
        }
        if contains(der, OID_SECP521R1) {
            return Err(Error::config(
                "ECDSA P-521 private keys are not supported (use P-256 or P-384)",
            ));
        }
        Err(Error::config(
            "EC (SEC1) private key rejected: not a valid P-256 or P-384 key",
        ))
    }

    fn pkcs8(der: &[u8]) -> Result<Self> {
        // The AlgorithmIdentifier sits near the start of the PrivateKeyInfo;
        // looking there keeps the OID sniffing away from the key bytes.
        let head = der.get(..der.len().min(48)).unwrap_or(der);
        if contains(head, OID_RSA_ENCRYPTION) {
            return RsaKeyPair::from_pkcs8(der)
                .map(Self::rsa)
                .map_err(|e| Error::config(format!("RSA private key rejected: {e}")));
        }
        if contains(head, OID_EC_PUBLIC_KEY) {
            if let Ok(kp) =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
            {
                return Ok(Self::ecdsa(KeyKind::EcdsaP256, kp));
            }
            if let Ok(kp) =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der)
            {
                return Ok(Self::ecdsa(KeyKind::EcdsaP384, kp));
            }
            if contains(head, OID_SECP521R1) {
                return Err(Error::config(
                    "ECDSA P-521 private keys are not supported (use P-256 or P-384)",
                ));
            }
            return Err(Error::config(
                "EC private key rejected: only P-256 and P-384 keys are supported",
            ));
        }
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(SigningKey {
                kind: KeyKind::Ed25519,
                inner: Inner::Ed25519(kp),
            });
        }
        let why = if contains(head, OID_RSASSA_PSS) {
            "RSASSA-PSS (id-RSASSA-PSS) private keys are not supported; use an rsaEncryption key"
        } else if contains(head, OID_ED448) {
            "Ed448 private keys are not supported"
        } else if contains(head, OID_X25519) {
            "X25519 keys cannot sign"
        } else {
            "unsupported or malformed private key (expected RSA, ECDSA P-256/P-384 or Ed25519)"
        };
        Err(Error::config(why))
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The schemes this key can sign with, in our preference order.
    pub fn schemes(&self, tls13: bool) -> &'static [SignatureScheme] {
        match self.kind {
            KeyKind::Rsa if tls13 => RSA_TLS13,
            KeyKind::Rsa => RSA_TLS12,
            KeyKind::EcdsaP256 => P256,
            KeyKind::EcdsaP384 => P384,
            KeyKind::Ed25519 => ED25519,
        }
    }

    /// The first of our schemes that the peer offered (the peer's order
    /// does not matter).
    pub fn choose_scheme(
        &self,
        offered: &[SignatureScheme],
        tls13: bool,
    ) -> Option<SignatureScheme> {
        self.schemes(tls13)
            .iter()
            .copied()
            .find(|s| offered.contains(s))
    }

    /// Signs `message` (the whole content to be signed; hashing is part of
    /// the scheme).
    pub fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        if !self.schemes(false).contains(&scheme) {
            return Err(Error::internal(format!(
                "a {:?} key cannot sign with {scheme}",
                self.kind
            )));
        }
        let failed = |_| Error::internal(format!("signing with {scheme} failed"));
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(kp) => {
                let encoding: &'static dyn RsaEncoding = match scheme {
                    SignatureScheme::RSA_PSS_RSAE_SHA256 => &signature::RSA_PSS_SHA256,
                    SignatureScheme::RSA_PSS_RSAE_SHA384 => &signature::RSA_PSS_SHA384,
                    SignatureScheme::RSA_PSS_RSAE_SHA512 => &signature::RSA_PSS_SHA512,
                    SignatureScheme::RSA_PKCS1_SHA256 => &signature::RSA_PKCS1_SHA256,
                    SignatureScheme::RSA_PKCS1_SHA384 => &signature::RSA_PKCS1_SHA384,
                    SignatureScheme::RSA_PKCS1_SHA512 => &signature::RSA_PKCS1_SHA512,
                    _ => return Err(Error::internal("RSA scheme table out of sync")),
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(encoding, &rng, message, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            Inner::Ecdsa(kp) => Ok(kp.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Inner::Ed25519(kp) => Ok(kp.try_sign(message).map_err(failed)?.as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{KeyPair, UnparsedPublicKey};
    use rustls_pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

    fn pkcs8(der: Vec<u8>) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))
    }

    fn ec_key(alg: &'static signature::EcdsaSigningAlgorithm) -> (Vec<u8>, EcdsaKeyPair) {
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref()).unwrap();
        (doc.as_ref().to_vec(), kp)
    }

    #[test]
    fn ecdsa_p256_pkcs8_and_sec1() {
        let (der, kp) = ec_key(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        let key = SigningKey::from_der(&pkcs8(der)).unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        assert_eq!(format!("{key:?}"), "SigningKey { kind: EcdsaP256 }");
        let msg = b"hello";
        let sig = key
            .sign(SignatureScheme::ECDSA_SECP256R1_SHA256, msg)
            .unwrap();
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref())
            .verify(msg, &sig)
            .unwrap();

        let sec1 = kp.private_key().as_der().unwrap();
        let key = SigningKey::from_der(&PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(
            sec1.as_ref().to_vec(),
        )))
        .unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
    }

    #[test]
    fn ecdsa_p384_sec1() {
        let (_, kp) = ec_key(&signature::ECDSA_P384_SHA384_ASN1_SIGNING);
        let sec1 = kp.private_key().as_der().unwrap();
        let key = SigningKey::from_der(&PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(
            sec1.as_ref().to_vec(),
        )))
        .unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP384);
        assert_eq!(
            key.schemes(true),
            &[SignatureScheme::ECDSA_SECP384R1_SHA384]
        );
        // A P-384 key cannot be asked to sign with the P-256 scheme.
        let err = key
            .sign(SignatureScheme::ECDSA_SECP256R1_SHA256, b"x")
            .unwrap_err();
        assert_eq!(
            err.alert(),
            Some(crate::codec::AlertDescription::INTERNAL_ERROR)
        );
    }

    #[test]
    fn ed25519_v1_and_v2() {
        let kp = Ed25519KeyPair::generate().unwrap();
        let v1: aws_lc_rs::encoding::Pkcs8V1Der = kp.as_der().unwrap();
        let v2: aws_lc_rs::encoding::Pkcs8V2Der = kp.as_der().unwrap();
        for der in [v1.as_ref().to_vec(), v2.as_ref().to_vec()] {
            let key = SigningKey::from_der(&pkcs8(der)).unwrap();
            assert_eq!(key.kind(), KeyKind::Ed25519);
            let sig = key.sign(SignatureScheme::ED25519, b"msg").unwrap();
            UnparsedPublicKey::new(&signature::ED25519, kp.public_key().as_ref())
                .verify(b"msg", &sig)
                .unwrap();
        }
    }

    #[test]
    fn choose_scheme_uses_our_order() {
        let (der, _) = ec_key(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        let key = SigningKey::from_der(&pkcs8(der)).unwrap();
        let offered = [
            SignatureScheme::RSA_PSS_RSAE_SHA256,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
        ];
        assert_eq!(
            key.choose_scheme(&offered, true),
            Some(SignatureScheme::ECDSA_SECP256R1_SHA256)
        );
        assert_eq!(
            key.choose_scheme(&[SignatureScheme::ECDSA_SECP384R1_SHA384], true),
            None
        );
    }

    #[test]
    fn garbage_is_a_config_error() {
        let err = SigningKey::from_der(&pkcs8(vec![0x30, 0x03, 0x02, 0x01, 0x00])).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        let err = SigningKey::from_der(&PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(vec![
            0x30, 0x00,
        ])))
        .unwrap_err();
        assert!(err.to_string().contains("RSA"), "{err}");
    }

    #[test]
    fn p521_is_refused_by_name() {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let err = SigningKey::from_der(&pkcs8(doc.as_ref().to_vec())).unwrap_err();
        assert!(err.to_string().contains("P-521"), "{err}");
    }
}
