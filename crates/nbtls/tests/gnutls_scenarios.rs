//! The TLS scenarios of GnuTLS's non-blocking tests (reference/gnutls-async.md §10),
//! one test each, against nbtls on both sides: eagain, record-retvals,
//! mini-termination, send/recv-data-before-handshake, mini-tls-nonblock,
//! handshake-timeout, record-timeouts and mini-x509-callbacks-intr.

mod common;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::certs::pki;
use common::sched::{
    drive_bye, drive_handshake, is_stop, pattern, pump, retry, Fault, Flow, ManualClock, Sched,
    Schedule, Stops, MAX_STEPS,
};
use common::tls::{certified_key, client_config, server_config};
use nbtls::codec::CipherSuite;
use nbtls::{
    ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Shutdown, Transport,
};

fn sessions<A: Transport, B: Transport>(
    client: ClientConfig,
    server: ServerConfig,
    name: &str,
    (a, b): (Sched<A>, Sched<B>),
    flags: Flags,
) -> (Session<Sched<A>>, Session<Sched<B>>) {
    let c = Session::client(Arc::new(client), name, a, flags).expect("client");
    let s = Session::server(Arc::new(server), b, flags).expect("server");
    (c, s)
}

fn memory(
    (cs, cf): (Schedule, Fault),
    (ss, sf): (Schedule, Fault),
) -> (Sched<MemoryTransport>, Sched<MemoryTransport>) {
    let (a, b) = MemoryTransport::pair();
    (Sched::new(a, cs, cf), Sched::new(b, ss, sf))
}

/// A connected TCP pair on 127.0.0.1.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_nodelay(true).expect("nodelay");
        // A bound on every blocking wait.
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.set_write_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
    }
    (client, server)
}

/// Receives exactly `want` bytes, waiting (bounded) on a real socket's Again.
fn recv_on_socket<T: Transport>(s: &mut Session<Sched<T>>, want: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    while got.len() < want {
        match s.recv(&mut buf) {
            Ok(0) => panic!("early close"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_stop(&e) => {
                assert!(Instant::now() < deadline, "no data within 10 s");
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("recv: {e:?}"),
        }
    }
    got
}

/// eagain.c: handshake, ~70 KB echoed both ways with each retry style (same
/// arguments, then `send(&[])`), and `bye(Write)`, under random EAGAIN on both sides.
#[test]
fn eagain() {
    for seed in [0x5eed_0001_u64, 0xdead_beef_cafe_f00d] {
        let transports = memory(
            (Schedule::Random(seed), Fault::WouldBlock),
            (Schedule::Random(seed.rotate_left(17)), Fault::WouldBlock),
        );
        let (mut c, mut s) = sessions(
            client_config(),
            server_config(),
            "localhost",
            transports,
            Flags::NONBLOCK,
        );
        let hs = drive_handshake(&mut c, &mut s).expect("handshake");
        assert!(hs.total() > 0, "the schedule never stopped the handshake");
        for retry_empty in [false, true] {
            let msg = pattern(70_000, retry_empty as u8);
            let mut cf = Flow::new(msg.clone(), retry_empty, false);
            let mut sf = Flow::new(Vec::new(), retry_empty, true);
            pump(&mut c, &mut cf, &mut s, &mut sf, |c, _| {
                c.received.len() >= 70_000
            });
            assert!(sf.received == msg, "server got other data");
            assert!(cf.received == msg, "echo differs");
            assert!(cf.stops.again_write > 0 && sf.stops.again_read > 0);
        }
        let mut stops = Stops::default();
        drive_bye(&mut c, &mut s, Shutdown::Write, &mut stops);
        let mut buf = [0u8; 16];
        assert_eq!(retry(&mut c, &mut stops, |c| c.recv(&mut buf)), Ok(0));
        assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut buf)), Ok(0));
    }
}

