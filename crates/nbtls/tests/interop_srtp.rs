//! DTLS-SRTP (RFC 5764) against OpenSSL and GnuTLS over UDP, both roles:
//! the negotiated profile, and the SRTP keying material equal to what the
//! peer exports with label "EXTRACTOR-dtls_srtp".
//!
//! Tool facts (OpenSSL 3.0.19, GnuTLS 3.7.9, checked by hand):
//! * OpenSSL names the profiles `SRTP_AES128_CM_SHA1_80`, `SRTP_AES128_CM_SHA1_32`,
//!   `SRTP_AEAD_AES_128_GCM`, `SRTP_AEAD_AES_256_GCM`; both tools print
//!   `SRTP Extension negotiated, profile=NAME` and, with `-keymatexport L
//!   -keymatexportlen N`, `Keying material: HEX` (upper case). s_client prints
//!   them in its handshake summary (so not with `-quiet`).
//! * GnuTLS 3.7.9 knows only `SRTP_AES128_CM_HMAC_SHA1_80`/`_32` and the NULL
//!   profiles (no GCM). gnutls-cli prints `- SRTP profile: NAME` and, with
//!   `--keymatexport L --keymatexportsize N`, `- Key material: hex`;
//!   gnutls-serv prints neither, so against it only the profile is checked,
//!   and the keys by an echo over the session.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::pki;
use common::peers::{
    gnutls_client, gnutls_server, openssl_client, openssl_server, require_tools, Peer,
};
use common::tls::{client_config, server_config};
use common::tls_extra::hex;
use nbtls::{Error, Flags, Session, SrtpProtectionProfile as P};

const TIMEOUT: Duration = Duration::from_secs(15);
const LABEL: &str = "EXTRACTOR-dtls_srtp";

/// The exporter length RFC 5764 §4.2 uses for `p`.
fn material_len(p: P) -> usize {
    let (k, s) = p.key_salt_len().expect("known profile");
    2 * (k + s)
}

