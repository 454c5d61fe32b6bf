//! The sans-IO listener core: `(key, datagram)` in; replies, established
//! sessions and idle expiries out. It performs no I/O; its clock is the
//! server config's `TimeSource`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::verify::{is_client_hello, verify_hello, DropReason, HelloCheck, Prestate};
use super::{ListenerConfig, PeerKey};
use crate::config::ServerConfig;
use crate::engine::Engine;
use crate::session::{Flags, Session};
use crate::transport::Transport;

/// A handshake that passed the cookie check and has not completed.
struct HalfOpen {
    engine: Engine,
    /// The handshake is abandoned at this time.
    deadline: Instant,
    /// The ClientHello's random: tells a retransmission from a restart.
    random: [u8; 32],
}

/// An established session the acceptor routes to.
struct Live {
    /// When it last received a datagram.
    last: Instant,
    /// Its ClientHello's random: a delayed copy of that hello is no restart.
    random: [u8; 32],
}

/// A completed handshake, handed out once.
pub struct Accepted<K> {
    key: K,
    engine: Engine,
    replaces: bool,
}

impl<K> std::fmt::Debug for Accepted<K>
where
    K: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("key", &self.key)
            .field("replaces", &self.replaces)
            .finish_non_exhaustive()
    }
}

impl<K> Accepted<K> {
    /// The peer this session belongs to.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// True when the peer had an established session already (a client
    /// restarted on the same address): that older session is now dead and
    /// datagrams for `key` belong to this one.
    pub fn replaces(&self) -> bool {
        self.replaces
    }

    /// The established session over `transport` (whose pushes must reach
    /// the peer, and whose pulls return what the acceptor routes to it).
    /// `Flags::DATAGRAM` is implied; `handshake()` returns `Ok` at once.
    pub fn into_session<T: Transport>(self, transport: T, flags: Flags) -> Session<T> {
        Session::established_datagram(self.engine, transport, flags)
    }

    /// The established engine itself, for adapters that drive it directly
    /// (nbtls-tokio's listener).
    #[cfg(feature = "unstable-engine")]
    pub fn into_engine(self) -> Engine {
        self.engine
    }
}

/// Where a received datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Consumed by the acceptor (a cookie exchange, a handshake in
    /// progress) or dropped.
    Handled,
    /// Traffic of the established session for this key: pass the datagram
    /// to that session's transport.
    Session,
}

/// Counters, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptorStats {
    /// HelloVerifyRequests sent (stateless replies).
    pub hello_verify_sent: u64,
    /// Handshakes started after a verified cookie.
    pub handshakes_started: u64,
    /// Handshakes completed and handed out.
    pub handshakes_completed: u64,
    /// Handshakes that failed or timed out.
    pub handshakes_failed: u64,
    /// Verified ClientHellos refused because `max_half_open` were running.
    pub refused_full: u64,
    /// ClientHellos dropped for being fragmented.
    pub dropped_fragmented: u64,
    /// Other datagrams from unknown peers dropped.
    pub dropped_other: u64,
}

/// Demultiplexes datagrams of many DTLS clients by `K`, runs the cookie
/// exchange statelessly, bounds the half-open handshakes, and hands out one
/// session per client. See the [module docs](super).
pub struct Acceptor<K: PeerKey> {
    config: Arc<ServerConfig>,
    limits: ListenerConfig,
    half_open: HashMap<K, HalfOpen>,
    established: HashMap<K, Live>,
    /// No idle deadline is earlier than this (a lower bound: sessions only
    /// move their deadlines later).
    idle_due: Option<Instant>,
    transmit: VecDeque<(K, Vec<u8>)>,
    accepted: VecDeque<Accepted<K>>,
    expired: VecDeque<K>,
    stats: AcceptorStats,
}

impl<K: PeerKey> Acceptor<K> {
    pub fn new(config: Arc<ServerConfig>, limits: ListenerConfig) -> Self {
        Acceptor {
            config,
            limits,
            half_open: HashMap::new(),
            established: HashMap::new(),
            idle_due: None,
            transmit: VecDeque::new(),
            accepted: VecDeque::new(),
            expired: VecDeque::new(),
            stats: AcceptorStats::default(),
        }
    }

    /// The current time on the server config's clock.
    pub(crate) fn now(&self) -> Instant {
        self.config.common.time.now()
    }

    pub fn config(&self) -> &ListenerConfig {
        &self.limits
    }

    /// Handshakes in progress (each holds an engine).
    pub fn half_open(&self) -> usize {
        self.half_open.len()
    }

    /// Established sessions the acceptor routes to.
    pub fn sessions(&self) -> usize {
        self.established.len()
    }

    pub fn stats(&self) -> AcceptorStats {
        self.stats
    }

