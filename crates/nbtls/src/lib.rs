//! nbtls: TLS 1.3 for programs that must never block. A sans-IO protocol
//! engine, and on it a GnuTLS-style non-blocking [`Session`] over any
//! [`Transport`].
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
    }
}
