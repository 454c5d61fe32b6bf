//! nbtls sessions over loopback TCP for interop tests: bounded accept and connect,
//! blocking send/receive helpers that never wait forever, deterministic bulk payloads
//! with SHA-256, and a transport wrapper that logs record sizes.

use std::io::{self, IoSlice};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::digest;
use aws_lc_rs::iv::FixedLength;
use nbtls::{ClientConfig, Error, Flags, ServerConfig, Session, Transport};

use super::peers::{tcp_connect, TIMEOUT};

/// Accept one connection within [`TIMEOUT`]; the stream gets read and write timeouts of
/// [`TIMEOUT`] so no later call can hang.
pub fn accept(listener: &TcpListener) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                stream.set_nodelay(true).expect("nodelay");
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection within {TIMEOUT:?}"
                );
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A blocking nbtls server session on the next connection to `listener` (handshake not
/// yet run).
pub fn accept_session(listener: &TcpListener, config: ServerConfig) -> Session<TcpStream> {
    accept_session_over(listener, config, |s| s)
}

/// Like [`accept_session`], with the stream wrapped by `wrap` (e.g. a [`RecordWatch`]).
pub fn accept_session_over<T: Transport>(
    listener: &TcpListener,
    config: ServerConfig,
    wrap: impl FnOnce(TcpStream) -> T,
) -> Session<T> {
    let stream = accept(listener);
    Session::server(Arc::new(config), wrap(stream), Flags::NONE).expect("server session")
}

/// A blocking nbtls client session to 127.0.0.1:`port` asking for `server_name`
/// (handshake not yet run).
pub fn connect_session(port: u16, config: ClientConfig, server_name: &str) -> Session<TcpStream> {
    connect_session_over(port, config, server_name, |s| s)
}

/// Like [`connect_session`], with the stream wrapped by `wrap` (e.g. a [`RecordWatch`]).
pub fn connect_session_over<T: Transport>(
    port: u16,
    config: ClientConfig,
    server_name: &str,
    wrap: impl FnOnce(TcpStream) -> T,
) -> Session<T> {
    let stream = tcp_connect(port);
    stream.set_nodelay(true).expect("nodelay");
    Session::client(Arc::new(config), server_name, wrap(stream), Flags::NONE)
        .expect("client session")
}

/// A nonblocking (`Flags::NONBLOCK`) nbtls client session over a nonblocking socket to
/// 127.0.0.1:`port` (handshake not yet run): for sending and receiving at once.
pub fn connect_session_nonblocking(
    port: u16,
    config: ClientConfig,
    server_name: &str,
) -> Session<TcpStream> {
    let stream = tcp_connect(port);
    stream.set_nodelay(true).expect("nodelay");
    stream.set_nonblocking(true).expect("nonblocking");
    Session::client(Arc::new(config), server_name, stream, Flags::NONBLOCK).expect("client session")
}

/// Call `step` until it stops returning `Again`/`Interrupted`, napping briefly in
/// between (no poll in std); `TimedOut` after `limit`.
fn retry_nonblocking<R>(
    limit: Duration,
    mut step: impl FnMut() -> Result<R, Error>,
) -> Result<R, Error> {
    let deadline = Instant::now() + limit;
    loop {
        match step() {
            Err(Error::Again | Error::Interrupted) => {
                if Instant::now() >= deadline {
                    return Err(Error::TimedOut);
                }
                thread::sleep(Duration::from_micros(200));
            }
            other => return other,
        }
    }
}

/// Run the handshake of a nonblocking session to the end (within [`TIMEOUT`]).
pub fn handshake_nonblocking<T: Transport>(s: &mut Session<T>) -> Result<(), Error> {
    retry_nonblocking(TIMEOUT, || s.handshake())
}

/// On a nonblocking session: send all of `data` while receiving, until `want` bytes
/// came back; returns their SHA-256. For echo peers, which stop reading when we do not
/// read their answers. Fails with `TimedOut` after `limit`.
pub fn send_while_receiving<T: Transport>(
    s: &mut Session<T>,
    data: &[u8],
    want: usize,
    limit: Duration,
) -> Result<[u8; 32], Error> {
    let deadline = Instant::now() + limit;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let (mut sent, mut got) = (0, 0);
    let mut buf = vec![0u8; 16 * 1024];
    while got < want {
        let mut progress = false;
        if sent < data.len() {
            // After `Again` the record is committed: the next call with the same
            // position flushes it and returns its length.
            match s.send(&data[sent..]) {
                Ok(n) => {
                    sent += n;
                    progress = true;
                }
                Err(Error::Again | Error::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        match s.recv(&mut buf) {
            Ok(0) => panic!("peer closed after {got} of {want} bytes"),
            Ok(n) => {
                assert!(got + n <= want, "peer sent more than {want} bytes");
                ctx.update(&buf[..n]);
                got += n;
                progress = true;
            }
            Err(Error::Again | Error::Interrupted) => {}
            Err(e) => return Err(e),
        }
        if !progress {
            if Instant::now() >= deadline {
                return Err(Error::TimedOut);
            }
            thread::sleep(Duration::from_micros(100));
        }
    }
    Ok(digest_array(ctx.finish()))
}

/// A socket timeout surfaces from a blocking session as `Again`: name it.
fn timed_out(e: Error) -> Error {
    match e {
        Error::Again => Error::TimedOut,
        e => e,
    }
}

/// Run the handshake of a blocking session to the end.
pub fn handshake<T: Transport>(s: &mut Session<T>) -> Result<(), Error> {
    s.handshake().map_err(timed_out)
}

/// Send all of `data` (one record per `send`).
pub fn send_all<T: Transport>(s: &mut Session<T>, data: &[u8]) -> Result<(), Error> {
    let mut off = 0;
    while off < data.len() {
        off += s.send(&data[off..]).map_err(timed_out)?;
    }
    Ok(())
}

/// Receive exactly `n` bytes; panics if the peer closes (close_notify) before.
pub fn recv_exact<T: Transport>(s: &mut Session<T>, n: usize) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; n];
    let mut off = 0;
    while off < n {
        match s.recv(&mut out[off..]).map_err(timed_out)? {
            0 => panic!("close_notify after {off} of {n} bytes"),
            k => off += k,
        }
    }
    Ok(out)
}

/// Receive until `recv` returns `Ok(0)` (the peer's close_notify); at most `max` bytes.
pub fn recv_to_close<T: Transport>(s: &mut Session<T>, max: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.recv(&mut buf).map_err(timed_out)? {
            0 => return Ok(out),
            k => {
                out.extend_from_slice(&buf[..k]);
                assert!(out.len() <= max, "peer sent more than {max} bytes");
            }
        }
    }
}

/// Receive until close_notify, hashing as it goes: (byte count, SHA-256).
pub fn recv_hash_to_close<T: Transport>(s: &mut Session<T>) -> Result<(usize, [u8; 32]), Error> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut total = 0;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.recv(&mut buf).map_err(timed_out)? {
            0 => return Ok((total, digest_array(ctx.finish()))),
            k => {
                ctx.update(&buf[..k]);
                total += k;
            }
        }
    }
}

