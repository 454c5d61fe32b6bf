//! End to end: the real binary between third-party TLS tools (or nbtls)
//! and plain TCP servers on test threads, in both modes, and two proxies
//! back to back. Bytes are checked both ways.

mod support;

use std::io::Read;
use std::time::Duration;

use support::*;

/// Server mode: `openssl s_client` -> tlsproxy -s -> plain echo.
#[test]
fn server_mode_between_openssl_client_and_echo() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let data = payload(200 * 1024, 1);
    let echo = echo_server_limited(data.len());
    let mut proxy = Proxy::start(&[
        "-s",
        "-c",
        &format!("127.0.0.1:{echo}"),
        "-C",
        pki.server.chain_path(),
        "-K",
        pki.server.key_path(),
    ]);
    let mut client = peers::openssl_client(
        proxy.port,
        &[
            "-quiet",
            "-nocommands",
            "-CAfile",
            pki.ca_path(),
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
        ],
    );
    let feeder = client.feed_stdin_and_close(data.clone());
    assert!(
        client.wait_for_stdout_len(data.len(), TIMEOUT),
        "echo did not come back through the proxy\n{}",
        client.dump()
    );
    // The echo server closes after echoing everything: the proxy sends
    // close_notify and s_client exits on it.
    client.expect_success(TIMEOUT);
    feeder.join().expect("feeder").expect("stdin written");
    assert!(client.stdout_bytes() == data, "echoed bytes differ");
    assert!(
        proxy.wait_for("tlsproxy::conn", TIMEOUT),
        "no connection record"
    );
    let rec = proxy.records().pop().expect("record");
    assert_eq!(
        field(&rec, "bytes_up"),
        Some(&*data.len().to_string()),
        "{rec}"
    );
    assert_eq!(
        field(&rec, "bytes_down"),
        Some(&*data.len().to_string()),
        "{rec}"
    );
    assert_eq!(field(&rec, "version"), Some("TLS1_3"), "{rec}");
    assert!(
        field(&rec, "suite").is_some_and(|s| s.starts_with("TLS_")),
        "{rec}"
    );
}

/// Client mode: plain client -> tlsproxy -> `gnutls-serv --echo`, with the
/// upstream verified against the test CA (IP SAN 127.0.0.1).
#[test]
fn client_mode_between_plain_client_and_gnutls_echo() {
    if !require_tool("gnutls-serv") {
        return;
    }
    let pki = pki();
    let (_server, port) = peers::gnutls_server(&[
        "--echo",
        "--x509certfile",
        pki.server.chain_path(),
        "--x509keyfile",
        pki.server.key_path(),
    ]);
    let mut proxy = Proxy::start(&["-c", &format!("127.0.0.1:{port}"), "-A", pki.ca_path()]);
    // gnutls-serv echoes text lines (NUL-terminated strings inside).
    let data: Vec<u8> = (0..3000)
        .flat_map(|i| format!("line {i:05} {}\n", "x".repeat(50 + i % 20)).into_bytes())
        .collect();
    let back = echo_then_close(proxy.port, &data).expect("echo, then EOF after close_notify");
    assert!(back == data, "echoed bytes differ");
    assert!(proxy.wait_for("tlsproxy::conn", TIMEOUT), "{}", proxy.log());
    let rec = proxy.records().pop().unwrap();
    assert_eq!(
        field(&rec, "bytes_up"),
        Some(&*data.len().to_string()),
        "{rec}"
    );
    assert_eq!(
        field(&rec, "bytes_down"),
        Some(&*data.len().to_string()),
        "{rec}"
    );
}

/// Client mode: verification is on by default, and a wrong CA or name is
/// refused: the plain client is reset, the log says why.
#[test]
fn client_mode_refuses_an_unverified_upstream() {
    let pki = pki();
    let upstream = tls_server(server_config(), |s| {
        if tls_recv_to_close(s).is_ok() {
            tls_close(s);
        }
    });
    // Trusting another CA.
    let mut proxy = Proxy::start(&[
        "-c",
        &format!("127.0.0.1:{upstream}"),
        "-A",
        pki.untrusted_ca_path(),
    ]);
    let mut s = connect(proxy.port);
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            || matches!(r, Ok(0)),
        "expected the connection closed, got {r:?}"
    );
    assert!(proxy.wait_for("TLS handshake with upstream failed", TIMEOUT));
    // Right CA, wrong name.
    let mut proxy = Proxy::start(&[
        "-c",
        &format!("127.0.0.1:{upstream}"),
        "-A",
        pki.ca_path(),
        "-H",
        "other.test",
    ]);
    let back = round_trip(proxy.port, b"hello");
    assert!(back.map_or(true, |b| b.is_empty()));
    assert!(proxy.wait_for("TLS handshake with upstream failed", TIMEOUT));
    // --insecure turns verification off, and says so loudly.
    let mut proxy = Proxy::start(&[
        "-c",
        &format!("127.0.0.1:{upstream}"),
        "-i",
        "-H",
        "other.test",
    ]);
    assert!(proxy.log().contains("WARN") && proxy.log().contains("NOT verified"));
    let mut s = connect(proxy.port);
    std::io::Write::write_all(&mut s, b"hi").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("clean EOF");
    assert!(proxy.wait_for("outcome=closed", TIMEOUT), "{}", proxy.log());
}

