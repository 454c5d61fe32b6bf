//! TLS 1.2 interop with OpenSSL 3.0 (`s_server`/`s_client -tls1_2`) and GnuTLS 3.7
//! (`gnutls-serv`/`gnutls-cli` with `NORMAL:-VERS-ALL:+VERS-TLS1.2`), nbtls in both
//! roles through the library (blocking `Session` over `TcpStream`, every wait bounded).

mod common;

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use common::certs::{pki, CertFiles};
use common::peers::{
    gnutls_client, gnutls_server, openssl_client, openssl_server, require_tools, tcp_connect,
    tcp_listen, Peer, TIMEOUT,
};
use common::tcp::{
    accept, anchors, expect_output, hex, recv_until, send_all, server_with, wait_count,
    wait_verified,
};
use common::tls::{certified_key, client_config};
use nbtls::codec::{AlertDescription, CipherSuite, NamedGroup, ProtocolVersion};
use nbtls::{ClientAuth, ClientConfig, Error, Flags, ServerConfig, Session};

// ---------------------------------------------------------------------------------
// Helpers.

fn tools() -> bool {
    require_tools(&["openssl", "gnutls-serv", "gnutls-cli"])
}

/// An nbtls client session to 127.0.0.1:`port` for `localhost`, after its handshake.
fn connect(port: u16, config: ClientConfig) -> Result<Session<TcpStream>, Error> {
    let stream = tcp_connect(port);
    let mut s = Session::client(Arc::new(config), "localhost", stream, Flags::NONE)
        .expect("client session");
    s.set_handshake_timeout(Some(TIMEOUT));
    s.handshake().map(|()| s)
}

/// Accepts the connection `peer` makes (bounded) and runs an nbtls server handshake.
fn serve(
    listener: &TcpListener,
    peer: &mut Peer,
    config: ServerConfig,
) -> (Session<TcpStream>, Result<(), Error>) {
    let stream = accept(listener, peer);
    let mut s = Session::server(Arc::new(config), stream, Flags::NONE).expect("server session");
    s.set_handshake_timeout(Some(TIMEOUT));
    let r = s.handshake();
    (s, r)
}

