//! Malformed, truncated, oversized, wrong-type and out-of-order input, against both the
//! client and the server, in TLS 1.3 and (cases named "tls12") TLS 1.2. Every case names
//! the session that must fail, what it is fed, the alert the RFCs prescribe (RFC 8446;
//! for TLS 1.2 RFC 5246, 5746, 7507, 7627, 8422 and RFC 8446 §4.1.3; where the RFC leaves
//! the alert open, the one nbtls documents, marked "nbtls:") and the typed error. Each
//! case then checks that:
//!
//! * the session fails with that typed error (`Error::Protocol` / `LimitExceeded` with the
//!   alert, or `Error::AlertReceived` for a peer's alert), never a panic or a hang;
//! * exactly that alert went out on the wire, as the session's last record, read from the
//!   other end of the transport (opened with the traffic secrets from the `KeyLog` once
//!   the session has keys); a received alert is not answered;
//! * the peer (when there is a real one) reads that alert as `Error::AlertReceived`;
//! * the error is sticky: `handshake`, `recv` and `send` return it again, and nothing more
//!   is written.

mod common;

use common::mitm::{
    hook, hs_message, plain_record, Ctx, Dir, Hook, RawServer, Rec, Side, Verdict, Wired,
};
use common::tls::{client_config, server_config};
use nbtls::codec::{
    AlertDescription as A, Certificate12, CipherSuite, ClientExtension, ClientHello,
    ClientKeyExchangeEcdhe, ContentType, EncryptedExtensions, ExtensionType, HandshakeMessage,
    HandshakeType as H, KeyShareEntry, NamedGroup, NewSessionTicket13, OfferedPsks,
    ProtocolVersion, PskIdentity, PskKeyExchangeMode, ServerExtension, ServerHello,
    ServerKeyExchangeEcdhe, SignatureScheme, HRR_RANDOM,
};
use nbtls::crypto::kx::KeyShare;
use nbtls::{
    ClientAuth, ClientConfig, Error, MemoryTransport, ServerConfig, Session, TrustAnchors,
};

// ---------------------------------------------------------------------------
// Raw ClientHellos
// ---------------------------------------------------------------------------

/// A valid TLS 1.3 ClientHello the default test server accepts.
fn hello() -> ClientHello {
    let share = KeyShare::generate(NamedGroup::X25519).expect("x25519 share");
    ClientHello {
        legacy_version: ProtocolVersion::TLS1_2,
        random: [7; 32],
        session_id: vec![1; 32],
        cookie: None,
        cipher_suites: vec![CipherSuite::TLS_AES_128_GCM_SHA256],
        compression_methods: vec![0],
        extensions: vec![
            ClientExtension::ServerName("localhost".into()),
            ClientExtension::SupportedVersions(vec![ProtocolVersion::TLS1_3]),
            ClientExtension::SupportedGroups(vec![NamedGroup::X25519, NamedGroup::SECP256R1]),
            ClientExtension::SignatureAlgorithms(vec![
                SignatureScheme::ECDSA_SECP256R1_SHA256,
                SignatureScheme::RSA_PSS_RSAE_SHA256,
                SignatureScheme::ED25519,
            ]),
            ClientExtension::KeyShare(vec![KeyShareEntry {
                group: NamedGroup::X25519,
                payload: share.public().to_vec(),
            }]),
            ClientExtension::PskKeyExchangeModes(vec![PskKeyExchangeMode::PSK_DHE_KE]),
        ],
    }
}

fn encode(ch: &ClientHello) -> Vec<u8> {
    ch.to_message_bytes()
}

fn hs_record(msg: &[u8]) -> Vec<u8> {
    plain_record(ContentType::HANDSHAKE, msg)
}

/// A ClientHello record after `f` edited the hello.
fn hello_with(f: impl FnOnce(&mut ClientHello)) -> Vec<u8> {
    let mut ch = hello();
    f(&mut ch);
    hs_record(&encode(&ch))
}

/// A ClientHello record after `f` edited its extension list.
fn hello_ext(f: impl FnOnce(&mut Vec<ClientExtension>)) -> Vec<u8> {
    hello_with(|ch| f(&mut ch.extensions))
}

fn drop_ext(exts: &mut Vec<ClientExtension>, t: ExtensionType) {
    exts.retain(|e| e.ext_type() != t);
}

/// The encoded hello body (no handshake header) and the offset of its
/// extensions block length.
fn hello_body() -> (Vec<u8>, usize) {
    let ch = hello();
    let msg = encode(&ch);
    let body = msg[4..].to_vec();
    // version 2, random 32, session id 1+32, suites 2+2, compression 1+1
    let ext_at = 2 + 32 + 1 + 32 + 2 + 2 + 1 + 1;
    (body, ext_at)
}

/// A ClientHello record with `body` re-framed consistently.
fn hello_body_record(body: &[u8]) -> Vec<u8> {
    hs_record(&hs_message(H::CLIENT_HELLO, body))
}

fn psk_ext() -> ClientExtension {
    ClientExtension::PreSharedKey(OfferedPsks {
        identities: vec![PskIdentity {
            identity: vec![9; 16],
            obfuscated_ticket_age: 0,
        }],
        binders: vec![vec![0; 32]],
    })
}

/// The first ClientHello asks for a retry: no share, X25519 and P-256 supported.
fn hello_for_retry() -> Vec<u8> {
    hello_ext(|e| {
        for x in e.iter_mut() {
            if let ClientExtension::KeyShare(v) = x {
                v.clear();
            }
        }
    })
}

fn second_hello(group: NamedGroup, extra: Option<ClientExtension>) -> Vec<u8> {
    let share = KeyShare::generate(group).expect("share");
    hello_ext(|e| {
        for x in e.iter_mut() {
            if let ClientExtension::KeyShare(v) = x {
                *v = vec![KeyShareEntry {
                    group,
                    payload: share.public().to_vec(),
                }];
            }
        }
        if let Some(x) = extra {
            e.push(x);
        }
    })
}

// ---------------------------------------------------------------------------
// MITM hooks
// ---------------------------------------------------------------------------

fn is_hrr(rec: &Rec) -> bool {
    rec.hs_type() == Some(H::SERVER_HELLO) && rec.payload.get(6..38) == Some(&HRR_RANDOM[..])
}

