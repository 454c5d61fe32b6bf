//! The one place that calls the crypto crate (aws-lc-rs).

pub mod aead;
pub mod hash;
pub mod key_schedule;
pub mod kx;
pub mod prf;
pub mod secret;
pub mod sign;

pub use aead::{AeadAlg, RecordKey};
pub use hash::{Digest, HashAlg, HashContext};
pub use secret::{Secret, SharedSecret};

use crate::codec::CipherSuite;
use crate::error::{Error, Result};

/// A TLS 1.3 suite's parameters.
#[derive(Debug)]
pub struct Tls13Suite {
    pub suite: CipherSuite,
    pub aead: AeadAlg,
    pub hash: HashAlg,
}

pub static TLS13_AES_128_GCM_SHA256: Tls13Suite = Tls13Suite {
    suite: CipherSuite::TLS_AES_128_GCM_SHA256,
    aead: AeadAlg::Aes128Gcm,
    hash: HashAlg::Sha256,
};

pub static TLS13_AES_256_GCM_SHA384: Tls13Suite = Tls13Suite {
    suite: CipherSuite::TLS_AES_256_GCM_SHA384,
    aead: AeadAlg::Aes256Gcm,
    hash: HashAlg::Sha384,
};

pub static TLS13_CHACHA20_POLY1305_SHA256: Tls13Suite = Tls13Suite {
    suite: CipherSuite::TLS_CHACHA20_POLY1305_SHA256,
    aead: AeadAlg::Chacha20Poly1305,
    hash: HashAlg::Sha256,
};

/// The TLS 1.3 suites in default preference order.
pub static TLS13_SUITES: &[&Tls13Suite] = &[
    &TLS13_AES_128_GCM_SHA256,
    &TLS13_AES_256_GCM_SHA384,
    &TLS13_CHACHA20_POLY1305_SHA256,
];

/// The parameters of a TLS 1.3 suite, `None` for any other code point.
pub fn tls13_suite(suite: CipherSuite) -> Option<&'static Tls13Suite> {
    TLS13_SUITES.iter().copied().find(|s| s.suite == suite)
}

/// The certificate family a TLS 1.2 suite authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls12Auth {
    /// ECDSA or EdDSA certificates (`ECDHE_ECDSA`).
    Ecdsa,
    /// RSA certificates (`ECDHE_RSA`).
    Rsa,
}

/// A TLS 1.2 ECDHE suite's parameters.
#[derive(Debug)]
pub struct Tls12Suite {
    pub suite: CipherSuite,
    pub aead: AeadAlg,
    pub hash: HashAlg,
    pub auth: Tls12Auth,
}

macro_rules! tls12_suite {
    ($name:ident, $cs:ident, $aead:ident, $hash:ident, $auth:ident) => {
        pub static $name: Tls12Suite = Tls12Suite {
            suite: CipherSuite::$cs,
            aead: AeadAlg::$aead,
            hash: HashAlg::$hash,
            auth: Tls12Auth::$auth,
        };
    };
}

tls12_suite!(
    TLS12_ECDHE_ECDSA_AES_128_GCM,
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    Aes128Gcm,
    Sha256,
    Ecdsa
);
tls12_suite!(
    TLS12_ECDHE_ECDSA_AES_256_GCM,
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    Aes256Gcm,
    Sha384,
    Ecdsa
);
tls12_suite!(
    TLS12_ECDHE_ECDSA_CHACHA20,
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    Chacha20Poly1305,
    Sha256,
    Ecdsa
);
tls12_suite!(
    TLS12_ECDHE_RSA_AES_128_GCM,
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    Aes128Gcm,
    Sha256,
    Rsa
);
tls12_suite!(
    TLS12_ECDHE_RSA_AES_256_GCM,
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    Aes256Gcm,
    Sha384,
    Rsa
);
tls12_suite!(
    TLS12_ECDHE_RSA_CHACHA20,
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    Chacha20Poly1305,
    Sha256,
    Rsa
);

/// TLS 1.2 suites in default preference order.
pub static TLS12_SUITES: &[&Tls12Suite] = &[
    &TLS12_ECDHE_ECDSA_AES_128_GCM,
    &TLS12_ECDHE_ECDSA_AES_256_GCM,
    &TLS12_ECDHE_ECDSA_CHACHA20,
    &TLS12_ECDHE_RSA_AES_128_GCM,
    &TLS12_ECDHE_RSA_AES_256_GCM,
    &TLS12_ECDHE_RSA_CHACHA20,
];

/// The parameters of a TLS 1.2 suite, `None` for any other code point.
pub fn tls12_suite(suite: CipherSuite) -> Option<&'static Tls12Suite> {
    TLS12_SUITES.iter().copied().find(|s| s.suite == suite)
}

/// Fills `out` from the system CSPRNG.
pub fn fill_random(out: &mut [u8]) -> Result<()> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    SystemRandom::new()
        .fill(out)
        .map_err(|_| Error::internal("the system random generator failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites() {
        assert_eq!(TLS13_SUITES.len(), 3);
        assert_eq!(TLS13_SUITES[0].suite, CipherSuite::TLS_AES_128_GCM_SHA256);
        let s = tls13_suite(CipherSuite::TLS_AES_256_GCM_SHA384).unwrap();
        assert_eq!((s.aead, s.hash), (AeadAlg::Aes256Gcm, HashAlg::Sha384));
        let s = tls13_suite(CipherSuite::TLS_CHACHA20_POLY1305_SHA256).unwrap();
        assert_eq!(
            (s.aead, s.hash),
            (AeadAlg::Chacha20Poly1305, HashAlg::Sha256)
        );
        assert!(tls13_suite(CipherSuite(0x1304)).is_none());
        for s in TLS13_SUITES {
            assert!(s.suite.is_tls13());
        }
    }

    #[test]
    fn random_is_filled() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        fill_random(&mut []).unwrap();
    }
}
