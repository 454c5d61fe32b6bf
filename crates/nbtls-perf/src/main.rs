//! nbtls-perf: the nbtls side of `shared/bench/tlsperf.c`, with the same
//! method, payload sizes, counting and output lines, so `scripts/bench.sh`
//! can put nbtls beside OpenSSL and GnuTLS.
//!
//! Usage: `nbtls-perf [nbtls] MODE CASE ARG`
//!   CASE  tls13-ec | tls12-ec | tls13-rsa | tls12-rsa (as tlsperf: TLS 1.3
//!         TLS_AES_128_GCM_SHA256, or TLS 1.2 ECDHE-{ECDSA,RSA}-AES128-GCM-SHA256;
//!         groups X25519 then P-256, one X25519 key share; client verifies the
//!         chain and "localhost"; server sends its leaf only)
//!   MODE
//!     hs SECONDS    full handshakes, client and server in one thread over
//!                   in-memory queues; client session store off (every
//!                   handshake is full), server tickets on (library default).
//!     mem N         heap (counting global allocator) and RSS per idle
//!                   established session, server side and client side, with
//!                   and without `keep_peer_certificates`.
//!     membulk MBYTES  server -> client through in-memory queues, one thread;
//!                   fails if the measured loop makes any heap allocation
//!                   (counting allocator; the data path allocates nothing).
//!     bulk MBYTES   loopback TCP, two processes: server writes, client reads.
//!     dtls SECONDS  DTLS 1.2 full handshakes (tls12-* cases), client and
//!                   server in one thread over two connected non-blocking UDP
//!                   sockets on 127.0.0.1; no cookie exchange (as tlsperf),
//!                   MTU 1400; handshakes/s and per-side us.
//!     limit MBYTES  raw-crypto limits with aws-lc-rs: two AES-128-GCM passes
//!                   (seal + open in place) per 16 KiB, and the asymmetric
//!                   operations of one handshake of CASE.
//!   `proxy tcp|tlsproxy MBYTES`: tlsproxy beside a plain TCP relay (see
//!   proxy.rs).
//!   env: CERTS=dir (default: dir of this binary + /certs), NOTICKETS=1, CHUNK
//!
//! Differences from tlsperf, all small: per-side and write/read splits are
//! monotonic (wall) time of each side's calls, not thread CPU time (there
//! is no safe std API for the latter; one thread making no syscalls, so they
//! agree unless the thread is preempted); process CPU comes from
//! /proc/self/stat (10 ms ticks); heap is what the allocator was asked for
//! (malloc's own per-chunk headers, which mallinfo2 counts, are not).
//! dtls: the per-side figures are the monotonic time of each side's calls
//! (tlsperf: thread CPU); when no datagram waits, tlsperf's `poll` of up to
//! 5 ms becomes peeks with 50 us sleeps (safe std has no poll; counted in
//! idle_polls, 0 in practice on loopback).
#![forbid(unsafe_code)]

use std::alloc::System;
use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nbtls::codec::{CipherSuite, NamedGroup};
use nbtls::{ClientConfig, Error, Flags, ServerConfig, Session, Transport};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

mod proxy;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("nbtls-perf: {msg}");
    std::process::exit(1)
}

// ---------- cases and configurations ----------

#[derive(Clone, Copy, Debug)]
struct Case {
    tls13: bool,
    rsa: bool,
}

impl Case {
    fn parse(s: &str) -> Case {
        let tls13 = match s.get(..5) {
            Some("tls13") => true,
            Some("tls12") => false,
            _ => die("bad case"),
        };
        let rsa = if s.ends_with("-rsa") {
            true
        } else if s.ends_with("-ec") {
            false
        } else {
            die("bad case")
        };
        Case { tls13, rsa }
    }

    fn suite(self) -> CipherSuite {
        match (self.tls13, self.rsa) {
            (true, _) => CipherSuite::TLS_AES_128_GCM_SHA256,
            (false, false) => CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            (false, true) => CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        }
    }

