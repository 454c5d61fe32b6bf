//! The acceptor over a `std::net::UdpSocket`.
//!
//! One thread (or event loop) owns the [`DtlsListener`] and is the only
//! reader of the socket: `accept()` / `process()` read datagrams and route
//! them to per-session queues. A session pulls from its queue and sends on
//! the shared socket, so it may live on any thread. Blocking sessions wait
//! in `pull_timeout` for the listener to route them a datagram; they make
//! progress only while the listener keeps running (an accept loop on its
//! own thread, say). In an epoll loop, register [`DtlsListener::socket`],
//! call [`DtlsListener::process`] when it is readable or its
//! [`DtlsListener::timeout`] passes, and drive the NONBLOCK sessions it
//! reports readable.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Acceptor, ListenerConfig, Route};
use crate::config::ServerConfig;
use crate::session::{Flags, Session};
use crate::transport::Transport;

/// Room for the largest DTLS record (RFC 6347 §4.1).
const DATAGRAM_BUF: usize = 16384 + 2048 + 13;
/// Datagrams read per `process()` call, so timers and sessions get a turn.
const BATCH: usize = 256;

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Vec<u8>>,
    /// Why the listener stopped routing here.
    closed: Option<&'static str>,
    /// The session was dropped.
    dropped: bool,
}

#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    ready: Condvar,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, why: &'static str) {
        self.lock().closed.get_or_insert(why);
        self.ready.notify_all();
    }
}

/// A session's transport on the listener's socket: `push` is `send_to`
/// the peer; `pull` takes the next datagram the listener routed here, and
/// fails with `ConnectionAborted` once the listener dropped the session
/// (idle, replaced by a new handshake from the same address, or the
/// listener itself dropped). With none queued, a transport of a NONBLOCK
/// session reports `WouldBlock` at once; one of a blocking session waits,
/// like a blocking socket, up to its read timeout (none by default).
pub struct PeerTransport {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    inbox: Arc<Inbox>,
    blocking: bool,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl PeerTransport {
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Datagrams routed here and not yet pulled.
    pub fn queued(&self) -> usize {
        self.inbox.lock().queue.len()
    }

    /// Blocking sessions: how long a pull waits for a datagram before
    /// `WouldBlock` (`None`, the default: until one comes or the listener
    /// drops the session), like `UdpSocket::set_read_timeout`.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Waits until a datagram is queued, the session is closed, or
    /// `timeout` passes (`None`: no limit); whether one of the first two.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.inbox.lock();
        loop {
            if !st.queue.is_empty() || st.closed.is_some() {
                return true;
            }
            st = match deadline {
                None => self.inbox.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    match self.inbox.ready.wait_timeout(st, left) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    }
                }
            };
        }
    }
}

impl Transport for PeerTransport {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.socket.send_to(data, self.peer)
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.blocking {
            self.wait(self.read_timeout);
        }
        let mut st = self.inbox.lock();
        match st.queue.pop_front() {
            // Like recv(2): a datagram longer than `buf` is cut.
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => match st.closed {
                Some(why) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)),
                None => Err(io::ErrorKind::WouldBlock.into()),
            },
        }
    }

    fn pull_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
        Ok(self.wait(Some(timeout)))
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        let mut st = self.inbox.lock();
        st.dropped = true;
        st.queue.clear();
    }
}

/// A DTLS server on one UDP socket; see the [module docs](super).
pub struct DtlsListener {
    socket: Arc<UdpSocket>,
    acceptor: Acceptor<SocketAddr>,
    inboxes: HashMap<SocketAddr, Arc<Inbox>>,
    ready: VecDeque<(Session<PeerTransport>, SocketAddr)>,
    flags: Flags,
    buf: Vec<u8>,
    nonblocking: Option<bool>,
    readable: Vec<SocketAddr>,
}

impl DtlsListener {
    /// Binds `addr` with the default [`ListenerConfig`].
    pub fn bind(addr: impl ToSocketAddrs, config: Arc<ServerConfig>) -> io::Result<Self> {
        Self::from_socket(UdpSocket::bind(addr)?, config, ListenerConfig::default())
    }

    /// A listener on a bound socket.
    pub fn from_socket(
        socket: UdpSocket,
        config: Arc<ServerConfig>,
        limits: ListenerConfig,
    ) -> io::Result<Self> {
        Ok(DtlsListener {
            socket: Arc::new(socket),
            acceptor: Acceptor::new(config, limits),
            inboxes: HashMap::new(),
            ready: VecDeque::new(),
            flags: Flags::DATAGRAM,
            buf: vec![0; DATAGRAM_BUF],
            nonblocking: None,
            readable: Vec::new(),
        })
    }

