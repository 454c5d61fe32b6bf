//! nbtls sessions over loopback TCP against a peer process, with every wait
//! bounded by [`TIMEOUT`](super::peers::TIMEOUT).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nbtls::{ClientConfig, Error, Flags, ServerConfig, Session, TrustAnchors};

use super::certs::{pki, CertFiles};
use super::peers::{tcp_connect, Peer, TIMEOUT};
use super::tls::certified_key;

pub fn anchors() -> TrustAnchors {
    TrustAnchors::from_certs(&[pki().ca_cert()]).expect("anchors")
}

pub fn server_with(files: &CertFiles) -> ServerConfig {
    ServerConfig::new(certified_key(files))
}

/// An nbtls client session to 127.0.0.1:`port` (SNI and name check `localhost`), after
/// its handshake.
pub fn connect(port: u16, config: ClientConfig) -> Result<Session<TcpStream>, Error> {
    let stream = tcp_connect(port);
    let mut s = Session::client(Arc::new(config), "localhost", stream, Flags::NONE)
        .expect("client session");
    s.set_handshake_timeout(Some(TIMEOUT));
    s.handshake().map(|()| s)
}

/// Accepts the connection `peer` (an s_client) makes, bounded by [`TIMEOUT`], and
/// runs an nbtls server handshake on it.
pub fn serve(
    listener: &TcpListener,
    peer: &mut Peer,
    config: ServerConfig,
) -> (Session<TcpStream>, Result<(), Error>) {
    let stream = accept(listener, peer);
    let mut s = Session::server(Arc::new(config), stream, Flags::NONE).expect("server session");
    s.set_handshake_timeout(Some(TIMEOUT));
    let r = s.handshake();
    (s, r)
}

pub fn accept(listener: &TcpListener, peer: &mut Peer) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !peer.is_running() {
                    panic!("peer exited before connecting\n{}", peer.dump());
                }
                if Instant::now() >= deadline {
                    panic!("no connection within {TIMEOUT:?}\n{}", peer.dump());
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}
