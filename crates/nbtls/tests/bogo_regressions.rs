//! Regressions for library bugs found by BoringSSL's BoGo suite (`scripts/bogo`,
//! issue 8). Each test names the BoGo case that exposed the bug and checks the
//! behaviour directly, between two nbtls sessions with a man in the middle
//! (`common::mitm`) playing the misbehaving or unusual peer; the DTLS ones
//! relay datagrams by hand and seal the peer's records from its logged keys.

mod common;

use common::mitm::{hook, Dir, Rec, Verdict, Wired};
use common::tls::{client_config, server_config};
use nbtls::codec::{
    AlertDescription as A, Certificate12, Certificate13, CertificateRequest12, ClientExtension,
    ClientHello, ContentType, HandshakeMessage, HandshakeType as H, NamedGroup, OfferedPsks,
    ProtocolVersion, PskIdentity, ServerExtension, ServerHello,
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

/// A ClientHello carrying a pre_shared_key whose binder is 12 bytes (a TLS 1.2
/// "binder", as a client offering a 1.2 session both ways sends), last.
fn with_short_psk_binder(rec: &mut Rec) {
    if rec.dir == Dir::ToServer && rec.hs_type() == Some(H::CLIENT_HELLO) {
        let mut ch = ClientHello::from_message(&rec.payload).expect("client hello");
        ch.extensions
            .push(ClientExtension::PreSharedKey(OfferedPsks {
                identities: vec![PskIdentity {
                    identity: b"ticket".to_vec(),
                    obfuscated_ticket_age: 0,
                }],
                binders: vec![vec![7; 12]],
            }));
        rec.payload = ch.to_message_bytes();
    }
}

/// BoGo Resume-Server-TLS12-TLS12-TLS/DTLS: pre_shared_key is TLS 1.3's, so a
/// server negotiating TLS 1.2 ignores it; it refused the hello with
/// decode_error for a binder shorter than TLS 1.3's 32 bytes. In TLS 1.3 the
/// syntax (`PskBinderEntry<32..255>`, RFC 8446 §4.2.11) still holds.
/// (The edit changes the transcript, so the Finished check fails later.)
#[test]
fn tls12_server_ignores_a_malformed_tls13_pre_shared_key() {
    let client = client_config().versions(V12).expect("versions");
    let mut w = Wired::new(client, tls12_server());
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        with_short_psk_binder(rec);
        Verdict::Forward
    }));
    let o = w.handshake();
    assert!(
        sent(&w, Dir::ToClient, H::SERVER_HELLO),
        "the TLS 1.2 server answered the hello: {o:?}"
    );
    if let Err(e) = &o.server {
        assert_ne!(alert_of(e), Some(A::DECODE_ERROR), "{e:?}");
    }

    let mut w = Wired::new(client_config(), server_config());
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        with_short_psk_binder(rec);
        Verdict::Forward
    }));
    let o = w.handshake();
    assert!(!sent(&w, Dir::ToClient, H::SERVER_HELLO), "{o:?}");
    let err = o.server.expect_err("the TLS 1.3 server must fail");
    assert_eq!(alert_of(&err), Some(A::DECODE_ERROR), "{err:?}");
}

