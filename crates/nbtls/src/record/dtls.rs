//! DTLS 1.2 records (RFC 6347 §4.1): 13-byte headers with an epoch and a
//! 48-bit sequence number, AEAD protection as in TLS 1.2 with epoch ‖ seq
//! as the sequence, and a replay window per read epoch. Records that fail
//! any check are dropped, never fatal (§4.1.2.7).

use std::ops::Range;

use super::replay::ReplayWindow;
use super::tls::{aead_aad, Protection, MAX_CIPHERTEXT, MAX_PLAINTEXT};
use crate::codec::{ContentType, ProtocolVersion};
use crate::crypto::{AeadAlg, RecordKey};
use crate::error::{Error, Result};

pub const DTLS_HEADER_LEN: usize = 13;
/// The largest sequence number of an epoch (2^48 − 1).
pub const MAX_SEQ: u64 = (1 << 48) - 1;
const EXPLICIT_NONCE_LEN: usize = 8;

/// A DTLS record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsHeader {
    pub typ: ContentType,
    pub version: ProtocolVersion,
    pub epoch: u16,
    pub seq: u64,
    pub len: usize,
}

impl DtlsHeader {
    /// Parses a header; `None` for anything that is not a DTLS record we
    /// could accept (too short, not DTLS, too long).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let h = b.get(..DTLS_HEADER_LEN)?;
        let version = ProtocolVersion(u16::from_be_bytes([h[1], h[2]]));
        let len = usize::from(u16::from_be_bytes([h[11], h[12]]));
        if !version.is_dtls() || len > MAX_CIPHERTEXT {
            return None;
        }
        let mut seq = [0u8; 8];
        seq[2..].copy_from_slice(&h[5..11]);
        Some(DtlsHeader {
            typ: ContentType(h[0]),
            version,
            epoch: u16::from_be_bytes([h[3], h[4]]),
            seq: u64::from_be_bytes(seq),
            len,
        })
    }

    /// epoch ‖ seq, the 64-bit "sequence number" the AEAD sees.
    pub fn seq64(&self) -> u64 {
        (u64::from(self.epoch) << 48) | self.seq
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.typ.0);
        out.extend_from_slice(&self.version.0.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes()[2..]);
        out.extend_from_slice(&(self.len as u16).to_be_bytes());
    }
}

struct WriteEpoch {
    epoch: u16,
    key: Option<(RecordKey, Protection)>,
    next_seq: u64,
}

struct ReadEpoch {
    epoch: u16,
    key: Option<(RecordKey, Protection)>,
    window: ReplayWindow,
}

/// Record protection for a DTLS connection.
pub struct DtlsRecordLayer {
    read: ReadEpoch,
    /// Write states by epoch: the current one, and the one before it for
    /// retransmitting a flight that began under it.
    write: Vec<WriteEpoch>,
    /// Records that failed authentication under the current read epoch.
    pub auth_failures: u64,
    /// Records dropped for any reason.
    pub dropped: u64,
}

impl Default for DtlsRecordLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl DtlsRecordLayer {
    pub fn new() -> Self {
        DtlsRecordLayer {
            read: ReadEpoch {
                epoch: 0,
                key: None,
                window: ReplayWindow::default(),
            },
            write: vec![WriteEpoch {
                epoch: 0,
                key: None,
                next_seq: 0,
            }],
            auth_failures: 0,
            dropped: 0,
        }
    }

    pub fn write_epoch(&self) -> u16 {
        self.write.last().map_or(0, |w| w.epoch)
    }

    pub fn read_epoch(&self) -> u16 {
        self.read.epoch
    }

    /// Starts the next write epoch (after our ChangeCipherSpec).
    pub fn next_write_epoch(&mut self, key: RecordKey, mode: Protection) {
        let epoch = self.write_epoch() + 1;
        self.write.push(WriteEpoch {
            epoch,
            key: Some((key, mode)),
            next_seq: 0,
        });
        if self.write.len() > 2 {
            self.write.remove(0);
        }
    }

