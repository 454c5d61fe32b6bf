//! Many DTLS clients on one tokio `UdpSocket`: a background task reads the
//! socket, runs nbtls's sans-IO [`Acceptor`] (stateless cookies, bounded
//! half-open handshakes, restarts, idle expiry) and routes each
//! established client's datagrams to its [`DtlsStream`] through a bounded
//! channel, so sessions make progress whether or not `accept` is being
//! called.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use nbtls::listener::{Acceptor, ListenerConfig, PeerKey, Route};
use nbtls::ServerConfig;
use tokio::io::ReadBuf;
use tokio::net::{ToSocketAddrs, UdpSocket};
use tokio::sync::mpsc;

use crate::dtls::{DatagramIo, DtlsStream, DATAGRAM_BUF};

/// Sessions accepted but not yet taken by `accept`.
const ACCEPT_BACKLOG: usize = 64;

type AcceptItem = io::Result<(DtlsStream<PeerChannel>, SocketAddr)>;

/// Accepts DTLS clients on one UDP socket.
pub struct DtlsListener {
    accepted: mpsc::Receiver<AcceptItem>,
    local_addr: SocketAddr,
}

impl DtlsListener {
    /// Binds `addr` with the default [`ListenerConfig`]. Must be called
    /// within a tokio runtime (it spawns the socket task).
    pub async fn bind(addr: impl ToSocketAddrs, config: Arc<ServerConfig>) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        Self::from_socket(socket, config, ListenerConfig::default())
    }

    /// Serves on `socket` (unconnected). Must be called within a tokio
    /// runtime.
    pub fn from_socket(
        socket: UdpSocket,
        config: Arc<ServerConfig>,
        limits: ListenerConfig,
    ) -> io::Result<Self> {
        let local_addr = socket.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPT_BACKLOG);
        let max_queued = limits.max_queued.max(1);
        // Detached: it ends by itself (see `run`).
        tokio::spawn(run(
            Arc::new(socket),
            Acceptor::new(config, limits),
            tx,
            max_queued,
        ));
        Ok(DtlsListener {
            accepted,
            local_addr,
        })
    }

    /// The next client whose handshake completed. Cancellation safe: a
    /// session is never lost when this future is dropped.
    pub async fn accept(&mut self) -> io::Result<(DtlsStream<PeerChannel>, SocketAddr)> {
        match self.accepted.recv().await {
            Some(r) => r,
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the DTLS listener's socket task has ended",
            )),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl fmt::Debug for DtlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// One client's datagrams, as the listener routes them; sends go out on
/// the shared socket. Once the listener forgets the client (idle, replaced
/// by a restart, or the socket task ended) a receive fails with
/// `ConnectionAborted`.
pub struct PeerChannel {
    rx: mpsc::Receiver<Vec<u8>>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl PeerChannel {
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

impl DatagramIo for PeerChannel {
    fn poll_recv_datagram(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(d)) => {
                let n = d.len().min(buf.remaining());
                buf.put_slice(&d[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the DTLS listener no longer routes to this client \
                 (idle timeout, replaced by a new handshake, or listener gone)",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_send_datagram(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.socket.poll_send_to(cx, data, self.peer)
    }

    fn peer_id(&self) -> Vec<u8> {
        PeerKey::client_id(&self.peer)
    }
}

impl fmt::Debug for PeerChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerChannel")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Errors a UDP receive reports for one peer (ICMP), not for the socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The socket task: ends on a socket error (reported to `accept`) or once
/// the listener and every session it handed out are gone (noticed at the
/// next datagram or timer, at the latest when the idle timeout forgets
/// the last session).
async fn run(
    socket: Arc<UdpSocket>,
    mut acceptor: Acceptor<SocketAddr>,
    accepted: mpsc::Sender<AcceptItem>,
    max_queued: usize,
) {
    let mut routes: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM_BUF];
    loop {
        while let Some((to, d)) = acceptor.poll_transmit() {
            // Best effort, like any datagram: a failed send is a loss.
            let _ = socket.send_to(&d, to).await;
        }
        while let Some(a) = acceptor.poll_accept() {
            let peer = *a.key();
            let (tx, rx) = mpsc::channel(max_queued);
            // Replacing a route drops the old sender: a restarted client's
            // old session sees `ConnectionAborted`.
            routes.insert(peer, tx);
            let io = PeerChannel {
                rx,
                socket: socket.clone(),
                peer,
            };
            let stream = DtlsStream::established(io, a.into_engine());
            if accepted.send(Ok((stream, peer))).await.is_err() {
                routes.remove(&peer);
                acceptor.forget(&peer);
            }
        }
        while let Some(peer) = acceptor.poll_expired() {
            routes.remove(&peer);
        }
        if accepted.is_closed() {
            routes.retain(|peer, tx| {
                let live = !tx.is_closed();
                if !live {
                    acceptor.forget(peer);
                }
                live
            });
            if routes.is_empty() {
                return;
            }
        }
        let deadline = acceptor.timeout().map(tokio::time::Instant::from_std);
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if acceptor.handle_datagram(from, &buf[..n]) == Route::Session {
                        if let Some(tx) = routes.get(&from) {
                            match tx.try_send(buf[..n].to_vec()) {
                                // A full queue drops the datagram, as a socket would.
                                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                                Err(mpsc::error::TrySendError::Closed(_)) => {
                                    routes.remove(&from);
                                    acceptor.forget(&from);
                                }
                            }
                        }
                    }
                }
                Err(e) if transient(&e) => {}
                Err(e) => {
                    let _ = accepted.send(Err(e)).await;
                    return;
                }
            },
            () = timer => acceptor.handle_timeout(),
            // The listener was dropped: re-check whether sessions remain.
            () = accepted.closed(), if !accepted.is_closed() => {}
        }
    }
}
