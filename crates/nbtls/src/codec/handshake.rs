//! Handshake messages: TLS 1.3 (RFC 8446 §4), then TLS 1.2 / DTLS 1.2
//! (RFC 5246, 8422, 5077, 6347).
//!
//! Each message implements [`Codec`] for its BODY (no header) and
//! [`HandshakeMessage`] for the framed form: `encode_message` writes the
//! 4-byte TLS header (type ‖ u24 length) followed by the body, and
//! `from_message` parses exactly one framed message. DTLS's 12-byte header
//! and fragmentation belong to the flight layer, which frames the body
//! itself. Every message type also has an inherent `encode_message`, so no
//! trait import is needed to call it.
//!
//! A body parser expects a reader over exactly one body: ClientHello and
//! ServerHello treat "no bytes after the compression method(s)" as "no
//! extensions" (RFC 5246 §7.4.1.2), so they consume the reader to its end.
//! Encoding omits an empty extensions block for the same reason; state
//! machines must hash the bytes they received, never a re-encoding.
//!
//! Finished, EndOfEarlyData and ServerHelloDone have trivial bodies: the
//! state machines handle them as raw bytes.

use super::extensions::{
    check_raw_extensions, put_authorities, put_extensions, put_list, read_authorities, read_bytes,
    read_extension_block, read_list, CertReqExtension, ClientExtension, KeyShareEntry, OfferedPsks,
    ServerExtension, TicketExtension,
};
use super::reader::{put_prefixed, put_u32, put_u8, put_vec, Codec, Reader};
use super::types::{
    CipherSuite, ExtensionType, HandshakeType, KeyUpdateRequest, NamedGroup, ProtocolVersion,
    PskKeyExchangeMode, SignatureScheme,
};
use crate::error::{Error, Result};

pub const HANDSHAKE_HEADER_LEN: usize = 4;

/// SHA-256("HelloRetryRequest"), the random of a HelloRetryRequest
/// (RFC 8446 §4.1.3).
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Last 8 bytes of ServerHello.random from a TLS 1.3 server negotiating
/// TLS 1.2 (RFC 8446 §4.1.3): "DOWNGRD" ‖ 01.
pub const DOWNGRADE_TLS12: [u8; 8] = [0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, 0x01];
/// The same for TLS 1.1 or below: "DOWNGRD" ‖ 00.
pub const DOWNGRADE_TLS11: [u8; 8] = [0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, 0x00];

/// Writes type ‖ u24 length ‖ body produced by `body`.
pub fn put_handshake(out: &mut Vec<u8>, typ: HandshakeType, body: impl FnOnce(&mut Vec<u8>)) {
    typ.encode(out);
    put_prefixed(out, 3, body);
}

/// Reads a handshake header: (type, body length). The length is not checked
/// against what remains: framing and reassembly across records is done
/// elsewhere.
pub fn read_handshake_header(r: &mut Reader<'_>) -> Result<(HandshakeType, usize)> {
    let typ = HandshakeType::read(r)?;
    let len = r.u24("handshake length")? as usize;
    Ok((typ, len))
}

/// A handshake message body with its type.
pub trait HandshakeMessage: Codec {
    const TYPE: HandshakeType;

    /// Writes the 4-byte header and the body.
    fn encode_message(&self, out: &mut Vec<u8>) {
        put_handshake(out, Self::TYPE, |o| self.encode(o));
    }

    /// The framed message as a new buffer.
    fn to_message_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_message(&mut out);
        out
    }

    /// Parses exactly one framed message: a different type is an
    /// unexpected_message, a length that does not match the bytes given is a
    /// decode_error.
    fn from_message(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let (typ, len) = read_handshake_header(&mut r)?;
        if typ != Self::TYPE {
            return Err(Error::unexpected("unexpected handshake message type"));
        }
        if len != r.remaining() {
            return Err(Error::decode("handshake length mismatch"));
        }
        Self::from_bytes(r.rest())
    }
}

macro_rules! handshake_message {
    ($t:ty, $typ:expr) => {
        impl HandshakeMessage for $t {
            const TYPE: HandshakeType = $typ;
        }

        impl $t {
            /// Writes the 4-byte handshake header and the body.
            pub fn encode_message(&self, out: &mut Vec<u8>) {
                HandshakeMessage::encode_message(self, out)
            }
        }
    };
}

fn read_random(r: &mut Reader<'_>) -> Result<[u8; 32]> {
    let mut random = [0u8; 32];
    random.copy_from_slice(r.take(32, "random")?);
    Ok(random)
}

/// legacy_session_id `<0..32>` (RFC 8446 §4.1.2).
fn read_session_id(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let id = r.vec_u8("session_id")?;
    if id.len() > 32 {
        return Err(Error::decode("session_id longer than 32 bytes"));
    }
    Ok(id.to_vec())
}

/// Writes an extensions block unless it is empty (see the module docs).
fn put_optional_extensions<T: Codec>(out: &mut Vec<u8>, exts: &[T]) {
    if !exts.is_empty() {
        put_extensions(out, exts);
    }
}

// ---------------------------------------------------------------------------
// ClientHello
// ---------------------------------------------------------------------------

/// ClientHello (RFC 8446 §4.1.2; DTLS adds the cookie, RFC 6347 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: ProtocolVersion,
    pub random: [u8; 32],
    /// At most 32 bytes (decode_error).
    pub session_id: Vec<u8>,
    /// DTLS only: present iff the hello was read/written with `dtls = true`.
    pub cookie: Option<Vec<u8>>,
    /// Non-empty, even wire length (decode_error).
    pub cipher_suites: Vec<CipherSuite>,
    /// At least one byte (decode_error); "exactly [0] in TLS 1.3" is the
    /// state machine's rule.
    pub compression_methods: Vec<u8>,
    /// No duplicate types, pre_shared_key last (illegal_parameter).
    pub extensions: Vec<ClientExtension>,
}

impl ClientHello {
    /// Reads a ClientHello body; the reader must hold exactly the body.
    pub fn read_body(r: &mut Reader<'_>, dtls: bool) -> Result<Self> {
        let legacy_version = ProtocolVersion::read(r)?;
        let random = read_random(r)?;
        let session_id = read_session_id(r)?;
        let cookie = if dtls {
            Some(read_bytes(r, 1, 0, "cookie")?)
        } else {
            None
        };
        let cipher_suites = read_list(r, 2, 2, "cipher_suites", CipherSuite::read)?;
        let compression_methods = read_bytes(r, 1, 1, "compression_methods")?;
        let extensions = if r.is_empty() {
            Vec::new()
        } else {
            read_extension_block(r, 0, |typ, body| {
                // pre_shared_key is TLS 1.3's; a hello that ends up in TLS 1.2
                // must not fail on it (a 1.2 client offering both tickets sends
                // 12-byte "binders"), so a malformed one is kept raw here and
                // `check_pre_shared_key` applies the strict syntax in TLS 1.3.
                match ClientExtension::read_body(typ, body) {
                    Err(_) if typ == ExtensionType::PRE_SHARED_KEY => {
                        Ok(ClientExtension::Unknown(typ, body.to_vec()))
                    }
                    other => other,
                }
            })?
        };
        r.finish("bytes after ClientHello extensions")?;
        // RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
        let psk_at = extensions
            .iter()
            .position(|e| e.ext_type() == ExtensionType::PRE_SHARED_KEY);
        if let Some(at) = psk_at {
            if at + 1 != extensions.len() {
                return Err(Error::illegal("pre_shared_key is not the last extension"));
            }
        }
        Ok(ClientHello {
            legacy_version,
            random,
            session_id,
            cookie,
            cipher_suites,
            compression_methods,
            extensions,
        })
    }

