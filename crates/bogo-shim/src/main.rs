//! The BoGo shim: BoringSSL's test runner (`ssl/test/runner`, built by
//! `scripts/bogo`) starts this binary once per test with bssl_shim-style
//! flags. It connects back to the runner, identifies itself with the
//! 8-byte little-endian `-shim-id`, and runs one TLS connection per
//! `-resume-count` + 1, echoing application data XORed with 0xff as
//! `bssl_shim.cc` does. Exit codes follow the protocol: 0 success,
//! 1 failure (the reason on stderr, matched against the runner's expected
//! error through `bogo/config.json`'s ErrorMap), 89 for a flag this shim
//! does not implement.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::exit;
use std::sync::Arc;
use std::time::Duration;

use nbtls::codec::{AlertDescription, NamedGroup, ProtocolVersion};
use nbtls::x509::verify::{ClientCertVerifier, ServerCertVerifier};
use nbtls::{
    CertifiedKey, ClientAuth, ClientConfig, Error, Flags, Limits, ServerConfig, Session, Shutdown,
    Transport, TrustAnchors,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

const UNIMPLEMENTED: i32 = 89;

#[derive(Default, Debug)]
struct Opts {
    port: u16,
    shim_id: u64,
    ipv6: bool,
    server: bool,
    key_file: Option<String>,
    cert_file: Option<String>,
    trust_cert: Option<String>,
    verify_peer: bool,
    resume_count: u32,
    async_io: bool,
    min_version: Option<u16>,
    max_version: Option<u16>,
    expect_version: Option<u16>,
    alpn_protos: Option<Vec<Vec<u8>>>,
    select_alpn: Option<Vec<u8>>,
    expect_alpn: Option<Vec<u8>>,
    host_name: Option<String>,
    expect_server_name: Option<String>,
    shim_writes_first: bool,
    shim_shuts_down: bool,
    check_close_notify: bool,
    curves: Vec<u16>,
    expect_curve_id: Option<u16>,
    expect_peer_sigalg: Option<u16>,
    expect_session_miss: bool,
    expect_no_peer_cert: bool,
    expect_hrr: Option<bool>,
    no_tls13: bool,
    no_tls12: bool,
    verify_fail: bool,
    require_any_client_cert: bool,
    max_cert_list: Option<usize>,
}

fn unimplemented(what: &str) -> ! {
    eprintln!("bogo-shim: unimplemented: {what}");
    // scripts/bogo tallies these to pick the next flags to implement.
    if let Some(path) = std::env::var_os("BOGO_UNIMPLEMENTED_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(f, "{what}");
        }
    }
    exit(UNIMPLEMENTED);
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("bogo-shim: {msg}");
    exit(1);
}

/// bssl_shim's `-alpn-protos` value: the wire form, length-prefixed names.
fn parse_alpn_wire(v: &str) -> Vec<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let n = b[i] as usize;
        if i + 1 + n > b.len() {
            fail("malformed -alpn-protos");
        }
        out.push(b[i + 1..i + 1 + n].to_vec());
        i += 1 + n;
    }
    out
}

fn parse_args() -> Opts {
    let mut o = Opts::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let mut value = || -> String {
            i += 1;
            args.get(i)
                .cloned()
                .unwrap_or_else(|| fail(format!("{flag} needs a value")))
        };
        let num = |s: String| -> u64 {
            s.parse()
                .unwrap_or_else(|_| fail(format!("{flag}: bad number {s:?}")))
        };
        match flag {
            "-port" => o.port = num(value()) as u16,
            "-shim-id" => o.shim_id = num(value()),
            "-ipv6" => o.ipv6 = true,
            "-server" => o.server = true,
            "-key-file" => o.key_file = Some(value()),
            "-cert-file" => o.cert_file = Some(value()),
            "-trust-cert" => o.trust_cert = Some(value()),
            "-verify-peer" => o.verify_peer = true,
            "-resume-count" => o.resume_count = num(value()) as u32,
            "-async" => o.async_io = true,
            "-min-version" => o.min_version = Some(num(value()) as u16),
            "-max-version" => o.max_version = Some(num(value()) as u16),
            "-expect-version" => o.expect_version = Some(num(value()) as u16),
            "-alpn-protos" | "-advertise-alpn" => o.alpn_protos = Some(parse_alpn_wire(&value())),
            "-select-alpn" => o.select_alpn = Some(value().into_bytes()),
            "-expect-alpn" => o.expect_alpn = Some(value().into_bytes()),
            "-host-name" => o.host_name = Some(value()),
            "-expect-server-name" => o.expect_server_name = Some(value()),
            "-shim-writes-first" => o.shim_writes_first = true,
            "-shim-shuts-down" => o.shim_shuts_down = true,
            "-check-close-notify" => o.check_close_notify = true,
            // BoringSSL's curve flag repeats, one group id per occurrence.
            "-curves" => o.curves.push(num(value()) as u16),
            "-expect-curve-id" => o.expect_curve_id = Some(num(value()) as u16),
            "-expect-peer-signature-algorithm" => o.expect_peer_sigalg = Some(num(value()) as u16),
            "-expect-session-miss" => o.expect_session_miss = true,
            "-expect-no-peer-cert" => o.expect_no_peer_cert = true,
            "-expect-hrr" => o.expect_hrr = Some(true),
            "-expect-no-hrr" => o.expect_hrr = Some(false),
            "-verify-fail" => o.verify_fail = true,
            "-require-any-client-certificate" => o.require_any_client_cert = true,
            "-max-cert-list" => o.max_cert_list = Some(num(value()) as usize),
            "-no-tls13" => o.no_tls13 = true,
            "-no-tls12" => o.no_tls12 = true,
            // Versions nbtls never speaks: disabling them changes nothing.
            "-no-tls1" | "-no-tls11" | "-no-ssl3" => {}
            other => unimplemented(other),
        }
        i += 1;
    }
    o
}

