//! DTLS 1.2 over tokio datagram sockets: one `send` is one datagram, one
//! `recv` one datagram, and the retransmission timer is a `tokio::time`
//! sleep armed at the engine's deadline.
//!
//! Every poll function keeps all progress in the engine (received
//! datagrams are fed before anything is returned, sealed datagrams stay
//! queued until a transport accepts them), so dropping any future here
//! loses nothing: the methods are cancellation safe, except the
//! handshakes, which abandon the session when dropped.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nbtls::codec::{CipherSuite, ProtocolVersion};
use nbtls::engine::Engine;
use nbtls::{ClientConfig, Error, ServerConfig, SessionInfo};
use rustls_pki_types::ServerName;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::time::Sleep;

use crate::conn::io_error;

/// Room for the largest DTLS record (RFC 6347 §4.1), whatever the MTU.
pub(crate) const DATAGRAM_BUF: usize = 16384 + 2048 + 13;

/// Datagrams one `recv` may process without returning data before it
/// yields (a peer flooding garbage must not starve the other tasks).
const DATAGRAM_BUDGET: usize = 64;

/// The DTLS default total handshake limit (DESIGN.md §3).
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A datagram transport to one peer: a connected `UdpSocket`, or a
/// channel a listener routes one peer's datagrams through.
pub trait DatagramIo: Unpin {
    /// Receives one datagram into `buf` (truncating a longer one).
    fn poll_recv_datagram(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>>;

    /// Sends `data` as one datagram.
    fn poll_send_datagram(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>>;

    /// What binds a server's cookies to this peer (its address).
    fn peer_id(&self) -> Vec<u8>;
}

/// A socket `connect`ed to its peer.
impl DatagramIo for UdpSocket {
    fn poll_recv_datagram(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        UdpSocket::poll_recv(self, cx, buf)
    }

    fn poll_send_datagram(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        UdpSocket::poll_send(self, cx, data)
    }

    fn peer_id(&self) -> Vec<u8> {
        self.peer_addr()
            .map(|a| a.to_string().into_bytes())
            .unwrap_or_default()
    }
}

/// Starts DTLS client sessions with one configuration.
#[derive(Clone)]
pub struct DtlsConnector {
    config: Arc<ClientConfig>,
    handshake_timeout: Option<Duration>,
    mtu: Option<usize>,
}

impl DtlsConnector {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        DtlsConnector {
            config,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            mtu: None,
        }
    }

    /// Bound on the whole handshake (60 s by default; `None` for no
    /// limit); `TimedOut` after.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The path MTU datagrams are cut to (default 1200).
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Handshakes as a client over `io` (e.g. a connected `UdpSocket`).
    /// Dropping the future abandons the session.
    pub async fn connect<S: DatagramIo>(
        &self,
        server_name: &str,
        io: S,
    ) -> io::Result<DtlsStream<S>> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid server name"))?;
        let engine = Engine::client_dtls(self.config.clone(), name).map_err(io_error)?;
        DtlsStream::new(io, engine, self.mtu)
            .handshake(self.handshake_timeout)
            .await
    }
}

impl fmt::Debug for DtlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsConnector")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// Accepts DTLS sessions with one configuration, one peer per transport
/// (a server socket `connect`ed to its client); for many clients on one
/// socket, see [`DtlsListener`](crate::DtlsListener).
#[derive(Clone)]
pub struct DtlsAcceptor {
    config: Arc<ServerConfig>,
    handshake_timeout: Option<Duration>,
    mtu: Option<usize>,
}

impl DtlsAcceptor {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        DtlsAcceptor {
            config,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            mtu: None,
        }
    }

    /// Bound on the whole handshake (60 s by default; `None` for none).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The path MTU datagrams are cut to (default 1200).
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Handshakes as a server over `io` (e.g. a `UdpSocket` connected to
    /// the client), with the cookie exchange if the config has it on.
    /// Dropping the future abandons the session.
    pub async fn accept<S: DatagramIo>(&self, io: S) -> io::Result<DtlsStream<S>> {
        let engine = Engine::server_dtls(self.config.clone(), &io.peer_id());
        DtlsStream::new(io, engine, self.mtu)
            .handshake(self.handshake_timeout)
            .await
    }
}

impl fmt::Debug for DtlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// An established DTLS session with one peer.
///
/// `send` seals one datagram (over [`data_mtu`](Self::data_mtu) is
/// `LargePacket`, nothing queued) and `recv` returns one datagram's data;
/// application data is never retransmitted, so under loss every datagram
/// that arrives is delivered intact and once. `recv` also answers the
/// peer's retransmitted last flight. Both are cancellation safe.
pub struct DtlsStream<S = UdpSocket> {
    io: S,
    engine: Engine,
    timer: Pin<Box<Sleep>>,
    /// The deadline `timer` is armed for.
    armed: Option<std::time::Instant>,
    rbuf: Box<[u8]>,
}

impl<S: DatagramIo> DtlsStream<S> {
    fn new(io: S, mut engine: Engine, mtu: Option<usize>) -> Self {
        if let Some(mtu) = mtu {
            engine.set_mtu(mtu);
        }
        DtlsStream {
            io,
            engine,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            rbuf: vec![0; DATAGRAM_BUF].into_boxed_slice(),
        }
    }

    /// Wraps an engine whose handshake a listener completed.
    pub(crate) fn established(io: S, engine: Engine) -> Self {
        Self::new(io, engine, None)
    }

