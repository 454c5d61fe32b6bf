//! A transport wrapper that fails on a schedule and records every call, so tests can
//! drive a session through every point where it may have to stop, and then assert on
//! the exact sequence of transport calls it made.
//!
//! Failures are injected *before* the inner transport is called, so an injected
//! `WouldBlock`/`Interrupted` moves no byte. A passing call may also be limited to a
//! prefix of what the session offered or asked for (short writes and short reads).
//! Also here: [`ManualClock`], a [`TimeSource`] advanced by hand.

use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nbtls::{Direction, Error, Session, SystemTimeSource, TimeSource, Transport};
use rustls_pki_types::UnixTime;

/// When calls fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Never: the wrapper only records.
    Never,
    /// Every other push and every other pull (counted apart), starting with the first.
    EveryOther,
    /// Push and pull move at most one byte per call, and alternate with a failure, so
    /// the session stops at every byte boundary.
    ByteAtATime,
    /// Each call fails with probability 1/2 (xorshift64 from this seed); a passing call
    /// moves a random prefix half of the time.
    Random(u64),
}

/// What an injected failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    WouldBlock,
    Interrupted,
    /// Alternating (or, with `Schedule::Random`, randomly chosen) between the two.
    Mixed,
}

/// Every schedule tests run over (with the faults they inject).
pub const SCHEDULES: [(Schedule, Fault); 7] = [
    (Schedule::Never, Fault::WouldBlock),
    (Schedule::EveryOther, Fault::WouldBlock),
    (Schedule::EveryOther, Fault::Interrupted),
    (Schedule::ByteAtATime, Fault::WouldBlock),
    (Schedule::ByteAtATime, Fault::Mixed),
    (Schedule::Random(0x9e37_79b9_7f4a_7c15), Fault::WouldBlock),
    (Schedule::Random(0x0123_4567_89ab_cdef), Fault::Mixed),
];

/// A transport operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Push,
    PushVectored,
    Pull,
    /// With the timeout it was called with.
    PullTimeout(Duration),
}

impl Op {
    /// The direction a session must report after this call would-blocked.
    pub fn direction(self) -> Direction {
        match self {
            Op::Push | Op::PushVectored => Direction::Write,
            Op::Pull | Op::PullTimeout(_) => Direction::Read,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// push/pull moved this many bytes (a pull of 0 is EOF).
    Done(usize),
    /// pull_timeout's answer.
    Ready(bool),
    WouldBlock,
    Interrupted,
    Failed(io::ErrorKind),
}

/// One recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    /// Bytes offered (push) or room given (pull); 0 for pull_timeout.
    pub len: usize,
    pub outcome: Outcome,
    /// The failure was injected by the schedule (not the inner transport's own).
    pub injected: bool,
}

/// The scheduled, recording wrapper.
#[derive(Debug)]
pub struct Sched<T> {
    inner: T,
    schedule: Schedule,
    fault: Fault,
    calls: Vec<Call>,
    pushes: u64,
    pulls: u64,
    toggle: bool,
    rng: u64,
}

/// What the schedule decided for one call.
enum Decision {
    Fail(io::ErrorKind),
    Pass { limit: usize },
}

impl<T> Sched<T> {
    pub fn new(inner: T, schedule: Schedule, fault: Fault) -> Self {
        let rng = match schedule {
            Schedule::Random(seed) => seed | 1,
            _ => 0x2545_f491_4f6c_dd1d,
        };
        Sched {
            inner,
            schedule,
            fault,
            calls: Vec::new(),
            pushes: 0,
            pulls: 0,
            toggle: false,
            rng,
        }
    }

    /// Records only.
    pub fn recorder(inner: T) -> Self {
        Self::new(inner, Schedule::Never, Fault::WouldBlock)
    }

    pub fn inner(&self) -> &T {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    pub fn last_call(&self) -> Option<Call> {
        self.calls.last().copied()
    }

    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }

    /// Changes the schedule from the next call on.
    pub fn set_schedule(&mut self, schedule: Schedule, fault: Fault) {
        self.schedule = schedule;
        self.fault = fault;
        self.pushes = 0;
        self.pulls = 0;
        if let Schedule::Random(seed) = schedule {
            self.rng = seed | 1;
        }
    }

