//! DTLS-SRTP negotiation (RFC 5764) between nbtls peers, and
//! `recv_with_seq` (GnuTLS `gnutls_record_recv_seq`) for loss detection.

mod common;

use std::sync::Arc;

use common::tls::{client_config, server_config};
use nbtls::{Error, Flags, MemoryDatagram, Session, SrtpProtectionProfile as P, Transport};

type D = Session<MemoryDatagram>;

/// A client and a server joined by a relay the test drives: the relay
/// ends are returned so datagrams can be dropped on the way.
struct Link {
    c: D,
    s: D,
    /// Far end of the client's transport.
    c_far: MemoryDatagram,
    /// Far end of the server's transport.
    s_far: MemoryDatagram,
}

fn link(client: nbtls::ClientConfig, server: nbtls::ServerConfig) -> Link {
    let (a, c_far) = MemoryDatagram::pair();
    let (b, s_far) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let c = Session::client(Arc::new(client), "localhost", a, flags).unwrap();
    let s = Session::server_datagram(Arc::new(server), b"peer", b, flags).unwrap();
    Link { c, s, c_far, s_far }
}

/// Moves every queued datagram from `from` to `to`, dropping those `keep`
/// refuses; returns how many were moved.
fn relay(
    from: &mut MemoryDatagram,
    to: &mut MemoryDatagram,
    mut keep: impl FnMut(&[u8]) -> bool,
) -> usize {
    let mut buf = vec![0u8; 20000];
    let mut n = 0;
    while let Ok(len) = from.pull(&mut buf) {
        if keep(&buf[..len]) {
            to.push(&buf[..len]).unwrap();
            n += 1;
        }
    }
    n
}

impl Link {
    fn handshake(&mut self) -> Result<(), Error> {
        let (mut cd, mut sd) = (false, false);
        for _ in 0..100 {
            if !cd {
                match self.c.handshake() {
                    Ok(()) => cd = true,
                    Err(Error::Again) => {}
                    Err(e) => return Err(e),
                }
            }
            relay(&mut self.c_far, &mut self.s_far, |_| true);
            if !sd {
                match self.s.handshake() {
                    Ok(()) => sd = true,
                    Err(Error::Again) => {}
                    Err(e) => return Err(e),
                }
            }
            relay(&mut self.s_far, &mut self.c_far, |_| true);
            if cd && sd {
                return Ok(());
            }
        }
        panic!("DTLS handshake did not finish");
    }
}

fn negotiate(offer: &[P], accept: &[P]) -> Link {
    let mut l = link(
        client_config().srtp_profiles(offer),
        server_config().srtp_profiles(accept),
    );
    l.handshake().expect("handshake");
    l
}

#[test]
fn srtp_profile_is_the_servers_preference_among_the_offered() {
    let l = negotiate(
        &[P::AES128_CM_HMAC_SHA1_80, P::AEAD_AES_128_GCM],
        &[P::AEAD_AES_128_GCM, P::AES128_CM_HMAC_SHA1_80],
    );
    assert_eq!(l.c.srtp_profile(), Some(P::AEAD_AES_128_GCM));
    assert_eq!(l.s.srtp_profile(), Some(P::AEAD_AES_128_GCM));

    let l = negotiate(
        &[P::AEAD_AES_256_GCM, P::AES128_CM_HMAC_SHA1_32, P(0x1234)],
        &[P::AES128_CM_HMAC_SHA1_80, P::AES128_CM_HMAC_SHA1_32],
    );
    assert_eq!(l.c.srtp_profile(), Some(P::AES128_CM_HMAC_SHA1_32));
    assert_eq!(l.s.srtp_profile(), Some(P::AES128_CM_HMAC_SHA1_32));
}

