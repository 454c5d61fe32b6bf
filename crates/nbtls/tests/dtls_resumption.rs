//! DTLS 1.2 session resumption (RFC 5077 tickets and session ids over
//! RFC 6347), between nbtls peers in memory, with lost flights recovered by
//! retransmission on a test clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sched::ManualClock;
use common::tls::{client_config, server_config};
use nbtls::{ClientConfig, Error, Flags, MemoryDatagram, ServerConfig, Session, Transport};

type D = Session<MemoryDatagram>;

/// Record content types.
const CCS: u8 = 20;
const HANDSHAKE: u8 = 22;

/// A client and a server joined by a relay the test drives.
struct Link {
    c: D,
    s: D,
    c_far: MemoryDatagram,
    s_far: MemoryDatagram,
    c_done: bool,
    s_done: bool,
}

fn link(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Link {
    let (a, c_far) = MemoryDatagram::pair();
    let (b, s_far) = MemoryDatagram::pair();
    let flags = Flags::NONBLOCK | Flags::DATAGRAM;
    let c = Session::client(client.clone(), "localhost", a, flags).unwrap();
    let s = Session::server_datagram(server.clone(), b"peer", b, flags).unwrap();
    Link {
        c,
        s,
        c_far,
        s_far,
        c_done: false,
        s_done: false,
    }
}

/// Moves every queued datagram from `from` to `to`, dropping those `keep`
/// refuses; returns the datagrams dropped, and how many were moved.
fn relay(
    from: &mut MemoryDatagram,
    to: &mut MemoryDatagram,
    keep: &mut dyn FnMut(&[u8]) -> bool,
) -> (Vec<Vec<u8>>, usize) {
    let mut buf = vec![0u8; 20000];
    let (mut dropped, mut moved) = (Vec::new(), 0);
    while let Ok(len) = from.pull(&mut buf) {
        if keep(&buf[..len]) {
            to.push(&buf[..len]).unwrap();
            moved += 1;
        } else {
            dropped.push(buf[..len].to_vec());
        }
    }
    (dropped, moved)
}

/// Drives one side: the handshake until it is done, then `recv`, as an
/// application would (which also answers the peer's retransmissions).
fn step(s: &mut D, done: &mut bool, who: &str) {
    if !*done {
        match s.handshake() {
            Ok(()) => *done = true,
            Err(Error::Again) => {}
            Err(e) => panic!("{who}: {e}"),
        }
    } else {
        match s.recv(&mut [0u8; 64]) {
            Err(Error::Again) => {}
            other => panic!("{who}: unexpected {other:?}"),
        }
    }
}

impl Link {
    /// One round: each side runs, and its datagrams are relayed through
    /// the filters (client to server, server to client).
    fn round(
        &mut self,
        up: &mut dyn FnMut(&[u8]) -> bool,
        down: &mut dyn FnMut(&[u8]) -> bool,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
        step(&mut self.c, &mut self.c_done, "client");
        let (lost_up, n_up) = relay(&mut self.c_far, &mut self.s_far, up);
        step(&mut self.s, &mut self.s_done, "server");
        let (lost_down, n_down) = relay(&mut self.s_far, &mut self.c_far, down);
        (lost_up, lost_down, n_up + n_down)
    }

    fn handshake(&mut self) {
        for _ in 0..50 {
            self.round(&mut |_| true, &mut |_| true);
            if self.c_done && self.s_done {
                return;
            }
        }
        panic!("DTLS handshake did not finish");
    }

    /// Application data both ways.
    fn exchange(&mut self, tag: &str) {
        let mut buf = [0u8; 100];
        let up = format!("up {tag}");
        self.c.send(up.as_bytes()).unwrap();
        relay(&mut self.c_far, &mut self.s_far, &mut |_| true);
        let n = self.s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], up.as_bytes(), "{tag}");
        let down = format!("down {tag}");
        self.s.send(down.as_bytes()).unwrap();
        relay(&mut self.s_far, &mut self.c_far, &mut |_| true);
        let n = self.c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], down.as_bytes(), "{tag}");
    }
}

