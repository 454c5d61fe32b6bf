//! The DTLS listener: many clients on one UDP socket, the stateless cookie
//! exchange, the half-open bound, restarts on one address, idle expiry,
//! fragmented ClientHellos, and OpenSSL / GnuTLS clients.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::certs::pki;
use common::peers::{gnutls_client, openssl_client, require_tools};
use common::sched::{pattern, ManualClock};
use common::tls::{client_config, server_config};
use nbtls::codec::ProtocolVersion;
use nbtls::listener::{Acceptor, DtlsListener, ListenerConfig, Route};
use nbtls::{Error, Flags, MemoryDatagram, Session, TimeSource, Transport};

const TIMEOUT: Duration = Duration::from_secs(10);
fn nb() -> Flags {
    Flags::NONBLOCK | Flags::DATAGRAM
}

// ---- an in-memory network around a sans-IO acceptor ----

struct Client {
    s: Session<MemoryDatagram>,
    /// The network's end of the client's datagram pair.
    wire: MemoryDatagram,
    addr: SocketAddr,
    error: Option<Error>,
}

struct Server {
    s: Session<MemoryDatagram>,
    wire: MemoryDatagram,
    /// The client (index) this session answers.
    to: usize,
}

struct Net {
    acc: Acceptor<SocketAddr>,
    clock: Arc<ManualClock>,
    clients: Vec<Client>,
    servers: HashMap<SocketAddr, Server>,
    /// Handshakes handed out: (peer, replaced an older session).
    accepted: Vec<(SocketAddr, bool)>,
    /// Datagrams the acceptor sent, by peer.
    sent: HashMap<SocketAddr, Vec<Vec<u8>>>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 40000))
}

impl Net {
    fn new(limits: ListenerConfig) -> Net {
        let clock = ManualClock::new();
        let cfg = server_config().time_source(clock.clone());
        Net {
            acc: Acceptor::new(Arc::new(cfg), limits),
            clock,
            clients: Vec::new(),
            servers: HashMap::new(),
            accepted: Vec::new(),
            sent: HashMap::new(),
        }
    }

    /// A new client at `addr` (sharing the network's clock); its index.
    fn client(&mut self, addr: SocketAddr) -> usize {
        let (a, wire) = MemoryDatagram::pair();
        let cfg = client_config().time_source(self.clock.clone());
        let s = Session::client(Arc::new(cfg), "localhost", a, nb()).unwrap();
        self.clients.push(Client {
            s,
            wire,
            addr,
            error: None,
        });
        self.clients.len() - 1
    }

    /// The newest client at `addr`: a restarted client replaces the old.
    fn latest(&self, addr: SocketAddr) -> usize {
        self.clients.iter().rposition(|c| c.addr == addr).unwrap()
    }

