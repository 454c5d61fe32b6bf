//! TLS 1.2 server, entered when the ClientHello does not offer TLS 1.3 (or
//! we do not). One struct per expected message.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use super::{
    check_finished, finished_message, master_secret, protection, record_keys, send, verify_data,
    Tls12Secrets,
};
use crate::codec::NewSessionTicket12;
use crate::codec::{
    put_handshake, AlertDescription, Certificate12, CertificateRequest12, CertificateVerify,
    CipherSuite, ClientExtension, ClientHello, ClientKeyExchangeEcdhe, HandshakeType, NamedGroup,
    ProtocolVersion, ServerExtension, ServerHello, ServerKeyExchangeEcdhe, DOWNGRADE_TLS12,
};
use crate::config::{ClientAuth, ServerConfig};
use crate::crypto::hash::hash;
use crate::crypto::kx::KeyShare;
use crate::crypto::{fill_random, tls12_suite, Secret, Tls12Auth, Tls12Suite};
use crate::error::{Error, Result};
use crate::handshake::resumption::TicketState;
use crate::handshake::tls13::{Core, Message};
use crate::x509::{ClientHelloInfo, KeyKind, SUPPORTED_TLS12_SCHEMES};

pub enum Server12 {
    WaitClientCertificate(Box<WaitClientKeyExchange>),
    WaitClientKeyExchange(Box<WaitClientKeyExchange>),
    WaitCertificateVerify(Box<WaitCertificateVerify>),
    WaitFinished(Box<WaitFinished>),
    WaitResumedFinished(Box<WaitResumedFinished>),
    Connected,
}

impl Server12 {
    pub fn handle(self, core: &mut Core, msg: &Message<'_>) -> Result<Server12> {
        match self {
            Server12::WaitClientCertificate(s) => s.handle_certificate(core, msg),
            Server12::WaitClientKeyExchange(s) => s.handle(core, msg),
            Server12::WaitCertificateVerify(s) => s.handle(core, msg),
            Server12::WaitFinished(s) => s.handle(core, msg),
            Server12::WaitResumedFinished(s) => s.handle(core, msg),
            Server12::Connected => Err(Error::unexpected("unexpected post-handshake message")),
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, Server12::Connected)
    }
}

struct Hs {
    config: Arc<ServerConfig>,
    suite: &'static Tls12Suite,
    client_random: [u8; 32],
    server_random: [u8; 32],
    msgs: Vec<u8>,
    ems: bool,
    /// Our session id (empty: not resumable by id).
    session_id: Vec<u8>,
    /// We promised a NewSessionTicket (RFC 5077 §3.2).
    ticket_ack: bool,
}

#[derive(Clone, Copy)]
struct HelloFlags {
    secure_reneg: bool,
    ems: bool,
    ticket_ack: bool,
}

/// A server random, with the RFC 8446 §4.1.3 downgrade sentinel when we
/// could have spoken TLS 1.3.
fn server_random(core: &Core, config: &ServerConfig) -> Result<[u8; 32]> {
    let mut random = [0u8; 32];
    fill_random(&mut random)?;
    if config.common.versions.contains(&ProtocolVersion::TLS1_3) && !core.is_dtls() {
        random[24..].copy_from_slice(&DOWNGRADE_TLS12);
    }
    Ok(random)
}

