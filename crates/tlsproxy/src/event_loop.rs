//! One single-threaded mio (epoll, edge-triggered) loop: a listener, the
//! connections it accepted, their timers, and SIGINT/SIGTERM.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use tracing::{debug, info, warn};

use crate::conn::{Conn, Outcome, Record, Step, PLAIN, TLS};
use crate::setup::{Mode, Settings};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// Pause after an accept error such as EMFILE (edge-triggered: the backlog
/// gives no new edge, so retry on a timer).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

pub struct EventLoop {
    poll: Poll,
    settings: Arc<Settings>,
    listener: Option<TcpListener>,
    signals: Signals,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots freed during this batch of events: reused only after it, so a
    /// stale event cannot reach a new connection.
    freed: Vec<usize>,
    live: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    /// Connections with events in this batch.
    dirty: Vec<usize>,
    /// Connections that yielded with work left.
    again: Vec<usize>,
    accept_ready: bool,
    accept_retry_at: Option<Instant>,
    full_logged: bool,
    drain_deadline: Option<Instant>,
}

impl EventLoop {
    pub fn new(settings: Arc<Settings>, listener: std::net::TcpListener) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(EventLoop {
            poll,
            settings,
            listener: Some(listener),
            signals,
            slots: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            again: Vec::new(),
            accept_ready: true,
            accept_retry_at: None,
            full_logged: false,
            drain_deadline: None,
        })
    }

    /// Runs until a signal has drained every connection.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if self.again.is_empty() {
                self.next_wakeup().map(|t| t.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut signalled = false;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_ready = true,
                    SIGNALS => signalled = true,
                    Token(t) => {
                        let (slot, side) = (t / 2, t % 2);
                        if let Some(c) = self.slots.get_mut(slot).and_then(|s| s.conn.as_mut()) {
                            c.on_event(if side == PLAIN { PLAIN } else { TLS }, ev);
                            self.dirty.push(slot);
                        }
                    }
                }
            }
            let now = Instant::now();
            if signalled {
                self.on_signals(now);
            }
            if self.accept_ready {
                self.accept(now);
            }
            let mut work = std::mem::take(&mut self.dirty);
            work.append(&mut self.again);
            work.sort_unstable();
            work.dedup();
            for slot in work.drain(..) {
                self.pump(slot, now);
            }
            self.dirty = work;
            let now = Instant::now();
            self.run_timers(now);
            // Slots freed at the limit: the backlog gives no new edge, so
            // accept_ready stayed set.
            if self.accept_ready && self.live < self.settings.max_conns_per_loop {
                self.accept(now);
            }
            self.free.append(&mut self.freed);
            if self.drain_deadline.is_some() && self.live == 0 {
                info!("all connections closed; exiting");
                return Ok(());
            }
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
        [timer, self.accept_retry_at, self.drain_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_signals(&mut self, now: Instant) {
        let mut got = None;
        for sig in self.signals.pending() {
            got = Some(if sig == SIGINT { "SIGINT" } else { "SIGTERM" });
        }
        let Some(name) = got else { return };
        if self.drain_deadline.is_some() {
            info!("{name} again: closing {} connections now", self.live);
            self.close_all(Outcome::Drained);
            return;
        }
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.accept_ready = false;
        self.accept_retry_at = None;
        let grace = self.settings.drain_timeout;
        self.drain_deadline = Some(now + grace);
        info!(
            "{name}: stopped accepting; draining {} connections (up to {:?}; a second signal closes them now)",
            self.live, grace
        );
    }

    fn close_all(&mut self, outcome: Outcome) {
        for slot in 0..self.slots.len() {
            if let Some(mut c) = self.slots[slot].conn.take() {
                c.close_gracefully();
                self.finish(slot, c, outcome.clone());
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_retry_at.is_some_and(|t| now < t) {
            return;
        }
        self.accept_retry_at = None;
        while self.live < self.settings.max_conns_per_loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.full_logged = false;
                    self.add(stream, peer, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE and friends: the queue stays; retry shortly.
                    warn!("accept: {e}; retrying in {ACCEPT_RETRY:?}");
                    self.accept_retry_at = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
        // At the limit: leave the rest in the backlog until a slot frees
        // (accept_ready stays set).
        if !self.full_logged {
            warn!(
                "at --max-conns ({} on this loop): new connections wait in the backlog",
                self.settings.max_conns_per_loop
            );
            self.full_logged = true;
        }
    }

    fn add(&mut self, stream: mio::net::TcpStream, peer: std::net::SocketAddr, now: Instant) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                self.slots.len() - 1
            }
        };
        let gen = self.slots[slot].gen.wrapping_add(1);
        self.slots[slot].gen = gen;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        debug!(conn = id, %peer, "accepted");
        match Conn::accept(
            id,
            slot,
            gen,
            stream,
            peer,
            &self.settings,
            self.poll.registry(),
            now,
        ) {
            Ok(c) => {
                self.slots[slot].conn = Some(c);
                self.live += 1;
                self.pump(slot, now);
            }
            Err(why) => {
                warn!(conn = id, %peer, "connection refused: {why}");
                self.freed.push(slot);
            }
        }
    }

    fn pump(&mut self, slot: usize, now: Instant) {
        let Some(mut c) = self.slots.get_mut(slot).and_then(|s| s.conn.take()) else {
            return;
        };
        match c.pump(self.poll.registry(), &self.settings, now) {
            Step::Done(outcome) => self.finish(slot, c, outcome),
            Step::Open { more } => {
                if more {
                    self.again.push(slot);
                }
                self.arm(&mut c, now);
                self.slots[slot].conn = Some(c);
            }
        }
    }

    /// Pushes a heap entry when the connection's next deadline is earlier
    /// than the one already armed (later ones are found when it fires).
    fn arm(&mut self, c: &mut Conn, now: Instant) {
        if let Some(d) = c.next_deadline(&self.settings, now) {
            if c.timer_at.is_none_or(|t| d < t) {
                c.timer_at = Some(d);
                self.timers.push(Reverse((d, c.slot, c.gen)));
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, slot, gen))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.slots.get_mut(slot) else {
                continue;
            };
            if s.gen != gen {
                continue;
            }
            let Some(mut c) = s.conn.take() else {
                continue;
            };
            if c.timer_at != Some(t) {
                // Superseded by an earlier entry.
                s.conn = Some(c);
                continue;
            }
            c.timer_at = None;
            match c.on_timer(&self.settings, now) {
                Some(outcome) => {
                    if outcome == Outcome::Idle {
                        c.close_gracefully();
                    }
                    self.finish(slot, c, outcome);
                }
                None => {
                    self.slots[slot].conn = Some(c);
                    self.pump(slot, now);
                }
            }
        }
        if let Some(d) = self.drain_deadline {
            if now >= d && self.live > 0 {
                info!("drain timeout: closing {} connections", self.live);
                self.close_all(Outcome::Drained);
            }
        }
        if self.accept_retry_at.is_some_and(|t| now >= t) {
            self.accept(now);
        }
    }

    fn finish(&mut self, slot: usize, c: Conn, outcome: Outcome) {
        let rec = c.close(self.poll.registry(), &outcome);
        log_record(&rec, &outcome);
        self.live -= 1;
        self.freed.push(slot);
    }
}

fn log_record(r: &Record, outcome: &Outcome) {
    let dash = || "-".to_string();
    let version = r.version.clone().unwrap_or_else(dash);
    let suite = r.suite.clone().unwrap_or_else(dash);
    let sni = r.sni.clone().unwrap_or_else(dash);
    let alpn = r.alpn.clone().unwrap_or_else(dash);
    let ms = r.duration.as_millis() as u64;
    let mode = match r.mode {
        Mode::Client => "client",
        Mode::Server => "server",
    };
    match outcome {
        Outcome::Failed(_) | Outcome::Truncated => warn!(
            target: "tlsproxy::conn",
            conn = r.id, peer = %r.peer, mode, version = %version, suite = %suite,
            resumed = r.resumed, sni = %sni, alpn = %alpn, bytes_up = r.up, bytes_down = r.down, ms,
            outcome = %outcome, "connection"
        ),
        _ => info!(
            target: "tlsproxy::conn",
            conn = r.id, peer = %r.peer, mode, version = %version, suite = %suite,
            resumed = r.resumed, sni = %sni, alpn = %alpn, bytes_up = r.up, bytes_down = r.down, ms,
            outcome = %outcome, "connection"
        ),
    }
}
