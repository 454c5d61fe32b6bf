//! Run the OpenSSL and GnuTLS command-line tools as TLS peers, with a bound on every wait.
//!
//! Facts checked on Debian 12 (OpenSSL 3.0.19, GnuTLS 3.7.9); interop tests rely on them:
//!
//! * `openssl s_server` prints `ACCEPT` on stdout once it listens (also with `-dtls`),
//!   nothing with `-quiet`; readiness here is that line (with `-quiet`: the port showing
//!   up in /proc/net), so no probe connection is spent (a probe would use up a
//!   `-naccept 1` and log an error). A failed bind prints `unable to bind socket` on
//!   stderr and exits. After a handshake it prints `CIPHER is ...` on
//!   stdout; received data goes to stdout. At stdin EOF it prints `DONE`, shuts the
//!   current connection down at once (even mid-handshake, `-ign_eof` does not help,
//!   `-quiet` does), and with `-naccept 1` exits: keep its stdin open (a [`Peer`] does
//!   until [`Peer::close_stdin`]). With `-dtls` and stdin at EOF it exits at once.
//!   `-www` answers `GET /` with a status page and ignores stdin.
//! * `openssl s_client` prints `CONNECTED(...)` after TCP connect, then the handshake
//!   summary on stdout ending with `Verify return code: 0 (ok)` (the verify result, not a
//!   failure, unless `-verify_return_error`), and `Post-Handshake New Session Ticket
//!   arrived:` for each TLS 1.3 ticket; `depth=...`/`verify return:1` and `DONE` (at
//!   stdin EOF) go to stderr. `-servername` only sets SNI: the name is checked only with
//!   `-verify_hostname NAME` / `-verify_ip ADDR`. `-quiet` leaves only application data
//!   on stdout and implies `-ign_eof`. Without `-ign_eof`, stdin EOF shuts down at once.
//! * `gnutls-serv` prints `HTTP Server listening on IPv4 0.0.0.0 port N...done` (`Echo
//!   Server` with `--echo`, `UDP ...` prefix with `-u`) on stderr, then the same for
//!   IPv6 `::`, also with `-q`; it binds 0.0.0.0, not just loopback. If the IPv4 bind
//!   fails it prints `...bind() failed: Address already in use` and keeps running on
//!   IPv6 only (so the start is retried on another port). It requests (not requires) a client
//!   certificate unless `-a`. Its stdout is block-buffered into a pipe, so it is run
//!   under `stdbuf -oL` when available to see per-connection lines (`* Accepted
//!   connection from`, `- Description: (TLS1.3-X.509)-...`) as they happen. It does not
//!   read stdin; it runs until killed.
//! * `gnutls-cli` flushes its stdout: `- Status: The certificate is trusted.`, `-
//!   Handshake was completed`, received data, `- Peer has closed the GnuTLS connection`.
//!   Errors (`*** Fatal error: ...`) go to stderr, exit status 1. It verifies against
//!   `--x509cafile` (system store otherwise) and the host operand: with `127.0.0.1` it
//!   checks the IP SAN and sends no SNI; `--sni-hostname N` sets SNI only;
//!   `--verify-hostname N` sets the checked name; `--insecure` skips verification.
//!   `--logfile /dev/stderr` moves all its info lines to stderr, leaving only application
//!   data on stdout (for SHA-256-checked transfers). At stdin EOF it sends close_notify
//!   and exits 0 at once over TLS, but only after about 2 s with `-u` (DTLS).

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Default bound for any wait in a test.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// Bound for a server peer to start listening.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// How many bytes of each stream a failing test prints per peer.
const DUMP_TAIL: usize = 4096;

/// A port that was free on 127.0.0.1 a moment ago, never handed out twice by this
/// process. (Another process may still take it: server starts retry on "in use".)
pub fn pick_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if lock(&HANDED_OUT).insert(port) {
            return port;
        }
    }
    panic!("no fresh ephemeral port after 1000 tries");
}

/// A listener on 127.0.0.1 with an OS-chosen port (no race), for nbtls-side servers.
pub fn tcp_listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    (listener, port)
}

/// Connect to 127.0.0.1:`port` with connect, read and write timeouts of [`TIMEOUT`], so a
/// blocking test cannot hang.
pub fn tcp_connect(port: u16) -> TcpStream {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    stream
}

