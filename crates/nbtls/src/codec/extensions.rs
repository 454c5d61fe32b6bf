//! Hello and handshake extensions (RFC 8446 §4.2, plus the TLS 1.2 ones a
//! 1.2 peer sends: RFC 5746, 7627, 5077, 8422).
//!
//! The codec is stateless: which extension may appear in which message is
//! the state machine's business. Enforced here, because it is pure syntax:
//! every declared length fits (decode_error); every known extension's body
//! is consumed exactly by its parser (decode_error); list minimums of the
//! RFC's `<min..max>` vectors hold (decode_error); no extension type appears
//! twice in one block (illegal_parameter, RFC 8446 §4.2). Unknown extension
//! types (GREASE, padding, status_request, ...) are kept raw as `Unknown`,
//! and unknown code points inside lists survive as newtypes.
//!
//! Two value checks live here too since they need no context:
//! record_size_limit below 64 (illegal_parameter, RFC 8449 §4) and a
//! pre_shared_key whose binder count differs from its identity count
//! (illegal_parameter, RFC 8446 §4.2.11).

use std::collections::HashSet;

use super::reader::{put_prefixed, put_u16, put_u32, put_u8, put_vec, Codec, Reader};
use super::types::{
    ExtensionType, NamedGroup, ProtocolVersion, PskKeyExchangeMode, SignatureScheme,
};
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Vector helpers (shared with handshake.rs)
// ---------------------------------------------------------------------------

/// Reads a vector behind a `len_bytes` (1, 2 or 3) length prefix whose body
/// holds at least `min` bytes, parsing items with `item` until the body is
/// consumed. A short body or a partial last item is a decode_error.
pub fn read_list<'a, T>(
    r: &mut Reader<'a>,
    len_bytes: usize,
    min: usize,
    what: &'static str,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut body = r.sub(len_bytes, what)?;
    if body.remaining() < min {
        return Err(Error::decode(what));
    }
    let mut out = Vec::new();
    while !body.is_empty() {
        out.push(item(&mut body)?);
    }
    Ok(out)
}

/// Reads an opaque vector behind a `len_bytes` length prefix, at least
/// `min` bytes long (decode_error otherwise).
pub fn read_bytes(
    r: &mut Reader<'_>,
    len_bytes: usize,
    min: usize,
    what: &'static str,
) -> Result<Vec<u8>> {
    let body = r.sub(len_bytes, what)?.rest();
    if body.len() < min {
        return Err(Error::decode(what));
    }
    Ok(body.to_vec())
}

/// Writes `items` behind a `len_bytes` length prefix.
pub fn put_list<T: Codec>(out: &mut Vec<u8>, len_bytes: usize, items: &[T]) {
    put_prefixed(out, len_bytes, |o| {
        for item in items {
            item.encode(o);
        }
    });
}

/// Reads an extensions block (u16 length, body of at least `min` bytes),
/// each extension's body parsed by `parse`. A repeated extension type is an
/// illegal_parameter (RFC 8446 §4.2).
pub fn read_extension_block<T>(
    r: &mut Reader<'_>,
    min: usize,
    mut parse: impl FnMut(ExtensionType, &[u8]) -> Result<T>,
) -> Result<Vec<T>> {
    let mut seen = HashSet::new();
    read_list(r, 2, min, "extensions", |r| {
        let typ = ExtensionType::read(r)?;
        let body = r.vec_u16("extension body")?;
        if !seen.insert(typ.0) {
            return Err(Error::illegal("duplicate extension"));
        }
        parse(typ, body)
    })
}

/// Checks that `block` (an extensions block body, without its length) is a
/// well-formed list of extensions without duplicates; the bodies are not
/// interpreted. Used for the raw per-certificate extensions of TLS 1.3.
pub fn check_raw_extensions(block: &[u8]) -> Result<()> {
    let mut seen = HashSet::new();
    let mut r = Reader::new(block);
    while !r.is_empty() {
        let typ = r.u16("extension type")?;
        r.vec_u16("extension body")?;
        if !seen.insert(typ) {
            return Err(Error::illegal("duplicate extension"));
        }
    }
    Ok(())
}

/// Writes an extensions block.
pub fn put_extensions<T: Codec>(out: &mut Vec<u8>, exts: &[T]) {
    put_list(out, 2, exts);
}

/// Parses one extension body with `f`, requiring `f` to consume all of it.
fn parse_body<T>(body: &[u8], f: impl FnOnce(&mut Reader<'_>) -> Result<T>) -> Result<T> {
    let mut r = Reader::new(body);
    let v = f(&mut r)?;
    r.finish("extension body not consumed")?;
    Ok(v)
}

fn read_empty(body: &[u8]) -> Result<()> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(Error::decode("extension body must be empty"))
    }
}

fn read_record_size_limit(r: &mut Reader<'_>) -> Result<u16> {
    let v = r.u16("record_size_limit")?;
    // RFC 8449 §4: a value below 64 is a fatal illegal_parameter.
    if v < 64 {
        return Err(Error::illegal("record_size_limit below 64"));
    }
    Ok(v)
}

/// SignatureSchemeList: `<2..2^16-2>` (RFC 8446 §4.2.3).
fn read_schemes(r: &mut Reader<'_>) -> Result<Vec<SignatureScheme>> {
    read_list(r, 2, 2, "signature_algorithms", SignatureScheme::read)
}

/// DistinguishedName authorities`<3..2^16-1>`, each `<1..2^16-1>`
/// (RFC 8446 §4.2.4). `min` is the list minimum (0 for TLS 1.2).
pub fn read_authorities(r: &mut Reader<'_>, min: usize) -> Result<Vec<Vec<u8>>> {
    read_list(r, 2, min, "certificate_authorities", |r| {
        read_bytes(r, 2, 1, "distinguished name")
    })
}

pub fn put_authorities(out: &mut Vec<u8>, names: &[Vec<u8>]) {
    put_prefixed(out, 2, |o| {
        for n in names {
            put_vec(o, 2, n);
        }
    });
}

