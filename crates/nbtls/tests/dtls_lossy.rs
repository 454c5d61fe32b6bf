//! DTLS 1.2 through a lossy UDP relay: drops, duplicates, reordering and
//! delay from a fixed seed. The handshake must complete, and every
//! application datagram that gets through is delivered intact and once.

mod common;
#[path = "common/udp_relay.rs"]
mod udp_relay;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::tls::{client_config, server_config};
use nbtls::{Error, Flags, Session};
use udp_relay::{Faults, Relay, XorShift};

/// Socket read timeout: a backstop; the sessions wait on their own timers.
const SOCK_TIMEOUT: Duration = Duration::from_secs(20);

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
