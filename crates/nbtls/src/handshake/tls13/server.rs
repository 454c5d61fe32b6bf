//! TLS 1.3 server (RFC 8446 §2, §4). One struct per expected message.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use super::{
    certificate_message, certificate_verify_message, check_finished, finished_message,
    received_chain, signed_content, Core, Message, Side, TrafficSecrets,
};
use crate::codec::{
    put_handshake, AlertDescription, CertReqExtension, CertificateRequest13, CertificateVerify,
    ClientHello, Codec, EncryptedExtensions, HandshakeType, KeyShareEntry, NamedGroup,
    ProtocolVersion, ServerExtension, ServerHello, SignatureScheme, HRR_RANDOM,
};
use crate::codec::{ExtensionType, NewSessionTicket13, PskKeyExchangeMode};
use crate::config::{ClientAuth, ServerConfig};
use crate::crypto::key_schedule::{self, EarlySecret, MasterSecret};
use crate::crypto::kx;
use crate::crypto::tls13_suite;
use crate::crypto::{fill_random, Secret, Tls13Suite};
use crate::error::{Error, Result};
use crate::handshake::resumption::TicketState;
use crate::handshake::transcript::Transcript;
use crate::x509::{CertifiedKey, ClientHelloInfo};

/// Most early-data bytes skipped when 0-RTT is refused (§4.2.10).
const MAX_EARLY_DATA_SKIP: usize = 16384;

/// The server's states, named by what each waits for.
pub enum ServerState {
    /// The client gets TLS 1.2.
    Tls12(Box<crate::handshake::tls12::server::Server12>),
    WaitClientHello(Box<WaitClientHello>),
    /// Paused after parsing the ClientHello; `resume` continues.
    Paused(Box<Negotiating>),
    WaitClientCertificate(Box<WaitClientCertificate>),
    WaitClientCertificateVerify(Box<WaitClientCertificateVerify>),
    WaitClientFinished(Box<WaitClientFinished>),
    Connected,
}

impl ServerState {
    pub fn start(config: Arc<ServerConfig>) -> ServerState {
        ServerState::WaitClientHello(Box::new(WaitClientHello {
            config,
            transcript: Transcript::default(),
            retry: None,
            cookie_verified: false,
        }))
    }

    /// DTLS: waiting for a ClientHello whose cookie the stateless listener
    /// has already verified.
    pub fn start_cookie_verified(config: Arc<ServerConfig>) -> ServerState {
        ServerState::WaitClientHello(Box::new(WaitClientHello {
            config,
            transcript: Transcript::default(),
            retry: None,
            cookie_verified: true,
        }))
    }

    pub fn handle(self, core: &mut Core, msg: &Message<'_>) -> Result<ServerState> {
        match self {
            ServerState::WaitClientHello(s) => (*s).handle(core, msg),
            ServerState::Paused(_) => Err(Error::internal("message while paused")),
            ServerState::WaitClientCertificate(s) => s.handle(core, msg),
            ServerState::WaitClientCertificateVerify(s) => s.handle(core, msg),
            ServerState::WaitClientFinished(s) => s.handle(core, msg),
            ServerState::Tls12(s) => Ok(ServerState::Tls12(Box::new(s.handle(core, msg)?))),
            ServerState::Connected => match msg.typ {
                HandshakeType::NEW_SESSION_TICKET => {
                    Err(Error::unexpected("client sent a NewSessionTicket"))
                }
                _ => Err(Error::unexpected("unexpected post-handshake message")),
            },
        }
    }

    /// Continues after a pause.
    pub fn resume(self, core: &mut Core) -> Result<ServerState> {
        match self {
            ServerState::Paused(n) => n.respond(core),
            other => Ok(other),
        }
    }

    pub fn is_paused(&self) -> bool {
        matches!(self, ServerState::Paused(_))
    }

    pub fn is_connected(&self) -> bool {
        match self {
            ServerState::Connected => true,
            ServerState::Tls12(s) => s.is_connected(),
            _ => false,
        }
    }

    /// The ClientHello being answered, while paused.
    pub fn paused_hello(&self) -> Option<&ClientHello> {
        match self {
            ServerState::Paused(n) => Some(&n.hello),
            _ => None,
        }
    }