/// ProtocolNameList `<2..2^16-1>`, each ProtocolName `<1..2^8-1>` (RFC 7301).
fn read_alpn(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>> {
    read_list(r, 2, 2, "alpn list", |r| {
        read_bytes(r, 1, 1, "alpn protocol")
    })
}

fn put_alpn<P: AsRef<[u8]>>(out: &mut Vec<u8>, protocols: &[P]) {
    put_prefixed(out, 2, |o| {
        for p in protocols {
            put_vec(o, 1, p.as_ref());
        }
    });
}

// ---------------------------------------------------------------------------
// Extension payload structs
// ---------------------------------------------------------------------------

/// KeyShareEntry (RFC 8446 §4.2.8): `key_exchange<1..2^16-1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShareEntry {
    pub group: NamedGroup,
    pub payload: Vec<u8>,
}

impl Codec for KeyShareEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        self.group.encode(out);
        put_vec(out, 2, &self.payload);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let group = NamedGroup::read(r)?;
        let payload = read_bytes(r, 2, 1, "key_exchange")?;
        Ok(KeyShareEntry { group, payload })
    }
}

/// PskIdentity (RFC 8446 §4.2.11): `identity<1..2^16-1>`, u32 age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PskIdentity {
    pub identity: Vec<u8>,
    pub obfuscated_ticket_age: u32,
}

impl Codec for PskIdentity {
    fn encode(&self, out: &mut Vec<u8>) {
        put_vec(out, 2, &self.identity);
        put_u32(out, self.obfuscated_ticket_age);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let identity = read_bytes(r, 2, 1, "psk identity")?;
        let obfuscated_ticket_age = r.u32("obfuscated_ticket_age")?;
        Ok(PskIdentity {
            identity,
            obfuscated_ticket_age,
        })
    }
}

/// OfferedPsks (RFC 8446 §4.2.11): identities `<7..2^16-1>`, binders
/// `<33..2^16-1>`, each binder `<32..255>`. Unequal counts are rejected
/// here with illegal_parameter, so a parsed value always pairs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedPsks {
    pub identities: Vec<PskIdentity>,
    pub binders: Vec<Vec<u8>>,
}

impl OfferedPsks {
    /// Encoded length of the binders list, including its 2-byte length.
    pub fn binders_len(&self) -> usize {
        2 + self.binders.iter().map(|b| 1 + b.len()).sum::<usize>()
    }

    /// Writes the identities list only (the part covered by the binders).
    pub fn encode_identities(&self, out: &mut Vec<u8>) {
        put_list(out, 2, &self.identities);
    }

    /// Writes the binders list only.
    pub fn encode_binders(&self, out: &mut Vec<u8>) {
        put_prefixed(out, 2, |o| {
            for b in &self.binders {
                put_vec(o, 1, b);
            }
        });
    }
}

impl Codec for OfferedPsks {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_identities(out);
        self.encode_binders(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let identities = read_list(r, 2, 7, "psk identities", PskIdentity::read)?;
        let binders = read_list(r, 2, 33, "psk binders", |r| {
            read_bytes(r, 1, 32, "psk binder")
        })?;
        if identities.len() != binders.len() {
            return Err(Error::illegal(
                "psk binder count differs from identity count",
            ));
        }
        Ok(OfferedPsks {
            identities,
            binders,
        })
    }
}

/// Reads the server_name extension of a ClientHello (RFC 6066 §3).
/// Returns `None` when the list holds no host_name entry (other name types
/// are skipped, assuming the `<1..2^16-1>` layout every defined type uses).
/// A host_name must be non-empty ASCII without control characters, and may
/// appear once (decode_error otherwise).
fn read_server_name(r: &mut Reader<'_>) -> Result<Option<String>> {
    let mut host: Option<String> = None;
    read_list(r, 2, 1, "server_name list", |r| {
        let name_type = r.u8("server_name type")?;
        let name = r.vec_u16("server_name")?;
        if name_type != 0 {
            return Ok(());
        }
        if host.is_some() {
            return Err(Error::decode("two host_name entries"));
        }
        if name.is_empty() || !name.iter().all(|b| b.is_ascii() && !b.is_ascii_control()) {
            return Err(Error::decode("server_name is not an ASCII host name"));
        }
        host = Some(name.iter().map(|&b| char::from(b)).collect());
        Ok(())
    })?;
    Ok(host)
}

/// An SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SrtpProtectionProfile(pub u16);

impl SrtpProtectionProfile {
    pub const AES128_CM_HMAC_SHA1_80: Self = Self(0x0001);
    pub const AES128_CM_HMAC_SHA1_32: Self = Self(0x0002);
    pub const AEAD_AES_128_GCM: Self = Self(0x0007);
    pub const AEAD_AES_256_GCM: Self = Self(0x0008);

    /// (master key, master salt) lengths in bytes, for the profiles we
    /// know (RFC 5764 §4.1.2, RFC 7714 §12).
    pub fn key_salt_len(self) -> Option<(usize, usize)> {
        match self {
            Self::AES128_CM_HMAC_SHA1_80 | Self::AES128_CM_HMAC_SHA1_32 => Some((16, 14)),
            Self::AEAD_AES_128_GCM => Some((16, 12)),
            Self::AEAD_AES_256_GCM => Some((32, 12)),
            _ => None,
        }
    }
}

impl Codec for SrtpProtectionProfile {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(SrtpProtectionProfile(r.u16("srtp profile")?))
    }
}

/// UseSrtpData (RFC 5764 §4.1.1): `SRTPProtectionProfiles<2..2^16-1>`,
/// `srtp_mki<0..255>`. A server's carries exactly one profile (checked by
/// the client's state machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseSrtp {
    pub profiles: Vec<SrtpProtectionProfile>,
    pub mki: Vec<u8>,
}