/// One line each way with a peer that sends its stdin and prints what it receives
/// (s_server, s_client, gnutls-cli). The lines start with letters that are no
/// OpenSSL stdin command.
fn exchange(s: &mut Session<TcpStream>, peer: &mut Peer, case: &str) {
    let ours = format!("nbtls says {case}");
    send_all(s, format!("{ours}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
    assert!(
        peer.wait_for_output(&ours, TIMEOUT),
        "{case}: the peer did not receive our data\n{}",
        peer.dump()
    );
    let theirs = format!("peer says {case}");
    peer.write_stdin(format!("{theirs}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: writing to the peer: {e}\n{}", peer.dump()));
    if let Err(e) = recv_until(s, &theirs) {
        panic!("{case}: {e}\n{}", peer.dump());
    }
}

/// `s_server -tls1_2` presenting `files`, with `extra` arguments.
fn s_server(files: &CertFiles, extra: &[&str]) -> (Peer, u16) {
    let mut args = vec![
        "-tls1_2",
        "-cert",
        files.chain_path(),
        "-key",
        files.key_path(),
    ];
    args.extend_from_slice(extra);
    openssl_server(&args)
}

/// `s_client -tls1_2` verifying the test CA and `localhost`, with `extra` arguments.
fn s_client(port: u16, extra: &[&str]) -> Peer {
    let mut args = vec![
        "-tls1_2",
        "-CAfile",
        pki().ca_path(),
        "-verify_return_error",
        "-verify_hostname",
        "localhost",
    ];
    args.extend_from_slice(extra);
    openssl_client(port, &args)
}

const EXPORT_LABEL: &str = "EXPERIMENTAL-nbtls-tls12";
const EXPORT_LEN: usize = 32;

/// RFC 5705 with no context: what both tools export (they pass no context).
fn our_export(s: &Session<TcpStream>, case: &str) -> String {
    let mut out = [0u8; EXPORT_LEN];
    s.export_keying_material(EXPORT_LABEL.as_bytes(), b"", &mut out)
        .unwrap_or_else(|e| panic!("{case}: exporter: {e:?}"));
    hex(&out)
}

/// Our exporter equals what the peer printed after `prefix` (OpenSSL `Keying
/// material:`, GnuTLS `- Key material:`).
fn check_export(s: &Session<TcpStream>, peer: &mut Peer, prefix: &str, case: &str) {
    let Some(theirs) = peer.wait_for_field(prefix, TIMEOUT) else {
        panic!(
            "{case}: the peer printed no keying material\n{}",
            peer.dump()
        );
    };
    assert_eq!(
        our_export(s, case),
        theirs.to_ascii_lowercase(),
        "{case}: exporter values differ\n{}",
        peer.dump()
    );
}

fn openssl_export_args() -> Vec<String> {
    vec![
        "-keymatexport".into(),
        EXPORT_LABEL.into(),
        "-keymatexportlen".into(),
        EXPORT_LEN.to_string(),
    ]
}

fn gnutls_export_args() -> Vec<String> {
    vec![
        "--keymatexport".into(),
        EXPORT_LABEL.into(),
        "--keymatexportsize".into(),
        EXPORT_LEN.to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// GnuTLS priority for TLS 1.2 only; append `:-CIPHER-ALL:+...` and the like.
const TLS12: &str = "NORMAL:-VERS-ALL:+VERS-TLS1.2";

/// `gnutls-serv --echo` presenting `files`. Unless `args` asks for client certificates
/// (`-r`, `--verify-client-cert`) it requests none (`-a`).
fn echo_server(files: &CertFiles, args: &[&str]) -> (Peer, u16) {
    let mut v = vec![
        "--echo",
        // Echo bytes unchanged (by default a trailing CRLF becomes LF).
        "--crlf",
        "--x509certfile",
        files.chain_path(),
        "--x509keyfile",
        files.key_path(),
    ];
    if !args.contains(&"-r") && !args.contains(&"--verify-client-cert") {
        v.push("-a");
    }
    v.extend_from_slice(args);
    gnutls_server(&v)
}

/// `gnutls-cli` to 127.0.0.1:`port` trusting the test CA (it checks the IP SAN and
/// sends no SNI).
fn cli(port: u16, args: &[&str]) -> Peer {
    let mut v = vec!["--x509cafile", pki().ca_path()];
    v.extend_from_slice(args);
    gnutls_client(port, &v)
}

/// A line to gnutls-serv --echo comes back unchanged.
fn echo(s: &mut Session<TcpStream>, peer: &Peer, case: &str) {
    let line = format!("nbtls echo {case}\n");
    send_all(s, line.as_bytes()).unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
    if let Err(e) = recv_until(s, &line) {
        panic!("{case}: {e}\n{}", peer.dump());
    }
}

// ---------------------------------------------------------------------------------
// Cipher suites, with the RFC 5705 exporter under each suite's PRF hash.

struct Suite12 {
    suite: CipherSuite,
    openssl: &'static str,
    gnutls_cipher: &'static str,
    gnutls_kx: &'static str,
    rsa: bool,
}

const SUITES: [Suite12; 6] = [
    Suite12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        gnutls_cipher: "AES-128-GCM",
        gnutls_kx: "ECDHE-ECDSA",
        rsa: false,
    },
    Suite12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        gnutls_cipher: "AES-256-GCM",
        gnutls_kx: "ECDHE-ECDSA",
        rsa: false,
    },
    Suite12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        gnutls_cipher: "CHACHA20-POLY1305",
        gnutls_kx: "ECDHE-ECDSA",
        rsa: false,
    },
    Suite12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        gnutls_cipher: "AES-128-GCM",
        gnutls_kx: "ECDHE-RSA",
        rsa: true,
    },
    Suite12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        gnutls_cipher: "AES-256-GCM",
        gnutls_kx: "ECDHE-RSA",
        rsa: true,
    },
    Suite12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        gnutls_cipher: "CHACHA20-POLY1305",
        gnutls_kx: "ECDHE-RSA",
        rsa: true,
    },
];

