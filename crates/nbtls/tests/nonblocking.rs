//! The non-blocking contract of DESIGN.md §3, proved over transports that stop on a
//! schedule (every other call, at every byte boundary, at random; with `WouldBlock`,
//! `Interrupted` or both): every stop is resumable, `direction()` names the call that
//! stopped, committed sends, `pending()`, no read-ahead, EOF and close_notify, cork,
//! discard, bye, blocking mode and sticky errors.

mod common;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::sched::{
    check_stop, drive_bye, drive_handshake, is_stop, pattern, pump, retry, volume, Fault, Flow, Op,
    Outcome, Sched, Schedule, Stops, MAX_STEPS, SCHEDULES,
};
use common::tls::client_config;
use nbtls::codec::AlertDescription;
use nbtls::record::MAX_PLAINTEXT;
use nbtls::{
    ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Shutdown, Transport,
};

type S = Session<Sched<MemoryTransport>>;

/// The test server sends no NewSessionTickets: these tests count every byte
/// after the handshake, and tickets are the resumption tests' business.
fn server_config() -> ServerConfig {
    common::tls::server_config().tickets(0)
}

/// TLS 1.3 AEAD record overhead: header, inner content type, tag.
const RECORD_OVERHEAD: usize = 5 + 1 + 16;

fn pair_with(
    client: ClientConfig,
    server: ServerConfig,
    capacity: usize,
    (schedule, fault): (Schedule, Fault),
    flags: Flags,
) -> (S, S) {
    let (a, b) = MemoryTransport::pair_with_capacity(capacity);
    let c = Session::client(
        Arc::new(client),
        "localhost",
        Sched::new(a, schedule, fault),
        flags,
    )
    .expect("client");
    let s =
        Session::server(Arc::new(server), Sched::new(b, schedule, fault), flags).expect("server");
    (c, s)
}

fn pair(sched: (Schedule, Fault)) -> (S, S) {
    pair_with(
        client_config(),
        server_config(),
        64 * 1024,
        sched,
        Flags::NONBLOCK,
    )
}