fn resumed_pair(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>, tag: &str) -> Link {
    let mut l = link(client, server);
    l.handshake();
    assert!(!l.c.info().resumed && !l.s.info().resumed, "{tag}: first");
    l.exchange(tag);
    let mut l = link(client, server);
    l.handshake();
    assert!(l.c.info().resumed, "{tag}: client resumed");
    assert!(l.s.info().resumed, "{tag}: server resumed");
    assert!(l.c.peer_certificates().is_empty(), "{tag}");
    l.exchange(tag);
    l
}

#[test]
fn dtls_resumption_by_ticket_and_by_session_id() {
    // Tickets (the server keeps no cache).
    let server = Arc::new(server_config().session_cache(None));
    let client = Arc::new(client_config());
    let l = resumed_pair(&client, &server, "ticket");
    // The same suite and exporter agree after resumption.
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    l.c.export_keying_material(b"label", b"", &mut a).unwrap();
    l.s.export_keying_material(b"label", b"", &mut b).unwrap();
    assert_eq!(a, b);
    // A resumed session resumes again.
    let mut l = link(&client, &server);
    l.handshake();
    assert!(l.c.info().resumed && l.s.info().resumed, "ticket, again");

    // Session ids (no ticketer).
    let server = Arc::new(server_config().ticketer(None));
    let client = Arc::new(client_config());
    resumed_pair(&client, &server, "session id");

    // A server that resumes nothing: full handshakes.
    let server = Arc::new(server_config().ticketer(None).session_cache(None));
    let client = Arc::new(client_config());
    for _ in 0..2 {
        let mut l = link(&client, &server);
        l.handshake();
        assert!(!l.c.info().resumed && !l.s.info().resumed);
    }
}

#[test]
fn srtp_is_negotiated_again_in_a_resumed_handshake() {
    use nbtls::SrtpProtectionProfile as P;
    let server = Arc::new(server_config().srtp_profiles(&[P::AEAD_AES_128_GCM]));
    let client =
        Arc::new(client_config().srtp_profiles(&[P::AES128_CM_HMAC_SHA1_80, P::AEAD_AES_128_GCM]));
    let l = resumed_pair(&client, &server, "srtp");
    assert_eq!(l.c.srtp_profile(), Some(P::AEAD_AES_128_GCM));
    assert_eq!(l.s.srtp_profile(), Some(P::AEAD_AES_128_GCM));
    let (c, s) = (
        l.c.srtp_keying_material().unwrap(),
        l.s.srtp_keying_material().unwrap(),
    );
    assert_eq!(*c.to_bytes(), *s.to_bytes());
}

#[test]
fn dtls_and_tls_sessions_do_not_cross() {
    // One client config used over TLS first: its TLS 1.2 session must not
    // be offered over DTLS (and the server would refuse it anyway).
    let server = Arc::new(server_config());
    let client = Arc::new(
        client_config()
            .versions(&[nbtls::codec::ProtocolVersion::TLS1_2])
            .unwrap(),
    );
    let (a, b) = nbtls::MemoryTransport::pair();
    let mut tc = Session::client(client.clone(), "localhost", a, Flags::NONBLOCK).unwrap();
    let mut ts = Session::server(server.clone(), b, Flags::NONBLOCK).unwrap();
    common::tls::handshake(&mut tc, &mut ts).unwrap();
    let mut l = link(&client, &server);
    l.handshake();
    assert!(!l.c.info().resumed && !l.s.info().resumed);
    // The DTLS session resumes over DTLS; the TLS session is not spent.
    let mut l = link(&client, &server);
    l.handshake();
    assert!(l.c.info().resumed && l.s.info().resumed);
    let (a, b) = nbtls::MemoryTransport::pair();
    let mut tc = Session::client(client.clone(), "localhost", a, Flags::NONBLOCK).unwrap();
    let mut ts = Session::server(server.clone(), b, Flags::NONBLOCK).unwrap();
    common::tls::handshake(&mut tc, &mut ts).unwrap();
    assert!(tc.info().resumed && ts.info().resumed, "TLS resumed");
}