/// record-retvals.c: a send of up to 16384 bytes returns exactly its size; a
/// 21056-byte send takes one record, 16384 bytes. For each cipher suite.
#[test]
fn record_retvals() {
    let sizes = [
        1usize, 2, 15, 16, 17, 255, 256, 1000, 4095, 4096, 8191, 12_345, 16_382, 16_383, 16_384,
    ];
    for suite in [
        CipherSuite::TLS_AES_128_GCM_SHA256,
        CipherSuite::TLS_AES_256_GCM_SHA384,
        CipherSuite::TLS_CHACHA20_POLY1305_SHA256,
    ] {
        let client = client_config().cipher_suites(&[suite]).expect("suite");
        let transports = memory(
            (Schedule::EveryOther, Fault::WouldBlock),
            (Schedule::EveryOther, Fault::WouldBlock),
        );
        let (mut c, mut s) = sessions(
            client,
            server_config(),
            "localhost",
            transports,
            Flags::NONBLOCK,
        );
        drive_handshake(&mut c, &mut s).expect("handshake");
        assert_eq!(c.cipher_suite(), Some(suite));
        let mut stops = Stops::default();
        let mut buf = vec![0u8; 32 * 1024];
        for (i, &n) in sizes.iter().enumerate() {
            let data = pattern(n, i as u8);
            assert_eq!(
                retry(&mut c, &mut stops, |c| c.send(&data)),
                Ok(n),
                "{suite:?}"
            );
            let got = retry(&mut s, &mut stops, |s| s.recv(&mut buf)).expect("recv");
            assert_eq!(&buf[..got], &data[..], "{suite:?}: {n}");
        }
        let big = pattern(21_056, 9);
        assert_eq!(
            retry(&mut c, &mut stops, |c| c.send(&big)),
            Ok(16_384),
            "{suite:?}"
        );
        let got = retry(&mut s, &mut stops, |s| s.recv(&mut buf)).expect("recv");
        assert_eq!(&buf[..got], &big[..16_384]);
        // The server's sends behave the same.
        assert_eq!(retry(&mut s, &mut stops, |s| s.send(&big)), Ok(16_384));
        assert_eq!(retry(&mut s, &mut stops, |s| s.send(&big[..100])), Ok(100));
    }
}

/// mini-termination.c: the peer closes TCP without close_notify.
#[test]
fn mini_termination() {
    let (a, b) = tcp_pair();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let (mut c, mut s) = sessions(
        client_config(),
        server_config(),
        "localhost",
        (Sched::recorder(a), Sched::recorder(b)),
        Flags::NONBLOCK,
    );
    drive_handshake(&mut c, &mut s).expect("handshake");
    let mut stops = Stops::default();
    assert_eq!(retry(&mut s, &mut stops, |s| s.send(b"last words")), Ok(10));
    drop(s); // closes the socket: FIN, no close_notify
    assert_eq!(recv_on_socket(&mut c, 10), b"last words");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 64];
    let e = loop {
        match c.recv(&mut buf) {
            Err(e) if is_stop(&e) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(e, Error::PrematureTermination);
    assert_eq!(io::Error::from(e).kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(c.recv(&mut buf), Err(Error::PrematureTermination), "sticky");
}

/// Drives the handshake and calls `probe` on both sessions before every step.
fn handshake_probing(
    probe: impl Fn(&mut Session<Sched<MemoryTransport>>) -> Result<usize, Error>,
) -> usize {
    let transports = memory(
        (Schedule::EveryOther, Fault::Mixed),
        (Schedule::EveryOther, Fault::Mixed),
    );
    let (mut c, mut s) = sessions(
        client_config(),
        server_config(),
        "localhost",
        transports,
        Flags::NONBLOCK,
    );
    let mut probes = 0;
    let (mut cd, mut sd) = (false, false);
    for _ in 0..MAX_STEPS {
        for (sess, done) in [(&mut c, &mut cd), (&mut s, &mut sd)] {
            if *done {
                continue;
            }
            assert_eq!(probe(sess), Err(Error::UnavailableDuringHandshake));
            probes += 1;
            match sess.handshake() {
                Ok(()) => *done = true,
                Err(e) if is_stop(&e) => {}
                Err(e) => panic!("handshake: {e:?}"),
            }
        }
        if cd && sd {
            break;
        }
    }
    assert!(cd && sd, "handshake did not finish");
    // Afterwards the calls work, and nothing was sent or consumed by the probes.
    let mut stops = Stops::default();
    assert_eq!(retry(&mut c, &mut stops, |c| c.send(b"ping")), Ok(4));
    let mut buf = [0u8; 16];
    assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut buf)), Ok(4));
    assert_eq!(&buf[..4], b"ping");
    assert_eq!(retry(&mut s, &mut stops, |s| s.send(b"pong")), Ok(4));
    assert_eq!(retry(&mut c, &mut stops, |c| c.recv(&mut buf)), Ok(4));
    probes
}