    /// Starts the next read epoch (at the peer's ChangeCipherSpec).
    pub fn next_read_epoch(&mut self, key: RecordKey, mode: Protection) {
        self.read = ReadEpoch {
            epoch: self.read.epoch + 1,
            key: Some((key, mode)),
            window: ReplayWindow::default(),
        };
        self.auth_failures = 0;
    }

    /// Bytes a record adds to its payload under `epoch`.
    pub fn overhead(&self, epoch: u16) -> usize {
        let w = self.write.iter().find(|w| w.epoch == epoch);
        DTLS_HEADER_LEN
            + match w.and_then(|w| w.key.as_ref()).map(|(_, m)| *m) {
                None => 0,
                Some(Protection::Tls12ExplicitNonce) => EXPLICIT_NONCE_LEN + AeadAlg::TAG_LEN,
                Some(_) => AeadAlg::TAG_LEN,
            }
    }

    /// Sequence numbers the current write epoch has used.
    pub fn write_seq(&self) -> u64 {
        self.write.last().map_or(0, |w| w.next_seq)
    }

    /// Continues the current write epoch at `seq` (a server after a
    /// stateless HelloVerifyRequest, RFC 6347 §4.2.1), never backwards.
    pub fn skip_write_seq(&mut self, seq: u64) {
        if let Some(w) = self.write.last_mut() {
            w.next_seq = w.next_seq.max(seq.min(MAX_SEQ));
        }
    }

    /// Appends one record under `epoch` to `out`.
    pub fn seal(
        &mut self,
        epoch: u16,
        typ: ContentType,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        debug_assert!(payload.len() <= MAX_PLAINTEXT);
        let Some(w) = self.write.iter_mut().find(|w| w.epoch == epoch) else {
            return Err(Error::internal("no write state for that epoch"));
        };
        // RFC 6347 §4.1: sequence numbers never wrap within an epoch.
        if w.next_seq > MAX_SEQ {
            return Err(Error::internal("DTLS write sequence numbers exhausted"));
        }
        let hdr = |len: usize| DtlsHeader {
            typ,
            version: ProtocolVersion::DTLS1_2,
            epoch: w.epoch,
            seq: w.next_seq,
            len,
        };
        let seq64 = (u64::from(w.epoch) << 48) | w.next_seq;
        match &w.key {
            None => {
                hdr(payload.len()).encode(out);
                out.extend_from_slice(payload);
            }
            Some((key, mode)) => {
                let explicit = *mode == Protection::Tls12ExplicitNonce;
                let body = payload.len()
                    + AeadAlg::TAG_LEN
                    + if explicit { EXPLICIT_NONCE_LEN } else { 0 };
                hdr(body).encode(out);
                if explicit {
                    out.extend_from_slice(&seq64.to_be_bytes());
                }
                let at = out.len();
                out.extend_from_slice(payload);
                let aad = aead_aad(seq64, typ, ProtocolVersion::DTLS1_2, payload.len());
                let tag = key.seal(seq64, &aad, &mut out[at..]);
                out.extend_from_slice(&tag);
            }
        }
        w.next_seq += 1;
        Ok(())
    }

    /// Opens a record in place; `None` drops it (wrong epoch, replay,
    /// authentication failure, malformed).
    pub fn open(
        &mut self,
        hdr: &DtlsHeader,
        body: &mut [u8],
    ) -> Option<(ContentType, Range<usize>)> {
        let r = self.open_inner(hdr, body);
        if r.is_none() {
            self.dropped += 1;
        }
        r
    }

