//! nbtls DTLS sessions over loopback UDP sockets, one peer per socket, with every
//! wait bounded by [`TIMEOUT`].

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nbtls::{ClientConfig, Error, Flags, ServerConfig, Session};

use super::certs::CertFiles;
use super::peers::{gnutls_server, openssl_server, Peer};

/// Bound for a socket read and for a wait on the peer.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// `openssl s_server` over DTLS 1.2 serving `cert`, with `extra` arguments; it
/// prints what it receives and sends its stdin.
pub fn openssl_dtls_server(cert: &CertFiles, extra: &[&str]) -> (Peer, u16) {
    let mut args = vec![
        "-dtls1_2",
        "-cert",
        cert.chain_path(),
        "-key",
        cert.key_path(),
    ];
    args.extend(extra);
    openssl_server(&args)
}

/// `gnutls-serv` over DTLS serving `cert` and echoing what it receives, with
/// `extra` arguments.
pub fn gnutls_dtls_echo_server(cert: &CertFiles, extra: &[&str]) -> (Peer, u16) {
    let mut args = vec!["-u", "--echo", "--x509certfile", cert.chain_path()];
    args.extend(["--x509keyfile", cert.key_path()]);
    args.extend(extra);
    gnutls_server(&args)
}

/// A server socket on 127.0.0.1 and its port.
pub fn listen() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

/// A client session (before its handshake) to 127.0.0.1:`port`, named "localhost".
pub fn client(port: u16, config: Arc<ClientConfig>) -> Session<UdpSocket> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    Session::client(config, "localhost", sock, Flags::DATAGRAM).unwrap()
}

/// A server session (before its handshake) for the first client that writes to `sock`.
pub fn serve(sock: UdpSocket, config: Arc<ServerConfig>) -> Session<UdpSocket> {
    let mut probe = [0u8; 1];
    let (_, peer) = sock.peek_from(&mut probe).expect("first datagram");
    sock.connect(peer).unwrap();
    let id = peer.to_string();
    Session::server_datagram(config, id.as_bytes(), sock, Flags::DATAGRAM).unwrap()
}

/// One received datagram's length, retrying `Again` until [`TIMEOUT`]; panics with
/// `what` on an error.
pub fn recv_within(s: &mut Session<UdpSocket>, buf: &mut [u8], what: &str) -> usize {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match s.recv(buf) {
            Ok(n) => return n,
            Err(Error::Again) if Instant::now() < deadline => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
