//! Downgrade protection: the RFC 8446 §4.1.3 sentinels and the RFC 7507 fallback
//! SCSV, in memory (a patched ServerHello) and against OpenSSL 3.0 and GnuTLS 3.7.

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::certs::pki;
use common::peers::{
    gnutls_client, gnutls_server, openssl_client, openssl_server, require_tools, tcp_connect,
    tcp_listen, Peer, TIMEOUT,
};
use common::tcp::expect_output;
use common::tls::{client_config, server_config};
use nbtls::codec::{
    put_handshake, AlertDescription, ClientHello, Codec, ExtensionType, HandshakeType,
    ProtocolVersion, ServerHello, DOWNGRADE_TLS11, DOWNGRADE_TLS12,
};
use nbtls::{ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Transport};

fn tls12_only<T>(config: T, set: impl FnOnce(T) -> nbtls::Result<T>) -> T {
    set(config).expect("TLS 1.2 only")
}

fn client12() -> ClientConfig {
    tls12_only(client_config(), |c| c.versions(&[ProtocolVersion::TLS1_2]))
}

fn server12() -> ServerConfig {
    tls12_only(server_config(), |c| c.versions(&[ProtocolVersion::TLS1_2]))
}

// ---------------------------------------------------------------------------------
// In memory: a client and a server with us in the middle of both byte streams.

struct Mitm {
    client: Session<MemoryTransport>,
    server: Session<MemoryTransport>,
    /// Our ends: toward the client, toward the server.
    to_client: MemoryTransport,
    to_server: MemoryTransport,
}

fn mitm(client: ClientConfig, server: ServerConfig) -> Mitm {
    let (c_end, to_client) = MemoryTransport::pair();
    let (to_server, s_end) = MemoryTransport::pair();
    Mitm {
        client: Session::client(Arc::new(client), "localhost", c_end, Flags::NONBLOCK)
            .expect("client"),
        server: Session::server(Arc::new(server), s_end, Flags::NONBLOCK).expect("server"),
        to_client,
        to_server,
    }
}