/// Whether `name` is an executable file on `PATH`.
pub fn have_tool(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(name)))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Whether `CI` is set to something other than empty, `0` or `false`.
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
        Err(_) => false,
    }
}

/// The policy for tests that need a peer tool: `true` if it is installed; under CI a
/// missing tool fails the test (panics); locally the test should return early when this
/// returns `false` (a notice is printed).
pub fn require_tool(name: &str) -> bool {
    if have_tool(name) {
        return true;
    }
    if in_ci() {
        panic!("`{name}` is not on PATH but CI is set: interop tests must run in CI (scripts/install-peers.sh)");
    }
    // Straight to stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        io::stderr(),
        "note: skipping test: `{name}` not on PATH (install openssl and gnutls-bin, or run scripts/install-peers.sh)"
    );
    false
}

/// [`require_tool`] for several tools; `false` if any is missing (outside CI).
pub fn require_tools(names: &[&str]) -> bool {
    names.iter().all(|n| require_tool(n))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking reader thread cannot leave the buffer inconsistent: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn tail(bytes: &[u8], n: usize) -> String {
    let start = bytes.len().saturating_sub(n);
    let prefix = if start > 0 { "[...]" } else { "" };
    format!("{prefix}{}", String::from_utf8_lossy(&bytes[start..]))
}

/// A child process with piped stdin/stdout/stderr. Output is collected on background
/// threads; dropping the peer kills and reaps it (and prints its output if the test is
/// panicking).
pub struct Peer {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Peer {
    /// Start `program` with `args`. Panics if it cannot be started.
    pub fn spawn(program: &str, args: &[&str]) -> Peer {
        Self::spawn_labeled(format!("{program} {}", args.join(" ")), program, args)
    }

    fn spawn_labeled(label: String, program: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(program)
            .args(args)
            // Stable, English output to match against.
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{label}`: {e}"));
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, Arc::clone(&stdout)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, Arc::clone(&stderr)));
        }
        Peer {
            label,
            child,
            stdin,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    /// The command line, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Write all of `data` to the peer's stdin and flush, waiting at most [`TIMEOUT`]
    /// for the peer to take it (a pipe holds 64 KiB). After a timeout stdin is gone (as
    /// if closed). For bulk input that the peer reads only while the test does something
    /// else, use [`Peer::feed_stdin_and_close`].
    pub fn write_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        let mut stdin = self
            .stdin
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdin already closed"))?;
        // The write runs on a helper thread so a peer that stops reading cannot hang the
        // test; the thread ends when the peer is killed (EPIPE).
        let data = data.to_vec();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let result = stdin.write_all(&data).and_then(|()| stdin.flush());
            let _ = tx.send((stdin, result));
        });
        match rx.recv_timeout(TIMEOUT) {
            Ok((stdin, result)) => {
                self.stdin = Some(stdin);
                result
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("peer did not read its stdin within {TIMEOUT:?}"),
            )),
        }
    }

    /// Close the peer's stdin (EOF). See the module notes for what each tool then does.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Write `data` to stdin on a background thread, then close stdin. Join the handle
    /// to learn whether all of it was written.
    pub fn feed_stdin_and_close(&mut self, data: Vec<u8>) -> JoinHandle<io::Result<()>> {
        let stdin = self.stdin.take();
        thread::spawn(move || {
            let mut stdin = stdin
                .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdin already closed"))?;
            stdin.write_all(&data)?;
            stdin.flush()
        })
    }

    /// Everything the peer wrote to stdout so far.
    pub fn stdout_bytes(&self) -> Vec<u8> {
        lock(&self.stdout).clone()
    }

    /// Everything the peer wrote to stderr so far.
    pub fn stderr_bytes(&self) -> Vec<u8> {
        lock(&self.stderr).clone()
    }

    /// stdout so far, lossily decoded.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stdout)).into_owned()
    }

    /// stderr so far, lossily decoded.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// Whether stdout or stderr contains `needle` now.
    pub fn output_contains(&self, needle: &str) -> bool {
        contains(&lock(&self.stdout), needle.as_bytes())
            || contains(&lock(&self.stderr), needle.as_bytes())
    }

    /// How many times `needle` occurs in stdout plus stderr (non-overlapping).
    pub fn count_output(&self, needle: &str) -> usize {
        self.stdout_text().matches(needle).count() + self.stderr_text().matches(needle).count()
    }

    /// Wait until stdout or stderr contains `needle`. `false` on timeout, or as soon as
    /// the peer has exited and all its output was read without the needle.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |p| p.output_contains(needle))
    }

    /// Wait until at least `len` bytes arrived on stdout (bulk transfers). `false` on
    /// timeout or when the peer exited with less.
    pub fn wait_for_stdout_len(&mut self, len: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |p| lock(&p.stdout).len() >= len)
    }

    /// The rest (trimmed) of the first whole output line, stdout before stderr, whose
    /// trimmed text starts with `prefix`, waiting up to `timeout` for it. `None` on
    /// timeout, or once the peer exited and all its output was read without one.
    pub fn wait_for_field(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let find = |p: &Peer| {
            [p.stdout_text(), p.stderr_text()].iter().find_map(|out| {
                // Only whole lines: the last piece may still be arriving.
                let whole = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
                whole
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            })
        };
        self.wait_until(timeout, |p| find(p).is_some());
        find(self)
    }

    fn wait_until(&mut self, timeout: Duration, done: impl Fn(&Peer) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if self.has_exited() && self.readers_finished() {
                // All output is in: one last look.
                return done(self);
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }

    fn readers_finished(&self) -> bool {
        self.readers.iter().all(|r| r.is_finished())
    }

    fn has_exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        !self.has_exited()
    }

    /// Wait up to `timeout` for the process to exit. On exit, also waits (briefly) for
    /// the output threads, so `stdout_text()` afterwards holds everything.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while !self.has_exited() {
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
        // The pipes close when the process exits (no tool here forks helpers that keep
        // them); bound it anyway.
        let drain_deadline = Instant::now() + Duration::from_secs(2);
        while !self.readers_finished() && Instant::now() < drain_deadline {
            thread::sleep(Duration::from_millis(2));
        }
        self.status
    }

    /// Wait for exit and panic (with the peer's output) unless it exited with status 0.
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Some(s) if s.success() => {}
            Some(s) => panic!("peer exited with {s}\n{}", self.dump()),
            None => panic!("peer did not exit within {timeout:?}\n{}", self.dump()),
        }
    }

    /// Kill the process (if running) and reap it.
    pub fn kill(&mut self) {
        self.stdin = None;
        if !self.has_exited() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// The command line and the tail of both streams, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "--- peer `{}`\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.label,
            tail(&lock(&self.stdout), DUMP_TAIL),
            tail(&lock(&self.stderr), DUMP_TAIL),
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("{}", self.dump());
        }
        // Reader threads end at EOF on their own; joining could only add a hang.
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lock(&into).extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

/// Transport a server peer listens on, chosen from its arguments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Tcp,
    Udp,
}

/// `Some(true)` if something listens on IPv4 `port` (TCP: LISTEN state; UDP: bound),
/// read from /proc/net; `None` where /proc/net is not available.
fn port_listening_v4(port: u16, proto: Proto) -> Option<bool> {
    let (file, listen_state) = match proto {
        Proto::Tcp => ("/proc/net/tcp", "0A"),
        Proto::Udp => ("/proc/net/udp", "07"),
    };
    let text = std::fs::read_to_string(file).ok()?;
    let want = format!(":{port:04X}");
    let found = text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        local.ends_with(&want) && state == listen_state
    });
    Some(found)
}

/// How to start one kind of server peer and tell when it listens.
struct ServerSpec<'a> {
    tool: &'a str,
    args: &'a dyn Fn(u16) -> Vec<String>,
    /// Printed once the server listens on IPv4.
    ready_line: &'a dyn Fn(u16) -> String,
    /// Printed when the IPv4 bind failed (the process may keep running).
    bind_failed_line: &'a dyn Fn(u16) -> String,
    /// Also accept the port showing up in /proc/net (for servers that print nothing).
    probe_port: bool,
    proto: Proto,
    line_buffered: bool,
}

/// Start a server peer on a fresh port and wait until it listens; retries on another
/// port when the bind fails (another process took the port).
fn start_server(spec: &ServerSpec<'_>) -> (Peer, u16) {
    const ATTEMPTS: usize = 4;
    let mut last_failure = String::new();
    for _ in 0..ATTEMPTS {
        let port = pick_port();
        let args = (spec.args)(port);
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let label = format!("{} {}", spec.tool, arg_refs.join(" "));
        let mut peer = if spec.line_buffered && have_tool("stdbuf") {
            let mut wrapped = vec!["-oL", spec.tool];
            wrapped.extend_from_slice(&arg_refs);
            Peer::spawn_labeled(label, "stdbuf", &wrapped)
        } else {
            Peer::spawn_labeled(label, spec.tool, &arg_refs)
        };
        let ready = (spec.ready_line)(port);
        let bind_failed = (spec.bind_failed_line)(port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if peer.output_contains(&ready) {
                return (peer, port);
            }
            if peer.output_contains(&bind_failed) {
                break;
            }
            if spec.probe_port {
                match port_listening_v4(port, spec.proto) {
                    Some(true) => return (peer, port),
                    Some(false) => {}
                    None if spec.proto == Proto::Tcp => {
                        // No /proc: a probe connection (the server may log an error).
                        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                        if TcpStream::connect_timeout(&addr, POLL).is_ok() {
                            return (peer, port);
                        }
                    }
                    None => {}
                }
            }
            if peer.has_exited() {
                let _ = peer.wait_exit(Duration::from_secs(1));
                if peer.output_contains(&bind_failed) {
                    break;
                }
                panic!("server exited before listening\n{}", peer.dump());
            }
            if Instant::now() >= deadline {
                panic!(
                    "server not listening on port {port} after {READY_TIMEOUT:?}\n{}",
                    peer.dump()
                );
            }
            thread::sleep(POLL);
        }
        last_failure = peer.dump();
        // `peer` drops here: killed and reaped before the next attempt.
    }
    panic!("server could not bind a port in {ATTEMPTS} attempts\n{last_failure}");
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `openssl s_server -accept 127.0.0.1:PORT <args>`, started and listening. Pass
/// `-dtls`/`-dtls1_2` for DTLS. Its stdin stays open (EOF would end the connection).
pub fn openssl_server(args: &[&str]) -> (Peer, u16) {
    let proto = if args.iter().any(|a| a.starts_with("-dtls")) {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let build = |port: u16| {
        let mut v = owned(&["s_server", "-accept"]);
        v.push(format!("127.0.0.1:{port}"));
        v.extend(owned(args));
        v
    };
    start_server(&ServerSpec {
        tool: "openssl",
        args: &build,
        ready_line: &|_| "ACCEPT".to_string(),
        bind_failed_line: &|_| "unable to bind socket".to_string(),
        // `-quiet` suppresses ACCEPT.
        probe_port: args.contains(&"-quiet"),
        proto,
        line_buffered: false,
    })
}

/// `gnutls-serv --port PORT <args>` (listens on all addresses), started and listening.
/// Pass `-u`/`--udp` for DTLS. Run line-buffered so per-connection output is visible.
pub fn gnutls_server(args: &[&str]) -> (Peer, u16) {
    let proto = if args.iter().any(|a| *a == "-u" || *a == "--udp") {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let build = |port: u16| {
        let mut v = vec!["--port".to_string(), port.to_string()];
        v.extend(owned(args));
        v
    };
    start_server(&ServerSpec {
        tool: "gnutls-serv",
        args: &build,
        // Always printed on stderr, also with -q.
        ready_line: &|port| format!("IPv4 0.0.0.0 port {port}...done"),
        // It then keeps running on IPv6 only: useless for 127.0.0.1 clients.
        bind_failed_line: &|port| format!("IPv4 0.0.0.0 port {port}...bind() failed"),
        probe_port: false,
        proto,
        line_buffered: true,
    })
}

/// `openssl s_client -connect 127.0.0.1:PORT <args>`.
pub fn openssl_client(port: u16, args: &[&str]) -> Peer {
    let mut v = owned(&["s_client", "-connect"]);
    v.push(format!("127.0.0.1:{port}"));
    v.extend(owned(args));
    let refs: Vec<&str> = v.iter().map(String::as_str).collect();
    Peer::spawn("openssl", &refs)
}

/// `gnutls-cli --port PORT 127.0.0.1 <args>`: verification checks the IP SAN unless
/// `--verify-hostname` is given; no SNI unless `--sni-hostname` is given.
pub fn gnutls_client(port: u16, args: &[&str]) -> Peer {
    let mut v = vec![
        "--port".to_string(),
        port.to_string(),
        "127.0.0.1".to_string(),
    ];
    v.extend(owned(args));
    let refs: Vec<&str> = v.iter().map(String::as_str).collect();
    Peer::spawn("gnutls-cli", &refs)
}
