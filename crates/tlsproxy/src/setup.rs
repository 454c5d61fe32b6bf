//! Start-up: turns the command line into checked settings (TLS configs,
//! addresses, limits) before any connection is accepted. Every problem here
//! is one line for the user and a non-zero exit.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nbtls::codec::ProtocolVersion;
use nbtls::x509::{PrivateKeyDer, SigningKey};
use nbtls::{CertifiedKey, ClientAuth, ClientConfig, KeyLogFile, ServerConfig, TrustAnchors};
use rustls_pki_types::{CertificateDer, DnsName, ServerName};
use tracing::{debug, info, warn};

use crate::cli::{protocol_name, split_host_port, Args};

/// Which side speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain on the listening side, TLS toward the upstream.
    Client,
    /// TLS on the listening side, plain toward the upstream.
    Server,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Client => "client",
            Mode::Server => "server",
        }
    }
}

/// The TLS half of the settings. (A datagram variant joins these when
/// DTLS lands: the loop only asks the connection to start a session.)
pub enum Tls {
    Client {
        config: Arc<ClientConfig>,
        server_name: String,
    },
    Server {
        config: Arc<ServerConfig>,
    },
}

/// Everything an event loop needs, shared by all loops.
pub struct Settings {
    pub mode: Mode,
    pub tls: Tls,
    pub upstream: SocketAddr,
    pub max_conns_per_loop: usize,
    pub idle_timeout: Option<Duration>,
    /// Bounds the upstream TCP connect and the TLS handshake.
    pub handshake_timeout: Duration,
    pub drain_timeout: Duration,
    pub buffer_size: usize,
}

/// Start-up messages, logged only once every check passed, so that bad
/// input prints nothing but its one error line.
#[derive(Default)]
pub struct Notes(Vec<(bool, String)>);

impl Notes {
    fn info(&mut self, msg: String) {
        self.0.push((false, msg));
    }
    fn warn(&mut self, msg: String) {
        self.0.push((true, msg));
    }
    pub fn emit(self) {
        for (is_warn, msg) in self.0 {
            if is_warn {
                warn!("{msg}");
            } else {
                info!("{msg}");
            }
        }
    }
}

/// A start-up failure: printed as one line.
#[derive(Debug)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fatal(msg: impl Into<String>) -> Fatal {
    Fatal(msg.into())
}

/// nbtls config errors without the "configuration error: " prefix (the
/// message already names the file).
fn tls_err(what: &str, e: nbtls::Error) -> Fatal {
    match e {
        nbtls::Error::Config(why) => fatal(format!("{what}: {why}")),
        other => fatal(format!("{what}: {other}")),
    }
}

/// Raises the open-files soft limit to the hard limit; returns the new
/// soft limit.
pub fn raise_nofile_limit(notes: &mut Notes) -> u64 {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(0);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            if now != before {
                debug!("open-files limit raised from {before} to {now}");
            }
            now
        }
        Err(e) => {
            notes.warn(format!(
                "cannot raise the open-files limit (staying at {before}): {e}"
            ));
            before
        }
    }
}

/// Descriptors kept back for listeners, epoll, signal pipes, stdio, files.
const RESERVED_FDS: u64 = 64;

pub fn build(args: &Args, nofile: u64, loops: usize, notes: &mut Notes) -> Result<Settings, Fatal> {
    let mode = if args.server {
        Mode::Server
    } else {
        Mode::Client
    };
    let (listen_host, _) =
        split_host_port(&args.listen).map_err(|e| fatal(format!("--listen {e}")))?;
    let (up_host, up_port) =
        split_host_port(&args.connect).map_err(|e| fatal(format!("--connect {e}")))?;

    let tls = match mode {
        Mode::Client => client_tls(args, &up_host, notes)?,
        Mode::Server => server_tls(args, &listen_host, notes)?,
    };

    let fd_budget = nofile.saturating_sub(RESERVED_FDS) / 2;
    let max_conns = match args.max_conns {
        Some(n) => {
            if n > fd_budget {
                notes.warn(format!(
                    "--max-conns {n} exceeds what the open-files limit ({nofile}) allows (about {fd_budget}); \
                     accepts will pause when descriptors run out"
                ));
            }
            n
        }
        None => fd_budget.max(1),
    };
    let per_loop = usize::try_from(max_conns.div_ceil(loops as u64)).unwrap_or(usize::MAX);

    let upstream = probe_upstream(&up_host, up_port, args.handshake_timeout)?;
    let idle = (!args.idle_timeout.is_zero()).then_some(args.idle_timeout);
    notes.info(format!(
        "mode {} ({}, {}), upstream {} ({}), max-conns {} ({} per loop), open-files limit {}",
        mode.name(),
        match mode {
            Mode::Client => "plain in, TLS out",
            Mode::Server => "TLS in, plain out",
        },
        protocols(args)
            .iter()
            .map(|v| protocol_name(*v))
            .collect::<Vec<_>>()
            .join("+"),
        args.connect,
        upstream,
        max_conns,
        per_loop,
        nofile
    ));
    Ok(Settings {
        mode,
        tls,
        upstream,
        max_conns_per_loop: per_loop.max(1),
        idle_timeout: idle,
        handshake_timeout: args.handshake_timeout,
        drain_timeout: args.drain_timeout,
        buffer_size: args.buffer_size as usize,
    })
}