fn connected(sched: (Schedule, Fault)) -> (S, S) {
    let (mut c, mut s) = pair(sched);
    drive_handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{sched:?}: handshake: {e:?}"));
    (c, s)
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

/// Bytes in flight towards `s`: still in its transport.
fn unread(s: &S) -> usize {
    s.transport().inner().readable()
}

#[test]
fn handshake_completes_under_every_schedule() {
    for sched in SCHEDULES {
        let (mut c, mut s) = pair(sched);
        let stops = drive_handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{sched:?}: {e:?}"));
        assert!(!c.is_handshaking() && !s.is_handshaking(), "{sched:?}");
        assert_eq!(c.cipher_suite(), s.cipher_suite());
        if sched.0 != Schedule::Never {
            // The schedule really stopped the handshake, in both directions.
            assert!(
                stops.again_read + stops.interrupted_read > 0,
                "{sched:?}: {stops:?}"
            );
            assert!(
                stops.again_write + stops.interrupted_write > 0,
                "{sched:?}: {stops:?}"
            );
        }
        if sched.1 != Fault::WouldBlock && sched.0 != Schedule::Never {
            assert!(
                stops.interrupted_read + stops.interrupted_write > 0,
                "{sched:?}: {stops:?}"
            );
        }
        // Nothing left half-done: both transports drained.
        assert_eq!(unread(&c), 0);
        assert_eq!(unread(&s), 0);
    }
}

#[test]
fn every_stop_reports_the_direction_of_the_call_that_stopped() {
    // check_stop runs after every Again/Interrupted in these drivers; here we make sure
    // a data exchange under each schedule hits stops of both kinds and directions.
    let mut all = Stops::default();
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let n = volume(sched.0, 40_000);
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

/// Sends a record that cannot go out at once (the pipe holds 1000 bytes), resumes it
/// with `resume` while the server drains, and returns what the server received.
fn interrupted_send(sched: (Schedule, Fault), msg: &[u8], resume: &[u8]) -> (usize, Vec<u8>) {
    let (mut c, mut s) = pair_with(
        client_config(),
        server_config(),
        1000,
        sched,
        Flags::NONBLOCK,
    );
    drive_handshake(&mut c, &mut s).expect("handshake");
    c.transport_mut().clear_calls();
    let mut stops = Stops::default();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 1024];
    let mut first = true;
    let mut result = None;
    for _ in 0..MAX_STEPS {
        let r = if first { c.send(msg) } else { c.send(resume) };
        first = false;
        match r {
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
    // The send stopped after part of its record was written (the pipe is smaller).
    let calls = c.transport().calls();
    let mut written = 0;
    let mut stopped_mid_record = false;
    for call in calls {
        match call.outcome {
            Outcome::Done(k) => written += k,
            Outcome::WouldBlock | Outcome::Interrupted if written > 0 => stopped_mid_record = true,
            _ => {}
        }
    }
    assert!(
        stopped_mid_record,
        "{sched:?}: the send never stopped mid-record: {calls:?}"
    );
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
    match s.recv(&mut buf) {
        Err(e) if is_stop(&e) => {}
        other => panic!("{sched:?}: more data arrived: {other:?}"),
    }
    (n, received)
}

#[test]
fn resumed_send_returns_the_record_length_and_sends_it_once() {
    let msg = pattern(4000, 7);
    for sched in SCHEDULES {
        let (n, got) = interrupted_send(sched, &msg, &[]);
        assert_eq!(
            n,
            msg.len(),
            "{sched:?}: send(&[]) after a stop returns the record's length"
        );
        assert_eq!(got, msg, "{sched:?}: every byte once");

        // Resumed with other data: that data is ignored, the committed record completes.
        let (n, got) = interrupted_send(sched, &msg, b"different data, never to be sent");
        assert_eq!(n, msg.len(), "{sched:?}");
        assert_eq!(got, msg, "{sched:?}");
    }
}

#[test]
fn send_of_nothing_with_nothing_queued_is_zero() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    let before = c.transport().calls().len();
    assert_eq!(c.send(&[]), Ok(0));
    assert_eq!(
        c.transport().calls().len(),
        before,
        "send(&[]) touched the transport"
    );
    assert_eq!(unread(&s), 0);
    let mut buf = [0u8; 8];
    assert_eq!(s.recv(&mut buf), Err(Error::Again));
}

#[test]
fn pending_counts_buffered_plaintext() {
    let msg = pattern(1000, 3);
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        assert_eq!(s.pending(), 0);
        let n = retry(&mut c, &mut stops, |c| c.send(&msg)).expect("send");
        assert_eq!(n, 1000);
        let mut small = [0u8; 100];
        let k = retry(&mut s, &mut stops, |s| s.recv(&mut small)).expect("recv");
        assert_eq!(k, 100, "{sched:?}");
        assert_eq!(&small[..], &msg[..100]);
        assert_eq!(
            s.pending(),
            900,
            "{sched:?}: the rest of the record is pending"
        );
        // Pending data is returned without touching the transport.
        let calls = s.transport().calls().len();
        let mut mid = [0u8; 300];
        assert_eq!(s.recv(&mut mid), Ok(300));
        assert_eq!(&mid[..], &msg[100..400]);
        assert_eq!(s.pending(), 600);
        let mut rest = [0u8; 4096];
        assert_eq!(s.recv(&mut rest), Ok(600));
        assert_eq!(&rest[..600], &msg[400..]);
        assert_eq!(s.pending(), 0);
        assert_eq!(
            s.transport().calls().len(),
            calls,
            "{sched:?}: pending data needed I/O"
        );
    }
}

#[test]
fn tls_reads_no_further_ahead_than_one_record() {
    let sizes = [100usize, 2000, 300];
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        // Wire length of each record, as it lands in the server's transport.
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
                    assert!(
                        call.len <= wire[i] - read,
                        "{sched:?}: {call:?} after {read}"
                    );
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
fn read_ahead_reports_buffered_records_as_pending() {
    let (mut c, mut s) = pair_with(
        client_config(),
        server_config().read_ahead(true),
        64 * 1024,
        (Schedule::Never, Fault::WouldBlock),
        Flags::NONBLOCK,
    );
    drive_handshake(&mut c, &mut s).expect("handshake");
    for (i, len) in [100usize, 2000, 300].into_iter().enumerate() {
        assert_eq!(c.send(&pattern(len, i as u8)), Ok(len));
    }
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(s.recv(&mut buf), Ok(100));
    assert_eq!(unread(&s), 0, "read-ahead takes what is there");
    // The rest is invisible to poll: pending() must say so.
    assert!(s.pending() > 0);
    let calls = s.transport().calls().len();
    assert_eq!(s.recv(&mut buf), Ok(2000));
    assert!(s.pending() > 0);
    assert_eq!(s.recv(&mut buf), Ok(300));
    assert_eq!(&buf[..300], &pattern(300, 2)[..]);
    assert_eq!(s.pending(), 0);
    assert_eq!(
        s.transport().calls().len(),
        calls,
        "buffered records needed I/O"
    );
}

#[test]
fn interrupted_is_returned_and_the_call_resumes() {
    let (mut c, mut s) = pair((Schedule::EveryOther, Fault::Interrupted));
    let hs = drive_handshake(&mut c, &mut s).expect("handshake");
    assert!(
        hs.interrupted_read > 0 && hs.interrupted_write > 0,
        "{hs:?}"
    );
    let mut cf = Flow::new(pattern(50_000, 9), true, false);
    let mut sf = Flow::new(Vec::new(), false, true);
    pump(&mut c, &mut cf, &mut s, &mut sf, |c, _| {
        c.received.len() == 50_000
    });
    assert_eq!(cf.received, cf.out);
    assert!(cf.stops.interrupted_write > 0 && sf.stops.interrupted_read > 0);
}

#[test]
fn nonblock_sessions_never_call_pull_timeout() {
    for sched in SCHEDULES {
        let (mut c, mut s) = pair(sched);
        // Timeouts a blocking session would wait on through pull_timeout.
        c.set_handshake_timeout(Some(Duration::from_secs(30)));
        s.set_handshake_timeout(Some(Duration::from_secs(30)));
        c.set_record_timeout(Some(Duration::from_secs(5)));
        s.set_record_timeout(Some(Duration::from_secs(5)));
        drive_handshake(&mut c, &mut s).expect("handshake");
        let n = volume(sched.0, 20_000);
        let mut cf = Flow::new(pattern(n, 4), false, false);
        let mut sf = Flow::new(Vec::new(), false, true);
        pump(&mut c, &mut cf, &mut s, &mut sf, |c, _| {
            c.received.len() == n
        });
        // bye(ReadWrite) waits for the peer's close_notify: still never through pull_timeout.
        drive_bye(&mut c, &mut s, Shutdown::ReadWrite, &mut Stops::default());
        assert_eq!(
            c.transport().pull_timeouts(),
            Vec::<Duration>::new(),
            "{sched:?}"
        );
        assert_eq!(
            s.transport().pull_timeouts(),
            Vec::<Duration>::new(),
            "{sched:?}"
        );
    }
}

#[test]
fn recv_returns_zero_only_after_close_notify_and_then_always() {
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        let last = pattern(5000, 5);
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(&last)), Ok(5000));
        retry(&mut c, &mut stops, |c| c.bye(Shutdown::Write)).expect("bye");
        // Data sent before close_notify comes first, never a 0 before it.
        assert_eq!(recv_exact(&mut s, 5000, &mut stops), last, "{sched:?}");
        let mut buf = [0u8; 64];
        assert_eq!(
            retry(&mut s, &mut stops, |s| s.recv(&mut buf)),
            Ok(0),
            "{sched:?}"
        );
        let calls = s.transport().calls().len();
        for _ in 0..3 {
            assert_eq!(s.recv(&mut buf), Ok(0), "{sched:?}: EOF is repeated");
        }
        assert_eq!(s.transport().calls().len(), calls);
        // The server can still answer after the client's half-close (TLS 1.3).
        assert_eq!(retry(&mut s, &mut stops, |s| s.send(b"late reply")), Ok(10));
        assert_eq!(recv_exact(&mut c, 10, &mut stops), b"late reply");
        // After bye the client cannot send.
        assert_eq!(c.send(b"more"), Err(Error::InvalidSession));
    }
}