    fn open_inner(
        &mut self,
        hdr: &DtlsHeader,
        body: &mut [u8],
    ) -> Option<(ContentType, Range<usize>)> {
        if hdr.epoch != self.read.epoch || !self.read.window.may_accept(hdr.seq) {
            return None;
        }
        let range = match &self.read.key {
            None => {
                if hdr.typ == ContentType::APPLICATION_DATA || body.len() > MAX_PLAINTEXT {
                    return None;
                }
                0..body.len()
            }
            Some((key, mode)) => {
                let explicit = *mode == Protection::Tls12ExplicitNonce;
                let start = if explicit { EXPLICIT_NONCE_LEN } else { 0 };
                let plain_len = body.len().checked_sub(start + AeadAlg::TAG_LEN)?;
                if plain_len > MAX_PLAINTEXT {
                    return None;
                }
                let nonce_seq = if explicit {
                    let mut e = [0u8; 8];
                    e.copy_from_slice(&body[..EXPLICIT_NONCE_LEN]);
                    u64::from_be_bytes(e)
                } else {
                    hdr.seq64()
                };
                let aad = aead_aad(hdr.seq64(), hdr.typ, hdr.version, plain_len);
                match key.open(nonce_seq, &aad, &mut body[start..]) {
                    Ok(n) => start..start + n,
                    Err(()) => {
                        self.auth_failures += 1;
                        return None;
                    }
                }
            }
        };
        // Only an authentic record moves the window (§4.1.2.6): epoch-0
        // records are not, so a forged one with a high sequence number
        // cannot push the real handshake out of it. Their duplicates are
        // caught by the reassembler instead.
        if self.read.key.is_none() {
            return Some((hdr.typ, range));
        }
        self.read.window.accept(hdr.seq).then_some((hdr.typ, range))
    }

    /// The AEAD integrity limit for the current read key (or `max`, when
    /// lower) was reached (RFC 9147 §4.5.3): the session must end.
    pub fn integrity_limit_reached(&self, max: u64) -> bool {
        match &self.read.key {
            Some((key, _)) => self.auth_failures >= key.alg().integrity_limit().min(max),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RecordKey {
        RecordKey::new(
            AeadAlg::Aes128Gcm,
            &[7; 16],
            &[1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0],
        )
        .unwrap()
    }

    fn pair() -> (DtlsRecordLayer, DtlsRecordLayer) {
        let (mut a, mut b) = (DtlsRecordLayer::new(), DtlsRecordLayer::new());
        a.next_write_epoch(key(), Protection::Tls12ExplicitNonce);
        b.next_read_epoch(key(), Protection::Tls12ExplicitNonce);
        (a, b)
    }

    fn roundtrip(a: &mut DtlsRecordLayer, _b: &mut DtlsRecordLayer, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        a.seal(
            a.write_epoch(),
            ContentType::APPLICATION_DATA,
            payload,
            &mut out,
        )
        .unwrap();
        out
    }

    fn open(b: &mut DtlsRecordLayer, rec: &[u8]) -> Option<Vec<u8>> {
        let h = DtlsHeader::parse(rec)?;
        let mut body = rec[DTLS_HEADER_LEN..].to_vec();
        let (_, r) = b.open(&h, &mut body)?;
        Some(body[r].to_vec())
    }

    #[test]
    fn seal_open_replay_and_tamper() {
        let (mut a, mut b) = pair();
        let r1 = roundtrip(&mut a, &mut b, b"one");
        let r2 = roundtrip(&mut a, &mut b, b"two");
        assert_eq!(DtlsHeader::parse(&r1).unwrap().epoch, 1);
        assert_eq!(open(&mut b, &r2).unwrap(), b"two");
        assert_eq!(open(&mut b, &r1).unwrap(), b"one", "reordered, still new");
        assert!(open(&mut b, &r1).is_none(), "replay dropped");
        let mut bad = roundtrip(&mut a, &mut b, b"three");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&mut b, &bad).is_none(), "forgery dropped");
        assert_eq!(b.auth_failures, 1);
        assert_eq!(b.dropped, 2);
        // A wrong epoch is dropped, and a truncated header is not a record.
        let mut plain = Vec::new();
        DtlsRecordLayer::new()
            .seal(0, ContentType::HANDSHAKE, b"hs", &mut plain)
            .unwrap();
        assert!(open(&mut b, &plain).is_none());
        assert!(DtlsHeader::parse(&plain[..12]).is_none());
    }
}
