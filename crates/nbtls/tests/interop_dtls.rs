//! DTLS 1.2 against OpenSSL and GnuTLS over real UDP sockets, both roles.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::pki;
use common::peers::{gnutls_client, gnutls_server, openssl_client, openssl_server, require_tools};
use common::tls::{client_config, server_config};
use nbtls::codec::ProtocolVersion;
use nbtls::{Error, Flags, Session};

const TIMEOUT: Duration = Duration::from_secs(15);

fn client_to(port: u16) -> Session<UdpSocket> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut s = Session::client(
        Arc::new(client_config()),
        "localhost",
        sock,
        Flags::DATAGRAM,
    )
    .unwrap();
    s.handshake().expect("DTLS handshake");
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::DTLS1_2));
    s
}

/// A server session for the first client that writes to `sock`.
fn serve(sock: UdpSocket) -> Session<UdpSocket> {
    let mut probe = [0u8; 1];
    let (_, peer) = sock.peek_from(&mut probe).expect("first datagram");
    sock.connect(peer).unwrap();
    let id = peer.to_string();
    let mut s = Session::server_datagram(
        Arc::new(server_config()),
        id.as_bytes(),
        sock,
        Flags::DATAGRAM,
    )
    .unwrap();
    s.handshake().expect("DTLS handshake");
    s
}

fn listen() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

#[test]
fn nbtls_client_to_openssl_and_gnutls_servers() {
    if !require_tools(&["openssl", "gnutls-serv"]) {
        return;
    }
    let p = pki();
    let (mut srv, port) = openssl_server(&[
        "-dtls1_2",
        "-cert",
        p.server_ecdsa.chain_path(),
        "-key",
        p.server_ecdsa.key_path(),
    ]);
    let mut c = client_to(port);
    c.send(b"hello openssl\n").unwrap();
    assert!(
        srv.wait_for_output("hello openssl", TIMEOUT),
        "{}",
        srv.dump()
    );
    srv.write_stdin(b"hello nbtls\n").unwrap();
    let mut buf = [0u8; 100];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello nbtls\n");

    let (mut g, port) = gnutls_server(&[
        "-u",
        "--echo",
        "--x509certfile",
        p.server_rsa.chain_path(),
        "--x509keyfile",
        p.server_rsa.key_path(),
    ]);
    let mut c = client_to(port);
    c.send(b"echo me\n").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let n = loop {
        match c.recv(&mut buf) {
            Ok(n) => break n,
            Err(Error::Again) if Instant::now() < deadline => {}
            Err(e) => panic!("{e}: {}", g.dump()),
        }
    };
    assert_eq!(&buf[..n], b"echo me\n");
    g.kill();
}

#[test]
fn openssl_and_gnutls_clients_to_nbtls_server() {
    if !require_tools(&["openssl", "gnutls-cli"]) {
        return;
    }
    let p = pki();
    for tool in ["openssl", "gnutls"] {
        let (sock, port) = listen();
        let mut peer = if tool == "openssl" {
            openssl_client(port, &["-dtls1_2", "-CAfile", p.ca_path(), "-quiet"])
        } else {
            gnutls_client(port, &["-u", "--x509cafile", p.ca_path()])
        };
        let mut s = serve(sock);
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::DTLS1_2),
            "{tool}"
        );
        peer.write_stdin(b"from the peer\n").unwrap();
        let mut buf = [0u8; 100];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from the peer\n", "{tool}");
        s.send(b"from nbtls\n").unwrap();
        assert!(
            peer.wait_for_output("from nbtls", TIMEOUT),
            "{tool}: {}",
            peer.dump()
        );
        peer.kill();
    }
}
