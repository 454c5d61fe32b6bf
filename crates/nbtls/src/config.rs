//! Client and server configuration. A config is immutable once built,
//! `Send + Sync`, and shared by many sessions through an `Arc`.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls_pki_types::UnixTime;

use crate::codec::{NamedGroup, ProtocolVersion};
use crate::crypto::{Tls12Suite, Tls13Suite, TLS12_SUITES, TLS13_SUITES};
use crate::error::{Error, Result};
use crate::handshake::resumption::{
    AntiReplay, MemorySessionStore, ServerSessionCache, SessionStore, Ticketer,
};
use crate::x509::{
    CertifiedKey, ClientCertVerifier, NoServerVerification, ResolvesServerCert, ServerCertVerifier,
    TrustAnchors, WebPkiClientVerifier, WebPkiServerVerifier,
};

/// Clocks: monotonic time for timers and deadlines, wall-clock time for
/// certificate validity. Nothing in nbtls reads the system clock directly,
/// so tests can drive every timer.
pub trait TimeSource: Send + Sync + fmt::Debug {
    fn now(&self) -> Instant;
    fn unix_time(&self) -> UnixTime;
}

/// The system clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTimeSource;

impl TimeSource for SystemTimeSource {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_time(&self) -> UnixTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }
}

/// Receives secrets in the NSS key log format (for Wireshark).
pub trait KeyLog: Send + Sync + fmt::Debug {
    /// `label` is e.g. `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    fn log(&self, label: &str, client_random: &[u8; 32], secret: &[u8]);
}

/// Appends NSS key log lines to a file (what `SSLKEYLOGFILE` names).
#[derive(Debug)]
pub struct KeyLogFile {
    file: Mutex<std::fs::File>,
}

impl KeyLogFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::config(format!("key log file {}: {e}", path.display())))?;
        Ok(KeyLogFile {
            file: Mutex::new(file),
        })
    }

    /// The file named by `SSLKEYLOGFILE`, if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var_os("SSLKEYLOGFILE") {
            Some(p) if !p.is_empty() => Self::open(Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }
}

pub(crate) fn key_log_line(label: &str, client_random: &[u8], secret: &[u8]) -> String {
    let mut line = String::with_capacity(label.len() + 2 + 2 * (32 + secret.len()));
    line.push_str(label);
    line.push(' ');
    for b in client_random {
        line.push_str(&format!("{b:02x}"));
    }
    line.push(' ');
    for b in secret {
        line.push_str(&format!("{b:02x}"));
    }
    line.push('\n');
    line
}

impl KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8; 32], secret: &[u8]) {
        let line = key_log_line(label, client_random, secret);
        if let Ok(mut f) = self.file.lock() {
            // Key logging is a debugging aid: a failed write must not fail the session.
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Limits on what a peer may make us hold or do (DESIGN.md §4). Each is
/// enforced with a typed error and the matching alert.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest handshake message accepted (bytes, body included).
    pub max_handshake_message: usize,
    /// Most certificates accepted in a peer chain.
    pub max_certificate_chain: usize,
    /// Consecutive empty (or padding-only) records accepted.
    pub max_empty_records: u32,
    /// KeyUpdates accepted without application data in between.
    pub max_key_updates: u32,
    /// NewSessionTickets kept per connection.
    pub max_tickets: usize,
    /// DTLS: records failing authentication under one read key at which
    /// the session ends (`LimitExceeded`, RFC 9147 §4.5.3). The AEAD's own
    /// integrity limit (2^36) applies when it is lower.
    pub max_aead_failures: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_handshake_message: 64 * 1024,
            max_certificate_chain: 10,
            max_empty_records: 32,
            max_key_updates: 32,
            max_tickets: 8,
            max_aead_failures: 1 << 36,
        }
    }
}

/// What the server asks of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No CertificateRequest.
    #[default]
    None,
    /// Ask; a client without a certificate is still served.
    Request,
    /// Ask and refuse clients without a valid certificate.
    Require,
}

