//! The fuzz targets on stable: every file of `fuzz/corpus/<target>/` replayed through the
//! same harness the cargo-fuzz targets use (`fuzz/fuzz_targets/harness.rs`), and a
//! bounded in-process mutation loop (fixed-seed xorshift over the committed seeds) standing
//! in for libFuzzer. The harness asserts the invariants (no panic or hang, typed fatal
//! sticky errors carrying their alert, the alert written last, nothing forged completing a
//! handshake, codec round trips).
//!
//! `NBTLS_WRITE_FUZZ_CORPUS=1` rewrites the seed corpus from a real handshake first.

mod common;

#[path = "../../../fuzz/fuzz_targets/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::mitm::{plain_record, Dir, Wired};
use nbtls::codec::{
    CertReqExtension, CertificateRequest12, ClientExtension, ClientHello, Codec, ContentType,
    ExtensionType, HandshakeMessage, HandshakeType, HelloVerifyRequest, KeyShareEntry, NamedGroup,
    NewSessionTicket12, ProtocolVersion, PskKeyExchangeMode, ServerExtension, SignatureScheme,
    TicketExtension,
};
use nbtls::Error;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("dir entry").path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).expect("corpus file"))
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// The seed corpus
// ---------------------------------------------------------------------------

/// Seeds from a real handshake between the harness client and server, the
/// protected messages as the MITM opened them, and codec samples.
fn seeds() -> BTreeMap<(&'static str, String), Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut w = Wired::new(
        (*harness::client_config()).clone(),
        (*harness::server_config()).clone(),
    );
    let o = w.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    w.mitm.pump();
    let to_client: Vec<_> = w
        .mitm
        .seen_dir(Dir::ToClient)
        .into_iter()
        .cloned()
        .collect();
    let to_server: Vec<_> = w
        .mitm
        .seen_dir(Dir::ToServer)
        .into_iter()
        .cloned()
        .collect();
    let wire_to_client = w.mitm.wire(Dir::ToClient).to_vec();
    let wire_to_server = w.mitm.wire(Dir::ToServer).to_vec();

    // The same over TLS 1.2 (a 1.2-only server sends no downgrade sentinel, so
    // the harness client reads its flight as far as the signature).
    let v12 = [ProtocolVersion::TLS1_2];
    let mut w12 = Wired::new(
        (*harness::client_config())
            .clone()
            .versions(&v12)
            .expect("1.2"),
        (*harness::server_config())
            .clone()
            .versions(&v12)
            .expect("1.2"),
    );
    let o = w12.handshake();
    assert!(o.client.is_ok() && o.server.is_ok(), "{o:?}");
    w12.mitm.pump();
    let to_client12: Vec<_> = w12
        .mitm
        .seen_dir(Dir::ToClient)
        .into_iter()
        .cloned()
        .collect();
    let to_server12: Vec<_> = w12
        .mitm
        .seen_dir(Dir::ToServer)
        .into_iter()
        .cloned()
        .collect();

    let mut rec = |name: &str, sel: u8, bytes: Vec<u8>| {
        let mut v = vec![sel];
        v.extend(bytes);
        out.insert(("record", name.to_string()), v);
    };
    // The server's flight, as the wire carried it (its protected part cannot open
    // under a new client's keys: it exercises ServerHello and the record layer).
    rec("client-server-flight", 0, wire_to_client.concat());
    rec("client-server-hello", 0, wire_to_client[0].clone());
    rec(
        "client-server-flight-tls12",
        0,
        w12.mitm.wire(Dir::ToClient).concat(),
    );
    rec(
        "server-client-hello-tls12",
        1,
        w12.mitm.wire(Dir::ToServer)[0].clone(),
    );
    rec(
        "server-client-flight-tls12",
        1,
        w12.mitm.wire(Dir::ToServer).concat(),
    );
    rec(
        "client-alert",
        0,
        plain_record(ContentType::ALERT, &[2, 40]),
    );
    rec("client-ccs-then-garbage", 0, {
        let mut b = plain_record(ContentType::CHANGE_CIPHER_SPEC, &[1]);
        b.extend(plain_record(ContentType::APPLICATION_DATA, &[0; 40]));
        b
    });
    rec("server-client-hello", 1, wire_to_server[0].clone());
    rec("server-client-flight", 1, wire_to_server.concat());
    rec("server-retry", 1, {
        let mut b = plain_record(ContentType::HANDSHAKE, &retry_hello(vec![]));
        let share = nbtls::crypto::kx::KeyShare::generate(NamedGroup::X25519).expect("share");
        let entry = KeyShareEntry {
            group: NamedGroup::X25519,
            payload: share.public().to_vec(),
        };
        b.extend(plain_record(
            ContentType::HANDSHAKE,
            &retry_hello(vec![entry]),
        ));
        b
    });
    rec("server-split-hello", 1, {
        let ch = &to_server[0].payload;
        let mut b = plain_record(ContentType::HANDSHAKE, &ch[..30]);
        b.extend(plain_record(ContentType::HANDSHAKE, &ch[30..]));
        b
    });

    let mut msg = |name: &str, sel: u8, bytes: &[u8]| {
        let mut v = vec![sel];
        v.extend_from_slice(bytes);
        out.insert(("handshake_messages", name.to_string()), v);
    };
    let body = |r: &common::mitm::Rec| r.payload[4..].to_vec();
    let find = |recs: &[common::mitm::Rec], t: HandshakeType| {
        recs.iter()
            .find(|r| r.hs_type() == Some(t))
            .cloned()
            .expect("message")
    };
    let ch = find(&to_server, HandshakeType::CLIENT_HELLO);
    let sh = find(&to_client, HandshakeType::SERVER_HELLO);
    msg("client-hello", 0, &body(&ch));
    msg("server-hello", 2, &body(&sh));
    msg(
        "encrypted-extensions",
        3,
        &body(&find(&to_client, HandshakeType::ENCRYPTED_EXTENSIONS)),
    );
    msg(
        "certificate",
        4,
        &body(&find(&to_client, HandshakeType::CERTIFICATE)),
    );
    msg(
        "certificate-verify",
        6,
        &body(&find(&to_client, HandshakeType::CERTIFICATE_VERIFY)),
    );
    msg("key-update", 8, &[1]);
    msg("client-hello-framed", 20, &ch.payload);
    msg("server-hello-framed", 21, &sh.payload);
    msg(
        "certificate-framed",
        22,
        &find(&to_client, HandshakeType::CERTIFICATE).payload,
    );
    let cr = nbtls::codec::CertificateRequest13 {
        context: vec![],
        extensions: vec![
            CertReqExtension::SignatureAlgorithms(vec![SignatureScheme::ED25519]),
            CertReqExtension::CertificateAuthorities(vec![vec![0x30, 0]]),
        ],
    };
    msg("certificate-request", 5, &cr.to_bytes());
    let nst = nbtls::codec::NewSessionTicket13 {
        lifetime: 7200,
        age_add: 9,
        nonce: vec![0],
        ticket: vec![1; 16],
        extensions: vec![TicketExtension::EarlyData(1024)],
    };
    msg("new-session-ticket", 7, &nst.to_bytes());
    msg("new-session-ticket-framed", 23, &nst.to_message_bytes());
    msg(
        "tls12-server-key-exchange",
        9,
        &body(&find(&to_client12, HandshakeType::SERVER_KEY_EXCHANGE)),
    );
    msg(
        "tls12-certificate",
        10,
        &body(&find(&to_client12, HandshakeType::CERTIFICATE)),
    );
    msg(
        "tls12-server-hello",
        2,
        &body(&find(&to_client12, HandshakeType::SERVER_HELLO)),
    );
    msg(
        "tls12-client-hello",
        0,
        &body(&find(&to_server12, HandshakeType::CLIENT_HELLO)),
    );
    let cr12 = CertificateRequest12 {
        cert_types: vec![1, 64],
        schemes: vec![SignatureScheme::RSA_PSS_RSAE_SHA256],
        authorities: vec![vec![0x30, 0]],
    };
    msg("tls12-certificate-request", 11, &cr12.to_bytes());
    msg(
        "tls12-client-key-exchange",
        12,
        &body(&find(&to_server12, HandshakeType::CLIENT_KEY_EXCHANGE)),
    );
    let nst12 = NewSessionTicket12 {
        lifetime_hint: 300,
        ticket: vec![7; 32],
    };
    msg("tls12-new-session-ticket", 13, &nst12.to_bytes());
    let hvr = HelloVerifyRequest {
        server_version: nbtls::codec::ProtocolVersion::DTLS1_2,
        cookie: vec![5; 20],
    };
    msg("dtls-hello-verify-request", 14, &hvr.to_bytes());
    let mut dtls = ClientHello::from_message(&ch.payload).expect("hello");
    dtls.cookie = Some(vec![1, 2, 3]);
    let mut b = Vec::new();
    dtls.encode_body(&mut b);
    msg("dtls-client-hello", 1, &b);
    msg(
        "client-extension-alpn",
        15,
        &ClientExtension::Alpn(vec![b"h2".to_vec()]).to_bytes(),
    );
    msg("server-extension-key-share", 16, &{
        let ks = KeyShareEntry {
            group: NamedGroup::X25519,
            payload: vec![1; 32],
        };
        ServerExtension::KeyShare(ks).to_bytes()
    });
    msg("hrr-extension-key-share", 17, &[0, 51, 0, 0x17]);
    out
}

