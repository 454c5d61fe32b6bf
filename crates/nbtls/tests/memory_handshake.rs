//! Client and server handshakes in memory.

mod common;

use common::tls::{client_config, handshake, pair, server_config};
use nbtls::codec::{CipherSuite, NamedGroup, ProtocolVersion};
use nbtls::Flags;

#[test]
fn handshake_and_data_both_ways() {
    let (mut c, mut s) = pair(client_config(), server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_3));
    assert_eq!(c.cipher_suite(), Some(CipherSuite::TLS_AES_128_GCM_SHA256));
    assert_eq!(c.group(), Some(NamedGroup::X25519MLKEM768));
    assert_eq!(s.server_name(), Some("localhost"));
    assert_eq!(c.send(b"hello").unwrap(), 5);
    let mut buf = [0u8; 64];
    assert_eq!(s.recv(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(s.send(b"world!").unwrap(), 6);
    assert_eq!(c.recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"world!");
}

#[test]
fn automatic_key_update_at_the_configured_record_count() {
    let client = client_config().key_update_after(10).unwrap();
    let (mut c, mut s) = pair(client, server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..25u8 {
        assert_eq!(c.send(&[i; 7]).unwrap(), 7);
        assert_eq!(s.recv(&mut buf).unwrap(), 7);
        assert_eq!(buf[..7], [i; 7]);
    }
    // 25 records with a rekey every 10: after records 10 and 20.
    assert_eq!(c.info().key_updates_sent, 2);
    assert_eq!(s.info().key_updates_received, 2);
    assert_eq!(s.info().key_updates_sent, 0);
}

#[test]
fn requested_key_update_is_answered_once_before_the_next_record() {
    let (mut c, mut s) = pair(client_config(), server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    let mut buf = [0u8; 64];
    c.key_update(true).unwrap();
    // Asking again before the peer answered does not request twice.
    c.key_update(true).unwrap();
    c.send(b"ping").unwrap();
    assert_eq!(s.recv(&mut buf).unwrap(), 4);
    assert_eq!(s.info().key_updates_received, 2);
    // recv never writes: the answer waits for the server's next send.
    assert_eq!(s.info().key_updates_sent, 0);
    s.send(b"pong").unwrap();
    assert_eq!(s.info().key_updates_sent, 1);
    assert_eq!(c.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"pong");
    assert_eq!(c.info().key_updates_received, 1);
    // Data keeps flowing both ways under the new keys.
    c.send(b"again").unwrap();
    assert_eq!(s.recv(&mut buf).unwrap(), 5);
}

#[test]
fn tls12_handshake_and_data_for_every_suite() {
    use common::certs::pki;
    use common::tls::certified_key;
    use nbtls::ServerConfig;
    let suites = [
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &pki().server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            &pki().server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            &pki().server_ed25519,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            &pki().server_rsa,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            &pki().server_rsa,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            &pki().server_rsa,
        ),
    ];
    for (suite, cert) in suites {
        let client = client_config()
            .versions(&[ProtocolVersion::TLS1_2])
            .unwrap();
        let server = ServerConfig::new(certified_key(cert))
            .cipher_suites(&[suite])
            .unwrap();
        let (mut c, mut s) = pair(client, server, Flags::NONBLOCK);
        handshake(&mut c, &mut s).unwrap_or_else(|e| panic!("{suite}: {e}"));
        assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
        assert_eq!(c.cipher_suite(), Some(suite));
        assert_eq!(s.cipher_suite(), Some(suite));
        assert_eq!(c.send(b"hello").unwrap(), 5);
        let mut buf = [0u8; 64];
        assert_eq!(s.recv(&mut buf).unwrap(), 5, "{suite}");
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(s.send(b"world!").unwrap(), 6);
        assert_eq!(c.recv(&mut buf).unwrap(), 6);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        c.export_keying_material(b"EXPORTER-test", b"", &mut a)
            .unwrap();
        s.export_keying_material(b"EXPORTER-test", b"", &mut b)
            .unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn server_prefers_tls13_and_a_tls13_client_accepts_tls12_only_servers() {
    let server12 = server_config()
        .versions(&[ProtocolVersion::TLS1_2])
        .unwrap();
    let (mut c, mut s) = pair(client_config(), server12, Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_2));
    let (mut c, mut s) = pair(client_config(), server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_3));
}

#[test]
fn client_hello_carries_grease_that_servers_tolerate() {
    use nbtls::codec::{ClientExtension, ClientHello, Codec, Reader};
    use nbtls::{Error, MemoryTransport, Session, Transport};
    use std::sync::Arc;
    let is_grease = |v: u16| v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff;
    let (a, mut b) = MemoryTransport::pair();
    let mut c =
        Session::client(Arc::new(client_config()), "localhost", a, Flags::NONBLOCK).unwrap();
    assert_eq!(c.handshake(), Err(Error::Again));
    let mut raw = vec![0u8; 8192];
    let n = b.pull(&mut raw).unwrap();
    let mut r = Reader::new(&raw[9..n]);
    let hello = ClientHello::read(&mut r).unwrap();
    assert!(hello.cipher_suites.iter().any(|s| is_grease(s.0)));
    assert!(hello
        .supported_groups()
        .unwrap()
        .iter()
        .any(|g| is_grease(g.0)));
    assert!(hello
        .supported_versions()
        .unwrap()
        .iter()
        .any(|v| is_grease(v.0)));
    assert!(hello
        .key_shares()
        .unwrap()
        .iter()
        .any(|k| is_grease(k.group.0)));
    assert!(hello
        .extensions
        .iter()
        .any(|e| matches!(e, ClientExtension::Unknown(t, _) if is_grease(t.0))));
    // Our own server ignores every one of them.
    let (mut c, mut s) = pair(client_config(), server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
}

#[test]
fn idle_sessions_hold_no_record_buffer_after_again() {
    let (mut c, mut s) = pair(client_config(), server_config(), Flags::NONBLOCK);
    handshake(&mut c, &mut s).unwrap();
    let mut buf = [0u8; 64];
    // The client takes in the tickets, then finds nothing more to read.
    assert_eq!(c.recv(&mut buf), Err(nbtls::Error::Again));
    assert_eq!(c.buffered_bytes(), 0);
    assert_eq!(s.buffered_bytes(), 0);
    assert_eq!(c.send(b"ping").unwrap(), 4);
    assert_eq!(s.recv(&mut buf).unwrap(), 4);
    assert_eq!(s.recv(&mut buf), Err(nbtls::Error::Again));
    assert_eq!(s.buffered_bytes(), 0);
    assert_eq!(c.buffered_bytes(), 0);
}
