//! Proves the test harness with the real tools and no nbtls involvement: the generated
//! PKI (SANs, EKUs, all three key types) verifies in OpenSSL and GnuTLS, and the peer
//! helpers start, talk to and stop the tools within bounded time.

mod common;

use std::time::Duration;

use common::certs::{pki, CertFiles};
use common::peers::{
    gnutls_client, gnutls_server, openssl_client, openssl_server, pick_port, require_tool,
    require_tools, Peer, TIMEOUT,
};

/// s_server with `leaf`, s_client verifying it as `name` against the test CA.
fn openssl_handshake(leaf: &CertFiles, name: &str) {
    let pki = pki();
    let (mut server, port) = openssl_server(&[
        "-cert",
        leaf.chain_path(),
        "-key",
        leaf.key_path(),
        "-naccept",
        "1",
    ]);
    let mut client = openssl_client(
        port,
        &[
            "-CAfile",
            pki.ca_path(),
            "-servername",
            name,
            "-verify_hostname",
            name,
            "-verify_return_error",
        ],
    );
    assert!(
        client.wait_for_output("Verify return code: 0 (ok)", TIMEOUT),
        "client did not verify\n{}\n{}",
        client.dump(),
        server.dump()
    );
    assert!(
        server.wait_for_output("CIPHER is", TIMEOUT),
        "{}",
        server.dump()
    );
    client.write_stdin(b"hello from s_client\n").expect("write");
    assert!(
        server.wait_for_output("hello from s_client", TIMEOUT),
        "{}",
        server.dump()
    );
    client.close_stdin();
    client.expect_success(TIMEOUT);
    // -naccept 1: the server exits once the connection is gone.
    server.expect_success(TIMEOUT);
}

#[test]
fn openssl_ecdsa_server_verifies() {
    if !require_tool("openssl") {
        return;
    }
    openssl_handshake(&pki().server_ecdsa, "localhost");
}

#[test]
fn openssl_rsa_server_verifies() {
    if !require_tool("openssl") {
        return;
    }
    openssl_handshake(&pki().server_rsa, "localhost");
}

#[test]
fn openssl_ed25519_server_verifies() {
    if !require_tool("openssl") {
        return;
    }
    openssl_handshake(&pki().server_ed25519, "localhost");
}

#[test]
fn openssl_sni_leaf_verifies_as_other_test() {
    if !require_tool("openssl") {
        return;
    }
    openssl_handshake(&pki().server_other, "other.test");
}

#[test]
fn openssl_ip_san_and_client_auth() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let leaf = &pki.server_ecdsa;
    for client_cert in [&pki.client_ecdsa, &pki.client_rsa] {
        // -Verify: request and require a client certificate, verified against the CA.
        let (mut server, port) = openssl_server(&[
            "-cert",
            leaf.chain_path(),
            "-key",
            leaf.key_path(),
            "-Verify",
            "2",
            "-CAfile",
            pki.ca_path(),
            "-verify_return_error",
            "-naccept",
            "1",
        ]);
        let mut client = openssl_client(
            port,
            &[
                "-CAfile",
                pki.ca_path(),
                "-verify_ip",
                "127.0.0.1",
                "-verify_return_error",
                "-cert",
                client_cert.chain_path(),
                "-key",
                client_cert.key_path(),
            ],
        );
        assert!(
            client.wait_for_output("Verify return code: 0 (ok)", TIMEOUT),
            "{}\n{}",
            client.dump(),
            server.dump()
        );
        // TLS 1.3 client auth completes with the client Finished: wait for the server.
        assert!(
            server.wait_for_output("CIPHER is", TIMEOUT),
            "{}",
            server.dump()
        );
        assert!(!server.output_contains("verify error"), "{}", server.dump());
        client.close_stdin();
        client.expect_success(TIMEOUT);
        server.expect_success(TIMEOUT);
    }
}

#[test]
fn openssl_rejects_untrusted_server() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let leaf = &pki.untrusted_ecdsa;
    let (_server, port) = openssl_server(&["-cert", leaf.chain_path(), "-key", leaf.key_path()]);
    let mut client = openssl_client(port, &["-CAfile", pki.ca_path(), "-verify_return_error"]);
    let status = client.wait_exit(TIMEOUT).expect("client exits");
    assert!(!status.success(), "{}", client.dump());
    assert!(client.output_contains("verify error"), "{}", client.dump());
}

#[test]
fn gnutls_echo_roundtrip_verified() {
    if !require_tools(&["gnutls-serv", "gnutls-cli"]) {
        return;
    }
    let pki = pki();
    for leaf in [&pki.server_ecdsa, &pki.server_rsa, &pki.server_ed25519] {
        let (mut server, port) = gnutls_server(&[
            "--echo",
            "-a",
            "--x509certfile",
            leaf.chain_path(),
            "--x509keyfile",
            leaf.key_path(),
        ]);
        // Host operand 127.0.0.1: GnuTLS checks the IP SAN.
        let mut client = gnutls_client(port, &["--x509cafile", pki.ca_path()]);
        assert!(
            client.wait_for_output("- Handshake was completed", TIMEOUT),
            "{}\n{}",
            client.dump(),
            server.dump()
        );
        assert!(
            client.output_contains("The certificate is trusted"),
            "{}",
            client.dump()
        );
        client.write_stdin(b"ping over gnutls\n").expect("write");
        assert!(
            client.wait_for_output("ping over gnutls", TIMEOUT),
            "{}\n{}",
            client.dump(),
            server.dump()
        );
        // Line-buffered server output is visible while it runs.
        assert!(
            server.wait_for_output("- Version: TLS1.3", TIMEOUT),
            "{}",
            server.dump()
        );
        client.close_stdin();
        client.expect_success(TIMEOUT);
    }
}

