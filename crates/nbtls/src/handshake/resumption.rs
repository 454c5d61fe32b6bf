//! Session resumption state: the server's stateless ticket sealer and the
//! client's session store.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use crate::codec::{put_u16, put_u32, put_vec, CipherSuite, Codec, ProtocolVersion, Reader};
use crate::crypto::key_schedule::hkdf_expand_label;
use crate::crypto::{fill_random, AeadAlg, HashAlg, RecordKey, Secret};
use crate::error::{Error, Result};

/// Seals session state into tickets the server need not remember (RFC
/// 5077 §4, RFC 8446 §4.6.1). Keys are derived from one secret and the
/// rotation period, so servers sharing the secret resume each other's
/// tickets, and a ticket is accepted in its period and the next only.
pub struct Ticketer {
    secret: Secret,
    period: u64,
    lifetime: u32,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticketer")
            .field("period", &self.period)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

const TICKET_KEY_LABEL: &[u8] = b"nbtls ticket key";
const INDEX_LEN: usize = 8;
const NONCE_LEN: usize = 12;

impl Ticketer {
    /// A ticketer with a random secret (tickets resume on this process only).
    pub fn new() -> Result<Self> {
        let mut s = [0u8; 32];
        fill_random(&mut s)?;
        Ok(Self::with_secret(&s))
    }

    /// A ticketer whose keys derive from `secret`: give every server of a
    /// fleet the same secret and each resumes the others' tickets.
    pub fn with_secret(secret: &[u8; 32]) -> Self {
        Ticketer {
            secret: Secret::from_slice(secret),
            period: 12 * 3600,
            lifetime: 7200,
        }
    }

    /// How often the ticket key changes (default 12 h). A ticket is
    /// accepted during the period it was issued in and the next one.
    pub fn rotation(mut self, period: Duration) -> Result<Self> {
        if period.as_secs() == 0 {
            return Err(Error::config(
                "ticket key rotation period must be at least 1 s",
            ));
        }
        self.period = period.as_secs();
        Ok(self)
    }

    /// The lifetime announced in tickets (default 2 h, at most 7 days).
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self> {
        if lifetime.as_secs() == 0 || lifetime.as_secs() > 604_800 {
            return Err(Error::config("ticket lifetime must be 1 s to 7 days"));
        }
        self.lifetime = lifetime.as_secs() as u32;
        Ok(self)
    }

    pub fn ticket_lifetime(&self) -> u32 {
        self.lifetime
    }

    fn key(&self, index: u64) -> Option<RecordKey> {
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        hkdf_expand_label(
            HashAlg::Sha256,
            self.secret.as_bytes(),
            TICKET_KEY_LABEL,
            &index.to_be_bytes(),
            &mut k[..],
        );
        RecordKey::new(AeadAlg::Aes256Gcm, &k[..], &[0; 12]).ok()
    }

