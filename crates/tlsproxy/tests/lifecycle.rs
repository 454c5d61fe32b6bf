//! How connections and the process begin and end: half-close both ways,
//! SIGTERM draining, idle and handshake timeouts, limits, bad input, a
//! peer sending garbage, an upstream that goes away.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nbtls::codec::ProtocolVersion;
use nbtls::{ClientConfig, Shutdown};
use support::*;

fn echo_proxy(extra: &[&str]) -> Proxy {
    let echo = echo_server();
    let up = format!("127.0.0.1:{echo}");
    let mut args = vec!["-s", "-c", &up];
    args.extend_from_slice(extra);
    Proxy::start(&args)
}

fn insecure() -> ClientConfig {
    ClientConfig::insecure()
}

fn echo_once(s: &mut nbtls::Session<TcpStream>, seed: u64) {
    let data = payload(5000, seed);
    tls_send_all(s, &data);
    assert!(tls_recv_exact(s, data.len()) == data, "echo differs");
}

/// TLS 1.3 and TLS 1.2 (the versions to give an nbtls peer) with the
/// name the connection record shows.
const VERSIONS: [(ProtocolVersion, &str); 2] = [
    (ProtocolVersion::TLS1_3, "TLS1_3"),
    (ProtocolVersion::TLS1_2, "TLS1_2"),
];

/// Client mode: the plain client's EOF becomes close_notify (after all its
/// data), and the upstream's close_notify becomes EOF on the plain side;
/// the upstream may still answer after our close_notify (half-close; TLS
/// 1.2 peers that follow RFC 5246 §7.2.1 strictly would not, nbtls does).
#[test]
fn half_close_propagates_in_client_mode() {
    for (version, name) in VERSIONS {
        half_close_client_mode(version, name);
    }
}

fn half_close_client_mode(version: ProtocolVersion, name: &str) {
    let (tx, rx) = mpsc::channel();
    let cfg = server_config().versions(&[version]).unwrap();
    let upstream = tls_server(cfg, move |s| {
        let req = tls_recv_to_close(s);
        let ok = req.is_ok();
        let _ = tx.send(req);
        if ok {
            tls_send_all(s, b"answer sent after the client's close_notify");
            tls_close(s);
        }
    });
    let mut proxy = Proxy::start(&[
        "-c",
        &format!("127.0.0.1:{upstream}"),
        "-A",
        pki().ca_path(),
    ]);
    let mut c = connect(proxy.port);
    c.write_all(b"the whole request").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let req = rx.recv_timeout(TIMEOUT).expect("upstream saw close_notify");
    assert_eq!(
        req.expect("request read to close_notify"),
        b"the whole request"
    );
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).expect("answer, then EOF");
    assert_eq!(answer, b"answer sent after the client's close_notify");
    assert!(proxy.wait_for("outcome=closed", TIMEOUT), "{}", proxy.log());
    let rec = proxy.records().pop().unwrap();
    assert_eq!(field(&rec, "version"), Some(name), "{rec}");
}

/// Server mode: close_notify from the TLS client becomes a FIN toward the
/// upstream (after all the data), and the upstream's FIN becomes
/// close_notify, which the client reads after its own close_notify.
#[test]
fn half_close_propagates_in_server_mode() {
    for (version, name) in VERSIONS {
        half_close_server_mode(version, name);
    }
}

fn half_close_server_mode(version: ProtocolVersion, name: &str) {
    let (l, port) = listener();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let mut req = Vec::new();
            if s.read_to_end(&mut req).is_err() || req.is_empty() {
                continue; // the proxy's start-up probe
            }
            let _ = tx.send(req);
            let _ = s.write_all(b"answer after EOF");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read(&mut [0u8; 1]);
        }
    });
    let mut proxy = Proxy::start(&[
        "-s",
        "-c",
        &format!("127.0.0.1:{port}"),
        "-C",
        pki().server.chain_path(),
        "-K",
        pki().server.key_path(),
    ]);
    let cfg = client_config().versions(&[version]).unwrap();
    let mut s = tls_connect(proxy.port, cfg, "localhost");
    tls_send_all(&mut s, b"request then close_notify");
    s.bye(Shutdown::Write).expect("bye");
    let req = rx.recv_timeout(TIMEOUT).expect("upstream saw EOF");
    assert_eq!(req, b"request then close_notify");
    let answer = tls_recv_to_close(&mut s).expect("answer, then close_notify");
    assert_eq!(answer, b"answer after EOF");
    assert!(proxy.wait_for("outcome=closed", TIMEOUT), "{}", proxy.log());
    let rec = proxy.records().pop().unwrap();
    assert_eq!(field(&rec, "bytes_up"), Some("25"), "{rec}");
    assert_eq!(field(&rec, "bytes_down"), Some("16"), "{rec}");
    assert_eq!(field(&rec, "version"), Some(name), "{rec}");
}

