//! A man in the middle between a real nbtls client and a real nbtls server.
//!
//! The two sessions talk over two `MemoryTransport` pairs; [`Mitm::pump`] moves the bytes
//! between them. It learns every secret through a [`KeyLog`] installed on both configs
//! ([`SecretLog`]), so it can open protected records, show them to a test hook, and seal
//! what the hook wants forwarded with the key and sequence number the receiver expects.
//!
//! The hook sees *units*: one handshake message each (sessions coalesce several messages
//! into one record, and a message may span records: the MITM splits and re-assembles),
//! or one record of any other type. A forwarded handshake message goes out in a record of
//! its own, which TLS allows (RFC 8446 §5.1, RFC 5246 §6.2.1).
//!
//! Keys are tracked per direction twice: the `inbound` key opens what the sender wrote,
//! the `outbound` key seals what the receiver gets. They move together while units are
//! forwarded unchanged; a hook that drops or inserts records (or injects a KeyUpdate or a
//! ChangeCipherSpec) only moves the outbound side, exactly as the receiver's own key
//! moves. TLS 1.3 (RFC 8446 §7): server handshake keys after ServerHello, application
//! keys after each side's Finished, the next generation after a KeyUpdate. TLS 1.2 (RFC
//! 5246 §6.3, §7.1): a side's key after its ChangeCipherSpec, from the master secret the
//! `CLIENT_RANDOM` log line carries and the randoms of the hellos.

use std::fmt;
use std::sync::{Arc, Mutex};

use nbtls::codec::{
    AlertDescription, ContentType, HandshakeMessage, HandshakeType, ProtocolVersion, ServerHello,
    HRR_RANDOM,
};
use nbtls::crypto::{
    key_schedule, tls12_suite, tls13_suite, AeadAlg, RecordKey, Secret, Tls12Suite, Tls13Suite,
};
use nbtls::{
    ClientConfig, Error, Flags, KeyLog, MemoryTransport, ServerConfig, Session, Transport,
};

/// Captures the secrets a session logs (NSS key log labels), newest last.
#[derive(Debug, Default)]
pub struct SecretLog {
    entries: Mutex<Vec<(String, Vec<u8>)>>,
}

impl KeyLog for SecretLog {
    fn log(&self, label: &str, _client_random: &[u8; 32], secret: &[u8]) {
        if let Ok(mut e) = self.entries.lock() {
            e.push((label.to_string(), secret.to_vec()));
        }
    }
}

impl SecretLog {
    /// The newest secret logged under `label`.
    pub fn get(&self, label: &str) -> Option<Secret> {
        let e = self.entries.lock().ok()?;
        e.iter()
            .rev()
            .find(|(l, _)| l == label)
            .map(|(_, s)| Secret::from_slice(s))
    }
}

/// Which way a record travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }
}

/// A unit as the sender wrote it (one handshake message, or one record of another
/// type), opened if it was protected.
#[derive(Clone)]
pub struct Rec {
    pub dir: Dir,
    /// Position among the units of its direction (0-based).
    pub index: usize,
    /// The real content type (the inner one for protected TLS 1.3 records).
    pub typ: ContentType,
    pub payload: Vec<u8>,
    /// It arrived protected; `Verdict::Forward` seals it again.
    pub encrypted: bool,
    /// Protected with a TLS 1.2 key (its outer type is its real type).
    pub tls12: bool,
    /// The wire bytes of the record that completed this unit (shared by the
    /// messages of one record).
    pub wire: Vec<u8>,
    /// Protected, but no key we know opened it.
    pub opaque: bool,
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<u8> = self.payload.iter().copied().take(8).collect();
        write!(
            f,
            "{:?}#{} {:?}{} len={} {:02x?}{}",
            self.dir,
            self.index,
            self.typ,
            if self.encrypted { " (protected)" } else { "" },
            self.payload.len(),
            head,
            if self.opaque { " OPAQUE" } else { "" }
        )
    }
}

