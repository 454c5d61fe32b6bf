//! TLS 1.3 record protection (RFC 8446 §5): framing, in-place AEAD with the
//! per-record nonce, the inner content type and padding.

use crate::codec::{AlertDescription, ContentType, ProtocolVersion};
use crate::crypto::{AeadAlg, RecordKey};
use crate::error::{Error, Result};

pub const HEADER_LEN: usize = 5;
/// Largest plaintext fragment (2^14).
pub const MAX_PLAINTEXT: usize = 16384;
/// Largest TLSCiphertext body accepted: 2^14 + 256 in TLS 1.3 (RFC 8446
/// §5.2); TLS 1.2 allows 2^14 + 2048 (RFC 5246 §6.2.3), but its AEAD
/// suites never need more than 2^14 + 24, so the 1.3 bound serves both.
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;

/// Bytes of explicit nonce a TLS 1.2 AES-GCM record carries (RFC 5288 §3).
const EXPLICIT_NONCE_LEN: usize = 8;

/// A record header as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub typ: ContentType,
    pub version: ProtocolVersion,
    pub len: usize,
}

impl RecordHeader {
    /// Parses and checks the five header bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Self> {
        let typ = ContentType(b[0]);
        let version = ProtocolVersion(u16::from_be_bytes([b[1], b[2]]));
        let len = u16::from_be_bytes([b[3], b[4]]) as usize;
        if !matches!(
            typ,
            ContentType::HANDSHAKE
                | ContentType::ALERT
                | ContentType::APPLICATION_DATA
                | ContentType::CHANGE_CIPHER_SPEC
        ) {
            return Err(Error::unexpected("record of unknown content type"));
        }
        // legacy_record_version: anything 0x03xx is tolerated (RFC 8446 §5.1:
        // it MUST be ignored); a byte that is not a TLS major version means
        // this is not TLS at all.
        if version.0 >> 8 != 0x03 {
            return Err(Error::decode("record version is not TLS"));
        }
        if len > MAX_CIPHERTEXT {
            return Err(Error::protocol(
                AlertDescription::RECORD_OVERFLOW,
                "record too long",
            ));
        }
        Ok(RecordHeader { typ, version, len })
    }
}

/// How records are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// RFC 8446 §5.2: inner content type, nonce = IV XOR seq.
    Tls13,
    /// RFC 5246 §6.2.3.3 with an 8-byte explicit nonce (AES-GCM; the key's
    /// IV is the 4-byte salt followed by zeros, so its nonce for `seq` is
    /// salt ‖ seq).
    Tls12ExplicitNonce,
    /// RFC 7905: ChaCha20-Poly1305, nonce = IV XOR seq, no explicit part.
    Tls12,
}

/// One direction's protection state.
struct Direction {
    key: RecordKey,
    seq: u64,
    mode: Protection,
}

/// TLS record protection for both directions.
#[derive(Default)]
pub struct RecordLayer {
    read: Option<Direction>,
    write: Option<Direction>,
    /// Most plaintext bytes we put in one record (the peer's
    /// record_size_limit minus the inner type byte, at most 2^14).
    pub send_fragment: usize,
    /// Most plaintext bytes we accept in one record (our limit).
    pub recv_fragment: usize,
}

impl RecordLayer {
    pub fn new() -> Self {
        RecordLayer {
            read: None,
            write: None,
            send_fragment: MAX_PLAINTEXT,
            recv_fragment: MAX_PLAINTEXT,
        }
    }

    pub fn set_read_key(&mut self, key: RecordKey) {
        self.set_read(key, Protection::Tls13);
    }

    pub fn set_write_key(&mut self, key: RecordKey) {
        self.set_write(key, Protection::Tls13);
    }

    /// Back to plaintext writes (a ClientHello after a HelloRetryRequest
    /// that ended 0-RTT).
    pub fn clear_write(&mut self) {
        self.write = None;
    }

    pub fn set_read(&mut self, key: RecordKey, mode: Protection) {
        self.read = Some(Direction { key, seq: 0, mode });
    }

    pub fn set_write(&mut self, key: RecordKey, mode: Protection) {
        self.write = Some(Direction { key, seq: 0, mode });
    }

    pub fn is_reading_encrypted(&self) -> bool {
        self.read.is_some()
    }

    pub fn is_writing_encrypted(&self) -> bool {
        self.write.is_some()
    }

    /// Records sealed under the current write key.
    pub fn write_seq(&self) -> u64 {
        self.write.as_ref().map_or(0, |d| d.seq)
    }

    /// Takes back the last `n` sequence numbers of the write key, for records
    /// sealed under it and dropped before any of their bytes were sent.
    pub fn rewind_write_seq(&mut self, n: u64) {
        if let Some(d) = &mut self.write {
            d.seq = d.seq.saturating_sub(n);
        }
    }

    /// Records opened under the current read key.
    pub fn read_seq(&self) -> u64 {
        self.read.as_ref().map_or(0, |d| d.seq)
    }

