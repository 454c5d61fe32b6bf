//! A DTLS 1.2 client and server driven by one thread with mio over real UDP sockets
//! on 127.0.0.1, both NONBLOCK: the event loop GnuTLS's dtls-stress `-nb` and
//! ex-serv-dtls use (reference/gnutls-async.md §8.3), in Rust:
//!
//! * the poll timeout is the smallest `timeout()` of the sessions (the
//!   retransmission timer or the handshake deadline), never a guess;
//! * when it expires, `handle_timeout()` runs the due timers (a retransmission is
//!   queued) and the next call on the session sends it;
//! * after `Again`, the interest registered is the `direction()` the stopped call
//!   reported; a finished session keeps reading: its `recv` also answers the peer's
//!   retransmitted flight if our last flight was lost.
//!
//! Each side sends COUNT datagrams (first argument, default 20): datagram `i` of side
//! `seed` (client 1, server 2) is `[seed, i as u32 big-endian, then 60 + i % 200 bytes
//! ((i + j) as u8) ^ seed]`. The receiver checks every byte and that each index comes
//! once. The second argument LOSE (default 0) makes the client's transport lose the
//! first LOSE datagrams it receives, so the timers have to do their work.
//! Prints one summary line and exits 0, or prints the failure and exits 1.

use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use nbtls::x509::{CertificateDer, PrivateKeyDer, SigningKey};
use nbtls::{
    CertifiedKey, ClientConfig, Direction, Error, Flags, ServerConfig, Session, Transport,
    TrustAnchors,
};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// Bound on the whole run, and on one poll with nothing due.
const RUN_LIMIT: Duration = Duration::from_secs(60);
const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// A connected non-blocking UDP socket as a datagram transport; it may lose the
/// first `lose` datagrams it receives.
struct Udp {
    sock: UdpSocket,
    lose: u32,
}

impl Transport for Udp {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sock.send(data)
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.sock.recv(buf)?;
            if self.lose == 0 {
                return Ok(n);
            }
            self.lose -= 1;
        }
    }
}

fn datagram(seed: u8, i: u32) -> Vec<u8> {
    let mut d = vec![seed];
    d.extend_from_slice(&i.to_be_bytes());
    d.extend((0..60 + i % 200).map(|j| (i + j) as u8 ^ seed));
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Data,
}

struct Endpoint {
    name: &'static str,
    token: Token,
    session: Session<Udp>,
    phase: Phase,
    seed: u8,
    count: u32,
    sent: u32,
    /// Indices received from the peer.
    seen: Vec<bool>,
    received: u32,
    /// What the last stopped call waits for.
    wait: Option<Direction>,
    registered: Option<Interest>,
}

impl Endpoint {
    fn new(name: &'static str, token: Token, session: Session<Udp>, seed: u8, count: u32) -> Self {
        Endpoint {
            name,
            token,
            session,
            phase: Phase::Handshake,
            seed,
            count,
            sent: 0,
            seen: vec![false; count as usize],
            received: 0,
            wait: None,
            registered: None,
        }
    }

    fn done(&self) -> bool {
        self.phase == Phase::Data && self.sent == self.count && self.received == self.count
    }

    /// Runs the session until every call stops with `Again`.
    fn drive(&mut self) -> Result<(), String> {
        let name = self.name;
        let fail = |what: &str, e: Error| format!("{name}: {what}: {e}");
        self.wait = None;
        if self.phase == Phase::Handshake {
            match self.session.handshake() {
                Ok(()) => self.phase = Phase::Data,
                Err(Error::Again) => {
                    self.wait = Some(self.session.direction());
                    return Ok(());
                }
                Err(e) => return Err(fail("handshake", e)),
            }
        }
        while self.sent < self.count {
            match self.session.send(&datagram(self.seed, self.sent)) {
                Ok(_) => self.sent += 1,
                // The datagram is committed: the next send(&[]) only flushes it.
                Err(Error::Again) => {
                    self.wait = Some(self.session.direction());
                    break;
                }
                Err(e) => return Err(fail("send", e)),
            }
        }
        let mut buf = [0u8; 2048];
        loop {
            match self.session.recv(&mut buf) {
                Ok(n) => self.check(&buf[..n])?,
                Err(Error::Again) => {
                    // Reading is always wanted; a stopped send adds writing.
                    if self.wait.is_none() {
                        self.wait = Some(self.session.direction());
                    }
                    return Ok(());
                }
                Err(e) => return Err(fail("recv", e)),
            }
        }
    }

    fn check(&mut self, d: &[u8]) -> Result<(), String> {
        let peer = 3 - self.seed;
        let i = d
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .filter(|&i| i < self.count)
            .ok_or_else(|| format!("{}: bad datagram of {} bytes", self.name, d.len()))?;
        if d != datagram(peer, i) {
            return Err(format!("{}: datagram {i} corrupted", self.name));
        }
        if std::mem::replace(&mut self.seen[i as usize], true) {
            return Err(format!("{}: datagram {i} delivered twice", self.name));
        }
        self.received += 1;
        Ok(())
    }

