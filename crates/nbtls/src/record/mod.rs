//! Record protection and framing. Knows records, not handshake states.

pub mod buffer;
pub mod dtls;
pub mod pool;
pub mod replay;
pub mod tls;

pub use buffer::{InBuf, OutQueue};
pub use tls::{RecordHeader, RecordLayer, HEADER_LEN, MAX_CIPHERTEXT, MAX_PLAINTEXT};