/// SIGTERM: no new connections, open ones keep working until they close,
/// then exit status 0.
#[test]
fn sigterm_drains_then_exits_zero() {
    let mut proxy = echo_proxy(&[]);
    let mut s = tls_connect(proxy.port, insecure(), "127.0.0.1");
    echo_once(&mut s, 1);
    proxy.sigterm();
    assert!(
        proxy.wait_for("draining 1 connections", TIMEOUT),
        "{}",
        proxy.log()
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, proxy.port));
    assert!(
        eventually(TIMEOUT, || TcpStream::connect_timeout(
            &addr,
            Duration::from_secs(1)
        )
        .is_err()),
        "still accepting after SIGTERM"
    );
    // The open connection is served as before.
    echo_once(&mut s, 2);
    assert!(
        proxy.try_status().is_none(),
        "exited with a connection open"
    );
    s.bye(Shutdown::Write).unwrap();
    assert!(tls_recv_to_close(&mut s).expect("close_notify").is_empty());
    let st = proxy.wait_exit(TIMEOUT).expect("exits once drained");
    assert!(st.success(), "exit status {st}");
    assert!(proxy.log().contains("outcome=closed"), "{}", proxy.log());
}

/// After the drain timeout, open connections are closed cleanly
/// (close_notify) and the process exits 0; a second signal does the same
/// at once.
#[test]
fn drain_timeout_and_second_signal_close_connections() {
    for second_signal in [false, true] {
        let drain = if second_signal { "60" } else { "0.3" };
        let mut proxy = echo_proxy(&["--drain-timeout", drain]);
        let mut s = tls_connect(proxy.port, insecure(), "127.0.0.1");
        echo_once(&mut s, 3);
        let t0 = Instant::now();
        proxy.sigterm();
        assert!(proxy.wait_for("draining 1", TIMEOUT));
        if second_signal {
            thread::sleep(Duration::from_millis(200));
            assert!(proxy.try_status().is_none());
            proxy.sigterm();
        }
        let st = proxy.wait_exit(TIMEOUT).expect("exits");
        assert!(st.success(), "exit status {st}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        let rest = tls_recv_to_close(&mut s).expect("a clean close_notify");
        assert!(rest.is_empty());
        assert!(
            proxy.log().contains("outcome=closed at shutdown"),
            "{}",
            proxy.log()
        );
    }
}

/// No traffic for --idle-timeout: closed cleanly; traffic keeps it open.
#[test]
fn idle_timeout_closes_quiet_connections() {
    let mut proxy = echo_proxy(&["--idle-timeout", "1"]);
    let mut busy = tls_connect(proxy.port, insecure(), "127.0.0.1");
    let mut quiet = tls_connect(proxy.port, insecure(), "127.0.0.1");
    let t0 = Instant::now();
    for i in 0..15 {
        echo_once(&mut busy, 10 + i);
        thread::sleep(Duration::from_millis(100));
    }
    let rest = tls_recv_to_close(&mut quiet).expect("close_notify on idle");
    assert!(rest.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert!(proxy.wait_for("outcome=idle timeout", TIMEOUT));
    // The busy one outlived the quiet one.
    echo_once(&mut busy, 99);
}

/// A client that connects and says nothing is dropped at the handshake
/// timeout.
#[test]
fn handshake_timeout_drops_silent_clients() {
    let mut proxy = echo_proxy(&["--handshake-timeout", "0.3"]);
    let mut c = connect(proxy.port);
    let t0 = Instant::now();
    let r = c.read(&mut [0u8; 64]);
    let waited = t0.elapsed();
    assert!(
        matches!(r, Ok(0)) || r.is_err(),
        "expected the connection closed, got {r:?}"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "closed after {waited:?}");
    assert!(proxy.wait_for("timed out", TIMEOUT), "{}", proxy.log());
}

/// Garbage costs the sender its own connection only.
#[test]
fn garbage_loses_only_its_own_connection() {
    let mut proxy = echo_proxy(&[]);
    let mut good = tls_connect(proxy.port, insecure(), "127.0.0.1");
    echo_once(&mut good, 20);
    let junk: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        &payload(3000, 7),
        // A TLS record header promising an oversized handshake record.
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3],
    ];
    for j in junk {
        let mut c = connect(proxy.port);
        let _ = c.write_all(j);
        let mut sink = Vec::new();
        // An alert may come first; then the connection ends (bounded).
        let r = c.read_to_end(&mut sink);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
        assert!(
            sink.len() < 64,
            "the proxy answered garbage with {} bytes",
            sink.len()
        );
    }
    assert!(
        proxy.wait_count("TLS handshake with client failed", 2, TIMEOUT),
        "{}",
        proxy.log()
    );
    echo_once(&mut good, 21);
    assert!(proxy.try_status().is_none());
}

