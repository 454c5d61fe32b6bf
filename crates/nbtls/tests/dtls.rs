//! DTLS 1.2 over in-memory datagrams.

mod common;

use std::sync::Arc;

use common::certs::pki;
use common::tls::{certified_key, client_config, server_config};
use nbtls::codec::{CipherSuite, ProtocolVersion};
use nbtls::{Error, Flags, MemoryDatagram, ServerConfig, Session};

type D = Session<MemoryDatagram>;

fn pair(server: ServerConfig) -> (D, D) {
    let (a, b) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let c = Session::client(Arc::new(client_config()), "localhost", a, flags).unwrap();
    let s = Session::server_datagram(Arc::new(server), b"peer", b, flags).unwrap();
    (c, s)
}

fn handshake(c: &mut D, s: &mut D) {
    let (mut cd, mut sd) = (false, false);
    for _ in 0..200 {
        if !cd {
            match c.handshake() {
                Ok(()) => cd = true,
                Err(Error::Again) => {}
                Err(e) => panic!("client: {e}"),
            }
        }
        if !sd {
            match s.handshake() {
                Ok(()) => sd = true,
                Err(Error::Again) => {}
                Err(e) => panic!("server: {e}"),
            }
        }
        if cd && sd {
            return;
        }
    }
    panic!("DTLS handshake did not finish");
}

#[test]
fn dtls12_handshake_and_datagrams_for_every_suite() {
    let suites = [
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &pki().server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            &pki().server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            &pki().server_rsa,
        ),
    ];
    for (suite, cert) in suites {
        let server = ServerConfig::new(certified_key(cert))
            .cipher_suites(&[suite])
            .unwrap();
        let (mut c, mut s) = pair(server);
        handshake(&mut c, &mut s);
        assert_eq!(
            c.protocol_version(),
            Some(ProtocolVersion::DTLS1_2),
            "{suite}"
        );
        assert_eq!(c.cipher_suite(), Some(suite));
        assert_eq!(c.send(b"one datagram").unwrap(), 12);
        let mut buf = [0u8; 64];
        assert_eq!(s.recv(&mut buf).unwrap(), 12);
        assert_eq!(&buf[..12], b"one datagram");
        assert_eq!(s.send(b"back").unwrap(), 4);
        assert_eq!(c.recv(&mut buf).unwrap(), 4);
        // A send over the data MTU is refused whole.
        let big = vec![0u8; c.data_mtu() + 1];
        assert_eq!(c.send(&big), Err(Error::LargePacket));
        assert_eq!(c.send(&big[..c.data_mtu()]).unwrap(), c.data_mtu());
        assert_eq!(s.recv(&mut vec![0u8; 2000]).unwrap(), c.data_mtu());
    }
}

#[test]
fn dtls12_with_cookies_off() {
    let (mut c, mut s) = pair(server_config().dtls_cookies(None));
    handshake(&mut c, &mut s);
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::DTLS1_2));
}

/// Retransmissions of a lost flight while the caller drives the timer
/// (test clock): the intervals, and the total time until `TimedOut`.
fn retransmissions(no_total_limit: bool, max: usize) -> (Vec<u64>, u64) {
    use common::sched::ManualClock;
    use nbtls::Transport;
    let clock = ManualClock::new();
    let (a, mut b) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let cfg = client_config().time_source(clock.clone());
    let mut c = Session::client(Arc::new(cfg), "localhost", a, flags).unwrap();
    if no_total_limit {
        c.set_handshake_timeout(None);
    }
    assert_eq!(c.handshake(), Err(Error::Again));
    let mut sink = vec![0u8; 4096];
    assert!(b.pull(&mut sink).is_ok(), "the ClientHello, lost");
    let (mut intervals, mut elapsed) = (Vec::new(), 0);
    while intervals.len() < max {
        let t = c.timeout().expect("a timer runs while handshaking");
        clock.advance(t);
        elapsed += t.as_secs();
        match c.handshake() {
            Err(Error::Again) => {}
            Err(Error::TimedOut) => break,
            other => panic!("{other:?}"),
        }
        // Every expiry resends the flight (lost again).
        assert!(b.pull(&mut sink).is_ok(), "retransmitted after {t:?}");
        intervals.push(t.as_secs());
    }
    (intervals, elapsed)
}

/// RFC 6347 §4.2.4: 1 s doubling, clamped at 60 s (not wrapped); with the
/// default 60 s total a silent peer ends the handshake with TimedOut.
#[test]
fn retransmission_timer_doubles_clamps_and_times_out() {
    let (intervals, _) = retransmissions(true, 8);
    assert_eq!(intervals, [1, 2, 4, 8, 16, 32, 60, 60]);
    let (intervals, elapsed) = retransmissions(false, 100);
    assert_eq!(intervals, [1, 2, 4, 8, 16]);
    assert_eq!(elapsed, 60, "TimedOut at the 60 s default");
}

#[test]
fn a_lost_server_flight_is_recovered() {
    use nbtls::Transport;
    let (a, b) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let mut c = Session::client(Arc::new(client_config()), "localhost", a, flags).unwrap();
    let mut s = Session::server_datagram(Arc::new(server_config()), b"p", b, flags).unwrap();
    // ClientHello, HelloVerifyRequest, ClientHello with cookie.
    let _ = c.handshake();
    let _ = s.handshake();
    let _ = c.handshake();
    let _ = s.handshake();
    // Drop the server's whole flight (ServerHello .. ServerHelloDone).
    let mut sink = vec![0u8; 20000];
    let mut dropped = 0;
    while c.transport_mut().pull(&mut sink).is_ok() {
        dropped += 1;
    }
    assert!(dropped > 0);
    // The client's timer brings its ClientHello again; the server answers
    // with its flight again; the handshake completes.
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        if let Some(t) = c.timeout() {
            std::thread::sleep(t);
        }
        let _ = c.handshake();
        let _ = s.handshake();
    }
    handshake(&mut c, &mut s);
    c.send(b"after loss").unwrap();
    assert_eq!(s.recv(&mut [0u8; 32]).unwrap(), 10);
}