/// Whether a datagram holds a record of content type `typ` at epoch 1.
fn has_epoch1_record(d: &[u8], typ: u8) -> bool {
    let mut rest = d;
    while rest.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        if rest[0] == typ && rest[3..5] == [0, 1] {
            return true;
        }
        rest = rest.get(13 + len..).unwrap_or(&[]);
    }
    false
}

fn is_ccs(d: &[u8]) -> bool {
    d.first() == Some(&CCS)
}

/// A test clock and the client and server configs that read it.
fn clocked_configs() -> (Arc<ManualClock>, Arc<ClientConfig>, Arc<ServerConfig>) {
    let clock = ManualClock::new();
    let client = Arc::new(client_config().time_source(clock.clone()));
    let server = Arc::new(server_config().time_source(clock.clone()));
    (clock, client, server)
}

/// Which way a datagram goes.
#[derive(Clone, Copy)]
enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

impl Link {
    /// Runs rounds (at most 10) until, in one of them, datagrams going `dir`
    /// for which `lose` holds are dropped; returns those (none: none came).
    fn lose_once(&mut self, dir: Dir, lose: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        for _ in 0..10 {
            let mut filter = |d: &[u8]| !lose(d);
            let (up, down, _) = match dir {
                Dir::Up => self.round(&mut filter, &mut |_| true),
                Dir::Down => self.round(&mut |_| true, &mut filter),
            };
            let lost = match dir {
                Dir::Up => up,
                Dir::Down => down,
            };
            if !lost.is_empty() {
                return lost;
            }
        }
        Vec::new()
    }
}

/// Runs rounds, advancing the test clock to the next timer when nothing
/// moves, until both sides are done.
fn finish_with_timers(l: &mut Link, clock: &ManualClock, what: &str) -> usize {
    let mut timer_fires = 0;
    for _ in 0..40 {
        if l.c_done && l.s_done {
            return timer_fires;
        }
        let (_, _, moved) = l.round(&mut |_| true, &mut |_| true);
        if l.c_done && l.s_done {
            return timer_fires;
        }
        if moved == 0 {
            let next = [l.c.timeout(), l.s.timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| panic!("{what}: stuck with no timer running"));
            clock.advance(next.max(Duration::from_millis(1)));
            timer_fires += 1;
        }
    }
    panic!("{what}: did not finish");
}

#[test]
fn lost_last_flight_of_a_resumed_handshake_is_retransmitted() {
    let (clock, client, server) = clocked_configs();
    let mut l = link(&client, &server);
    l.handshake();

    let mut l = link(&client, &server);
    // Abbreviated handshake: ClientHello (with the cookie exchange), then
    // the server's ServerHello+CCS+Finished, then the client's CCS+Finished:
    // that last flight, the client's, is lost once.
    let lost = l.lose_once(Dir::Up, |d| is_ccs(d) || has_epoch1_record(d, HANDSHAKE));
    assert!(
        !lost.is_empty(),
        "the client's final flight was sent and dropped"
    );
    assert!(l.c_done, "the client is done once it sent its last flight");
    assert!(
        !l.s_done,
        "the server still waits for the client's Finished"
    );
    assert!(l.c.info().resumed);
    // The client runs no timer for its last flight; the server does, and
    // its retransmission makes the client resend.
    assert!(l.s.timeout().is_some());
    let fired = finish_with_timers(&mut l, &clock, "resumed");
    assert!(fired >= 1, "recovered by a retransmission");
    assert!(l.s.info().resumed);
    l.exchange("after loss, resumed");
}