    fn kind(self) -> &'static str {
        if self.rsa {
            "rsa"
        } else {
            "ec"
        }
    }
}

struct Paths {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

fn paths(case: Case) -> Paths {
    let dir = match std::env::var_os("CERTS") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().unwrap_or_else(|e| die(format!("current_exe: {e}")));
            exe.parent().unwrap_or(Path::new(".")).join("certs")
        }
    };
    let k = case.kind();
    Paths {
        cert: dir.join(format!("server-{k}.pem")),
        key: dir.join(format!("server-{k}.key")),
        ca: dir.join(format!("ca-{k}.pem")),
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .is_some_and(|v| v != 0)
}

#[derive(Clone)]
struct Configs {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

fn configs(case: Case, keep_peer_certificates: bool) -> Configs {
    let p = paths(case);
    let groups = [NamedGroup::X25519, NamedGroup::SECP256R1];
    let build = || -> nbtls::Result<Configs> {
        let client = ClientConfig::with_trust_file(&p.ca)?
            .cipher_suites(&[case.suite()])?
            .groups(&groups)?
            .key_share_groups(&[NamedGroup::X25519])?
            // tlsperf's clients never resume: every handshake is full.
            .session_store(None)
            .keep_peer_certificates(keep_peer_certificates);
        let mut server = ServerConfig::from_pem_files(&p.cert, &p.key)?
            .cipher_suites(&[case.suite()])?
            .groups(&groups)?
            .keep_peer_certificates(keep_peer_certificates);
        if env_flag("NOTICKETS") {
            server = server.ticketer(None).tickets(0);
        }
        Ok(Configs {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    };
    build().unwrap_or_else(|e| die(format!("config (certs from {}): {e}", p.cert.display())))
}

// ---------- in-memory byte queues, as tlsperf's `struct q` ----------

#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    off: usize,
}

impl Queue {
    fn push(&mut self, data: &[u8]) {
        if self.off == self.buf.len() {
            self.buf.clear();
            self.off = 0;
        }
        self.buf.extend_from_slice(data);
    }

    fn pop(&mut self, out: &mut [u8]) -> usize {
        let avail = &self.buf[self.off..];
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.off += n;
        if self.off == self.buf.len() {
            self.buf.clear();
            self.off = 0;
        }
        n
    }
}

type SharedQueue = Rc<RefCell<Queue>>;

/// One end of two queues: never blocks on push, `WouldBlock` on an empty pull.
struct QueueTransport {
    incoming: SharedQueue,
    outgoing: SharedQueue,
}

impl Transport for QueueTransport {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.outgoing.borrow_mut().push(data);
        Ok(data.len())
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.borrow_mut().pop(buf) {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
}

type MemSession = Session<QueueTransport>;

/// Time spent in each side's calls (session creation included: the client
/// makes its key share when created, OpenSSL and GnuTLS in the first
/// handshake call).
#[derive(Default)]
struct SideTimes {
    client: Duration,
    server: Duration,
}

fn new_pair(cfg: &Configs, times: &mut SideTimes) -> (Box<MemSession>, Box<MemSession>) {
    let c2s = SharedQueue::default();
    let s2c = SharedQueue::default();
    let t0 = Instant::now();
    let c = Session::client(
        cfg.client.clone(),
        "localhost",
        QueueTransport {
            incoming: s2c.clone(),
            outgoing: c2s.clone(),
        },
        Flags::NONBLOCK,
    )
    .unwrap_or_else(|e| die(format!("client session: {e}")));
    let t1 = Instant::now();
    let s = Session::server(
        cfg.server.clone(),
        QueueTransport {
            incoming: c2s,
            outgoing: s2c,
        },
        Flags::NONBLOCK,
    )
    .unwrap_or_else(|e| die(format!("server session: {e}")));
    let t2 = Instant::now();
    times.client += t1 - t0;
    times.server += t2 - t1;
    (Box::new(c), Box::new(s))
}

fn step<T: Transport>(s: &mut Session<T>) -> bool {
    match s.handshake() {
        Ok(()) => true,
        Err(Error::Again | Error::Interrupted) => false,
        Err(e) => die(format!("nbtls handshake failed: {e}")),
    }
}

fn mem_handshake(c: &mut MemSession, s: &mut MemSession, times: &mut SideTimes) {
    let (mut cd, mut sd) = (false, false);
    for _ in 0..64 {
        if cd && sd {
            break;
        }
        let a = Instant::now();
        if !cd {
            cd = step(c);
        }
        let b = Instant::now();
        if !sd {
            sd = step(s);
        }
        let e = Instant::now();
        times.client += b - a;
        times.server += e - b;
    }
    if !(cd && sd) {
        die("handshake did not finish");
    }
}

/// Reads what the client has (tickets); returns application bytes read.
fn drain(c: &mut MemSession, buf: &mut [u8]) -> usize {
    let mut got = 0;
    loop {
        match c.recv(buf) {
            Ok(0) => die("peer closed"),
            Ok(n) => got += n,
            Err(Error::Again | Error::Interrupted) => return got,
            Err(e) => die(format!("recv: {e}")),
        }
    }
}

fn describe<T: Transport>(c: &Session<T>) {
    let i = c.info();
    let name = |o: Option<String>| o.unwrap_or_else(|| "?".into());
    println!(
        "negotiated {} {} group={} peer_sig={} peer_certs={} verify=ok",
        name(i.version.map(|v| v.to_string())),
        name(i.suite.map(|v| v.to_string())),
        name(i.group.map(|v| v.to_string())),
        name(i.peer_signature_scheme.map(|v| v.to_string())),
        i.peer_certificates.len(),
    );
}

// ---------- process CPU and RSS ----------

/// User + system CPU seconds of this process (/proc/self/stat, in ticks).
fn cpu_s() -> f64 {
    proc_cpu_s("/proc/self/stat")
}

/// User + system CPU seconds from a `/proc/PID/stat` file.
fn proc_cpu_s(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let tick = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(14) + tick(15)) / 100.0
}

fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

// ---------- modes ----------

fn mode_hs(case: Case, secs: f64) {
    let cfg = configs(case, true);
    let mut n: u64 = 0;
    let mut times = SideTimes::default();
    let (t0, c0) = (Instant::now(), cpu_s());
    let mut t;
    loop {
        for _ in 0..16 {
            let (mut c, mut s) = new_pair(&cfg, &mut times);
            mem_handshake(&mut c, &mut s, &mut times);
            if n == 0 {
                describe(&c);
            }
            n += 1;
        }
        t = t0.elapsed().as_secs_f64();
        if t >= secs {
            break;
        }
    }
    let cpu = cpu_s() - c0;
    let nf = n as f64;
    let (cw, sw) = (times.client.as_secs_f64(), times.server.as_secs_f64());
    // Per-side CPU: the process CPU split in the ratio of each side's
    // (monotonic) time, so preemption by other processes is not counted.
    let side = |w: f64| cpu * w / (cw + sw).max(f64::MIN_POSITIVE) * 1e6 / nf;
    println!(
        "handshakes {n} wall_s {t:.3} hs_per_s {:.1} cpu_us_per_hs {:.1} client_us_per_hs {:.1} server_us_per_hs {:.1} client_wall_us_per_hs {:.1} server_wall_us_per_hs {:.1}",
        nf / t,
        cpu * 1e6 / nf,
        side(cw),
        side(sw),
        cw * 1e6 / nf,
        sw * 1e6 / nf,
    );
}

/// An established session's two record keys each hold an aws-lc
/// `EVP_AEAD_CTX` (584 bytes plus OPENSSL_malloc's 8-byte length prefix),
/// allocated by C malloc, which the counting allocator does not see; the
/// size was measured with `valgrind --tool=dhat` (aws-lc-rs 1.19).
const AWS_LC_AEAD_CTX_BYTES: usize = 592;
const AEAD_CONTEXTS_PER_SESSION: usize = 2;

fn mem_run(case: Case, n: usize, keep_server: bool, keep_peer_certificates: bool) {
    let cfg = configs(case, keep_peer_certificates);
    let idle_in = SharedQueue::default();
    let idle_out = SharedQueue::default();
    let mut junk = [0u8; 256];
    let mut times = SideTimes::default();
    let mut keep: Vec<Box<MemSession>> = Vec::with_capacity(n);
    // Warm-up: lazy global state, the thread's record buffer pool.
    for _ in 0..20 {
        let (mut c, mut s) = new_pair(&cfg, &mut times);
        mem_handshake(&mut c, &mut s, &mut times);
        drain(&mut c, &mut junk);
    }
    let r0 = rss_bytes();
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        let (mut c, mut s) = new_pair(&cfg, &mut times);
        mem_handshake(&mut c, &mut s, &mut times);
        // The client takes in what followed the handshake (tickets).
        if drain(&mut c, &mut junk) > 0 {
            die("unexpected app data");
        }
        let idle = QueueTransport {
            incoming: idle_in.clone(),
            outgoing: idle_out.clone(),
        };
        let mut kept = if keep_server { s } else { c };
        *kept.transport_mut() = idle;
        if kept.buffered_bytes() != 0 {
            eprintln!(
                "note: idle session holds {} buffer bytes",
                kept.buffered_bytes()
            );
        }
        keep.push(kept);
    }
    let st = region.change();
    let r1 = rss_bytes();
    // stats_alloc counts a realloc's growth in bytes_allocated too.
    let rust_heap = st.bytes_allocated as f64 - st.bytes_deallocated as f64;
    let live = st.allocations as f64 - st.deallocations as f64;
    let nf = n as f64;
    let aws_lc = (AEAD_CONTEXTS_PER_SESSION * AWS_LC_AEAD_CTX_BYTES) as f64;
    println!(
        "side {} keep_peer_certificates {} sessions {n} heap_bytes_per_session {:.0} rss_bytes_per_session {:.0} rust_heap_bytes {:.0} aws_lc_heap_bytes {aws_lc:.0} live_rust_allocations {:.1} session_struct_bytes {}",
        if keep_server { "server" } else { "client" },
        u8::from(keep_peer_certificates),
        rust_heap / nf + aws_lc,
        (r1 - r0) / nf,
        rust_heap / nf,
        live / nf,
        std::mem::size_of::<MemSession>(),
    );
    drop(keep);
}

/// Each measurement runs in a fresh process, so memory freed by an earlier
/// one (and kept by malloc) does not hide RSS growth (tlsperf calls
/// malloc_trim instead, which safe Rust cannot).
fn mode_mem(case_name: &str, n: usize) {
    let exe = std::env::current_exe().unwrap_or_else(|e| die(format!("current_exe: {e}")));
    for keep_certs in ["1", "0"] {
        for side in ["server", "client"] {
            let _ = io::stdout().flush();
            let status = Command::new(&exe)
                .args(["mem-one", case_name, &n.to_string(), side, keep_certs])
                .status()
                .unwrap_or_else(|e| die(format!("spawn: {e}")));
            if !status.success() {
                die("mem measurement failed");
            }
        }
    }
}

fn chunk_size() -> usize {
    std::env::var("CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&c| c > 0)
        .unwrap_or(16384)
}

fn mode_membulk(case: Case, mbytes: u64) {
    let total = mbytes << 20;
    let chunk = chunk_size();
    let cfg = configs(case, true);
    let mut times = SideTimes::default();
    let (mut c, mut s) = new_pair(&cfg, &mut times);
    mem_handshake(&mut c, &mut s, &mut times);
    let mut rbuf = vec![0u8; 65536];
    let wbuf = vec![b'x'; chunk];
    drain(&mut c, &mut rbuf);
    // Warm-up: one chunk, so queues and pooled buffers reach their size.
    let mut w = 0;
    while w < chunk {
        w += s
            .send(&wbuf[w..])
            .unwrap_or_else(|e| die(format!("send: {e}")));
    }
    drain(&mut c, &mut rbuf);
    let (t0, c0) = (Instant::now(), cpu_s());
    // After cpu_s(), which allocates to read /proc.
    let region = Region::new(GLOBAL);
    let mut tw = Duration::ZERO;
    let (mut sent, mut got) = (0u64, 0u64);
    while sent < total {
        let n = (total - sent).min(chunk as u64) as usize;
        let w0 = Instant::now();
        let mut w = 0;
        while w < n {
            w += s
                .send(&wbuf[w..n])
                .unwrap_or_else(|e| die(format!("send: {e}")));
        }
        tw += w0.elapsed();
        sent += n as u64;
        got += drain(&mut c, &mut rbuf) as u64;
    }
    // The established data path allocates nothing per record (issue 6):
    // the whole measured loop, both sides and the harness, is checked.
    let allocations = region.change().allocations;
    let t = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - c0;
    if got != total {
        die("membulk: short read");
    }
    if allocations != 0 {
        die(format!(
            "membulk: {allocations} heap allocations on the established data path (want 0)"
        ));
    }
    let chunks = (total / chunk as u64) as f64;
    let tw = tw.as_secs_f64();
    println!(
        "membulk_bytes {total} chunk {chunk} MBps {:.1} write_us_per_chunk {:.2} read_us_per_chunk {:.2} wall_s {t:.3} cpu_s {cpu:.3} cpu_MBps {:.1} heap_allocations {allocations}",
        total as f64 / 1e6 / t,
        tw * 1e6 / chunks,
        (t - tw) * 1e6 / chunks,
        total as f64 / 1e6 / cpu.max(f64::MIN_POSITIVE),
    );
}

/// The receiving side of `bulk`, run as a child process (tlsperf forks).
fn bulk_client(case: Case, mbytes: u64, port: u16) {
    let total = mbytes << 20;
    let chunk = chunk_size();
    let cfg = configs(case, true);
    let t0 = Instant::now();
    let tcp =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| die(format!("connect: {e}")));
    let mut c = Session::client(cfg.client, "localhost", tcp, Flags::NONE)
        .unwrap_or_else(|e| die(format!("client session: {e}")));
    c.handshake()
        .unwrap_or_else(|e| die(format!("handshake: {e}")));
    let t1 = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut got = 0u64;
    while got < total {
        match c.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(Error::Interrupted) => {}
            Err(e) => die(format!("recv: {e}")),
        }
    }
    let t2 = Instant::now();
    if got != total {
        die(format!("got {got} of {total}"));
    }
    let data = (t2 - t1).as_secs_f64();
    println!(
        "bytes {total} chunk {chunk} hs_ms {:.3} data_s {data:.4} MBps {:.1} MBps_incl_hs {:.1} client_cpu_s_per_GB {:.3}",
        (t1 - t0).as_secs_f64() * 1e3,
        total as f64 / 1e6 / data,
        total as f64 / 1e6 / (t2 - t0).as_secs_f64(),
        cpu_s() / (total as f64 / 1e9),
    );
    let _ = io::stdout().flush();
}