#[test]
fn srtp_keying_material_matches_on_both_sides_and_the_exporter() {
    for (profile, key, salt) in [
        (P::AES128_CM_HMAC_SHA1_80, 16, 14),
        (P::AEAD_AES_128_GCM, 16, 12),
        (P::AEAD_AES_256_GCM, 32, 12),
    ] {
        let l = negotiate(&[profile], &[profile]);
        let (c, s) = (
            l.c.srtp_keying_material().unwrap(),
            l.s.srtp_keying_material().unwrap(),
        );
        assert_eq!(c.profile(), profile);
        assert_eq!(c.client_write_key().len(), key);
        assert_eq!(c.server_write_key().len(), key);
        assert_eq!(c.client_write_salt().len(), salt);
        assert_eq!(c.server_write_salt().len(), salt);
        assert_eq!(*c.to_bytes(), *s.to_bytes());
        assert_ne!(c.client_write_key(), c.server_write_key());
        // RFC 5764 §4.2 layout of the exporter output.
        let mut raw = vec![0u8; 2 * (key + salt)];
        l.c.export_keying_material(b"EXTRACTOR-dtls_srtp", &[], &mut raw)
            .unwrap();
        assert_eq!(&raw[..key], c.client_write_key());
        assert_eq!(&raw[key..2 * key], c.server_write_key());
        assert_eq!(&raw[2 * key..2 * key + salt], c.client_write_salt());
        assert_eq!(&raw[2 * key + salt..], c.server_write_salt());
        assert!(!format!("{c:?}").contains(&format!("{:?}", c.client_write_key())));
    }
}

#[test]
fn no_common_srtp_profile_leaves_plain_dtls() {
    for (offer, accept) in [
        (&[P::AES128_CM_HMAC_SHA1_80][..], &[P::AEAD_AES_128_GCM][..]),
        (&[P::AES128_CM_HMAC_SHA1_80][..], &[][..]),
        (&[][..], &[P::AEAD_AES_128_GCM][..]),
    ] {
        let mut l = negotiate(offer, accept);
        assert_eq!(l.c.srtp_profile(), None);
        assert_eq!(l.s.srtp_profile(), None);
        assert!(matches!(
            l.c.srtp_keying_material(),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            l.s.srtp_keying_material(),
            Err(Error::InvalidRequest(_))
        ));
        // The DTLS session itself works.
        l.c.send(b"x").unwrap();
        relay(&mut l.c_far, &mut l.s_far, |_| true);
        assert_eq!(l.s.recv(&mut [0u8; 8]).unwrap(), 1);
    }
}

#[test]
fn srtp_is_not_negotiated_over_tls() {
    // The option is DTLS-only: a TLS 1.2 handshake with both sides
    // configured negotiates no profile.
    let (mut c, mut s) = common::tls::pair(
        client_config()
            .versions(&[nbtls::codec::ProtocolVersion::TLS1_2])
            .unwrap()
            .srtp_profiles(&[P::AES128_CM_HMAC_SHA1_80]),
        server_config().srtp_profiles(&[P::AES128_CM_HMAC_SHA1_80]),
        Flags::NONBLOCK,
    );
    common::tls::handshake(&mut c, &mut s).unwrap();
    assert_eq!(c.srtp_profile(), None);
    assert_eq!(s.srtp_profile(), None);
}

#[test]
fn recv_with_seq_shows_order_and_the_gap_of_a_dropped_datagram() {
    let mut l = negotiate(&[], &[]);
    // Ten datagrams; the relay drops the fourth and the eighth.
    for i in 0..10u8 {
        l.c.send(&[i; 20]).unwrap();
    }
    let mut idx = 0;
    let moved = relay(&mut l.c_far, &mut l.s_far, |_| {
        idx += 1;
        idx != 4 && idx != 8
    });
    assert_eq!(moved, 8);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..8 {
        let (n, seq) = l.s.recv_with_seq(&mut buf).unwrap();
        assert_eq!(n, 20);
        got.push((buf[0], seq));
    }
    assert_eq!(l.s.recv_with_seq(&mut buf), Err(Error::Again));
    let payloads: Vec<u8> = got.iter().map(|g| g.0).collect();
    assert_eq!(payloads, [0, 1, 2, 4, 5, 6, 8, 9]);
    // Epoch 1 after the handshake; consecutive numbers but where a
    // datagram was dropped.
    let seqs: Vec<u64> = got.iter().map(|g| g.1).collect();
    assert!(seqs.iter().all(|s| s >> 48 == 1), "{seqs:x?}");
    let steps: Vec<u64> = seqs.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps, [1, 1, 2, 1, 1, 2, 1], "{seqs:x?}");

    // The other direction, and a partial read keeps the datagram's number.
    l.s.send(b"0123456789").unwrap();
    l.s.send(b"abc").unwrap();
    relay(&mut l.s_far, &mut l.c_far, |_| true);
    let mut small = [0u8; 4];
    let (n1, s1) = l.c.recv_with_seq(&mut small).unwrap();
    let (n2, s2) = l.c.recv_with_seq(&mut [0u8; 64]).unwrap();
    let (n3, s3) = l.c.recv_with_seq(&mut [0u8; 64]).unwrap();
    assert_eq!((n1, n2, n3), (4, 6, 3));
    assert_eq!(s1, s2);
    assert_eq!(s3, s2 + 1);
    assert_eq!(s1 >> 48, 1);

    // After close_notify: (0, 0).
    l.c.bye(nbtls::Shutdown::Write).unwrap();
    relay(&mut l.c_far, &mut l.s_far, |_| true);
    assert_eq!(l.s.recv_with_seq(&mut buf).unwrap(), (0, 0));
}

