//! Containers for key material: zeroized on drop, never printed.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// The longest [`Secret`].
pub const MAX_SECRET_LEN: usize = 64;

/// Key material up to 64 bytes (a PRK, a traffic secret, a PSK, ...),
/// zeroized on drop; `Debug` prints `Secret(..)` only.
#[derive(Clone)]
pub struct Secret {
    buf: [u8; MAX_SECRET_LEN],
    len: usize,
}

impl Secret {
    /// Copies `b`. Callers pass at most 64 bytes; anything longer is a bug
    /// (caught by a debug assertion) and is truncated rather than panicking.
    pub fn from_slice(b: &[u8]) -> Self {
        debug_assert!(b.len() <= MAX_SECRET_LEN, "Secret longer than 64 bytes");
        let len = b.len().min(MAX_SECRET_LEN);
        let mut buf = [0u8; MAX_SECRET_LEN];
        buf[..len].copy_from_slice(&b[..len]);
        Secret { buf, len }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// The shared secret of a key exchange, of the group's length (32 for
/// X25519 and P-256, 48 for P-384, 64 for the X25519MLKEM768 hybrid),
/// zeroized on drop.
pub struct SharedSecret(pub(crate) Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// The secret bytes (the IKM of the handshake secret).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_holds_bytes_and_hides_them() {
        let s = Secret::from_slice(&[7u8; 48]);
        assert_eq!(s.len(), 48);
        assert_eq!(s.as_bytes(), &[7u8; 48][..]);
        assert_eq!(format!("{s:?}"), "Secret(..)");
        let c = s.clone();
        drop(s);
        assert_eq!(c.as_bytes(), &[7u8; 48][..]);
        assert!(Secret::from_slice(&[]).is_empty());

        let ss = SharedSecret(Zeroizing::new(vec![1, 2, 3]));
        assert_eq!(ss.as_bytes(), &[1, 2, 3]);
        assert_eq!(format!("{ss:?}"), "SharedSecret(..)");
    }
}