impl Suite12 {
    /// The ECDSA leaf for ECDSA suites, the RSA leaf for RSA suites.
    fn cert(&self) -> &'static CertFiles {
        if self.rsa {
            &pki().server_rsa
        } else {
            &pki().server_ecdsa
        }
    }

    fn gnutls_priority(&self) -> String {
        format!(
            "{TLS12}:-CIPHER-ALL:+{}:-KX-ALL:+{}",
            self.gnutls_cipher, self.gnutls_kx
        )
    }
}

fn assert_tls12(s: &Session<TcpStream>, suite: CipherSuite, case: &str) {
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    assert_eq!(s.cipher_suite(), Some(suite), "{case}");
}

#[test]
fn every_suite_and_exporter_with_openssl() {
    if !tools() {
        return;
    }
    let export = openssl_export_args();
    for st in &SUITES {
        // The peer allows exactly this suite; our side offers everything (TLS 1.3
        // too, so this is also a 1.3-capable client served by a 1.2-only server).
        let case = format!("nbtls client, s_server {}", st.openssl);
        let mut extra = vec!["-cipher", st.openssl, "-naccept", "1"];
        extra.extend(strs(&export));
        let (mut server, port) = s_server(st.cert(), &extra);
        let mut s = connect(port, client_config())
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_tls12(&s, st.suite, &case);
        exchange(&mut s, &mut server, &case);
        expect_output(&mut server, &format!("CIPHER is {}", st.openssl), &case);
        check_export(&s, &mut server, "Keying material:", &case);

        let case = format!("nbtls server, s_client {}", st.openssl);
        let (listener, port) = tcp_listen();
        let mut extra = vec!["-cipher", st.openssl];
        extra.extend(strs(&export));
        let mut client = s_client(port, &extra);
        let (mut s, r) = serve(&listener, &mut client, server_with(st.cert()));
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert_tls12(&s, st.suite, &case);
        expect_output(
            &mut client,
            &format!("New, TLSv1.2, Cipher is {}", st.openssl),
            &case,
        );
        assert_eq!(
            client
                .wait_for_field("Extended master secret:", TIMEOUT)
                .as_deref(),
            Some("yes"),
            "{case}\n{}",
            client.dump()
        );
        exchange(&mut s, &mut client, &case);
        check_export(&s, &mut client, "Keying material:", &case);
    }
}

#[test]
fn every_suite_and_exporter_with_gnutls() {
    if !tools() {
        return;
    }
    let export = gnutls_export_args();
    for st in &SUITES {
        let prio = st.gnutls_priority();
        let shown = format!("-({})", st.gnutls_cipher);

        let case = format!("nbtls client, gnutls-serv {prio}");
        let mut args = vec!["--priority", &prio];
        args.extend(strs(&export));
        let (mut server, port) = echo_server(st.cert(), &args);
        let mut s = connect(port, client_config())
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_tls12(&s, st.suite, &case);
        echo(&mut s, &server, &case);
        expect_output(&mut server, "- Version: TLS1.2", &case);
        expect_output(
            &mut server,
            &format!("- Key Exchange: {}", st.gnutls_kx),
            &case,
        );
        expect_output(
            &mut server,
            &format!("- Cipher: {}", st.gnutls_cipher),
            &case,
        );
        check_export(&s, &mut server, "- Key material:", &case);

        let case = format!("nbtls server, gnutls-cli {prio}");
        let (listener, port) = tcp_listen();
        let mut args = vec!["--priority", &prio];
        args.extend(strs(&export));
        let mut client = cli(port, &args);
        let (mut s, r) = serve(&listener, &mut client, server_with(st.cert()));
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        assert_tls12(&s, st.suite, &case);
        expect_output(&mut client, "- Status: The certificate is trusted.", &case);
        expect_output(&mut client, "(TLS1.2-X.509)", &case);
        expect_output(&mut client, &shown, &case);
        expect_output(&mut client, "extended master secret", &case);
        exchange(&mut s, &mut client, &case);
        check_export(&s, &mut client, "- Key material:", &case);
    }
}

