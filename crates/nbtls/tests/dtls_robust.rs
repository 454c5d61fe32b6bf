//! DTLS 1.2 robustness, driven in memory with a manual clock: MTU back-off
//! through a path that drops large datagrams (RFC 6347 §4.1.1.1), the AEAD
//! integrity limit (RFC 9147 §4.5.3), every reordering and single drop of
//! each flight's records (GnuTLS dtls-stress), and HelloVerifyRequests
//! built from garbage (GnuTLS mini-dtls-hello-verify-48). Every loop is
//! bounded; timers fire only when the test advances the clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::certs::pki;
use common::sched::ManualClock;
use common::tls::{certified_key, client_config, server_config};
use nbtls::codec::AlertDescription;
use nbtls::{
    ClientAuth, ClientConfig, Error, Flags, Limits, MemoryDatagram, ServerConfig, Session,
    Transport, TrustAnchors,
};

type D = Session<MemoryDatagram>;

const HANDSHAKE: u8 = 22;
const APP: u8 = 23;
const HVR: u8 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToClient,
    ToServer,
}

/// What the relay does with one batch: every datagram one side sent in
/// one call, in order.
type Hook<'a> = &'a mut dyn FnMut(Dir, Vec<Vec<u8>>) -> Vec<Vec<u8>>;

/// Client and server with a relay between them and one manual clock.
struct Net {
    c: D,
    s: D,
    mc: MemoryDatagram,
    ms: MemoryDatagram,
    clock: Arc<ManualClock>,
}

impl Net {
    fn new(client: Arc<ClientConfig>, server: Arc<ServerConfig>, clock: Arc<ManualClock>) -> Net {
        let (c_end, mc) = MemoryDatagram::pair();
        let (s_end, ms) = MemoryDatagram::pair();
        let flags = Flags::NONBLOCK | Flags::DATAGRAM;
        let c = Session::client(client, "localhost", c_end, flags).unwrap();
        let s = Session::server_datagram(server, b"peer", s_end, flags).unwrap();
        Net {
            c,
            s,
            mc,
            ms,
            clock,
        }
    }

    fn default_pair() -> Net {
        let clock = ManualClock::new();
        let (c, s) = configs(&clock, Limits::default());
        Net::new(c, s, clock)
    }

    /// Moves every queued datagram across, through `hook`; returns
    /// whether anything was queued.
    fn relay(&mut self, hook: Hook<'_>) -> bool {
        let mut buf = vec![0u8; 20000];
        let mut moved = false;
        for dir in [Dir::ToServer, Dir::ToClient] {
            let (from, to) = match dir {
                Dir::ToServer => (&mut self.mc, &mut self.ms),
                Dir::ToClient => (&mut self.ms, &mut self.mc),
            };
            let mut batch = Vec::new();
            while batch.len() < 1000 {
                let Ok(n) = from.pull(&mut buf) else { break };
                batch.push(buf[..n].to_vec());
            }
            if batch.is_empty() {
                continue;
            }
            moved = true;
            for d in hook(dir, batch) {
                to.push(&d).unwrap();
            }
        }
        moved
    }

