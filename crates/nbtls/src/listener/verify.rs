//! The stateless ClientHello check (`gnutls_dtls_cookie_send` / `_verify`):
//! one datagram in, a verdict out, and no per-client state kept.

use crate::codec::{ClientHello, ContentType, HandshakeType, ProtocolVersion, Reader};
use crate::config::ServerConfig;
use crate::handshake::dtls::cookie::{challenge, hello_verify_message};
use crate::handshake::dtls::{dtls_message, FragmentHeader};
use crate::record::dtls::{DtlsHeader, DTLS_HEADER_LEN};

/// Where a handshake continues after a stateless cookie exchange
/// (`gnutls_dtls_prestate_set`): the verified ClientHello's record and
/// message sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prestate {
    record_seq: u64,
    message_seq: u16,
    random: [u8; 32],
}

impl Prestate {
    /// The ClientHello's record sequence number; the server's records
    /// continue from it, so none repeats a HelloVerifyRequest's.
    pub fn record_seq(&self) -> u64 {
        self.record_seq
    }

    /// The ClientHello's message_seq (1 after a HelloVerifyRequest); the
    /// ServerHello carries the same.
    pub fn message_seq(&self) -> u16 {
        self.message_seq
    }

    /// The ClientHello's random: a retransmission repeats it, a restarted
    /// client does not.
    pub fn client_random(&self) -> &[u8; 32] {
        &self.random
    }
}

/// Why a datagram was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not an epoch-0 handshake record starting with a ClientHello.
    NotClientHello,
    /// A ClientHello split over several records or datagrams: one datagram
    /// cannot be verified without keeping state, so it is dropped (a client
    /// must fit its ClientHello in one datagram; see the module docs).
    Fragmented,
    /// Not a parsable DTLS ClientHello.
    Malformed,
}

/// What to do with a datagram from an unknown peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HelloCheck {
    /// No valid cookie: send these bytes (one datagram holding a
    /// HelloVerifyRequest) back to the peer and keep nothing.
    SendHelloVerify(Vec<u8>),
    /// The cookie verifies (or the exchange is off): start a handshake with
    /// [`Prestate`] and this datagram.
    Accept(Prestate),
    /// Not for a new handshake; no answer.
    Drop(DropReason),
}

/// Checks the first record of `datagram` from `client_id` (the peer's
/// address bytes) against `config`'s cookie secret, allocating nothing but
/// the reply. RFC 6347 §4.2.1: the HelloVerifyRequest echoes the
/// ClientHello's record sequence number (and its message_seq, so a client
/// challenged again after a stale cookie sees a new message).
pub fn verify_hello(config: &ServerConfig, client_id: &[u8], datagram: &[u8]) -> HelloCheck {
    let Some(hdr) = DtlsHeader::parse(datagram) else {
        return HelloCheck::Drop(DropReason::Malformed);
    };
    let Some(body) = datagram.get(DTLS_HEADER_LEN..DTLS_HEADER_LEN + hdr.len) else {
        return HelloCheck::Drop(DropReason::Malformed);
    };
    if hdr.epoch != 0 || hdr.typ != ContentType::HANDSHAKE {
        return HelloCheck::Drop(DropReason::NotClientHello);
    }
    let Some((frag, data)) = FragmentHeader::parse(body) else {
        return HelloCheck::Drop(DropReason::Malformed);
    };
    if frag.typ != HandshakeType::CLIENT_HELLO {
        return HelloCheck::Drop(DropReason::NotClientHello);
    }
    if frag.offset != 0 || frag.frag_len != frag.len {
        return HelloCheck::Drop(DropReason::Fragmented);
    }
    let mut r = Reader::new(data);
    let hello = match ClientHello::read_body(&mut r, true) {
        Ok(h) if r.finish("trailing bytes in ClientHello").is_ok() => h,
        _ => return HelloCheck::Drop(DropReason::Malformed),
    };
    match challenge(config, client_id, &hello) {
        Some(cookie) => {
            let msg = dtls_message(&hello_verify_message(cookie), frag.seq);
            let mut out = Vec::with_capacity(DTLS_HEADER_LEN + msg.len());
            DtlsHeader {
                typ: ContentType::HANDSHAKE,
                version: ProtocolVersion::DTLS1_2,
                epoch: 0,
                seq: hdr.seq,
                len: msg.len(),
            }
            .encode(&mut out);
            out.extend_from_slice(&msg);
            HelloCheck::SendHelloVerify(out)
        }
        None => HelloCheck::Accept(Prestate {
            record_seq: hdr.seq,
            message_seq: frag.seq,
            random: hello.random,
        }),
    }
}

/// Whether `datagram` starts with an epoch-0 handshake record holding (the
/// start of) a ClientHello: a new handshake, not traffic of a session.
pub(crate) fn is_client_hello(datagram: &[u8]) -> bool {
    datagram.len() > DTLS_HEADER_LEN
        && datagram[0] == ContentType::HANDSHAKE.0
        && datagram[3..5] == [0, 0]
        && datagram[DTLS_HEADER_LEN] == HandshakeType::CLIENT_HELLO.0
}
