//! The fuzz harness, shared by the cargo-fuzz targets (`fuzz_targets/*.rs`) and the
//! stable corpus replay (`crates/nbtls/tests/fuzz_corpus.rs`, which includes this file
//! with `#[path]`). Each entry point takes arbitrary bytes and asserts the invariants a
//! peer cannot break: no panic, no hang (every loop is bounded), every failure is a typed,
//! fatal, sticky error, every protocol error carries an alert (never internal_error) and
//! that alert is the last record the session wrote; forged bytes never complete a
//! handshake; every message the codec accepts re-encodes to itself.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use nbtls::codec::{
    AlertDescription, CertReqExtension, Certificate12, Certificate13, CertificateRequest12,
    CertificateRequest13, CertificateVerify, ClientExtension, ClientHello, ClientKeyExchangeEcdhe,
    Codec, EncryptedExtensions, ExtensionType, HandshakeMessage, HelloVerifyRequest, KeyUpdate,
    NamedGroup, NewSessionTicket12, NewSessionTicket13, Reader, ServerExtension, ServerHello,
    ServerKeyExchangeEcdhe, TicketExtension,
};
use nbtls::Transport;
use nbtls::{CertifiedKey, ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session};

/// Handshake/recv calls per input; each consumes at least one record or ends.
const MAX_STEPS: usize = 64;

/// A self-signed ECDSA certificate for `localhost`, made once per process.
fn server_key() -> Arc<CertifiedKey> {
    static KEY: OnceLock<Arc<CertifiedKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("test certificate");
        let chain = nbtls::x509::certs_from_pem(ck.cert.pem().as_bytes()).expect("cert pem");
        let key = nbtls::x509::private_key_from_pem(ck.key_pair.serialize_pem().as_bytes())
            .expect("key pem");
        let key = nbtls::x509::SigningKey::from_der(&key).expect("signing key");
        Arc::new(CertifiedKey::new(chain, key).expect("certified key"))
    })
    .clone()
}

/// The DER length of the server's certificate (tests size its flight by it).
pub fn server_certificate_len() -> usize {
    server_key().chain[0].as_ref().len()
}

/// The server every input is fed to.
pub fn server_config() -> Arc<ServerConfig> {
    static CFG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CFG.get_or_init(|| Arc::new(ServerConfig::new(server_key())))
        .clone()
}

/// The client every input is fed to: it sends one cheap X25519 share (P-256
/// reachable through a retry) and an empty session id. Forged input never gets as far as the
/// certificate, so it accepts any (and a captured handshake completes).
pub fn client_config() -> Arc<ClientConfig> {
    static CFG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        // No legacy session id, so a captured ServerHello echoes the right one.
        let cfg = ClientConfig::insecure()
            .middlebox_compat(false)
            .groups(&[NamedGroup::X25519, NamedGroup::SECP256R1])
            .and_then(|c| c.key_share_groups(&[NamedGroup::X25519]))
            .expect("client config");
        Arc::new(cfg)
    })
    .clone()
}

/// What a session made of an input.
#[derive(Debug)]
pub struct Outcome {
    /// The error it ended with (`None`: it waits for more, which EOF rules out).
    pub error: Option<Error>,
    /// Every byte it wrote (for the client, after its ClientHello).
    pub output: Vec<u8>,
}

/// The `record` target: the first byte picks the side, the rest is what the
/// other side "sent".
pub fn record(data: &[u8]) {
    match data.split_first() {
        Some((sel, rest)) if sel & 1 == 0 => {
            client_reads(rest);
        }
        Some((_, rest)) => {
            server_reads(rest);
        }
        None => {}
    }
}

/// A client that sent its ClientHello reads `input` as the server's bytes,
/// then EOF.
pub fn client_reads(input: &[u8]) -> Outcome {
    let (end, mut peer) = MemoryTransport::pair_with_capacity(1 << 22);
    let mut s = Session::client(client_config(), "localhost", end, Flags::NONBLOCK)
        .expect("client session");
    assert_eq!(
        s.handshake(),
        Err(Error::Again),
        "the client waits for the server"
    );
    let hello = drain(&mut peer);
    assert!(hello.len() > 5 && hello[0] == 22, "a ClientHello went out");
    run(s, peer, input)
}

