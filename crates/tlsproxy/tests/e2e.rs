//! End to end: the real binary between third-party TLS tools (or nbtls)
//! and plain TCP servers on test threads, in both modes, and two proxies
//! back to back, over TLS 1.3 and TLS 1.2. Bytes are checked both ways.

mod support;

use std::io::Read;
use std::time::Duration;

use support::*;

/// Server mode: `openssl s_client` -> tlsproxy -s -> plain echo, once
/// over TLS 1.3 and once over TLS 1.2 (the proxy accepts both by
/// default); the connection record names the version each negotiated.
#[test]
fn server_mode_between_openssl_client_and_echo() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    const LEN: usize = 200 * 1024;
    let echo = echo_server_limited(LEN);
    let mut proxy = Proxy::start(&[
        "-s",
        "-c",
        &format!("127.0.0.1:{echo}"),
        "-C",
        pki.server.chain_path(),
        "-K",
        pki.server.key_path(),
    ]);
    let cases = [("-tls1_3", "TLS1_3"), ("-tls1_2", "TLS1_2")];
    for (i, (flag, version)) in cases.into_iter().enumerate() {
        let data = payload(LEN, 1 + i as u64);
        let mut client = peers::openssl_client(
            proxy.port,
            &[
                flag,
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
            "{flag}: echo did not come back through the proxy\n{}",
            client.dump()
        );
        // The echo server closes after echoing everything: the proxy sends
        // close_notify and s_client exits on it.
        client.expect_success(TIMEOUT);
        feeder.join().expect("feeder").expect("stdin written");
        assert!(client.stdout_bytes() == data, "{flag}: echoed bytes differ");
        assert!(
            proxy.wait_count("tlsproxy::conn", i + 1, TIMEOUT),
            "{flag}: no connection record"
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
        assert_eq!(field(&rec, "version"), Some(version), "{rec}");
        // TLS 1.2 suites name their key exchange; TLS 1.3 suites do not.
        let suite = field(&rec, "suite").unwrap_or("-");
        assert!(suite.starts_with("TLS_"), "{rec}");
        assert_eq!(
            suite.starts_with("TLS_ECDHE_"),
            version == "TLS1_2",
            "{rec}"
        );
    }
}

/// A plain HTTP/1.1 upstream on a thread: for each request (a POST with
/// Content-Length) it sends (raw request length, body) to the test and
/// answers with `reply`, then closes. Empty connections (the proxy's
/// start-up probe) are skipped.
fn http_upstream(reply: Vec<u8>) -> (u16, std::sync::mpsc::Receiver<(usize, Vec<u8>)>) {
    use std::io::Write;
    let (l, port) = listener();
    let (tx, rx) = std::sync::mpsc::channel();
    let reply = std::sync::Arc::new(reply);
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let (tx, reply) = (tx.clone(), reply.clone());
            spawn_small(move || {
                let _ = s.set_read_timeout(Some(TIMEOUT));
                let _ = s.set_write_timeout(Some(TIMEOUT));
                let mut req = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                let head_len = loop {
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&req[..head_len]).to_ascii_lowercase();
                let Some(len) = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                else {
                    return;
                };
                while req.len() < head_len + len {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send((req.len(), req[head_len..].to_vec()));
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&reply);
                let _ = s.shutdown(std::net::Shutdown::Write);
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    (port, rx)
}

/// Server mode: curl POSTs over TLS 1.2, then TLS 1.3, through tlsproxy -s
/// to a plain HTTP upstream; the request body and the answer arrive intact.
#[test]
fn server_mode_serves_curl_over_tls12_and_tls13() {
    if !require_tool("curl") {
        return;
    }
    let pki = pki();
    let reply = payload(300_000, 21);
    let reply_head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let (upstream, bodies) = http_upstream(reply.clone());
    let mut proxy = Proxy::start(&[
        "-s",
        "-c",
        &format!("127.0.0.1:{upstream}"),
        "-C",
        pki.server.chain_path(),
        "-K",
        pki.server.key_path(),
    ]);
    let dir = temp_dir("curl");
    let cases: [(&[&str], &str); 2] = [
        (&["--tlsv1.2", "--tls-max", "1.2"], "TLS1_2"),
        (&["--tlsv1.3"], "TLS1_3"),
    ];
    for (i, (tls_args, version)) in cases.into_iter().enumerate() {
        let body = payload(200_000, 22 + i as u64);
        let body_file = dir.join(format!("body{i}"));
        let out_file = dir.join(format!("out{i}"));
        std::fs::write(&body_file, &body).unwrap();
        // --max-time bounds the run; "Expect:" skips the 100-continue pause.
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "15", "--cacert", pki.ca_path()])
            .args(tls_args)
            .args(["-H", "Expect:", "-w", "%{http_code}", "--data-binary"])
            .arg(format!("@{}", body_file.display()))
            .arg("-o")
            .arg(&out_file)
            .arg(format!("https://127.0.0.1:{}/upload", proxy.port))
            .output()
            .expect("run curl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout == "200",
            "curl {tls_args:?}: {stdout}\n{stderr}\n{}",
            proxy.log()
        );
        let (req_len, got) = bodies
            .recv_timeout(TIMEOUT)
            .expect("upstream got a request");
        assert!(got == body, "{tls_args:?}: request body differs upstream");
        let answer = std::fs::read(&out_file).expect("curl output");
        assert!(answer == reply, "{tls_args:?}: answer differs at curl");
        assert!(proxy.wait_count("tlsproxy::conn", i + 1, TIMEOUT));
        let rec = proxy.records().pop().unwrap();
        assert_eq!(field(&rec, "version"), Some(version), "{rec}");
        assert_eq!(
            field(&rec, "bytes_up"),
            Some(&*req_len.to_string()),
            "{rec}"
        );
        assert_eq!(
            field(&rec, "bytes_down"),
            Some(&*(reply_head.len() + reply.len()).to_string()),
            "{rec}"
        );
    }
}

/// Client mode: plain client -> tlsproxy -> `gnutls-serv --echo`, with the
/// upstream verified against the test CA (IP SAN 127.0.0.1); once with
/// gnutls-serv's defaults (TLS 1.3) and once restricted to TLS 1.2.
#[test]
fn client_mode_between_plain_client_and_gnutls_echo() {
    if !require_tool("gnutls-serv") {
        return;
    }
    let pki = pki();
    let cases = [
        ("NORMAL", "TLS1_3"),
        ("NORMAL:-VERS-ALL:+VERS-TLS1.2", "TLS1_2"),
    ];
    for (priority, version) in cases {
        let (_server, port) = peers::gnutls_server(&[
            "--echo",
            "--priority",
            priority,
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
        assert!(back == data, "{priority}: echoed bytes differ");
        assert!(proxy.wait_for("tlsproxy::conn", TIMEOUT), "{}", proxy.log());
        let rec = proxy.records().pop().unwrap();
        assert_eq!(field(&rec, "version"), Some(version), "{rec}");
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
}

/// Client mode over TLS 1.2: plain client -> tlsproxy -> `openssl s_server
/// -tls1_2 -rev` (answers each line reversed, and close_notify with its
/// own). The plain client half-closes after its request; every answer
/// still comes back, then EOF.
#[test]
fn client_mode_toward_openssl_server_tls12() {
    if !require_tool("openssl") {
        return;
    }
    let pki = pki();
    let (_server, port) = peers::openssl_server(&[
        "-tls1_2",
        "-rev",
        "-cert",
        pki.server.chain_path(),
        "-key",
        pki.server.key_path(),
    ]);
    let mut proxy = Proxy::start(&["-c", &format!("127.0.0.1:{port}"), "-A", pki.ca_path()]);
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("line {i:05} {}", "abcdefghij".repeat(1 + i % 7)))
        .collect();
    let data: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let want: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{}\n", l.chars().rev().collect::<String>()).into_bytes())
        .collect();
    let back = round_trip(proxy.port, &data).expect("answers, then EOF");
    assert!(
        back == want,
        "answers differ ({} of {} bytes back)",
        back.len(),
        want.len()
    );
    assert!(proxy.wait_for("tlsproxy::conn", TIMEOUT), "{}", proxy.log());
    let rec = proxy.records().pop().unwrap();
    assert_eq!(field(&rec, "version"), Some("TLS1_2"), "{rec}");
    assert_eq!(field(&rec, "outcome"), Some("closed"), "{rec}");
    assert_eq!(
        field(&rec, "bytes_up"),
        Some(&*data.len().to_string()),
        "{rec}"
    );
    assert_eq!(
        field(&rec, "bytes_down"),
        Some(&*want.len().to_string()),
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

/// Two proxies back to back over TLS 1.2: the server proxy accepts only
/// TLS 1.2 (`--protocols tls1.2`), the client proxy offers both and
/// settles on it. A second connection resumes the first one's session,
/// the key log has TLS 1.2 lines, and a client proxy limited to TLS 1.3
/// is refused.
#[test]
fn two_proxies_over_tls12() {
    let dir = temp_dir("tlsproxy-chain12");
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
            "--protocols",
            "tls1.2",
        ],
        &[("SSLKEYLOGFILE", keylog.to_str().unwrap())],
    );
    assert!(server.log().contains("tls1.2)"), "{}", server.log());
    let up = format!("127.0.0.1:{}", server.port);
    let mut client = Proxy::start(&["-c", &up, "-A", cert.to_str().unwrap()]);
    for (i, len) in [1usize << 20, 10_000].into_iter().enumerate() {
        let data = payload(len, 30 + i as u64);
        let back = round_trip(client.port, &data).expect("round trip");
        assert!(
            back == data,
            "connection {i}: stream differs after two proxies ({} bytes back)",
            back.len()
        );
        assert!(client.wait_count("tlsproxy::conn", i + 1, TIMEOUT));
        // The server proxy also logged the client proxy's start-up probe.
        assert!(
            server.wait_count("tlsproxy::conn", i + 2, TIMEOUT),
            "{}",
            server.log()
        );
        let crec = client.records().pop().unwrap();
        let srec = server.records().pop().unwrap();
        for rec in [&crec, &srec] {
            assert_eq!(field(rec, "version"), Some("TLS1_2"), "{rec}");
            assert_eq!(field(rec, "outcome"), Some("closed"), "{rec}");
            // The client proxy keeps sessions: the second connection resumes.
            let resumed = if i == 0 { "false" } else { "true" };
            assert_eq!(field(rec, "resumed"), Some(resumed), "{rec}");
            for key in ["bytes_up", "bytes_down"] {
                assert_eq!(field(rec, key), Some(&*len.to_string()), "{rec}");
            }
        }
    }
    let keys = std::fs::read_to_string(&keylog).expect("key log written");
    assert!(keys.contains("CLIENT_RANDOM "), "{keys}");
    assert!(!keys.contains("TRAFFIC_SECRET"), "{keys}");

    let mut only13 = Proxy::start(&[
        "-c",
        &up,
        "-A",
        cert.to_str().unwrap(),
        "--protocols",
        "tls1.3",
    ]);
    let back = round_trip(only13.port, b"no common version");
    assert!(
        back.map_or(true, |b| b.is_empty()),
        "served without TLS 1.2"
    );
    assert!(
        only13.wait_for("TLS handshake with upstream failed", TIMEOUT),
        "{}",
        only13.log()
    );
}

/// TLS 1.2 renegotiation is refused, not fatal: `gnutls-serv` (TLS 1.2)
/// sends a HelloRequest on `**REHANDSHAKE**`; the client proxy answers
/// no_renegotiation and relays what the server sends after it.
#[test]
fn client_mode_refuses_tls12_renegotiation_and_goes_on() {
    if !require_tool("gnutls-serv") {
        return;
    }
    let pki = pki();
    let (mut server, port) = peers::gnutls_server(&[
        "--echo",
        "--priority",
        "NORMAL:-VERS-ALL:+VERS-TLS1.2",
        "--x509certfile",
        pki.server.chain_path(),
        "--x509keyfile",
        pki.server.key_path(),
    ]);
    let mut proxy = Proxy::start(&["-c", &format!("127.0.0.1:{port}"), "-A", pki.ca_path()]);
    let mut s = connect(proxy.port);
    let line = |s: &mut std::net::TcpStream| {
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while got.last() != Some(&b'\n') {
            match s.read(&mut b) {
                Ok(1) => got.push(b[0]),
                r => panic!("after {got:?}: {r:?}\n{}", proxy.log()),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    std::io::Write::write_all(&mut s, b"hello\n").unwrap();
    assert_eq!(line(&mut s), "hello\n");
    // gnutls-serv sends the HelloRequest, then its answer to the command.
    std::io::Write::write_all(&mut s, b"**REHANDSHAKE**\n").unwrap();
    let answer = line(&mut s);
    assert!(answer.contains("Successfully"), "{answer:?}");
    assert!(
        server.wait_for_output("Received NO_RENEGOTIATION alert", TIMEOUT),
        "{}",
        server.dump()
    );
    // gnutls-serv then drops the connection (without close_notify): the
    // plain client gets EOF, not a reset.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("EOF after the upstream left");
    assert!(proxy.wait_for("tlsproxy::conn", TIMEOUT));
    let rec = proxy.records().pop().unwrap();
    assert_eq!(field(&rec, "version"), Some("TLS1_2"), "{rec}");
    assert_eq!(
        field(&rec, "bytes_down"),
        Some(&*(6 + answer.len() + rest.len()).to_string()),
        "{rec}"
    );
    assert!(!rec.contains("renegotiate"), "{rec}");
}

/// Server mode: `openssl s_client -tls1_2` asked to renegotiate (`R`) gets
/// the proxy's no_renegotiation warning (OpenSSL then gives up the
/// connection itself), after its data was echoed.
#[test]
fn server_mode_refuses_tls12_renegotiation() {
    if !require_tool("openssl") {
        return;
    }
    let echo = echo_server();
    let proxy = Proxy::start(&["-s", "-c", &format!("127.0.0.1:{echo}")]);
    let mut client = peers::openssl_client(proxy.port, &["-tls1_2"]);
    client.write_stdin(b"ping-before-renegotiation\n").unwrap();
    assert!(
        client.wait_for_output("ping-before-renegotiation", TIMEOUT),
        "{}",
        client.dump()
    );
    client.write_stdin(b"R\n").unwrap();
    assert!(client.wait_exit(TIMEOUT).is_some(), "{}", client.dump());
    assert!(
        client.stderr_text().contains("no renegotiation"),
        "{}",
        client.dump()
    );
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
    // The server proxy as it comes, then limited to TLS 1.2 (where the
    // certificate request and the client's proof differ).
    for (limit, version) in [
        (&[][..], "TLS1_3"),
        (&["--protocols", "tls1.2"][..], "TLS1_2"),
    ] {
        client_certificates(limit, version);
    }
}

fn client_certificates(limit: &[&str], version: &str) {
    let pki = pki();
    let echo = echo_server();
    let echo_addr = format!("127.0.0.1:{echo}");
    let mut args = vec![
        "-s",
        "-c",
        &echo_addr,
        "-C",
        pki.server.chain_path(),
        "-K",
        pki.server.key_path(),
        "-A",
        pki.ca_path(),
    ];
    args.extend_from_slice(limit);
    let mut server = Proxy::start(&args);
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
    assert!(back == data, "{version}: echo differs");
    assert!(
        with_cert.wait_for("outcome=closed", TIMEOUT),
        "{}",
        with_cert.log()
    );
    let rec = with_cert.records().pop().unwrap();
    assert_eq!(field(&rec, "version"), Some(version), "{rec}");

    let mut without = Proxy::start(&["-c", &up, "-A", pki.ca_path()]);
    let back = round_trip(without.port, b"no certificate");
    assert!(
        back.map_or(true, |b| b.is_empty()),
        "{version}: served without a client certificate"
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