    /// Writes the body; the cookie iff `Some`, the extensions block iff
    /// non-empty.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        self.encode_up_to_extensions(out);
        put_optional_extensions(out, &self.extensions);
    }

    fn encode_up_to_extensions(&self, out: &mut Vec<u8>) {
        self.legacy_version.encode(out);
        out.extend_from_slice(&self.random);
        put_vec(out, 1, &self.session_id);
        if let Some(cookie) = &self.cookie {
            put_vec(out, 1, cookie);
        }
        put_list(out, 2, &self.cipher_suites);
        put_vec(out, 1, &self.compression_methods);
    }

    pub fn find(&self, typ: ExtensionType) -> Option<&ClientExtension> {
        self.extensions.iter().find(|e| e.ext_type() == typ)
    }

    pub fn server_name(&self) -> Option<&str> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::ServerName(h) => Some(h.as_str()),
            _ => None,
        })
    }

    pub fn supported_versions(&self) -> Option<&[ProtocolVersion]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::SupportedVersions(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn supported_groups(&self) -> Option<&[NamedGroup]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::SupportedGroups(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn key_shares(&self) -> Option<&[KeyShareEntry]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::KeyShare(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn signature_algorithms(&self) -> Option<&[SignatureScheme]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::SignatureAlgorithms(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn signature_algorithms_cert(&self) -> Option<&[SignatureScheme]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::SignatureAlgorithmsCert(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn alpn(&self) -> Option<&[Vec<u8>]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::Alpn(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn psk_modes(&self) -> Option<&[PskKeyExchangeMode]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::PskKeyExchangeModes(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn pre_shared_key(&self) -> Option<&OfferedPsks> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::PreSharedKey(p) => Some(p),
            _ => None,
        })
    }

    /// TLS 1.3 only: fails as RFC 8446 §4.2.11's syntax demands when the
    /// pre_shared_key extension was kept raw because it did not parse.
    pub fn check_pre_shared_key(&self) -> Result<()> {
        match self.find(ExtensionType::PRE_SHARED_KEY) {
            Some(ClientExtension::Unknown(typ, body)) => {
                ClientExtension::read_body(*typ, body).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// The cookie extension (TLS 1.3 HelloRetryRequest cookie), not the
    /// DTLS 1.2 `cookie` field.
    pub fn cookie_ext(&self) -> Option<&[u8]> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::Cookie(c) => Some(c.as_slice()),
            _ => None,
        })
    }

    pub fn record_size_limit(&self) -> Option<u16> {
        self.extensions.iter().find_map(|e| match e {
            ClientExtension::RecordSizeLimit(v) => Some(*v),
            _ => None,
        })
    }

    pub fn early_data(&self) -> bool {
        self.extensions
            .iter()
            .any(|e| matches!(e, ClientExtension::EarlyData))
    }

    /// Length of the encoded handshake message (incl. the 4-byte header) up
    /// to but not including the binders list — the "truncated ClientHello"
    /// of RFC 8446 §4.2.11.2. None if no pre_shared_key. Computed from the
    /// fields, so it holds wherever the extension sits (a parsed hello always
    /// has it last), and does not depend on the binder values.
    pub fn binders_offset(&self) -> Option<usize> {
        let psk = self.pre_shared_key()?;
        let mut prefix = Vec::new();
        self.encode_up_to_extensions(&mut prefix);
        let mut n = HANDSHAKE_HEADER_LEN + prefix.len() + 2; // + extensions length
        for ext in &self.extensions {
            if let ClientExtension::PreSharedKey(_) = ext {
                break;
            }
            prefix.clear();
            ext.encode(&mut prefix);
            n += prefix.len();
        }
        prefix.clear();
        psk.encode_identities(&mut prefix);
        Some(n + 4 + prefix.len()) // type, length, identities
    }

    /// Replaces the binders (same count and lengths) after they were
    /// computed over the truncated hello. No effect without pre_shared_key.
    pub fn set_binders(&mut self, binders: Vec<Vec<u8>>) {
        for ext in &mut self.extensions {
            if let ClientExtension::PreSharedKey(psk) = ext {
                psk.binders = binders;
                return;
            }
        }
    }
}

/// The TLS form (`dtls = false`); use [`ClientHello::read_body`] for DTLS.
impl Codec for ClientHello {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_body(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Self::read_body(r, false)
    }
}

handshake_message!(ClientHello, HandshakeType::CLIENT_HELLO);

// ---------------------------------------------------------------------------
// ServerHello / HelloRetryRequest
// ---------------------------------------------------------------------------

/// ServerHello and HelloRetryRequest (same wire struct; an HRR has
/// `random == HRR_RANDOM`, and its key_share is a bare NamedGroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: ProtocolVersion,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suite: CipherSuite,
    pub compression_method: u8,
    pub extensions: Vec<ServerExtension>,
}

impl ServerHello {
    pub fn is_hrr(&self) -> bool {
        self.random == HRR_RANDOM
    }

    /// The version a downgrade sentinel in the random announces
    /// (RFC 8446 §4.1.3): `TLS1_2` for [`DOWNGRADE_TLS12`], `TLS1_1` for
    /// [`DOWNGRADE_TLS11`].
    pub fn downgrade_sentinel(&self) -> Option<ProtocolVersion> {
        if self.random.ends_with(&DOWNGRADE_TLS12) {
            Some(ProtocolVersion::TLS1_2)
        } else if self.random.ends_with(&DOWNGRADE_TLS11) {
            Some(ProtocolVersion::TLS1_1)
        } else {
            None
        }
    }

    pub fn find(&self, t: ExtensionType) -> Option<&ServerExtension> {
        self.extensions.iter().find(|e| e.ext_type() == t)
    }

    pub fn supported_version(&self) -> Option<ProtocolVersion> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::SupportedVersion(v) => Some(*v),
            _ => None,
        })
    }

    pub fn key_share(&self) -> Option<&KeyShareEntry> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::KeyShare(k) => Some(k),
            _ => None,
        })
    }

    pub fn hrr_group(&self) -> Option<NamedGroup> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::HrrKeyShare(g) => Some(*g),
            _ => None,
        })
    }

    pub fn cookie(&self) -> Option<&[u8]> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::Cookie(c) => Some(c.as_slice()),
            _ => None,
        })
    }

    pub fn selected_psk(&self) -> Option<u16> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::PreSharedKey(i) => Some(*i),
            _ => None,
        })
    }
}

/// The reader must hold exactly the body (extensions are optional in TLS 1.2).
impl Codec for ServerHello {
    fn encode(&self, out: &mut Vec<u8>) {
        self.legacy_version.encode(out);
        out.extend_from_slice(&self.random);
        put_vec(out, 1, &self.session_id);
        self.cipher_suite.encode(out);
        put_u8(out, self.compression_method);
        put_optional_extensions(out, &self.extensions);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let legacy_version = ProtocolVersion::read(r)?;
        let random = read_random(r)?;
        let session_id = read_session_id(r)?;
        let cipher_suite = CipherSuite::read(r)?;
        let compression_method = r.u8("compression_method")?;
        // The key_share layout depends on whether this is an HRR.
        let hrr = random == HRR_RANDOM;
        let extensions = if r.is_empty() {
            Vec::new()
        } else {
            read_extension_block(r, 0, |t, b| ServerExtension::read_body(t, b, hrr))?
        };
        r.finish("bytes after ServerHello extensions")?;
        Ok(ServerHello {
            legacy_version,
            random,
            session_id,
            cipher_suite,
            compression_method,
            extensions,
        })
    }
}

handshake_message!(ServerHello, HandshakeType::SERVER_HELLO);

// ---------------------------------------------------------------------------
// EncryptedExtensions
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedExtensions {
    pub extensions: Vec<ServerExtension>,
}

impl EncryptedExtensions {
    pub fn alpn(&self) -> Option<&[u8]> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::Alpn(p) => Some(p.as_slice()),
            _ => None,
        })
    }

    pub fn record_size_limit(&self) -> Option<u16> {
        self.extensions.iter().find_map(|e| match e {
            ServerExtension::RecordSizeLimit(v) => Some(*v),
            _ => None,
        })
    }

    pub fn early_data(&self) -> bool {
        self.extensions
            .iter()
            .any(|e| matches!(e, ServerExtension::EarlyData))
    }

    pub fn server_name_ack(&self) -> bool {
        self.extensions
            .iter()
            .any(|e| matches!(e, ServerExtension::ServerNameAck))
    }

    pub fn find(&self, t: ExtensionType) -> Option<&ServerExtension> {
        self.extensions.iter().find(|e| e.ext_type() == t)
    }
}