/// A ClientHello with these shares (none: the server must retry).
fn retry_hello(shares: Vec<KeyShareEntry>) -> Vec<u8> {
    ClientHello {
        legacy_version: nbtls::codec::ProtocolVersion::TLS1_2,
        random: [1; 32],
        session_id: vec![2; 32],
        cookie: None,
        cipher_suites: vec![nbtls::codec::CipherSuite::TLS_AES_128_GCM_SHA256],
        compression_methods: vec![0],
        extensions: vec![
            ClientExtension::ServerName("localhost".into()),
            ClientExtension::SupportedVersions(vec![nbtls::codec::ProtocolVersion::TLS1_3]),
            ClientExtension::SupportedGroups(vec![NamedGroup::X25519]),
            ClientExtension::SignatureAlgorithms(vec![SignatureScheme::ECDSA_SECP256R1_SHA256]),
            ClientExtension::KeyShare(shares),
            ClientExtension::PskKeyExchangeModes(vec![PskKeyExchangeMode::PSK_DHE_KE]),
            ClientExtension::Unknown(ExtensionType::PADDING, vec![0; 8]),
        ],
    }
    .to_message_bytes()
}

fn write_seeds_if_asked() {
    if std::env::var_os("NBTLS_WRITE_FUZZ_CORPUS").is_none() {
        return;
    }
    for ((target, name), bytes) in seeds() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[test]
fn corpus_replays_through_the_harness() {
    write_seeds_if_asked();
    let records = corpus("record");
    let messages = corpus("handshake_messages");
    assert!(
        records.len() >= 5 && messages.len() >= 10,
        "seed corpus missing"
    );
    let total: usize = records.iter().chain(&messages).map(|(_, b)| b.len()).sum();
    assert!(
        total < 100 * 1024,
        "the committed corpus stays small ({total} bytes)"
    );
    for (name, bytes) in &records {
        let r = std::panic::catch_unwind(|| harness::record(bytes));
        assert!(r.is_ok(), "record/{name}");
    }
    for (name, bytes) in &messages {
        let r = std::panic::catch_unwind(|| harness::handshake_messages(bytes));
        assert!(r.is_ok(), "handshake_messages/{name}");
    }
}

/// The seeds reach what they are meant to: the server answers the captured
/// ClientHello with its flight, a client parses the captured ServerHello (and
/// fails only where a new client's keys differ), and every message seed decodes.
#[test]
fn seeds_reach_deep_states() {
    let seed = |name: &str| {
        corpus("record")
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .expect(name)
    };
    let o = harness::server_reads(&seed("server-client-hello")[1..]);
    assert_full_tls13_flight(&o.output, "captured hello");
    assert_eq!(o.error, Some(Error::PrematureTermination));

    let o = harness::server_reads(&seed("server-retry")[1..]);
    assert_full_tls13_flight(&o.output, "retry flow");

    // TLS 1.2: the server answers with its whole first flight, and given the
    // client's flight it gets as far as the client's Finished, sealed under
    // keys it does not share.
    let o = harness::server_reads(&seed("server-client-hello-tls12")[1..]);
    assert_eq!(
        handshake_types(&o.output),
        [
            HandshakeType::SERVER_HELLO,
            HandshakeType::CERTIFICATE,
            HandshakeType::SERVER_KEY_EXCHANGE,
            HandshakeType::SERVER_HELLO_DONE
        ]
    );
    assert_eq!(o.error, Some(Error::PrematureTermination));
    let o = harness::server_reads(&seed("server-client-flight-tls12")[1..]);
    assert_alert(&o.error, nbtls::codec::AlertDescription::BAD_RECORD_MAC);
    // The client checks the server's signature over its own random.
    let o = harness::client_reads(&seed("client-server-flight-tls12")[1..]);
    assert_alert(&o.error, nbtls::codec::AlertDescription::DECRYPT_ERROR);

    // The captured flight decrypts only under the original keys.
    let o = harness::client_reads(&seed("client-server-flight")[1..]);
    assert!(
        matches!(&o.error, Some(Error::Protocol { alert, .. }) if *alert == nbtls::codec::AlertDescription::BAD_RECORD_MAC),
        "{:?}",
        o.error
    );
    for (name, bytes) in corpus("handshake_messages") {
        let (sel, body) = bytes.split_first().expect("selector");
        let ok = match sel % 24 {
            0 => ClientHello::from_bytes(body).is_ok(),
            2 => nbtls::codec::ServerHello::from_bytes(body).is_ok(),
            3 => nbtls::codec::EncryptedExtensions::from_bytes(body).is_ok(),
            4 => nbtls::codec::Certificate13::from_bytes(body).is_ok(),
            6 => nbtls::codec::CertificateVerify::from_bytes(body).is_ok(),
            _ => true,
        };
        assert!(ok, "seed {name} decodes");
    }
}

fn assert_alert(err: &Option<Error>, want: nbtls::codec::AlertDescription) {
    assert!(
        matches!(err, Some(Error::Protocol { alert, .. }) if *alert == want),
        "expected {want:?}, got {err:?}"
    );
}

/// The plaintext handshake messages of a session's output, in order.
fn handshake_types(out: &[u8]) -> Vec<HandshakeType> {
    let hs: Vec<u8> = harness::records(out)
        .into_iter()
        .filter(|r| r.0 == 22)
        .flat_map(|r| r.1.to_vec())
        .collect();
    let mut types = Vec::new();
    let mut rest = hs.as_slice();
    while rest.len() >= 4 {
        let len = 4 + u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        types.push(HandshakeType(rest[0]));
        rest = &rest[len.min(rest.len())..];
    }
    types
}

/// A TLS 1.3 server flight: a ServerHello in the clear, then protected
/// records large enough to hold EncryptedExtensions, the certificate, its
/// signature and the Finished.
fn assert_full_tls13_flight(out: &[u8], what: &str) {
    let recs = harness::records(out);
    assert_eq!(recs.first().map(|r| r.0), Some(22), "{what}: ServerHello");
    assert_eq!(
        handshake_types(out).last(),
        Some(&HandshakeType::SERVER_HELLO),
        "{what}"
    );
    let cert_len = harness::server_certificate_len();
    let protected: usize = recs.iter().filter(|r| r.0 == 23).map(|r| r.1.len()).sum();
    assert!(
        protected > cert_len + 100,
        "{what}: the whole protected flight ({protected} bytes, certificate {cert_len})"
    );
}

// ---------------------------------------------------------------------------
// The stand-in fuzzer
// ---------------------------------------------------------------------------

/// xorshift64*: a fixed seed makes every run mutate the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x20, 0x40];
        if self.below(3) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
}

