//! DTLS 1.2 bad input: raw datagrams injected into a session's incoming
//! queue, or rewritten on their way by a relay in the middle. Records that
//! fail a check are dropped and the session goes on (RFC 6347 §4.1.2.7);
//! malformed handshake messages are fatal with a typed error. No case may
//! panic, and every loop is bounded.

mod common;

use std::sync::Arc;

use common::tls::{client_config, server_config};
use nbtls::codec::AlertDescription;
use nbtls::{Error, Flags, MemoryDatagram, ServerConfig, Session, Transport};

type D = Session<MemoryDatagram>;

const DTLS12: [u8; 2] = [0xfe, 0xfd];
const HANDSHAKE: u8 = 22;
const APP: u8 = 23;
const HVR: u8 = 3;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToClient,
    ToServer,
}

/// Client and server with a relay between them: `mc` faces the client,
/// `ms` the server. Whatever reaches a session passes through `relay`.
struct Net {
    c: D,
    s: D,
    mc: MemoryDatagram,
    ms: MemoryDatagram,
}

type Hook<'a> = &'a mut dyn FnMut(Dir, Vec<u8>) -> Vec<Vec<u8>>;

impl Net {
    fn new(server: ServerConfig) -> Net {
        let (c_end, mc) = MemoryDatagram::pair();
        let (s_end, ms) = MemoryDatagram::pair();
        let flags = Flags::NONBLOCK | Flags::DATAGRAM;
        let c = Session::client(Arc::new(client_config()), "localhost", c_end, flags).unwrap();
        let s = Session::server_datagram(Arc::new(server), b"peer", s_end, flags).unwrap();
        Net { c, s, mc, ms }
    }

    fn default_pair() -> Net {
        Net::new(server_config())
    }

    /// Raw datagram into the client's (or server's) incoming queue.
    fn inject(&mut self, to: Dir, d: &[u8]) {
        match to {
            Dir::ToClient => self.mc.push(d).unwrap(),
            Dir::ToServer => self.ms.push(d).unwrap(),
        };
    }

    /// Moves every queued datagram across, through `hook`.
    fn relay(&mut self, hook: Hook<'_>) {
        let mut buf = vec![0u8; 20000];
        for _ in 0..1000 {
            let Ok(n) = self.mc.pull(&mut buf) else { break };
            for d in hook(Dir::ToServer, buf[..n].to_vec()) {
                self.ms.push(&d).unwrap();
            }
        }
        for _ in 0..1000 {
            let Ok(n) = self.ms.pull(&mut buf) else { break };
            for d in hook(Dir::ToClient, buf[..n].to_vec()) {
                self.mc.push(&d).unwrap();
            }
        }
    }

    /// Drives both handshakes (bounded); the first error of each side.
    fn handshake_with(&mut self, hook: Hook<'_>) -> (Result<(), Error>, Result<(), Error>) {
        let (mut cr, mut sr) = (Err(Error::Again), Err(Error::Again));
        for _ in 0..100 {
            if cr == Err(Error::Again) {
                cr = self.c.handshake();
            }
            self.relay(hook);
            if sr == Err(Error::Again) {
                sr = self.s.handshake();
            }
            self.relay(hook);
            if cr != Err(Error::Again) && sr != Err(Error::Again) {
                break;
            }
            // Either side failing ends the run.
            if matches!(&cr, Err(e) if *e != Error::Again)
                || matches!(&sr, Err(e) if *e != Error::Again)
            {
                break;
            }
        }
        (cr, sr)
    }

    fn handshake_ok(&mut self, hook: Hook<'_>) {
        let (c, s) = self.handshake_with(hook);
        assert_eq!(c, Ok(()), "client handshake");
        assert_eq!(s, Ok(()), "server handshake");
    }

    fn handshake(&mut self) {
        self.handshake_ok(&mut |_, d| vec![d]);
    }