fn mode_bulk(case: Case, case_name: &str, mbytes: u64) {
    let total = mbytes << 20;
    let chunk = chunk_size();
    let cfg = configs(case, true);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(format!("bind: {e}")));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| die(format!("local_addr: {e}")))
        .port();
    let _ = io::stdout().flush();
    let exe = std::env::current_exe().unwrap_or_else(|e| die(format!("current_exe: {e}")));
    let mut child = Command::new(exe)
        .args([
            "bulk-client",
            case_name,
            &mbytes.to_string(),
            &port.to_string(),
        ])
        .spawn()
        .unwrap_or_else(|e| die(format!("spawn: {e}")));
    let (tcp, _) = listener
        .accept()
        .unwrap_or_else(|e| die(format!("accept: {e}")));
    drop(listener);
    let mut s = Session::server(cfg.server, tcp, Flags::NONE)
        .unwrap_or_else(|e| die(format!("server session: {e}")));
    s.handshake()
        .unwrap_or_else(|e| die(format!("handshake: {e}")));
    let buf = vec![b'x'; chunk];
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(chunk as u64) as usize;
        let mut w = 0;
        while w < n {
            match s.send(&buf[w..n]) {
                Ok(k) => w += k,
                Err(Error::Interrupted) => {}
                Err(e) => die(format!("send: {e}")),
            }
        }
        sent += n as u64;
    }
    let scpu = cpu_s();
    let status = child.wait().unwrap_or_else(|e| die(format!("wait: {e}")));
    println!("server_cpu_s_per_GB {:.3}", scpu / (total as f64 / 1e9));
    drop(s);
    if !status.success() {
        die("client failed");
    }
}