/// The ServerHello extensions both full and resumed handshakes send.
fn hello_extensions(
    core: &mut Core,
    config: &ServerConfig,
    hello: &ClientHello,
    flags: HelloFlags,
    alpn: Option<&[u8]>,
) -> Vec<ServerExtension> {
    let c = &config.common;
    let mut ext = Vec::new();
    if flags.secure_reneg {
        ext.push(ServerExtension::RenegotiationInfo(Vec::new()));
    }
    if flags.ems {
        ext.push(ServerExtension::ExtendedMasterSecret);
    }
    if hello
        .find(crate::codec::ExtensionType::EC_POINT_FORMATS)
        .is_some()
    {
        ext.push(ServerExtension::EcPointFormats(vec![0]));
    }
    if let Some(p) = alpn {
        ext.push(ServerExtension::Alpn(p.to_vec()));
    }
    if let Some(name) = hello.server_name() {
        core.info.server_name = Some(name.to_ascii_lowercase());
        ext.push(ServerExtension::ServerNameAck);
    }
    if let Some(l) = hello.record_size_limit() {
        let ours = c.record_size_limit.map_or(16384, |v| v.min(16384));
        ext.push(ServerExtension::RecordSizeLimit(ours));
        let l = l.min(16384);
        core.info.peer_record_size_limit = Some(l);
        core.record.send_fragment = usize::from(l);
        core.record.recv_fragment = usize::from(ours);
    }
    if flags.ticket_ack {
        ext.push(ServerExtension::SessionTicketAck);
    }
    // RFC 5764 §4.1.1: our most preferred profile the client offers, with
    // an empty MKI (we use none, whatever the client's); nothing without a
    // common profile. Only over DTLS: over TLS the extension is ignored.
    if let (true, Some(ClientExtension::UseSrtp(offer))) = (
        core.is_dtls(),
        hello.find(crate::codec::ExtensionType::USE_SRTP),
    ) {
        if let Some(p) = config
            .srtp_profiles
            .iter()
            .find(|p| offer.profiles.contains(p))
        {
            core.info.srtp_profile = Some(*p);
            ext.push(ServerExtension::UseSrtp(crate::codec::UseSrtp {
                profiles: vec![*p],
                mki: Vec::new(),
            }));
        }
    }
    ext
}

/// The session the client asks to resume, by ticket (RFC 5077) or session
/// id: ours, fresh, same server name, a suite it still offers, and the same
/// Extended Master Secret use (RFC 7627 §5.3). Otherwise `None`: a full
/// handshake.
fn resumable(
    core: &Core,
    config: &ServerConfig,
    hello: &ClientHello,
    ems: bool,
) -> Option<(TicketState, &'static Tls12Suite)> {
    let now = config.common.time.unix_time().as_secs();
    let by_ticket = || {
        let ticket = match hello.find(crate::codec::ExtensionType::SESSION_TICKET)? {
            ClientExtension::SessionTicket(t) if !t.is_empty() => t,
            _ => return None,
        };
        TicketState::decode(&config.ticketer.as_ref()?.open(ticket, now)?)
    };
    let by_id = || {
        if hello.session_id.is_empty() {
            return None;
        }
        config.session_cache.as_ref()?.get(&hello.session_id)
    };
    let state = by_ticket().or_else(by_id)?;
    let suite = tls12_suite(state.suite)?;
    let name = hello.server_name().unwrap_or("").to_ascii_lowercase();
    // A DTLS session resumes over DTLS only, a TLS one over TLS only.
    let ok = state.version == super::client::wire_version(core)
        && state.fresh(now)
        && state.ems == ems
        && state.server_name == name.as_bytes()
        && hello.cipher_suites.contains(&suite.suite)
        && config
            .common
            .suites12
            .iter()
            .any(|s| s.suite == suite.suite);
    ok.then_some((state, suite))
}

/// An abbreviated handshake (RFC 5246 §7.3): ServerHello, our CCS and
/// Finished, then the client's.
fn try_resume(
    core: &mut Core,
    config: &Arc<ServerConfig>,
    hello: &ClientHello,
    raw: &[u8],
    flags: HelloFlags,
) -> Result<Option<Server12>> {
    let Some((state, suite)) = resumable(core, config, hello, flags.ems) else {
        return Ok(None);
    };
    let alpn = crate::handshake::tls13::server::choose_alpn(&config.common.alpn, hello.alpn())?;
    let random = server_random(core, config)?;
    // A resumed session gets no new ticket: the client keeps using its own.
    let flags = HelloFlags {
        ticket_ack: false,
        ..flags
    };
    let sh = ServerHello {
        legacy_version: super::client::wire_version(core),
        random,
        session_id: hello.session_id.clone(),
        cipher_suite: suite.suite,
        compression_method: 0,
        extensions: hello_extensions(core, config, hello, flags, alpn.as_deref()),
    };
    let mut msgs = raw.to_vec();
    send(core, &mut msgs, HandshakeType::SERVER_HELLO, &sh)?;
    let master = state.secret;
    let (client_key, server_key) = record_keys(suite, &master, &hello.random, &random)?;
    core.send_ccs()?;
    core.set_write12(server_key, protection(suite));
    let fin = finished_message(&verify_data(suite, &master, false, &msgs));
    core.send_handshake_logged(&fin, &mut msgs)?;
    core.pending_read = Some((client_key, protection(suite)));
    if let Some(kl) = &core.key_log {
        kl.log("CLIENT_RANDOM", &hello.random, master.as_bytes());
    }
    core.info.version = Some(super::client::wire_version(core));
    core.info.suite = Some(suite.suite);
    core.info.alpn = alpn;
    core.info.resumed = true;
    let hs = Hs {
        config: config.clone(),
        suite,
        client_random: hello.random,
        server_random: random,
        msgs,
        ems: flags.ems,
        session_id: Vec::new(),
        ticket_ack: false,
    };
    Ok(Some(Server12::WaitResumedFinished(Box::new(
        WaitResumedFinished { hs, master },
    ))))
}

