//! Test-side helpers: start the real `tlsproxy` binary, plain TCP servers on
//! threads, nbtls clients and servers, memory readings from /proc. Every
//! wait is bounded.
#![allow(dead_code)]

/// The interop harness of the nbtls tests (tool facts, bounded waits).
#[path = "../../../nbtls/tests/common/peers.rs"]
pub mod peers;
pub mod pki;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nbtls::{ClientConfig, Error as TlsError, Flags, ServerConfig, Session, Shutdown};

#[allow(unused_imports)]
pub use peers::{require_tool, TIMEOUT};
pub use pki::pki;

pub const BIN: &str = env!("CARGO_BIN_EXE_tlsproxy");
const POLL: Duration = Duration::from_millis(10);

/// A running `tlsproxy`; killed on drop (its log is printed if the test
/// is failing).
pub struct Proxy {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    pub port: u16,
    status: Option<ExitStatus>,
}

impl Proxy {
    /// Starts `tlsproxy -l 127.0.0.1:0 <args>` and waits until it listens.
    pub fn start(args: &[&str]) -> Proxy {
        Self::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut all = vec!["-l", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut p = Self::spawn(&all, env);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(port) = p.listening_port() {
                p.port = port;
                return p;
            }
            if let Some(st) = p.try_status() {
                p.drain_reader();
                panic!("tlsproxy exited ({st}) before listening:\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "tlsproxy not listening after {TIMEOUT:?}:\n{}",
                p.log()
            );
            thread::sleep(POLL);
        }
    }

    /// Starts the binary with exactly `args` (no wait).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .env_remove("SSLKEYLOGFILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tlsproxy");
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        Proxy {
            child,
            log,
            reader: Some(reader),
            port: 0,
            status: None,
        }
    }

    fn listening_port(&self) -> Option<u16> {
        let log = self.log();
        let rest = &log[log.find("listening on ")? + "listening on ".len()..];
        let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        addr.parse::<SocketAddr>().ok().map(|a| a.port())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if self.try_status().is_some() {
                self.drain_reader();
                return self.log().contains(needle);
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until `needle` occurs `n` times in the log.
    pub fn wait_count(&mut self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().matches(needle).count() >= n {
                return true;
            }
            if Instant::now() >= deadline || self.try_status().is_some() {
                return self.log().matches(needle).count() >= n;
            }
            thread::sleep(POLL);
        }
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    fn drain_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !r.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Waits for exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.try_status().is_none() {
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
        self.drain_reader();
        self.status
    }

    /// `kill -TERM PID`.
    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed");
    }

    /// (VmRSS, VmHWM) in KiB from /proc/PID/status.
    pub fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.pid())
    }

    /// The connection records logged so far.
    pub fn records(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("tlsproxy::conn"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- tlsproxy log (pid {}):\n{}",
                self.child.id(),
                self.log()
            );
        }
    }
}

/// (VmRSS, VmHWM) in KiB of a process.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The value of `key=` in a log line (`key=value` up to a space).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// A loopback listener with a deep backlog (many connections at once).
pub fn listener() -> (TcpListener, u16) {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    s.set_reuse_address(true).expect("reuseaddr");
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    s.listen(4096).expect("listen");
    let l: TcpListener = s.into();
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

pub fn spawn_small<F: FnOnce() + Send + 'static>(f: F) -> JoinHandle<()> {
    thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn thread")
}

/// A plain TCP echo server on a thread: echoes each connection until EOF,
/// then shuts down its write side.
pub fn echo_server() -> u16 {
    let (l, port) = listener();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            spawn_small(move || echo(s, usize::MAX));
        }
    });
    port
}

/// An echo server that closes its write side after echoing `limit` bytes
/// (for clients that never half-close, like `openssl s_client -quiet`).
pub fn echo_server_limited(limit: usize) -> u16 {
    let (l, port) = listener();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            spawn_small(move || echo(s, limit));
        }
    });
    port
}

