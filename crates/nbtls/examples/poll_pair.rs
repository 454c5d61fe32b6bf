//! An nbtls client and server driven by one thread with mio over non-blocking TCP on
//! 127.0.0.1: the GnuTLS `tlsproxy` event-loop pattern (reference/gnutls-async.md §2),
//! without its defects:
//!
//! * the handshake and `bye` are non-blocking and resumed like every other call;
//! * after `Again`, the interest registered is the `direction()` the stopped call
//!   reported, kept per operation (send, recv, handshake, bye) and cleared as soon as
//!   that operation makes progress, so no stale "write interrupted" flag lingers;
//! * an interrupted send is resumed with `send(&[])`, which returns the committed
//!   record's length, and only then is new data offered;
//! * `pending()` is checked before polling: decrypted data inside the session is
//!   invisible to poll.
//!
//! Each side sends N bytes (first argument, default 1 MiB) of a deterministic stream
//! and hashes what it receives with SHA-256; both hashes are checked against the
//! senders'. Prints one summary line and exits 0, or prints the failure and exits 1.
//!
//! Stream bytes: side `seed` (client 1, server 2), byte `i` is
//! `((i % 251) as u8).wrapping_mul(seed * 2 + 1) ^ (i >> 11) as u8`.

use std::io;
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use nbtls::x509::{CertificateDer, PrivateKeyDer, SigningKey};
use nbtls::{
    CertifiedKey, ClientConfig, Direction, Error, Flags, IoTransport, ServerConfig, Session,
    Shutdown, TrustAnchors,
};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// Bound on the whole run, and on one poll with nothing happening.
const RUN_LIMIT: Duration = Duration::from_secs(60);
const IDLE_LIMIT: Duration = Duration::from_secs(10);

fn stream_byte(seed: u8, i: u64) -> u8 {
    ((i % 251) as u8).wrapping_mul(seed * 2 + 1) ^ (i >> 11) as u8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    /// Sending and receiving the data.
    Data,
    /// All sent: closing our direction.
    Bye,
    /// Waiting for the peer's close_notify (recv returns 0).
    Drain,
    Done,
}

struct Endpoint {
    name: &'static str,
    token: Token,
    session: Session<IoTransport<TcpStream>>,
    phase: Phase,
    seed: u8,
    total: u64,
    sent: u64,
    /// The chunk offered to the send that stopped: its record is committed.
    in_flight: Option<Vec<u8>>,
    received: u64,
    sent_hash: digest::Context,
    recv_hash: digest::Context,
    /// What each stopped operation waits for; cleared when it progresses.
    send_wait: Option<Direction>,
    recv_wait: Option<Direction>,
    /// Handshake or bye.
    other_wait: Option<Direction>,
    registered: Option<Interest>,
    stops: u64,
}

impl Endpoint {
    fn new(
        name: &'static str,
        token: Token,
        session: Session<IoTransport<TcpStream>>,
        seed: u8,
        total: u64,
    ) -> Self {
        Endpoint {
            name,
            token,
            session,
            phase: Phase::Handshake,
            seed,
            total,
            sent: 0,
            in_flight: None,
            received: 0,
            sent_hash: digest::Context::new(&digest::SHA256),
            recv_hash: digest::Context::new(&digest::SHA256),
            send_wait: None,
            recv_wait: None,
            other_wait: None,
            registered: None,
            stops: 0,
        }
    }

    /// The direction to wait for after a resumable stop; `None` for Interrupted
    /// (call again at once).
    fn stopped(&mut self, e: &Error) -> Result<Option<Direction>, String> {
        match e {
            Error::Again => {
                self.stops += 1;
                Ok(Some(self.session.direction()))
            }
            Error::Interrupted => Ok(None),
            other => Err(format!("{}: {other}", self.name)),
        }
    }