impl Codec for EncryptedExtensions {
    fn encode(&self, out: &mut Vec<u8>) {
        put_extensions(out, &self.extensions);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let extensions =
            read_extension_block(r, 0, |t, b| ServerExtension::read_body(t, b, false))?;
        Ok(EncryptedExtensions { extensions })
    }
}

handshake_message!(EncryptedExtensions, HandshakeType::ENCRYPTED_EXTENSIONS);

// ---------------------------------------------------------------------------
// Certificate (TLS 1.3)
// ---------------------------------------------------------------------------

/// CertificateEntry (RFC 8446 §4.4.2) for X.509: `cert_data<1..2^24-1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEntry {
    pub cert: Vec<u8>,
    /// The raw extensions block, body only (without its 2-byte length).
    /// Checked to be well-formed and free of duplicate types.
    pub extensions: Vec<u8>,
}

impl Codec for CertificateEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        put_vec(out, 3, &self.cert);
        put_vec(out, 2, &self.extensions);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let cert = read_bytes(r, 3, 1, "cert_data")?;
        let extensions = r.vec_u16("certificate entry extensions")?;
        check_raw_extensions(extensions)?;
        Ok(CertificateEntry {
            cert,
            extensions: extensions.to_vec(),
        })
    }
}

/// Certificate (RFC 8446 §4.4.2); an empty list is a client without a
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate13 {
    pub context: Vec<u8>,
    pub entries: Vec<CertificateEntry>,
}

impl Codec for Certificate13 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_vec(out, 1, &self.context);
        put_list(out, 3, &self.entries);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let context = read_bytes(r, 1, 0, "certificate_request_context")?;
        let entries = read_list(r, 3, 0, "certificate_list", CertificateEntry::read)?;
        Ok(Certificate13 { context, entries })
    }
}

handshake_message!(Certificate13, HandshakeType::CERTIFICATE);

// ---------------------------------------------------------------------------
// CertificateRequest (TLS 1.3)
// ---------------------------------------------------------------------------

/// CertificateRequest (RFC 8446 §4.3.2): extensions `<2..2^16-1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest13 {
    pub context: Vec<u8>,
    pub extensions: Vec<CertReqExtension>,
}

impl CertificateRequest13 {
    /// Absent → the state machine sends missing_extension.
    pub fn signature_algorithms(&self) -> Option<&[SignatureScheme]> {
        self.extensions.iter().find_map(|e| match e {
            CertReqExtension::SignatureAlgorithms(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn signature_algorithms_cert(&self) -> Option<&[SignatureScheme]> {
        self.extensions.iter().find_map(|e| match e {
            CertReqExtension::SignatureAlgorithmsCert(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn certificate_authorities(&self) -> Option<&[Vec<u8>]> {
        self.extensions.iter().find_map(|e| match e {
            CertReqExtension::CertificateAuthorities(v) => Some(v.as_slice()),
            _ => None,
        })
    }
}

impl Codec for CertificateRequest13 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_vec(out, 1, &self.context);
        put_extensions(out, &self.extensions);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let context = read_bytes(r, 1, 0, "certificate_request_context")?;
        let extensions = read_extension_block(r, 2, CertReqExtension::read_body)?;
        Ok(CertificateRequest13 {
            context,
            extensions,
        })
    }
}

handshake_message!(CertificateRequest13, HandshakeType::CERTIFICATE_REQUEST);

// ---------------------------------------------------------------------------
// CertificateVerify
// ---------------------------------------------------------------------------

/// CertificateVerify (RFC 8446 §4.4.3); also the TLS 1.2 digitally-signed
/// CertificateVerify, which has the same layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateVerify {
    pub scheme: SignatureScheme,
    pub signature: Vec<u8>,
}

impl Codec for CertificateVerify {
    fn encode(&self, out: &mut Vec<u8>) {
        self.scheme.encode(out);
        put_vec(out, 2, &self.signature);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let scheme = SignatureScheme::read(r)?;
        let signature = read_bytes(r, 2, 0, "signature")?;
        Ok(CertificateVerify { scheme, signature })
    }
}

handshake_message!(CertificateVerify, HandshakeType::CERTIFICATE_VERIFY);

// ---------------------------------------------------------------------------
// NewSessionTicket (TLS 1.3)
// ---------------------------------------------------------------------------

/// NewSessionTicket (RFC 8446 §4.6.1): nonce `<0..255>`, ticket
/// `<1..2^16-1>`, extensions `<0..2^16-2>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSessionTicket13 {
    pub lifetime: u32,
    pub age_add: u32,
    pub nonce: Vec<u8>,
    pub ticket: Vec<u8>,
    pub extensions: Vec<TicketExtension>,
}

impl NewSessionTicket13 {
    pub fn max_early_data(&self) -> Option<u32> {
        self.extensions.iter().find_map(|e| match e {
            TicketExtension::EarlyData(n) => Some(*n),
            _ => None,
        })
    }
}

impl Codec for NewSessionTicket13 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.lifetime);
        put_u32(out, self.age_add);
        put_vec(out, 1, &self.nonce);
        put_vec(out, 2, &self.ticket);
        put_extensions(out, &self.extensions);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let lifetime = r.u32("ticket_lifetime")?;
        let age_add = r.u32("ticket_age_add")?;
        let nonce = read_bytes(r, 1, 0, "ticket_nonce")?;
        let ticket = read_bytes(r, 2, 1, "ticket")?;
        let extensions = read_extension_block(r, 0, TicketExtension::read_body)?;
        Ok(NewSessionTicket13 {
            lifetime,
            age_add,
            nonce,
            ticket,
            extensions,
        })
    }
}

handshake_message!(NewSessionTicket13, HandshakeType::NEW_SESSION_TICKET);

// ---------------------------------------------------------------------------
// KeyUpdate
// ---------------------------------------------------------------------------

/// KeyUpdate (RFC 8446 §4.6.3): a value other than 0 or 1 is an
/// illegal_parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUpdate(pub KeyUpdateRequest);

impl Codec for KeyUpdate {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let req = KeyUpdateRequest::read(r)?;
        if req != KeyUpdateRequest::UPDATE_NOT_REQUESTED
            && req != KeyUpdateRequest::UPDATE_REQUESTED
        {
            return Err(Error::illegal("invalid KeyUpdateRequest"));
        }
        Ok(KeyUpdate(req))
    }
}

handshake_message!(KeyUpdate, HandshakeType::KEY_UPDATE);

// ---------------------------------------------------------------------------
// TLS 1.2 / DTLS 1.2
// ---------------------------------------------------------------------------

/// ECCurveType named_curve (RFC 8422 §5.4), the only one accepted.
const NAMED_CURVE: u8 = 3;

/// ServerKeyExchange for ECDHE (RFC 8422 §5.4, TLS 1.2 signature form):
/// named_curve params ‖ SignatureAndHashAlgorithm ‖ signature. Another
/// curve_type is an illegal_parameter; an empty point is a decode_error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKeyExchangeEcdhe {
    pub group: NamedGroup,
    pub public: Vec<u8>,
    pub scheme: SignatureScheme,
    pub signature: Vec<u8>,
}

impl ServerKeyExchangeEcdhe {
    /// The ServerECDHParams bytes (curve_type ‖ group ‖ u8-length point).
    pub fn params(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_params(&mut out);
        out
    }

    /// What the signature covers: client_random ‖ server_random ‖ params
    /// (RFC 8422 §5.4). The encoding is canonical, so this equals the
    /// received bytes.
    pub fn signed_message(&self, client_random: &[u8; 32], server_random: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 4 + self.public.len());
        out.extend_from_slice(client_random);
        out.extend_from_slice(server_random);
        self.encode_params(&mut out);
        out
    }

    fn encode_params(&self, out: &mut Vec<u8>) {
        put_u8(out, NAMED_CURVE);
        self.group.encode(out);
        put_vec(out, 1, &self.public);
    }
}

