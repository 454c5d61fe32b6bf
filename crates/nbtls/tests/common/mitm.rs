//! A man in the middle between a real nbtls client and a real nbtls server.
//!
//! The two sessions talk over two `MemoryTransport` pairs; [`Mitm::pump`] moves the bytes
//! between them record by record. It learns every traffic secret through a [`KeyLog`]
//! installed on both configs ([`SecretLog`]), so it can open protected records
//! (`RecordKey::from_traffic_secret` + `open`), show them to a test hook, and seal what the
//! hook wants forwarded with the key and sequence number the receiver expects.
//!
//! Keys are tracked per direction twice: the `inbound` key opens what the sender wrote,
//! the `outbound` key seals what the receiver gets. They move together while records are
//! forwarded unchanged; a hook that drops or inserts records (or injects a KeyUpdate)
//! only moves the outbound side, exactly as the receiver's own key moves. The switches
//! follow RFC 8446 §7: server handshake keys after ServerHello, application keys after
//! each side's Finished, the next generation after a KeyUpdate (0 or 1).

use std::fmt;
use std::sync::{Arc, Mutex};

use nbtls::codec::{AlertDescription, ContentType, HandshakeType, HRR_RANDOM};
use nbtls::crypto::{key_schedule, tls13_suite, RecordKey, Secret, Tls13Suite};
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

/// A record as the sender wrote it, opened if it was protected.
#[derive(Clone)]
pub struct Rec {
    pub dir: Dir,
    /// Position among the records of its direction (0-based).
    pub index: usize,
    /// The real content type (the inner one for protected records).
    pub typ: ContentType,
    pub payload: Vec<u8>,
    /// It arrived protected; `Verdict::Forward` seals it again.
    pub encrypted: bool,
    /// The wire bytes as received.
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
    /// The type of the first handshake message in a handshake record.
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

/// What to do with a record the hook saw.
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

struct KeyState {
    secret: Secret,
    key: RecordKey,
    seq: u64,
}

impl KeyState {
    fn new(suite: &Tls13Suite, secret: Secret) -> Self {
        let key = RecordKey::from_traffic_secret(suite.aead, suite.hash, &secret);
        KeyState {
            secret,
            key,
            seq: 0,
        }
    }

    fn next(&self, suite: &Tls13Suite) -> Self {
        KeyState::new(
            suite,
            key_schedule::next_traffic_secret(suite.hash, &self.secret),
        )
    }
}

#[derive(Default)]
struct DirKeys {
    inbound: Option<KeyState>,
    outbound: Option<KeyState>,
}

/// The key state both directions share.
pub struct Keys {
    log: Arc<SecretLog>,
    suite: Option<&'static Tls13Suite>,
    dirs: [DirKeys; 2],
}

impl Keys {
    fn labeled(&self, label: &str) -> Option<KeyState> {
        let suite = self.suite?;
        Some(KeyState::new(suite, self.log.get(label)?))
    }

    /// The sender's key moves after the messages it wrote.
    fn after_original(&mut self, dir: Dir, rec: &Rec) {
        for (typ, body) in messages(rec) {
            match (dir, typ) {
                (Dir::ToClient, HandshakeType::SERVER_HELLO) if !is_hrr(body) => {
                    self.suite = server_hello_suite(body).or(self.suite);
                    self.dirs[1].inbound = self.labeled("SERVER_HANDSHAKE_TRAFFIC_SECRET");
                    // The client writes, and the server reads, with the client
                    // handshake key from here on.
                    self.dirs[0].inbound = self.labeled("CLIENT_HANDSHAKE_TRAFFIC_SECRET");
                    self.dirs[0].outbound = self.labeled("CLIENT_HANDSHAKE_TRAFFIC_SECRET");
                }
                (Dir::ToClient, HandshakeType::FINISHED) => {
                    self.dirs[1].inbound = self.labeled("SERVER_TRAFFIC_SECRET_0");
                }
                (Dir::ToServer, HandshakeType::FINISHED) => {
                    self.dirs[0].inbound = self.labeled("CLIENT_TRAFFIC_SECRET_0");
                }
                (_, HandshakeType::KEY_UPDATE) => {
                    let (Some(suite), Some(k)) = (self.suite, &self.dirs[dir.idx()].inbound) else {
                        continue;
                    };
                    self.dirs[dir.idx()].inbound = Some(k.next(suite));
                }
                _ => {}
            }
        }
    }

    /// The receiver's key moves after the messages it was sent.
    fn after_emitted(&mut self, dir: Dir, typ: ContentType, payload: &[u8]) {
        let rec = Rec {
            dir,
            index: 0,
            typ,
            payload: payload.to_vec(),
            encrypted: false,
            wire: Vec::new(),
            opaque: false,
        };
        for (typ, body) in messages(&rec) {
            match (dir, typ) {
                (Dir::ToClient, HandshakeType::SERVER_HELLO) if !is_hrr(body) => {
                    self.suite = server_hello_suite(body).or(self.suite);
                    self.dirs[1].outbound = self.labeled("SERVER_HANDSHAKE_TRAFFIC_SECRET");
                }
                (Dir::ToClient, HandshakeType::FINISHED) => {
                    self.dirs[1].outbound = self.labeled("SERVER_TRAFFIC_SECRET_0");
                }
                (Dir::ToServer, HandshakeType::FINISHED) => {
                    self.dirs[0].outbound = self.labeled("CLIENT_TRAFFIC_SECRET_0");
                }
                // Only a well-formed KeyUpdate makes the receiver rekey.
                (_, HandshakeType::KEY_UPDATE) if body == [0] || body == [1] => {
                    let (Some(suite), Some(k)) = (self.suite, &self.dirs[dir.idx()].outbound)
                    else {
                        continue;
                    };
                    self.dirs[dir.idx()].outbound = Some(k.next(suite));
                }
                _ => {}
            }
        }
    }
}

/// The handshake messages of a handshake record, `(type, body)`; a partial
/// trailing message is ignored.
fn messages(rec: &Rec) -> Vec<(HandshakeType, &[u8])> {
    let mut out = Vec::new();
    if rec.typ != ContentType::HANDSHAKE || rec.opaque {
        return out;
    }
    let mut rest = rec.payload.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            break;
        }
        out.push((HandshakeType(rest[0]), &rest[4..4 + len]));
        rest = &rest[4 + len..];
    }
    out
}