// ---------------------------------------------------------------------------------
// Key-exchange groups.

/// Our group, OpenSSL's `-groups` name and `Server Temp Key`, GnuTLS's priority name
/// and how its description shows it.
const GROUPS: [(NamedGroup, &str, &str, &str, &str); 3] = [
    (
        NamedGroup::X25519,
        "X25519",
        "X25519, 253 bits",
        "GROUP-X25519",
        "(ECDHE-X25519)",
    ),
    (
        NamedGroup::SECP256R1,
        "P-256",
        "ECDH, prime256v1, 256 bits",
        "GROUP-SECP256R1",
        "(ECDHE-SECP256R1)",
    ),
    (
        NamedGroup::SECP384R1,
        "P-384",
        "ECDH, secp384r1, 384 bits",
        "GROUP-SECP384R1",
        "(ECDHE-SECP384R1)",
    ),
];

#[test]
fn every_group_both_peers_both_roles() {
    if !tools() {
        return;
    }
    let ecdsa = &pki().server_ecdsa;
    // As a server we present the RSA leaf: a client's supported_groups also limits
    // the curve of an ECDSA certificate (RFC 8422 §5.1), checked below.
    let rsa = &pki().server_rsa;
    for (group, ossl, temp_key, gprio, gshown) in GROUPS {
        let case = format!("nbtls client, s_server -groups {ossl}");
        let (mut server, port) = s_server(ecdsa, &["-groups", ossl, "-naccept", "1"]);
        let mut s = connect(port, client_config())
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_2),
            "{case}"
        );
        assert_eq!(s.group(), Some(group), "{case}");
        exchange(&mut s, &mut server, &case);

        let case = format!("nbtls server, s_client -groups {ossl}");
        let (listener, port) = tcp_listen();
        let mut client = s_client(port, &["-groups", ossl]);
        let (mut s, r) = serve(&listener, &mut client, server_with(rsa));
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert_eq!(s.group(), Some(group), "{case}");
        assert_eq!(
            client
                .wait_for_field("Server Temp Key:", TIMEOUT)
                .as_deref(),
            Some(temp_key),
            "{case}\n{}",
            client.dump()
        );
        exchange(&mut s, &mut client, &case);

        let prio = format!("{TLS12}:-GROUP-ALL:+{gprio}");
        let case = format!("nbtls client, gnutls-serv {prio}");
        let (mut server, port) = echo_server(ecdsa, &["--priority", &prio]);
        let mut s = connect(port, client_config())
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_2),
            "{case}"
        );
        assert_eq!(s.group(), Some(group), "{case}");
        echo(&mut s, &server, &case);
        expect_output(&mut server, gshown, &case);

        let case = format!("nbtls server, gnutls-cli {prio}");
        let (listener, port) = tcp_listen();
        let mut client = cli(port, &["--priority", &prio]);
        let (mut s, r) = serve(&listener, &mut client, server_with(rsa));
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_2),
            "{case}"
        );
        assert_eq!(s.group(), Some(group), "{case}");
        expect_output(&mut client, gshown, &case);
        exchange(&mut s, &mut client, &case);
    }

    // Our P-256 ECDSA leaf for a client that accepts X25519 only: refused by us
    // rather than by the client after our ServerKeyExchange (OpenSSL would fail
    // with illegal_parameter, "wrong curve").
    let case = "nbtls server with a P-256 leaf, s_client -groups X25519";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-groups", "X25519"]);
    let (_s, r) = serve(&listener, &mut client, server_with(ecdsa));
    match r {
        Err(Error::Protocol { alert, .. }) if alert == AlertDescription::HANDSHAKE_FAILURE => {}
        other => panic!(
            "{case}: want handshake_failure, got {other:?}\n{}",
            client.dump()
        ),
    }
    expect_output(&mut client, "alert handshake failure", case);
    // With the leaf's curve listed too, the same client is served over X25519.
    let case = "nbtls server with a P-256 leaf, s_client -groups X25519:P-256";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-groups", "X25519:P-256"]);
    let (mut s, r) = serve(&listener, &mut client, server_with(ecdsa));
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    assert_eq!(s.group(), Some(NamedGroup::X25519), "{case}");
    exchange(&mut s, &mut client, case);
}