impl Codec for UseSrtp {
    fn encode(&self, out: &mut Vec<u8>) {
        put_list(out, 2, &self.profiles);
        put_vec(out, 1, &self.mki);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let profiles = read_list(r, 2, 2, "use_srtp profiles", SrtpProtectionProfile::read)?;
        let mki = read_bytes(r, 1, 0, "srtp_mki")?;
        Ok(UseSrtp { profiles, mki })
    }
}

// ---------------------------------------------------------------------------
// ClientHello extensions
// ---------------------------------------------------------------------------

/// An extension of a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientExtension {
    /// The host_name entry of server_name (RFC 6066); a trailing dot is the
    /// state machine's to strip.
    ServerName(String),
    SupportedVersions(Vec<ProtocolVersion>),
    SupportedGroups(Vec<NamedGroup>),
    SignatureAlgorithms(Vec<SignatureScheme>),
    SignatureAlgorithmsCert(Vec<SignatureScheme>),
    KeyShare(Vec<KeyShareEntry>),
    /// Each protocol non-empty, list non-empty (RFC 7301).
    Alpn(Vec<Vec<u8>>),
    RecordSizeLimit(u16),
    Cookie(Vec<u8>),
    PskKeyExchangeModes(Vec<PskKeyExchangeMode>),
    PreSharedKey(OfferedPsks),
    EarlyData,
    EcPointFormats(Vec<u8>),
    RenegotiationInfo(Vec<u8>),
    ExtendedMasterSecret,
    /// RFC 5077: the opaque ticket (empty when asking for one).
    SessionTicket(Vec<u8>),
    PostHandshakeAuth,
    /// RFC 5764 (DTLS-SRTP).
    UseSrtp(UseSrtp),
    /// Any other type, body kept raw (GREASE, padding, status_request, a
    /// server_name without a host_name entry, ...).
    Unknown(ExtensionType, Vec<u8>),
}

impl ClientExtension {
    pub fn ext_type(&self) -> ExtensionType {
        use ClientExtension as C;
        match self {
            C::ServerName(_) => ExtensionType::SERVER_NAME,
            C::SupportedVersions(_) => ExtensionType::SUPPORTED_VERSIONS,
            C::SupportedGroups(_) => ExtensionType::SUPPORTED_GROUPS,
            C::SignatureAlgorithms(_) => ExtensionType::SIGNATURE_ALGORITHMS,
            C::SignatureAlgorithmsCert(_) => ExtensionType::SIGNATURE_ALGORITHMS_CERT,
            C::KeyShare(_) => ExtensionType::KEY_SHARE,
            C::Alpn(_) => ExtensionType::ALPN,
            C::RecordSizeLimit(_) => ExtensionType::RECORD_SIZE_LIMIT,
            C::Cookie(_) => ExtensionType::COOKIE,
            C::PskKeyExchangeModes(_) => ExtensionType::PSK_KEY_EXCHANGE_MODES,
            C::PreSharedKey(_) => ExtensionType::PRE_SHARED_KEY,
            C::EarlyData => ExtensionType::EARLY_DATA,
            C::EcPointFormats(_) => ExtensionType::EC_POINT_FORMATS,
            C::RenegotiationInfo(_) => ExtensionType::RENEGOTIATION_INFO,
            C::ExtendedMasterSecret => ExtensionType::EXTENDED_MASTER_SECRET,
            C::SessionTicket(_) => ExtensionType::SESSION_TICKET,
            C::PostHandshakeAuth => ExtensionType::POST_HANDSHAKE_AUTH,
            C::UseSrtp(_) => ExtensionType::USE_SRTP,
            C::Unknown(t, _) => *t,
        }
    }

    /// Parses the body of an extension of type `typ`.
    pub fn read_body(typ: ExtensionType, body: &[u8]) -> Result<Self> {
        use ClientExtension as C;
        Ok(match typ {
            ExtensionType::SERVER_NAME => match parse_body(body, read_server_name)? {
                Some(host) => C::ServerName(host),
                None => C::Unknown(typ, body.to_vec()),
            },
            // `<2..254>` (RFC 8446 §4.2.1).
            ExtensionType::SUPPORTED_VERSIONS => C::SupportedVersions(parse_body(body, |r| {
                read_list(r, 1, 2, "supported_versions", ProtocolVersion::read)
            })?),
            // `<2..2^16-1>` (RFC 8446 §4.2.7).
            ExtensionType::SUPPORTED_GROUPS => C::SupportedGroups(parse_body(body, |r| {
                read_list(r, 2, 2, "supported_groups", NamedGroup::read)
            })?),
            ExtensionType::SIGNATURE_ALGORITHMS => {
                C::SignatureAlgorithms(parse_body(body, read_schemes)?)
            }
            ExtensionType::SIGNATURE_ALGORITHMS_CERT => {
                C::SignatureAlgorithmsCert(parse_body(body, read_schemes)?)
            }
            // client_shares `<0..2^16-1>`: empty asks for a HelloRetryRequest.
            ExtensionType::KEY_SHARE => C::KeyShare(parse_body(body, |r| {
                read_list(r, 2, 0, "key_share", KeyShareEntry::read)
            })?),
            ExtensionType::ALPN => C::Alpn(parse_body(body, read_alpn)?),
            ExtensionType::RECORD_SIZE_LIMIT => {
                C::RecordSizeLimit(parse_body(body, read_record_size_limit)?)
            }
            // `cookie<1..2^16-1>` (RFC 8446 §4.2.2).
            ExtensionType::COOKIE => {
                C::Cookie(parse_body(body, |r| read_bytes(r, 2, 1, "cookie"))?)
            }
            // `<1..255>` (RFC 8446 §4.2.9).
            ExtensionType::PSK_KEY_EXCHANGE_MODES => {
                C::PskKeyExchangeModes(parse_body(body, |r| {
                    read_list(r, 1, 1, "psk_key_exchange_modes", PskKeyExchangeMode::read)
                })?)
            }
            ExtensionType::PRE_SHARED_KEY => C::PreSharedKey(parse_body(body, OfferedPsks::read)?),
            ExtensionType::EARLY_DATA => {
                read_empty(body)?;
                C::EarlyData
            }
            // `<1..2^8-1>` (RFC 8422 §5.1.2).
            ExtensionType::EC_POINT_FORMATS => C::EcPointFormats(parse_body(body, |r| {
                read_bytes(r, 1, 1, "ec_point_formats")
            })?),
            // `<0..255>` (RFC 5746 §3.2).
            ExtensionType::RENEGOTIATION_INFO => C::RenegotiationInfo(parse_body(body, |r| {
                read_bytes(r, 1, 0, "renegotiation_info")
            })?),
            ExtensionType::EXTENDED_MASTER_SECRET => {
                read_empty(body)?;
                C::ExtendedMasterSecret
            }
            ExtensionType::SESSION_TICKET => C::SessionTicket(body.to_vec()),
            ExtensionType::POST_HANDSHAKE_AUTH => {
                read_empty(body)?;
                C::PostHandshakeAuth
            }
            ExtensionType::USE_SRTP => C::UseSrtp(parse_body(body, UseSrtp::read)?),
            _ => C::Unknown(typ, body.to_vec()),
        })
    }