fn echo(mut s: TcpStream, limit: usize) {
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let mut buf = vec![0u8; 16 * 1024];
    let mut done = 0usize;
    while done < limit {
        let want = buf.len().min(limit - done);
        match s.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
                done += n;
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    // Drain until the peer closes, so our close sends no RST.
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Connects to 127.0.0.1:`port` with bounded timeouts.
pub fn connect(port: u16) -> TcpStream {
    peers::tcp_connect(port)
}

/// Sends `data`, half-closes, and reads until EOF (on a second thread so
/// neither direction can stall the other). Returns what came back.
pub fn round_trip(port: u16, data: &[u8]) -> io::Result<Vec<u8>> {
    let s = connect(port);
    round_trip_on(s, data)
}

pub fn round_trip_on(s: TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = s.try_clone()?;
    let reader = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        r.read_to_end(&mut got)?;
        Ok(got)
    });
    let mut w = s;
    w.write_all(data)?;
    w.shutdown(std::net::Shutdown::Write)?;
    reader
        .join()
        .map_err(|_| io::Error::other("reader panicked"))?
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "tlsproxy-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Sends `data` and reads as many bytes back before half-closing (for
/// peers that stop at the first close_notify); then expects EOF.
pub fn echo_then_close(port: u16, data: &[u8]) -> io::Result<Vec<u8>> {
    let s = connect(port);
    let mut r = s.try_clone()?;
    let n = data.len();
    let reader = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut got = vec![0u8; n];
        r.read_exact(&mut got)?;
        Ok(got)
    });
    let mut w = s;
    w.write_all(data)?;
    let got = reader
        .join()
        .map_err(|_| io::Error::other("reader panicked"))??;
    w.shutdown(std::net::Shutdown::Write)?;
    let mut rest = Vec::new();
    w.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        return Err(io::Error::other(format!(
            "{} bytes after the echo",
            rest.len()
        )));
    }
    Ok(got)
}

/// An nbtls client config that trusts the test CA.
pub fn client_config() -> ClientConfig {
    client_config_trusting(&pki().ca)
}

/// An nbtls server config presenting the test server certificate.
pub fn server_config() -> ServerConfig {
    ServerConfig::from_pem_files(&pki().server.chain, &pki().server.key).expect("server config")
}

/// An nbtls client config that trusts the PEM file `ca`.
pub fn client_config_trusting(ca: &std::path::Path) -> ClientConfig {
    ClientConfig::with_trust_file(ca).expect("trust file")
}

/// A blocking nbtls client session to 127.0.0.1:`port`, handshake done.
pub fn tls_connect(port: u16, cfg: ClientConfig, name: &str) -> Session<TcpStream> {
    let s = connect(port);
    let mut sess = Session::client(Arc::new(cfg), name, s, Flags::NONE).expect("client session");
    sess.handshake().expect("TLS handshake through the proxy");
    sess
}

/// Writes all of `data` through a blocking session.
pub fn tls_send_all(s: &mut Session<TcpStream>, mut data: &[u8]) {
    while !data.is_empty() {
        let n = s.send(data).expect("TLS send");
        data = &data[n..];
    }
}

/// Reads exactly `n` bytes.
pub fn tls_recv_exact(s: &mut Session<TcpStream>, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match s.recv(&mut out[got..]) {
            Ok(0) => panic!("close_notify after {got} of {n} bytes"),
            Ok(k) => got += k,
            Err(e) => panic!("TLS recv after {got} of {n} bytes: {e}"),
        }
    }
    out
}

/// Reads until close_notify; returns the data.
pub fn tls_recv_to_close(s: &mut Session<TcpStream>) -> Result<Vec<u8>, TlsError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.recv(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// An nbtls TLS server on a thread for each accepted connection, running
/// `serve` after the handshake. Connections whose handshake fails (the
/// proxy's start-up probe) are skipped.
pub fn tls_server<F>(cfg: ServerConfig, serve: F) -> u16
where
    F: Fn(&mut Session<TcpStream>) + Send + Sync + 'static,
{
    let (l, port) = listener();
    let cfg = Arc::new(cfg);
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (cfg, serve) = (cfg.clone(), serve.clone());
            spawn_small(move || {
                let _ = s.set_read_timeout(Some(TIMEOUT));
                let _ = s.set_write_timeout(Some(TIMEOUT));
                let Ok(mut sess) = Session::server(cfg, s, Flags::NONE) else {
                    return;
                };
                if sess.handshake().is_ok() {
                    serve(&mut sess);
                }
            });
        }
    });
    port
}

/// Closes with close_notify and waits for the peer's.
pub fn tls_close(s: &mut Session<TcpStream>) {
    s.bye(Shutdown::Write).expect("bye");
}

/// Polls `f` until it returns true, up to `timeout`.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}
