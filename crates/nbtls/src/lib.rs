//! nbtls: TLS 1.3 for programs that must never block. A sans-IO protocol
//! engine, and on it a GnuTLS-style non-blocking [`Session`] over any
//! [`Transport`].
//!
//! Modules: [`session`] (the public API), [`config`], [`transport`],
//! [`listener`] (a DTLS server for many clients on one UDP socket),
//! [`codec`], [`crypto`], [`record`], [`handshake`], [`x509`], [`error`].
//!
//! A DTLS server: [`DtlsListener`] demultiplexes one UDP socket by peer
//! address, runs the cookie exchange without per-client state, and hands
//! out one [`Session`] per client ([`Acceptor`] is its sans-IO core).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let config = Arc::new(nbtls::ServerConfig::from_pem_files(
//!     "cert.pem".as_ref(),
//!     "key.pem".as_ref(),
//! )?);
//! let mut listener = nbtls::DtlsListener::bind("0.0.0.0:4433", config)?;
//! loop {
//!     // accept() also routes datagrams to the sessions handed out: keep
//!     // calling it (or `process()` in an event loop) while they live.
//!     let (mut session, _peer) = listener.accept()?;
//!     std::thread::spawn(move || {
//!         let mut buf = [0u8; 1500];
//!         while let Ok(n @ 1..) = session.recv(&mut buf) {
//!             let _ = session.send(&buf[..n]);
//!         }
//!     });
//! }
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod crypto;
#[cfg(feature = "unstable-engine")]
pub mod engine;
#[cfg(not(feature = "unstable-engine"))]
pub(crate) mod engine;
pub mod error;
pub mod handshake;
pub mod listener;
pub mod record;
pub mod session;
pub mod transport;
pub mod x509;

pub use codec::SrtpProtectionProfile;
pub use config::{
    ClientAuth, ClientConfig, KeyLog, KeyLogFile, Limits, ServerConfig, SystemTimeSource,
    TimeSource,
};
pub use error::{Error, Result};
pub use handshake::resumption::{
    AntiReplay, ClientSession, MemorySessionStore, ServerSessionCache, SessionStore, Ticketer,
};
pub use handshake::tls13::SessionInfo;
pub use listener::{Acceptor, DtlsListener, ListenerConfig, PeerKey, PeerTransport};
pub use session::{Direction, Flags, Session, Shutdown, SrtpKeyingMaterial};
pub use transport::{FnTransport, IoTransport, MemoryDatagram, MemoryTransport, Transport};
pub use x509::{CertStore, CertifiedKey, TrustAnchors};

/// The README's examples compile as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod thread_safety {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    /// Configs are shared across threads; a session moves to any thread.
    #[test]
    fn configs_are_send_sync_and_sessions_send() {
        send_sync::<crate::ClientConfig>();
        send_sync::<crate::ServerConfig>();
        send_sync::<crate::Ticketer>();
        send::<crate::Session<std::net::TcpStream>>();
        send::<crate::Session<crate::MemoryTransport>>();
        send::<crate::Session<crate::PeerTransport>>();
        send::<crate::DtlsListener>();
    }
}
