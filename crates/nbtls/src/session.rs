//! The GnuTLS-style session: an [`Engine`] driven over a [`Transport`].
//! It owns no protocol logic; it maps transport results to `Again` /
//! `Interrupted`, and keeps the direction, the committed-send, cork and
//! deadline state of DESIGN.md §3.

use std::io;
use std::ops::BitOr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, ServerName};

use crate::codec::{CipherSuite, NamedGroup, ProtocolVersion};
use crate::config::{ClientConfig, ServerConfig, TimeSource};
use crate::engine::{Engine, Progress};
use crate::error::{Error, Result};
use crate::record::{HEADER_LEN, MAX_CIPHERTEXT};
use crate::transport::Transport;

/// Flags fixed at creation (`gnutls_init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u32);

impl Flags {
    /// Blocking semantics: `recv` handles post-handshake messages and empty
    /// records internally and waits on timeouts through `pull_timeout`.
    pub const NONE: Flags = Flags(0);
    /// No call ever waits: timeouts are reported through `timeout()`.
    #[doc(alias = "GNUTLS_NONBLOCK")]
    pub const NONBLOCK: Flags = Flags(1);
    /// DTLS over a datagram transport (not yet supported).
    #[doc(alias = "GNUTLS_DATAGRAM")]
    pub const DATAGRAM: Flags = Flags(2);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// The transport operation last attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

/// How `bye` closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Send close_notify and wait for the peer's.
    #[doc(alias = "GNUTLS_SHUT_RDWR")]
    ReadWrite,
    /// Send close_notify only.
    #[doc(alias = "GNUTLS_SHUT_WR")]
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bye {
    NotStarted,
    /// close_notify queued; flushing it.
    Sent,
    /// Waiting for the peer's close_notify until the deadline.
    Waiting(Instant),
    Done,
}

/// A TLS session over a transport.
pub struct Session<T: Transport> {
    engine: Engine,
    transport: T,
    flags: Flags,
    direction: Direction,
    /// Plaintext length of the record sealed by a send that returned
    /// `Again`/`Interrupted`; the next send only flushes and returns it.
    committed: Option<usize>,
    corked: bool,
    cork_buf: Vec<u8>,
    /// Plaintext sealed by an `uncork` still being flushed.
    uncorking: Option<usize>,
    handshake_deadline: Option<Instant>,
    handshake_timeout: Option<Duration>,
    record_timeout: Option<Duration>,
    bye: Bye,
    /// `handshake()` has returned `Ok`: the engine may be done earlier, with
    /// its last flight still queued, and data must not overtake that call.
    established: bool,
    pause_reported: bool,
    eof_is_close: bool,
    time: Arc<dyn TimeSource>,
    /// DTLS: the buffer one datagram is pulled into.
    dgram_buf: Vec<u8>,
}

impl<T: Transport> Session<T> {
    /// A client session for `server_name` (a DNS name or an IP address).
    #[doc(alias = "gnutls_init")]
    pub fn client(
        config: Arc<ClientConfig>,
        server_name: &str,
        transport: T,
        flags: Flags,
    ) -> Result<Self> {
        Self::check_flags(flags)?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| Error::config(format!("invalid server name {server_name:?}")))?;
        let time = config.common.time.clone();
        let engine = if flags.contains(Flags::DATAGRAM) {
            Engine::client_dtls(config, name)?
        } else {
            Engine::client(config, name)?
        };
        Ok(Self::new(engine, transport, flags, time))
    }

    /// A server session.
    #[doc(alias = "gnutls_init")]
    pub fn server(config: Arc<ServerConfig>, transport: T, flags: Flags) -> Result<Self> {
        Self::check_flags(flags)?;
        let time = config.common.time.clone();
        let engine = if flags.contains(Flags::DATAGRAM) {
            Engine::server_dtls(config, &[])
        } else {
            Engine::server(config)
        };
        Ok(Self::new(engine, transport, flags, time))
    }

