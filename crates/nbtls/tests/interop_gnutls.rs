//! nbtls against GnuTLS 3.7.9 (`gnutls-serv`, `gnutls-cli`) over loopback TCP, in both
//! roles, through the public `Session` API (blocking sessions over `TcpStream`, every
//! socket operation bounded by a timeout).
//!
//! When nbtls is the client the peer is `gnutls-serv --echo`, so every byte we send comes
//! back; when nbtls is the server the peer is `gnutls-cli`, fed through its stdin and
//! read from its stdout.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::certs::{pki, CertFiles};
use common::peers::{gnutls_client, gnutls_server, require_tools, tcp_listen, Peer, TIMEOUT};
use common::tls::{certified_key, client_config, server_config};
use common::tls_extra::{
    accept_session, accept_session_over, connect_session, connect_session_nonblocking,
    connect_session_over, handshake, handshake_nonblocking, hex, payload, recv_exact,
    recv_hash_to_close, recv_to_close, send_all, send_while_receiving, sha256, RecordWatch,
    KEY_UPDATE_RECORD_LEN,
};
use nbtls::codec::{AlertDescription, CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};
use nbtls::{
    CertStore, ClientAuth, ClientConfig, Error, ServerConfig, Session, Shutdown, Transport,
    TrustAnchors,
};

fn tools() -> bool {
    require_tools(&["gnutls-serv", "gnutls-cli"])
}

/// TLS 1.3 only; append `:-CIPHER-ALL:+...` or `:-GROUP-ALL:+...` to narrow it.
const TLS13: &str = "NORMAL:-VERS-ALL:+VERS-TLS1.3";

/// The three TLS 1.3 suites both sides implement: GnuTLS priority name, nbtls code point.
const SUITES: [(&str, CipherSuite); 3] = [
    ("AES-128-GCM", CipherSuite::TLS_AES_128_GCM_SHA256),
    ("AES-256-GCM", CipherSuite::TLS_AES_256_GCM_SHA384),
    (
        "CHACHA20-POLY1305",
        CipherSuite::TLS_CHACHA20_POLY1305_SHA256,
    ),
];

/// The groups both sides implement: GnuTLS priority name, name in its output, nbtls group.
const GROUPS: [(&str, &str, NamedGroup); 3] = [
    ("GROUP-X25519", "ECDHE-X25519", NamedGroup::X25519),
    ("GROUP-SECP256R1", "ECDHE-SECP256R1", NamedGroup::SECP256R1),
    ("GROUP-SECP384R1", "ECDHE-SECP384R1", NamedGroup::SECP384R1),
];

const EXPORT_LABEL: &str = "EXPORTER-nbtls-interop";

// ---- nbtls client against gnutls-serv ----

/// `gnutls-serv --echo` presenting `cert`. Unless `args` requires (`-r`) or verifies
/// (`--verify-client-cert`) client certificates, it does not request one (`-a`), so each
/// test exercises one thing.
fn echo_server(cert: &CertFiles, args: &[&str]) -> (Peer, u16) {
    let mut v = vec![
        "--echo",
        // Echo bytes unchanged (by default a trailing CRLF becomes LF).
        "--crlf",
        "--x509certfile",
        cert.chain_path(),
        "--x509keyfile",
        cert.key_path(),
    ];
    if !args.contains(&"-r") && !args.contains(&"--verify-client-cert") {
        v.push("-a");
    }
    v.extend_from_slice(args);
    gnutls_server(&v)
}

/// An nbtls client for `localhost` on `port`, handshake done.
fn client_to(port: u16, config: ClientConfig, peer: &Peer) -> Session<TcpStream> {
    let mut c = connect_session(port, config, "localhost");
    if let Err(e) = handshake(&mut c) {
        panic!("nbtls client handshake failed: {e}\n{}", peer.dump());
    }
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLS1_3));
    c
}

/// Send `msg` and a newline to the echo server and check both come back.
///
/// gnutls-serv echoes text: it collects a C string until it holds a newline and sends
/// that back, so `msg` may not contain NUL, CR or a leading `**` (its commands).
fn echo<T: Transport>(c: &mut Session<T>, msg: &[u8]) {
    assert!(!msg.iter().any(|b| matches!(b, 0 | b'\r')) && !msg.starts_with(b"**"));
    let mut line = msg.to_vec();
    line.push(b'\n');
    send_all(c, &line).expect("send to gnutls-serv");
    let back = recv_exact(c, line.len()).expect("echo from gnutls-serv");
    assert!(back == line, "echo differs ({} bytes)", line.len());
}

/// `len` pseudo-random lower-case letters (echo-safe, see [`echo`]).
fn text_payload(len: usize, seed: u8) -> Vec<u8> {
    payload(len, seed).iter().map(|b| b'a' + b % 26).collect()
}

/// The hex value of gnutls's `- Key material: ` line, once it is printed.
fn key_material(peer: &mut Peer) -> String {
    assert!(
        peer.wait_for_output("- Key material: ", TIMEOUT),
        "no key material printed\n{}",
        peer.dump()
    );
    line_value(&peer.stdout_text(), "- Key material: ")
        .unwrap_or_else(|| panic!("no key material line on stdout\n{}", peer.dump()))
}