    /// Datagrams still flow both ways.
    fn exchange(&mut self) {
        let mut buf = [0u8; 64];
        assert_eq!(self.c.send(b"ping").unwrap(), 4);
        self.relay(&mut |_, d| vec![d]);
        assert_eq!(self.s.recv(&mut buf), Ok(4));
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(self.s.send(b"pong").unwrap(), 4);
        self.relay(&mut |_, d| vec![d]);
        assert_eq!(self.c.recv(&mut buf), Ok(4));
        assert_eq!(&buf[..4], b"pong");
    }
}

fn record(typ: u8, version: [u8; 2], epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut v = vec![typ];
    v.extend_from_slice(&version);
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes()[2..]);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn u24(v: usize) -> [u8; 3] {
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn fragment(typ: u8, len: usize, seq: u16, off: usize, data: &[u8]) -> Vec<u8> {
    fragment_claiming(typ, len, seq, off, data.len(), data)
}

/// A fragment whose header may claim a length other than what follows.
fn fragment_claiming(
    typ: u8,
    len: usize,
    seq: u16,
    off: usize,
    frag_len: usize,
    data: &[u8],
) -> Vec<u8> {
    let mut v = vec![typ];
    v.extend_from_slice(&u24(len));
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&u24(off));
    v.extend_from_slice(&u24(frag_len));
    v.extend_from_slice(data);
    v
}

/// Sequence numbers for injected epoch-0 records: above the real ones
/// (a handful) but close enough that the real ones stay inside the replay
/// window the injected record moves.
const INJECTED_SEQ: u64 = 40;

/// An epoch-0 handshake record holding `frag`, with a record sequence
/// number no real record of the test uses.
fn hs_record(seq: u64, frag: &[u8]) -> Vec<u8> {
    record(HANDSHAKE, DTLS12, 0, INJECTED_SEQ + seq, frag)
}

/// The records of a datagram: (type, epoch, seq, body).
fn records(d: &[u8]) -> Vec<(u8, u16, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = d;
    while rest.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let Some(body) = rest.get(13..13 + len) else {
            break;
        };
        let mut seq = [0u8; 8];
        seq[2..].copy_from_slice(&rest[5..11]);
        out.push((
            rest[0],
            u16::from_be_bytes([rest[3], rest[4]]),
            u64::from_be_bytes(seq),
            body.to_vec(),
        ));
        rest = &rest[13 + len..];
    }
    out
}

/// The handshake fragments of an epoch-0 record body:
/// (type, length, message_seq, offset, data).
fn fragments(mut body: &[u8]) -> Vec<(u8, usize, u16, usize, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 12 {
        let r = |i: usize| {
            (usize::from(body[i]) << 16)
                | (usize::from(body[i + 1]) << 8)
                | usize::from(body[i + 2])
        };
        let (len, seq, off, flen) = (r(1), u16::from_be_bytes([body[4], body[5]]), r(6), r(9));
        out.push((body[0], len, seq, off, body[12..12 + flen].to_vec()));
        body = &body[12 + flen..];
    }
    out
}

fn assert_alert(r: Result<(), Error>, alert: AlertDescription, what: &str) {
    match r {
        Err(e) => assert_eq!(e.alert(), Some(alert), "{what}: {e:?}"),
        Ok(()) => panic!("{what}: accepted"),
    }
}

/// The error a server gets for one injected handshake record body.
fn server_error_for(body: &[u8]) -> Error {
    let mut n = Net::default_pair();
    n.inject(Dir::ToServer, &hs_record(0, body));
    match n.s.handshake() {
        Err(Error::Again) => panic!("the server accepted a bad fragment"),
        Err(e) => e,
        Ok(()) => panic!("handshake done from one fragment"),
    }
}

// ---- fragments --------------------------------------------------------

#[test]
fn fragment_reaching_past_its_message_end_is_a_decode_error() {
    let e = server_error_for(&fragment(CLIENT_HELLO, 10, 0, 5, &[1; 10]));
    assert_eq!(e.alert(), Some(AlertDescription::DECODE_ERROR), "{e:?}");
}