#[test]
fn bare_eof_is_premature_termination() {
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(b"data")), Ok(4));
        c.transport().inner().close();
        let mut buf = [0u8; 64];
        assert_eq!(retry(&mut s, &mut stops, |s| s.recv(&mut buf)), Ok(4));
        let e = retry(&mut s, &mut stops, |s| s.recv(&mut buf)).unwrap_err();
        assert_eq!(e, Error::PrematureTermination, "{sched:?}");
        assert!(e.is_fatal());
        assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination), "sticky");
        let io_err = s.read(&mut buf).unwrap_err();
        assert_eq!(io_err.kind(), io::ErrorKind::UnexpectedEof);
    }
}

#[test]
fn eof_in_the_middle_of_a_record_is_premature_termination() {
    let (mut c, mut s) = pair_with(
        client_config(),
        server_config(),
        100,
        (Schedule::Never, Fault::WouldBlock),
        Flags::NONBLOCK,
    );
    // A 100-byte pipe still carries the handshake when both sides take turns.
    drive_handshake(&mut c, &mut s).expect("handshake");
    assert_eq!(c.send(&pattern(1000, 1)), Err(Error::Again));
    assert_eq!(unread(&s), 100);
    c.transport().inner().close();
    let mut buf = [0u8; 2000];
    let mut stops = Stops::default();
    assert_eq!(
        retry(&mut s, &mut stops, |s| s.recv(&mut buf)),
        Err(Error::PrematureTermination)
    );
}

