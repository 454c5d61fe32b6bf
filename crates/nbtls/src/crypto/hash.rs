//! Hashes (SHA-256/384) and HMAC, the two primitives under the TLS 1.3 key
//! schedule and the handshake transcript.

use std::fmt;

use aws_lc_rs::{digest, hmac};
use zeroize::Zeroize;

/// The hash of a cipher suite (the only two TLS 1.3 uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

/// The longest output of any [`HashAlg`].
pub const MAX_HASH_LEN: usize = 48;

impl HashAlg {
    /// Output length in bytes (32 or 48).
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
        }
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            HashAlg::Sha256 => hmac::HMAC_SHA256,
            HashAlg::Sha384 => hmac::HMAC_SHA384,
        }
    }
}

/// A hash or HMAC output (at most 48 bytes), zeroized on drop: an HMAC
/// output is often key material (HKDF), and a Finished value is a secret
/// until sent.
#[derive(Clone)]
pub struct Digest {
    buf: [u8; MAX_HASH_LEN],
    len: usize,
}

impl Digest {
    /// Copies `bytes` (truncated to 48, which no caller exceeds).
    fn from_slice(bytes: &[u8]) -> Self {
        debug_assert!(bytes.len() <= MAX_HASH_LEN);
        let len = bytes.len().min(MAX_HASH_LEN);
        let mut buf = [0u8; MAX_HASH_LEN];
        buf[..len].copy_from_slice(&bytes[..len]);
        Digest { buf, len }
    }

    /// The output bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Output length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty output (never produced by this module).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Digest {}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl Drop for Digest {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// A running hash (the handshake transcript): feed it messages, read the
/// hash so far at any point without consuming it.
#[derive(Clone)]
pub struct HashContext {
    alg: HashAlg,
    ctx: digest::Context,
}

impl HashContext {
    /// An empty running hash.
    pub fn new(alg: HashAlg) -> Self {
        HashContext {
            alg,
            ctx: digest::Context::new(alg.digest_alg()),
        }
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Appends `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    /// The hash of everything fed so far; the context keeps running.
    pub fn current(&self) -> Digest {
        Digest::from_slice(self.ctx.clone().finish().as_ref())
    }
}

impl fmt::Debug for HashContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashContext")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// `Hash(data)`.
pub fn hash(alg: HashAlg, data: &[u8]) -> Digest {
    Digest::from_slice(digest::digest(alg.digest_alg(), data).as_ref())
}

/// `HMAC-Hash(key, data)`.
pub fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Digest {
    let key = hmac::Key::new(alg.hmac_alg(), key);
    Digest::from_slice(hmac::sign(&key, data).as_ref())
}

/// HMAC over the concatenation of `parts`, without building it: HKDF-Expand
/// feeds T(i-1) ‖ info ‖ i this way.
pub(crate) fn hmac_parts(alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Digest {
    let key = hmac::Key::new(alg.hmac_alg(), key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    Digest::from_slice(ctx.sign().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn empty_hashes() {
        assert_eq!(
            hash(HashAlg::Sha256, b"").as_bytes(),
            hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(
            hash(HashAlg::Sha384, b"").as_bytes(),
            hex(
                "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da
                 274edebfe76f65fbd51ad2f14898b95b"
            )
        );
        assert_eq!(HashAlg::Sha384.output_len(), 48);
    }

    #[test]
    fn running_hash_reads_without_consuming() {
        let mut ctx = HashContext::new(HashAlg::Sha256);
        ctx.update(b"a");
        let first = ctx.current();
        assert_eq!(first, hash(HashAlg::Sha256, b"a"));
        ctx.update(b"bc");
        assert_eq!(ctx.current(), hash(HashAlg::Sha256, b"abc"));
        assert_eq!(
            ctx.current().as_bytes(),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let forked = ctx.clone();
        ctx.update(b"d");
        assert_eq!(forked.current(), hash(HashAlg::Sha256, b"abc"));
        assert_eq!(ctx.alg(), HashAlg::Sha256);
    }

    #[test]
    fn hmac_rfc4231_case2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hmac(HashAlg::Sha256, b"Jefe", data).as_bytes(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            hmac(HashAlg::Sha384, b"Jefe", data).as_bytes(),
            hex(
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
                 8e2240ca5e69e2c78b3239ecfab21649"
            )
        );
        assert_eq!(
            hmac_parts(
                HashAlg::Sha256,
                b"Jefe",
                &[b"what do ya", b" want for nothing?"]
            ),
            hmac(HashAlg::Sha256, b"Jefe", data)
        );
    }

    #[test]
    fn debug_is_hex() {
        let d = hash(HashAlg::Sha256, b"");
        assert!(format!("{d:?}").starts_with("Digest(e3b0c442"));
    }
}
