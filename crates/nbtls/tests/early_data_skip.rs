//! A server that does not accept 0-RTT still skips a client's early data
//! (RFC 8446 §4.2.10): records that do not open under the handshake key are
//! dropped, up to a budget, and the handshake goes on.

mod common;

use std::sync::Arc;

use common::tls::{client_config, server_config};
use nbtls::codec::{
    put_handshake, AlertDescription, ClientExtension, ClientHello, Codec, HandshakeType, Reader,
};
use nbtls::{Error, Flags, MemoryTransport, Session, Transport};

/// The client's first flight, with `early_data` added to its ClientHello,
/// as one plaintext record.
fn hello_with_early_data() -> Vec<u8> {
    let (a, mut b) = MemoryTransport::pair();
    let mut c =
        Session::client(Arc::new(client_config()), "localhost", a, Flags::NONBLOCK).unwrap();
    assert_eq!(c.handshake().unwrap_err(), Error::Again);
    let mut raw = vec![0u8; 8192];
    let n = b.pull(&mut raw).unwrap();
    let mut r = Reader::new(&raw[5..n]);
    assert_eq!(r.u8("type").unwrap(), HandshakeType::CLIENT_HELLO.0);
    let body = r.vec_u24("body").unwrap();
    let mut hello = ClientHello::from_bytes(body).unwrap();
    hello.extensions.push(ClientExtension::EarlyData);
    let mut msg = Vec::new();
    put_handshake(&mut msg, HandshakeType::CLIENT_HELLO, |o| hello.encode(o));
    record(22, &msg)
}

fn record(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![typ, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn server() -> (Session<MemoryTransport>, MemoryTransport) {
    let (a, b) = MemoryTransport::pair();
    (
        Session::server(Arc::new(server_config()), a, Flags::NONBLOCK).unwrap(),
        b,
    )
}

#[test]
fn refused_early_data_is_skipped() {
    let (mut s, mut peer) = server();
    peer.push(&hello_with_early_data()).unwrap();
    // Three records of "early data" the server has no key for.
    for i in 0..3u8 {
        peer.push(&record(23, &[i; 1000])).unwrap();
    }
    assert_eq!(s.handshake().unwrap_err(), Error::Again);
    // The server answered with its flight and is waiting for the client's
    // Finished, having dropped the early records.
    let mut out = vec![0u8; 65536];
    let n = peer.pull(&mut out).unwrap();
    assert!(n > 100, "server flight of {n} bytes");
    assert_eq!(out[0], 22, "starts with the ServerHello record");
    assert_eq!(s.handshake().unwrap_err(), Error::Again);
}

#[test]
fn early_data_over_the_budget_is_refused() {
    let (mut s, mut peer) = server();
    peer.push(&hello_with_early_data()).unwrap();
    let mut result = Ok(());
    for _ in 0..20 {
        peer.push(&record(23, &[7; 1024])).unwrap();
        result = s.handshake();
        if result != Err(Error::Again) {
            break;
        }
    }
    let err = result.unwrap_err();
    assert_eq!(
        err.alert(),
        Some(AlertDescription::UNEXPECTED_MESSAGE),
        "{err}"
    );
}

#[test]
fn early_data_without_the_extension_is_an_error() {
    let (a, mut b) = MemoryTransport::pair();
    let mut c =
        Session::client(Arc::new(client_config()), "localhost", a, Flags::NONBLOCK).unwrap();
    let _ = c.handshake();
    let mut raw = vec![0u8; 8192];
    let n = b.pull(&mut raw).unwrap();
    let (mut s, mut peer) = server();
    peer.push(&raw[..n]).unwrap();
    peer.push(&record(23, &[1; 100])).unwrap();
    // The server processes its input in one call: no Again before the error.
    let err = s.handshake().unwrap_err();
    assert_eq!(err.alert(), Some(AlertDescription::BAD_RECORD_MAC), "{err}");
}
