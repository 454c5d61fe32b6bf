//! DTLS 1.2 against OpenSSL and GnuTLS over real UDP sockets, both roles.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::pki;
use common::peers::{gnutls_client, openssl_client, require_tools};
use common::tls::{client_config, server_config};
use common::udp::{
    self, gnutls_dtls_echo_server, listen, openssl_dtls_server, recv_within, TIMEOUT,
};
use nbtls::codec::ProtocolVersion;
use nbtls::{Error, Session};

fn client_to(port: u16) -> Session<UdpSocket> {
    let mut s = udp::client(port, Arc::new(client_config()));
    s.handshake().expect("DTLS handshake");
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::DTLS1_2));
    s
}

/// A server session for the first client that writes to `sock`.
fn serve(sock: UdpSocket) -> Session<UdpSocket> {
    let mut s = udp::serve(sock, Arc::new(server_config()));
    s.handshake().expect("DTLS handshake");
    s
}

#[test]
fn nbtls_client_to_openssl_and_gnutls_servers() {
    if !require_tools(&["openssl", "gnutls-serv"]) {
        return;
    }
    let p = pki();
    let (mut srv, port) = openssl_dtls_server(&p.server_ecdsa, &[]);
    let mut c = client_to(port);
    c.send(b"hello openssl\n").unwrap();
    assert!(
        srv.wait_for_output("hello openssl", TIMEOUT),
        "{}",
        srv.dump()
    );
    srv.write_stdin(b"hello nbtls\n").unwrap();
    let mut buf = [0u8; 100];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello nbtls\n");

    let (mut g, port) = gnutls_dtls_echo_server(&p.server_rsa, &[]);
    let mut c = client_to(port);
    c.send(b"echo me\n").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let n = loop {
        match c.recv(&mut buf) {
            Ok(n) => break n,
            Err(Error::Again) if Instant::now() < deadline => {}
            Err(e) => panic!("{e}: {}", g.dump()),
        }
    };
    assert_eq!(&buf[..n], b"echo me\n");
    g.kill();
}

#[test]
fn openssl_and_gnutls_clients_to_nbtls_server() {
    if !require_tools(&["openssl", "gnutls-cli"]) {
        return;
    }
    let p = pki();
    for tool in ["openssl", "gnutls"] {
        let (sock, port) = listen();
        let mut peer = if tool == "openssl" {
            openssl_client(port, &["-dtls1_2", "-CAfile", p.ca_path(), "-quiet"])
        } else {
            gnutls_client(port, &["-u", "--x509cafile", p.ca_path()])
        };
        let mut s = serve(sock);
        assert_eq!(
            s.protocol_version(),
            Some(ProtocolVersion::DTLS1_2),
            "{tool}"
        );
        peer.write_stdin(b"from the peer\n").unwrap();
        let mut buf = [0u8; 100];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from the peer\n", "{tool}");
        s.send(b"from nbtls\n").unwrap();
        assert!(
            peer.wait_for_output("from nbtls", TIMEOUT),
            "{tool}: {}",
            peer.dump()
        );
        peer.kill();
    }
}

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

use common::certs::CertFiles;
use common::tls::certified_key;
use nbtls::codec::CipherSuite;
use nbtls::ServerConfig;

/// A transparent UDP relay on 127.0.0.1 that counts the server's
/// HelloVerifyRequests, so a case proves whether cookies were exchanged.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    hvr: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    fn to(server_port: u16) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", server_port)).unwrap();
        let tick = Some(Duration::from_millis(20));
        front.set_read_timeout(tick).unwrap();
        back.set_read_timeout(tick).unwrap();
        let port = front.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let hvr = Arc::new(AtomicUsize::new(0));
        let client = Arc::new(Mutex::new(None));
        let up = {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (stop, client) = (stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(from);
                        let _ = back.send(&buf[..n]);
                    }
                }
            })
        };
        let down = {
            let (stop, hvr) = (stop.clone(), hvr.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = back.recv(&mut buf) {
                        // Record type handshake (22), epoch 0, message type 3.
                        if n > 13 && buf[0] == 22 && buf[3..5] == [0, 0] && buf[13] == 3 {
                            hvr.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(to) = *client.lock().unwrap() {
                            let _ = front.send_to(&buf[..n], to);
                        }
                    }
                }
            })
        };
        Relay {
            port,
            stop,
            hvr,
            threads: vec![up, down],
        }
    }

    fn hello_verify_requests(&self) -> usize {
        self.hvr.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn all_suites() -> Vec<(CipherSuite, &'static CertFiles)> {
    let p = pki();
    vec![
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &p.server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            &p.server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            &p.server_ecdsa,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            &p.server_rsa,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            &p.server_rsa,
        ),
        (
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            &p.server_rsa,
        ),
    ]
}