fn is_hrr(sh_body: &[u8]) -> bool {
    sh_body.get(2..34) == Some(&HRR_RANDOM[..])
}

fn server_hello_suite(sh_body: &[u8]) -> Option<&'static Tls13Suite> {
    let sid_len = usize::from(*sh_body.get(34)?);
    let at = 35 + sid_len;
    let b = sh_body.get(at..at + 2)?;
    tls13_suite(nbtls::codec::CipherSuite(u16::from_be_bytes([b[0], b[1]])))
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

    /// A record of `typ` carrying `payload`: sealed when the receiver expects
    /// protection, plaintext before that. Key changes it causes are tracked.
    pub fn record(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let out = if self.protected() {
            let mut inner = payload.to_vec();
            inner.push(typ.0);
            self.seal_inner(&inner)
        } else {
            plain_record(typ, payload)
        };
        self.keys.after_emitted(self.dir, typ, payload);
        out
    }

    /// A protected record whose inner plaintext (content, type byte, padding)
    /// is exactly `inner`. Panics if the receiver has no key yet.
    pub fn seal_inner(&mut self, inner: &[u8]) -> Vec<u8> {
        let k = self.keys.dirs[self.dir.idx()]
            .outbound
            .as_mut()
            .expect("seal_inner before the receiver has a key");
        let len = inner.len() + 16;
        let mut out = vec![ContentType::APPLICATION_DATA.0, 3, 3];
        out.extend_from_slice(&(len as u16).to_be_bytes());
        let mut body = inner.to_vec();
        let tag = k.key.seal(k.seq, &out, &mut body);
        k.seq += 1;
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }
}

/// One direction's byte plumbing.
#[derive(Default)]
struct Pipe {
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    records: usize,
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
                dirs: Default::default(),
            },
            pipes: Default::default(),
            hook: None,
            seen: Vec::new(),
            passthrough: [false; 2],
        }
    }

    /// Sets a hook that sees every record (in both directions) from now on.
    pub fn set_hook(&mut self, hook: Hook) {
        self.hook = Some(hook);
    }

    pub fn clear_hook(&mut self) {
        self.hook = None;
    }

    /// Every record the two sessions wrote, opened where possible, in order.
    pub fn seen(&self) -> &[Rec] {
        &self.seen
    }

    /// The records one direction carried.
    pub fn seen_dir(&self, dir: Dir) -> Vec<&Rec> {
        self.seen.iter().filter(|r| r.dir == dir).collect()
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
            let index = pipe.records;
            pipe.records += 1;
            let mut rec = self.open(dir, index, wire);
            if !rec.opaque {
                self.keys.after_original(dir, &rec);
            }
            self.seen.push(rec.clone());
            let verdict = match (&mut self.hook, rec.opaque) {
                (Some(h), false) => h(
                    &mut Ctx {
                        dir,
                        keys: &mut self.keys,
                    },
                    &mut rec,
                ),
                _ => Verdict::Forward,
            };
            let out: Vec<Vec<u8>> = match verdict {
                Verdict::Drop => Vec::new(),
                Verdict::Emit(v) => v,
                Verdict::Forward if rec.opaque => vec![rec.wire.clone()],
                Verdict::Forward if rec.encrypted => {
                    let mut ctx = Ctx {
                        dir,
                        keys: &mut self.keys,
                    };
                    vec![ctx.record(rec.typ, &rec.payload)]
                }
                Verdict::Forward => {
                    self.keys.after_emitted(dir, rec.typ, &rec.payload);
                    vec![plain_record(rec.typ, &rec.payload)]
                }
            };
            for r in out {
                self.pipes[dir.idx()].outbuf.extend_from_slice(&r);
            }
        }
    }

    fn open(&mut self, dir: Dir, index: usize, wire: Vec<u8>) -> Rec {
        let outer = ContentType(wire[0]);
        let mut rec = Rec {
            dir,
            index,
            typ: outer,
            payload: wire[5..].to_vec(),
            encrypted: false,
            wire,
            opaque: false,
        };
        if outer != ContentType::APPLICATION_DATA {
            return rec;
        }
        let Some(k) = self.keys.dirs[dir.idx()].inbound.as_mut() else {
            return rec;
        };
        let mut body = rec.payload.clone();
        match k.key.open(k.seq, &rec.wire[..5], &mut body) {
            Ok(n) => {
                k.seq += 1;
                body.truncate(n);
                match body.iter().rposition(|&b| b != 0) {
                    Some(pos) => {
                        rec.typ = ContentType(body[pos]);
                        body.truncate(pos);
                    }
                    None => body.clear(),
                }
                rec.payload = body;
                rec.encrypted = true;
            }
            Err(()) => rec.opaque = true,
        }
        rec
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
