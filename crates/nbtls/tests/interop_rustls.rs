//! nbtls against rustls 0.23 (aws-lc-rs provider), in memory, in both roles: the one
//! peer here with X25519MLKEM768. Both ends run on the test thread over a
//! `MemoryTransport` pair: nbtls as a nonblocking `Session`, rustls through
//! `read_tls`/`write_tls`. nbtls's end is wrapped in a `RecordWatch` so KeyUpdate
//! messages can be counted under encryption.

mod common;

use std::io::{self, Read, Write};
use std::sync::Arc;

use common::certs::{pki, CertFiles};
use common::tls::{certified_key, client_config, server_config};
use common::tls_extra::{payload, RecordWatch, KEY_UPDATE_RECORD_LEN};
use nbtls::codec::{AlertDescription, CipherSuite, NamedGroup, SignatureScheme};
use nbtls::{
    ClientAuth, ClientConfig, Error, Flags, MemoryTransport, ServerConfig, Session, Shutdown,
    Transport, TrustAnchors,
};
use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, RootCertStore, SupportedCipherSuite};

type Nb = Session<RecordWatch<MemoryTransport>>;

/// Rounds of the handshake and transfer loops before a test gives up (each round moves
/// whatever both sides can move; a handshake needs fewer than ten).
const MAX_ROUNDS: usize = 10_000;

// ---- the rustls end ----

/// A rustls connection on one end of the memory pipe.
struct Peer {
    conn: rustls::Connection,
    io: MemoryTransport,
    /// Plaintext read from rustls so far.
    received: Vec<u8>,
    /// rustls reported the peer's close_notify (its reader returned `Ok(0)`).
    closed: bool,
    /// What rustls's reader failed with (e.g. EOF without close_notify).
    read_error: Option<io::ErrorKind>,
    /// The error rustls's record processing failed with, once it did.
    failed: Option<rustls::Error>,
}

/// `Read`/`Write` over the memory pipe for `read_tls`/`write_tls`.
struct Pipe<'a>(&'a mut MemoryTransport);

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.pull(buf)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Peer {
    fn new(conn: impl Into<rustls::Connection>, io: MemoryTransport) -> Self {
        Peer {
            conn: conn.into(),
            io,
            received: Vec::new(),
            closed: false,
            read_error: None,
            failed: None,
        }
    }

    /// Move TLS bytes both ways until nothing moves, reading plaintext as it comes.
    fn pump(&mut self) -> Result<(), rustls::Error> {
        loop {
            let mut progress = false;
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut Pipe(&mut self.io)) {
                    Ok(0) => break,
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The nbtls end was dropped: nothing more can be sent.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(e) => panic!("write_tls: {e}"),
                }
            }
            match self.conn.read_tls(&mut Pipe(&mut self.io)) {
                Ok(0) => {}
                Ok(_) => {
                    progress = true;
                    if let Err(e) = self.conn.process_new_packets() {
                        // Let its alert out before reporting.
                        while self.conn.wants_write() {
                            if self.conn.write_tls(&mut Pipe(&mut self.io)).is_err() {
                                break;
                            }
                        }
                        self.failed = Some(e.clone());
                        return Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read_tls: {e}"),
            }
            self.drain_plaintext();
            if !progress {
                return Ok(());
            }
        }
    }

    fn drain_plaintext(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        while !self.closed && self.read_error.is_none() {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => self.read_error = Some(e.kind()),
            }
        }
    }

    fn group(&self) -> Option<rustls::NamedGroup> {
        self.conn.negotiated_key_exchange_group().map(|g| g.name())
    }

    fn exporter(&self, label: &[u8], context: Option<&[u8]>, len: usize) -> Vec<u8> {
        self.conn
            .export_keying_material(vec![0u8; len], label, context)
            .expect("rustls exporter")
    }
}

// ---- rustls configurations over the test PKI ----