/// The fatal alert goes out on the wire too, as a plaintext datagram
/// before the keys are in use: the peer learns why, not only a timeout.
#[test]
fn a_fatal_error_sends_its_alert_as_a_datagram() {
    let mut n = Net::default_pair();
    n.inject(
        Dir::ToServer,
        &hs_record(0, &fragment(CLIENT_HELLO, 10, 0, 5, &[1; 10])),
    );
    let e = n.s.handshake().unwrap_err();
    assert_eq!(e.alert(), Some(AlertDescription::DECODE_ERROR), "{e:?}");
    let mut buf = vec![0u8; 2048];
    let len = n.ms.pull(&mut buf).expect("an alert datagram");
    let recs = records(&buf[..len]);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (typ, epoch, _, body) = &recs[0];
    assert_eq!((*typ, *epoch), (21, 0));
    assert_eq!(body, &[2, AlertDescription::DECODE_ERROR.0]);
    // Sent once: the failed session adds nothing more.
    assert!(matches!(n.s.handshake(), Err(ref r) if *r == e));
    assert!(n.ms.pull(&mut buf).is_err(), "nothing more on the wire");
}

#[test]
fn fragment_longer_than_its_record_is_a_decode_error() {
    let e = server_error_for(&fragment_claiming(CLIENT_HELLO, 100, 0, 0, 100, &[1; 10]));
    assert_eq!(e.alert(), Some(AlertDescription::DECODE_ERROR), "{e:?}");
}

#[test]
fn fragment_offset_beyond_the_message_is_a_decode_error() {
    let e = server_error_for(&fragment(CLIENT_HELLO, 10, 0, 0xff_ffff, &[]));
    assert_eq!(e.alert(), Some(AlertDescription::DECODE_ERROR), "{e:?}");
}

#[test]
fn conflicting_total_lengths_for_one_message_are_an_error() {
    let mut body = fragment(CLIENT_HELLO, 100, 0, 0, &[1; 10]);
    body.extend(fragment(CLIENT_HELLO, 90, 0, 10, &[1; 10]));
    let e = server_error_for(&body);
    assert_eq!(
        e.alert(),
        Some(AlertDescription::ILLEGAL_PARAMETER),
        "{e:?}"
    );
}

#[test]
fn conflicting_types_for_one_message_are_an_error() {
    let mut body = fragment(CLIENT_HELLO, 100, 0, 0, &[1; 10]);
    body.extend(fragment(SERVER_HELLO, 100, 0, 10, &[1; 10]));
    let e = server_error_for(&body);
    assert_eq!(
        e.alert(),
        Some(AlertDescription::ILLEGAL_PARAMETER),
        "{e:?}"
    );
}

#[test]
fn handshake_message_over_the_size_limit_is_an_error() {
    let e = server_error_for(&fragment(CLIENT_HELLO, 0xff_ffff, 0, 0, &[1; 10]));
    assert!(
        matches!(e, Error::LimitExceeded { .. }),
        "want LimitExceeded, got {e:?}"
    );
}

#[test]
fn fragment_far_ahead_is_dropped() {
    let mut n = Net::default_pair();
    n.inject(
        Dir::ToServer,
        &hs_record(0, &fragment(CLIENT_HELLO, 10, 50, 0, &[1; 10])),
    );
    n.handshake();
    n.exchange();
}

/// Re-cuts every epoch-0 handshake fragment going `dir` into overlapping
/// pieces, sent in reverse order and each twice (in fresh records).
fn refragment(dir: Dir) -> impl FnMut(Dir, Vec<u8>) -> Vec<Vec<u8>> {
    let mut next = 0u64;
    move |d, dgram| {
        if d != dir {
            return vec![dgram];
        }
        let mut out = Vec::new();
        for (typ, epoch, seq, body) in records(&dgram) {
            if epoch != 0 {
                // Protected records keep their sequence number (it is
                // authenticated).
                out.push(record(typ, DTLS12, epoch, seq, &body));
                continue;
            }
            if typ != HANDSHAKE {
                next += 1;
                out.push(hs_record_typed(typ, 5000 + next, &body));
                continue;
            }
            for (t, len, mseq, off, data) in fragments(&body) {
                let cut = data.len() / 2;
                let pieces = [
                    (
                        off + cut.saturating_sub(3),
                        data[cut.saturating_sub(3)..].to_vec(),
                    ),
                    (off, data[..(cut + 3).min(data.len())].to_vec()),
                ];
                for (o, p) in pieces.iter().chain(pieces.iter()) {
                    next += 1;
                    out.push(hs_record(5000 + next, &fragment(t, len, mseq, *o, p)));
                }
            }
        }
        out
    }
}

