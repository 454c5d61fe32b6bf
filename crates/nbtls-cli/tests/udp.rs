//! `nbtls client --udp` against `nbtls server --udp`: lines travel as
//! datagrams, are echoed or counted, and both processes exit on their own.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{server, wait, BIN};

fn client(addr: &str, input: &[u8]) -> (std::process::ExitStatus, Vec<u8>) {
    let mut c = Command::new(BIN)
        .args([
            "client",
            addr,
            "--udp",
            "--insecure",
            "--server-name",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn client");
    c.stdin.take().unwrap().write_all(input).unwrap();
    let mut out = c.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let st = wait(&mut c, "client");
    (st, reader.join().unwrap())
}

#[test]
fn udp_client_and_echo_server() {
    let (mut srv, addr) = server(&["--udp", "--once", "--echo"]);
    let (st, out) = client(&addr, b"first line\nsecond\nthird datagram\n");
    assert!(st.success(), "client: {st}");
    assert_eq!(out, b"first line\nsecond\nthird datagram\n");
    // The client's close_notify ends the session; --once ends the server.
    assert!(wait(&mut srv, "server").success());
}

/// One server socket, several clients at once: each gets its own echo.
#[test]
fn udp_echo_server_serves_clients_at_the_same_time() {
    let (mut srv, addr) = server(&["--udp", "--echo"]);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let input = format!("client {i} line one\nclient {i} line two\n");
                let (st, out) = client(&addr, input.as_bytes());
                (st, out, input)
            })
        })
        .collect();
    for c in clients {
        let (st, out, input) = c.join().unwrap();
        assert!(st.success(), "client: {st}");
        assert_eq!(String::from_utf8_lossy(&out), input);
    }
    let _ = srv.kill();
    let _ = srv.wait();
}

#[test]
fn udp_sink_counts_every_datagram_and_long_lines_are_cut() {
    let (mut srv, addr) = server(&["--udp", "--once", "--sink"]);
    // A line longer than the data MTU goes out as several datagrams.
    let mut input = vec![b'x'; 3000];
    input.push(b'\n');
    input.extend_from_slice(b"end\n");
    let (st, out) = client(&addr, &input);
    assert!(st.success(), "client: {st}");
    assert!(out.is_empty(), "a sink sends nothing back");
    // Wait first (bounded); the short report fits in the pipe meanwhile.
    assert!(wait(&mut srv, "server").success());
    let mut report = String::new();
    srv.stdout
        .take()
        .unwrap()
        .read_to_string(&mut report)
        .unwrap();
    assert!(
        report.starts_with(&format!("received {} bytes", input.len())),
        "{report}"
    );
}

/// Against `openssl s_server -dtls1_2`: it prints what it receives, and
/// the client's close_notify ends its one connection.
#[test]
fn udp_client_to_openssl_s_server() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "openssl missing in CI");
        eprintln!("skipped: no openssl");
        return;
    }
    let dir = std::env::temp_dir().join(format!("nbtls-cli-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl req");
    // A port that was free a moment ago.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut srv = Command::new("openssl")
        .args(["s_server", "-dtls1_2", "-naccept", "1", "-quiet"])
        .args(["-accept", &format!("127.0.0.1:{port}"), "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl");
    let mut out = srv.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    // s_server needs a moment to bind; the client's retransmissions cover
    // a ClientHello sent before it does.
    std::thread::sleep(Duration::from_millis(200));
    let (st, _) = client(&format!("127.0.0.1:{port}"), b"to openssl\n");
    let srv_status = wait(&mut srv, "openssl s_server");
    let got = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(st.success(), "client: {st}");
    assert!(srv_status.success(), "s_server: {srv_status}");
    assert_eq!(String::from_utf8_lossy(&got), "to openssl\n");
}
