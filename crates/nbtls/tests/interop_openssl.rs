//! TLS 1.3 interop with OpenSSL 3.0's `s_server` and `s_client`, nbtls in both roles,
//! through the library API (blocking `Session` over `TcpStream`).
//!
//! Every case checks what was negotiated on both sides (our `Session` accessors and
//! what OpenSSL prints) and that application data arrived intact. Related cases share a
//! test and loop, and each assertion names its case.
//!
//! OpenSSL output this relies on (3.0.19, checked by hand):
//! * `s_server` prints `CIPHER is NAME` after a handshake, `Client certificate` and the
//!   PEM of a client's leaf, `Keying material: HEX` with `-keymatexport`; received data
//!   goes to stdout; `DONE` after the peer's close_notify (then it sends its own),
//!   `ERROR` after an EOF without one. Lines starting with `q`/`Q` on its stdin are
//!   commands, as are `k`/`K` alone on a line (KeyUpdate without / with
//!   update_requested).
//! * `s_client` prints `Server certificate` and the leaf's PEM, `Peer signature type:`,
//!   `Server Temp Key:`, `ALPN protocol:`, `Cipher is NAME`, `Verify return code:`, and
//!   `Keying material:`; stdin lines starting with `k`/`K`/`Q`/`R` are commands (so our
//!   data lines never start with those letters); it prints `KEYUPDATE` on stderr for
//!   `k`/`K`. At stdin EOF (without `-ign_eof`/`-quiet`) it sends close_notify.
//! * `-msg` prints every record, e.g. `<<< TLS 1.3, Handshake [length 0005], KeyUpdate`
//!   followed by the message bytes `18 00 00 01 0X` (X = update_requested).

mod common;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::certs::{pki, CertFiles};
use common::peers::{
    openssl_client, openssl_server, pick_port, require_tool, tcp_listen, Peer, TIMEOUT,
};
use common::tcp::{
    anchors, connect, hex, recv_until, send_all, serve, server_with, wait_count, wait_verified,
};
use common::tls::{certified_key, client_config, server_config};
use nbtls::codec::{AlertDescription, CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};
use nbtls::{CertStore, ClientAuth, Error, Flags, KeyLog, ServerConfig, Session, Shutdown};