// ---------- DTLS 1.2 handshakes over UDP loopback, one thread ----------

fn udp_pair() -> (UdpSocket, UdpSocket) {
    let bind = || UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| die(format!("udp bind: {e}")));
    let (c, s) = (bind(), bind());
    let addr = |u: &UdpSocket| {
        u.local_addr()
            .unwrap_or_else(|e| die(format!("local_addr: {e}")))
    };
    let (ca, sa) = (addr(&c), addr(&s));
    for (u, peer) in [(&c, sa), (&s, ca)] {
        u.connect(peer)
            .unwrap_or_else(|e| die(format!("udp connect: {e}")));
        u.set_nonblocking(true)
            .unwrap_or_else(|e| die(format!("nonblocking: {e}")));
    }
    (c, s)
}

/// Whether a datagram waits on the (non-blocking) socket.
fn readable(u: &UdpSocket) -> bool {
    let mut probe = [0u8; 1];
    u.peek(&mut probe).is_ok()
}

fn udp_drain(u: &UdpSocket) {
    let mut b = [0u8; 2048];
    while u.recv(&mut b).is_ok() {}
}

fn mode_dtls(case: Case, secs: f64) {
    if case.tls13 {
        die("dtls mode: use a tls12-* case (DTLS 1.2 with the same suite)");
    }
    let base = configs(case, true);
    // tlsperf runs OpenSSL and GnuTLS without the HelloVerifyRequest
    // exchange; nbtls sends one by default.
    let server_cfg = Arc::new((*base.server).clone().dtls_cookies(None));
    let client_cfg = base.client;
    let (mut cs, mut ss) = udp_pair();
    let client_id = cs
        .local_addr()
        .unwrap_or_else(|e| die(format!("local_addr: {e}")))
        .to_string();
    let flags = Flags::DATAGRAM | Flags::NONBLOCK;
    let (mut n, mut polls) = (0u64, 0u64);
    let mut times = SideTimes::default();
    let (t0, c0) = (Instant::now(), cpu_s());
    let mut t;
    loop {
        let a = Instant::now();
        let mut c = Session::client(client_cfg.clone(), "localhost", cs, flags)
            .unwrap_or_else(|e| die(format!("client session: {e}")));
        c.set_mtu(1400);
        let b = Instant::now();
        let mut s = Session::server_datagram(server_cfg.clone(), client_id.as_bytes(), ss, flags)
            .unwrap_or_else(|e| die(format!("server session: {e}")));
        s.set_mtu(1400);
        let e = Instant::now();
        times.client += b - a;
        times.server += e - b;
        let (mut cd, mut sd) = (false, false);
        let tstart = Instant::now();
        while !(cd && sd) {
            let a = Instant::now();
            if !cd {
                cd = step(&mut c);
            }
            let b = Instant::now();
            if !sd {
                sd = step(&mut s);
            }
            let e = Instant::now();
            times.client += b - a;
            times.server += e - b;
            if !(cd && sd) {
                // tlsperf polls both sockets and, when neither is readable,
                // waits up to 5 ms (a retransmission timer is running).
                if !readable(c.transport()) && !readable(s.transport()) {
                    polls += 1;
                    let w = Instant::now();
                    while w.elapsed() < Duration::from_millis(5)
                        && !readable(c.transport())
                        && !readable(s.transport())
                    {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
                if tstart.elapsed() > Duration::from_secs(5) {
                    die("dtls handshake stuck (lost datagram?)");
                }
            }
        }
        if n == 0 {
            describe(&c);
        }
        cs = c.into_transport();
        ss = s.into_transport();
        udp_drain(&cs);
        udp_drain(&ss);
        n += 1;
        t = t0.elapsed().as_secs_f64();
        if t >= secs {
            break;
        }
    }
    let cpu = cpu_s() - c0;
    let nf = n as f64;
    let (cw, sw) = (times.client.as_secs_f64(), times.server.as_secs_f64());
    println!(
        "dtls_handshakes {n} wall_s {t:.3} hs_per_s {:.1} cpu_us_per_hs {:.1} client_us_per_hs {:.1} server_us_per_hs {:.1} idle_polls {polls}",
        nf / t,
        cpu * 1e6 / nf,
        cw * 1e6 / nf,
        sw * 1e6 / nf,
    );
}

// ---------- raw-crypto limits ----------

fn limit_membulk(mbytes: u64) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    const CHUNK: usize = 16384;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).expect("AES key"));
    let mut buf = vec![b'x'; CHUNK + 16];
    let header = [23u8, 3, 3, 0x40, 0x11];
    let chunks = ((mbytes << 20) / CHUNK as u64).max(1);
    let nonce = |i: u64| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&i.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    let (mut ts, mut to) = (Duration::ZERO, Duration::ZERO);
    let (t0, c0) = (Instant::now(), cpu_s());
    for i in 0..chunks {
        let a = Instant::now();
        let tag = key
            .seal_in_place_separate_tag(nonce(i), Aad::from(header), &mut buf[..CHUNK])
            .expect("seal");
        buf[CHUNK..].copy_from_slice(tag.as_ref());
        let b = Instant::now();
        let plain = key
            .open_in_place(nonce(i), Aad::from(header), &mut buf)
            .expect("open");
        std::hint::black_box(plain);
        to += b.elapsed();
        ts += b - a;
    }
    let t = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - c0;
    let bytes = (chunks * CHUNK as u64) as f64;
    let cf = chunks as f64;
    println!(
        "limit membulk aes128gcm_seal_open_16k_MBps {:.1} seal_us_per_chunk {:.2} open_us_per_chunk {:.2} cpu_MBps {:.1}",
        bytes / 1e6 / t,
        ts.as_secs_f64() * 1e6 / cf,
        to.as_secs_f64() * 1e6 / cf,
        bytes / 1e6 / cpu.max(f64::MIN_POSITIVE),
    );
}