/// Our client offers one suite at a time; the peer server (with and
/// without its cookie exchange where the tool can turn it off) must pick
/// it; bytes go both ways.
#[test]
fn nbtls_client_every_suite_against_openssl_and_gnutls_with_and_without_cookies() {
    if !require_tools(&["openssl", "gnutls-serv"]) {
        return;
    }
    for (i, (suite, cert)) in all_suites().into_iter().enumerate() {
        // s_server always exchanges cookies over DTLS (checked: a
        // HelloVerifyRequest also without -listen); -listen takes OpenSSL's
        // stateless DTLSv1_listen path. gnutls-serv: on unless --nocookie.
        let variants = [
            ("openssl", "", true),
            ("openssl", "-listen", true),
            ("gnutls", "", true),
            ("gnutls", "--nocookie", false),
        ];
        for (tool, extra, cookies) in variants {
            let case = format!("{suite} {tool} {extra} cookies={cookies}");
            let extra = if extra.is_empty() {
                vec![]
            } else {
                vec![extra]
            };
            let (mut peer, port) = if tool == "openssl" {
                openssl_dtls_server(cert, &extra)
            } else {
                gnutls_dtls_echo_server(cert, &extra)
            };
            let relay = Relay::to(port);
            let cfg = client_config().cipher_suites(&[suite]).unwrap();
            let mut c = udp::client(relay.port, Arc::new(cfg));
            if let Err(e) = c.handshake() {
                panic!("{case}: {e}: {}", peer.dump());
            }
            assert_eq!(c.protocol_version(), Some(ProtocolVersion::DTLS1_2));
            assert_eq!(c.cipher_suite(), Some(suite), "{case}");
            assert_eq!(
                relay.hello_verify_requests() > 0,
                cookies,
                "{case}: HelloVerifyRequest seen"
            );
            let msg = format!("to-{tool}-{}\n", i);
            c.send(msg.as_bytes()).unwrap();
            let mut buf = [0u8; 200];
            if tool == "openssl" {
                assert!(
                    peer.wait_for_output(msg.trim_end(), TIMEOUT),
                    "{case}: {}",
                    peer.dump()
                );
                peer.write_stdin(b"from-openssl\n").unwrap();
                let n = recv_within(&mut c, &mut buf, &case);
                assert_eq!(&buf[..n], b"from-openssl\n", "{case}");
            } else {
                // The echo proves both directions.
                let n = recv_within(&mut c, &mut buf, &case);
                assert_eq!(&buf[..n], msg.as_bytes(), "{case}");
            }
            peer.kill();
        }
    }
}

/// Our server allows one suite at a time (cookies on and off); OpenSSL and
/// GnuTLS clients offer their defaults; bytes go both ways.
#[test]
fn openssl_and_gnutls_clients_every_suite_against_nbtls_server_with_and_without_cookies() {
    if !require_tools(&["openssl", "gnutls-cli"]) {
        return;
    }
    let p = pki();
    for (i, (suite, cert)) in all_suites().into_iter().enumerate() {
        for tool in ["openssl", "gnutls"] {
            for cookies in [true, false] {
                let case = format!("{suite} {tool} cookies={cookies}");
                let (sock, port) = listen();
                let relay = Relay::to(port);
                let mut peer = if tool == "openssl" {
                    openssl_client(relay.port, &["-dtls1_2", "-CAfile", p.ca_path(), "-quiet"])
                } else {
                    gnutls_client(relay.port, &["-u", "--x509cafile", p.ca_path()])
                };
                let mut cfg = ServerConfig::new(certified_key(cert))
                    .cipher_suites(&[suite])
                    .unwrap();
                if !cookies {
                    cfg = cfg.dtls_cookies(None);
                }
                let mut s = udp::serve(sock, Arc::new(cfg));
                if let Err(e) = s.handshake() {
                    panic!("{case}: {e}: {}", peer.dump());
                }
                assert_eq!(s.protocol_version(), Some(ProtocolVersion::DTLS1_2));
                assert_eq!(s.cipher_suite(), Some(suite), "{case}");
                assert_eq!(
                    relay.hello_verify_requests() > 0,
                    cookies,
                    "{case}: HelloVerifyRequest seen"
                );
                let msg = format!("from-{tool}-{}\n", i);
                peer.write_stdin(msg.as_bytes()).unwrap();
                let mut buf = [0u8; 200];
                let n = recv_within(&mut s, &mut buf, &case);
                assert_eq!(&buf[..n], msg.as_bytes(), "{case}");
                s.send(b"from-nbtls\n").unwrap();
                assert!(
                    peer.wait_for_output("from-nbtls", TIMEOUT),
                    "{case}: {}",
                    peer.dump()
                );
                peer.kill();
            }
        }
    }
}