    /// Flags of the sessions handed out from now on (default blocking;
    /// `Flags::NONBLOCK` for event loops). `DATAGRAM` is implied.
    pub fn set_session_flags(&mut self, flags: Flags) {
        self.flags = flags | Flags::DATAGRAM;
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The shared socket (to register with a poller).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub fn acceptor(&self) -> &Acceptor<SocketAddr> {
        &self.acceptor
    }

    /// Waits for the next established session, routing datagrams to the
    /// sessions handed out meanwhile.
    pub fn accept(&mut self) -> io::Result<(Session<PeerTransport>, SocketAddr)> {
        loop {
            if let Some(s) = self.accept_timeout(Duration::from_secs(3600))? {
                return Ok(s);
            }
        }
    }

    /// [`accept`](Self::accept) that gives up after `timeout` with `None`.
    pub fn accept_timeout(
        &mut self,
        timeout: Duration,
    ) -> io::Result<Option<(Session<PeerTransport>, SocketAddr)>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.ready.pop_front() {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // Wake for the acceptor's timers (measured on its clock).
            let mut wait = deadline - now;
            if let Some(t) = self.timeout() {
                wait = wait.min(t);
            }
            self.set_nonblocking(false)?;
            self.socket
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let d = self.buf[..n].to_vec();
                    self.route(from, &d);
                    // Drain what else is queued without waiting.
                    self.read_available()?;
                }
                Err(e) if is_again(&e) || e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
            self.run_timers();
            self.flush();
        }
    }

    /// One non-blocking turn for event loops: reads the datagrams waiting
    /// on the socket, routes them, runs the timers and sends the replies.
    /// Returns the peers whose sessions received datagrams (drive those);
    /// new sessions wait in [`try_accept`](Self::try_accept).
    pub fn process(&mut self) -> io::Result<Vec<SocketAddr>> {
        self.set_nonblocking(true)?;
        self.read_available()?;
        self.run_timers();
        self.flush();
        Ok(std::mem::take(&mut self.readable))
    }

    /// An established session, if one is waiting (after `process`).
    pub fn try_accept(&mut self) -> Option<(Session<PeerTransport>, SocketAddr)> {
        self.ready.pop_front()
    }

    /// Until the listener's next timer (retransmissions, handshake and idle
    /// deadlines): call `process` by then.
    pub fn timeout(&self) -> Option<Duration> {
        let now = self.acceptor.now();
        self.acceptor
            .timeout()
            .map(|t| t.saturating_duration_since(now))
    }

    fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        if self.nonblocking != Some(on) {
            self.socket.set_nonblocking(on)?;
            self.nonblocking = Some(on);
        }
        Ok(())
    }

    fn read_available(&mut self) -> io::Result<()> {
        let was = self.nonblocking;
        self.set_nonblocking(true)?;
        let mut r = Ok(());
        for _ in 0..BATCH {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let d = self.buf[..n].to_vec();
                    self.route(from, &d);
                }
                Err(e) if is_again(&e) => break,
                // ICMP errors of earlier sends (ECONNREFUSED): not ours to fail on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        if let Some(on) = was {
            self.set_nonblocking(on)?;
        }
        r
    }

    fn route(&mut self, from: SocketAddr, datagram: &[u8]) {
        if self.acceptor.handle_datagram(from, datagram) == Route::Session {
            let Some(inbox) = self.inboxes.get(&from) else {
                return;
            };
            let mut st = inbox.lock();
            if st.dropped {
                drop(st);
                self.inboxes.remove(&from);
                self.acceptor.forget(&from);
                return;
            }
            if st.queue.len() < self.acceptor.config().max_queued {
                st.queue.push_back(datagram.to_vec());
                drop(st);
                inbox.ready.notify_all();
                if !self.readable.contains(&from) {
                    self.readable.push(from);
                }
            }
        }
        self.collect();
    }

    fn run_timers(&mut self) {
        if self
            .acceptor
            .timeout()
            .is_some_and(|t| t <= self.acceptor.now())
        {
            self.acceptor.handle_timeout();
        }
        self.collect();
    }

    /// Takes the acceptor's new sessions and expiries.
    fn collect(&mut self) {
        while let Some(a) = self.acceptor.poll_accept() {
            let peer = *a.key();
            let inbox = Arc::new(Inbox::default());
            if let Some(old) = self.inboxes.insert(peer, inbox.clone()) {
                old.close("replaced by a new handshake from the same address");
            }
            let t = PeerTransport {
                socket: self.socket.clone(),
                peer,
                inbox,
                blocking: !self.flags.contains(Flags::NONBLOCK),
                read_timeout: None,
            };
            self.ready.push_back((a.into_session(t, self.flags), peer));
        }
        while let Some(peer) = self.acceptor.poll_expired() {
            if let Some(old) = self.inboxes.remove(&peer) {
                old.close("idle timeout");
            }
        }
    }

    fn flush(&mut self) {
        // Best effort, as UDP is: a reply that cannot go now is lost and
        // the peer retransmits.
        while let Some((to, d)) = self.acceptor.poll_transmit() {
            let _ = self.socket.send_to(&d, to);
        }
    }
}

impl Drop for DtlsListener {
    fn drop(&mut self) {
        for inbox in self.inboxes.values() {
            inbox.close("the listener was dropped");
        }
    }
}

fn is_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