/// Settings both sides share.
#[derive(Clone)]
pub(crate) struct Common {
    pub suites: Vec<&'static Tls13Suite>,
    pub suites12: Vec<&'static Tls12Suite>,
    /// Refuse TLS 1.2 peers without Extended Master Secret (RFC 7627).
    pub require_ems: bool,
    pub groups: Vec<NamedGroup>,
    pub versions: Vec<ProtocolVersion>,
    pub alpn: Vec<Vec<u8>>,
    pub time: Arc<dyn TimeSource>,
    pub key_log: Option<Arc<dyn KeyLog>>,
    pub limits: Limits,
    pub read_ahead: bool,
    pub record_size_limit: Option<u16>,
    pub handshake_timeout: Option<Duration>,
    pub bye_timeout: Duration,
    pub keep_peer_certificates: bool,
    /// Records sealed under one key before an automatic KeyUpdate (capped
    /// by the AEAD's confidentiality limit, RFC 8446 §5.5).
    pub key_update_after: u64,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            suites: TLS13_SUITES.to_vec(),
            suites12: TLS12_SUITES.to_vec(),
            require_ems: false,
            groups: vec![
                NamedGroup::X25519MLKEM768,
                NamedGroup::X25519,
                NamedGroup::SECP256R1,
                NamedGroup::SECP384R1,
            ],
            versions: vec![ProtocolVersion::TLS1_3, ProtocolVersion::TLS1_2],
            alpn: Vec::new(),
            time: Arc::new(SystemTimeSource),
            key_log: None,
            limits: Limits::default(),
            read_ahead: false,
            record_size_limit: None,
            handshake_timeout: None,
            bye_timeout: Duration::from_secs(10),
            keep_peer_certificates: true,
            key_update_after: u64::MAX,
        }
    }
}

impl fmt::Debug for Common {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Common")
            .field(
                "suites",
                &self.suites.iter().map(|s| s.suite).collect::<Vec<_>>(),
            )
            .field("groups", &self.groups)
            .field("alpn", &self.alpn)
            .field("limits", &self.limits)
            .field("read_ahead", &self.read_ahead)
            .finish_non_exhaustive()
    }
}