/// The asymmetric cryptography of one full handshake: two X25519 key
/// pairs and agreements, one signature by the server key, two
/// verifications by the client (the leaf's certificate signature, by a CA
/// key of the same kind, and the handshake signature).
fn limit_hs(case: Case, secs: f64) {
    use aws_lc_rs::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, X25519};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

    let p = paths(case);
    let der = nbtls::x509::load_private_key(&p.key).unwrap_or_else(|e| die(e));
    let rng = SystemRandom::new();
    let msg = [0x20u8; 130];
    let mut sign_verify: Box<dyn FnMut()> = if case.rsa {
        let kp = RsaKeyPair::from_pkcs8(der.secret_der()).unwrap_or_else(|e| die(e));
        let public = kp.public_key().as_ref().to_vec();
        let mut sig = vec![0u8; kp.public_modulus_len()];
        let rng = rng.clone();
        Box::new(move || {
            kp.sign(&signature::RSA_PSS_SHA256, &rng, &msg, &mut sig)
                .expect("sign");
            let pk =
                signature::UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, &public);
            for _ in 0..2 {
                pk.verify(&msg, &sig).expect("verify");
            }
        })
    } else {
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let kp = EcdsaKeyPair::from_pkcs8(alg, der.secret_der()).unwrap_or_else(|e| die(e));
        let public = kp.public_key().as_ref().to_vec();
        let rng = rng.clone();
        Box::new(move || {
            let sig = kp.sign(&rng, &msg).expect("sign");
            let pk = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &public);
            for _ in 0..2 {
                pk.verify(&msg, sig.as_ref()).expect("verify");
            }
        })
    };
    let kx = || {
        let a = EphemeralPrivateKey::generate(&X25519, &rng).expect("x25519");
        let b = EphemeralPrivateKey::generate(&X25519, &rng).expect("x25519");
        let (pa, pb) = (
            a.compute_public_key().expect("pub"),
            b.compute_public_key().expect("pub"),
        );
        let s1 = agree_ephemeral(a, UnparsedPublicKey::new(&X25519, pb.as_ref()), (), |s| {
            Ok(s[0])
        });
        let s2 = agree_ephemeral(b, UnparsedPublicKey::new(&X25519, pa.as_ref()), (), |s| {
            Ok(s[0])
        });
        std::hint::black_box((s1.expect("agree"), s2.expect("agree")));
    };
    let (t0, c0) = (Instant::now(), cpu_s());
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            kx();
            sign_verify();
            n += 1;
        }
    }
    let t = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - c0;
    println!(
        "limit hs raw_crypto_us_per_hs {:.1} hs_per_s {:.1} cpu_us_per_hs {:.1} (2 x25519 keygen+agree, 1 {} sign, 2 verify)",
        t * 1e6 / n as f64,
        n as f64 / t,
        cpu * 1e6 / n as f64,
        if case.rsa { "rsa-pss-2048" } else { "ecdsa-p256" },
    );
}

