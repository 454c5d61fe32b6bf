//! `proxy CHAIN MBYTES`: tlsproxy beside a plain TCP relay (issue 6).
//!
//! The chain is two hops in front of an echo backend on 127.0.0.1:
//!   load --plain--> hop 1 --(TLS | plain)--> hop 2 --plain--> echo
//! With CHAIN `tlsproxy`, hop 1 is `tlsproxy` in client mode and hop 2
//! `tlsproxy --server` (one event-loop thread each, TLS 1.3, the bench's
//! ECDSA certificate verified against its CA); with `tcp`, both hops are
//! `nbtls-perf relay`, a plain relay that copies with two threads per
//! connection. Measured: one connection's echo throughput (MBYTES MiB each
//! way, 64 KiB writes) with the hops' CPU per GB relayed, then
//! connections per second (4 client threads, each connection 64 bytes
//! there and back, for 2 s; a fresh TLS handshake per connection).
//! `TLSPROXY` names the tlsproxy binary (default: beside this one).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{die, paths, proc_cpu_s, Case};

const CHUNK: usize = 64 * 1024;
const CONN_SECS: f64 = 2.0;
const CONN_THREADS: usize = 4;

/// A free loopback port (bound and released: a tiny race, fine for a bench).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| die(format!("free port: {e}")))
}

/// Echo backend: a thread per connection.
fn start_echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(format!("bind: {e}")));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// `nbtls-perf relay LISTEN_PORT UPSTREAM_PORT`: the plain baseline.
pub fn run_relay(listen: u16, upstream: u16) {
    let l = TcpListener::bind(("127.0.0.1", listen)).unwrap_or_else(|e| die(format!("bind: {e}")));
    for down in l.incoming().flatten() {
        thread::spawn(move || {
            let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let _ = (down.set_nodelay(true), up.set_nodelay(true));
            let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) else {
                return;
            };
            let t = thread::spawn(move || copy(d2, u2));
            copy(up, down);
            let _ = t.join();
        });
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

struct Hops {
    children: Vec<Child>,
    front: u16,
}

impl Drop for Hops {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Hops {
    fn start(chain: &str, echo: u16) -> Hops {
        let (p1, p2) = (free_port(), free_port());
        let exe = std::env::current_exe().unwrap_or_else(|e| die(format!("current_exe: {e}")));
        let spawn = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| die(format!("spawn {cmd:?}: {e}")))
        };
        let children = match chain {
            "tcp" => {
                let hop2 = spawn(Command::new(&exe).args([
                    "relay",
                    "-",
                    &p2.to_string(),
                    &echo.to_string(),
                ]));
                wait_listening(p2);
                vec![
                    hop2,
                    spawn(Command::new(&exe).args([
                        "relay",
                        "-",
                        &p1.to_string(),
                        &p2.to_string(),
                    ])),
                ]
            }
            "tlsproxy" => {
                let bin = std::env::var_os("TLSPROXY")
                    .map_or_else(|| exe.with_file_name("tlsproxy"), PathBuf::from);
                let p = paths(Case::parse("tls13-ec"));
                let addr = |port: u16| format!("127.0.0.1:{port}");
                let common = ["--protocols", "tls1.3", "--threads", "1"];
                // tlsproxy checks its upstream at start: hop 2 first.
                let hop2 = spawn(
                    Command::new(&bin)
                        .args(["--server", "--listen", &addr(p2), "--connect", &addr(echo)])
                        .arg("--cert")
                        .arg(&p.cert)
                        .arg("--key")
                        .arg(&p.key)
                        .args(common),
                );
                wait_listening(p2);
                vec![
                    hop2,
                    spawn(
                        Command::new(&bin)
                            .args(["--listen", &addr(p1), "--connect", &addr(p2)])
                            .args(["--hostname", "localhost"])
                            .arg("--cacert")
                            .arg(&p.ca)
                            .args(common),
                    ),
                ]
            }
            _ => die(format!("unknown chain {chain:?} (tcp | tlsproxy)")),
        };
        let hops = Hops {
            children,
            front: p1,
        };
        // Ready when a byte makes the round trip through both hops.
        let deadline = Instant::now() + Duration::from_secs(10);
        while round_trip(p1, 1).is_err() {
            if Instant::now() > deadline {
                die(format!("{chain} chain did not come up"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        hops
    }

    /// User + system CPU seconds of the hop processes.
    fn cpu_s(&self) -> f64 {
        self.children
            .iter()
            .map(|c| proc_cpu_s(&format!("/proc/{}/stat", c.id())))
            .sum()
    }
}

/// Waits (up to 10 s) until something accepts connections on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            die(format!("nothing listens on port {port}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One connection: `len` bytes there and back, checked.
fn round_trip(port: u16, len: usize) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
    s.write_all(&msg)?;
    let mut back = vec![0u8; len];
    s.read_exact(&mut back)?;
    if back != msg {
        return Err(std::io::Error::other("echo differs"));
    }
    Ok(())
}

/// MBYTES MiB through one connection, a writer and a reader thread.
fn throughput(port: u16, total: u64) -> f64 {
    let s =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| die(format!("connect: {e}")));
    let mut r = s.try_clone().unwrap_or_else(|e| die(format!("clone: {e}")));
    let t0 = Instant::now();
    let writer = thread::spawn(move || {
        let mut s = s;
        let buf = vec![b'x'; CHUNK];
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(CHUNK as u64) as usize;
            s.write_all(&buf[..n])
                .unwrap_or_else(|e| die(format!("write: {e}")));
            sent += n as u64;
        }
    });
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < total {
        match r.read(&mut buf) {
            Ok(0) => die(format!("chain closed after {got} of {total} bytes")),
            Ok(n) => got += n as u64,
            Err(e) => die(format!("read: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = writer.join();
    secs
}

/// Connections per second through the chain.
fn connections(port: u16) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..CONN_THREADS)
        .map(|_| {
            let (stop, count) = (stop.clone(), count.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    round_trip(port, 64).unwrap_or_else(|e| die(format!("connection: {e}")));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(CONN_SECS));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

pub fn mode_proxy(chain: &str, mbytes: u64) {
    let echo = start_echo();
    let hops = Hops::start(chain, echo);
    let total = mbytes << 20;
    let cpu0 = hops.cpu_s();
    let secs = throughput(hops.front, total);
    let cpu = hops.cpu_s() - cpu0;
    let cpu1 = hops.cpu_s();
    let conns = connections(hops.front);
    let conn_cpu = hops.cpu_s() - cpu1;
    println!(
        "proxy {chain} bytes {total} MBps {:.1} hops_cpu_s_per_GB {:.3} conns_per_s {conns:.0} hops_cpu_us_per_conn {:.0}",
        total as f64 / 1e6 / secs,
        cpu / (total as f64 / 1e9),
        conn_cpu * 1e6 / (conns * CONN_SECS),
    );
}