/// BoGo TLS13-SendNoKEMModesWithPSK-Server: a ClientHello offering a PSK
/// without psk_key_exchange_modes must be refused with missing_extension (RFC
/// 8446 §4.2.9, §9.2); the server ignored the PSK and went on.
#[test]
fn tls13_psk_without_key_exchange_modes_is_refused() {
    let mut w = Wired::new(client_config(), server_config());
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToServer && rec.hs_type() == Some(H::CLIENT_HELLO) {
            let mut ch = ClientHello::from_message(&rec.payload).expect("client hello");
            ch.extensions
                .retain(|e| !matches!(e, ClientExtension::PskKeyExchangeModes(_)));
            ch.extensions
                .push(ClientExtension::PreSharedKey(OfferedPsks {
                    identities: vec![PskIdentity {
                        identity: b"ticket".to_vec(),
                        obfuscated_ticket_age: 0,
                    }],
                    binders: vec![vec![7; 32]],
                }));
            rec.payload = ch.to_message_bytes();
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    assert!(!sent(&w, Dir::ToClient, H::SERVER_HELLO), "{o:?}");
    let err = o.server.expect_err("the server must fail");
    assert_eq!(alert_of(&err), Some(A::MISSING_EXTENSION), "{err:?}");
}

/// A TLS 1.2 client with the ECDSA client certificate against a server that
/// asks for one, its CertificateRequest's certificate_types set to `types`.
fn tls12_cert_request_types(types: Option<Vec<u8>>) -> Wired {
    use nbtls::{ClientAuth, TrustAnchors};
    let pki = common::certs::pki();
    let anchors = TrustAnchors::from_certs(&[pki.ca_cert()]).expect("anchors");
    let client = client_config()
        .client_certificate(common::tls::certified_key(&pki.client_ecdsa))
        .versions(V12)
        .expect("versions");
    let server = tls12_server().client_auth(ClientAuth::Request, anchors);
    let mut w = Wired::new(client, server);
    w.mitm.set_hook(hook(move |_ctx, rec: &mut Rec| {
        if let Some(types) = &types {
            if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::CERTIFICATE_REQUEST) {
                let mut cr = CertificateRequest12::from_message(&rec.payload).expect("request");
                cr.cert_types = types.clone();
                rec.payload = cr.to_message_bytes();
            }
        }
        Verdict::Forward
    }));
    w
}

fn client_certs_sent(w: &Wired) -> Vec<Vec<u8>> {
    let rec = w
        .mitm
        .seen_dir(Dir::ToServer)
        .into_iter()
        .find(|r| r.hs_type() == Some(H::CERTIFICATE))
        .expect("the client answered the request with a Certificate");
    Certificate12::from_message(&rec.payload)
        .expect("certificate")
        .certs
}

/// BoGo CheckClientCertificateTypes: a TLS 1.2 client whose key type is not
/// among the CertificateRequest's certificate_types sends no certificate
/// (RFC 5246 §7.4.4, §7.4.6); nbtls sent and signed with it anyway.
/// (BoringSSL fails the handshake instead; see bogo/config.json.)
#[test]
fn tls12_client_sends_no_certificate_of_an_unlisted_type() {
    let mut w = tls12_cert_request_types(None);
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    assert!(!client_certs_sent(&w).is_empty(), "ECDSA is listed: sent");
    assert!(!w.server.peer_certificates().is_empty());

    // rsa_sign only: an ECDSA key does not fit.
    let mut w = tls12_cert_request_types(Some(vec![1]));
    let o = w.handshake();
    assert!(client_certs_sent(&w).is_empty(), "{o:?}");
    assert!(!sent(&w, Dir::ToServer, H::CERTIFICATE_VERIFY), "{o:?}");
}

/// A server whose self-signed ECDSA leaf has the given key usages, and a
/// client that skips path validation (signatures are still checked).
fn key_usage_pair(usages: Vec<rcgen::KeyUsagePurpose>, versions: &[ProtocolVersion]) -> Wired {
    use nbtls::x509::{CertificateDer, NoServerVerification, PrivateKeyDer, SigningKey};
    use nbtls::{CertifiedKey, ClientConfig};
    use std::sync::Arc;
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    params.key_usages = usages;
    let cert = params.self_signed(&key).expect("cert");
    let der = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    let signing = SigningKey::from_der(&der).expect("signing key");
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let ck = CertifiedKey::new(chain, signing).expect("certified key");
    let client = ClientConfig::with_verifier(Arc::new(NoServerVerification))
        .versions(versions)
        .expect("versions");
    Wired::new(client, ServerConfig::new(Arc::new(ck)))
}

