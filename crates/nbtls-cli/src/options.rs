//! Options both commands share, and turning them into a config.

use clap::Args;
use nbtls::codec::{CipherSuite, NamedGroup, ProtocolVersion};
use nbtls::SessionInfo;

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// ALPN protocols to offer or accept, comma-separated (e.g. h2,http/1.1).
    #[arg(long, value_delimiter = ',')]
    pub alpn: Vec<String>,
    /// Protocol versions to enable, comma-separated (tls1.3).
    #[arg(long, value_delimiter = ',')]
    pub protocols: Vec<String>,
    /// Key-exchange groups, comma-separated (x25519mlkem768, x25519, p256, p384).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Cipher suites, comma-separated (TLS_AES_128_GCM_SHA256, ... or aes128, aes256, chacha20).
    #[arg(long, value_delimiter = ',')]
    pub suites: Vec<String>,
    /// Record size limit to advertise (RFC 8449), 64..=16385.
    #[arg(long)]
    pub record_size_limit: Option<u16>,
}

pub type Error = Box<dyn std::error::Error>;

pub fn parse_group(s: &str) -> Result<NamedGroup, Error> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "x25519mlkem768" => NamedGroup::X25519MLKEM768,
        "x25519" => NamedGroup::X25519,
        "p256" | "p-256" | "secp256r1" | "prime256v1" => NamedGroup::SECP256R1,
        "p384" | "p-384" | "secp384r1" => NamedGroup::SECP384R1,
        _ => {
            return Err(format!("unknown group {s:?} (x25519mlkem768, x25519, p256, p384)").into())
        }
    })
}

pub fn parse_suite(s: &str) -> Result<CipherSuite, Error> {
    Ok(match s.to_ascii_uppercase().as_str() {
        "TLS_AES_128_GCM_SHA256" | "AES128" | "AES-128-GCM" => CipherSuite::TLS_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" | "AES256" | "AES-256-GCM" => CipherSuite::TLS_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" | "CHACHA20" | "CHACHA20-POLY1305" => {
            CipherSuite::TLS_CHACHA20_POLY1305_SHA256
        }
        _ => return Err(format!("unknown cipher suite {s:?}").into()),
    })
}

pub fn parse_version(s: &str) -> Result<ProtocolVersion, Error> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tls1.3" | "tls13" | "1.3" => ProtocolVersion::TLS1_3,
        "tls1.2" | "tls12" | "1.2" => ProtocolVersion::TLS1_2,
        _ => return Err(format!("unsupported protocol {s:?} (tls1.3, tls1.2)").into()),
    })
}

/// Applies the shared options to a client or server config.
macro_rules! apply_common {
    ($cfg:expr, $args:expr) => {{
        let mut cfg = $cfg;
        let a: &$crate::options::CommonArgs = $args;
        if !a.alpn.is_empty() {
            cfg = cfg.alpn(&a.alpn)?;
        }
        if !a.protocols.is_empty() {
            let v = a
                .protocols
                .iter()
                .map(|s| $crate::options::parse_version(s))
                .collect::<Result<Vec<_>, _>>()?;
            cfg = cfg.versions(&v)?;
        }
        if !a.groups.is_empty() {
            let v = a
                .groups
                .iter()
                .map(|s| $crate::options::parse_group(s))
                .collect::<Result<Vec<_>, _>>()?;
            cfg = cfg.groups(&v)?;
        }
        if !a.suites.is_empty() {
            let v = a
                .suites
                .iter()
                .map(|s| $crate::options::parse_suite(s))
                .collect::<Result<Vec<_>, _>>()?;
            cfg = cfg.cipher_suites(&v)?;
        }
        if let Some(l) = a.record_size_limit {
            cfg = cfg.record_size_limit(l)?;
        }
        if let Some(kl) = nbtls::KeyLogFile::from_env()? {
            cfg = cfg.key_log(std::sync::Arc::new(kl));
        }
        cfg
    }};
}
pub(crate) use apply_common;

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One line per negotiated parameter, for stderr.
pub fn describe(info: &SessionInfo) -> String {
    let mut s = String::new();
    let name = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    s.push_str(&format!(
        "- version: {}\n",
        name(info.version.map(|v| format!("{v}")))
    ));
    s.push_str(&format!(
        "- cipher suite: {}\n",
        name(info.suite.map(|v| format!("{v}")))
    ));
    s.push_str(&format!(
        "- group: {}\n",
        name(info.group.map(|v| format!("{v}")))
    ));
    let alpn = info
        .alpn
        .as_ref()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    s.push_str(&format!("- ALPN: {}\n", name(alpn)));
    s.push_str(&format!(
        "- server name: {}\n",
        name(info.server_name.clone())
    ));
    s.push_str(&format!(
        "- hello retry: {}\n",
        if info.hello_retry { "yes" } else { "no" }
    ));
    s.push_str(&format!(
        "- resumed: {}\n",
        if info.resumed { "yes" } else { "no" }
    ));
    if info.early_data_accepted {
        s.push_str("- early data: accepted\n");
    }
    if let Some(sch) = info.peer_signature_scheme {
        s.push_str(&format!("- peer signature scheme: {sch}\n"));
    }
    for (i, c) in info.peer_certificates.iter().enumerate() {
        let fp = nbtls::crypto::hash::hash(nbtls::crypto::HashAlg::Sha256, c.as_ref());
        s.push_str(&format!(
            "- peer certificate {i}: {} bytes, SHA-256 {}\n",
            c.len(),
            hex(fp.as_bytes())
        ));
    }
    s
}

/// Resolves a path argument that must exist.
pub fn existing(p: &std::path::Path, what: &str) -> Result<(), Error> {
    if !p.exists() {
        return Err(format!("{what} {}: no such file", p.display()).into());
    }
    Ok(())
}
