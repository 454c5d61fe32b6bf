//! Regressions for library bugs found by BoringSSL's BoGo suite (`scripts/bogo`,
//! issue 8). Each test names the BoGo case that exposed the bug and checks the
//! behaviour directly, between two nbtls sessions with a man in the middle
//! (`common::mitm`) playing the misbehaving or unusual peer.

mod common;

use common::mitm::{hook, Dir, Rec, Verdict, Wired};
use common::tls::{client_config, server_config};
use nbtls::codec::{
    AlertDescription as A, Certificate13, ClientHello, ContentType, HandshakeMessage,
    HandshakeType as H, NamedGroup, ProtocolVersion, ServerExtension, ServerHello,
};
use nbtls::{Error, ServerConfig};

const V12: &[ProtocolVersion] = &[ProtocolVersion::TLS1_2];
const V13: &[ProtocolVersion] = &[ProtocolVersion::TLS1_3];

fn tls12_server() -> ServerConfig {
    server_config().versions(V12).expect("versions")
}

fn hellos(w: &Wired) -> Vec<ClientHello> {
    w.mitm
        .seen_dir(Dir::ToServer)
        .into_iter()
        .filter(|r| r.hs_type() == Some(H::CLIENT_HELLO))
        .map(|r| ClientHello::from_message(&r.payload).expect("client hello decodes"))
        .collect()
}

fn sent(w: &Wired, dir: Dir, typ: H) -> bool {
    w.mitm
        .seen_dir(dir)
        .iter()
        .any(|r| r.hs_type() == Some(typ))
}

fn alert_of(e: &Error) -> Option<A> {
    match e {
        Error::Protocol { alert, .. } | Error::LimitExceeded { alert, .. } => Some(*alert),
        _ => None,
    }
}

/// A client facing a server that sends `alert` (level warning) just before its
/// ServerHello.
fn warning_before_server_hello(server: ServerConfig, alert: A) -> Wired {
    let mut w = Wired::new(client_config(), server);
    let mut done = false;
    w.mitm.set_hook(hook(move |ctx, rec: &mut Rec| {
        if !done && rec.dir == Dir::ToClient && rec.hs_type() == Some(H::SERVER_HELLO) {
            done = true;
            let warning = ctx.record(ContentType::ALERT, &[1, alert.0]);
            let hello = ctx.record(ContentType::HANDSHAKE, &rec.payload);
            return Verdict::Emit(vec![warning, hello]);
        }
        Verdict::Forward
    }));
    w
}

/// BoGo SendSNIWarningAlert: a TLS 1.2 server may send a warning
/// unrecognized_name before its ServerHello (RFC 6066 §3). A client that also
/// offers TLS 1.3 does not know the version yet and must not treat it as a
/// TLS 1.3 error alert.
#[test]
fn warning_alert_before_a_tls12_server_hello_is_ignored() {
    let mut w = warning_before_server_hello(tls12_server(), A::UNRECOGNIZED_NAME);
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    assert_eq!(w.client.protocol_version(), Some(ProtocolVersion::TLS1_2));
}

