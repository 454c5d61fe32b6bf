//! The stateless check and the acceptor over in-memory engines.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;

use super::*;
use crate::config::{ClientConfig, ServerConfig};
use crate::engine::Engine;
use crate::x509::testcerts::{Alg, TestPki};

fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let pki = TestPki::new(Alg::EcdsaP256);
    let leaf = pki.leaf(Alg::EcdsaP256, &["localhost"]);
    let client = ClientConfig::new(pki.anchors());
    (
        Arc::new(client),
        Arc::new(ServerConfig::new(leaf.certified_key())),
    )
}

fn client(config: &Arc<ClientConfig>) -> Engine {
    Engine::client_dtls(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap()
}

fn take(e: &mut Engine) -> Vec<u8> {
    let d = e.pending_datagram().expect("a datagram to send").to_vec();
    e.datagram_sent();
    d
}

const PEER: &str = "192.0.2.1:5000";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

/// RFC 6347 §4.2.1: the HelloVerifyRequest echoes the ClientHello's record
/// sequence number and message_seq; the cookie it carries is accepted from
/// the same address only, and the prestate continues the sequences.
#[test]
fn hello_verify_echoes_sequence_numbers_and_its_cookie_is_accepted() {
    let (cc, sc) = configs();
    let mut c = client(&cc);
    let mut hello = take(&mut c);
    hello[5..11].copy_from_slice(&[0, 0, 0, 0, 0, 7]);
    let id = peer().client_id();
    let HelloCheck::SendHelloVerify(hvr) = verify_hello(&sc, &id, &hello) else {
        panic!("a cookie-less hello is challenged");
    };
    assert_eq!(hvr[0], 22, "handshake record");
    assert_eq!(
        &hvr[3..11],
        &[0, 0, 0, 0, 0, 0, 0, 7],
        "epoch 0, seq echoed"
    );
    assert_eq!(hvr[13], 3, "HelloVerifyRequest");
    assert_eq!(&hvr[17..19], &[0, 0], "message_seq of the first hello");
    c.feed_datagram(&hvr).unwrap();
    let hello2 = take(&mut c);
    let HelloCheck::Accept(p) = verify_hello(&sc, &id, &hello2) else {
        panic!("the cookie verifies");
    };
    assert_eq!(p.message_seq(), 1);
    assert_eq!(p.record_seq(), 1);
    let other: SocketAddr = "192.0.2.1:5001".parse().unwrap();
    assert!(matches!(
        verify_hello(&sc, &other.client_id(), &hello2),
        HelloCheck::SendHelloVerify(_)
    ));
    // The engine continues from the prestate: ServerHello has message_seq 1,
    // and its record sequence is past the hello's.
    let mut s = Engine::server_dtls_accepted(sc, &id, &p, &hello2).unwrap();
    let flight = take(&mut s);
    assert_eq!(flight[13], 2, "ServerHello");
    assert_eq!(&flight[17..19], &[0, 1]);
    assert!(flight[10] >= 1, "record seq not reused");
}

#[test]
fn what_is_not_a_whole_client_hello_is_dropped() {
    let (cc, sc) = configs();
    let id = peer().client_id();
    let hello = take(&mut client(&cc));
    let check = |d: &[u8]| verify_hello(&sc, &id, d);
    assert_eq!(check(&[]), HelloCheck::Drop(DropReason::Malformed));
    assert_eq!(check(&hello[..20]), HelloCheck::Drop(DropReason::Malformed));
    let mut epoch1 = hello.clone();
    epoch1[4] = 1;
    assert_eq!(check(&epoch1), HelloCheck::Drop(DropReason::NotClientHello));
    let mut alert = hello.clone();
    alert[0] = 21;
    assert_eq!(check(&alert), HelloCheck::Drop(DropReason::NotClientHello));
    // A small MTU splits the hello over datagrams: every piece is dropped.
    let mut small = client(&cc);
    small.set_mtu(128);
    let mut pieces = 0;
    while small.pending_datagram().is_some() {
        let d = take(&mut small);
        assert_eq!(check(&d), HelloCheck::Drop(DropReason::Fragmented));
        pieces += 1;
    }
    assert!(pieces > 1, "the hello was fragmented");
    // A body that does not parse: session_id's length runs past the end.
    let mut bad = hello.clone();
    bad[25 + 2 + 32] = 0xff;
    assert_eq!(check(&bad), HelloCheck::Drop(DropReason::Malformed));
}

/// The sans-IO acceptor completes a handshake with an in-memory client,
/// counting exactly one half-open session while it runs.
#[test]
fn acceptor_hands_out_one_session_per_handshake() {
    let (cc, sc) = configs();
    let mut acc: Acceptor<SocketAddr> = Acceptor::new(sc, ListenerConfig::default());
    let mut c = client(&cc);
    let mut accepted = None;
    let mut last_hello = Vec::new();
    for _ in 0..20 {
        while c.pending_datagram().is_some() {
            let d = take(&mut c);
            if d[13] == 1 {
                last_hello = d.clone();
            }
            assert_eq!(acc.handle_datagram(peer(), &d), Route::Handled);
        }
        while let Some((k, d)) = acc.poll_transmit() {
            assert_eq!(k, peer());
            c.feed_datagram(&d).unwrap();
        }
        if let Some(a) = acc.poll_accept() {
            accepted = Some(a);
        }
        if accepted.is_some() && !c.is_handshaking() {
            break;
        }
        assert!(acc.half_open() <= 1);
    }
    let a = accepted.expect("a session");
    assert_eq!(a.key(), &peer());
    assert!(!a.replaces());
    assert_eq!((acc.half_open(), acc.sessions()), (0, 1));
    assert_eq!(acc.stats().hello_verify_sent, 1);
    // Application data from the client is the session's.
    c.seal_datagram(b"data").unwrap();
    let d = take(&mut c);
    assert_eq!(acc.handle_datagram(peer(), &d), Route::Session);
    // A delayed copy of the hello with the cookie starts no new handshake.
    assert_eq!(acc.handle_datagram(peer(), &last_hello), Route::Handled);
    assert_eq!((acc.half_open(), acc.sessions()), (0, 1));
    assert!(acc.poll_transmit().is_none());
}