/// BoGo ECDSAKeyUsage-*, RSAKeyUsage-*-WantSignature-GotEncipherment-*: a
/// leaf whose keyUsage lacks digitalSignature may not sign the handshake
/// (RFC 5280 §4.2.1.3); nbtls checked only the extended key usage.
#[test]
fn handshake_signature_needs_the_digital_signature_key_usage() {
    use rcgen::KeyUsagePurpose as K;
    for versions in [V12, V13] {
        let mut w = key_usage_pair(vec![K::DigitalSignature], versions);
        let o = w.handshake();
        assert!(o.client.is_ok() && o.server.is_ok(), "{versions:?}: {o:?}");

        let mut w = key_usage_pair(vec![K::KeyAgreement], versions);
        let err = w.handshake().client.expect_err("the client must refuse");
        assert_eq!(
            alert_of(&err),
            Some(A::UNSUPPORTED_CERTIFICATE),
            "{versions:?}: {err:?}"
        );
    }
}

// ---- DTLS 1.2 after the handshake ----------------------------------------

mod dtls_end {
    use super::common::mitm::SecretLog;
    use super::common::tls::{client_config, server_config};
    use super::{alert_of, A};
    use nbtls::codec::CipherSuite;
    use nbtls::crypto::{tls12_suite, RecordKey};
    use nbtls::{Error, Flags, MemoryDatagram, Session, Transport};
    use std::sync::Arc;

    const HANDSHAKE: u8 = 22;
    const CCS: u8 = 20;
    const FINISHED: u8 = 20;
    const CKE: u8 = 16;
    const SERVER_HELLO: u8 = 2;
    const SERVER_HELLO_DONE: u8 = 14;

    type D = Session<MemoryDatagram>;

    /// A DTLS 1.2 client and server in memory (AES-128-GCM, so records carry
    /// an explicit nonce), every datagram each sent kept, and their secrets.
    pub struct Pair {
        pub c: D,
        pub s: D,
        pub mc: MemoryDatagram,
        pub ms: MemoryDatagram,
        pub to_server: Vec<Vec<u8>>,
        pub to_client: Vec<Vec<u8>>,
        log: Arc<SecretLog>,
    }

    impl Pair {
        pub fn new() -> Pair {
            let log = Arc::new(SecretLog::default());
            let suites = [
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ];
            let client = client_config()
                .cipher_suites(&suites)
                .expect("suites")
                .key_log(log.clone());
            let server = server_config().key_log(log.clone());
            let (c_end, mc) = MemoryDatagram::pair();
            let (s_end, ms) = MemoryDatagram::pair();
            let flags = Flags::NONBLOCK | Flags::DATAGRAM;
            Pair {
                c: Session::client(Arc::new(client), "localhost", c_end, flags).expect("client"),
                s: Session::server_datagram(Arc::new(server), b"peer", s_end, flags)
                    .expect("server"),
                mc,
                ms,
                to_server: Vec::new(),
                to_client: Vec::new(),
                log,
            }
        }

        /// The datagrams `from` has queued.
        pub fn pull(from: &mut MemoryDatagram) -> Vec<Vec<u8>> {
            let mut buf = vec![0u8; 20000];
            let mut out = Vec::new();
            while out.len() < 1000 {
                let Ok(n) = from.pull(&mut buf) else { break };
                out.push(buf[..n].to_vec());
            }
            out
        }

        /// Relays until both handshakes are done; `hold` may keep a batch
        /// (client's datagrams) from the server and stop there.
        pub fn run(&mut self, mut hold: impl FnMut(&[Vec<u8>]) -> bool) -> bool {
            let (mut cd, mut sd) = (false, false);
            for _ in 0..50 {
                if !cd {
                    match self.c.handshake() {
                        Ok(()) => cd = true,
                        Err(Error::Again) => {}
                        Err(e) => panic!("client: {e:?}"),
                    }
                }
                let batch = Self::pull(&mut self.mc);
                self.to_server.extend(batch.iter().cloned());
                if hold(&batch) {
                    return false;
                }
                for d in &batch {
                    self.ms.push(d).expect("push");
                }
                if !sd {
                    match self.s.handshake() {
                        Ok(()) => sd = true,
                        Err(Error::Again) => {}
                        Err(e) => panic!("server: {e:?}"),
                    }
                }
                let batch = Self::pull(&mut self.ms);
                self.to_client.extend(batch.iter().cloned());
                for d in &batch {
                    self.mc.push(d).expect("push");
                }
                if cd && sd {
                    return true;
                }
            }
            panic!("no end after 50 rounds");
        }

