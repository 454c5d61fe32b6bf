//! The established connection: one type for both sides, and its halves.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use nbtls::codec::{CipherSuite, ProtocolVersion};
use nbtls::engine::Engine;
use nbtls::SessionInfo;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::{self, io_error, Conn, IdleTimer};

/// A TLS connection over `IO` (client or server side), after the
/// handshake.
///
/// # The `AsyncRead` / `AsyncWrite` contract
///
/// * `poll_read` returns buffered plaintext first, else reads records
///   until one carries data. EOF (`Ok` with nothing read) comes only after
///   the peer's close_notify; a transport EOF before it is an error of
///   kind `UnexpectedEof` (a truncation attack is not an EOF).
/// * `poll_write` keeps the std contract: once a record is sealed it
///   returns `Ok(n)` with the ciphertext possibly still queued; the next
///   write, `poll_flush` or `poll_shutdown` drains it. At most one record
///   is queued beyond what the transport accepted.
/// * `poll_shutdown` sends close_notify (once), flushes, and shuts the
///   transport's write side. Reading goes on until the peer's close_notify.
/// * Errors are sticky: after a fatal one every call returns it. Errors
///   carry the [`nbtls::Error`] as their source.
/// * Reads always read ahead (whatever the config's `read_ahead` says):
///   one transport read asks for up to a whole record more than the next
///   record needs, and what arrives beyond it stays in the engine.
///
/// # Cancellation safety
///
/// Every method is poll-based and keeps its progress in the engine, so
/// the futures of `AsyncReadExt`/`AsyncWriteExt` built on them are as
/// cancel-safe as tokio's own streams:
///
/// * `read` (`poll_read`): dropping it loses no data. Bytes already taken
///   from the transport stay buffered in the engine, a half-received
///   record included, and the next read goes on from them.
/// * `write` (`poll_write`): `Pending` means nothing of `data` was taken;
///   once it returns `Ok(n)` those `n` bytes are committed and will be sent
///   by the next write, flush or shutdown. (`write_all` is not cancel-safe,
///   as in tokio: it does not report how much was written.)
/// * `flush`, `shutdown`: resumable; calling again goes on where the
///   dropped call stopped (close_notify is queued once).
///
/// Nothing is sent on drop: call `shutdown` for a clean close.
///
/// # Reading never writes
///
/// A read only ever reads the transport. In TLS 1.3 the read side needs
/// no write readiness: a KeyUpdate the peer requests is answered before
/// our next application record, i.e. by the next write. An alert queued by
/// a read (a fatal error, or a TLS 1.2 no_renegotiation warning) likewise
/// goes out with the next write, flush or shutdown. This is what lets the
/// halves of [`TlsStream::split`] run in two tasks without one waiting on
/// the other's readiness.
pub struct TlsStream<IO> {
    io: IO,
    conn: Conn,
    read_timer: IdleTimer,
    write_timer: IdleTimer,
}

impl<IO> TlsStream<IO> {
    pub(crate) fn new(io: IO, conn: Conn) -> Self {
        TlsStream {
            io,
            conn,
            read_timer: IdleTimer::default(),
            write_timer: IdleTimer::default(),
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The transport. Reading or writing it directly corrupts the TLS
    /// stream.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The transport, giving up the TLS state (including any buffered
    /// bytes read ahead from it).
    pub fn into_inner(self) -> IO {
        self.io
    }

    /// The sans-IO engine underneath.
    pub fn engine(&self) -> &Engine {
        &self.conn.engine
    }

    /// Everything the handshake negotiated.
    pub fn info(&self) -> &SessionInfo {
        self.conn.engine.info()
    }

    /// The ALPN protocol agreed on, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.info().alpn.as_deref()
    }

    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.info().version
    }

    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.info().suite
    }

    /// The SNI the client sent (server side) or asked for (client side).
    pub fn server_name(&self) -> Option<&str> {
        self.info().server_name.as_deref()
    }

    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.info().peer_certificates
    }

    /// RFC 5705 / RFC 8446 §7.5 keying-material exporter.
    pub fn export_keying_material(
        &self,
        label: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> io::Result<()> {
        self.conn
            .engine
            .export_keying_material(label, context, out)
            .map_err(io_error)
    }

    /// Queues a TLS 1.3 KeyUpdate (sent by the next write or flush); with
    /// `request_peer` the peer updates its keys too.
    pub fn key_update(&mut self, request_peer: bool) -> io::Result<()> {
        self.conn.engine.key_update(request_peer).map_err(io_error)
    }

    /// Fail the connection with `TimedOut` when a read, write, flush or
    /// shutdown is waiting and no byte has moved on the transport, either
    /// way, for `timeout`. The clock starts now. Needs a tokio runtime with
    /// the time driver.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.conn.set_idle_timeout(timeout);
    }

    /// Splits into halves over `f(io)`'s halves (say
    /// `TcpStream::into_split`): each half locks the shared engine only
    /// inside a poll, never across a wait, so the halves can run in two
    /// tasks. See the type's docs: reads never need write readiness.
    pub fn split_with<R, W>(self, f: impl FnOnce(IO) -> (R, W)) -> (ReadHalf<R>, WriteHalf<W>) {
        let (r, w) = f(self.io);
        let shared = Arc::new(Mutex::new(self.conn));
        (
            ReadHalf {
                io: r,
                conn: shared.clone(),
                timer: self.read_timer,
            },
            WriteHalf {
                io: w,
                conn: shared,
                timer: self.write_timer,
            },
        )
    }
}