    /// The timeouts pull_timeout was called with, in order.
    pub fn pull_timeouts(&self) -> Vec<Duration> {
        self.calls
            .iter()
            .filter_map(|c| match c.op {
                Op::PullTimeout(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// Bytes the inner transport accepted through push calls.
    pub fn bytes_pushed(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| matches!(c.op, Op::Push | Op::PushVectored))
            .map(|c| match c.outcome {
                Outcome::Done(n) => n,
                _ => 0,
            })
            .sum()
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: deterministic for a seed, no dependency.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn fault_kind(&mut self, random_bit: bool) -> io::ErrorKind {
        match self.fault {
            Fault::WouldBlock => io::ErrorKind::WouldBlock,
            Fault::Interrupted => io::ErrorKind::Interrupted,
            Fault::Mixed => {
                let pick = match self.schedule {
                    Schedule::Random(_) => random_bit,
                    _ => {
                        self.toggle = !self.toggle;
                        self.toggle
                    }
                };
                if pick {
                    io::ErrorKind::Interrupted
                } else {
                    io::ErrorKind::WouldBlock
                }
            }
        }
    }

    fn decide(&mut self, write: bool) -> Decision {
        let counter = if write {
            &mut self.pushes
        } else {
            &mut self.pulls
        };
        let n = *counter;
        *counter += 1;
        match self.schedule {
            Schedule::Never => Decision::Pass { limit: usize::MAX },
            Schedule::EveryOther | Schedule::ByteAtATime => {
                if n % 2 == 0 {
                    Decision::Fail(self.fault_kind(false))
                } else if self.schedule == Schedule::ByteAtATime {
                    Decision::Pass { limit: 1 }
                } else {
                    Decision::Pass { limit: usize::MAX }
                }
            }
            Schedule::Random(_) => {
                let r = self.next_random();
                if r & 1 == 1 {
                    Decision::Fail(self.fault_kind(r & 2 == 2))
                } else if r & 4 == 4 {
                    Decision::Pass {
                        limit: 1 + (r >> 8) as usize % 1500,
                    }
                } else {
                    Decision::Pass { limit: usize::MAX }
                }
            }
        }
    }

    fn record(&mut self, op: Op, len: usize, r: &io::Result<usize>, injected: bool) {
        let outcome = match r {
            Ok(n) => Outcome::Done(*n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Outcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Outcome::Interrupted,
            Err(e) => Outcome::Failed(e.kind()),
        };
        self.calls.push(Call {
            op,
            len,
            outcome,
            injected,
        });
    }
}

impl<T: Transport> Transport for Sched<T> {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        let (r, injected) = match self.decide(true) {
            Decision::Fail(kind) => (Err(kind.into()), true),
            Decision::Pass { limit } => (self.inner.push(&data[..data.len().min(limit)]), false),
        };
        self.record(Op::Push, data.len(), &r, injected);
        r
    }

    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let (r, injected) = match self.decide(true) {
            Decision::Fail(kind) => (Err(kind.into()), true),
            Decision::Pass { limit } if limit >= total => (self.inner.push_vectored(bufs), false),
            Decision::Pass { limit } => {
                let flat: Vec<u8> = bufs
                    .iter()
                    .flat_map(|b| b.iter().copied())
                    .take(limit)
                    .collect();
                (self.inner.push(&flat), false)
            }
        };
        self.record(Op::PushVectored, total, &r, injected);
        r
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let (r, injected) = match self.decide(false) {
            Decision::Fail(kind) => (Err(kind.into()), true),
            Decision::Pass { limit } => (self.inner.pull(&mut buf[..len.min(limit)]), false),
        };
        self.record(Op::Pull, len, &r, injected);
        r
    }

    fn pull_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
        let r = self.inner.pull_timeout(timeout);
        let outcome = match &r {
            Ok(b) => Outcome::Ready(*b),
            Err(e) => Outcome::Failed(e.kind()),
        };
        self.calls.push(Call {
            op: Op::PullTimeout(timeout),
            len: 0,
            outcome,
            injected: false,
        });
        r
    }
}

/// A monotonic clock that moves only when told to; wall-clock time is the system's.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    pub fn advance(&self, d: Duration) {
        *self.offset.lock().expect("clock") += d;
    }
}

impl TimeSource for ManualClock {
    fn now(&self) -> Instant {
        self.base + *self.offset.lock().expect("clock")
    }