const SUITES: [(CipherSuite, &str); 3] = [
    (
        CipherSuite::TLS_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
];

/// Our group, OpenSSL's `-groups` name, and what `s_client` prints as `Server Temp Key`.
const GROUPS: [(NamedGroup, &str, &str); 3] = [
    (NamedGroup::X25519, "X25519", "X25519, 253 bits"),
    (NamedGroup::SECP256R1, "P-256", "ECDH, prime256v1, 256 bits"),
    (NamedGroup::SECP384R1, "P-384", "ECDH, secp384r1, 384 bits"),
];

const EXPORT_LABEL: &str = "EXPERIMENTAL-nbtls-interop";
/// `-keymatexportlen` (bytes).
const EXPORT_LEN: &str = "48";

/// -msg lines for a KeyUpdate OpenSSL received (`<<<`) or sent (`>>>`), with the
/// update_requested byte.
const KU_HEADER: &str = "TLS 1.3, Handshake [length 0005], KeyUpdate\n    18 00 00 01 0";

fn ku_line(dir: &str, requested: bool) -> String {
    format!("{dir} {KU_HEADER}{}", u8::from(requested))
}

// ---------------------------------------------------------------------------------
// Helpers: sessions over TCP.

/// One line each way: ours must show up in the peer's output, the peer's (written to
/// its stdin) must come out of our `recv`. The lines start with letters that are no
/// s_server/s_client command.
fn exchange(s: &mut Session<TcpStream>, peer: &mut Peer, case: &str) {
    let ours = format!("nbtls says {case}");
    send_all(s, format!("{ours}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
    assert!(
        peer.wait_for_output(&ours, TIMEOUT),
        "{case}: OpenSSL did not receive our data\n{}",
        peer.dump()
    );
    let theirs = format!("openssl says {case}");
    peer.write_stdin(format!("{theirs}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: writing to the peer: {e}\n{}", peer.dump()));
    if let Err(e) = recv_until(s, &theirs) {
        panic!("{case}: {e}\n{}", peer.dump());
    }
}

/// [`exchange`] the other way round: the peer's line first, then ours.
fn exchange_theirs_first(s: &mut Session<TcpStream>, peer: &mut Peer, case: &str) {
    let theirs = format!("openssl says {case}");
    peer.write_stdin(format!("{theirs}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: writing to the peer: {e}\n{}", peer.dump()));
    if let Err(e) = recv_until(s, &theirs) {
        panic!("{case}: {e}\n{}", peer.dump());
    }
    let ours = format!("nbtls says {case}");
    send_all(s, format!("{ours}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
    assert!(
        peer.wait_for_output(&ours, TIMEOUT),
        "{case}: OpenSSL did not receive our data\n{}",
        peer.dump()
    );
}

/// The base64 body of the first PEM certificate after the line `marker`.
fn pem_after(peer: &Peer, marker: &str) -> Option<String> {
    let out = peer.stdout_text();
    let rest = &out[out.find(&format!("{marker}\n"))?..];
    pem_body(rest)
}

fn pem_body(text: &str) -> Option<String> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin)? + begin.len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    Some(text[start..end].split_whitespace().collect())
}

fn leaf_pem_body(files: &CertFiles) -> String {
    let text = std::fs::read_to_string(&files.leaf_pem).expect("leaf pem");
    pem_body(&text).expect("leaf pem body")
}

fn our_export(s: &Session<TcpStream>) -> String {
    let mut out = vec![0u8; EXPORT_LEN.parse().expect("length")];
    // OpenSSL exports without a context, which TLS 1.3 treats as an empty one.
    s.export_keying_material(EXPORT_LABEL.as_bytes(), b"", &mut out)
        .expect("exporter");
    hex(&out)
}

fn export_args() -> [&'static str; 4] {
    [
        "-keymatexport",
        EXPORT_LABEL,
        "-keymatexportlen",
        EXPORT_LEN,
    ]
}

fn check_export(s: &Session<TcpStream>, peer: &mut Peer, case: &str) {
    let Some(theirs) = peer.wait_for_field("Keying material:", TIMEOUT) else {
        panic!(
            "{case}: OpenSSL printed no keying material\n{}",
            peer.dump()
        );
    };
    assert_eq!(
        our_export(s),
        theirs.to_ascii_lowercase(),
        "{case}: exporter values differ\n{}",
        peer.dump()
    );
}

/// `s_server` presenting `files`, with `extra` arguments.
fn s_server(files: &CertFiles, extra: &[&str]) -> (Peer, u16) {
    let mut args = vec!["-cert", files.chain_path(), "-key", files.key_path()];
    args.extend_from_slice(extra);
    openssl_server(&args)
}

/// `s_client` verifying the test CA and the name `localhost`, with `extra` arguments.
fn s_client(port: u16, extra: &[&str]) -> Peer {
    let mut args = vec![
        "-CAfile",
        pki().ca_path(),
        "-verify_return_error",
        "-verify_hostname",
        "localhost",
    ];
    args.extend_from_slice(extra);
    openssl_client(port, &args)
}

// ---------------------------------------------------------------------------------
// 1 + 10: cipher suites and exporters.

#[test]
fn cipher_suites_and_exporter_both_roles() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let export = export_args();
    for (suite, name) in SUITES {
        let case = format!("nbtls client, {name}");
        let mut extra = vec!["-ciphersuites", name, "-naccept", "1"];
        extra.extend_from_slice(&export);
        let (mut server, port) = s_server(&pki.server_ecdsa, &extra);
        let mut s = connect(port, client_config())
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_3),
            "{case}"
        );
        assert_eq!(s.cipher_suite(), Some(suite), "{case}");
        exchange(&mut s, &mut server, &case);
        assert!(
            server.output_contains(&format!("CIPHER is {name}")),
            "{case}\n{}",
            server.dump()
        );
        check_export(&s, &mut server, &case);

        let case = format!("nbtls server, {name}");
        let (listener, port) = tcp_listen();
        let mut extra = vec!["-ciphersuites", name];
        extra.extend_from_slice(&export);
        let mut client = s_client(port, &extra);
        let (mut s, r) = serve(&listener, &mut client, server_config());
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_3),
            "{case}"
        );
        assert_eq!(s.cipher_suite(), Some(suite), "{case}");
        assert!(
            client.output_contains(&format!("New, TLSv1.3, Cipher is {name}")),
            "{case}\n{}",
            client.dump()
        );
        exchange(&mut s, &mut client, &case);
        check_export(&s, &mut client, &case);
    }
}

// ---------------------------------------------------------------------------------
// 2: key-exchange groups.

#[test]
fn groups_both_roles() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    for (group, name, temp_key) in GROUPS {
        let case = format!("nbtls client, {name}");
        let (mut server, port) = s_server(&pki.server_ecdsa, &["-groups", name, "-naccept", "1"]);
        // A share for exactly this group: no HelloRetryRequest needed.
        let config = client_config().key_share_groups(&[group]).expect("share");
        let mut s = connect(port, config)
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(s.group(), Some(group), "{case}");
        assert!(
            !s.info().hello_retry,
            "{case}: unexpected HelloRetryRequest"
        );
        exchange(&mut s, &mut server, &case);

        let case = format!("nbtls server, {name}");
        let (listener, port) = tcp_listen();
        let mut client = s_client(port, &["-groups", name]);
        let (mut s, r) = serve(&listener, &mut client, server_config());
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert_eq!(s.group(), Some(group), "{case}");
        assert!(
            !s.info().hello_retry,
            "{case}: unexpected HelloRetryRequest"
        );
        assert_eq!(
            client
                .wait_for_field("Server Temp Key:", TIMEOUT)
                .as_deref(),
            Some(temp_key),
            "{case}\n{}",
            client.dump()
        );
        exchange(&mut s, &mut client, &case);
    }
}

