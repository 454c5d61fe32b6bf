//! The non-blocking contract of DESIGN.md §3 over TLS 1.2 (both sides configured
//! 1.2-only), with the schedules and drivers of `tests/nonblocking.rs`: the handshake
//! (with its ChangeCipherSpec and NewSessionTicket) stops and resumes under every
//! schedule, `direction()` names the call that stopped, an interrupted send is resumed by
//! `send(&[])` and sent once, `pending()`, no read-ahead past one record, EOF and
//! close_notify, and `bye` in both modes.

mod common;

use std::sync::Arc;

use common::sched::{
    check_stop, drive_bye, drive_handshake, is_stop, pattern, pump, retry, volume, Fault, Flow, Op,
    Outcome, Sched, Schedule, Stops, MAX_STEPS, SCHEDULES,
};
use nbtls::codec::{CipherSuite, ProtocolVersion};
use nbtls::{ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Shutdown};

type S = Session<Sched<MemoryTransport>>;

const V12: [ProtocolVersion; 1] = [ProtocolVersion::TLS1_2];

/// TLS 1.2 AES-GCM record overhead: header, explicit nonce, tag (RFC 5288 §3).
const RECORD_OVERHEAD: usize = 5 + 8 + 16;

fn client_config() -> ClientConfig {
    common::tls::client_config().versions(&V12).expect("1.2")
}

fn server_config() -> ServerConfig {
    common::tls::server_config().versions(&V12).expect("1.2")
}

fn pair_with(capacity: usize, (schedule, fault): (Schedule, Fault)) -> (S, S) {
    let (a, b) = MemoryTransport::pair_with_capacity(capacity);
    let c = Session::client(
        Arc::new(client_config()),
        "localhost",
        Sched::new(a, schedule, fault),
        Flags::NONBLOCK,
    )
    .expect("client");
    let s = Session::server(
        Arc::new(server_config()),
        Sched::new(b, schedule, fault),
        Flags::NONBLOCK,
    )
    .expect("server");
    (c, s)
}

fn connected(sched: (Schedule, Fault)) -> (S, S) {
    let (mut c, mut s) = pair_with(64 * 1024, sched);
    drive_handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{sched:?}: handshake: {e:?}"));
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLS1_2));
    (c, s)
}

/// Bytes in flight towards `s`: still in its transport.
fn unread(s: &S) -> usize {
    s.transport().inner().readable()
}

/// Receives until `want` bytes came in (the peer has sent them all already).
fn recv_exact(s: &mut S, want: usize, stops: &mut Stops) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while got.len() < want {
        let n = retry(s, stops, |s| s.recv(&mut buf)).expect("recv");
        assert_ne!(n, 0, "unexpected close");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), want, "received more than was sent");
    got
}

#[test]
fn tls12_handshake_completes_under_every_schedule() {
    for sched in SCHEDULES {
        let (mut c, mut s) = pair_with(64 * 1024, sched);
        let stops = drive_handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{sched:?}: {e:?}"));
        assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
        assert_eq!(
            c.cipher_suite(),
            Some(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
        );
        assert_eq!(c.cipher_suite(), s.cipher_suite());
        if sched.0 != Schedule::Never {
            // The schedule stopped the handshake in both directions.
            assert!(
                stops.again_read + stops.interrupted_read > 0,
                "{sched:?}: {stops:?}"
            );
            assert!(
                stops.again_write + stops.interrupted_write > 0,
                "{sched:?}: {stops:?}"
            );
            if sched.1 != Fault::WouldBlock {
                assert!(
                    stops.interrupted_read + stops.interrupted_write > 0,
                    "{sched:?}: {stops:?}"
                );
            }
        }
        // Nothing left half-done: both transports drained.
        assert_eq!(unread(&c), 0, "{sched:?}");
        assert_eq!(unread(&s), 0, "{sched:?}");
    }
}

#[test]
fn tls12_every_stop_reports_the_direction_of_the_call_that_stopped() {
    // check_stop runs after every Again/Interrupted in the drivers.
    let mut all = Stops::default();
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let n = volume(sched.0, 40_000);
        // The server resumes its interrupted sends with send(&[]).
        let mut cf = Flow::new(pattern(n, 1), false, false);
        let mut sf = Flow::new(pattern(n, 2), true, false);
        pump(&mut c, &mut cf, &mut s, &mut sf, |c, s| {
            c.all_sent() && s.all_sent() && c.received.len() == n && s.received.len() == n
        });
        assert_eq!(sf.received, cf.out, "{sched:?}");
        assert_eq!(cf.received, sf.out, "{sched:?}");
        all.add(cf.stops);
        all.add(sf.stops);
    }
    assert!(all.again_read > 0 && all.again_write > 0, "{all:?}");
    assert!(
        all.interrupted_read > 0 && all.interrupted_write > 0,
        "{all:?}"
    );
}