/// The same warning once TLS 1.3 is negotiated stays fatal (RFC 8446 §6.2).
#[test]
fn warning_alert_after_a_tls13_server_hello_is_fatal() {
    let mut w = Wired::new(client_config(), server_config());
    let mut done = false;
    w.mitm.set_hook(hook(move |ctx, rec: &mut Rec| {
        if !done && rec.dir == Dir::ToClient && rec.hs_type() == Some(H::SERVER_HELLO) {
            done = true;
            let hello = ctx.record(ContentType::HANDSHAKE, &rec.payload);
            let warning = ctx.record(ContentType::ALERT, &[1, A::UNRECOGNIZED_NAME.0]);
            return Verdict::Emit(vec![hello, warning]);
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert_eq!(o.client, Err(Error::AlertReceived(A::UNRECOGNIZED_NAME)));
}

/// BoGo AlertAfterChangeCipherSpec: in TLS 1.2 the first record after the
/// peer's ChangeCipherSpec is protected, alerts included; it was read as a
/// plaintext alert ("alert record of the wrong length").
#[test]
fn tls12_protected_alert_right_after_change_cipher_spec_is_opened() {
    let mut w = Wired::new(client_config(), tls12_server());
    w.mitm.set_hook(hook(|ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToServer && rec.encrypted && rec.hs_type() == Some(H::FINISHED) {
            assert!(ctx.protected());
            return Verdict::Emit(vec![
                ctx.record(ContentType::ALERT, &[2, A::RECORD_OVERFLOW.0])
            ]);
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert_eq!(o.server, Err(Error::AlertReceived(A::RECORD_OVERFLOW)));
}

/// BoGo HelloRetryRequest-Cookie-TLS13: a HelloRetryRequest that carries only a
/// cookie (no key_share) leaves the client's key_share list as it was (RFC 8446
/// §4.1.2); the GREASE share was dropped from the second ClientHello.
#[test]
fn hello_retry_with_only_a_cookie_keeps_the_key_shares() {
    let client = client_config()
        .key_share_groups(&[NamedGroup::SECP256R1])
        .expect("share groups");
    let server = server_config()
        .groups(&[NamedGroup::X25519])
        .expect("groups");
    let mut w = Wired::new(client, server);
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::SERVER_HELLO) {
            let mut sh = ServerHello::from_message(&rec.payload).expect("server hello");
            if sh.is_hrr() {
                sh.extensions
                    .retain(|e| !matches!(e, ServerExtension::HrrKeyShare(_)));
                sh.extensions
                    .push(ServerExtension::Cookie(b"cookie".to_vec()));
                rec.payload = sh.to_message_bytes();
            }
        }
        Verdict::Forward
    }));
    // The server never sent that cookie, so it refuses the retry; what matters
    // is the client's second hello.
    let _ = w.handshake();
    let hellos = hellos(&w);
    assert_eq!(hellos.len(), 2, "a second ClientHello was sent");
    assert_eq!(hellos[1].cookie_ext(), Some(&b"cookie"[..]));
    assert!(hellos[0].key_shares().is_some_and(|s| s.len() >= 2));
    assert_eq!(hellos[1].key_shares(), hellos[0].key_shares());
}

/// BoGo TLS12NoSessionID-TLS13: a client that offers only TLS 1.2 and has no
/// session to resume sends an empty session id; the random one is TLS 1.3's
/// compatibility mode (RFC 8446 §D.4), which a TLS 1.3 client still uses.
#[test]
fn tls12_only_client_sends_no_session_id() {
    let client = client_config().versions(V12).expect("versions");
    let mut w = Wired::new(client, tls12_server());
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    assert_eq!(hellos(&w)[0].session_id, Vec::<u8>::new());

    let mut w = Wired::new(client_config(), server_config());
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    assert_eq!(hellos(&w)[0].session_id.len(), 32);
}

/// BoGo SkipNewSessionTicket: a TLS 1.2 server that acknowledged
/// session_ticket MUST send NewSessionTicket before its ChangeCipherSpec
/// (RFC 5077 §3.3); the client accepted the handshake without it.
#[test]
fn tls12_missing_promised_new_session_ticket_is_an_error() {
    let mut w = Wired::new(client_config(), tls12_server());
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::NEW_SESSION_TICKET) {
            return Verdict::Drop;
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert!(
        sent(&w, Dir::ToClient, H::NEW_SESSION_TICKET),
        "the server promised and sent a ticket"
    );
    let err = o.client.expect_err("the client must fail");
    assert_eq!(alert_of(&err), Some(A::UNEXPECTED_MESSAGE), "{err:?}");
}

/// BoGo SupportedCurves-ServerHello-TLS12: the client sent supported_groups, so
/// a TLS 1.2 server echoing it is not an unsolicited extension (RFC 5246
/// §7.4.1.4); the client refused the ServerHello with unsupported_extension.
/// (The edit changes the transcript, so the Finished check fails later.)
#[test]
fn tls12_supported_groups_in_server_hello_is_tolerated() {
    let mut w = Wired::new(client_config(), tls12_server());
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::SERVER_HELLO) {
            let mut sh = ServerHello::from_message(&rec.payload).expect("server hello");
            sh.extensions
                .push(ServerExtension::SupportedGroups(vec![NamedGroup::X25519]));
            rec.payload = sh.to_message_bytes();
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert!(
        sent(&w, Dir::ToServer, H::CLIENT_KEY_EXCHANGE),
        "the client went on past the ServerHello: {o:?}"
    );
    if let Err(e) = &o.client {
        assert_ne!(alert_of(e), Some(A::UNSUPPORTED_EXTENSION), "{e:?}");
    }
}

/// BoGo SendUnsolicitedOCSPOnCertificate-TLS13 and friends: nbtls asks for no
/// per-certificate extension, so one in a CertificateEntry is unsolicited and
/// ends the handshake with unsupported_extension (RFC 8446 §4.4.2, §4.2).
#[test]
fn tls13_unsolicited_certificate_entry_extension_is_refused() {
    let server = server_config().versions(V13).expect("versions");
    let mut w = Wired::new(client_config(), server);
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::CERTIFICATE) {
            let mut c = Certificate13::from_message(&rec.payload).expect("certificate");
            // status_request (5) with an empty body.
            c.entries[0].extensions = vec![0, 5, 0, 0];
            rec.payload = c.to_message_bytes();
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    let err = o.client.expect_err("the client must fail");
    assert_eq!(alert_of(&err), Some(A::UNSUPPORTED_EXTENSION), "{err:?}");
}

/// BoGo WrongMessageType-*-DTLS (and every DTLS test where nbtls fails): a
/// DTLS session's fatal alert went out as a TLS record (5-byte header,
/// version 0x0303) and only on the next call, so a DTLS peer never read it.
/// It must leave at once, as a DTLS record (RFC 6347 §4.1).
#[test]
fn dtls_fatal_alert_is_sent_at_once_as_a_dtls_record() {
    use nbtls::{Flags, MemoryDatagram, Session, Transport};
    use std::sync::Arc;

    let (a, mut peer) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let mut client =
        Session::client(Arc::new(client_config()), "localhost", a, flags).expect("client");
    assert_eq!(client.handshake(), Err(Error::Again));
    let mut buf = vec![0u8; 4096];
    assert!(peer.pull(&mut buf).expect("ClientHello") > 0);

    // A ServerHelloDone (type 14, empty) where the ServerHello belongs:
    // DTLS record header (type, version, epoch 0, sequence 0, length),
    // then the handshake header (type, length, message_seq 0, fragment 0..0).
    let mut rec = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12];
    rec.extend_from_slice(&[14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    peer.push(&rec).expect("push");
    let err = client.handshake().expect_err("the client must fail");
    assert_eq!(alert_of(&err), Some(A::UNEXPECTED_MESSAGE), "{err:?}");

    let n = peer.pull(&mut buf).expect("the alert was sent at once");
    let d = &buf[..n];
    assert_eq!(n, 13 + 2, "one DTLS record with a 2-byte alert: {d:02x?}");
    assert_eq!(
        &d[..3],
        &[21, 0xfe, 0xfd],
        "DTLS 1.2 alert record: {d:02x?}"
    );
    assert_eq!(&d[11..], &[0, 2, 2, A::UNEXPECTED_MESSAGE.0]);
}

/// BoGo EarlyDataVersionDowngrade-Client-TLS13: a client that sent 0-RTT data
/// must fail when the server answers with TLS 1.2 (RFC 8446 Appendix D.3),
/// not carry on with a TLS 1.2 handshake.
#[test]
fn tls12_server_hello_after_early_data_is_fatal() {
    use std::sync::Arc;

    use common::tls::{handshake, pair};
    use nbtls::{AntiReplay, Flags};

    let client = client_config().early_data(true);
    let server13 = server_config().early_data(16384, Arc::new(AntiReplay::new(10)));
    let (mut c, mut s) = pair(client.clone(), server13, Flags::NONBLOCK);
    handshake(&mut c, &mut s).expect("first handshake");
    assert_eq!(c.recv(&mut [0u8; 8]), Err(Error::Again));
    assert!(c.tickets_received() > 0);

    let (mut c, mut s) = pair(client, tls12_server(), Flags::NONBLOCK);
    assert_eq!(c.send_early_data(b"0-RTT").expect("early data"), 5);
    assert!(handshake(&mut c, &mut s).is_err());
    let e = c.handshake().expect_err("the client must fail");
    assert_eq!(alert_of(&e), Some(A::PROTOCOL_VERSION), "{e:?}");
}