// ---------------------------------------------------------------------------------
// 3: server certificates.

#[test]
fn server_certificate_types_both_roles() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let cases = [
        (
            "ECDSA P-256",
            &pki.server_ecdsa,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
            "ECDSA",
        ),
        (
            "RSA-2048",
            &pki.server_rsa,
            SignatureScheme::RSA_PSS_RSAE_SHA256,
            "RSA-PSS",
        ),
        (
            "Ed25519",
            &pki.server_ed25519,
            SignatureScheme::ED25519,
            "ed25519",
        ),
    ];
    for (label, files, scheme, openssl_type) in cases {
        let case = format!("nbtls client, s_server with {label}");
        let (mut server, port) = s_server(files, &["-naccept", "1"]);
        let mut s = connect(port, client_config())
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(s.info().peer_signature_scheme, Some(scheme), "{case}");
        assert_eq!(
            s.peer_certificates().first().map(|c| c.as_ref()),
            Some(files.leaf_der.as_slice()),
            "{case}: peer leaf"
        );
        exchange(&mut s, &mut server, &case);

        let case = format!("nbtls server with {label}, s_client");
        let (listener, port) = tcp_listen();
        let mut client = s_client(port, &[]);
        let (mut s, r) = serve(&listener, &mut client, server_with(files));
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert_eq!(s.info().signature_scheme, Some(scheme), "{case}");
        assert_eq!(
            client
                .wait_for_field("Peer signature type:", TIMEOUT)
                .as_deref(),
            Some(openssl_type),
            "{case}\n{}",
            client.dump()
        );
        assert_eq!(
            pem_after(&client, "Server certificate"),
            Some(leaf_pem_body(files)),
            "{case}: s_client saw another leaf\n{}",
            client.dump()
        );
        exchange(&mut s, &mut client, &case);
    }
}

// ---------------------------------------------------------------------------------
// 4: client certificates.

#[test]
fn client_certificates_to_s_server() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    for (label, files) in [("ECDSA", &pki.client_ecdsa), ("RSA", &pki.client_rsa)] {
        let case = format!("nbtls client presenting {label}");
        let (mut server, port) = s_server(
            &pki.server_ecdsa,
            &[
                "-Verify",
                "1",
                "-CAfile",
                pki.ca_path(),
                "-verify_return_error",
                "-naccept",
                "1",
            ],
        );
        let config = client_config().client_certificate(certified_key(files));
        let mut s = connect(port, config)
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert!(s.info().client_authenticated, "{case}");
        // Data both ways proves s_server accepted the certificate (it would alert).
        exchange(&mut s, &mut server, &case);
        assert_eq!(
            pem_after(&server, "Client certificate"),
            Some(leaf_pem_body(files)),
            "{case}: s_server did not see our certificate\n{}",
            server.dump()
        );
        assert!(
            !server.output_contains("verify error"),
            "{case}\n{}",
            server.dump()
        );
    }
}

#[test]
fn client_certificates_from_s_client() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let cases = [
        (
            "Require, ECDSA cert",
            ClientAuth::Require,
            Some(&pki.client_ecdsa),
        ),
        (
            "Request, RSA cert",
            ClientAuth::Request,
            Some(&pki.client_rsa),
        ),
        ("Request, no cert", ClientAuth::Request, None),
    ];
    for (label, mode, files) in cases {
        let case = format!("nbtls server {label}");
        let (listener, port) = tcp_listen();
        let mut client = match files {
            Some(f) => s_client(port, &["-cert", f.chain_path(), "-key", f.key_path()]),
            None => s_client(port, &[]),
        };
        let config = server_config().client_auth(mode, anchors());
        let (mut s, r) = serve(&listener, &mut client, config);
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert_eq!(s.info().client_authenticated, files.is_some(), "{case}");
        let want: Vec<&[u8]> = files.iter().map(|f| f.leaf_der.as_slice()).collect();
        let got: Vec<&[u8]> = s
            .peer_certificates()
            .iter()
            .take(1)
            .map(|c| c.as_ref())
            .collect();
        assert_eq!(got, want, "{case}: peer certificates");
        exchange(&mut s, &mut client, &case);
    }

    // Require, and the client has nothing to present.
    let case = "nbtls server Require, s_client without a cert";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &[]);
    let config = server_config().client_auth(ClientAuth::Require, anchors());
    let (_s, r) = serve(&listener, &mut client, config);
    match r {
        Err(Error::Protocol { alert, .. }) if alert == AlertDescription::CERTIFICATE_REQUIRED => {}
        other => panic!(
            "{case}: want certificate_required, got {other:?}\n{}",
            client.dump()
        ),
    }
    // s_client only learns it when it reads: the alert is its next record.
    assert!(
        client.wait_for_output("alert certificate required", TIMEOUT),
        "{case}: s_client did not report the alert\n{}",
        client.dump()
    );
}