/// The rest of the first line starting with `prefix`, trimmed.
fn line_value(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_string())
}

fn exported<T: Transport>(s: &Session<T>, len: usize) -> String {
    let mut out = vec![0u8; len];
    s.export_keying_material(EXPORT_LABEL.as_bytes(), b"", &mut out)
        .expect("exporter");
    hex(&out)
}

/// Wait for `needle` in the peer's output or fail with its dump.
fn expect_output(peer: &mut Peer, needle: &str) {
    assert!(
        peer.wait_for_output(needle, TIMEOUT),
        "peer never printed {needle:?}\n{}",
        peer.dump()
    );
}

// ---- nbtls server against gnutls-cli ----

/// `gnutls-cli` to 127.0.0.1:`port` trusting the test CA (checks the IP SAN, no SNI).
fn cli(port: u16, args: &[&str]) -> Peer {
    let mut v = vec!["--x509cafile", pki().ca_path()];
    v.extend_from_slice(args);
    gnutls_client(port, &v)
}

/// Start gnutls-cli with `args`, accept it on an nbtls server with `config` and run the
/// handshake.
fn serve(config: ServerConfig, args: &[&str]) -> (Session<TcpStream>, Peer) {
    let (listener, port) = tcp_listen();
    let mut peer = cli(port, args);
    let mut s = accept_session(&listener, config);
    if let Err(e) = handshake(&mut s) {
        let _ = peer.wait_exit(TIMEOUT);
        panic!("nbtls server handshake failed: {e}\n{}", peer.dump());
    }
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLS1_3));
    (s, peer)
}

/// A line from gnutls-cli's stdin reaches us and ours reaches its stdout.
fn ping_pong<T: Transport>(s: &mut Session<T>, peer: &mut Peer, tag: &str) {
    let up = format!("{tag}: gnutls-cli to nbtls\n");
    peer.write_stdin(up.as_bytes()).expect("gnutls-cli stdin");
    let got = recv_exact(s, up.len()).expect("data from gnutls-cli");
    assert_eq!(String::from_utf8_lossy(&got), up);
    let down = format!("{tag}: nbtls to gnutls-cli\n");
    send_all(s, down.as_bytes()).expect("send to gnutls-cli");
    expect_output(peer, down.trim_end());
}

/// [`ping_pong`] the other way round: our line first, then gnutls-cli's.
fn pong_ping<T: Transport>(s: &mut Session<T>, peer: &mut Peer, tag: &str) {
    let down = format!("{tag}: nbtls to gnutls-cli\n");
    send_all(s, down.as_bytes()).expect("send to gnutls-cli");
    expect_output(peer, down.trim_end());
    let up = format!("{tag}: gnutls-cli to nbtls\n");
    peer.write_stdin(up.as_bytes()).expect("gnutls-cli stdin");
    let got = recv_exact(s, up.len()).expect("data from gnutls-cli");
    assert_eq!(String::from_utf8_lossy(&got), up);
}

/// gnutls-cli's stdin EOF: it sends close_notify, which `recv` reports as `Ok(0)`; ours
/// in reply lets it finish at once (else it waits 2 s for the connection to end) and
/// exit 0.
fn cli_closes<T: Transport>(s: &mut Session<T>, peer: &mut Peer) {
    peer.close_stdin();
    let rest = recv_to_close(s, 0).expect("close_notify from gnutls-cli");
    assert!(rest.is_empty());
    s.bye(Shutdown::Write).expect("close_notify in reply");
    expect_output(peer, "- Peer has closed the GnuTLS connection");
    peer.expect_success(TIMEOUT);
}

fn ca_anchors() -> TrustAnchors {
    TrustAnchors::from_certs(&[pki().ca_cert()]).expect("anchors")
}

// ================= 1. cipher suites (and the exporter under each suite's hash) =====

#[test]
fn every_suite_nbtls_client() {
    if !tools() {
        return;
    }
    for (name, suite) in SUITES {
        let prio = format!("{TLS13}:-CIPHER-ALL:+{name}");
        let (mut serv, port) = echo_server(
            &pki().server_ecdsa,
            &[
                "--priority",
                &prio,
                "--keymatexport",
                EXPORT_LABEL,
                "--keymatexportsize",
                "48",
            ],
        );
        let mut c = client_to(port, client_config(), &serv);
        assert_eq!(c.cipher_suite(), Some(suite), "{name}");
        echo(&mut c, format!("suite {name}").as_bytes());
        expect_output(&mut serv, &format!("-({name})"));
        assert_eq!(
            exported(&c, 48),
            key_material(&mut serv),
            "exporter, {name}"
        );
    }
}

#[test]
fn every_suite_nbtls_server() {
    if !tools() {
        return;
    }
    for (name, suite) in SUITES {
        let prio = format!("{TLS13}:-CIPHER-ALL:+{name}");
        let (mut s, mut peer) = serve(
            server_config(),
            &[
                "--priority",
                &prio,
                "--keymatexport",
                EXPORT_LABEL,
                "--keymatexportsize",
                "20",
            ],
        );
        assert_eq!(s.cipher_suite(), Some(suite), "{name}");
        expect_output(&mut peer, &format!("-({name})"));
        ping_pong(&mut s, &mut peer, name);
        assert_eq!(
            exported(&s, 20),
            key_material(&mut peer),
            "exporter, {name}"
        );
        cli_closes(&mut s, &mut peer);
    }
}

