//! Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1): an HMAC over the
//! client's address and its ClientHello, under a secret that rotates; the
//! current and previous secrets are accepted, so a server keeps no state
//! for a client until its cookie verifies.

use std::sync::Mutex;
use std::time::Duration;

use crate::codec::{
    put_handshake, ClientHello, Codec, HandshakeType, HelloVerifyRequest, ProtocolVersion,
};
use crate::config::ServerConfig;
use crate::crypto::hash::hmac;
use crate::crypto::{fill_random, HashAlg};
use crate::error::Result;

const COOKIE_LEN: usize = 32;

struct Secrets {
    /// Rotation period index of `current`.
    period: u64,
    current: [u8; 32],
    previous: [u8; 32],
}

/// The cookie helper (`gnutls_dtls_cookie_send` / `_verify`).
pub struct CookieSecret {
    secrets: Mutex<Secrets>,
    rotate: u64,
}

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSecret").finish_non_exhaustive()
    }
}

/// What the server does with a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieCheck {
    /// No valid cookie: answer with a HelloVerifyRequest carrying this one.
    SendHelloVerify(Vec<u8>),
    /// The cookie verifies: start a session.
    Accept,
}

impl CookieSecret {
    /// A random secret, rotated every `rotate` (default 5 minutes).
    pub fn new(rotate: Duration) -> Result<Self> {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        fill_random(&mut a)?;
        fill_random(&mut b)?;
        Ok(CookieSecret {
            secrets: Mutex::new(Secrets {
                period: 0,
                current: a,
                previous: b,
            }),
            rotate: rotate.as_secs().max(1),
        })
    }

    fn rotate_to(&self, now_unix: u64) -> Option<([u8; 32], [u8; 32])> {
        let mut s = self.secrets.lock().ok()?;
        let period = now_unix / self.rotate;
        if period != s.period {
            let mut fresh = [0u8; 32];
            fill_random(&mut fresh).ok()?;
            s.previous = if period == s.period + 1 {
                s.current
            } else {
                fresh
            };
            fill_random(&mut s.current).ok()?;
            s.period = period;
        }
        Some((s.current, s.previous))
    }

    fn cookie(secret: &[u8; 32], client_id: &[u8], hello: &ClientHello) -> Vec<u8> {
        // The hello without its cookie (and without record/handshake
        // headers, which change between the two ClientHellos).
        let mut h = hello.clone();
        h.cookie = Some(Vec::new());
        let mut data = Vec::with_capacity(256);
        data.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
        data.extend_from_slice(client_id);
        h.encode_body(&mut data);
        hmac(HashAlg::Sha256, secret, &data).as_bytes()[..COOKIE_LEN].to_vec()
    }

    /// Checks `hello` from `client_id` (e.g. its address and port).
    pub fn check(&self, client_id: &[u8], hello: &ClientHello, now_unix: u64) -> CookieCheck {
        let Some((current, previous)) = self.rotate_to(now_unix) else {
            return CookieCheck::SendHelloVerify(Vec::new());
        };
        let want = Self::cookie(&current, client_id, hello);
        let got = hello.cookie.as_deref().unwrap_or(&[]);
        let ok = |c: &[u8]| aws_lc_rs::constant_time::verify_slices_are_equal(c, got).is_ok();
        if !got.is_empty() && (ok(&want) || ok(&Self::cookie(&previous, client_id, hello))) {
            CookieCheck::Accept
        } else {
            CookieCheck::SendHelloVerify(want)
        }
    }
}

/// RFC 6347 §4.2.1: a HelloVerifyRequest carries version 1.0 (254.255).
pub const HELLO_VERIFY_VERSION: ProtocolVersion = ProtocolVersion::DTLS1_0;

/// The cookie `hello` from `client_id` must be challenged with, or `None`
/// when it may proceed (its cookie verifies, or the exchange is off). The
/// one check both the engine and the stateless listener run.
pub(crate) fn challenge(
    config: &ServerConfig,
    client_id: &[u8],
    hello: &ClientHello,
) -> Option<Vec<u8>> {
    let secret = config.dtls_cookies.as_ref()?;
    let now = config.common.time.unix_time().as_secs();
    match secret.check(client_id, hello, now) {
        CookieCheck::SendHelloVerify(cookie) => Some(cookie),
        CookieCheck::Accept => None,
    }
}

/// The HelloVerifyRequest carrying `cookie`, TLS-framed (4-byte header).
pub(crate) fn hello_verify_message(cookie: Vec<u8>) -> Vec<u8> {
    let hvr = HelloVerifyRequest {
        server_version: HELLO_VERIFY_VERSION,
        cookie,
    };
    let mut out = Vec::new();
    put_handshake(&mut out, HandshakeType::HELLO_VERIFY_REQUEST, |o| {
        hvr.encode(o)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CipherSuite;

    fn hello(cookie: Vec<u8>) -> ClientHello {
        ClientHello {
            legacy_version: ProtocolVersion::DTLS1_2,
            random: [3; 32],
            session_id: Vec::new(),
            cookie: Some(cookie),
            cipher_suites: vec![CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
            compression_methods: vec![0],
            extensions: Vec::new(),
        }
    }

    #[test]
    fn cookies_verify_for_the_same_client_only_and_across_one_rotation() {
        let c = CookieSecret::new(Duration::from_secs(300)).unwrap();
        let CookieCheck::SendHelloVerify(cookie) = c.check(b"1.2.3.4:5", &hello(vec![]), 1000)
        else {
            panic!("first hello must be challenged");
        };
        assert_eq!(cookie.len(), COOKIE_LEN);
        assert_eq!(
            c.check(b"1.2.3.4:5", &hello(cookie.clone()), 1000),
            CookieCheck::Accept
        );
        assert_ne!(
            c.check(b"1.2.3.4:6", &hello(cookie.clone()), 1000),
            CookieCheck::Accept
        );
        let mut other = hello(cookie.clone());
        other.random = [4; 32];
        assert_ne!(c.check(b"1.2.3.4:5", &other, 1000), CookieCheck::Accept);
        // One rotation later the previous secret still verifies; two later not.
        assert_eq!(
            c.check(b"1.2.3.4:5", &hello(cookie.clone()), 1300),
            CookieCheck::Accept
        );
        assert_ne!(
            c.check(b"1.2.3.4:5", &hello(cookie), 1900),
            CookieCheck::Accept
        );
    }
}