    /// One call on a side: its handshake until done, then `recv`, which
    /// serves the peer's retransmissions. `Ok(true)` once it is done.
    fn step(s: &mut D, done: &mut bool) -> Result<(), Error> {
        if !*done {
            match s.handshake() {
                Ok(()) => *done = true,
                Err(Error::Again) => {}
                Err(e) => return Err(e),
            }
        } else {
            match s.recv(&mut [0u8; 256]) {
                Err(Error::Again) => {}
                Ok(n) => panic!("{n} bytes of data before any was sent"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Drives both handshakes to the end, advancing the clock to the next
    /// timer whenever nothing is in flight. Returns the first error of
    /// either side (tagged), or how much fake time passed.
    fn handshake_with(&mut self, hook: Hook<'_>) -> Result<Duration, String> {
        let (mut cd, mut sd) = (false, false);
        let mut waited = Duration::ZERO;
        for _ in 0..400 {
            Self::step(&mut self.c, &mut cd).map_err(|e| format!("client: {e:?}"))?;
            let a = self.relay(hook);
            Self::step(&mut self.s, &mut sd).map_err(|e| format!("server: {e:?}"))?;
            let b = self.relay(hook);
            if cd && sd && !a && !b {
                return Ok(waited);
            }
            if !a && !b {
                let next = [self.c.timeout(), self.s.timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .ok_or("stalled: nothing in flight and no timer")?;
                // A timer due now still needs the clock to move past it.
                let t = next.max(Duration::from_millis(1));
                self.clock.advance(t);
                waited += t;
            }
        }
        Err(format!("no end after 400 rounds ({waited:?} waited)"))
    }

    fn handshake_ok(&mut self, hook: Hook<'_>) -> Duration {
        self.handshake_with(hook).unwrap_or_else(|e| panic!("{e}"))
    }

    fn side(&mut self, dir: Dir) -> (&mut D, &mut D) {
        match dir {
            Dir::ToServer => (&mut self.c, &mut self.s),
            Dir::ToClient => (&mut self.s, &mut self.c),
        }
    }

    /// One datagram each way, through `hook`.
    fn exchange_with(&mut self, hook: Hook<'_>) {
        for (dir, msg) in [(Dir::ToServer, &b"ping"[..]), (Dir::ToClient, b"pong")] {
            assert_eq!(self.side(dir).0.send(msg), Ok(4), "{dir:?}");
            let mut buf = [0u8; 64];
            let mut got = None;
            // Stale retransmissions may come first: recv consumes them.
            for _ in 0..20 {
                self.relay(hook);
                match self.side(dir).1.recv(&mut buf) {
                    Ok(n) => {
                        got = Some(buf[..n].to_vec());
                        break;
                    }
                    Err(Error::Again) => {}
                    Err(e) => panic!("{dir:?} recv: {e:?}"),
                }
            }
            assert_eq!(got.as_deref(), Some(msg), "{dir:?}");
        }
    }

    fn exchange(&mut self) {
        self.exchange_with(&mut |_, b| b);
    }
}

fn configs(clock: &Arc<ManualClock>, limits: Limits) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    (
        Arc::new(
            client_config()
                .time_source(clock.clone())
                .limits(limits.clone()),
        ),
        Arc::new(server_config().time_source(clock.clone()).limits(limits)),
    )
}

fn record(typ: u8, epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut v = vec![typ, 0xfe, 0xfd];
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes()[2..]);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// The records of a datagram, each whole (header included).
fn split_records(d: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = d;
    while rest.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let Some(rec) = rest.get(..13 + len) else {
            break;
        };
        out.push(rec.to_vec());
        rest = &rest[13 + len..];
    }
    out
}

// ---- MTU back-off -----------------------------------------------------

/// A path that silently drops every datagram over `limit` bytes, although
/// both sides were told the MTU is 1200: the handshake still completes
/// because retransmissions step the flight size down, never above the
/// configured MTU; `mtu()` still reports what the caller set.
#[test]
fn handshake_completes_through_a_path_mtu_black_hole() {
    for limit in [600, 300] {
        let mut n = Net::default_pair();
        assert_eq!((n.c.mtu(), n.s.mtu()), (1200, 1200));
        let (mut dropped, mut passed, mut largest) = (0, 0, 0);
        let waited = n.handshake_ok(&mut |_, batch| {
            batch
                .into_iter()
                .filter(|d| {
                    largest = largest.max(d.len());
                    if d.len() > limit {
                        dropped += 1;
                        false
                    } else {
                        passed += 1;
                        true
                    }
                })
                .collect()
        });
        assert!(dropped > 0, "the ClientHello alone is over {limit} bytes");
        assert!(largest <= 1200, "never over the configured MTU: {largest}");
        assert!(
            waited < Duration::from_secs(60),
            "within the handshake timeout ({waited:?})"
        );
        assert_eq!((n.c.mtu(), n.s.mtu()), (1200, 1200));
        n.exchange_with(&mut |_, batch| batch.into_iter().filter(|d| d.len() <= limit).collect());
    }
}

/// With a configured MTU below the back-off steps, retransmissions never
/// send anything larger than that MTU.
#[test]
fn back_off_never_exceeds_a_small_configured_mtu() {
    let mut n = Net::default_pair();
    n.c.set_mtu(200);
    n.s.set_mtu(200);
    let mut largest = 0;
    let mut k = 0;
    // Lose the first four batches so retransmissions (and back-off) happen.
    n.handshake_ok(&mut |_, batch| {
        k += 1;
        for d in &batch {
            largest = largest.max(d.len());
        }
        if k <= 4 {
            vec![]
        } else {
            batch
        }
    });
    assert!(largest <= 200, "{largest}");
    n.exchange();
}

/// Every datagram arrives twice: each side's last flight is answered at
/// most by the peer that must answer it, so the traffic dies out instead
/// of both finished sides echoing each other's retransmissions for ever.
#[test]
fn duplicated_last_flights_die_out() {
    let mut n = Net::default_pair();
    n.handshake_ok(&mut |_, batch| batch.iter().flat_map(|d| [d.clone(), d.clone()]).collect());
    n.exchange();
}

// ---- AEAD integrity limit ---------------------------------------------

/// Forged records under the current key are dropped silently until their
/// count reaches `Limits::max_aead_failures`; then the session ends with
/// `LimitExceeded` (bad_record_mac). Authentic records in between do not
/// reset the count.
#[test]
fn forged_records_end_the_session_at_the_integrity_limit() {
    const LIMIT: u64 = 10;
    let clock = ManualClock::new();
    let limits = Limits {
        max_aead_failures: LIMIT,
        ..Limits::default()
    };
    let (c, s) = configs(&clock, limits);
    let mut n = Net::new(c, s, clock);
    n.handshake_ok(&mut |_, b| b);
    let forged = |i: u64| record(APP, 1, 1000 + i, &[0x5a; 40]);
    for i in 0..LIMIT - 1 {
        n.ms.push(&forged(i)).unwrap();
        assert_eq!(n.s.recv(&mut [0u8; 64]), Err(Error::Again), "forgery {i}");
        if i == LIMIT / 2 {
            n.exchange();
        }
    }
    n.exchange();
    n.ms.push(&forged(LIMIT)).unwrap();
    let e = n.s.recv(&mut [0u8; 64]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                alert: AlertDescription::BAD_RECORD_MAC,
                ..
            }
        ),
        "{e:?}"
    );
    // The session stays ended.
    assert_eq!(n.s.recv(&mut [0u8; 64]).unwrap_err(), e);
    assert_eq!(n.s.send(b"x").unwrap_err(), e);
    // The other side is untouched: its own count is separate.
    assert_eq!(n.c.send(b"still"), Ok(5));
}

/// The default limit is the AEAD's (2^36): a few hundred forgeries change
/// nothing.
#[test]
fn default_integrity_limit_is_the_aeads() {
    assert_eq!(Limits::default().max_aead_failures, 1 << 36);
    let mut n = Net::default_pair();
    n.handshake_ok(&mut |_, b| b);
    for i in 0..300 {
        n.mc.push(&record(APP, 1, 5000 + i, &[i as u8; 30]))
            .unwrap();
    }
    assert_eq!(n.c.recv(&mut [0u8; 64]), Err(Error::Again));
    n.exchange();
}

// ---- every reordering and drop of each flight (GnuTLS dtls-stress) -----

/// What happens to one flight's records.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Delivered in the order of this permutation (its index among all of
    /// them, in lexicographic order).
    Permute(usize),
    /// This record is lost (the flight's retransmissions are not).
    Drop(usize),
    /// The whole flight is lost.
    DropAll,
}