/// Sends a record that cannot go out at once (the pipe holds 1000 bytes),
/// resumes it with `resume` while the server drains; returns what send
/// returned and what the server received.
fn interrupted_send(sched: (Schedule, Fault), msg: &[u8], resume: &[u8]) -> (usize, Vec<u8>) {
    let (mut c, mut s) = pair_with(1000, sched);
    drive_handshake(&mut c, &mut s).expect("handshake");
    c.transport_mut().clear_calls();
    let mut stops = Stops::default();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 1024];
    let mut result = None;
    for i in 0..MAX_STEPS {
        match c.send(if i == 0 { msg } else { resume }) {
            Ok(n) => {
                result = Some(n);
                break;
            }
            Err(e) if is_stop(&e) => check_stop(&c, &e, &mut stops),
            Err(e) => panic!("{sched:?}: send: {e:?}"),
        }
        match s.recv(&mut buf) {
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if is_stop(&e) => check_stop(&s, &e, &mut stops),
            Err(e) => panic!("{sched:?}: recv: {e:?}"),
        }
    }
    let n = result.expect("send finished");
    let mut written = 0;
    let mut stopped_mid_record = false;
    for call in c.transport().calls() {
        match call.outcome {
            Outcome::Done(k) => written += k,
            Outcome::WouldBlock | Outcome::Interrupted if written > 0 => stopped_mid_record = true,
            _ => {}
        }
    }
    assert!(stopped_mid_record, "{sched:?}: never stopped mid-record");
    assert_eq!(
        written,
        msg.len() + RECORD_OVERHEAD,
        "{sched:?}: one record, written once"
    );
    while received.len() < msg.len() {
        let k = retry(&mut s, &mut stops, |s| s.recv(&mut buf)).expect("recv");
        received.extend_from_slice(&buf[..k]);
    }
    // Nothing else arrives: the resuming call's data was not sent.
    assert_eq!(unread(&s), 0, "{sched:?}");
    assert!(matches!(s.recv(&mut buf), Err(e) if is_stop(&e)));
    (n, received)
}

#[test]
fn tls12_resumed_send_returns_the_record_length_and_sends_it_once() {
    let msg = pattern(4000, 7);
    for sched in SCHEDULES {
        let (n, got) = interrupted_send(sched, &msg, &[]);
        assert_eq!(
            n,
            msg.len(),
            "{sched:?}: send(&[]) returns the record's length"
        );
        assert_eq!(got, msg, "{sched:?}: every byte once");
        let (n, got) = interrupted_send(sched, &msg, b"other data, never sent");
        assert_eq!(n, msg.len(), "{sched:?}");
        assert_eq!(got, msg, "{sched:?}");
    }
}

#[test]
fn tls12_pending_counts_buffered_plaintext() {
    let msg = pattern(1000, 3);
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        assert_eq!(s.pending(), 0);
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(&msg)), Ok(1000));
        let mut small = [0u8; 100];
        assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut small)), Ok(100));
        assert_eq!(&small[..], &msg[..100]);
        assert_eq!(s.pending(), 900, "{sched:?}");
        // Pending data is returned without touching the transport.
        let calls = s.transport().calls().len();
        let mut rest = [0u8; 4096];
        assert_eq!(s.recv(&mut rest), Ok(900));
        assert_eq!(&rest[..900], &msg[100..]);
        assert_eq!(s.pending(), 0);
        assert_eq!(s.transport().calls().len(), calls, "{sched:?}");
    }
}