macro_rules! common_setters {
    () => {
        /// Cipher suites to offer or accept, in preference order (TLS 1.3
        /// and TLS 1.2 suites in one list; a version left without suites is
        /// not offered).
        pub fn cipher_suites(mut self, suites: &[crate::codec::CipherSuite]) -> Result<Self> {
            let (mut v13, mut v12) = (Vec::new(), Vec::new());
            for s in suites {
                if let Some(p) = crate::crypto::tls13_suite(*s) {
                    v13.push(p);
                } else if let Some(p) = crate::crypto::tls12_suite(*s) {
                    v12.push(p);
                } else {
                    return Err(Error::config(format!("unsupported cipher suite {s}")));
                }
            }
            if v13.is_empty() && v12.is_empty() {
                return Err(Error::config("no cipher suites"));
            }
            if v13.is_empty() {
                self.common
                    .versions
                    .retain(|v| *v != ProtocolVersion::TLS1_3);
            }
            if v12.is_empty() {
                self.common
                    .versions
                    .retain(|v| *v != ProtocolVersion::TLS1_2);
            }
            if self.common.versions.is_empty() {
                return Err(Error::config(
                    "the cipher suites fit no enabled protocol version",
                ));
            }
            self.common.suites = v13;
            self.common.suites12 = v12;
            Ok(self)
        }

        /// Refuse TLS 1.2 peers that do not support Extended Master Secret
        /// (off by default, as in OpenSSL and rustls, for old peers).
        pub fn require_extended_master_secret(mut self, on: bool) -> Self {
            self.common.require_ems = on;
            self
        }

        /// Key-exchange groups, in preference order.
        pub fn groups(mut self, groups: &[NamedGroup]) -> Result<Self> {
            if groups.is_empty() {
                return Err(Error::config("no groups"));
            }
            for g in groups {
                if !crate::crypto::kx::is_supported(*g) {
                    return Err(Error::config(format!("unsupported group {g}")));
                }
            }
            self.common.groups = groups.to_vec();
            Ok(self)
        }

        /// Protocol versions to enable.
        pub fn versions(mut self, versions: &[ProtocolVersion]) -> Result<Self> {
            if versions.is_empty() {
                return Err(Error::config("no protocol versions"));
            }
            for v in versions {
                if *v != ProtocolVersion::TLS1_3 && *v != ProtocolVersion::TLS1_2 {
                    return Err(Error::config(format!("unsupported protocol version {v}")));
                }
            }
            if versions.contains(&ProtocolVersion::TLS1_3) && self.common.suites.is_empty() {
                return Err(Error::config(
                    "TLS 1.3 enabled without TLS 1.3 cipher suites",
                ));
            }
            if versions.contains(&ProtocolVersion::TLS1_2) && self.common.suites12.is_empty() {
                return Err(Error::config(
                    "TLS 1.2 enabled without TLS 1.2 cipher suites",
                ));
            }
            self.common.versions = versions.to_vec();
            Ok(self)
        }

        /// ALPN protocols, in preference order.
        pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> Result<Self> {
            let mut out = Vec::new();
            for p in protocols {
                let p = p.as_ref();
                if p.is_empty() || p.len() > 255 {
                    return Err(Error::config("ALPN protocol names must be 1 to 255 bytes"));
                }
                out.push(p.to_vec());
            }
            self.common.alpn = out;
            Ok(self)
        }

        pub fn time_source(mut self, time: Arc<dyn TimeSource>) -> Self {
            self.common.time = time;
            self
        }

        pub fn key_log(mut self, key_log: Arc<dyn KeyLog>) -> Self {
            self.common.key_log = Some(key_log);
            self
        }

        pub fn limits(mut self, limits: Limits) -> Self {
            self.common.limits = limits;
            self
        }

        /// Read more than one record per transport read (a record then costs
        /// one read, not two); `pending()` then also counts buffered records.
        pub fn read_ahead(mut self, on: bool) -> Self {
            self.common.read_ahead = on;
            self
        }

        /// Largest record we are willing to receive (RFC 8449; 64..=16385,
        /// counting the TLS 1.3 inner content type).
        pub fn record_size_limit(mut self, limit: u16) -> Result<Self> {
            if !(64..=16385).contains(&limit) {
                return Err(Error::config("record_size_limit must be 64..=16385"));
            }
            self.common.record_size_limit = Some(limit);
            Ok(self)
        }

        /// Total time a handshake may take (`TimedOut` after). Default: none.
        pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
            self.common.handshake_timeout = timeout;
            self
        }

        /// How long `bye(Shutdown::ReadWrite)` waits for the peer's close_notify.
        pub fn bye_timeout(mut self, timeout: Duration) -> Self {
            self.common.bye_timeout = timeout;
            self
        }

        /// Send a KeyUpdate after this many records under one key (default:
        /// the AEAD's usage limit, 2^24 records for AES-GCM).
        pub fn key_update_after(mut self, records: u64) -> Result<Self> {
            if records == 0 {
                return Err(Error::config("key_update_after must be at least 1"));
            }
            self.common.key_update_after = records;
            Ok(self)
        }

        /// Keep the peer's certificate chain after the handshake (default on).
        pub fn keep_peer_certificates(mut self, keep: bool) -> Self {
            self.common.keep_peer_certificates = keep;
            self
        }
    };
}

/// Configuration of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) common: Common,
    pub(crate) verifier: Arc<dyn ServerCertVerifier>,
    pub(crate) client_cert: Option<Arc<CertifiedKey>>,
    /// Groups the first ClientHello carries key shares for.
    pub(crate) key_share_groups: Vec<NamedGroup>,
    pub(crate) middlebox_compat: bool,
    pub(crate) session_store: Option<Arc<dyn SessionStore>>,
    pub(crate) early_data: bool,
    /// DTLS-SRTP profiles offered (RFC 5764), in our order.
    pub(crate) srtp_profiles: Vec<crate::codec::SrtpProtectionProfile>,
}

impl ClientConfig {
    /// A client that verifies servers against `anchors`.
    pub fn new(anchors: TrustAnchors) -> Self {
        Self::with_verifier(Arc::new(WebPkiServerVerifier::new(anchors)))
    }