/// tlsproxy (client mode) -> tlsproxy -s (generated certificate, trusted
/// through --save-cert) -> echo: a plain stream end to end, with ALPN and
/// SSLKEYLOGFILE.
#[test]
fn two_proxies_carry_a_plain_stream() {
    let dir = temp_dir("tlsproxy-chain");
    let cert = dir.join("server.pem");
    let keylog = dir.join("keys.log");
    let echo = echo_server();
    let mut server = Proxy::start_env(
        &[
            "-s",
            "-c",
            &format!("127.0.0.1:{echo}"),
            "--save-cert",
            cert.to_str().unwrap(),
            "--alpn",
            "echo/1,other",
        ],
        &[("SSLKEYLOGFILE", keylog.to_str().unwrap())],
    );
    let mut client = Proxy::start(&[
        "-c",
        &format!("127.0.0.1:{}", server.port),
        "-A",
        cert.to_str().unwrap(),
        "--alpn",
        "echo/1",
    ]);
    let data = payload(2 << 20, 3);
    let back = round_trip(client.port, &data).expect("round trip");
    assert!(
        back == data,
        "stream differs after two proxies ({} bytes back)",
        back.len()
    );
    assert!(client.wait_for("tlsproxy::conn", TIMEOUT));
    assert!(
        server.wait_count("tlsproxy::conn", 2, TIMEOUT),
        "{}",
        server.log()
    );
    let crec = client.records().pop().unwrap();
    let srec = server.records().pop().unwrap();
    for rec in [&crec, &srec] {
        assert_eq!(field(rec, "outcome"), Some("closed"), "{rec}");
        assert_eq!(field(rec, "alpn"), Some("echo/1"), "{rec}");
        assert_eq!(
            field(rec, "bytes_up"),
            Some(&*data.len().to_string()),
            "{rec}"
        );
        assert_eq!(
            field(rec, "bytes_down"),
            Some(&*data.len().to_string()),
            "{rec}"
        );
    }
    let keys = std::fs::read_to_string(&keylog).expect("key log written");
    assert!(keys.contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), "{keys}");
    assert!(keys.contains("SERVER_TRAFFIC_SECRET_0"), "{keys}");
}

/// The generated-certificate default: `tlsproxy -s -l 127.0.0.1:PORT -c
/// UPSTREAM` serves, and openssl sees the certificate whose fingerprint
/// was printed, with an IP SAN for the listen address.
#[test]
fn generated_certificate_matches_printed_fingerprint() {
    if !require_tool("openssl") {
        return;
    }
    let echo = echo_server();
    let dir = temp_dir("tlsproxy-gen");
    let saved = dir.join("gen.pem");
    let proxy = Proxy::start(&[
        "-s",
        "-c",
        &format!("127.0.0.1:{echo}"),
        "--save-cert",
        saved.to_str().unwrap(),
    ]);
    let log = proxy.log();
    let printed = log
        .split("SHA-256 fingerprint ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("fingerprint printed")
        .to_string();
    assert_eq!(printed.len(), 32 * 3 - 1, "{printed}");

    // What the server presents, seen by openssl, verified against the
    // saved copy with the IP checked.
    let mut sc = peers::openssl_client(
        proxy.port,
        &[
            "-CAfile",
            saved.to_str().unwrap(),
            "-verify_ip",
            "127.0.0.1",
            "-verify_return_error",
        ],
    );
    sc.close_stdin();
    sc.expect_success(TIMEOUT);
    let out = sc.stdout_text();
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let start = out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate in output");
    let end =
        out.find("-----END CERTIFICATE-----").expect("end") + "-----END CERTIFICATE-----".len();
    let pem_path = dir.join("seen.pem");
    std::fs::write(&pem_path, format!("{}\n", &out[start..end])).unwrap();
    let x = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(&pem_path)
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&x.stdout);
    assert!(x.status.success(), "{text}");
    let seen = text
        .lines()
        .find_map(|l| l.split("Fingerprint=").nth(1))
        .expect("fingerprint line")
        .trim();
    assert_eq!(seen, printed, "openssl saw another certificate");
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    assert!(
        !text.contains("DNS:"),
        "an IP listen address gets only an IP SAN: {text}"
    );
}