impl<IO: AsyncRead + AsyncWrite> TlsStream<IO> {
    /// Splits into a read half and a write half that share the engine
    /// through an `Arc<Mutex<..>>`, over `tokio::io::split` of the
    /// transport (use [`TlsStream::split_with`] with a transport that
    /// splits without a lock, e.g. `TcpStream::into_split`).
    ///
    /// The read half never needs write readiness: in TLS 1.3 the only
    /// record a read can make necessary is the answer to a KeyUpdate the
    /// peer requested, and the write half sends it before its next record.
    /// Alerts a read queues also go out through the write half.
    #[allow(clippy::type_complexity)]
    pub fn split(
        self,
    ) -> (
        ReadHalf<tokio::io::ReadHalf<IO>>,
        WriteHalf<tokio::io::WriteHalf<IO>>,
    ) {
        self.split_with(tokio::io::split)
    }
}

impl<IO> fmt::Debug for TlsStream<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info();
        f.debug_struct("TlsStream")
            .field("side", &self.conn.engine.side())
            .field("version", &info.version)
            .field("suite", &info.suite)
            .field("alpn", &info.alpn)
            .finish_non_exhaustive()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = conn::poll_read_app(&mut this.conn, &mut this.io, cx, buf);
        this.read_timer.check(&mut this.conn, cx, r)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = conn::poll_write_app(&mut this.conn, &mut this.io, cx, data);
        this.write_timer.check(&mut this.conn, cx, r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = conn::poll_flush_app(&mut this.conn, &mut this.io, cx);
        this.write_timer.check(&mut this.conn, cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = conn::poll_shutdown_app(&mut this.conn, &mut this.io, cx);
        this.write_timer.check(&mut this.conn, cx, r)
    }
}

fn lock(m: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    // A panic while locked cannot leave the engine half-updated in a way
    // that matters more than its own sticky error: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The read half of a [`TlsStream`]; `AsyncRead` with the stream's
/// contract and cancellation safety.
pub struct ReadHalf<R> {
    io: R,
    conn: Arc<Mutex<Conn>>,
    timer: IdleTimer,
}

/// The write half of a [`TlsStream`]; `AsyncWrite` with the stream's
/// contract and cancellation safety. It also sends what the read half
/// queued (KeyUpdate answers, alerts).
pub struct WriteHalf<W> {
    io: W,
    conn: Arc<Mutex<Conn>>,
    timer: IdleTimer,
}

impl<R> ReadHalf<R> {
    /// Runs `f` on the shared engine (negotiated parameters, counters).
    pub fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(&lock(&self.conn).engine)
    }

    /// Whether `other` is this half's partner.
    pub fn is_pair_of<W>(&self, other: &WriteHalf<W>) -> bool {
        Arc::ptr_eq(&self.conn, &other.conn)
    }

    pub fn get_ref(&self) -> &R {
        &self.io
    }
}

impl<W> WriteHalf<W> {
    /// Runs `f` on the shared engine (negotiated parameters, counters).
    pub fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(&lock(&self.conn).engine)
    }

    /// Queues a TLS 1.3 KeyUpdate, sent by the next write or flush.
    pub fn key_update(&self, request_peer: bool) -> io::Result<()> {
        lock(&self.conn)
            .engine
            .key_update(request_peer)
            .map_err(io_error)
    }

    pub fn get_ref(&self) -> &W {
        &self.io
    }
}

impl<R> fmt::Debug for ReadHalf<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadHalf").finish_non_exhaustive()
    }
}

impl<W> fmt::Debug for WriteHalf<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadHalf<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut conn = lock(&this.conn);
        let r = conn::poll_read_app(&mut conn, &mut this.io, cx, buf);
        this.timer.check(&mut conn, cx, r)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WriteHalf<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut conn = lock(&this.conn);
        let r = conn::poll_write_app(&mut conn, &mut this.io, cx, data);
        this.timer.check(&mut conn, cx, r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut conn = lock(&this.conn);
        let r = conn::poll_flush_app(&mut conn, &mut this.io, cx);
        this.timer.check(&mut conn, cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut conn = lock(&this.conn);
        let r = conn::poll_shutdown_app(&mut conn, &mut this.io, cx);
        this.timer.check(&mut conn, cx, r)
    }
}
