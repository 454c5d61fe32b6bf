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