#[test]
fn eof_is_close_opt_in() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    s.set_eof_is_close(true);
    assert_eq!(c.send(b"x"), Ok(1));
    c.transport().inner().close();
    let mut buf = [0u8; 8];
    assert_eq!(s.recv(&mut buf), Ok(1));
    assert_eq!(s.recv(&mut buf), Ok(0));
}

#[test]
fn send_and_recv_before_the_handshake_completes() {
    for sched in SCHEDULES {
        let (mut c, mut s) = pair(sched);
        let mut buf = [0u8; 16];
        assert_eq!(c.send(b"early"), Err(Error::UnavailableDuringHandshake));
        assert_eq!(c.recv(&mut buf), Err(Error::UnavailableDuringHandshake));
        assert_eq!(s.send(b"early"), Err(Error::UnavailableDuringHandshake));
        assert_eq!(s.recv(&mut buf), Err(Error::UnavailableDuringHandshake));
        assert!(c.transport().calls().is_empty() && s.transport().calls().is_empty());
        // Midway: after a few handshake steps, still unavailable and harmless.
        for _ in 0..3 {
            let _ = c.handshake();
            let _ = s.handshake();
            if c.is_handshaking() {
                assert_eq!(c.send(b"early"), Err(Error::UnavailableDuringHandshake));
                assert_eq!(c.recv(&mut buf), Err(Error::UnavailableDuringHandshake));
            }
            if s.is_handshaking() {
                assert_eq!(s.send(b"early"), Err(Error::UnavailableDuringHandshake));
                assert_eq!(s.recv(&mut buf), Err(Error::UnavailableDuringHandshake));
            }
        }
        assert!(!Error::UnavailableDuringHandshake.is_fatal());
        drive_handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{sched:?}: {e:?}"));
        let mut stops = Stops::default();
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(b"late")), Ok(4));
        assert_eq!(recv_exact(&mut s, 4, &mut stops), b"late");
    }
}

