//! Command line. Short letters follow the GnuTLS `tlsproxy` example
//! (`c:l:K:C:A:H:sid`); its inverted `-n` is not carried over.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use nbtls::codec::ProtocolVersion;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tlsproxy",
    version,
    about = "TLS <-> plain TCP proxy: a single-threaded, edge-triggered event loop over nbtls",
    long_about = "TLS <-> plain TCP proxy built on nbtls' non-blocking Session API.\n\n\
        Client mode (default): accepts plain TCP on --listen and speaks TLS to --connect, \
        verifying the upstream certificate (system store, or --cacert).\n\
        Server mode (--server): accepts TLS on --listen and speaks plain TCP to --connect; \
        without --cert/--key it generates a self-signed P-256 certificate at start-up and \
        prints its SHA-256 fingerprint.\n\n\
        TLS 1.3 and TLS 1.2 (--protocols restricts them); --dtls is not implemented yet. \
        SSLKEYLOGFILE is honoured. RUST_LOG overrides -d."
)]
pub struct Args {
    /// Upstream address to connect to, HOST:PORT (IPv6: [ADDR]:PORT).
    #[arg(short = 'c', long, value_name = "HOST:PORT")]
    pub connect: String,

    /// Address to listen on, HOST:PORT (port 0 picks a free port; the log shows it).
    #[arg(short = 'l', long, value_name = "HOST:PORT")]
    pub listen: String,

    /// Server mode: TLS on the listening side, plain TCP toward --connect.
    #[arg(short = 's', long)]
    pub server: bool,

    /// Private key (PEM). Server mode: the server's key. Client mode: the
    /// client certificate's key (like --client-key). Alone, the file must
    /// also hold the certificate.
    #[arg(short = 'K', long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Certificate chain (PEM), leaf first. Server mode: the server's
    /// certificate. Client mode: a client certificate (like --client-cert).
    /// Alone, the file must also hold the key.
    #[arg(short = 'C', long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// CA certificates (PEM). Client mode: trust these for the upstream
    /// instead of the system store. Server mode: require client
    /// certificates issued by these CAs.
    #[arg(short = 'A', long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Client mode: the name sent as SNI and checked against the upstream
    /// certificate (default: the host part of --connect). Server mode: a
    /// name added to the generated certificate.
    #[arg(short = 'H', long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Client mode: do NOT verify the upstream certificate (chain, name,
    /// validity). Anyone on the path can then impersonate the upstream.
    #[arg(short = 'i', long)]
    pub insecure: bool,

    /// More logging: -d debug, -dd trace (RUST_LOG overrides).
    #[arg(short = 'd', long, action = ArgAction::Count)]
    pub debug: u8,

    /// ALPN protocols, comma-separated, in preference order (offered in
    /// client mode, accepted in server mode).
    #[arg(long, value_delimiter = ',', value_name = "PROTO,...")]
    pub alpn: Vec<String>,

    /// TLS versions to offer (client mode) or accept (server mode),
    /// comma-separated: tls1.3, tls1.2. Default: both.
    #[arg(long, value_delimiter = ',', value_name = "VERSION,...", value_parser = parse_protocol)]
    pub protocols: Vec<ProtocolVersion>,

    /// Client mode: certificate chain (PEM) to present when the upstream asks.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// Client mode: the key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// Most connections served at once (all threads together). Default:
    /// from the open-files limit, which is raised to its hard limit at
    /// start (two descriptors per connection).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,

    /// Close a connection after this many seconds without traffic either way
    /// (0: never).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub idle_timeout: Duration,

    /// Limit for the upstream TCP connect and for the TLS handshake, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub handshake_timeout: Duration,

    /// After SIGINT/SIGTERM, how long open connections may finish before
    /// they are closed, in seconds. A second signal closes them at once.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub drain_timeout: Duration,

    /// Event loops (one per thread, each with its own SO_REUSEPORT listener);
    /// 0: one per core.
    #[arg(long, value_name = "N", default_value = "1")]
    pub threads: usize,

    /// Bytes buffered per direction per connection; a full buffer stops
    /// reading from the fast side (backpressure).
    #[arg(long, value_name = "BYTES", default_value = "32768",
          value_parser = clap::value_parser!(u64).range(1024..=(64 << 20)))]
    pub buffer_size: u64,

    /// Server mode, generated certificate: also write it (PEM) to FILE, for
    /// clients to trust.
    #[arg(long, value_name = "FILE")]
    pub save_cert: Option<PathBuf>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s.to_ascii_lowercase().as_str() {
        "tls1.3" => Ok(ProtocolVersion::TLS1_3),
        "tls1.2" => Ok(ProtocolVersion::TLS1_2),
        _ => Err(format!("{s:?} is not a protocol version (tls1.2, tls1.3)")),
    }
}

/// How `--protocols` spells a version (for messages).
pub fn protocol_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLS1_3 => "tls1.3".into(),
        ProtocolVersion::TLS1_2 => "tls1.2".into(),
        other => other.to_string(),
    }
}

/// Splits `HOST:PORT` or `[V6]:PORT`. The port is required.
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{s:?}: expected [IPV6]:PORT"))?;
        (h, p)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST:PORT"))?
    };
    if host.is_empty() {
        return Err(format!("{s:?}: missing host"));
    }
    if host.contains(':') && !s.starts_with('[') {
        return Err(format!("{s:?}: write IPv6 addresses as [ADDR]:PORT"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{s:?}: invalid port {port:?}"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("example.com:443").unwrap(),
            ("example.com".into(), 443)
        );
        assert_eq!(split_host_port("[::1]:8443").unwrap(), ("::1".into(), 8443));
        assert!(split_host_port("::1:8443").is_err());
        assert!(split_host_port("example.com").is_err());
        assert!(split_host_port(":80").is_err());
        assert!(split_host_port("h:99999").is_err());
    }

    #[test]
    fn protocol_names() {
        assert_eq!(parse_protocol("tls1.2"), Ok(ProtocolVersion::TLS1_2));
        assert_eq!(parse_protocol("TLS1.3"), Ok(ProtocolVersion::TLS1_3));
        assert!(parse_protocol("tls1.1").is_err());
        assert!(parse_protocol("").is_err());
        let a = Args::try_parse_from([
            "tlsproxy",
            "-l",
            "h:1",
            "-c",
            "h:2",
            "--protocols",
            "tls1.2,tls1.3",
        ])
        .unwrap();
        assert_eq!(
            a.protocols,
            [ProtocolVersion::TLS1_2, ProtocolVersion::TLS1_3]
        );
        for v in &a.protocols {
            assert_eq!(parse_protocol(&protocol_name(*v)), Ok(*v));
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
