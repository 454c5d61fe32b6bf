//! TLS 1.3 0-RTT: accepted with anti-replay, rejected otherwise, and a
//! replayed ClientHello's early data refused while the handshake completes.

mod common;

use std::sync::Arc;

use common::tls::{client_config, handshake, pair, server_config};
use nbtls::{
    AntiReplay, ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Transport,
};

fn server_0rtt() -> ServerConfig {
    server_config().early_data(16384, Arc::new(AntiReplay::new(1000)))
}

/// A full handshake that leaves tickets in the client's store.
fn prime(client: &ClientConfig, server: &ServerConfig) {
    let (mut c, mut s) = pair(client.clone(), server.clone(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(c.recv(&mut [0u8; 8]), Err(Error::Again));
    assert!(c.tickets_received() > 0);
}

#[test]
fn early_data_is_accepted_and_delivered() {
    let client = client_config().early_data(true);
    let server = server_0rtt();
    prime(&client, &server);
    let (mut c, mut s) = pair(client.clone(), server.clone(), Flags::NONBLOCK);
    assert!(c.early_data_left() >= 1000);
    assert_eq!(c.send_early_data(b"GET / 0-RTT").unwrap(), 11);
    handshake(&mut c, &mut s).unwrap();
    assert!(c.early_data_accepted() && s.early_data_accepted());
    assert!(c.info().resumed);
    let mut buf = [0u8; 64];
    assert_eq!(s.pending_early_data(), 11);
    assert_eq!(s.recv_early_data(&mut buf), 11);
    assert_eq!(&buf[..11], b"GET / 0-RTT");
    // 1-RTT data flows after it.
    c.send(b"after").unwrap();
    assert_eq!(s.recv(&mut buf).unwrap(), 5);
    s.send(b"reply").unwrap();
    assert_eq!(c.recv(&mut buf).unwrap(), 5);
}

#[test]
fn early_data_is_limited_to_the_tickets_maximum() {
    let client = client_config().early_data(true);
    let server = server_config().early_data(100, Arc::new(AntiReplay::new(10)));
    prime(&client, &server);
    let (mut c, mut s) = pair(client, server, Flags::NONBLOCK);
    assert_eq!(c.early_data_left(), 100);
    assert_eq!(c.send_early_data(&[1; 150]).unwrap(), 100);
    assert_eq!(c.send_early_data(&[1; 10]).unwrap(), 0);
    handshake(&mut c, &mut s).unwrap();
    assert!(s.early_data_accepted());
    assert_eq!(s.recv_early_data(&mut [0u8; 200]), 100);
}

#[test]
fn a_server_without_0rtt_rejects_it_and_completes() {
    let client = client_config().early_data(true);
    // Tickets that allow early data, then a server that refuses it.
    prime(&client, &server_0rtt());
    let refusing = server_config();
    let (mut c, mut s) = pair(client, refusing, Flags::NONBLOCK);
    assert!(c.send_early_data(b"lost").unwrap() > 0);
    handshake(&mut c, &mut s).unwrap();
    assert!(!c.early_data_accepted() && !s.early_data_accepted());
    assert_eq!(s.recv_early_data(&mut [0u8; 8]), 0);
    c.send(b"resent").unwrap();
    assert_eq!(s.recv(&mut [0u8; 8]).unwrap(), 6);
}

#[test]
fn without_client_opt_in_no_early_data_is_offered() {
    let client = client_config();
    let server = server_0rtt();
    prime(&client, &server);
    let (mut c, _s) = pair(client, server, Flags::NONBLOCK);
    assert_eq!(c.early_data_left(), 0);
    assert!(c.send_early_data(b"x").is_err());
}

#[test]
fn a_replayed_client_hello_gets_its_early_data_rejected() {
    let client = client_config().early_data(true);
    let server = server_0rtt();
    prime(&client, &server);
    // Capture the client's first flight (ClientHello + early data).
    let (a, mut b) = MemoryTransport::pair();
    let mut c = Session::client(Arc::new(client), "localhost", a, Flags::NONBLOCK).unwrap();
    c.send_early_data(b"transfer 100").unwrap();
    assert_eq!(c.handshake(), Err(Error::Again));
    let mut flight = vec![0u8; 65536];
    let n = b.pull(&mut flight).unwrap();
    flight.truncate(n);

    let deliver = |flight: &[u8]| {
        let (x, mut y) = MemoryTransport::pair();
        let mut s = Session::server(Arc::new(server.clone()), x, Flags::NONBLOCK).unwrap();
        y.push(flight).unwrap();
        assert_eq!(
            s.handshake(),
            Err(Error::Again),
            "server waits for the client's Finished"
        );
        let mut buf = [0u8; 64];
        let got = s.recv_early_data(&mut buf);
        (s.early_data_accepted(), buf[..got].to_vec())
    };
    assert_eq!(deliver(&flight), (true, b"transfer 100".to_vec()));
    // The same flight again: the strike register refuses its early data,
    // and the server goes on with a 1-RTT handshake instead of failing.
    assert_eq!(deliver(&flight), (false, Vec::new()));
}