/// The client's Finished of an abbreviated handshake.
pub struct WaitResumedFinished {
    hs: Hs,
    master: Secret,
}

impl WaitResumedFinished {
    fn handle(self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<Server12> {
        msg.expect(HandshakeType::FINISHED)?;
        if core.pending_read.is_some() {
            return Err(Error::unexpected("Finished before ChangeCipherSpec"));
        }
        let hs = self.hs;
        check_finished(
            &verify_data(hs.suite, &self.master, true, &hs.msgs),
            msg.body,
        )?;
        core.tls12 = Some(Tls12Secrets {
            suite: hs.suite,
            master: self.master,
            client_random: hs.client_random,
            server_random: hs.server_random,
            ems: hs.ems,
        });
        Ok(Server12::Connected)
    }
}

/// Answers a ClientHello with a TLS 1.2 ServerHello ... ServerHelloDone.
pub fn respond(
    core: &mut Core,
    config: Arc<ServerConfig>,
    hello: &ClientHello,
    raw: &[u8],
) -> Result<Server12> {
    let c = &config.common;
    // RFC 7507: a fallback from a client that could do better than we do.
    if hello
        .cipher_suites
        .contains(&CipherSuite::TLS_FALLBACK_SCSV)
        && c.versions.contains(&ProtocolVersion::TLS1_3)
        && !core.is_dtls()
    {
        return Err(Error::protocol(
            AlertDescription::INAPPROPRIATE_FALLBACK,
            "fallback SCSV from a downgraded client",
        ));
    }
    if !hello.compression_methods.contains(&0) {
        return Err(Error::illegal(
            "ClientHello does not offer null compression",
        ));
    }
    // RFC 5746 §3.6: the SCSV counts as an empty renegotiation_info.
    let mut secure_reneg = hello
        .cipher_suites
        .contains(&CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV);
    let mut ems = false;
    for e in &hello.extensions {
        match e {
            ClientExtension::RenegotiationInfo(v) if v.is_empty() => secure_reneg = true,
            ClientExtension::RenegotiationInfo(_) => {
                return Err(Error::protocol(
                    AlertDescription::HANDSHAKE_FAILURE,
                    "renegotiation_info not empty",
                ))
            }
            ClientExtension::ExtendedMasterSecret => ems = true,
            ClientExtension::EcPointFormats(f) if !f.contains(&0) => {
                return Err(Error::illegal("client does not accept uncompressed points"))
            }
            _ => {}
        }
    }
    if !ems && c.require_ems {
        return Err(Error::protocol(
            AlertDescription::HANDSHAKE_FAILURE,
            "client does not support Extended Master Secret",
        ));
    }
    let ticket_ack = config.ticketer.is_some()
        && hello
            .find(crate::codec::ExtensionType::SESSION_TICKET)
            .is_some();
    let flags = HelloFlags {
        secure_reneg,
        ems,
        ticket_ack,
    };
    if let Some(st) = try_resume(core, &config, hello, raw, flags)? {
        return Ok(st);
    }
    // RFC 5246 §7.4.1.4.1 defaults to SHA-1 without the extension; we sign with nothing weaker than SHA-256.
    let schemes = hello.signature_algorithms().ok_or_else(|| {
        Error::protocol(
            AlertDescription::HANDSHAKE_FAILURE,
            "no signature_algorithms (SHA-1 is not supported)",
        )
    })?;
    let info = ClientHelloInfo {
        server_name: hello.server_name(),
        signature_schemes: schemes,
        alpn: hello.alpn().unwrap_or(&[]),
        tls13: false,
    };
    let cert = config.certs.resolve(&info).ok_or_else(|| {
        Error::protocol(
            AlertDescription::HANDSHAKE_FAILURE,
            "no certificate for this client",
        )
    })?;
    let auth = match cert.key.kind() {
        KeyKind::Rsa => Tls12Auth::Rsa,
        _ => Tls12Auth::Ecdsa,
    };
    // RFC 8422 §5.1: supported_groups also names the curves the client
    // accepts in an ECDSA certificate (OpenSSL clients enforce it).
    let cert_curve = match cert.key.kind() {
        KeyKind::EcdsaP256 => Some(NamedGroup::SECP256R1),
        KeyKind::EcdsaP384 => Some(NamedGroup::SECP384R1),
        _ => None,
    };
    if let (Some(curve), Some(groups)) = (cert_curve, hello.supported_groups()) {
        if !groups.contains(&curve) {
            return Err(Error::protocol(
                AlertDescription::HANDSHAKE_FAILURE,
                "the client does not accept our certificate's curve",
            ));
        }
    }
    let suite = c
        .suites12
        .iter()
        .find(|s| s.auth == auth && hello.cipher_suites.contains(&s.suite))
        .copied()
        .ok_or_else(|| {
            Error::protocol(
                AlertDescription::HANDSHAKE_FAILURE,
                "no cipher suite in common",
            )
        })?;
    let scheme = cert.key.choose_scheme(schemes, false).ok_or_else(|| {
        Error::protocol(
            AlertDescription::HANDSHAKE_FAILURE,
            "no signature scheme in common",
        )
    })?;
    // RFC 8422 §4: without supported_groups the client accepts any curve.
    let client_groups = hello.supported_groups();
    let group = c
        .groups
        .iter()
        .copied()
        .filter(|g| !g.is_tls13_only())
        .find(|g| client_groups.is_none_or(|cg| cg.contains(g)))
        .ok_or_else(|| {
            Error::protocol(
                AlertDescription::HANDSHAKE_FAILURE,
                "no key exchange group in common",
            )
        })?;
    let alpn = match (hello.alpn(), c.alpn.is_empty()) {
        (Some(theirs), false) => Some(
            c.alpn
                .iter()
                .find(|p| theirs.contains(p))
                .cloned()
                .ok_or_else(|| {
                    Error::protocol(
                        AlertDescription::NO_APPLICATION_PROTOCOL,
                        "no ALPN protocol in common",
                    )
                })?,
        ),
        _ => None,
    };

    let random = server_random(core, &config)?;
    let mut session_id = Vec::new();
    if config.session_cache.is_some() {
        session_id = vec![0; 32];
        fill_random(&mut session_id)?;
    }
    let sh = ServerHello {
        legacy_version: super::client::wire_version(core),
        random,
        session_id: session_id.clone(),
        cipher_suite: suite.suite,
        compression_method: 0,
        extensions: hello_extensions(core, &config, hello, flags, alpn.as_deref()),
    };
    let mut msgs = raw.to_vec();
    send(core, &mut msgs, HandshakeType::SERVER_HELLO, &sh)?;
    let certs = cert.chain.iter().map(|c| c.as_ref().to_vec()).collect();
    send(
        core,
        &mut msgs,
        HandshakeType::CERTIFICATE,
        &Certificate12 { certs },
    )?;

    let share = KeyShare::generate(group)?;
    let mut ske = ServerKeyExchangeEcdhe {
        group,
        public: share.public().to_vec(),
        scheme,
        signature: Vec::new(),
    };
    ske.signature = cert
        .key
        .sign(scheme, &ske.signed_message(&hello.random, &random))?;
    send(core, &mut msgs, HandshakeType::SERVER_KEY_EXCHANGE, &ske)?;

    let verifier = match (config.client_auth, &config.client_verifier) {
        (ClientAuth::None, _) | (_, None) => None,
        (mode, Some(v)) => Some((mode, v.clone())),
    };
    if let Some((_, v)) = &verifier {
        let req = CertificateRequest12 {
            // rsa_sign(1), ecdsa_sign(64) (RFC 5246 §7.4.4, RFC 8422 §5.5).
            cert_types: vec![1, 64],
            schemes: SUPPORTED_TLS12_SCHEMES.to_vec(),
            authorities: v.root_hint_subjects(),
        };
        send(core, &mut msgs, HandshakeType::CERTIFICATE_REQUEST, &req)?;
    }
    let mut done = Vec::new();
    put_handshake(&mut done, HandshakeType::SERVER_HELLO_DONE, |_| {});
    core.send_handshake_logged(&done, &mut msgs)?;

    core.info.version = Some(super::client::wire_version(core));
    core.info.suite = Some(suite.suite);
    core.info.group = Some(group);
    core.info.alpn = alpn;
    core.info.signature_scheme = Some(scheme);
    let hs = Hs {
        config: config.clone(),
        suite,
        client_random: hello.random,
        server_random: random,
        msgs,
        ems,
        session_id,
        ticket_ack,
    };
    let next = WaitClientKeyExchange {
        hs,
        share,
        required: false,
        chain: Vec::new(),
    };
    Ok(match verifier {
        Some((mode, _)) => Server12::WaitClientCertificate(Box::new(WaitClientKeyExchange {
            required: mode == ClientAuth::Require,
            ..next
        })),
        None => Server12::WaitClientKeyExchange(Box::new(next)),
    })
}

pub struct WaitClientKeyExchange {
    hs: Hs,
    share: KeyShare,
    required: bool,
    /// The client's certificate chain, if it sent one.
    chain: Vec<CertificateDer<'static>>,
}

impl WaitClientKeyExchange {
    fn handle_certificate(
        mut self: Box<Self>,
        core: &mut Core,
        msg: &Message<'_>,
    ) -> Result<Server12> {
        let cert: Certificate12 = msg.decode(HandshakeType::CERTIFICATE)?;
        if cert.certs.len() > core.limits.max_certificate_chain {
            return Err(Error::LimitExceeded {
                alert: AlertDescription::BAD_CERTIFICATE,
                limit: "certificate chain length",
            });
        }
        self.hs.msgs.extend_from_slice(msg.raw);
        let chain: Vec<CertificateDer<'static>> =
            cert.certs.into_iter().map(CertificateDer::from).collect();
        match chain.split_first() {
            None if self.required => {
                // RFC 5246 §7.4.6 (TLS 1.2 has no certificate_required alert).
                return Err(Error::protocol(
                    AlertDescription::HANDSHAKE_FAILURE,
                    "client sent no certificate",
                ));
            }
            None => {}
            Some((leaf, rest)) => {
                let Some(v) = &self.hs.config.client_verifier else {
                    return Err(Error::internal("client certificate without a verifier"));
                };
                v.verify_client_cert(leaf, rest, self.hs.config.common.time.unix_time())?;
            }
        }
        self.chain = chain;
        Ok(Server12::WaitClientKeyExchange(self))
    }