// ---------------------------------------------------------------------------------
// Client certificates.

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

#[test]
fn client_certificates_both_peers_both_roles() {
    if !tools() {
        return;
    }
    let p = pki();
    for (label, files) in [("ECDSA", &p.client_ecdsa), ("RSA", &p.client_rsa)] {
        // nbtls presents its certificate to a server that requires and verifies one.
        let case = format!("nbtls client with {label} cert, s_server -Verify");
        let (mut server, port) = s_server(
            &p.server_ecdsa,
            &[
                "-Verify",
                "1",
                "-CAfile",
                p.ca_path(),
                "-verify_return_error",
                "-naccept",
                "1",
            ],
        );
        let config = client_config().client_certificate(certified_key(files));
        let mut s = connect(port, config)
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_2),
            "{case}"
        );
        assert!(s.info().client_authenticated, "{case}");
        exchange(&mut s, &mut server, &case);
        assert_eq!(
            pem_after(&server, "Client certificate"),
            Some(leaf_pem_body(files)),
            "{case}: s_server did not see our certificate\n{}",
            server.dump()
        );

        let case = format!("nbtls client with {label} cert, gnutls-serv -r");
        let (mut server, port) = echo_server(
            &p.server_ecdsa,
            &[
                "--priority",
                TLS12,
                "-r",
                "--verify-client-cert",
                "--x509cafile",
                p.ca_path(),
            ],
        );
        let config = client_config().client_certificate(certified_key(files));
        let mut s = connect(port, config)
            .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_2),
            "{case}"
        );
        assert!(s.info().client_authenticated, "{case}");
        // gnutls-serv verified it (it would have refused the handshake otherwise).
        echo(&mut s, &server, &case);
        expect_output(&mut server, "- Client Signature:", &case);

        // A peer client presents its certificate to nbtls, which requires one.
        let case = format!("nbtls server Require, s_client with {label} cert");
        let (listener, port) = tcp_listen();
        let mut client = s_client(
            port,
            &["-cert", files.chain_path(), "-key", files.key_path()],
        );
        let config = server_with(&p.server_ecdsa).client_auth(ClientAuth::Require, anchors());
        let (mut s, r) = serve(&listener, &mut client, config);
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        wait_verified(&mut client, &case);
        assert!(s.info().client_authenticated, "{case}");
        assert_eq!(
            s.peer_certificates().first().map(|c| c.as_ref()),
            Some(files.leaf_der.as_slice()),
            "{case}"
        );
        exchange(&mut s, &mut client, &case);

        let case = format!("nbtls server Require, gnutls-cli with {label} cert");
        let (listener, port) = tcp_listen();
        let mut client = cli(
            port,
            &[
                "--priority",
                TLS12,
                "--x509certfile",
                files.chain_path(),
                "--x509keyfile",
                files.key_path(),
            ],
        );
        let config = server_with(&p.server_ecdsa).client_auth(ClientAuth::Require, anchors());
        let (mut s, r) = serve(&listener, &mut client, config);
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::TLS1_2),
            "{case}"
        );
        assert!(s.info().client_authenticated, "{case}");
        assert_eq!(
            s.peer_certificates().first().map(|c| c.as_ref()),
            Some(files.leaf_der.as_slice()),
            "{case}"
        );
        expect_output(
            &mut client,
            "- Successfully sent 2 certificate(s) to server.",
            &case,
        );
        exchange(&mut s, &mut client, &case);
    }

    // TLS 1.2 has no certificate_required alert: a missing certificate is refused
    // with handshake_failure (RFC 5246 §7.4.6).
    let case = "nbtls server Require, s_client without a cert";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &[]);
    let config = server_with(&p.server_ecdsa).client_auth(ClientAuth::Require, anchors());
    let (_s, r) = serve(&listener, &mut client, config);
    match r {
        Err(Error::Protocol { alert, .. }) if alert == AlertDescription::HANDSHAKE_FAILURE => {}
        other => panic!(
            "{case}: want handshake_failure, got {other:?}\n{}",
            client.dump()
        ),
    }
    expect_output(&mut client, "alert handshake failure", case);
}

