//! `nbtls server`: accepts connections, one thread each.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use nbtls::crypto::{hash::HashContext, HashAlg};
use nbtls::x509::{CertificateDer, PrivateKeyDer, SigningKey};
use nbtls::{
    CertifiedKey, ClientAuth, Error as TlsError, Flags, ServerConfig, Session, Shutdown,
    TrustAnchors,
};

use crate::options::{apply_common, describe, existing, hex, CommonArgs, Error};

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ClientAuthArg {
    Request,
    Require,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on, HOST:PORT.
    #[arg(long)]
    pub listen: String,
    /// Certificate chain (PEM). Without --cert/--key a self-signed
    /// certificate for localhost is generated.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Ask clients for a certificate (needs --ca).
    #[arg(long, value_enum, requires = "ca")]
    pub client_auth: Option<ClientAuthArg>,
    /// Echo what the client sends (the default).
    #[arg(long, group = "mode")]
    pub echo: bool,
    /// Answer each HTTP request with a page describing the session, then close.
    #[arg(long, group = "mode")]
    pub http: bool,
    /// Read to close_notify, then print the byte count and SHA-256.
    #[arg(long, group = "mode")]
    pub sink: bool,
    /// Send FILE, then close_notify.
    #[arg(long, group = "mode")]
    pub send: Option<PathBuf>,
    /// Serve one connection, then exit.
    #[arg(long)]
    pub once: bool,
    /// Accept up to N bytes of TLS 1.3 0-RTT early data (with replay
    /// protection); it is echoed, counted or printed like other data.
    #[arg(long, default_value_t = 0)]
    pub max_early_data: u32,
    /// DTLS 1.2 over UDP, many peers at once on one socket (with --echo or --sink).
    #[arg(long, conflicts_with_all = ["http", "send"])]
    pub udp: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy)]
enum Mode {
    Echo,
    Http,
    Sink,
    Send,
}

pub fn run(args: ServerArgs) -> Result<(), Error> {
    let cert = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => {
            existing(c, "certificate")?;
            existing(k, "key")?;
            Arc::new(CertifiedKey::from_pem_files(c, k)?)
        }
        _ => {
            let ck = self_signed()?;
            eprintln!(
                "generated a self-signed certificate for localhost, SHA-256 {}",
                hex(&ck.fingerprint())
            );
            Arc::new(ck)
        }
    };
    let mut cfg = ServerConfig::new(cert);
    if let Some(mode) = args.client_auth {
        let Some(ca) = &args.ca else {
            return Err("--client-auth needs --ca".into());
        };
        existing(ca, "CA file")?;
        let mode = match mode {
            ClientAuthArg::Request => ClientAuth::Request,
            ClientAuthArg::Require => ClientAuth::Require,
        };
        cfg = cfg.client_auth(mode, TrustAnchors::from_pem_file(ca)?);
    }
    let mut cfg = apply_common!(cfg, &args.common);
    if args.max_early_data > 0 {
        cfg = cfg.early_data(
            args.max_early_data,
            Arc::new(nbtls::AntiReplay::new(100_000)),
        );
    }
    let cfg = Arc::new(cfg);
    let mode = if args.http {
        Mode::Http
    } else if args.sink {
        Mode::Sink
    } else if args.send.is_some() {
        Mode::Send
    } else {
        Mode::Echo
    };
    if args.udp {
        return crate::udp::server(cfg, &args.listen, args.sink, args.once);
    }
    let file = match &args.send {
        Some(p) => Arc::new(std::fs::read(p).map_err(|e| format!("--send {}: {e}", p.display()))?),
        None => Arc::new(Vec::new()),
    };
    let listener =
        TcpListener::bind(&args.listen).map_err(|e| format!("listen {}: {e}", args.listen))?;
    eprintln!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let (cfg, file) = (cfg.clone(), file.clone());
        let handle = std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            if let Err(e) = serve(cfg, stream, mode, &file) {
                eprintln!("{peer}: {e}");
            }
        });
        if args.once {
            let _ = handle.join();
            break;
        }
    }
    Ok(())
}

fn self_signed() -> Result<CertifiedKey, Error> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let der = CertificateDer::from(ck.cert.der().to_vec());
    let key =
        PrivateKeyDer::try_from(ck.key_pair.serialize_der()).map_err(|e| format!("key: {e}"))?;
    Ok(CertifiedKey::new(vec![der], SigningKey::from_der(&key)?)?)
}

fn serve(cfg: Arc<ServerConfig>, stream: TcpStream, mode: Mode, file: &[u8]) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let mut s = Session::server(cfg, stream, Flags::NONE)?;
    s.handshake()?;
    eprint!("{}", describe(s.info()));
    let mut buf = vec![0u8; 16384];
    let mut early = vec![0u8; s.pending_early_data()];
    let n = s.recv_early_data(&mut early);
    early.truncate(n);
    if !early.is_empty() {
        eprintln!("- early data received: {} bytes", early.len());
    }
    match mode {
        Mode::Echo => {
            send_all(&mut s, &early)?;
            loop {
                let n = s.recv(&mut buf)?;
                if n == 0 {
                    break;
                }
                send_all(&mut s, &buf[..n])?;
            }
        }
        Mode::Http => {
            let mut req = early.clone();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.recv(&mut buf)?;
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                if req.len() > 64 * 1024 {
                    return Err("HTTP request too large".into());
                }
            }
            let body = format!(
                "<html><body><h1>nbtls</h1><pre>\n{}</pre></body></html>\n",
                describe(s.info())
            );
            let resp = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
            send_all(&mut s, resp.as_bytes())?;
        }
        Mode::Sink => {
            let mut h = HashContext::new(HashAlg::Sha256);
            h.update(&early);
            let mut total = early.len() as u64;
            loop {
                let n = s.recv(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                h.update(&buf[..n]);
            }
            println!(
                "received {total} bytes, SHA-256 {}",
                hex(h.current().as_bytes()).replace(':', "").to_lowercase()
            );
            std::io::stdout().flush()?;
        }
        Mode::Send => send_all(&mut s, file)?,
    }
    s.bye(Shutdown::Write)?;
    if matches!(mode, Mode::Send | Mode::Http) {
        // Drain until the client closes so it reads everything we sent.
        s.set_record_timeout(Some(Duration::from_secs(10)));
        loop {
            match s.recv(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let _ = s.transport_mut().flush();
    let _ = s.transport().read(&mut [])?;
    Ok(())
}

fn send_all(s: &mut Session<TcpStream>, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        match s.send(data) {
            Ok(n) => data = &data[n..],
            Err(TlsError::Interrupted) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
