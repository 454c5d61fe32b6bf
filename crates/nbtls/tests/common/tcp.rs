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

pub fn send_all<T: nbtls::Transport>(s: &mut Session<T>, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        let n = s.send(data)?;
        data = &data[n..];
    }
    Ok(())
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Receives until the bytes so far contain `needle`; an error says what came instead.
pub fn recv_until(s: &mut Session<TcpStream>, needle: &str) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + TIMEOUT;
    while !contains(&got, needle.as_bytes()) {
        if Instant::now() >= deadline {
            return Err(format!(
                "no {needle:?} within {TIMEOUT:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        match s.recv(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "close_notify before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(format!(
                    "recv failed before {needle:?}: {e:?}; got {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
        }
    }
    Ok(got)
}

pub fn expect_output(peer: &mut Peer, needle: &str, case: &str) {
    assert!(
        peer.wait_for_output(needle, TIMEOUT),
        "{case}: the peer never printed {needle:?}\n{}",
        peer.dump()
    );
}

/// Waits until `needle` occurs at least `n` times in the peer's output.
pub fn wait_count(peer: &mut Peer, needle: &str, n: usize) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while peer.count_output(needle) < n {
        if Instant::now() >= deadline || !peer.is_running() {
            return peer.count_output(needle) >= n;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn wait_verified(peer: &mut Peer, case: &str) {
    assert!(
        peer.wait_for_output("Verify return code: 0 (ok)", TIMEOUT),
        "{case}: s_client did not finish a verified handshake\n{}",
        peer.dump()
    );
}