    fn interest(&self) -> Interest {
        match self.wait {
            Some(Direction::Write) => Interest::READABLE | Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }

    fn update_registration(&mut self, poll: &Poll) -> io::Result<()> {
        let want = self.interest();
        if self.registered == Some(want) {
            return Ok(());
        }
        let sock = &mut self.session.transport_mut().sock;
        match self.registered {
            None => poll.registry().register(sock, self.token, want)?,
            Some(_) => poll.registry().reregister(sock, self.token, want)?,
        }
        self.registered = Some(want);
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
    let chain = vec![CertificateDer::from(leaf_cert.der().to_vec())];
    let certified = CertifiedKey::new(chain, key).map_err(|e| e.to_string())?;
    Ok((Arc::new(certified), ca_der))
}

/// Two non-blocking UDP sockets on 127.0.0.1 connected to each other.
fn udp_pair() -> io::Result<(UdpSocket, UdpSocket)> {
    let a = UdpSocket::bind("127.0.0.1:0".parse().expect("address"))?;
    let b = UdpSocket::bind("127.0.0.1:0".parse().expect("address"))?;
    a.connect(b.local_addr()?)?;
    b.connect(a.local_addr()?)?;
    Ok((a, b))
}

fn run(count: u32, lose: u32) -> Result<String, String> {
    let (key, ca) = make_pki()?;
    let anchors = TrustAnchors::from_certs(&[ca]).map_err(|e| e.to_string())?;
    let client_cfg = Arc::new(ClientConfig::new(anchors));
    let server_cfg = Arc::new(ServerConfig::new(key));
    let (a, b) = udp_pair().map_err(|e| format!("sockets: {e}"))?;
    // The server binds its cookies to the client's address.
    let client_addr = a.local_addr().map_err(|e| e.to_string())?.to_string();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let client = Session::client(client_cfg, "localhost", Udp { sock: a, lose }, flags)
        .map_err(|e| e.to_string())?;
    let server = Session::server_datagram(
        server_cfg,
        client_addr.as_bytes(),
        Udp { sock: b, lose: 0 },
        flags,
    )
    .map_err(|e| e.to_string())?;
    let mut ends = [
        Endpoint::new("client", Token(0), client, 1, count),
        Endpoint::new("server", Token(1), server, 2, count),
    ];

    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    let (mut polls, mut expiries) = (0u64, 0u64);
    // Every endpoint runs first; then those the poller or a timer wakes.
    let mut ready = [true, true];
    loop {
        for (end, ready) in ends.iter_mut().zip(ready.iter_mut()) {
            if std::mem::take(ready) {
                end.drive()?;
            }
            end.update_registration(&poll)
                .map_err(|e| format!("{}: register: {e}", end.name))?;
        }
        if ends.iter().all(Endpoint::done) {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            return Err("run limit exceeded".into());
        }
        // Sleep until a socket is ready or the first session timer is due.
        let timer = ends.iter().filter_map(|e| e.session.timeout()).min();
        let wait = timer.map_or(IDLE_LIMIT, |t| t.min(IDLE_LIMIT));
        poll.poll(&mut events, Some(wait)).or_else(|e| {
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
        for (i, end) in ends.iter_mut().enumerate() {
            if end.session.timeout() == Some(Duration::ZERO) {
                expiries += 1;
                end.session
                    .handle_timeout()
                    .map_err(|e| format!("{}: timer: {e}", end.name))?;
                ready[i] = true;
            }
        }
        if events.is_empty() && timer.is_none() {
            let state: Vec<String> = ends
                .iter()
                .map(|e| {
                    format!(
                        "{} {:?} sent {} received {}",
                        e.name, e.phase, e.sent, e.received
                    )
                })
                .collect();
            return Err(format!(
                "stalled: nothing happened in {IDLE_LIMIT:?}: {state:?}"
            ));
        }
    }
    let s = &ends[0].session;
    let (version, suite) = (s.protocol_version(), s.cipher_suite());
    let (version, suite) = (version.ok_or("no version")?, suite.ok_or("no suite")?);
    Ok(format!(
        "dtls_poll ok: {count} datagrams each way; {polls} polls, {expiries} timer expiries; \
         {version:?} {suite:?}; {:.0?}",
        start.elapsed()
    ))
}

fn main() -> ExitCode {
    let arg = |i: usize, default: u32| match std::env::args().nth(i) {
        None => Ok(default),
        Some(a) => a.parse::<u32>().map_err(|e| format!("{a:?}: {e}")),
    };
    let (count, lose) = match (arg(1, 20), arg(2, 0)) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("usage: dtls_poll [COUNT] [LOSE]: {e}");
            return ExitCode::from(2);
        }
    };
    match run(count, lose) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dtls_poll failed: {e}");
            ExitCode::FAILURE
        }
    }
}
