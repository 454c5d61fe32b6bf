//! TLS 1.2 client, entered from the ClientHello both versions share once
//! the ServerHello picks TLS 1.2. One struct per expected message.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};

use super::{
    check_finished, finished_message, master_secret, protection, record_keys, send, verify_data,
    Tls12Secrets,
};
use crate::codec::NewSessionTicket12;
use crate::codec::{
    put_handshake, AlertDescription, Certificate12, CertificateRequest12, ClientKeyExchangeEcdhe,
    Codec, HandshakeType, ProtocolVersion, ServerExtension, ServerHello, ServerKeyExchangeEcdhe,
    SignatureScheme, SrtpProtectionProfile,
};
use crate::config::ClientConfig;
use crate::crypto::hash::hash;
use crate::crypto::kx::KeyShare;
use crate::crypto::sign::KeyKind;
use crate::crypto::{tls12_suite, Secret, Tls12Auth, Tls12Suite};
use crate::error::{Error, Result};
use crate::handshake::resumption::ClientSession;
use crate::handshake::tls13::{Core, Message};
use crate::x509::SUPPORTED_TLS12_SCHEMES;

pub enum Client12 {
    WaitCertificate(Box<WaitCertificate>),
    WaitServerKeyExchange(Box<WaitServerKeyExchange>),
    WaitServerHelloDone(Box<WaitServerHelloDone>),
    WaitFinished(Box<WaitFinished>),
    Connected,
}

impl Client12 {
    pub fn handle(self, core: &mut Core, msg: &Message<'_>) -> Result<Client12> {
        match self {
            Client12::WaitCertificate(s) => (*s).handle(core, msg),
            Client12::WaitServerKeyExchange(s) => (*s).handle(core, msg),
            Client12::WaitServerHelloDone(s) => s.handle(core, msg),
            Client12::WaitFinished(s) => s.handle(core, msg),
            Client12::Connected => Err(Error::unexpected("unexpected post-handshake message")),
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, Client12::Connected)
    }
}

/// State shared by every step.
struct Hs {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    suite: &'static Tls12Suite,
    client_random: [u8; 32],
    server_random: [u8; 32],
    /// Every handshake message so far (signatures and EMS need them).
    msgs: Vec<u8>,
    ems: bool,
    /// The server's session id (to resume by).
    session_id: Vec<u8>,
    /// The server promised a NewSessionTicket.
    ticket_ack: bool,
    /// The ticket it sent, with its lifetime hint.
    ticket: Option<(Vec<u8>, u32)>,
}