#[test]
fn overlapping_reordered_duplicate_fragments_to_the_server_are_fine() {
    let mut n = Net::default_pair();
    n.handshake_ok(&mut refragment(Dir::ToServer));
    n.exchange();
}

#[test]
fn overlapping_reordered_duplicate_fragments_to_the_client_are_fine() {
    let mut n = Net::default_pair();
    n.handshake_ok(&mut refragment(Dir::ToClient));
    n.exchange();
}

// ---- records that are dropped -----------------------------------------

/// Injects `dgram` into `to` before the handshake and after it: dropped
/// both times, and the session works.
fn hs_record_typed(typ: u8, seq: u64, body: &[u8]) -> Vec<u8> {
    record(typ, DTLS12, 0, INJECTED_SEQ + seq, body)
}

fn dropped_before_and_after(to: Dir, dgram: &[u8]) {
    let mut n = Net::default_pair();
    n.inject(to, dgram);
    n.handshake();
    n.inject(to, dgram);
    n.exchange();
    // Nothing extra arrived.
    let mut buf = [0u8; 64];
    assert_eq!(n.c.recv(&mut buf), Err(Error::Again));
    assert_eq!(n.s.recv(&mut buf), Err(Error::Again));
}

#[test]
fn empty_datagrams_are_dropped() {
    dropped_before_and_after(Dir::ToServer, &[]);
    dropped_before_and_after(Dir::ToClient, &[]);
}

#[test]
fn truncated_record_header_is_dropped() {
    let r = hs_record(0, &fragment(CLIENT_HELLO, 4, 0, 0, &[1; 4]));
    dropped_before_and_after(Dir::ToServer, &r[..7]);
    dropped_before_and_after(Dir::ToClient, &r[..12]);
}

#[test]
fn truncated_record_body_is_dropped() {
    let r = record(APP, DTLS12, 1, 7, &[9; 100]);
    dropped_before_and_after(Dir::ToServer, &r[..40]);
    let r = hs_record(0, &fragment(SERVER_HELLO, 40, 0, 0, &[1; 40]));
    dropped_before_and_after(Dir::ToClient, &r[..30]);
}

#[test]
fn unknown_record_version_is_dropped() {
    let r = record(APP, [3, 3], 1, 7, &[9; 40]);
    dropped_before_and_after(Dir::ToServer, &r);
    let r = record(
        HANDSHAKE,
        [3, 3],
        0,
        7,
        &fragment(SERVER_HELLO, 4, 0, 0, &[1; 4]),
    );
    dropped_before_and_after(Dir::ToClient, &r);
}

#[test]
fn unknown_content_type_is_dropped() {
    dropped_before_and_after(Dir::ToServer, &record(99, DTLS12, 0, INJECTED_SEQ, b"what"));
    dropped_before_and_after(Dir::ToClient, &record(0, DTLS12, 1, 900, &[5; 40]));
}

#[test]
fn wrong_epochs_are_dropped() {
    dropped_before_and_after(Dir::ToServer, &record(APP, DTLS12, 7, 1, &[5; 40]));
    dropped_before_and_after(Dir::ToClient, &record(APP, DTLS12, 1, 1, &[5; 40]));
    dropped_before_and_after(Dir::ToClient, &record(APP, DTLS12, 0xffff, 1, &[5; 40]));
}

