//! The BoGo shim: BoringSSL's test runner (`ssl/test/runner`, built by
//! `scripts/bogo`) starts this binary once per test with bssl_shim-style
//! flags. It connects back to the runner, identifies itself with the
//! 8-byte little-endian `-shim-id`, and runs one TLS connection (or, with
//! `-dtls`, one DTLS 1.2 connection over the runner's packet stream, see
//! "DTLS" below) per `-resume-count` + 1, echoing application data XORed with 0xff as
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

use nbtls::codec::{AlertDescription, NamedGroup, ProtocolVersion, SignatureScheme};
use nbtls::x509::verify::{ClientCertVerifier, ServerCertVerifier};
use nbtls::{
    AntiReplay, CertifiedKey, ClientAuth, ClientConfig, ClientSession, Error, Flags, Limits,
    MemorySessionStore, ServerConfig, ServerSessionCache, Session, SessionStore, Shutdown,
    TimeSource, Transport,
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
    /// `-verify-fail` on any connection (set by main).
    verify_fail_any: bool,
    require_any_client_cert: bool,
    max_cert_list: Option<usize>,
    dtls: bool,
    mtu: Option<usize>,
    expect_verify_result: bool,
    implicit_handshake: bool,
    export_keying_material: usize,
    export_label: String,
    export_context: String,
    use_export_context: bool,
    verify_prefs: Vec<u16>,
    signing_prefs: Vec<u16>,
    enable_early_data: bool,
    expect_accept_early_data: bool,
    expect_reject_early_data: bool,
    expect_early_data_reason: Option<String>,
    expect_ticket_supports_early_data: bool,
    old_client_cert_callback: bool,
    expect_session_id: Option<bool>,
    expect_advertised_alpn: Option<Vec<u8>>,
    expect_no_offer_early_data: bool,
    resumption_delay: u64,
    custom_verify: bool,
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

/// Flags that may carry bssl_shim's `-on-initial-` / `-on-resume-` prefix:
/// the per-connection checks and the verify callback's verdict. A prefixed
/// flag that shapes the configuration (built once) is unimplemented.
const PER_CONNECTION: &[&str] = &[
    "-verify-fail",
    "-expect-curve-id",
    "-expect-peer-signature-algorithm",
    "-expect-session-miss",
    "-expect-no-peer-cert",
    "-expect-hrr",
    "-expect-no-hrr",
    "-expect-version",
    "-expect-alpn",
    "-expect-server-name",
    "-expect-verify-result",
    "-shim-writes-first",
    "-expect-accept-early-data",
    "-expect-reject-early-data",
    "-expect-early-data-reason",
    "-expect-ticket-supports-early-data",
    "-expect-no-offer-early-data",
];

/// Which connection's options to read: bssl_shim's `-on-initial-`,
/// `-on-resume-` and `-on-retry-` (a client's 1-RTT retry after its 0-RTT
/// was rejected) prefixes pick flags for one of them.
#[derive(Clone, Copy, PartialEq)]
enum Conn {
    Initial,
    Resume,
    Retry,
}

/// The options for one connection. Prefixed flags for the others are read
/// and dropped.
fn parse_args(conn: Conn) -> Opts {
    let mut o = Opts::default();
    let mut other = Opts::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let prefixed = [
            ("-on-initial-", Conn::Initial),
            ("-on-resume-", Conn::Resume),
            ("-on-retry-", Conn::Retry),
        ]
        .into_iter()
        .find_map(|(p, c)| args[i].strip_prefix(p).map(|rest| (rest, c)));
        let (flag, mine) = match prefixed {
            Some((rest, c)) => {
                let base = format!("-{rest}");
                if !PER_CONNECTION.contains(&base.as_str()) {
                    unimplemented(&args[i]);
                }
                (base, c == conn)
            }
            None => (args[i].clone(), true),
        };
        let o = if mine { &mut o } else { &mut other };
        let flag = flag.as_str();
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
            // Trust-anchor negotiation only: bssl_shim's verify callback
            // stands in for chain validation.
            "-trust-cert" => drop(value()),
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
            "-dtls" => o.dtls = true,
            "-mtu" => o.mtu = Some(num(value()) as usize),
            "-expect-verify-result" => o.expect_verify_result = true,
            "-implicit-handshake" => o.implicit_handshake = true,
            "-export-keying-material" => o.export_keying_material = num(value()) as usize,
            "-export-label" => o.export_label = value(),
            "-export-context" => o.export_context = value(),
            "-use-export-context" => o.use_export_context = true,
            // Repeats, one scheme per occurrence, most preferred first.
            "-verify-prefs" => o.verify_prefs.push(num(value()) as u16),
            "-signing-prefs" => o.signing_prefs.push(num(value()) as u16),
            "-enable-early-data" => o.enable_early_data = true,
            "-use-old-client-cert-callback" => o.old_client_cert_callback = true,
            "-expect-session-id" => o.expect_session_id = Some(true),
            "-expect-advertised-alpn" => o.expect_advertised_alpn = Some(value().into_bytes()),
            "-expect-no-offer-early-data" => o.expect_no_offer_early_data = true,
            "-resumption-delay" => o.resumption_delay = num(value()),
            "-expect-no-session-id" => o.expect_session_id = Some(false),
            "-expect-accept-early-data" => o.expect_accept_early_data = true,
            "-expect-reject-early-data" => o.expect_reject_early_data = true,
            "-expect-early-data-reason" => o.expect_early_data_reason = Some(value()),
            "-expect-ticket-supports-early-data" => o.expect_ticket_supports_early_data = true,
            "-use-custom-verify-callback" => o.custom_verify = true,
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

/// What the shim does when a session call reports a resumable result:
/// over TCP the WouldBlocks are synthetic (`-async`; the socket blocks), so
/// it retries at once; over the runner's DTLS packet stream it blocks for the
/// runner's next command (a datagram, a clock step, an MTU).
type Wait<'w, T> = &'w mut dyn FnMut(&mut Session<T>) -> nbtls::Result<()>;

/// Retries `f` while it reports a resumable result; a bound keeps a stuck
/// session from spinning forever.
fn retry<T: Transport, R>(
    s: &mut Session<T>,
    wait: Wait<'_, T>,
    mut f: impl FnMut(&mut Session<T>) -> nbtls::Result<R>,
) -> nbtls::Result<R> {
    for _ in 0..10_000_000u32 {
        match f(s) {
            Err(Error::Again | Error::Interrupted) => wait(s)?,
            r => return r,
        }
    }
    Err(Error::TimedOut)
}

fn versions(o: &Opts) -> Vec<ProtocolVersion> {
    if o.dtls {
        // DTLS version numbers count down: 0xfeff is 1.0, 0xfefd 1.2, 0xfefc
        // 1.3. nbtls speaks DTLS 1.2, configured as TLS 1.2.
        let d12 = ProtocolVersion::DTLS1_2.0;
        let newest = o.max_version.unwrap_or(0);
        let oldest = o.min_version.unwrap_or(u16::MAX);
        if (newest != 0 && newest > d12) || oldest < d12 || o.no_tls12 {
            unimplemented("DTLS version range without DTLS 1.2");
        }
        return vec![ProtocolVersion::TLS1_2];
    }
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
    let mut key = match (&o.cert_file, &o.key_file) {
        (Some(c), Some(k)) => cfg(CertifiedKey::from_pem_files(c.as_ref(), k.as_ref())),
        (None, None) => {
            if !o.signing_prefs.is_empty() {
                unimplemented("-signing-prefs without a certificate");
            }
            return None;
        }
        _ => unimplemented("-cert-file without -key-file or the reverse"),
    };
    check_signing_prefs(o, &key);
    // bssl_shim's legacy client_cert_cb hands over the leaf alone (nbtls,
    // like it, sends a client certificate only when asked).
    if !o.server && o.old_client_cert_callback {
        key.chain.truncate(1);
    }
    Some(Arc::new(key))
}

/// `-signing-prefs`: nbtls signs with the first of its own schemes for the
/// key that the peer offers, and has no knob to narrow or reorder them.
/// The flag is taken only when it changes nothing: for every version in
/// use, the preferences BoringSSL could apply to this key are exactly
/// nbtls's schemes, in nbtls's order.
fn check_signing_prefs(o: &Opts, key: &CertifiedKey) {
    if o.signing_prefs.is_empty() {
        return;
    }
    for v in versions(o) {
        let tls13 = v == ProtocolVersion::TLS1_3;
        let ours = key.key.schemes(tls13);
        let applicable: Vec<SignatureScheme> = o
            .signing_prefs
            .iter()
            .map(|&p| SignatureScheme(p))
            .filter(|&s| scheme_fits_key(s, key.key.kind(), tls13))
            .collect();
        if applicable != ours {
            unimplemented("-signing-prefs other than nbtls's own choice for the key");
        }
    }
}

/// Whether BoringSSL could sign with `s` using a key of this kind (RSA
/// keys are rsaEncryption: no rsa_pss_pss schemes).
fn scheme_fits_key(s: SignatureScheme, kind: nbtls::x509::KeyKind, tls13: bool) -> bool {
    use nbtls::x509::KeyKind;
    let (hash, sig) = (s.0 >> 8, s.0 & 0xff);
    match kind {
        KeyKind::Rsa => (0x0804..=0x0806).contains(&s.0) || (!tls13 && sig == 0x01 && hash != 0x08),
        // TLS 1.3 ties an ECDSA scheme to its curve; TLS 1.2 takes any hash.
        KeyKind::EcdsaP256 if tls13 => s == SignatureScheme::ECDSA_SECP256R1_SHA256,
        KeyKind::EcdsaP384 if tls13 => s == SignatureScheme::ECDSA_SECP384R1_SHA384,
        KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => sig == 0x03 && hash != 0x08,
        KeyKind::Ed25519 => s == SignatureScheme::ED25519,
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

/// The current connection's `-verify-fail` (set before each connection:
/// the flag may differ between the first one and resumptions).
static VERIFY_FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The last verify callback's verdict (`SSL_get_verify_result`): a
/// resumption that skips the callback keeps the session's.
static VERIFY_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// bssl_shim's verify callback: accept any chain, or (`-verify-fail`)
/// reject every one; the handshake signatures are still checked. It
/// replaces chain validation in bssl_shim too (`-trust-cert` only feeds
/// trust-anchor negotiation there).
#[derive(Debug)]
struct ShimVerifier {
    /// `-use-custom-verify-callback`: BoringSSL's custom callback fails
    /// with certificate_unknown, the legacy X509 one with handshake_failure.
    custom: bool,
    /// A client without `-verify-peer` (SSL_VERIFY_NONE): a rejection is
    /// only recorded, the handshake goes on.
    soft: bool,
    /// `-verify-prefs`: the schemes offered and accepted.
    prefs: Option<Vec<SignatureScheme>>,
}

impl ShimVerifier {
    fn new(o: &Opts) -> Self {
        let prefs = (!o.verify_prefs.is_empty()).then(|| {
            let p: Vec<SignatureScheme> =
                o.verify_prefs.iter().map(|&v| SignatureScheme(v)).collect();
            if p.iter()
                .any(|s| !nbtls::x509::SUPPORTED_TLS12_SCHEMES.contains(s))
            {
                unimplemented("-verify-prefs with a scheme nbtls cannot verify");
            }
            p
        });
        ShimVerifier {
            custom: o.custom_verify,
            soft: !o.server && !o.verify_peer,
            prefs,
        }
    }

    fn schemes(&self) -> &[SignatureScheme] {
        self.prefs
            .as_deref()
            .unwrap_or(nbtls::x509::SUPPORTED_TLS13_SCHEMES)
    }

    /// nbtls checks a TLS 1.2 peer's scheme against all it supports; the
    /// verifier narrows that to `-verify-prefs`.
    fn check_scheme(&self, scheme: SignatureScheme) -> nbtls::Result<()> {
        if self.prefs.as_ref().is_none_or(|p| p.contains(&scheme)) {
            Ok(())
        } else {
            Err(Error::Protocol {
                alert: AlertDescription::ILLEGAL_PARAMETER,
                reason: format!("the peer signed with {scheme}, not in -verify-prefs").into(),
            })
        }
    }

    fn result(&self) -> nbtls::Result<()> {
        let reject = VERIFY_FAIL.load(std::sync::atomic::Ordering::SeqCst);
        VERIFY_FAILED.store(reject, std::sync::atomic::Ordering::SeqCst);
        if reject && !self.soft {
            Err(Error::Protocol {
                // What bssl_shim's failing callback yields in BoringSSL.
                alert: if self.custom {
                    AlertDescription::CERTIFICATE_UNKNOWN
                } else {
                    AlertDescription::HANDSHAKE_FAILURE
                },
                reason: ":CERTIFICATE_VERIFY_FAILED: -verify-fail: the callback rejects".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl ShimVerifier {
    /// A handshake signature, both roles: the scheme must be one of
    /// `-verify-prefs`, then the signature must verify.
    fn signature(
        &self,
        tls13: bool,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> nbtls::Result<()> {
        self.check_scheme(scheme)?;
        if tls13 {
            nbtls::x509::verify_tls13_signature(scheme, end_entity, message, signature)
        } else {
            nbtls::x509::verify_tls12_signature(scheme, end_entity, message, signature)
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

    fn verify_tls13_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> nbtls::Result<()> {
        self.signature(true, scheme, end_entity, message, signature)
    }

    fn verify_tls12_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> nbtls::Result<()> {
        self.signature(false, scheme, end_entity, message, signature)
    }

    fn supported_schemes(&self) -> &[SignatureScheme] {
        self.schemes()
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

    fn verify_tls13_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> nbtls::Result<()> {
        self.signature(true, scheme, end_entity, message, signature)
    }

    fn verify_tls12_signature(
        &self,
        scheme: SignatureScheme,
        end_entity: &CertificateDer<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> nbtls::Result<()> {
        self.signature(false, scheme, end_entity, message, signature)
    }

    fn supported_schemes(&self) -> &[SignatureScheme] {
        self.schemes()
    }
}

/// The client's session store, remembering whether the newest ticket
/// allows 0-RTT (`-expect-ticket-supports-early-data`).
#[derive(Debug)]
struct ShimStore {
    inner: MemorySessionStore,
    last_allows_early_data: std::sync::atomic::AtomicBool,
}

impl SessionStore for ShimStore {
    fn put(&self, server_name: &str, session: ClientSession) {
        self.last_allows_early_data.store(
            session.max_early_data() > 0,
            std::sync::atomic::Ordering::SeqCst,
        );
        self.inner.put(server_name, session);
    }
    fn take(&self, server_name: &str) -> Option<ClientSession> {
        self.inner.take(server_name)
    }
}

/// The server's session-id cache, watched for `-expect-session-id`.
fn server_cache() -> &'static Arc<ServerSessionCache> {
    static CACHE: std::sync::OnceLock<Arc<ServerSessionCache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Arc::new(ServerSessionCache::new(1024)))
}

static STORE: std::sync::OnceLock<Arc<ShimStore>> = std::sync::OnceLock::new();

fn store() -> &'static Arc<ShimStore> {
    STORE.get_or_init(|| {
        Arc::new(ShimStore {
            inner: MemorySessionStore::new(16),
            last_allows_early_data: false.into(),
        })
    })
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

fn build_configs(o: &Opts, clock: &Arc<ShimClock>) -> Configs {
    let vers = versions(o);
    // DTLS: the runner's clock drives retransmissions, and only the runner
    // decides when the peer has gone quiet.
    let dtls_time = o.dtls.then(|| clock.clone() as Arc<dyn TimeSource>);
    // TLS too runs on the shim's clock, as bssl_shim's does, so that
    // -resumption-delay can age tickets.
    let tls_time = (!o.dtls).then(|| clock.clone() as Arc<dyn TimeSource>);
    if o.server {
        if o.alpn_protos.is_some() {
            unimplemented("-alpn-protos on a server");
        }
        let key = certified_key(o).unwrap_or_else(|| unimplemented("server without -cert-file"));
        let mut c = cfg(ServerConfig::new(key).versions(&vers)).limits(limits(o));
        if let Some(t) = &dtls_time {
            c = c.time_source(t.clone()).handshake_timeout(None);
        }
        if let Some(t) = &tls_time {
            c = c.time_source(t.clone());
        }
        if o.verify_peer || o.require_any_client_cert {
            let mode = if o.require_any_client_cert {
                ClientAuth::Require
            } else {
                ClientAuth::Request
            };
            let v = Arc::new(ShimVerifier::new(o));
            c = c.client_verifier(mode, v);
        }
        if let Some(g) = groups(o) {
            c = cfg(c.groups(&g));
        }
        if let Some(p) = &o.select_alpn {
            c = cfg(c.alpn(&[p]));
        }
        c = c.session_cache(Some(server_cache().clone()));
        // bssl_shim checks the offered ALPN list in its select callback;
        // nbtls shows the ClientHello while paused after it.
        if o.expect_advertised_alpn.is_some() {
            c = c.pause_after_client_hello(true);
        }
        if o.enable_early_data {
            // BoringSSL's cap on accepted early data.
            c = c.early_data(14336, Arc::new(AntiReplay::new(1024)));
        }
        Configs::Server(Arc::new(c))
    } else {
        if o.select_alpn.is_some() || o.expect_server_name.is_some() {
            unimplemented("server-only flag on a client");
        }
        let mut c = ClientConfig::with_verifier(Arc::new(ShimVerifier::new(o)));
        c = cfg(c.versions(&vers)).limits(limits(o));
        if let Some(t) = &dtls_time {
            c = c.time_source(t.clone()).handshake_timeout(None);
        }
        if let Some(t) = &tls_time {
            c = c.time_source(t.clone());
        }
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
        c = c
            .session_store(Some(store().clone() as Arc<dyn SessionStore>))
            .early_data(o.enable_early_data);
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

/// The options of a client's 1-RTT retry after its 0-RTT was rejected.
static RETRY: std::sync::OnceLock<Opts> = std::sync::OnceLock::new();

fn run_connection<T: Transport>(
    mut o: &Opts,
    s: &mut Session<T>,
    wait: Wait<'_, T>,
    is_resume: bool,
) -> nbtls::Result<()> {
    // bssl_shim's client writes its first message as 0-RTT data when it
    // can, up to the ticket's limit; the rest waits for the handshake.
    let mut early_sent = 0;
    if !o.server && o.enable_early_data && o.shim_writes_first {
        match s.send_early_data(b"hello") {
            Ok(n) => early_sent = n,
            // Not resuming a session that allows 0-RTT.
            Err(Error::InvalidRequest(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if is_resume && o.expect_no_offer_early_data && s.early_data_left() > 0 {
        fail("Client unexpectedly offered early data.");
    }
    // A paused server (see -expect-advertised-alpn) resumes at once; a
    // HelloRetryRequest pauses it a second time.
    let mut pauses = 0;
    loop {
        match retry(s, wait, |s| s.handshake()) {
            Err(Error::ClientHelloPaused) if pauses < 2 => {
                pauses += 1;
                check_advertised_alpn(o, s);
            }
            r => break r?,
        }
    }
    if !o.server && is_resume && o.expect_reject_early_data {
        if s.early_data_accepted() {
            fail("0-RTT exchange unexpected succeeded.");
        }
        // nbtls retries at 1-RTT by itself; bssl_shim goes on with the
        // -on-retry- options, as a new connection would.
        o = RETRY.get().unwrap_or(o);
    }
    // nbtls has no implicit handshake (its `send`/`recv` need a finished
    // one), so `-implicit-handshake` still runs it here, but, as bssl_shim
    // does, skips the post-handshake checks.
    if !o.implicit_handshake {
        check_handshake(o, s, is_resume);
    }
    if o.export_keying_material > 0 {
        let context = if o.use_export_context {
            o.export_context.as_bytes()
        } else {
            b""
        };
        // nbtls's TLS 1.2 exporter reads an empty context as none (RFC 5705
        // tells them apart); in TLS 1.3 they are the same.
        if o.use_export_context
            && context.is_empty()
            && s.protocol_version() != Some(ProtocolVersion::TLS1_3)
        {
            unimplemented("-use-export-context with an empty TLS 1.2 context");
        }
        let mut out = vec![0u8; o.export_keying_material];
        s.export_keying_material(o.export_label.as_bytes(), context, &mut out)?;
        write_all(s, wait, &out)?;
    }
    if o.shim_writes_first {
        // Accepted 0-RTT already carried the start of the first message.
        let skip = if s.early_data_accepted() {
            early_sent
        } else {
            0
        };
        write_all(s, wait, &b"hello"[skip..])?;
    }
    if !o.shim_shuts_down {
        // 512-byte reads, as bssl_shim does, so records span reads; a DTLS
        // read takes one whole record.
        let mut buf = vec![0u8; if o.dtls { 16384 } else { 512 }];
        // Accepted 0-RTT data is read first, as SSL_read returns it.
        loop {
            let n = s.recv_early_data(&mut buf);
            if n == 0 {
                break;
            }
            for b in &mut buf[..n] {
                *b ^= 0xff;
            }
            write_all(s, wait, &buf[..n])?;
        }
        loop {
            let n = match retry(s, wait, |s| s.recv(&mut buf)) {
                // The runner closed the DTLS packet stream without a
                // close_notify: the datagram peer is simply gone.
                Err(Error::PrematureTermination) if o.dtls => 0,
                r => r?,
            };
            if n == 0 {
                break;
            }
            for b in &mut buf[..n] {
                *b ^= 0xff;
            }
            write_all(s, wait, &buf[..n])?;
        }
        // bssl_shim insists a TLS 1.3 client got a ticket to cache.
        if !o.server && s.protocol_version() == Some(ProtocolVersion::TLS1_3) {
            if s.tickets_received() == 0 {
                fail("new session was not cached, but we expected the opposite");
            }
            let got = store()
                .last_allows_early_data
                .load(std::sync::atomic::Ordering::SeqCst);
            if got != o.expect_ticket_supports_early_data {
                fail(format!(
                    "new session did{} support early data, but we expected the opposite",
                    if got { "" } else { " not" }
                ));
            }
        }
        // The peer closed first: answer its close_notify.
        let _ = retry(s, wait, |s| s.bye(Shutdown::Write));
    } else if o.check_close_notify {
        retry(s, wait, |s| s.bye(Shutdown::ReadWrite))?;
    } else {
        retry(s, wait, |s| s.bye(Shutdown::Write))?;
    }
    Ok(())
}

/// `-expect-advertised-alpn`: the client's ALPN list in wire form, when it
/// sent one (bssl_shim's select callback runs only then).
fn check_advertised_alpn<T: Transport>(o: &Opts, s: &Session<T>) {
    let (Some(want), Some(offered)) = (
        &o.expect_advertised_alpn,
        s.client_hello().and_then(|h| h.alpn()),
    ) else {
        return;
    };
    let mut wire = Vec::new();
    for p in offered {
        wire.push(p.len() as u8);
        wire.extend_from_slice(p);
    }
    if &wire != want {
        fail("bad ALPN select callback inputs.");
    }
}

/// bssl_shim's CheckHandshakeProperties, for what nbtls reports.
fn check_handshake<T: Transport>(o: &Opts, s: &Session<T>, is_resume: bool) {
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
        // An empty -expect-alpn means none.
        if s.alpn_protocol().unwrap_or_default() != want.as_slice() {
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
    // bssl_shim expects X509_V_ERR_APPLICATION_VERIFICATION under
    // -verify-fail, else X509_V_OK.
    if o.expect_verify_result
        && VERIFY_FAILED.load(std::sync::atomic::Ordering::SeqCst) != o.verify_fail
    {
        fail("Wrong certificate verification result");
    }
    // The 0-RTT verdict (bssl_shim skips it over DTLS).
    if !o.dtls {
        let accepted = s.early_data_accepted();
        if (o.expect_accept_early_data && !accepted) || (o.expect_reject_early_data && accepted) {
            fail(format!(
                "Early data was{} accepted, but we expected the opposite",
                if accepted { "" } else { " not" }
            ));
        }
        if let Some(want) = &o.expect_early_data_reason {
            let got = early_data_reason(o, s);
            if got != want {
                fail(format!("Early data reason was {got:?}, expected {want:?}"));
            }
        }
    }
    // The first connection's session was cached statefully (by id) or not.
    if let (Some(want), false) = (o.expect_session_id, is_resume) {
        let got = !server_cache().is_empty();
        if got != want {
            fail(if want {
                "session was not cached on the server."
            } else {
                "session was unexpectedly cached on the server."
            });
        }
    }
}

/// BoringSSL's SSL_get_early_data_reason, for the cases nbtls's session
/// tells apart; the others (ticket age, ALPN, cipher mismatches, ...) are
/// unimplemented.
fn early_data_reason<T: Transport>(o: &Opts, s: &Session<T>) -> &'static str {
    if s.early_data_accepted() {
        "accept"
    } else if !o.enable_early_data {
        "disabled"
    } else if s.protocol_version() != Some(ProtocolVersion::TLS1_3) {
        "protocol_version"
    } else if s.info().resumed && s.info().hello_retry {
        "hello_retry_request"
    } else {
        unimplemented("-expect-early-data-reason for a 0-RTT refusal nbtls does not explain")
    }
}

fn write_all<T: Transport>(
    s: &mut Session<T>,
    wait: Wait<'_, T>,
    mut data: &[u8],
) -> nbtls::Result<()> {
    while !data.is_empty() {
        let n = retry(s, wait, |s| s.send(data))?;
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
    let mut first = parse_args(Conn::Initial);
    let resumed = parse_args(Conn::Resume);
    let _ = RETRY.set(parse_args(Conn::Retry));
    // The runner wants half-RTT data (and tickets) before the client's
    // Finished; nbtls sends application data only after the handshake.
    if first.server && first.enable_early_data && resumed.expect_accept_early_data {
        unimplemented("0-RTT accept on a server (half-RTT data)");
    }
    first.verify_fail_any = first.verify_fail || resumed.verify_fail;
    let clock = Arc::new(ShimClock::new());
    let configs = build_configs(&first, &clock);
    // Without -host-name bssl_shim sends no SNI; an IP-literal name does the same.
    let name = first
        .host_name
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    for i in 0..=first.resume_count {
        let o = if i == 0 { &first } else { &resumed };
        VERIFY_FAIL.store(o.verify_fail, std::sync::atomic::Ordering::SeqCst);
        let mut tcp = connect(o);
        let result = if o.dtls {
            let mut p = Packets::new(&mut tcp);
            drive_dtls(o, &configs, &name, &mut p, &clock, i > 0)
        } else if o.async_io {
            let t = Flaky {
                tcp: &mut tcp,
                block_next: false,
            };
            drive(o, &configs, &name, t, i > 0)
        } else {
            drive(o, &configs, &name, &mut tcp, i > 0)
        };
        if let Err(e) = result {
            linger(&mut tcp);
            report(&e);
        }
        clock.advance(o.resumption_delay.saturating_mul(1_000_000_000));
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

fn session<T: Transport>(c: &Configs, name: &str, t: T, flags: Flags) -> nbtls::Result<Session<T>> {
    match c {
        Configs::Client(c) => Session::client(c.clone(), name, t, flags),
        Configs::Server(c) => Session::server(c.clone(), t, flags),
    }
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
    let mut s = session(c, name, t, flags)?;
    if !o.check_close_notify {
        // bssl_shim stops reading on a clean or an unclean shutdown alike.
        s.set_eof_is_close(true);
    }
    run_connection(o, &mut s, &mut |_| Ok(()), is_resume)
}

// ---- DTLS over the runner's packet stream ---------------------------------
//
// With -dtls the TCP connection carries opcodes (ssl/test/runner/
// packet_adapter.go): 'P' + u32 length + a datagram, either way; from the
// runner also 'T' + u64 ns (advance the clock as if a read timed out; answer
// 't' before anything else), 'M' + u32 (the MTU), 'E' + u64 ns (the next
// retransmission must be due in exactly that long; u64::MAX: none) and 'U' +
// u32 ms (the initial retransmission timeout). The session runs
// non-blocking; whenever it would block, the shim reads the next command.

/// The shim's clock: real time frozen at start, moved only by the runner.
#[derive(Debug)]
struct ShimClock {
    start: std::time::Instant,
    unix: std::time::SystemTime,
    offset_ns: std::sync::atomic::AtomicU64,
}

impl ShimClock {
    fn new() -> Self {
        ShimClock {
            start: std::time::Instant::now(),
            unix: std::time::SystemTime::now(),
            offset_ns: 0.into(),
        }
    }
    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_ns.load(std::sync::atomic::Ordering::SeqCst))
    }
    fn advance(&self, ns: u64) {
        self.offset_ns
            .fetch_add(ns, std::sync::atomic::Ordering::SeqCst);
    }
}

impl TimeSource for ShimClock {
    fn now(&self) -> std::time::Instant {
        self.start + self.offset()
    }
    fn unix_time(&self) -> UnixTime {
        let t = (self.unix + self.offset())
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixTime::since_unix_epoch(t)
    }
}

/// The runner's packet stream as a datagram transport: pushes are framed
/// 'P' packets; pulls take datagrams the shim has read (`command`) or
/// would block.
struct Packets<'a> {
    tcp: &'a mut TcpStream,
    inbox: std::collections::VecDeque<Vec<u8>>,
}

enum Command {
    Packet,
    Timeout(u64),
    Mtu(u32),
    ExpectTimeout(u64),
    InitialTimeout,
}

impl<'a> Packets<'a> {
    fn new(tcp: &'a mut TcpStream) -> Self {
        Packets {
            tcp,
            inbox: Default::default(),
        }
    }

    fn read_exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        use std::io::Read;
        let mut b = [0u8; N];
        self.tcp.read_exact(&mut b)?;
        Ok(b)
    }

    /// Blocks for the runner's next command; a datagram goes to the inbox.
    fn command(&mut self) -> io::Result<Command> {
        let [op] = self.read_exact::<1>()?;
        Ok(match op {
            b'P' => {
                use std::io::Read;
                let n = u32::from_be_bytes(self.read_exact::<4>()?) as usize;
                let mut d = vec![0u8; n];
                self.tcp.read_exact(&mut d)?;
                self.inbox.push_back(d);
                Command::Packet
            }
            b'T' => Command::Timeout(u64::from_be_bytes(self.read_exact::<8>()?)),
            b'M' => Command::Mtu(u32::from_be_bytes(self.read_exact::<4>()?)),
            b'E' => Command::ExpectTimeout(u64::from_be_bytes(self.read_exact::<8>()?)),
            b'U' => {
                self.read_exact::<4>()?;
                Command::InitialTimeout
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown packet-stream opcode {other:#x}"),
                ))
            }
        })
    }
}

impl Transport for Packets<'_> {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut frame = Vec::with_capacity(5 + data.len());
        frame.push(b'P');
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        self.tcp.write_all(&frame)?;
        Ok(data.len())
    }
    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inbox.pop_front() {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

fn transport_error(e: &io::Error) -> Error {
    Error::Transport {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// One runner command, applied to the session.
fn dtls_wait(s: &mut Session<&mut Packets<'_>>, clock: &ShimClock) -> nbtls::Result<()> {
    let cmd = match s.transport_mut().command() {
        Ok(c) => c,
        // The runner closed the stream: the peer is gone.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(Error::PrematureTermination)
        }
        Err(e) => return Err(transport_error(&e)),
    };
    match cmd {
        Command::Packet => {}
        Command::Timeout(ns) => {
            clock.advance(ns);
            // The ack comes first: the runner fails a test whose shim sends
            // anything before picking up the timeout.
            s.transport_mut()
                .tcp
                .write_all(b"t")
                .map_err(|e| transport_error(&e))?;
            s.handle_timeout()?;
        }
        Command::Mtu(n) => s.set_mtu(n as usize),
        Command::ExpectTimeout(ns) => {
            let want = (ns != u64::MAX).then(|| Duration::from_nanos(ns));
            if s.timeout() != want {
                fail(format!(
                    "next DTLS timeout {:?}, expected {want:?}",
                    s.timeout()
                ));
            }
        }
        Command::InitialTimeout => {
            unimplemented("runner opcode U (initial DTLS retransmission timeout)")
        }
    }
    Ok(())
}

fn drive_dtls(
    o: &Opts,
    c: &Configs,
    name: &str,
    p: &mut Packets<'_>,
    clock: &ShimClock,
    is_resume: bool,
) -> nbtls::Result<()> {
    let mut s = session(c, name, p, Flags::NONBLOCK | Flags::DATAGRAM)?;
    if let Some(mtu) = o.mtu {
        s.set_mtu(mtu);
    }
    run_connection(o, &mut s, &mut |s| dtls_wait(s, clock), is_resume)
}