/// The aws-lc-rs provider, optionally with only `suites` and/or `groups`.
fn provider(
    suites: Option<&[SupportedCipherSuite]>,
    groups: Option<&[&'static dyn SupportedKxGroup]>,
) -> Arc<CryptoProvider> {
    let mut p = default_provider();
    if let Some(s) = suites {
        p.cipher_suites = s.to_vec();
    }
    if let Some(g) = groups {
        p.kx_groups = g.to_vec();
    }
    Arc::new(p)
}

fn roots() -> Arc<RootCertStore> {
    let mut r = RootCertStore::empty();
    r.add(pki().ca_cert()).expect("CA");
    Arc::new(r)
}

/// A TLS 1.3 rustls client trusting the test CA, with `client_cert` if given.
fn rustls_client(p: Arc<CryptoProvider>, client_cert: Option<&CertFiles>) -> rustls::ClientConfig {
    let b = rustls::ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots());
    match client_cert {
        Some(c) => b
            .with_client_auth_cert(c.cert_chain(), c.private_key())
            .expect("client cert"),
        None => b.with_no_client_auth(),
    }
}

/// A TLS 1.3 rustls server presenting `cert`; it requires a client certificate from the
/// test CA if `require_client_cert`.
fn rustls_server(
    p: Arc<CryptoProvider>,
    cert: &CertFiles,
    require_client_cert: bool,
) -> rustls::ServerConfig {
    let b = rustls::ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3");
    let b = if require_client_cert {
        let v = WebPkiClientVerifier::builder_with_provider(roots(), p)
            .build()
            .expect("client verifier");
        b.with_client_cert_verifier(v)
    } else {
        b.with_no_client_auth()
    };
    b.with_single_cert(cert.cert_chain(), cert.private_key())
        .expect("server cert")
}

// ---- pairs and drivers ----

fn nbtls_client_pair(nb: ClientConfig, rs: rustls::ServerConfig) -> (Nb, Peer) {
    let (a, b) = MemoryTransport::pair();
    let c = Session::client(
        Arc::new(nb),
        "localhost",
        RecordWatch::new(a),
        Flags::NONBLOCK,
    )
    .expect("nbtls client");
    let s = rustls::ServerConnection::new(Arc::new(rs)).expect("rustls server");
    (c, Peer::new(s, b))
}

fn nbtls_server_pair(nb: ServerConfig, rs: rustls::ClientConfig) -> (Nb, Peer) {
    let (a, b) = MemoryTransport::pair();
    let s =
        Session::server(Arc::new(nb), RecordWatch::new(a), Flags::NONBLOCK).expect("nbtls server");
    let name = ServerName::try_from("localhost").expect("name");
    let c = rustls::ClientConnection::new(Arc::new(rs), name).expect("rustls client");
    (s, Peer::new(c, b))
}

#[derive(Debug)]
enum Failed {
    Nbtls(Error),
    Rustls(rustls::Error),
}