    /// Drives client handshakes and moves every queued datagram once;
    /// whether anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        let mut buf = vec![0u8; 20000];
        for c in &mut self.clients {
            if c.error.is_none() && c.s.is_handshaking() {
                match c.s.handshake() {
                    Ok(()) | Err(Error::Again) => {}
                    Err(e) => c.error = Some(e),
                }
            }
        }
        for i in 0..self.clients.len() {
            while let Ok(n) = self.clients[i].wire.pull(&mut buf) {
                moved = true;
                let from = self.clients[i].addr;
                if self.acc.handle_datagram(from, &buf[..n]) == Route::Session {
                    let s = self.servers.get_mut(&from).expect("a session to route to");
                    s.wire.push(&buf[..n]).unwrap();
                }
            }
        }
        while let Some((to, d)) = self.acc.poll_transmit() {
            moved = true;
            let i = self.latest(to);
            self.clients[i].wire.push(&d).unwrap();
            self.sent.entry(to).or_default().push(d);
        }
        while let Some(a) = self.acc.poll_accept() {
            moved = true;
            let peer = *a.key();
            self.accepted.push((peer, a.replaces()));
            let (x, wire) = MemoryDatagram::pair();
            let s = a.into_session(x, nb());
            let to = self.latest(peer);
            self.servers.insert(peer, Server { s, wire, to });
        }
        for s in self.servers.values_mut() {
            while let Ok(n) = s.wire.pull(&mut buf) {
                moved = true;
                self.clients[s.to].wire.push(&buf[..n]).unwrap();
            }
        }
        moved
    }

    /// Steps until `done`, moving the clock to the next timer when nothing
    /// moves; panics after `max_secs` of fake time.
    fn run(&mut self, max_secs: u64, done: impl Fn(&Net) -> bool) {
        let start = Instant::now();
        let mut fake = Duration::ZERO;
        while !done(self) {
            assert!(start.elapsed() < TIMEOUT, "wall-clock bound");
            if self.step() || done(self) {
                continue;
            }
            let now = self.clock.now();
            let next = self
                .clients
                .iter()
                .filter(|c| c.error.is_none() && c.s.is_handshaking())
                .filter_map(|c| c.s.timeout())
                .chain(self.acc.timeout().map(|t| t.saturating_duration_since(now)))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(1));
            fake += next;
            assert!(fake.as_secs() <= max_secs, "not done after {fake:?}");
            self.clock.advance(next);
            self.acc.handle_timeout();
        }
    }

    fn established(&self, i: usize) -> bool {
        !self.clients[i].s.is_handshaking()
    }

    /// Client `i` and its server session exchange `msg` both ways.
    fn exchange(&mut self, i: usize, msg: &[u8]) {
        let peer = self.clients[i].addr;
        assert_eq!(self.clients[i].s.send(msg).unwrap(), msg.len());
        self.step();
        let mut buf = vec![0u8; 2000];
        let s = self.servers.get_mut(&peer).expect("server session");
        assert_eq!(s.to, i, "routed to the session of this client");
        let n = s.s.recv(&mut buf).expect("server receives");
        assert_eq!(&buf[..n], msg);
        s.s.send(&buf[..n]).unwrap();
        self.step();
        let n = self.clients[i].s.recv(&mut buf).expect("client receives");
        assert_eq!(&buf[..n], msg);
    }
}

fn is_hello_verify(d: &[u8]) -> bool {
    d.len() > 13 && d[0] == 22 && d[3..5] == [0, 0] && d[13] == 3
}

/// A ClientHello without a valid cookie allocates no session: thousands of
/// them from distinct addresses (fresh, and replaying another address's
/// valid cookie) get one HelloVerifyRequest each and leave nothing behind.
#[test]
fn cookie_less_client_hellos_allocate_no_session() {
    let mut net = Net::new(ListenerConfig::default());
    let c = net.client(addr(0));
    net.clients[c].s.handshake().unwrap_err();
    let mut buf = vec![0u8; 4096];
    let n = net.clients[c].wire.pull(&mut buf).unwrap();
    let hello = buf[..n].to_vec();
    for i in 1..=3000 {
        assert_eq!(net.acc.handle_datagram(addr(i), &hello), Route::Handled);
    }
    assert_eq!(net.acc.half_open(), 0);
    assert_eq!(net.acc.sessions(), 0);
    let replies: Vec<_> = std::iter::from_fn(|| net.acc.poll_transmit()).collect();
    assert_eq!(replies.len(), 3000, "one reply per hello");
    assert!(replies.iter().all(|(_, d)| is_hello_verify(d)));
    // The client at addr(0) gets its cookie; its second hello replayed from
    // other addresses does not verify there.
    net.acc.handle_datagram(addr(0), &hello);
    let (_, hvr) = net.acc.poll_transmit().unwrap();
    net.clients[c].wire.push(&hvr).unwrap();
    net.clients[c].s.handshake().unwrap_err();
    let n = net.clients[c].wire.pull(&mut buf).unwrap();
    let with_cookie = buf[..n].to_vec();
    for i in 3001..=4000 {
        net.acc.handle_datagram(addr(i), &with_cookie);
    }
    assert_eq!(net.acc.half_open(), 0, "a cookie is bound to its address");
    let replies: Vec<_> = std::iter::from_fn(|| net.acc.poll_transmit()).collect();
    assert_eq!(replies.len(), 1000);
    assert!(replies.iter().all(|(_, d)| is_hello_verify(d)));
    assert_eq!(net.acc.stats().hello_verify_sent, 4001);
    assert_eq!(net.acc.stats().handshakes_started, 0);
    // The real client, at its own address, gets a session.
    net.acc.handle_datagram(addr(0), &with_cookie);
    assert_eq!(net.acc.half_open(), 1);
}

