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

use common::certs::pki;
use common::peers::{gnutls_client, openssl_client, require_tools, Peer};
use common::tls::{client_config, server_config};
use common::tls_extra::hex;
use common::udp::{
    self, gnutls_dtls_echo_server, listen, openssl_dtls_server, recv_within, TIMEOUT,
};
use nbtls::{Session, SrtpProtectionProfile as P};

const LABEL: &str = "EXTRACTOR-dtls_srtp";

/// The exporter length RFC 5764 §4.2 uses for `p`.
fn material_len(p: P) -> usize {
    let (k, s) = p.key_salt_len().expect("known profile");
    2 * (k + s)
}

/// The line prefixes under which a tool prints the negotiated profile and,
/// when asked to export, the SRTP keying material.
struct Printed {
    profile: &'static str,
    material: &'static str,
}

/// `openssl s_server` and `s_client`.
const OPENSSL: Printed = Printed {
    profile: "SRTP Extension negotiated, profile=",
    material: "Keying material:",
};

/// `gnutls-cli` (gnutls-serv prints neither).
const GNUTLS_CLI: Printed = Printed {
    profile: "- SRTP profile:",
    material: "- Key material:",
};

fn check_material(s: &Session<UdpSocket>, peer: &mut Peer, prefix: &str, case: &str) {
    let ours = s.srtp_keying_material().expect("SRTP keying material");
    let theirs = peer
        .wait_for_field(prefix, TIMEOUT)
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
    udp::client(port, Arc::new(client_config().srtp_profiles(offer)))
}

/// Per case `(accept, want, name)`: our server preferring `accept` against the
/// client `spawn` starts (given our port and the keying material length to
/// export) negotiates `want`, which the client prints as `name`, with the same
/// keying material.
fn serve_each(cases: &[(&[P], P, &str)], printed: &Printed, spawn: impl Fn(u16, &str) -> Peer) {
    for &(accept, want, name) in cases {
        let (sock, port) = listen();
        let peer = spawn(port, &material_len(want).to_string());
        let cfg = server_config().srtp_profiles(accept);
        let mut s = udp::serve(sock, Arc::new(cfg));
        check_peer_agrees(&mut s, peer, printed, want, name);
    }
}

/// Completes `s`'s handshake with `peer` (`case` names it in a failure) and
/// checks the profile it negotiated.
fn handshake(s: &mut Session<UdpSocket>, peer: &Peer, want: Option<P>, case: &str) {
    if let Err(e) = s.handshake() {
        panic!("{case}: {e}\n{}", peer.dump());
    }
    assert_eq!(s.srtp_profile(), want, "{case}");
}

/// After [`handshake`] on `want`: the peer printed that profile as `name` and
/// the same keying material as ours. Ends the peer.
fn check_peer_agrees(
    s: &mut Session<UdpSocket>,
    mut peer: Peer,
    printed: &Printed,
    want: P,
    name: &str,
) {
    handshake(s, &peer, Some(want), name);
    assert_eq!(
        peer.wait_for_field(printed.profile, TIMEOUT).as_deref(),
        Some(name),
        "{}",
        peer.dump()
    );
    check_material(s, &mut peer, printed.material, name);
    peer.kill();
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
        let (srv, port) = openssl_dtls_server(
            &p.server_ecdsa,
            &[
                "-use_srtp",
                &profiles,
                "-keymatexport",
                LABEL,
                "-keymatexportlen",
                &len,
            ],
        );
        let mut c = client_to(port, &[P::AEAD_AES_128_GCM, P::AES128_CM_HMAC_SHA1_80]);
        check_peer_agrees(&mut c, srv, &OPENSSL, profile, name);
    }

    // No common profile: plain DTLS, no profile, no SRTP keys.
    let (mut srv, port) =
        openssl_dtls_server(&p.server_ecdsa, &["-use_srtp", "SRTP_AES128_CM_SHA1_32"]);
    let mut c = client_to(port, &[P::AES128_CM_HMAC_SHA1_80]);
    handshake(&mut c, &srv, None, "no common profile");
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
    let cases = [
        (
            &[P::AES128_CM_HMAC_SHA1_80, P::AEAD_AES_128_GCM][..],
            P::AES128_CM_HMAC_SHA1_80,
            "SRTP_AES128_CM_SHA1_80",
        ),
        (
            &[P::AEAD_AES_128_GCM][..],
            P::AEAD_AES_128_GCM,
            "SRTP_AEAD_AES_128_GCM",
        ),
    ];
    serve_each(&cases, &OPENSSL, |port, len| {
        openssl_client(
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
                len,
            ],
        )
    });
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
        let (mut g, port) = gnutls_dtls_echo_server(&p.server_rsa, &["--srtp-profiles", name]);
        let mut c = client_to(
            port,
            &[
                P::AEAD_AES_128_GCM,
                P::AES128_CM_HMAC_SHA1_32,
                P::AES128_CM_HMAC_SHA1_80,
            ],
        );
        handshake(&mut c, &g, Some(profile), name);
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
    let cases = [
        (
            &[P::AEAD_AES_128_GCM, P::AES128_CM_HMAC_SHA1_80][..],
            P::AES128_CM_HMAC_SHA1_80,
            "SRTP_AES128_CM_HMAC_SHA1_80",
        ),
        (
            &[P::AES128_CM_HMAC_SHA1_32, P::AES128_CM_HMAC_SHA1_80][..],
            P::AES128_CM_HMAC_SHA1_32,
            "SRTP_AES128_CM_HMAC_SHA1_32",
        ),
    ];
    serve_each(&cases, &GNUTLS_CLI, |port, len| {
        gnutls_client(
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
                len,
            ],
        )
    });
}