// ---------------------------------------------------------------------------------
// 5: ALPN.

#[test]
fn alpn_both_roles() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();

    // nbtls client: OpenSSL picks from our list.
    let case = "nbtls client, overlap";
    let (mut server, port) = s_server(
        &pki.server_ecdsa,
        &["-alpn", "h2,http/1.1", "-naccept", "1"],
    );
    let config = client_config().alpn(&["spdy/1", "http/1.1"]).expect("alpn");
    let mut s = connect(port, config)
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]), "{case}");
    exchange(&mut s, &mut server, case);
    assert!(
        server.output_contains("ALPN protocols advertised by the client: spdy/1, http/1.1"),
        "{case}\n{}",
        server.dump()
    );

    // nbtls client, no overlap: s_server (3.0) refuses with no_application_protocol.
    let case = "nbtls client, no overlap";
    let (mut server, port) = s_server(&pki.server_ecdsa, &["-alpn", "h2", "-naccept", "1"]);
    let config = client_config().alpn(&["http/1.1"]).expect("alpn");
    match connect(port, config) {
        Err(Error::AlertReceived(a)) if a == AlertDescription::NO_APPLICATION_PROTOCOL => {}
        Err(e) => panic!(
            "{case}: want the peer's no_application_protocol, got {e:?}\n{}",
            server.dump()
        ),
        Ok(_) => panic!("{case}: handshake succeeded\n{}", server.dump()),
    }
    assert!(
        server.wait_for_output("no application protocol", TIMEOUT),
        "{case}\n{}",
        server.dump()
    );

    // nbtls server: our preference among the client's.
    let case = "nbtls server, overlap";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-alpn", "http/1.1,h2"]);
    let config = server_config().alpn(&["h2", "http/1.1"]).expect("alpn");
    let (mut s, r) = serve(&listener, &mut client, config);
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]), "{case}");
    assert_eq!(
        client.wait_for_field("ALPN protocol:", TIMEOUT).as_deref(),
        Some("h2"),
        "{case}\n{}",
        client.dump()
    );
    exchange(&mut s, &mut client, case);

    // nbtls server, no overlap: no_application_protocol (RFC 7301 §3.2).
    let case = "nbtls server, no overlap";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-alpn", "http/1.1"]);
    let config = server_config().alpn(&["h2"]).expect("alpn");
    let (_s, r) = serve(&listener, &mut client, config);
    match r {
        Err(Error::Protocol { alert, .. })
            if alert == AlertDescription::NO_APPLICATION_PROTOCOL => {}
        other => panic!(
            "{case}: want no_application_protocol, got {other:?}\n{}",
            client.dump()
        ),
    }
    assert!(
        client.wait_for_output("alert no application protocol", TIMEOUT),
        "{case}: s_client did not report the alert\n{}",
        client.dump()
    );
    let status = client.wait_exit(TIMEOUT).expect("s_client exits");
    assert!(!status.success(), "{case}\n{}", client.dump());
}

// ---------------------------------------------------------------------------------
// 6: certificate selection by SNI.

#[test]
fn sni_selects_certificate() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let mut store = CertStore::new();
    store.add(&["localhost"], certified_key(&pki.server_ecdsa));
    store.add(&["other.test"], certified_key(&pki.server_other));
    // The default is the RSA leaf, so "default" is told apart from "localhost".
    store.add(&[], certified_key(&pki.server_rsa));
    let config = Arc::new(ServerConfig::with_resolver(Arc::new(store)));

    let (listener, port) = tcp_listen();
    let cases: [(&str, &[&str], Option<&str>, &CertFiles); 4] = [
        (
            "SNI other.test",
            &[
                "-servername",
                "other.test",
                "-verify_hostname",
                "other.test",
            ],
            Some("other.test"),
            &pki.server_other,
        ),
        (
            "SNI localhost",
            &["-servername", "localhost", "-verify_hostname", "localhost"],
            Some("localhost"),
            &pki.server_ecdsa,
        ),
        (
            "SNI unknown.test",
            &[
                "-servername",
                "unknown.test",
                "-verify_hostname",
                "localhost",
            ],
            Some("unknown.test"),
            &pki.server_rsa,
        ),
        (
            "no SNI",
            &["-noservername", "-verify_hostname", "localhost"],
            None,
            &pki.server_rsa,
        ),
    ];
    for (case, extra, sni, files) in cases {
        let mut args = vec!["-CAfile", pki.ca_path(), "-verify_return_error"];
        args.extend_from_slice(extra);
        let mut client = openssl_client(port, &args);
        let (mut s, r) = serve(&listener, &mut client, (*config).clone());
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, case);
        assert_eq!(s.server_name(), sni, "{case}");
        assert!(
            s.info().signature_scheme.is_some(),
            "{case}: no CertificateVerify"
        );
        assert_eq!(
            pem_after(&client, "Server certificate"),
            Some(leaf_pem_body(files)),
            "{case}: wrong certificate\n{}",
            client.dump()
        );
        let subject = if files.leaf_der == pki.server_other.leaf_der {
            "CN = other.test"
        } else {
            "CN = localhost"
        };
        assert!(
            client
                .wait_for_field("subject=", TIMEOUT)
                .is_some_and(|s| s.ends_with(subject)),
            "{case}: subject\n{}",
            client.dump()
        );
        exchange(&mut s, &mut client, case);
    }
}

