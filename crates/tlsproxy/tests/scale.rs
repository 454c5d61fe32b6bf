//! Load and backpressure: a thousand concurrent connections through the
//! proxies with bounded memory, and a slow reader that must stall the
//! sender instead of growing the proxy.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Client proxy -> server proxy (generated certificate) -> `upstream`.
fn chain(upstream: u16, extra: &[&str]) -> (Proxy, Proxy) {
    let dir = temp_dir("scale");
    let cert = dir.join("server.pem");
    let mut sargs = vec![
        "-s".to_string(),
        "-c".into(),
        format!("127.0.0.1:{upstream}"),
        "--save-cert".into(),
        cert.to_str().unwrap().into(),
    ];
    sargs.extend(extra.iter().map(|s| s.to_string()));
    let sargs: Vec<&str> = sargs.iter().map(String::as_str).collect();
    let server = Proxy::start(&sargs);
    let mut cargs = vec![
        "-c".to_string(),
        format!("127.0.0.1:{}", server.port),
        "-A".into(),
        cert.to_str().unwrap().into(),
    ];
    cargs.extend(extra.iter().map(|s| s.to_string()));
    let cargs: Vec<&str> = cargs.iter().map(String::as_str).collect();
    let client = Proxy::start(&cargs);
    (client, server)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A gate every client waits at (bounded) until the main thread opens it.
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self, timeout: Duration) -> bool {
        let g = self.open.lock().unwrap();
        let (g, _) = self.cv.wait_timeout_while(g, timeout, |o| !*o).unwrap();
        *g
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

const CONNS: usize = 1000;
const HALF: usize = 16 * 1024;

fn client(port: u16, i: usize, ready: &AtomicUsize, gate: &Gate) -> io::Result<()> {
    let data = payload(2 * HALF, i as u64 + 100);
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.write_all(&data[..HALF])?;
    ready.fetch_add(1, Ordering::SeqCst);
    if !gate.wait(TIMEOUT) {
        return Err(io::Error::other("gate never opened"));
    }
    s.write_all(&data[HALF..])?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::with_capacity(data.len());
    s.read_to_end(&mut back)?;
    if back != data {
        return Err(io::Error::other(format!(
            "connection {i}: {} bytes back, content {}",
            back.len(),
            if back.len() == data.len() {
                "differs"
            } else {
                "short"
            }
        )));
    }
    Ok(())
}

/// 1,000 connections open at once through both proxies, each carrying a
/// checked 32 KiB payload both ways; memory stays bounded.
#[test]
fn thousand_concurrent_connections_with_bounded_memory() {
    let echo = echo_server();
    // A generous handshake timeout: 1,000 debug-build handshakes at once on a
    // loaded 2-core machine can take longer than the 10 s default.
    let (mut cproxy, mut sproxy) = chain(echo, &["--handshake-timeout", "60"]);
    let base = (cproxy.memory_kib(), sproxy.memory_kib());
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Gate {
        open: Mutex::new(false),
        cv: Condvar::new(),
    });
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    for i in 0..CONNS {
        let (ready, gate, tx) = (ready.clone(), gate.clone(), tx.clone());
        let port = cproxy.port;
        spawn_small(move || {
            let r = client(port, i, &ready, &gate);
            let _ = tx.send(r);
        });
    }
    drop(tx);
    // Every connection is open and has sent its first half.
    let all_open = eventually(TIMEOUT, || ready.load(Ordering::SeqCst) == CONNS);
    let open_count = ready.load(Ordering::SeqCst);
    let during = (cproxy.memory_kib(), sproxy.memory_kib());
    gate.open();
    assert!(all_open, "only {open_count} of {CONNS} connections opened");
    let mut failures = Vec::new();
    for _ in 0..CONNS {
        match rx.recv_timeout(TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(_) => {
                failures.push("a client did not finish in time".into());
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(
        cproxy.wait_count("outcome=closed", CONNS, TIMEOUT),
        "client proxy closed {} cleanly",
        cproxy.log().matches("outcome=closed").count()
    );
    assert!(
        sproxy.wait_count("outcome=closed", CONNS, TIMEOUT),
        "server proxy closed {} cleanly",
        sproxy.log().matches("outcome=closed").count()
    );
    let end = (cproxy.memory_kib(), sproxy.memory_kib());
    println!(
        "{CONNS} connections in {elapsed:?}\n\
         client proxy: VmRSS {:.1} MiB at start, {:.1} MiB with all open, {:.1} MiB after; VmHWM {:.1} MiB\n\
         server proxy: VmRSS {:.1} MiB at start, {:.1} MiB with all open, {:.1} MiB after; VmHWM {:.1} MiB",
        mib(base.0 .0),
        mib(during.0 .0),
        mib(end.0 .0),
        mib(end.0 .1),
        mib(base.1 .0),
        mib(during.1 .0),
        mib(end.1 .0),
        mib(end.1 .1),
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    // The design bound per connection: two rings of the default 32 KiB,
    // two record buffers of ~17 KiB while a record is in flight, and the
    // session state: about 100 KiB. Allow 160 KiB for allocator slack.
    for (name, hwm) in [("client", end.0 .1), ("server", end.1 .1)] {
        assert!(
            hwm < (CONNS as u64) * 160,
            "{name} proxy peaked at {:.1} MiB",
            mib(hwm)
        );
    }
}

/// Pattern byte at stream offset `o`: cheap to make and to check.
fn pattern(block: &[u8], o: usize) -> u8 {
    block[o % block.len()] ^ ((o / block.len()) as u8)
}

/// A sink that accepts the proxy's connection but does not read until
/// told to; then reads and checks everything.
fn slow_sink(block: Arc<Vec<u8>>) -> (u16, mpsc::Sender<()>, mpsc::Receiver<io::Result<usize>>) {
    let (l, port) = listener();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (res_tx, res_rx) = mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            // The proxy's start-up probe closes at once: skip it without
            // consuming anything from the real connection.
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            if matches!(s.peek(&mut [0u8; 1]), Ok(0)) {
                continue;
            }
            let _ = go_rx.recv_timeout(TIMEOUT * 2);
            let r = (|| -> io::Result<usize> {
                let mut s = s;
                s.set_read_timeout(Some(TIMEOUT))?;
                let mut buf = vec![0u8; 256 * 1024];
                let mut off = 0usize;
                loop {
                    let n = s.read(&mut buf)?;
                    if n == 0 {
                        return Ok(off);
                    }
                    for (k, b) in buf[..n].iter().enumerate() {
                        if *b != pattern(&block, off + k) {
                            return Err(io::Error::other(format!("byte {} differs", off + k)));
                        }
                    }
                    off += n;
                }
            })();
            let _ = res_tx.send(r);
            return;
        }
    });
    (port, go_tx, res_rx)
}

/// A slow reader: the proxies stop reading from the fast sender instead of
/// buffering (memory stays flat, the sender's writes block), and once the
/// reader catches up every byte arrives intact.
#[test]
fn slow_reader_gets_backpressure_not_buffering() {
    const TOTAL: usize = 48 << 20;
    let block = Arc::new(payload(1 << 20, 9));
    let (sink, go, result) = slow_sink(block.clone());
    let (mut cproxy, mut sproxy) = chain(sink, &[]);
    let base = (cproxy.memory_kib().0, sproxy.memory_kib().0);

    let mut s = TcpStream::connect(("127.0.0.1", cproxy.port)).expect("connect");
    s.set_nonblocking(true).unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let fill = |chunk: &mut Vec<u8>, from: usize| {
        for (k, b) in chunk.iter_mut().enumerate() {
            *b = pattern(&block, from + k);
        }
    };
    // Phase 1: write until no byte has been taken for a second.
    let mut last_progress = Instant::now();
    let deadline = Instant::now() + TIMEOUT;
    fill(&mut chunk, sent);
    let mut chunk_off = 0;
    while sent < TOTAL && last_progress.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "phase 1 did not settle");
        match s.write(&chunk[chunk_off..]) {
            Ok(n) => {
                sent += n;
                chunk_off += n;
                last_progress = Instant::now();
                if chunk_off == chunk.len() {
                    fill(&mut chunk, sent);
                    chunk_off = 0;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let stalled = (cproxy.memory_kib().0, sproxy.memory_kib().0);
    println!(
        "slow reader: the sender stalled after {:.1} MiB of {:.0} MiB; VmRSS client proxy {:.1} -> {:.1} MiB, server proxy {:.1} -> {:.1} MiB",
        sent as f64 / (1 << 20) as f64,
        TOTAL as f64 / (1 << 20) as f64,
        mib(base.0),
        mib(stalled.0),
        mib(base.1),
        mib(stalled.1)
    );
    // What the sender got rid of sits in kernel socket buffers (three TCP
    // hops) plus at most a buffer per direction in each proxy.
    assert!(
        sent < TOTAL / 2,
        "no backpressure: {sent} bytes taken while nobody read"
    );
    for (name, b, now) in [("client", base.0, stalled.0), ("server", base.1, stalled.1)] {
        assert!(
            now < b + 16 * 1024,
            "{name} proxy grew from {:.1} to {:.1} MiB while the reader was stalled",
            mib(b),
            mib(now)
        );
    }

    // Phase 2: the reader starts; everything arrives, in order.
    go.send(()).unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&chunk[chunk_off..]).expect("write");
    sent += chunk.len() - chunk_off;
    while sent < TOTAL {
        let n = chunk.len().min(TOTAL - sent);
        fill(&mut chunk, sent);
        s.write_all(&chunk[..n]).expect("write");
        sent += n;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let got = result
        .recv_timeout(TIMEOUT * 2)
        .expect("sink finished")
        .expect("sink read everything intact");
    assert_eq!(got, TOTAL);
    assert!(
        cproxy.wait_for("tlsproxy::conn", TIMEOUT),
        "{}",
        cproxy.log()
    );
    assert!(sproxy.wait_for("bytes_up=", TIMEOUT));
    let rec = cproxy.records().pop().unwrap();
    assert_eq!(field(&rec, "bytes_up"), Some(&*TOTAL.to_string()), "{rec}");
}
