//! `nbtls client`: pipes stdin to the server and the server to stdout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use nbtls::{CertifiedKey, ClientConfig, Error as TlsError, Flags, Session, Shutdown};

use crate::options::{apply_common, describe, existing, hex, CommonArgs, Error};

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server address, HOST:PORT.
    pub addr: String,
    /// Name to send in SNI and to verify (default: the host of ADDR).
    #[arg(long)]
    pub server_name: Option<String>,
    /// PEM file of trusted CA certificates (default: the system store).
    #[arg(long, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long)]
    pub insecure: bool,
    /// Client certificate chain (PEM).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// After the handshake, send a KeyUpdate asking the server to update too.
    #[arg(long)]
    pub key_update: bool,
    /// Print an exporter value: LABEL:LENGTH (RFC 8446 §7.5, empty context).
    #[arg(long)]
    pub export: Option<String>,
    /// Connect once to get a session ticket, then again resuming it (the
    /// second connection pipes stdin/stdout).
    #[arg(long)]
    pub resume: bool,
    /// With --resume: send FILE as 0-RTT early data on the second connection.
    #[arg(long, requires = "resume")]
    pub early_data: Option<PathBuf>,
    /// DTLS 1.2 over UDP: each stdin line is one datagram.
    #[arg(long, conflicts_with_all = ["resume", "key_update"])]
    pub udp: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(args: ClientArgs) -> Result<(), Error> {
    let host = match args.addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => return Err(format!("address {:?} must be HOST:PORT", args.addr).into()),
    };
    let name = args.server_name.clone().unwrap_or(host);
    let mut cfg = if args.insecure {
        ClientConfig::insecure()
    } else if let Some(ca) = &args.ca {
        existing(ca, "CA file")?;
        ClientConfig::with_trust_file(ca)?
    } else {
        ClientConfig::with_system_trust()?
    };
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        existing(cert, "certificate")?;
        existing(key, "key")?;
        cfg = cfg.client_certificate(Arc::new(CertifiedKey::from_pem_files(cert, key)?));
    }
    let cfg = apply_common!(cfg, &args.common).early_data(args.early_data.is_some());
    let export = parse_export(args.export.as_deref())?;
    let early = match &args.early_data {
        Some(p) => std::fs::read(p).map_err(|e| format!("--early-data {}: {e}", p.display()))?,
        None => Vec::new(),
    };
    let cfg = Arc::new(cfg);
    if args.udp {
        return crate::udp::client(cfg, &name, &args.addr);
    }
    if args.resume {
        // A first connection only to collect tickets (TLS 1.3 sends them
        // after the handshake; TLS 1.2 during it).
        let mut first = connect(&cfg, &name, &args.addr)?;
        first.handshake()?;
        first.set_record_timeout(Some(Duration::from_millis(300)));
        let mut scratch = [0u8; 1024];
        while let Ok(n) = first.recv(&mut scratch) {
            if n == 0 {
                break;
            }
        }
        let _ = first.bye(Shutdown::Write);
        eprintln!("- first connection: {} ticket(s)", first.tickets_received());
    }
    let mut session = connect(&cfg, &name, &args.addr)?;
    if !early.is_empty() {
        let n = session.send_early_data(&early).unwrap_or(0);
        eprintln!("- early data queued: {n} of {} bytes", early.len());
    }
    session.handshake()?;
    eprint!("{}", describe(session.info()));
    if let Some((label, len)) = export {
        let mut out = vec![0u8; len];
        session.export_keying_material(label.as_bytes(), &[], &mut out)?;
        eprintln!("- exporter {label}: {}", hex(&out));
    }
    if args.key_update {
        session.key_update(true)?;
        session.flush()?;
    }
    pipe(&mut session)
}

fn connect(cfg: &Arc<ClientConfig>, name: &str, addr: &str) -> Result<Session<TcpStream>, Error> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true)?;
    Ok(Session::client(cfg.clone(), name, stream, Flags::NONE)?)
}

fn parse_export(spec: Option<&str>) -> Result<Option<(String, usize)>, Error> {
    let Some(spec) = spec else { return Ok(None) };
    let Some((label, len)) = spec.rsplit_once(':') else {
        return Err(format!("--export {spec:?} must be LABEL:LENGTH").into());
    };
    let len: usize = len
        .parse()
        .map_err(|_| format!("--export length {len:?} is not a number"))?;
    Ok(Some((label.to_string(), len)))
}

/// stdin → session, session → stdout, until the server closes.
fn pipe(session: &mut Session<TcpStream>) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16384];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    session.set_record_timeout(Some(Duration::from_millis(20)));
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 16384];
    let mut stdin_open = true;
    loop {
        while stdin_open {
            match rx.try_recv() {
                Ok(Some(data)) => send_all(session, &data)?,
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_open = false;
                    session.bye(Shutdown::Write)?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        match session.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                stdout.write_all(&buf[..n])?;
                stdout.flush()?;
            }
            Err(TlsError::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if stdin_open {
        session.bye(Shutdown::Write)?;
    }
    eprintln!("- closed by the server");
    Ok(())
}

fn send_all(session: &mut Session<TcpStream>, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        let n = session.send(data)?;
        data = &data[n..];
    }
    Ok(())
}