    /// Replaces the configuration while paused (to pick another
    /// certificate, ALPN list, client-auth policy, ...).
    pub fn set_config(&mut self, config: Arc<ServerConfig>) -> Result<()> {
        match self {
            ServerState::Paused(n) => {
                n.config = config;
                Ok(())
            }
            _ => Err(Error::InvalidRequest(
                "the handshake is not paused after a ClientHello",
            )),
        }
    }
}

/// After a HelloRetryRequest: what the second ClientHello must match.
struct Retry {
    suite: &'static Tls13Suite,
    group: NamedGroup,
}

pub struct WaitClientHello {
    config: Arc<ServerConfig>,
    transcript: Transcript,
    retry: Option<Retry>,
    /// DTLS: the cookie exchange already happened (the listener's).
    cookie_verified: bool,
}

impl WaitClientHello {
    fn handle(mut self, core: &mut Core, msg: &Message<'_>) -> Result<ServerState> {
        if core.is_dtls() {
            return self.handle_dtls(core, msg);
        }
        let hello: ClientHello = msg.decode(HandshakeType::CLIENT_HELLO)?;
        let ours = &self.config.common.versions;
        let theirs = hello.supported_versions();
        let v13 = ours.contains(&ProtocolVersion::TLS1_3)
            && theirs.is_some_and(|v| v.contains(&ProtocolVersion::TLS1_3));
        if !v13 {
            // RFC 8446 §4.2.1: without supported_versions, legacy_version decides.
            let v12 = match theirs {
                Some(v) => v.contains(&ProtocolVersion::TLS1_2),
                None => hello.legacy_version >= ProtocolVersion::TLS1_2,
            };
            if self.retry.is_some() || !v12 || !ours.contains(&ProtocolVersion::TLS1_2) {
                return Err(Error::protocol(
                    AlertDescription::PROTOCOL_VERSION,
                    "no protocol version in common",
                ));
            }
            core.client_random = hello.random;
            let st = crate::handshake::tls12::server::respond(core, self.config, &hello, msg.raw)?;
            return Ok(ServerState::Tls12(Box::new(st)));
        }
        hello.check_pre_shared_key()?;
        // RFC 8446 §4.2.9: a PSK offer without psk_key_exchange_modes aborts.
        if hello.find(ExtensionType::PRE_SHARED_KEY).is_some() && hello.psk_modes().is_none() {
            return Err(Error::protocol(
                AlertDescription::MISSING_EXTENSION,
                "pre_shared_key without psk_key_exchange_modes",
            ));
        }
        if hello.compression_methods != [0] {
            return Err(Error::illegal(
                "TLS 1.3 ClientHello must offer only null compression",
            ));
        }
        // The binder of a PSK covers the transcript up to this hello, truncated.
        let pre_hello = hello
            .pre_shared_key()
            .map(|_| (self.transcript.clone(), msg.raw.to_vec()));
        self.transcript.add(msg.raw);
        if let Some(retry) = &self.retry {
            check_second_hello(&hello, retry)?;
        } else {
            core.client_random = hello.random;
            if hello.early_data() {
                core.early_data_skip = Some(MAX_EARLY_DATA_SKIP);
            }
        }
        if let Some(name) = hello.server_name() {
            core.info.server_name = Some(name.to_ascii_lowercase());
        }
        let neg = Negotiating {
            config: self.config,
            transcript: self.transcript,
            retried: self.retry.is_some(),
            hello,
            pre_hello,
        };
        if neg.config.pause_after_client_hello && !neg.retried {
            return Ok(ServerState::Paused(Box::new(neg)));
        }
        Box::new(neg).respond(core)
    }
}