/// Many in-memory clients: every handshake completes and routes by address.
#[test]
fn sans_io_acceptor_serves_many_clients() {
    let mut net = Net::new(ListenerConfig::default());
    let ids: Vec<usize> = (0..30).map(|i| net.client(addr(i))).collect();
    net.run(30, |n| ids.iter().all(|&i| n.established(i)));
    assert_eq!(net.acc.sessions(), 30);
    assert_eq!(net.acc.half_open(), 0);
    for &i in &ids {
        net.exchange(i, &pattern(100 + i, i as u8));
    }
}

/// Beyond `max_half_open` handshakes in progress, verified hellos are
/// dropped (no engine, no answer); the client's retransmission succeeds
/// once a slot is free.
#[test]
fn half_open_handshakes_are_bounded() {
    let mut limits = ListenerConfig::default();
    limits.max_half_open = 2;
    let mut net = Net::new(limits);
    let ids: Vec<usize> = (0..3).map(|i| net.client(addr(i))).collect();
    let mut buf = vec![0u8; 4096];
    // Cookie round for all three, then their second hellos, in one go.
    for &i in &ids {
        net.clients[i].s.handshake().unwrap_err();
        let n = net.clients[i].wire.pull(&mut buf).unwrap();
        net.acc.handle_datagram(addr(i), &buf[..n]);
        let (_, hvr) = net.acc.poll_transmit().unwrap();
        net.clients[i].wire.push(&hvr).unwrap();
        net.clients[i].s.handshake().unwrap_err();
    }
    for &i in &ids {
        let n = net.clients[i].wire.pull(&mut buf).unwrap();
        net.acc.handle_datagram(addr(i), &buf[..n]);
    }
    assert_eq!(net.acc.half_open(), 2);
    assert_eq!(net.acc.stats().refused_full, 1);
    let out: Vec<_> = std::iter::from_fn(|| net.acc.poll_transmit()).collect();
    let mut to = Vec::new();
    for (k, d) in out {
        let i = net.latest(k);
        net.clients[i].wire.push(&d).unwrap();
        to.push(k);
    }
    assert!(!to.is_empty());
    assert!(!to.contains(&addr(2)), "the refused client got no answer");
    // The two finish; the third's retransmission then gets through.
    net.run(30, |n| ids.iter().all(|&i| n.established(i)));
    assert_eq!(net.acc.sessions(), 3);
    assert!(net.clients.iter().all(|c| c.error.is_none()));
    net.exchange(2, b"third");
}