/// `len` pseudo-random bytes, the same for the same `seed` (AES-128-CTR keystream, fast
/// even in debug builds).
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    let key = UnboundCipherKey::new(&AES_128, &[seed; 16]).expect("AES key");
    let key = EncryptingKey::ctr(key).expect("CTR key");
    let mut out = vec![0u8; len];
    let iv = FixedLength::from([seed; 16]);
    key.less_safe_encrypt(&mut out, EncryptionContext::Iv128(iv))
        .expect("keystream");
    out
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    digest_array(digest::digest(&digest::SHA256, data))
}

fn digest_array(d: digest::Digest) -> [u8; 32] {
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Follows TLS record framing across arbitrary chunks and logs each record's body length.
#[derive(Debug, Default)]
pub struct Framing {
    header: Vec<u8>,
    /// Body bytes of the current record still to come.
    body_left: usize,
    /// Body (ciphertext) length of each record whose header was seen.
    pub sizes: Vec<usize>,
}

impl Framing {
    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let k = self.body_left.min(data.len());
                self.body_left -= k;
                data = &data[k..];
                continue;
            }
            let k = (5 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.header.len() == 5 {
                let len = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
                self.sizes.push(len);
                self.body_left = len;
            }
        }
    }

    /// Records of exactly `len` body bytes.
    pub fn count(&self, len: usize) -> usize {
        self.sizes.iter().filter(|&&l| l == len).count()
    }
}

/// Body length of a protected TLS 1.3 record holding only a KeyUpdate (unpadded, AEAD
/// with a 16-byte tag): 4-byte handshake header, 1-byte request, content type, tag.
pub const KEY_UPDATE_RECORD_LEN: usize = 4 + 1 + 1 + 16;

/// A transport that logs the record sizes it pushes and pulls since the last
/// [`RecordWatch::reset`]: evidence of record_size_limit and of KeyUpdate messages,
/// which are otherwise invisible under encryption.
#[derive(Debug)]
pub struct RecordWatch<T> {
    pub inner: T,
    pub sent: Framing,
    pub received: Framing,
}

impl<T> RecordWatch<T> {
    pub fn new(inner: T) -> Self {
        RecordWatch {
            inner,
            sent: Framing::default(),
            received: Framing::default(),
        }
    }

    /// Forget the sizes logged so far (the framing position is kept).
    pub fn reset(&mut self) {
        self.sent.sizes.clear();
        self.received.sizes.clear();
    }

    /// The largest record body sent since the last reset.
    pub fn max_sent(&self) -> usize {
        self.sent.sizes.iter().copied().max().unwrap_or(0)
    }
}

impl<T: Transport> Transport for RecordWatch<T> {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.push(data)?;
        self.sent.observe(&data[..n]);
        Ok(n)
    }

    fn push_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // One buffer at a time keeps the bookkeeping exact.
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.push(b),
            None => Ok(0),
        }
    }

    fn pull(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.pull(buf)?;
        self.received.observe(&buf[..n]);
        Ok(n)
    }

    fn pull_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
        self.inner.pull_timeout(timeout)
    }
}
