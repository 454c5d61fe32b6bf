//! Async TLS for tokio on the nbtls sans-IO engine.
//!
//! [`TlsConnector`] and [`TlsAcceptor`] run the handshake over any
//! `AsyncRead + AsyncWrite + Unpin` transport (a `TcpStream`, one end of
//! `tokio::io::duplex`, a hyper upgrade, ...) and give a [`TlsStream`].
//! [`LazyConfigAcceptor`] stops at the ClientHello so a server can pick
//! its configuration by SNI or ALPN. [`DtlsConnector`] and [`DtlsAcceptor`]
//! give a [`DtlsStream`]: DTLS 1.2 over a connected `UdpSocket`, its
//! retransmission timer carried by `tokio::time`; [`DtlsListener`] serves
//! many DTLS clients on one socket (stateless cookies, bounded half-open
//! handshakes).
//!
//! ```no_run
//! # async fn demo(config: std::sync::Arc<nbtls::ClientConfig>) -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let tcp = tokio::net::TcpStream::connect("example.com:443").await?;
//! let connector = nbtls_tokio::TlsConnector::new(config)
//!     .handshake_timeout(Some(std::time::Duration::from_secs(10)));
//! let mut tls = connector.connect("example.com", tcp).await?;
//! tls.write_all(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n").await?;
//! tls.flush().await?;
//! let mut page = Vec::new();
//! tls.read_to_end(&mut page).await?;
//! # Ok(()) }
//! ```
//!
//! See [`TlsStream`] for the read/write contract, cancellation safety
//! and splitting.
#![forbid(unsafe_code)]

mod conn;
mod dtls;
mod dtls_listener;
mod lazy;
mod stream;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nbtls::engine::Engine;
use nbtls::{ClientConfig, Error, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::conn::{io_error, Conn};
pub use crate::dtls::{DatagramIo, DtlsAcceptor, DtlsConnector, DtlsStream};
pub use crate::dtls_listener::{DtlsListener, PeerChannel};
pub use crate::lazy::{LazyConfigAcceptor, StartHandshake};
pub use crate::stream::{ReadHalf, TlsStream, WriteHalf};
pub use nbtls;

/// Starts client connections with one configuration.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    handshake_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl TlsConnector {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        TlsConnector {
            config,
            handshake_timeout: None,
            idle_timeout: None,
        }
    }

    /// Bound on the whole handshake (as `tokio::time::timeout` around it);
    /// `TimedOut` after. Needs a runtime with the time driver.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The idle timeout of the streams this makes
    /// ([`TlsStream::set_idle_timeout`]).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Handshakes as a client of `server_name` (a DNS name or an IP
    /// address) over `io`.
    pub fn connect<IO>(&self, server_name: &str, io: IO) -> Connect<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let hs = match ServerName::try_from(server_name.to_string()) {
            Ok(name) => self.connect_with_name(name, io).0,
            Err(_) => Handshaking::failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid server name {server_name:?}"),
            )),
        };
        Connect(hs)
    }

    pub fn connect_with_name<IO>(&self, server_name: ServerName<'static>, io: IO) -> Connect<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        Connect(match Engine::client(self.config.clone(), server_name) {
            Ok(engine) => Handshaking::new(io, engine, self.handshake_timeout, self.idle_timeout),
            Err(e) => Handshaking::failed(io_error(e)),
        })
    }
}

impl From<Arc<ClientConfig>> for TlsConnector {
    fn from(config: Arc<ClientConfig>) -> Self {
        Self::new(config)
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// Accepts server connections with one configuration.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    handshake_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl TlsAcceptor {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            config,
            handshake_timeout: None,
            idle_timeout: None,
        }
    }

    /// Bound on the whole handshake (as `tokio::time::timeout` around it);
    /// `TimedOut` after. Needs a runtime with the time driver.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The idle timeout of the streams this makes
    /// ([`TlsStream::set_idle_timeout`]).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Handshakes as a server over `io`. A config with
    /// `pause_after_client_hello` is resumed at once; use
    /// [`LazyConfigAcceptor`] to choose a config per ClientHello.
    pub fn accept<IO>(&self, io: IO) -> Accept<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let engine = Engine::server(self.config.clone());
        Accept(Handshaking::new(
            io,
            engine,
            self.handshake_timeout,
            self.idle_timeout,
        ))
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self::new(config)
    }
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// A handshake in progress, both sides.
struct Handshaking<IO> {
    state: Option<(IO, Conn)>,
    /// A failure found before any I/O (bad server name, config error).
    early_error: Option<io::Error>,
    deadline: Option<Pin<Box<Sleep>>>,
    idle_timeout: Option<Duration>,
}

impl<IO> Handshaking<IO> {
    fn new(
        io: IO,
        engine: Engine,
        timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        let deadline = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
        Self::with_deadline(io, engine, deadline, idle_timeout)
    }

    fn with_deadline(
        io: IO,
        engine: Engine,
        deadline: Option<Pin<Box<Sleep>>>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        Handshaking {
            state: Some((io, Conn::new(engine))),
            early_error: None,
            deadline,
            idle_timeout,
        }
    }

    fn failed(e: io::Error) -> Self {
        Handshaking {
            state: None,
            early_error: Some(e),
            deadline: None,
            idle_timeout: None,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Handshaking<IO> {
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TlsStream<IO>>> {
        if let Some(e) = self.early_error.take() {
            return Poll::Ready(Err(e));
        }
        let Some((io, conn)) = self.state.as_mut() else {
            panic!("handshake future polled after completion");
        };
        match conn::poll_handshake(conn, io, cx) {
            Poll::Ready(Ok(())) => {
                let (io, mut conn) = self.state.take().expect("state checked above");
                conn.set_idle_timeout(self.idle_timeout);
                Poll::Ready(Ok(TlsStream::new(io, conn)))
            }
            Poll::Ready(Err(e)) => {
                self.state = None;
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                let expired = match &mut self.deadline {
                    Some(d) => d.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if expired {
                    self.state = None;
                    return Poll::Ready(Err(io_error(Error::TimedOut)));
                }
                Poll::Pending
            }
        }
    }
}

/// The client handshake ([`TlsConnector::connect`]). Dropping it abandons
/// the handshake and drops the transport.
pub struct Connect<IO>(Handshaking<IO>);

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Connect<IO> {
    type Output = io::Result<TlsStream<IO>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_done(cx)
    }
}

/// The server handshake ([`TlsAcceptor::accept`],
/// [`StartHandshake::into_stream`]). Dropping it abandons the handshake
/// and drops the transport.
pub struct Accept<IO>(Handshaking<IO>);

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Accept<IO> {
    type Output = io::Result<TlsStream<IO>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_done(cx)
    }
}

impl<IO> fmt::Debug for Connect<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect").finish_non_exhaustive()
    }
}

impl<IO> fmt::Debug for Accept<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept").finish_non_exhaustive()
    }
}
