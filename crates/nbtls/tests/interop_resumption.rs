//! Session resumption and 0-RTT interop with OpenSSL 3.0 and GnuTLS 3.7, nbtls in
//! both roles, TLS 1.3 and TLS 1.2, through the library (blocking `Session` over
//! `TcpStream`, every wait bounded).
//!
//! Each resumption is checked on both sides: OpenSSL prints `Reused, TLSvX, Cipher
//! is ...` (s_client) or `Reused session-id` (s_server), GnuTLS `This is a resumed
//! session`, and our `SessionInfo::resumed`. Where a resumption must be refused,
//! `s_client -trace` shows that the old session really was offered (a non-empty
//! `session_ticket` or a `psk` extension in its ClientHello), so the full handshake
//! is our server's choice.
//!
//! Tool facts relied on (checked by hand): `s_client -sess_out` writes a TLS 1.3
//! session only when a NewSessionTicket arrives, so each first connection exchanges
//! data (the tickets come before it) and the file is read after s_client exited;
//! `gnutls-cli --resume` connects twice (`--waitresumption` makes it wait for the
//! TLS 1.3 ticket); `s_server -early_data` prints `Early data received:` and the data,
//! and without it (but with `-max_early_data`) it issues 0-RTT tickets and rejects
//! the early data; gnutls-serv reads early data without echoing it, so its
//! acceptance shows in its debug log (`-d 4`: `early data accepted`).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::certs::pki;
use common::peers::{
    gnutls_client, gnutls_server, openssl_client, openssl_server, require_tools, tcp_connect,
    tcp_listen, Peer, TIMEOUT,
};
use common::tcp::accept;
use common::tcp::{expect_output, recv_until, send_all};
use common::tls::{certified_key, client_config, server_config};
use nbtls::codec::{CipherSuite, ProtocolVersion};
use nbtls::{
    AntiReplay, CertStore, ClientConfig, Error, Flags, ServerConfig, Session, Shutdown, Ticketer,
    TimeSource,
};
use rustls_pki_types::UnixTime;

// ---------------------------------------------------------------------------------
// Helpers.

fn tools() -> bool {
    require_tools(&["openssl", "gnutls-serv", "gnutls-cli"])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    Tls13,
    Tls12,
}

const VERSIONS: [V; 2] = [V::Tls13, V::Tls12];

impl V {
    fn openssl(self) -> &'static str {
        match self {
            V::Tls13 => "-tls1_3",
            V::Tls12 => "-tls1_2",
        }
    }

    /// How OpenSSL names the version in `New, TLSv1.3, Cipher is ...`.
    fn openssl_name(self) -> &'static str {
        match self {
            V::Tls13 => "TLSv1.3",
            V::Tls12 => "TLSv1.2",
        }
    }

    fn gnutls(self) -> &'static str {
        match self {
            V::Tls13 => "NORMAL:-VERS-ALL:+VERS-TLS1.3",
            V::Tls12 => "NORMAL:-VERS-ALL:+VERS-TLS1.2",
        }
    }

    fn ours(self) -> ProtocolVersion {
        match self {
            V::Tls13 => ProtocolVersion::TLS1_3,
            V::Tls12 => ProtocolVersion::TLS1_2,
        }
    }
}

/// An nbtls client session to 127.0.0.1:`port` for `localhost`, handshake done.
fn connect(port: u16, config: &ClientConfig) -> Result<Session<TcpStream>, Error> {
    let s = start_client(port, config);
    handshake(s)
}

fn start_client(port: u16, config: &ClientConfig) -> Session<TcpStream> {
    let stream = tcp_connect(port);
    let mut s = Session::client(Arc::new(config.clone()), "localhost", stream, Flags::NONE)
        .expect("client session");
    s.set_handshake_timeout(Some(TIMEOUT));
    s
}

fn handshake(mut s: Session<TcpStream>) -> Result<Session<TcpStream>, Error> {
    s.handshake().map(|()| s)
}

/// Accepts the connection `peer` makes (bounded) and runs an nbtls server handshake.
fn serve(
    listener: &TcpListener,
    peer: &mut Peer,
    config: &ServerConfig,
) -> (Session<TcpStream>, Result<(), Error>) {
    let stream = accept(listener, peer);
    let mut s =
        Session::server(Arc::new(config.clone()), stream, Flags::NONE).expect("server session");
    s.set_handshake_timeout(Some(TIMEOUT));
    let r = s.handshake();
    (s, r)
}

