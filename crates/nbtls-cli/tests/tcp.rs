//! `nbtls client` and `nbtls server` over TCP: echo, sink, send and http
//! modes, the generated certificate, and the negotiated summary.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use support::{server, wait, BIN};

/// Runs `nbtls client ADDR --insecure ARGS` with `input` on stdin; returns
/// its exit status, stdout and stderr.
fn client(addr: &str, args: &[&str], input: &[u8]) -> (std::process::ExitStatus, Vec<u8>, String) {
    let mut c = Command::new(BIN)
        .args(["client", addr, "--insecure", "--server-name", "localhost"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut stdin = c.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = c.stdout.take().unwrap();
    let mut err = c.stderr.take().unwrap();
    let r_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let r_err = std::thread::spawn(move || {
        let mut v = String::new();
        let _ = err.read_to_string(&mut v);
        v
    });
    let st = wait(&mut c, "client");
    let _ = writer.join();
    (st, r_out.join().unwrap(), r_err.join().unwrap())
}

fn payload(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn echo_returns_every_byte_and_the_summary_names_the_session() {
    let (mut srv, addr) = server(&["--once", "--echo"]);
    let data = payload(300_000);
    let (st, out, err) = client(&addr, &[], &data);
    assert!(st.success(), "client: {st}\n{err}");
    assert_eq!(out.len(), data.len());
    assert!(out == data, "echoed bytes differ");
    for line in [
        "- version: TLS1_3",
        "- cipher suite: TLS_",
        "- group: X25519MLKEM768",
        "peer certificate 0",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    assert!(wait(&mut srv, "server").success());
}

#[test]
fn tls12_and_options_restrict_what_is_offered() {
    let (mut srv, addr) = server(&["--once", "--echo", "--alpn", "h2,http/1.1"]);
    let args = [
        "--protocols",
        "tls1.2",
        "--groups",
        "p256",
        "--alpn",
        "http/1.1",
    ];
    let (st, out, err) = client(&addr, &args, b"ping\n");
    assert!(st.success(), "client: {st}\n{err}");
    assert_eq!(out, b"ping\n");
    assert!(err.contains("- version: TLS1_2"), "{err}");
    assert!(err.contains("- group: SECP256R1"), "{err}");
    assert!(err.contains("- ALPN: http/1.1"), "{err}");
    assert!(wait(&mut srv, "server").success());
}

#[test]
fn sink_counts_and_hashes_and_send_serves_a_file() {
    let (mut srv, addr) = server(&["--once", "--sink"]);
    let data = payload(100_000);
    let (st, out, err) = client(&addr, &[], &data);
    assert!(st.success(), "client: {st}\n{err}");
    assert!(out.is_empty());
    assert!(wait(&mut srv, "server").success());
    let mut report = String::new();
    srv.stdout
        .take()
        .unwrap()
        .read_to_string(&mut report)
        .unwrap();
    let digest = nbtls::crypto::hash::hash(nbtls::crypto::HashAlg::Sha256, &data);
    let hex: String = digest
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        report.trim(),
        format!("received {} bytes, SHA-256 {hex}", data.len())
    );

    let file = std::env::temp_dir().join(format!("nbtls-cli-send-{}", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    let (mut srv, addr) = server(&["--once", "--send", file.to_str().unwrap()]);
    let (st, out, err) = client(&addr, &[], b"");
    assert!(st.success(), "client: {st}\n{err}");
    assert!(
        out == data,
        "sent file arrives whole ({} of {} bytes)",
        out.len(),
        data.len()
    );
    assert!(wait(&mut srv, "server").success());
    let _ = std::fs::remove_file(file);
}

#[test]
fn http_mode_answers_and_resume_resumes() {
    let (mut srv, addr) = server(&["--http"]);
    let (st, out, err) = client(&addr, &[], b"GET / HTTP/1.0\r\n\r\n");
    assert!(st.success(), "client: {st}\n{err}");
    let page = String::from_utf8_lossy(&out);
    assert!(page.starts_with("HTTP/1.0 200 OK"), "{page}");
    assert!(page.contains("- version: TLS1_3"), "{page}");
    let (st, _, err) = client(&addr, &["--resume"], b"GET / HTTP/1.0\r\n\r\n");
    assert!(st.success(), "client: {st}\n{err}");
    assert!(err.contains("- resumed: yes"), "{err}");
    let _ = srv.kill();
    let _ = srv.wait();
}

#[test]
fn the_server_generates_a_certificate_and_prints_its_fingerprint() {
    let mut child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--once"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut buf = [0u8; 512];
    let n = err.read(&mut buf).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.contains("generated a self-signed certificate for localhost, SHA-256 "),
        "{text}"
    );
}

#[test]
fn bad_arguments_get_one_clear_line() {
    let out = Command::new(BIN)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "/nonexistent.pem",
            "--key",
            "/nonexistent.pem",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent.pem"), "{err}");
    let out = Command::new(BIN)
        .args(["client", "127.0.0.1:1", "--groups", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown group"));
}