        /// The client's write key (epoch 1), from the logged master secret
        /// and the hellos' randoms.
        pub fn client_key(&self) -> RecordKey {
            let hs = |dgrams: &[Vec<u8>], typ: u8| {
                handshake_messages(dgrams)
                    .into_iter()
                    .find(|(t, _, _)| *t == typ)
                    .map(|(_, _, body)| body)
                    .expect("message")
            };
            let sh = hs(&self.to_client, SERVER_HELLO);
            let mut client_random = [0u8; 32];
            let ch = handshake_messages(&self.to_server)
                .into_iter()
                .rfind(|(t, _, _)| *t == 1)
                .expect("client hello")
                .2;
            client_random.copy_from_slice(&ch[2..34]);
            let mut server_random = [0u8; 32];
            server_random.copy_from_slice(&sh[2..34]);
            let sid = usize::from(sh[34]);
            let suite = CipherSuite(u16::from_be_bytes([sh[35 + sid], sh[36 + sid]]));
            let suite = tls12_suite(suite).expect("TLS 1.2 suite");
            let master = self.log.get("CLIENT_RANDOM").expect("master secret logged");
            nbtls::handshake::tls12::record_keys(suite, &master, &client_random, &server_random)
                .expect("keys")
                .0
        }
    }

    /// `(type, message_seq, body)` of every whole plaintext (epoch 0)
    /// handshake fragment in `dgrams`.
    pub fn handshake_messages(dgrams: &[Vec<u8>]) -> Vec<(u8, u16, Vec<u8>)> {
        let mut out = Vec::new();
        for d in dgrams {
            let mut rest = &d[..];
            while rest.len() >= 13 {
                let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
                let Some(rec) = rest.get(..13 + len) else {
                    break;
                };
                rest = &rest[13 + len..];
                if rec[0] != HANDSHAKE || rec[3..5] != [0, 0] || len < 12 {
                    continue;
                }
                let m = &rec[13..];
                let seq = u16::from_be_bytes([m[4], m[5]]);
                out.push((m[0], seq, m[12..].to_vec()));
            }
        }
        out
    }

    /// A handshake fragment (DTLS 12-byte header).
    pub fn fragment(typ: u8, seq: u16, len: usize, off: usize, data: &[u8]) -> Vec<u8> {
        let u24 = |v: usize| [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        let mut m = vec![typ];
        m.extend_from_slice(&u24(len));
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&u24(off));
        m.extend_from_slice(&u24(data.len()));
        m.extend_from_slice(data);
        m
    }