fn usage() -> ! {
    eprintln!(
        "usage: nbtls-perf [nbtls] hs|mem|membulk|bulk|dtls|limit tls13-ec|tls12-ec|tls13-rsa|tls12-rsa ARG\n       nbtls-perf proxy tcp|tlsproxy MBYTES"
    );
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| die(format!("bad argument {s:?}")))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("nbtls") {
        args.remove(0);
    }
    if args.len() < 3 {
        usage();
    }
    let (mode, case_name, a) = (args[0].as_str(), args[1].as_str(), args[2].as_str());
    match mode {
        "proxy" => return proxy::mode_proxy(case_name, arg(a)),
        "relay" => {
            let up = args.get(3).map(|p| arg(p)).unwrap_or_else(|| usage());
            return proxy::run_relay(arg(a), up);
        }
        _ => {}
    }
    let case = Case::parse(case_name);
    match mode {
        "hs" => mode_hs(case, arg(a)),
        "mem" => mode_mem(case_name, arg(a)),
        "mem-one" => {
            let (Some(side), Some(keep)) = (args.get(3), args.get(4)) else {
                usage()
            };
            mem_run(case, arg(a), side == "server", keep == "1")
        }
        "membulk" => mode_membulk(case, arg(a)),
        "bulk" => mode_bulk(case, case_name, arg(a)),
        "bulk-client" => {
            let port = args.get(3).map(|p| arg(p)).unwrap_or_else(|| usage());
            bulk_client(case, arg(a), port)
        }
        "limit" => {
            limit_membulk(arg(a));
            limit_hs(case, 1.0);
        }
        "dtls" => mode_dtls(case, arg(a)),
        _ => usage(),
    }
}