fn drain(t: &mut MemoryTransport) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while let Ok(n @ 1..) = t.pull(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn put(t: &mut MemoryTransport, bytes: &[u8]) {
    assert_eq!(t.push(bytes).expect("push"), bytes.len());
}

/// The ServerHello at the start of a server's first flight: (its body's offset in
/// `flight`, the decoded message).
fn server_hello(flight: &[u8]) -> (usize, ServerHello) {
    assert_eq!(flight[0], 22, "a handshake record");
    assert_eq!(flight[5], 2, "starting with a ServerHello");
    let len = usize::from(flight[6]) << 16 | usize::from(flight[7]) << 8 | usize::from(flight[8]);
    let body = &flight[9..9 + len];
    (9, ServerHello::from_bytes(body).expect("ServerHello"))
}

/// Runs the handshake with `patch` applied to the server's first flight. Returns the
/// client's and the server's results and the ServerHello the client got.
fn run(
    m: &mut Mitm,
    patch: impl FnOnce(&mut Vec<u8>),
) -> (Result<(), Error>, Result<(), Error>, ServerHello) {
    assert_eq!(m.client.handshake(), Err(Error::Again));
    let hello = drain(&mut m.to_client);
    put(&mut m.to_server, &hello);
    assert_eq!(m.server.handshake(), Err(Error::Again));
    let mut flight = drain(&mut m.to_server);
    patch(&mut flight);
    let (_, sh) = server_hello(&flight);
    put(&mut m.to_client, &flight);
    let (mut cr, mut sr) = (Err(Error::Again), Err(Error::Again));
    for _ in 0..100 {
        if matches!(cr, Err(Error::Again)) {
            cr = m.client.handshake();
        }
        let up = drain(&mut m.to_client);
        put(&mut m.to_server, &up);
        if matches!(sr, Err(Error::Again)) {
            sr = m.server.handshake();
        }
        let down = drain(&mut m.to_server);
        put(&mut m.to_client, &down);
        if !matches!(cr, Err(Error::Again)) && !matches!(sr, Err(Error::Again)) {
            break;
        }
    }
    (cr, sr, sh)
}

/// Writes `sentinel` over the last 8 bytes of the ServerHello random.
fn set_sentinel(sentinel: [u8; 8]) -> impl FnOnce(&mut Vec<u8>) {
    move |flight: &mut Vec<u8>| {
        let (body, _) = server_hello(flight);
        // legacy_version (2) then the 32-byte random.
        flight[body + 2 + 24..body + 2 + 32].copy_from_slice(&sentinel);
    }
}

fn sentinel_error(r: &Result<(), Error>) -> bool {
    matches!(r, Err(Error::Protocol { alert, reason })
        if *alert == AlertDescription::ILLEGAL_PARAMETER && reason.contains("downgrade sentinel"))
}

#[test]
fn a_tls13_client_aborts_on_a_tls12_server_hello_with_the_sentinel() {
    for (name, sentinel) in [
        ("DOWNGRD\\x01", DOWNGRADE_TLS12),
        ("DOWNGRD\\x00", DOWNGRADE_TLS11),
    ] {
        // A real TLS 1.2-only server (its random carries no sentinel), the sentinel
        // written in on the way. The randoms are signed in the ServerKeyExchange, so
        // the patch also breaks that signature: the sentinel error shows the check
        // comes first, at the ServerHello.
        let mut m = mitm(client_config(), server12());
        let (cr, sr, sh) = run(&mut m, set_sentinel(sentinel));
        assert!(sh.downgrade_sentinel().is_some(), "{name}: patched");
        assert!(sentinel_error(&cr), "{name}: client got {cr:?}");
        assert_eq!(
            sr,
            Err(Error::AlertReceived(AlertDescription::ILLEGAL_PARAMETER)),
            "{name}: the server got our alert"
        );
        assert_eq!(
            m.client.protocol_version(),
            None,
            "{name}: nothing negotiated"
        );
    }
}

#[test]
fn without_the_patch_the_same_peers_agree_on_tls12() {
    // The control for the test above: the 1.3-capable client accepts the 1.2-only
    // server, whose random has no sentinel.
    let mut m = mitm(client_config(), server12());
    let (cr, sr, sh) = run(&mut m, |_| {});
    assert_eq!(sh.downgrade_sentinel(), None);
    assert_eq!((cr, sr), (Ok(()), Ok(())));
    assert_eq!(m.client.protocol_version(), Some(ProtocolVersion::TLS1_2));
    m.client.send(b"ping").expect("send");
    put(&mut m.to_server, &drain(&mut m.to_client));
    let mut buf = [0u8; 8];
    assert_eq!(m.server.recv(&mut buf), Ok(4));
}

#[test]
fn a_tls12_only_client_ignores_the_tls12_sentinel_and_fails_on_the_signature() {
    // RFC 8446 §4.1.3: only clients that could have negotiated TLS 1.3 check
    // DOWNGRD\x01. This one goes on, and the patched random fails the
    // ServerKeyExchange signature (decrypt_error, RFC 5246 §7.2.2).
    let mut m = mitm(client12(), server12());
    let (cr, _, sh) = run(&mut m, set_sentinel(DOWNGRADE_TLS12));
    assert_eq!(sh.downgrade_sentinel(), Some(ProtocolVersion::TLS1_2));
    assert!(!sentinel_error(&cr), "{cr:?}");
    match cr {
        Err(e) => assert_eq!(e.alert(), Some(AlertDescription::DECRYPT_ERROR), "{e:?}"),
        Ok(()) => panic!("the patched signature was accepted"),
    }
}

#[test]
fn a_server_that_could_do_tls13_marks_its_tls12_server_hello() {
    // Both versions enabled, a TLS 1.2-only client: DOWNGRD\x01, which that client
    // accepts.
    let mut m = mitm(client12(), server_config());
    let (cr, sr, sh) = run(&mut m, |_| {});
    assert_eq!(sh.downgrade_sentinel(), Some(ProtocolVersion::TLS1_2));
    assert!(sh.random.ends_with(&DOWNGRADE_TLS12));
    assert_eq!((cr, sr), (Ok(()), Ok(())));
    assert_eq!(m.server.protocol_version(), Some(ProtocolVersion::TLS1_2));
    // A TLS 1.2-only server does not.
    let mut m = mitm(client12(), server12());
    let (_, _, sh) = run(&mut m, |_| {});
    assert_eq!(sh.downgrade_sentinel(), None);
}

// ---------------------------------------------------------------------------------
// Real peers.

fn tools() -> bool {
    require_tools(&["openssl", "gnutls-serv", "gnutls-cli"])
}

fn accept(listener: &TcpListener, peer: &mut Peer) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !peer.is_running() {
                    panic!("peer exited before connecting\n{}", peer.dump());
                }
                assert!(
                    Instant::now() < deadline,
                    "no connection within {TIMEOUT:?}\n{}",
                    peer.dump()
                );
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

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

fn connect(port: u16, config: ClientConfig) -> Result<Session<TcpStream>, Error> {
    let stream = tcp_connect(port);
    let mut s = Session::client(Arc::new(config), "localhost", stream, Flags::NONE)
        .expect("client session");
    s.set_handshake_timeout(Some(TIMEOUT));
    s.handshake().map(|()| s)
}

/// A line from us reaches the peer's output.
fn say(s: &mut Session<TcpStream>, peer: &mut Peer, case: &str) {
    let line = format!("nbtls says {case}\n");
    let mut data = line.as_bytes();
    while !data.is_empty() {
        let n = s
            .send(data)
            .unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
        data = &data[n..];
    }
    expect_output(peer, line.trim_end(), case);
}

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

fn cli(port: u16, extra: &[&str]) -> Peer {
    let mut v = vec!["--x509cafile", pki().ca_path()];
    v.extend_from_slice(extra);
    gnutls_client(port, &v)
}

/// The ServerHello random an `-msg` peer printed it received (`dir` `<<<`) or sent
/// (`>>>`): the hex lines after `<<< ... ServerHello`.
fn server_hello_random(peer: &Peer, dir: &str) -> Option<[u8; 32]> {
    let out = peer.stdout_text();
    let start = format!("{dir} ");
    let mut lines = out
        .lines()
        .skip_while(|l| !(l.starts_with(&start) && l.ends_with("], ServerHello")));
    lines.next()?;
    let mut bytes = Vec::new();
    for l in lines {
        let parsed: Option<Vec<u8>> = l
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).ok().filter(|_| h.len() == 2))
            .collect();
        match parsed {
            Some(b) if !b.is_empty() => bytes.extend(b),
            _ => break,
        }
    }
    // Handshake header (4), legacy_version (2), then the random.
    bytes.get(6..38)?.try_into().ok()
}