// ---------------------------------------------------------------------------------
// ALPN.

#[test]
fn alpn_both_peers_both_roles() {
    if !tools() {
        return;
    }
    let ecdsa = &pki().server_ecdsa;

    let case = "nbtls client, s_server -alpn h2,http/1.1";
    let (mut server, port) = s_server(ecdsa, &["-alpn", "h2,http/1.1", "-naccept", "1"]);
    let config = client_config().alpn(&["spdy/1", "http/1.1"]).expect("alpn");
    let mut s = connect(port, config)
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]), "{case}");
    exchange(&mut s, &mut server, case);
    expect_output(
        &mut server,
        "ALPN protocols advertised by the client: spdy/1, http/1.1",
        case,
    );

    let case = "nbtls server, s_client -alpn http/1.1,h2";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-alpn", "http/1.1,h2"]);
    let config = server_with(ecdsa).alpn(&["h2", "http/1.1"]).expect("alpn");
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

    let case = "nbtls client, gnutls-serv --alpn h2 --alpn http/1.1";
    let (mut server, port) = echo_server(
        ecdsa,
        &["--priority", TLS12, "--alpn", "h2", "--alpn", "http/1.1"],
    );
    let config = client_config().alpn(&["spdy/1", "http/1.1"]).expect("alpn");
    let mut s = connect(port, config)
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]), "{case}");
    echo(&mut s, &server, case);
    expect_output(&mut server, "- Application protocol: http/1.1", case);

    let case = "nbtls server, gnutls-cli --alpn http/1.1 --alpn h2";
    let (listener, port) = tcp_listen();
    let mut client = cli(
        port,
        &["--priority", TLS12, "--alpn", "http/1.1", "--alpn", "h2"],
    );
    let config = server_with(ecdsa).alpn(&["h2", "http/1.1"]).expect("alpn");
    let (mut s, r) = serve(&listener, &mut client, config);
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]), "{case}");
    expect_output(&mut client, "- Application protocol: h2", case);
    exchange(&mut s, &mut client, case);
}

// ---------------------------------------------------------------------------------
// Renegotiation is refused (RFC 5746 §4.5): a ClientHello or HelloRequest after the
// handshake makes `recv` return the non-fatal `Error::Rehandshake` and queues a
// no_renegotiation warning (sent with the next send or flush); a second attempt on
// the same connection is fatal.
//
// OpenSSL treats a no_renegotiation answer to its own request as fatal (it sends
// handshake_failure, "no renegotiation" in rec_layer_s3.c), whichever role it has,
// so the repeated attempts are shown with GnuTLS, whose tools try again.

/// -msg lines: a handshake message received (`<<<`) or sent (`>>>`), e.g.
/// `<<< TLS 1.2, Handshake [length 005f], ServerHello`.
const HELLO_REQUEST: &str = ">>> TLS 1.2, Handshake [length 0004], HelloRequest";
const WARNING_RECEIVED: &str = "<<< TLS 1.2, Alert [length 0002], warning no_renegotiation";

