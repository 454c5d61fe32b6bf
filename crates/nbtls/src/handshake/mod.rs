//! Handshake state machines. They touch no socket and read no clock: the
//! engine feeds them messages and they queue messages and install keys
//! through [`tls13::Context`].

pub mod dtls;
pub mod resumption;
pub mod tls12;
pub mod tls13;
pub mod transcript;