/// A fresh server reads `input` as the client's bytes, then EOF.
pub fn server_reads(input: &[u8]) -> Outcome {
    let (end, peer) = MemoryTransport::pair_with_capacity(1 << 22);
    let s = Session::server(server_config(), end, Flags::NONBLOCK).expect("server session");
    run(s, peer, input)
}

fn drain(t: &mut MemoryTransport) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while let Ok(n) = t.pull(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn run(mut s: Session<MemoryTransport>, mut peer: MemoryTransport, input: &[u8]) -> Outcome {
    let mut off = 0;
    while off < input.len() {
        off += peer.push(&input[off..]).expect("memory pipe has room");
    }
    peer.close();
    let mut error = None;
    for _ in 0..MAX_STEPS {
        match s.handshake() {
            // EOF follows the input, so nothing may wait; Again could only
            // come from a full pipe, which 4 MiB rules out.
            Ok(()) => panic!("forged input completed a handshake"),
            Err(Error::Again | Error::Interrupted | Error::ClientHelloPaused) => continue,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let output = drain(&mut peer);
    let Some(err) = error else {
        panic!("no result after {MAX_STEPS} steps: a hang");
    };
    check_error(&err);
    check_sticky(&mut s, &err);
    check_output(&output, &err);
    assert!(drain(&mut peer).is_empty(), "wrote after failing");
    Outcome {
        error: Some(err),
        output,
    }
}

/// The error is fatal and typed: a protocol error with a real alert, a
/// limit, the peer's alert, or EOF.
pub fn check_error(err: &Error) {
    assert!(err.is_fatal(), "{err:?}");
    match err {
        Error::Protocol { alert, .. } | Error::LimitExceeded { alert, .. } => {
            assert_ne!(
                *alert,
                AlertDescription::INTERNAL_ERROR,
                "peer bytes caused {err:?}"
            );
            assert_ne!(*alert, AlertDescription::CLOSE_NOTIFY, "{err:?}");
            assert_eq!(err.alert(), Some(*alert));
        }
        Error::AlertReceived(_) | Error::PrematureTermination => assert_eq!(err.alert(), None),
        other => panic!("untyped failure for peer input: {other:?}"),
    }
}

fn check_sticky(s: &mut Session<MemoryTransport>, err: &Error) {
    assert_eq!(
        s.handshake().as_ref().err(),
        Some(err),
        "handshake() is sticky"
    );
    assert_eq!(
        s.recv(&mut [0u8; 16]).as_ref().err(),
        Some(err),
        "recv() is sticky"
    );
    assert_eq!(s.send(b"x").as_ref().err(), Some(err), "send() is sticky");
}

/// Splits output into records (it is the session's own framing: always whole).
pub fn records(out: &[u8]) -> Vec<(u8, &[u8])> {
    let mut v = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "partial record header in output");
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(rest.len() >= 5 + len, "partial record in output");
        v.push((rest[0], &rest[5..5 + len]));
        rest = &rest[5 + len..];
    }
    v
}

/// The session's last record is its alert: in plaintext (no keys yet) or
/// protected (TLS 1.3: 2 bytes, type, 16-byte tag; TLS 1.2: an alert record of
/// 2 bytes, a 16-byte tag and, for AES-GCM, an 8-byte explicit nonce). No alert
/// for a received one.
fn check_output(out: &[u8], err: &Error) {
    let recs = records(out);
    let plaintext_alerts: Vec<&[u8]> = recs
        .iter()
        .filter(|(t, _)| *t == 21)
        .map(|(_, b)| *b)
        .collect();
    match err.alert() {
        Some(alert) => {
            let last = recs.last().expect("an alert was written");
            match last {
                (21, body) if body.len() == 2 => assert_eq!(*body, [2, alert.0], "alert record"),
                (21, body) => assert!(
                    body.len() == 2 + 16 || body.len() == 8 + 2 + 16,
                    "protected TLS 1.2 alert size"
                ),
                (23, body) => assert_eq!(body.len(), 2 + 1 + 16, "protected alert size"),
                other => panic!("last record is not an alert: {other:?}"),
            }
            assert!(
                plaintext_alerts.len() <= 1,
                "more than one alert: {plaintext_alerts:?}"
            );
        }
        None => assert!(
            plaintext_alerts.is_empty(),
            "answered {err:?} with an alert"
        ),
    }
}

// ---------------------------------------------------------------------------
// handshake_messages
// ---------------------------------------------------------------------------

/// Decodes `bytes` as `T`; on success the re-encoding decodes to the same
/// value; on failure the error is a protocol error with an alert.
fn roundtrip<T: Codec + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    match T::from_bytes(bytes) {
        Ok(v) => {
            let again = T::from_bytes(&v.to_bytes());
            assert_eq!(
                again.as_ref().ok(),
                Some(&v),
                "re-encoding changed the value"
            );
        }
        Err(e) => check_decode_error(&e),
    }
}

