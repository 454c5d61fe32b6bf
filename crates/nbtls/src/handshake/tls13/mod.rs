//! TLS 1.3 (RFC 8446) client and server machines. Each state is a struct
//! moved by value into the next, so state that cannot exist yet does not.

pub mod client;
pub mod server;

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::codec::{
    put_handshake, put_prefixed, put_vec, Certificate13, CertificateEntry, Codec, ContentType,
    HandshakeType, NamedGroup, ProtocolVersion, SignatureScheme,
};
use crate::config::{KeyLog, Limits};
use crate::crypto::{key_schedule, HashAlg, RecordKey, Secret, Tls13Suite};
use crate::error::{Error, Result};
use crate::record::{OutQueue, RecordLayer};

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// What was negotiated, for the application to inspect.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub version: Option<ProtocolVersion>,
    pub suite: Option<crate::codec::CipherSuite>,
    pub group: Option<NamedGroup>,
    pub alpn: Option<Vec<u8>>,
    /// The SNI the client sent (as the server saw it) or asked for.
    pub server_name: Option<String>,
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The scheme the peer signed its CertificateVerify with.
    pub peer_signature_scheme: Option<SignatureScheme>,
    /// The scheme we signed with.
    pub signature_scheme: Option<SignatureScheme>,
    /// A HelloRetryRequest happened.
    pub hello_retry: bool,
    /// 0-RTT early data was accepted.
    pub early_data_accepted: bool,
    /// The handshake resumed a session (no certificates were exchanged).
    pub resumed: bool,
    /// The peer's record_size_limit, if it sent one.
    pub peer_record_size_limit: Option<u16>,
    /// The client presented a certificate (server side), or we did (client side).
    pub client_authenticated: bool,
    /// KeyUpdates we sent (on request, answering the peer, or automatic).
    pub key_updates_sent: u64,
    /// KeyUpdates the peer sent.
    pub key_updates_received: u64,
    /// DTLS: the SRTP protection profile negotiated (RFC 5764).
    pub srtp_profile: Option<crate::codec::SrtpProtectionProfile>,
}

/// Application traffic secrets, kept for KeyUpdate and the exporter.
pub struct TrafficSecrets {
    pub suite: &'static Tls13Suite,
    pub client: Secret,
    pub server: Secret,
    pub exporter: Secret,
    pub resumption: Secret,
}

/// What the machines read and write besides their own state.
pub struct Core {
    pub side: Side,
    pub record: RecordLayer,
    pub out: OutQueue,
    pub info: SessionInfo,
    pub traffic: Option<TrafficSecrets>,
    pub key_log: Option<Arc<dyn KeyLog>>,
    pub client_random: [u8; 32],
    pub limits: Limits,
    /// Bumped whenever the read key changes: handshake messages may not
    /// straddle a key change (RFC 8446 §5.1).
    pub read_key_epoch: u32,
    /// A compatibility change_cipher_spec is acceptable (before the
    /// peer's Finished, RFC 8446 §D.4).
    pub ccs_allowed: bool,
    /// Server: the client offered early data we are skipping (§4.2.10);
    /// the budget of undecryptable bytes still to drop.
    pub early_data_skip: Option<usize>,
    /// Server: accepting 0-RTT data, the bytes still allowed.
    pub early_data_accept: Option<usize>,
    /// Server: accepted 0-RTT data not yet read by the application.
    pub early_data: Vec<u8>,
    /// Client: 0-RTT data the application may still send.
    pub early_write: Option<usize>,
    /// Client: NewSessionTickets received after the handshake.
    pub tickets_received: usize,
    /// A compatibility CCS was already sent.
    pub ccs_sent: bool,
    /// Handshake messages queued under the current write key, sealed
    /// together into as few records as possible.
    hs_pending: Vec<u8>,
    /// TLS 1.2: the peer's next read key, installed by its ChangeCipherSpec.
    pub pending_read: Option<(RecordKey, crate::record::tls::Protection)>,
    /// TLS 1.2: the master secret and randoms (exporter).
    pub tls12: Option<crate::handshake::tls12::Tls12Secrets>,
    /// Client: where received tickets are stored for resumption.
    pub session_sink: Option<SessionSink>,
    /// DTLS: the flight layer and record protection (`None` for TLS).
    pub dtls: Option<Box<crate::handshake::dtls::DtlsCore>>,
}