const TLS12: &str = "NORMAL:-VERS-ALL:+VERS-TLS1.2";

#[test]
fn tls12_only_peers_are_served_by_a_server_that_prefers_tls13() {
    if !tools() {
        return;
    }
    let case = "s_client -tls1_2";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-tls1_2", "-msg"]);
    let (mut s, r) = serve(&listener, &mut client, server_config());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    expect_output(&mut client, "Verify return code: 0 (ok)", case);
    say(&mut s, &mut client, case);
    let random = server_hello_random(&client, "<<<")
        .unwrap_or_else(|| panic!("{case}: no ServerHello dump\n{}", client.dump()));
    assert!(random.ends_with(&DOWNGRADE_TLS12), "{case}: {random:02x?}");

    let case = "gnutls-cli TLS 1.2 only";
    let (listener, port) = tcp_listen();
    let mut client = cli(port, &["--priority", TLS12]);
    let (mut s, r) = serve(&listener, &mut client, server_config());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    expect_output(&mut client, "(TLS1.2-X.509)", case);
    say(&mut s, &mut client, case);
}

#[test]
fn tls13_capable_peers_accept_a_tls12_only_server_without_sentinel() {
    if !tools() {
        return;
    }
    // Real 1.3 clients check the sentinel: a 1.2-only server must not send it.
    let case = "s_client (TLS 1.3 capable), nbtls TLS 1.2 only";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-msg"]);
    let (mut s, r) = serve(&listener, &mut client, server12());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    expect_output(&mut client, "New, TLSv1.2", case);
    say(&mut s, &mut client, case);
    let random = server_hello_random(&client, "<<<").expect("ServerHello dump");
    assert!(
        !random.ends_with(&DOWNGRADE_TLS12[..7]),
        "{case}: {random:02x?}"
    );

    let case = "gnutls-cli (TLS 1.3 capable), nbtls TLS 1.2 only";
    let (listener, port) = tcp_listen();
    let mut client = cli(port, &[]);
    let (mut s, r) = serve(&listener, &mut client, server12());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    expect_output(&mut client, "(TLS1.2-X.509)", case);
    say(&mut s, &mut client, case);

    // And a 1.2-only nbtls client takes OpenSSL's real DOWNGRD\x01 in stride.
    let case = "nbtls TLS 1.2 only, s_server (TLS 1.3 capable)";
    let p = pki();
    let (mut server, port) = openssl_server(&[
        "-cert",
        p.server_ecdsa.chain_path(),
        "-key",
        p.server_ecdsa.key_path(),
        "-msg",
        "-naccept",
        "1",
    ]);
    let mut s = connect(port, client12())
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", server.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    say(&mut s, &mut server, case);
    let random = server_hello_random(&server, ">>>")
        .unwrap_or_else(|| panic!("{case}: no ServerHello dump\n{}", server.dump()));
    assert!(
        random.ends_with(&DOWNGRADE_TLS12),
        "{case}: s_server's ServerHello carries DOWNGRD\\x01: {random:02x?}"
    );
}