fn factorial(n: usize) -> usize {
    (1..=n).product()
}

/// The `idx`-th permutation of `0..n` in lexicographic order.
fn nth_permutation(n: usize, mut idx: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    let mut out = Vec::with_capacity(n);
    for i in (0..n).rev() {
        let f = factorial(i);
        out.push(pool.remove(idx / f));
        idx %= f;
    }
    out
}

/// Runs one handshake where the `flight`-th flight (counting both sides'
/// first transmissions in order: ClientHello, HelloVerifyRequest,
/// ClientHello with cookie, the server's flight, the client's, the
/// server's last) is split into one datagram per record and suffers
/// `fault`; every other datagram, retransmissions included, passes.
/// Returns the record counts of the flights seen.
fn stress_run(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    clock: &Arc<ManualClock>,
    (mutual, resumed): (bool, bool),
    mtu: usize,
    fault: Option<(usize, Fault)>,
) -> Vec<usize> {
    let mut n = Net::new(client.clone(), server.clone(), clock.clone());
    n.c.set_mtu(mtu);
    n.s.set_mtu(mtu);
    let mut batches = 0;
    let mut log = Vec::new();
    let mut shape = Vec::new();
    let mut hook = |_: Dir, batch: Vec<Vec<u8>>| {
        let k = batches;
        batches += 1;
        // (record type, handshake type, length) per datagram, for a failure.
        log.push(format!(
            "{k}: {:?}",
            batch
                .iter()
                .map(|d| split_records(d)
                    .iter()
                    .map(|r| (r[0], r.get(13).copied(), r.len()))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        ));
        let mut recs: Vec<Vec<u8>> = batch.iter().flat_map(|d| split_records(d)).collect();
        if k == shape.len() && k < 6 {
            shape.push(recs.len());
        }
        match fault {
            Some((f, Fault::Permute(p))) if f == k => nth_permutation(recs.len(), p)
                .into_iter()
                .map(|i| recs[i].clone())
                .collect(),
            Some((f, Fault::Drop(i))) if f == k => {
                recs.remove(i);
                recs
            }
            Some((f, Fault::DropAll)) if f == k => vec![],
            _ => batch,
        }
    };
    let r = n.handshake_with(&mut hook);
    if let Err(e) = r {
        for l in &log {
            eprintln!("{l}");
        }
        panic!("{fault:?}: {e}");
    }
    n.exchange();
    assert_eq!(n.c.info().resumed, resumed, "{fault:?}");
    assert_eq!(n.s.info().resumed, resumed, "{fault:?}");
    if !resumed {
        assert!(!n.c.peer_certificates().is_empty());
        assert_eq!(!n.s.peer_certificates().is_empty(), mutual, "{fault:?}");
    }
    shape
}

/// For each flight of a handshake, every order of its records, every
/// single lost record, and the whole flight lost: each run completes, with
/// the manual clock driving retransmissions, and data then flows both
/// ways. As in dtls-stress, the flights are varied one at a time (the
/// cross product over all flights would be millions of runs). Full
/// handshakes (no session store): with server authentication, with mutual
/// authentication (the client's flight then has five records), and at an
/// MTU that cuts the server's Certificate in two fragments in different
/// datagrams. Resumed handshakes by ticket: the server's flight is
/// ServerHello, NewSessionTicket, ChangeCipherSpec, Finished and the client
/// sends the last one; every resumption leaves a new ticket for the next.
#[test]
fn every_reordering_and_drop_of_each_flight_completes() {
    let started = std::time::Instant::now();
    let clock = ManualClock::new();
    let anchors = TrustAnchors::from_certs(&[pki().ca_cert()]).unwrap();
    let full = || client_config().session_store(None);
    let cases = [
        (
            (false, false),
            1200,
            full().time_source(clock.clone()),
            server_config().time_source(clock.clone()),
        ),
        (
            (false, false),
            700,
            full().time_source(clock.clone()),
            server_config().time_source(clock.clone()),
        ),
        (
            (true, false),
            1200,
            full()
                .time_source(clock.clone())
                .client_certificate(certified_key(&pki().client_ecdsa)),
            server_config()
                .time_source(clock.clone())
                .client_auth(ClientAuth::Require, anchors),
        ),
        (
            (false, true),
            1200,
            client_config().time_source(clock.clone()),
            server_config().time_source(clock.clone()),
        ),
    ];
    let mut runs = 0;
    for (kind, mtu, client, server) in cases {
        let (mutual, resumed) = kind;
        let auth = match kind {
            (_, true) => "resumed",
            (true, _) => "mutual auth",
            _ => "server auth",
        };
        let name = format!("{auth}, MTU {mtu}");
        let (client, server) = (Arc::new(client), Arc::new(server));
        if resumed {
            // The first handshake is full and leaves the ticket.
            stress_run(&client, &server, &clock, (mutual, false), mtu, None);
        }
        let shape = stress_run(&client, &server, &clock, kind, mtu, None);
        let flights = if resumed { 5 } else { 6 };
        assert_eq!(shape.len(), flights, "{name}: {flights} flights, {shape:?}");
        // 7! runs for one flight would blow the time budget.
        assert!(shape.iter().all(|&n| n <= 6), "{name}: {shape:?}");
        for (flight, &len) in shape.iter().enumerate() {
            let faults = (0..factorial(len))
                .map(Fault::Permute)
                .chain((0..len).map(Fault::Drop))
                .chain([Fault::DropAll]);
            for fault in faults {
                let seen = stress_run(&client, &server, &clock, kind, mtu, Some((flight, fault)));
                assert!(seen.len() > flight, "{name}: flight {flight} never came");
                runs += 1;
            }
        }
        eprintln!("{name}: flights of {shape:?} records");
    }
    eprintln!("{runs} runs in {:?}", started.elapsed());
}

// ---- HelloVerifyRequests built from garbage -----------------------------

fn u24(v: usize) -> [u8; 3] {
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// An unfragmented handshake message with DTLS header fields as given.
fn hs_message(typ: u8, seq: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![typ];
    v.extend_from_slice(&u24(body.len()));
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&u24(0));
    v.extend_from_slice(&u24(body.len()));
    v.extend_from_slice(body);
    v
}

/// A HelloVerifyRequest body; `cookie_len` may disagree with `cookie`.
fn hvr_body(version: [u8; 2], cookie_len: u8, cookie: &[u8]) -> Vec<u8> {
    let mut b = version.to_vec();
    b.push(cookie_len);
    b.extend_from_slice(cookie);
    b
}

/// A client alone against a fake server that answers whatever the client
/// sent since its last answer with one datagram, `answer()`. The fake clock moves a second per exchange (and
/// to the client's timer when it is silent). Returns how the client ended:
/// it never completes, never panics, never sends more than a few datagrams
/// per answer, and ends within the handshake timeout.
fn client_against(mut answer: impl FnMut() -> Vec<u8>) -> Error {
    let clock = ManualClock::new();
    let (cfg, _) = configs(&clock, Limits::default());
    let (c_end, mut peer) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let mut c = Session::client(cfg, "localhost", c_end, flags).unwrap();
    let mut buf = vec![0u8; 20000];
    for _ in 0..200 {
        match c.handshake() {
            Ok(()) => panic!("handshake completed against a fake server"),
            Err(Error::Again) => {}
            Err(e) => return e,
        }
        // At most one flight per answer read (a repeated one resends the
        // flight, perhaps cut smaller), plus a retransmission.
        let (mut sent, mut bytes) = (0, 0);
        while let Ok(n) = peer.pull(&mut buf) {
            assert!(n <= c.mtu(), "{n}-byte datagram");
            sent += 1;
            bytes += n;
        }
        assert!(bytes <= 2 * 1200, "{bytes} bytes for one answer");
        if sent > 0 {
            peer.push(&answer()).unwrap();
        }
        let wait = if sent > 0 {
            Duration::from_secs(1)
        } else {
            c.timeout().expect("a timer runs while handshaking")
        };
        clock.advance(wait.max(Duration::from_millis(1)));
    }
    panic!("the client neither completed nor ended");
}

fn assert_typed_end(e: &Error, what: &str) {
    assert!(
        *e == Error::TimedOut || e.alert().is_some(),
        "{what}: ended with {e:?}"
    );
}

/// GnuTLS mini-dtls-hello-verify-48: HelloVerifyRequests with out-of-range
/// record sequence numbers and message_seq values, garbage, empty,
/// over-long and inconsistent cookies, and unusual versions never let a
/// client complete: it ends with `TimedOut` or a protocol error.
#[test]
fn garbage_hello_verify_requests_never_let_the_client_complete() {
    let record_seqs = [0u64, 1, 255, (1 << 48) - 1];
    let message_seqs = [0u16, 1, 2, 255, u16::MAX];
    let cookies: [(u8, Vec<u8>); 6] = [
        (16, (0..16).collect()),
        (0, vec![]),
        (32, vec![0xa5; 32]),
        (255, vec![0x42; 255]),
        (255, vec![0x42; 300]),
        (40, vec![0x42; 10]),
    ];
    let versions = [[0xfe, 0xff], [0xfe, 0xfd], [0x03, 0x03], [0, 0]];
    let mut ends = std::collections::BTreeMap::new();
    for &rseq in &record_seqs {
        for &mseq in &message_seqs {
            for (len, cookie) in &cookies {
                for version in versions {
                    let what = format!(
                        "record seq {rseq}, message_seq {mseq}, cookie {len}/{}, \
                         version {version:?}",
                        cookie.len()
                    );
                    let msg = hs_message(HVR, mseq, &hvr_body(version, *len, cookie));
                    let mut next = rseq;
                    let e = client_against(|| {
                        let r = record(HANDSHAKE, 0, next, &msg);
                        next = (next + 1).min((1 << 48) - 1);
                        r
                    });
                    assert_typed_end(&e, &what);
                    *ends.entry(format!("{e:?}")).or_insert(0) += 1;
                }
            }
        }
    }
    eprintln!("{ends:?}");
}

/// Random bytes where the HelloVerifyRequest's fields are, and random
/// whole records: same outcome.
#[test]
fn random_hello_verify_requests_never_let_the_client_complete() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..40 {
        let e = client_against(|| {
            let len = (rnd() % 300) as usize;
            let body: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            let seq = rnd() & ((1 << 48) - 1);
            match rnd() % 3 {
                // A HelloVerifyRequest header over a random body.
                0 => record(HANDSHAKE, 0, seq, &hs_message(HVR, rnd() as u16, &body)),
                // A well-formed one with a random cookie.
                1 => {
                    let cookie = &body[..len.min(255)];
                    let h = hvr_body([0xfe, 0xff], cookie.len() as u8, cookie);
                    record(HANDSHAKE, 0, seq, &hs_message(HVR, rnd() as u16 % 4, &h))
                }
                // Any bytes at all.
                _ => body,
            }
        });
        assert_typed_end(&e, "random");
    }
}

