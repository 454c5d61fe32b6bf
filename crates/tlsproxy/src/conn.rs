//! One proxied connection: a plain TCP socket, a TLS session over another
//! TCP socket, and a bounded buffer for each direction between them.
//!
//! The loop is edge-triggered, so each socket keeps "ready" flags: an
//! event sets them, and only an operation that hits `WouldBlock` (or a
//! session call that returns `Again`, on the side `direction()` names)
//! clears one. `pump` runs every step whose inputs are ready until none
//! makes progress, so nothing waits on an edge that already passed;
//! buffered plaintext (`pending()`) counts as readable. Afterwards the
//! poll interest of each socket is set to what it now waits for.

use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use nbtls::{Direction, Error as TlsError, Flags, Session, Shutdown};
use tracing::{debug, trace};

use crate::buffer::Ring;
use crate::setup::{Mode, Settings, Tls};
use crate::stream::MioStream;

/// Token side of the plain socket; the TLS socket is `PLAIN + 1`.
pub const PLAIN: usize = 0;
pub const TLS: usize = 1;

pub fn token(slot: usize, side: usize) -> Token {
    Token(slot * 2 + side)
}

/// Rounds of `pump` before yielding to other connections.
const MAX_ROUNDS: usize = 16;

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Both directions finished with EOF / close_notify.
    Closed,
    /// The TLS peer's transport ended without close_notify (what was
    /// received was still delivered; the plain side got EOF).
    Truncated,
    /// No traffic for the idle timeout.
    Idle,
    /// Closed at shutdown after the drain period.
    Drained,
    /// Server mode: the client closed TCP before finishing the handshake
    /// (port probes, health checks).
    Abandoned,
    /// An error: the plain side was reset, the TLS side closed without
    /// close_notify.
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Closed => f.write_str("closed"),
            Outcome::Truncated => f.write_str("TLS peer closed without close_notify"),
            Outcome::Idle => f.write_str("idle timeout"),
            Outcome::Drained => f.write_str("closed at shutdown"),
            Outcome::Abandoned => f.write_str("client closed during the TLS handshake"),
            Outcome::Failed(why) => f.write_str(why),
        }
    }
}

/// What `pump` leaves behind.
pub enum Step {
    /// Waiting for events; `more` asks to be pumped again soon (it yielded).
    Open {
        more: bool,
    },
    Done(Outcome),
}

/// Readiness believed from edges, and the interest registered.
#[derive(Debug, Default)]
struct Sock {
    readable: bool,
    writable: bool,
    registered: Option<Interest>,
}

impl Sock {
    fn ready(&self, d: Direction) -> bool {
        match d {
            Direction::Read => self.readable,
            Direction::Write => self.writable,
        }
    }

    fn blocked(&mut self, d: Direction) {
        match d {
            Direction::Read => self.readable = false,
            Direction::Write => self.writable = false,
        }
    }

    fn on_event(&mut self, ev: &Event) {
        // Errors and hang-ups surface through the next read or write.
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable = true;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.writable = true;
        }
    }
}

type Fail = Outcome;

fn fail(msg: String) -> Fail {
    Outcome::Failed(msg)
}

pub struct Conn {
    pub id: u64,
    pub slot: usize,
    pub gen: u32,
    /// Earliest timer entry armed in the loop's heap for this connection.
    pub timer_at: Option<Instant>,
    mode: Mode,
    peer: SocketAddr,
    upstream: SocketAddr,
    started: Instant,
    last_active: Instant,
    /// Deadline of an upstream TCP connect in progress.
    connect_deadline: Option<Instant>,

    plain: Option<TcpStream>,
    plain_connecting: bool,
    plain_sock: Sock,
    /// The plain peer sent EOF.
    plain_eof: bool,
    /// We shut down our write side toward the plain peer.
    plain_shut: bool,