// A man in the middle strips supported_versions from our ClientHello, so a real
// server that supports TLS 1.3 answers with TLS 1.2: its random carries DOWNGRD\x01
// and our client must abort at once.

/// Relays one connection to 127.0.0.1:`target`, rewriting the client's first record
/// (its ClientHello) with `rewrite`.
fn rewriting_relay(target: u16, rewrite: fn(ClientHello) -> ClientHello) -> u16 {
    let (listener, port) = tcp_listen();
    thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + TIMEOUT;
        let mut client = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Err(_) => return,
            }
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_read_timeout(Some(TIMEOUT));
        let mut server = tcp_connect(target);
        let mut header = [0u8; 5];
        if client.read_exact(&mut header).is_err() {
            return;
        }
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
        if client.read_exact(&mut body).is_err() {
            return;
        }
        // One record holding exactly the ClientHello.
        let hello = ClientHello::from_bytes(&body[4..]).expect("ClientHello");
        let mut msg = Vec::new();
        put_handshake(&mut msg, HandshakeType::CLIENT_HELLO, |o| {
            rewrite(hello).encode(o)
        });
        let mut record = header[..3].to_vec();
        record.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        record.extend_from_slice(&msg);
        if server.write_all(&record).is_err() {
            return;
        }
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => return,
        };
        let up = thread::spawn(move || pipe(client, server));
        pipe(s2, c2);
        let _ = up.join();
    });
    port
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = from.set_read_timeout(Some(TIMEOUT));
    let mut buf = [0u8; 16384];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn strip_supported_versions(mut hello: ClientHello) -> ClientHello {
    hello
        .extensions
        .retain(|e| e.ext_type() != ExtensionType::SUPPORTED_VERSIONS);
    hello
}

fn unchanged(hello: ClientHello) -> ClientHello {
    hello
}

