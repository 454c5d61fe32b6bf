//! Shared by the criterion benches: a generated PKI (an ECDSA P-256 and an
//! RSA-2048 CA, each with a `localhost` leaf of its kind, as
//! shared/bench/gen-certs.sh makes), configurations, an in-memory transport
//! that copies like tlsperf's queues, and a handshake driver that times each
//! side separately.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nbtls::codec::{CipherSuite, NamedGroup, ProtocolVersion};
use nbtls::x509::{CertificateDer, PrivateKeyDer, SigningKey};
use nbtls::{
    CertifiedKey, ClientConfig, Error, Flags, ServerConfig, Session, Transport, TrustAnchors,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

/// Certificate kind of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ecdsa,
    Rsa,
}

/// A CA and a `localhost` leaf signed by it, both of one kind.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub leaf: Arc<CertifiedKey>,
}

impl Pki {
    pub fn new(kind: Kind) -> Pki {
        let alg: &'static SignatureAlgorithm = match kind {
            Kind::Ecdsa => &rcgen::PKCS_ECDSA_P256_SHA256,
            Kind::Rsa => &rcgen::PKCS_RSA_SHA256,
        };
        let ca_key = KeyPair::generate_for(alg).expect("CA key");
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("nbtls bench CA ({kind:?})"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("CA");

        let key = KeyPair::generate_for(alg).expect("leaf key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("SAN");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca, &ca_key).expect("leaf");
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = SigningKey::from_der(&der).expect("leaf key parses");
        // The server sends its leaf only, as tlsperf's servers do.
        let leaf = CertifiedKey::new(vec![cert.der().clone()], signing).expect("key matches");
        Pki {
            ca: ca.der().clone(),
            leaf: Arc::new(leaf),
        }
    }

    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_certs(std::slice::from_ref(&self.ca)).expect("CA parses")
    }
}

/// A client and server config pair for one suite and key-exchange group.
/// The client's session store is off (every handshake is full) unless
/// `resume` is set.
pub fn configs(
    pki: &Pki,
    suite: CipherSuite,
    group: NamedGroup,
    resume: bool,
) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let groups = [group];
    let mut client = ClientConfig::new(pki.anchors())
        .cipher_suites(&[suite])
        .and_then(|c| c.groups(&groups))
        .and_then(|c| c.key_share_groups(&groups))
        .expect("client config");
    if !resume {
        client = client.session_store(None);
    }
    let server = ServerConfig::new(pki.leaf.clone())
        .cipher_suites(&[suite])
        .and_then(|c| c.groups(&groups))
        .expect("server config");
    (Arc::new(client), Arc::new(server))
}

/// Bytes in flight one way; `push` appends, `pull` copies out (tlsperf's
/// `struct q`).
#[derive(Default)]
pub struct Queue {
    buf: Vec<u8>,
    off: usize,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.buf.len() - self.off
    }
}

pub type SharedQueue = Rc<RefCell<Queue>>;

/// One end of an in-memory connection. With `outgoing` unset, pushed bytes
/// are dropped (a sink, to time sealing alone).
pub struct QueueTransport {
    pub incoming: SharedQueue,
    pub outgoing: Option<SharedQueue>,
}

impl Transport for QueueTransport {
    fn push(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(q) = &self.outgoing {
            let mut q = q.borrow_mut();
            if q.off == q.buf.len() {
                q.buf.clear();
                q.off = 0;
            }
            q.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn pull(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut q = self.incoming.borrow_mut();
        let off = q.off;
        let n = (q.buf.len() - off).min(out.len());
        if n == 0 && !out.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        out[..n].copy_from_slice(&q.buf[off..off + n]);
        q.off += n;
        if q.off == q.buf.len() {
            q.buf.clear();
            q.off = 0;
        }
        Ok(n)
    }
}

pub type MemSession = Session<QueueTransport>;

/// Time spent in each side's calls, session creation included (the client
/// makes its key shares when created).
#[derive(Default, Clone, Copy)]
pub struct SideTimes {
    pub client: Duration,
    pub server: Duration,
}

fn step(s: &mut MemSession) -> bool {
    match s.handshake() {
        Ok(()) => true,
        Err(Error::Again | Error::Interrupted) => false,
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// A fresh client and server, handshaken in memory, with each side's time.
pub fn connect(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
) -> (MemSession, MemSession, SideTimes) {
    let c2s = SharedQueue::default();
    let s2c = SharedQueue::default();
    let mut t = SideTimes::default();
    let a = Instant::now();
    let mut c = Session::client(
        client.clone(),
        "localhost",
        QueueTransport {
            incoming: s2c.clone(),
            outgoing: Some(c2s.clone()),
        },
        Flags::NONBLOCK,
    )
    .expect("client session");
    let b = Instant::now();
    let mut s = Session::server(
        server.clone(),
        QueueTransport {
            incoming: c2s,
            outgoing: Some(s2c),
        },
        Flags::NONBLOCK,
    )
    .expect("server session");
    t.client += b - a;
    t.server += b.elapsed();
    let (mut cd, mut sd) = (false, false);
    for _ in 0..64 {
        if cd && sd {
            return (c, s, t);
        }
        let a = Instant::now();
        if !cd {
            cd = step(&mut c);
        }
        let b = Instant::now();
        if !sd {
            sd = step(&mut s);
        }
        t.client += b - a;
        t.server += b.elapsed();
    }
    assert!(cd && sd, "handshake did not finish");
    (c, s, t)
}

/// Reads until the transport is empty (the client taking in its tickets);
/// returns the time it took.
pub fn drain(c: &mut MemSession) -> Duration {
    let mut buf = [0u8; 256];
    let a = Instant::now();
    loop {
        match c.recv(&mut buf) {
            Err(Error::Again) => return a.elapsed(),
            Ok(n) => assert_eq!(n, 0, "no application data expected"),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Checks once what a bench claims to measure.
pub fn check_negotiated(
    c: &MemSession,
    version: ProtocolVersion,
    group: NamedGroup,
    resumed: bool,
) {
    assert_eq!(c.protocol_version(), Some(version));
    assert_eq!(c.info().resumed, resumed, "resumption as intended");
    if !resumed {
        assert_eq!(c.group(), Some(group));
    }
}