    fn unix_time(&self) -> UnixTime {
        SystemTimeSource.unix_time()
    }
}

// ---- drivers over scheduled transports ----

/// A resumable result: call again.
pub fn is_stop(e: &Error) -> bool {
    matches!(e, Error::Again | Error::Interrupted)
}

/// How often sessions stopped, by result and direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stops {
    pub again_read: usize,
    pub again_write: usize,
    pub interrupted_read: usize,
    pub interrupted_write: usize,
}

impl Stops {
    pub fn total(&self) -> usize {
        self.again_read + self.again_write + self.interrupted_read + self.interrupted_write
    }

    pub fn add(&mut self, o: Stops) {
        self.again_read += o.again_read;
        self.again_write += o.again_write;
        self.interrupted_read += o.interrupted_read;
        self.interrupted_write += o.interrupted_write;
    }
}

/// Asserts the contract of a resumable stop: `Again` comes from a transport call that
/// returned `WouldBlock` and `Interrupted` from one that returned `Interrupted`, that
/// call is the last one the session made, and `direction()` names its direction.
pub fn check_stop<T: Transport>(s: &Session<Sched<T>>, e: &Error, stops: &mut Stops) {
    let last = s
        .transport()
        .last_call()
        .unwrap_or_else(|| panic!("{e:?} without any transport call"));
    let want = match e {
        Error::Again => Outcome::WouldBlock,
        Error::Interrupted => Outcome::Interrupted,
        other => panic!("not a resumable stop: {other:?}"),
    };
    assert_eq!(
        last.outcome, want,
        "{e:?}, but the last transport call was {last:?}"
    );
    let dir = s.direction();
    assert_eq!(
        dir,
        last.op.direction(),
        "direction() after {e:?}; last call {last:?}"
    );
    match (e, dir) {
        (Error::Again, Direction::Read) => stops.again_read += 1,
        (Error::Again, Direction::Write) => stops.again_write += 1,
        (_, Direction::Read) => stops.interrupted_read += 1,
        (_, Direction::Write) => stops.interrupted_write += 1,
    }
}

/// Bound on driver loops: far above what any schedule here needs.
pub const MAX_STEPS: usize = 2_000_000;

/// Alternates `handshake()` on both until both complete; checks every stop.
pub fn drive_handshake<A: Transport, B: Transport>(
    c: &mut Session<Sched<A>>,
    s: &mut Session<Sched<B>>,
) -> Result<Stops, Error> {
    let mut stops = Stops::default();
    let (mut cd, mut sd) = (false, false);
    for _ in 0..MAX_STEPS {
        if !cd {
            match c.handshake() {
                Ok(()) => cd = true,
                Err(e) if is_stop(&e) => check_stop(c, &e, &mut stops),
                Err(e) => return Err(e),
            }
        }
        if !sd {
            match s.handshake() {
                Ok(()) => sd = true,
                Err(e) if is_stop(&e) => check_stop(s, &e, &mut stops),
                Err(e) => return Err(e),
            }
        }
        if cd && sd {
            return Ok(stops);
        }
    }
    panic!("handshake did not finish within {MAX_STEPS} steps");
}

/// One direction of application data for [`step`]: what to send and what came in.
#[derive(Debug, Default)]
pub struct Flow {
    pub out: Vec<u8>,
    pub sent: usize,
    pub received: Vec<u8>,
    /// Resume an interrupted send with `send(&[])` instead of the same arguments.
    pub retry_empty: bool,
    /// Queue everything received for sending back.
    pub echo: bool,
    /// recv buffer size.
    pub recv_buf: usize,
    /// Length of the data offered to the send that stopped (the record is committed).
    in_flight: Option<usize>,
    pub stops: Stops,
}

impl Flow {
    pub fn new(out: Vec<u8>, retry_empty: bool, echo: bool) -> Self {
        Flow {
            out,
            retry_empty,
            echo,
            recv_buf: 4096,
            ..Default::default()
        }
    }

    pub fn all_sent(&self) -> bool {
        self.sent == self.out.len() && self.in_flight.is_none()
    }
}