#[test]
fn tls12_reads_no_further_ahead_than_one_record() {
    let sizes = [100usize, 2000, 300];
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        let mut wire = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let before = unread(&s);
            let msg = pattern(len, i as u8);
            assert_eq!(retry(&mut c, &mut stops, |c| c.send(&msg)), Ok(len));
            wire.push(unread(&s) - before);
        }
        assert_eq!(wire, sizes.map(|n| n + RECORD_OVERHEAD).to_vec());
        let mut buf = vec![0u8; 64 * 1024];
        for i in 0..sizes.len() {
            s.transport_mut().clear_calls();
            let n = retry(&mut s, &mut stops, |s| s.recv(&mut buf)).expect("recv");
            assert_eq!(n, sizes[i], "{sched:?}");
            assert_eq!(s.pending(), 0);
            let later: usize = wire[i + 1..].iter().sum();
            assert_eq!(unread(&s), later, "{sched:?}: recv read past record {i}");
            // No pull asked for more than the record still needed.
            let mut read = 0;
            for call in s.transport().calls() {
                if call.op == Op::Pull {
                    assert!(call.len <= wire[i] - read, "{sched:?}: {call:?}");
                    if let Outcome::Done(k) = call.outcome {
                        read += k;
                    }
                }
            }
            assert_eq!(read, wire[i]);
        }
    }
}

#[test]
fn tls12_recv_returns_zero_only_after_close_notify_and_eof_is_premature() {
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        let last = pattern(5000, 5);
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(&last)), Ok(5000));
        retry(&mut c, &mut stops, |c| c.bye(Shutdown::Write)).expect("bye");
        // Data sent before close_notify comes first, never a 0 before it.
        assert_eq!(recv_exact(&mut s, 5000, &mut stops), last, "{sched:?}");
        let mut buf = [0u8; 64];
        assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut buf)), Ok(0));
        let calls = s.transport().calls().len();
        for _ in 0..3 {
            assert_eq!(s.recv(&mut buf), Ok(0), "{sched:?}: EOF is repeated");
        }
        assert_eq!(s.transport().calls().len(), calls);
        assert_eq!(c.send(b"more"), Err(Error::InvalidSession));

        // A bare EOF is not a close.
        let (mut c, mut s) = connected(sched);
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(b"data")), Ok(4));
        c.transport().inner().close();
        assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut buf)), Ok(4));
        let e = retry(&mut s, &mut stops, |s| s.recv(&mut buf)).unwrap_err();
        assert_eq!(e, Error::PrematureTermination, "{sched:?}");
        assert!(e.is_fatal());
        assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination), "sticky");
    }
}

#[test]
fn tls12_bye_is_resumable_under_every_schedule() {
    for sched in SCHEDULES {
        // Write: each side closes in turn; the other reads the close as Ok(0).
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        retry(&mut c, &mut stops, |c| c.bye(Shutdown::Write)).expect("client bye");
        assert_eq!(c.bye(Shutdown::Write), Ok(()), "bye again is a no-op");
        let mut buf = [0u8; 16];
        assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut buf)), Ok(0));
        retry(&mut s, &mut stops, |s| s.bye(Shutdown::Write)).expect("server bye");
        assert_eq!(retry(&mut c, &mut stops, |c| c.recv(&mut buf)), Ok(0));
        assert_eq!(unread(&c), 0);
        assert_eq!(unread(&s), 0);

        // ReadWrite: both wait for the other's close_notify.
        let (mut c, mut s) = connected(sched);
        let waited = drive_bye(&mut c, &mut s, Shutdown::ReadWrite, &mut stops);
        assert!(waited, "{sched:?}: the client never waited for the server");
        assert_eq!(c.timeout(), None);
        assert_eq!(s.timeout(), None);
        assert_eq!(c.recv(&mut buf), Ok(0));
        assert_eq!(s.recv(&mut buf), Ok(0));
    }
}
