//! Credentials, trust anchors, certificate verification and PEM loading.

mod key_usage;
pub mod pem;
pub mod resolve;
pub mod verify;

#[cfg(test)]
pub(crate) mod testcerts;

pub use crate::crypto::sign::{KeyKind, SigningKey};
pub use pem::{certs_from_pem, load_certs, load_private_key, private_key_from_pem};
pub use resolve::{CertStore, CertifiedKey, ClientHelloInfo, ResolvesServerCert};
pub use verify::{
    verify_tls12_signature, verify_tls13_signature, CertificateDer, ClientCertVerifier,
    NoServerVerification, PinnedServerVerifier, PrivateKeyDer, ServerCertVerifier, ServerName,
    TrustAnchors, UnixTime, WebPkiClientVerifier, WebPkiServerVerifier, SUPPORTED_TLS12_SCHEMES,
    SUPPORTED_TLS13_SCHEMES,
};