/// RFC 6347 §4.2.8: a client restarting on the same address sends a new
/// ClientHello; the old session keeps working while the new handshake
/// runs, and is replaced only when it completes.
#[test]
fn a_restarted_client_replaces_its_session_when_the_new_handshake_completes() {
    let mut net = Net::new(ListenerConfig::default());
    let old = net.client(addr(7));
    net.run(10, |n| {
        n.established(old) && n.servers.contains_key(&addr(7))
    });
    net.exchange(old, b"before the restart");
    let new = net.client(addr(7));
    let mut buf = vec![0u8; 4096];
    // The new hello is challenged; with its cookie a handshake starts.
    net.clients[new].s.handshake().unwrap_err();
    let n = net.clients[new].wire.pull(&mut buf).unwrap();
    net.acc.handle_datagram(addr(7), &buf[..n]);
    let (_, hvr) = net.acc.poll_transmit().unwrap();
    assert!(is_hello_verify(&hvr));
    net.clients[new].wire.push(&hvr).unwrap();
    net.clients[new].s.handshake().unwrap_err();
    let n = net.clients[new].wire.pull(&mut buf).unwrap();
    net.acc.handle_datagram(addr(7), &buf[..n]);
    assert_eq!((net.acc.half_open(), net.acc.sessions()), (1, 1));
    // The old session still works (its flight to the new client is held).
    let held: Vec<_> = std::iter::from_fn(|| net.acc.poll_transmit()).collect();
    assert!(!held.is_empty());
    net.exchange(old, b"during the new handshake");
    for (_, d) in held {
        net.clients[new].wire.push(&d).unwrap();
    }
    net.run(10, |n| n.established(new) && n.accepted.len() == 2);
    assert_eq!(net.accepted, [(addr(7), false), (addr(7), true)]);
    assert_eq!((net.acc.half_open(), net.acc.sessions()), (0, 1));
    net.exchange(new, b"after the restart");
}

/// A session that receives nothing for the idle timeout is forgotten;
/// traffic keeps it alive.
#[test]
fn idle_sessions_are_forgotten() {
    let mut limits = ListenerConfig::default();
    limits.idle_timeout = Duration::from_secs(100);
    let mut net = Net::new(limits);
    let c = net.client(addr(1));
    net.run(10, |n| n.established(c) && n.acc.sessions() == 1);
    net.clock.advance(Duration::from_secs(90));
    net.exchange(c, b"still here");
    net.clock.advance(Duration::from_secs(20));
    net.acc.handle_timeout();
    assert_eq!(net.acc.poll_expired(), None, "traffic reset the idle timer");
    assert_eq!(net.acc.sessions(), 1);
    let due = net.acc.timeout().expect("the idle timer runs");
    assert!(due <= net.clock.now() + Duration::from_secs(100));
    net.clock.advance(Duration::from_secs(81));
    net.acc.handle_timeout();
    assert_eq!(net.acc.poll_expired(), Some(addr(1)));
    assert_eq!(net.acc.sessions(), 0);
    // Its traffic is no longer routed anywhere.
    net.clients[c].s.send(b"too late").unwrap();
    let mut buf = vec![0u8; 2000];
    let n = net.clients[c].wire.pull(&mut buf).unwrap();
    assert_eq!(net.acc.handle_datagram(addr(1), &buf[..n]), Route::Handled);
}

/// The documented behaviour: a ClientHello fragmented over several
/// datagrams cannot be verified statelessly and is dropped unanswered; the
/// client's handshake times out, and nothing is allocated.
#[test]
fn a_fragmented_client_hello_is_dropped() {
    let mut net = Net::new(ListenerConfig::default());
    let c = net.client(addr(3));
    net.clients[c].s.set_mtu(128);
    net.run(120, |n| n.clients[c].error.is_some());
    assert_eq!(net.clients[c].error, Some(Error::TimedOut));
    assert!(net.sent.is_empty(), "no answer at all");
    let st = net.acc.stats();
    assert!(st.dropped_fragmented >= 5, "every retransmission dropped");
    assert_eq!((st.hello_verify_sent, st.handshakes_started), (0, 0));
    assert_eq!(net.acc.half_open(), 0);
    // The same client at the default MTU connects.
    let ok = net.client(addr(4));
    net.run(10, |n| n.established(ok));
}

// ---- over real UDP ----

fn udp_client(port: u16) -> Session<UdpSocket> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    Session::client(
        Arc::new(client_config()),
        "localhost",
        sock,
        Flags::DATAGRAM,
    )
    .unwrap()
}