// ================= 2. groups =====

#[test]
fn every_group_nbtls_client() {
    if !tools() {
        return;
    }
    for (prio_name, shown, group) in GROUPS {
        let prio = format!("{TLS13}:-GROUP-ALL:+{prio_name}");
        let (mut serv, port) = echo_server(&pki().server_ecdsa, &["--priority", &prio]);
        // Shares for exactly this group: no HelloRetryRequest.
        let config = client_config()
            .key_share_groups(&[group])
            .expect("key share group");
        let mut c = client_to(port, config, &serv);
        assert_eq!(c.group(), Some(group));
        assert!(!c.info().hello_retry, "{prio_name}: unexpected HRR");
        echo(&mut c, prio_name.as_bytes());
        expect_output(&mut serv, &format!("-({shown})-"));
    }
}

#[test]
fn every_group_nbtls_server() {
    if !tools() {
        return;
    }
    for (prio_name, shown, group) in GROUPS {
        let prio = format!("{TLS13}:-GROUP-ALL:+{prio_name}");
        let (mut s, mut peer) = serve(server_config(), &["--priority", &prio]);
        assert_eq!(s.group(), Some(group));
        assert!(!s.info().hello_retry, "{prio_name}: unexpected HRR");
        expect_output(&mut peer, &format!("-({shown})-"));
        ping_pong(&mut s, &mut peer, prio_name);
        cli_closes(&mut s, &mut peer);
    }
}

// ================= 3. server certificate types =====

/// Server leaf, the scheme a TLS 1.3 server signs with, and its GnuTLS name.
fn server_certs() -> [(&'static CertFiles, SignatureScheme, &'static str); 3] {
    let p = pki();
    [
        (
            &p.server_ecdsa,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
            "(ECDSA-SECP256R1-SHA256)",
        ),
        (
            &p.server_rsa,
            SignatureScheme::RSA_PSS_RSAE_SHA256,
            "(RSA-PSS-RSAE-SHA256)",
        ),
        (
            &p.server_ed25519,
            SignatureScheme::ED25519,
            "(EdDSA-Ed25519)",
        ),
    ]
}

#[test]
fn server_cert_types_nbtls_client() {
    if !tools() {
        return;
    }
    for (cert, scheme, shown) in server_certs() {
        let (mut serv, port) = echo_server(cert, &[]);
        let mut c = client_to(port, client_config(), &serv);
        assert_eq!(c.info().peer_signature_scheme, Some(scheme), "{shown}");
        assert_eq!(
            c.peer_certificates().first().map(|d| d.as_ref()),
            Some(cert.leaf_der.as_slice()),
            "{shown}: leaf received"
        );
        echo(&mut c, shown.as_bytes());
        expect_output(&mut serv, shown);
    }
}

#[test]
fn server_cert_types_nbtls_server() {
    if !tools() {
        return;
    }
    for (cert, scheme, shown) in server_certs() {
        let (mut s, mut peer) = serve(ServerConfig::new(certified_key(cert)), &[]);
        assert_eq!(s.info().signature_scheme, Some(scheme), "{shown}");
        // gnutls-cli verified our chain against the CA and the IP SAN.
        expect_output(&mut peer, "- Status: The certificate is trusted.");
        expect_output(&mut peer, shown);
        ping_pong(&mut s, &mut peer, shown);
        cli_closes(&mut s, &mut peer);
    }
}

// ================= 4. client certificates =====

#[test]
fn client_cert_nbtls_client() {
    if !tools() {
        return;
    }
    let p = pki();
    let cases = [
        (&p.client_ecdsa, "ECDSA-SECP256R1-SHA256"),
        (&p.client_rsa, "RSA-PSS-RSAE-SHA256"),
    ];
    for (cert, shown) in cases {
        // -r: require a certificate and verify it against the test CA.
        let (mut serv, port) = echo_server(
            &p.server_ecdsa,
            &["-r", "--verify-client-cert", "--x509cafile", p.ca_path()],
        );
        let config = client_config().client_certificate(certified_key(cert));
        let mut c = client_to(port, config, &serv);
        assert!(c.info().client_authenticated);
        echo(&mut c, shown.as_bytes());
        expect_output(&mut serv, &format!("- Client Signature: {shown}"));
    }
}