impl WaitClientHello {
    /// DTLS 1.2 (RFC 6347 §4.2.1): the hello carries a cookie; without a
    /// valid one the answer is a HelloVerifyRequest and nothing is kept.
    fn handle_dtls(self, core: &mut Core, msg: &Message<'_>) -> Result<ServerState> {
        msg.expect(HandshakeType::CLIENT_HELLO)?;
        let mut r = crate::codec::Reader::new(msg.body);
        let hello = ClientHello::read_body(&mut r, true)?;
        r.finish("trailing bytes in ClientHello")?;
        // DTLS versions count down: 1.2 is 0xfefd, below 1.0's 0xfeff.
        if hello.legacy_version > ProtocolVersion::DTLS1_2
            || !self
                .config
                .common
                .versions
                .contains(&ProtocolVersion::TLS1_2)
        {
            return Err(Error::protocol(
                AlertDescription::PROTOCOL_VERSION,
                "client does not offer DTLS 1.2",
            ));
        }
        let client_id = core.dtls.as_ref().map(|d| d.client_id.as_slice());
        // A hello the listener already verified statelessly is not checked again.
        let challenge = match client_id {
            Some(id) if !self.cookie_verified => {
                crate::handshake::dtls::cookie::challenge(&self.config, id, &hello)
            }
            _ => None,
        };
        if let Some(cookie) = challenge {
            core.send_handshake(&crate::handshake::dtls::cookie::hello_verify_message(
                cookie,
            ))?;
            if let Some(d) = &mut core.dtls {
                d.stateless = true;
            }
            return Ok(ServerState::WaitClientHello(Box::new(self)));
        }
        core.client_random = hello.random;
        let st = crate::handshake::tls12::server::respond(core, self.config, &hello, msg.raw)?;
        Ok(ServerState::Tls12(Box::new(st)))
    }
}

/// RFC 8446 §4.1.2: the second ClientHello answers the HelloRetryRequest.
fn check_second_hello(hello: &ClientHello, retry: &Retry) -> Result<()> {
    let shares = hello.key_shares().unwrap_or(&[]);
    if shares.len() != 1 || shares[0].group != retry.group {
        return Err(Error::illegal(
            "second ClientHello must share exactly the requested group",
        ));
    }
    if !hello.cipher_suites.contains(&retry.suite.suite) {
        return Err(Error::illegal(
            "second ClientHello dropped the selected suite",
        ));
    }
    if hello.early_data() {
        return Err(Error::illegal("early_data after HelloRetryRequest"));
    }
    Ok(())
}

/// A parsed ClientHello being answered.
pub struct Negotiating {
    config: Arc<ServerConfig>,
    transcript: Transcript,
    retried: bool,
    hello: ClientHello,
    /// With a pre_shared_key: the transcript before this hello, and the
    /// hello's bytes (for the binder).
    pre_hello: Option<(Transcript, Vec<u8>)>,
}