#[test]
fn recv_with_seq_is_refused_over_tls() {
    let (mut c, mut s) = common::tls::pair(client_config(), server_config(), Flags::NONBLOCK);
    common::tls::handshake(&mut c, &mut s).unwrap();
    assert!(matches!(
        c.recv_with_seq(&mut [0u8; 8]),
        Err(Error::InvalidRequest(_))
    ));
}

// ---------------------------------------------------------------------------
// MKI and wrong answers, by rewriting a hello on the way (epoch 0 records are
// not authenticated; the Finished would catch it later, but the checks
// under test come first).

use nbtls::codec::{
    AlertDescription, ClientExtension, ClientHello, Codec, Reader, ServerExtension, ServerHello,
    UseSrtp,
};

/// Splits a datagram whose first record is an unfragmented epoch-0
/// handshake message of type `typ` into (message body, rest of the
/// datagram); `None` otherwise.
fn first_message(d: &[u8], typ: u8) -> Option<(&[u8], &[u8])> {
    let rec_len = usize::from(u16::from_be_bytes([*d.get(11)?, *d.get(12)?]));
    let rec = d.get(13..13 + rec_len)?;
    if d[0] != 22 || d[3..5] != [0, 0] || rec.first() != Some(&typ) {
        return None;
    }
    let len = u32::from_be_bytes([0, rec[1], rec[2], rec[3]]) as usize;
    let frag_len = u32::from_be_bytes([0, rec[9], rec[10], rec[11]]) as usize;
    if frag_len != len || rec[6..9] != [0, 0, 0] {
        return None;
    }
    Some((rec.get(12..12 + len)?, &d[13 + rec_len..]))
}

/// `d` with its first record's handshake body replaced by `body`.
fn with_body(d: &[u8], body: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = d[..11].to_vec();
    let msg_len = body.len() as u32;
    out.extend_from_slice(&((12 + body.len()) as u16).to_be_bytes());
    out.push(d[13]);
    out.extend_from_slice(&msg_len.to_be_bytes()[1..]);
    out.extend_from_slice(&d[17..19]); // message_seq
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&msg_len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out.extend_from_slice(rest);
    out
}

fn rewrite_client_hello(d: &[u8], f: &mut dyn FnMut(&mut UseSrtp)) -> Vec<u8> {
    let (body, rest) = first_message(d, 1).expect("a ClientHello");
    let mut hello = ClientHello::read_body(&mut Reader::new(body), true).unwrap();
    for e in &mut hello.extensions {
        if let ClientExtension::UseSrtp(u) = e {
            f(u);
        }
    }
    with_body(d, &hello.to_bytes(), rest)
}

fn rewrite_server_hello(d: &[u8], f: &mut dyn FnMut(&mut UseSrtp)) -> Option<Vec<u8>> {
    let (body, rest) = first_message(d, 2)?;
    let mut sh = ServerHello::from_bytes(body).unwrap();
    for e in &mut sh.extensions {
        if let ServerExtension::UseSrtp(u) = e {
            f(u);
        }
    }
    Some(with_body(d, &sh.to_bytes(), rest))
}

/// A client and a server without cookies; the client's ClientHello and
/// the server's ServerHello pass through the given rewrites.
fn tampered(
    offer: &[P],
    accept: &[P],
    on_client_hello: &mut dyn FnMut(&mut UseSrtp),
    on_server_hello: &mut dyn FnMut(&mut UseSrtp),
) -> (Link, Option<ServerHello>, Result<(), Error>) {
    let mut l = link(
        client_config().srtp_profiles(offer),
        server_config().srtp_profiles(accept).dtls_cookies(None),
    );
    let mut seen = None;
    let mut buf = vec![0u8; 20000];
    for _ in 0..20 {
        match l.c.handshake() {
            Ok(()) => return (l, seen, Ok(())),
            Err(Error::Again) => {}
            Err(e) => return (l, seen, Err(e)),
        }
        while let Ok(n) = l.c_far.pull(&mut buf) {
            let d = match first_message(&buf[..n], 1) {
                Some(_) => rewrite_client_hello(&buf[..n], on_client_hello),
                None => buf[..n].to_vec(),
            };
            l.s_far.push(&d).unwrap();
        }
        let _ = l.s.handshake();
        while let Ok(n) = l.s_far.pull(&mut buf) {
            let d = match rewrite_server_hello(&buf[..n], on_server_hello) {
                Some(d) => {
                    let (body, _) = first_message(&d, 2).unwrap();
                    seen = Some(ServerHello::from_bytes(body).unwrap());
                    d
                }
                None => buf[..n].to_vec(),
            };
            l.c_far.push(&d).unwrap();
        }
    }
    // Neither done nor failed (the server refuses the client's Finished,
    // whose transcript holds the hello before the rewrite).
    (l, seen, Err(Error::Again))
}