// ---------------------------------------------------------------------------------
// 7: HelloRetryRequest.

#[test]
fn hello_retry_both_roles() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();

    let case = "nbtls client shares X25519, s_server wants P-256";
    let (mut server, port) = s_server(
        &pki.server_ecdsa,
        &["-groups", "P-256", "-msg", "-naccept", "1"],
    );
    let config = client_config()
        .key_share_groups(&[NamedGroup::X25519])
        .expect("shares");
    let mut s = connect(port, config)
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    assert!(s.info().hello_retry, "{case}: no HelloRetryRequest");
    assert_eq!(s.group(), Some(NamedGroup::SECP256R1), "{case}");
    exchange(&mut s, &mut server, case);
    assert_eq!(
        server.count_output("], ClientHello"),
        2,
        "{case}: s_server should have read two ClientHellos\n{}",
        server.dump()
    );

    let case = "s_client shares X25519, nbtls server wants P-384";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-groups", "X25519:P-384", "-msg"]);
    let config = server_config()
        .groups(&[NamedGroup::SECP384R1, NamedGroup::SECP256R1])
        .expect("groups");
    let (mut s, r) = serve(&listener, &mut client, config);
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    assert!(s.info().hello_retry, "{case}: no HelloRetryRequest");
    assert_eq!(s.group(), Some(NamedGroup::SECP384R1), "{case}");
    assert_eq!(
        client
            .wait_for_field("Server Temp Key:", TIMEOUT)
            .as_deref(),
        Some("ECDH, secp384r1, 384 bits"),
        "{case}\n{}",
        client.dump()
    );
    assert_eq!(
        client.count_output("], ClientHello"),
        2,
        "{case}: s_client should have sent two ClientHellos\n{}",
        client.dump()
    );
    exchange(&mut s, &mut client, case);
}

// ---------------------------------------------------------------------------------
// 8: KeyUpdate.

/// The KeyUpdate script against a peer run with `-msg`: OpenSSL sends `k`, then `K`
/// (we must answer once), then we send KeyUpdate(update_requested) (it must answer);
/// data flows both ways after each step. `sent_marker` is what OpenSSL prints when it
/// sends a KeyUpdate on command.
fn key_update_script(s: &mut Session<TcpStream>, peer: &mut Peer, role: &str) {
    let sent = |req| ku_line(">>>", req);
    let received = |req| ku_line("<<<", req);
    exchange(s, peer, &format!("{role}: before any KeyUpdate"));

    // OpenSSL updates its keys, asking nothing of us.
    let case = format!("{role}: after OpenSSL's k");
    peer.write_stdin(b"k\n").expect("write k");
    assert!(
        wait_count(peer, &sent(false), 1),
        "{case}: OpenSSL sent no KeyUpdate\n{}",
        peer.dump()
    );
    exchange(s, peer, &case);
    assert_eq!(
        peer.count_output(&received(false)) + peer.count_output(&received(true)),
        0,
        "{case}: we sent a KeyUpdate nobody asked for\n{}",
        peer.dump()
    );

    // OpenSSL asks us to update too: one update_not_requested answer before our data.
    let case = format!("{role}: after OpenSSL's K");
    peer.write_stdin(b"K\n").expect("write K");
    assert!(
        wait_count(peer, &sent(true), 1),
        "{case}: OpenSSL sent no KeyUpdate(update_requested)\n{}",
        peer.dump()
    );
    // Read first: the KeyUpdate is processed by our recv, and the answer goes out
    // ahead of our next record.
    exchange_theirs_first(s, peer, &case);
    assert_eq!(
        peer.count_output(&received(false)),
        1,
        "{case}: we did not answer update_requested exactly once\n{}",
        peer.dump()
    );

    // We update and ask OpenSSL to.
    let case = format!("{role}: after our KeyUpdate(update_requested)");
    s.key_update(true)
        .unwrap_or_else(|e| panic!("{case}: {e:?}"));
    exchange(s, peer, &case);
    assert_eq!(
        peer.count_output(&received(true)),
        1,
        "{case}: OpenSSL did not receive our KeyUpdate\n{}",
        peer.dump()
    );
    // OpenSSL's answer went out before its data, which we read in `exchange`; its
    // -msg line may still be in the pipe.
    wait_count(peer, &sent(false), 2);
    assert_eq!(
        peer.count_output(&sent(false)),
        2,
        "{case}: OpenSSL did not answer\n{}",
        peer.dump()
    );
    exchange(s, peer, &format!("{role}: once more"));
}