/// Processes a TLS 1.2 ServerHello answering our ClientHello (`hello`, the
/// encoded message).
pub fn start(
    core: &mut Core,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    hello: Vec<u8>,
    sh: &ServerHello,
    raw: &[u8],
    resumed: Option<ClientSession>,
) -> Result<Client12> {
    let version = wire_version(core);
    if sh.legacy_version != version {
        return Err(Error::protocol(
            AlertDescription::PROTOCOL_VERSION,
            "server chose a version below TLS 1.2",
        ));
    }
    // RFC 8446 §4.1.3: a 1.3-capable client refuses a downgraded 1.2 answer.
    if config.common.versions.contains(&ProtocolVersion::TLS1_3)
        && !core.is_dtls()
        && sh.downgrade_sentinel().is_some()
    {
        return Err(Error::illegal(
            "ServerHello carries the TLS 1.3 downgrade sentinel",
        ));
    }
    let suite = tls12_suite(sh.cipher_suite)
        .filter(|s| config.common.suites12.iter().any(|o| o.suite == s.suite))
        .ok_or_else(|| Error::illegal("server selected a cipher suite we did not offer"))?;
    if sh.compression_method != 0 {
        return Err(Error::illegal("ServerHello selected compression"));
    }
    let mut ems = false;
    let mut ticket_ack = false;
    for e in &sh.extensions {
        match e {
            ServerExtension::RenegotiationInfo(v) if v.is_empty() => {}
            ServerExtension::RenegotiationInfo(_) => {
                return Err(Error::protocol(
                    AlertDescription::HANDSHAKE_FAILURE,
                    "bad renegotiation_info",
                ))
            }
            ServerExtension::ExtendedMasterSecret => ems = true,
            ServerExtension::EcPointFormats(f) if f.contains(&0) => {}
            ServerExtension::EcPointFormats(_) => {
                return Err(Error::illegal("server does not accept uncompressed points"))
            }
            // RFC 5246 §7.4.1.4: an extension we did not send is unsupported_extension.
            ServerExtension::Alpn(_) if config.common.alpn.is_empty() => {
                return Err(Error::protocol(
                    AlertDescription::UNSUPPORTED_EXTENSION,
                    "server sent ALPN we did not ask for",
                ))
            }
            ServerExtension::Alpn(p) => {
                if !config.common.alpn.contains(p) {
                    return Err(Error::illegal(
                        "server chose an ALPN protocol we did not offer",
                    ));
                }
                core.info.alpn = Some(p.clone());
            }
            // We send server_name only for DNS names (RFC 6066 §3).
            ServerExtension::ServerNameAck if matches!(server_name, ServerName::DnsName(_)) => {}
            ServerExtension::SessionTicketAck => ticket_ack = true,
            ServerExtension::UseSrtp(u) if core.is_dtls() && !config.srtp_profiles.is_empty() => {
                core.info.srtp_profile = Some(check_srtp(&config, u)?);
            }
            // We sent supported_groups, so a reply is not unsolicited (RFC 5246
            // §7.4.1.4); some TLS 1.2 servers echo it. Nothing to use in it.
            ServerExtension::SupportedGroups(_) => {}
            ServerExtension::RecordSizeLimit(l) if config.common.record_size_limit.is_some() => {
                if *l < 64 {
                    return Err(Error::illegal("record_size_limit below 64"));
                }
                // In TLS 1.2 the limit counts plaintext only (RFC 8449 §4).
                let l = (*l).min(16384);
                core.info.peer_record_size_limit = Some(l);
                core.record.send_fragment = usize::from(l);
            }
            other => {
                return Err(Error::protocol(
                    AlertDescription::UNSUPPORTED_EXTENSION,
                    format!("TLS 1.2 ServerHello carries {:?}", other.ext_type()),
                ))
            }
        }
    }
    if !ems && config.common.require_ems {
        return Err(Error::protocol(
            AlertDescription::HANDSHAKE_FAILURE,
            "server does not support Extended Master Secret",
        ));
    }
    if let (Some(_), Some(limit)) = (
        core.info.peer_record_size_limit,
        config.common.record_size_limit,
    ) {
        core.record.recv_fragment = usize::from(limit).min(16384);
    }
    core.info.version = Some(version);
    core.info.suite = Some(suite.suite);
    let mut msgs = hello;
    msgs.extend_from_slice(raw);
    let hs = Hs {
        config,
        server_name,
        suite,
        client_random: core.client_random,
        server_random: sh.random,
        msgs,
        ems,
        session_id: sh.session_id.clone(),
        ticket_ack,
        ticket: None,
    };
    if let Some(session) = resumed {
        return resume(core, hs, session);
    }
    Ok(Client12::WaitCertificate(Box::new(WaitCertificate { hs })))
}

/// The server's use_srtp answer (RFC 5764 §4.1.1): one profile we
/// offered, and no MKI since we sent none.
fn check_srtp(config: &ClientConfig, u: &crate::codec::UseSrtp) -> Result<SrtpProtectionProfile> {
    match u.profiles[..] {
        [p] if config.srtp_profiles.contains(&p) && u.mki.is_empty() => Ok(p),
        [_] if !u.mki.is_empty() => Err(Error::illegal(
            "server use_srtp carries an MKI we did not offer",
        )),
        [_] => Err(Error::illegal(
            "server chose an SRTP profile we did not offer",
        )),
        _ => Err(Error::illegal("server use_srtp must name one profile")),
    }
}