/// One blind byte-level change.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        b.push(rng.byte());
        return;
    }
    let at = rng.below(b.len());
    match rng.below(7) {
        0 => b[at] ^= 1 << rng.below(8),
        1 => b[at] = rng.byte(),
        2 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                b.insert(at, rng.byte());
            }
        }
        3 => {
            let n = (1 + rng.below(16)).min(b.len() - at);
            b.drain(at..at + n);
        }
        4 => b.truncate(at),
        5 => {
            let n = (1 + rng.below(32)).min(b.len() - at);
            let chunk = b[at..at + n].to_vec();
            let to = rng.below(b.len());
            b.splice(to..to, chunk);
        }
        _ => {
            // A big-endian u16 nudged: lengths are the interesting fields.
            if at + 1 < b.len() {
                let v = u16::from_be_bytes([b[at], b[at + 1]]);
                let v = match rng.below(4) {
                    0 => v.wrapping_add(1),
                    1 => v.wrapping_sub(1),
                    2 => 0,
                    _ => 0xffff,
                };
                b[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// Splits a stream into records (a trailing partial record is kept as is).
fn split_records(b: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    let mut recs = Vec::new();
    let mut rest = b;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest.len() < 5 + len {
            break;
        }
        recs.push((rest[0], rest[5..5 + len].to_vec()));
        rest = &rest[5 + len..];
    }
    (recs, rest.to_vec())
}

fn join_records(recs: &[(u8, Vec<u8>)], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, body) in recs {
        out.extend_from_slice(&[*t, 3, 3]);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    out.extend_from_slice(tail);
    out
}

/// One structure-aware change: inside a record body or a handshake message
/// (lengths fixed up, so the change reaches the parsers), or to the record
/// sequence itself.
fn mutate_records(rng: &mut Rng, input: &mut Vec<u8>) {
    let (mut recs, tail) = split_records(input);
    if recs.is_empty() {
        return mutate_bytes(rng, input);
    }
    let i = rng.below(recs.len());
    match rng.below(6) {
        0 | 1 => {
            // A handshake message body, both lengths fixed up.
            let (typ, body) = &mut recs[i];
            if *typ == 22 && body.len() >= 4 {
                let mut msg = body[4..].to_vec();
                mutate_bytes(rng, &mut msg);
                let mut framed = vec![body[0]];
                framed.extend_from_slice(&(msg.len() as u32).to_be_bytes()[1..]);
                framed.extend(msg);
                *body = framed;
            } else {
                mutate_bytes(rng, body);
            }
        }
        2 => mutate_bytes(rng, &mut recs[i].1),
        3 => {
            recs.remove(i);
        }
        4 => {
            let r = recs[i].clone();
            recs.insert(rng.below(recs.len() + 1), r);
        }
        _ => recs[i].0 = [20, 21, 22, 23, 24, 0][rng.below(6)],
    }
    *input = join_records(&recs, &tail);
}

#[test]
fn mutation_loop_stand_in_fuzzer() {
    let records = corpus("record");
    let messages = corpus("handshake_messages");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut server_answered = 0;
    let started = std::time::Instant::now();
    const RECORD_RUNS: usize = 20_000;
    const MESSAGE_RUNS: usize = 20_000;
    for n in 0..RECORD_RUNS {
        let (name, seed) = &records[n % records.len()];
        let mut input = seed[1..].to_vec();
        for _ in 0..1 + rng.below(3) {
            if rng.below(3) == 0 {
                mutate_bytes(&mut rng, &mut input);
            } else {
                mutate_records(&mut rng, &mut input);
            }
        }
        let client = seed[0] & 1 == 0;
        let o = std::panic::catch_unwind(|| {
            if client {
                harness::client_reads(&input)
            } else {
                harness::server_reads(&input)
            }
        })
        .unwrap_or_else(|_| panic!("iteration {n} (seed {name}) input {input:02x?}"));
        if !client && o.output.first() == Some(&22) {
            server_answered += 1;
        }
        let key = match &o.error {
            Some(Error::Protocol { alert, .. }) => format!("{alert:?}"),
            Some(Error::LimitExceeded { limit, .. }) => limit.to_string(),
            Some(Error::AlertReceived(_)) => "AlertReceived".into(),
            Some(e) => format!("{e:?}"),
            None => "none".into(),
        };
        *errors.entry(key).or_default() += 1;
    }
    for n in 0..MESSAGE_RUNS {
        let (name, seed) = &messages[n % messages.len()];
        let mut input = seed.clone();
        for _ in 0..1 + rng.below(3) {
            // Keep the selector byte: mutate the message.
            let mut body = input[1..].to_vec();
            mutate_bytes(&mut rng, &mut body);
            input.truncate(1);
            input.extend(body);
        }
        let r = std::panic::catch_unwind(|| harness::handshake_messages(&input));
        assert!(r.is_ok(), "iteration {n} (seed {name}) input {input:02x?}");
    }
    // The loop reached past framing: many kinds of failure, and servers that
    // still answered a mutated hello.
    assert!(errors.len() >= 6, "{errors:?}");
    assert!(server_answered >= 100, "{server_answered} {errors:?}");
    eprintln!(
        "{} record and {} message inputs in {:?}: {errors:?}",
        RECORD_RUNS,
        MESSAGE_RUNS,
        started.elapsed()
    );
}