/// Run both handshakes to the end, alternating.
fn handshake(nb: &mut Nb, rs: &mut Peer) -> Result<(), Failed> {
    let mut nb_done = false;
    for _ in 0..MAX_ROUNDS {
        if !nb_done {
            match nb.handshake() {
                Ok(()) => nb_done = true,
                Err(Error::Again) => {}
                Err(e) => {
                    // Let rustls read our alert.
                    let _ = rs.pump();
                    return Err(Failed::Nbtls(e));
                }
            }
        }
        rs.pump().map_err(Failed::Rustls)?;
        if nb_done && !rs.conn.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish in {MAX_ROUNDS} rounds");
}

fn connect(nb: &mut Nb, rs: &mut Peer) {
    if let Err(e) = handshake(nb, rs) {
        panic!("handshake failed: {e:?}");
    }
}

/// nbtls sends `data`; rustls must receive exactly it.
fn nbtls_to_rustls(nb: &mut Nb, rs: &mut Peer, data: &[u8]) {
    rs.received.clear();
    let mut sent = 0;
    for _ in 0..MAX_ROUNDS {
        if sent < data.len() {
            match nb.send(&data[sent..]) {
                Ok(n) => sent += n,
                Err(Error::Again) => {}
                Err(e) => panic!("nbtls send: {e}"),
            }
        }
        rs.pump().expect("rustls");
        if rs.received.len() >= data.len() {
            assert!(rs.received == data, "rustls received other bytes");
            rs.received.clear();
            return;
        }
    }
    panic!("only {} of {} bytes arrived", rs.received.len(), data.len());
}

/// rustls sends `data`; nbtls must receive exactly it.
fn rustls_to_nbtls(nb: &mut Nb, rs: &mut Peer, data: &[u8]) {
    let mut queued = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..MAX_ROUNDS {
        if queued < data.len() {
            queued += rs
                .conn
                .writer()
                .write(&data[queued..])
                .expect("rustls write");
        }
        rs.pump().expect("rustls");
        loop {
            match nb.recv(&mut buf) {
                Ok(0) => panic!("close_notify after {} bytes", got.len()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Error::Again) => break,
                Err(e) => panic!("nbtls recv: {e}"),
            }
        }
        if got.len() >= data.len() {
            assert!(got == data, "nbtls received other bytes");
            return;
        }
    }
    panic!("only {} of {} bytes arrived", got.len(), data.len());
}

fn both_ways(nb: &mut Nb, rs: &mut Peer, tag: &str) {
    nbtls_to_rustls(nb, rs, format!("{tag}: nbtls to rustls").as_bytes());
    rustls_to_nbtls(nb, rs, format!("{tag}: rustls to nbtls").as_bytes());
}

/// KeyUpdate records (sent by nbtls, received by nbtls) since the last call.
fn key_updates(nb: &mut Nb) -> (usize, usize) {
    let w = nb.transport_mut();
    let counts = (
        w.sent.count(KEY_UPDATE_RECORD_LEN),
        w.received.count(KEY_UPDATE_RECORD_LEN),
    );
    w.reset();
    counts
}

fn ca_anchors() -> TrustAnchors {
    TrustAnchors::from_certs(&[pki().ca_cert()]).expect("anchors")
}

// ================= X25519MLKEM768 =====

#[test]
fn mlkem_nbtls_client_rustls_server() {
    let (mut c, mut rs) = nbtls_client_pair(
        client_config(),
        rustls_server(provider(None, None), &pki().server_ecdsa, false),
    );
    connect(&mut c, &mut rs);
    assert_eq!(c.group(), Some(NamedGroup::X25519MLKEM768));
    assert_eq!(rs.group(), Some(rustls::NamedGroup::X25519MLKEM768));
    assert!(!c.info().hello_retry);
    assert_eq!(rs.conn.handshake_kind(), Some(HandshakeKind::Full));
    both_ways(&mut c, &mut rs, "mlkem");
}

#[test]
fn mlkem_rustls_client_nbtls_server() {
    let (mut s, mut rs) =
        nbtls_server_pair(server_config(), rustls_client(provider(None, None), None));
    connect(&mut s, &mut rs);
    assert_eq!(s.group(), Some(NamedGroup::X25519MLKEM768));
    assert_eq!(rs.group(), Some(rustls::NamedGroup::X25519MLKEM768));
    assert!(!s.info().hello_retry);
    assert_eq!(rs.conn.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(s.server_name(), Some("localhost"));
    both_ways(&mut s, &mut rs, "mlkem");
}

/// Only X25519MLKEM768 on the rustls side, so nothing else can be chosen.
#[test]
fn mlkem_only_both_roles() {
    let only: &[&'static dyn SupportedKxGroup] = &[kx_group::X25519MLKEM768];
    let (mut c, mut rs) = nbtls_client_pair(
        client_config(),
        rustls_server(provider(None, Some(only)), &pki().server_ecdsa, false),
    );
    connect(&mut c, &mut rs);
    assert_eq!(c.group(), Some(NamedGroup::X25519MLKEM768));
    both_ways(&mut c, &mut rs, "mlkem only");

    let (mut s, mut rs) = nbtls_server_pair(
        server_config(),
        rustls_client(provider(None, Some(only)), None),
    );
    connect(&mut s, &mut rs);
    assert_eq!(s.group(), Some(NamedGroup::X25519MLKEM768));
    both_ways(&mut s, &mut rs, "mlkem only");
}

// ================= suites (with the exporter under each suite's hash) =====

fn suites() -> [(SupportedCipherSuite, CipherSuite); 3] {
    [
        (
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS_AES_128_GCM_SHA256,
        ),
        (
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS_AES_256_GCM_SHA384,
        ),
        (
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

/// Our exporter equals rustls's, with and without a context.
fn check_exporter(nb: &Nb, rs: &Peer) {
    let label = b"EXPORTER-nbtls-rustls";
    for (context, len) in [(&b""[..], 32), (&b"some context"[..], 48)] {
        let mut ours = vec![0u8; len];
        nb.export_keying_material(label, context, &mut ours)
            .expect("nbtls exporter");
        assert_eq!(ours, rs.exporter(label, Some(context), len));
    }
    // TLS 1.3 hashes an absent context as an empty one (RFC 8446 §7.5).
    let mut ours = vec![0u8; 20];
    nb.export_keying_material(label, b"", &mut ours)
        .expect("nbtls exporter");
    assert_eq!(ours, rs.exporter(label, None, 20));
}

#[test]
fn every_suite_both_roles() {
    for (rs_suite, suite) in suites() {
        let p = provider(Some(&[rs_suite]), None);
        let (mut c, mut rs) = nbtls_client_pair(
            client_config(),
            rustls_server(p.clone(), &pki().server_ecdsa, false),
        );
        connect(&mut c, &mut rs);
        assert_eq!(c.cipher_suite(), Some(suite));
        assert_eq!(rs.conn.negotiated_cipher_suite(), Some(rs_suite));
        check_exporter(&c, &rs);
        both_ways(&mut c, &mut rs, "suite");

        let (mut s, mut rs) = nbtls_server_pair(server_config(), rustls_client(p, None));
        connect(&mut s, &mut rs);
        assert_eq!(s.cipher_suite(), Some(suite));
        assert_eq!(rs.conn.negotiated_cipher_suite(), Some(rs_suite));
        check_exporter(&s, &rs);
        both_ways(&mut s, &mut rs, "suite");
    }
}

// ================= server certificate types =====

#[test]
fn server_cert_types_both_roles() {
    let p = pki();
    // (leaf, scheme nbtls signs with, scheme rustls signs with): for RSA rustls prefers
    // the longest PSS hash, nbtls the first the client lists.
    let cases = [
        (
            &p.server_ecdsa,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
            SignatureScheme::ECDSA_SECP256R1_SHA256,
        ),
        (
            &p.server_rsa,
            SignatureScheme::RSA_PSS_RSAE_SHA256,
            SignatureScheme::RSA_PSS_RSAE_SHA512,
        ),
        (
            &p.server_ed25519,
            SignatureScheme::ED25519,
            SignatureScheme::ED25519,
        ),
    ];
    for (cert, ours, theirs) in cases {
        let (mut c, mut rs) = nbtls_client_pair(
            client_config(),
            rustls_server(provider(None, None), cert, false),
        );
        connect(&mut c, &mut rs);
        assert_eq!(c.info().peer_signature_scheme, Some(theirs));
        both_ways(&mut c, &mut rs, "cert");

        // rustls verified our chain against the CA and `localhost`.
        let (mut s, mut rs) = nbtls_server_pair(
            ServerConfig::new(certified_key(cert)),
            rustls_client(provider(None, None), None),
        );
        connect(&mut s, &mut rs);
        assert_eq!(s.info().signature_scheme, Some(ours));
        both_ways(&mut s, &mut rs, "cert");
    }
}

// ================= HelloRetryRequest =====

#[test]
fn hello_retry_rustls_client_nbtls_server() {
    // rustls sends a key share for its first group only (X25519 here); an nbtls server
    // that accepts only `group` must ask again.
    for (group, rs_group) in [
        (NamedGroup::X25519MLKEM768, kx_group::X25519MLKEM768),
        (NamedGroup::SECP256R1, kx_group::SECP256R1),
    ] {
        let groups: &[&'static dyn SupportedKxGroup] = &[kx_group::X25519, rs_group];
        let nb = server_config().groups(&[group]).expect("groups");
        let (mut s, mut rs) =
            nbtls_server_pair(nb, rustls_client(provider(None, Some(groups)), None));
        connect(&mut s, &mut rs);
        assert!(s.info().hello_retry);
        assert_eq!(
            rs.conn.handshake_kind(),
            Some(HandshakeKind::FullWithHelloRetryRequest)
        );
        assert_eq!(s.group(), Some(group));
        assert_eq!(rs.group(), Some(rs_group.name()));
        check_exporter(&s, &rs);
        both_ways(&mut s, &mut rs, "hrr");
    }
}

#[test]
fn hello_retry_nbtls_client_rustls_server() {
    // We share X25519 only; a rustls server with only X25519MLKEM768 asks again.
    let only: &[&'static dyn SupportedKxGroup] = &[kx_group::X25519MLKEM768];
    let nb = client_config()
        .key_share_groups(&[NamedGroup::X25519])
        .expect("key share groups");
    let (mut c, mut rs) = nbtls_client_pair(
        nb,
        rustls_server(provider(None, Some(only)), &pki().server_ecdsa, false),
    );
    connect(&mut c, &mut rs);
    assert!(c.info().hello_retry);
    assert_eq!(
        rs.conn.handshake_kind(),
        Some(HandshakeKind::FullWithHelloRetryRequest)
    );
    assert_eq!(c.group(), Some(NamedGroup::X25519MLKEM768));
    assert_eq!(rs.group(), Some(rustls::NamedGroup::X25519MLKEM768));
    check_exporter(&c, &rs);
    both_ways(&mut c, &mut rs, "hrr");
}

// ================= client certificates =====

#[test]
fn client_cert_nbtls_client_rustls_server() {
    let p = pki();
    for cert in [&p.client_ecdsa, &p.client_rsa] {
        let nb = client_config().client_certificate(certified_key(cert));
        let (mut c, mut rs) = nbtls_client_pair(
            nb,
            rustls_server(provider(None, None), &p.server_ecdsa, true),
        );
        connect(&mut c, &mut rs);
        assert!(c.info().client_authenticated);
        let theirs = rs.conn.peer_certificates().expect("rustls saw our chain");
        assert_eq!(theirs[0].as_ref(), cert.leaf_der.as_slice());
        both_ways(&mut c, &mut rs, "client cert");
    }

    // Required but not configured: rustls refuses.
    let (mut c, mut rs) = nbtls_client_pair(
        client_config(),
        rustls_server(provider(None, None), &p.server_ecdsa, true),
    );
    match handshake(&mut c, &mut rs) {
        Err(Failed::Rustls(e)) => assert_eq!(e, rustls::Error::NoCertificatesPresented),
        other => panic!("rustls accepted a client without a certificate: {other:?}"),
    }
    // Its alert reaches us, whether our handshake had finished or not.
    let mut buf = [0u8; 8];
    let ours = match c.handshake() {
        Err(e) => e,
        Ok(()) => c.recv(&mut buf).expect_err("alert"),
    };
    assert_eq!(
        ours,
        Error::AlertReceived(AlertDescription::CERTIFICATE_REQUIRED)
    );
}

#[test]
fn client_cert_rustls_client_nbtls_server() {
    let p = pki();
    for cert in [&p.client_ecdsa, &p.client_rsa] {
        let nb = server_config().client_auth(ClientAuth::Require, ca_anchors());
        let (mut s, mut rs) =
            nbtls_server_pair(nb, rustls_client(provider(None, None), Some(cert)));
        connect(&mut s, &mut rs);
        assert!(s.info().client_authenticated);
        assert_eq!(
            s.peer_certificates().first().map(|d| d.as_ref()),
            Some(cert.leaf_der.as_slice())
        );
        both_ways(&mut s, &mut rs, "client cert");
    }

    // Required, none sent: we refuse with certificate_required.
    let nb = server_config().client_auth(ClientAuth::Require, ca_anchors());
    let (mut s, mut rs) = nbtls_server_pair(nb, rustls_client(provider(None, None), None));
    match handshake(&mut s, &mut rs) {
        Err(Failed::Nbtls(e)) => {
            assert_eq!(
                e.alert(),
                Some(AlertDescription::CERTIFICATE_REQUIRED),
                "{e}"
            )
        }
        other => panic!("accepted a client without a certificate: {other:?}"),
    }
    assert!(!s.info().client_authenticated);
    // rustls saw the alert.
    assert_eq!(
        rs.failed,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
        ))
    );
}

// ================= ALPN =====

#[test]
fn alpn_both_roles() {
    let mut rs_cfg = rustls_server(provider(None, None), &pki().server_ecdsa, false);
    rs_cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let nb = client_config().alpn(&["h2", "http/1.1"]).expect("alpn");
    let (mut c, mut rs) = nbtls_client_pair(nb, rs_cfg);
    connect(&mut c, &mut rs);
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(rs.conn.alpn_protocol(), Some(&b"http/1.1"[..]));

    // Our preference wins as the server.
    let mut rs_cfg = rustls_client(provider(None, None), None);
    rs_cfg.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
    let nb = server_config().alpn(&["h2", "http/1.1"]).expect("alpn");
    let (mut s, mut rs) = nbtls_server_pair(nb, rs_cfg);
    connect(&mut s, &mut rs);
    assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(rs.conn.alpn_protocol(), Some(&b"h2"[..]));
    both_ways(&mut s, &mut rs, "alpn");
}

// ================= KeyUpdate =====

#[test]
fn key_update_nbtls_client_rustls_server() {
    let (mut c, mut rs) = nbtls_client_pair(
        client_config(),
        rustls_server(provider(None, None), &pki().server_ecdsa, false),
    );
    connect(&mut c, &mut rs);
    both_ways(&mut c, &mut rs, "before");
    key_updates(&mut c);

    // Ours, requesting: rustls answers before its next record.
    c.key_update(true).expect("key update");
    both_ways(&mut c, &mut rs, "after ours");
    assert_eq!(key_updates(&mut c), (1, 1), "(ours, theirs)");

    // rustls's refresh_traffic_keys requests an update: we answer once.
    rs.conn.refresh_traffic_keys().expect("rustls key update");
    rustls_to_nbtls(&mut c, &mut rs, b"after rustls's");
    nbtls_to_rustls(&mut c, &mut rs, b"our answer goes first");
    assert_eq!(key_updates(&mut c), (1, 1), "(ours, theirs)");
    nbtls_to_rustls(&mut c, &mut rs, &payload(300_000, 1));
    rustls_to_nbtls(&mut c, &mut rs, &payload(300_000, 2));
}

#[test]
fn key_update_rustls_client_nbtls_server() {
    let (mut s, mut rs) =
        nbtls_server_pair(server_config(), rustls_client(provider(None, None), None));
    connect(&mut s, &mut rs);
    both_ways(&mut s, &mut rs, "before");
    key_updates(&mut s);

    rs.conn.refresh_traffic_keys().expect("rustls key update");
    rustls_to_nbtls(&mut s, &mut rs, b"after rustls's");
    nbtls_to_rustls(&mut s, &mut rs, b"our answer goes first");
    assert_eq!(key_updates(&mut s), (1, 1), "(ours, theirs)");

    s.key_update(false).expect("key update");
    both_ways(&mut s, &mut rs, "after ours, not requested");
    assert_eq!(key_updates(&mut s), (1, 0), "(ours, theirs)");

    s.key_update(true).expect("key update");
    both_ways(&mut s, &mut rs, "after ours, requested");
    assert_eq!(key_updates(&mut s), (1, 1), "(ours, theirs)");
}

// ================= close_notify and premature termination =====

#[test]
fn close_notify_both_ways() {
    // rustls closes: recv reports Ok(0), and our close_notify reaches rustls.
    let (mut c, mut rs) = nbtls_client_pair(
        client_config(),
        rustls_server(provider(None, None), &pki().server_ecdsa, false),
    );
    connect(&mut c, &mut rs);
    both_ways(&mut c, &mut rs, "before close");
    rs.conn.send_close_notify();
    rs.pump().expect("rustls");
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf), Ok(0));
    c.bye(Shutdown::ReadWrite).expect("bye");
    rs.pump().expect("rustls");
    assert!(rs.closed, "rustls saw our close_notify");

    // We close first; rustls answers with its own, which bye(ReadWrite) waits for.
    let (mut s, mut rs) =
        nbtls_server_pair(server_config(), rustls_client(provider(None, None), None));
    connect(&mut s, &mut rs);
    both_ways(&mut s, &mut rs, "before close");
    assert_eq!(s.bye(Shutdown::ReadWrite), Err(Error::Again));
    rs.pump().expect("rustls");
    assert!(rs.closed, "rustls saw our close_notify");
    rs.conn.send_close_notify();
    rs.pump().expect("rustls");
    s.bye(Shutdown::ReadWrite).expect("bye completes");
    assert_eq!(s.recv(&mut buf), Ok(0));
    assert_eq!(s.send(b"late"), Err(Error::InvalidSession));
}

#[test]
fn premature_termination_both_ways() {
    // The rustls end goes away without close_notify.
    let (mut c, mut rs) = nbtls_client_pair(
        client_config(),
        rustls_server(provider(None, None), &pki().server_ecdsa, false),
    );
    connect(&mut c, &mut rs);
    both_ways(&mut c, &mut rs, "before");
    drop(rs);
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf), Err(Error::PrematureTermination));

    // Our end goes away: rustls reports an unexpected EOF, not a clean close.
    let (mut s, mut rs) =
        nbtls_server_pair(server_config(), rustls_client(provider(None, None), None));
    connect(&mut s, &mut rs);
    both_ways(&mut s, &mut rs, "before");
    drop(s);
    rs.pump().expect("rustls");
    assert!(!rs.closed);
    assert_eq!(rs.read_error, Some(io::ErrorKind::UnexpectedEof));
}