impl Rec {
    /// The type of the (first) handshake message of a handshake unit.
    pub fn hs_type(&self) -> Option<HandshakeType> {
        (self.typ == ContentType::HANDSHAKE && !self.opaque)
            .then(|| self.payload.first().map(|&t| HandshakeType(t)))
            .flatten()
    }

    /// `(level, description)` of an alert record.
    pub fn alert(&self) -> Option<(u8, AlertDescription)> {
        match (self.typ, self.payload.as_slice()) {
            (ContentType::ALERT, [level, desc]) if !self.opaque => {
                Some((*level, AlertDescription(*desc)))
            }
            _ => None,
        }
    }
}

/// What to do with a unit the hook saw.
pub enum Verdict {
    /// Send `rec` (as the hook left it) on, sealed again if it arrived protected.
    Forward,
    /// Send nothing.
    Drop,
    /// Send these wire records instead (made with the `Ctx` methods, in that order).
    Emit(Vec<Vec<u8>>),
}

pub type Hook = Box<dyn FnMut(&mut Ctx<'_>, &mut Rec) -> Verdict>;

/// Boxes a closure as a [`Hook`] (and gives it its argument types).
pub fn hook(f: impl FnMut(&mut Ctx<'_>, &mut Rec) -> Verdict + 'static) -> Hook {
    Box::new(f)
}

/// How a key protects records.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prot {
    /// RFC 8446 §5.2: outer type application_data, inner type, nonce = IV ^ seq.
    Tls13,
    /// RFC 5246 §6.2.3.3 with RFC 5288 (8-byte explicit nonce) or RFC 7905 (none).
    Tls12 { explicit: bool },
}

/// What opening a record gave.
enum Opened {
    /// Not protected under this key (TLS 1.3 plaintext record types).
    Plain,
    Ok(ContentType, Vec<u8>),
    Failed,
}

struct KeyState {
    key: RecordKey,
    seq: u64,
    prot: Prot,
    /// TLS 1.3: the traffic secret and suite, for the next generation.
    secret: Option<(Secret, &'static Tls13Suite)>,
}

impl KeyState {
    fn tls13(suite: &'static Tls13Suite, secret: Secret) -> Self {
        KeyState {
            key: RecordKey::from_traffic_secret(suite.aead, suite.hash, &secret),
            seq: 0,
            prot: Prot::Tls13,
            secret: Some((secret, suite)),
        }
    }

    fn next(&self) -> Option<Self> {
        let (secret, suite) = self.secret.as_ref()?;
        Some(KeyState::tls13(
            suite,
            key_schedule::next_traffic_secret(suite.hash, secret),
        ))
    }

    fn open(&mut self, wire: &[u8]) -> Opened {
        let outer = ContentType(wire[0]);
        let mut body = wire[5..].to_vec();
        match self.prot {
            Prot::Tls13 => {
                if outer != ContentType::APPLICATION_DATA {
                    return Opened::Plain;
                }
                let Ok(n) = self.key.open(self.seq, &wire[..5], &mut body) else {
                    return Opened::Failed;
                };
                self.seq += 1;
                body.truncate(n);
                let typ = match body.iter().rposition(|&b| b != 0) {
                    Some(pos) => {
                        let t = ContentType(body[pos]);
                        body.truncate(pos);
                        t
                    }
                    None => {
                        body.clear();
                        ContentType(0)
                    }
                };
                Opened::Ok(typ, body)
            }
            Prot::Tls12 { explicit } => {
                let start = if explicit { 8 } else { 0 };
                if body.len() < start + AeadAlg::TAG_LEN {
                    return Opened::Failed;
                }
                let nonce_seq = if explicit {
                    u64::from_be_bytes(body[..8].try_into().expect("8 bytes"))
                } else {
                    self.seq
                };
                let plain_len = body.len() - start - AeadAlg::TAG_LEN;
                let aad = tls12_aad(self.seq, outer, plain_len);
                let Ok(n) = self.key.open(nonce_seq, &aad, &mut body[start..]) else {
                    return Opened::Failed;
                };
                self.seq += 1;
                Opened::Ok(outer, body[start..start + n].to_vec())
            }
        }
    }

    /// One protected record of `typ` carrying `payload`.
    fn seal(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        match self.prot {
            Prot::Tls13 => {
                let mut inner = payload.to_vec();
                inner.push(typ.0);
                self.seal_inner(&inner)
            }
            Prot::Tls12 { explicit } => {
                let extra = if explicit { 8 } else { 0 };
                let len = extra + payload.len() + AeadAlg::TAG_LEN;
                let mut out = vec![typ.0, 3, 3];
                out.extend_from_slice(&(len as u16).to_be_bytes());
                if explicit {
                    // RFC 5288 §3: the explicit nonce is the sequence number.
                    out.extend_from_slice(&self.seq.to_be_bytes());
                }
                let mut body = payload.to_vec();
                let aad = tls12_aad(self.seq, typ, payload.len());
                let tag = self.key.seal(self.seq, &aad, &mut body);
                self.seq += 1;
                out.extend_from_slice(&body);
                out.extend_from_slice(&tag);
                out
            }
        }
    }

    fn seal_inner(&mut self, inner: &[u8]) -> Vec<u8> {
        assert!(self.prot == Prot::Tls13, "seal_inner needs a TLS 1.3 key");
        let len = inner.len() + AeadAlg::TAG_LEN;
        let mut out = vec![ContentType::APPLICATION_DATA.0, 3, 3];
        out.extend_from_slice(&(len as u16).to_be_bytes());
        let mut body = inner.to_vec();
        let tag = self.key.seal(self.seq, &out, &mut body);
        self.seq += 1;
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }
}

/// TLS 1.2 additional data: seq ‖ type ‖ version ‖ plaintext length.
fn tls12_aad(seq: u64, typ: ContentType, len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = typ.0;
    aad[9..11].copy_from_slice(&ProtocolVersion::TLS1_2.0.to_be_bytes());
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

#[derive(Default)]
struct DirKeys {
    inbound: Option<KeyState>,
    outbound: Option<KeyState>,
}

/// What a TLS 1.2 key block is derived from besides the master secret.
#[derive(Clone, Copy)]
struct Tls12Params {
    suite: &'static Tls12Suite,
    client_random: [u8; 32],
    server_random: [u8; 32],
}

/// The key state both directions share.
pub struct Keys {
    log: Arc<SecretLog>,
    suite: Option<&'static Tls13Suite>,
    client_random: [u8; 32],
    /// Set once the server's (original) ServerHello chose TLS 1.2.
    tls12: Option<Tls12Params>,
    dirs: [DirKeys; 2],
}

impl Keys {
    fn labeled(&self, label: &str) -> Option<KeyState> {
        let suite = self.suite?;
        Some(KeyState::tls13(suite, self.log.get(label)?))
    }

    /// The TLS 1.2 key the writer of `dir` uses after its ChangeCipherSpec.
    fn tls12_key(&self, dir: Dir) -> Option<KeyState> {
        let p = self.tls12?;
        let master = self.log.get("CLIENT_RANDOM")?;
        let (client, server) = nbtls::handshake::tls12::record_keys(
            p.suite,
            &master,
            &p.client_random,
            &p.server_random,
        )
        .ok()?;
        Some(KeyState {
            key: match dir {
                Dir::ToServer => client,
                Dir::ToClient => server,
            },
            seq: 0,
            prot: Prot::Tls12 {
                explicit: p.suite.aead != AeadAlg::Chacha20Poly1305,
            },
            secret: None,
        })
    }

    /// The sender's key moves after the unit it wrote.
    fn after_original(&mut self, dir: Dir, typ: ContentType, payload: &[u8], encrypted: bool) {
        if typ == ContentType::CHANGE_CIPHER_SPEC && payload == [1] && !encrypted {
            if self.tls12.is_some() {
                self.dirs[dir.idx()].inbound = self.tls12_key(dir);
            }
            return;
        }
        for (typ, body) in messages(typ, payload) {
            match (dir, typ) {
                (Dir::ToServer, HandshakeType::CLIENT_HELLO) => {
                    if let Some(r) = body.get(2..34) {
                        self.client_random.copy_from_slice(r);
                    }
                }
                (Dir::ToClient, HandshakeType::SERVER_HELLO) if !is_hrr(body) => {
                    let Ok(sh) = ServerHello::from_message(&hs_message(typ, body)) else {
                        continue;
                    };
                    if sh.supported_version() != Some(ProtocolVersion::TLS1_3) {
                        self.tls12 = tls12_suite(sh.cipher_suite).map(|suite| Tls12Params {
                            suite,
                            client_random: self.client_random,
                            server_random: sh.random,
                        });
                        continue;
                    }
                    self.tls12 = None;
                    self.suite = tls13_suite(sh.cipher_suite).or(self.suite);
                    self.dirs[1].inbound = self.labeled("SERVER_HANDSHAKE_TRAFFIC_SECRET");
                    // The client writes, and the server reads, with the client
                    // handshake key from here on.
                    self.dirs[0].inbound = self.labeled("CLIENT_HANDSHAKE_TRAFFIC_SECRET");
                    self.dirs[0].outbound = self.labeled("CLIENT_HANDSHAKE_TRAFFIC_SECRET");
                }
                _ if self.tls12.is_some() => {}
                (Dir::ToClient, HandshakeType::FINISHED) => {
                    self.dirs[1].inbound = self.labeled("SERVER_TRAFFIC_SECRET_0");
                }
                (Dir::ToServer, HandshakeType::FINISHED) => {
                    self.dirs[0].inbound = self.labeled("CLIENT_TRAFFIC_SECRET_0");
                }
                (_, HandshakeType::KEY_UPDATE) => {
                    let next = self.dirs[dir.idx()]
                        .inbound
                        .as_ref()
                        .and_then(KeyState::next);
                    if next.is_some() {
                        self.dirs[dir.idx()].inbound = next;
                    }
                }
                _ => {}
            }
        }
    }

    /// The receiver's key moves after what it was sent (`was_protected`: the
    /// record went out sealed).
    fn after_emitted(&mut self, dir: Dir, typ: ContentType, payload: &[u8], was_protected: bool) {
        if typ == ContentType::CHANGE_CIPHER_SPEC && payload == [1] && !was_protected {
            if self.tls12.is_some() {
                self.dirs[dir.idx()].outbound = self.tls12_key(dir);
            }
            return;
        }
        for (typ, body) in messages(typ, payload) {
            match (dir, typ) {
                (Dir::ToClient, HandshakeType::SERVER_HELLO) if !is_hrr(body) => {
                    let Ok(sh) = ServerHello::from_message(&hs_message(typ, body)) else {
                        continue;
                    };
                    if sh.supported_version() == Some(ProtocolVersion::TLS1_3) {
                        self.suite = tls13_suite(sh.cipher_suite).or(self.suite);
                        self.dirs[1].outbound = self.labeled("SERVER_HANDSHAKE_TRAFFIC_SECRET");
                    }
                }
                _ if self.tls12.is_some() => {}
                (Dir::ToClient, HandshakeType::FINISHED) => {
                    self.dirs[1].outbound = self.labeled("SERVER_TRAFFIC_SECRET_0");
                }
                (Dir::ToServer, HandshakeType::FINISHED) => {
                    self.dirs[0].outbound = self.labeled("CLIENT_TRAFFIC_SECRET_0");
                }
                // Only a well-formed KeyUpdate makes the receiver rekey.
                (_, HandshakeType::KEY_UPDATE) if body == [0] || body == [1] => {
                    let next = self.dirs[dir.idx()]
                        .outbound
                        .as_ref()
                        .and_then(KeyState::next);
                    if next.is_some() {
                        self.dirs[dir.idx()].outbound = next;
                    }
                }
                _ => {}
            }
        }
    }
}

/// The whole handshake messages of a handshake payload, `(type, body)`; a
/// partial trailing message is ignored.
fn messages(typ: ContentType, payload: &[u8]) -> Vec<(HandshakeType, &[u8])> {
    let mut out = Vec::new();
    if typ != ContentType::HANDSHAKE {
        return out;
    }
    let mut rest = payload;
    while let Some(len) = message_len(rest) {
        out.push((HandshakeType(rest[0]), &rest[4..len]));
        rest = &rest[len..];
    }
    out
}

/// The length (with header) of the whole message at the start of `b`.
fn message_len(b: &[u8]) -> Option<usize> {
    let len = 4 + u32::from_be_bytes([0, *b.get(1)?, *b.get(2)?, *b.get(3)?]) as usize;
    (b.len() >= len).then_some(len)
}

fn is_hrr(sh_body: &[u8]) -> bool {
    sh_body.get(2..34) == Some(&HRR_RANDOM[..])
}

/// A plaintext record.
pub fn plain_record(typ: ContentType, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![typ.0, 3, 3];
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A handshake message: type ‖ u24 length ‖ body.
pub fn hs_message(typ: HandshakeType, body: &[u8]) -> Vec<u8> {
    let mut out = vec![typ.0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// Builds records for one direction; given to hooks.
pub struct Ctx<'a> {
    dir: Dir,
    keys: &'a mut Keys,
}

impl Ctx<'_> {
    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// The receiver reads protected records now.
    pub fn protected(&self) -> bool {
        self.keys.dirs[self.dir.idx()].outbound.is_some()
    }

    /// The receiver's protection is TLS 1.2's.
    pub fn tls12(&self) -> bool {
        self.keys.dirs[self.dir.idx()]
            .outbound
            .as_ref()
            .is_some_and(|k| k.prot != Prot::Tls13)
    }

    /// A record of `typ` carrying `payload`: sealed when the receiver expects
    /// protection, plaintext before that. Key changes it causes are tracked.
    pub fn record(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let protected = self.protected();
        let out = match self.keys.dirs[self.dir.idx()].outbound.as_mut() {
            Some(k) => k.seal(typ, payload),
            None => plain_record(typ, payload),
        };
        self.keys.after_emitted(self.dir, typ, payload, protected);
        out
    }

    /// Records carrying `payload` in fragments of at most 2^14 bytes (one
    /// wire buffer); a reassembled message may be longer than one record.
    pub fn records(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        if payload.len() <= 16384 {
            return self.record(typ, payload);
        }
        payload
            .chunks(16384)
            .flat_map(|c| self.record(typ, c))
            .collect()
    }

    /// A TLS 1.3 protected record whose inner plaintext (content, type byte,
    /// padding) is exactly `inner`. Panics if the receiver has no TLS 1.3 key.
    pub fn seal_inner(&mut self, inner: &[u8]) -> Vec<u8> {
        self.keys.dirs[self.dir.idx()]
            .outbound
            .as_mut()
            .expect("seal_inner before the receiver has a key")
            .seal_inner(inner)
    }
}

/// One direction's byte plumbing.
#[derive(Default)]
struct Pipe {
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Handshake bytes of a message not yet complete.
    hs: Vec<u8>,
    units: usize,
    /// The records as the sender wrote them.
    wire: Vec<Vec<u8>>,
    eof: bool,
}

/// The man in the middle: the transport ends facing the client and the server.
pub struct Mitm {
    to_client: MemoryTransport,
    to_server: MemoryTransport,
    keys: Keys,
    pipes: [Pipe; 2],
    hook: Option<Hook>,
    seen: Vec<Rec>,
    /// Directions whose bytes are moved unparsed (a test writing raw bytes).
    passthrough: [bool; 2],
}

impl Mitm {
    fn new(to_client: MemoryTransport, to_server: MemoryTransport, log: Arc<SecretLog>) -> Self {
        Mitm {
            to_client,
            to_server,
            keys: Keys {
                log,
                suite: None,
                client_random: [0; 32],
                tls12: None,
                dirs: Default::default(),
            },
            pipes: Default::default(),
            hook: None,
            seen: Vec::new(),
            passthrough: [false; 2],
        }
    }

    /// Sets a hook that sees every unit (in both directions) from now on.
    pub fn set_hook(&mut self, hook: Hook) {
        self.hook = Some(hook);
    }

    pub fn clear_hook(&mut self) {
        self.hook = None;
    }

    /// Every unit the two sessions wrote, opened where possible, in order.
    pub fn seen(&self) -> &[Rec] {
        &self.seen
    }

    /// The units one direction carried.
    pub fn seen_dir(&self, dir: Dir) -> Vec<&Rec> {
        self.seen.iter().filter(|r| r.dir == dir).collect()
    }

    /// The records one direction's sender wrote, as they were on the wire.
    pub fn wire(&self, dir: Dir) -> &[Vec<u8>] {
        &self.pipes[dir.idx()].wire
    }

    /// The alerts one direction carried, `(level, description)`; panics if a
    /// record of that direction could not be opened.
    pub fn alerts(&self, dir: Dir) -> Vec<(u8, AlertDescription)> {
        let recs = self.seen_dir(dir);
        assert!(recs.iter().all(|r| !r.opaque), "unopened records: {recs:?}");
        recs.iter().filter_map(|r| r.alert()).collect()
    }

    pub fn log(&self) -> &Arc<SecretLog> {
        &self.keys.log
    }

    /// Writes records made by `f` to the receiver of `dir`, as if the other
    /// session had sent them.
    pub fn inject(&mut self, dir: Dir, f: impl FnOnce(&mut Ctx<'_>) -> Vec<Vec<u8>>) {
        let mut ctx = Ctx {
            dir,
            keys: &mut self.keys,
        };
        for r in f(&mut ctx) {
            self.pipes[dir.idx()].outbuf.extend_from_slice(&r);
        }
        self.flush();
    }

    /// Moves everything readable; returns the bytes moved (0: quiet).
    pub fn pump(&mut self) -> usize {
        let mut moved = 0;
        for dir in [Dir::ToServer, Dir::ToClient] {
            moved += self.read_from(dir);
            self.process(dir);
        }
        moved + self.flush()
    }

    fn read_from(&mut self, dir: Dir) -> usize {
        let src = match dir {
            Dir::ToServer => &mut self.to_client,
            Dir::ToClient => &mut self.to_server,
        };
        let pipe = &mut self.pipes[dir.idx()];
        let mut buf = [0u8; 4096];
        let mut n = 0;
        loop {
            match src.pull(&mut buf) {
                Ok(0) => {
                    pipe.eof = true;
                    break;
                }
                Ok(k) => {
                    pipe.inbuf.extend_from_slice(&buf[..k]);
                    n += k;
                }
                Err(_) => break,
            }
        }
        n
    }

    fn process(&mut self, dir: Dir) {
        if self.passthrough[dir.idx()] {
            let pipe = &mut self.pipes[dir.idx()];
            let bytes = std::mem::take(&mut pipe.inbuf);
            pipe.outbuf.extend_from_slice(&bytes);
            return;
        }
        loop {
            let pipe = &mut self.pipes[dir.idx()];
            if pipe.inbuf.len() < 5 {
                break;
            }
            let len = usize::from(u16::from_be_bytes([pipe.inbuf[3], pipe.inbuf[4]]));
            if pipe.inbuf.len() < 5 + len {
                break;
            }
            let wire: Vec<u8> = pipe.inbuf.drain(..5 + len).collect();
            pipe.wire.push(wire.clone());
            for rec in self.units(dir, wire) {
                self.handle_unit(dir, rec);
            }
        }
    }

    /// Opens a record and cuts it into units: whole handshake messages (the
    /// rest waits for the next record), or the record itself.
    fn units(&mut self, dir: Dir, wire: Vec<u8>) -> Vec<Rec> {
        let mut rec = Rec {
            dir,
            index: 0,
            typ: ContentType(wire[0]),
            payload: wire[5..].to_vec(),
            encrypted: false,
            tls12: false,
            wire,
            opaque: false,
        };
        if let Some(k) = self.keys.dirs[dir.idx()].inbound.as_mut() {
            match k.open(&rec.wire) {
                Opened::Plain => {}
                Opened::Ok(typ, payload) => {
                    rec.typ = typ;
                    rec.payload = payload;
                    rec.encrypted = true;
                    rec.tls12 = k.prot != Prot::Tls13;
                }
                Opened::Failed => rec.opaque = true,
            }
        }
        let pipe = &mut self.pipes[dir.idx()];
        let mut out = Vec::new();
        if rec.typ == ContentType::HANDSHAKE && !rec.opaque && !rec.payload.is_empty() {
            pipe.hs.extend_from_slice(&rec.payload);
            while let Some(len) = message_len(&pipe.hs) {
                let msg: Vec<u8> = pipe.hs.drain(..len).collect();
                out.push(Rec {
                    payload: msg,
                    ..rec.clone()
                });
            }
        } else {
            out.push(rec);
        }
        for r in &mut out {
            r.index = pipe.units;
            pipe.units += 1;
        }
        out
    }

    fn handle_unit(&mut self, dir: Dir, mut rec: Rec) {
        if !rec.opaque {
            self.keys
                .after_original(dir, rec.typ, &rec.payload, rec.encrypted);
        }
        self.seen.push(rec.clone());
        let mut ctx = Ctx {
            dir,
            keys: &mut self.keys,
        };
        let verdict = match (&mut self.hook, rec.opaque) {
            (Some(h), false) => h(&mut ctx, &mut rec),
            _ => Verdict::Forward,
        };
        let out: Vec<Vec<u8>> = match verdict {
            Verdict::Drop => Vec::new(),
            Verdict::Emit(v) => v,
            Verdict::Forward if rec.opaque => vec![rec.wire.clone()],
            Verdict::Forward if rec.encrypted => vec![ctx.records(rec.typ, &rec.payload)],
            Verdict::Forward => {
                // Plaintext stays plaintext (a peer without keys alerts in the clear).
                ctx.keys.after_emitted(dir, rec.typ, &rec.payload, false);
                if rec.payload.is_empty() {
                    vec![plain_record(rec.typ, &[])]
                } else {
                    rec.payload
                        .chunks(16384)
                        .map(|c| plain_record(rec.typ, c))
                        .collect()
                }
            }
        };
        for r in out {
            self.pipes[dir.idx()].outbuf.extend_from_slice(&r);
        }
    }

    fn flush(&mut self) -> usize {
        let mut n = 0;
        for dir in [Dir::ToServer, Dir::ToClient] {
            let dst = match dir {
                Dir::ToServer => &mut self.to_server,
                Dir::ToClient => &mut self.to_client,
            };
            let pipe = &mut self.pipes[dir.idx()];
            while !pipe.outbuf.is_empty() {
                match dst.push(&pipe.outbuf) {
                    Ok(k) if k > 0 => {
                        pipe.outbuf.drain(..k);
                        n += k;
                    }
                    _ => break,
                }
            }
            if pipe.eof && pipe.inbuf.is_empty() && pipe.outbuf.is_empty() {
                dst.close();
            }
        }
        n
    }
}

/// A client and a server session with a [`Mitm`] between them.
pub struct Wired {
    pub client: Session<MemoryTransport>,
    pub server: Session<MemoryTransport>,
    pub mitm: Mitm,
}

/// How each side's handshake ended.
#[derive(Debug)]
pub struct Outcome {
    pub client: Result<(), Error>,
    pub server: Result<(), Error>,
}

impl Wired {
    /// Sessions over the given configs (a [`SecretLog`] is installed on both).
    pub fn new(client: ClientConfig, server: ServerConfig) -> Self {
        let log = Arc::new(SecretLog::default());
        let client = client.key_log(log.clone());
        let server = server.key_log(log.clone());
        let (c_end, m_c) = MemoryTransport::pair_with_capacity(1 << 20);
        let (m_s, s_end) = MemoryTransport::pair_with_capacity(1 << 20);
        let client = Session::client(Arc::new(client), "localhost", c_end, Flags::NONBLOCK)
            .expect("client session");
        let server =
            Session::server(Arc::new(server), s_end, Flags::NONBLOCK).expect("server session");
        Wired {
            client,
            server,
            mitm: Mitm::new(m_c, m_s, log),
        }
    }

    /// Drives both handshakes until each has finished or failed, or nothing
    /// moves any more (a side still waiting then reports `Again`). Bounded.
    pub fn handshake(&mut self) -> Outcome {
        let mut client: Result<(), Error> = Err(Error::Again);
        let mut server: Result<(), Error> = Err(Error::Again);
        let mut quiet = 0;
        for _ in 0..500 {
            if matches!(client, Err(Error::Again | Error::Interrupted)) {
                client = self.client.handshake();
            }
            let mut moved = self.mitm.pump();
            if matches!(
                server,
                Err(Error::Again | Error::Interrupted | Error::ClientHelloPaused)
            ) {
                server = self.server.handshake();
            }
            moved += self.mitm.pump();
            let settled = |r: &Result<(), Error>| {
                !matches!(
                    r,
                    Err(Error::Again | Error::Interrupted | Error::ClientHelloPaused)
                )
            };
            if settled(&client) && settled(&server) {
                break;
            }
            quiet = if moved == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 {
                break;
            }
        }
        Outcome { client, server }
    }

    /// A completed handshake (panics otherwise).
    pub fn connected(client: ClientConfig, server: ServerConfig) -> Self {
        let mut w = Wired::new(client, server);
        let o = w.handshake();
        assert!(
            o.client.is_ok() && o.server.is_ok(),
            "handshake failed: {o:?}"
        );
        w
    }

    /// Calls `recv` on one side until it returns something other than
    /// `Again`, pumping in between (bounded); `Again` if nothing came.
    pub fn recv(&mut self, side: Side, buf: &mut [u8]) -> Result<usize, Error> {
        let mut last = Err(Error::Again);
        for _ in 0..50 {
            self.mitm.pump();
            last = match side {
                Side::Client => self.client.recv(buf),
                Side::Server => self.server.recv(buf),
            };
            if !matches!(last, Err(Error::Again | Error::Interrupted)) {
                break;
            }
            if self.mitm.pump() == 0 {
                break;
            }
        }
        self.mitm.pump();
        last
    }
}

/// A server fed raw bytes by the test (acting as the client); its output is
/// still opened by the MITM, so its alerts can be read after it has keys.
pub struct RawServer {
    /// Write the client's bytes here.
    pub raw: MemoryTransport,
    pub server: Session<MemoryTransport>,
    pub mitm: Mitm,
}

impl RawServer {
    pub fn new(server: ServerConfig) -> Self {
        let log = Arc::new(SecretLog::default());
        let server = server.key_log(log.clone());
        let (raw, m_c) = MemoryTransport::pair_with_capacity(1 << 20);
        let (m_s, s_end) = MemoryTransport::pair_with_capacity(1 << 20);
        let server =
            Session::server(Arc::new(server), s_end, Flags::NONBLOCK).expect("server session");
        let mut mitm = Mitm::new(m_c, m_s, log);
        mitm.passthrough[Dir::ToServer.idx()] = true;
        RawServer { raw, server, mitm }
    }

    /// Sends `bytes` and drives the server until it fails, finishes, or
    /// waits for more (`Again`). Bounded.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut off = 0;
        while off < bytes.len() {
            off += self.raw.push(&bytes[off..]).expect("raw push");
        }
        let mut r = Err(Error::Again);
        for _ in 0..100 {
            self.mitm.pump();
            r = self.server.handshake();
            let moved = self.mitm.pump();
            match &r {
                Err(Error::Again | Error::Interrupted | Error::ClientHelloPaused) if moved > 0 => {}
                Err(Error::Again | Error::Interrupted | Error::ClientHelloPaused) => {
                    // Nothing left to read: the server waits for more.
                    if self.server.transport().readable() == 0 {
                        break;
                    }
                }
                _ => break,
            }
        }
        r
    }
}

/// Which session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    /// The direction of records this side writes.
    pub fn sends(self) -> Dir {
        match self {
            Side::Client => Dir::ToServer,
            Side::Server => Dir::ToClient,
        }
    }

    /// The direction of records this side reads.
    pub fn receives(self) -> Dir {
        match self {
            Side::Client => Dir::ToClient,
            Side::Server => Dir::ToServer,
        }
    }

    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}