#[test]
fn write_all_of_one_mib_when_every_other_call_is_interrupted() {
    // std's write_all retries Interrupted (not WouldBlock): the pipe holds all of it.
    let (mut c, mut s) = pair_with(
        client_config(),
        server_config(),
        2 << 20,
        (Schedule::EveryOther, Fault::Interrupted),
        Flags::NONBLOCK,
    );
    drive_handshake(&mut c, &mut s).expect("handshake");
    c.transport_mut().clear_calls();
    let data = pattern(1 << 20, 11);
    c.write_all(&data).expect("write_all");
    let mut flushed = false;
    for _ in 0..100 {
        match io::Write::flush(&mut c) {
            Ok(()) => {
                flushed = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("flush: {e}"),
        }
    }
    assert!(flushed);
    let written = c.transport().bytes_pushed();
    let records = (1 << 20) / MAX_PLAINTEXT;
    assert_eq!(unread(&s), written);
    assert_eq!(
        written,
        (1 << 20) + records * RECORD_OVERHEAD,
        "each byte sealed and sent once"
    );
    let mut got = vec![0u8; 1 << 20];
    s.read_exact(&mut got).expect("read_exact");
    assert!(got == data, "data differs");
    assert_eq!(unread(&s), 0);
}

#[test]
fn io_write_over_would_block_takes_each_byte_once() {
    // The std contract: Ok(n) once a record is sealed; Err(WouldBlock) takes nothing.
    let (mut c, mut s) = connected((Schedule::EveryOther, Fault::WouldBlock));
    let data = pattern(1 << 20, 12);
    let mut off = 0;
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 32 * 1024];
    for _ in 0..MAX_STEPS {
        if off == data.len() {
            match io::Write::flush(&mut c) {
                Ok(()) if got.len() == data.len() => break,
                Ok(()) => {}
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        } else {
            match c.write(&data[off..]) {
                Ok(n) => {
                    assert!(n > 0 && n <= MAX_PLAINTEXT);
                    off += n;
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        match s.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "data differs");
}

#[test]
fn discard_queued_drops_a_record_none_of_whose_bytes_were_written() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    let mut buf = [0u8; 256];
    assert_eq!(c.discard_queued(), 0, "nothing queued");
    // The next push would-blocks before writing anything.
    c.transport_mut()
        .set_schedule(Schedule::EveryOther, Fault::WouldBlock);
    let txt1 = pattern(200, 1);
    assert_eq!(c.send(&txt1), Err(Error::Again));
    assert_eq!(unread(&s), 0);
    assert_eq!(c.discard_queued(), 200 + RECORD_OVERHEAD);
    assert_eq!(c.discard_queued(), 0);
    c.transport_mut()
        .set_schedule(Schedule::Never, Fault::WouldBlock);
    // A new send is a new record, not a resumption of the dropped one.
    assert_eq!(c.send(b"TXT2"), Ok(4));
    assert_eq!(
        s.recv(&mut buf),
        Ok(4),
        "the peer must receive exactly TXT2"
    );
    assert_eq!(&buf[..4], b"TXT2");
    assert_eq!(s.recv(&mut buf), Err(Error::Again));
    // The stream is intact afterwards, both ways.
    assert_eq!(c.send(b"TXT3"), Ok(4));
    assert_eq!(s.recv(&mut buf), Ok(4));
    assert_eq!(s.send(b"back"), Ok(4));
    assert_eq!(c.recv(&mut buf), Ok(4));
}

#[test]
fn discard_queued_keeps_a_queued_key_update() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    c.transport_mut()
        .set_schedule(Schedule::EveryOther, Fault::WouldBlock);
    // Our keys change as the KeyUpdate is queued: it must reach the peer.
    c.key_update(false).expect("key update");
    assert_eq!(c.send(&pattern(200, 1)), Err(Error::Again));
    assert_eq!(
        c.discard_queued(),
        200 + RECORD_OVERHEAD,
        "only the data record goes"
    );
    c.transport_mut()
        .set_schedule(Schedule::Never, Fault::WouldBlock);
    assert_eq!(c.send(b"TXT2"), Ok(4));
    let mut buf = [0u8; 256];
    // NONBLOCK recv may return Again after consuming the KeyUpdate (DESIGN.md §3).
    let n = (0..4).find_map(|_| match s.recv(&mut buf) {
        Ok(n) => Some(n),
        Err(Error::Again) => None,
        Err(e) => panic!("recv: {e:?}"),
    });
    assert_eq!(n, Some(4));
    assert_eq!(&buf[..4], b"TXT2");
    assert_eq!(s.recv(&mut buf), Err(Error::Again));
}

#[test]
fn discard_queued_keeps_a_partly_written_record() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    c.transport_mut()
        .set_schedule(Schedule::ByteAtATime, Fault::WouldBlock);
    let msg = pattern(300, 2);
    assert_eq!(c.send(&msg), Err(Error::Again));
    assert_eq!(c.send(&[]), Err(Error::Again), "one byte went out");
    assert_eq!(unread(&s), 1);
    assert_eq!(
        c.discard_queued(),
        0,
        "dropping the rest would corrupt the stream"
    );
    let mut stops = Stops::default();
    assert_eq!(retry(&mut c, &mut stops, |c| c.send(&[])), Ok(300));
    assert_eq!(recv_exact(&mut s, 300, &mut stops), msg);
}

#[test]
fn cork_then_uncork_writes_everything_in_one_push() {
    for sched in SCHEDULES {
        // Two records' worth: the last part crosses the 16 KiB record boundary.
        let parts = [
            pattern(100, 1),
            pattern(200, 2),
            pattern(volume(sched.0, 16_400), 3),
        ];
        let total: usize = parts.iter().map(Vec::len).sum();
        let expected: Vec<u8> = parts.concat();
        let (mut c, mut s) = connected(sched);
        c.transport_mut().clear_calls();
        c.cork();
        for p in &parts {
            assert_eq!(c.send(p), Ok(p.len()), "corked sends only buffer");
        }
        assert!(
            c.transport().calls().is_empty(),
            "corked sends touched the transport"
        );
        let mut stops = Stops::default();
        assert_eq!(
            retry(&mut c, &mut stops, |c| c.uncork()),
            Ok(total),
            "{sched:?}"
        );
        let pushed = c.transport().bytes_pushed();
        assert_eq!(unread(&s), pushed);
        if sched.0 == Schedule::Never {
            let calls = c.transport().calls();
            assert_eq!(calls.len(), 1, "one push: {calls:?}");
            assert_eq!(calls[0].len, pushed);
        }
        assert_eq!(recv_exact(&mut s, total, &mut stops), expected, "{sched:?}");
        // Uncorked again: sends go straight out.
        assert_eq!(retry(&mut c, &mut stops, |c| c.send(b"after")), Ok(5));
        assert_eq!(recv_exact(&mut s, 5, &mut stops), b"after");
    }
}

#[test]
fn bye_flushes_an_interrupted_send_first() {
    let msg = pattern(3000, 8);
    for sched in SCHEDULES {
        let (mut c, mut s) = pair_with(
            client_config(),
            server_config(),
            1000,
            sched,
            Flags::NONBLOCK,
        );
        drive_handshake(&mut c, &mut s).expect("handshake");
        // The record cannot fit the 1000-byte pipe: the send stops, committed.
        assert!(is_stop(&c.send(&msg).unwrap_err()), "{sched:?}");
        let mut stops = Stops::default();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let mut closed = false;
        let mut bye_done = false;
        for _ in 0..MAX_STEPS {
            if !bye_done {
                match c.bye(Shutdown::Write) {
                    Ok(()) => bye_done = true,
                    Err(e) if is_stop(&e) => check_stop(&c, &e, &mut stops),
                    Err(e) => panic!("{sched:?}: bye: {e:?}"),
                }
            }
            match s.recv(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if is_stop(&e) => check_stop(&s, &e, &mut stops),
                Err(e) => panic!("{sched:?}: recv: {e:?}"),
            }
        }
        assert!(closed && bye_done, "{sched:?}");
        assert_eq!(
            got, msg,
            "{sched:?}: the committed record goes out before close_notify"
        );
    }
}

#[test]
fn bye_read_write_ends_on_a_bare_eof_or_its_deadline() {
    // EOF while waiting for the peer's close_notify counts as success.
    let (mut c, s) = connected((Schedule::Never, Fault::WouldBlock));
    assert_eq!(c.bye(Shutdown::ReadWrite), Err(Error::Again));
    drop(s);
    assert_eq!(c.bye(Shutdown::ReadWrite), Ok(()));
    assert_eq!(c.timeout(), None);

    // A silent peer: the wait ends at the bye deadline, which timeout() reports.
    let clock = common::sched::ManualClock::new();
    let limit = Duration::from_secs(3);
    let (mut c, mut s) = pair_with(
        client_config()
            .time_source(clock.clone())
            .bye_timeout(limit),
        server_config(),
        64 * 1024,
        (Schedule::Never, Fault::WouldBlock),
        Flags::NONBLOCK,
    );
    drive_handshake(&mut c, &mut s).expect("handshake");
    assert_eq!(c.timeout(), None);
    assert_eq!(c.bye(Shutdown::ReadWrite), Err(Error::Again));
    assert_eq!(c.direction(), nbtls::Direction::Read);
    assert_eq!(c.timeout(), Some(limit));
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.bye(Shutdown::ReadWrite), Err(Error::Again));
    assert_eq!(c.timeout(), Some(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.bye(Shutdown::ReadWrite), Err(Error::TimedOut));
    assert_eq!(c.timeout(), None, "no timer after bye gave up");
    // Our close_notify was sent all the same.
    let mut buf = [0u8; 8];
    assert_eq!(s.recv(&mut buf), Ok(0));
}

#[test]
fn recv_never_writes() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    // The server asks the client to update its keys too.
    s.key_update(true).expect("key update");
    assert_eq!(s.send(b"data"), Ok(4));
    c.transport_mut().clear_calls();
    let mut buf = [0u8; 16];
    let n = (0..4).find_map(|_| match c.recv(&mut buf) {
        Ok(n) => Some(n),
        Err(Error::Again) => None,
        Err(e) => panic!("recv: {e:?}"),
    });
    assert_eq!(n, Some(4));
    assert!(
        c.transport().calls().iter().all(|call| call.op == Op::Pull),
        "recv wrote: {:?}",
        c.transport().calls()
    );
    // The answer goes out with the next send, before its data.
    assert_eq!(c.send(b"reply"), Ok(5));
    let n = (0..4).find_map(|_| match s.recv(&mut buf) {
        Ok(n) => Some(n),
        Err(Error::Again) => None,
        Err(e) => panic!("recv: {e:?}"),
    });
    assert_eq!(n, Some(5));
    assert_eq!(&buf[..5], b"reply");
    // Both directions still work under the new keys.
    assert_eq!(s.send(b"again"), Ok(5));
    assert_eq!(c.recv(&mut buf), Ok(5));
}