#[test]
fn gnutls_client_auth_and_hostname() {
    if !require_tools(&["gnutls-serv", "gnutls-cli"]) {
        return;
    }
    let pki = pki();
    let leaf = &pki.server_other;
    let client_cert = &pki.client_ecdsa;
    let (server, port) = gnutls_server(&[
        "--echo",
        "--require-client-cert",
        "--verify-client-cert",
        "--x509cafile",
        pki.ca_path(),
        "--x509certfile",
        leaf.chain_path(),
        "--x509keyfile",
        leaf.key_path(),
    ]);
    let mut client = gnutls_client(
        port,
        &[
            "--x509cafile",
            pki.ca_path(),
            "--sni-hostname",
            "other.test",
            "--verify-hostname",
            "other.test",
            "--x509certfile",
            client_cert.chain_path(),
            "--x509keyfile",
            client_cert.key_path(),
        ],
    );
    assert!(
        client.wait_for_output("- Handshake was completed", TIMEOUT),
        "{}\n{}",
        client.dump(),
        server.dump()
    );
    client.write_stdin(b"authenticated\n").expect("write");
    assert!(
        client.wait_for_output("authenticated", TIMEOUT),
        "{}\n{}",
        client.dump(),
        server.dump()
    );
    client.close_stdin();
    client.expect_success(TIMEOUT);

    // The same leaf checked as `localhost` must fail.
    let mut wrong = gnutls_client(
        port,
        &[
            "--x509cafile",
            pki.ca_path(),
            "--verify-hostname",
            "localhost",
        ],
    );
    let status = wrong.wait_exit(TIMEOUT).expect("client exits");
    assert!(!status.success(), "{}", wrong.dump());
}

#[test]
fn harness_bounds_and_ports() {
    let a = pick_port();
    let b = pick_port();
    assert_ne!(a, b);

    if !common::peers::have_tool("sleep") {
        return;
    }
    let mut sleeper = Peer::spawn("sleep", &["30"]);
    assert!(sleeper.wait_exit(Duration::from_millis(100)).is_none());
    assert!(!sleeper.wait_for_output("never", Duration::from_millis(100)));
    sleeper.kill();
    assert!(!sleeper.is_running());

    let pki = pki();
    for file in [
        &pki.ca_pem,
        &pki.server_rsa.chain_pem,
        &pki.client_rsa.key_pem,
    ] {
        let text = std::fs::read_to_string(file).expect("read pem");
        assert!(text.starts_with("-----BEGIN "), "{}", file.display());
    }
    assert_eq!(pki.server_rsa.chain_der.len(), 2);
    assert_eq!(pki.server_rsa.chain_der[1], pki.ca_der);
}

#[test]
fn dtls_servers_start_and_verify() {
    if !require_tools(&["openssl", "gnutls-serv", "gnutls-cli"]) {
        return;
    }
    let pki = pki();
    let leaf = &pki.server_ecdsa;

    // UDP readiness for s_server (its stdin must stay open: EOF ends a DTLS server).
    let (mut server, port) = openssl_server(&[
        "-dtls1_2",
        "-cert",
        leaf.chain_path(),
        "-key",
        leaf.key_path(),
    ]);
    let mut client = openssl_client(
        port,
        &["-dtls1_2", "-CAfile", pki.ca_path(), "-verify_return_error"],
    );
    assert!(
        client.wait_for_output("Verify return code: 0 (ok)", TIMEOUT),
        "{}\n{}",
        client.dump(),
        server.dump()
    );
    assert!(
        server.wait_for_output("CIPHER is", TIMEOUT),
        "{}",
        server.dump()
    );
    client.close_stdin();
    client.expect_success(TIMEOUT);

    // UDP readiness for gnutls-serv.
    let (server, port) = gnutls_server(&[
        "-u",
        "--echo",
        "-a",
        "--x509certfile",
        leaf.chain_path(),
        "--x509keyfile",
        leaf.key_path(),
    ]);
    let mut client = gnutls_client(port, &["-u", "--x509cafile", pki.ca_path()]);
    assert!(
        client.wait_for_output("- Handshake was completed", TIMEOUT),
        "{}\n{}",
        client.dump(),
        server.dump()
    );
    client.write_stdin(b"datagram echo\n").expect("write");
    assert!(
        client.wait_for_output("datagram echo", TIMEOUT),
        "{}\n{}",
        client.dump(),
        server.dump()
    );
    // Over DTLS gnutls-cli lingers about 2 s after stdin EOF: just drop (kill) it.
}