#[test]
fn application_data_at_epoch_zero_is_ignored() {
    dropped_before_and_after(
        Dir::ToServer,
        &record(APP, DTLS12, 0, INJECTED_SEQ, b"plaintext"),
    );
}

#[test]
fn malformed_alert_and_change_cipher_spec_records_are_ignored() {
    dropped_before_and_after(
        Dir::ToServer,
        &record(21, DTLS12, 0, INJECTED_SEQ, &[2, 40, 0]),
    );
    dropped_before_and_after(Dir::ToClient, &record(20, DTLS12, 0, INJECTED_SEQ, &[7]));
}

#[test]
fn forged_application_data_fails_authentication_and_is_dropped() {
    let mut n = Net::default_pair();
    n.handshake();
    // Epoch 1 and a fresh sequence number, but not sealed with the key.
    n.inject(Dir::ToServer, &record(APP, DTLS12, 1, 40, &[7; 60]));
    n.exchange();
    assert_eq!(n.s.recv(&mut [0u8; 64]), Err(Error::Again));
}

#[test]
fn garbage_after_a_valid_record_is_ignored() {
    let mut n = Net::default_pair();
    // During the handshake every datagram carries junk after its records:
    // short junk, and junk that parses as a header with a bad epoch.
    let mut junk = 0;
    n.handshake_ok(&mut |_, mut d| {
        junk += 1;
        if junk % 2 == 0 {
            d.extend_from_slice(&[0xff; 7]);
        } else {
            d.extend(record(HANDSHAKE, DTLS12, 9, 3, &[0xee; 20]));
        }
        vec![d]
    });
    // After it, one application datagram with junk still delivers its data.
    n.c.send(b"data").unwrap();
    n.relay(&mut |_, mut d| {
        d.extend_from_slice(b"\x17\xfe\xfd garbage");
        vec![d]
    });
    let mut buf = [0u8; 64];
    assert_eq!(n.s.recv(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"data");
    n.exchange();
}

// ---- replay -----------------------------------------------------------

#[test]
fn duplicated_handshake_datagrams_are_harmless() {
    let mut n = Net::default_pair();
    n.handshake_ok(&mut |_, d| vec![d.clone(), d.clone(), d]);
    n.exchange();
}

#[test]
fn a_replayed_application_record_is_delivered_once() {
    let mut n = Net::default_pair();
    n.handshake();
    n.c.send(b"once").unwrap();
    n.relay(&mut |_, d| vec![d.clone(), d.clone(), d]);
    let mut buf = [0u8; 64];
    assert_eq!(n.s.recv(&mut buf), Ok(4));
    assert_eq!(n.s.recv(&mut buf), Err(Error::Again));
    n.exchange();
}

#[test]
fn records_outside_the_replay_window_are_dropped_inside_it_accepted() {
    let mut n = Net::default_pair();
    n.handshake();
    let mut held = Vec::new();
    for i in 0..100u8 {
        n.c.send(&[i]).unwrap();
    }
    let mut k = 0;
    // Hold back datagram 0 (100 behind: outside the 64-record window) and
    // datagram 95 (4 behind: inside it); deliver them after the rest.
    n.relay(&mut |_, d| {
        k += 1;
        if k == 1 || k == 96 {
            held.push(d);
            vec![]
        } else {
            vec![d]
        }
    });
    for d in &held {
        n.inject(Dir::ToServer, d);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 8];
    for _ in 0..200 {
        match n.s.recv(&mut buf) {
            Ok(1) => got.push(buf[0]),
            Err(Error::Again) => break,
            other => panic!("{other:?}"),
        }
    }
    let mut want: Vec<u8> = (1..100).filter(|&i| i != 95).collect();
    want.push(95);
    assert_eq!(got, want);
    n.exchange();
}

// ---- HelloVerifyRequest -----------------------------------------------

fn hvr(cookie: &[u8], cookie_len: u8) -> Vec<u8> {
    let mut body = vec![0xfe, 0xff, cookie_len];
    body.extend_from_slice(cookie);
    body
}

/// A client alone; `mc` plays the server. Returns the client's result
/// after it read `msgs` (each an epoch-0 handshake record body).
fn client_after(msgs: &[Vec<u8>]) -> Result<(), Error> {
    let mut n = Net::default_pair();
    let mut buf = vec![0u8; 20000];
    let mut r = n.c.handshake();
    for (i, m) in msgs.iter().enumerate() {
        let _ = n.mc.pull(&mut buf); // the client's hello
        n.mc.push(&hs_record(i as u64, m)).unwrap();
        r = n.c.handshake();
        if r != Err(Error::Again) {
            return r;
        }
    }
    r
}

#[test]
fn hello_verify_request_with_an_empty_cookie_is_an_error() {
    let r = client_after(&[fragment(HVR, 3, 0, 0, &hvr(&[], 0))]);
    assert_alert(r, AlertDescription::UNEXPECTED_MESSAGE, "empty cookie");
}

#[test]
fn hello_verify_request_with_a_300_byte_cookie_is_an_error() {
    let body = hvr(&[0x42; 300], 255);
    let r = client_after(&[fragment(HVR, body.len(), 0, 0, &body)]);
    assert_alert(r, AlertDescription::DECODE_ERROR, "300-byte cookie");
}

#[test]
fn hello_verify_request_with_a_cookie_length_past_its_end_is_an_error() {
    let body = hvr(&[0x42; 10], 40);
    let r = client_after(&[fragment(HVR, body.len(), 0, 0, &body)]);
    assert_alert(r, AlertDescription::DECODE_ERROR, "short cookie");
}

#[test]
fn two_hello_verify_requests_are_answered_a_third_is_an_error() {
    let m = |seq| {
        let body = hvr(&[7; 16], 16);
        fragment(HVR, body.len(), seq, 0, &body)
    };
    assert_eq!(client_after(&[m(0), m(1)]), Err(Error::Again));
    let r = client_after(&[m(0), m(1), m(2)]);
    assert_alert(r, AlertDescription::UNEXPECTED_MESSAGE, "third HVR");
}

#[test]
fn hello_verify_request_after_the_server_hello_is_an_error() {
    let mut n = Net::new(server_config().dtls_cookies(None));
    // Keep only the ServerHello of the server's flight, and put a
    // HelloVerifyRequest right after it.
    let mut hook = |d: Dir, dgram: Vec<u8>| {
        if d != Dir::ToClient {
            return vec![dgram];
        }
        let mut out = Vec::new();
        for (typ, epoch, _, body) in records(&dgram) {
            if typ != HANDSHAKE || epoch != 0 {
                continue;
            }
            for (t, len, mseq, off, data) in fragments(&body) {
                if t == SERVER_HELLO {
                    out.push(hs_record(
                        100 + u64::from(mseq),
                        &fragment(t, len, mseq, off, &data),
                    ));
                    let h = hvr(&[7; 16], 16);
                    let f = fragment(HVR, h.len(), mseq + 1, 0, &h);
                    out.push(hs_record(200 + u64::from(mseq), &f));
                }
            }
        }
        out
    };
    let (c, _) = n.handshake_with(&mut hook);
    match c {
        Err(e) if e != Error::Again => {
            assert_eq!(
                e.alert(),
                Some(AlertDescription::UNEXPECTED_MESSAGE),
                "{e:?}"
            )
        }
        other => panic!("client accepted a late HelloVerifyRequest: {other:?}"),
    }
}

#[test]
fn injected_hello_verify_request_after_the_handshake_kills_nothing_silently() {
    // An unauthenticated epoch-0 handshake message after the handshake:
    // either dropped (and the session works) or a typed error, never a
    // panic or a hang. Old message_seq values are retransmissions.
    let mut n = Net::default_pair();
    n.handshake();
    let h = hvr(&[7; 16], 16);
    n.inject(
        Dir::ToClient,
        &hs_record(300, &fragment(HVR, h.len(), 0, 0, &h)),
    );
    n.exchange();
}