/// How many handshake messages named `name` the -msg peer received.
fn received(peer: &Peer, name: &str) -> usize {
    let end = format!("], {name}");
    peer.stdout_text()
        .lines()
        .filter(|l| l.starts_with("<<< ") && l.ends_with(&end))
        .count()
}

#[test]
fn renegotiation_by_s_client_is_refused() {
    if !tools() {
        return;
    }
    let case = "s_client R";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-msg"]);
    let (mut s, r) = serve(&listener, &mut client, server_with(&pki().server_ecdsa));
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    wait_verified(&mut client, case);
    exchange(&mut s, &mut client, case);
    assert_eq!(received(&client, "ServerHello"), 1);

    client.write_stdin(b"R\n").expect("R");
    let mut buf = [0u8; 256];
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::Rehandshake),
        "{case}\n{}",
        client.dump()
    );
    assert!(!Error::Rehandshake.is_fatal());
    assert!(!s.is_handshaking(), "{case}: no new handshake started");
    s.flush().expect("flush the no_renegotiation warning");
    expect_output(&mut client, WARNING_RECEIVED, case);
    // s_client gives up on its renegotiation with handshake_failure.
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::AlertReceived(AlertDescription::HANDSHAKE_FAILURE)),
        "{case}\n{}",
        client.dump()
    );
    expect_output(&mut client, "no renegotiation", case);
    // Nothing answered its second ClientHello but the warning.
    assert_eq!(
        received(&client, "ServerHello"),
        1,
        "{case}: we sent a second ServerHello\n{}",
        client.dump()
    );
}

#[test]
fn repeated_renegotiation_by_gnutls_cli_closes_the_session() {
    if !tools() {
        return;
    }
    let case = "gnutls-cli ^renegotiate^";
    let (listener, port) = tcp_listen();
    let mut client = cli(port, &["--priority", TLS12, "--inline-commands"]);
    let (mut s, r) = serve(&listener, &mut client, server_with(&pki().server_ecdsa));
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    exchange(&mut s, &mut client, case);

    client.write_stdin(b"^renegotiate^\n").expect("renegotiate");
    let mut buf = [0u8; 256];
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::Rehandshake),
        "{case}\n{}",
        client.dump()
    );
    s.flush().expect("flush the no_renegotiation warning");
    // gnutls-cli takes the warning as non-fatal and sends its ClientHello again:
    // the second attempt closes the session with a fatal no_renegotiation.
    match s.recv(&mut buf) {
        Err(e @ Error::LimitExceeded { .. }) => {
            assert_eq!(
                e.alert(),
                Some(AlertDescription::NO_RENEGOTIATION),
                "{case}"
            );
            assert!(e.is_fatal(), "{case}");
        }
        other => panic!("{case}: second attempt: {other:?}\n{}", client.dump()),
    }
    // Sticky: the session is over.
    assert!(s.recv(&mut buf).is_err_and(|e| e.is_fatal()), "{case}");
    assert!(s.send(b"more").is_err(), "{case}");
    expect_output(&mut client, "*** ReHandshake has failed", case);
    assert!(
        wait_count(&mut client, "No renegotiation is allowed", 2),
        "{case}: gnutls-cli should report our warning, then the fatal alert\n{}",
        client.dump()
    );
    assert!(
        client.output_contains("A TLS fatal alert has been received"),
        "{case}\n{}",
        client.dump()
    );
}