#[test]
fn key_update_both_roles() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();

    let (mut server, port) = s_server(&pki.server_ecdsa, &["-msg", "-naccept", "1"]);
    let mut s = connect(port, client_config())
        .unwrap_or_else(|e| panic!("client handshake: {e:?}\n{}", server.dump()));
    key_update_script(&mut s, &mut server, "nbtls client");

    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-msg"]);
    let (mut s, r) = serve(&listener, &mut client, server_config());
    r.unwrap_or_else(|e| panic!("server handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, "nbtls server");
    key_update_script(&mut s, &mut client, "nbtls server");
    // stderr, read by its own thread: wait for it.
    wait_count(&mut client, "KEYUPDATE", 2);
    assert_eq!(
        client.count_output("KEYUPDATE"),
        2,
        "s_client reports each k/K\n{}",
        client.dump()
    );
}

// ---------------------------------------------------------------------------------
// 9: 64 MiB each way, checked by SHA-256.

const BULK_LEN: usize = 64 << 20;

/// The deterministic (xorshift64) payload as a file, and its SHA-256.
fn payload() -> &'static (PathBuf, String) {
    static PAYLOAD: OnceLock<(PathBuf, String)> = OnceLock::new();
    PAYLOAD.get_or_init(|| {
        let path = common::unique_temp_dir("bulk").join("payload.bin");
        let mut file = io::BufWriter::new(File::create(&path).expect("create payload"));
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..BULK_LEN / chunk.len() {
            for word in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            digest.update(&chunk);
            file.write_all(&chunk).expect("write payload");
        }
        file.flush().expect("flush payload");
        (path, hex(digest.finish().as_ref()))
    })
}