    /// A DTLS server session for the client `client_id` (its address, for
    /// HelloVerifyRequest cookies).
    pub fn server_datagram(
        config: Arc<ServerConfig>,
        client_id: &[u8],
        transport: T,
        flags: Flags,
    ) -> Result<Self> {
        let time = config.common.time.clone();
        Ok(Self::new(
            Engine::server_dtls(config, client_id),
            transport,
            flags | Flags::DATAGRAM,
            time,
        ))
    }

    /// A DTLS session over an engine whose handshake a listener completed.
    pub(crate) fn established_datagram(engine: Engine, transport: T, flags: Flags) -> Self {
        let time = engine.common().time.clone();
        let mut s = Self::new(engine, transport, flags | Flags::DATAGRAM, time);
        s.established = !s.engine.is_handshaking();
        s
    }

    fn check_flags(_flags: Flags) -> Result<()> {
        Ok(())
    }

    fn new(engine: Engine, transport: T, flags: Flags, time: Arc<dyn TimeSource>) -> Self {
        // DTLS gives up on a silent peer after 60 s by default (DESIGN.md §3).
        let handshake_timeout = engine
            .common()
            .handshake_timeout
            .or(engine.is_datagram().then_some(Duration::from_secs(60)));
        Session {
            engine,
            transport,
            flags,
            direction: Direction::Read,
            committed: None,
            corked: false,
            cork_buf: Vec::new(),
            uncorking: None,
            handshake_deadline: None,
            handshake_timeout,
            record_timeout: None,
            bye: Bye::NotStarted,
            established: false,
            pause_reported: false,
            eof_is_close: false,
            time,
            dgram_buf: Vec::new(),
        }
    }

    fn nonblocking(&self) -> bool {
        self.flags.contains(Flags::NONBLOCK)
    }