/// 20 blocking nbtls clients on threads against one listener socket driven
/// as an event loop (`process()` and NONBLOCK sessions); every message is
/// echoed and byte-checked.
#[test]
fn many_clients_on_one_udp_socket() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 5;
    let mut listener = DtlsListener::bind("127.0.0.1:0", Arc::new(server_config())).unwrap();
    listener.set_session_flags(Flags::NONBLOCK);
    let port = listener.local_addr().unwrap().port();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let mut c = udp_client(port);
                c.handshake().expect("handshake");
                let mut buf = vec![0u8; 2000];
                for r in 0..ROUNDS {
                    let msg = pattern(200 + i * 7 + r, (i * ROUNDS + r) as u8);
                    c.send(&msg).unwrap();
                    let n = c.recv(&mut buf).expect("echo");
                    assert_eq!(&buf[..n], &msg[..], "client {i} round {r}");
                }
                c.bye(nbtls::Shutdown::Write).unwrap();
            })
        })
        .collect();
    let mut sessions = HashMap::new();
    let mut closed = 0;
    let mut buf = vec![0u8; 2000];
    let deadline = Instant::now() + TIMEOUT;
    while closed < CLIENTS {
        assert!(Instant::now() < deadline, "{closed} of {CLIENTS} done");
        let readable = listener.process().unwrap();
        while let Some((s, peer)) = listener.try_accept() {
            assert!(sessions.insert(peer, s).is_none(), "one session per client");
        }
        for peer in &readable {
            let Some(s) = sessions.get_mut(peer) else {
                continue;
            };
            loop {
                match s.recv(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        sessions.remove(peer);
                        break;
                    }
                    Ok(n) => assert_eq!(s.send(&buf[..n]).unwrap(), n),
                    Err(Error::Again) => break,
                    Err(e) => panic!("{peer}: {e}"),
                }
            }
        }
        if readable.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
    }
    for c in clients {
        c.join().unwrap();
    }
    let st = listener.acceptor().stats();
    assert_eq!(st.handshakes_completed, CLIENTS as u64);
    assert_eq!(st.hello_verify_sent, CLIENTS as u64);
}