/// send-data-before-handshake.c
#[test]
fn send_data_before_handshake() {
    let probes = handshake_probing(|s| s.send(b"too early"));
    assert!(probes >= 4);
}

/// recv-data-before-handshake.c
#[test]
fn recv_data_before_handshake() {
    let probes = handshake_probing(|s| s.recv(&mut [0u8; 64]));
    assert!(probes >= 4);
}

/// mini-tls-nonblock.c: over a non-blocking socketpair, a NONBLOCK session never calls
/// pull_timeout; nor (with no timeout set) does one without the flag with ms != 0.
#[cfg(unix)]
#[test]
fn mini_tls_nonblock() {
    use std::os::unix::net::UnixStream;
    for flags in [Flags::NONBLOCK, Flags::NONE] {
        let (a, b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let (mut c, mut s) = sessions(
            client_config(),
            server_config(),
            "localhost",
            (Sched::recorder(a), Sched::recorder(b)),
            flags,
        );
        drive_handshake(&mut c, &mut s).expect("handshake");
        let mut cf = Flow::new(pattern(100_000, 1), true, false);
        let mut sf = Flow::new(Vec::new(), false, true);
        pump(&mut c, &mut cf, &mut s, &mut sf, |c, _| {
            c.received.len() >= 100_000
        });
        assert!(cf.received == cf.out);
        if flags == Flags::NONBLOCK {
            // Even bye's wait for the peer's close_notify.
            drive_bye(&mut c, &mut s, Shutdown::ReadWrite, &mut Stops::default());
        }
        for t in [c.transport().pull_timeouts(), s.transport().pull_timeouts()] {
            if flags == Flags::NONBLOCK {
                assert!(t.is_empty(), "NONBLOCK session called pull_timeout: {t:?}");
            } else {
                assert!(
                    t.iter().all(Duration::is_zero),
                    "waited without a timeout set: {t:?}"
                );
            }
        }
    }
}

/// handshake-timeout.c, NONBLOCK: the deadline is reported by `timeout()` and
/// enforced when the session is called after it, never waited on.
#[test]
fn handshake_timeout_nonblocking() {
    let clock = ManualClock::new();
    let limit = Duration::from_millis(100);
    for via_handle_timeout in [false, true] {
        let client = client_config()
            .time_source(clock.clone())
            .handshake_timeout(Some(limit));
        let (a, _silent_peer) = MemoryTransport::pair();
        let mut c = Session::client(
            Arc::new(client),
            "localhost",
            Sched::recorder(a),
            Flags::NONBLOCK,
        )
        .expect("client");
        assert_eq!(c.handshake(), Err(Error::Again));
        assert_eq!(c.timeout(), Some(limit));
        clock.advance(Duration::from_millis(40));
        assert_eq!(c.handle_timeout(), Ok(()), "not due yet");
        assert_eq!(c.handshake(), Err(Error::Again));
        assert_eq!(c.timeout(), Some(Duration::from_millis(60)));
        clock.advance(Duration::from_millis(60));
        assert_eq!(c.timeout(), Some(Duration::ZERO), "due now");
        if via_handle_timeout {
            assert_eq!(c.handle_timeout(), Err(Error::TimedOut));
        }
        assert_eq!(c.handshake(), Err(Error::TimedOut));
        assert_eq!(c.handshake(), Err(Error::TimedOut), "sticky");
        // A failed session runs no timer: no busy loop on "due now".
        assert_eq!(c.timeout(), None);
        assert!(c.transport().pull_timeouts().is_empty());
    }

    // The same limit set on the session, with a peer that answers in time.
    let client = client_config().time_source(clock.clone());
    let transports = memory(
        (Schedule::EveryOther, Fault::WouldBlock),
        (Schedule::Never, Fault::WouldBlock),
    );
    let (mut c, mut s) = sessions(
        client,
        server_config(),
        "localhost",
        transports,
        Flags::NONBLOCK,
    );
    c.set_handshake_timeout(Some(limit));
    assert_eq!(c.handshake(), Err(Error::Again));
    assert_eq!(c.timeout(), Some(limit));
    clock.advance(Duration::from_millis(99));
    drive_handshake(&mut c, &mut s).expect("handshake in time");
    assert_eq!(c.timeout(), None, "no timer after the handshake");
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.handle_timeout(), Ok(()));
}

