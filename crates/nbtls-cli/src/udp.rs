//! `--udp`: DTLS 1.2 over UDP for both commands. One stdin line is one
//! datagram; one received datagram is written to stdout as is.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nbtls::crypto::{hash::HashContext, HashAlg};
use nbtls::{
    ClientConfig, DtlsListener, Error as TlsError, Flags, ServerConfig, Session, Transport,
};

use crate::options::{describe, hex, Error};

/// How long a server waits for a quiet peer before giving up on it.
const PEER_IDLE: Duration = Duration::from_secs(60);

fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    addr.to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {addr}: no address").into())
}

pub fn client(cfg: Arc<ClientConfig>, name: &str, addr: &str) -> Result<(), Error> {
    let peer = resolve(addr)?;
    let local: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(peer)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut s = Session::client(cfg, name, sock, Flags::DATAGRAM)?;
    s.handshake()?;
    eprint!("{}", describe(s.info()));

    // Lines from stdin arrive on a channel so receiving never waits on them.
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(_) => {
                    if tx.send(Some(line.clone())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    s.set_record_timeout(Some(Duration::from_millis(20)));
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 65536];
    loop {
        match rx.try_recv() {
            Ok(Some(line)) => {
                // A datagram cannot be split across sends: cut long lines.
                for chunk in line.chunks(s.data_mtu().max(1)) {
                    s.send(chunk)?;
                }
                continue;
            }
            Ok(None) | Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match s.recv(&mut buf) {
            Ok(0) => {
                eprintln!("- closed by the server");
                return Ok(());
            }
            Ok(n) => {
                stdout.write_all(&buf[..n])?;
                stdout.flush()?;
            }
            Err(TlsError::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Replies to the last datagrams may still be in flight: collect them
    // for a short while before closing.
    s.set_record_timeout(Some(Duration::from_millis(300)));
    while let Ok(n) = s.recv(&mut buf) {
        if n == 0 {
            break;
        }
        stdout.write_all(&buf[..n])?;
        stdout.flush()?;
    }
    s.bye(nbtls::Shutdown::Write)?;
    Ok(())
}

/// Serves many peers at once on `listen`: the listener (stateless
/// cookies, bounded half-open handshakes) reads the socket on this thread,
/// each accepted session runs on a thread of its own.
pub fn server(cfg: Arc<ServerConfig>, listen: &str, sink: bool, once: bool) -> Result<(), Error> {
    let mut listener =
        DtlsListener::bind(listen, cfg).map_err(|e| format!("listen {listen}: {e}"))?;
    eprintln!("listening on {} (DTLS)", listener.local_addr()?);
    let mut workers: Vec<thread::JoinHandle<()>> = Vec::new();
    let mut served = false;
    loop {
        if let Some((mut s, peer)) = listener.accept_timeout(Duration::from_millis(100))? {
            if once && served {
                continue;
            }
            served = true;
            workers.push(thread::spawn(move || {
                if let Err(e) = serve(&mut s, sink) {
                    eprintln!("{peer}: {e}");
                }
            }));
        }
        workers.retain(|w| !w.is_finished());
        // `--once`: the first peer only, and done when it is.
        if once && served && workers.is_empty() {
            return Ok(());
        }
    }
}

fn serve<T: Transport>(s: &mut Session<T>, sink: bool) -> Result<(), Error> {
    s.handshake()?;
    eprint!("{}", describe(s.info()));
    s.set_record_timeout(Some(PEER_IDLE));
    let mut buf = vec![0u8; 65536];
    let mut h = HashContext::new(HashAlg::Sha256);
    let mut total = 0u64;
    loop {
        let n = match s.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(TlsError::TimedOut) => {
                eprintln!("- peer idle, dropped");
                break;
            }
            Err(e) => return Err(e.into()),
        };
        if sink {
            total += n as u64;
            h.update(&buf[..n]);
        } else {
            s.send(&buf[..n])?;
        }
    }
    if sink {
        println!(
            "received {total} bytes, SHA-256 {}",
            hex(h.current().as_bytes()).replace(':', "").to_lowercase()
        );
        std::io::stdout().flush()?;
    }
    Ok(())
}