#[test]
fn lost_server_flight_of_a_resumed_handshake_is_retransmitted() {
    let (clock, client, server) = clocked_configs();
    let mut l = link(&client, &server);
    l.handshake();

    // The server's ServerHello+CCS+Finished is lost once: the client's
    // timer resends its ClientHello, and the server its flight.
    let mut l = link(&client, &server);
    let lost = l.lose_once(Dir::Down, |d| {
        is_ccs(d) || has_epoch1_record(d, HANDSHAKE) || is_server_hello(d)
    });
    assert!(!lost.is_empty(), "the server's flight was dropped");
    assert!(!l.c_done && !l.s_done);
    assert!(l.c.timeout().is_some() && l.s.timeout().is_some());
    let fired = finish_with_timers(&mut l, &clock, "resumed, server flight");
    assert!(fired >= 1, "recovered by a retransmission");
    assert!(l.c.info().resumed && l.s.info().resumed);
    l.exchange("after loss of the server's flight");
}

/// A datagram starting with an epoch-0 ServerHello (type 2).
fn is_server_hello(d: &[u8]) -> bool {
    d.len() > 13 && d[0] == HANDSHAKE && d[3..5] == [0, 0] && d[13] == 2
}

#[test]
fn lost_last_flight_with_a_new_session_ticket_is_retransmitted() {
    let (clock, client, server) = clocked_configs();
    let mut l = link(&client, &server);
    // Full handshake: the server's last flight is NewSessionTicket, CCS,
    // Finished; drop all of it once.
    let lost = l.lose_once(Dir::Down, lost_flight_seen);
    assert!(!lost.is_empty(), "the server's last flight was dropped");
    // NewSessionTicket (4) at epoch 0 in what was dropped.
    assert!(
        lost.iter().any(|d| has_nst(d)),
        "the dropped flight held the NewSessionTicket"
    );
    assert!(l.s_done && !l.c_done);
    let fired = finish_with_timers(&mut l, &clock, "full");
    assert!(fired >= 1, "recovered by a retransmission");
    l.exchange("after loss, full");
    // The ticket that got through on the retransmission resumes.
    let mut l = link(&client, &server);
    l.handshake();
    assert!(l.c.info().resumed && l.s.info().resumed);
    l.exchange("resumed with the retransmitted ticket");
}

/// The server's final flight: a datagram with its CCS or an epoch-1
/// handshake record, or the NewSessionTicket before them.
fn lost_flight_seen(d: &[u8]) -> bool {
    is_ccs(d) || has_epoch1_record(d, HANDSHAKE) || has_nst(d)
}

/// An epoch-0 handshake record carrying a NewSessionTicket (type 4).
fn has_nst(d: &[u8]) -> bool {
    let mut rest = d;
    while rest.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        if rest[0] == HANDSHAKE && rest[3..5] == [0, 0] && rest.get(13) == Some(&4) {
            return true;
        }
        rest = rest.get(13 + len..).unwrap_or(&[]);
    }
    false
}

// ---------------------------------------------------------------------------
// Interop: OpenSSL and GnuTLS over UDP.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::Instant;

use common::peers::{gnutls_client, openssl_client, require_tools, Peer};
use common::udp::{
    self, gnutls_dtls_echo_server, listen, openssl_dtls_server, recv_within, TIMEOUT,
};

/// Two connections from one client (one config) to `port`: a full handshake,
/// then a resumed one; `exchange` runs on each, given the round (0, 1).
fn connect_twice(
    port: u16,
    srv: &mut Peer,
    case: &str,
    mut exchange: impl FnMut(&mut Session<UdpSocket>, &mut Peer, usize),
) {
    let config = Arc::new(client_config());
    for round in 0..2 {
        let mut c = udp::client(port, config.clone());
        c.handshake()
            .unwrap_or_else(|e| panic!("{case} {round}: {e}\n{}", srv.dump()));
        assert_eq!(c.info().resumed, round == 1, "{case} round {round}");
        exchange(&mut c, srv, round);
    }
}

