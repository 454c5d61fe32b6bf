//! A DTLS 1.2 server for many clients on one UDP socket.
//!
//! * [`verify_hello`] is the stateless cookie check (RFC 6347 §4.2.1) on one
//!   raw datagram: [`HelloCheck::SendHelloVerify`] (the reply to send),
//!   [`HelloCheck::Accept`] (with the [`Prestate`] a handshake continues
//!   from) or [`HelloCheck::Drop`]. A ClientHello without a valid cookie
//!   costs a parse, an HMAC and the reply, and allocates no session. The
//!   verdict enum is non-exhaustive so DTLS 1.3's HelloRetryRequest cookie
//!   fits later.
//! * [`Acceptor`] is the sans-IO core, generic over the demultiplexing key
//!   ([`PeerKey`]: the peer's address now, a connection ID (RFC 9146)
//!   later). It owns at most [`ListenerConfig::max_half_open`] handshakes
//!   in progress (beyond that, verified ClientHellos are dropped and the
//!   client retransmits), drives their retransmission timers, hands out
//!   each completed handshake once ([`Acceptor::poll_accept`]), routes
//!   later datagrams to that session ([`Route::Session`]) and forgets
//!   sessions that received nothing for [`ListenerConfig::idle_timeout`]
//!   ([`Acceptor::poll_expired`]).
//! * [`DtlsListener`] runs an acceptor over a `std::net::UdpSocket` and
//!   hands out `Session<PeerTransport>`.
//!
//! **A client restarting on the same address** sends a new epoch-0
//! ClientHello: it goes through the cookie exchange like any other, and the
//! old session keeps receiving its traffic until the new handshake
//! completes; only then is it replaced ([`Accepted::replaces`]; RFC 6347
//! §4.2.8).
//!
//! **Fragmented ClientHellos are dropped.** The stateless check reads one
//! datagram and keeps nothing, so a ClientHello split over several records
//! or datagrams (a client MTU below its hello's size, e.g. a large
//! post-quantum key share) cannot be verified: it is dropped without an
//! answer ([`DropReason::Fragmented`]) and the client's handshake times
//! out. Clients must send their ClientHello in one datagram (nbtls,
//! OpenSSL and GnuTLS do at the usual MTUs). A server that must accept
//! fragmented hellos can run a stateful [`crate::Session::server_datagram`]
//! per peer instead, whose engine reassembles them.
//!
//! ```no_run
//! use std::sync::Arc;
//! use nbtls::listener::DtlsListener;
//! use nbtls::ServerConfig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Arc::new(ServerConfig::from_pem_files(
//!     "cert.pem".as_ref(),
//!     "key.pem".as_ref(),
//! )?);
//! let mut listener = DtlsListener::bind("127.0.0.1:4433", config)?;
//! loop {
//!     // accept() also routes datagrams to the sessions already handed
//!     // out: keep calling it (or process() in an event loop).
//!     let (mut session, peer) = listener.accept()?;
//!     std::thread::spawn(move || {
//!         let mut buf = [0u8; 1500];
//!         while let Ok(n) = session.recv(&mut buf) {
//!             if n == 0 || session.send(&buf[..n]).is_err() {
//!                 break;
//!             }
//!         }
//!         eprintln!("{peer} done");
//!     });
//! }
//! # }
//! ```

mod acceptor;
mod udp;
mod verify;

use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Duration;

pub use acceptor::{Accepted, Acceptor, AcceptorStats, Route};
pub use udp::{DtlsListener, PeerTransport};
pub use verify::{verify_hello, DropReason, HelloCheck, Prestate};

/// The key datagrams are demultiplexed by.
pub trait PeerKey: Eq + Hash + Clone + std::fmt::Debug {
    /// The bytes a cookie is bound to: the peer's address, so a cookie
    /// proves the client receives at it.
    fn client_id(&self) -> Vec<u8>;
}

impl PeerKey for SocketAddr {
    fn client_id(&self) -> Vec<u8> {
        let mut id = match self.ip() {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        id.extend_from_slice(&self.port().to_be_bytes());
        id
    }
}

/// The listener's limits (the TLS settings are the `ServerConfig`'s).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Most handshakes in progress at once (default 256).
    pub max_half_open: usize,
    /// A session that received no datagram for this long is forgotten
    /// (default 5 minutes).
    pub idle_timeout: Duration,
    /// A handshake not completed within this is abandoned (default 60 s).
    pub handshake_timeout: Duration,
    /// The MTU handshake flights are cut to (default 1200).
    pub mtu: usize,
    /// [`DtlsListener`]: datagrams queued per session not yet pulled;
    /// more are dropped (default 256).
    pub max_queued: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_half_open: 256,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(60),
            mtu: 1200,
            max_queued: 256,
        }
    }
}

#[cfg(test)]
mod tests;