fn srtp_of(sh: &ServerHello) -> Option<&UseSrtp> {
    sh.extensions.iter().find_map(|e| match e {
        ServerExtension::UseSrtp(u) => Some(u),
        _ => None,
    })
}

#[test]
fn server_answers_a_client_mki_with_an_empty_one() {
    // RFC 5764 §4.1.1: a server that does not use the client's MKI
    // answers with an empty srtp_mki.
    let (l, sh, _) = tampered(
        &[P::AES128_CM_HMAC_SHA1_80],
        &[P::AES128_CM_HMAC_SHA1_80],
        &mut |u| u.mki = vec![1, 2, 3, 4],
        &mut |_| {},
    );
    let sh = sh.expect("a ServerHello");
    let u = srtp_of(&sh).expect("use_srtp answered");
    assert_eq!(u.profiles, [P::AES128_CM_HMAC_SHA1_80]);
    assert!(u.mki.is_empty());
    assert_eq!(l.s.srtp_profile(), Some(P::AES128_CM_HMAC_SHA1_80));
}

#[test]
fn client_rejects_a_bad_use_srtp_answer() {
    type Rewrite<'a> = &'a mut dyn FnMut(&mut UseSrtp);
    let cases: [(&str, Rewrite); 3] = [
        ("a profile we did not offer", &mut |u| {
            u.profiles = vec![P::AEAD_AES_256_GCM]
        }),
        ("two profiles", &mut |u| {
            u.profiles.push(P::AEAD_AES_128_GCM)
        }),
        ("an MKI we did not send", &mut |u| u.mki = vec![9]),
    ];
    for (what, f) in cases {
        let (_, sh, r) = tampered(
            &[P::AES128_CM_HMAC_SHA1_80, P::AEAD_AES_128_GCM],
            &[P::AES128_CM_HMAC_SHA1_80],
            &mut |_| {},
            f,
        );
        assert!(sh.is_some(), "{what}: the ServerHello was rewritten");
        let e = r.expect_err(what);
        assert_eq!(
            e.alert(),
            Some(AlertDescription::ILLEGAL_PARAMETER),
            "{what}: {e}"
        );
    }
}

#[test]
fn client_rejects_use_srtp_it_did_not_ask_for() {
    // The server answers use_srtp; a client that offered none must refuse
    // (RFC 5246 §7.4.1.4: unsupported_extension). The ServerHello is
    // rebuilt with the extension added.
    let mut l = link(client_config(), server_config().dtls_cookies(None));
    let mut buf = vec![0u8; 20000];
    let mut result = None;
    for _ in 0..20 {
        match l.c.handshake() {
            Ok(()) => panic!("handshake succeeded"),
            Err(Error::Again) => {}
            Err(e) => {
                result = Some(e);
                break;
            }
        }
        relay(&mut l.c_far, &mut l.s_far, |_| true);
        let _ = l.s.handshake();
        while let Ok(n) = l.s_far.pull(&mut buf) {
            let d = match first_message(&buf[..n], 2) {
                Some((body, rest)) => {
                    let mut sh = ServerHello::from_bytes(body).unwrap();
                    sh.extensions.push(ServerExtension::UseSrtp(UseSrtp {
                        profiles: vec![P::AES128_CM_HMAC_SHA1_80],
                        mki: vec![],
                    }));
                    with_body(&buf[..n], &sh.to_bytes(), rest)
                }
                None => buf[..n].to_vec(),
            };
            l.c_far.push(&d).unwrap();
        }
    }
    let e = result.expect("the client failed");
    assert_eq!(
        e.alert(),
        Some(AlertDescription::UNSUPPORTED_EXTENSION),
        "{e}"
    );
}