/// One line each way with a peer that sends its stdin and prints what it receives
/// (s_server, s_client, gnutls-cli). Lines start with letters that are no OpenSSL
/// stdin command.
fn exchange(s: &mut Session<TcpStream>, peer: &mut Peer, case: &str) {
    let ours = format!("nbtls says {case}");
    send_all(s, format!("{ours}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
    expect_output(peer, &ours, case);
    let theirs = format!("peer says {case}");
    peer.write_stdin(format!("{theirs}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{case}: writing to the peer: {e}\n{}", peer.dump()));
    if let Err(e) = recv_until(s, &theirs) {
        panic!("{case}: {e}\n{}", peer.dump());
    }
}

/// A line to gnutls-serv --echo comes back unchanged.
fn echo(s: &mut Session<TcpStream>, peer: &Peer, case: &str) {
    let line = format!("nbtls echo {case}\n");
    send_all(s, line.as_bytes()).unwrap_or_else(|e| panic!("{case}: send: {e:?}\n{}", peer.dump()));
    if let Err(e) = recv_until(s, &line) {
        panic!("{case}: {e}\n{}", peer.dump());
    }
}

/// The peer closes (stdin EOF: close_notify), we read it and answer, and the peer
/// exits. A session file it writes is complete after this.
fn peer_closes(s: &mut Session<TcpStream>, peer: &mut Peer, case: &str) {
    peer.close_stdin();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match s.recv(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = s.bye(Shutdown::Write);
    assert!(
        peer.wait_exit(TIMEOUT).is_some(),
        "{case}: the peer did not exit\n{}",
        peer.dump()
    );
}

/// `s_client` for `version`, verifying the test CA and `name` (also its SNI).
fn s_client(port: u16, v: V, name: &str, extra: &[&str]) -> Peer {
    let mut args = vec![
        v.openssl(),
        "-CAfile",
        pki().ca_path(),
        "-verify_return_error",
        "-servername",
        name,
        "-verify_hostname",
        name,
    ];
    args.extend_from_slice(extra);
    openssl_client(port, &args)
}

/// One s_client connection served by nbtls with `config`: handshake, a line each way,
/// then s_client closes and exits. `args` go to s_client (`-sess_out F`, ...).
fn s_client_round(
    listener: &TcpListener,
    port: u16,
    config: &ServerConfig,
    v: V,
    args: &[&str],
    case: &str,
) -> (Session<TcpStream>, Peer) {
    s_client_named_round(listener, port, config, v, "localhost", args, case)
}

fn s_client_named_round(
    listener: &TcpListener,
    port: u16,
    config: &ServerConfig,
    v: V,
    name: &str,
    args: &[&str],
    case: &str,
) -> (Session<TcpStream>, Peer) {
    let mut client = s_client(port, v, name, args);
    let (mut s, r) = serve(listener, &mut client, config);
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    expect_output(&mut client, "Verify return code: 0 (ok)", case);
    assert_eq!(s.protocol_version(), Some(v.ours()), "{case}");
    exchange(&mut s, &mut client, case);
    peer_closes(&mut s, &mut client, case);
    (s, client)
}

/// What s_client says about the session: `Some(true)` for `Reused`, `Some(false)`
/// for `New`.
fn openssl_reused(peer: &Peer, v: V) -> Option<bool> {
    let out = peer.stdout_text();
    if out.contains(&format!("Reused, {}", v.openssl_name())) {
        Some(true)
    } else if out.contains(&format!("New, {}", v.openssl_name())) {
        Some(false)
    } else {
        None
    }
}

/// The length of extension `ext` (e.g. `psk(41)`) in the ClientHello that
/// `s_client -trace` printed, if it sent one.
fn client_hello_extension(peer: &Peer, ext: &str) -> Option<usize> {
    let out = peer.stdout_text();
    let start = out.find("ClientHello, Length=")?;
    let end = out[start..]
        .find("Received Record")
        .map_or(out.len(), |i| start + i);
    let needle = format!("extension_type={ext}, length=");
    out[start..end].lines().find_map(|l| {
        l.trim()
            .strip_prefix(&needle)
            .and_then(|n| n.trim().parse().ok())
    })
}

/// Asserts (from `-trace`) that s_client offered its stored session: a `psk`
/// extension (TLS 1.3) or a non-empty `session_ticket` (TLS 1.2).
fn assert_offered(peer: &Peer, v: V, case: &str) {
    let offered = match v {
        V::Tls13 => client_hello_extension(peer, "psk(41)"),
        V::Tls12 => client_hello_extension(peer, "session_ticket(35)").filter(|n| *n > 0),
    };
    assert!(
        offered.is_some(),
        "{case}: s_client did not offer its session\n{}",
        peer.dump()
    );
}

fn temp_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A ticketer shared by server configs that stand for one server instance.
fn ticketer(secret: u8) -> Arc<Ticketer> {
    Arc::new(Ticketer::with_secret(&[secret; 32]))
}

/// gnutls-cli to 127.0.0.1:`port` trusting the test CA (no SNI, checks the IP SAN).
fn cli(port: u16, extra: &[&str]) -> Peer {
    let mut v = vec!["--x509cafile", pki().ca_path()];
    v.extend_from_slice(extra);
    gnutls_client(port, &v)
}

/// `gnutls-cli --resume` against nbtls: the first connection served with `first`,
/// the second with `second`. Returns both sessions; the peer is left open on the
/// second connection after one exchanged line.
fn gnutls_resume_round(
    first: &ServerConfig,
    second: &ServerConfig,
    v: V,
    extra: &[&str],
    case: &str,
) -> (Session<TcpStream>, Session<TcpStream>, Peer) {
    let (listener, port) = tcp_listen();
    let mut args = vec!["--priority", v.gnutls(), "--resume"];
    if v == V::Tls13 {
        args.push("--waitresumption");
    }
    args.extend_from_slice(extra);
    let mut client = cli(port, &args);
    let (mut s1, r) = serve(&listener, &mut client, first);
    r.unwrap_or_else(|e| panic!("{case}: first handshake: {e:?}\n{}", client.dump()));
    assert_eq!(s1.protocol_version(), Some(v.ours()), "{case}");
    // gnutls-cli disconnects at once to connect again.
    let mut buf = [0u8; 256];
    let _ = s1.recv(&mut buf);
    let _ = s1.bye(Shutdown::Write);
    let (mut s2, r) = serve(&listener, &mut client, second);
    r.unwrap_or_else(|e| panic!("{case}: second handshake: {e:?}\n{}", client.dump()));
    expect_output(&mut client, "- Resume Handshake was completed", case);
    exchange(&mut s2, &mut client, case);
    (s1, s2, client)
}

/// `gnutls-serv --echo` with the ECDSA leaf, no client certificate request.
fn echo_server(args: &[&str]) -> (Peer, u16) {
    let p = pki();
    let mut v = vec![
        "--echo",
        "--crlf",
        "--x509certfile",
        p.server_ecdsa.chain_path(),
        "--x509keyfile",
        p.server_ecdsa.key_path(),
        "-a",
    ];
    v.extend_from_slice(args);
    gnutls_server(&v)
}

/// `s_server` for `version` with the ECDSA leaf, serving any number of connections.
fn s_server(v: V, extra: &[&str]) -> (Peer, u16) {
    let p = pki();
    let mut args = vec![
        v.openssl(),
        "-cert",
        p.server_ecdsa.chain_path(),
        "-key",
        p.server_ecdsa.key_path(),
    ];
    args.extend_from_slice(extra);
    openssl_server(&args)
}

/// One nbtls client connection to a peer (s_server, or gnutls-serv with `echo`),
/// data read after the handshake so TLS 1.3 tickets are processed, then closed.
fn client_round(
    port: u16,
    config: &ClientConfig,
    peer: &mut Peer,
    gnutls: bool,
    case: &str,
) -> Session<TcpStream> {
    let mut s = connect(port, config)
        .unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", peer.dump()));
    if gnutls {
        echo(&mut s, peer, case);
    } else {
        exchange(&mut s, peer, case);
    }
    let _ = s.bye(Shutdown::Write);
    s
}

// ---------------------------------------------------------------------------------
// Resumption, nbtls as the server.

#[test]
fn s_client_resumes_on_nbtls_server() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("resume-ossl");
    for v in VERSIONS {
        let config = server_config();
        let sess = temp_file(&dir, &format!("{v:?}.pem"));
        let (listener, port) = tcp_listen();

        let case = format!("{v:?}: s_client -sess_out");
        let (s, client) = s_client_round(
            &listener,
            port,
            &config,
            v,
            &["-sess_out", path_str(&sess)],
            &case,
        );
        assert!(!s.info().resumed, "{case}");
        assert_eq!(
            openssl_reused(&client, v),
            Some(false),
            "{case}\n{}",
            client.dump()
        );
        assert!(sess.exists(), "{case}: no session file\n{}", client.dump());

        let case = format!("{v:?}: s_client -sess_in");
        let (s, client) = s_client_round(
            &listener,
            port,
            &config,
            v,
            &["-sess_in", path_str(&sess)],
            &case,
        );
        assert!(s.info().resumed, "{case}: we did not resume");
        assert!(s.peer_certificates().is_empty(), "{case}");
        assert_eq!(
            openssl_reused(&client, v),
            Some(true),
            "{case}\n{}",
            client.dump()
        );
    }
}

#[test]
fn gnutls_cli_resumes_on_nbtls_server() {
    if !tools() {
        return;
    }
    for v in VERSIONS {
        let case = format!("{v:?}: gnutls-cli --resume");
        let config = server_config();
        let (s1, s2, mut client) = gnutls_resume_round(&config, &config, v, &[], &case);
        assert!(!s1.info().resumed, "{case}");
        assert!(s2.info().resumed, "{case}: we did not resume");
        assert_eq!(s2.protocol_version(), Some(v.ours()), "{case}");
        expect_output(&mut client, "*** This is a resumed session", &case);
    }
}

// ---------------------------------------------------------------------------------
// Resumption, nbtls as the client: one ClientConfig (one session store), two
// connections.

#[test]
fn nbtls_client_resumes_on_s_server() {
    if !tools() {
        return;
    }
    for v in VERSIONS {
        let case = format!("{v:?}: s_server");
        let (mut server, port) = s_server(v, &[]);
        let config = client_config();
        let s = client_round(port, &config, &mut server, false, &case);
        assert!(!s.info().resumed, "{case}");
        assert_eq!(s.protocol_version(), Some(v.ours()), "{case}");
        if v == V::Tls13 {
            assert!(s.tickets_received() > 0, "{case}: no ticket processed");
        }
        let s = client_round(port, &config, &mut server, false, &case);
        assert!(
            s.info().resumed,
            "{case}: we did not resume\n{}",
            server.dump()
        );
        assert_eq!(s.protocol_version(), Some(v.ours()), "{case}");
        assert!(s.peer_certificates().is_empty(), "{case}");
        // s_server prints the line after the handshake: under load it can
        // come a moment after our side is done.
        assert!(
            server.wait_for_output("Reused session-id", Duration::from_secs(10)),
            "{case}: s_server resumed\n{}",
            server.dump()
        );
        assert_eq!(server.count_output("Reused session-id"), 1, "{case}");
    }
}

#[test]
fn nbtls_client_resumes_on_gnutls_serv() {
    if !tools() {
        return;
    }
    for v in VERSIONS {
        let case = format!("{v:?}: gnutls-serv");
        let (mut server, port) = echo_server(&["--priority", v.gnutls()]);
        let config = client_config();
        let s = client_round(port, &config, &mut server, true, &case);
        assert!(!s.info().resumed, "{case}");
        assert_eq!(s.protocol_version(), Some(v.ours()), "{case}");
        if v == V::Tls13 {
            assert!(s.tickets_received() > 0, "{case}: no ticket processed");
        }
        let s = client_round(port, &config, &mut server, true, &case);
        assert!(
            s.info().resumed,
            "{case}: we did not resume\n{}",
            server.dump()
        );
        expect_output(&mut server, "*** This is a resumed session", &case);
        assert_eq!(
            server.count_output("*** This is a resumed session"),
            1,
            "{case}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Two nbtls server instances sharing ticket keys resume each other's sessions; an
// instance with other keys falls back to a full handshake.

#[test]
fn a_fleet_sharing_ticket_keys_resumes_real_clients() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("resume-fleet");
    // TLS 1.2 without the session-id cache: only the ticket can resume.
    let instance = |secret: u8| {
        server_config()
            .ticketer(Some(ticketer(secret)))
            .session_cache(None)
    };
    for v in VERSIONS {
        let (a, b, other) = (instance(7), instance(7), instance(8));

        let case = format!("{v:?}: gnutls-cli, instance a then b");
        let (_, s2, mut client) = gnutls_resume_round(&a, &b, v, &[], &case);
        assert!(s2.info().resumed, "{case}");
        expect_output(&mut client, "*** This is a resumed session", &case);

        let case = format!("{v:?}: gnutls-cli, instance a then another fleet");
        let (_, s2, client) = gnutls_resume_round(&a, &other, v, &[], &case);
        assert!(!s2.info().resumed, "{case}");
        assert!(
            !client.output_contains("This is a resumed session"),
            "{case}"
        );

        let sess = temp_file(&dir, &format!("{v:?}.pem"));
        let (listener, port) = tcp_listen();
        let case = format!("{v:?}: s_client on instance a");
        s_client_round(
            &listener,
            port,
            &a,
            v,
            &["-sess_out", path_str(&sess)],
            &case,
        );
        let case = format!("{v:?}: s_client resumes on instance b");
        let (s, client) = s_client_round(
            &listener,
            port,
            &b,
            v,
            &["-sess_in", path_str(&sess)],
            &case,
        );
        assert!(s.info().resumed, "{case}");
        assert_eq!(openssl_reused(&client, v), Some(true), "{case}");
        // The same session (its ticket was not used up: tickets are stateless) on an
        // instance with other keys.
        let case = format!("{v:?}: s_client on another fleet");
        let (s, client) = s_client_round(
            &listener,
            port,
            &other,
            v,
            &["-sess_in", path_str(&sess), "-trace"],
            &case,
        );
        assert_offered(&client, v, &case);
        assert!(!s.info().resumed, "{case}");
        assert_eq!(openssl_reused(&client, v), Some(false), "{case}");
    }
}

// ---------------------------------------------------------------------------------
// Tickets that must not resume: expired, tampered with, for another name, another
// hash or suite, another Extended Master Secret use. Each falls back to a full
// handshake that completes.

/// The system clocks, `ahead` seconds in the future (to expire tickets without
/// waiting; certificates stay valid for decades).
#[derive(Debug, Default)]
struct ShiftedClock {
    ahead: AtomicU64,
}

impl ShiftedClock {
    fn advance(&self, secs: u64) {
        self.ahead.fetch_add(secs, Ordering::SeqCst);
    }

    fn shift(&self) -> Duration {
        Duration::from_secs(self.ahead.load(Ordering::SeqCst))
    }
}

impl TimeSource for ShiftedClock {
    fn now(&self) -> Instant {
        Instant::now() + self.shift()
    }

    fn unix_time(&self) -> UnixTime {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970");
        UnixTime::since_unix_epoch(now + self.shift())
    }
}

/// A copy of OpenSSL session file `from` with one byte in the middle of its ticket
/// flipped. The ticket is the OCTET STRING in the session's `[10]` field (OpenSSL's
/// SSL_SESSION ASN.1); the file goes through `openssl sess_id` to and from DER.
fn tamper_session_ticket(from: &Path, dir: &Path, case: &str) -> PathBuf {
    let der = dir.join("tamper.der");
    let out = dir.join("tampered.pem");
    run_openssl(
        &[
            "sess_id",
            "-in",
            path_str(from),
            "-outform",
            "DER",
            "-out",
            path_str(&der),
        ],
        case,
    );
    let mut bytes = std::fs::read(&der).expect("session DER");
    let (start, len) = session_ticket_range(&bytes)
        .unwrap_or_else(|| panic!("{case}: no ticket in the session file"));
    assert!(len > 32, "{case}: ticket of {len} bytes");
    bytes[start + len / 2] ^= 0x5a;
    std::fs::write(&der, &bytes).expect("write DER");
    run_openssl(
        &[
            "sess_id",
            "-inform",
            "DER",
            "-in",
            path_str(&der),
            "-out",
            path_str(&out),
        ],
        case,
    );
    out
}

fn run_openssl(args: &[&str], case: &str) {
    let mut p = Peer::spawn("openssl", args);
    p.close_stdin();
    match p.wait_exit(TIMEOUT) {
        Some(s) if s.success() => {}
        other => panic!("{case}: openssl {args:?}: {other:?}\n{}", p.dump()),
    }
}

/// A DER element at `pos`: (tag, content start, content length).
fn der_element(b: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *b.get(pos)?;
    let first = *b.get(pos + 1)?;
    if first < 0x80 {
        return Some((tag, pos + 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 3 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | usize::from(*b.get(pos + 2 + i)?);
    }
    Some((tag, pos + 2 + n, len))
}

/// (start, length) of the ticket inside an SSL_SESSION DER: SEQUENCE { ...,
/// [10] EXPLICIT OCTET STRING ticket, ... }.
fn session_ticket_range(b: &[u8]) -> Option<(usize, usize)> {
    let (tag, mut pos, len) = der_element(b, 0)?;
    if tag != 0x30 {
        return None;
    }
    let end = pos + len;
    while pos < end {
        let (tag, start, len) = der_element(b, pos)?;
        if tag == 0xaa {
            let (inner, tstart, tlen) = der_element(b, start)?;
            return (inner == 0x04).then_some((tstart, tlen));
        }
        pos = start + len;
    }
    None
}

#[test]
fn expired_and_tampered_tickets_fall_back_to_full_handshakes() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("resume-reject");
    for v in VERSIONS {
        let clock = Arc::new(ShiftedClock::default());
        let short = Ticketer::with_secret(&[3; 32])
            .lifetime(Duration::from_secs(60))
            .expect("lifetime");
        let config = server_config()
            .time_source(clock.clone())
            .ticketer(Some(Arc::new(short)))
            .session_cache(None);
        let (listener, port) = tcp_listen();
        let sess = temp_file(&dir, &format!("{v:?}.pem"));

        let case = format!("{v:?}: first connection");
        s_client_round(
            &listener,
            port,
            &config,
            v,
            &["-sess_out", path_str(&sess)],
            &case,
        );

        // Tampered: our ticket no longer opens; a full handshake.
        let case = format!("{v:?}: tampered ticket");
        let tampered = tamper_session_ticket(&sess, &dir, &case);
        let (s, client) = s_client_round(
            &listener,
            port,
            &config,
            v,
            &["-sess_in", path_str(&tampered), "-trace"],
            &case,
        );
        assert_offered(&client, v, &case);
        assert!(!s.info().resumed, "{case}");
        assert_eq!(openssl_reused(&client, v), Some(false), "{case}");

        // The untouched session still resumes (the control for both cases).
        let case = format!("{v:?}: fresh ticket");
        let (s, client) = s_client_round(
            &listener,
            port,
            &config,
            v,
            &["-sess_in", path_str(&sess)],
            &case,
        );
        assert!(s.info().resumed, "{case}");
        assert_eq!(openssl_reused(&client, v), Some(true), "{case}");

        // Two minutes later on our clock (s_client's clock still finds the 60 s
        // ticket fresh, so it offers it): expired, a full handshake.
        clock.advance(120);
        let case = format!("{v:?}: expired ticket");
        let (s, client) = s_client_round(
            &listener,
            port,
            &config,
            v,
            &["-sess_in", path_str(&sess), "-trace"],
            &case,
        );
        assert_offered(&client, v, &case);
        assert!(!s.info().resumed, "{case}");
        assert_eq!(openssl_reused(&client, v), Some(false), "{case}");
    }
}

#[test]
fn a_session_for_one_name_is_not_resumed_under_another() {
    if !tools() {
        return;
    }
    let p = pki();
    let mut store = CertStore::new();
    store.add(&["localhost"], certified_key(&p.server_ecdsa));
    store.add(&["other.test"], certified_key(&p.server_other));
    let config = ServerConfig::with_resolver(Arc::new(store));
    let dir = common::unique_temp_dir("resume-sni");
    for v in VERSIONS {
        let (listener, port) = tcp_listen();
        let sess = temp_file(&dir, &format!("{v:?}.pem"));
        let case = format!("{v:?}: session for localhost");
        s_client_named_round(
            &listener,
            port,
            &config,
            v,
            "localhost",
            &["-sess_out", path_str(&sess)],
            &case,
        );
        let case = format!("{v:?}: offered under other.test");
        let (s, client) = s_client_named_round(
            &listener,
            port,
            &config,
            v,
            "other.test",
            &["-sess_in", path_str(&sess), "-trace"],
            &case,
        );
        assert_offered(&client, v, &case);
        assert!(!s.info().resumed, "{case}");
        assert_eq!(s.server_name(), Some("other.test"), "{case}");
        assert_eq!(openssl_reused(&client, v), Some(false), "{case}");
        // The full handshake presented the certificate for the new name.
        assert!(
            client.stdout_text().contains("CN = other.test"),
            "{case}\n{}",
            client.dump()
        );
    }
}

#[test]
fn resumption_keeps_to_the_suite() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("resume-suite");
    let t = ticketer(11);
    let with_suites = |suites: &[CipherSuite]| {
        server_config()
            .ticketer(Some(t.clone()))
            .session_cache(None)
            .cipher_suites(suites)
            .expect("suites")
    };
    // TLS 1.3: a PSK resumes under a suite of its hash only (RFC 8446 §4.2.11).
    let (listener, port) = tcp_listen();
    let sha256 = temp_file(&dir, "sha256.pem");
    let case = "TLS 1.3 session under TLS_AES_128_GCM_SHA256";
    let aes128 = with_suites(&[CipherSuite::TLS_AES_128_GCM_SHA256]);
    s_client_round(
        &listener,
        port,
        &aes128,
        V::Tls13,
        &["-sess_out", path_str(&sha256)],
        case,
    );
    let case = "offered to a server with SHA-384 suites only";
    let aes256 = with_suites(&[CipherSuite::TLS_AES_256_GCM_SHA384]);
    let (s, client) = s_client_round(
        &listener,
        port,
        &aes256,
        V::Tls13,
        &["-sess_in", path_str(&sha256), "-trace"],
        case,
    );
    assert_offered(&client, V::Tls13, case);
    assert!(!s.info().resumed, "{case}");
    assert_eq!(s.cipher_suite(), Some(CipherSuite::TLS_AES_256_GCM_SHA384));
    let case = "offered to a server with another SHA-256 suite";
    let chacha = with_suites(&[CipherSuite::TLS_CHACHA20_POLY1305_SHA256]);
    let (s, client) = s_client_round(
        &listener,
        port,
        &chacha,
        V::Tls13,
        &["-sess_in", path_str(&sha256)],
        case,
    );
    assert!(s.info().resumed, "{case}: same hash resumes");
    assert_eq!(
        s.cipher_suite(),
        Some(CipherSuite::TLS_CHACHA20_POLY1305_SHA256),
        "{case}"
    );
    assert_eq!(openssl_reused(&client, V::Tls13), Some(true), "{case}");

    // TLS 1.2: the session's own suite, or a full handshake.
    let (listener, port) = tcp_listen();
    let sess = temp_file(&dir, "tls12.pem");
    let case = "TLS 1.2 session under ECDHE-ECDSA-AES128-GCM-SHA256";
    let ecdsa128 = with_suites(&[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]);
    s_client_round(
        &listener,
        port,
        &ecdsa128,
        V::Tls12,
        &["-sess_out", path_str(&sess)],
        case,
    );
    let case = "offered to a server without that suite";
    let ecdsa256 = with_suites(&[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]);
    let (s, client) = s_client_round(
        &listener,
        port,
        &ecdsa256,
        V::Tls12,
        &["-sess_in", path_str(&sess), "-trace"],
        case,
    );
    assert_offered(&client, V::Tls12, case);
    assert!(!s.info().resumed, "{case}");
    assert_eq!(openssl_reused(&client, V::Tls12), Some(false), "{case}");
}

/// `openssl s_client` with Extended Master Secret turned off through an OpenSSL
/// config file (3.0 has no command-line switch for it).
fn s_client_without_ems(port: u16, conf: &Path, extra: &[&str]) -> Peer {
    let env = format!("OPENSSL_CONF={}", path_str(conf));
    let connect = format!("127.0.0.1:{port}");
    let mut args = vec![
        env.as_str(),
        "openssl",
        "s_client",
        "-connect",
        &connect,
        "-tls1_2",
        "-CAfile",
        pki().ca_path(),
        "-verify_return_error",
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
    ];
    args.extend_from_slice(extra);
    Peer::spawn("env", &args)
}

#[test]
fn tls12_resumption_keeps_extended_master_secret_use() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("resume-ems");
    let conf = dir.join("no-ems.cnf");
    std::fs::write(
        &conf,
        "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n\
         [sys]\nOptions = -ExtendedMasterSecret\n",
    )
    .expect("write config");
    let config = server_config();
    let (listener, port) = tcp_listen();
    let with_ems = temp_file(&dir, "ems.pem");
    let without_ems = temp_file(&dir, "no-ems.pem");

    let run = |client: Peer, case: &str| -> (Session<TcpStream>, Peer) {
        let mut client = client;
        let (mut s, r) = serve(&listener, &mut client, &config);
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        expect_output(&mut client, "Verify return code: 0 (ok)", case);
        exchange(&mut s, &mut client, case);
        peer_closes(&mut s, &mut client, case);
        (s, client)
    };

    let case = "session with EMS";
    let (_, client) = run(
        s_client(
            port,
            V::Tls12,
            "localhost",
            &["-sess_out", path_str(&with_ems)],
        ),
        case,
    );
    expect_output_now(&client, "Extended master secret: yes", case);
    let case = "session without EMS";
    let (_, client) = run(
        s_client_without_ems(port, &conf, &["-sess_out", path_str(&without_ems)]),
        case,
    );
    expect_output_now(&client, "Extended master secret: no", case);

    // RFC 7627 §5.3: neither resumes into a handshake with the other EMS use.
    let case = "EMS session offered without EMS";
    let (s, client) = run(
        s_client_without_ems(port, &conf, &["-sess_in", path_str(&with_ems), "-trace"]),
        case,
    );
    assert_offered(&client, V::Tls12, case);
    assert!(!s.info().resumed, "{case}");
    assert_eq!(openssl_reused(&client, V::Tls12), Some(false), "{case}");
    let case = "non-EMS session offered with EMS";
    let (s, client) = run(
        s_client(
            port,
            V::Tls12,
            "localhost",
            &["-sess_in", path_str(&without_ems), "-trace"],
        ),
        case,
    );
    assert_offered(&client, V::Tls12, case);
    assert!(!s.info().resumed, "{case}");
    assert_eq!(openssl_reused(&client, V::Tls12), Some(false), "{case}");

    // Controls: each resumes with its own EMS use.
    let case = "EMS session offered with EMS";
    let (s, _) = run(
        s_client(
            port,
            V::Tls12,
            "localhost",
            &["-sess_in", path_str(&with_ems)],
        ),
        case,
    );
    assert!(s.info().resumed, "{case}");
    let case = "non-EMS session offered without EMS";
    let (s, client) = run(
        s_client_without_ems(port, &conf, &["-sess_in", path_str(&without_ems)]),
        case,
    );
    assert!(s.info().resumed, "{case}");
    assert_eq!(openssl_reused(&client, V::Tls12), Some(true), "{case}");
}

fn expect_output_now(peer: &Peer, needle: &str, case: &str) {
    assert!(
        peer.output_contains(needle),
        "{case}: no {needle:?}\n{}",
        peer.dump()
    );
}

// ---------------------------------------------------------------------------------
// 0-RTT, nbtls as the server.

const EARLY: &str = "early data line from the client\n";

fn early_file(dir: &Path) -> PathBuf {
    let f = dir.join("early.txt");
    std::fs::write(&f, EARLY).expect("write early data");
    f
}

/// Server configs sharing one ticketer: one accepting 0-RTT, one that never
/// enabled it, one that enabled it with a zero limit.
fn early_configs() -> (ServerConfig, ServerConfig, ServerConfig) {
    let t = ticketer(21);
    let anti_replay = Arc::new(AntiReplay::new(1000));
    let base = || server_config().ticketer(Some(t.clone()));
    (
        base().early_data(16384, anti_replay.clone()),
        base(),
        base().early_data(0, anti_replay),
    )
}

fn early_data_of(s: &mut Session<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.recv_early_data(&mut buf);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn early_data_from_s_client() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("early-ossl");
    let early = early_file(&dir);
    let (accepting, never, zero) = early_configs();
    let (listener, port) = tcp_listen();
    let cases: [(&str, &ServerConfig, bool); 3] = [
        ("0-RTT enabled", &accepting, true),
        ("0-RTT not enabled", &never, false),
        ("early_data(0, ...)", &zero, false),
    ];
    for (label, second, accepted) in cases {
        // A fresh ticket from the accepting config each time (a ticket's early data
        // is accepted once).
        let sess = temp_file(&dir, "sess.pem");
        let case = format!("{label}: ticket");
        let (_, client) = s_client_round(
            &listener,
            port,
            &accepting,
            V::Tls13,
            &["-sess_out", path_str(&sess)],
            &case,
        );
        expect_output_now(&client, "Max Early Data: 16384", &case);

        let case = format!("{label}: s_client -early_data");
        let mut client = s_client(
            port,
            V::Tls13,
            "localhost",
            &["-sess_in", path_str(&sess), "-early_data", path_str(&early)],
        );
        let (mut s, r) = serve(&listener, &mut client, second);
        r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
        assert!(s.info().resumed, "{case}: resumed either way");
        assert_eq!(s.early_data_accepted(), accepted, "{case}");
        let got = early_data_of(&mut s);
        if accepted {
            assert_eq!(got, EARLY.as_bytes(), "{case}");
            expect_output(&mut client, "Early data was accepted", &case);
        } else {
            assert!(got.is_empty(), "{case}: {} bytes", got.len());
            expect_output(&mut client, "Early data was rejected", &case);
        }
        assert_eq!(openssl_reused(&client, V::Tls13), Some(true), "{case}");
        exchange(&mut s, &mut client, &case);
        peer_closes(&mut s, &mut client, &case);
    }
}

#[test]
fn early_data_from_gnutls_cli() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("early-gnutls");
    let early = early_file(&dir);
    let arg = format!("--earlydata={}", path_str(&early));
    let (accepting, never, zero) = early_configs();
    let cases: [(&str, &ServerConfig, bool); 3] = [
        ("0-RTT enabled", &accepting, true),
        ("0-RTT not enabled", &never, false),
        ("early_data(0, ...)", &zero, false),
    ];
    for (label, second, accepted) in cases {
        let case = format!("{label}: gnutls-cli --earlydata");
        let (_, mut s2, mut client) =
            gnutls_resume_round(&accepting, second, V::Tls13, &[&arg], &case);
        assert!(s2.info().resumed, "{case}");
        expect_output(&mut client, "*** This is a resumed session", &case);
        assert_eq!(s2.early_data_accepted(), accepted, "{case}");
        let got = early_data_of(&mut s2);
        if accepted {
            assert_eq!(got, EARLY.as_bytes(), "{case}");
        } else {
            assert!(got.is_empty(), "{case}: {} bytes", got.len());
        }
    }
}

// ---------------------------------------------------------------------------------
// 0-RTT, nbtls as the client.

#[test]
fn nbtls_client_early_data_to_s_server() {
    if !tools() {
        return;
    }
    let line = "nbtls early line";
    for (label, extra, accepted) in [
        ("s_server -early_data", &["-early_data"][..], true),
        // 0-RTT tickets, but it does not read early data: rejected.
        (
            "s_server -max_early_data only",
            &["-max_early_data", "16384"][..],
            false,
        ),
    ] {
        let case = label;
        let (mut server, port) = s_server(V::Tls13, extra);
        let config = client_config().early_data(true);
        let s = client_round(port, &config, &mut server, false, case);
        assert!(s.tickets_received() > 0, "{case}");

        let mut s = start_client(port, &config);
        assert!(s.early_data_left() > 0, "{case}: the ticket allows 0-RTT");
        let early = format!("{line}\n");
        assert_eq!(
            s.send_early_data(early.as_bytes()),
            Ok(early.len()),
            "{case}"
        );
        let mut s = handshake(s).unwrap_or_else(|e| panic!("{case}: {e:?}\n{}", server.dump()));
        assert!(s.info().resumed, "{case}");
        assert_eq!(s.early_data_accepted(), accepted, "{case}");
        if accepted {
            expect_output(&mut server, "Early data received:", case);
            expect_output(&mut server, line, case);
        } else {
            // Lost: sent again after the handshake.
            send_all(&mut s, early.as_bytes()).expect("resend");
            expect_output(&mut server, line, case);
            assert!(!server.output_contains("Early data received"), "{case}");
        }
        expect_output(&mut server, "Reused session-id", case);
        exchange(&mut s, &mut server, case);
    }
}

#[test]
fn nbtls_client_early_data_to_gnutls_serv() {
    if !tools() {
        return;
    }
    let prio = V::Tls13.gnutls();
    let (mut server, port) = echo_server(&["--priority", prio, "--earlydata", "-d", "4"]);
    let config = client_config().early_data(true);
    let case = "gnutls-serv --earlydata";
    client_round(port, &config, &mut server, true, case);
    let mut s = start_client(port, &config);
    assert!(s.early_data_left() > 0, "{case}: the ticket allows 0-RTT");
    assert!(s
        .send_early_data(b"nbtls early line\n")
        .is_ok_and(|n| n > 0));
    let mut s = handshake(s).unwrap_or_else(|e| panic!("{case}: {e:?}\n{}", server.dump()));
    assert!(s.info().resumed, "{case}");
    assert!(s.early_data_accepted(), "{case}\n{}", server.dump());
    expect_output(&mut server, "early data accepted", case);
    expect_output(&mut server, "END OF EARLY DATA", case);
    echo(&mut s, &server, case);

    // Another gnutls-serv process cannot open the ticket: a full handshake, the
    // early data rejected, the same data sent again in 1-RTT.
    let case = "gnutls-serv that does not know the ticket";
    let (other, other_port) = echo_server(&["--priority", prio, "--earlydata"]);
    let mut s = start_client(other_port, &config);
    let line = "nbtls early line, again\n";
    assert!(
        s.send_early_data(line.as_bytes()).is_ok_and(|n| n > 0),
        "{case}"
    );
    let mut s = handshake(s).unwrap_or_else(|e| panic!("{case}: {e:?}\n{}", other.dump()));
    assert!(!s.info().resumed, "{case}");
    assert!(!s.early_data_accepted(), "{case}");
    send_all(&mut s, line.as_bytes()).expect("resend");
    recv_until(&mut s, line).unwrap_or_else(|e| panic!("{case}: {e}\n{}", other.dump()));
}

// ---------------------------------------------------------------------------------
// A replayed first flight (ClientHello + early data, captured from s_client through
// a TCP relay) gets its early data rejected; the server still answers it with a
// full 1-RTT flight and waits for a Finished the replayer cannot produce.

/// A one-connection TCP relay to 127.0.0.1:`target` that keeps what the client
/// sent. Every socket wait is bounded.
struct Relay {
    port: u16,
    from_client: Arc<Mutex<Vec<u8>>>,
}

fn relay(target: u16) -> Relay {
    let (listener, port) = tcp_listen();
    let from_client = Arc::new(Mutex::new(Vec::new()));
    let record = from_client.clone();
    thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + TIMEOUT;
        let client = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Err(_) => return,
            }
        };
        let _ = client.set_nonblocking(false);
        let server = tcp_connect(target);
        for s in [&client, &server] {
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let _ = s.set_write_timeout(Some(TIMEOUT));
        }
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => return,
        };
        let up = thread::spawn(move || pipe(client, server, Some(record)));
        pipe(s2, c2, None);
        let _ = up.join();
    });
    Relay { port, from_client }
}