/// The server resumed our session (RFC 5246 §7.3): its CCS and Finished
/// come next, then ours.
fn resume(core: &mut Core, hs: Hs, session: ClientSession) -> Result<Client12> {
    if session.suite != hs.suite.suite {
        return Err(Error::illegal("resumed session with another cipher suite"));
    }
    // RFC 7627 §5.3: the EMS use must not change on resumption.
    if session.ems != hs.ems {
        return Err(Error::protocol(
            AlertDescription::HANDSHAKE_FAILURE,
            "resumption changed Extended Master Secret use",
        ));
    }
    let master = session.secret.clone();
    let (client_key, server_key) =
        record_keys(hs.suite, &master, &hs.client_random, &hs.server_random)?;
    core.pending_read = Some((server_key, protection(hs.suite)));
    if let Some(kl) = &core.key_log {
        kl.log("CLIENT_RANDOM", &hs.client_random, master.as_bytes());
    }
    core.info.resumed = true;
    Ok(Client12::WaitFinished(Box::new(WaitFinished {
        hs,
        master,
        resumed: Some((client_key, session)),
    })))
}

pub struct WaitCertificate {
    hs: Hs,
}

impl WaitCertificate {
    fn handle(mut self, core: &mut Core, msg: &Message<'_>) -> Result<Client12> {
        let cert: Certificate12 = msg.decode(HandshakeType::CERTIFICATE)?;
        if cert.certs.len() > core.limits.max_certificate_chain {
            return Err(Error::LimitExceeded {
                alert: AlertDescription::BAD_CERTIFICATE,
                limit: "certificate chain length",
            });
        }
        let chain: Vec<CertificateDer<'static>> =
            cert.certs.into_iter().map(CertificateDer::from).collect();
        let Some((leaf, rest)) = chain.split_first() else {
            return Err(Error::decode("server sent no certificate"));
        };
        let now = self.hs.config.common.time.unix_time();
        self.hs
            .config
            .verifier
            .verify_server_cert(leaf, rest, &self.hs.server_name, now)?;
        self.hs.msgs.extend_from_slice(msg.raw);
        Ok(Client12::WaitServerKeyExchange(Box::new(
            WaitServerKeyExchange { hs: self.hs, chain },
        )))
    }
}

/// Whether `scheme` signs with the certificate family `auth` names.
pub(super) fn scheme_fits(scheme: SignatureScheme, auth: Tls12Auth) -> bool {
    let rsa = matches!(
        scheme,
        SignatureScheme::RSA_PKCS1_SHA256
            | SignatureScheme::RSA_PKCS1_SHA384
            | SignatureScheme::RSA_PKCS1_SHA512
            | SignatureScheme::RSA_PSS_RSAE_SHA256
            | SignatureScheme::RSA_PSS_RSAE_SHA384
            | SignatureScheme::RSA_PSS_RSAE_SHA512
    );
    (auth == Tls12Auth::Rsa) == rsa
}

pub struct WaitServerKeyExchange {
    hs: Hs,
    chain: Vec<CertificateDer<'static>>,
}

impl WaitServerKeyExchange {
    fn handle(mut self, core: &mut Core, msg: &Message<'_>) -> Result<Client12> {
        let ske: ServerKeyExchangeEcdhe = msg.decode(HandshakeType::SERVER_KEY_EXCHANGE)?;
        let hs = &mut self.hs;
        if ske.group.is_tls13_only() || !hs.config.common.groups.contains(&ske.group) {
            return Err(Error::illegal(
                "ServerKeyExchange uses a group we did not offer",
            ));
        }
        if !SUPPORTED_TLS12_SCHEMES.contains(&ske.scheme) || !scheme_fits(ske.scheme, hs.suite.auth)
        {
            return Err(Error::illegal(
                "ServerKeyExchange signed with a scheme we did not offer",
            ));
        }
        let signed = ske.signed_message(&hs.client_random, &hs.server_random);
        hs.config.verifier.verify_tls12_signature(
            ske.scheme,
            &self.chain[0],
            &signed,
            &ske.signature,
        )?;
        core.info.group = Some(ske.group);
        core.info.peer_signature_scheme = Some(ske.scheme);
        if hs.config.common.keep_peer_certificates {
            core.info.peer_certificates = self.chain;
        }
        hs.msgs.extend_from_slice(msg.raw);
        Ok(Client12::WaitServerHelloDone(Box::new(
            WaitServerHelloDone {
                hs: self.hs,
                ske,
                cert_request: None,
            },
        )))
    }
}

