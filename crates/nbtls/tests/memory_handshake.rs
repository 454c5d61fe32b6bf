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
