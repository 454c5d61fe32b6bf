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
    // And the DTLS session resumes over DTLS.
    let mut l = link(&client, &server);
    l.handshake();
    assert!(l.c.info().resumed && l.s.info().resumed);
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
    let clock = ManualClock::new();
    let server = Arc::new(server_config().time_source(clock.clone()));
    let client = Arc::new(client_config().time_source(clock.clone()));
    let mut l = link(&client, &server);
    l.handshake();

    let mut l = link(&client, &server);
    // Abbreviated handshake: ClientHello (with the cookie exchange), then
    // the server's ServerHello+CCS+Finished, then the client's CCS+Finished:
    // that last flight, the client's, is lost once.
    let mut lost = 0;
    for _ in 0..10 {
        let (up, _, _) = l.round(
            &mut |d| lost > 0 || !(is_ccs(d) || has_epoch1_record(d, HANDSHAKE)),
            &mut |_| true,
        );
        lost += up.len();
        if lost > 0 {
            break;
        }
    }
    assert!(lost > 0, "the client's final flight was sent and dropped");
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
fn lost_last_flight_with_a_new_session_ticket_is_retransmitted() {
    let clock = ManualClock::new();
    let server = Arc::new(server_config().time_source(clock.clone()));
    let client = Arc::new(client_config().time_source(clock.clone()));
    let mut l = link(&client, &server);
    // Full handshake: the server's last flight is NewSessionTicket, CCS,
    // Finished; drop all of it once.
    let mut lost = Vec::new();
    for _ in 0..10 {
        let (_, down, _) = l.round(&mut |_| true, &mut |d| {
            !lost_flight_seen(d) || !lost.is_empty()
        });
        lost.extend(down);
        if !lost.is_empty() {
            break;
        }
    }
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
