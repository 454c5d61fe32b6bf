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

/// A datagram transport that records the size of every datagram it sends.
struct Sizes {
    inner: MemoryDatagram,
    sent: std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
}

impl nbtls::Transport for Sizes {
    fn push(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.sent.borrow_mut().push(data.len());
        self.inner.push(data)
    }
    fn pull(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.pull(buf)
    }
}

/// Datagrams never exceed the sender's MTU, in the handshake (the
/// certificate flight is fragmented) and after; a send of exactly
/// `data_mtu()` fits.
#[test]
fn datagrams_never_exceed_the_senders_mtu() {
    use std::cell::RefCell;
    use std::rc::Rc;
    // (client MTU, server MTU)
    let cases = [(104, 104), (400, 400), (1500, 1500), (1500, 400)];
    for (cm, sm) in cases {
        for cert in [&pki().server_ecdsa, &pki().server_rsa] {
            let (a, b) = MemoryDatagram::pair();
            let (c_sent, s_sent) = (
                Rc::new(RefCell::new(Vec::new())),
                Rc::new(RefCell::new(Vec::new())),
            );
            let flags = Flags::NONBLOCK | Flags::DATAGRAM;
            let ca = Sizes {
                inner: a,
                sent: c_sent.clone(),
            };
            let sb = Sizes {
                inner: b,
                sent: s_sent.clone(),
            };
            let mut c = Session::client(Arc::new(client_config()), "localhost", ca, flags).unwrap();
            let server = ServerConfig::new(certified_key(cert));
            let mut s = Session::server_datagram(Arc::new(server), b"peer", sb, flags).unwrap();
            c.set_mtu(cm);
            s.set_mtu(sm);
            assert_eq!((c.mtu(), s.mtu()), (cm, sm));
            let (mut cd, mut sd) = (false, false);
            for _ in 0..500 {
                if !cd {
                    match c.handshake() {
                        Ok(()) => cd = true,
                        Err(Error::Again) => {}
                        Err(e) => panic!("client {cm}/{sm}: {e}"),
                    }
                }
                if !sd {
                    match s.handshake() {
                        Ok(()) => sd = true,
                        Err(Error::Again) => {}
                        Err(e) => panic!("server {cm}/{sm}: {e}"),
                    }
                }
                if cd && sd {
                    break;
                }
            }
            assert!(cd && sd, "handshake at {cm}/{sm}");
            let handshake_datagrams = s_sent.borrow().len();
            if sm <= 400 {
                // HelloVerifyRequest, then the certificate flight cut up.
                assert!(
                    s_sent.borrow().len() > 4,
                    "the server flight spans datagrams at {sm}: {:?}",
                    s_sent.borrow()
                );
            }
            let mut buf = vec![0u8; 20000];
            full_size_datagram(&mut c, &mut s, cm, &mut buf);
            full_size_datagram(&mut s, &mut c, sm, &mut buf);
            let check = |who: &str, sent: &[usize], mtu: usize| {
                let max = sent.iter().max().copied().unwrap_or(0);
                assert!(
                    max <= mtu,
                    "{who} sent {max} bytes over MTU {mtu} ({cm}/{sm}): {sent:?}"
                );
            };
            check("client", &c_sent.borrow(), cm);
            check("server", &s_sent.borrow(), sm);
            // The full-size sends filled the datagram exactly.
            assert_eq!(*s_sent.borrow().last().unwrap(), sm);
            assert!(s_sent.borrow().len() > handshake_datagrams);
        }
    }
}

/// A send of exactly `data_mtu()` goes through intact; one byte more is
/// refused whole.
fn full_size_datagram(
    tx: &mut Session<Sizes>,
    rx: &mut Session<Sizes>,
    mtu: usize,
    buf: &mut [u8],
) {
    let n = tx.data_mtu();
    assert!(n > 0 && n < mtu, "data MTU {n} under MTU {mtu}");
    let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
    assert_eq!(tx.send(&data).unwrap(), n);
    assert_eq!(rx.recv(buf).unwrap(), n);
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(tx.send(&vec![0u8; n + 1]), Err(Error::LargePacket));
}