/// The HelloVerifyRequest's server_version may be 254.255 (DTLS 1.0, what
/// RFC 6347 §4.2.1 says a server sends) or 254.253: the client accepts
/// either and the handshake completes.
#[test]
fn client_accepts_either_hello_verify_request_version() {
    for version in [[0xfe, 0xff], [0xfe, 0xfd]] {
        let mut n = Net::default_pair();
        let mut rewritten = 0;
        n.handshake_ok(&mut |dir, batch| {
            if dir == Dir::ToServer {
                return batch;
            }
            batch
                .into_iter()
                .map(|mut d| {
                    // One unprotected record holding a whole HelloVerifyRequest.
                    if d.len() > 27 && d[0] == HANDSHAKE && d[13] == HVR {
                        d[25..27].copy_from_slice(&version);
                        rewritten += 1;
                    }
                    d
                })
                .collect()
        });
        assert_eq!(rewritten, 1, "{version:?}");
        n.exchange();
    }
}

/// The side that sent the handshake's last flight (the server, in a full
/// handshake) resends it when the client repeats its own flight, also
/// after the handshake, for 240 s (RFC 6347 §4.2.4); later it is gone.
#[test]
fn the_last_flight_is_kept_for_240_seconds() {
    let mut n = Net::default_pair();
    n.c.set_handshake_timeout(None);
    // The server's last flight (the sixth batch) is lost, so the client
    // retransmits its own; two of those retransmissions are held back.
    let mut batches = 0;
    let held: std::cell::RefCell<Vec<Vec<Vec<u8>>>> = Default::default();
    let mut hook = |dir: Dir, batch: Vec<Vec<u8>>| {
        batches += 1;
        match (batches, dir) {
            (6, _) => vec![],
            (7.., Dir::ToServer) => {
                held.borrow_mut().push(batch);
                vec![]
            }
            _ => batch,
        }
    };
    let (mut cd, mut sd) = (false, false);
    for _ in 0..100 {
        Net::step(&mut n.c, &mut cd).unwrap();
        n.relay(&mut hook);
        Net::step(&mut n.s, &mut sd).unwrap();
        n.relay(&mut hook);
        if held.borrow().len() >= 2 {
            break;
        }
        let next = n.c.timeout().expect("the client retransmits");
        n.clock.advance(next.max(Duration::from_millis(1)));
    }
    assert!(sd && !cd, "server done, client waiting for its Finished");
    let held = held.into_inner();
    assert_eq!(held.len(), 2, "two client retransmissions held");
    let mut buf = vec![0u8; 20000];
    let mut deliver = |n: &mut Net, flight: &[Vec<u8>]| {
        for d in flight {
            n.ms.push(d).unwrap();
        }
        // `recv` serves the retransmission and then has no data.
        assert_eq!(n.s.recv(&mut [0u8; 64]), Err(Error::Again));
        let mut answer = Vec::new();
        while let Ok(len) = n.ms.pull(&mut buf) {
            answer.push(buf[..len].to_vec());
        }
        answer
    };
    n.clock.advance(Duration::from_secs(200));
    let answer = deliver(&mut n, &held[0]);
    assert!(!answer.is_empty(), "within 240 s the last flight is resent");
    n.clock.advance(Duration::from_secs(45));
    assert!(
        deliver(&mut n, &held[1]).is_empty(),
        "after 240 s it is gone"
    );
    // The first answer completes the client's handshake.
    for d in &answer {
        n.mc.push(d).unwrap();
    }
    assert_eq!(n.c.handshake(), Ok(()));
    n.exchange();
}