pub struct WaitServerHelloDone {
    hs: Hs,
    ske: ServerKeyExchangeEcdhe,
    cert_request: Option<CertificateRequest12>,
}

impl WaitServerHelloDone {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<Client12> {
        if msg.typ == HandshakeType::CERTIFICATE_REQUEST && self.cert_request.is_none() {
            self.cert_request = Some(CertificateRequest12::from_bytes(msg.body)?);
            self.hs.msgs.extend_from_slice(msg.raw);
            return Ok(Client12::WaitServerHelloDone(self));
        }
        msg.expect(HandshakeType::SERVER_HELLO_DONE)?;
        if !msg.body.is_empty() {
            return Err(Error::decode("ServerHelloDone is not empty"));
        }
        let WaitServerHelloDone {
            mut hs,
            ske,
            cert_request,
        } = *self;
        hs.msgs.extend_from_slice(msg.raw);
        let config = hs.config.clone();

        // Our certificate, if asked: one we can sign for with an offered scheme.
        let signer = cert_request.as_ref().and_then(|req| {
            let ck = config.client_cert.as_ref()?;
            // RFC 5246 §7.4.4/§7.4.6: only a key of a listed certificate
            // type; otherwise an empty Certificate. rsa_sign(1);
            // ecdsa_sign(64) also covers EdDSA (RFC 8422 §5.5).
            let cert_type = match ck.key.kind() {
                KeyKind::Rsa => 1,
                KeyKind::EcdsaP256 | KeyKind::EcdsaP384 | KeyKind::Ed25519 => 64,
            };
            if !req.cert_types.contains(&cert_type) {
                return None;
            }
            let scheme = ck.key.choose_scheme(&req.schemes, false)?;
            Some((ck.clone(), scheme))
        });
        if cert_request.is_some() {
            let certs = signer.as_ref().map_or(Vec::new(), |(ck, _)| {
                ck.chain.iter().map(|c| c.as_ref().to_vec()).collect()
            });
            send(
                core,
                &mut hs.msgs,
                HandshakeType::CERTIFICATE,
                &Certificate12 { certs },
            )?;
        }
        let share = KeyShare::generate(ske.group)?;
        let cke = ClientKeyExchangeEcdhe {
            public: share.public().to_vec(),
        };
        send(core, &mut hs.msgs, HandshakeType::CLIENT_KEY_EXCHANGE, &cke)?;
        let pms = share.complete(&ske.public)?;
        let session_hash = hs.ems.then(|| hash(hs.suite.hash, &hs.msgs));
        let master = master_secret(
            hs.suite,
            pms.as_bytes(),
            session_hash.as_ref().map(|h| h.as_bytes()),
            &hs.client_random,
            &hs.server_random,
        );
        if let Some((ck, scheme)) = signer {
            let sig = ck.key.sign(scheme, &hs.msgs)?;
            let mut cv = Vec::new();
            put_handshake(&mut cv, HandshakeType::CERTIFICATE_VERIFY, |o| {
                scheme.encode(o);
                crate::codec::put_vec(o, 2, &sig);
            });
            core.send_handshake_logged(&cv, &mut hs.msgs)?;
            core.info.signature_scheme = Some(scheme);
            core.info.client_authenticated = true;
        }
        let (client_key, server_key) =
            record_keys(hs.suite, &master, &hs.client_random, &hs.server_random)?;
        core.flush_handshake()?;
        core.send_ccs()?;
        core.set_write12(client_key, protection(hs.suite));
        let fin = finished_message(&verify_data(hs.suite, &master, true, &hs.msgs));
        core.send_handshake_logged(&fin, &mut hs.msgs)?;
        core.pending_read = Some((server_key, protection(hs.suite)));
        if let Some(kl) = &core.key_log {
            kl.log("CLIENT_RANDOM", &hs.client_random, master.as_bytes());
        }
        Ok(Client12::WaitFinished(Box::new(WaitFinished {
            hs,
            master,
            resumed: None,
        })))
    }
}