impl Negotiating {
    fn respond(mut self: Box<Self>, core: &mut Core) -> Result<ServerState> {
        let config = self.config.clone();
        let c = &config.common;
        let hello = &self.hello;
        let suite = c
            .suites
            .iter()
            .find(|s| hello.cipher_suites.contains(&s.suite))
            .copied()
            .ok_or_else(|| {
                Error::protocol(
                    AlertDescription::HANDSHAKE_FAILURE,
                    "no cipher suite in common",
                )
            })?;
        let (suite, psk, early_data) = match self.accept_psk(suite)? {
            Some((suite, p)) => (suite, Some(p.secret), p.early_data),
            None => (suite, None, false),
        };
        let hello = &self.hello;
        let schemes = hello.signature_algorithms();
        if schemes.is_none() && psk.is_none() {
            return Err(Error::protocol(
                AlertDescription::MISSING_EXTENSION,
                "no signature_algorithms",
            ));
        }
        let schemes = schemes.unwrap_or(&[]);
        let (Some(groups), Some(shares)) = (hello.supported_groups(), hello.key_shares()) else {
            return Err(Error::protocol(
                AlertDescription::MISSING_EXTENSION,
                "ClientHello lacks supported_groups or key_share",
            ));
        };
        for (i, s) in shares.iter().enumerate() {
            if !groups.contains(&s.group) || shares[..i].iter().any(|o| o.group == s.group) {
                return Err(Error::illegal(
                    "key_share group not in supported_groups, or repeated",
                ));
            }
        }
        // Our preference among groups the client sent a share for; else
        // retry with our preferred group the client supports.
        let share = c
            .groups
            .iter()
            .find_map(|g| shares.iter().find(|s| s.group == *g))
            .cloned();
        let Some(share) = share else {
            let Some(group) = c.groups.iter().find(|g| groups.contains(g)).copied() else {
                return Err(Error::protocol(
                    AlertDescription::HANDSHAKE_FAILURE,
                    "no key exchange group in common",
                ));
            };
            if self.retried {
                return Err(Error::illegal("second ClientHello has no usable key share"));
            }
            return self.retry(core, suite, group);
        };
        let alpn = choose_alpn(&c.alpn, hello.alpn())?;
        let info = ClientHelloInfo {
            server_name: hello.server_name(),
            signature_schemes: schemes,
            alpn: hello.alpn().unwrap_or(&[]),
            tls13: true,
        };
        // A resumed session authenticates through the PSK, not a certificate.
        let cert = match psk {
            Some(_) => None,
            None => {
                let cert = config.certs.resolve(&info).ok_or_else(|| {
                    Error::protocol(
                        AlertDescription::HANDSHAKE_FAILURE,
                        "no certificate for this client",
                    )
                })?;
                let scheme = cert.key.choose_scheme(schemes, true).ok_or_else(|| {
                    Error::protocol(
                        AlertDescription::HANDSHAKE_FAILURE,
                        "no signature scheme in common",
                    )
                })?;
                Some((cert, scheme))
            }
        };
        let peer_limit = match hello.record_size_limit() {
            Some(l) if l < 64 => return Err(Error::illegal("record_size_limit below 64")),
            other => other,
        };
        let (server_share, shared) = kx::server_accept(share.group, &share.payload)?;
        let mut random = [0u8; 32];
        fill_random(&mut random)?;
        let sh = ServerHello {
            legacy_version: ProtocolVersion::TLS1_2,
            random,
            session_id: hello.session_id.clone(),
            cipher_suite: suite.suite,
            compression_method: 0,
            extensions: {
                let mut e = vec![
                    ServerExtension::SupportedVersion(ProtocolVersion::TLS1_3),
                    ServerExtension::KeyShare(KeyShareEntry {
                        group: share.group,
                        payload: server_share,
                    }),
                ];
                if psk.is_some() {
                    e.push(ServerExtension::PreSharedKey(0));
                }
                e
            },
        };
        // 0-RTT keys come from Hash(ClientHello), before the ServerHello.
        let hello_hash = early_data.then(|| {
            let mut t = self.transcript.clone();
            t.start_hash(suite.hash);
            t.current()
        });
        let mut msg = Vec::new();
        put_handshake(&mut msg, HandshakeType::SERVER_HELLO, |o| sh.encode(o));
        self.transcript.start_hash(suite.hash);
        self.transcript.add(&msg);
        core.send_handshake(&msg)?;
        let compat = !hello.session_id.is_empty();
        if compat {
            core.send_ccs_once()?;
            core.ccs_allowed = true;
        }
        core.info.version = Some(ProtocolVersion::TLS1_3);
        core.info.suite = Some(suite.suite);
        core.info.group = Some(share.group);
        core.info.alpn = alpn.clone();
        core.info.signature_scheme = cert.as_ref().map(|(_, s)| *s);
        core.info.resumed = psk.is_some();
        let psk_dhe = hello
            .psk_modes()
            .is_some_and(|m| m.contains(&crate::codec::PskKeyExchangeMode::PSK_DHE_KE));

        let early = EarlySecret::new(suite.hash, psk.as_ref().map(|p| p.as_bytes()));
        let early_traffic = hello_hash.map(|h| early.client_early_traffic_secret(h.as_bytes()));
        let hs = early.into_handshake(shared.as_bytes());
        let (client_hs, server_hs) = hs.traffic_secrets(self.transcript.current().as_bytes());
        core.log_secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &client_hs);
        core.log_secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", &server_hs);
        core.set_write_secret(suite, &server_hs)?;
        match &early_traffic {
            // Early data arrives under its own key until EndOfEarlyData.
            Some(secret) => {
                core.log_secret("CLIENT_EARLY_TRAFFIC_SECRET", secret);
                core.set_read_secret(suite, secret);
                core.early_data_skip = None;
                core.early_data_accept = Some(self.config.max_early_data as usize);
                core.info.early_data_accepted = true;
            }
            None => core.set_read_secret(suite, &client_hs),
        }
        // The client's CCS may follow its ClientHello whether or not it
        // sent a session id; accept it until its Finished.
        core.ccs_allowed = true;