impl Codec for ServerKeyExchangeEcdhe {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_params(out);
        self.scheme.encode(out);
        put_vec(out, 2, &self.signature);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        if r.u8("curve_type")? != NAMED_CURVE {
            return Err(Error::illegal("ECDHE params are not a named curve"));
        }
        let group = NamedGroup::read(r)?;
        let public = read_bytes(r, 1, 1, "ECDHE public point")?;
        let scheme = SignatureScheme::read(r)?;
        let signature = read_bytes(r, 2, 0, "signature")?;
        Ok(ServerKeyExchangeEcdhe {
            group,
            public,
            scheme,
            signature,
        })
    }
}

handshake_message!(ServerKeyExchangeEcdhe, HandshakeType::SERVER_KEY_EXCHANGE);

/// Certificate (RFC 5246 §7.4.2): a u24 list of u24-length certificates,
/// each non-empty; the list may be empty (a client without a certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate12 {
    pub certs: Vec<Vec<u8>>,
}

impl Codec for Certificate12 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_prefixed(out, 3, |o| {
            for c in &self.certs {
                put_vec(o, 3, c);
            }
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let certs = read_list(r, 3, 0, "certificate_list", |r| {
            read_bytes(r, 3, 1, "certificate")
        })?;
        Ok(Certificate12 { certs })
    }
}

handshake_message!(Certificate12, HandshakeType::CERTIFICATE);

/// CertificateRequest (RFC 5246 §7.4.4): certificate_types `<1..2^8-1>`,
/// supported_signature_algorithms `<2..2^16-2>`, certificate_authorities
/// `<0..2^16-1>` of non-empty DER names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest12 {
    pub cert_types: Vec<u8>,
    pub schemes: Vec<SignatureScheme>,
    pub authorities: Vec<Vec<u8>>,
}

impl Codec for CertificateRequest12 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_vec(out, 1, &self.cert_types);
        put_list(out, 2, &self.schemes);
        put_authorities(out, &self.authorities);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let cert_types = read_bytes(r, 1, 1, "certificate_types")?;
        let schemes = read_list(
            r,
            2,
            2,
            "supported_signature_algorithms",
            SignatureScheme::read,
        )?;
        let authorities = read_authorities(r, 0)?;
        Ok(CertificateRequest12 {
            cert_types,
            schemes,
            authorities,
        })
    }
}

handshake_message!(CertificateRequest12, HandshakeType::CERTIFICATE_REQUEST);

/// ClientKeyExchange for ECDHE (RFC 8422 §5.7): `point<1..2^8-1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeyExchangeEcdhe {
    pub public: Vec<u8>,
}

impl Codec for ClientKeyExchangeEcdhe {
    fn encode(&self, out: &mut Vec<u8>) {
        put_vec(out, 1, &self.public);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ClientKeyExchangeEcdhe {
            public: read_bytes(r, 1, 1, "ECDHE public point")?,
        })
    }
}

handshake_message!(ClientKeyExchangeEcdhe, HandshakeType::CLIENT_KEY_EXCHANGE);

/// NewSessionTicket (RFC 5077 §3.3): an empty ticket is allowed (the server
/// changed its mind after acknowledging the extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSessionTicket12 {
    pub lifetime_hint: u32,
    pub ticket: Vec<u8>,
}

impl Codec for NewSessionTicket12 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.lifetime_hint);
        put_vec(out, 2, &self.ticket);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let lifetime_hint = r.u32("ticket_lifetime_hint")?;
        let ticket = read_bytes(r, 2, 0, "ticket")?;
        Ok(NewSessionTicket12 {
            lifetime_hint,
            ticket,
        })
    }
}

handshake_message!(NewSessionTicket12, HandshakeType::NEW_SESSION_TICKET);

/// HelloVerifyRequest (RFC 6347 §4.2.1): server_version ‖ `cookie<0..2^8-1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloVerifyRequest {
    pub server_version: ProtocolVersion,
    pub cookie: Vec<u8>,
}

impl Codec for HelloVerifyRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.server_version.encode(out);
        put_vec(out, 1, &self.cookie);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let server_version = ProtocolVersion::read(r)?;
        let cookie = read_bytes(r, 1, 0, "cookie")?;
        Ok(HelloVerifyRequest {
            server_version,
            cookie,
        })
    }
}