    // ---- accessors ----

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The engine underneath (feature `unstable-engine`).
    #[cfg(feature = "unstable-engine")]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// True until `handshake()` has returned `Ok`.
    pub fn is_handshaking(&self) -> bool {
        !self.established
    }

    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.engine.info().version
    }

    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.engine.info().suite
    }

    pub fn group(&self) -> Option<NamedGroup> {
        self.engine.info().group
    }

    #[doc(alias = "gnutls_alpn_get_selected_protocol")]
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.engine.info().alpn.as_deref()
    }

    /// The SNI the client sent (server) or asked for (client).
    #[doc(alias = "gnutls_server_name_get")]
    pub fn server_name(&self) -> Option<&str> {
        self.engine.info().server_name.as_deref()
    }

    #[doc(alias = "gnutls_certificate_get_peers")]
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.engine.info().peer_certificates
    }

    /// Everything negotiated.
    pub fn info(&self) -> &crate::handshake::tls13::SessionInfo {
        self.engine.info()
    }

    /// The last transport operation attempted: poll for it after `Again`.
    #[doc(alias = "gnutls_record_get_direction")]
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Decrypted bytes not yet returned by `recv` (plus, with read-ahead, a
    /// buffered whole record). Non-zero: call `recv` before polling.
    #[doc(alias = "gnutls_record_check_pending")]
    pub fn pending(&self) -> usize {
        if self.engine.is_datagram() {
            return self.engine.datagram_pending();
        }
        let mut n = self.engine.plaintext_len();
        if self.engine.read_ahead() {
            n += self.engine.buffered_record_len();
        }
        n
    }

    /// The ClientHello a paused server handshake is answering.
    pub fn client_hello(&self) -> Option<&crate::codec::ClientHello> {
        self.engine.paused_client_hello()
    }

    /// While paused after the ClientHello: answer with `config` instead.
    pub fn set_server_config(&mut self, config: Arc<ServerConfig>) -> Result<()> {
        self.engine.set_server_config(config)
    }

    /// RFC 8446 §7.5 keying-material exporter.
    #[doc(alias = "gnutls_prf_rfc5705")]
    pub fn export_keying_material(
        &self,
        label: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.engine.export_keying_material(label, context, out)
    }

    /// Most plaintext bytes one record carries (the peer's
    /// record_size_limit, or 2^14).
    pub fn max_record_payload(&self) -> usize {
        self.engine.max_fragment()
    }

    /// Bytes the session's record buffers hold right now (they are
    /// released when idle).
    pub fn buffered_bytes(&self) -> usize {
        self.engine.buffered_capacity() + self.cork_buf.capacity()
    }

    /// Client: queues 0-RTT early data, before `handshake()` is first
    /// called, when resuming a session that allows it and
    /// `ClientConfig::early_data(true)`; returns the bytes taken (fewer at
    /// the ticket's limit). `handshake()` sends it. If the server rejects
    /// it (`early_data_accepted()` false after the handshake) it is lost:
    /// send it again.
    pub fn send_early_data(&mut self, data: &[u8]) -> Result<usize> {
        self.engine.seal_early(data)
    }

    /// Client: 0-RTT bytes that may still be queued.
    pub fn early_data_left(&self) -> usize {
        self.engine.early_data_left()
    }

    /// Whether the server accepted our 0-RTT data (client), or we accepted
    /// the client's (server).
    pub fn early_data_accepted(&self) -> bool {
        self.engine.info().early_data_accepted
    }

    /// Server: reads accepted 0-RTT data (available during and after the
    /// handshake); 0 when there is none.
    pub fn recv_early_data(&mut self, buf: &mut [u8]) -> usize {
        self.engine.read_early_data(buf)
    }

    /// Server: accepted 0-RTT bytes not yet read.
    pub fn pending_early_data(&self) -> usize {
        self.engine.early_data_len()
    }

    /// NewSessionTickets received and kept (client).
    pub fn tickets_received(&self) -> usize {
        self.engine.tickets()
    }

    /// Treat a transport EOF without close_notify as a clean close
    /// (`recv` returns `Ok(0)`) instead of `PrematureTermination`.
    pub fn set_eof_is_close(&mut self, on: bool) {
        self.eof_is_close = on;
    }

    #[doc(alias = "gnutls_handshake_set_timeout")]
    pub fn set_handshake_timeout(&mut self, timeout: Option<Duration>) {
        self.handshake_timeout = timeout;
        self.handshake_deadline = None;
    }

    /// Blocking sessions: how long `recv` waits for a record (a non-sticky
    /// `TimedOut` after). Ignored with `Flags::NONBLOCK`.
    #[doc(alias = "gnutls_record_set_timeout")]
    pub fn set_record_timeout(&mut self, timeout: Option<Duration>) {
        self.record_timeout = timeout;
    }

    // ---- transport plumbing ----

    /// Pushes queued ciphertext until none is left.
    fn flush_output(&mut self) -> Result<()> {
        while self.engine.has_pending_output() {
            self.direction = Direction::Write;
            match self.transport.push(self.engine.pending_output()) {
                Ok(0) => {
                    let e = Error::Transport {
                        kind: io::ErrorKind::WriteZero,
                        message: "transport accepted no bytes".into(),
                    };
                    return Err(self.engine.fail(e));
                }
                Ok(n) => self.engine.output_written(n),
                Err(e) => return Err(self.engine.fail(Error::from_io(&e))),
            }
        }
        Ok(())
    }

    /// Flushes what a failed session still has queued (its alert), best
    /// effort, and returns the error.
    fn failed(&mut self, e: Error) -> Error {
        if e.is_fatal() {
            let _ = self.flush_output();
        }
        e
    }

    /// Reads from the transport what the next record needs (no more,
    /// unless read-ahead is on). `wait` is the blocking-mode timeout.
    fn fill(&mut self, wait: Option<Duration>) -> Result<()> {
        if let (Some(w), false) = (wait, self.nonblocking()) {
            self.direction = Direction::Read;
            match self.transport.pull_timeout(w) {
                Ok(true) => {}
                Ok(false) => return Err(Error::TimedOut),
                Err(e) => return Err(self.engine.fail(Error::from_io(&e))),
            }
        }
        let hint = self.engine.read_hint();
        let want = if self.engine.read_ahead() {
            hint.max(HEADER_LEN + MAX_CIPHERTEXT)
        } else {
            hint
        };
        self.direction = Direction::Read;
        let space = self.engine.recv_space(want);
        let r = self.transport.pull(space);
        let got = *r.as_ref().unwrap_or(&0);
        self.engine.recv_filled(want, got);
        match r {
            Ok(0) => Err(Error::PrematureTermination),
            Ok(_) => Ok(()),
            Err(e) => Err(self.engine.fail(Error::from_io(&e))),
        }
    }

    fn now(&self) -> Instant {
        self.time.now()
    }

    fn remaining(&self, deadline: Option<Instant>) -> Option<Duration> {
        deadline.map(|d| d.saturating_duration_since(self.now()))
    }

    // ---- handshake ----

    /// Runs the handshake; resumable after `Again`/`Interrupted`, and after
    /// `ClientHelloPaused` on a server.
    #[doc(alias = "gnutls_handshake")]
    pub fn handshake(&mut self) -> Result<()> {
        if self.handshake_deadline.is_none() && self.engine.is_handshaking() {
            self.handshake_deadline = self.handshake_timeout.map(|t| self.now() + t);
        }
        let r = if self.engine.is_datagram() {
            self.drive_handshake_dtls()
        } else {
            self.drive_handshake()
        };
        r.map_err(|e| self.failed(e))
    }

    fn drive_handshake(&mut self) -> Result<()> {
        loop {
            self.check_handshake_deadline()?;
            self.flush_output()?;
            if let Some(e) = self.engine.error() {
                return Err(e.clone());
            }
            if !self.engine.is_handshaking() {
                self.established = true;
                self.handshake_deadline = None;
                self.engine.release_buffers();
                return Ok(());
            }
            if self.engine.is_paused() {
                if !self.pause_reported {
                    self.pause_reported = true;
                    return Err(Error::ClientHelloPaused);
                }
                self.pause_reported = false;
                self.engine.resume()?;
                continue;
            }
            match self.engine.process()? {
                Progress::NeedMore => {
                    let wait = self.remaining(self.handshake_deadline);
                    match self.fill(wait) {
                        Err(Error::PrematureTermination) => {
                            return Err(self.engine.fail(Error::PrematureTermination))
                        }
                        Err(Error::TimedOut) => return Err(self.engine.fail(Error::TimedOut)),
                        other => other?,
                    }
                }
                Progress::Closed => {
                    return Err(self
                        .engine
                        .fail(Error::unexpected("close_notify during the handshake")))
                }
                _ => {}
            }
        }
    }

    fn check_handshake_deadline(&mut self) -> Result<()> {
        if let Some(d) = self.handshake_deadline {
            if self.engine.is_handshaking() && self.now() >= d {
                return Err(self.engine.fail(Error::TimedOut));
            }
        }
        Ok(())
    }

    // ---- data ----

    /// Sends at most one record of `data`; returns the bytes taken. After
    /// `Again`/`Interrupted` the record is committed: the next call (with
    /// any data, or none) only flushes it and returns its length.
    #[doc(alias = "gnutls_record_send")]
    pub fn send(&mut self, data: &[u8]) -> Result<usize> {
        if let Some(e) = self.engine.error() {
            return Err(e.clone());
        }
        if self.engine.is_datagram() {
            return self.send_datagram(data);
        }
        if let Some(n) = self.committed {
            self.flush_output().map_err(|e| self.failed(e))?;
            self.committed = None;
            return Ok(n);
        }
        self.check_can_send()?;
        if self.corked {
            self.cork_buf.extend_from_slice(data);
            return Ok(data.len());
        }
        let n = self.engine.seal(data).map_err(|e| self.failed(e))?;
        if n > 0 {
            self.committed = Some(n);
        }
        self.flush_output().map_err(|e| self.failed(e))?;
        self.committed = None;
        Ok(n)
    }

    fn check_can_send(&self) -> Result<()> {
        if !self.established {
            return Err(Error::UnavailableDuringHandshake);
        }
        if self.engine.sent_close() {
            return Err(Error::InvalidSession);
        }
        Ok(())
    }

    /// Buffers sends until `uncork`, which seals them into as few records
    /// as possible and writes them with one push.
    #[doc(alias = "gnutls_record_cork")]
    pub fn cork(&mut self) {
        self.corked = true;
    }

    /// Seals and flushes what was sent while corked; returns the bytes.
    /// Resumable after `Again` like `send`.
    #[doc(alias = "gnutls_record_uncork")]
    pub fn uncork(&mut self) -> Result<usize> {
        if self.uncorking.is_none() {
            self.corked = false;
            let data = std::mem::take(&mut self.cork_buf);
            let mut off = 0;
            while off < data.len() {
                off += self.engine.seal(&data[off..]).map_err(|e| self.failed(e))?;
            }
            self.uncorking = Some(data.len());
        }
        self.flush_output().map_err(|e| self.failed(e))?;
        Ok(self.uncorking.take().unwrap_or(0))
    }

    /// Receives application data: buffered plaintext first, else at most
    /// one new record. `Ok(0)` only after the peer's close_notify.
    #[doc(alias = "gnutls_record_recv")]
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.engine.is_datagram() {
            return self.recv_datagram(buf);
        }
        if self.engine.plaintext_len() > 0 && !buf.is_empty() {
            return Ok(self.engine.read_plaintext(buf));
        }
        if self.engine.received_close() {
            return Ok(0);
        }
        if let Some(e) = self.engine.error() {
            return Err(e.clone());
        }
        if !self.established {
            return Err(Error::UnavailableDuringHandshake);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.engine.process().map_err(|e| self.failed(e))? {
                Progress::Data => return Ok(self.engine.read_plaintext(buf)),
                Progress::Closed => return Ok(0),
                Progress::NeedMore => match self.fill(self.record_timeout) {
                    Ok(()) => {}
                    Err(Error::PrematureTermination) if self.eof_is_close => return Ok(0),
                    Err(Error::PrematureTermination) => {
                        return Err(self.engine.fail(Error::PrematureTermination))
                    }
                    Err(e) => return Err(self.failed(e)),
                },
                Progress::Consumed | Progress::Paused => {}
            }
        }
    }

    /// Drops queued application records none of whose bytes reached the
    /// transport; returns the bytes dropped. A partly written record stays,
    /// and so do queued control records (alerts, KeyUpdate) and whatever is
    /// queued before them, or the stream would be corrupt.
    #[doc(alias = "gnutls_record_discard_queued")]
    pub fn discard_queued(&mut self) -> usize {
        if self.engine.is_datagram() {
            self.committed = None;
            return self.engine.discard_datagrams();
        }
        let app_before = self.engine.queued_app_len();
        let n = self.engine.discard_unsent();
        if n > 0 {
            // The committed record is the last one sealed: it was dropped.
            self.committed = None;
            let dropped = app_before - self.engine.queued_app_len();
            self.uncorking = self.uncorking.map(|u| u.saturating_sub(dropped));
        }
        if !self.engine.has_pending_output() {
            self.committed = None;
            self.uncorking = None;
        }
        n
    }

    /// Updates our traffic keys; with `request_peer` the peer updates too.
    /// The KeyUpdate goes out with the next send or flush.
    #[doc(alias = "gnutls_session_key_update")]
    pub fn key_update(&mut self, request_peer: bool) -> Result<()> {
        if !self.established && self.engine.error().is_none() {
            return Err(Error::UnavailableDuringHandshake);
        }
        self.engine.key_update(request_peer)
    }

    /// Writes whatever is queued (KeyUpdate answers, committed records).
    pub fn flush(&mut self) -> Result<()> {
        self.flush_output().map_err(|e| self.failed(e))
    }

    // ---- closing ----

    /// Sends close_notify (after anything queued) and, with
    /// `Shutdown::ReadWrite`, waits for the peer's within the bye timeout.
    /// Resumable; a transport EOF or error while waiting counts as success.
    #[doc(alias = "gnutls_bye")]
    pub fn bye(&mut self, how: Shutdown) -> Result<()> {
        if self.engine.is_datagram() {
            let _ = how;
            return self.bye_datagram();
        }
        loop {
            match self.bye {
                Bye::NotStarted => {
                    if let Some(e) = self.engine.error() {
                        return Err(e.clone());
                    }
                    if !self.established {
                        return Err(Error::UnavailableDuringHandshake);
                    }
                    self.flush_output().map_err(|e| self.failed(e))?;
                    self.committed = None;
                    self.engine.close_notify()?;
                    self.bye = Bye::Sent;
                }
                Bye::Sent => {
                    self.flush_output().map_err(|e| self.failed(e))?;
                    if how == Shutdown::Write || self.engine.received_close() {
                        self.bye = Bye::Done;
                    } else {
                        let timeout = self.engine.common().bye_timeout;
                        self.bye = Bye::Waiting(self.now() + timeout);
                    }
                }
                Bye::Waiting(deadline) => {
                    if how == Shutdown::Write {
                        self.bye = Bye::Done;
                        continue;
                    }
                    return match self.wait_for_close(deadline) {
                        Ok(()) => {
                            self.bye = Bye::Done;
                            Ok(())
                        }
                        Err(e @ (Error::Again | Error::Interrupted)) => Err(e),
                        Err(Error::TimedOut) => {
                            self.bye = Bye::Done;
                            Err(Error::TimedOut)
                        }
                        // EOF or a fatal error while waiting counts as success.
                        Err(_) => {
                            self.bye = Bye::Done;
                            Ok(())
                        }
                    };
                }
                Bye::Done => return Ok(()),
            }
        }
    }

    fn wait_for_close(&mut self, deadline: Instant) -> Result<()> {
        let mut scratch = [0u8; 1024];
        loop {
            if self.engine.received_close() {
                return Ok(());
            }
            if self.now() >= deadline {
                return Err(Error::TimedOut);
            }
            match self.engine.process()? {
                // Data the application did not read before bye is dropped.
                Progress::Data => while self.engine.read_plaintext(&mut scratch) > 0 {},
                Progress::Closed => return Ok(()),
                Progress::NeedMore => {
                    self.fill(Some(deadline.saturating_duration_since(self.now())))?
                }
                _ => {}
            }
        }
    }

    // ---- timers ----

    /// Time until the session must be called again (handshake or bye
    /// deadline); `None` when no deadline runs.
    #[doc(alias = "gnutls_dtls_get_timeout")]
    pub fn timeout(&self) -> Option<Duration> {
        // A failed session runs no timer (its engine may still look
        // "handshaking"): never report "due now" forever.
        if self.engine.error().is_some() {
            return None;
        }
        let hs = if self.engine.is_handshaking() {
            self.handshake_deadline
        } else {
            None
        };
        let bye = match self.bye {
            Bye::Waiting(d) => Some(d),
            _ => None,
        };
        let d = [hs, bye, self.engine.dtls_timeout()]
            .into_iter()
            .flatten()
            .min();
        self.remaining(d)
    }

    /// Runs due timers without waiting: a DTLS retransmission (flushed
    /// with the next call), and a passed handshake deadline fails the
    /// session with `TimedOut`.
    pub fn handle_timeout(&mut self) -> Result<()> {
        self.check_handshake_deadline()?;
        self.engine.dtls_on_timer()
    }
}

#[path = "session_dtls.rs"]
mod datagram;
pub use datagram::SrtpKeyingMaterial;

impl<T: Transport> io::Read for Session<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.recv(buf)?)
    }
}

/// The std contract: once a record is sealed `write` returns `Ok(n)` and
/// leaves the ciphertext queued; `flush` (and the next write) drain it.
impl<T: Transport> io::Write for Session<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.established {
            let e = self.engine.error().cloned();
            return Err(e.unwrap_or(Error::UnavailableDuringHandshake).into());
        }
        self.flush_output().map_err(|e| self.failed(e))?;
        self.committed = None;
        let n = self.engine.seal(data).map_err(|e| self.failed(e))?;
        match self.flush_output() {
            Ok(()) | Err(Error::Again | Error::Interrupted) => Ok(n),
            Err(e) => Err(self.failed(e).into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(Session::flush(self)?)
    }
}