#[test]
fn a_real_server_downgraded_by_a_man_in_the_middle_is_refused() {
    if !tools() {
        return;
    }
    let p = pki();
    let (mut server, port) = openssl_server(&[
        "-cert",
        p.server_ecdsa.chain_path(),
        "-key",
        p.server_ecdsa.key_path(),
    ]);
    // Control: through an unchanged relay, TLS 1.3.
    let case = "s_server through a transparent relay";
    let mut s = connect(rewriting_relay(port, unchanged), client_config())
        .unwrap_or_else(|e| panic!("{case}: {e:?}\n{}", server.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_3),
        "{case}"
    );
    say(&mut s, &mut server, case);
    drop(s);

    let case = "s_server through a relay stripping supported_versions";
    match connect(
        rewriting_relay(port, strip_supported_versions),
        client_config(),
    ) {
        Err(e) => assert!(
            sentinel_error(&Err(e.clone())),
            "{case}: {e:?}\n{}",
            server.dump()
        ),
        Ok(_) => panic!(
            "{case}: the downgraded handshake completed\n{}",
            server.dump()
        ),
    }
    expect_output(&mut server, "illegal parameter", case);

    let (mut server, port) = gnutls_server(&[
        "--echo",
        "--x509certfile",
        p.server_ecdsa.chain_path(),
        "--x509keyfile",
        p.server_ecdsa.key_path(),
        "-a",
    ]);
    let case = "gnutls-serv through a relay stripping supported_versions";
    match connect(
        rewriting_relay(port, strip_supported_versions),
        client_config(),
    ) {
        Err(e) => assert!(
            sentinel_error(&Err(e.clone())),
            "{case}: {e:?}\n{}",
            server.dump()
        ),
        Ok(_) => panic!(
            "{case}: the downgraded handshake completed\n{}",
            server.dump()
        ),
    }
    expect_output(&mut server, "Illegal parameter", case);
    // The same server serves a client that offers TLS 1.2 only.
    let case = "gnutls-serv, nbtls TLS 1.2 only";
    let mut s =
        connect(port, client12()).unwrap_or_else(|e| panic!("{case}: {e:?}\n{}", server.dump()));
    assert_eq!(
        s.protocol_version(),
        Some(ProtocolVersion::TLS1_2),
        "{case}"
    );
    assert_eq!(s.send(b"echo me\n"), Ok(8), "{case}");
    let mut buf = [0u8; 16];
    assert_eq!(s.recv(&mut buf), Ok(8), "{case}\n{}", server.dump());
    assert_eq!(&buf[..8], b"echo me\n", "{case}");
}

// ---------------------------------------------------------------------------------
// RFC 7507: a fallback SCSV from a client that could do better than TLS 1.2.

#[test]
fn fallback_scsv_is_answered_with_inappropriate_fallback() {
    if !tools() {
        return;
    }
    let case = "s_client -tls1_2 -fallback_scsv";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-tls1_2", "-fallback_scsv"]);
    let (_s, r) = serve(&listener, &mut client, server_config());
    match r {
        Err(e) => assert_eq!(
            e.alert(),
            Some(AlertDescription::INAPPROPRIATE_FALLBACK),
            "{case}: {e:?}"
        ),
        Ok(()) => panic!("{case}: served\n{}", client.dump()),
    }
    expect_output(&mut client, "alert inappropriate fallback", case);

    let case = "gnutls-cli TLS 1.2 with %FALLBACK_SCSV";
    let (listener, port) = tcp_listen();
    let prio = format!("{TLS12}:%FALLBACK_SCSV");
    let mut client = cli(port, &["--priority", &prio]);
    let (_s, r) = serve(&listener, &mut client, server_config());
    assert_eq!(
        r.as_ref().err().and_then(Error::alert),
        Some(AlertDescription::INAPPROPRIATE_FALLBACK),
        "{case}: {r:?}\n{}",
        client.dump()
    );
    expect_output(&mut client, "Inappropriate fallback", case);

    // A server whose best is TLS 1.2 serves the same fallback.
    let case = "s_client -tls1_2 -fallback_scsv, nbtls TLS 1.2 only";
    let (listener, port) = tcp_listen();
    let mut client = s_client(port, &["-tls1_2", "-fallback_scsv"]);
    let (mut s, r) = serve(&listener, &mut client, server12());
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    expect_output(&mut client, "Verify return code: 0 (ok)", case);
    say(&mut s, &mut client, case);
}