handshake_message!(HelloVerifyRequest, HandshakeType::HELLO_VERIFY_REQUEST);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AlertDescription, PskIdentity};
    use std::fmt::Debug;

    // RFC 8448 §3 (simple 1-RTT handshake) and §4 (resumed 0-RTT handshake),
    // handshake messages with their 4-byte headers.
    const CH1: &str = "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef62\
        83024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a\
        00140012001d0017001800190100010101020103010400230000003300260024001d002099381de5\
        60e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d002000\
        1e040305030603020308040805080604010501060102010402050206020202002d00020101001c00\
        024001";
    const SH1: &str = "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac15577\
        2ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b\
        833df1dd69b1b04e751f0f002b00020304";
    const EE1: &str = "080000240022000a00140012001d00170018001901000101010201030104001c00\
        02400100000000";
    const CERT1: &str = "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a86\
        4886f70d01010b0500300e310c300a06035504031303727361301e170d3136303733303031323335\
        395a170d3236303733303031323335395a300e310c300a0603550403130372736130819f300d0609\
        2a864886f70d010101050003818d0030818902818100b4bb498f8279303d980836399b36c6988c0c\
        68de55e1bdb826d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced431209\
        98e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda430846748030530ef0461c8ca9d9\
        efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f0203010001a31a301830\
        090603551d1304023000300b0603551d0f0404030205a0300d06092a864886f70d01010b05000381\
        810085aad2a0e5b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a58c\
        8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102702e608ccae6bec1fc\
        63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0a8b2f759409ba3eac9d91d402dcc0cc8f8\
        961229ac9187b42b4de10000";
    const CV1: &str = "0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145ab3\
        ff52f1fda8477b0b7abc90db78e2d33a5c141a078653fa6bef780c5ea248eeaaa785c4f394cab6d3\
        0bbe8d4859ee511f602957b15411ac027671459e46445c9ea58c181e818e95b8c3fb0bf3278409d3\
        be152a3da5043e063dda65cdf5aea20d53dfacd42f74f3";
    const NST1: &str = "040000c90000001efad6aac502000000b22c035d829359ee5ff7af4ec900000000\
        262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a982\
        117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3664d4e6da4d29e\
        e03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fb\
        f297b5aea617646fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4\
        d3570008002a000400000400";
    /// The resumed ClientHello up to its binders (477 bytes, RFC 8448 §4).
    const CH2_PREFIX: &str =
        "010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d950000\
        06130113031302010001cd0000000b0009000006736572766572ff01000100000a00140012001d00\
        170018001901000101010201030104003300260024001d0020e4ffb68ac05f8d96c99da26698346c\
        6be16482badddafe051a66b4f18d668f0b002a0000002b0003020304000d0020001e040305030603\
        020308040805080604010501060102010402050206020202002d00020101001c0002400100150057\
        00000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000002900dd00b800b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a\
        34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143ef\
        d3ff5dd36d64e861be7fd61d2827db279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc\
        67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac\
        5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb";
    /// Its binders list.
    const CH2_BINDERS: &str =
        "0021203add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d";
    const SH2: &str = "0200005c03033ccfd2dec890222763472ae8136777c9d7358777bb66e91ea51224\
        95f559ea2d00130100003400290002000000330024001d0020121761ee42c333e1b9e77b60dd57c2\
        053cd94512ab47f115e86eff50942cea31002b00020304";
    const EE2: &str = "080000280026000a00140012001d00170018001901000101010201030104001c00\
        02400100000000002a0000";

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        assert_eq!(digits.len() % 2, 0, "odd hex");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn ch2() -> Vec<u8> {
        let mut v = hex(CH2_PREFIX);
        v.extend(hex(CH2_BINDERS));
        v
    }

    fn alert_of<T: Debug>(r: Result<T>) -> AlertDescription {
        r.expect_err("must fail").alert().expect("protocol error")
    }

    const DECODE: AlertDescription = AlertDescription::DECODE_ERROR;
    const ILLEGAL: AlertDescription = AlertDescription::ILLEGAL_PARAMETER;

    /// Parses a framed message and checks that re-encoding gives the same bytes.
    fn exact<T: HandshakeMessage + Debug>(bytes: &[u8]) -> T {
        let msg = T::from_message(bytes).expect("parses");
        assert_eq!(msg.to_message_bytes(), bytes, "{msg:?}");
        msg
    }

    fn round_trip<T: HandshakeMessage + Debug + PartialEq>(msg: &T) {
        let bytes = msg.to_message_bytes();
        assert_eq!(&T::from_message(&bytes).unwrap(), msg);
        assert_eq!(bytes.len(), HANDSHAKE_HEADER_LEN + msg.to_bytes().len());
    }

    #[test]
    fn constants() {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"HelloRetryRequest");
        assert_eq!(d.as_ref(), HRR_RANDOM);
        assert_eq!(&DOWNGRADE_TLS12[..7], b"DOWNGRD");
        assert_eq!(&DOWNGRADE_TLS11[..7], b"DOWNGRD");
    }

    #[test]
    fn header() {
        let mut out = Vec::new();
        put_handshake(&mut out, HandshakeType::FINISHED, |o| {
            o.extend_from_slice(&[7; 3])
        });
        assert_eq!(out, [20, 0, 0, 3, 7, 7, 7]);
        let mut r = Reader::new(&out);
        assert_eq!(
            read_handshake_header(&mut r).unwrap(),
            (HandshakeType::FINISHED, 3)
        );
        assert_eq!(r.remaining(), 3);
        assert_eq!(
            alert_of(read_handshake_header(&mut Reader::new(&[1, 0, 0]))),
            DECODE
        );
    }

    #[test]
    fn rfc8448_client_hello_fields() {
        let bytes = hex(CH1);
        assert_eq!(bytes.len(), 196);
        let ch: ClientHello = exact(&bytes);
        assert_eq!(ch.legacy_version, ProtocolVersion::TLS1_2);
        assert_eq!(ch.random[..4], [0xcb, 0x34, 0xec, 0xb1]);
        assert_eq!(ch.random[28..], [0x02, 0x4d, 0xec, 0xe7]);
        assert!(ch.session_id.is_empty());
        assert_eq!(ch.cookie, None);
        assert_eq!(
            ch.cipher_suites,
            [
                CipherSuite::TLS_AES_128_GCM_SHA256,
                CipherSuite::TLS_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_AES_256_GCM_SHA384
            ]
        );
        assert_eq!(ch.compression_methods, [0]);
        let types: Vec<u16> = ch.extensions.iter().map(|e| e.ext_type().0).collect();
        assert_eq!(types, [0, 0xff01, 10, 35, 51, 43, 13, 45, 28]);
        assert_eq!(ch.server_name(), Some("server"));
        assert_eq!(
            ch.supported_versions(),
            Some(&[ProtocolVersion::TLS1_3][..])
        );
        let groups = ch.supported_groups().unwrap();
        assert_eq!(groups.len(), 9);
        assert_eq!(
            groups[..4],
            [
                NamedGroup::X25519,
                NamedGroup::SECP256R1,
                NamedGroup::SECP384R1,
                NamedGroup::SECP521R1
            ]
        );
        assert_eq!(groups[4], NamedGroup(0x0100)); // ffdhe2048
        let shares = ch.key_shares().unwrap();
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].group, NamedGroup::X25519);
        assert_eq!(
            shares[0].payload,
            hex("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
        );
        let schemes = ch.signature_algorithms().unwrap();
        assert_eq!(schemes.len(), 15);
        assert_eq!(schemes[0], SignatureScheme::ECDSA_SECP256R1_SHA256);
        assert_eq!(schemes[14], SignatureScheme(0x0202));
        assert_eq!(ch.psk_modes(), Some(&[PskKeyExchangeMode::PSK_DHE_KE][..]));
        assert_eq!(ch.record_size_limit(), Some(0x4001));
        assert_eq!(
            ch.find(ExtensionType::RENEGOTIATION_INFO),
            Some(&ClientExtension::RenegotiationInfo(vec![]))
        );
        assert_eq!(
            ch.find(ExtensionType::SESSION_TICKET),
            Some(&ClientExtension::SessionTicket(vec![]))
        );
        assert_eq!(ch.signature_algorithms_cert(), None);
        assert_eq!(ch.alpn(), None);
        assert_eq!(ch.pre_shared_key(), None);
        assert_eq!(ch.cookie_ext(), None);
        assert!(!ch.early_data());
        assert_eq!(ch.binders_offset(), None);
    }

    #[test]
    fn rfc8448_other_messages() {
        let sh: ServerHello = exact(&hex(SH1));
        assert!(!sh.is_hrr());
        assert_eq!(sh.downgrade_sentinel(), None);
        assert_eq!(sh.cipher_suite, CipherSuite::TLS_AES_128_GCM_SHA256);
        assert_eq!(sh.supported_version(), Some(ProtocolVersion::TLS1_3));
        let ks = sh.key_share().unwrap();
        assert_eq!(ks.group, NamedGroup::X25519);
        assert_eq!(ks.payload.len(), 32);
        assert_eq!(sh.hrr_group(), None);
        assert_eq!(sh.selected_psk(), None);
        assert_eq!(sh.cookie(), None);

        let ee: EncryptedExtensions = exact(&hex(EE1));
        assert!(ee.server_name_ack());
        assert_eq!(ee.record_size_limit(), Some(0x4001));
        assert!(!ee.early_data());
        assert_eq!(ee.alpn(), None);
        assert!(
            matches!(ee.find(ExtensionType::SUPPORTED_GROUPS), Some(ServerExtension::SupportedGroups(g)) if g.len() == 9)
        );

        let cert: Certificate13 = exact(&hex(CERT1));
        assert!(cert.context.is_empty());
        assert_eq!(cert.entries.len(), 1);
        assert_eq!(cert.entries[0].cert.len(), 0x1b0);
        assert_eq!(cert.entries[0].cert[..2], [0x30, 0x82]);
        assert!(cert.entries[0].extensions.is_empty());

        let cv: CertificateVerify = exact(&hex(CV1));
        assert_eq!(cv.scheme, SignatureScheme::RSA_PSS_RSAE_SHA256);
        assert_eq!(cv.signature.len(), 128);

        let nst: NewSessionTicket13 = exact(&hex(NST1));
        assert_eq!(nst.lifetime, 30);
        assert_eq!(nst.age_add, 0xfad6aac5);
        assert_eq!(nst.nonce, [0, 0]);
        assert_eq!(nst.ticket.len(), 0xb2);
        assert_eq!(nst.max_early_data(), Some(1024));

        let sh2: ServerHello = exact(&hex(SH2));
        assert_eq!(sh2.selected_psk(), Some(0));
        let ee2: EncryptedExtensions = exact(&hex(EE2));
        assert!(ee2.early_data());
    }

    #[test]
    fn rfc8448_resumed_client_hello_binders() {
        let bytes = ch2();
        assert_eq!(bytes.len(), 512);
        let mut ch: ClientHello = exact(&bytes);
        assert!(ch.early_data());
        assert_eq!(
            ch.extensions.last().map(|e| e.ext_type()),
            Some(ExtensionType::PRE_SHARED_KEY)
        );
        assert!(
            matches!(ch.find(ExtensionType::PADDING), Some(ClientExtension::Unknown(_, p)) if p.len() == 0x57)
        );
        let psk = ch.pre_shared_key().unwrap();
        assert_eq!(psk.identities.len(), 1);
        assert_eq!(psk.identities[0].identity.len(), 0xb2);
        assert_eq!(psk.identities[0].obfuscated_ticket_age, 0xfad6aacb);
        assert_eq!(psk.binders, [hex(CH2_BINDERS)[3..].to_vec()]);
        // RFC 8448 §4 hashes the first 477 bytes for the binder.
        assert_eq!(ch.binders_offset(), Some(477));
        assert_eq!(ch.binders_offset(), Some(hex(CH2_PREFIX).len()));
        assert_eq!(
            ch.binders_offset().unwrap() + psk.binders_len(),
            bytes.len()
        );

        // Replacing the binders leaves the truncated hello unchanged.
        ch.set_binders(vec![vec![0xee; 32]]);
        let re = ch.to_message_bytes();
        assert_eq!(re.len(), 512);
        assert_eq!(re[..477], bytes[..477]);
        assert_eq!(re[477..480], [0, 0x21, 0x20]);
        assert!(re[480..].iter().all(|&b| b == 0xee));
    }

    fn sample_client_hello() -> ClientHello {
        ClientHello {
            legacy_version: ProtocolVersion::TLS1_2,
            random: [0x11; 32],
            session_id: vec![1; 32],
            cookie: None,
            cipher_suites: vec![CipherSuite::TLS_AES_128_GCM_SHA256],
            compression_methods: vec![0],
            extensions: vec![
                ClientExtension::SupportedVersions(vec![ProtocolVersion::TLS1_3]),
                ClientExtension::PreSharedKey(OfferedPsks {
                    identities: vec![PskIdentity {
                        identity: vec![9; 5],
                        obfuscated_ticket_age: 1,
                    }],
                    binders: vec![vec![0; 32]],
                }),
            ],
        }
    }

    #[test]
    fn binders_offset_by_hand() {
        let mut ch = sample_client_hello();
        // header 4 + version 2 + random 32 + session_id 1+32 + suites 2+2
        // + compression 1+1 + extensions length 2 = 79;
        // supported_versions: type 2 + length 2 + list 1+2 = 7 → 86;
        // pre_shared_key type 2 + length 2 → 90; identities 2 + (2+5+4) → 103.
        assert_eq!(ch.binders_offset(), Some(103));
        let bytes = ch.to_message_bytes();
        assert_eq!(bytes.len(), 103 + 2 + 1 + 32);
        assert_eq!(bytes[103..106], [0, 33, 32]);
        // DTLS: the cookie field adds 1 + its length.
        ch.cookie = Some(vec![5; 20]);
        assert_eq!(ch.binders_offset(), Some(124));
        assert_eq!(ch.to_message_bytes()[124..127], [0, 33, 32]);
        // Also correct for a (locally built) hello with the psk not last.
        ch.cookie = None;
        ch.extensions.reverse();
        let bytes = ch.to_message_bytes();
        let off = ch.binders_offset().unwrap();
        assert_eq!(off, 79 + 4 + 13);
        assert_eq!(bytes[off..off + 3], [0, 33, 32]);
        ch.extensions.clear();
        assert_eq!(ch.binders_offset(), None);
        ch.set_binders(vec![]); // no effect, no panic
    }

    #[test]
    fn messages_round_trip() {
        let mut ch = sample_client_hello();
        round_trip(&ch);
        // DTLS hello with a cookie.
        ch.cookie = Some(vec![3; 32]);
        let body = ch.to_bytes();
        assert_eq!(
            ClientHello::read_body(&mut Reader::new(&body), true).unwrap(),
            ch
        );
        // Read as TLS, the cookie is mistaken for the cipher suites: an error.
        assert!(ClientHello::from_bytes(&body).is_err());
        ch.cookie = Some(vec![]);
        let body = ch.to_bytes();
        assert_eq!(
            ClientHello::read_body(&mut Reader::new(&body), true).unwrap(),
            ch
        );
        // No extensions: the block is omitted (TLS 1.2 form) and read back.
        ch.cookie = None;
        ch.extensions.clear();
        let body = ch.to_bytes();
        assert_eq!(body.len(), 2 + 32 + 33 + 4 + 2);
        assert_eq!(ClientHello::from_bytes(&body).unwrap(), ch);
        // An explicit empty block reads the same.
        let mut with_block = body.clone();
        with_block.extend_from_slice(&[0, 0]);
        assert_eq!(ClientHello::from_bytes(&with_block).unwrap(), ch);

        let hrr = ServerHello {
            legacy_version: ProtocolVersion::TLS1_2,
            random: HRR_RANDOM,
            session_id: vec![1; 32],
            cipher_suite: CipherSuite::TLS_AES_256_GCM_SHA384,
            compression_method: 0,
            extensions: vec![
                ServerExtension::SupportedVersion(ProtocolVersion::TLS1_3),
                ServerExtension::HrrKeyShare(NamedGroup::SECP256R1),
                ServerExtension::Cookie(vec![7; 50]),
            ],
        };
        round_trip(&hrr);
        assert!(hrr.is_hrr());
        assert_eq!(hrr.hrr_group(), Some(NamedGroup::SECP256R1));
        assert_eq!(hrr.key_share(), None);
        assert_eq!(hrr.cookie(), Some(&[7u8; 50][..]));

        let mut sh12 = ServerHello {
            legacy_version: ProtocolVersion::TLS1_2,
            random: [0; 32],
            session_id: vec![],
            cipher_suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            compression_method: 0,
            extensions: vec![
                ServerExtension::RenegotiationInfo(vec![]),
                ServerExtension::ExtendedMasterSecret,
                ServerExtension::EcPointFormats(vec![0]),
                ServerExtension::SessionTicketAck,
                ServerExtension::Alpn(b"http/1.1".to_vec()),
            ],
        };
        sh12.random[24..].copy_from_slice(&DOWNGRADE_TLS12);
        round_trip(&sh12);
        assert_eq!(sh12.downgrade_sentinel(), Some(ProtocolVersion::TLS1_2));
        sh12.random[31] = 0;
        assert_eq!(sh12.downgrade_sentinel(), Some(ProtocolVersion::TLS1_1));
        sh12.extensions.clear();
        round_trip(&sh12);

        round_trip(&EncryptedExtensions { extensions: vec![] });
        round_trip(&EncryptedExtensions {
            extensions: vec![
                ServerExtension::Alpn(b"h2".to_vec()),
                ServerExtension::RecordSizeLimit(1000),
                ServerExtension::EarlyData,
                ServerExtension::ServerNameAck,
            ],
        });
        round_trip(&Certificate13 {
            context: vec![],
            entries: vec![],
        });
        round_trip(&Certificate13 {
            context: vec![1, 2, 3],
            entries: vec![
                CertificateEntry {
                    cert: vec![0x30; 100],
                    extensions: vec![0, 5, 0, 2, 1, 2],
                },
                CertificateEntry {
                    cert: vec![0x30],
                    extensions: vec![],
                },
            ],
        });
        let cr = CertificateRequest13 {
            context: vec![],
            extensions: vec![
                CertReqExtension::SignatureAlgorithms(vec![SignatureScheme::ED25519]),
                CertReqExtension::CertificateAuthorities(vec![vec![0x30, 0]]),
            ],
        };
        round_trip(&cr);
        assert_eq!(
            cr.signature_algorithms(),
            Some(&[SignatureScheme::ED25519][..])
        );
        assert_eq!(cr.signature_algorithms_cert(), None);
        assert_eq!(cr.certificate_authorities().map(|a| a.len()), Some(1));
        round_trip(&CertificateVerify {
            scheme: SignatureScheme::ECDSA_SECP384R1_SHA384,
            signature: vec![1; 104],
        });
        round_trip(&NewSessionTicket13 {
            lifetime: 604800,
            age_add: 0x01020304,
            nonce: vec![],
            ticket: vec![1],
            extensions: vec![TicketExtension::EarlyData(0xffff_ffff)],
        });
        round_trip(&KeyUpdate(KeyUpdateRequest::UPDATE_REQUESTED));
        round_trip(&KeyUpdate(KeyUpdateRequest::UPDATE_NOT_REQUESTED));
        assert_eq!(
            KeyUpdate(KeyUpdateRequest::UPDATE_REQUESTED).to_message_bytes(),
            [24, 0, 0, 1, 1]
        );

        // TLS 1.2 / DTLS 1.2.
        let ske = ServerKeyExchangeEcdhe {
            group: NamedGroup::X25519,
            public: vec![9; 32],
            scheme: SignatureScheme::RSA_PSS_RSAE_SHA256,
            signature: vec![8; 256],
        };
        round_trip(&ske);
        let params = ske.params();
        assert_eq!(params[..4], [3, 0, 0x1d, 32]);
        assert_eq!(params.len(), 36);
        assert!(ske.to_bytes().starts_with(&params));
        let signed = ske.signed_message(&[1; 32], &[2; 32]);
        assert_eq!(signed.len(), 100);
        assert_eq!(signed[..32], [1; 32]);
        assert_eq!(signed[32..64], [2; 32]);
        assert_eq!(signed[64..], params[..]);
        round_trip(&Certificate12 { certs: vec![] });
        round_trip(&Certificate12 {
            certs: vec![vec![0x30; 300], vec![0x30; 2]],
        });
        round_trip(&CertificateRequest12 {
            cert_types: vec![1, 64],
            schemes: vec![SignatureScheme::RSA_PKCS1_SHA256, SignatureScheme(0x0a0a)],
            authorities: vec![],
        });
        round_trip(&CertificateRequest12 {
            cert_types: vec![64],
            schemes: vec![SignatureScheme::ECDSA_SECP256R1_SHA256],
            authorities: vec![vec![0x30, 3, 1, 2, 3], vec![0x30, 0]],
        });
        round_trip(&ClientKeyExchangeEcdhe {
            public: vec![4; 65],
        });
        assert_eq!(
            ClientKeyExchangeEcdhe { public: vec![4; 2] }.to_message_bytes(),
            [16, 0, 0, 3, 2, 4, 4]
        );
        round_trip(&NewSessionTicket12 {
            lifetime_hint: 7200,
            ticket: vec![5; 100],
        });
        round_trip(&NewSessionTicket12 {
            lifetime_hint: 0,
            ticket: vec![],
        });
        round_trip(&HelloVerifyRequest {
            server_version: ProtocolVersion::DTLS1_0,
            cookie: vec![1; 32],
        });
        assert_eq!(
            HelloVerifyRequest {
                server_version: ProtocolVersion::DTLS1_0,
                cookie: vec![],
            }
            .to_message_bytes(),
            [3, 0, 0, 3, 0xfe, 0xff, 0]
        );
    }

    #[test]
    fn unknown_extensions_and_code_points_are_kept() {
        let mut ch = sample_client_hello();
        ch.extensions
            .insert(0, ClientExtension::Unknown(ExtensionType(0x3a3a), vec![]));
        ch.extensions.insert(
            1,
            ClientExtension::SupportedGroups(vec![NamedGroup(0x2a2a), NamedGroup::X25519]),
        );
        ch.extensions.insert(
            2,
            ClientExtension::Unknown(ExtensionType::STATUS_REQUEST, vec![1, 0, 0, 0, 0]),
        );
        ch.cipher_suites.insert(0, CipherSuite(0x4a4a));
        round_trip(&ch);
        let ch = ClientHello::from_message(&ch.to_message_bytes()).unwrap();
        assert_eq!(ch.supported_groups().unwrap()[0], NamedGroup(0x2a2a));
        assert_eq!(ch.cipher_suites[0], CipherSuite(0x4a4a));
    }

    /// A ClientHello body with the given raw extensions block contents.
    fn hello_with_extensions(exts: &[u8]) -> Vec<u8> {
        let mut ch = sample_client_hello();
        ch.extensions.clear();
        let mut body = ch.to_bytes();
        put_vec(&mut body, 2, exts);
        body
    }

    #[test]
    fn client_hello_errors() {
        // Duplicate extension type → illegal_parameter (RFC 8446 §4.2).
        let body = hello_with_extensions(&[0, 23, 0, 0, 0, 10, 0, 4, 0, 2, 0, 29, 0, 23, 0, 0]);
        assert_eq!(alert_of(ClientHello::from_bytes(&body)), ILLEGAL);
        // pre_shared_key not last → illegal_parameter (RFC 8446 §4.2.11).
        let mut ch = sample_client_hello();
        ch.extensions.reverse();
        assert_eq!(alert_of(ClientHello::from_bytes(&ch.to_bytes())), ILLEGAL);
        // A malformed pre_shared_key parses (TLS 1.2 ignores it) and fails
        // TLS 1.3's check_pre_shared_key. Mismatched binder count →
        // illegal_parameter.
        let psk_check = |ch: &ClientHello| {
            let parsed = ClientHello::from_bytes(&ch.to_bytes()).expect("hello parses");
            assert!(parsed.pre_shared_key().is_none());
            parsed.check_pre_shared_key()
        };
        let mut ch = sample_client_hello();
        assert!(ClientHello::from_bytes(&ch.to_bytes())
            .expect("hello parses")
            .check_pre_shared_key()
            .is_ok());
        ch.set_binders(vec![vec![0; 32], vec![0; 32]]);
        assert_eq!(alert_of(psk_check(&ch)), ILLEGAL);
        // A binder shorter than 32 bytes → decode_error.
        ch.set_binders(vec![vec![0; 31]]);
        assert_eq!(alert_of(psk_check(&ch)), DECODE);

        // session_id longer than 32.
        let mut ch = sample_client_hello();
        ch.session_id = vec![0; 33];
        assert_eq!(alert_of(ClientHello::from_bytes(&ch.to_bytes())), DECODE);
        // Cipher suites: empty, odd.
        let base = sample_client_hello().to_bytes();
        let suites_at = 2 + 32 + 33;
        let mut empty = base[..suites_at].to_vec();
        empty.extend_from_slice(&[0, 0]);
        empty.extend_from_slice(&base[suites_at + 4..]);
        assert_eq!(alert_of(ClientHello::from_bytes(&empty)), DECODE);
        let mut odd = base[..suites_at].to_vec();
        odd.extend_from_slice(&[0, 3, 0x13, 0x01, 0x13]);
        odd.extend_from_slice(&base[suites_at + 4..]);
        assert_eq!(alert_of(ClientHello::from_bytes(&odd)), DECODE);
        // Compression methods empty.
        let mut ch = sample_client_hello();
        ch.compression_methods.clear();
        assert_eq!(alert_of(ClientHello::from_bytes(&ch.to_bytes())), DECODE);
        // Bytes after the extensions block.
        let mut trailing = sample_client_hello().to_bytes();
        trailing.push(0);
        assert_eq!(alert_of(ClientHello::from_bytes(&trailing)), DECODE);
        // A known extension whose body is not consumed.
        let body = hello_with_extensions(&[0, 43, 0, 4, 2, 3, 4, 0]);
        assert_eq!(alert_of(ClientHello::from_bytes(&body)), DECODE);
        // An extension length beyond the block.
        let body = hello_with_extensions(&[0, 43, 0, 9, 2, 3, 4]);
        assert_eq!(alert_of(ClientHello::from_bytes(&body)), DECODE);
        // Non-ASCII server name.
        let body = hello_with_extensions(&[0, 0, 0, 6, 0, 4, 0, 0, 1, 0xe9]);
        assert_eq!(alert_of(ClientHello::from_bytes(&body)), DECODE);
        // An empty body.
        assert_eq!(alert_of(ClientHello::from_bytes(&[])), DECODE);
    }

    #[test]
    fn other_message_errors() {
        // ServerHello: session_id too long; duplicate extension.
        let mut sh = ServerHello::from_message(&hex(SH1)).unwrap();
        sh.session_id = vec![0; 33];
        assert_eq!(alert_of(ServerHello::from_bytes(&sh.to_bytes())), DECODE);
        let mut sh = ServerHello::from_message(&hex(SH1)).unwrap();
        sh.extensions
            .push(ServerExtension::SupportedVersion(ProtocolVersion::TLS1_3));
        assert_eq!(alert_of(ServerHello::from_bytes(&sh.to_bytes())), ILLEGAL);
        // An HRR's key_share is a group: a full KeyShareEntry does not parse.
        let mut sh = ServerHello::from_message(&hex(SH1)).unwrap();
        sh.random = HRR_RANDOM;
        assert_eq!(alert_of(ServerHello::from_bytes(&sh.to_bytes())), DECODE);
        // EncryptedExtensions duplicate.
        let ee = EncryptedExtensions {
            extensions: vec![ServerExtension::EarlyData, ServerExtension::EarlyData],
        };
        assert_eq!(
            alert_of(EncryptedExtensions::from_bytes(&ee.to_bytes())),
            ILLEGAL
        );
        // Certificate with an empty cert_data, and with duplicate entry extensions.
        let cert = Certificate13 {
            context: vec![],
            entries: vec![CertificateEntry {
                cert: vec![],
                extensions: vec![],
            }],
        };
        assert_eq!(
            alert_of(Certificate13::from_bytes(&cert.to_bytes())),
            DECODE
        );
        let cert = Certificate13 {
            context: vec![],
            entries: vec![CertificateEntry {
                cert: vec![1],
                extensions: vec![0, 5, 0, 0, 0, 5, 0, 0],
            }],
        };
        assert_eq!(
            alert_of(Certificate13::from_bytes(&cert.to_bytes())),
            ILLEGAL
        );
        // Certificate list length not matching its entries.
        assert_eq!(
            alert_of(Certificate13::from_bytes(&[0, 0, 0, 4, 0, 0, 1, 1])),
            DECODE
        );
        // CertificateRequest without extensions: `<2..2^16-1>`.
        assert_eq!(
            alert_of(CertificateRequest13::from_bytes(&[0, 0, 0])),
            DECODE
        );
        // But a request without signature_algorithms parses (missing_extension
        // is the state machine's).
        let cr = CertificateRequest13::from_bytes(&[0, 0, 4, 0, 0xaa, 0, 0]).unwrap();
        assert_eq!(cr.signature_algorithms(), None);
        // NewSessionTicket with an empty ticket.
        let nst = NewSessionTicket13 {
            lifetime: 1,
            age_add: 2,
            nonce: vec![],
            ticket: vec![],
            extensions: vec![],
        };
        assert_eq!(
            alert_of(NewSessionTicket13::from_bytes(&nst.to_bytes())),
            DECODE
        );
        // KeyUpdate values other than 0 and 1 (RFC 8446 §4.6.3).
        assert_eq!(alert_of(KeyUpdate::from_bytes(&[2])), ILLEGAL);
        assert_eq!(alert_of(KeyUpdate::from_bytes(&[255])), ILLEGAL);
        assert_eq!(alert_of(KeyUpdate::from_bytes(&[])), DECODE);
        assert_eq!(alert_of(KeyUpdate::from_bytes(&[0, 0])), DECODE);
        // CertificateVerify truncated signature.
        assert_eq!(
            alert_of(CertificateVerify::from_bytes(&[8, 4, 0, 2, 1])),
            DECODE
        );
        // TLS 1.2: explicit curve, empty point, empty certificate, empty lists.
        assert_eq!(
            alert_of(ServerKeyExchangeEcdhe::from_bytes(&[
                1, 0, 0x1d, 1, 9, 8, 4, 0, 0
            ])),
            ILLEGAL
        );
        assert_eq!(
            alert_of(ServerKeyExchangeEcdhe::from_bytes(&[
                3, 0, 0x1d, 0, 8, 4, 0, 0
            ])),
            DECODE
        );
        assert_eq!(alert_of(ClientKeyExchangeEcdhe::from_bytes(&[0])), DECODE);
        assert_eq!(
            alert_of(Certificate12::from_bytes(&[0, 0, 3, 0, 0, 0])),
            DECODE
        );
        assert_eq!(
            alert_of(CertificateRequest12::from_bytes(&[0, 0, 2, 4, 1, 0, 0])),
            DECODE
        );
        assert_eq!(
            alert_of(CertificateRequest12::from_bytes(&[1, 1, 0, 0, 0, 0])),
            DECODE
        );
        assert_eq!(
            alert_of(CertificateRequest12::from_bytes(&[
                1, 1, 0, 2, 4, 1, 0, 2, 0, 0
            ])),
            DECODE
        );
        // Framing: wrong type, wrong length.
        assert_eq!(
            alert_of(ServerHello::from_message(&hex(CH1))),
            AlertDescription::UNEXPECTED_MESSAGE
        );
        let mut long = hex(SH1);
        long.push(0);
        assert_eq!(alert_of(ServerHello::from_message(&long)), DECODE);
    }

    /// Every proper prefix of a framed message is a decode_error; every
    /// proper prefix of a body is a decode_error except the one that ends
    /// right before the (optional) extensions block.
    fn truncations<T: HandshakeMessage + Debug>(msg: &[u8], ext_block_at: usize) {
        for i in 0..msg.len() {
            assert_eq!(
                alert_of(T::from_message(&msg[..i])),
                DECODE,
                "message prefix {i}"
            );
        }
        let body = &msg[HANDSHAKE_HEADER_LEN..];
        for i in 0..body.len() {
            match T::from_bytes(&body[..i]) {
                Ok(_) => assert_eq!(i, ext_block_at, "body prefix {i} parsed"),
                Err(e) => assert_eq!(e.alert(), Some(DECODE), "body prefix {i}"),
            }
        }
    }

    #[test]
    fn truncation_never_panics() {
        truncations::<ClientHello>(&hex(CH1), 2 + 32 + 1 + 8 + 2);
        truncations::<ClientHello>(&ch2(), 2 + 32 + 1 + 8 + 2);
        truncations::<ServerHello>(&hex(SH1), 2 + 32 + 1 + 3);
        truncations::<ServerHello>(&hex(SH2), 2 + 32 + 1 + 3);
        // Messages with a mandatory tail: every prefix fails.
        for (msg, f) in [
            (
                hex(EE1),
                (|b: &[u8]| EncryptedExtensions::from_bytes(b).map(drop))
                    as fn(&[u8]) -> Result<()>,
            ),
            (hex(CERT1), |b| Certificate13::from_bytes(b).map(drop)),
            (hex(CV1), |b| CertificateVerify::from_bytes(b).map(drop)),
            (hex(NST1), |b| NewSessionTicket13::from_bytes(b).map(drop)),
        ] {
            let body = &msg[4..];
            f(body).unwrap();
            for i in 0..body.len() {
                assert_eq!(alert_of(f(&body[..i])), DECODE, "prefix {i}");
            }
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Parses `bytes` as T; on success the value must survive a re-encoding,
    /// on failure the error must carry decode_error or illegal_parameter.
    fn try_parse<T: Codec + PartialEq + Debug>(bytes: &[u8]) {
        match T::from_bytes(bytes) {
            Ok(v) => assert_eq!(T::from_bytes(&v.to_bytes()).as_ref(), Ok(&v)),
            Err(e) => assert!(matches!(e.alert(), Some(DECODE) | Some(ILLEGAL)), "{e:?}"),
        }
    }

    fn try_all(bytes: &[u8]) {
        try_parse::<ClientHello>(bytes);
        if let Ok(ch) = ClientHello::read_body(&mut Reader::new(bytes), true) {
            let again = ClientHello::read_body(&mut Reader::new(&ch.to_bytes()), true);
            assert_eq!(again.as_ref(), Ok(&ch));
        }
        try_parse::<ServerHello>(bytes);
        try_parse::<EncryptedExtensions>(bytes);
        try_parse::<Certificate13>(bytes);
        try_parse::<CertificateRequest13>(bytes);
        try_parse::<CertificateVerify>(bytes);
        try_parse::<NewSessionTicket13>(bytes);
        try_parse::<KeyUpdate>(bytes);
        try_parse::<ServerKeyExchangeEcdhe>(bytes);
        try_parse::<Certificate12>(bytes);
        try_parse::<CertificateRequest12>(bytes);
        try_parse::<ClientKeyExchangeEcdhe>(bytes);
        try_parse::<NewSessionTicket12>(bytes);
        try_parse::<HelloVerifyRequest>(bytes);
        try_parse::<ClientExtension>(bytes);
        try_parse::<ServerExtension>(bytes);
        try_parse::<CertReqExtension>(bytes);
        try_parse::<TicketExtension>(bytes);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let len = (rng.next() % 300) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            try_all(&bytes);
        }
    }

    #[test]
    fn mutated_messages_never_panic() {
        let bodies: Vec<Vec<u8>> = [
            hex(CH1),
            ch2(),
            hex(SH1),
            hex(SH2),
            hex(EE1),
            hex(EE2),
            hex(NST1),
        ]
        .iter()
        .map(|m| m[4..].to_vec())
        .collect();
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        for i in 0..2000 {
            let mut b = bodies[i % bodies.len()].clone();
            for _ in 0..1 + rng.next() % 3 {
                let at = (rng.next() as usize) % b.len();
                b[at] = rng.next() as u8;
            }
            try_all(&b);
        }
    }
}