/// A wildcard listen address gets every local name.
#[test]
fn generated_certificate_for_wildcard_listen() {
    if !require_tool("openssl") {
        return;
    }
    let echo = echo_server();
    let mut p = Proxy::spawn(
        &["-s", "-l", "0.0.0.0:0", "-c", &format!("127.0.0.1:{echo}")],
        &[],
    );
    assert!(p.wait_for("listening on 0.0.0.0:", TIMEOUT), "{}", p.log());
    let log = p.log();
    let names = log
        .split("certificate for ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("names logged");
    assert!(names.starts_with("localhost, 127.0.0.1, ::1"), "{names}");
}

/// Several loops over SO_REUSEPORT share the port and all serve.
#[test]
fn threads_share_the_port() {
    let echo = echo_server();
    let mut p = Proxy::start(&["-s", "-c", &format!("127.0.0.1:{echo}"), "--threads", "2"]);
    assert!(p.log().contains("2 loops"), "{}", p.log());
    for i in 0..8u64 {
        let mut s = tls_connect(p.port, nbtls::ClientConfig::insecure(), "127.0.0.1");
        let data = payload(10_000, i);
        tls_send_all(&mut s, &data);
        assert!(tls_recv_exact(&mut s, data.len()) == data);
        tls_close(&mut s);
        let rest = tls_recv_to_close(&mut s).expect("close_notify back");
        assert!(rest.is_empty());
    }
    p.sigterm();
    let st = p
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(st.success(), "{st}");
}

/// Client mode with binary data both ways: plain client -> tlsproxy ->
/// an nbtls echo server (test thread) that answers close_notify with its own.
#[test]
fn client_mode_between_plain_client_and_nbtls_echo() {
    let upstream = tls_server(server_config(), |s| {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match s.recv(&mut buf) {
                Ok(0) => break,
                Ok(n) => tls_send_all(s, &buf[..n]),
                Err(_) => return,
            }
        }
        tls_close(s);
    });
    let mut proxy = Proxy::start(&[
        "-c",
        &format!("127.0.0.1:{upstream}"),
        "-A",
        pki().ca_path(),
        "-H",
        "localhost",
    ]);
    let data = payload(1 << 20, 4);
    let back = round_trip(proxy.port, &data).expect("round trip");
    assert!(back == data, "echoed bytes differ ({} back)", back.len());
    assert!(proxy.wait_for("tlsproxy::conn", TIMEOUT));
    let rec = proxy.records().pop().unwrap();
    assert_eq!(field(&rec, "outcome"), Some("closed"), "{rec}");
    assert_eq!(field(&rec, "sni"), Some("localhost"), "{rec}");
}

/// Client certificates: the server proxy with -A requires one issued by
/// that CA; the client proxy presents it with --client-cert/--client-key.
/// Without it the handshake fails and the plain client is reset.
#[test]
fn client_certificates_between_two_proxies() {
    let pki = pki();
    let echo = echo_server();
    let mut server = Proxy::start(&[
        "-s",
        "-c",
        &format!("127.0.0.1:{echo}"),
        "-C",
        pki.server.chain_path(),
        "-K",
        pki.server.key_path(),
        "-A",
        pki.ca_path(),
    ]);
    assert!(server.log().contains("requiring client certificates"));
    let up = format!("127.0.0.1:{}", server.port);
    let mut with_cert = Proxy::start(&[
        "-c",
        &up,
        "-A",
        pki.ca_path(),
        "--client-cert",
        pki.client.chain_path(),
        "--client-key",
        pki.client.key_path(),
    ]);
    let data = payload(100_000, 5);
    let back = round_trip(with_cert.port, &data).expect("round trip");
    assert!(back == data, "echo differs");
    assert!(
        with_cert.wait_for("outcome=closed", TIMEOUT),
        "{}",
        with_cert.log()
    );

    let mut without = Proxy::start(&["-c", &up, "-A", pki.ca_path()]);
    let back = round_trip(without.port, b"no certificate");
    assert!(
        back.map_or(true, |b| b.is_empty()),
        "served without a client certificate"
    );
    assert!(without.wait_for("tlsproxy::conn", TIMEOUT));
    let rec = without.records().pop().unwrap();
    assert_eq!(field(&rec, "bytes_down"), Some("0"), "{rec}");
    assert!(!rec.contains("outcome=closed"), "{rec}");
    assert!(
        server.wait_for("TLS handshake with client failed", TIMEOUT),
        "{}",
        server.log()
    );
}