        // EncryptedExtensions
        let our_limit = c.record_size_limit.unwrap_or(16385);
        let mut ee_ext = Vec::new();
        // RFC 6066 §3: no server_name acknowledgement when resuming.
        if hello.server_name().is_some() && psk.is_none() {
            ee_ext.push(ServerExtension::ServerNameAck);
        }
        if let Some(p) = &alpn {
            ee_ext.push(ServerExtension::Alpn(p.clone()));
        }
        if peer_limit.is_some() {
            ee_ext.push(ServerExtension::RecordSizeLimit(our_limit));
        }
        if early_data {
            ee_ext.push(ServerExtension::EarlyData);
        }
        let ee = EncryptedExtensions { extensions: ee_ext };
        let mut msg = Vec::new();
        put_handshake(&mut msg, HandshakeType::ENCRYPTED_EXTENSIONS, |o| {
            ee.encode(o)
        });
        self.transcript.add(&msg);
        core.send_handshake(&msg)?;
        if let Some(l) = peer_limit {
            let l = l.min(16385);
            core.info.peer_record_size_limit = Some(l);
            core.record.send_fragment = usize::from(l) - 1;
            core.record.recv_fragment = usize::from(our_limit) - 1;
        }

        let verifier = match (config.client_auth, &config.client_verifier, &cert) {
            (ClientAuth::None, _, _) | (_, None, _) | (_, _, None) => None,
            (mode, Some(v), Some(_)) => Some((mode, v.clone())),
        };
        if let Some((_, v)) = &verifier {
            let mut extensions = vec![CertReqExtension::SignatureAlgorithms(
                v.supported_schemes().to_vec(),
            )];
            let hints = v.root_hint_subjects();
            if !hints.is_empty() {
                extensions.push(CertReqExtension::CertificateAuthorities(hints));
            }
            let req = CertificateRequest13 {
                context: Vec::new(),
                extensions,
            };
            let mut cr = Vec::new();
            put_handshake(&mut cr, HandshakeType::CERTIFICATE_REQUEST, |o| {
                req.encode(o)
            });
            self.transcript.add(&cr);
            core.send_handshake(&cr)?;
        }
        if let Some((cert, scheme)) = &cert {
            send_certificate(core, &mut self.transcript, cert, *scheme)?;
        }

        let fin = finished_message(suite.hash, &server_hs, self.transcript.current().as_bytes());
        self.transcript.add(&fin);
        core.send_handshake(&fin)?;

        let master = hs.into_master();
        let hash = self.transcript.current();
        let (client_ap, server_ap) = master.traffic_secrets(hash.as_bytes());
        let exporter = master.exporter_master_secret(hash.as_bytes());
        core.log_secret("CLIENT_TRAFFIC_SECRET_0", &client_ap);
        core.log_secret("SERVER_TRAFFIC_SECRET_0", &server_ap);
        core.log_secret("EXPORTER_SECRET", &exporter);
        core.set_write_secret(suite, &server_ap)?;