/// `--protocols` without repeats, in the order given; default: both.
fn protocols(args: &Args) -> Vec<ProtocolVersion> {
    if args.protocols.is_empty() {
        return vec![ProtocolVersion::TLS1_3, ProtocolVersion::TLS1_2];
    }
    let mut v: Vec<ProtocolVersion> = Vec::new();
    for p in &args.protocols {
        if !v.contains(p) {
            v.push(*p);
        }
    }
    v
}

fn key_log(notes: &mut Notes) -> Result<Option<Arc<KeyLogFile>>, Fatal> {
    let kl = KeyLogFile::from_env().map_err(|e| tls_err("SSLKEYLOGFILE", e))?;
    if kl.is_some() {
        notes.warn(
            "SSLKEYLOGFILE is set: TLS secrets are written to it (anyone who reads it can decrypt the traffic)"
                .into(),
        );
    }
    Ok(kl.map(Arc::new))
}

fn alpn_list(args: &Args) -> Result<Vec<Vec<u8>>, Fatal> {
    args.alpn
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 255 {
                Err(fatal(format!(
                    "--alpn: protocol names must be 1 to 255 bytes, got {p:?}"
                )))
            } else {
                Ok(p.as_bytes().to_vec())
            }
        })
        .collect()
}

/// `--cert`/`--key` as a pair; either alone names a file holding both.
fn cert_key_pair<'a>(
    cert: Option<&'a Path>,
    key: Option<&'a Path>,
) -> Option<(&'a Path, &'a Path)> {
    match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (Some(c), None) => Some((c, c)),
        (None, Some(k)) => Some((k, k)),
        (None, None) => None,
    }
}

fn load_pair(cert: &Path, key: &Path, what: &str) -> Result<CertifiedKey, Fatal> {
    for (p, name) in [(cert, "certificate"), (key, "key")] {
        std::fs::File::open(p).map_err(|e| {
            fatal(format!(
                "{what}: cannot read {name} file {}: {e}",
                p.display()
            ))
        })?;
    }
    CertifiedKey::from_pem_files(cert, key).map_err(|e| tls_err(what, e))
}