    /// A client that trusts the PEM certificates in `path`.
    pub fn with_trust_file(path: &Path) -> Result<Self> {
        Ok(Self::new(TrustAnchors::from_pem_file(path)?))
    }

    /// A client that trusts the system's certificate store.
    pub fn with_system_trust() -> Result<Self> {
        Ok(Self::new(TrustAnchors::system()?))
    }

    /// A client with its own verifier (pinning, WebRTC fingerprints, ...).
    pub fn with_verifier(verifier: Arc<dyn ServerCertVerifier>) -> Self {
        ClientConfig {
            common: Common::default(),
            verifier,
            client_cert: None,
            key_share_groups: vec![NamedGroup::X25519MLKEM768, NamedGroup::X25519],
            middlebox_compat: true,
            session_store: Some(Arc::new(MemorySessionStore::new(256))),
            early_data: false,
            srtp_profiles: Vec::new(),
        }
    }

    /// A client that accepts any server certificate. Only for testing.
    pub fn insecure() -> Self {
        Self::with_verifier(Arc::new(NoServerVerification))
    }

    /// The certificate to present when the server asks for one.
    pub fn client_certificate(mut self, key: Arc<CertifiedKey>) -> Self {
        self.client_cert = Some(key);
        self
    }

    /// Groups to send key shares for in the first ClientHello (each must
    /// also be in `groups`). Others are reached through HelloRetryRequest.
    pub fn key_share_groups(mut self, groups: &[NamedGroup]) -> Result<Self> {
        if groups.iter().any(|g| !self.common.groups.contains(g)) {
            return Err(Error::config(
                "key share groups must be among the enabled groups",
            ));
        }
        self.key_share_groups = groups.to_vec();
        Ok(self)
    }

    /// Where sessions to resume are kept (default: 256 in memory, shared
    /// by every session of this config); `None` disables resumption.
    pub fn session_store(mut self, store: Option<Arc<dyn SessionStore>>) -> Self {
        self.session_store = store;
        self
    }

    /// Offer 0-RTT early data when resuming a session that allows it (off
    /// by default: early data can be replayed, RFC 8446 §8).
    pub fn early_data(mut self, on: bool) -> Self {
        self.early_data = on;
        self
    }

    /// DTLS only: offer these SRTP protection profiles in the use_srtp
    /// extension (RFC 5764 §4.1.1), with an empty MKI; empty (the default)
    /// offers none. The profile the server picks is
    /// `Session::srtp_profile()`.
    pub fn srtp_profiles(mut self, profiles: &[crate::codec::SrtpProtectionProfile]) -> Self {
        self.srtp_profiles = profiles.to_vec();
        self
    }

    /// Middlebox compatibility mode (RFC 8446 §D.4), on by default.
    pub fn middlebox_compat(mut self, on: bool) -> Self {
        self.middlebox_compat = on;
        self
    }

    common_setters!();

    /// The groups to send shares for: configured ones still enabled, else
    /// the first enabled group.
    pub(crate) fn initial_share_groups(&self) -> Vec<NamedGroup> {
        let v: Vec<NamedGroup> = self
            .key_share_groups
            .iter()
            .copied()
            .filter(|g| self.common.groups.contains(g))
            .collect();
        if v.is_empty() {
            self.common.groups.iter().take(1).copied().collect()
        } else {
            v
        }
    }
}

/// Configuration of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) common: Common,
    pub(crate) certs: Arc<dyn ResolvesServerCert>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    pub(crate) pause_after_client_hello: bool,
    pub(crate) ticketer: Option<Arc<Ticketer>>,
    pub(crate) send_tickets: usize,
    pub(crate) session_cache: Option<Arc<ServerSessionCache>>,
    pub(crate) max_early_data: u32,
    pub(crate) anti_replay: Option<Arc<AntiReplay>>,
    pub(crate) dtls_cookies: Option<Arc<crate::handshake::dtls::cookie::CookieSecret>>,
    /// DTLS-SRTP profiles we accept, most preferred first (RFC 5764).
    pub(crate) srtp_profiles: Vec<crate::codec::SrtpProtectionProfile>,
}