        let keys = Keys {
            config,
            suite,
            psk_dhe,
            early_data,
            transcript: self.transcript,
            master,
            client_hs,
            client_ap,
            server_ap,
            exporter,
        };
        Ok(match verifier {
            Some((mode, _)) => {
                ServerState::WaitClientCertificate(Box::new(WaitClientCertificate {
                    keys,
                    required: mode == ClientAuth::Require,
                }))
            }
            None => ServerState::WaitClientFinished(Box::new(WaitClientFinished { keys })),
        })
    }

    /// The session the client offers to resume, if its ticket is ours,
    /// fresh, for this server name and a suite of the same hash, and its
    /// binder verifies (RFC 8446 §4.2.11). A binder that does not verify
    /// is fatal; any other mismatch falls back to a full handshake.
    fn accept_psk(
        &self,
        suite: &'static Tls13Suite,
    ) -> Result<Option<(&'static Tls13Suite, AcceptedPsk)>> {
        let (Some(ticketer), Some(offer), Some((pre, raw))) = (
            &self.config.ticketer,
            self.hello.pre_shared_key(),
            &self.pre_hello,
        ) else {
            return Ok(None);
        };
        let dhe = PskKeyExchangeMode::PSK_DHE_KE;
        if !self.hello.psk_modes().is_some_and(|m| m.contains(&dhe)) {
            return Ok(None);
        }
        let (Some(id), Some(binder)) = (offer.identities.first(), offer.binders.first()) else {
            return Ok(None);
        };
        let now = self.config.common.time.unix_time().as_secs();
        let Some(state) = ticketer
            .open(&id.identity, now)
            .and_then(|b| TicketState::decode(&b))
        else {
            return Ok(None);
        };
        let name = self.hello.server_name().unwrap_or("").to_ascii_lowercase();
        let Some(ticket_suite) = tls13_suite(state.suite) else {
            return Ok(None);
        };
        // Resume with the ticket's suite when offered, else one of its hash.
        let chosen = if self.hello.cipher_suites.contains(&state.suite)
            && self
                .config
                .common
                .suites
                .iter()
                .any(|s| s.suite == state.suite)
        {
            ticket_suite
        } else if suite.hash == ticket_suite.hash {
            suite
        } else {
            return Ok(None);
        };
        if state.version != ProtocolVersion::TLS1_3
            || !state.fresh(now)
            || state.server_name != name.as_bytes()
        {
            return Ok(None);
        }
        let Some(trunc) = raw.len().checked_sub(offer.binders_len()) else {
            return Err(Error::decode("binders longer than the ClientHello"));
        };
        let mut t = pre.clone();
        t.start_hash(chosen.hash);
        t.add(&raw[..trunc]);
        let early = EarlySecret::new(chosen.hash, Some(state.secret.as_bytes()));
        if !key_schedule::verify_finished(
            chosen.hash,
            &early.binder_key(true),
            t.current().as_bytes(),
            binder,
        ) {
            return Err(Error::protocol(
                AlertDescription::DECRYPT_ERROR,
                "PSK binder does not verify",
            ));
        }
        let early_data =
            self.accept_early_data(&state, chosen, id.obfuscated_ticket_age, binder, now)?;
        Ok(Some((
            chosen,
            AcceptedPsk {
                secret: state.secret,
                early_data,
            },
        )))
    }

    /// 0-RTT is accepted only when everything matches the ticket and the
    /// ClientHello is fresh and not a replay (RFC 8446 §4.2.10, §8).
    fn accept_early_data(
        &self,
        state: &TicketState,
        suite: &'static Tls13Suite,
        obfuscated_age: u32,
        binder: &[u8],
        now: u64,
    ) -> Result<bool> {
        let c = &self.config;
        let Some(anti_replay) = &c.anti_replay else {
            return Ok(false);
        };
        if !self.hello.early_data()
            || self.retried
            || c.max_early_data == 0
            || state.max_early_data == 0
            || state.suite != suite.suite
        {
            return Ok(false);
        }
        let alpn = choose_alpn(&c.common.alpn, self.hello.alpn())?.unwrap_or_default();
        if alpn != state.alpn {
            return Ok(false);
        }
        // The client's view of the ticket's age against ours (§8.3).
        let client_ms = i64::from(obfuscated_age.wrapping_sub(state.age_add));
        let server_ms = i64::try_from(now.saturating_sub(state.issued).saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let window_ms = i64::try_from(anti_replay.window_secs() * 1000).unwrap_or(i64::MAX);
        if (client_ms - server_ms).abs() > window_ms {
            return Ok(false);
        }
        Ok(anti_replay.first_use(binder, now))
    }

    /// Sends a HelloRetryRequest for `group` (RFC 8446 §4.1.4).
    fn retry(
        mut self: Box<Self>,
        core: &mut Core,
        suite: &'static Tls13Suite,
        group: NamedGroup,
    ) -> Result<ServerState> {
        let hrr = ServerHello {
            legacy_version: ProtocolVersion::TLS1_2,
            random: HRR_RANDOM,
            session_id: self.hello.session_id.clone(),
            cipher_suite: suite.suite,
            compression_method: 0,
            extensions: vec![
                ServerExtension::SupportedVersion(ProtocolVersion::TLS1_3),
                ServerExtension::HrrKeyShare(group),
            ],
        };
        let mut msg = Vec::new();
        put_handshake(&mut msg, HandshakeType::SERVER_HELLO, |o| hrr.encode(o));
        self.transcript.replace_with_message_hash(suite.hash);
        self.transcript.add(&msg);
        core.send_handshake(&msg)?;
        if !self.hello.session_id.is_empty() {
            core.send_ccs_once()?;
        }
        core.ccs_allowed = true;
        core.info.hello_retry = true;
        Ok(ServerState::WaitClientHello(Box::new(WaitClientHello {
            config: self.config,
            transcript: self.transcript,
            retry: Some(Retry { suite, group }),
            cookie_verified: false,
        })))
    }
}