    /// index ‖ nonce ‖ AEAD(state); the index and nonce are the AAD.
    pub(crate) fn seal(&self, state: &[u8], now_unix: u64) -> Result<Vec<u8>> {
        let index = now_unix / self.period;
        let key = self
            .key(index)
            .ok_or_else(|| Error::internal("ticket key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut out = Vec::with_capacity(INDEX_LEN + NONCE_LEN + state.len() + AeadAlg::TAG_LEN);
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&nonce);
        let aad = out.clone();
        out.extend_from_slice(state);
        let tag = key.seal_with_nonce(nonce, &aad, &mut out[INDEX_LEN + NONCE_LEN..]);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The state sealed in `ticket`, if it is ours and its key is current.
    pub(crate) fn open(&self, ticket: &[u8], now_unix: u64) -> Option<Vec<u8>> {
        if ticket.len() < INDEX_LEN + NONCE_LEN + AeadAlg::TAG_LEN {
            return None;
        }
        let (head, body) = ticket.split_at(INDEX_LEN + NONCE_LEN);
        let mut idx = [0u8; INDEX_LEN];
        idx.copy_from_slice(&head[..INDEX_LEN]);
        let index = u64::from_be_bytes(idx);
        let current = now_unix / self.period;
        if index != current && index.checked_add(1) != Some(current) {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[INDEX_LEN..]);
        let mut body = body.to_vec();
        let n = self
            .key(index)?
            .open_with_nonce(nonce, head, &mut body)
            .ok()?;
        body.truncate(n);
        Some(body)
    }
}

/// What a ticket carries (sealed, so only this server reads it).
#[derive(Clone)]
pub(crate) struct TicketState {
    pub version: ProtocolVersion,
    pub suite: CipherSuite,
    /// TLS 1.3: the resumption PSK; TLS 1.2: the master secret.
    pub secret: Secret,
    pub issued: u64,
    pub age_add: u32,
    pub lifetime: u32,
    pub server_name: Vec<u8>,
    pub alpn: Vec<u8>,
    pub ems: bool,
    pub max_early_data: u32,
}

impl TicketState {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(128);
        self.version.encode(&mut o);
        self.suite.encode(&mut o);
        put_vec(&mut o, 1, self.secret.as_bytes());
        o.extend_from_slice(&self.issued.to_be_bytes());
        put_u32(&mut o, self.age_add);
        put_u32(&mut o, self.lifetime);
        put_vec(&mut o, 2, &self.server_name);
        put_vec(&mut o, 1, &self.alpn);
        o.push(u8::from(self.ems));
        put_u32(&mut o, self.max_early_data);
        put_u16(&mut o, 0);
        o
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let version = ProtocolVersion::read(&mut r).ok()?;
        let suite = CipherSuite::read(&mut r).ok()?;
        let secret = Secret::from_slice(r.vec_u8("secret").ok()?);
        let hi = r.u32("issued").ok()?;
        let lo = r.u32("issued").ok()?;
        let issued = (u64::from(hi) << 32) | u64::from(lo);
        let age_add = r.u32("age_add").ok()?;
        let lifetime = r.u32("lifetime").ok()?;
        let server_name = r.vec_u16("sni").ok()?.to_vec();
        let alpn = r.vec_u8("alpn").ok()?.to_vec();
        let ems = r.u8("ems").ok()? == 1;
        let max_early_data = r.u32("early").ok()?;
        let _reserved = r.u16("reserved").ok()?;
        r.finish("ticket").ok()?;
        Some(TicketState {
            version,
            suite,
            secret,
            issued,
            age_add,
            lifetime,
            server_name,
            alpn,
            ems,
            max_early_data,
        })
    }

    /// Still within its lifetime at `now`.
    pub fn fresh(&self, now: u64) -> bool {
        now >= self.issued && now - self.issued <= u64::from(self.lifetime)
    }
}

/// A session the client may resume.
#[derive(Clone)]
pub struct ClientSession {
    pub(crate) version: ProtocolVersion,
    pub(crate) suite: CipherSuite,
    pub(crate) ticket: Vec<u8>,
    pub(crate) secret: Secret,
    /// When the ticket arrived, client clock, Unix seconds.
    pub(crate) received: u64,
    pub(crate) lifetime: u32,
    pub(crate) age_add: u32,
    pub(crate) max_early_data: u32,
    pub(crate) alpn: Option<Vec<u8>>,
    /// TLS 1.2: the session used Extended Master Secret.
    pub(crate) ems: bool,
    /// TLS 1.2: the server's session id (resumption by id).
    pub(crate) session_id: Vec<u8>,
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("version", &self.version)
            .field("suite", &self.suite)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The ALPN protocol the session negotiated.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// Early data this session allows (TLS 1.3), 0 if none.
    pub fn max_early_data(&self) -> u32 {
        self.max_early_data
    }