/// `-async`: every other transport call reports WouldBlock, so the
/// session's resumable (`Error::Again`) paths run on every step.
struct Flaky<'a> {
    tcp: &'a mut TcpStream,
    block_next: bool,
}

impl Flaky<'_> {
    fn tick(&mut self) -> io::Result<()> {
        self.block_next = !self.block_next;
        if self.block_next {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    }
}

impl Transport for Flaky<'_> {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tick()?;
        self.tcp.push(data)
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tick()?;
        self.tcp.pull(buf)
    }
}

/// Retries a session call while it reports a resumable result. Async
/// WouldBlocks are synthetic (the socket is blocking), so retrying at once
/// is correct; a bound keeps a stuck session from spinning forever.
fn retry<R>(mut f: impl FnMut() -> nbtls::Result<R>) -> nbtls::Result<R> {
    for _ in 0..10_000_000u32 {
        match f() {
            Err(Error::Again | Error::Interrupted) => continue,
            r => return r,
        }
    }
    Err(Error::TimedOut)
}

fn versions(o: &Opts) -> Vec<ProtocolVersion> {
    let lo = o.min_version.unwrap_or(0);
    let hi = o.max_version.unwrap_or(u16::MAX);
    let v: Vec<ProtocolVersion> = [ProtocolVersion::TLS1_3, ProtocolVersion::TLS1_2]
        .into_iter()
        .filter(|v| (lo..=hi).contains(&v.0))
        .filter(|v| !(o.no_tls13 && *v == ProtocolVersion::TLS1_3))
        .filter(|v| !(o.no_tls12 && *v == ProtocolVersion::TLS1_2))
        .collect();
    if v.is_empty() {
        unimplemented("version range without TLS 1.2 or 1.3");
    }
    v
}

/// nbtls refusing a configuration (a key type or group it lacks) means the
/// test needs a feature it does not have: report unimplemented.
fn cfg<T>(r: nbtls::Result<T>) -> T {
    r.unwrap_or_else(|e| unimplemented(&format!("config: {e}")))
}

fn certified_key(o: &Opts) -> Option<Arc<CertifiedKey>> {
    match (&o.cert_file, &o.key_file) {
        (Some(c), Some(k)) => Some(Arc::new(cfg(CertifiedKey::from_pem_files(
            c.as_ref(),
            k.as_ref(),
        )))),
        (None, None) => None,
        _ => unimplemented("-cert-file without -key-file or the reverse"),
    }
}

fn groups(o: &Opts) -> Option<Vec<NamedGroup>> {
    if o.curves.is_empty() {
        return None;
    }
    let g: Vec<NamedGroup> = o.curves.iter().map(|&c| NamedGroup(c)).collect();
    if g.iter().any(|g| g.name().is_none()) {
        unimplemented("-curves with a group nbtls does not know");
    }
    Some(g)
}

/// bssl_shim's verify callback: accept any chain, or (`-verify-fail`)
/// reject every one; the handshake signatures are still checked.
#[derive(Debug)]
struct ShimVerifier {
    fail: bool,
}