#[test]
fn client_cert_requested_by_gnutls_serv() {
    if !tools() {
        return;
    }
    let p = pki();
    // Requested, verified if sent, not required.
    let args = ["--verify-client-cert", "--x509cafile", p.ca_path()];
    let (mut serv, port) = echo_server(&p.server_ecdsa, &args);
    let mut c = client_to(port, client_config(), &serv);
    assert!(!c.info().client_authenticated, "no certificate configured");
    echo(&mut c, b"anonymous client");
    // Printed after the "- Client Signature:" line that a client certificate adds.
    expect_output(&mut serv, "'tls-exporter': ");
    assert!(
        !serv.output_contains("- Client Signature:"),
        "{}",
        serv.dump()
    );

    let (mut serv, port) = echo_server(&p.server_ecdsa, &args);
    let config = client_config().client_certificate(certified_key(&p.client_ecdsa));
    let mut c = client_to(port, config, &serv);
    assert!(c.info().client_authenticated);
    echo(&mut c, b"authenticated client");
    expect_output(&mut serv, "- Client Signature: ECDSA-SECP256R1-SHA256");
}

#[test]
fn client_cert_required_by_gnutls_but_missing() {
    if !tools() {
        return;
    }
    let p = pki();
    let (serv, port) = echo_server(
        &p.server_ecdsa,
        &["-r", "--verify-client-cert", "--x509cafile", p.ca_path()],
    );
    let mut c = connect_session(port, client_config(), "localhost");
    // Our handshake ends with our Finished; the server's refusal arrives after it.
    let err = match handshake(&mut c) {
        Err(e) => e,
        Ok(()) => {
            assert!(!c.info().client_authenticated);
            let mut buf = [0u8; 16];
            match c.recv(&mut buf) {
                Err(e) => e,
                Ok(n) => panic!(
                    "gnutls-serv -r served us without a certificate ({n} bytes)\n{}",
                    serv.dump()
                ),
            }
        }
    };
    assert_eq!(
        err,
        Error::AlertReceived(AlertDescription::CERTIFICATE_REQUIRED),
        "{}",
        serv.dump()
    );
}

#[test]
fn client_cert_nbtls_server_require() {
    if !tools() {
        return;
    }
    let p = pki();
    for cert in [&p.client_ecdsa, &p.client_rsa] {
        let config = server_config().client_auth(ClientAuth::Require, ca_anchors());
        let (mut s, mut peer) = serve(
            config,
            &[
                "--x509certfile",
                cert.chain_path(),
                "--x509keyfile",
                cert.key_path(),
            ],
        );
        assert!(s.info().client_authenticated);
        assert_eq!(
            s.peer_certificates().first().map(|d| d.as_ref()),
            Some(cert.leaf_der.as_slice())
        );
        expect_output(&mut peer, "- Successfully sent 2 certificate(s) to server.");
        ping_pong(&mut s, &mut peer, "client cert");
        cli_closes(&mut s, &mut peer);
    }
}

#[test]
fn client_cert_nbtls_server_require_but_missing() {
    if !tools() {
        return;
    }
    let config = server_config().client_auth(ClientAuth::Require, ca_anchors());
    let (listener, port) = tcp_listen();
    let mut peer = cli(port, &[]);
    let mut s = accept_session(&listener, config);
    let err = handshake(&mut s).expect_err("handshake without a required client certificate");
    assert_eq!(
        err.alert(),
        Some(AlertDescription::CERTIFICATE_REQUIRED),
        "{err}"
    );
    assert!(!s.info().client_authenticated);
    // gnutls-cli sees the alert and fails.
    let status = peer.wait_exit(TIMEOUT).expect("gnutls-cli exits");
    assert!(!status.success(), "{}", peer.dump());
}

#[test]
fn client_cert_nbtls_server_request_optional() {
    if !tools() {
        return;
    }
    let config = server_config().client_auth(ClientAuth::Request, ca_anchors());
    let (mut s, mut peer) = serve(config, &[]);
    assert!(!s.info().client_authenticated);
    assert!(s.peer_certificates().is_empty());
    expect_output(&mut peer, "- Server has requested a certificate.");
    ping_pong(&mut s, &mut peer, "no client cert");
    cli_closes(&mut s, &mut peer);
}

// ================= 5. ALPN and SNI =====

#[test]
fn alpn_nbtls_client() {
    if !tools() {
        return;
    }
    let (mut serv, port) = echo_server(&pki().server_ecdsa, &["--alpn", "http/1.1"]);
    let config = client_config().alpn(&["h2", "http/1.1"]).expect("alpn");
    let mut c = client_to(port, config, &serv);
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    echo(&mut c, b"alpn");
    expect_output(&mut serv, "- Application protocol: http/1.1");
}

#[test]
fn alpn_nbtls_server() {
    if !tools() {
        return;
    }
    // The server's preference wins: h2, though the client lists it second.
    let config = server_config().alpn(&["h2", "http/1.1"]).expect("alpn");
    let (mut s, mut peer) = serve(config, &["--alpn", "http/1.1", "--alpn", "h2"]);
    assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]));
    expect_output(&mut peer, "- Application protocol: h2");
    ping_pong(&mut s, &mut peer, "alpn");
    cli_closes(&mut s, &mut peer);
}

#[test]
fn alpn_no_overlap_nbtls_server_refuses() {
    if !tools() {
        return;
    }
    let config = server_config().alpn(&["h2"]).expect("alpn");
    let (listener, port) = tcp_listen();
    let mut peer = cli(port, &["--alpn", "imap"]);
    let mut s = accept_session(&listener, config);
    let err = handshake(&mut s).expect_err("no ALPN in common");
    assert_eq!(
        err.alert(),
        Some(AlertDescription::NO_APPLICATION_PROTOCOL),
        "{err}"
    );
    let status = peer.wait_exit(TIMEOUT).expect("gnutls-cli exits");
    assert!(!status.success(), "{}", peer.dump());
}