/// An upstream that stops accepting after start-up: the client's
/// connection is closed and the reason logged; the proxy keeps running.
#[test]
fn upstream_failing_later_closes_the_client_connection() {
    // Server mode.
    let (l, port) = listener();
    let mut proxy = Proxy::start(&["-s", "-c", &format!("127.0.0.1:{port}")]);
    drop(l); // the start-up probe got in; now connections are refused
    let mut s = tls_connect(proxy.port, insecure(), "127.0.0.1");
    let r = tls_recv_to_close(&mut s);
    assert!(
        r.is_err(),
        "expected an unclean end (no close_notify), got {r:?}"
    );
    assert!(proxy.wait_for("upstream connect to", TIMEOUT));
    assert!(proxy.log().contains("failed"), "{}", proxy.log());
    // Client mode.
    let (l, port) = listener();
    let mut proxy = Proxy::start(&["-c", &format!("127.0.0.1:{port}"), "-A", pki().ca_path()]);
    drop(l);
    let mut c = connect(proxy.port);
    let r = c.read(&mut [0u8; 16]);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected a reset, got {r:?}"
    );
    assert!(
        proxy.wait_for("upstream connect to", TIMEOUT),
        "{}",
        proxy.log()
    );
    assert!(proxy.try_status().is_none());
}

/// At --max-conns new connections wait in the backlog until one closes.
#[test]
fn max_conns_holds_new_connections_back() {
    let mut proxy = echo_proxy(&["--max-conns", "1"]);
    let mut first = tls_connect(proxy.port, insecure(), "127.0.0.1");
    echo_once(&mut first, 30);
    let port = proxy.port;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut s = tls_connect(port, insecure(), "127.0.0.1");
        echo_once(&mut s, 31);
        let _ = tx.send(());
        tls_close(&mut s);
        let _ = tls_recv_to_close(&mut s);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a second connection was served at --max-conns 1"
    );
    assert!(proxy.wait_for("at --max-conns", TIMEOUT));
    tls_close(&mut first);
    assert!(tls_recv_to_close(&mut first).unwrap().is_empty());
    rx.recv_timeout(TIMEOUT)
        .expect("served once the first closed");
}

/// Bad input: one clear line on stderr and a non-zero exit.
#[test]
fn bad_input_gets_one_line_and_nonzero_exit() {
    let pki = pki();
    let echo = echo_server();
    let up = format!("127.0.0.1:{echo}");
    let dir = temp_dir("badinput");
    let junk_ca = dir.join("junk.pem");
    std::fs::write(&junk_ca, "not a certificate\n").unwrap();
    let dead = format!("127.0.0.1:{}", peers::pick_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--frobnicate", "-c", &up, "-l", "127.0.0.1:0"],
            "--frobnicate",
        ),
        (vec!["-l", "127.0.0.1:0"], "--connect"),
        (vec!["-c", "no-port-here", "-l", "127.0.0.1:0"], "HOST:PORT"),
        (
            vec![
                "-s",
                "-c",
                &up,
                "-l",
                "127.0.0.1:0",
                "-C",
                "/nonexistent/cert.pem",
                "-K",
                pki.server.key_path(),
            ],
            "/nonexistent/cert.pem",
        ),
        (
            vec![
                "-s",
                "-c",
                &up,
                "-l",
                "127.0.0.1:0",
                "-C",
                pki.server.chain_path(),
                "-K",
                pki.client.key_path(),
            ],
            "does not match",
        ),
        (
            vec![
                "-s",
                "-c",
                &up,
                "-l",
                "127.0.0.1:0",
                "-C",
                dir.to_str().unwrap(),
                "-K",
                pki.server.key_path(),
            ],
            "directory",
        ),
        (
            vec![
                "-c",
                &up,
                "-l",
                "127.0.0.1:0",
                "-A",
                junk_ca.to_str().unwrap(),
            ],
            "no certificates",
        ),
        (vec!["-s", "-c", &dead, "-l", "127.0.0.1:0"], "unreachable"),
        (
            vec!["-c", &dead, "-l", "127.0.0.1:0", "-A", pki.ca_path()],
            "unreachable",
        ),
        (
            vec!["-s", "-i", "-c", &up, "-l", "127.0.0.1:0"],
            "--insecure",
        ),
        (
            vec!["-c", &up, "-l", "256.1.1.1:80", "-A", pki.ca_path()],
            "--listen",
        ),
        (
            vec![
                "-s",
                "-c",
                &up,
                "-l",
                "127.0.0.1:0",
                "--protocols",
                "tls1.2,ssl3",
            ],
            "\"ssl3\" is not a protocol version",
        ),
    ];
    for (args, expect) in cases {
        let mut p = Proxy::spawn(&args, &[]);
        let st = p
            .wait_exit(TIMEOUT)
            .unwrap_or_else(|| panic!("{args:?} did not exit"));
        assert!(!st.success(), "{args:?} exited 0");
        let log = p.log();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one line, got:\n{log}");
        assert!(lines[0].starts_with("tlsproxy: "), "{args:?}: {log}");
        assert!(
            lines[0].contains(expect),
            "{args:?}: expected {expect:?} in: {log}"
        );
    }
}
