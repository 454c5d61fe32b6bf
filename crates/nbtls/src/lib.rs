//! nbtls: TLS 1.3 (and, later, TLS 1.2 and DTLS 1.2) for programs that must
//! never block. A sans-IO protocol engine, and on it a GnuTLS-style
//! non-blocking [`Session`] over any [`Transport`].
#![forbid(unsafe_code)]

pub mod codec;
pub mod crypto;
pub mod error;
pub mod x509;

pub use error::{Error, Result};