    pub fn write_alg(&self) -> Option<AeadAlg> {
        self.write.as_ref().map(|d| d.key.alg())
    }

    /// Bytes a record adds to `n` bytes of plaintext when sealed now.
    pub fn overhead(&self) -> usize {
        HEADER_LEN
            + match self.write.as_ref().map(|d| d.mode) {
                None => 0,
                Some(Protection::Tls13) => 1 + AeadAlg::TAG_LEN,
                Some(Protection::Tls12) => AeadAlg::TAG_LEN,
                Some(Protection::Tls12ExplicitNonce) => EXPLICIT_NONCE_LEN + AeadAlg::TAG_LEN,
            }
    }

    /// Appends one record carrying `payload` (at most `send_fragment` bytes)
    /// of type `typ` to `out`, encrypting in place when a key is set.
    pub fn seal(&mut self, typ: ContentType, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        debug_assert!(payload.len() <= MAX_PLAINTEXT);
        let start = out.len();
        match &mut self.write {
            None => {
                out.push(typ.0);
                out.extend_from_slice(&ProtocolVersion::TLS1_2.0.to_be_bytes());
                out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                out.extend_from_slice(payload);
            }
            Some(dir) if dir.mode != Protection::Tls13 => {
                if dir.seq == u64::MAX {
                    return Err(Error::internal("write sequence number exhausted"));
                }
                let explicit = dir.mode == Protection::Tls12ExplicitNonce;
                let body_len = payload.len()
                    + AeadAlg::TAG_LEN
                    + if explicit { EXPLICIT_NONCE_LEN } else { 0 };
                out.push(typ.0);
                out.extend_from_slice(&ProtocolVersion::TLS1_2.0.to_be_bytes());
                out.extend_from_slice(&(body_len as u16).to_be_bytes());
                if explicit {
                    out.extend_from_slice(&dir.seq.to_be_bytes());
                }
                let at = out.len();
                out.extend_from_slice(payload);
                let aad = tls12_aad(dir.seq, typ, payload.len());
                let tag = dir.key.seal(dir.seq, &aad, &mut out[at..]);
                out.extend_from_slice(&tag);
                dir.seq += 1;
            }
            Some(dir) => {
                // RFC 8446 §5.3: the sequence number must never wrap; the
                // engine rekeys long before, so reaching it is a bug.
                if dir.seq == u64::MAX {
                    return Err(Error::internal("write sequence number exhausted"));
                }
                let body_len = payload.len() + 1 + AeadAlg::TAG_LEN;
                out.push(ContentType::APPLICATION_DATA.0);
                out.extend_from_slice(&ProtocolVersion::TLS1_2.0.to_be_bytes());
                out.extend_from_slice(&(body_len as u16).to_be_bytes());
                out.extend_from_slice(payload);
                out.push(typ.0);
                let (head, body) = out.split_at_mut(start + HEADER_LEN);
                let aad = &head[start..];
                let tag = dir.key.seal(dir.seq, aad, body);
                out.extend_from_slice(&tag);
                dir.seq += 1;
            }
        }
        Ok(())
    }

    /// Opens a received record in place. `header` is the record's five
    /// header bytes, `body` its body. Returns the real content type and
    /// where in `body` the plaintext now is.
    pub fn open(
        &mut self,
        header: &[u8; HEADER_LEN],
        hdr: &RecordHeader,
        body: &mut [u8],
    ) -> Result<(ContentType, std::ops::Range<usize>)> {
        if let Some(dir) = self.read.as_mut().filter(|d| d.mode != Protection::Tls13) {
            return open_tls12(dir, hdr, body);
        }
        // A change_cipher_spec record is never protected (RFC 8446 §5).
        let dir = match &mut self.read {
            Some(dir) if hdr.typ != ContentType::CHANGE_CIPHER_SPEC => dir,
            _ => {
                if hdr.len > MAX_PLAINTEXT {
                    return Err(Error::protocol(
                        AlertDescription::RECORD_OVERFLOW,
                        "plaintext record too long",
                    ));
                }
                if hdr.typ == ContentType::APPLICATION_DATA {
                    return Err(Error::unexpected("application data before keys were set"));
                }
                return Ok((hdr.typ, 0..body.len()));
            }
        };
        if hdr.typ != ContentType::APPLICATION_DATA {
            return Err(Error::unexpected("unprotected record after keys were set"));
        }
        if body.len() < AeadAlg::TAG_LEN + 1 {
            return Err(Error::protocol(
                AlertDescription::BAD_RECORD_MAC,
                "record too short",
            ));
        }
        let n = dir.key.open(dir.seq, header, body).map_err(|()| {
            Error::protocol(
                AlertDescription::BAD_RECORD_MAC,
                "record authentication failed",
            )
        })?;
        dir.seq += 1;
        // RFC 8446 §5.4: the inner plaintext, padding included, is at most
        // 2^14 + 1 bytes.
        if n > MAX_PLAINTEXT + 1 {
            return Err(Error::protocol(
                AlertDescription::RECORD_OVERFLOW,
                "padded record too long",
            ));
        }
        // The real type is the last non-zero byte; zeros after it are padding.
        let Some(pos) = body[..n].iter().rposition(|&b| b != 0) else {
            return Err(Error::unexpected("protected record without a content type"));
        };
        if pos > self.recv_fragment {
            return Err(Error::protocol(
                AlertDescription::RECORD_OVERFLOW,
                "decrypted record too long",
            ));
        }
        let typ = ContentType(body[pos]);
        // RFC 8446 §5: change_cipher_spec is never protected.
        if typ == ContentType::CHANGE_CIPHER_SPEC {
            return Err(Error::unexpected("protected change_cipher_spec"));
        }
        Ok((typ, 0..pos))
    }
}