/// s_server prints what it receives; the line must show up.
fn send_line(s: &mut Session<UdpSocket>, peer: &mut Peer, line: &str, case: &str) {
    s.send(format!("{line}\n").as_bytes()).unwrap();
    assert!(
        peer.wait_for_output(line, TIMEOUT),
        "{case}: {line} not received\n{}",
        peer.dump()
    );
}

#[test]
fn nbtls_client_resumes_on_openssl_s_server() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let p = common::certs::pki();
    // Tickets (s_server's default), then session ids (-no_ticket).
    for extra in [None, Some("-no_ticket")] {
        let case = format!("s_server {extra:?}");
        let (mut srv, port) = openssl_dtls_server(&p.server_ecdsa, extra.as_slice());
        connect_twice(port, &mut srv, &case, |c, srv, round| {
            send_line(c, srv, &format!("line {round}"), &case);
            c.bye(nbtls::Shutdown::Write).unwrap();
            // s_server serves the next connection once it saw this one's
            // close_notify (it prints DONE).
            let deadline = Instant::now() + TIMEOUT;
            while srv.count_output("DONE") <= round {
                assert!(Instant::now() < deadline, "{case}: {}", srv.dump());
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        assert_eq!(srv.count_output("Reused session-id"), 1, "{}", srv.dump());
        srv.kill();
    }
}

#[test]
fn nbtls_client_resumes_on_gnutls_serv() {
    if !require_tools(&["gnutls-serv"]) {
        return;
    }
    let p = common::certs::pki();
    // Tickets (gnutls-serv's default), then session ids (--noticket).
    for extra in [None, Some("--noticket")] {
        let case = format!("gnutls-serv {extra:?}");
        let (mut srv, port) = gnutls_dtls_echo_server(&p.server_ecdsa, extra.as_slice());
        connect_twice(port, &mut srv, &case, |c, _, round| {
            let line = format!("echo {round}\n");
            c.send(line.as_bytes()).unwrap();
            assert_eq!(recv_line(c, &case), line, "{case}");
            c.bye(nbtls::Shutdown::Write).unwrap();
        });
        srv.kill();
    }
}

fn recv_line(s: &mut Session<UdpSocket>, case: &str) -> String {
    let mut buf = [0u8; 256];
    let n = recv_within(s, &mut buf, case);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn openssl_s_client_resumes_on_nbtls_server() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let p = common::certs::pki();
    let dir = common::unique_temp_dir("dtls-resume");
    // Our server with tickets, then with session ids only.
    let configs = [
        ("ticket", server_config().session_cache(None)),
        ("session id", server_config().ticketer(None)),
    ];
    for (what, config) in configs {
        let config = Arc::new(config);
        let sess = dir.join(format!("{}.pem", what.replace(' ', "-")));
        let sess = sess.to_str().unwrap();
        for round in 0..2 {
            let case = format!("{what} round {round}");
            let (sock, port) = listen();
            let sess_arg = if round == 0 { "-sess_out" } else { "-sess_in" };
            let mut peer =
                openssl_client(port, &["-dtls1_2", "-CAfile", p.ca_path(), sess_arg, sess]);
            let mut s = udp::serve(sock, config.clone());
            s.handshake()
                .unwrap_or_else(|e| panic!("{case}: {e}\n{}", peer.dump()));
            assert_eq!(s.info().resumed, round == 1, "{case}");
            let reused = if round == 1 { "Reused, " } else { "New, " };
            assert!(
                peer.wait_for_output(&format!("{reused}TLSv1.2"), TIMEOUT),
                "{case}: {}",
                peer.dump()
            );
            peer.write_stdin(b"from s_client\n").unwrap();
            assert_eq!(recv_line(&mut s, &case), "from s_client\n");
            s.send(b"from nbtls\n").unwrap();
            assert!(
                peer.wait_for_output("from nbtls", TIMEOUT),
                "{case}: {}",
                peer.dump()
            );
            // -sess_out writes the session when s_client ends.
            peer.close_stdin();
            assert!(
                peer.wait_exit(TIMEOUT).is_some(),
                "{case}: s_client did not exit"
            );
        }
    }
}

/// Datagrams read for sessions other than the reader's, with their source.
type Stash = Arc<Mutex<VecDeque<(SocketAddr, Vec<u8>)>>>;

/// An unconnected server socket shared by consecutive sessions: each
/// talks to one peer address; datagrams from others are kept for the
/// session that serves them next.
struct Demux {
    sock: UdpSocket,
    peer: SocketAddr,
    stash: Stash,
}

impl Demux {
    fn take_stashed(&self) -> Option<Vec<u8>> {
        let mut q = self.stash.lock().unwrap();
        let i = q.iter().position(|(from, _)| *from == self.peer)?;
        q.remove(i).map(|(_, d)| d)
    }

    /// Waits until a datagram from our peer is stashed (others are too).
    fn wait(&mut self, timeout: Duration) -> std::io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            if self
                .stash
                .lock()
                .unwrap()
                .iter()
                .any(|(f, _)| *f == self.peer)
            {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => self
                    .stash
                    .lock()
                    .unwrap()
                    .push_back((from, buf[..n].to_vec())),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Transport for Demux {
    fn push(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.sock.send_to(data, self.peer)
    }
    fn pull(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.wait(TIMEOUT)? {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let d = self.take_stashed().expect("stashed datagram");
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
    fn pull_timeout(&mut self, timeout: Duration) -> std::io::Result<bool> {
        self.wait(timeout)
    }
}

/// The next peer that writes to the socket: the first address in the
/// stash that `done` does not hold.
fn next_peer(sock: &UdpSocket, stash: &Stash, done: &[SocketAddr]) -> SocketAddr {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; 65536];
    loop {
        if let Some((from, _)) = stash
            .lock()
            .unwrap()
            .iter()
            .find(|(f, _)| !done.contains(f))
        {
            return *from;
        }
        assert!(Instant::now() < deadline, "no new peer");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            stash.lock().unwrap().push_back((from, buf[..n].to_vec()));
        }
    }
}

#[test]
fn gnutls_cli_resumes_on_nbtls_server() {
    if !require_tools(&["gnutls-cli"]) {
        return;
    }
    let p = common::certs::pki();
    for (what, config) in [
        ("ticket", server_config().session_cache(None)),
        ("session id", server_config().ticketer(None)),
    ] {
        let config = Arc::new(config);
        let (sock, port) = listen();
        let stash: Stash = Arc::new(Mutex::new(VecDeque::new()));
        let mut peer = gnutls_client(port, &["-u", "--resume", "--x509cafile", p.ca_path()]);
        let mut done = Vec::new();
        for round in 0..2 {
            let case = format!("{what} round {round}");
            let from = next_peer(&sock, &stash, &done);
            done.push(from);
            let t = Demux {
                sock: sock.try_clone().unwrap(),
                peer: from,
                stash: stash.clone(),
            };
            let mut s = Session::server_datagram(
                config.clone(),
                from.to_string().as_bytes(),
                t,
                Flags::DATAGRAM,
            )
            .unwrap();
            s.handshake()
                .unwrap_or_else(|e| panic!("{case}: {e}\n{}", peer.dump()));
            assert_eq!(s.info().resumed, round == 1, "{case}");
            if round == 0 {
                // gnutls-cli closes at once to connect again.
                let mut buf = [0u8; 64];
                let _ = s.recv(&mut buf);
                let _ = s.bye(nbtls::Shutdown::Write);
            } else {
                assert!(
                    peer.wait_for_output("*** This is a resumed session", TIMEOUT),
                    "{case}: {}",
                    peer.dump()
                );
                peer.write_stdin(b"from gnutls\n").unwrap();
                let mut buf = [0u8; 64];
                let n = s.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"from gnutls\n", "{case}");
                s.send(b"from nbtls\n").unwrap();
                assert!(
                    peer.wait_for_output("from nbtls", TIMEOUT),
                    "{case}: {}",
                    peer.dump()
                );
            }
        }
        peer.kill();
    }
}
