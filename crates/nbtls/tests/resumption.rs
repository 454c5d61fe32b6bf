//! Session resumption: TLS 1.3 tickets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{client_config, handshake, pair, server_config};
use nbtls::codec::ProtocolVersion;
use nbtls::{ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Ticketer};

/// A full handshake, then reading (so the client processes the tickets).
fn connect(
    client: &ClientConfig,
    server: &ServerConfig,
) -> (Session<MemoryTransport>, Session<MemoryTransport>) {
    let (mut c, mut s) = pair(client.clone(), server.clone(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.recv(&mut buf), Err(Error::Again));
    (c, s)
}

#[test]
fn tls13_resumes_with_a_ticket() {
    let client = client_config();
    let server = server_config();
    let (c, s) = connect(&client, &server);
    assert!(!c.info().resumed && !s.info().resumed);
    assert_eq!(c.tickets_received(), 2);
    assert!(!c.peer_certificates().is_empty());

    let (mut c, mut s) = connect(&client, &server);
    assert!(c.info().resumed, "client resumed");
    assert!(s.info().resumed, "server resumed");
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_3));
    assert!(c.peer_certificates().is_empty());
    c.send(b"resumed").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.recv(&mut buf).unwrap(), 7);
    // Each ticket is used once; the resumed connection brought new ones.
    for _ in 0..4 {
        let (c, _) = connect(&client, &server);
        assert!(c.info().resumed);
    }
}

#[test]
fn servers_sharing_a_ticket_secret_resume_each_other() {
    let secret = [9u8; 32];
    let a = server_config().ticketer(Some(Arc::new(Ticketer::with_secret(&secret))));
    let b = server_config().ticketer(Some(Arc::new(Ticketer::with_secret(&secret))));
    let other = server_config().ticketer(Some(Arc::new(Ticketer::with_secret(&[1; 32]))));
    let client = client_config();
    connect(&client, &a);
    let (c, _) = connect(&client, &b);
    assert!(
        c.info().resumed,
        "a ticket from server a resumes on server b"
    );
    let (c, _) = connect(&client, &other);
    assert!(
        !c.info().resumed,
        "an unknown ticket falls back to a full handshake"
    );
}

#[test]
fn expired_tickets_fall_back_to_a_full_handshake() {
    let short = Ticketer::with_secret(&[3; 32])
        .lifetime(Duration::from_secs(1))
        .unwrap();
    let server = server_config().ticketer(Some(Arc::new(short)));
    let client = client_config();
    connect(&client, &server);
    std::thread::sleep(Duration::from_millis(2100));
    let (c, s) = connect(&client, &server);
    assert!(!c.info().resumed && !s.info().resumed);
}

#[test]
fn a_ticket_for_another_name_is_not_resumed() {
    let server = server_config();
    let client = client_config();
    connect(&client, &server);
    // Same store, another server name: nothing stored for it.
    let (a, b) = MemoryTransport::pair();
    let mut c = Session::client(Arc::new(client.clone()), "127.0.0.1", a, Flags::NONBLOCK).unwrap();
    let mut s = Session::server(Arc::new(server), b, Flags::NONBLOCK).unwrap();
    handshake(&mut c, &mut s).unwrap();
    assert!(!c.info().resumed);
}

#[test]
fn no_tickets_without_a_ticketer_or_store() {
    let server = server_config().ticketer(None);
    let client = client_config();
    let (c, _) = connect(&client, &server);
    assert_eq!(c.tickets_received(), 0);
    let (c, _) = connect(&client, &server);
    assert!(!c.info().resumed);
    let client = client_config().session_store(None);
    let server = server_config();
    connect(&client, &server);
    let (c, _) = connect(&client, &server);
    assert!(!c.info().resumed);
}

fn tls12(client: ClientConfig) -> ClientConfig {
    client.versions(&[ProtocolVersion::TLS1_2]).unwrap()
}

#[test]
fn tls12_resumes_with_a_ticket() {
    let client = tls12(client_config());
    let server = server_config();
    let (c, s) = connect(&client, &server);
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
    assert!(!c.info().resumed && !s.info().resumed);
    for _ in 0..3 {
        let (mut c, mut s) = connect(&client, &server);
        assert!(c.info().resumed && s.info().resumed, "resumed by ticket");
        assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
        c.send(b"again").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.recv(&mut buf).unwrap(), 5);
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        c.export_keying_material(b"EXPORTER-x", b"", &mut a)
            .unwrap();
        s.export_keying_material(b"EXPORTER-x", b"", &mut b)
            .unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn tls12_resumes_by_session_id_without_tickets() {
    let client = tls12(client_config());
    let server = server_config().ticketer(None);
    connect(&client, &server);
    let (c, s) = connect(&client, &server);
    assert!(
        c.info().resumed && s.info().resumed,
        "resumed by session id"
    );
    // Without a cache either, nothing resumes.
    let server = server_config().ticketer(None).session_cache(None);
    connect(&client, &server);
    let (c, _) = connect(&client, &server);
    assert!(!c.info().resumed);
}

#[test]
fn tls12_tickets_resume_across_a_fleet_and_not_elsewhere() {
    let secret = [5u8; 32];
    let fleet = |s: &[u8; 32]| {
        server_config()
            .session_cache(None)
            .ticketer(Some(Arc::new(Ticketer::with_secret(s))))
    };
    let client = tls12(client_config());
    connect(&client, &fleet(&secret));
    let (c, _) = connect(&client, &fleet(&secret));
    assert!(c.info().resumed);
    let (c, _) = connect(&client, &fleet(&[6; 32]));
    assert!(
        !c.info().resumed,
        "another fleet's ticket falls back to a full handshake"
    );
}

#[test]
fn a_tls12_session_is_not_offered_to_tls13_and_back() {
    // A TLS 1.2 session, then a server that speaks TLS 1.3: a full 1.3
    // handshake (the 1.2 ticket is ignored), whose tickets then resume 1.3.
    let client = client_config();
    let server12 = server_config()
        .versions(&[ProtocolVersion::TLS1_2])
        .unwrap();
    connect(&client, &server12);
    let server = server_config();
    let (c, _) = connect(&client, &server);
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_3));
    assert!(!c.info().resumed);
    let (c, _) = connect(&client, &server);
    assert!(c.info().resumed);
}