impl ServerConfig {
    /// A server presenting one certificate.
    pub fn new(cert: Arc<CertifiedKey>) -> Self {
        Self::with_resolver(Arc::new(cert))
    }

    /// A server that picks its certificate per ClientHello (SNI, schemes).
    pub fn with_resolver(certs: Arc<dyn ResolvesServerCert>) -> Self {
        ServerConfig {
            common: Common::default(),
            certs,
            client_auth: ClientAuth::None,
            client_verifier: None,
            pause_after_client_hello: false,
            ticketer: Ticketer::new().ok().map(Arc::new),
            send_tickets: 2,
            session_cache: Some(Arc::new(ServerSessionCache::new(1024))),
            max_early_data: 0,
            anti_replay: None,
            dtls_cookies: crate::handshake::dtls::cookie::CookieSecret::new(Duration::from_secs(
                300,
            ))
            .ok()
            .map(Arc::new),
            srtp_profiles: Vec::new(),
        }
    }

    /// A server from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self> {
        Ok(Self::new(Arc::new(CertifiedKey::from_pem_files(
            cert, key,
        )?)))
    }

    /// Ask clients for certificates, verified against `anchors`.
    pub fn client_auth(mut self, mode: ClientAuth, anchors: TrustAnchors) -> Self {
        self.client_auth = mode;
        self.client_verifier = Some(Arc::new(WebPkiClientVerifier::new(anchors)));
        self
    }

    /// Ask clients for certificates, verified by `verifier`.
    pub fn client_verifier(
        mut self,
        mode: ClientAuth,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Self {
        self.client_auth = mode;
        self.client_verifier = Some(verifier);
        self
    }

    /// The ticket sealer (default: a random key, this process only); share
    /// one built with `Ticketer::with_secret` across a fleet. `None`
    /// disables resumption.
    pub fn ticketer(mut self, ticketer: Option<Arc<Ticketer>>) -> Self {
        self.ticketer = ticketer;
        self
    }

    /// TLS 1.2 resumption by session id: the cache (default 1024 sessions,
    /// this config only); `None` gives no session ids.
    pub fn session_cache(mut self, cache: Option<Arc<ServerSessionCache>>) -> Self {
        self.session_cache = cache;
        self
    }

    /// Accept up to `max` bytes of 0-RTT early data (0, the default, refuses
    /// it), with `anti_replay` rejecting replayed ClientHellos. Tickets
    /// issued from then on allow early data.
    pub fn early_data(mut self, max: u32, anti_replay: Arc<AntiReplay>) -> Self {
        self.max_early_data = max;
        self.anti_replay = Some(anti_replay);
        self
    }

    /// DTLS: answer ClientHellos without a valid cookie with a
    /// HelloVerifyRequest (on by default); `None` turns the exchange off.
    pub fn dtls_cookies(
        mut self,
        secret: Option<Arc<crate::handshake::dtls::cookie::CookieSecret>>,
    ) -> Self {
        self.dtls_cookies = secret;
        self
    }

    /// DTLS only: the SRTP protection profiles we accept, most preferred
    /// first. A client's use_srtp is answered with the first of these it
    /// offers (RFC 5764 §4.1.1); with none in common, or this list empty
    /// (the default), the extension is not answered.
    pub fn srtp_profiles(mut self, profiles: &[crate::codec::SrtpProtectionProfile]) -> Self {
        self.srtp_profiles = profiles.to_vec();
        self
    }

    /// TLS 1.3 NewSessionTickets sent after each full or resumed handshake
    /// (default 2).
    pub fn tickets(mut self, count: usize) -> Self {
        self.send_tickets = count;
        self
    }

    /// Pause `handshake()` with `Error::ClientHelloPaused` after the
    /// ClientHello is parsed (GnuTLS's post-client-hello callback).
    pub fn pause_after_client_hello(mut self, on: bool) -> Self {
        self.pause_after_client_hello = on;
        self
    }

    common_setters!();
}