fn sni_server_config() -> ServerConfig {
    let p = pki();
    let mut store = CertStore::new();
    store.add(&["localhost"], certified_key(&p.server_ecdsa));
    store.add(&["other.test"], certified_key(&p.server_other));
    // No SNI (a client connecting by IP address): the localhost certificate.
    store.add(&[], certified_key(&p.server_ecdsa));
    ServerConfig::with_resolver(std::sync::Arc::new(store))
}

#[test]
fn sni_selects_certificate_nbtls_server() {
    if !tools() {
        return;
    }
    // gnutls-cli checks the certificate against --verify-hostname.
    let (mut s, mut peer) = serve(
        sni_server_config(),
        &[
            "--sni-hostname",
            "other.test",
            "--verify-hostname",
            "other.test",
        ],
    );
    assert_eq!(s.server_name(), Some("other.test"));
    expect_output(&mut peer, "- Status: The certificate is trusted.");
    ping_pong(&mut s, &mut peer, "sni other.test");
    cli_closes(&mut s, &mut peer);

    let (mut s, mut peer) = serve(
        sni_server_config(),
        &[
            "--sni-hostname",
            "localhost",
            "--verify-hostname",
            "localhost",
        ],
    );
    assert_eq!(s.server_name(), Some("localhost"));
    expect_output(&mut peer, "- Status: The certificate is trusted.");
    ping_pong(&mut s, &mut peer, "sni localhost");
    cli_closes(&mut s, &mut peer);

    // No SNI: the default certificate, verified against the IP SAN.
    let (mut s, mut peer) = serve(sni_server_config(), &[]);
    assert_eq!(s.server_name(), None);
    expect_output(&mut peer, "- Status: The certificate is trusted.");
    ping_pong(&mut s, &mut peer, "no sni");
    cli_closes(&mut s, &mut peer);
}

#[test]
fn sni_wrong_certificate_is_refused_by_gnutls_cli() {
    if !tools() {
        return;
    }
    // Control for the test above: asking for localhost while expecting other.test must
    // fail, so the success there comes from the SNI-selected certificate.
    let (listener, port) = tcp_listen();
    let mut peer = cli(
        port,
        &[
            "--sni-hostname",
            "localhost",
            "--verify-hostname",
            "other.test",
        ],
    );
    let mut s = accept_session(&listener, sni_server_config());
    let r = handshake(&mut s);
    let status = peer.wait_exit(TIMEOUT).expect("gnutls-cli exits");
    assert!(
        !status.success(),
        "gnutls-cli accepted the wrong certificate\n{}",
        peer.dump()
    );
    assert!(
        peer.output_contains("The certificate is NOT trusted"),
        "{}",
        peer.dump()
    );
    assert_eq!(
        r,
        Err(Error::AlertReceived(AlertDescription::BAD_CERTIFICATE)),
        "gnutls-cli's refusal"
    );
}

#[test]
fn sni_sent_by_nbtls_client() {
    if !tools() {
        return;
    }
    // With --sni-hostname-fatal, gnutls-serv refuses any other name.
    let (_serv, port) = echo_server(
        &pki().server_ecdsa,
        &["--sni-hostname", "localhost", "--sni-hostname-fatal"],
    );
    let mut c = connect_session(port, client_config(), "localhost");
    handshake(&mut c).expect("handshake with the expected SNI");
    echo(&mut c, b"sni");

    let (_serv, port) = echo_server(
        &pki().server_other,
        &["--sni-hostname", "other.test", "--sni-hostname-fatal"],
    );
    let mut c = connect_session(port, client_config(), "localhost");
    let err = handshake(&mut c).expect_err("SNI mismatch is fatal");
    assert_eq!(
        err,
        Error::AlertReceived(AlertDescription::UNRECOGNIZED_NAME)
    );
}

// ================= 6. HelloRetryRequest =====

#[test]
fn hello_retry_nbtls_server() {
    if !tools() {
        return;
    }
    // gnutls-cli sends shares for X25519 and P-256 only: a server that accepts only
    // P-384 must ask again.
    let config = server_config()
        .groups(&[NamedGroup::SECP384R1])
        .expect("groups");
    let (mut s, mut peer) = serve(config, &[]);
    assert!(s.info().hello_retry);
    assert_eq!(s.group(), Some(NamedGroup::SECP384R1));
    expect_output(&mut peer, "-(ECDHE-SECP384R1)-");
    ping_pong(&mut s, &mut peer, "hrr");
    cli_closes(&mut s, &mut peer);
}

#[test]
fn hello_retry_nbtls_client() {
    if !tools() {
        return;
    }
    let prio = format!("{TLS13}:-GROUP-ALL:+GROUP-SECP256R1");
    let (mut serv, port) = echo_server(&pki().server_ecdsa, &["--priority", &prio]);
    let config = client_config()
        .key_share_groups(&[NamedGroup::X25519])
        .expect("key share groups");
    let mut c = client_to(port, config, &serv);
    assert!(c.info().hello_retry);
    assert_eq!(c.group(), Some(NamedGroup::SECP256R1));
    echo(&mut c, b"after hrr");
    expect_output(&mut serv, "-(ECDHE-SECP256R1)-");
}