/// One send attempt and recv until it stops. Asserts that a completed send returns the
/// length of the record sealed by its first attempt, however it was resumed.
pub fn step<T: Transport>(s: &mut Session<Sched<T>>, f: &mut Flow) {
    if f.sent < f.out.len() {
        let chunk_len = f.out.len() - f.sent;
        let arg: &[u8] = if f.in_flight.is_some() && f.retry_empty {
            &[]
        } else {
            &f.out[f.sent..]
        };
        match s.send(arg) {
            Ok(n) => {
                let offered = f.in_flight.take().unwrap_or(chunk_len);
                assert_eq!(
                    n,
                    offered.min(nbtls::record::MAX_PLAINTEXT),
                    "send returned {n}"
                );
                f.sent += n;
            }
            Err(e) if is_stop(&e) => {
                check_stop(s, &e, &mut f.stops);
                f.in_flight.get_or_insert(chunk_len);
            }
            Err(e) => panic!("send failed: {e:?}"),
        }
    }
    let mut buf = vec![0u8; f.recv_buf];
    loop {
        match s.recv(&mut buf) {
            Ok(0) => panic!("unexpected end of data"),
            Ok(n) => {
                f.received.extend_from_slice(&buf[..n]);
                if f.echo {
                    f.out.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if is_stop(&e) => {
                check_stop(s, &e, &mut f.stops);
                break;
            }
            Err(e) => panic!("recv failed: {e:?}"),
        }
    }
}

/// Steps both sessions until `done`.
pub fn pump<A: Transport, B: Transport>(
    c: &mut Session<Sched<A>>,
    cf: &mut Flow,
    s: &mut Session<Sched<B>>,
    sf: &mut Flow,
    done: impl Fn(&Flow, &Flow) -> bool,
) {
    for _ in 0..MAX_STEPS {
        if done(cf, sf) {
            return;
        }
        step(c, cf);
        step(s, sf);
    }
    panic!("transfer did not finish within {MAX_STEPS} steps");
}

/// Calls `op` until it stops stopping; checks every stop.
pub fn retry<T: Transport, R>(
    s: &mut Session<Sched<T>>,
    stops: &mut Stops,
    mut op: impl FnMut(&mut Session<Sched<T>>) -> Result<R, Error>,
) -> Result<R, Error> {
    for _ in 0..MAX_STEPS {
        match op(s) {
            Err(e) if is_stop(&e) => check_stop(s, &e, stops),
            other => return other,
        }
    }
    panic!("operation did not finish within {MAX_STEPS} steps");
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// Data volume for a schedule: byte-at-a-time costs a session call per byte (and the
/// debug-built library zero-fills its read buffer on every pull), so it moves less.
pub fn volume(schedule: Schedule, n: usize) -> usize {
    match schedule {
        Schedule::ByteAtATime => n.min(5000),
        _ => n,
    }
}

/// Alternates `bye(how)` on both sessions until both complete; checks every stop and
/// returns whether the client was seen waiting to read (for the peer's close_notify).
pub fn drive_bye<A: Transport, B: Transport>(
    c: &mut Session<Sched<A>>,
    s: &mut Session<Sched<B>>,
    how: nbtls::Shutdown,
    stops: &mut Stops,
) -> bool {
    let (mut cd, mut sd, mut client_waited) = (false, false, false);
    for _ in 0..MAX_STEPS {
        if !cd {
            match c.bye(how) {
                Ok(()) => cd = true,
                Err(e) if is_stop(&e) => {
                    check_stop(c, &e, stops);
                    if c.direction() == Direction::Read {
                        client_waited = true;
                        // A wait for the peer runs under a deadline the caller can see.
                        assert!(c.timeout().is_some(), "bye waits without a deadline");
                    }
                }
                Err(e) => panic!("client bye: {e:?}"),
            }
        }
        if !sd {
            match s.bye(how) {
                Ok(()) => sd = true,
                Err(e) if is_stop(&e) => check_stop(s, &e, stops),
                Err(e) => panic!("server bye: {e:?}"),
            }
        }
        if cd && sd {
            return client_waited;
        }
    }
    panic!("bye did not finish within {MAX_STEPS} steps");
}
