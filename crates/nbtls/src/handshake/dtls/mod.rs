//! The DTLS flight layer (RFC 6347 §4.2): handshake messages with 12-byte
//! headers, fragmented to the MTU and reassembled, sent in flights that are
//! retransmitted on a timer the caller drives.

pub mod cookie;
pub mod flight;
pub mod reassembly;

use crate::codec::{put_u16, put_u24, HandshakeType};

/// Handshake header length in DTLS: type, length, message_seq,
/// fragment_offset, fragment_length.
pub const DTLS_HS_HEADER_LEN: usize = 12;

/// The DTLS form of a TLS-framed handshake message (4-byte header): the
/// 12-byte header of an unfragmented message with `seq`. This is also what
/// the transcript hashes (§4.2.6).
pub fn dtls_message(tls_msg: &[u8], seq: u16) -> Vec<u8> {
    let body = tls_msg.get(4..).unwrap_or(&[]);
    let mut out = Vec::with_capacity(DTLS_HS_HEADER_LEN + body.len());
    out.push(tls_msg.first().copied().unwrap_or(0));
    put_u24(&mut out, body.len() as u32);
    put_u16(&mut out, seq);
    put_u24(&mut out, 0);
    put_u24(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// A fragment's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub typ: HandshakeType,
    pub len: usize,
    pub seq: u16,
    pub offset: usize,
    pub frag_len: usize,
}

impl FragmentHeader {
    /// Parses a fragment header; `None` if the bytes cannot be one.
    pub fn parse(b: &[u8]) -> Option<(FragmentHeader, &[u8])> {
        let h = b.get(..DTLS_HS_HEADER_LEN)?;
        let u24 = |i: usize| {
            (usize::from(h[i]) << 16) | (usize::from(h[i + 1]) << 8) | usize::from(h[i + 2])
        };
        let f = FragmentHeader {
            typ: HandshakeType(h[0]),
            len: u24(1),
            seq: u16::from_be_bytes([h[4], h[5]]),
            offset: u24(6),
            frag_len: u24(9),
        };
        let data = b.get(DTLS_HS_HEADER_LEN..DTLS_HS_HEADER_LEN + f.frag_len)?;
        if f.offset.checked_add(f.frag_len)? > f.len {
            return None;
        }
        Some((f, data))
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.typ.0);
        put_u24(out, self.len as u32);
        put_u16(out, self.seq);
        put_u24(out, self.offset as u32);
        put_u24(out, self.frag_len as u32);
    }
}

/// A DTLS connection's handshake transport state, kept in the shared
/// handshake core so the TLS 1.2 machines run unchanged over it.
#[derive(Default)]
pub struct DtlsCore {
    pub records: crate::record::dtls::DtlsRecordLayer,
    pub reasm: reassembly::Reassembler,
    /// message_seq of our next handshake message.
    pub send_seq: u16,
    /// Messages queued since the last flight was sent.
    pub pending: Vec<flight::FlightItem>,
    /// The queued messages are a stateless reply (HelloVerifyRequest):
    /// sent once, never retransmitted.
    pub stateless: bool,
    /// The client's cookie to echo (from a HelloVerifyRequest).
    pub cookie: Option<Vec<u8>>,
    /// HelloVerifyRequests answered so far (bounded).
    pub verify_requests: u32,
    /// Server: the peer's identity for cookies (its address).
    pub client_id: Vec<u8>,
}