/// RFC 7301 §3.2: the first of our protocols the client offers; none in
/// common is fatal.
pub(crate) fn choose_alpn(ours: &[Vec<u8>], theirs: Option<&[Vec<u8>]>) -> Result<Option<Vec<u8>>> {
    let Some(theirs) = theirs else {
        return Ok(None);
    };
    if ours.is_empty() {
        return Ok(None);
    }
    match ours.iter().find(|p| theirs.contains(p)) {
        Some(p) => Ok(Some(p.clone())),
        None => Err(Error::protocol(
            AlertDescription::NO_APPLICATION_PROTOCOL,
            "no ALPN protocol in common",
        )),
    }
}

fn send_certificate(
    core: &mut Core,
    transcript: &mut Transcript,
    cert: &CertifiedKey,
    scheme: SignatureScheme,
) -> Result<()> {
    let msg = certificate_message(&[], &cert.chain);
    transcript.add(&msg);
    core.send_handshake(&msg)?;
    let content = signed_content(Side::Server, transcript.current().as_bytes());
    let sig = cert.key.sign(scheme, &content)?;
    let cv = certificate_verify_message(scheme, &sig);
    transcript.add(&cv);
    core.send_handshake(&cv)
}

struct Keys {
    config: Arc<ServerConfig>,
    suite: &'static Tls13Suite,
    /// The client accepts tickets (it offered psk_dhe_ke).
    psk_dhe: bool,
    /// We accepted 0-RTT: EndOfEarlyData comes before the client's Finished.
    early_data: bool,
    transcript: Transcript,
    master: MasterSecret,
    client_hs: Secret,
    client_ap: Secret,
    server_ap: Secret,
    exporter: Secret,
}

pub struct WaitClientCertificate {
    keys: Keys,
    required: bool,
}

impl WaitClientCertificate {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ServerState> {
        let cert = msg.decode::<crate::codec::Certificate13>(HandshakeType::CERTIFICATE)?;
        if !cert.context.is_empty() {
            return Err(Error::illegal("client Certificate has a request context"));
        }
        let chain = received_chain(cert, &core.limits)?;
        self.keys.transcript.add(msg.raw);
        let Some((leaf, rest)) = chain.split_first() else {
            if self.required {
                return Err(Error::protocol(
                    AlertDescription::CERTIFICATE_REQUIRED,
                    "client sent no certificate",
                ));
            }
            return Ok(ServerState::WaitClientFinished(Box::new(
                WaitClientFinished { keys: self.keys },
            )));
        };
        let Some(verifier) = &self.keys.config.client_verifier else {
            return Err(Error::internal("client certificate without a verifier"));
        };
        let now = self.keys.config.common.time.unix_time();
        verifier.verify_client_cert(leaf, rest, now)?;
        Ok(ServerState::WaitClientCertificateVerify(Box::new(
            WaitClientCertificateVerify {
                keys: self.keys,
                chain,
            },
        )))
    }
}

pub struct WaitClientCertificateVerify {
    keys: Keys,
    chain: Vec<CertificateDer<'static>>,
}