    /// Runs every operation until each one waits for the socket or is finished.
    fn drive(&mut self) -> Result<(), String> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let mut progressed = false;
            match self.phase {
                Phase::Handshake => match self.session.handshake() {
                    Ok(()) => {
                        self.other_wait = None;
                        self.phase = Phase::Data;
                        progressed = true;
                    }
                    Err(e) => {
                        self.other_wait = self.stopped(&e)?;
                        progressed = self.other_wait.is_none();
                    }
                },
                Phase::Data | Phase::Drain => {
                    if self.phase == Phase::Data
                        && (self.sent < self.total || self.in_flight.is_some())
                    {
                        progressed |= self.send_step()?;
                    }
                    progressed |= self.recv_step(&mut buf)?;
                    if self.phase == Phase::Data
                        && self.sent == self.total
                        && self.in_flight.is_none()
                    {
                        self.phase = Phase::Bye;
                        progressed = true;
                    }
                }
                Phase::Bye => match self.session.bye(Shutdown::Write) {
                    Ok(()) => {
                        self.other_wait = None;
                        self.phase = Phase::Drain;
                        progressed = true;
                    }
                    Err(e) => {
                        self.other_wait = self.stopped(&e)?;
                        progressed = self.other_wait.is_none();
                    }
                },
                Phase::Done => return Ok(()),
            }
            // Data decrypted but not returned is invisible to poll: read it first.
            if !progressed && self.session.pending() == 0 {
                return Ok(());
            }
        }
    }

    fn send_step(&mut self) -> Result<bool, String> {
        let chunk = match self.in_flight.take() {
            Some(c) => c,
            None => {
                let n = (self.total - self.sent).min(16 * 1024);
                (self.sent..self.sent + n)
                    .map(|i| stream_byte(self.seed, i))
                    .collect()
            }
        };
        // A resumed send passes nothing: the record is already sealed.
        let resumed = self.send_wait.is_some();
        let r = if resumed {
            self.session.send(&[])
        } else {
            self.session.send(&chunk)
        };
        match r {
            Ok(n) => {
                if n != chunk.len() {
                    return Err(format!(
                        "{}: send took {n} of {} bytes",
                        self.name,
                        chunk.len()
                    ));
                }
                self.sent_hash.update(&chunk);
                self.sent += n as u64;
                self.send_wait = None;
                Ok(true)
            }
            Err(e) => {
                let wait = self.stopped(&e)?;
                // Interrupted: committed too; resume at once, still with &[].
                self.send_wait = Some(wait.unwrap_or(Direction::Write));
                self.in_flight = Some(chunk);
                Ok(wait.is_none())
            }
        }
    }

    fn recv_step(&mut self, buf: &mut [u8]) -> Result<bool, String> {
        match self.session.recv(buf) {
            Ok(0) => {
                self.recv_wait = None;
                if self.received != self.total {
                    return Err(format!(
                        "{}: close after {} bytes",
                        self.name, self.received
                    ));
                }
                if self.phase != Phase::Drain {
                    // The peer finished first; keep sending until we are done too.
                    return Ok(false);
                }
                self.phase = Phase::Done;
                Ok(true)
            }
            Ok(n) => {
                self.recv_wait = None;
                self.recv_hash.update(&buf[..n]);
                self.received += n as u64;
                if self.received > self.total {
                    return Err(format!("{}: received more than was sent", self.name));
                }
                Ok(true)
            }
            Err(e) => {
                self.recv_wait = self.stopped(&e)?;
                Ok(self.recv_wait.is_none())
            }
        }
    }

    /// What to poll for: the union of what the stopped operations wait for.
    fn interest(&self) -> Option<Interest> {
        let waits = [self.send_wait, self.recv_wait, self.other_wait];
        let read = waits.contains(&Some(Direction::Read));
        let write = waits.contains(&Some(Direction::Write));
        match (read, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    fn update_registration(&mut self, poll: &Poll) -> io::Result<()> {
        let want = if self.phase == Phase::Done {
            None
        } else {
            self.interest()
        };
        if want == self.registered {
            return Ok(());
        }
        let registry = poll.registry();
        let sock = &mut self.session.transport_mut().0;
        match (self.registered, want) {
            (None, Some(i)) => registry.register(sock, self.token, i)?,
            (Some(_), Some(i)) => registry.reregister(sock, self.token, i)?,
            (Some(_), None) => registry.deregister(sock)?,
            (None, None) => {}
        }
        self.registered = want;
        Ok(())
    }
}

/// A CA and a `localhost` leaf it signs: (server key, the CA certificate).
fn make_pki() -> Result<(Arc<CertifiedKey>, CertificateDer<'static>), String> {
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = rcgen::date_time_ymd(2024, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(err)?;

    let key_der = PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let key = SigningKey::from_der(&key_der).map_err(|e| e.to_string())?;
    let ca_der = CertificateDer::from(ca_cert.der().to_vec());
    let chain = vec![
        CertificateDer::from(leaf_cert.der().to_vec()),
        ca_der.clone(),
    ];
    let certified = CertifiedKey::new(chain, key).map_err(|e| e.to_string())?;
    Ok((Arc::new(certified), ca_der))
}

/// A connected pair of non-blocking mio TCP streams on 127.0.0.1.
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    let client = StdStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
    }
    Ok((TcpStream::from_std(client), TcpStream::from_std(server)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(total: u64) -> Result<String, String> {
    let (key, ca) = make_pki()?;
    let anchors = TrustAnchors::from_certs(&[ca]).map_err(|e| e.to_string())?;
    let client_cfg = Arc::new(ClientConfig::new(anchors));
    let server_cfg = Arc::new(ServerConfig::new(key));
    let (a, b) = tcp_pair().map_err(|e| format!("sockets: {e}"))?;
    let client = Session::client(client_cfg, "localhost", IoTransport(a), Flags::NONBLOCK)
        .map_err(|e| e.to_string())?;
    let server =
        Session::server(server_cfg, IoTransport(b), Flags::NONBLOCK).map_err(|e| e.to_string())?;
    let mut ends = [
        Endpoint::new("client", Token(0), client, 1, total),
        Endpoint::new("server", Token(1), server, 2, total),
    ];

    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    let mut polls = 0u64;
    // Every endpoint runs first; then only those the poller wakes.
    let mut ready = [true, true];
    loop {
        for (end, ready) in ends.iter_mut().zip(ready.iter_mut()) {
            if std::mem::take(ready) {
                end.drive()?;
            }
            end.update_registration(&poll)
                .map_err(|e| format!("{}: register: {e}", end.name))?;
        }
        if ends.iter().all(|e| e.phase == Phase::Done) {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            return Err("run limit exceeded".into());
        }
        // Buffered plaintext: no waiting (drive() drains it, so this stays rare).
        let pending = ends.iter().any(|e| e.session.pending() > 0);
        let timeout = if pending { Duration::ZERO } else { IDLE_LIMIT };
        poll.poll(&mut events, Some(timeout)).or_else(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(format!("poll: {e}"))
            }
        })?;
        polls += 1;
        for ev in events.iter() {
            ready[ev.token().0] = true;
        }
        for (i, end) in ends.iter().enumerate() {
            if end.session.pending() > 0 {
                ready[i] = true;
            }
        }
        if !pending && events.is_empty() {
            let state: Vec<String> = ends
                .iter()
                .map(|e| format!("{} {:?} wants {:?}", e.name, e.phase, e.interest()))
                .collect();
            return Err(format!(
                "stalled: nothing happened in {IDLE_LIMIT:?}: {state:?}"
            ));
        }
    }

    let [client, server] = ends;
    let suite = client.session.cipher_suite();
    let c_sent = hex(client.sent_hash.finish().as_ref());
    let s_recv = hex(server.recv_hash.finish().as_ref());
    let s_sent = hex(server.sent_hash.finish().as_ref());
    let c_recv = hex(client.recv_hash.finish().as_ref());
    if c_sent != s_recv || s_sent != c_recv {
        return Err(format!(
            "data corrupted: client->server {c_sent} vs {s_recv}, server->client {s_sent} vs {c_recv}"
        ));
    }
    Ok(format!(
        "poll_pair ok: {total} bytes each way; client->server sha256 {s_recv}; \
         server->client sha256 {c_recv}; {polls} polls, {} stops; {suite:?}; {:.0?}",
        client.stops + server.stops,
        start.elapsed()
    ))
}

fn main() -> ExitCode {
    let total = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 1 << 20,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: poll_pair [BYTES]: {e}");
            return ExitCode::from(2);
        }
    };
    match run(total) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("poll_pair failed: {e}");
            ExitCode::FAILURE
        }
    }
}