// ================= 7. KeyUpdate =====
//
// Under encryption a KeyUpdate shows only as a record of KEY_UPDATE_RECORD_LEN body
// bytes (every data record here is longer), so a RecordWatch counts them each way.

type Watched = RecordWatch<TcpStream>;

/// KeyUpdate records (sent by us, received from the peer) since the last reset; resets.
fn key_updates<T: Transport>(s: &mut Session<RecordWatch<T>>) -> (usize, usize) {
    let w = s.transport_mut();
    let counts = (
        w.sent.count(KEY_UPDATE_RECORD_LEN),
        w.received.count(KEY_UPDATE_RECORD_LEN),
    );
    w.reset();
    counts
}

#[test]
fn key_update_by_nbtls_client() {
    if !tools() {
        return;
    }
    let (serv, port) = echo_server(&pki().server_ecdsa, &[]);
    let mut c: Session<Watched> =
        connect_session_over(port, client_config(), "localhost", RecordWatch::new);
    handshake(&mut c).unwrap_or_else(|e| panic!("handshake: {e}\n{}", serv.dump()));
    echo(&mut c, b"before any update");
    key_updates(&mut c);

    // update_requested: gnutls-serv answers with its own KeyUpdate before echoing.
    c.key_update(true).expect("key update");
    echo(&mut c, b"after update_requested");
    assert_eq!(key_updates(&mut c), (1, 1), "(ours, theirs)");

    c.key_update(false).expect("key update");
    echo(&mut c, b"after update_not_requested");
    assert_eq!(key_updates(&mut c), (1, 0), "(ours, theirs)");

    // Three in a row: only the first may request an update (RFC 8446 §4.6.3: not again
    // before the peer's arrives), so the peer answers once.
    c.key_update(true).expect("key update");
    c.key_update(true).expect("key update");
    c.key_update(false).expect("key update");
    echo(&mut c, b"after three updates");
    assert_eq!(key_updates(&mut c), (3, 1), "(ours, theirs)");
    echo(&mut c, &text_payload(100_000, 7));
}

#[test]
fn key_update_by_nbtls_server() {
    if !tools() {
        return;
    }
    let (listener, port) = tcp_listen();
    let mut peer = cli(port, &[]);
    let mut s = accept_session_over(&listener, server_config(), RecordWatch::new);
    handshake(&mut s).unwrap_or_else(|e| panic!("handshake: {e}\n{}", peer.dump()));
    ping_pong(&mut s, &mut peer, "before update");
    key_updates(&mut s);

    // Our KeyUpdate goes out with our next record; gnutls-cli answers before its next.
    s.key_update(true).expect("key update");
    pong_ping(&mut s, &mut peer, "after update_requested");
    assert_eq!(key_updates(&mut s), (1, 1), "(ours, theirs)");

    s.key_update(false).expect("key update");
    pong_ping(&mut s, &mut peer, "after update_not_requested");
    assert_eq!(key_updates(&mut s), (1, 0), "(ours, theirs)");
    cli_closes(&mut s, &mut peer);
}

#[test]
fn key_update_by_gnutls_cli() {
    if !tools() {
        return;
    }
    let (listener, port) = tcp_listen();
    let mut peer = cli(port, &["--inline-commands"]);
    let mut s = accept_session_over(&listener, server_config(), RecordWatch::new);
    handshake(&mut s).unwrap_or_else(|e| panic!("handshake: {e}\n{}", peer.dump()));
    ping_pong(&mut s, &mut peer, "before rekey");
    key_updates(&mut s);

    // ^rekey^ (gnutls-cli's src/inline_cmds.h: "REKEY_BOTH"): it updates and requests
    // an update; we answer before our next record, under which it reads our reply.
    for n in 1..=2 {
        peer.write_stdin(b"^rekey^\n").expect("stdin");
        ping_pong(&mut s, &mut peer, &format!("after rekey #{n}"));
        assert_eq!(
            peer.count_output("- Rekey was completed"),
            n,
            "{}",
            peer.dump()
        );
        assert_eq!(key_updates(&mut s), (1, 1), "(ours, theirs)");
    }
    // ^rekey1^ ("REKEY_LOCAL"): only its sending key changes; we must not answer.
    peer.write_stdin(b"^rekey1^\n").expect("stdin");
    ping_pong(&mut s, &mut peer, "after rekey1");
    assert_eq!(
        peer.count_output("- Rekey was completed"),
        3,
        "{}",
        peer.dump()
    );
    assert_eq!(key_updates(&mut s), (0, 1), "(ours, theirs)");
    cli_closes(&mut s, &mut peer);
}

// ================= 8. record_size_limit =====