/// The value after `prefix` on a whole line of the peer's output.
fn field(peer: &mut Peer, prefix: &str) -> Option<String> {
    let find = |peer: &Peer| {
        [peer.stdout_text(), peer.stderr_text()]
            .iter()
            .find_map(|out| {
                let whole = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
                whole
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            })
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = find(peer) {
            return Some(v);
        }
        if Instant::now() >= deadline || !peer.is_running() {
            return find(peer);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_material(s: &Session<UdpSocket>, peer: &mut Peer, prefix: &str, case: &str) {
    let ours = s.srtp_keying_material().expect("SRTP keying material");
    let theirs = field(peer, prefix)
        .unwrap_or_else(|| panic!("{case}: no keying material printed\n{}", peer.dump()));
    assert_eq!(
        theirs.to_ascii_lowercase(),
        hex(&ours.to_bytes()),
        "{case}: keying material differs"
    );
    assert_eq!(
        ours.to_bytes().len(),
        material_len(ours.profile()),
        "{case}"
    );
}

fn client_to(port: u16, offer: &[P]) -> Session<UdpSocket> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let cfg = client_config().srtp_profiles(offer);
    Session::client(Arc::new(cfg), "localhost", sock, Flags::DATAGRAM).unwrap()
}

fn listen() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

/// A server session (preferring `accept`) for the first client that
/// writes to `sock`.
fn serve(sock: UdpSocket, accept: &[P]) -> Session<UdpSocket> {
    let mut probe = [0u8; 1];
    let (_, peer) = sock.peek_from(&mut probe).expect("first datagram");
    sock.connect(peer).unwrap();
    let cfg = server_config().srtp_profiles(accept);
    Session::server_datagram(
        Arc::new(cfg),
        peer.to_string().as_bytes(),
        sock,
        Flags::DATAGRAM,
    )
    .unwrap()
}

fn recv_within(s: &mut Session<UdpSocket>, buf: &mut [u8], what: &str) -> usize {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match s.recv(buf) {
            Ok(n) => return n,
            Err(Error::Again) if Instant::now() < deadline => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn nbtls_client_against_openssl_server() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let p = pki();
    // The server offers one profile (and another we do not offer, first);
    // we offer two in the other order.
    for (name, profile) in [
        ("SRTP_AES128_CM_SHA1_80", P::AES128_CM_HMAC_SHA1_80),
        ("SRTP_AEAD_AES_128_GCM", P::AEAD_AES_128_GCM),
    ] {
        let len = material_len(profile).to_string();
        let profiles = format!("SRTP_AES128_CM_SHA1_32:{name}");
        let (mut srv, port) = openssl_server(&[
            "-dtls1_2",
            "-cert",
            p.server_ecdsa.chain_path(),
            "-key",
            p.server_ecdsa.key_path(),
            "-use_srtp",
            &profiles,
            "-keymatexport",
            LABEL,
            "-keymatexportlen",
            &len,
        ]);
        let mut c = client_to(port, &[P::AEAD_AES_128_GCM, P::AES128_CM_HMAC_SHA1_80]);
        if let Err(e) = c.handshake() {
            panic!("{name}: {e}\n{}", srv.dump());
        }
        assert_eq!(c.srtp_profile(), Some(profile), "{name}");
        assert_eq!(
            field(&mut srv, "SRTP Extension negotiated, profile=").as_deref(),
            Some(name),
            "{}",
            srv.dump()
        );
        check_material(&c, &mut srv, "Keying material:", name);
        srv.kill();
    }

    // No common profile: plain DTLS, no profile, no SRTP keys.
    let (mut srv, port) = openssl_server(&[
        "-dtls1_2",
        "-cert",
        p.server_ecdsa.chain_path(),
        "-key",
        p.server_ecdsa.key_path(),
        "-use_srtp",
        "SRTP_AES128_CM_SHA1_32",
    ]);
    let mut c = client_to(port, &[P::AES128_CM_HMAC_SHA1_80]);
    c.handshake()
        .unwrap_or_else(|e| panic!("{e}\n{}", srv.dump()));
    assert_eq!(c.srtp_profile(), None);
    assert!(c.srtp_keying_material().is_err());
    c.send(b"plain dtls\n").unwrap();
    assert!(srv.wait_for_output("plain dtls", TIMEOUT), "{}", srv.dump());
    srv.kill();
}

#[test]
fn openssl_client_against_nbtls_server() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let p = pki();
    // The client offers GCM first; our preference decides.
    for (accept, name) in [
        (
            &[P::AES128_CM_HMAC_SHA1_80, P::AEAD_AES_128_GCM][..],
            "SRTP_AES128_CM_SHA1_80",
        ),
        (&[P::AEAD_AES_128_GCM][..], "SRTP_AEAD_AES_128_GCM"),
    ] {
        let (sock, port) = listen();
        let len = material_len(accept[0]).to_string();
        let mut peer = openssl_client(
            port,
            &[
                "-dtls1_2",
                "-CAfile",
                p.ca_path(),
                "-use_srtp",
                "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
                "-keymatexport",
                LABEL,
                "-keymatexportlen",
                &len,
            ],
        );
        let mut s = serve(sock, accept);
        if let Err(e) = s.handshake() {
            panic!("{name}: {e}\n{}", peer.dump());
        }
        assert_eq!(s.srtp_profile(), Some(accept[0]), "{name}");
        assert_eq!(
            field(&mut peer, "SRTP Extension negotiated, profile=").as_deref(),
            Some(name),
            "{}",
            peer.dump()
        );
        check_material(&s, &mut peer, "Keying material:", name);
        peer.kill();
    }
}

#[test]
fn nbtls_client_against_gnutls_server() {
    if !require_tools(&["gnutls-serv"]) {
        return;
    }
    let p = pki();
    for (name, profile) in [
        ("SRTP_AES128_CM_HMAC_SHA1_80", P::AES128_CM_HMAC_SHA1_80),
        ("SRTP_AES128_CM_HMAC_SHA1_32", P::AES128_CM_HMAC_SHA1_32),
    ] {
        let (mut g, port) = gnutls_server(&[
            "-u",
            "--echo",
            "--x509certfile",
            p.server_rsa.chain_path(),
            "--x509keyfile",
            p.server_rsa.key_path(),
            "--srtp-profiles",
            name,
        ]);
        let mut c = client_to(
            port,
            &[
                P::AEAD_AES_128_GCM,
                P::AES128_CM_HMAC_SHA1_32,
                P::AES128_CM_HMAC_SHA1_80,
            ],
        );
        if let Err(e) = c.handshake() {
            panic!("{name}: {e}\n{}", g.dump());
        }
        assert_eq!(c.srtp_profile(), Some(profile), "{name}");
        let m = c.srtp_keying_material().unwrap();
        assert_eq!(m.to_bytes().len(), material_len(profile));
        c.send(b"echo me\n").unwrap();
        let mut buf = [0u8; 64];
        let n = recv_within(&mut c, &mut buf, name);
        assert_eq!(&buf[..n], b"echo me\n", "{name}");
        g.kill();
    }
}

#[test]
fn gnutls_client_against_nbtls_server() {
    if !require_tools(&["gnutls-cli"]) {
        return;
    }
    let p = pki();
    for (accept, name) in [
        (
            &[P::AEAD_AES_128_GCM, P::AES128_CM_HMAC_SHA1_80][..],
            "SRTP_AES128_CM_HMAC_SHA1_80",
        ),
        (
            &[P::AES128_CM_HMAC_SHA1_32, P::AES128_CM_HMAC_SHA1_80][..],
            "SRTP_AES128_CM_HMAC_SHA1_32",
        ),
    ] {
        let (sock, port) = listen();
        let expected = if name.ends_with("_80") {
            P::AES128_CM_HMAC_SHA1_80
        } else {
            P::AES128_CM_HMAC_SHA1_32
        };
        let len = material_len(expected).to_string();
        let mut peer = gnutls_client(
            port,
            &[
                "-u",
                "--x509cafile",
                p.ca_path(),
                "--srtp-profiles",
                "SRTP_AES128_CM_HMAC_SHA1_80:SRTP_AES128_CM_HMAC_SHA1_32",
                "--keymatexport",
                LABEL,
                "--keymatexportsize",
                &len,
            ],
        );
        let mut s = serve(sock, accept);
        if let Err(e) = s.handshake() {
            panic!("{name}: {e}\n{}", peer.dump());
        }
        assert_eq!(s.srtp_profile(), Some(expected), "{name}");
        assert_eq!(
            field(&mut peer, "- SRTP profile:").as_deref(),
            Some(name),
            "{}",
            peer.dump()
        );
        check_material(&s, &mut peer, "- Key material:", name);
        peer.kill();
    }
}
