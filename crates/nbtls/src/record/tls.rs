//! TLS 1.3 record protection (RFC 8446 §5): framing, in-place AEAD with the
//! per-record nonce, the inner content type and padding.

use crate::codec::{AlertDescription, ContentType, ProtocolVersion};
use crate::crypto::{AeadAlg, RecordKey};
use crate::error::{Error, Result};

pub const HEADER_LEN: usize = 5;
/// Largest plaintext fragment (2^14).
pub const MAX_PLAINTEXT: usize = 16384;
/// Largest TLSCiphertext body accepted (2^14 + 256, RFC 8446 §5.2).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;

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
            return Err(Error::protocol(AlertDescription::RECORD_OVERFLOW, "record too long"));
        }
        Ok(RecordHeader { typ, version, len })
    }
}

/// One direction's protection state.
struct Direction {
    key: RecordKey,
    seq: u64,
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
        self.read = Some(Direction { key, seq: 0 });
    }

    pub fn set_write_key(&mut self, key: RecordKey) {
        self.write = Some(Direction { key, seq: 0 });
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

    /// Records opened under the current read key.
    pub fn read_seq(&self) -> u64 {
        self.read.as_ref().map_or(0, |d| d.seq)
    }

    pub fn write_alg(&self) -> Option<AeadAlg> {
        self.write.as_ref().map(|d| d.key.alg())
    }

    /// Bytes a record adds to `n` bytes of plaintext when sealed now.
    pub fn overhead(&self) -> usize {
        HEADER_LEN + if self.write.is_some() { 1 + AeadAlg::TAG_LEN } else { 0 }
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
    /// header bytes, `body` its body. Returns the real content type and the
    /// plaintext length (the plaintext is `body[..len]`).
    pub fn open(
        &mut self,
        header: &[u8; HEADER_LEN],
        hdr: &RecordHeader,
        body: &mut [u8],
    ) -> Result<(ContentType, usize)> {
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
                return Ok((hdr.typ, body.len()));
            }
        };
        if hdr.typ != ContentType::APPLICATION_DATA {
            return Err(Error::unexpected("unprotected record after keys were set"));
        }
        if body.len() < AeadAlg::TAG_LEN + 1 {
            return Err(Error::protocol(AlertDescription::BAD_RECORD_MAC, "record too short"));
        }
        let n = dir.key.open(dir.seq, header, body).map_err(|()| {
            Error::protocol(AlertDescription::BAD_RECORD_MAC, "record authentication failed")
        })?;
        dir.seq += 1;
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
        Ok((typ, pos))
    }
}