/// handshake-timeout.c, blocking: the wait goes through pull_timeout and ends with
/// TimedOut close to the limit; without a limit the handshake completes.
#[test]
fn handshake_timeout_blocking() {
    // A listener that accepts (in the kernel) but never speaks.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sock = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c = Session::client(
        Arc::new(client_config()),
        "localhost",
        Sched::recorder(sock),
        Flags::NONE,
    )
    .expect("client");
    let limit = Duration::from_millis(100);
    c.set_handshake_timeout(Some(limit));
    let t0 = Instant::now();
    assert_eq!(c.handshake(), Err(Error::TimedOut));
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= limit && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let waits = c.transport().pull_timeouts();
    assert!(
        !waits.is_empty(),
        "blocking session did not wait through pull_timeout"
    );
    assert!(waits.iter().all(|w| *w <= limit), "{waits:?}");
    assert!(waits[0] > Duration::from_millis(50), "{waits:?}");
    assert_eq!(c.handshake(), Err(Error::TimedOut));

    // No limit: a peer that takes its time still completes the handshake; one with a
    // limit it does not reach too.
    for limit in [None, Some(Duration::from_secs(5))] {
        let (a, b) = tcp_pair();
        let server = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            let mut s = Session::server(Arc::new(server_config()), b, Flags::NONE).expect("server");
            s.handshake().expect("server handshake");
            s.send(b"ok").expect("send");
        });
        let mut c = Session::client(
            Arc::new(client_config()),
            "localhost",
            Sched::recorder(a),
            Flags::NONE,
        )
        .expect("client");
        c.set_handshake_timeout(limit);
        c.handshake().expect("client handshake");
        let mut buf = [0u8; 2];
        io::Read::read_exact(&mut c, &mut buf).expect("read");
        assert_eq!(&buf, b"ok");
        server.join().expect("server thread");
        let waits = c.transport().pull_timeouts();
        match limit {
            None => assert!(waits.is_empty(), "{waits:?}"),
            Some(l) => assert!(
                !waits.is_empty() && waits.iter().all(|w| *w <= l),
                "{waits:?}"
            ),
        }
    }
}

/// record-timeouts.c: a blocking session's record timeout is passed to pull_timeout
/// exactly; none is passed without one; TimedOut from recv is not sticky.
#[test]
fn record_timeouts() {
    for timeout in [
        None,
        Some(Duration::ZERO),
        Some(Duration::from_secs(1)),
        Some(Duration::from_secs(5)),
    ] {
        let transports = memory(
            (Schedule::Never, Fault::WouldBlock),
            (Schedule::Never, Fault::WouldBlock),
        );
        let (mut c, mut s) = sessions(
            client_config(),
            server_config(),
            "localhost",
            transports,
            Flags::NONE,
        );
        drive_handshake(&mut c, &mut s).expect("handshake");
        s.transport_mut().clear_calls();
        s.set_record_timeout(timeout);
        let mut buf = [0u8; 64];
        match timeout {
            // The in-memory pipe answers at once: nothing to wait for.
            Some(_) => assert_eq!(s.recv(&mut buf), Err(Error::TimedOut)),
            None => assert_eq!(s.recv(&mut buf), Err(Error::Again)),
        }
        // Not sticky: the data sent later is received.
        assert_eq!(c.send(b"later"), Ok(5));
        assert_eq!(s.recv(&mut buf), Ok(5));
        assert_eq!(&buf[..5], b"later");
        let waits = s.transport().pull_timeouts();
        match timeout {
            None => assert!(waits.is_empty(), "{waits:?}"),
            Some(t) => {
                assert!(waits.len() >= 2, "{waits:?}");
                assert!(waits.iter().all(|w| *w == t), "{waits:?}");
            }
        }
        // The session is whole: data both ways.
        assert_eq!(s.send(b"back"), Ok(4));
        assert_eq!(c.recv(&mut buf), Ok(4));
    }
}