    async fn handshake(mut self, timeout: Option<Duration>) -> io::Result<Self> {
        let run = poll_fn(|cx| self.poll_handshake(cx));
        let r = match timeout {
            Some(t) => tokio::time::timeout(t, run).await.ok(),
            None => Some(run.await),
        };
        match r {
            Some(r) => r.map(|()| self),
            None => Err(io_error(self.engine.fail(Error::TimedOut))),
        }
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            self.check()?;
            ready!(self.poll_flush_out(cx))?;
            if !self.engine.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            self.poll_timer(cx)?;
            if self.engine.pending_datagram().is_some() {
                continue;
            }
            ready!(self.poll_feed(cx))?;
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.engine.error() {
            Some(e) => Err(io_error(e.clone())),
            None => Ok(()),
        }
    }

    /// Sends queued datagrams, one transport send each.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(d) = self.engine.pending_datagram() {
            match ready!(self.io.poll_send_datagram(cx, d)) {
                Ok(_) => self.engine.datagram_sent(),
                // EMSGSIZE: that datagram is dropped; the caller lowers the MTU.
                Err(e) if e.raw_os_error() == Some(90) => {
                    self.engine.datagram_sent();
                    return Poll::Ready(Err(io_error(Error::LargePacket)));
                }
                Err(e) => return Poll::Ready(Err(self.transport_failed(e))),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Receives one datagram into the engine.
    fn poll_feed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut buf = ReadBuf::new(&mut self.rbuf);
        if let Err(e) = ready!(self.io.poll_recv_datagram(cx, &mut buf)) {
            return Poll::Ready(Err(self.transport_failed(e)));
        }
        let n = buf.filled().len();
        // An empty datagram is dropped, never an end of stream.
        if n > 0 {
            if let Err(e) = self.engine.feed_datagram(&self.rbuf[..n]) {
                // The fatal alert the engine queued goes out, best effort.
                let _ = self.poll_flush_out(cx);
                return Poll::Ready(Err(io_error(e)));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Arms the sleep at the engine's retransmission deadline and runs
    /// the timer when it is due. The engine reads the config's clock, the
    /// sleep tokio's: both must be the system clock.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(at) = self.engine.dtls_timeout() else {
            self.armed = None;
            return Ok(());
        };
        if self.armed != Some(at) {
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(at));
            self.armed = Some(at);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.engine.dtls_on_timer().map_err(io_error)?;
            // The next deadline (if any) is armed on the next poll, which
            // the queued retransmission's flush leads to.
            self.armed = None;
            cx.waker().wake_by_ref();
        }
        Ok(())
    }

    fn transport_failed(&mut self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => e,
            kind => {
                self.engine.fail(Error::Transport {
                    kind,
                    message: e.to_string(),
                });
                e
            }
        }
    }

    /// Receives one datagram's data into `buf` (the rest of a longer one
    /// is returned by the next call); `Ok(0)` after the peer's
    /// close_notify.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_recv_with_seq(cx, buf).map_ok(|(n, _)| n)
    }

    /// As [`poll_recv`](Self::poll_recv), with the record's sequence
    /// number (`epoch << 48 | seq`) for loss detection; `(0, 0)` after the
    /// peer's close_notify.
    pub fn poll_recv_with_seq(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, u64)>> {
        for _ in 0..DATAGRAM_BUDGET {
            if let Some(got) = self.engine.read_datagram_seq(buf) {
                return Poll::Ready(Ok(got));
            }
            if self.engine.received_close() {
                return Poll::Ready(Ok((0, 0)));
            }
            self.check()?;
            // Answering the peer's retransmissions needs a write; a full
            // socket does not stop reading.
            if let Poll::Ready(Err(e)) = self.poll_flush_out(cx) {
                return Poll::Ready(Err(e));
            }
            self.poll_timer(cx)?;
            ready!(self.poll_feed(cx))?;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Sends `data` as one datagram; over `data_mtu()` is `LargePacket`.
    /// Once sealed the datagram is sent, or stays queued for the next
    /// call (or [`flush`](Self::flush)) if the socket is full.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.check()?;
        ready!(self.poll_flush_out(cx))?;
        let n = self.engine.seal_datagram(data).map_err(io_error)?;
        if let Poll::Ready(Err(e)) = self.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    /// One datagram's data ([`poll_recv`](Self::poll_recv)). Cancellation
    /// safe: a datagram read from the socket is kept in the engine until a
    /// `recv` returns it.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// `recv` with the record's sequence number (`epoch << 48 | seq`).
    /// Cancellation safe, as `recv`.
    pub async fn recv_with_seq(&mut self, buf: &mut [u8]) -> io::Result<(usize, u64)> {
        poll_fn(|cx| self.poll_recv_with_seq(cx, buf)).await
    }

    /// One datagram ([`poll_send`](Self::poll_send)). Cancellation safe:
    /// dropped before it returns, the datagram was either not sealed or is
    /// queued and goes out with the next call.
    pub async fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, data)).await
    }

    /// Sends every queued datagram. Cancellation safe.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_out(cx)).await
    }

    /// Sends close_notify (once; DTLS has no half-close to wait for).
    /// Cancellation safe: called again, it only finishes the sending.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.engine.close_notify_datagram().map_err(io_error)?;
        self.flush().await
    }

    /// The most application data one `send` may carry.
    pub fn data_mtu(&self) -> usize {
        self.engine.data_mtu()
    }

    pub fn mtu(&self) -> usize {
        self.engine.mtu()
    }

    pub fn set_mtu(&mut self, mtu: usize) {
        self.engine.set_mtu(mtu);
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The sans-IO engine underneath.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Everything the handshake negotiated.
    pub fn info(&self) -> &SessionInfo {
        self.engine.info()
    }

    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.info().version
    }

    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.info().suite
    }
}

impl<S> fmt::Debug for DtlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsStream").finish_non_exhaustive()
    }
}