/// TLS 1.2 additional data: seq ‖ type ‖ version ‖ plaintext length.
pub(crate) fn tls12_aad(seq: u64, typ: ContentType, len: usize) -> [u8; 13] {
    aead_aad(seq, typ, ProtocolVersion::TLS1_2, len)
}

/// seq ‖ type ‖ version ‖ length: the TLS 1.2 and DTLS 1.2 AAD (RFC 5246
/// §6.2.3.3; DTLS puts epoch ‖ seq in the first 8 bytes, RFC 6347 §4.1.2.1).
pub(crate) fn aead_aad(
    seq: u64,
    typ: ContentType,
    version: ProtocolVersion,
    len: usize,
) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = typ.0;
    aad[9..11].copy_from_slice(&version.0.to_be_bytes());
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

fn open_tls12(
    dir: &mut Direction,
    hdr: &RecordHeader,
    body: &mut [u8],
) -> Result<(ContentType, std::ops::Range<usize>)> {
    let bad_mac = || {
        Error::protocol(
            AlertDescription::BAD_RECORD_MAC,
            "record authentication failed",
        )
    };
    let explicit = dir.mode == Protection::Tls12ExplicitNonce;
    let start = if explicit { EXPLICIT_NONCE_LEN } else { 0 };
    if body.len() < start + AeadAlg::TAG_LEN {
        return Err(bad_mac());
    }
    let plain_len = body.len() - start - AeadAlg::TAG_LEN;
    if plain_len > MAX_PLAINTEXT {
        return Err(Error::protocol(
            AlertDescription::RECORD_OVERFLOW,
            "record too long",
        ));
    }
    // AES-GCM: the nonce's explicit part is what the sender put on the wire.
    let nonce_seq = if explicit {
        let mut e = [0u8; 8];
        e.copy_from_slice(&body[..EXPLICIT_NONCE_LEN]);
        u64::from_be_bytes(e)
    } else {
        dir.seq
    };
    let aad = tls12_aad(dir.seq, hdr.typ, plain_len);
    let n = dir
        .key
        .open(nonce_seq, &aad, &mut body[start..])
        .map_err(|()| bad_mac())?;
    dir.seq += 1;
    Ok((hdr.typ, start..start + n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AeadAlg, RecordKey};

    fn key() -> RecordKey {
        RecordKey::new(AeadAlg::Aes128Gcm, &[9; 16], &[3; 12]).unwrap()
    }

    /// A TLS 1.3 record whose inner plaintext is `content ‖ type ‖ zeros`.
    fn record(content_len: usize, padding: usize) -> (Vec<u8>, RecordHeader) {
        let mut body = vec![0x41u8; content_len];
        body.push(ContentType::APPLICATION_DATA.0);
        body.extend(std::iter::repeat_n(0u8, padding));
        let len = body.len() + AeadAlg::TAG_LEN;
        let mut header = vec![23, 3, 3];
        header.extend_from_slice(&(len as u16).to_be_bytes());
        let tag = key().seal(0, &header, &mut body);
        body.extend_from_slice(&tag);
        let hdr = RecordHeader::parse(&header.clone().try_into().unwrap()).unwrap();
        let mut rec = header;
        rec.extend_from_slice(&body);
        (rec, hdr)
    }

    fn open(rec: &[u8], hdr: &RecordHeader) -> Result<(ContentType, std::ops::Range<usize>)> {
        let mut rl = RecordLayer::new();
        rl.set_read_key(key());
        let header: [u8; HEADER_LEN] = rec[..HEADER_LEN].try_into().unwrap();
        let mut body = rec[HEADER_LEN..].to_vec();
        rl.open(&header, hdr, &mut body)
    }

    #[test]
    fn padding_counts_toward_the_record_limit() {
        let (rec, hdr) = record(100, 16384 - 100);
        assert_eq!(
            open(&rec, &hdr).unwrap().1,
            0..100,
            "2^14 + 1 bytes in all is fine"
        );
        let (rec, hdr) = record(100, 16384 - 99);
        let err = open(&rec, &hdr).unwrap_err();
        assert_eq!(err.alert(), Some(AlertDescription::RECORD_OVERFLOW));
    }
}
