//! DTLS 1.2 through a lossy UDP relay: drops, duplicates, reordering and
//! delay from a fixed seed. The handshake must complete, and every
//! application datagram that gets through is delivered intact and once.

mod common;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::tls::{client_config, server_config};
use nbtls::{Error, Flags, Session};

/// Socket read timeout: a backstop; the sessions wait on their own timers.
const SOCK_TIMEOUT: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(5);

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// True with probability `pct` %.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

/// Faults applied to each direction.
#[derive(Clone, Copy)]
struct Faults {
    drop_pct: u64,
    dup_pct: u64,
    /// Held back and released after up to 3 later datagrams (or a delay).
    reorder_pct: u64,
}

/// Counters a relay direction keeps about application-data records
/// (content type 23), which the test reconciles with what arrived.
#[derive(Default)]
struct Counts {
    app_dropped: AtomicUsize,
    app_duplicated: AtomicUsize,
    reordered: AtomicUsize,
}

struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    to_server: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

/// One direction: read from `rx`, apply faults, write with `tx`.
fn pump(
    recv: impl Fn(&mut [u8]) -> Option<usize> + Send + 'static,
    send: impl Fn(&[u8]) + Send + 'static,
    faults: Faults,
    seed: u64,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut rng = XorShift(seed);
        // Held datagrams: (bytes, datagrams still to pass before it, deadline).
        let mut held: VecDeque<(Vec<u8>, u32, Instant)> = VecDeque::new();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let got = recv(&mut buf);
            let now = Instant::now();
            if let Some(n) = got {
                let d = &buf[..n];
                let app = d.first() == Some(&23);
                if rng.chance(faults.drop_pct) {
                    if app {
                        counts.app_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                } else if rng.chance(faults.reorder_pct) {
                    counts.reordered.fetch_add(1, Ordering::Relaxed);
                    let after = 1 + (rng.next() % 3) as u32;
                    let delay = Duration::from_millis(1 + rng.next() % 20);
                    held.push_back((d.to_vec(), after, now + delay));
                } else {
                    send(d);
                    if rng.chance(faults.dup_pct) {
                        if app {
                            counts.app_duplicated.fetch_add(1, Ordering::Relaxed);
                        }
                        send(d);
                    }
                    for h in held.iter_mut() {
                        h.1 = h.1.saturating_sub(1);
                    }
                }
            }
            // Release held datagrams whose turn or delay has come.
            let mut i = 0;
            while i < held.len() {
                if held[i].1 == 0 || held[i].2 <= now {
                    let (d, _, _) = held.remove(i).unwrap();
                    send(&d);
                } else {
                    i += 1;
                }
            }
        }
    })
}