#[test]
fn record_size_limit_from_gnutls_cli() {
    if !tools() {
        return;
    }
    let (listener, port) = tcp_listen();
    let mut peer = cli(port, &["--recordsize", "512", "--logfile", "/dev/stderr"]);
    let mut s = accept_session_over(&listener, server_config(), RecordWatch::new);
    handshake(&mut s).unwrap_or_else(|e| panic!("handshake: {e}\n{}", peer.dump()));
    let limit = s
        .info()
        .peer_record_size_limit
        .expect("gnutls-cli sent record_size_limit");
    // gnutls counts the TLS 1.3 content type byte on top of --recordsize.
    assert_eq!(limit, 513);
    s.transport_mut().reset();
    let data = payload(200_000, 3);
    send_all(&mut s, &data).expect("send");
    assert!(
        peer.wait_for_stdout_len(data.len(), TIMEOUT),
        "{}",
        peer.dump()
    );
    assert!(peer.stdout_bytes() == data, "data differs");
    // Ciphertext = plaintext (at most limit - 1) + content type + 16-byte tag.
    let watch = s.transport();
    assert_eq!(watch.max_sent(), usize::from(limit) + 16, "largest record");
    assert!(watch.sent.sizes.len() >= data.len() / (usize::from(limit) - 1));
    cli_closes(&mut s, &mut peer);
}

#[test]
fn record_size_limit_sent_by_nbtls_client() {
    if !tools() {
        return;
    }
    let (serv, port) = echo_server(&pki().server_ecdsa, &[]);
    let config = client_config().record_size_limit(1024).expect("limit");
    let mut c = client_to(port, config, &serv);
    // gnutls-serv answers with its own (default) limit.
    assert_eq!(c.info().peer_record_size_limit, Some(16385));
    // We refuse records over our limit (record_overflow): a large echo passes only if
    // gnutls-serv kept every record within 1024 bytes.
    echo(&mut c, &text_payload(100_000, 4));
}

#[test]
fn record_size_limit_from_gnutls_serv() {
    if !tools() {
        return;
    }
    let (serv, port) = echo_server(&pki().server_ecdsa, &["--recordsize", "512"]);
    // A server sends record_size_limit only in reply to one.
    let config = client_config().record_size_limit(16385).expect("limit");
    let mut c = connect_session_over(port, config, "localhost", RecordWatch::new);
    handshake(&mut c).unwrap_or_else(|e| panic!("handshake: {e}\n{}", serv.dump()));
    let limit = c
        .info()
        .peer_record_size_limit
        .expect("limit from gnutls-serv");
    assert_eq!(limit, 513);
    c.transport_mut().reset();
    let data = text_payload(50_000, 5);
    echo(&mut c, &data);
    assert_eq!(c.transport().max_sent(), usize::from(limit) + 16);
}

// ================= 9. bulk transfers, checked by SHA-256 =====

const BULK: usize = 64 << 20;

#[test]
fn bulk_64mib_gnutls_cli_to_nbtls() {
    if !tools() {
        return;
    }
    let data = payload(BULK, 10);
    let want = sha256(&data);
    let (mut s, mut peer) = serve(server_config(), &["--logfile", "/dev/stderr"]);
    // gnutls-cli sends stdin as it reads it, then close_notify at EOF.
    let feeder = peer.feed_stdin_and_close(data);
    let (len, got) = recv_hash_to_close(&mut s).expect("bulk receive");
    feeder
        .join()
        .expect("feeder thread")
        .expect("all of stdin written");
    assert_eq!(len, BULK);
    assert_eq!(hex(&got), hex(&want));
    s.bye(Shutdown::Write).expect("close_notify in reply");
    peer.expect_success(TIMEOUT);
}

/// gnutls-serv decrypts all 64 MiB we send and encrypts them back: the SHA-256 of what
/// returns checks both directions. (Echoing, not one direction at a time: gnutls-cli
/// writes what it receives to stdout one byte per write(2), far too slow for 64 MiB.)
#[test]
fn bulk_64mib_nbtls_echoed_by_gnutls_serv() {
    if !tools() {
        return;
    }
    let data = echo_bulk_payload(BULK, 11);
    let want = sha256(&data);
    let (serv, port) = echo_server(&pki().server_ecdsa, &[]);
    let mut c = connect_session_nonblocking(port, client_config(), "localhost");
    handshake_nonblocking(&mut c).unwrap_or_else(|e| panic!("handshake: {e}\n{}", serv.dump()));
    // gnutls-serv drops connections 30 s after they start.
    let got = send_while_receiving(&mut c, &data, BULK, Duration::from_secs(25))
        .unwrap_or_else(|e| panic!("echo of 64 MiB: {e}"));
    assert_eq!(hex(&got), hex(&want));
}

/// Echo-safe bulk data: lower-case letters with a newline every 64 bytes on average
/// (gnutls-serv answers once a newline arrived).
fn echo_bulk_payload(len: usize, seed: u8) -> Vec<u8> {
    let mut table = [0u8; 256];
    for (i, t) in table.iter_mut().enumerate() {
        *t = if i < 4 { b'\n' } else { b'a' + (i % 26) as u8 };
    }
    let mut data = payload(len, seed);
    for b in data.iter_mut() {
        *b = table[usize::from(*b)];
    }
    data
}