    /// A DTLS 1.2 record, sealed with `key` in epoch 1 when given.
    pub fn record(typ: u8, epoch: u16, seq: u64, body: &[u8], key: Option<&RecordKey>) -> Vec<u8> {
        let seq64 = u64::from(epoch) << 48 | seq;
        let payload = match key {
            None => body.to_vec(),
            Some(k) => {
                let mut aad = seq64.to_be_bytes().to_vec();
                aad.extend_from_slice(&[typ, 0xfe, 0xfd]);
                aad.extend_from_slice(&(body.len() as u16).to_be_bytes());
                let mut ct = body.to_vec();
                let tag = k.seal(seq64, &aad, &mut ct);
                let mut p = seq64.to_be_bytes().to_vec();
                p.extend_from_slice(&ct);
                p.extend_from_slice(&tag);
                p
            }
        };
        let mut v = vec![typ, 0xfe, 0xfd];
        v.extend_from_slice(&seq64.to_be_bytes()[..2]);
        v.extend_from_slice(&seq64.to_be_bytes()[2..]);
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&payload);
        v
    }

    /// The records of `dgrams` whose type is `typ`.
    pub fn count_records(dgrams: &[Vec<u8>], typ: u8) -> usize {
        let mut n = 0;
        for d in dgrams {
            let mut rest = &d[..];
            while rest.len() >= 13 {
                let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
                n += usize::from(rest[0] == typ);
                rest = rest.get(13 + len..).unwrap_or(&[]);
            }
        }
        n
    }

    /// The client's Finished message_seq (the one after its key exchange).
    fn client_finished_seq(p: &Pair) -> u16 {
        let cke = handshake_messages(&p.to_server)
            .into_iter()
            .find(|(t, _, _)| *t == CKE)
            .expect("client key exchange");
        cke.1 + 1
    }

    /// Gives `s` the datagrams through its peer end `wire`, one `recv` each
    /// (there is no data), and returns the last result and what `s` sent.
    fn feed(
        s: &mut D,
        wire: &mut MemoryDatagram,
        dgrams: &[Vec<u8>],
    ) -> (Result<usize, Error>, Vec<Vec<u8>>) {
        let mut r = Err(Error::Again);
        for d in dgrams {
            wire.push(d).expect("push");
            r = s.recv(&mut [0u8; 64]);
            if r != Err(Error::Again) {
                break;
            }
        }
        (r, Pair::pull(wire))
    }

    /// BoGo DTLS12-SendExtraFinished(-Packed, -Reordered): after the
    /// handshake a new handshake message (an extra Finished, the next
    /// message_seq) is no retransmission; DTLS 1.2 has no message there, so
    /// the session ends with unexpected_message. nbtls resent its last flight
    /// instead (whose epoch-0 records confused the peer) and went on.
    #[test]
    fn dtls_new_handshake_message_after_the_handshake_is_refused() {
        let mut p = Pair::new();
        assert!(p.run(|_| false));
        let key = p.client_key();
        let seq = client_finished_seq(&p) + 1;
        let frag = fragment(FINISHED, seq, 12, 0, &[9; 12]);
        let extra = record(HANDSHAKE, 1, 100, &frag, Some(&key));
        let (r, answer) = feed(&mut p.s, &mut p.ms, &[extra]);
        let err = r.expect_err("the server must fail");
        assert_eq!(alert_of(&err), Some(A::UNEXPECTED_MESSAGE), "{err:?}");
        assert_eq!(
            count_records(&answer, CCS),
            0,
            "no flight resent: {answer:02x?}"
        );
    }

    /// BoGo DTLS-RetransmitFinished-Fragmented: a peer repeating its last
    /// flight in tiny fragments, each in its own datagram, gets our last
    /// flight once, not once per datagram. (The sealed fragments are new
    /// records of an old message: only their header matters.)
    #[test]
    fn dtls_finely_cut_repeated_last_flight_gets_one_answer() {
        let mut p = Pair::new();
        assert!(p.run(|_| false));
        let key = p.client_key();
        let seq = client_finished_seq(&p);
        let finished = [5u8; 12];
        let dgrams: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                let frag = fragment(FINISHED, seq, 12, 2 * i, &finished[2 * i..2 * i + 2]);
                record(HANDSHAKE, 1, 10 + i as u64, &frag, Some(&key))
            })
            .collect();
        let (r, answer) = feed(&mut p.s, &mut p.ms, &dgrams);
        assert_eq!(r, Err(Error::Again));
        assert_eq!(
            count_records(&answer, CCS),
            1,
            "one resent flight: {answer:02x?}"
        );
        // Data still flows (the sequence numbers above stay in the replay
        // window's reach of the client's next record).
        assert_eq!(p.c.send(b"ping"), Ok(4));
        for d in Pair::pull(&mut p.mc) {
            p.ms.push(&d).expect("push");
        }
        let mut buf = [0u8; 16];
        assert_eq!(p.s.recv(&mut buf), Ok(4));
    }

    /// BoGo SendEmptyFragments-DTLS: a peer may add empty fragments to its
    /// messages; an empty one of a message already taken (ServerHelloDone
    /// has no body, so its empty fragment completes it) repeats no data. The
    /// client took it for the server retransmitting its flight and resent
    /// its own, mid-flight.
    #[test]
    fn dtls_empty_fragment_of_an_old_message_is_no_retransmission() {
        let mut p = Pair::new();
        // Stop when the client's key exchange flight leaves (kept from the
        // server, so the client is waiting for its Finished).
        let done = p.run(|batch| handshake_messages(batch).iter().any(|(t, _, _)| *t == CKE));
        assert!(!done, "the client sent its key exchange");
        let (_, shd_seq, _) = handshake_messages(&p.to_client)
            .into_iter()
            .find(|(t, _, _)| *t == SERVER_HELLO_DONE)
            .expect("server hello done");
        let empty = record(
            HANDSHAKE,
            0,
            300,
            &fragment(SERVER_HELLO_DONE, shd_seq, 0, 0, &[]),
            None,
        );
        p.mc.push(&empty).expect("push");
        assert_eq!(p.c.handshake(), Err(Error::Again));
        let answer = Pair::pull(&mut p.mc);
        assert!(answer.is_empty(), "nothing resent: {answer:02x?}");
        // A non-empty repeat still gets the flight (RFC 6347 §4.2.4).
        let sh = handshake_messages(&p.to_client)
            .into_iter()
            .find(|(t, _, _)| *t == SERVER_HELLO)
            .expect("server hello");
        let len = sh.2.len();
        let again = record(
            HANDSHAKE,
            0,
            301,
            &fragment(SERVER_HELLO, sh.1, len, 0, &sh.2),
            None,
        );
        p.mc.push(&again).expect("push");
        assert_eq!(p.c.handshake(), Err(Error::Again));
        let answer = Pair::pull(&mut p.mc);
        assert_eq!(
            count_records(&answer, CCS),
            1,
            "the flight resent: {answer:02x?}"
        );
    }
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