#[test]
fn hello_request_from_s_server_is_refused_and_the_session_goes_on() {
    if !tools() {
        return;
    }
    let case = "s_server r";
    let (mut server, port) = s_server(&pki().server_ecdsa, &["-msg", "-naccept", "1"]);
    let mut s = connect(port, client_config())
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLS1_2));
    exchange(&mut s, &mut server, case);
    // `r` renegotiates (a HelloRequest); data follows it.
    server.write_stdin(b"r\n").expect("r");
    expect_output(&mut server, HELLO_REQUEST, case);
    server
        .write_stdin(b"peer says after the HelloRequest\n")
        .expect("data");
    let mut buf = [0u8; 256];
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::Rehandshake),
        "{case}\n{}",
        server.dump()
    );
    // The session goes on: data after the HelloRequest arrives.
    recv_until(&mut s, "peer says after the HelloRequest")
        .unwrap_or_else(|e| panic!("{case}: {e}\n{}", server.dump()));
    assert_eq!(
        received(&server, "ClientHello"),
        1,
        "{case}: we answered the HelloRequest with a ClientHello\n{}",
        server.dump()
    );
    // Our next send carries the warning first; s_server then gives up with
    // handshake_failure.
    send_all(&mut s, b"nbtls says after refusing\n").expect("send");
    expect_output(&mut server, WARNING_RECEIVED, case);
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::AlertReceived(AlertDescription::HANDSHAKE_FAILURE)),
        "{case}\n{}",
        server.dump()
    );
    assert_eq!(
        received(&server, "ClientHello"),
        1,
        "{case}\n{}",
        server.dump()
    );
}

#[test]
fn repeated_hello_requests_close_the_session() {
    if !tools() {
        return;
    }
    // gnutls-serv's `**REHANDSHAKE**` command sends a HelloRequest. Two of them
    // reach us before our warning goes out (we do not read in between).
    let case = "gnutls-serv **REHANDSHAKE** twice";
    let (mut server, port) = echo_server(&pki().server_ecdsa, &["--priority", TLS12]);
    let mut s = connect(port, client_config())
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    for n in 1..=2 {
        send_all(&mut s, b"**REHANDSHAKE**\n").expect("send");
        assert!(
            wait_count(&mut server, "*** Sending rehandshake request", n),
            "{case}\n{}",
            server.dump()
        );
    }
    let mut buf = [0u8; 256];
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::Rehandshake),
        "{case}\n{}",
        server.dump()
    );
    // Its answer to the first command, sent after the first HelloRequest.
    recv_until(&mut s, "Successfully executed command")
        .unwrap_or_else(|e| panic!("{case}: {e}\n{}", server.dump()));
    match s.recv(&mut buf) {
        Err(e @ Error::LimitExceeded { .. }) => {
            assert_eq!(
                e.alert(),
                Some(AlertDescription::NO_RENEGOTIATION),
                "{case}"
            );
        }
        other => panic!("{case}: second HelloRequest: {other:?}\n{}", server.dump()),
    }
    assert!(s.send(b"more").is_err(), "{case}: the session is closed");
    expect_output(
        &mut server,
        "* Received NO_RENEGOTIATION alert. Client does not support renegotiation.",
        case,
    );
    // The same with s_server: two `r` before we read.
    let case = "s_server r twice";
    let (mut server, port) = s_server(&pki().server_ecdsa, &["-msg", "-naccept", "1"]);
    let mut s = connect(port, client_config())
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    exchange(&mut s, &mut server, case);
    for n in 1..=2 {
        server.write_stdin(b"r\n").expect("r");
        assert!(
            wait_count(&mut server, HELLO_REQUEST, n),
            "{case}\n{}",
            server.dump()
        );
    }
    assert_eq!(
        s.recv(&mut buf),
        Err(Error::Rehandshake),
        "{case}\n{}",
        server.dump()
    );
    match s.recv(&mut buf) {
        Err(e @ Error::LimitExceeded { .. }) => {
            assert_eq!(
                e.alert(),
                Some(AlertDescription::NO_RENEGOTIATION),
                "{case}"
            );
        }
        other => panic!("{case}: second HelloRequest: {other:?}\n{}", server.dump()),
    }
    expect_output(&mut server, WARNING_RECEIVED, case);
    expect_output(&mut server, "no renegotiation", case);
}