impl Relay {
    fn start(server_port: u16, faults: Faults, seed: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", server_port)).unwrap();
        front.set_read_timeout(Some(TICK)).unwrap();
        back.set_read_timeout(Some(TICK)).unwrap();
        let port = front.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let to_server = Arc::new(Counts::default());
        let up = {
            let (f, b, c) = (
                front.try_clone().unwrap(),
                back.try_clone().unwrap(),
                client.clone(),
            );
            pump(
                move |buf| {
                    let (n, from) = f.recv_from(buf).ok()?;
                    *c.lock().unwrap() = Some(from);
                    Some(n)
                },
                move |d| {
                    let _ = b.send(d);
                },
                faults,
                seed,
                to_server.clone(),
                stop.clone(),
            )
        };
        let down = pump(
            move |buf| back.recv(buf).ok(),
            move |d| {
                if let Some(to) = *client.lock().unwrap() {
                    let _ = front.send_to(d, to);
                }
            },
            faults,
            seed ^ 0x9e37_79b9_7f4a_7c15,
            Arc::new(Counts::default()),
            stop.clone(),
        );
        Relay {
            port,
            stop,
            to_server,
            threads: vec![up, down],
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Datagram `i` of `len` bytes: its index, then bytes derived from it.
fn payload(i: u32, len: usize) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    let mut x = XorShift(u64::from(i) * 2654435761 + 1);
    while v.len() < len {
        v.push(x.next() as u8);
    }
    v
}

const TOTAL: usize = 1 << 20;

fn run(drop_pct: u64, seed: u64) {
    let faults = Faults {
        drop_pct,
        dup_pct: 10,
        reorder_pct: 10,
    };
    let server_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    server_sock.set_read_timeout(Some(SOCK_TIMEOUT)).unwrap();
    let relay = Relay::start(server_sock.local_addr().unwrap().port(), faults, seed);

    let received = Arc::new(AtomicUsize::new(0));
    let client_done = Arc::new(AtomicBool::new(false));
    let server = {
        let (received, client_done) = (received.clone(), client_done.clone());
        thread::spawn(move || -> Result<Vec<bool>, String> {
            let mut probe = [0u8; 1];
            let (_, from) = server_sock
                .peek_from(&mut probe)
                .map_err(|e| e.to_string())?;
            server_sock.connect(from).unwrap();
            let mut s = Session::server_datagram(
                Arc::new(server_config()),
                b"relay",
                server_sock,
                Flags::DATAGRAM,
            )
            .unwrap();
            s.handshake()
                .map_err(|e| format!("server handshake: {e}"))?;
            // Short waits so the end of the stream is seen quickly.
            s.set_record_timeout(Some(Duration::from_millis(300)));
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut idle_after_done = 0;
            while Instant::now() < deadline {
                match s.recv(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        idle_after_done = 0;
                        let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                        if buf[..n] != payload(i as u32, n)[..] {
                            return Err(format!("datagram {i} corrupted"));
                        }
                        if seen.len() <= i {
                            seen.resize(i + 1, false);
                        }
                        if seen[i] {
                            return Err(format!("datagram {i} delivered twice"));
                        }
                        seen[i] = true;
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::TimedOut) => {
                        if client_done.load(Ordering::Relaxed) {
                            idle_after_done += 1;
                            if idle_after_done >= 2 {
                                break;
                            }
                        }
                    }
                    Err(e) => return Err(format!("server recv: {e}")),
                }
            }
            Ok(seen)
        })
    };

    let started = Instant::now();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", relay.port)).unwrap();
    sock.set_read_timeout(Some(SOCK_TIMEOUT)).unwrap();
    let mut c = Session::client(
        Arc::new(client_config()),
        "localhost",
        sock,
        Flags::DATAGRAM,
    )
    .unwrap();
    c.set_handshake_timeout(Some(Duration::from_secs(30)));
    if let Err(e) = c.handshake() {
        client_done.store(true, Ordering::Relaxed);
        panic!(
            "client handshake at {drop_pct}% loss: {e} (server: {:?})",
            server.join()
        );
    }
    let handshake_time = started.elapsed();

    let len = c.data_mtu();
    let count = TOTAL.div_ceil(len);
    for i in 0..count {
        // Pace to the receiver so the kernel's socket buffer never drops
        // datagrams the relay did not account for.
        let wait_until = Instant::now() + Duration::from_secs(5);
        while i
            - received.load(Ordering::Relaxed)
            - relay.to_server.app_dropped.load(Ordering::Relaxed)
            > 32
        {
            assert!(Instant::now() < wait_until, "receiver stalled at {i}");
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(c.send(&payload(i as u32, len)).unwrap(), len);
    }
    client_done.store(true, Ordering::Relaxed);
    let seen = server.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let got = seen.iter().filter(|s| **s).count();
    let dropped = relay.to_server.app_dropped.load(Ordering::Relaxed);
    let dups = relay.to_server.app_duplicated.load(Ordering::Relaxed);
    let reordered = relay.to_server.reordered.load(Ordering::Relaxed);
    eprintln!(
        "{drop_pct}% loss: handshake {handshake_time:?}, {count} datagrams of {len} sent, {got} \
         delivered, {dropped} dropped, {dups} duplicated, {reordered} reordered"
    );
    assert_eq!(got + dropped, count, "delivered + dropped = sent");
    assert!(
        dups > 0 && dropped > 0 && reordered > 0,
        "the faults happened"
    );
}

#[test]
fn handshake_and_a_mebibyte_through_10_percent_loss() {
    run(10, 0x2545_f491_4f6c_dd1d);
}

#[test]
fn handshake_and_a_mebibyte_through_30_percent_loss() {
    run(30, 0x1234_5678_9abc_def1);
}