/// BoGo EarlyData-BadALPNMismatch-Client-TLS13: a server that accepts 0-RTT
/// must do so under the ticket's ALPN protocol (RFC 8446 §4.2.10); a client
/// told otherwise in EncryptedExtensions refuses with illegal_parameter
/// there, instead of going on (its early data went out under the old one).
#[test]
fn early_data_accepted_under_another_alpn_is_refused() {
    use std::sync::Arc;

    use nbtls::AntiReplay;

    use common::mitm::Side;

    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let client = client_config().alpn(alpn).expect("alpn").early_data(true);
    let server = server_config()
        .alpn(alpn)
        .expect("alpn")
        .early_data(16384, Arc::new(AntiReplay::new(10)));
    let mut w = Wired::connected(client.clone(), server.clone());
    assert_eq!(w.client.alpn_protocol(), Some(&b"h2"[..]));
    // The ticket arrives with the first read.
    let _ = w.recv(Side::Client, &mut [0u8; 8]);
    assert!(w.client.tickets_received() > 0);

    let mut w = Wired::new(client, server);
    assert_eq!(w.client.send_early_data(b"0-RTT").expect("early data"), 5);
    w.mitm.set_hook(hook(|_ctx, rec: &mut Rec| {
        if rec.dir == Dir::ToClient && rec.hs_type() == Some(H::ENCRYPTED_EXTENSIONS) {
            // The server's answer names the other offered protocol.
            let h2 = rec.payload.windows(2).position(|w| w == b"h2").expect("h2");
            let mut p = rec.payload.clone();
            p.splice(h2 - 1..h2 + 2, [8u8].iter().copied().chain(*b"http/1.1"));
            // Fix the lengths: message, extensions, the ALPN extension and its list.
            let grow = 6u32;
            let body_len = u32::from_be_bytes([0, p[1], p[2], p[3]]) + grow;
            p[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
            let ext_len = u16::from_be_bytes([p[4], p[5]]) + grow as u16;
            p[4..6].copy_from_slice(&ext_len.to_be_bytes());
            let list_at = h2 - 3;
            let list_len = u16::from_be_bytes([p[list_at], p[list_at + 1]]) + grow as u16;
            p[list_at..list_at + 2].copy_from_slice(&list_len.to_be_bytes());
            let ext_at = list_at - 2;
            let e_len = u16::from_be_bytes([p[ext_at], p[ext_at + 1]]) + grow as u16;
            p[ext_at..ext_at + 2].copy_from_slice(&e_len.to_be_bytes());
            rec.payload = p;
        }
        Verdict::Forward
    }));
    let o = w.handshake();
    let err = o.client.expect_err("the client must refuse");
    assert_eq!(alert_of(&err), Some(A::ILLEGAL_PARAMETER), "{err:?}");
}
