//! The handshake transcript. Before the suite (and so the hash) is known the
//! client keeps its ClientHello as bytes; afterwards a running hash.

use crate::codec::{put_handshake, HandshakeType};
use crate::crypto::hash::hash;
use crate::crypto::{Digest, HashAlg, HashContext};

#[derive(Clone)]
pub enum Transcript {
    Buffered(Vec<u8>),
    Hashing(HashContext),
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript::Buffered(Vec::new())
    }
}

impl Transcript {
    pub fn add(&mut self, msg: &[u8]) {
        match self {
            Transcript::Buffered(b) => b.extend_from_slice(msg),
            Transcript::Hashing(h) => h.update(msg),
        }
    }

    /// Switches to hashing with `alg` once the suite is chosen.
    pub fn start_hash(&mut self, alg: HashAlg) {
        if let Transcript::Buffered(b) = self {
            let mut h = HashContext::new(alg);
            h.update(b);
            *self = Transcript::Hashing(h);
        }
    }

    /// The buffered messages (before hashing started).
    pub fn into_buffer(self) -> Vec<u8> {
        match self {
            Transcript::Buffered(b) => b,
            Transcript::Hashing(_) => Vec::new(),
        }
    }

    /// The hash so far. Only valid once hashing started.
    pub fn current(&self) -> Digest {
        match self {
            Transcript::Hashing(h) => h.current(),
            // Not reachable in a correct machine: every caller runs after start_hash.
            Transcript::Buffered(b) => hash(HashAlg::Sha256, b),
        }
    }

    /// RFC 8446 §4.4.1: after a HelloRetryRequest the first ClientHello is
    /// replaced by a synthetic message_hash message carrying its hash.
    pub fn replace_with_message_hash(&mut self, alg: HashAlg) {
        self.start_hash(alg);
        let ch1 = self.current();
        let mut msg = Vec::with_capacity(4 + ch1.as_bytes().len());
        put_handshake(&mut msg, HandshakeType::MESSAGE_HASH, |o| {
            o.extend_from_slice(ch1.as_bytes())
        });
        let mut h = HashContext::new(alg);
        h.update(&msg);
        *self = Transcript::Hashing(h);
    }
}