/// Copies `from` to `to` until EOF or an error, keeping a copy in `record` first.
fn pipe(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(r) = &record {
                    r.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The records up to and including the first application_data record: a TLS 1.3
/// client's first flight with early data (ClientHello, maybe a compatibility CCS,
/// the first 0-RTT record).
fn first_flight(bytes: &[u8]) -> Vec<u8> {
    let mut pos = 0;
    while pos + 5 <= bytes.len() {
        let typ = bytes[pos];
        let len = usize::from(u16::from_be_bytes([bytes[pos + 3], bytes[pos + 4]]));
        pos += 5 + len;
        if typ == 23 {
            assert!(pos <= bytes.len(), "truncated record");
            return bytes[..pos].to_vec();
        }
    }
    panic!("no application_data record in the client's bytes");
}

#[test]
fn a_replayed_first_flight_gets_its_early_data_rejected() {
    if !tools() {
        return;
    }
    let dir = common::unique_temp_dir("early-replay");
    let early = early_file(&dir);
    let (accepting, _, _) = early_configs();
    let (listener, port) = tcp_listen();
    let sess = temp_file(&dir, "sess.pem");
    let case = "ticket";
    s_client_round(
        &listener,
        port,
        &accepting,
        V::Tls13,
        &["-sess_out", path_str(&sess)],
        case,
    );

    // The real connection, through the relay: its early data is accepted.
    let case = "s_client -early_data through the relay";
    let relay = relay(port);
    let mut client = s_client(
        relay.port,
        V::Tls13,
        "localhost",
        &["-sess_in", path_str(&sess), "-early_data", path_str(&early)],
    );
    let (mut s, r) = serve(&listener, &mut client, &accepting);
    r.unwrap_or_else(|e| panic!("{case}: handshake: {e:?}\n{}", client.dump()));
    assert!(s.early_data_accepted(), "{case}");
    assert_eq!(early_data_of(&mut s), EARLY.as_bytes(), "{case}");
    exchange(&mut s, &mut client, case);
    peer_closes(&mut s, &mut client, case);
    let captured = relay
        .from_client
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let flight = first_flight(&captured);
    assert_eq!(flight[0], 22, "the flight starts with the ClientHello");
    assert_eq!(flight[5], 1, "the flight starts with the ClientHello");

    // The attacker replays it on a new connection to the same server.
    let case = "replayed first flight";
    let mut attacker = tcp_connect(port);
    attacker.write_all(&flight).expect("replay");
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{case}: accept: {e}"),
        }
    };
    stream.set_nonblocking(true).expect("nonblocking");
    let mut s =
        Session::server(Arc::new(accepting.clone()), stream, Flags::NONBLOCK).expect("session");
    attacker
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + TIMEOUT;
    // Drive the server until its answer arrived and it has nothing left to do.
    loop {
        match s.handshake() {
            Err(Error::Again) => {}
            other => panic!("{case}: the server should wait for a Finished: {other:?}"),
        }
        match attacker.read(&mut buf) {
            Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ if !answer.is_empty() => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{case}: no answer from the server"
        );
    }
    assert_eq!(s.handshake(), Err(Error::Again), "{case}: still waiting");
    assert!(s.is_handshaking(), "{case}");
    assert!(
        !s.early_data_accepted(),
        "{case}: replayed early data accepted"
    );
    assert_eq!(s.pending_early_data(), 0, "{case}");
    assert!(early_data_of(&mut s).is_empty(), "{case}");
    // A ServerHello (handshake record, message type 2), not an alert.
    assert_eq!(
        answer[0],
        22,
        "{case}: {:02x?}",
        &answer[..answer.len().min(8)]
    );
    assert_eq!(answer[5], 2, "{case}: ServerHello");
}