/// An `openssl` child for bulk runs: stdin from a file or closed, stdout hashed as it
/// streams (never held in memory), stderr kept. Killed on drop.
struct BulkPeer {
    label: String,
    child: Child,
    hashed: Option<JoinHandle<(usize, String)>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl BulkPeer {
    fn spawn(args: &[&str], stdin: Stdio) -> BulkPeer {
        let label = format!("openssl {}", args.join(" "));
        let mut child = Command::new("openssl")
            .args(args)
            .env("LC_ALL", "C")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{label}`: {e}"));
        let mut out = child.stdout.take().expect("stdout");
        let hashed = thread::spawn(move || {
            let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0;
            loop {
                match out.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        digest.update(&buf[..n]);
                        total += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            (total, hex(digest.finish().as_ref()))
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        BulkPeer {
            label,
            child,
            hashed: Some(hashed),
            stderr,
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Bytes and SHA-256 of everything it wrote to stdout (after it exited).
    fn stdout_digest(&mut self) -> (usize, String) {
        self.hashed
            .take()
            .expect("digest taken once")
            .join()
            .expect("hash thread")
    }

    fn dump(&self) -> String {
        let err = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "--- `{}` stderr:\n{}",
            self.label,
            String::from_utf8_lossy(&err)
        )
    }
}

impl Drop for BulkPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something listens on 127.0.0.1:`port` (TCP), from /proc/net/tcp; `None`
/// without /proc.
fn tcp_listening(port: u16) -> Option<bool> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    Some(text.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[3] == "0A"
    }))
}

/// `openssl s_server -accept 127.0.0.1:PORT -quiet -naccept 1 <args>` as a
/// [`BulkPeer`], listening. `-quiet` prints nothing to wait for, and a probe connection
/// would use up `-naccept 1`, so readiness is the port in /proc/net/tcp; a failed bind
/// is retried on another port.
fn bulk_s_server(args: &[&str]) -> (BulkPeer, u16) {
    let mut last = String::new();
    for _ in 0..4 {
        let port = pick_port();
        let accept = format!("127.0.0.1:{port}");
        let mut all = vec!["s_server", "-accept", &accept, "-quiet", "-naccept", "1"];
        all.extend_from_slice(args);
        let mut peer = BulkPeer::spawn(&all, Stdio::piped());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = peer.child.try_wait() {
                thread::sleep(Duration::from_millis(50));
                last = format!("exited with {status}\n{}", peer.dump());
                if !last.contains("unable to bind") {
                    panic!("s_server {last}");
                }
                break;
            }
            match tcp_listening(port) {
                Some(true) => return (peer, port),
                Some(false) => {}
                // No /proc: let the client's connect retry instead.
                None => {
                    thread::sleep(Duration::from_millis(200));
                    return (peer, port);
                }
            }
            if Instant::now() >= deadline {
                panic!("s_server not listening after {TIMEOUT:?}\n{}", peer.dump());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("s_server could not bind a port: {last}");
}

/// Connects to 127.0.0.1:`port`, retrying while it refuses (bounded).
fn connect_retrying(port: u16, peer: &mut BulkPeer) -> TcpStream {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                return stream;
            }
            Err(e) => {
                if let Ok(Some(status)) = peer.child.try_wait() {
                    panic!("s_server exited ({status})\n{}", peer.dump());
                }
                if Instant::now() >= deadline {
                    panic!("connect to {addr}: {e}\n{}", peer.dump());
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn bulk_nbtls_client_to_s_server() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let (path, want) = payload();
    // -quiet: stdout carries only the received data.
    let (mut server, port) = bulk_s_server(&[
        "-cert",
        pki.server_ecdsa.chain_path(),
        "-key",
        pki.server_ecdsa.key_path(),
    ]);
    let stream = connect_retrying(port, &mut server);
    let mut s = Session::client(Arc::new(client_config()), "localhost", stream, Flags::NONE)
        .expect("session");
    s.set_handshake_timeout(Some(TIMEOUT));
    s.handshake()
        .unwrap_or_else(|e| panic!("handshake: {e:?}\n{}", server.dump()));
    let mut file = File::open(path).expect("payload");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).expect("read payload");
        if n == 0 {
            break;
        }
        send_all(&mut s, &buf[..n]).unwrap_or_else(|e| panic!("send: {e:?}\n{}", server.dump()));
    }
    // Our close_notify ends s_server's connection (and, with -naccept 1, s_server).
    s.bye(Shutdown::Write).expect("bye");
    let status = server.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "s_server: {status:?}\n{}",
        server.dump()
    );
    let (len, got) = server.stdout_digest();
    assert_eq!(len, BULK_LEN, "bytes s_server received");
    assert_eq!(&got, want, "SHA-256 of what s_server received");
}

#[test]
fn bulk_s_client_to_nbtls_server() {
    if !require_tool("openssl") {
        return;
    }
    let (path, want) = payload();
    let (listener, port) = tcp_listen();
    let connect = format!("127.0.0.1:{port}");
    // -quiet implies -ign_eof: at the file's end s_client waits for our close_notify.
    let mut client = BulkPeer::spawn(
        &["s_client", "-connect", &connect, "-quiet"],
        Stdio::from(File::open(path).expect("payload")),
    );
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}\n{}", client.dump()),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    let mut s = Session::server(Arc::new(server_config()), stream, Flags::NONE).expect("session");
    s.set_handshake_timeout(Some(TIMEOUT));
    s.handshake()
        .unwrap_or_else(|e| panic!("handshake: {e:?}\n{}", client.dump()));
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while total < BULK_LEN {
        match s.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                digest.update(&buf[..n]);
                total += n;
            }
            Err(e) => panic!("recv after {total} bytes: {e:?}\n{}", client.dump()),
        }
    }
    assert_eq!(total, BULK_LEN, "bytes we received");
    assert_eq!(
        &hex(digest.finish().as_ref()),
        want,
        "SHA-256 of what we received"
    );
    s.bye(Shutdown::Write).expect("bye");
    let status = client.wait_exit(TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "s_client: {status:?}\n{}",
        client.dump()
    );
}

// ---------------------------------------------------------------------------------
// 11: key log lines.

/// Collects NSS key log lines, formatted as OpenSSL writes them.
#[derive(Debug, Default)]
struct CollectKeyLog(Mutex<Vec<String>>);

impl KeyLog for CollectKeyLog {
    fn log(&self, label: &str, client_random: &[u8; 32], secret: &[u8]) {
        let line = format!("{label} {} {}", hex(client_random), hex(secret));
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

impl CollectKeyLog {
    fn lines(&self) -> Vec<String> {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.sort();
        v
    }
}

fn key_log_file_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut v: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            // Labels are upper case; hex is compared in lower case.
            let (label, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
            format!("{} {rest}", label.to_ascii_uppercase())
        })
        .collect();
    v.sort();
    v
}

const KEY_LOG_LABELS: [&str; 5] = [
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_TRAFFIC_SECRET_0",
];

fn check_key_log(ours: &CollectKeyLog, file: &std::path::Path, case: &str, peer: &Peer) {
    let ours = ours.lines();
    let labels: Vec<&str> = ours.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(labels, KEY_LOG_LABELS, "{case}: our key log labels");
    assert_eq!(
        key_log_file_lines(file),
        ours,
        "{case}: key log lines differ from OpenSSL's\n{}",
        peer.dump()
    );
}

#[test]
fn key_log_matches_openssl() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let dir = common::unique_temp_dir("keylog");

    let case = "nbtls server, s_client -keylogfile";
    let file = dir.join("s_client.keys");
    let log = Arc::new(CollectKeyLog::default());
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-keylogfile", file.to_str().expect("utf-8")]);
    let config = server_config().key_log(log.clone());
    let (mut s, r) = serve(&listener, &mut client, config);
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    exchange(&mut s, &mut client, case);
    check_key_log(&log, &file, case, &client);

    let case = "nbtls client, s_server -keylogfile";
    let file = dir.join("s_server.keys");
    let log = Arc::new(CollectKeyLog::default());
    let (mut server, port) = s_server(
        &pki.server_ecdsa,
        &[
            "-keylogfile",
            file.to_str().expect("utf-8"),
            "-naccept",
            "1",
        ],
    );
    let mut s = connect(port, client_config().key_log(log.clone()))
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    exchange(&mut s, &mut server, case);
    check_key_log(&log, &file, case, &server);
}

// ---------------------------------------------------------------------------------
// 12: closing.

#[test]
fn close_notify_both_ways() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();

    // We close first; s_server sees close_notify and answers with its own.
    let case = "nbtls client bye, s_server answers";
    let (mut server, port) = s_server(&pki.server_ecdsa, &["-naccept", "1"]);
    let mut s = connect(port, client_config())
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    exchange(&mut s, &mut server, case);
    s.bye(Shutdown::Write)
        .unwrap_or_else(|e| panic!("{case}: bye: {e:?}"));
    let mut buf = [0u8; 64];
    assert_eq!(
        s.recv(&mut buf),
        Ok(0),
        "{case}: s_server's close_notify\n{}",
        server.dump()
    );
    server.expect_success(TIMEOUT);
    assert!(server.output_contains("DONE"), "{case}\n{}", server.dump());
    assert!(
        !server.output_contains("ERROR") && !server.output_contains("unexpected eof"),
        "{case}: s_server saw no clean close\n{}",
        server.dump()
    );

    // s_client closes first (stdin EOF); then we close.
    let case = "s_client closes, nbtls server recv";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &[]);
    let (mut s, r) = serve(&listener, &mut client, server_config());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    exchange(&mut s, &mut client, case);
    client.close_stdin();
    assert_eq!(
        s.recv(&mut buf),
        Ok(0),
        "{case}: s_client's close_notify\n{}",
        client.dump()
    );
    assert_eq!(s.recv(&mut buf), Ok(0), "{case}: Ok(0) again");
    s.bye(Shutdown::Write)
        .unwrap_or_else(|e| panic!("{case}: bye: {e:?}"));
    client.expect_success(TIMEOUT);

    // We close first as a server; s_client reports the close and exits cleanly.
    let case = "nbtls server bye, s_client";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &[]);
    let (mut s, r) = serve(&listener, &mut client, server_config());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    exchange(&mut s, &mut client, case);
    s.bye(Shutdown::Write)
        .unwrap_or_else(|e| panic!("{case}: bye: {e:?}"));
    client.expect_success(TIMEOUT);
    // What s_client prints for a close_notify (an EOF gives "unexpected eof").
    assert!(
        client.stdout_text().contains("\nclosed\n"),
        "{case}: s_client saw no close_notify\n{}",
        client.dump()
    );
    assert!(
        !client.output_contains("unexpected eof"),
        "{case}\n{}",
        client.dump()
    );
    assert_eq!(s.recv(&mut buf), Ok(0), "{case}: s_client's close_notify");
}

/// SIGKILL by pid: `Peer::kill` closes stdin first, and an s_client at stdin EOF
/// would still send close_notify.
fn sigkill(peer: &mut Peer) {
    let pid = peer.pid().to_string();
    let status = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL {pid}");
    assert!(peer.wait_exit(TIMEOUT).is_some(), "{}", peer.dump());
}

#[test]
fn killed_peer_is_premature_termination() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();

    let case = "s_server killed";
    let (mut server, port) = s_server(&pki.server_ecdsa, &["-naccept", "1"]);
    let mut s = connect(port, client_config())
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    exchange(&mut s, &mut server, case);
    sigkill(&mut server);
    let mut buf = [0u8; 64];
    assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination), "{case}");
    // Sticky.
    assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination), "{case}");

    let case = "s_client killed";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &[]);
    let (mut s, r) = serve(&listener, &mut client, server_config());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    exchange(&mut s, &mut client, case);
    sigkill(&mut client);
    assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination), "{case}");
}
