//! Choosing the server configuration after the ClientHello.
//!
//! The acceptor reads the ClientHello itself and only then starts the
//! engine, with the chosen config, on the bytes it read. (The engine's own
//! pause, `ServerConfig::pause_after_client_hello`, comes after the
//! protocol version was chosen under the first config and only for TLS 1.3
//! hellos, so it cannot choose everything a config decides.)

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nbtls::codec::{AlertDescription, ClientHello, ContentType, Reader};
use nbtls::engine::Engine;
use nbtls::record::{HEADER_LEN, MAX_PLAINTEXT};
use nbtls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::{Accept, Handshaking, TlsAcceptor};

/// Largest ClientHello accepted (the engine's default handshake-message
/// limit).
const MAX_HELLO: usize = 64 * 1024;
const HANDSHAKE_HEADER: usize = 4;
const CLIENT_HELLO: u8 = 1;
/// Bytes asked of the transport per read while looking for the hello.
const READ_CHUNK: usize = 4096;

/// Reads a connection's ClientHello and stops there: the server inspects
/// it ([`StartHandshake::client_hello`], SNI, ALPN) and then goes on with
/// the config it picks ([`StartHandshake::into_stream`]). Works for TLS
/// 1.2 and TLS 1.3 clients alike.
///
/// Cancel safety: dropping it drops the transport (the connection is
/// abandoned).
pub struct LazyConfigAcceptor<IO> {
    io: Option<IO>,
    /// Everything read from the transport so far.
    buf: Vec<u8>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<IO> LazyConfigAcceptor<IO> {
    pub fn new(io: IO) -> Self {
        LazyConfigAcceptor {
            io: Some(io),
            buf: Vec::new(),
            deadline: None,
        }
    }

    /// Bound on the whole handshake, this wait for the ClientHello
    /// included: the [`Accept`] of `into_stream` gets what is left.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        self
    }
}

impl<IO> fmt::Debug for LazyConfigAcceptor<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyConfigAcceptor")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

enum Peek {
    NeedMore,
    Hello(Box<ClientHello>),
    Bad(AlertDescription, &'static str),
}

/// Looks for a whole ClientHello in the plaintext records at the start of
/// `buf` (it may span several records).
fn peek(buf: &[u8]) -> Peek {
    let mut hs = Vec::new();
    let mut at = 0;
    loop {
        if hs.len() >= HANDSHAKE_HEADER {
            if hs[0] != CLIENT_HELLO {
                return Peek::Bad(
                    AlertDescription::UNEXPECTED_MESSAGE,
                    "the first handshake message is not a ClientHello",
                );
            }
            let len = usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]);
            if len > MAX_HELLO {
                return Peek::Bad(AlertDescription::DECODE_ERROR, "ClientHello too large");
            }
            if hs.len() >= HANDSHAKE_HEADER + len {
                let body = &hs[HANDSHAKE_HEADER..HANDSHAKE_HEADER + len];
                return match ClientHello::read_body(&mut Reader::new(body), false) {
                    Ok(hello) => Peek::Hello(Box::new(hello)),
                    Err(e) => Peek::Bad(
                        e.alert().unwrap_or(AlertDescription::DECODE_ERROR),
                        "malformed ClientHello",
                    ),
                };
            }
        }
        let rest = &buf[at..];
        if rest.len() < HEADER_LEN {
            return Peek::NeedMore;
        }
        if ContentType(rest[0]) != ContentType::HANDSHAKE || rest[1] != 3 {
            return Peek::Bad(
                AlertDescription::UNEXPECTED_MESSAGE,
                "not a TLS handshake record",
            );
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > MAX_PLAINTEXT {
            return Peek::Bad(
                AlertDescription::DECODE_ERROR,
                "bad plaintext record length",
            );
        }
        if rest.len() < HEADER_LEN + len {
            return Peek::NeedMore;
        }
        hs.extend_from_slice(&rest[HEADER_LEN..HEADER_LEN + len]);
        at += HEADER_LEN + len;
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for LazyConfigAcceptor<IO> {
    type Output = io::Result<StartHandshake<IO>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let Some(io) = this.io.as_mut() else {
                panic!("LazyConfigAcceptor polled after completion");
            };
            match peek(&this.buf) {
                Peek::Hello(hello) => {
                    return Poll::Ready(Ok(StartHandshake {
                        io: this.io.take().expect("checked above"),
                        buf: std::mem::take(&mut this.buf),
                        hello,
                        deadline: this.deadline.take(),
                    }));
                }
                Peek::Bad(alert, why) => {
                    // A plaintext fatal alert, best effort: the client may
                    // not even speak TLS.
                    let record = [ContentType::ALERT.0, 3, 3, 0, 2, 2, alert.0];
                    let _ = Pin::new(io).poll_write(cx, &record);
                    this.io = None;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
                Peek::NeedMore => {}
            }
            let old = this.buf.len();
            this.buf.resize(old + READ_CHUNK, 0);
            let mut rb = ReadBuf::new(&mut this.buf[old..]);
            let r = Pin::new(&mut *io).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            this.buf.truncate(old + got);
            match r {
                Poll::Ready(Ok(())) if got == 0 => {
                    this.io = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed before its ClientHello",
                    )));
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    this.io = None;
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    if let Some(d) = &mut this.deadline {
                        if d.as_mut().poll(cx).is_ready() {
                            this.io = None;
                            return Poll::Ready(Err(crate::io_error(nbtls::Error::TimedOut)));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// A connection stopped after its ClientHello ([`LazyConfigAcceptor`]).
pub struct StartHandshake<IO> {
    io: IO,
    /// The bytes read so far: the hello, and anything after it.
    buf: Vec<u8>,
    hello: Box<ClientHello>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<IO> StartHandshake<IO> {
    pub fn client_hello(&self) -> &ClientHello {
        &self.hello
    }

    /// The SNI host name the client sent, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.hello.server_name()
    }

    /// The ALPN protocols the client offered, in its order.
    pub fn alpn(&self) -> impl Iterator<Item = &[u8]> {
        self.hello
            .alpn()
            .unwrap_or(&[])
            .iter()
            .map(|p| p.as_slice())
    }

    /// Goes on with `config`: the handshake runs on the bytes already read,
    /// then on the transport.
    pub fn into_stream(self, config: Arc<ServerConfig>) -> Accept<IO> {
        self.into_stream_with(&TlsAcceptor::new(config))
    }

    /// Goes on with `acceptor`'s config and its idle timeout; its
    /// handshake timeout applies unless the `LazyConfigAcceptor` had one.
    pub fn into_stream_with(self, acceptor: &TlsAcceptor) -> Accept<IO> {
        let mut engine = Engine::server(acceptor.config.clone());
        engine.feed(&self.buf);
        let deadline = self.deadline.or_else(|| {
            acceptor
                .handshake_timeout
                .map(|t| Box::pin(tokio::time::sleep(t)))
        });
        Accept(Handshaking::with_deadline(
            self.io,
            engine,
            deadline,
            acceptor.idle_timeout,
        ))
    }

    /// Gives up on TLS: the transport and the bytes read from it.
    pub fn into_inner(self) -> (IO, Vec<u8>) {
        (self.io, self.buf)
    }
}

impl<IO> fmt::Debug for StartHandshake<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartHandshake")
            .field("server_name", &self.server_name())
            .finish_non_exhaustive()
    }
}