    pub(crate) fn fresh(&self, now: u64) -> bool {
        now >= self.received && now - self.received <= u64::from(self.lifetime)
    }
}

/// Where a client keeps sessions to resume, by server name. Each session is
/// taken once (RFC 8446 §C.4: a ticket is used for one connection).
pub trait SessionStore: Send + Sync + fmt::Debug {
    fn put(&self, server_name: &str, session: ClientSession);
    fn take(&self, server_name: &str) -> Option<ClientSession>;
}

/// A bounded in-memory store: the newest sessions, a few per server.
#[derive(Debug)]
pub struct MemorySessionStore {
    inner: Mutex<VecDeque<(String, ClientSession)>>,
    capacity: usize,
    per_server: usize,
}

impl MemorySessionStore {
    /// Holds at most `capacity` sessions in all, 4 per server name.
    pub fn new(capacity: usize) -> Self {
        MemorySessionStore {
            inner: Mutex::new(VecDeque::new()),
            capacity,
            per_server: 4,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |q| q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SessionStore for MemorySessionStore {
    fn put(&self, server_name: &str, session: ClientSession) {
        let Ok(mut q) = self.inner.lock() else { return };
        if q.iter().filter(|(n, _)| n == server_name).count() >= self.per_server {
            if let Some(i) = q.iter().position(|(n, _)| n == server_name) {
                q.remove(i);
            }
        }
        if q.len() >= self.capacity {
            q.pop_front();
        }
        if self.capacity > 0 {
            q.push_back((server_name.to_string(), session));
        }
    }

    fn take(&self, server_name: &str) -> Option<ClientSession> {
        let mut q = self.inner.lock().ok()?;
        // Newest first.
        let i = q.iter().rposition(|(n, _)| n == server_name)?;
        q.remove(i).map(|(_, s)| s)
    }
}

/// A TLS 1.2 server's cache of sessions by session id (RFC 5246 §7.4.1.2),
/// bounded: the oldest entries go first.
#[derive(Debug)]
pub struct ServerSessionCache {
    inner: Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>,
    capacity: usize,
}

impl ServerSessionCache {
    pub fn new(capacity: usize) -> Self {
        ServerSessionCache {
            inner: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|q| q.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn put(&self, id: &[u8], state: &TicketState) {
        let Ok(mut q) = self.inner.lock() else { return };
        q.retain(|(k, _)| k != id);
        if q.len() >= self.capacity {
            q.pop_front();
        }
        if self.capacity > 0 {
            q.push_back((id.to_vec(), state.encode()));
        }
    }

    pub(crate) fn get(&self, id: &[u8]) -> Option<TicketState> {
        let q = self.inner.lock().ok()?;
        q.iter()
            .find(|(k, _)| k == id)
            .and_then(|(_, v)| TicketState::decode(v))
    }
}

/// Fingerprints seen, and their expiry in arrival order.
type Strikes = (
    std::collections::HashSet<[u8; 32]>,
    VecDeque<([u8; 32], u64)>,
);

/// A bounded strike register for 0-RTT (RFC 8446 §8.2): a ClientHello's
/// early data is accepted once, within the freshness window; a replay, or a
/// hello when the register is full, gets its early data rejected (the
/// handshake still completes in 1-RTT).
#[derive(Debug)]
pub struct AntiReplay {
    inner: Mutex<Strikes>,
    capacity: usize,
    window: u64,
}

impl AntiReplay {
    /// Remembers up to `capacity` ClientHellos for the freshness window
    /// (default 10 s).
    pub fn new(capacity: usize) -> Self {
        AntiReplay {
            inner: Mutex::new(Default::default()),
            capacity,
            window: 10,
        }
    }

    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.as_secs().max(1);
        self
    }

    pub(crate) fn window_secs(&self) -> u64 {
        self.window
    }

    /// `true` the first time `id` is seen within the window.
    pub(crate) fn first_use(&self, id: &[u8], now: u64) -> bool {
        let key = crate::crypto::hash::hash(HashAlg::Sha256, id);
        let mut k = [0u8; 32];
        k.copy_from_slice(key.as_bytes());
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        let (set, order) = &mut *g;
        while order.front().is_some_and(|(_, exp)| *exp <= now) {
            if let Some((old, _)) = order.pop_front() {
                set.remove(&old);
            }
        }
        if set.contains(&k) || set.len() >= self.capacity {
            return false;
        }
        set.insert(k);
        order.push_back((k, now + self.window));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TicketState {
        TicketState {
            version: ProtocolVersion::TLS1_3,
            suite: CipherSuite::TLS_AES_128_GCM_SHA256,
            secret: Secret::from_slice(&[7; 32]),
            issued: 1000,
            age_add: 5,
            lifetime: 7200,
            server_name: b"localhost".to_vec(),
            alpn: b"h2".to_vec(),
            ems: true,
            max_early_data: 0,
        }
    }

    #[test]
    fn tickets_open_in_their_period_and_the_next_only() {
        let t = Ticketer::with_secret(&[1; 32])
            .rotation(Duration::from_secs(100))
            .unwrap();
        let sealed = t.seal(&state().encode(), 1050).unwrap();
        assert!(t.open(&sealed, 1099).is_some());
        assert!(t.open(&sealed, 1199).is_some());
        assert!(t.open(&sealed, 1200).is_none());
        let back = TicketState::decode(&t.open(&sealed, 1050).unwrap()).unwrap();
        assert_eq!(back.secret.as_bytes(), &[7; 32]);
        assert_eq!(back.alpn, b"h2");
        // Another server with the same secret opens it; one without does not.
        let fleet = Ticketer::with_secret(&[1; 32])
            .rotation(Duration::from_secs(100))
            .unwrap();
        assert!(fleet.open(&sealed, 1050).is_some());
        let other = Ticketer::with_secret(&[2; 32])
            .rotation(Duration::from_secs(100))
            .unwrap();
        assert!(other.open(&sealed, 1050).is_none());
    }

    #[test]
    fn tampered_tickets_do_not_open() {
        let t = Ticketer::with_secret(&[1; 32]);
        let sealed = t.seal(&state().encode(), 1050).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(t.open(&bad, 1050).is_none(), "byte {i}");
        }
        assert!(t.open(&sealed[..10], 1050).is_none());
    }

    #[test]
    fn anti_replay_accepts_once_within_the_window() {
        let r = AntiReplay::new(2).window(Duration::from_secs(10));
        assert!(r.first_use(b"a", 100));
        assert!(!r.first_use(b"a", 105), "replay");
        assert!(r.first_use(b"b", 105));
        assert!(!r.first_use(b"c", 106), "full: refused, not evicted early");
        assert!(r.first_use(b"c", 110), "a's entry expired");
        assert!(!r.first_use(b"b", 111));
    }

    #[test]
    fn store_is_bounded_and_takes_newest_once() {
        let s = MemorySessionStore::new(3);
        let mk = |n: u8| ClientSession {
            version: ProtocolVersion::TLS1_3,
            suite: CipherSuite::TLS_AES_128_GCM_SHA256,
            ticket: vec![n],
            secret: Secret::from_slice(&[n; 32]),
            received: 0,
            lifetime: 10,
            age_add: 0,
            max_early_data: 0,
            alpn: None,
            ems: false,
            session_id: Vec::new(),
        };
        for n in 0..5 {
            s.put("a", mk(n));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.take("a").unwrap().ticket, vec![4]);
        assert_eq!(s.take("a").unwrap().ticket, vec![3]);
        assert!(s.take("b").is_none());
    }
}
