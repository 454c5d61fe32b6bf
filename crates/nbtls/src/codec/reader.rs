//! The one cursor through which every wire byte is read, and the helpers
//! through which every wire byte is written. Every length taken from the wire
//! is checked against what remains before it is used.

use crate::error::{Error, Result};

/// A bounds-checked cursor over received bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes already consumed.
    pub fn used(&self) -> usize {
        self.pos
    }

    /// Takes exactly `n` bytes, or fails with `decode_error` naming `what`.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::decode(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u24(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(3, what)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A vector with a one-byte length prefix.
    pub fn vec_u8(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let n = self.u8(what)? as usize;
        self.take(n, what)
    }

    /// A vector with a two-byte length prefix.
    pub fn vec_u16(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }

    /// A vector with a three-byte length prefix.
    pub fn vec_u24(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let n = self.u24(what)? as usize;
        self.take(n, what)
    }

    /// A sub-reader over a length-prefixed body (1, 2 or 3 length bytes).
    pub fn sub(&mut self, len_bytes: usize, what: &'static str) -> Result<Reader<'a>> {
        let body = match len_bytes {
            1 => self.vec_u8(what)?,
            2 => self.vec_u16(what)?,
            _ => self.vec_u24(what)?,
        };
        Ok(Reader::new(body))
    }

    /// Fails with `decode_error` unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::decode(what))
        }
    }
}

/// A wire type: encodes itself and reads itself through a [`Reader`].
pub trait Codec: Sized {
    fn encode(&self, out: &mut Vec<u8>);
    fn read(r: &mut Reader<'_>) -> Result<Self>;

    /// Decodes a whole buffer, rejecting trailing bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish("trailing bytes")?;
        Ok(v)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u24(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes()[1..]);
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a body produced by `f` behind a big-endian length of `len_bytes`
/// (1, 2 or 3) bytes. The caller keeps bodies within the prefix's range;
/// every producer in nbtls is bounded by the limits it encodes.
pub fn put_prefixed(out: &mut Vec<u8>, len_bytes: usize, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.resize(at + len_bytes, 0);
    f(out);
    let len = out.len() - at - len_bytes;
    let be = (len as u32).to_be_bytes();
    out[at..at + len_bytes].copy_from_slice(&be[4 - len_bytes..]);
}

/// `put_prefixed` for a plain byte string.
pub fn put_vec(out: &mut Vec<u8>, len_bytes: usize, bytes: &[u8]) {
    put_prefixed(out, len_bytes, |o| o.extend_from_slice(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert!(r.vec_u16("v").is_err());
        let mut r = Reader::new(&[2, 1, 2, 9]);
        assert_eq!(r.vec_u8("v").unwrap(), &[1, 2]);
        assert!(r.finish("t").is_err());
        assert_eq!(r.u8("x").unwrap(), 9);
        assert!(r.u8("x").is_err());
    }

    #[test]
    fn prefixed_roundtrip() {
        let mut out = Vec::new();
        put_prefixed(&mut out, 3, |o| o.extend_from_slice(&[7; 300]));
        let mut r = Reader::new(&out);
        assert_eq!(r.vec_u24("v").unwrap().len(), 300);
        r.finish("t").unwrap();
    }
}