impl ShimVerifier {
    fn result(&self) -> nbtls::Result<()> {
        if self.fail {
            Err(Error::Protocol {
                // What bssl_shim's failing callback yields in BoringSSL.
                alert: AlertDescription::HANDSHAKE_FAILURE,
                reason: ":CERTIFICATE_VERIFY_FAILED: -verify-fail: the callback rejects".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl ServerCertVerifier for ShimVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _now: UnixTime,
    ) -> nbtls::Result<()> {
        self.result()
    }
}

impl ClientCertVerifier for ShimVerifier {
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> nbtls::Result<()> {
        self.result()
    }
}

enum Configs {
    Client(Arc<ClientConfig>),
    Server(Arc<ServerConfig>),
}

/// BoringSSL bounds a peer's chain by bytes (`-max-cert-list`, 100 KiB by
/// default), not by count; the runner sends chains of 50 certificates.
fn limits(o: &Opts) -> Limits {
    let mut l = Limits {
        max_certificate_chain: 128,
        ..Limits::default()
    };
    if let Some(n) = o.max_cert_list {
        l.max_handshake_message = n;
    }
    l
}

fn build_configs(o: &Opts) -> Configs {
    let vers = versions(o);
    if o.server {
        if o.alpn_protos.is_some() {
            unimplemented("-alpn-protos on a server");
        }
        let key = certified_key(o).unwrap_or_else(|| unimplemented("server without -cert-file"));
        let mut c = cfg(ServerConfig::new(key).versions(&vers)).limits(limits(o));
        if o.verify_peer || o.require_any_client_cert {
            let mode = if o.require_any_client_cert {
                ClientAuth::Require
            } else {
                ClientAuth::Request
            };
            let v = Arc::new(ShimVerifier {
                fail: o.verify_fail,
            });
            c = c.client_verifier(mode, v);
        }
        if let Some(g) = groups(o) {
            c = cfg(c.groups(&g));
        }
        if let Some(p) = &o.select_alpn {
            c = cfg(c.alpn(&[p]));
        }
        Configs::Server(Arc::new(c))
    } else {
        if o.select_alpn.is_some() || o.expect_server_name.is_some() {
            unimplemented("server-only flag on a client");
        }
        let mut c = match &o.trust_cert {
            Some(path) if o.verify_peer && !o.verify_fail => {
                ClientConfig::new(cfg(TrustAnchors::from_pem_file(path.as_ref())))
            }
            // bssl_shim's certificate callback accepts unless -verify-fail;
            // signatures are checked either way.
            _ => ClientConfig::with_verifier(Arc::new(ShimVerifier {
                fail: o.verify_fail,
            })),
        };
        c = cfg(c.versions(&vers)).limits(limits(o));
        if let Some(g) = groups(o) {
            // bssl_shim offers a key share for the first preference only.
            c = cfg(cfg(c.groups(&g)).key_share_groups(&g[..1]));
        }
        if let Some(k) = certified_key(o) {
            c = c.client_certificate(k);
        }
        if let Some(p) = &o.alpn_protos {
            c = cfg(c.alpn(p));
        }
        Configs::Client(Arc::new(c))
    }
}

fn connect(o: &Opts) -> TcpStream {
    let addr = if o.ipv6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, o.port))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, o.port))
    };
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| fail(format!("connect: {e}")));
    let _ = tcp.set_nodelay(true);
    // The runner's own idle timeout is 15 s; do not outlive it.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    tcp.write_all(&o.shim_id.to_le_bytes())
        .unwrap_or_else(|e| fail(format!("sending shim id: {e}")));
    tcp
}