/// Where a client puts the sessions its tickets make resumable.
pub struct SessionSink {
    pub store: Arc<dyn crate::handshake::resumption::SessionStore>,
    pub server_name: String,
    pub time: Arc<dyn crate::config::TimeSource>,
}

impl Core {
    pub fn new(side: Side, limits: Limits, key_log: Option<Arc<dyn KeyLog>>) -> Self {
        Core {
            side,
            record: RecordLayer::new(),
            out: OutQueue::default(),
            info: SessionInfo::default(),
            traffic: None,
            key_log,
            client_random: [0; 32],
            limits,
            read_key_epoch: 0,
            ccs_allowed: false,
            early_data_skip: None,
            tickets_received: 0,
            early_data_accept: None,
            early_data: Vec::new(),
            early_write: None,
            ccs_sent: false,
            hs_pending: Vec::new(),
            pending_read: None,
            tls12: None,
            session_sink: None,
            dtls: None,
        }
    }

    /// Queues a handshake message (TLS framing, 4-byte header);
    /// `flush_handshake` seals the queue. In DTLS it joins the flight with
    /// its message_seq.
    pub fn send_handshake(&mut self, msg: &[u8]) -> Result<()> {
        if let Some(d) = &mut self.dtls {
            let epoch = d.records.write_epoch();
            let msg = crate::handshake::dtls::dtls_message(msg, d.send_seq);
            d.send_seq = d.send_seq.wrapping_add(1);
            d.pending
                .push(crate::handshake::dtls::flight::FlightItem::Handshake { epoch, msg });
            return Ok(());
        }
        self.hs_pending.extend_from_slice(msg);
        Ok(())
    }

    /// The bytes the transcript hashes for `msg` when it is sent next: the
    /// message itself in TLS, its 12-byte-header form in DTLS (RFC 6347
    /// §4.2.6).
    pub fn transcript_form(&self, msg: &[u8]) -> Vec<u8> {
        match &self.dtls {
            Some(d) => crate::handshake::dtls::dtls_message(msg, d.send_seq),
            None => msg.to_vec(),
        }
    }

    /// Adds `msg` to `transcript` as the peer hashes it, and queues it.
    pub fn send_handshake_logged(&mut self, msg: &[u8], transcript: &mut Vec<u8>) -> Result<()> {
        transcript.extend_from_slice(&self.transcript_form(msg));
        self.send_handshake(msg)
    }

    pub fn is_dtls(&self) -> bool {
        self.dtls.is_some()
    }

    /// TLS 1.2: our next write key (after our ChangeCipherSpec).
    pub fn set_write12(&mut self, key: RecordKey, mode: crate::record::tls::Protection) {
        match &mut self.dtls {
            Some(d) => d.records.next_write_epoch(key, mode),
            None => self.record.set_write(key, mode),
        }
    }