#[test]
fn bye_write_is_resumable_under_every_schedule() {
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        retry(&mut c, &mut stops, |c| c.bye(Shutdown::Write)).expect("client bye");
        assert_eq!(c.bye(Shutdown::Write), Ok(()), "bye again is a no-op");
        let mut buf = [0u8; 16];
        assert_eq!(
            retry(&mut s, &mut stops, |s| s.recv(&mut buf)),
            Ok(0),
            "{sched:?}"
        );
        retry(&mut s, &mut stops, |s| s.bye(Shutdown::Write)).expect("server bye");
        assert_eq!(
            retry(&mut c, &mut stops, |c| c.recv(&mut buf)),
            Ok(0),
            "{sched:?}"
        );
        assert_eq!(unread(&c), 0);
        assert_eq!(unread(&s), 0);
    }
}

#[test]
fn bye_read_write_is_resumable_under_every_schedule() {
    for sched in SCHEDULES {
        let (mut c, mut s) = connected(sched);
        let mut stops = Stops::default();
        let waited = drive_bye(&mut c, &mut s, Shutdown::ReadWrite, &mut stops);
        assert!(
            waited,
            "{sched:?}: the client never waited for the server's close_notify"
        );
        // Done: no timer left running, and both saw the other's close_notify.
        assert_eq!(c.timeout(), None);
        assert_eq!(s.timeout(), None);
        let mut buf = [0u8; 8];
        assert_eq!(c.recv(&mut buf), Ok(0));
        assert_eq!(s.recv(&mut buf), Ok(0));
        assert_eq!(c.bye(Shutdown::ReadWrite), Ok(()));
    }
}