/// Idle expiry over the std listener (fake clock): the session's pull then
/// reports that the listener dropped it.
#[test]
fn an_expired_session_reports_it_on_pull() {
    let clock = ManualClock::new();
    let cfg = server_config().time_source(clock.clone());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut listener =
        DtlsListener::from_socket(sock, Arc::new(cfg), ListenerConfig::default()).unwrap();
    listener.set_session_flags(Flags::NONBLOCK);
    let port = listener.local_addr().unwrap().port();
    let client = thread::spawn(move || {
        let mut c = udp_client(port);
        c.handshake().expect("handshake");
        c.send(b"hello").unwrap();
        c
    });
    let (mut s, _) = listener
        .accept_timeout(TIMEOUT)
        .unwrap()
        .expect("a session");
    let _c = client.join().unwrap();
    let mut buf = [0u8; 100];
    let deadline = Instant::now() + TIMEOUT;
    let n = loop {
        listener.process().unwrap();
        match s.recv(&mut buf) {
            Ok(n) => break n,
            Err(Error::Again) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(&buf[..n], b"hello");
    clock.advance(Duration::from_secs(301));
    listener.process().unwrap();
    assert_eq!(listener.acceptor().sessions(), 0);
    match s.recv(&mut buf) {
        Err(Error::Transport { kind, message }) => {
            assert_eq!(kind, std::io::ErrorKind::ConnectionAborted);
            assert!(message.contains("idle"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// `openssl s_client -dtls1_2` and `gnutls-cli --udp` connected to one
/// listener at once, each served by a blocking session while a thread
/// runs the accept loop.
#[test]
fn openssl_and_gnutls_clients_on_one_listener() {
    if !require_tools(&["openssl", "gnutls-cli"]) {
        return;
    }
    let p = pki();
    let mut listener = DtlsListener::bind("127.0.0.1:0", Arc::new(server_config())).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let accept_loop = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(s) = listener.accept_timeout(Duration::from_millis(20)).unwrap() {
                    let _ = tx.send(s);
                }
            }
        })
    };
    let mut peers = HashMap::new();
    peers.insert(
        "openssl",
        openssl_client(port, &["-dtls1_2", "-CAfile", p.ca_path(), "-quiet"]),
    );
    peers.insert(
        "gnutls",
        gnutls_client(port, &["--udp", "--x509cafile", p.ca_path()]),
    );
    let mut served = Vec::new();
    for _ in 0..2 {
        let (mut s, peer) = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "no session: {:?}",
                peers.values().map(|p| p.dump()).collect::<Vec<_>>()
            )
        });
        assert_eq!(s.protocol_version(), Some(ProtocolVersion::DTLS1_2));
        // A blocking session: its pulls wait for the accept loop's routing.
        s.transport_mut().set_read_timeout(Some(TIMEOUT));
        served.push((s, peer));
    }
    for (tool, peer) in peers.iter_mut() {
        peer.write_stdin(format!("from {tool}\n").as_bytes())
            .unwrap();
    }
    let mut buf = [0u8; 100];
    for (s, addr) in &mut served {
        let n = s.recv(&mut buf).unwrap_or_else(|e| panic!("{addr}: {e}"));
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        let tool = line.trim_end().strip_prefix("from ").unwrap().to_string();
        let reply = format!("nbtls to {tool}\n");
        s.send(reply.as_bytes()).unwrap();
        let peer = peers.get_mut(tool.as_str()).unwrap();
        assert!(
            peer.wait_for_output(reply.trim_end(), TIMEOUT),
            "{tool}: {}",
            peer.dump()
        );
    }
    for peer in peers.values_mut() {
        peer.kill();
    }
    stop.store(true, Ordering::Relaxed);
    accept_loop.join().unwrap();
}

/// Over the std listener: a client restarting on the same address gets a
/// new session; the old one then reports on pull that it was replaced.
#[test]
fn a_replaced_session_reports_it_on_pull() {
    let mut listener = DtlsListener::bind("127.0.0.1:0", Arc::new(server_config())).unwrap();
    listener.set_session_flags(Flags::NONBLOCK);
    let port = listener.local_addr().unwrap().port();
    let connect = move |local: SocketAddr| {
        thread::spawn(move || {
            let sock = UdpSocket::bind(local).unwrap();
            sock.connect(("127.0.0.1", port)).unwrap();
            sock.set_read_timeout(Some(TIMEOUT)).unwrap();
            let cfg = Arc::new(client_config());
            let mut c = Session::client(cfg, "localhost", sock, Flags::DATAGRAM).unwrap();
            c.handshake().expect("handshake");
            c.transport().local_addr().unwrap()
        })
    };
    let first = connect("127.0.0.1:0".parse().unwrap());
    let (mut old, peer) = listener.accept_timeout(TIMEOUT).unwrap().expect("first");
    assert_eq!(first.join().unwrap(), peer);
    // The same address again (the first client's socket is closed).
    let second = connect(peer);
    let (mut new, again) = listener.accept_timeout(TIMEOUT).unwrap().expect("second");
    second.join().unwrap();
    assert_eq!(again, peer);
    assert_eq!(listener.acceptor().stats().handshakes_completed, 2);
    assert_eq!(listener.acceptor().sessions(), 1);
    let mut buf = [0u8; 10];
    match old.recv(&mut buf) {
        Err(Error::Transport { kind, message }) => {
            assert_eq!(kind, std::io::ErrorKind::ConnectionAborted);
            assert!(message.contains("replaced"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(new.recv(&mut buf), Err(Error::Again), "the new one is live");
}