    /// Writes the extension body (without type and length).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        use ClientExtension as C;
        match self {
            C::ServerName(host) => put_prefixed(out, 2, |o| {
                put_u8(o, 0); // host_name
                put_vec(o, 2, host.as_bytes());
            }),
            C::SupportedVersions(v) => put_list(out, 1, v),
            C::SupportedGroups(v) => put_list(out, 2, v),
            C::SignatureAlgorithms(v) | C::SignatureAlgorithmsCert(v) => put_list(out, 2, v),
            C::KeyShare(v) => put_list(out, 2, v),
            C::Alpn(v) => put_alpn(out, v),
            C::RecordSizeLimit(v) => put_u16(out, *v),
            C::Cookie(c) => put_vec(out, 2, c),
            C::PskKeyExchangeModes(v) => put_list(out, 1, v),
            C::PreSharedKey(p) => p.encode(out),
            C::EarlyData | C::ExtendedMasterSecret | C::PostHandshakeAuth => {}
            C::EcPointFormats(v) | C::RenegotiationInfo(v) => put_vec(out, 1, v),
            C::SessionTicket(t) => out.extend_from_slice(t),
            C::UseSrtp(u) => u.encode(out),
            C::Unknown(_, b) => out.extend_from_slice(b),
        }
    }
}

impl Codec for ClientExtension {
    fn encode(&self, out: &mut Vec<u8>) {
        self.ext_type().encode(out);
        put_prefixed(out, 2, |o| self.encode_body(o));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let typ = ExtensionType::read(r)?;
        let body = r.vec_u16("extension body")?;
        Self::read_body(typ, body)
    }
}

// ---------------------------------------------------------------------------
// ServerHello / HelloRetryRequest / EncryptedExtensions extensions
// ---------------------------------------------------------------------------

/// An extension of a ServerHello, HelloRetryRequest or EncryptedExtensions
/// (and of a TLS 1.2 ServerHello).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerExtension {
    SupportedVersion(ProtocolVersion),
    /// key_share in a ServerHello.
    KeyShare(KeyShareEntry),
    /// key_share in a HelloRetryRequest: the selected group only.
    HrrKeyShare(NamedGroup),
    /// The selected identity index.
    PreSharedKey(u16),
    Cookie(Vec<u8>),
    /// Empty server_name, acknowledging the client's.
    ServerNameAck,
    /// Exactly one protocol (RFC 7301 §3.1).
    Alpn(Vec<u8>),
    RecordSizeLimit(u16),
    EarlyData,
    SupportedGroups(Vec<NamedGroup>),
    RenegotiationInfo(Vec<u8>),
    ExtendedMasterSecret,
    SessionTicketAck,
    EcPointFormats(Vec<u8>),
    /// RFC 5764: the chosen profile (one) and the MKI.
    UseSrtp(UseSrtp),
    Unknown(ExtensionType, Vec<u8>),
}

impl ServerExtension {
    pub fn ext_type(&self) -> ExtensionType {
        use ServerExtension as S;
        match self {
            S::SupportedVersion(_) => ExtensionType::SUPPORTED_VERSIONS,
            S::KeyShare(_) | S::HrrKeyShare(_) => ExtensionType::KEY_SHARE,
            S::PreSharedKey(_) => ExtensionType::PRE_SHARED_KEY,
            S::Cookie(_) => ExtensionType::COOKIE,
            S::ServerNameAck => ExtensionType::SERVER_NAME,
            S::Alpn(_) => ExtensionType::ALPN,
            S::RecordSizeLimit(_) => ExtensionType::RECORD_SIZE_LIMIT,
            S::EarlyData => ExtensionType::EARLY_DATA,
            S::SupportedGroups(_) => ExtensionType::SUPPORTED_GROUPS,
            S::RenegotiationInfo(_) => ExtensionType::RENEGOTIATION_INFO,
            S::ExtendedMasterSecret => ExtensionType::EXTENDED_MASTER_SECRET,
            S::SessionTicketAck => ExtensionType::SESSION_TICKET,
            S::EcPointFormats(_) => ExtensionType::EC_POINT_FORMATS,
            S::UseSrtp(_) => ExtensionType::USE_SRTP,
            S::Unknown(t, _) => *t,
        }
    }