    /// Processes one datagram from `key`.
    pub fn handle_datagram(&mut self, key: K, datagram: &[u8]) -> Route {
        let now = self.now();
        let hello = is_client_hello(datagram);
        let known = self.established.contains_key(&key);
        if let (false, Some(live)) = (hello, self.established.get_mut(&key)) {
            live.last = now;
        }
        let route = if known && !hello {
            Route::Session
        } else {
            Route::Handled
        };
        if let Some(h) = self.half_open.get(&key) {
            if hello {
                match verify_hello(&self.config, &key.client_id(), datagram) {
                    HelloCheck::SendHelloVerify(reply) => {
                        self.stats.hello_verify_sent += 1;
                        self.transmit.push_back((key, reply));
                        return route;
                    }
                    // A new hello (the client restarted again): start over.
                    HelloCheck::Accept(p) if p.client_random() != &h.random => {
                        self.half_open.remove(&key);
                        self.start(key, &p, datagram, now);
                        return route;
                    }
                    _ => {}
                }
            }
            // Handshake traffic; during a restart, session traffic too (each
            // side drops what its keys do not open).
            if let Some(h) = self.half_open.get_mut(&key) {
                let _ = h.engine.feed_datagram(datagram);
            }
            self.progress(&key, now);
            return route;
        }
        if hello {
            match verify_hello(&self.config, &key.client_id(), datagram) {
                HelloCheck::SendHelloVerify(reply) => {
                    self.stats.hello_verify_sent += 1;
                    self.transmit.push_back((key, reply));
                }
                // A delayed copy of the hello that made the live session.
                HelloCheck::Accept(p)
                    if self
                        .established
                        .get(&key)
                        .is_some_and(|l| &l.random == p.client_random()) =>
                {
                    self.stats.dropped_other += 1;
                }
                HelloCheck::Accept(p) => {
                    if self.half_open.len() >= self.limits.max_half_open {
                        self.stats.refused_full += 1;
                    } else {
                        self.start(key, &p, datagram, now);
                    }
                }
                HelloCheck::Drop(DropReason::Fragmented) => self.stats.dropped_fragmented += 1,
                HelloCheck::Drop(_) => self.stats.dropped_other += 1,
            }
            return route;
        }
        if !known {
            self.stats.dropped_other += 1;
        }
        route
    }

    fn start(&mut self, key: K, p: &Prestate, datagram: &[u8], now: Instant) {
        self.stats.handshakes_started += 1;
        match Engine::server_dtls_accepted(self.config.clone(), &key.client_id(), p, datagram) {
            Ok(mut engine) => {
                if engine.mtu() != self.limits.mtu {
                    engine.set_mtu(self.limits.mtu);
                }
                let h = HalfOpen {
                    engine,
                    deadline: now + self.limits.handshake_timeout,
                    random: *p.client_random(),
                };
                self.half_open.insert(key.clone(), h);
                self.progress(&key, now);
            }
            // The hello was refused (its alert is not worth state either).
            Err(_) => self.stats.handshakes_failed += 1,
        }
    }

    /// Queues what the half-open engine for `key` sends; retires it when
    /// it failed or completed.
    fn progress(&mut self, key: &K, now: Instant) {
        let Some(h) = self.half_open.get_mut(key) else {
            return;
        };
        while let Some(d) = h.engine.pending_datagram() {
            self.transmit.push_back((key.clone(), d.to_vec()));
            h.engine.datagram_sent();
        }
        if h.engine.error().is_some() {
            self.half_open.remove(key);
            self.stats.handshakes_failed += 1;
        } else if !h.engine.is_handshaking() {
            if let Some(h) = self.half_open.remove(key) {
                self.stats.handshakes_completed += 1;
                let live = Live {
                    last: now,
                    random: h.random,
                };
                let replaces = self.established.insert(key.clone(), live).is_some();
                let due = now + self.limits.idle_timeout;
                self.idle_due = Some(self.idle_due.map_or(due, |d| d.min(due)));
                self.accepted.push_back(Accepted {
                    key: key.clone(),
                    engine: h.engine,
                    replaces,
                });
            }
        }
    }

    /// When `handle_timeout` must run next (retransmissions, handshake
    /// deadlines, idle sessions).
    pub fn timeout(&self) -> Option<Instant> {
        self.half_open
            .values()
            .flat_map(|h| [h.engine.dtls_timeout(), Some(h.deadline)])
            .flatten()
            .chain(self.idle_due)
            .min()
    }

    /// Runs due timers: retransmits half-open flights, abandons handshakes
    /// past their deadline and forgets idle sessions (see `poll_expired`).
    pub fn handle_timeout(&mut self) {
        let now = self.now();
        let keys: Vec<K> = self.half_open.keys().cloned().collect();
        for key in keys {
            let Some(h) = self.half_open.get_mut(&key) else {
                continue;
            };
            if now >= h.deadline {
                self.half_open.remove(&key);
                self.stats.handshakes_failed += 1;
                continue;
            }
            let _ = h.engine.dtls_on_timer();
            self.progress(&key, now);
        }
        if self.idle_due.is_some_and(|d| now >= d) {
            let idle = self.limits.idle_timeout;
            let mut next: Option<Instant> = None;
            let expired = &mut self.expired;
            self.established.retain(|k, live| {
                let due = live.last + idle;
                if now >= due {
                    expired.push_back(k.clone());
                    false
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    true
                }
            });
            self.idle_due = next;
        }
    }

    /// The next datagram to send, and to whom.
    pub fn poll_transmit(&mut self) -> Option<(K, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// The next completed handshake.
    pub fn poll_accept(&mut self) -> Option<Accepted<K>> {
        self.accepted.pop_front()
    }

    /// The next session forgotten for being idle: drop it.
    pub fn poll_expired(&mut self) -> Option<K> {
        self.expired.pop_front()
    }

    /// Stops routing to `key`'s session (the caller closed it). A handshake
    /// in progress for `key` goes on.
    pub fn forget(&mut self, key: &K) {
        self.established.remove(key);
    }
}
