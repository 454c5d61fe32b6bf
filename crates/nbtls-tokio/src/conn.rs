//! The engine driven over tokio I/O: every function here polls the
//! transport at most as far as it can go without waiting and keeps all
//! progress in the engine, so dropping the future that polls it loses
//! nothing (the cancellation-safety guarantees of the public types rest
//! on this).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nbtls::codec::AlertDescription;
use nbtls::engine::{Engine, Progress};
use nbtls::record::{HEADER_LEN, MAX_CIPHERTEXT};
use nbtls::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Read-ahead: one transport read asks for a whole record more than the
/// next record needs, so a record usually costs one read, not two. What
/// arrives beyond the current record stays buffered in the engine.
const READ_AHEAD: usize = HEADER_LEN + MAX_CIPHERTEXT;

/// Records one `poll_read` may process without returning data before it
/// yields to the scheduler (a peer streaming tickets or empty records must
/// not starve the other tasks of a thread).
const RECORD_BUDGET: usize = 64;

/// The connection state a stream (or both halves of one) shares.
pub(crate) struct Conn {
    pub(crate) engine: Engine,
    idle: Option<Duration>,
    /// When a byte last moved on the transport (only kept with `idle`).
    last_activity: Instant,
}

impl Conn {
    pub(crate) fn new(engine: Engine) -> Self {
        Conn {
            engine,
            idle: None,
            last_activity: Instant::now(),
        }
    }

    pub(crate) fn set_idle_timeout(&mut self, idle: Option<Duration>) {
        self.idle = idle;
        self.last_activity = Instant::now();
    }

    fn touch(&mut self) {
        if self.idle.is_some() {
            self.last_activity = Instant::now();
        }
    }
}

/// The engine's error as an `io::Error`; an `Error` survives as the
/// source (`get_ref().downcast_ref::<nbtls::Error>()`).
pub(crate) fn io_error(e: Error) -> io::Error {
    e.into()
}

/// Records a transport failure as the engine's sticky error.
fn transport_failed(engine: &mut Engine, e: io::Error) -> io::Error {
    match e.kind() {
        // Not failures: the caller may simply poll again.
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => e,
        kind => {
            engine.fail(Error::Transport {
                kind,
                message: e.to_string(),
            });
            e
        }
    }
}

/// Reads once from the transport into the engine. `Ready(Ok)` means bytes
/// arrived; a transport EOF fails the connection (`UnexpectedEof`), since
/// whoever calls this still needs a record.
pub(crate) fn poll_fill<R: AsyncRead + Unpin>(
    conn: &mut Conn,
    io: &mut R,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let engine = &mut conn.engine;
    let want = engine.read_hint().max(READ_AHEAD);
    let space = engine.recv_space(want);
    let mut buf = ReadBuf::new(space);
    let r = Pin::new(io).poll_read(cx, &mut buf);
    let got = buf.filled().len();
    // Bytes the transport handed over are the engine's now, whatever
    // happens to the caller's future.
    engine.recv_filled(want, got);
    match r {
        Poll::Pending => {
            // An idle connection holds no record buffer.
            engine.release_buffers();
            Poll::Pending
        }
        Poll::Ready(Ok(())) if got == 0 => {
            Poll::Ready(Err(io_error(engine.fail(Error::PrematureTermination))))
        }
        Poll::Ready(Ok(())) => {
            conn.touch();
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(transport_failed(engine, e))),
    }
}

/// Writes queued ciphertext until none is left.
pub(crate) fn poll_send<W: AsyncWrite + Unpin>(
    conn: &mut Conn,
    io: &mut W,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while conn.engine.wants_write() {
        match Pin::new(&mut *io).poll_write(cx, conn.engine.pending_output()) {
            Poll::Ready(Ok(0)) => {
                let e = Error::Transport {
                    kind: io::ErrorKind::WriteZero,
                    message: "transport accepted no bytes".into(),
                };
                return Poll::Ready(Err(io_error(conn.engine.fail(e))));
            }
            Poll::Ready(Ok(n)) => {
                conn.engine.output_written(n);
                conn.touch();
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(transport_failed(&mut conn.engine, e))),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

/// The sticky error, after a best-effort attempt to send the alert it
/// queued (never waits for the transport).
fn report_failure<W: AsyncWrite + Unpin>(
    conn: &mut Conn,
    io: &mut W,
    cx: &mut Context<'_>,
) -> Option<io::Error> {
    let e = conn.engine.error()?.clone();
    let _ = poll_send(conn, io, cx);
    Some(io_error(e))
}

/// Drives the handshake to completion: flushes every flight, reads what
/// the next message needs. A server paused after the ClientHello (a
/// config with `pause_after_client_hello`) is resumed at once: inspecting
/// the hello is `LazyConfigAcceptor`'s job.
pub(crate) fn poll_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn,
    io: &mut IO,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        match poll_send(conn, io, cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(conn.engine.error().cloned().map_or(e, io_error)))
            }
            Poll::Pending => return Poll::Pending,
        }
        if let Some(e) = conn.engine.error() {
            return Poll::Ready(Err(io_error(e.clone())));
        }
        if !conn.engine.is_handshaking() {
            if let Err(e) = ready!(Pin::new(&mut *io).poll_flush(cx)) {
                return Poll::Ready(Err(transport_failed(&mut conn.engine, e)));
            }
            conn.engine.release_buffers();
            conn.touch();
            return Poll::Ready(Ok(()));
        }
        if conn.engine.is_paused() {
            match conn.engine.resume() {
                Ok(()) => continue,
                // Fatal: the loop sends the alert, then reports.
                Err(e) if e.is_fatal() => continue,
                Err(e) => return Poll::Ready(Err(io_error(e))),
            }
        }
        if conn.engine.wants_read() {
            ready!(poll_fill(conn, io, cx))?;
        }
        match conn.engine.process() {
            Ok(Progress::Closed) => {
                conn.engine.fail(Error::Protocol {
                    alert: AlertDescription::UNEXPECTED_MESSAGE,
                    reason: "close_notify during the handshake".into(),
                });
            }
            Ok(_) => {}
            Err(e) if e.is_fatal() => {}
            Err(e) => return Poll::Ready(Err(io_error(e))),
        }
    }
}