fn run_connection<T: Transport>(
    o: &Opts,
    s: &mut Session<T>,
    is_resume: bool,
) -> nbtls::Result<()> {
    retry(|| s.handshake())?;
    let info = s.info();
    if is_resume && info.resumed == o.expect_session_miss {
        fail(format!(
            "session resumed: {}, expected the opposite",
            info.resumed
        ));
    }
    // BoringSSL reports a resumed session's group and peer signature scheme
    // from the original handshake; nbtls reports what this handshake did,
    // and a TLS 1.2 resumption (or a TLS 1.3 psk_ke one) does neither. So
    // on a resumption without them there is nothing to compare.
    let carried_over = |v: bool| is_resume && info.resumed && !v;
    if let Some(want) = o
        .expect_curve_id
        .filter(|_| !carried_over(info.group.is_some()))
    {
        if info.group.map(|g| g.0) != Some(want) {
            fail(format!("group {:?}, expected {want}", info.group));
        }
    }
    if let Some(want) = o
        .expect_peer_sigalg
        .filter(|_| !carried_over(info.peer_signature_scheme.is_some()))
    {
        if info.peer_signature_scheme.map(|g| g.0) != Some(want) {
            fail(format!(
                "peer signature scheme {:?}, expected {want}",
                info.peer_signature_scheme
            ));
        }
    }
    if o.expect_no_peer_cert && !info.peer_certificates.is_empty() {
        fail("the peer sent a certificate, expected none");
    }
    if let Some(want) = o.expect_hrr {
        if info.hello_retry != want {
            fail(format!(
                "HelloRetryRequest: {}, expected {want}",
                info.hello_retry
            ));
        }
    }
    if let Some(want) = o.expect_version {
        let got = s.protocol_version().map(|v| v.0);
        if got != Some(want) {
            fail(format!("version {got:?}, expected {want}"));
        }
    }
    if let Some(want) = &o.expect_alpn {
        if s.alpn_protocol() != Some(want.as_slice()) {
            fail(format!(
                "ALPN {:?}, expected {:?}",
                s.alpn_protocol().map(String::from_utf8_lossy),
                String::from_utf8_lossy(want)
            ));
        }
    }
    if let Some(want) = &o.expect_server_name {
        if s.server_name() != Some(want.as_str()) {
            fail(format!(
                "server name {:?}, expected {want:?}",
                s.server_name()
            ));
        }
    }
    if o.shim_writes_first {
        write_all(s, b"hello")?;
    }
    if !o.shim_shuts_down {
        // 512-byte reads, as bssl_shim does, so records span reads.
        let mut buf = [0u8; 512];
        loop {
            let n = retry(|| s.recv(&mut buf))?;
            if n == 0 {
                break;
            }
            for b in &mut buf[..n] {
                *b ^= 0xff;
            }
            write_all(s, &buf[..n])?;
        }
        // bssl_shim insists a TLS 1.3 client got a ticket to cache.
        if !o.server
            && s.protocol_version() == Some(ProtocolVersion::TLS1_3)
            && s.tickets_received() == 0
        {
            fail("new session was not cached, but we expected the opposite");
        }
        // The peer closed first: answer its close_notify.
        let _ = retry(|| s.bye(Shutdown::Write));
    } else if o.check_close_notify {
        retry(|| s.bye(Shutdown::ReadWrite))?;
    } else {
        retry(|| s.bye(Shutdown::Write))?;
    }
    Ok(())
}

fn write_all<T: Transport>(s: &mut Session<T>, mut data: &[u8]) -> nbtls::Result<()> {
    while !data.is_empty() {
        let n = retry(|| s.send(data))?;
        data = &data[n..];
    }
    Ok(())
}

/// The error line the runner matches: nbtls's message plus a stable
/// BoringSSL-style token (`:ALERT_NAME:` for the alert nbtls sent,
/// `:REMOTE_ALERT_NAME:` for one received) that ErrorMap entries target.
fn report(e: &Error) -> ! {
    let token = match e {
        Error::Protocol { alert, .. } | Error::LimitExceeded { alert, .. } => {
            format!(":{}:", alert.name().unwrap_or("UNKNOWN_ALERT"))
        }
        Error::AlertReceived(a) => format!(":REMOTE_{}:", a.name().unwrap_or("UNKNOWN_ALERT")),
        Error::PrematureTermination => ":PREMATURE_TERMINATION:".into(),
        Error::Transport { .. } => ":TRANSPORT:".into(),
        Error::TimedOut => ":TIMED_OUT:".into(),
        _ => ":OTHER:".into(),
    };
    fail(format!("{token} {e}"));
}

fn main() {
    // The runner asks this before generating its split-handshake tests.
    if std::env::args().any(|a| a == "-is-handshaker-supported") {
        println!("No");
        return;
    }
    let o = parse_args();
    let configs = build_configs(&o);
    // Without -host-name bssl_shim sends no SNI; an IP-literal name does the same.
    let name = o.host_name.clone().unwrap_or_else(|| "127.0.0.1".into());
    for i in 0..=o.resume_count {
        let mut tcp = connect(&o);
        let result = if o.async_io {
            let t = Flaky {
                tcp: &mut tcp,
                block_next: false,
            };
            drive(&o, &configs, &name, t, i > 0)
        } else {
            drive(&o, &configs, &name, &mut tcp, i > 0)
        };
        if let Err(e) = result {
            linger(&mut tcp);
            report(&e);
        }
    }
}

/// After a failure, half-close and drain before exiting: closing a socket
/// with unread input resets it, and the runner would see ECONNRESET
/// instead of the alert nbtls sent.
fn linger(tcp: &mut TcpStream) {
    use std::io::Read;
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
}

fn drive<T: Transport>(
    o: &Opts,
    c: &Configs,
    name: &str,
    t: T,
    is_resume: bool,
) -> nbtls::Result<()> {
    // -async runs the non-blocking contract; otherwise the blocking one.
    let flags = if o.async_io {
        Flags::NONBLOCK
    } else {
        Flags::NONE
    };
    let mut s = match c {
        Configs::Client(c) => Session::client(c.clone(), name, t, flags)?,
        Configs::Server(c) => Session::server(c.clone(), t, flags)?,
    };
    if !o.check_close_notify {
        // bssl_shim stops reading on a clean or an unclean shutdown alike.
        s.set_eof_is_close(true);
    }
    run_connection(o, &mut s, is_resume)
}