#[cfg(unix)]
#[test]
fn blocking_mode_recv_never_returns_again() {
    use std::os::unix::net::UnixStream;
    use std::thread;

    let (a, b) = UnixStream::pair().expect("socketpair");
    for sock in [&a, &b] {
        // A bound on every wait; expiring would surface as an error and fail the test.
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
    let request = pattern(300_000, 21);
    let reply = pattern(200_000, 22);
    let (req2, rep2) = (request.clone(), reply.clone());
    let server = thread::spawn(move || {
        let mut s = Session::server(Arc::new(server_config()), Sched::recorder(b), Flags::NONE)
            .expect("server");
        s.handshake().expect("server handshake");
        let mut got = vec![0u8; req2.len()];
        s.read_exact(&mut got).expect("server read_exact");
        assert!(got == req2);
        // A KeyUpdate the client's recv must handle inside the call.
        s.key_update(true).expect("key update");
        s.write_all(&rep2).expect("reply");
        s.flush().expect("flush");
        let mut tail = [0u8; 4];
        s.read_exact(&mut tail).expect("tail");
        assert_eq!(&tail, b"done");
        s.bye(Shutdown::Write).expect("server bye");
        let mut buf = [0u8; 8];
        assert_eq!(s.recv(&mut buf), Ok(0));
        s.transport().pull_timeouts()
    });
    let mut c = Session::client(
        Arc::new(client_config()),
        "localhost",
        Sched::recorder(a),
        Flags::NONE,
    )
    .expect("client");
    c.handshake().expect("client handshake");
    c.write_all(&request).expect("request");
    c.flush().expect("flush");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 7000];
    while got.len() < reply.len() {
        match c.recv(&mut buf) {
            Ok(0) => panic!("early EOF"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("blocking recv returned {e:?}"),
        }
    }
    assert!(got == reply);
    // Our KeyUpdate answer goes out before this record.
    c.write_all(b"done").expect("tail");
    c.flush().expect("flush");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("read to close_notify");
    assert!(rest.is_empty());
    c.bye(Shutdown::Write).expect("client bye");
    let server_timeouts = server.join().expect("server thread");
    assert!(
        server_timeouts.is_empty(),
        "no timeout was set: {server_timeouts:?}"
    );
    assert!(c.transport().pull_timeouts().is_empty());
    assert!(c
        .transport()
        .calls()
        .iter()
        .all(|call| !matches!(call.outcome, Outcome::WouldBlock | Outcome::Interrupted)));
}

#[test]
fn fatal_errors_are_sticky() {
    let (mut c, mut s) = connected((Schedule::Never, Fault::WouldBlock));
    // A forged application-data record: fails authentication at the server.
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&pattern(32, 99));
    c.transport_mut().inner_mut().push(&forged).expect("push");
    let mut buf = [0u8; 64];
    let e = s.recv(&mut buf).unwrap_err();
    assert_eq!(e.alert(), Some(AlertDescription::BAD_RECORD_MAC), "{e:?}");
    assert!(e.is_fatal());
    // Every later call returns the same error, and touches no more input.
    assert_eq!(s.recv(&mut buf), Err(e.clone()));
    assert_eq!(s.send(b"x"), Err(e.clone()));
    assert_eq!(s.handshake(), Err(e.clone()));
    assert_eq!(s.bye(Shutdown::Write), Err(e.clone()));
    assert_eq!(s.recv(&mut buf), Err(e.clone()));
    assert_eq!(
        s.read(&mut buf).unwrap_err().kind(),
        io::Error::from(e.clone()).kind()
    );
    // The alert reached the client, which fails for good too.
    let ce = c.recv(&mut buf).unwrap_err();
    assert_eq!(ce, Error::AlertReceived(AlertDescription::BAD_RECORD_MAC));
    assert!(ce.is_fatal());
    assert_eq!(c.send(b"x"), Err(ce.clone()));
    assert_eq!(c.recv(&mut buf), Err(ce.clone()));
    assert_eq!(c.bye(Shutdown::ReadWrite), Err(ce));
}

#[test]
fn error_fatality_and_io_kinds() {
    for e in [
        Error::Again,
        Error::Interrupted,
        Error::LargePacket,
        Error::ClientHelloPaused,
    ] {
        assert!(!e.is_fatal(), "{e:?}");
    }
    for e in [
        Error::TimedOut,
        Error::PrematureTermination,
        Error::InvalidSession,
        Error::AlertReceived(AlertDescription::HANDSHAKE_FAILURE),
        Error::Transport {
            kind: io::ErrorKind::ConnectionReset,
            message: "reset".into(),
        },
    ] {
        assert!(e.is_fatal(), "{e:?}");
    }
    let kind = |e: Error| io::Error::from(e).kind();
    assert_eq!(kind(Error::Again), io::ErrorKind::WouldBlock);
    assert_eq!(kind(Error::Interrupted), io::ErrorKind::Interrupted);
    assert_eq!(kind(Error::TimedOut), io::ErrorKind::TimedOut);
    assert_eq!(
        kind(Error::PrematureTermination),
        io::ErrorKind::UnexpectedEof
    );
}
