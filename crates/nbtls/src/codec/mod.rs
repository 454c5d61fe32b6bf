//! Wire types: records, handshake messages, extensions, alerts. Encoding
//! and decoding go through one cursor ([`Reader`]) with explicit length
//! checks; nothing here knows about connection state.

pub mod extensions;
pub mod handshake;
pub mod reader;
pub mod types;

pub use extensions::*;
pub use handshake::*;
pub use reader::{put_prefixed, put_u16, put_u24, put_u32, put_u8, put_vec, Codec, Reader};
pub use types::*;