/// record-timeouts over a real blocking socket: recv waits about the timeout, and the
/// session goes on after.
#[test]
fn record_timeout_waits_on_a_socket() {
    let (a, b) = tcp_pair();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let (mut c, mut s) = sessions(
        client_config(),
        server_config(),
        "localhost",
        (Sched::recorder(a), Sched::recorder(b)),
        Flags::NONE,
    );
    drive_handshake(&mut c, &mut s).expect("handshake");
    s.transport().inner().set_nonblocking(false).unwrap();
    let d = Duration::from_millis(60);
    s.set_record_timeout(Some(d));
    let mut buf = [0u8; 64];
    let t0 = Instant::now();
    assert_eq!(s.recv(&mut buf), Err(Error::TimedOut));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        retry(&mut c, &mut Stops::default(), |c| c.send(b"now")),
        Ok(3)
    );
    assert_eq!(s.recv(&mut buf), Ok(3));
    assert_eq!(&buf[..3], b"now");
    assert!(s.transport().pull_timeouts().iter().all(|w| *w == d));
}

/// mini-x509-callbacks-intr.c: the server pauses after the ClientHello, the
/// application reads SNI and ALPN and switches the certificate, and the handshake
/// completes with it; the client still verifies what it gets.
#[test]
fn mini_x509_callbacks_intr() {
    for (sched, switch) in [
        ((Schedule::Never, Fault::WouldBlock), true),
        ((Schedule::EveryOther, Fault::Mixed), true),
        ((Schedule::Never, Fault::WouldBlock), false),
    ] {
        let client = client_config().alpn(&["h2", "http/1.1"]).expect("alpn");
        let server = server_config().pause_after_client_hello(true);
        let (mut c, mut s) = sessions(
            client,
            server,
            "other.test",
            memory(sched, sched),
            Flags::NONBLOCK,
        );
        assert!(matches!(
            s.set_server_config(Arc::new(server_config())),
            Err(Error::InvalidRequest(_))
        ));
        let mut pauses = 0;
        let mut result = None;
        let (mut cd, mut sd) = (false, false);
        for _ in 0..MAX_STEPS {
            if !cd {
                match c.handshake() {
                    Ok(()) => cd = true,
                    Err(e) if is_stop(&e) => {}
                    Err(e) => {
                        result = Some(e);
                        break;
                    }
                }
            }
            if !sd {
                match s.handshake() {
                    Ok(()) => sd = true,
                    Err(Error::ClientHelloPaused) => {
                        pauses += 1;
                        assert!(!Error::ClientHelloPaused.is_fatal());
                        let hello = s.client_hello().expect("paused hello");
                        assert_eq!(hello.server_name(), Some("other.test"));
                        let alpn: Vec<&[u8]> = hello
                            .alpn()
                            .expect("alpn")
                            .iter()
                            .map(Vec::as_slice)
                            .collect();
                        assert_eq!(alpn, [&b"h2"[..], b"http/1.1"]);
                        if switch {
                            let other = ServerConfig::new(certified_key(&pki().server_other))
                                .alpn(&["h2"])
                                .expect("alpn");
                            s.set_server_config(Arc::new(other)).expect("switch");
                        }
                    }
                    Err(e) if is_stop(&e) => {}
                    Err(e) => panic!("server: {e:?}"),
                }
            }
            if cd && sd {
                break;
            }
        }
        assert_eq!(pauses, 1, "{sched:?}: paused once, and not again on resume");
        if switch {
            assert_eq!(result, None, "{sched:?}");
            assert!(cd && sd);
            assert_eq!(
                c.peer_certificates()[0].as_ref(),
                &pki().server_other.leaf_der[..]
            );
            assert_eq!(c.alpn_protocol(), Some(&b"h2"[..]));
            assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]));
            assert_eq!(s.server_name(), Some("other.test"));
            assert!(s.client_hello().is_none());
        } else {
            // The localhost certificate does not name other.test: verification ran.
            let e = result.expect("client must reject the certificate");
            assert!(e.is_fatal(), "{e:?}");
            assert!(!cd);
        }
    }
}