    fn handle(self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<Server12> {
        let cke: ClientKeyExchangeEcdhe = msg.decode(HandshakeType::CLIENT_KEY_EXCHANGE)?;
        let WaitClientKeyExchange {
            mut hs,
            share,
            chain,
            ..
        } = *self;
        let pms = share.complete(&cke.public)?;
        hs.msgs.extend_from_slice(msg.raw);
        let session_hash = hs.ems.then(|| hash(hs.suite.hash, &hs.msgs));
        let master = master_secret(
            hs.suite,
            pms.as_bytes(),
            session_hash.as_ref().map(|h| h.as_bytes()),
            &hs.client_random,
            &hs.server_random,
        );
        let (client_key, server_key) =
            record_keys(hs.suite, &master, &hs.client_random, &hs.server_random)?;
        core.pending_read = Some((client_key, protection(hs.suite)));
        if let Some(kl) = &core.key_log {
            kl.log("CLIENT_RANDOM", &hs.client_random, master.as_bytes());
        }
        let fin = WaitFinished {
            hs,
            master,
            server_key,
        };
        if chain.is_empty() {
            Ok(Server12::WaitFinished(Box::new(fin)))
        } else {
            Ok(Server12::WaitCertificateVerify(Box::new(
                WaitCertificateVerify { fin, chain },
            )))
        }
    }
}

pub struct WaitCertificateVerify {
    fin: WaitFinished,
    chain: Vec<CertificateDer<'static>>,
}

impl WaitCertificateVerify {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<Server12> {
        let cv: CertificateVerify = msg.decode(HandshakeType::CERTIFICATE_VERIFY)?;
        let hs = &mut self.fin.hs;
        if !SUPPORTED_TLS12_SCHEMES.contains(&cv.scheme) {
            return Err(Error::illegal(
                "client CertificateVerify uses a scheme we did not offer",
            ));
        }
        let Some(v) = &hs.config.client_verifier else {
            return Err(Error::internal("client certificate without a verifier"));
        };
        v.verify_tls12_signature(cv.scheme, &self.chain[0], &hs.msgs, &cv.signature)?;
        hs.msgs.extend_from_slice(msg.raw);
        core.info.peer_signature_scheme = Some(cv.scheme);
        core.info.client_authenticated = true;
        if hs.config.common.keep_peer_certificates {
            core.info.peer_certificates = self.chain;
        }
        Ok(Server12::WaitFinished(Box::new(self.fin)))
    }
}

pub struct WaitFinished {
    hs: Hs,
    master: Secret,
    server_key: crate::crypto::RecordKey,
}

impl WaitFinished {
    fn handle(self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<Server12> {
        msg.expect(HandshakeType::FINISHED)?;
        if core.pending_read.is_some() {
            return Err(Error::unexpected("Finished before ChangeCipherSpec"));
        }
        let WaitFinished {
            mut hs,
            master,
            server_key,
        } = *self;
        check_finished(&verify_data(hs.suite, &master, true, &hs.msgs), msg.body)?;
        hs.msgs.extend_from_slice(msg.raw);
        remember_session(core, &mut hs, &master)?;
        core.send_ccs()?;
        core.set_write12(server_key, protection(hs.suite));
        let fin = finished_message(&verify_data(hs.suite, &master, false, &hs.msgs));
        core.send_handshake(&fin)?;
        core.tls12 = Some(Tls12Secrets {
            suite: hs.suite,
            master,
            client_random: hs.client_random,
            server_random: hs.server_random,
            ems: hs.ems,
        });
        Ok(Server12::Connected)
    }
}

/// Stores the session under its id, and sends the promised ticket (before
/// our ChangeCipherSpec, RFC 5077 §3.3).
fn remember_session(core: &mut Core, hs: &mut Hs, master: &Secret) -> Result<()> {
    let config = hs.config.clone();
    let now = config.common.time.unix_time().as_secs();
    let lifetime = config
        .ticketer
        .as_ref()
        .map_or(7200, |t| t.ticket_lifetime());
    let state = TicketState {
        version: super::client::wire_version(core),
        suite: hs.suite.suite,
        secret: master.clone(),
        issued: now,
        age_add: 0,
        lifetime,
        server_name: core
            .info
            .server_name
            .clone()
            .unwrap_or_default()
            .into_bytes(),
        alpn: core.info.alpn.clone().unwrap_or_default(),
        ems: hs.ems,
        max_early_data: 0,
    };
    if let (Some(cache), false) = (&config.session_cache, hs.session_id.is_empty()) {
        cache.put(&hs.session_id, &state);
    }
    if let (Some(ticketer), true) = (&config.ticketer, hs.ticket_ack) {
        let nst = NewSessionTicket12 {
            lifetime_hint: lifetime,
            ticket: ticketer.seal(&state.encode(), now)?,
        };
        send(core, &mut hs.msgs, HandshakeType::NEW_SESSION_TICKET, &nst)?;
    }
    Ok(())
}