pub struct WaitFinished {
    hs: Hs,
    master: Secret,
    /// An abbreviated handshake: our write key, sent after the server's
    /// Finished, and the session being resumed.
    resumed: Option<(crate::crypto::RecordKey, ClientSession)>,
}

impl WaitFinished {
    /// A NewSessionTicket was promised and has not come: in DTLS the
    /// peer's ChangeCipherSpec must wait for it (it is sent before).
    pub fn awaits_ticket(&self) -> bool {
        self.hs.ticket_ack && self.hs.ticket.is_none()
    }

    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<Client12> {
        if msg.typ == HandshakeType::NEW_SESSION_TICKET
            && self.hs.ticket_ack
            && self.hs.ticket.is_none()
        {
            let nst = NewSessionTicket12::from_bytes(msg.body)?;
            self.hs.msgs.extend_from_slice(msg.raw);
            self.hs.ticket = Some((nst.ticket, nst.lifetime_hint));
            return Ok(Client12::WaitFinished(self));
        }
        msg.expect(HandshakeType::FINISHED)?;
        if core.pending_read.is_some() {
            return Err(Error::unexpected("Finished before ChangeCipherSpec"));
        }
        // RFC 5077 §3.3: a server that acknowledged session_ticket MUST send
        // NewSessionTicket before its ChangeCipherSpec.
        if self.hs.ticket_ack && self.hs.ticket.is_none() {
            return Err(Error::unexpected("promised NewSessionTicket is missing"));
        }
        let WaitFinished {
            mut hs,
            master,
            resumed,
        } = *self;
        check_finished(&verify_data(hs.suite, &master, false, &hs.msgs), msg.body)?;
        hs.msgs.extend_from_slice(msg.raw);
        let session = match resumed {
            Some((client_key, session)) => {
                core.send_ccs()?;
                core.set_write12(client_key, protection(hs.suite));
                let fin = finished_message(&verify_data(hs.suite, &master, true, &hs.msgs));
                core.send_handshake(&fin)?;
                // TLS 1.2 sessions may be resumed again (a new ticket, if
                // the server sent one, replaces the old).
                let mut session = session;
                if let Some((ticket, _)) = hs.ticket.take() {
                    session.ticket = ticket;
                }
                Some(session)
            }
            None => new_session(core, &hs, &master),
        };
        if let (Some(session), Some(store)) = (session, &hs.config.session_store) {
            store.put(&hs.server_name.to_str(), session);
        }
        core.tls12 = Some(Tls12Secrets {
            suite: hs.suite,
            master,
            client_random: hs.client_random,
            server_random: hs.server_random,
            ems: hs.ems,
        });
        Ok(Client12::Connected)
    }
}

/// The session a full handshake leaves to resume, if the server gave it a
/// ticket or an id.
fn new_session(core: &Core, hs: &Hs, master: &Secret) -> Option<ClientSession> {
    let (ticket, hint) = hs.ticket.clone().unwrap_or_default();
    if ticket.is_empty() && hs.session_id.is_empty() {
        return None;
    }
    Some(ClientSession {
        // DTLS sessions are kept apart: they resume over DTLS only.
        version: wire_version(core),
        suite: hs.suite.suite,
        ticket,
        secret: master.clone(),
        received: hs.config.common.time.unix_time().as_secs(),
        // RFC 5077 §5.6: a zero hint means "unspecified".
        lifetime: if hint == 0 { 7200 } else { hint.min(604_800) },
        age_add: 0,
        max_early_data: 0,
        alpn: None,
        ems: hs.ems,
        session_id: hs.session_id.clone(),
    })
}

/// The version on the wire: TLS 1.2, or DTLS 1.2 over datagrams.
pub(crate) fn wire_version(core: &Core) -> ProtocolVersion {
    if core.is_dtls() {
        ProtocolVersion::DTLS1_2
    } else {
        ProtocolVersion::TLS1_2
    }
}