    /// Client mode: the upstream TCP connect, before the session exists.
    tls_tcp: Option<TcpStream>,
    session: Option<Session<MioStream>>,
    tls_sock: Sock,
    hs_done: bool,
    /// Direction the handshake waits for after `Again`.
    hs_wait: Option<Direction>,
    /// A send returned `Again`: its record is committed; resume with `send(&[])`.
    send_committed: bool,
    /// Records a recv may have queued (a TLS 1.2 no_renegotiation
    /// warning): flush them.
    needs_flush: bool,
    /// A flush returned `Again`.
    flush_wait: bool,
    /// Direction `bye` waits for after `Again`.
    bye_wait: Option<Direction>,
    /// Our close_notify is out.
    tls_closed: bool,
    /// The peer's close_notify (or EOF without it) arrived.
    tls_eof: bool,
    truncated: bool,

    /// Plain -> TLS.
    p2t: Ring,
    /// TLS -> plain.
    t2p: Ring,
}

fn connected(tcp: &TcpStream) -> io::Result<bool> {
    if let Some(e) = tcp.take_error()? {
        return Err(e);
    }
    match tcp.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

impl Conn {
    /// A connection for a freshly accepted socket; registers it and, in
    /// client mode, starts the upstream connect.
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        id: u64,
        slot: usize,
        gen: u32,
        stream: TcpStream,
        peer: SocketAddr,
        settings: &Settings,
        reg: &Registry,
        now: Instant,
    ) -> Result<Conn, String> {
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            id,
            slot,
            gen,
            timer_at: None,
            mode: settings.mode,
            peer,
            upstream: settings.upstream,
            started: now,
            last_active: now,
            connect_deadline: None,
            plain: None,
            plain_connecting: false,
            plain_sock: Sock::default(),
            plain_eof: false,
            plain_shut: false,
            tls_tcp: None,
            session: None,
            tls_sock: Sock::default(),
            hs_done: false,
            hs_wait: None,
            send_committed: false,
            needs_flush: false,
            flush_wait: false,
            bye_wait: None,
            tls_closed: false,
            tls_eof: false,
            truncated: false,
            p2t: Ring::new(settings.buffer_size),
            t2p: Ring::new(settings.buffer_size),
        };
        // An accepted socket may already hold data: start out "ready".
        let fresh = Sock {
            readable: true,
            writable: true,
            registered: Some(Interest::READABLE),
        };
        match &settings.tls {
            Tls::Server { config } => {
                let mut stream = stream;
                reg.register(&mut stream, token(slot, TLS), Interest::READABLE)
                    .map_err(|e| format!("epoll register: {e}"))?;
                let s = Session::server(config.clone(), MioStream(stream), Flags::NONBLOCK)
                    .map_err(|e| format!("TLS session: {e}"))?;
                c.session = Some(s);
                c.tls_sock = fresh;
            }
            Tls::Client { .. } => {
                let mut stream = stream;
                reg.register(&mut stream, token(slot, PLAIN), Interest::READABLE)
                    .map_err(|e| format!("epoll register: {e}"))?;
                c.plain = Some(stream);
                c.plain_sock = fresh;
                let mut up = TcpStream::connect(c.upstream)
                    .map_err(|e| format!("upstream connect to {}: {e}", c.upstream))?;
                reg.register(&mut up, token(slot, TLS), Interest::WRITABLE)
                    .map_err(|e| format!("epoll register: {e}"))?;
                c.tls_sock.registered = Some(Interest::WRITABLE);
                c.tls_tcp = Some(up);
                c.connect_deadline = Some(now + settings.handshake_timeout);
            }
        }
        Ok(c)
    }

    fn plain_name(&self) -> &'static str {
        match self.mode {
            Mode::Client => "client",
            Mode::Server => "upstream",
        }
    }

    fn tls_name(&self) -> &'static str {
        match self.mode {
            Mode::Client => "upstream",
            Mode::Server => "client",
        }
    }

    pub fn on_event(&mut self, side: usize, ev: &Event) {
        if side == PLAIN {
            self.plain_sock.on_event(ev);
        } else {
            self.tls_sock.on_event(ev);
        }
    }

    /// Runs every ready step until none makes progress (or `MAX_ROUNDS`),
    /// then re-arms the poll interest.
    pub fn pump(&mut self, reg: &Registry, settings: &Settings, now: Instant) -> Step {
        let mut rounds = 0;
        let more = loop {
            match self.round(reg, settings, now) {
                Err(outcome) => return Step::Done(outcome),
                Ok(false) => break false,
                Ok(true) => {}
            }
            if let Some(done) = self.finished() {
                return Step::Done(done);
            }
            rounds += 1;
            if rounds == MAX_ROUNDS {
                break true;
            }
        };
        if let Some(done) = self.finished() {
            return Step::Done(done);
        }
        if let Err(e) = self.update_interest(reg) {
            return Step::Done(fail(format!("epoll: {e}")));
        }
        self.p2t.release_if_empty();
        self.t2p.release_if_empty();
        Step::Open { more }
    }

    /// One pass over every step; `true` if any made progress.
    fn round(&mut self, reg: &Registry, settings: &Settings, now: Instant) -> Result<bool, Fail> {
        let mut progress = false;
        progress |= self.step_tls_connect(settings)?;
        progress |= self.step_handshake(reg, settings, now)?;
        progress |= self.step_plain_connect()?;
        progress |= self.step_plain_read(now)?;
        progress |= self.step_tls_send(now)?;
        progress |= self.step_tls_bye()?;
        progress |= self.step_tls_recv(now)?;
        progress |= self.step_plain_write(now)?;
        progress |= self.step_plain_shutdown()?;
        Ok(progress)
    }

    fn finished(&self) -> Option<Outcome> {
        if self.truncated && self.t2p.is_empty() {
            return Some(Outcome::Truncated);
        }
        let up_done = self.plain_eof && self.tls_closed;
        let down_done = self.tls_eof && self.plain_shut;
        (up_done && down_done).then_some(Outcome::Closed)
    }

    // ---- connecting ----

    /// Client mode: the upstream TCP connect completed? Then start TLS.
    fn step_tls_connect(&mut self, settings: &Settings) -> Result<bool, Fail> {
        let Some(tcp) = &self.tls_tcp else {
            return Ok(false);
        };
        if !(self.tls_sock.writable || self.tls_sock.readable) {
            return Ok(false);
        }
        match connected(tcp) {
            Ok(true) => {}
            Ok(false) => {
                self.tls_sock.readable = false;
                self.tls_sock.writable = false;
                return Ok(false);
            }
            Err(e) => {
                return Err(fail(format!(
                    "upstream connect to {} failed: {e}",
                    self.upstream
                )))
            }
        }
        let Some(tcp) = self.tls_tcp.take() else {
            return Ok(false);
        };
        let _ = tcp.set_nodelay(true);
        self.connect_deadline = None;
        let Tls::Client {
            config,
            server_name,
        } = &settings.tls
        else {
            return Err(fail("internal: client connect in server mode".into()));
        };
        let s = Session::client(config.clone(), server_name, MioStream(tcp), Flags::NONBLOCK)
            .map_err(|e| fail(format!("TLS session: {e}")))?;
        trace!(conn = self.id, "upstream TCP connected");
        self.session = Some(s);
        self.tls_sock.readable = true;
        self.tls_sock.writable = true;
        Ok(true)
    }

    /// Server mode: the upstream connect completed?
    fn step_plain_connect(&mut self) -> Result<bool, Fail> {
        if !self.plain_connecting {
            return Ok(false);
        }
        let Some(tcp) = &self.plain else {
            return Ok(false);
        };
        if !(self.plain_sock.writable || self.plain_sock.readable) {
            return Ok(false);
        }
        match connected(tcp) {
            Ok(true) => {
                let _ = tcp.set_nodelay(true);
                self.plain_connecting = false;
                self.connect_deadline = None;
                self.plain_sock.readable = true;
                self.plain_sock.writable = true;
                trace!(conn = self.id, "upstream TCP connected");
                Ok(true)
            }
            Ok(false) => {
                self.plain_sock.readable = false;
                self.plain_sock.writable = false;
                Ok(false)
            }
            Err(e) => Err(fail(format!(
                "upstream connect to {} failed: {e}",
                self.upstream
            ))),
        }
    }

    fn start_plain_connect(
        &mut self,
        reg: &Registry,
        settings: &Settings,
        now: Instant,
    ) -> Result<(), Fail> {
        let mut up = TcpStream::connect(self.upstream)
            .map_err(|e| fail(format!("upstream connect to {}: {e}", self.upstream)))?;
        reg.register(&mut up, token(self.slot, PLAIN), Interest::WRITABLE)
            .map_err(|e| fail(format!("epoll register: {e}")))?;
        self.plain_sock = Sock {
            readable: false,
            writable: false,
            registered: Some(Interest::WRITABLE),
        };
        self.plain = Some(up);
        self.plain_connecting = true;
        self.connect_deadline = Some(now + settings.handshake_timeout);
        Ok(())
    }

    fn plain_open(&self) -> bool {
        self.plain.is_some() && !self.plain_connecting
    }

    // ---- TLS ----

    fn step_handshake(
        &mut self,
        reg: &Registry,
        settings: &Settings,
        now: Instant,
    ) -> Result<bool, Fail> {
        if self.hs_done {
            return Ok(false);
        }
        let tname = self.tls_name();
        let Some(s) = self.session.as_mut() else {
            return Ok(false);
        };
        if let Some(d) = self.hs_wait {
            if !self.tls_sock.ready(d) {
                return Ok(false);
            }
        }
        loop {
            match s.handshake() {
                Ok(()) => break,
                Err(TlsError::Again) => {
                    let d = s.direction();
                    self.tls_sock.blocked(d);
                    self.hs_wait = Some(d);
                    return Ok(false);
                }
                Err(TlsError::Interrupted) => continue,
                Err(TlsError::PrematureTermination) if self.mode == Mode::Server => {
                    return Err(Outcome::Abandoned)
                }
                Err(e) => return Err(fail(format!("TLS handshake with {tname} failed: {e}"))),
            }
        }
        self.hs_done = true;
        self.hs_wait = None;
        debug!(
            conn = self.id,
            version = %s.protocol_version().map_or("-".into(), |v| v.to_string()),
            suite = %s.cipher_suite().map_or("-".into(), |v| v.to_string()),
            resumed = s.info().resumed,
            "TLS handshake done"
        );
        if self.mode == Mode::Server {
            // Only an authenticated client costs an upstream connection.
            self.start_plain_connect(reg, settings, now)?;
        }
        Ok(true)
    }

    fn step_tls_send(&mut self, now: Instant) -> Result<bool, Fail> {
        if !self.hs_done || self.tls_closed || !self.tls_sock.writable {
            return Ok(false);
        }
        let tname = self.tls_name();
        let Some(s) = self.session.as_mut() else {
            return Ok(false);
        };
        let data = !self.p2t.is_empty() || self.send_committed;
        if !data && !self.flush_wait && !self.needs_flush {
            return Ok(false);
        }
        loop {
            let r = if self.send_committed {
                // The record is already sealed: only flush it.
                s.send(&[])
            } else if data {
                s.send(self.p2t.readable())
            } else {
                s.flush().map(|()| 0)
            };
            match r {
                Ok(n) => {
                    let progress = n > 0 || self.flush_wait;
                    self.p2t.consume(n);
                    self.send_committed = false;
                    self.flush_wait = false;
                    self.needs_flush = false;
                    if n > 0 {
                        self.last_active = now;
                    }
                    return Ok(progress);
                }
                Err(TlsError::Again) => {
                    if data {
                        self.send_committed = true;
                    } else {
                        self.flush_wait = true;
                    }
                    self.needs_flush = false;
                    self.tls_sock.blocked(s.direction());
                    return Ok(false);
                }
                Err(TlsError::Interrupted) => continue,
                Err(e) => return Err(fail(format!("TLS send to {tname}: {e}"))),
            }
        }
    }

    /// Plain EOF and everything sent: close_notify (half-close).
    ///
    /// Half-closes are relayed in both versions: after a close_notify the
    /// other direction keeps flowing until its own end. TLS 1.3 allows that
    /// (RFC 8446 §6.1). TLS 1.2 (RFC 5246 §7.2.1) has the receiver of a
    /// close_notify answer with its own and drop pending writes, and lets the
    /// sender close without reading on: a TLS 1.2 peer may thus lose what is
    /// sent after its close_notify (our send then fails and the plain side
    /// is reset, so the loss shows), or answer our close_notify with its
    /// own and drop its reply. The proxy does not close early itself: common
    /// TLS 1.2 stacks (OpenSSL, GnuTLS, nbtls) read on after close_notify, and
    /// request/answer protocols over the proxy rely on the half-close.
    fn step_tls_bye(&mut self) -> Result<bool, Fail> {
        if !self.hs_done
            || self.tls_closed
            || !self.plain_eof
            || !self.p2t.is_empty()
            || self.send_committed
            || self.flush_wait
        {
            return Ok(false);
        }
        if let Some(d) = self.bye_wait {
            if !self.tls_sock.ready(d) {
                return Ok(false);
            }
        }
        let tname = self.tls_name();
        let Some(s) = self.session.as_mut() else {
            return Ok(false);
        };
        loop {
            match s.bye(Shutdown::Write) {
                Ok(()) => break,
                Err(TlsError::Again) => {
                    let d = s.direction();
                    self.tls_sock.blocked(d);
                    self.bye_wait = Some(d);
                    return Ok(false);
                }
                Err(TlsError::Interrupted) => continue,
                // The peer already closed: our close_notify has no reader.
                Err(TlsError::Transport { .. }) if self.tls_eof => break,
                Err(e) => return Err(fail(format!("TLS close toward {tname}: {e}"))),
            }
        }
        self.bye_wait = None;
        self.tls_closed = true;
        // Nothing more will be written on this socket: tell TCP too.
        let _ = s.transport().0.shutdown(NetShutdown::Write);
        trace!(conn = self.id, "sent close_notify");
        Ok(true)
    }

    fn step_tls_recv(&mut self, now: Instant) -> Result<bool, Fail> {
        if !self.hs_done || self.tls_eof || self.t2p.is_full() {
            return Ok(false);
        }
        let tname = self.tls_name();
        let Some(s) = self.session.as_mut() else {
            return Ok(false);
        };
        // Decrypted or read-ahead bytes are invisible to epoll: read them first.
        if !self.tls_sock.readable && s.pending() == 0 {
            return Ok(false);
        }
        loop {
            match s.recv(self.t2p.writable()) {
                Ok(0) => {
                    self.tls_eof = true;
                    trace!(conn = self.id, "close_notify received");
                    return Ok(true);
                }
                Ok(n) => {
                    self.t2p.commit(n);
                    self.last_active = now;
                    self.needs_flush = true;
                    return Ok(true);
                }
                Err(TlsError::Again) => {
                    self.tls_sock.blocked(s.direction());
                    return Ok(false);
                }
                Err(TlsError::Interrupted) => continue,
                // TLS 1.2 renegotiation (HelloRequest or ClientHello) is
                // refused with a no_renegotiation warning and the session
                // goes on (nbtls ends it at a second attempt): send the
                // warning, keep relaying.
                Err(TlsError::Rehandshake) => {
                    debug!(conn = self.id, "refused a renegotiation from the {tname}");
                    self.needs_flush = true;
                    return Ok(true);
                }
                Err(TlsError::PrematureTermination) => {
                    self.tls_eof = true;
                    self.truncated = true;
                    return Ok(true);
                }
                Err(e) => return Err(fail(format!("TLS receive from {tname}: {e}"))),
            }
        }
    }

    // ---- plain ----

    fn step_plain_read(&mut self, now: Instant) -> Result<bool, Fail> {
        if !self.plain_open() || self.plain_eof || !self.plain_sock.readable || self.p2t.is_full() {
            return Ok(false);
        }
        let name = self.plain_name();
        let Some(p) = self.plain.as_mut() else {
            return Ok(false);
        };
        loop {
            match p.read(self.p2t.writable()) {
                Ok(0) => {
                    self.plain_eof = true;
                    trace!(conn = self.id, "plain EOF from {name}");
                    return Ok(true);
                }
                Ok(n) => {
                    self.p2t.commit(n);
                    self.last_active = now;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.plain_sock.readable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("reading from {name}: {e}"))),
            }
        }
    }

    fn step_plain_write(&mut self, now: Instant) -> Result<bool, Fail> {
        if !self.plain_open() || self.t2p.is_empty() || !self.plain_sock.writable {
            return Ok(false);
        }
        let name = self.plain_name();
        let Some(p) = self.plain.as_mut() else {
            return Ok(false);
        };
        loop {
            match p.write(self.t2p.readable()) {
                Ok(0) => return Err(fail(format!("writing to {name}: wrote nothing"))),
                Ok(n) => {
                    self.t2p.consume(n);
                    self.last_active = now;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.plain_sock.writable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("writing to {name}: {e}"))),
            }
        }
    }

    /// close_notify received and everything delivered: half-close.
    fn step_plain_shutdown(&mut self) -> Result<bool, Fail> {
        if !self.plain_open()
            || !self.tls_eof
            || self.truncated
            || self.plain_shut
            || !self.t2p.is_empty()
        {
            return Ok(false);
        }
        let name = self.plain_name();
        if let Some(p) = &self.plain {
            p.shutdown(NetShutdown::Write)
                .map_err(|e| fail(format!("shutting down toward {name}: {e}")))?;
        }
        self.plain_shut = true;
        trace!(conn = self.id, "plain write side shut down");
        Ok(true)
    }

    // ---- interest ----

    fn tls_interest(&self) -> Option<Interest> {
        if self.tls_tcp.is_some() {
            return Some(Interest::WRITABLE);
        }
        self.session.as_ref()?;
        if !self.hs_done {
            return Some(match self.hs_wait {
                Some(Direction::Write) => Interest::WRITABLE,
                _ => Interest::READABLE,
            });
        }
        let read = !self.tls_eof && !self.t2p.is_full();
        let write = !self.tls_sock.writable
            && (self.send_committed
                || self.flush_wait
                || self.needs_flush
                || self.bye_wait.is_some()
                || (!self.tls_closed && !self.p2t.is_empty()));
        combine(read, write)
    }

    fn plain_interest(&self) -> Option<Interest> {
        self.plain.as_ref()?;
        if self.plain_connecting {
            return Some(Interest::WRITABLE);
        }
        let read = !self.plain_eof && !self.p2t.is_full();
        let write = !self.t2p.is_empty() && !self.plain_sock.writable;
        combine(read, write)
    }

    fn update_interest(&mut self, reg: &Registry) -> io::Result<()> {
        if let Some(want) = self.plain_interest() {
            if self.plain_sock.registered != Some(want) {
                if let Some(p) = self.plain.as_mut() {
                    reg.reregister(p, token(self.slot, PLAIN), want)?;
                    self.plain_sock.registered = Some(want);
                }
            }
        }
        if let Some(want) = self.tls_interest() {
            if self.tls_sock.registered != Some(want) {
                let tok = token(self.slot, TLS);
                if let Some(t) = self.tls_tcp.as_mut() {
                    reg.reregister(t, tok, want)?;
                } else if let Some(s) = self.session.as_mut() {
                    reg.reregister(&mut s.transport_mut().0, tok, want)?;
                }
                self.tls_sock.registered = Some(want);
            }
        }
        Ok(())
    }

    // ---- timers ----

    /// The earliest time this connection must be looked at without an event.
    pub fn next_deadline(&self, settings: &Settings, now: Instant) -> Option<Instant> {
        let idle = settings.idle_timeout.map(|t| self.last_active + t);
        let session = self
            .session
            .as_ref()
            .and_then(|s| s.timeout())
            .map(|t| now + t);
        [idle, self.connect_deadline, session]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs expired timers: `Some` when the connection must end.
    pub fn on_timer(&mut self, settings: &Settings, now: Instant) -> Option<Outcome> {
        if let Some(d) = self.connect_deadline {
            if now >= d {
                return Some(fail(format!(
                    "upstream connect to {} timed out after {:?}",
                    self.upstream, settings.handshake_timeout
                )));
            }
        }
        let tname = self.tls_name();
        if let Some(s) = self.session.as_mut() {
            if s.timeout().is_some_and(|t| t.is_zero()) {
                if let Err(e) = s.handle_timeout() {
                    let what = if self.hs_done { "TLS" } else { "TLS handshake" };
                    return Some(fail(format!("{what} with {tname}: {e}")));
                }
            }
        }
        if let Some(t) = settings.idle_timeout {
            if now >= self.last_active + t {
                return Some(Outcome::Idle);
            }
        }
        None
    }

    /// Best-effort clean close (idle timeout, shutdown): close_notify and
    /// FIN where nothing is left unsent, without waiting.
    pub fn close_gracefully(&mut self) {
        if let Some(s) = self.session.as_mut() {
            if self.hs_done
                && !self.tls_closed
                && self.p2t.is_empty()
                && !self.send_committed
                && s.bye(Shutdown::Write).is_ok()
            {
                self.tls_closed = true;
            }
        }
        if let Some(p) = &self.plain {
            if self.plain_open() && self.t2p.is_empty() {
                let _ = p.shutdown(NetShutdown::Write);
            }
        }
    }

    /// Deregisters and closes both sockets. On failure the plain side is
    /// reset (RST), so its peer cannot mistake the end for a clean EOF.
    pub fn close(mut self, reg: &Registry, outcome: &Outcome) -> Record {
        if let Some(mut p) = self.plain.take() {
            if matches!(outcome, Outcome::Failed(_)) && !self.plain_connecting {
                let _ = socket2::SockRef::from(&p).set_linger(Some(Duration::ZERO));
            }
            let _ = reg.deregister(&mut p);
        }
        if let Some(mut t) = self.tls_tcp.take() {
            let _ = reg.deregister(&mut t);
        }
        let mut rec = Record {
            id: self.id,
            peer: self.peer,
            mode: self.mode,
            version: None,
            suite: None,
            resumed: false,
            sni: None,
            alpn: None,
            up: 0,
            down: 0,
            duration: self.started.elapsed(),
        };
        // Bytes from the accepted peer toward the upstream, and back.
        let (from_client, to_client) = match self.mode {
            Mode::Client => (&self.p2t, &self.t2p),
            Mode::Server => (&self.t2p, &self.p2t),
        };
        rec.up = from_client.total_in;
        rec.down = to_client.total_out;
        if let Some(mut s) = self.session.take() {
            rec.version = s.protocol_version().map(|v| v.to_string());
            rec.suite = s.cipher_suite().map(|v| v.to_string());
            rec.resumed = s.info().resumed;
            rec.sni = s.server_name().map(str::to_string);
            rec.alpn = s
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let _ = reg.deregister(&mut s.transport_mut().0);
        }
        rec
    }
}

fn combine(read: bool, write: bool) -> Option<Interest> {
    match (read, write) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

/// What the one-line connection log shows.
pub struct Record {
    pub id: u64,
    pub peer: SocketAddr,
    pub mode: Mode,
    pub version: Option<String>,
    pub suite: Option<String>,
    /// The handshake resumed an earlier session (ticket or session id).
    pub resumed: bool,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// Bytes read from the accepted peer (toward the upstream).
    pub up: u64,
    /// Bytes delivered to the accepted peer (from the upstream).
    pub down: u64,
    pub duration: Duration,
}