/// Application data into `buf`: buffered plaintext first, else records
/// read until one carries data. `Ok` with nothing added means the peer's
/// close_notify (EOF); a transport EOF before it is `UnexpectedEof`.
/// Never writes: a read half needs no write readiness.
pub(crate) fn poll_read_app<R: AsyncRead + Unpin>(
    conn: &mut Conn,
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    for _ in 0..RECORD_BUDGET {
        let engine = &mut conn.engine;
        let plain = engine.plaintext_len();
        if plain > 0 {
            if buf.remaining() > 0 {
                let out = buf.initialize_unfilled_to(plain.min(buf.remaining()));
                let n = engine.read_plaintext(out);
                buf.advance(n);
            }
            return Poll::Ready(Ok(()));
        }
        if engine.received_close() {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = engine.error() {
            return Poll::Ready(Err(io_error(e.clone())));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if engine.wants_read() {
            ready!(poll_fill(conn, io, cx))?;
        }
        match conn.engine.process() {
            Ok(_) => {}
            // TLS 1.2 renegotiation refused: the warning is queued for the
            // writer, the connection goes on.
            Err(Error::Rehandshake) => {}
            Err(e) => return Poll::Ready(Err(io_error(e))),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Seals up to one record of `data` once earlier records are flushed;
/// `Ok(n)` as soon as it is sealed (the ciphertext may still be queued:
/// `poll_flush` drains it). Owed KeyUpdate answers go out here, before
/// the record.
pub(crate) fn poll_write_app<W: AsyncWrite + Unpin>(
    conn: &mut Conn,
    io: &mut W,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    if let Some(e) = report_failure(conn, io, cx) {
        return Poll::Ready(Err(e));
    }
    // Keeps at most one record queued beyond what the transport took.
    ready!(poll_send(conn, io, cx))?;
    if data.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let n = conn.engine.seal(data).map_err(io_error)?;
    // Start sending now; a transport that is not ready keeps it queued,
    // and an error stays sticky for the next call.
    let _ = poll_send(conn, io, cx);
    Poll::Ready(Ok(n))
}

pub(crate) fn poll_flush_app<W: AsyncWrite + Unpin>(
    conn: &mut Conn,
    io: &mut W,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if let Some(e) = report_failure(conn, io, cx) {
        return Poll::Ready(Err(e));
    }
    ready!(poll_send(conn, io, cx))?;
    Pin::new(io).poll_flush(cx)
}

/// Queues close_notify (once), flushes it and shuts the transport's write
/// side. On a failed connection: sends the queued alert if it can and
/// shuts the transport down.
pub(crate) fn poll_shutdown_app<W: AsyncWrite + Unpin>(
    conn: &mut Conn,
    io: &mut W,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if conn.engine.error().is_none() && !conn.engine.sent_close() {
        conn.engine.close_notify().map_err(io_error)?;
    }
    let sent = ready!(poll_send(conn, io, cx));
    if conn.engine.error().is_none() {
        sent?;
    }
    Pin::new(io).poll_shutdown(cx)
}

/// The waker side of the idle timeout: one per direction (or half), since
/// a `Sleep` remembers only the last task that polled it.
#[derive(Default)]
pub(crate) struct IdleTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// `Ready` once no byte has moved on the transport, either way, for
    /// the idle timeout; else arranges a wake-up for when it would have.
    fn poll_expired(&mut self, conn: &Conn, cx: &mut Context<'_>) -> Poll<()> {
        let Some(idle) = conn.idle else {
            return Poll::Pending;
        };
        loop {
            // Activity on the other half moves the deadline too.
            let deadline = conn.last_activity + idle;
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Passes `r` through; a `Pending` that outlasts the idle timeout
    /// fails the connection with `TimedOut`.
    pub(crate) fn check<T>(
        &mut self,
        conn: &mut Conn,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if r.is_pending() && self.poll_expired(conn, cx).is_ready() {
            return Poll::Ready(Err(io_error(conn.engine.fail(Error::TimedOut))));
        }
        r
    }
}