/// The same through the framed form (4-byte header).
fn roundtrip_message<T: HandshakeMessage + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    match T::from_message(bytes) {
        Ok(v) => {
            let again = T::from_message(&v.to_message_bytes());
            assert_eq!(
                again.as_ref().ok(),
                Some(&v),
                "re-framing changed the value"
            );
        }
        Err(e) => check_decode_error(&e),
    }
}

fn check_decode_error(e: &Error) {
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    let alert = e.alert().expect("a decode failure carries an alert");
    assert!(
        matches!(
            alert,
            AlertDescription::DECODE_ERROR
                | AlertDescription::ILLEGAL_PARAMETER
                | AlertDescription::UNEXPECTED_MESSAGE
        ),
        "{e:?}"
    );
}

/// The `handshake_messages` target: the first byte picks the decoder.
pub fn handshake_messages(data: &[u8]) {
    let Some((&sel, b)) = data.split_first() else {
        return;
    };
    match sel % 24 {
        0 => roundtrip::<ClientHello>(b),
        1 => {
            // The DTLS form (with its cookie field).
            let mut r = Reader::new(b);
            match ClientHello::read_body(&mut r, true) {
                Ok(v) => {
                    let mut out = Vec::new();
                    v.encode_body(&mut out);
                    let again = ClientHello::read_body(&mut Reader::new(&out), true);
                    assert_eq!(again.as_ref().ok(), Some(&v), "DTLS ClientHello");
                }
                Err(e) => check_decode_error(&e),
            }
        }
        2 => roundtrip::<ServerHello>(b),
        3 => roundtrip::<EncryptedExtensions>(b),
        4 => roundtrip::<Certificate13>(b),
        5 => roundtrip::<CertificateRequest13>(b),
        6 => roundtrip::<CertificateVerify>(b),
        7 => roundtrip::<NewSessionTicket13>(b),
        8 => roundtrip::<KeyUpdate>(b),
        9 => roundtrip::<ServerKeyExchangeEcdhe>(b),
        10 => roundtrip::<Certificate12>(b),
        11 => roundtrip::<CertificateRequest12>(b),
        12 => roundtrip::<ClientKeyExchangeEcdhe>(b),
        13 => roundtrip::<NewSessionTicket12>(b),
        14 => roundtrip::<HelloVerifyRequest>(b),
        15 => roundtrip::<ClientExtension>(b),
        16 => roundtrip::<ServerExtension>(b),
        17 => {
            // HelloRetryRequest extension bodies: type from the first two bytes.
            if b.len() >= 2 {
                let t = ExtensionType(u16::from_be_bytes([b[0], b[1]]));
                match ServerExtension::read_body(t, &b[2..], true) {
                    Ok(v) => {
                        let mut out = Vec::new();
                        v.encode_body(&mut out);
                        let again = ServerExtension::read_body(t, &out, true);
                        assert_eq!(again.as_ref().ok(), Some(&v), "HRR extension");
                    }
                    Err(e) => check_decode_error(&e),
                }
            }
        }
        18 => roundtrip::<CertReqExtension>(b),
        19 => roundtrip::<TicketExtension>(b),
        20 => roundtrip_message::<ClientHello>(b),
        21 => roundtrip_message::<ServerHello>(b),
        22 => roundtrip_message::<Certificate13>(b),
        _ => roundtrip_message::<NewSessionTicket13>(b),
    }
}
