//! A seeded lossy UDP relay for DTLS tests: it sits between a client and
//! a server on 127.0.0.1 and drops, duplicates, reorders and delays
//! datagrams, counting what it did to application-data records so a test
//! can reconcile them with what arrived. Shared with nbtls-tokio's tests.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(5);

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// True with probability `pct` %.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

/// Faults applied to each direction.
#[derive(Clone, Copy)]
pub struct Faults {
    pub drop_pct: u64,
    pub dup_pct: u64,
    /// Held back and released after up to 3 later datagrams (or a delay).
    pub reorder_pct: u64,
}

/// Counters a relay direction keeps about application-data records
/// (content type 23), which the test reconciles with what arrived.
#[derive(Default)]
pub struct Counts {
    pub app_dropped: AtomicUsize,
    pub app_duplicated: AtomicUsize,
    pub reordered: AtomicUsize,
}

pub struct Relay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub to_server: Arc<Counts>,
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
    pub fn start(server_port: u16, faults: Faults, seed: u64) -> Relay {
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