/// A key change may not cut through buffered messages (BoGo's
/// KeyChangeWithBufferedMessages-DTLS): a plaintext Finished that arrives
/// before the client's ChangeCipherSpec and ClientKeyExchange waits in the
/// reassembler under epoch 0; when the ChangeCipherSpec would switch the
/// read epoch, the server refuses instead of reading that Finished as if
/// it had come encrypted.
#[test]
fn a_key_change_over_buffered_messages_is_refused() {
    let mut n = Net::default_pair();
    let mut batches = 0;
    let r = n.handshake_with(&mut |dir, batch| {
        batches += 1;
        if batches != 5 || dir != Dir::ToServer {
            return batch;
        }
        // The client's flight: ClientKeyExchange (message_seq 2), CCS,
        // Finished (3). Replace the Finished by a plaintext one sent
        // first, then the CCS, then the key exchange.
        let recs: Vec<Vec<u8>> = batch.iter().flat_map(|d| split_records(d)).collect();
        let (cke, ccs) = (recs[0].clone(), recs[1].clone());
        assert_eq!((cke[0], cke[13], ccs[0]), (22, 16, 20), "flight shape");
        let finished = record(22, 0, 100, &hs_message(20, 3, &[0x5a; 12]));
        vec![finished, ccs, cke]
    });
    let e = r.expect_err("the server must refuse");
    assert!(e.starts_with("server:"), "{e}");
    let sticky = n.s.handshake().unwrap_err();
    assert_eq!(
        sticky.alert(),
        Some(AlertDescription::UNEXPECTED_MESSAGE),
        "{sticky:?}"
    );
}