/// nbtls to gnutls-cli, one direction, checked by SHA-256 of its stdout (`--logfile`
/// moves its messages to stderr). Kept small: gnutls-cli writes byte by byte.
#[test]
fn bulk_nbtls_to_gnutls_cli() {
    if !tools() {
        return;
    }
    const LEN: usize = 256 << 10;
    let data = payload(LEN, 9);
    let (mut s, mut peer) = serve(server_config(), &["--logfile", "/dev/stderr"]);
    send_all(&mut s, &data).expect("bulk send");
    s.bye(Shutdown::Write).expect("close_notify");
    expect_output(&mut peer, "- Peer has closed the GnuTLS connection");
    peer.expect_success(TIMEOUT);
    let got = peer.stdout_bytes();
    assert_eq!(got.len(), LEN);
    assert_eq!(hex(&sha256(&got)), hex(&sha256(&data)));
}

// ================= 10. exporter (sizes; the suites tests cover each hash) =====

#[test]
fn exporter_matches_gnutls_both_roles() {
    if !tools() {
        return;
    }
    for size in ["1", "64"] {
        let n: usize = size.parse().expect("size");
        let (mut serv, port) = echo_server(
            &pki().server_ecdsa,
            &["--keymatexport", EXPORT_LABEL, "--keymatexportsize", size],
        );
        let mut c = client_to(port, client_config(), &serv);
        echo(&mut c, b"exporter");
        assert_eq!(
            exported(&c, n),
            key_material(&mut serv),
            "client, {n} bytes"
        );
        // gnutls also prints the RFC 9266 tls-exporter channel binding.
        let mut cb = [0u8; 32];
        c.export_keying_material(b"EXPORTER-Channel-Binding", b"", &mut cb)
            .expect("exporter");
        expect_output(&mut serv, &format!("'tls-exporter': {}", hex(&cb)));

        let (mut s, mut peer) = serve(
            server_config(),
            &["--keymatexport", EXPORT_LABEL, "--keymatexportsize", size],
        );
        assert_eq!(
            exported(&s, n),
            key_material(&mut peer),
            "server, {n} bytes"
        );
        ping_pong(&mut s, &mut peer, "exporter");
        cli_closes(&mut s, &mut peer);
    }
}

// ================= 11. close_notify and premature termination =====

#[test]
fn close_notify_from_nbtls_server() {
    if !tools() {
        return;
    }
    let (mut s, mut peer) = serve(server_config(), &[]);
    ping_pong(&mut s, &mut peer, "before close");
    s.bye(Shutdown::Write).expect("bye");
    expect_output(&mut peer, "- Peer has closed the GnuTLS connection");
    peer.expect_success(TIMEOUT);
    assert_eq!(
        s.send(b"late"),
        Err(Error::InvalidSession),
        "sending after bye"
    );
}

#[test]
fn close_notify_from_gnutls_cli() {
    if !tools() {
        return;
    }
    let (mut s, mut peer) = serve(server_config(), &[]);
    ping_pong(&mut s, &mut peer, "before close");
    peer.close_stdin();
    let mut buf = [0u8; 8];
    assert_eq!(s.recv(&mut buf), Ok(0), "close_notify from gnutls-cli");
    assert_eq!(s.recv(&mut buf), Ok(0), "and again");
    // Theirs already arrived: ReadWrite only sends ours.
    s.bye(Shutdown::ReadWrite)
        .expect("bye after the peer's close_notify");
    expect_output(&mut peer, "- Peer has closed the GnuTLS connection");
    peer.expect_success(TIMEOUT);
}

#[test]
fn close_notify_nbtls_client_and_gnutls_serv() {
    if !tools() {
        return;
    }
    let (serv, port) = echo_server(&pki().server_ecdsa, &[]);
    let mut c = client_to(port, client_config(), &serv);
    echo(&mut c, b"before close");
    c.bye(Shutdown::Write).expect("bye");
    // gnutls-serv answers our close_notify with its own.
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf), Ok(0), "{}", serv.dump());
}

#[test]
fn premature_termination_gnutls_cli_killed() {
    if !tools() {
        return;
    }
    let (mut s, mut peer) = serve(server_config(), &[]);
    ping_pong(&mut s, &mut peer, "before kill");
    // Not Peer::kill: it closes stdin first, and at stdin EOF gnutls-cli may still get
    // its close_notify out before the signal lands.
    let status = std::process::Command::new("kill")
        .args(["-KILL", &peer.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert!(
        peer.wait_exit(TIMEOUT).is_some(),
        "gnutls-cli survived SIGKILL"
    );
    let mut buf = [0u8; 64];
    assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination));
    // Sticky.
    assert_eq!(s.recv(&mut buf), Err(Error::PrematureTermination));
}

#[test]
fn premature_termination_gnutls_serv_killed() {
    if !tools() {
        return;
    }
    let (mut serv, port) = echo_server(&pki().server_ecdsa, &[]);
    let mut c = client_to(port, client_config(), &serv);
    echo(&mut c, b"before kill");
    serv.kill();
    let mut buf = [0u8; 64];
    assert_eq!(c.recv(&mut buf), Err(Error::PrematureTermination));
}