fn client_tls(args: &Args, up_host: &str, notes: &mut Notes) -> Result<Tls, Fatal> {
    if args.save_cert.is_some() {
        return Err(fatal(
            "--save-cert only applies to --server without --cert/--key",
        ));
    }
    let name = args.hostname.clone().unwrap_or_else(|| up_host.to_string());
    ServerName::try_from(name.clone()).map_err(|_| {
        fatal(format!(
            "{name:?} is not a valid host name or IP address for SNI and verification (use -H)"
        ))
    })?;

    let mut cfg = if args.insecure {
        notes.warn(format!(
            "--insecure: the upstream's certificate is NOT verified (no chain, name or expiry check){}; \
             anyone between here and {} can impersonate it and read or change the traffic",
            if args.cacert.is_some() { ", --cacert is ignored" } else { "" },
            args.connect
        ));
        ClientConfig::insecure()
    } else if let Some(ca) = &args.cacert {
        ClientConfig::with_trust_file(ca).map_err(|e| tls_err("--cacert", e))?
    } else {
        ClientConfig::with_system_trust()
            .map_err(|e| tls_err("system trust store (give --cacert FILE)", e))?
    };
    if let Some((c, k)) = client_cert_files(args)? {
        cfg = cfg.client_certificate(Arc::new(load_pair(c, k, "client certificate")?));
    }
    let alpn = alpn_list(args)?;
    if !alpn.is_empty() {
        cfg = cfg.alpn(&alpn).map_err(|e| tls_err("--alpn", e))?;
    }
    cfg = cfg
        .versions(&protocols(args))
        .map_err(|e| tls_err("--protocols", e))?;
    if let Some(kl) = key_log(notes)? {
        cfg = cfg.key_log(kl);
    }
    cfg = cfg
        .read_ahead(true)
        .handshake_timeout(Some(args.handshake_timeout));
    notes.info(format!(
        "verifying the upstream as {name:?} against {}",
        if args.insecure {
            "nothing (--insecure)".to_string()
        } else if let Some(ca) = &args.cacert {
            ca.display().to_string()
        } else {
            "the system trust store".to_string()
        }
    ));
    Ok(Tls::Client {
        config: Arc::new(cfg),
        server_name: name,
    })
}

