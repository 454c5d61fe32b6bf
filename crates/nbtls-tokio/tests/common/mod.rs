#![allow(dead_code)]
//! Test harness: a generated PKI, the openssl/curl peer runner shared with
//! nbtls's own tests, configs, and an in-memory connected pair.

#[path = "../../../nbtls/tests/common/peers.rs"]
pub mod peers;
pub mod pki;

use std::sync::Arc;
use std::time::Duration;

use nbtls::{CertifiedKey, ClientConfig, ServerConfig, TrustAnchors};
use nbtls_tokio::{TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::DuplexStream;

/// Bound on any wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn server_key(leaf: &pki::Leaf) -> Arc<CertifiedKey> {
    Arc::new(CertifiedKey::from_pem_files(&leaf.chain_pem, &leaf.key_pem).expect("test key loads"))
}

/// A server config for `localhost` over the test PKI.
pub fn server_config() -> ServerConfig {
    ServerConfig::new(server_key(&pki::pki().localhost))
}

/// A client config trusting the test CA, with read-ahead on.
pub fn client_config() -> ClientConfig {
    let anchors = TrustAnchors::from_pem_file(&pki::pki().ca_pem).expect("CA loads");
    ClientConfig::new(anchors).read_ahead(true)
}

/// A client and a server stream over one `tokio::io::duplex` pair,
/// handshaken (bounded by [`TIMEOUT`]).
pub async fn pair(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    buffer: usize,
) -> (TlsStream<DuplexStream>, TlsStream<DuplexStream>) {
    let (c_io, s_io) = tokio::io::duplex(buffer);
    let connector = TlsConnector::new(client).handshake_timeout(Some(TIMEOUT));
    let acceptor = TlsAcceptor::new(server).handshake_timeout(Some(TIMEOUT));
    let (c, s) = tokio::join!(connector.connect("localhost", c_io), acceptor.accept(s_io));
    (c.expect("client handshake"), s.expect("server handshake"))
}

/// Deterministic test data: `len` bytes depending on `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
