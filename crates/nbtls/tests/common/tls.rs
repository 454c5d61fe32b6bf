//! nbtls configurations and in-memory session pairs over the test PKI.

use std::sync::Arc;

use nbtls::{
    CertifiedKey, ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Transport,
    TrustAnchors,
};

use super::certs::{pki, CertFiles};

pub fn certified_key(files: &CertFiles) -> Arc<CertifiedKey> {
    Arc::new(CertifiedKey::from_pem_files(&files.chain_pem, &files.key_pem).expect("test key"))
}

/// A client trusting the test CA.
pub fn client_config() -> ClientConfig {
    ClientConfig::new(TrustAnchors::from_certs(&[pki().ca_cert()]).expect("anchors"))
}

/// A server presenting the ECDSA `localhost` certificate.
pub fn server_config() -> ServerConfig {
    ServerConfig::new(certified_key(&pki().server_ecdsa))
}

pub fn pair(
    client: ClientConfig,
    server: ServerConfig,
    flags: Flags,
) -> (Session<MemoryTransport>, Session<MemoryTransport>) {
    let (a, b) = MemoryTransport::pair();
    let c = Session::client(Arc::new(client), "localhost", a, flags).expect("client session");
    let s = Session::server(Arc::new(server), b, flags).expect("server session");
    (c, s)
}

/// Alternates handshake calls until both finish (or one fails).
pub fn handshake<A: Transport, B: Transport>(
    c: &mut Session<A>,
    s: &mut Session<B>,
) -> Result<(), Error> {
    let (mut cd, mut sd) = (false, false);
    for _ in 0..10_000 {
        if !cd {
            match c.handshake() {
                Ok(()) => cd = true,
                Err(Error::Again | Error::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        if !sd {
            match s.handshake() {
                Ok(()) => sd = true,
                Err(Error::Again | Error::Interrupted | Error::ClientHelloPaused) => {}
                Err(e) => return Err(e),
            }
        }
        if cd && sd {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}