fn client_cert_files(args: &Args) -> Result<Option<(&Path, &Path)>, Fatal> {
    let short = cert_key_pair(args.cert.as_deref(), args.key.as_deref());
    let long = match (&args.client_cert, &args.client_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    match (short, long) {
        (Some(_), Some(_)) => Err(fatal(
            "give the client certificate once: -C/-K or --client-cert/--client-key",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn server_tls(args: &Args, listen_host: &str, notes: &mut Notes) -> Result<Tls, Fatal> {
    if args.insecure {
        return Err(fatal(
            "--insecure only applies to client mode (it turns off upstream certificate verification)",
        ));
    }
    if args.client_cert.is_some() || args.client_key.is_some() {
        return Err(fatal(
            "--client-cert/--client-key only apply to client mode",
        ));
    }
    let key = match cert_key_pair(args.cert.as_deref(), args.key.as_deref()) {
        Some((c, k)) => {
            if args.save_cert.is_some() {
                return Err(fatal(
                    "--save-cert only applies to a generated certificate (no --cert/--key)",
                ));
            }
            let ck = load_pair(c, k, "--cert/--key")?;
            notes.info(format!(
                "serving the certificate from {} (SHA-256 fingerprint {})",
                c.display(),
                hex(&ck.fingerprint())
            ));
            ck
        }
        None => {
            let names = generated_names(listen_host, args.hostname.as_deref());
            let (ck, pem) = self_signed(&names)?;
            if let Some(path) = &args.save_cert {
                std::fs::write(path, &pem)
                    .map_err(|e| fatal(format!("--save-cert {}: {e}", path.display())))?;
            }
            notes.info(format!(
                "generated a self-signed P-256 certificate for {}; SHA-256 fingerprint {}",
                names.join(", "),
                hex(&ck.fingerprint())
            ));
            ck
        }
    };
    let mut cfg = ServerConfig::new(Arc::new(key));
    if let Some(ca) = &args.cacert {
        let anchors = TrustAnchors::from_pem_file(ca).map_err(|e| tls_err("--cacert", e))?;
        cfg = cfg.client_auth(ClientAuth::Require, anchors);
        notes.info(format!(
            "requiring client certificates issued by {}",
            ca.display()
        ));
    }
    let alpn = alpn_list(args)?;
    if !alpn.is_empty() {
        cfg = cfg.alpn(&alpn).map_err(|e| tls_err("--alpn", e))?;
    }
    cfg = cfg
        .versions(&protocols(args))
        .map_err(|e| tls_err("--protocols", e))?;
    if let Some(kl) = key_log(notes)? {
        cfg = cfg.key_log(kl);
    }
    cfg = cfg
        .read_ahead(true)
        .handshake_timeout(Some(args.handshake_timeout));
    Ok(Tls::Server {
        config: Arc::new(cfg),
    })
}

/// Subject names for the generated certificate: the listen address (an IP
/// SAN for an IP, a DNS SAN for a name); a wildcard address means every
/// local name: localhost, 127.0.0.1, ::1 and the host name.
pub fn generated_names(listen_host: &str, extra: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    match listen_host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
            if let Some(h) = host_name() {
                names.push(h);
            }
        }
        Ok(ip) => names.push(ip.to_string()),
        Err(_) => names.push(listen_host.to_ascii_lowercase()),
    }
    if let Some(e) = extra {
        names.push(e.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    names
}

fn host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let h = raw.trim().to_ascii_lowercase();
    (!h.is_empty() && DnsName::try_from(h.as_str()).is_ok()).then_some(h)
}

fn self_signed(names: &[String]) -> Result<(CertifiedKey, String), Fatal> {
    let err = |e: rcgen::Error| fatal(format!("generating a certificate: {e}"));
    for n in names {
        if n.parse::<IpAddr>().is_err() && DnsName::try_from(n.as_str()).is_err() {
            return Err(fatal(format!(
                "cannot generate a certificate for {n:?}: not a DNS name or IP address"
            )));
        }
    }
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tlsproxy self-signed");
    let cert = params.self_signed(&key_pair).map_err(err)?;
    let der = CertificateDer::from(cert.der().to_vec());
    let key = PrivateKeyDer::try_from(key_pair.serialize_der())
        .map_err(|e| fatal(format!("generated key: {e}")))?;
    let signing = SigningKey::from_der(&key).map_err(|e| tls_err("generated key", e))?;
    let ck =
        CertifiedKey::new(vec![der], signing).map_err(|e| tls_err("generated certificate", e))?;
    Ok((ck, cert.pem()))
}

/// Resolves the upstream once and checks that it accepts connections, so
/// a typo fails at start rather than on every client.
fn probe_upstream(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, Fatal> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fatal(format!("--connect: cannot resolve {host:?}: {e}")))?
        .collect();
    let mut last: Option<io::Error> = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout.min(Duration::from_secs(10))) {
            Ok(_) => return Ok(*addr),
            Err(e) => last = Some(e),
        }
    }
    Err(fatal(format!(
        "upstream {host}:{port} unreachable: {}",
        last.map_or_else(|| "no addresses".to_string(), |e| e.to_string())
    )))
}

/// Listeners for `spec`, one per loop; more than one share the port with
/// SO_REUSEPORT (a port of 0 is chosen by the first).
pub fn bind_listeners(spec: &str, count: usize) -> Result<Vec<std::net::TcpListener>, Fatal> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (host, port) = split_host_port(spec).map_err(|e| fatal(format!("--listen {e}")))?;
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| fatal(format!("--listen: cannot resolve {host:?}: {e}")))?
        .collect();
    let bind_one = |addr: SocketAddr| -> io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        if count > 1 {
            s.set_reuse_port(true)?;
        }
        s.bind(&addr.into())?;
        s.listen(1024)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    let mut last: Option<(SocketAddr, io::Error)> = None;
    for addr in addrs {
        match bind_one(addr) {
            Ok(first) => {
                let actual = first
                    .local_addr()
                    .map_err(|e| fatal(format!("--listen {spec}: {e}")))?;
                let mut all = vec![first];
                for _ in 1..count {
                    all.push(
                        bind_one(actual)
                            .map_err(|e| fatal(format!("--listen {actual} (SO_REUSEPORT): {e}")))?,
                    );
                }
                return Ok(all);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => fatal(format!("--listen: cannot listen on {addr}: {e}")),
        None => fatal(format!("--listen: {host:?} resolves to no address")),
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_listen_hosts() {
        assert_eq!(generated_names("127.0.0.1", None), vec!["127.0.0.1"]);
        assert_eq!(generated_names("::1", None), vec!["::1"]);
        assert_eq!(
            generated_names("Proxy.Example", Some("alt.example")),
            vec!["proxy.example", "alt.example"]
        );
        let any = generated_names("0.0.0.0", None);
        assert_eq!(&any[..3], &["localhost", "127.0.0.1", "::1"]);
        assert_eq!(&generated_names("::", None)[..3], &any[..3]);
    }

    #[test]
    fn generated_certificate_is_p256_with_ip_san() {
        let (ck, pem) = self_signed(&["127.0.0.1".to_string()]).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(ck.chain.len(), 1);
        // The key signs with ECDSA P-256.
        let schemes = ck.key.schemes(true);
        assert!(
            schemes.contains(&nbtls::codec::SignatureScheme::ECDSA_SECP256R1_SHA256),
            "{schemes:?}"
        );
    }
}