    /// Parses the body of an extension of type `typ`. `hrr` selects the
    /// HelloRetryRequest form of key_share (a bare NamedGroup).
    pub fn read_body(typ: ExtensionType, body: &[u8], hrr: bool) -> Result<Self> {
        use ServerExtension as S;
        Ok(match typ {
            ExtensionType::SUPPORTED_VERSIONS => {
                S::SupportedVersion(parse_body(body, ProtocolVersion::read)?)
            }
            ExtensionType::KEY_SHARE if hrr => S::HrrKeyShare(parse_body(body, NamedGroup::read)?),
            ExtensionType::KEY_SHARE => S::KeyShare(parse_body(body, KeyShareEntry::read)?),
            ExtensionType::PRE_SHARED_KEY => {
                S::PreSharedKey(parse_body(body, |r| r.u16("selected_identity"))?)
            }
            ExtensionType::COOKIE => {
                S::Cookie(parse_body(body, |r| read_bytes(r, 2, 1, "cookie"))?)
            }
            ExtensionType::SERVER_NAME => {
                read_empty(body)?;
                S::ServerNameAck
            }
            ExtensionType::ALPN => {
                let mut list = parse_body(body, read_alpn)?;
                match (list.pop(), list.is_empty()) {
                    (Some(p), true) => S::Alpn(p),
                    _ => return Err(Error::decode("server ALPN must name one protocol")),
                }
            }
            ExtensionType::RECORD_SIZE_LIMIT => {
                S::RecordSizeLimit(parse_body(body, read_record_size_limit)?)
            }
            ExtensionType::EARLY_DATA => {
                read_empty(body)?;
                S::EarlyData
            }
            ExtensionType::SUPPORTED_GROUPS => S::SupportedGroups(parse_body(body, |r| {
                read_list(r, 2, 2, "supported_groups", NamedGroup::read)
            })?),
            ExtensionType::RENEGOTIATION_INFO => S::RenegotiationInfo(parse_body(body, |r| {
                read_bytes(r, 1, 0, "renegotiation_info")
            })?),
            ExtensionType::EXTENDED_MASTER_SECRET => {
                read_empty(body)?;
                S::ExtendedMasterSecret
            }
            ExtensionType::SESSION_TICKET => {
                read_empty(body)?;
                S::SessionTicketAck
            }
            ExtensionType::EC_POINT_FORMATS => S::EcPointFormats(parse_body(body, |r| {
                read_bytes(r, 1, 1, "ec_point_formats")
            })?),
            ExtensionType::USE_SRTP => S::UseSrtp(parse_body(body, UseSrtp::read)?),
            _ => S::Unknown(typ, body.to_vec()),
        })
    }

    /// Writes the extension body (without type and length).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        use ServerExtension as S;
        match self {
            S::SupportedVersion(v) => v.encode(out),
            S::KeyShare(k) => k.encode(out),
            S::HrrKeyShare(g) => g.encode(out),
            S::PreSharedKey(i) => put_u16(out, *i),
            S::Cookie(c) => put_vec(out, 2, c),
            S::ServerNameAck | S::EarlyData | S::ExtendedMasterSecret | S::SessionTicketAck => {}
            S::Alpn(p) => put_alpn(out, std::slice::from_ref(p)),
            S::RecordSizeLimit(v) => put_u16(out, *v),
            S::SupportedGroups(v) => put_list(out, 2, v),
            S::RenegotiationInfo(v) | S::EcPointFormats(v) => put_vec(out, 1, v),
            S::UseSrtp(u) => u.encode(out),
            S::Unknown(_, b) => out.extend_from_slice(b),
        }
    }
}

/// The `Codec` impl reads the ServerHello/EncryptedExtensions form; use
/// [`ServerExtension::read_body`] with `hrr = true` for a HelloRetryRequest.
impl Codec for ServerExtension {
    fn encode(&self, out: &mut Vec<u8>) {
        self.ext_type().encode(out);
        put_prefixed(out, 2, |o| self.encode_body(o));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let typ = ExtensionType::read(r)?;
        let body = r.vec_u16("extension body")?;
        Self::read_body(typ, body, false)
    }
}

// ---------------------------------------------------------------------------
// CertificateRequest (TLS 1.3) extensions
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertReqExtension {
    SignatureAlgorithms(Vec<SignatureScheme>),
    SignatureAlgorithmsCert(Vec<SignatureScheme>),
    /// DER distinguished names.
    CertificateAuthorities(Vec<Vec<u8>>),
    Unknown(ExtensionType, Vec<u8>),
}

impl CertReqExtension {
    pub fn ext_type(&self) -> ExtensionType {
        match self {
            CertReqExtension::SignatureAlgorithms(_) => ExtensionType::SIGNATURE_ALGORITHMS,
            CertReqExtension::SignatureAlgorithmsCert(_) => {
                ExtensionType::SIGNATURE_ALGORITHMS_CERT
            }
            CertReqExtension::CertificateAuthorities(_) => ExtensionType::CERTIFICATE_AUTHORITIES,
            CertReqExtension::Unknown(t, _) => *t,
        }
    }

    pub fn read_body(typ: ExtensionType, body: &[u8]) -> Result<Self> {
        Ok(match typ {
            ExtensionType::SIGNATURE_ALGORITHMS => {
                CertReqExtension::SignatureAlgorithms(parse_body(body, read_schemes)?)
            }
            ExtensionType::SIGNATURE_ALGORITHMS_CERT => {
                CertReqExtension::SignatureAlgorithmsCert(parse_body(body, read_schemes)?)
            }
            ExtensionType::CERTIFICATE_AUTHORITIES => {
                CertReqExtension::CertificateAuthorities(parse_body(body, |r| {
                    read_authorities(r, 3)
                })?)
            }
            _ => CertReqExtension::Unknown(typ, body.to_vec()),
        })
    }

    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            CertReqExtension::SignatureAlgorithms(v)
            | CertReqExtension::SignatureAlgorithmsCert(v) => put_list(out, 2, v),
            CertReqExtension::CertificateAuthorities(names) => put_authorities(out, names),
            CertReqExtension::Unknown(_, b) => out.extend_from_slice(b),
        }
    }
}

impl Codec for CertReqExtension {
    fn encode(&self, out: &mut Vec<u8>) {
        self.ext_type().encode(out);
        put_prefixed(out, 2, |o| self.encode_body(o));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let typ = ExtensionType::read(r)?;
        let body = r.vec_u16("extension body")?;
        Self::read_body(typ, body)
    }
}