impl WaitClientCertificateVerify {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ServerState> {
        let cv: CertificateVerify = msg.decode(HandshakeType::CERTIFICATE_VERIFY)?;
        let Some(verifier) = &self.keys.config.client_verifier else {
            return Err(Error::internal("client certificate without a verifier"));
        };
        if !verifier.supported_schemes().contains(&cv.scheme) {
            return Err(Error::illegal(
                "client CertificateVerify uses a scheme we did not offer",
            ));
        }
        let content = signed_content(Side::Client, self.keys.transcript.current().as_bytes());
        verifier.verify_tls13_signature(cv.scheme, &self.chain[0], &content, &cv.signature)?;
        core.info.peer_signature_scheme = Some(cv.scheme);
        core.info.client_authenticated = true;
        if self.keys.config.common.keep_peer_certificates {
            core.info.peer_certificates = self.chain;
        }
        self.keys.transcript.add(msg.raw);
        Ok(ServerState::WaitClientFinished(Box::new(
            WaitClientFinished { keys: self.keys },
        )))
    }
}

pub struct WaitClientFinished {
    keys: Keys,
}

impl WaitClientFinished {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ServerState> {
        if self.keys.early_data {
            // RFC 8446 §4.5: early data ends with EndOfEarlyData, under the
            // early key; the handshake key follows.
            msg.expect(HandshakeType::END_OF_EARLY_DATA)?;
            if !msg.body.is_empty() {
                return Err(Error::decode("EndOfEarlyData is not empty"));
            }
            self.keys.transcript.add(msg.raw);
            self.keys.early_data = false;
            core.early_data_accept = None;
            core.set_read_secret(self.keys.suite, &self.keys.client_hs);
            return Ok(ServerState::WaitClientFinished(self));
        }
        msg.expect(HandshakeType::FINISHED)?;
        let Keys {
            config,
            psk_dhe,
            suite,
            mut transcript,
            master,
            client_hs,
            client_ap,
            server_ap,
            exporter,
            ..
        } = self.keys;
        check_finished(
            suite.hash,
            &client_hs,
            transcript.current().as_bytes(),
            msg.body,
        )?;
        transcript.add(msg.raw);
        core.ccs_allowed = false;
        core.early_data_skip = None;
        core.set_read_secret(suite, &client_ap);
        let resumption = master.resumption_master_secret(transcript.current().as_bytes());
        if psk_dhe {
            send_tickets(core, &config, suite, &resumption)?;
        }
        core.traffic = Some(TrafficSecrets {
            suite,
            client: client_ap,
            server: server_ap,
            exporter,
            resumption,
        });
        Ok(ServerState::Connected)
    }
}

/// NewSessionTickets after the client's Finished (RFC 8446 §4.6.1), flushed
/// before `handshake()` returns.
fn send_tickets(
    core: &mut Core,
    config: &ServerConfig,
    suite: &'static Tls13Suite,
    resumption: &Secret,
) -> Result<()> {
    let Some(ticketer) = &config.ticketer else {
        return Ok(());
    };
    let now = config.common.time.unix_time().as_secs();
    for i in 0..config.send_tickets {
        let nonce = (i as u64).to_be_bytes().to_vec();
        let mut age_add = [0u8; 4];
        fill_random(&mut age_add)?;
        let age_add = u32::from_be_bytes(age_add);
        let state = TicketState {
            version: ProtocolVersion::TLS1_3,
            suite: suite.suite,
            secret: key_schedule::resumption_psk(suite.hash, resumption, &nonce),
            issued: now,
            age_add,
            lifetime: ticketer.ticket_lifetime(),
            server_name: core
                .info
                .server_name
                .clone()
                .unwrap_or_default()
                .into_bytes(),
            alpn: core.info.alpn.clone().unwrap_or_default(),
            ems: false,
            max_early_data: config.max_early_data,
        };
        let mut extensions = Vec::new();
        if config.max_early_data > 0 {
            extensions.push(crate::codec::TicketExtension::EarlyData(
                config.max_early_data,
            ));
        }
        let nst = NewSessionTicket13 {
            lifetime: ticketer.ticket_lifetime(),
            age_add,
            nonce,
            ticket: ticketer.seal(&state.encode(), now)?,
            extensions,
        };
        let mut msg = Vec::new();
        put_handshake(&mut msg, HandshakeType::NEW_SESSION_TICKET, |o| {
            nst.encode(o)
        });
        core.send_handshake(&msg)?;
    }
    Ok(())
}

/// A PSK the server accepted.
struct AcceptedPsk {
    secret: Secret,
    /// Its 0-RTT data is accepted too.
    early_data: bool,
}
