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