// ---------------------------------------------------------------------------
// NewSessionTicket (TLS 1.3) extensions
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketExtension {
    /// max_early_data_size (RFC 8446 §4.2.10).
    EarlyData(u32),
    Unknown(ExtensionType, Vec<u8>),
}

impl TicketExtension {
    pub fn ext_type(&self) -> ExtensionType {
        match self {
            TicketExtension::EarlyData(_) => ExtensionType::EARLY_DATA,
            TicketExtension::Unknown(t, _) => *t,
        }
    }

    pub fn read_body(typ: ExtensionType, body: &[u8]) -> Result<Self> {
        Ok(match typ {
            ExtensionType::EARLY_DATA => {
                TicketExtension::EarlyData(parse_body(body, |r| r.u32("max_early_data_size"))?)
            }
            _ => TicketExtension::Unknown(typ, body.to_vec()),
        })
    }

    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            TicketExtension::EarlyData(n) => put_u32(out, *n),
            TicketExtension::Unknown(_, b) => out.extend_from_slice(b),
        }
    }
}

impl Codec for TicketExtension {
    fn encode(&self, out: &mut Vec<u8>) {
        self.ext_type().encode(out);
        put_prefixed(out, 2, |o| self.encode_body(o));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let typ = ExtensionType::read(r)?;
        let body = r.vec_u16("extension body")?;
        Self::read_body(typ, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::AlertDescription;

    fn alert_of<T: std::fmt::Debug>(r: Result<T>) -> AlertDescription {
        r.expect_err("must fail").alert().expect("protocol error")
    }

    fn client(typ: ExtensionType, body: &[u8]) -> Result<ClientExtension> {
        ClientExtension::read_body(typ, body)
    }

    fn server(typ: ExtensionType, body: &[u8]) -> Result<ServerExtension> {
        ServerExtension::read_body(typ, body, false)
    }

    #[test]
    fn client_extensions_round_trip() {
        let all = vec![
            ClientExtension::ServerName("example.com".into()),
            ClientExtension::SupportedVersions(vec![
                ProtocolVersion::TLS1_3,
                ProtocolVersion(0x7a7a),
            ]),
            ClientExtension::SupportedGroups(vec![NamedGroup::X25519, NamedGroup(0x1a1a)]),
            ClientExtension::SignatureAlgorithms(vec![SignatureScheme::ED25519]),
            ClientExtension::SignatureAlgorithmsCert(vec![SignatureScheme::RSA_PSS_RSAE_SHA256]),
            ClientExtension::KeyShare(vec![KeyShareEntry {
                group: NamedGroup::X25519,
                payload: vec![9; 32],
            }]),
            ClientExtension::KeyShare(vec![]),
            ClientExtension::Alpn(vec![b"h2".to_vec(), b"http/1.1".to_vec()]),
            ClientExtension::RecordSizeLimit(16385),
            ClientExtension::Cookie(vec![1, 2, 3]),
            ClientExtension::PskKeyExchangeModes(vec![PskKeyExchangeMode::PSK_DHE_KE]),
            ClientExtension::PreSharedKey(OfferedPsks {
                identities: vec![PskIdentity {
                    identity: vec![7; 10],
                    obfuscated_ticket_age: 0xdead_beef,
                }],
                binders: vec![vec![5; 32]],
            }),
            ClientExtension::EarlyData,
            ClientExtension::EcPointFormats(vec![0]),
            ClientExtension::RenegotiationInfo(vec![]),
            ClientExtension::ExtendedMasterSecret,
            ClientExtension::SessionTicket(vec![]),
            ClientExtension::SessionTicket(vec![1, 2, 3, 4]),
            ClientExtension::PostHandshakeAuth,
            ClientExtension::UseSrtp(UseSrtp {
                profiles: vec![
                    SrtpProtectionProfile::AEAD_AES_128_GCM,
                    SrtpProtectionProfile::AES128_CM_HMAC_SHA1_80,
                    SrtpProtectionProfile(0xabcd),
                ],
                mki: vec![],
            }),
            ClientExtension::UseSrtp(UseSrtp {
                profiles: vec![SrtpProtectionProfile::AES128_CM_HMAC_SHA1_32],
                mki: vec![7; 255],
            }),
            ClientExtension::Unknown(ExtensionType(0x0a0a), vec![]),
            ClientExtension::Unknown(ExtensionType::PADDING, vec![0; 17]),
        ];
        for ext in all {
            let bytes = ext.to_bytes();
            assert_eq!(ClientExtension::from_bytes(&bytes).unwrap(), ext, "{ext:?}");
        }
    }

    #[test]
    fn server_extensions_round_trip() {
        let all = vec![
            ServerExtension::SupportedVersion(ProtocolVersion::TLS1_3),
            ServerExtension::KeyShare(KeyShareEntry {
                group: NamedGroup::SECP256R1,
                payload: vec![4; 65],
            }),
            ServerExtension::PreSharedKey(0),
            ServerExtension::Cookie(vec![1; 40]),
            ServerExtension::ServerNameAck,
            ServerExtension::Alpn(b"h2".to_vec()),
            ServerExtension::RecordSizeLimit(64),
            ServerExtension::EarlyData,
            ServerExtension::SupportedGroups(vec![NamedGroup::X25519]),
            ServerExtension::RenegotiationInfo(vec![1; 24]),
            ServerExtension::ExtendedMasterSecret,
            ServerExtension::SessionTicketAck,
            ServerExtension::EcPointFormats(vec![0, 1, 2]),
            ServerExtension::UseSrtp(UseSrtp {
                profiles: vec![SrtpProtectionProfile::AEAD_AES_256_GCM],
                mki: vec![],
            }),
            ServerExtension::Unknown(ExtensionType::STATUS_REQUEST, vec![1]),
        ];
        for ext in all {
            let bytes = ext.to_bytes();
            assert_eq!(ServerExtension::from_bytes(&bytes).unwrap(), ext, "{ext:?}");
        }
        let hrr = ServerExtension::HrrKeyShare(NamedGroup::SECP384R1);
        let bytes = hrr.to_bytes();
        assert_eq!(bytes, [0, 51, 0, 2, 0, 0x18]);
        let mut r = Reader::new(&bytes[4..]);
        assert_eq!(NamedGroup::read(&mut r).unwrap(), NamedGroup::SECP384R1);
        assert_eq!(
            ServerExtension::read_body(ExtensionType::KEY_SHARE, &bytes[4..], true).unwrap(),
            hrr
        );
        // The same two bytes are not a KeyShareEntry.
        assert_eq!(
            alert_of(server(ExtensionType::KEY_SHARE, &bytes[4..])),
            AlertDescription::DECODE_ERROR
        );
    }

    #[test]
    fn other_extensions_round_trip() {
        for ext in [
            CertReqExtension::SignatureAlgorithms(vec![SignatureScheme::ECDSA_SECP256R1_SHA256]),
            CertReqExtension::SignatureAlgorithmsCert(vec![SignatureScheme::ED448]),
            CertReqExtension::CertificateAuthorities(vec![vec![0x30, 0], vec![0x30, 1, 5]]),
            CertReqExtension::Unknown(ExtensionType::OID_FILTERS, vec![0, 0]),
        ] {
            assert_eq!(CertReqExtension::from_bytes(&ext.to_bytes()).unwrap(), ext);
        }
        for ext in [
            TicketExtension::EarlyData(16384),
            TicketExtension::Unknown(ExtensionType(0xfafa), vec![]),
        ] {
            assert_eq!(TicketExtension::from_bytes(&ext.to_bytes()).unwrap(), ext);
        }
    }

    #[test]
    fn syntax_errors_send_decode_error() {
        let d = AlertDescription::DECODE_ERROR;
        use ExtensionType as T;
        // Body not consumed exactly.
        assert_eq!(alert_of(client(T::SUPPORTED_VERSIONS, &[2, 3, 4, 0])), d);
        assert_eq!(alert_of(client(T::RECORD_SIZE_LIMIT, &[0x40, 0, 0])), d);
        assert_eq!(alert_of(client(T::EARLY_DATA, &[0])), d);
        assert_eq!(alert_of(client(T::EXTENDED_MASTER_SECRET, &[0])), d);
        assert_eq!(alert_of(server(T::SERVER_NAME, &[0])), d);
        assert_eq!(alert_of(server(T::SUPPORTED_VERSIONS, &[3, 4, 0])), d);
        // Declared length beyond the body.
        assert_eq!(alert_of(client(T::SUPPORTED_GROUPS, &[0, 4, 0, 0x1d])), d);
        // List minimums.
        assert_eq!(alert_of(client(T::SUPPORTED_VERSIONS, &[0])), d);
        assert_eq!(alert_of(client(T::SUPPORTED_GROUPS, &[0, 0])), d);
        assert_eq!(alert_of(client(T::SIGNATURE_ALGORITHMS, &[0, 0])), d);
        assert_eq!(alert_of(client(T::SIGNATURE_ALGORITHMS_CERT, &[0, 0])), d);
        assert_eq!(alert_of(client(T::PSK_KEY_EXCHANGE_MODES, &[0])), d);
        assert_eq!(alert_of(client(T::EC_POINT_FORMATS, &[0])), d);
        assert_eq!(alert_of(client(T::COOKIE, &[0, 0])), d);
        assert_eq!(alert_of(client(T::ALPN, &[0, 0])), d);
        // Odd length in a u16 list.
        assert_eq!(
            alert_of(client(T::SUPPORTED_GROUPS, &[0, 3, 0, 0x1d, 0])),
            d
        );
        // Empty key_exchange.
        assert_eq!(alert_of(client(T::KEY_SHARE, &[0, 4, 0, 0x1d, 0, 0])), d);
        // Empty ALPN protocol name.
        assert_eq!(alert_of(client(T::ALPN, &[0, 3, 0, 1, b'a'])), d);
        // Server ALPN naming two protocols, or none.
        assert_eq!(alert_of(server(T::ALPN, &[0, 4, 1, b'a', 1, b'b'])), d);
        assert_eq!(alert_of(server(T::ALPN, &[0, 0])), d);
        // server_name: empty name, non-ASCII, control character, empty list,
        // and a repeated host_name.
        assert_eq!(alert_of(client(T::SERVER_NAME, &[0, 3, 0, 0, 0])), d);
        assert_eq!(alert_of(client(T::SERVER_NAME, &[0, 4, 0, 0, 1, 0xc3])), d);
        assert_eq!(alert_of(client(T::SERVER_NAME, &[0, 4, 0, 0, 1, 0])), d);
        assert_eq!(alert_of(client(T::SERVER_NAME, &[0, 0])), d);
        assert_eq!(
            alert_of(client(
                T::SERVER_NAME,
                &[0, 8, 0, 0, 1, b'a', 0, 0, 1, b'b']
            )),
            d
        );
        // Certificate authorities: empty name.
        assert_eq!(
            alert_of(CertReqExtension::read_body(
                T::CERTIFICATE_AUTHORITIES,
                &[0, 2, 0, 0]
            )),
            d
        );
        assert_eq!(
            alert_of(TicketExtension::read_body(T::EARLY_DATA, &[0, 0, 1])),
            d
        );
    }

    #[test]
    fn use_srtp_wire_form_and_bounds() {
        let d = AlertDescription::DECODE_ERROR;
        let t = ExtensionType::USE_SRTP;
        // RFC 5764 §4.1.1: profiles list, then the MKI.
        let ext = ClientExtension::UseSrtp(UseSrtp {
            profiles: vec![
                SrtpProtectionProfile::AES128_CM_HMAC_SHA1_80,
                SrtpProtectionProfile::AEAD_AES_128_GCM,
            ],
            mki: vec![],
        });
        assert_eq!(ext.to_bytes(), [0, 14, 0, 7, 0, 4, 0, 1, 0, 7, 0]);
        assert_eq!(
            server(t, &[0, 2, 0, 1, 2, 9, 9]).unwrap(),
            ServerExtension::UseSrtp(UseSrtp {
                profiles: vec![SrtpProtectionProfile::AES128_CM_HMAC_SHA1_80],
                mki: vec![9, 9],
            })
        );
        // Empty profile list, odd list length, missing MKI, MKI longer than
        // the body, trailing bytes, and an empty body.
        assert_eq!(alert_of(client(t, &[0, 0, 0])), d);
        assert_eq!(alert_of(client(t, &[0, 3, 0, 1, 0, 0])), d);
        assert_eq!(alert_of(client(t, &[0, 2, 0, 1])), d);
        assert_eq!(alert_of(client(t, &[0, 2, 0, 1, 3, 1])), d);
        assert_eq!(alert_of(server(t, &[0, 2, 0, 1, 0, 0])), d);
        assert_eq!(alert_of(server(t, &[])), d);
        // Key and salt lengths of the known profiles only.
        assert_eq!(
            SrtpProtectionProfile::AES128_CM_HMAC_SHA1_80.key_salt_len(),
            Some((16, 14))
        );
        assert_eq!(
            SrtpProtectionProfile::AEAD_AES_128_GCM.key_salt_len(),
            Some((16, 12))
        );
        assert_eq!(
            SrtpProtectionProfile::AEAD_AES_256_GCM.key_salt_len(),
            Some((32, 12))
        );
        assert_eq!(SrtpProtectionProfile(0x0005).key_salt_len(), None);
    }

    #[test]
    fn server_name_forms() {
        let ok = client(
            ExtensionType::SERVER_NAME,
            &[0, 6, 0, 0, 3, b'a', b'.', b'b'],
        )
        .unwrap();
        assert_eq!(ok, ClientExtension::ServerName("a.b".into()));
        // An unknown name type alone is kept raw; beside a host_name it is skipped.
        let raw = [0, 4, 7, 0, 1, b'x'];
        assert_eq!(
            client(ExtensionType::SERVER_NAME, &raw).unwrap(),
            ClientExtension::Unknown(ExtensionType::SERVER_NAME, raw.to_vec())
        );
        let mixed = [0, 8, 7, 0, 1, b'x', 0, 0, 1, b'h'];
        assert_eq!(
            client(ExtensionType::SERVER_NAME, &mixed).unwrap(),
            ClientExtension::ServerName("h".into())
        );
    }

    #[test]
    fn psk_rules() {
        let d = AlertDescription::DECODE_ERROR;
        let psk = |ids: &[&[u8]], binders: &[&[u8]]| {
            let mut out = Vec::new();
            put_prefixed(&mut out, 2, |o| {
                for id in ids {
                    put_vec(o, 2, id);
                    put_u32(o, 0);
                }
            });
            put_prefixed(&mut out, 2, |o| {
                for b in binders {
                    put_vec(o, 1, b);
                }
            });
            client(ExtensionType::PRE_SHARED_KEY, &out)
        };
        let b32 = [1u8; 32];
        assert!(psk(&[b"id"], &[&b32]).is_ok());
        assert!(psk(&[b"id"], &[&[1u8; 255]]).is_ok());
        assert_eq!(alert_of(psk(&[b"id"], &[&[1u8; 31]])), d);
        assert_eq!(alert_of(psk(&[b""], &[&b32])), d);
        assert_eq!(alert_of(psk(&[], &[&b32])), d);
        assert_eq!(alert_of(psk(&[b"id"], &[])), d);
        assert_eq!(
            alert_of(psk(&[b"id", b"id2"], &[&b32])),
            AlertDescription::ILLEGAL_PARAMETER
        );
        assert_eq!(
            alert_of(psk(&[b"id"], &[&b32, &b32])),
            AlertDescription::ILLEGAL_PARAMETER
        );
    }

    #[test]
    fn record_size_limit_below_64_is_illegal() {
        assert_eq!(
            alert_of(client(ExtensionType::RECORD_SIZE_LIMIT, &[0, 63])),
            AlertDescription::ILLEGAL_PARAMETER
        );
        assert_eq!(
            alert_of(server(ExtensionType::RECORD_SIZE_LIMIT, &[0, 0])),
            AlertDescription::ILLEGAL_PARAMETER
        );
        assert_eq!(
            client(ExtensionType::RECORD_SIZE_LIMIT, &[0, 64]).unwrap(),
            ClientExtension::RecordSizeLimit(64)
        );
    }

    #[test]
    fn extension_blocks() {
        // Duplicate type → illegal_parameter.
        let block = [0, 8, 0, 23, 0, 0, 0, 23, 0, 0];
        let mut r = Reader::new(&block);
        assert_eq!(
            alert_of(read_extension_block(&mut r, 0, ClientExtension::read_body)),
            AlertDescription::ILLEGAL_PARAMETER
        );
        assert_eq!(
            alert_of(check_raw_extensions(&block[2..])),
            AlertDescription::ILLEGAL_PARAMETER
        );
        // Unknown types twice are duplicates too.
        let block = [0, 8, 0xaa, 0xaa, 0, 0, 0xaa, 0xaa, 0, 0];
        let mut r = Reader::new(&block);
        assert_eq!(
            alert_of(read_extension_block(&mut r, 0, ClientExtension::read_body)),
            AlertDescription::ILLEGAL_PARAMETER
        );
        // Truncated entry → decode_error.
        assert_eq!(
            alert_of(check_raw_extensions(&[0, 23, 0])),
            AlertDescription::DECODE_ERROR
        );
        assert_eq!(
            alert_of(check_raw_extensions(&[0, 23, 0, 1])),
            AlertDescription::DECODE_ERROR
        );
        check_raw_extensions(&[]).unwrap();
        check_raw_extensions(&[0, 5, 0, 1, 9]).unwrap();
        // Minimum block length.
        let mut r = Reader::new(&[0, 0]);
        assert_eq!(
            alert_of(read_extension_block(&mut r, 2, CertReqExtension::read_body)),
            AlertDescription::DECODE_ERROR
        );
    }
}