    /// Seals queued handshake messages into records under the current
    /// write key. Runs before every key change and at the end of a flight.
    pub fn flush_handshake(&mut self) -> Result<()> {
        if self.hs_pending.is_empty() || self.dtls.is_some() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.hs_pending);
        let frag = self.record.send_fragment.max(1);
        for chunk in data.chunks(frag) {
            self.record
                .seal(ContentType::HANDSHAKE, chunk, self.out.buf_mut())?;
            self.out.commit(0);
        }
        Ok(())
    }

    /// RFC 8446 §D.4 middlebox compatibility: one CCS before our first
    /// protected handshake record.
    pub fn send_ccs_once(&mut self) -> Result<()> {
        if !self.ccs_sent {
            self.flush_handshake()?;
            self.ccs_sent = true;
            self.record
                .seal(ContentType::CHANGE_CIPHER_SPEC, &[1], self.out.buf_mut())?;
            self.out.commit(0);
        }
        Ok(())
    }

    /// TLS 1.2 ChangeCipherSpec: our queued handshake goes out under the
    /// old key first.
    pub fn send_ccs(&mut self) -> Result<()> {
        if let Some(d) = &mut self.dtls {
            let epoch = d.records.write_epoch();
            d.pending
                .push(crate::handshake::dtls::flight::FlightItem::ChangeCipherSpec { epoch });
            return Ok(());
        }
        self.flush_handshake()?;
        self.record
            .seal(ContentType::CHANGE_CIPHER_SPEC, &[1], self.out.buf_mut())?;
        self.out.commit(0);
        Ok(())
    }

    /// TLS 1.2: the peer's ChangeCipherSpec switches its key.
    pub fn peer_ccs(&mut self) -> Result<()> {
        let Some((key, mode)) = self.pending_read.take() else {
            return Err(Error::unexpected("unexpected change_cipher_spec"));
        };
        match &mut self.dtls {
            Some(d) => d.records.next_read_epoch(key, mode),
            None => self.record.set_read(key, mode),
        }
        self.read_key_epoch += 1;
        Ok(())
    }

    pub fn set_read_secret(&mut self, suite: &Tls13Suite, secret: &Secret) {
        self.record.set_read_key(RecordKey::from_traffic_secret(
            suite.aead, suite.hash, secret,
        ));
        self.read_key_epoch += 1;
    }

    pub fn set_write_secret(&mut self, suite: &Tls13Suite, secret: &Secret) -> Result<()> {
        self.flush_handshake()?;
        self.record.set_write_key(RecordKey::from_traffic_secret(
            suite.aead, suite.hash, secret,
        ));
        Ok(())
    }

    pub fn log_secret(&self, label: &str, secret: &Secret) {
        if let Some(kl) = &self.key_log {
            kl.log(label, &self.client_random, secret.as_bytes());
        }
    }

    /// Queues a KeyUpdate and switches our write key (RFC 8446 §4.6.3).
    pub fn send_key_update(&mut self, request_peer: bool) -> Result<()> {
        let Some(t) = &mut self.traffic else {
            return Err(Error::UnavailableDuringHandshake);
        };
        let req = if request_peer { 1 } else { 0 };
        let mut msg = Vec::with_capacity(5);
        put_handshake(&mut msg, HandshakeType::KEY_UPDATE, |o| o.push(req));
        self.record
            .seal(ContentType::HANDSHAKE, &msg, self.out.buf_mut())?;
        self.out.commit(0);
        let suite = t.suite;
        let mine = match self.side {
            Side::Client => &mut t.client,
            Side::Server => &mut t.server,
        };
        *mine = key_schedule::next_traffic_secret(suite.hash, mine);
        let key = RecordKey::from_traffic_secret(suite.aead, suite.hash, mine);
        self.record.set_write_key(key);
        self.info.key_updates_sent += 1;
        Ok(())
    }

    /// Switches the peer's read key after its KeyUpdate.
    pub fn peer_key_updated(&mut self) -> Result<()> {
        let Some(t) = &mut self.traffic else {
            return Err(Error::unexpected("KeyUpdate during the handshake"));
        };
        let suite = t.suite;
        let theirs = match self.side {
            Side::Client => &mut t.server,
            Side::Server => &mut t.client,
        };
        *theirs = key_schedule::next_traffic_secret(suite.hash, theirs);
        let key = RecordKey::from_traffic_secret(suite.aead, suite.hash, theirs);
        self.record.set_read_key(key);
        self.read_key_epoch += 1;
        self.info.key_updates_received += 1;
        Ok(())
    }
}

/// A received handshake message: its type, body and whole encoding.
pub struct Message<'a> {
    pub typ: HandshakeType,
    pub body: &'a [u8],
    pub raw: &'a [u8],
}

impl Message<'_> {
    /// Decodes the body as `T`, or fails with unexpected_message if the
    /// type is not `want`.
    pub fn decode<T: Codec>(&self, want: HandshakeType) -> Result<T> {
        self.expect(want)?;
        T::from_bytes(self.body)
    }

    pub fn expect(&self, want: HandshakeType) -> Result<()> {
        if self.typ == want {
            Ok(())
        } else {
            Err(Error::unexpected(unexpected_reason(want)))
        }
    }
}