/// Calls `f` on the first record of `dir` whose first handshake message is
/// `typ` (a ServerHello that is not an HRR for `SERVER_HELLO`); forwards the rest.
fn on(dir: Dir, typ: H, mut f: impl FnMut(&mut Ctx<'_>, &mut Rec) -> Verdict + 'static) -> Hook {
    let mut done = false;
    Box::new(move |ctx, rec| {
        let hit = rec.dir == dir
            && rec.hs_type() == Some(typ)
            && !(typ == H::SERVER_HELLO && is_hrr(rec));
        if done || !hit {
            return Verdict::Forward;
        }
        done = true;
        f(ctx, rec)
    })
}

/// Forwards everything.
fn pass() -> Hook {
    hook(|_, _| Verdict::Forward)
}

/// Calls `f` on the HelloRetryRequest.
fn on_hrr(mut f: impl FnMut(&mut Ctx<'_>, &mut Rec) -> Verdict + 'static) -> Hook {
    Box::new(move |ctx, rec| {
        if rec.dir == Dir::ToClient && is_hrr(rec) {
            f(ctx, rec)
        } else {
            Verdict::Forward
        }
    })
}

/// Edits a message with the codec: decode, change, encode.
fn edit<T: HandshakeMessage>(rec: &mut Rec, f: impl FnOnce(&mut T)) -> Verdict {
    let mut m = T::from_message(&rec.payload).expect("decodes");
    f(&mut m);
    rec.payload = m.to_message_bytes();
    Verdict::Forward
}

fn edit_sh(f: impl FnOnce(&mut ServerHello) + 'static) -> Hook {
    let mut f = Some(f);
    on(Dir::ToClient, H::SERVER_HELLO, move |_, rec| {
        let f = f.take().expect("once");
        edit::<ServerHello>(rec, f)
    })
}

fn edit_ee(f: impl FnOnce(&mut EncryptedExtensions) + 'static) -> Hook {
    let mut f = Some(f);
    on(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, move |_, rec| {
        let f = f.take().expect("once");
        edit::<EncryptedExtensions>(rec, f)
    })
}

/// Replaces the first record carrying `typ` with what `f` makes.
fn replace(dir: Dir, typ: H, f: fn(&mut Ctx<'_>, &Rec) -> Vec<Vec<u8>>) -> Hook {
    on(dir, typ, move |ctx, rec| Verdict::Emit(f(ctx, rec)))
}

/// Appends `extra` inside the message's body (its length grows to cover it).
fn trailing(rec: &mut Rec, extra: &[u8]) -> Verdict {
    let mut body = rec.payload[4..].to_vec();
    body.extend_from_slice(extra);
    rec.payload = hs_message(H(rec.payload[0]), &body);
    Verdict::Forward
}

fn flip_last(rec: &mut Rec) -> Verdict {
    if let Some(b) = rec.payload.last_mut() {
        *b ^= 0x01;
    }
    Verdict::Forward
}

// ---------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------

fn defaults() -> (ClientConfig, ServerConfig) {
    (client_config(), server_config())
}

/// A server that speaks TLS 1.3 only.
fn tls13_server() -> ServerConfig {
    server_config()
        .versions(&[ProtocolVersion::TLS1_3])
        .expect("versions")
}

/// A client that speaks TLS 1.3 only.
fn tls13_client() -> (ClientConfig, ServerConfig) {
    let c = client_config()
        .versions(&[ProtocolVersion::TLS1_3])
        .expect("versions");
    (c, server_config())
}

/// The server only does P-256, so the client (shares for X25519MLKEM768 and
/// X25519) gets a HelloRetryRequest.
fn retry_configs() -> (ClientConfig, ServerConfig) {
    let s = server_config()
        .groups(&[NamedGroup::SECP256R1])
        .expect("groups");
    (client_config(), s)
}

fn aes128_only() -> (ClientConfig, ServerConfig) {
    let c = client_config()
        .cipher_suites(&[CipherSuite::TLS_AES_128_GCM_SHA256])
        .expect("suites");
    (c, server_config())
}

fn untrusted_server() -> (ClientConfig, ServerConfig) {
    let s = ServerConfig::new(common::tls::certified_key(
        &common::certs::pki().untrusted_ecdsa,
    ));
    (client_config(), s)
}

fn auth_required_no_cert() -> (ClientConfig, ServerConfig) {
    let anchors = TrustAnchors::from_certs(&[common::certs::pki().ca_cert()]).expect("anchors");
    (
        client_config(),
        server_config().client_auth(ClientAuth::Require, anchors),
    )
}

fn client_cert_unknown_ca() -> (ClientConfig, ServerConfig) {
    let pki = common::certs::pki();
    let anchors = TrustAnchors::from_certs(&[nbtls::x509::CertificateDer::from(
        pki.untrusted_ca_der.clone(),
    )])
    .expect("anchors");
    let c = client_config().client_certificate(common::tls::certified_key(&pki.client_ecdsa));
    (c, server_config().client_auth(ClientAuth::Require, anchors))
}

fn client_auth() -> (ClientConfig, ServerConfig) {
    let pki = common::certs::pki();
    let anchors = TrustAnchors::from_certs(&[pki.ca_cert()]).expect("anchors");
    let c = client_config().client_certificate(common::tls::certified_key(&pki.client_ecdsa));
    (c, server_config().client_auth(ClientAuth::Require, anchors))
}

// ---------------------------------------------------------------------------
// TLS 1.2 inputs and configurations
// ---------------------------------------------------------------------------

const V12: [ProtocolVersion; 1] = [ProtocolVersion::TLS1_2];

/// A valid TLS 1.2 ClientHello (no supported_versions) the default server
/// answers with TLS 1.2.
fn hello12() -> ClientHello {
    ClientHello {
        legacy_version: ProtocolVersion::TLS1_2,
        random: [7; 32],
        session_id: vec![],
        cookie: None,
        cipher_suites: vec![
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
        ],
        compression_methods: vec![0],
        extensions: vec![
            ClientExtension::ServerName("localhost".into()),
            ClientExtension::SupportedGroups(vec![NamedGroup::X25519, NamedGroup::SECP256R1]),
            ClientExtension::EcPointFormats(vec![0]),
            ClientExtension::SignatureAlgorithms(vec![
                SignatureScheme::ECDSA_SECP256R1_SHA256,
                SignatureScheme::RSA_PSS_RSAE_SHA256,
            ]),
            ClientExtension::ExtendedMasterSecret,
        ],
    }
}

/// A TLS 1.2 ClientHello record after `f` edited the hello.
fn hello12_with(f: impl FnOnce(&mut ClientHello)) -> Vec<u8> {
    let mut ch = hello12();
    f(&mut ch);
    hs_record(&encode(&ch))
}

/// A TLS 1.2 handshake: the server speaks 1.2 only (so it sends no downgrade
/// sentinel), the client keeps its defaults (1.3 and 1.2).
fn tls12() -> (ClientConfig, ServerConfig) {
    (client_config(), tls12_server())
}

fn tls12_server() -> ServerConfig {
    server_config().versions(&V12).expect("versions")
}

fn tls12_chacha() -> (ClientConfig, ServerConfig) {
    let s = server_config()
        .cipher_suites(&[CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256])
        .expect("suites");
    (client_config(), s)
}

fn tls12_p256() -> (ClientConfig, ServerConfig) {
    let s = tls12_server()
        .groups(&[NamedGroup::SECP256R1])
        .expect("groups");
    (client_config(), s)
}

/// The client offers one TLS 1.2 suite (and the TLS 1.3 ones).
fn tls12_one_suite() -> (ClientConfig, ServerConfig) {
    let c = client_config()
        .cipher_suites(&[
            CipherSuite::TLS_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ])
        .expect("suites");
    (c, tls12_server())
}

fn tls12_untrusted() -> (ClientConfig, ServerConfig) {
    let (c, s) = untrusted_server();
    (c, s.versions(&V12).expect("versions"))
}

fn tls12_auth_required_no_cert() -> (ClientConfig, ServerConfig) {
    let (c, s) = auth_required_no_cert();
    (c, s.versions(&V12).expect("versions"))
}

fn tls12_client_auth() -> (ClientConfig, ServerConfig) {
    let (c, s) = client_auth();
    (c, s.versions(&V12).expect("versions"))
}

fn tls12_client_requires_ems() -> (ClientConfig, ServerConfig) {
    let c = client_config().require_extended_master_secret(true);
    (c, tls12_server())
}

fn tls12_server_requires_ems() -> (ClientConfig, ServerConfig) {
    (
        client_config(),
        tls12_server().require_extended_master_secret(true),
    )
}

/// Calls `f` on the first unit of `dir` of content type `typ`.
fn on_type(
    dir: Dir,
    typ: ContentType,
    mut f: impl FnMut(&mut Ctx<'_>, &mut Rec) -> Verdict + 'static,
) -> Hook {
    let mut done = false;
    Box::new(move |ctx, rec| {
        if done || rec.dir != dir || rec.typ != typ {
            return Verdict::Forward;
        }
        done = true;
        f(ctx, rec)
    })
}

/// Drops the first handshake message `typ` of `dir`.
fn drop_msg(dir: Dir, typ: H) -> Hook {
    on(dir, typ, |_, _| Verdict::Drop)
}

/// Replaces a Finished body with `len` bytes of it (or more, zero-padded).
fn finished_len(rec: &mut Rec, len: usize) -> Verdict {
    let mut body = rec.payload[4..].to_vec();
    body.resize(len, 0);
    rec.payload = hs_message(H::FINISHED, &body);
    Verdict::Forward
}

fn edit_ske(f: impl FnOnce(&mut ServerKeyExchangeEcdhe) + 'static) -> Hook {
    let mut f = Some(f);
    on(Dir::ToClient, H::SERVER_KEY_EXCHANGE, move |_, rec| {
        let f = f.take().expect("once");
        edit::<ServerKeyExchangeEcdhe>(rec, f)
    })
}

fn edit_ch(f: impl FnOnce(&mut ClientHello) + 'static) -> Hook {
    let mut f = Some(f);
    on(Dir::ToServer, H::CLIENT_HELLO, move |_, rec| {
        let f = f.take().expect("once");
        edit::<ClientHello>(rec, f)
    })
}

fn edit_cke(f: impl FnOnce(&mut ClientKeyExchangeEcdhe) + 'static) -> Hook {
    let mut f = Some(f);
    on(Dir::ToServer, H::CLIENT_KEY_EXCHANGE, move |_, rec| {
        let f = f.take().expect("once");
        edit::<ClientKeyExchangeEcdhe>(rec, f)
    })
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `Error::Protocol` with this alert, which is sent.
    Protocol(A),
    /// `Error::LimitExceeded` with this alert, which is sent.
    Limit(A),
    /// `Error::AlertReceived`; nothing is sent back.
    Received(A),
}

enum Scenario {
    /// A fresh server reads these bytes as the client's first flight.
    Raw(fn() -> Vec<u8>),
    /// The same with another server configuration.
    RawWith(fn() -> ServerConfig, fn() -> Vec<u8>),
    /// A real handshake; the hook sees every record on the way.
    Hooked(fn() -> (ClientConfig, ServerConfig), fn() -> Hook),
    /// After a completed handshake the victim is sent these records.
    Established(
        fn() -> (ClientConfig, ServerConfig),
        fn(&mut Ctx<'_>) -> Vec<Vec<u8>>,
    ),
}

struct Case {
    name: &'static str,
    victim: Side,
    scenario: Scenario,
    expect: Expect,
}

fn case(name: &'static str, victim: Side, scenario: Scenario, expect: Expect) -> Case {
    Case {
        name,
        victim,
        scenario,
        expect,
    }
}

use Expect::{Limit, Protocol, Received};
use Scenario::{Established, Hooked, Raw, RawWith};
use Side::{Client, Server};

fn server_cases() -> Vec<Case> {
    vec![
        // --- ClientHello syntax (decode_error: RFC 8446 §6.2, a field out of range or a
        // length that is wrong) ---
        case(
            "client_hello truncated, framing consistent",
            Server,
            Raw(|| {
                let (body, _) = hello_body();
                hello_body_record(&body[..body.len() - 10])
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "client_hello cipher_suites length overruns the message",
            Server,
            Raw(|| {
                let (mut body, _) = hello_body();
                body[2 + 32 + 1 + 32] = 0xff;
                hello_body_record(&body)
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "client_hello extensions block one byte short",
            Server,
            Raw(|| {
                let (mut body, at) = hello_body();
                let n = u16::from_be_bytes([body[at], body[at + 1]]) - 1;
                body[at..at + 2].copy_from_slice(&n.to_be_bytes());
                hello_body_record(&body)
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "client_hello extension body overruns the block",
            Server,
            Raw(|| {
                let (mut body, at) = hello_body();
                // The first extension's own length.
                body[at + 4] = 0x7f;
                hello_body_record(&body)
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "client_hello session_id of 33 bytes",
            Server,
            Raw(|| hello_with(|ch| ch.session_id = vec![1; 33])),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "client_hello with empty cipher_suites",
            Server,
            Raw(|| hello_with(|ch| ch.cipher_suites.clear())),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "client_hello with trailing bytes after the extensions",
            Server,
            Raw(|| {
                let (mut body, _) = hello_body();
                body.push(0);
                hello_body_record(&body)
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // nbtls: RFC 8446 §4.2 forbids duplicates without naming the alert.
        case(
            "client_hello with a duplicate extension",
            Server,
            Raw(|| {
                hello_ext(|e| e.push(ClientExtension::SupportedGroups(vec![NamedGroup::X25519])))
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // --- ClientHello semantics ---
        // §4.2.1: a 1.3-only server facing a client without 1.3 (a server that also
        // speaks 1.2 answers these with 1.2).
        case(
            "client_hello without supported_versions",
            Server,
            RawWith(tls13_server, || {
                hello_ext(|e| drop_ext(e, ExtensionType::SUPPORTED_VERSIONS))
            }),
            Protocol(A::PROTOCOL_VERSION),
        ),
        case(
            "client_hello offering only TLS 1.2",
            Server,
            RawWith(tls13_server, || {
                hello_ext(|e| {
                    drop_ext(e, ExtensionType::SUPPORTED_VERSIONS);
                    e.push(ClientExtension::SupportedVersions(vec![
                        ProtocolVersion::TLS1_2,
                        ProtocolVersion::TLS1_1,
                    ]));
                })
            }),
            Protocol(A::PROTOCOL_VERSION),
        ),
        // §9.2: supported_groups and key_share come together; signature_algorithms is
        // mandatory for certificate authentication.
        case(
            "client_hello without key_share",
            Server,
            Raw(|| hello_ext(|e| drop_ext(e, ExtensionType::KEY_SHARE))),
            Protocol(A::MISSING_EXTENSION),
        ),
        case(
            "client_hello without supported_groups",
            Server,
            Raw(|| hello_ext(|e| drop_ext(e, ExtensionType::SUPPORTED_GROUPS))),
            Protocol(A::MISSING_EXTENSION),
        ),
        case(
            "client_hello without signature_algorithms",
            Server,
            Raw(|| hello_ext(|e| drop_ext(e, ExtensionType::SIGNATURE_ALGORITHMS))),
            Protocol(A::MISSING_EXTENSION),
        ),
        // §4.2.8.2: a share of the wrong size for its group.
        case(
            "client_hello with a 31-byte X25519 share",
            Server,
            Raw(|| {
                hello_ext(|e| {
                    drop_ext(e, ExtensionType::KEY_SHARE);
                    e.push(ClientExtension::KeyShare(vec![KeyShareEntry {
                        group: NamedGroup::X25519,
                        payload: vec![9; 31],
                    }]));
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.2.8: shares only for supported groups, one per group.
        case(
            "client_hello share for a group it does not support",
            Server,
            Raw(|| {
                hello_ext(|e| {
                    drop_ext(e, ExtensionType::SUPPORTED_GROUPS);
                    e.push(ClientExtension::SupportedGroups(vec![
                        NamedGroup::SECP256R1,
                    ]));
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "client_hello with two shares for one group",
            Server,
            Raw(|| {
                hello_ext(|e| {
                    for x in e.iter_mut() {
                        if let ClientExtension::KeyShare(v) = x {
                            let first = v[0].clone();
                            v.push(first);
                        }
                    }
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.1.2: legacy_compression_methods must be exactly [0].
        case(
            "client_hello compression methods [0, 1]",
            Server,
            Raw(|| hello_with(|ch| ch.compression_methods = vec![0, 1])),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "client_hello compression methods [1]",
            Server,
            Raw(|| hello_with(|ch| ch.compression_methods = vec![1])),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.2.11: pre_shared_key must be last.
        case(
            "client_hello with pre_shared_key not last",
            Server,
            Raw(|| {
                hello_ext(|e| {
                    let modes = e.pop().expect("psk modes");
                    e.push(psk_ext());
                    e.push(modes);
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.1.1: no cipher suite in common.
        case(
            "client_hello with no TLS 1.3 suite",
            Server,
            Raw(|| {
                hello_with(|ch| {
                    ch.cipher_suites = vec![CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
                })
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // RFC 8449 §4.
        case(
            "client_hello record_size_limit of 63",
            Server,
            Raw(|| {
                hello_ext(|e| {
                    e.push(ClientExtension::Unknown(
                        ExtensionType::RECORD_SIZE_LIMIT,
                        vec![0, 63],
                    ))
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // RFC 7301 §3.2.
        case(
            "client_hello with no ALPN protocol in common",
            Server,
            RawWith(
                || server_config().alpn(&["h2"]).expect("alpn"),
                || hello_ext(|e| e.push(ClientExtension::Alpn(vec![b"http/1.1".to_vec()]))),
            ),
            Protocol(A::NO_APPLICATION_PROTOCOL),
        ),
        // --- Records before keys ---
        // §5: an unknown record type.
        case(
            "record of content type 99",
            Server,
            Raw(|| plain_record(ContentType(99), b"\x01\x00\x00\x00")),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §5.2: length over 2^14 + 256, refused from the header alone.
        case(
            "record longer than 2^14 + 256",
            Server,
            Raw(|| {
                let mut r = vec![22, 3, 3, 0x41, 0x01];
                r.extend_from_slice(&[0; 64]);
                r
            }),
            Protocol(A::RECORD_OVERFLOW),
        ),
        // §5.1: a TLSPlaintext fragment over 2^14.
        case(
            "plaintext record of 2^14 + 1 bytes",
            Server,
            Raw(|| plain_record(ContentType::HANDSHAKE, &vec![0; 16385])),
            Protocol(A::RECORD_OVERFLOW),
        ),
        // nbtls: §5.1 forbids zero-length handshake fragments without naming the alert.
        case(
            "zero-length handshake record",
            Server,
            Raw(|| plain_record(ContentType::HANDSHAKE, &[])),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // nbtls: the handshake message limit (64 KiB) is checked on the header.
        case(
            "handshake message header over 64 KiB",
            Server,
            Raw(|| hs_record(&[1, 0x01, 0x00, 0x01])),
            Limit(A::DECODE_ERROR),
        ),
        // §4 / §6.2: a message the state machine does not expect.
        case(
            "server_hello sent to a server",
            Server,
            Raw(|| {
                let sh = ServerHello {
                    legacy_version: ProtocolVersion::TLS1_2,
                    random: [3; 32],
                    session_id: vec![],
                    cipher_suite: CipherSuite::TLS_AES_128_GCM_SHA256,
                    compression_method: 0,
                    extensions: vec![ServerExtension::SupportedVersion(ProtocolVersion::TLS1_3)],
                };
                hs_record(&sh.to_message_bytes())
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "finished as the first message",
            Server,
            Raw(|| hs_record(&hs_message(H::FINISHED, &[0; 32]))),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "application data before the handshake",
            Server,
            Raw(|| plain_record(ContentType::APPLICATION_DATA, b"GET / HTTP/1.1\r\n")),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §5: a change_cipher_spec before any ClientHello.
        case(
            "change_cipher_spec before the client_hello",
            Server,
            Raw(|| plain_record(ContentType::CHANGE_CIPHER_SPEC, &[1])),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "alert record of 3 bytes",
            Server,
            Raw(|| plain_record(ContentType::ALERT, &[2, 40, 0])),
            Protocol(A::DECODE_ERROR),
        ),
        // §5.1: handshake messages must not be interleaved with other record types.
        case(
            "client_hello fragment interleaved with an alert",
            Server,
            Raw(|| {
                let msg = encode(&hello());
                let mut out = hs_record(&msg[..40]);
                out.extend(plain_record(ContentType::ALERT, &[1, A::USER_CANCELED.0]));
                out.extend(hs_record(&msg[40..]));
                out
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §6.2: an error alert ends the connection; it is not answered.
        case(
            "fatal alert from the client",
            Server,
            Raw(|| plain_record(ContentType::ALERT, &[2, A::HANDSHAKE_FAILURE.0])),
            Received(A::HANDSHAKE_FAILURE),
        ),
        // §6: in TLS 1.3 every alert but the closure alerts is fatal, whatever its level.
        case(
            "warning-level bad_certificate from the client",
            Server,
            Raw(|| plain_record(ContentType::ALERT, &[1, A::BAD_CERTIFICATE.0])),
            Received(A::BAD_CERTIFICATE),
        ),
        // nbtls: a close_notify before the handshake completes aborts it (a sticky
        // error, not an EOF that recv would report as Ok(0)).
        case(
            "close_notify during the handshake",
            Server,
            Raw(|| plain_record(ContentType::ALERT, &[1, A::CLOSE_NOTIFY.0])),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // --- HelloRetryRequest (§4.1.4, §4.2.8) ---
        case(
            "second client_hello with a share for another group",
            Server,
            Raw(|| {
                let mut b = hello_for_retry();
                b.extend(second_hello(NamedGroup::SECP256R1, None));
                b
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // nbtls: §4.2.10 forbids early_data after an HRR without naming the alert.
        case(
            "second client_hello with early_data",
            Server,
            Raw(|| {
                let mut b = hello_for_retry();
                b.extend(second_hello(
                    NamedGroup::X25519,
                    Some(ClientExtension::EarlyData),
                ));
                b
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "finished instead of the second client_hello",
            Server,
            Raw(|| {
                let mut b = hello_for_retry();
                b.extend(hs_record(&hs_message(H::FINISHED, &[0; 32])));
                b
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // --- After the server has keys (the MITM opens its alert) ---
        // §5.1 ("handshake messages ... immediately precede a key change ... MUST be
        // aligned with a record boundary"): a second ClientHello behind the first.
        case(
            "two client_hellos in one record",
            Server,
            Raw(|| {
                let mut m = encode(&hello());
                m.extend(encode(&hello()));
                hs_record(&m)
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "a second client_hello record",
            Server,
            Hooked(defaults, || {
                on(Dir::ToServer, H::CLIENT_HELLO, |ctx, rec| {
                    let r = ctx.record(rec.typ, &rec.payload);
                    Verdict::Emit(vec![r.clone(), r])
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §4.4.4.
        case(
            "client finished with a flipped bit",
            Server,
            Hooked(defaults, || {
                on(Dir::ToServer, H::FINISHED, |_, rec| flip_last(rec))
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        case(
            "client finished one byte short",
            Server,
            Hooked(defaults, || {
                on(Dir::ToServer, H::FINISHED, |_, rec| {
                    let body = rec.payload[4..rec.payload.len() - 1].to_vec();
                    rec.payload = hs_message(H::FINISHED, &body);
                    Verdict::Forward
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "application data before the client finished",
            Server,
            Hooked(defaults, || {
                on(Dir::ToServer, H::FINISHED, |ctx, rec| {
                    let data = ctx.record(ContentType::APPLICATION_DATA, b"early");
                    let fin = ctx.record(rec.typ, &rec.payload);
                    Verdict::Emit(vec![data, fin])
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "key_update instead of the client finished",
            Server,
            Hooked(defaults, || {
                replace(Dir::ToServer, H::FINISHED, |ctx, _| {
                    vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[0]))]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §5: a protected change_cipher_spec.
        case(
            "protected change_cipher_spec from the client",
            Server,
            Hooked(defaults, || {
                replace(Dir::ToServer, H::FINISHED, |ctx, _| {
                    vec![ctx.record(ContentType::CHANGE_CIPHER_SPEC, &[1])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §4.4.2.4.
        case(
            "client without a certificate when one is required",
            Server,
            Hooked(auth_required_no_cert, pass),
            Protocol(A::CERTIFICATE_REQUIRED),
        ),
        case(
            "client certificate from an unknown CA",
            Server,
            Hooked(client_cert_unknown_ca, pass),
            Protocol(A::UNKNOWN_CA),
        ),
        // §4.4.3.
        case(
            "client certificate_verify with a flipped signature bit",
            Server,
            Hooked(client_auth, || {
                on(Dir::ToServer, H::CERTIFICATE_VERIFY, |_, rec| {
                    flip_last(rec)
                })
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        // A client that fails before it has keys alerts in plaintext; the server,
        // already reading with the client handshake key, still reports the alert.
        case(
            "plaintext alert from a client without keys",
            Server,
            Hooked(defaults, || {
                on(Dir::ToServer, H::FINISHED, |_, _| {
                    Verdict::Emit(vec![plain_record(
                        ContentType::ALERT,
                        &[2, A::ILLEGAL_PARAMETER.0],
                    )])
                })
            }),
            Received(A::ILLEGAL_PARAMETER),
        ),
        // --- After the handshake ---
        // §4.6.3.
        case(
            "client key_update with value 2",
            Server,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[2]))]
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.6.1: only servers send tickets.
        case(
            "new_session_ticket from the client",
            Server,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &ticket(60))]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §5: change_cipher_spec after the peer's Finished.
        case(
            "change_cipher_spec from the client after the handshake",
            Server,
            Established(defaults, |_| {
                vec![plain_record(ContentType::CHANGE_CIPHER_SPEC, &[1])]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // §5.2.
        case(
            "client record with a flipped ciphertext bit",
            Server,
            Established(defaults, |ctx| {
                let mut r = ctx.record(ContentType::APPLICATION_DATA, b"data");
                r[7] ^= 0x80;
                vec![r]
            }),
            Protocol(A::BAD_RECORD_MAC),
        ),
        case(
            "client record longer than 2^14 + 256",
            Server,
            Established(defaults, |_| {
                let mut r = vec![23, 3, 3, 0x41, 0x01];
                r.extend_from_slice(&[0; 16641]);
                vec![r]
            }),
            Protocol(A::RECORD_OVERFLOW),
        ),
        case(
            "unprotected handshake record after the handshake",
            Server,
            Established(defaults, |_| {
                vec![plain_record(ContentType::HANDSHAKE, &ticket(60))]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "fatal alert from the client after the handshake",
            Server,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::ALERT, &[2, A::INTERNAL_ERROR.0])]
            }),
            Received(A::INTERNAL_ERROR),
        ),
    ]
}

fn ticket(lifetime: u32) -> Vec<u8> {
    NewSessionTicket13 {
        lifetime,
        age_add: 1,
        nonce: vec![0],
        ticket: vec![5; 32],
        extensions: vec![],
    }
    .to_message_bytes()
}

fn client_cases() -> Vec<Case> {
    vec![
        // --- ServerHello (§4.1.3, §4.2) ---
        case(
            "server_hello with a suite the client did not offer",
            Client,
            Hooked(aes128_only, || {
                edit_sh(|sh| sh.cipher_suite = CipherSuite::TLS_AES_256_GCM_SHA384)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "server_hello not echoing the session id",
            Client,
            Hooked(defaults, || edit_sh(|sh| sh.session_id[0] ^= 1)),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.2.1: a 1.3-only client reads a ServerHello without supported_versions
        // as a TLS 1.2 answer it cannot speak.
        case(
            "server_hello without supported_versions (a TLS 1.2 answer)",
            Client,
            Hooked(tls13_client, || {
                edit_sh(|sh| {
                    sh.extensions
                        .retain(|e| e.ext_type() != ExtensionType::SUPPORTED_VERSIONS)
                })
            }),
            Protocol(A::PROTOCOL_VERSION),
        ),
        // §4.2.1: a selected version the client did not offer.
        case(
            "server_hello selecting TLS 1.2 in supported_versions",
            Client,
            Hooked(defaults, || {
                edit_sh(|sh| {
                    for e in sh.extensions.iter_mut() {
                        if let ServerExtension::SupportedVersion(v) = e {
                            *v = ProtocolVersion::TLS1_2;
                        }
                    }
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // nbtls: §4.1.3 requires compression 0 without naming the alert.
        case(
            "server_hello selecting compression 1",
            Client,
            Hooked(defaults, || edit_sh(|sh| sh.compression_method = 1)),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.2.8: the selected group must be one the client sent a share for.
        case(
            "server_hello share for a group the client sent no share for",
            Client,
            Hooked(defaults, || {
                edit_sh(|sh| {
                    for e in sh.extensions.iter_mut() {
                        if let ServerExtension::KeyShare(k) = e {
                            k.group = NamedGroup::SECP256R1;
                        }
                    }
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "server_hello hybrid share one byte short",
            Client,
            Hooked(defaults, || {
                edit_sh(|sh| {
                    for e in sh.extensions.iter_mut() {
                        if let ServerExtension::KeyShare(k) = e {
                            k.payload.pop();
                        }
                    }
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §4.2: an extension the client never sent.
        case(
            "server_hello with an unsolicited extension",
            Client,
            Hooked(defaults, || {
                edit_sh(|sh| {
                    sh.extensions
                        .push(ServerExtension::Unknown(ExtensionType(0x1234), vec![]))
                })
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        // §4.2: an extension the client sent, in a message it does not belong to.
        case(
            "server_hello carrying server_name",
            Client,
            Hooked(defaults, || {
                edit_sh(|sh| sh.extensions.push(ServerExtension::ServerNameAck))
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "server_hello with trailing bytes",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::SERVER_HELLO, |_, rec| trailing(rec, &[0]))
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // §5.1: ServerHello must end its record (a key change follows).
        case(
            "server_hello followed by more handshake bytes in its record",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::SERVER_HELLO, |_, rec| {
                    rec.payload.extend_from_slice(&[8, 0, 0]);
                    Verdict::Forward
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "server fatal alert instead of the server_hello",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::SERVER_HELLO, |_, _| {
                    vec![plain_record(
                        ContentType::ALERT,
                        &[2, A::HANDSHAKE_FAILURE.0],
                    )]
                })
            }),
            Received(A::HANDSHAKE_FAILURE),
        ),
        // --- HelloRetryRequest (§4.1.4) ---
        case(
            "hello_retry_request selecting a group the client already sent",
            Client,
            Hooked(retry_configs, || {
                on_hrr(|_, rec| edit::<ServerHello>(rec, |h| set_hrr_group(h, NamedGroup::X25519)))
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "hello_retry_request selecting a group the client did not offer",
            Client,
            Hooked(retry_configs, || {
                on_hrr(|_, rec| {
                    edit::<ServerHello>(rec, |h| set_hrr_group(h, NamedGroup::SECP521R1))
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "hello_retry_request that changes nothing",
            Client,
            Hooked(retry_configs, || {
                on_hrr(|_, rec| {
                    edit::<ServerHello>(rec, |h| {
                        h.extensions
                            .retain(|e| e.ext_type() != ExtensionType::KEY_SHARE)
                    })
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "hello_retry_request with an unsolicited extension",
            Client,
            Hooked(retry_configs, || {
                on_hrr(|_, rec| {
                    edit::<ServerHello>(rec, |h| {
                        h.extensions
                            .push(ServerExtension::Unknown(ExtensionType(0x1234), vec![]))
                    })
                })
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        case(
            "a second hello_retry_request",
            Client,
            Hooked(retry_configs, || {
                let mut hrr: Option<Vec<u8>> = None;
                hook(move |ctx, rec| {
                    if rec.dir != Dir::ToClient || rec.hs_type() != Some(H::SERVER_HELLO) {
                        return Verdict::Forward;
                    }
                    if is_hrr(rec) {
                        hrr = Some(rec.payload.clone());
                        return Verdict::Forward;
                    }
                    let again = hrr.clone().expect("an HRR came first");
                    Verdict::Emit(vec![ctx.record(ContentType::HANDSHAKE, &again)])
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "server_hello suite differing from the hello_retry_request",
            Client,
            Hooked(retry_configs, || {
                edit_sh(|sh| sh.cipher_suite = CipherSuite::TLS_AES_256_GCM_SHA384)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // --- EncryptedExtensions (§4.3.1, §4.2) ---
        case(
            "encrypted_extensions carrying key_share",
            Client,
            Hooked(defaults, || {
                edit_ee(|ee| {
                    ee.extensions.push(ServerExtension::KeyShare(KeyShareEntry {
                        group: NamedGroup::X25519,
                        payload: vec![1; 32],
                    }))
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "encrypted_extensions with an unsolicited extension",
            Client,
            Hooked(defaults, || {
                edit_ee(|ee| {
                    ee.extensions
                        .push(ServerExtension::Unknown(ExtensionType(0x1234), vec![]))
                })
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        case(
            "encrypted_extensions with an unrequested record_size_limit",
            Client,
            Hooked(defaults, || {
                edit_ee(|ee| ee.extensions.push(ServerExtension::RecordSizeLimit(4096)))
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        case(
            "encrypted_extensions with ALPN the client did not ask for",
            Client,
            Hooked(defaults, || {
                edit_ee(|ee| ee.extensions.push(ServerExtension::Alpn(b"h2".to_vec())))
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        case(
            "encrypted_extensions with trailing bytes",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |_, rec| {
                    trailing(rec, &[0, 0])
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "key_update in place of encrypted_extensions",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[0]))]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // --- Certificate (§4.4.2) ---
        case(
            "server certificate from an unknown CA",
            Client,
            Hooked(untrusted_server, pass),
            Protocol(A::UNKNOWN_CA),
        ),
        // §4.4.2.4.
        case(
            "empty certificate list from the server",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE, |_, rec| {
                    edit::<nbtls::codec::Certificate13>(rec, |c| c.entries.clear())
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // nbtls: §4.4.2 requires an empty context from a server, alert unnamed.
        case(
            "server certificate with a request context",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE, |_, rec| {
                    edit::<nbtls::codec::Certificate13>(rec, |c| c.context = vec![1])
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "certificate with trailing bytes",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE, |_, rec| trailing(rec, &[0]))
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "certificate entry with an empty cert_data",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE, |_, rec| {
                    let mut body = vec![0u8];
                    let entry = {
                        let mut e = vec![0, 0, 0];
                        e.extend_from_slice(&[0, 0]);
                        e
                    };
                    body.extend_from_slice(&(entry.len() as u32).to_be_bytes()[1..]);
                    body.extend_from_slice(&entry);
                    rec.payload = hs_message(H::CERTIFICATE, &body);
                    Verdict::Forward
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "certificate_verify in place of certificate",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE, |_, _| Verdict::Drop)
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // --- CertificateVerify (§4.4.3) ---
        case(
            "certificate_verify with an RSA PKCS#1 scheme",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE_VERIFY, |_, rec| {
                    edit::<nbtls::codec::CertificateVerify>(rec, |cv| {
                        cv.scheme = SignatureScheme::RSA_PKCS1_SHA256
                    })
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "certificate_verify with a flipped signature bit",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::CERTIFICATE_VERIFY, |_, rec| {
                    edit::<nbtls::codec::CertificateVerify>(rec, |cv| cv.signature[10] ^= 0x04)
                })
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        // --- Finished (§4.4.4) ---
        case(
            "server finished with a flipped bit",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::FINISHED, |_, rec| flip_last(rec))
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        // Any change to the transcript is caught by the Finished MAC.
        case(
            "encrypted_extensions altered in transit (transcript mismatch)",
            Client,
            Hooked(defaults, || {
                // server_name ack is allowed (the client sent SNI), so only the
                // transcript changes: the signature over it fails first.
                edit_ee(|ee| {
                    ee.extensions
                        .retain(|e| !matches!(e, ServerExtension::ServerNameAck))
                })
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        // --- Records under the handshake key (§5) ---
        case(
            "server record with a flipped ciphertext bit",
            Client,
            Hooked(defaults, || {
                on(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, rec| {
                    let mut r = ctx.record(rec.typ, &rec.payload);
                    r[8] ^= 0x01;
                    Verdict::Emit(vec![r])
                })
            }),
            Protocol(A::BAD_RECORD_MAC),
        ),
        case(
            "server record longer than 2^14 + 256",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |_, _| {
                    let mut r = vec![23, 3, 3, 0x41, 0x01];
                    r.extend_from_slice(&[0; 16641]);
                    vec![r]
                })
            }),
            Protocol(A::RECORD_OVERFLOW),
        ),
        case(
            "server plaintext over 2^14 after decryption",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    let mut inner = vec![0x41; 16385];
                    inner.push(ContentType::HANDSHAKE.0);
                    vec![ctx.seal_inner(&inner)]
                })
            }),
            Protocol(A::RECORD_OVERFLOW),
        ),
        case(
            "server record whose inner plaintext is all zeros",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    vec![ctx.seal_inner(&[0; 20])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "server record of inner content type 99",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    vec![ctx.seal_inner(&[1, 2, 3, 99])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "protected change_cipher_spec from the server",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    vec![ctx.record(ContentType::CHANGE_CIPHER_SPEC, &[1])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "change_cipher_spec of value 2 during the handshake",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |_, _| {
                    vec![plain_record(ContentType::CHANGE_CIPHER_SPEC, &[2])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "unprotected encrypted_extensions",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |_, rec| {
                    vec![plain_record(ContentType::HANDSHAKE, &rec.payload)]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "protected alert of 3 bytes",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    vec![ctx.record(ContentType::ALERT, &[2, 40, 0])]
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "empty protected handshake record",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::ENCRYPTED_EXTENSIONS, |ctx, _| {
                    vec![ctx.record(ContentType::HANDSHAKE, &[])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "protected close_notify during the handshake",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::CERTIFICATE, |ctx, _| {
                    vec![ctx.record(ContentType::ALERT, &[1, A::CLOSE_NOTIFY.0])]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "new_session_ticket during the handshake",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::CERTIFICATE, |ctx, _| {
                    vec![ctx.record(ContentType::HANDSHAKE, &ticket(60))]
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "protected fatal alert from the server",
            Client,
            Hooked(defaults, || {
                replace(Dir::ToClient, H::CERTIFICATE, |ctx, _| {
                    vec![ctx.record(ContentType::ALERT, &[2, A::INTERNAL_ERROR.0])]
                })
            }),
            Received(A::INTERNAL_ERROR),
        ),
        // --- After the handshake ---
        case(
            "key_update with value 2",
            Client,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[2]))]
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // §5.1.
        case(
            "key_update not at a record boundary",
            Client,
            Established(defaults, |ctx| {
                let mut m = hs_message(H::KEY_UPDATE, &[0]);
                m.extend_from_slice(&[H::KEY_UPDATE.0, 0, 0]);
                vec![ctx.record(ContentType::HANDSHAKE, &m)]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "change_cipher_spec after the handshake",
            Client,
            Established(defaults, |_| {
                vec![plain_record(ContentType::CHANGE_CIPHER_SPEC, &[1])]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // nbtls: §4.6.1 caps the lifetime at 7 days without naming the alert.
        case(
            "new_session_ticket with a lifetime over 7 days",
            Client,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &ticket(604_801))]
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "new_session_ticket with trailing bytes",
            Client,
            Established(defaults, |ctx| {
                let mut t = ticket(60);
                t.push(0);
                t[3] += 1;
                vec![ctx.record(ContentType::HANDSHAKE, &t)]
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "server_hello after the handshake",
            Client,
            Established(defaults, |ctx| {
                vec![ctx.record(
                    ContentType::HANDSHAKE,
                    &hs_message(H::SERVER_HELLO, &[0; 40]),
                )]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "application data with a flipped ciphertext bit",
            Client,
            Established(defaults, |ctx| {
                let mut r = ctx.record(ContentType::APPLICATION_DATA, b"hello");
                let n = r.len() - 1;
                r[n] ^= 0x10;
                vec![r]
            }),
            Protocol(A::BAD_RECORD_MAC),
        ),
        case(
            "padding-only application record",
            Client,
            Established(defaults, |ctx| vec![ctx.seal_inner(&[0; 100])]),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "alert of 3 bytes after the handshake",
            Client,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::ALERT, &[1, 0, 0])]
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "fatal alert from the server after the handshake",
            Client,
            Established(defaults, |ctx| {
                vec![ctx.record(ContentType::ALERT, &[2, A::DECRYPT_ERROR.0])]
            }),
            Received(A::DECRYPT_ERROR),
        ),
    ]
}

/// TLS 1.2 (RFC 5246, 5746, 7507, 7627, 8422; RFC 8446 §4.1.3 for the downgrade
/// sentinel) against a server.
fn tls12_server_cases() -> Vec<Case> {
    vec![
        // --- ClientHello (a 1.2 hello the default 1.3-and-1.2 server answers in 1.2) ---
        // RFC 7507 §3: a fallback to a server that could have done better.
        case(
            "tls12 client_hello with TLS_FALLBACK_SCSV to a 1.3-capable server",
            Server,
            Raw(|| hello12_with(|ch| ch.cipher_suites.push(CipherSuite::TLS_FALLBACK_SCSV))),
            Protocol(A::INAPPROPRIATE_FALLBACK),
        ),
        // RFC 5746 §3.6: the initial handshake carries an empty renegotiation_info.
        case(
            "tls12 client_hello with a non-empty renegotiation_info",
            Server,
            Raw(|| {
                hello12_with(|ch| {
                    ch.extensions
                        .push(ClientExtension::RenegotiationInfo(vec![1; 12]))
                })
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // RFC 8422 §5.1.2.
        case(
            "tls12 client_hello whose ec_point_formats lacks uncompressed",
            Server,
            Raw(|| {
                hello12_with(|ch| {
                    drop_ext(&mut ch.extensions, ExtensionType::EC_POINT_FORMATS);
                    ch.extensions
                        .push(ClientExtension::EcPointFormats(vec![1, 2]));
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // nbtls: RFC 5246 §7.4.1.2 requires null compression to be offered, alert unnamed.
        case(
            "tls12 client_hello without null compression",
            Server,
            Raw(|| hello12_with(|ch| ch.compression_methods = vec![1])),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // RFC 5246 §7.4.1.3: no acceptable suite (static RSA is not supported).
        case(
            "tls12 client_hello with no suite in common",
            Server,
            Raw(|| hello12_with(|ch| ch.cipher_suites = vec![CipherSuite(0x009c)])),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // RFC 8422 §5.1.1: no curve in common, so no ECDHE suite.
        case(
            "tls12 client_hello with no group in common",
            Server,
            Raw(|| {
                hello12_with(|ch| {
                    drop_ext(&mut ch.extensions, ExtensionType::SUPPORTED_GROUPS);
                    ch.extensions.push(ClientExtension::SupportedGroups(vec![
                        NamedGroup::SECP521R1,
                    ]));
                })
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // nbtls: without signature_algorithms RFC 5246 §7.4.1.4.1 means SHA-1, which
        // RFC 9155 forbids: nothing to sign with.
        case(
            "tls12 client_hello without signature_algorithms",
            Server,
            Raw(|| {
                hello12_with(|ch| drop_ext(&mut ch.extensions, ExtensionType::SIGNATURE_ALGORITHMS))
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // RFC 8446 §4.2.1 / RFC 5246 App. E.1: nothing at or above TLS 1.2.
        case(
            "tls12 client_hello with legacy_version TLS 1.1",
            Server,
            Raw(|| hello12_with(|ch| ch.legacy_version = ProtocolVersion::TLS1_1)),
            Protocol(A::PROTOCOL_VERSION),
        ),
        // RFC 7301 §3.2.
        case(
            "tls12 client_hello with no ALPN protocol in common",
            Server,
            RawWith(
                || server_config().alpn(&["h2"]).expect("alpn"),
                || {
                    hello12_with(|ch| {
                        ch.extensions
                            .push(ClientExtension::Alpn(vec![b"http/1.1".to_vec()]))
                    })
                },
            ),
            Protocol(A::NO_APPLICATION_PROTOCOL),
        ),
        // RFC 7627 §5.2: a server that requires EMS refuses a client without it.
        case(
            "tls12 client_hello without extended_master_secret, server requires it",
            Server,
            Hooked(tls12_server_requires_ems, || {
                edit_ch(|ch| drop_ext(&mut ch.extensions, ExtensionType::EXTENDED_MASTER_SECRET))
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // --- ClientKeyExchange (RFC 8422 §5.7, §5.11) ---
        case(
            "tls12 client_key_exchange with a P-256 point off the curve",
            Server,
            Hooked(tls12_p256, || {
                edit_cke(|cke| {
                    let n = cke.public.len() - 1;
                    cke.public[n] ^= 0x01;
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // nbtls: RFC 8422 §5.11 says abort on the all-zero X25519 result, alert unnamed.
        case(
            "tls12 client_key_exchange with an all-zero X25519 share",
            Server,
            Hooked(tls12, || edit_cke(|cke| cke.public = vec![0; 32])),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "tls12 client_key_exchange with trailing bytes",
            Server,
            Hooked(tls12, || {
                on(Dir::ToServer, H::CLIENT_KEY_EXCHANGE, |_, rec| {
                    trailing(rec, &[0])
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // --- Order (RFC 5246 §7.4, §7.1) ---
        case(
            "tls12 change_cipher_spec in place of the client_key_exchange",
            Server,
            Hooked(tls12, || drop_msg(Dir::ToServer, H::CLIENT_KEY_EXCHANGE)),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 client finished before its change_cipher_spec",
            Server,
            Hooked(tls12, || {
                on_type(Dir::ToServer, ContentType::CHANGE_CIPHER_SPEC, |_, _| {
                    Verdict::Drop
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // RFC 5246 §7.1: the message is a single byte of value 1.
        case(
            "tls12 client change_cipher_spec of value 2",
            Server,
            Hooked(tls12, || {
                on_type(Dir::ToServer, ContentType::CHANGE_CIPHER_SPEC, |ctx, _| {
                    Verdict::Emit(vec![ctx.record(ContentType::CHANGE_CIPHER_SPEC, &[2])])
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 application data before the client finished",
            Server,
            Hooked(tls12, || {
                on(Dir::ToServer, H::FINISHED, |ctx, rec| {
                    let data = ctx.record(ContentType::APPLICATION_DATA, b"early");
                    let fin = ctx.record(rec.typ, &rec.payload);
                    Verdict::Emit(vec![data, fin])
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // --- Finished (RFC 5246 §7.4.9), protected under the client's new key ---
        case(
            "tls12 client finished with a flipped bit",
            Server,
            Hooked(tls12, || {
                on(Dir::ToServer, H::FINISHED, |_, rec| flip_last(rec))
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        case(
            "tls12 client finished one byte short",
            Server,
            Hooked(tls12, || {
                on(Dir::ToServer, H::FINISHED, |_, rec| finished_len(rec, 11))
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "tls12 client finished one byte long",
            Server,
            Hooked(tls12, || {
                on(Dir::ToServer, H::FINISHED, |_, rec| finished_len(rec, 13))
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // --- Client authentication (RFC 5246 §7.4.6, §7.4.8) ---
        case(
            "tls12 client without a certificate when one is required",
            Server,
            Hooked(tls12_auth_required_no_cert, pass),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        case(
            "tls12 client certificate_verify with a flipped signature bit",
            Server,
            Hooked(tls12_client_auth, || {
                on(Dir::ToServer, H::CERTIFICATE_VERIFY, |_, rec| {
                    flip_last(rec)
                })
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        // --- After the handshake ---
        // RFC 5246 §6.2.3.3: the record does not authenticate.
        case(
            "tls12 client record with a flipped tag bit",
            Server,
            Established(tls12, |ctx| {
                let mut r = ctx.record(ContentType::APPLICATION_DATA, b"data");
                let n = r.len() - 1;
                r[n] ^= 0x01;
                vec![r]
            }),
            Protocol(A::BAD_RECORD_MAC),
        ),
        // RFC 5288 §3: an AES-GCM record carries an 8-byte explicit nonce and a tag.
        case(
            "tls12 client record shorter than its explicit nonce and tag",
            Server,
            Established(tls12, |_| {
                vec![plain_record(ContentType::APPLICATION_DATA, &[0; 23])]
            }),
            Protocol(A::BAD_RECORD_MAC),
        ),
        // RFC 5246 §6.2.1.
        case(
            "tls12 client plaintext of 2^14 + 1 bytes",
            Server,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::APPLICATION_DATA, &vec![0x41; 16385])]
            }),
            Protocol(A::RECORD_OVERFLOW),
        ),
        // KeyUpdate is a TLS 1.3 message.
        case(
            "tls12 key_update from the client",
            Server,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[0]))]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // RFC 5246 §7.4.1.1: only servers send HelloRequest.
        case(
            "tls12 hello_request from the client",
            Server,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::HELLO_REQUEST, &[]))]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 change_cipher_spec from the client after the handshake",
            Server,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::CHANGE_CIPHER_SPEC, &[1])]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 fatal alert from the client after the handshake",
            Server,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::ALERT, &[2, A::INTERNAL_ERROR.0])]
            }),
            Received(A::INTERNAL_ERROR),
        ),
    ]
}

/// TLS 1.2 against a client.
fn tls12_client_cases() -> Vec<Case> {
    vec![
        // --- ServerHello (RFC 5246 §7.4.1.3, §7.4.1.4) ---
        // RFC 8446 §4.1.3: a 1.3-capable client refuses a 1.2 answer carrying the
        // downgrade sentinel: here an attacker stripped 1.3 from the client's offer.
        case(
            "tls12 server_hello with the downgrade sentinel (1.3 stripped in transit)",
            Client,
            Hooked(defaults, || {
                edit_ch(|ch| {
                    for e in ch.extensions.iter_mut() {
                        if let ClientExtension::SupportedVersions(v) = e {
                            v.retain(|x| *x != ProtocolVersion::TLS1_3);
                        }
                    }
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // RFC 8446 §4.1.3 / RFC 5246 §7.4.1.3: a suite the client did not offer for 1.2.
        case(
            "tls12 server_hello selecting a TLS 1.3 suite",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| sh.cipher_suite = CipherSuite::TLS_AES_128_GCM_SHA256)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "tls12 server_hello selecting a suite the client did not offer",
            Client,
            Hooked(tls12_one_suite, || {
                edit_sh(|sh| sh.cipher_suite = CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // nbtls: RFC 5246 §7.4.1.3 (a method from the client's list), alert unnamed.
        case(
            "tls12 server_hello selecting compression 1",
            Client,
            Hooked(tls12, || edit_sh(|sh| sh.compression_method = 1)),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // RFC 5246 App. E.1.
        case(
            "tls12 server_hello with legacy_version TLS 1.1",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| sh.legacy_version = ProtocolVersion::TLS1_1)
            }),
            Protocol(A::PROTOCOL_VERSION),
        ),
        // nbtls: an echoed session id means resumption (RFC 5246 §7.4.1.3), and the
        // client offered none.
        case(
            "tls12 server_hello resuming a session the client did not offer",
            Client,
            Hooked(tls12, || {
                let mut sid = Vec::new();
                hook(move |_, rec| match (rec.dir, rec.hs_type()) {
                    (Dir::ToServer, Some(H::CLIENT_HELLO)) => {
                        sid = ClientHello::from_message(&rec.payload)
                            .expect("hello")
                            .session_id;
                        Verdict::Forward
                    }
                    (Dir::ToClient, Some(H::SERVER_HELLO)) => {
                        let sid = sid.clone();
                        edit::<ServerHello>(rec, move |sh| sh.session_id = sid)
                    }
                    _ => Verdict::Forward,
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "tls12 server_hello with an unsolicited extension",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| {
                    sh.extensions
                        .push(ServerExtension::Unknown(ExtensionType(0x1234), vec![]))
                })
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        case(
            "tls12 server_hello with ALPN the client did not ask for",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| sh.extensions.push(ServerExtension::Alpn(b"h2".to_vec())))
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        case(
            "tls12 server_hello with an unrequested record_size_limit",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| sh.extensions.push(ServerExtension::RecordSizeLimit(4096)))
            }),
            Protocol(A::UNSUPPORTED_EXTENSION),
        ),
        // RFC 5746 §3.4.
        case(
            "tls12 server_hello with a non-empty renegotiation_info",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| {
                    for e in sh.extensions.iter_mut() {
                        if let ServerExtension::RenegotiationInfo(v) = e {
                            *v = vec![1; 24];
                        }
                    }
                })
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // RFC 8422 §5.2.
        case(
            "tls12 server_hello whose ec_point_formats lacks uncompressed",
            Client,
            Hooked(tls12, || {
                edit_sh(|sh| {
                    for e in sh.extensions.iter_mut() {
                        if let ServerExtension::EcPointFormats(v) = e {
                            *v = vec![1];
                        }
                    }
                })
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // RFC 7627 §5.3: a client that requires EMS refuses a server without it.
        case(
            "tls12 server_hello without extended_master_secret, client requires it",
            Client,
            Hooked(tls12_client_requires_ems, || {
                edit_sh(|sh| {
                    sh.extensions
                        .retain(|e| e.ext_type() != ExtensionType::EXTENDED_MASTER_SECRET)
                })
            }),
            Protocol(A::HANDSHAKE_FAILURE),
        ),
        // --- Certificate ---
        case(
            "tls12 server certificate from an unknown CA",
            Client,
            Hooked(tls12_untrusted, pass),
            Protocol(A::UNKNOWN_CA),
        ),
        // nbtls: RFC 5246 §7.4.2 requires a server certificate, alert unnamed.
        case(
            "tls12 empty certificate list from the server",
            Client,
            Hooked(tls12, || {
                on(Dir::ToClient, H::CERTIFICATE, |_, rec| {
                    edit::<Certificate12>(rec, |c| c.certs.clear())
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // --- ServerKeyExchange (RFC 8422 §5.4, RFC 5246 §7.4.1.4.1) ---
        case(
            "tls12 server_key_exchange with a flipped signature bit",
            Client,
            Hooked(tls12, || edit_ske(|ske| ske.signature[10] ^= 0x04)),
            Protocol(A::DECRYPT_ERROR),
        ),
        case(
            "tls12 server_key_exchange with a group the client did not offer",
            Client,
            Hooked(tls12, || edit_ske(|ske| ske.group = NamedGroup::SECP521R1)),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "tls12 server_key_exchange with a TLS 1.3-only group",
            Client,
            Hooked(tls12, || {
                edit_ske(|ske| ske.group = NamedGroup::X25519MLKEM768)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "tls12 server_key_exchange signed with a scheme the client did not offer",
            Client,
            Hooked(tls12, || {
                edit_ske(|ske| ske.scheme = SignatureScheme::ECDSA_SHA1)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        case(
            "tls12 server_key_exchange signed with an RSA scheme under an ECDSA suite",
            Client,
            Hooked(tls12, || {
                edit_ske(|ske| ske.scheme = SignatureScheme::RSA_PSS_RSAE_SHA256)
            }),
            Protocol(A::ILLEGAL_PARAMETER),
        ),
        // --- ServerHelloDone and order ---
        // RFC 5246 §7.4.5: struct { } ServerHelloDone.
        case(
            "tls12 server_hello_done not empty",
            Client,
            Hooked(tls12, || {
                on(Dir::ToClient, H::SERVER_HELLO_DONE, |_, rec| {
                    trailing(rec, &[0])
                })
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "tls12 server_key_exchange in place of the certificate",
            Client,
            Hooked(tls12, || drop_msg(Dir::ToClient, H::CERTIFICATE)),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 server_hello_done in place of the server_key_exchange",
            Client,
            Hooked(tls12, || drop_msg(Dir::ToClient, H::SERVER_KEY_EXCHANGE)),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        // --- ChangeCipherSpec and Finished (RFC 5246 §7.1, §7.4.9) ---
        case(
            "tls12 server finished before its change_cipher_spec",
            Client,
            Hooked(tls12, || {
                on_type(Dir::ToClient, ContentType::CHANGE_CIPHER_SPEC, |_, _| {
                    Verdict::Drop
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 server change_cipher_spec of value 2",
            Client,
            Hooked(tls12, || {
                on_type(Dir::ToClient, ContentType::CHANGE_CIPHER_SPEC, |ctx, _| {
                    Verdict::Emit(vec![ctx.record(ContentType::CHANGE_CIPHER_SPEC, &[2])])
                })
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 server finished with a flipped bit",
            Client,
            Hooked(tls12, || {
                on(Dir::ToClient, H::FINISHED, |_, rec| flip_last(rec))
            }),
            Protocol(A::DECRYPT_ERROR),
        ),
        case(
            "tls12 server finished one byte short",
            Client,
            Hooked(tls12, || {
                on(Dir::ToClient, H::FINISHED, |_, rec| finished_len(rec, 11))
            }),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "tls12 server finished one byte long",
            Client,
            Hooked(tls12, || {
                on(Dir::ToClient, H::FINISHED, |_, rec| finished_len(rec, 13))
            }),
            Protocol(A::DECODE_ERROR),
        ),
        // --- After the handshake ---
        case(
            "tls12 server record with a flipped tag bit (ChaCha20-Poly1305)",
            Client,
            Established(tls12_chacha, |ctx| {
                let mut r = ctx.record(ContentType::APPLICATION_DATA, b"hello");
                let n = r.len() - 1;
                r[n] ^= 0x10;
                vec![r]
            }),
            Protocol(A::BAD_RECORD_MAC),
        ),
        case(
            "tls12 server plaintext of 2^14 + 1 bytes",
            Client,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::APPLICATION_DATA, &vec![0x41; 16385])]
            }),
            Protocol(A::RECORD_OVERFLOW),
        ),
        case(
            "tls12 key_update from the server",
            Client,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &hs_message(H::KEY_UPDATE, &[0]))]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 client_hello sent to the client after the handshake",
            Client,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::HANDSHAKE, &encode(&hello12()))]
            }),
            Protocol(A::UNEXPECTED_MESSAGE),
        ),
        case(
            "tls12 alert of 3 bytes after the handshake",
            Client,
            Established(
                tls12,
                |ctx| vec![ctx.record(ContentType::ALERT, &[1, 0, 0])],
            ),
            Protocol(A::DECODE_ERROR),
        ),
        case(
            "tls12 fatal alert from the server after the handshake",
            Client,
            Established(tls12, |ctx| {
                vec![ctx.record(ContentType::ALERT, &[2, A::DECRYPT_ERROR.0])]
            }),
            Received(A::DECRYPT_ERROR),
        ),
    ]
}

fn set_hrr_group(h: &mut ServerHello, g: NamedGroup) {
    for e in h.extensions.iter_mut() {
        if let ServerExtension::HrrKeyShare(x) = e {
            *x = g;
        }
    }
}

// ---------------------------------------------------------------------------
// Running and checking a case
// ---------------------------------------------------------------------------

fn check_error(name: &str, err: &Error, expect: Expect) {
    let ok = match (expect, err) {
        (Protocol(a), Error::Protocol { alert, .. }) => *alert == a,
        (Limit(a), Error::LimitExceeded { alert, .. }) => *alert == a,
        (Received(a), Error::AlertReceived(got)) => *got == a,
        _ => false,
    };
    assert!(ok, "{name}: expected {expect:?}, got {err:?}");
    match expect {
        Protocol(a) | Limit(a) => assert_eq!(err.alert(), Some(a), "{name}"),
        Received(_) => assert_eq!(
            err.alert(),
            None,
            "{name}: a received alert is not answered"
        ),
    }
    assert!(err.is_fatal(), "{name}");
}

/// The victim's records on the wire: exactly the expected alert, last (or no
/// alert at all when it received one).
fn check_wire(name: &str, sent: &[&Rec], expect: Expect) {
    assert!(
        sent.iter().all(|r| !r.opaque),
        "{name}: the MITM could not open a record the victim sent: {sent:?}"
    );
    let alerts: Vec<_> = sent.iter().filter_map(|r| r.alert()).collect();
    match expect {
        Protocol(a) | Limit(a) => {
            assert_eq!(alerts, [(2, a)], "{name}: alerts on the wire {sent:?}");
            let last = sent.last().expect("records");
            assert_eq!(last.alert(), Some((2, a)), "{name}: alert is last");
            if last.encrypted {
                // TLS 1.3 hides the type; TLS 1.2 keeps it on the record.
                let outer = if last.tls12 { 21 } else { 23 };
                assert_eq!(
                    last.wire[..3],
                    [outer, 3, 3],
                    "{name}: protected alert record"
                );
            } else {
                assert_eq!(
                    last.wire,
                    [0x15, 3, 3, 0, 2, 2, a.0],
                    "{name}: plaintext alert"
                );
            }
        }
        Received(_) => assert!(alerts.is_empty(), "{name}: answered an alert: {alerts:?}"),
    }
}

/// Every later call returns the same error and writes nothing.
fn check_sticky(name: &str, s: &mut Session<MemoryTransport>, err: &Error) {
    let mut buf = [0u8; 64];
    assert_eq!(
        s.handshake().as_ref().err(),
        Some(err),
        "{name}: handshake() again"
    );
    assert_eq!(s.recv(&mut buf).as_ref().err(), Some(err), "{name}: recv()");
    assert_eq!(s.send(b"x").as_ref().err(), Some(err), "{name}: send()");
    assert_eq!(
        s.flush().as_ref().err(),
        None,
        "{name}: flush() has nothing to write"
    );
}

fn side_of(w: &mut Wired, side: Side) -> &mut Session<MemoryTransport> {
    match side {
        Client => &mut w.client,
        Server => &mut w.server,
    }
}

fn run(c: &Case) {
    let name = c.name;
    match &c.scenario {
        Raw(bytes) => run_raw(name, server_config(), bytes(), c.expect),
        RawWith(cfg, bytes) => run_raw(name, cfg(), bytes(), c.expect),
        Hooked(cfgs, hook) => {
            let (cc, sc) = cfgs();
            let mut w = Wired::new(cc, sc);
            w.mitm.set_hook(hook());
            let o = w.handshake();
            let (mine, peer) = match c.victim {
                Client => (o.client, o.server),
                Server => (o.server, o.client),
            };
            let err = mine.expect_err(name);
            check_error(name, &err, c.expect);
            w.mitm.pump();
            check_wire(name, &w.mitm.seen_dir(c.victim.sends()), c.expect);
            if let Protocol(a) | Limit(a) = c.expect {
                // A peer that already finished its handshake reads the alert with recv.
                let peer = match peer {
                    Ok(()) => w.recv(c.victim.peer(), &mut [0u8; 64]).map(|_| ()),
                    other => other,
                };
                assert_eq!(
                    peer.err(),
                    Some(Error::AlertReceived(a)),
                    "{name}: the peer reads the alert"
                );
            }
            let before = w.mitm.seen_dir(c.victim.sends()).len();
            check_sticky(name, side_of(&mut w, c.victim), &err);
            w.mitm.pump();
            assert_eq!(
                w.mitm.seen_dir(c.victim.sends()).len(),
                before,
                "{name}: wrote more"
            );
        }
        Established(cfgs, records) => {
            let (cc, sc) = cfgs();
            let mut w = Wired::connected(cc, sc);
            let before_inject = w.mitm.seen_dir(c.victim.sends()).len();
            w.mitm.inject(c.victim.receives(), records);
            let mut buf = [0u8; 256];
            let err = w.recv(c.victim, &mut buf).expect_err(name);
            check_error(name, &err, c.expect);
            let sent = w.mitm.seen_dir(c.victim.sends());
            check_wire(name, &sent[before_inject..], c.expect);
            if let Protocol(a) | Limit(a) = c.expect {
                let peer = w.recv(c.victim.peer(), &mut buf);
                assert_eq!(
                    peer.err(),
                    Some(Error::AlertReceived(a)),
                    "{name}: the peer reads the alert"
                );
            }
            let before = w.mitm.seen_dir(c.victim.sends()).len();
            check_sticky(name, side_of(&mut w, c.victim), &err);
            w.mitm.pump();
            assert_eq!(
                w.mitm.seen_dir(c.victim.sends()).len(),
                before,
                "{name}: wrote more"
            );
        }
    }
}

fn run_raw(name: &str, cfg: ServerConfig, bytes: Vec<u8>, expect: Expect) {
    let mut r = RawServer::new(cfg);
    let err = r.feed(&bytes).expect_err(name);
    check_error(name, &err, expect);
    r.mitm.pump();
    check_wire(name, &r.mitm.seen_dir(Dir::ToClient), expect);
    let before = r.mitm.seen_dir(Dir::ToClient).len();
    check_sticky(name, &mut r.server, &err);
    r.mitm.pump();
    assert_eq!(
        r.mitm.seen_dir(Dir::ToClient).len(),
        before,
        "{name}: wrote more"
    );
}

fn run_all(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(c)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn server_rejects_bad_input() {
    let cases = server_cases();
    assert!(cases.len() >= 20);
    run_all(cases);
}

#[test]
fn client_rejects_bad_input() {
    let cases = client_cases();
    assert!(cases.len() >= 20);
    run_all(cases);
}

#[test]
fn tls12_server_rejects_bad_input() {
    let cases = tls12_server_cases();
    assert!(cases.len() >= 25);
    run_all(cases);
}

#[test]
fn tls12_client_rejects_bad_input() {
    let cases = tls12_client_cases();
    assert!(cases.len() >= 25);
    run_all(cases);
}

// ---------------------------------------------------------------------------
// Controls and details the table cannot express
// ---------------------------------------------------------------------------

/// The raw hellos the table mutates are accepted as they are, so each
/// failure above is due to its mutation.
#[test]
fn unmutated_raw_hellos_are_accepted() {
    for (name, bytes) in [
        ("plain", hello_with(|_| {})),
        ("psk last", hello_ext(|e| e.push(psk_ext()))),
        ("split over two records", {
            let msg = encode(&hello());
            let mut b = hs_record(&msg[..40]);
            b.extend(hs_record(&msg[40..]));
            b
        }),
    ] {
        let mut r = RawServer::new(server_config());
        assert_eq!(
            r.feed(&bytes),
            Err(Error::Again),
            "{name}: waits for the client's Finished"
        );
        let sent = r.mitm.seen_dir(Dir::ToClient);
        assert_eq!(
            sent.first().and_then(|r| r.hs_type()),
            Some(H::SERVER_HELLO),
            "{name}"
        );
        assert!(
            sent.iter().any(|r| r.hs_type() == Some(H::FINISHED)),
            "{name}: {sent:?}"
        );
        assert!(sent.iter().all(|r| r.alert().is_none()), "{name}");
    }
    // And the retry flow with the right group completes the server's flight.
    let mut r = RawServer::new(server_config());
    let mut b = hello_for_retry();
    b.extend(second_hello(NamedGroup::X25519, None));
    assert_eq!(r.feed(&b), Err(Error::Again));
    assert!(r
        .mitm
        .seen_dir(Dir::ToClient)
        .iter()
        .any(|r| r.hs_type() == Some(H::FINISHED)));
    // The raw TLS 1.2 hello is answered with the whole 1.2 flight; with the
    // fallback SCSV it is still accepted by a server that has nothing better.
    for (name, cfg, bytes) in [
        ("tls12", server_config(), hello12_with(|_| {})),
        (
            "tls12 fallback to a 1.2-only server",
            tls12_server(),
            hello12_with(|ch| ch.cipher_suites.push(CipherSuite::TLS_FALLBACK_SCSV)),
        ),
    ] {
        let mut r = RawServer::new(cfg);
        assert_eq!(r.feed(&bytes), Err(Error::Again), "{name}");
        let sent: Vec<_> = r
            .mitm
            .seen_dir(Dir::ToClient)
            .iter()
            .map(|r| r.hs_type())
            .collect();
        assert_eq!(
            sent,
            [
                Some(H::SERVER_HELLO),
                Some(H::CERTIFICATE),
                Some(H::SERVER_KEY_EXCHANGE),
                Some(H::SERVER_HELLO_DONE)
            ],
            "{name}"
        );
        assert_eq!(r.server.protocol_version(), Some(ProtocolVersion::TLS1_2));
    }
    // The MITM alone changes nothing, over TLS 1.2 either (AES-GCM and
    // ChaCha20 records opened and sealed again), and a 1.2-only client ignores
    // the sentinel a 1.3-capable server sends.
    for (name, (c, s)) in [
        ("tls12", tls12()),
        ("tls12 chacha", tls12_chacha()),
        ("tls12 client auth", tls12_client_auth()),
        (
            "tls12-only client",
            (client_config().versions(&V12).expect("v"), server_config()),
        ),
    ] {
        let mut w = Wired::connected(c, s);
        assert_eq!(w.client.protocol_version(), Some(ProtocolVersion::TLS1_2));
        let mut buf = [0u8; 8];
        assert_eq!(w.client.send(b"ping"), Ok(4), "{name}");
        assert_eq!(w.recv(Side::Server, &mut buf), Ok(4), "{name}");
        assert_eq!(w.server.send(b"pong"), Ok(4), "{name}");
        assert_eq!(w.recv(Side::Client, &mut buf), Ok(4), "{name}");
        assert!(
            w.mitm
                .seen()
                .iter()
                .all(|r| !r.opaque && r.alert().is_none()),
            "{name}: {:?}",
            w.mitm.seen()
        );
    }
    // The MITM alone changes nothing.
    let mut w = Wired::new(client_config(), server_config());
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    let mut w = Wired::new(retry_configs().0, retry_configs().1);
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    assert!(w.client.info().hello_retry);
}

/// TLS 1.2 renegotiation is refused: the first request makes `recv` return the
/// non-fatal `Error::Rehandshake`, a no_renegotiation warning goes out with the
/// next write (RFC 5246 §7.2.2; recv never writes) and the session carries on;
/// a second request closes it.
fn renegotiation_is_refused_once(victim: Side, request: Vec<u8>) {
    let name = format!("{victim:?} refusing renegotiation");
    let (c, s) = tls12();
    let mut w = Wired::connected(c, s);
    let mut buf = [0u8; 64];
    let before = w.mitm.seen_dir(victim.sends()).len();
    let req = request.clone();
    w.mitm.inject(victim.receives(), move |ctx| {
        vec![ctx.record(ContentType::HANDSHAKE, &req)]
    });
    let err = w.recv(victim, &mut buf).unwrap_err();
    assert_eq!(err, Error::Rehandshake, "{name}");
    assert!(!err.is_fatal(), "{name}");
    assert_eq!(
        w.mitm.seen_dir(victim.sends()).len(),
        before,
        "{name}: recv wrote"
    );
    assert_eq!(side_of(&mut w, victim).send(b"after"), Ok(5), "{name}");
    w.mitm.pump();
    let alerts: Vec<_> = w.mitm.seen_dir(victim.sends())[before..]
        .iter()
        .filter_map(|r| r.alert())
        .collect();
    assert_eq!(alerts, [(1, A::NO_RENEGOTIATION)], "{name}: the warning");
    // The peer ignores the warning; data flows both ways.
    assert_eq!(w.recv(victim.peer(), &mut buf), Ok(5), "{name}");
    assert_eq!(&buf[..5], b"after");
    assert_eq!(side_of(&mut w, victim.peer()).send(b"reply"), Ok(5));
    assert_eq!(w.recv(victim, &mut buf), Ok(5), "{name}");
    assert_eq!(&buf[..5], b"reply");

    // A second request closes the connection. nbtls: RFC 5246 §7.2.2 calls
    // no_renegotiation a warning; nbtls (like BoringSSL) closes with it, fatal.
    let before = w.mitm.seen_dir(victim.sends()).len();
    w.mitm.inject(victim.receives(), move |ctx| {
        vec![ctx.record(ContentType::HANDSHAKE, &request)]
    });
    let err = w.recv(victim, &mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                alert: A::NO_RENEGOTIATION,
                limit: "refused renegotiations"
            }
        ),
        "{name}: {err:?}"
    );
    check_error(&name, &err, Limit(A::NO_RENEGOTIATION));
    check_wire(
        &name,
        &w.mitm.seen_dir(victim.sends())[before..],
        Limit(A::NO_RENEGOTIATION),
    );
    assert_eq!(
        w.recv(victim.peer(), &mut buf),
        Err(Error::AlertReceived(A::NO_RENEGOTIATION)),
        "{name}: the peer reads the alert"
    );
    check_sticky(&name, side_of(&mut w, victim), &err);
}

#[test]
fn tls12_hello_request_is_refused_once_then_closes() {
    renegotiation_is_refused_once(Side::Client, hs_message(H::HELLO_REQUEST, &[]));
}

#[test]
fn tls12_client_hello_after_the_handshake_is_refused_once_then_closes() {
    renegotiation_is_refused_once(Side::Server, encode(&hello12()));
}

/// RFC 5246 §7.2.2: a TLS 1.2 warning alert does not end the session (nbtls
/// bounds them: five in a row pass, the sixth is fatal). TLS 1.3 treats the same
/// alerts as fatal ("warning-level bad_certificate" above).
#[test]
fn tls12_warning_alerts_are_ignored_up_to_five_in_a_row() {
    const WARNINGS: [A; 6] = [
        A::BAD_CERTIFICATE,
        A::UNSUPPORTED_CERTIFICATE,
        A::CERTIFICATE_EXPIRED,
        A::NO_RENEGOTIATION,
        A::UNSUPPORTED_EXTENSION,
        A::CERTIFICATE_UNKNOWN,
    ];
    let (c, s) = tls12();
    let mut w = Wired::connected(c, s);
    let mut buf = [0u8; 16];
    let before = w.mitm.seen_dir(Dir::ToServer).len();
    // Data between runs resets the count.
    for round in 0..2 {
        w.mitm.inject(Dir::ToClient, |ctx| {
            let mut v: Vec<_> = WARNINGS[..5]
                .iter()
                .map(|a| ctx.record(ContentType::ALERT, &[1, a.0]))
                .collect();
            v.push(ctx.record(ContentType::APPLICATION_DATA, b"ok"));
            v
        });
        assert_eq!(w.recv(Side::Client, &mut buf), Ok(2), "round {round}");
    }
    w.mitm.pump();
    assert!(
        w.mitm.seen_dir(Dir::ToServer)[before..].is_empty(),
        "warnings are not answered"
    );
    assert_eq!(w.client.send(b"still"), Ok(5));
    assert_eq!(w.recv(Side::Server, &mut buf), Ok(5));

    let before = w.mitm.seen_dir(Dir::ToServer).len();
    w.mitm.inject(Dir::ToClient, |ctx| {
        WARNINGS
            .iter()
            .map(|a| ctx.record(ContentType::ALERT, &[1, a.0]))
            .collect()
    });
    let err = w.recv(Side::Client, &mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                alert: A::UNEXPECTED_MESSAGE,
                limit: "TLS 1.2 warning alerts in a row"
            }
        ),
        "{err:?}"
    );
    check_wire(
        "six warnings",
        &w.mitm.seen_dir(Dir::ToServer)[before..],
        Limit(A::UNEXPECTED_MESSAGE),
    );
    assert_eq!(
        w.recv(Side::Server, &mut buf),
        Err(Error::AlertReceived(A::UNEXPECTED_MESSAGE))
    );
}

/// A handshake message whose header announces more than the limit is refused
/// on its header: the server reads nothing past the record holding it.
#[test]
fn oversized_handshake_message_is_refused_at_its_header() {
    // 0x010001 = 65537 is over the 64 KiB default; 3 full records follow.
    let mut bytes = hs_record(&[1, 0x01, 0x00, 0x01]);
    let first = bytes.len();
    for _ in 0..3 {
        bytes.extend(hs_record(&vec![0; 16384]));
    }
    let mut r = RawServer::new(server_config());
    let err = r.feed(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                alert: A::DECODE_ERROR,
                limit: "handshake message size"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        r.server.transport().readable(),
        bytes.len() - first,
        "the server read past the offending header"
    );
    check_wire(
        "oversized",
        &r.mitm.seen_dir(Dir::ToClient),
        Limit(A::DECODE_ERROR),
    );

    // Exactly 64 KiB is within the limit: the server buffers it and waits.
    let mut r = RawServer::new(server_config());
    let mut bytes = hs_record(&[1, 0x01, 0x00, 0x00]);
    bytes.extend(hs_record(&vec![0; 16384]));
    assert_eq!(r.feed(&bytes), Err(Error::Again));
    assert!(r.mitm.seen_dir(Dir::ToClient).is_empty());
}

/// After a peer's fatal alert, every call returns that error again.
#[test]
fn received_alert_is_sticky_across_every_call() {
    let mut w = Wired::connected(client_config(), server_config());
    w.mitm.inject(Dir::ToClient, |ctx| {
        vec![ctx.record(ContentType::ALERT, &[2, A::ACCESS_DENIED.0])]
    });
    let mut buf = [0u8; 16];
    let err = w.recv(Side::Client, &mut buf).unwrap_err();
    assert_eq!(err, Error::AlertReceived(A::ACCESS_DENIED));
    for _ in 0..3 {
        assert_eq!(w.client.recv(&mut buf), Err(err.clone()));
        assert_eq!(w.client.send(b"more"), Err(err.clone()));
        assert_eq!(w.client.handshake(), Err(err.clone()));
        assert_eq!(w.client.bye(nbtls::Shutdown::Write), Err(err.clone()));
        assert_eq!(w.client.key_update(false), Err(err.clone()));
    }
    assert_eq!(w.client.pending(), 0);
    w.mitm.pump();
    assert!(
        w.mitm
            .seen_dir(Dir::ToServer)
            .iter()
            .all(|r| r.alert().is_none()),
        "nothing answers a received alert"
    );
    // The server is untouched and still works.
    assert!(w.server.send(b"x").is_ok());
}

/// The client's hello, relayed unchanged, is what the raw builder imitates:
/// a guard that the raw cases exercise the same parser a real client reaches.
#[test]
fn real_client_hello_decodes_with_the_codec() {
    let mut w = Wired::new(client_config(), server_config());
    w.handshake();
    let ch = w.mitm.seen_dir(Dir::ToServer)[0].clone();
    let hello = ClientHello::from_message(&ch.payload).expect("decodes");
    assert!(hello
        .supported_versions()
        .is_some_and(|v| v.contains(&ProtocolVersion::TLS1_3)));
    assert_eq!(hello.compression_methods, [0]);
}