fn unexpected_reason(want: HandshakeType) -> &'static str {
    match want {
        HandshakeType::SERVER_HELLO => "expected ServerHello",
        HandshakeType::CLIENT_HELLO => "expected ClientHello",
        HandshakeType::ENCRYPTED_EXTENSIONS => "expected EncryptedExtensions",
        HandshakeType::CERTIFICATE => "expected Certificate",
        HandshakeType::CERTIFICATE_VERIFY => "expected CertificateVerify",
        HandshakeType::FINISHED => "expected Finished",
        _ => "unexpected handshake message",
    }
}

/// Encodes a TLS 1.3 Certificate message (RFC 8446 §4.4.2).
pub fn certificate_message(context: &[u8], chain: &[CertificateDer<'static>]) -> Vec<u8> {
    let cert = Certificate13 {
        context: context.to_vec(),
        entries: chain
            .iter()
            .map(|c| CertificateEntry {
                cert: c.as_ref().to_vec(),
                extensions: Vec::new(),
            })
            .collect(),
    };
    let mut out = Vec::new();
    put_handshake(&mut out, HandshakeType::CERTIFICATE, |o| cert.encode(o));
    out
}

/// Converts a received Certificate into DER certificates, enforcing the
/// chain-length limit.
pub fn received_chain(
    cert: Certificate13,
    limits: &Limits,
) -> Result<Vec<CertificateDer<'static>>> {
    if cert.entries.len() > limits.max_certificate_chain {
        return Err(Error::LimitExceeded {
            alert: crate::codec::AlertDescription::BAD_CERTIFICATE,
            limit: "certificate chain length",
        });
    }
    // We ask for no per-certificate extension (status_request, SCT), so any
    // is unsolicited (RFC 8446 §4.4.2, §4.2).
    if cert.entries.iter().any(|e| !e.extensions.is_empty()) {
        return Err(Error::protocol(
            crate::codec::AlertDescription::UNSUPPORTED_EXTENSION,
            "unsolicited extension in a CertificateEntry",
        ));
    }
    Ok(cert
        .entries
        .into_iter()
        .map(|e| CertificateDer::from(e.cert))
        .collect())
}

/// The content signed by CertificateVerify (RFC 8446 §4.4.3).
pub fn signed_content(side: Side, transcript_hash: &[u8]) -> Vec<u8> {
    let context: &[u8] = match side {
        Side::Server => b"TLS 1.3, server CertificateVerify",
        Side::Client => b"TLS 1.3, client CertificateVerify",
    };
    let mut m = Vec::with_capacity(64 + context.len() + 1 + transcript_hash.len());
    m.extend_from_slice(&[0x20; 64]);
    m.extend_from_slice(context);
    m.push(0);
    m.extend_from_slice(transcript_hash);
    m
}

/// Encodes a CertificateVerify message.
pub fn certificate_verify_message(scheme: SignatureScheme, signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_handshake(&mut out, HandshakeType::CERTIFICATE_VERIFY, |o| {
        scheme.encode(o);
        put_vec(o, 2, signature);
    });
    out
}

/// Encodes a Finished message for `base_key` over `transcript_hash`.
pub fn finished_message(alg: HashAlg, base_key: &Secret, transcript_hash: &[u8]) -> Vec<u8> {
    let vd = key_schedule::finished_verify_data(alg, base_key, transcript_hash);
    let mut out = Vec::new();
    put_handshake(&mut out, HandshakeType::FINISHED, |o| {
        o.extend_from_slice(vd.as_bytes())
    });
    out
}

/// Checks a received Finished (constant time).
pub fn check_finished(
    alg: HashAlg,
    base_key: &Secret,
    transcript_hash: &[u8],
    body: &[u8],
) -> Result<()> {
    if body.len() != alg.output_len() {
        return Err(Error::decode("Finished has the wrong length"));
    }
    if key_schedule::verify_finished(alg, base_key, transcript_hash, body) {
        Ok(())
    } else {
        Err(Error::protocol(
            crate::codec::AlertDescription::DECRYPT_ERROR,
            "Finished verification failed",
        ))
    }
}

/// Writes the body of an extension list; helper for messages we build.
pub fn put_extensions(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    put_prefixed(out, 2, f);
}
