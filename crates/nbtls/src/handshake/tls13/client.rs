//! TLS 1.3 client (RFC 8446 §2, §4). One struct per expected message.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};

use super::{
    certificate_message, certificate_verify_message, check_finished, finished_message,
    received_chain, signed_content, Core, Message, Side, TrafficSecrets,
};
use crate::codec::{
    put_handshake, AlertDescription, CertificateRequest13, CertificateVerify, CipherSuite,
    ClientExtension, ClientHello, Codec, EncryptedExtensions, ExtensionType, HandshakeType,
    KeyShareEntry, NamedGroup, NewSessionTicket13, ProtocolVersion, PskKeyExchangeMode,
    ServerExtension, ServerHello, SignatureScheme,
};
use crate::codec::{OfferedPsks, PskIdentity};
use crate::config::ClientConfig;
use crate::crypto::key_schedule::{self, EarlySecret, HandshakeSecret};
use crate::crypto::kx::KeyShare;
use crate::crypto::HashAlg;
use crate::crypto::{fill_random, tls13_suite, Secret, Tls13Suite};
use crate::error::{Error, Result};
use crate::handshake::resumption::ClientSession;
use crate::handshake::transcript::Transcript;

/// The client's states, named by the message each waits for.
pub enum ClientState {
    /// The server chose TLS 1.2.
    Tls12(Box<crate::handshake::tls12::client::Client12>),
    WaitServerHello(Box<WaitServerHello>),
    WaitEncryptedExtensions(Box<WaitEncryptedExtensions>),
    WaitCertificate(Box<WaitCertificate>),
    WaitCertificateVerify(Box<WaitCertificateVerify>),
    WaitFinished(Box<WaitFinished>),
    Connected,
}

impl ClientState {
    /// Builds and queues the ClientHello.
    pub fn start(
        core: &mut Core,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<ClientState> {
        let mut random = [0u8; 32];
        fill_random(&mut random)?;
        core.client_random = random;
        let mut session_id = Vec::new();
        // Compatibility mode is a TLS 1.3 device (RFC 8446 §D.4); a 1.2-only
        // client sends an id only to resume by it.
        if config.middlebox_compat && !core.is_dtls() && offers(&config, ProtocolVersion::TLS1_3) {
            session_id = vec![0; 32];
            fill_random(&mut session_id)?;
        }
        let mut shares = Vec::new();
        if offers(&config, ProtocolVersion::TLS1_3) && !core.is_dtls() {
            for g in config.initial_share_groups() {
                shares.push(KeyShare::generate(g)?);
            }
        }
        if let ServerName::DnsName(name) = &server_name {
            core.info.server_name = Some(name.as_ref().to_string());
        }
        let resume = take_session(core, &config, &server_name);
        if let Some((r, _)) = resume.as_ref().filter(|(r, _)| is_tls12(r.version)) {
            // RFC 5077 §3.4: a ticket goes with a fresh session id, so the
            // server's echo shows that it resumed; else resume by id.
            session_id = r.session_id.clone();
            if session_id.is_empty() {
                session_id = vec![0; 32];
                fill_random(&mut session_id)?;
            }
        }
        let mut st = WaitServerHello {
            config,
            server_name,
            random,
            session_id,
            shares,
            transcript: Transcript::default(),
            hrr_suite: None,
            hrr_replaced_shares: false,
            cookie: None,
            early: false,
            grease: grease_values()?,
            resume,
        };
        st.early = st.may_send_early_data();
        st.send_hello(core)?;
        Ok(ClientState::WaitServerHello(Box::new(st)))
    }

    pub fn handle(self, core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
        match self {
            ClientState::WaitServerHello(s) => s.handle(core, msg),
            ClientState::WaitEncryptedExtensions(s) => s.handle(core, msg),
            ClientState::WaitCertificate(s) => s.handle(core, msg),
            ClientState::WaitCertificateVerify(s) => s.handle(core, msg),
            ClientState::WaitFinished(s) => s.handle(core, msg),
            ClientState::Connected => handle_post_handshake(core, msg),
            ClientState::Tls12(s) => Ok(ClientState::Tls12(Box::new(s.handle(core, msg)?))),
        }
    }

    pub fn is_connected(&self) -> bool {
        match self {
            ClientState::Connected => true,
            ClientState::Tls12(s) => s.is_connected(),
            _ => false,
        }
    }
}

pub struct WaitServerHello {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    random: [u8; 32],
    session_id: Vec<u8>,
    shares: Vec<KeyShare>,
    transcript: Transcript,
    /// Set after a HelloRetryRequest: the suite it chose.
    hrr_suite: Option<CipherSuite>,
    /// That HelloRetryRequest named a group: our shares became its one.
    hrr_replaced_shares: bool,
    cookie: Option<Vec<u8>>,
    /// The session offered for resumption, and its ticket age in ms.
    resume: Option<(ClientSession, u32)>,
    /// 0-RTT data is offered with it.
    early: bool,
    /// RFC 8701 GREASE values: suite, extension, group and version.
    grease: [u16; 4],
}

/// Four distinct GREASE code points (RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA).
fn grease_values() -> Result<[u16; 4]> {
    let mut r = [0u8; 4];
    fill_random(&mut r)?;
    let mut out = [0u16; 4];
    for (i, b) in r.iter().enumerate() {
        // Distinct by construction: each index takes its own quarter of the 16.
        let v = u16::from(b % 4) + 4 * i as u16;
        out[i] = 0x0a0a + 0x1010 * v;
    }
    Ok(out)
}

/// A stored TLS 1.3 session for this server whose hash one of our suites
/// shares, if any (taken: a ticket is used once, RFC 8446 §C.4).
fn take_session(
    core: &Core,
    config: &ClientConfig,
    server_name: &ServerName<'static>,
) -> Option<(ClientSession, u32)> {
    let store = config.session_store.as_ref()?;
    let now = config.common.time.unix_time().as_secs();
    let name = server_name.to_str();
    // DTLS sessions resume over DTLS only, TLS ones over TLS only: those
    // for the other transport (a few, newest first) go back to the store.
    let mut other = Vec::new();
    let found = loop {
        match store.take(&name) {
            Some(s) if (s.version == ProtocolVersion::DTLS1_2) != core.is_dtls() => {
                other.push(s);
                if other.len() >= 4 {
                    break None;
                }
            }
            found => break found,
        }
    };
    for s in other.into_iter().rev() {
        store.put(&name, s);
    }
    let s = found?;
    let usable = s.fresh(now)
        && (s.version == ProtocolVersion::DTLS1_2 || offers(config, s.version))
        && match s.version {
            ProtocolVersion::TLS1_3 => {
                let hash = tls13_suite(s.suite)?.hash;
                config.common.suites.iter().any(|x| x.hash == hash)
            }
            _ => config.common.suites12.iter().any(|x| x.suite == s.suite),
        };
    let age_ms = (now.saturating_sub(s.received)).saturating_mul(1000);
    usable.then_some((s, u32::try_from(age_ms).unwrap_or(u32::MAX)))
}

impl WaitServerHello {
    /// RFC 8446 §4.2.10: early data only with a ticket that allows it, its
    /// suite still offered, and an ALPN it could keep.
    fn may_send_early_data(&self) -> bool {
        let Some((s, _)) = &self.resume else {
            return false;
        };
        self.config.early_data
            && s.version == ProtocolVersion::TLS1_3
            && s.max_early_data > 0
            && self.config.common.suites.iter().any(|x| x.suite == s.suite)
            && s.alpn
                .as_ref()
                .is_none_or(|p| self.config.common.alpn.contains(p))
    }

    fn hello(&self) -> ClientHello {
        let c = &self.config.common;
        let [g_suite, g_ext, g_group, g_version] = self.grease;
        // GREASE keeps peers tolerant of values they do not know (RFC 8701).
        let mut ext = vec![ClientExtension::Unknown(ExtensionType(g_ext), Vec::new())];
        if let ServerName::DnsName(name) = &self.server_name {
            // RFC 6066 §3: no SNI for IP literals; a trailing dot is not sent.
            ext.push(ClientExtension::ServerName(
                name.as_ref().trim_end_matches('.').to_string(),
            ));
        }
        let (v13, v12) = (
            offers(&self.config, ProtocolVersion::TLS1_3),
            offers(&self.config, ProtocolVersion::TLS1_2),
        );
        let versions = c
            .versions
            .iter()
            .copied()
            .filter(|v| *v == ProtocolVersion::TLS1_3 || *v == ProtocolVersion::TLS1_2);
        ext.push(ClientExtension::SupportedVersions(
            std::iter::once(ProtocolVersion(g_version))
                .chain(versions)
                .collect(),
        ));
        let groups = c
            .groups
            .iter()
            .copied()
            .filter(|g| v13 || !g.is_tls13_only());
        ext.push(ClientExtension::SupportedGroups(
            std::iter::once(NamedGroup(g_group)).chain(groups).collect(),
        ));
        let mut schemes = self.config.verifier.supported_schemes().to_vec();
        if v12 {
            // PKCS#1 only for TLS 1.2, after the PSS and ECDSA schemes.
            for s in [
                SignatureScheme::RSA_PKCS1_SHA256,
                SignatureScheme::RSA_PKCS1_SHA384,
                SignatureScheme::RSA_PKCS1_SHA512,
            ] {
                if !schemes.contains(&s) {
                    schemes.push(s);
                }
            }
            ext.push(ClientExtension::EcPointFormats(vec![0]));
            ext.push(ClientExtension::ExtendedMasterSecret);
        }
        ext.push(ClientExtension::SignatureAlgorithms(schemes));
        if v13 {
            let grease = KeyShareEntry {
                group: NamedGroup(g_group),
                payload: vec![0],
            };
            let shares = self.shares.iter().map(|s| KeyShareEntry {
                group: s.group(),
                payload: s.public().to_vec(),
            });
            // After a HelloRetryRequest that named a group, only that share
            // (§4.1.2); one that did not (a cookie alone) keeps the list as is.
            let grease = (!self.hrr_replaced_shares).then_some(grease);
            ext.push(ClientExtension::KeyShare(
                grease.into_iter().chain(shares).collect(),
            ));
        }
        if !c.alpn.is_empty() {
            ext.push(ClientExtension::Alpn(c.alpn.clone()));
        }
        if let Some(limit) = c.record_size_limit {
            ext.push(ClientExtension::RecordSizeLimit(limit));
        }
        if let Some(cookie) = &self.cookie {
            ext.push(ClientExtension::Cookie(cookie.clone()));
        }
        if v13 {
            ext.push(ClientExtension::PskKeyExchangeModes(vec![
                PskKeyExchangeMode::PSK_DHE_KE,
            ]));
        }
        // pre_shared_key goes last (RFC 8446 §4.2.11); the binder is filled
        // in by `send_hello` once the rest is encoded.
        if v12 {
            // RFC 5077: an empty extension asks for a ticket.
            let ticket = match &self.resume {
                Some((s, _)) if s.version == ProtocolVersion::TLS1_2 => s.ticket.clone(),
                _ => Vec::new(),
            };
            ext.push(ClientExtension::SessionTicket(ticket));
        }
        let resume13 = self
            .resume
            .as_ref()
            .filter(|(s, _)| s.version == ProtocolVersion::TLS1_3);
        if self.early {
            ext.push(ClientExtension::EarlyData);
        }
        if let (true, Some((s, age))) = (v13, resume13) {
            let hash_len = tls13_suite(s.suite).map_or(32, |t| t.hash.output_len());
            ext.push(ClientExtension::PreSharedKey(OfferedPsks {
                identities: vec![PskIdentity {
                    identity: s.ticket.clone(),
                    obfuscated_ticket_age: age.wrapping_add(s.age_add),
                }],
                binders: vec![vec![0; hash_len]],
            }));
        }
        let mut suites = vec![CipherSuite(g_suite)];
        if v13 {
            suites.extend(c.suites.iter().map(|s| s.suite));
        }
        if v12 {
            suites.extend(c.suites12.iter().map(|s| s.suite));
            suites.push(CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV);
        }
        ClientHello {
            legacy_version: ProtocolVersion::TLS1_2,
            random: self.random,
            session_id: self.session_id.clone(),
            cookie: None,
            cipher_suites: suites,
            compression_methods: vec![0],
            extensions: ext,
        }
    }

    fn send_hello(&mut self, core: &mut Core) -> Result<()> {
        let mut msg = Vec::new();
        let mut hello = match &core.dtls {
            Some(d) => self.dtls_hello(d.cookie.clone().unwrap_or_default()),
            None => self.hello(),
        };
        put_handshake(&mut msg, HandshakeType::CLIENT_HELLO, |o| hello.encode(o));
        let resume13 = self
            .resume
            .as_ref()
            .filter(|(s, _)| s.version == ProtocolVersion::TLS1_3);
        if let (Some(trunc), Some((s, _))) = (hello.binders_offset(), resume13) {
            // RFC 8446 §4.2.11.2: the binder is a Finished over the
            // transcript up to the truncated ClientHello.
            let alg = tls13_suite(s.suite).map_or(HashAlg::Sha256, |t| t.hash);
            let mut t = self.transcript.clone();
            t.start_hash(alg);
            t.add(msg.get(..trunc).unwrap_or(&msg));
            let early = EarlySecret::new(alg, Some(s.secret.as_bytes()));
            let binder = key_schedule::finished_verify_data(
                alg,
                &early.binder_key(true),
                t.current().as_bytes(),
            );
            hello.set_binders(vec![binder.as_bytes().to_vec()]);
            msg.clear();
            put_handshake(&mut msg, HandshakeType::CLIENT_HELLO, |o| hello.encode(o));
        }
        self.transcript.add(&core.transcript_form(&msg));
        core.send_handshake(&msg)?;
        if self.early {
            self.start_early_data(core)?;
        }
        Ok(())
    }

    /// After the ClientHello: 0-RTT records under the client early traffic
    /// secret of Hash(ClientHello) (RFC 8446 §7.1), until the server answers.
    fn start_early_data(&self, core: &mut Core) -> Result<()> {
        let Some((s, _)) = &self.resume else {
            return Ok(());
        };
        let Some(suite) = tls13_suite(s.suite) else {
            return Ok(());
        };
        let mut t = self.transcript.clone();
        t.start_hash(suite.hash);
        let early = EarlySecret::new(suite.hash, Some(s.secret.as_bytes()));
        let secret = early.client_early_traffic_secret(t.current().as_bytes());
        core.log_secret("CLIENT_EARLY_TRAFFIC_SECRET", &secret);
        // RFC 8446 §D.4: the compatibility CCS goes right after the hello.
        if self.config.middlebox_compat {
            core.send_ccs_once()?;
        }
        core.set_write_secret(suite, &secret)?;
        core.early_write = Some(s.max_early_data as usize);
        Ok(())
    }

    /// A DTLS 1.2 ClientHello (RFC 6347 §4.2.1): no TLS 1.3 extensions, and
    /// the cookie of the last HelloVerifyRequest.
    fn dtls_hello(&self, cookie: Vec<u8>) -> ClientHello {
        let c = &self.config.common;
        let mut ext = Vec::new();
        if let ServerName::DnsName(name) = &self.server_name {
            ext.push(ClientExtension::ServerName(
                name.as_ref().trim_end_matches('.').to_string(),
            ));
        }
        ext.push(ClientExtension::SupportedGroups(
            c.groups
                .iter()
                .copied()
                .filter(|g| !g.is_tls13_only())
                .collect(),
        ));
        let mut schemes = self.config.verifier.supported_schemes().to_vec();
        schemes.extend([
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ]);
        ext.push(ClientExtension::SignatureAlgorithms(schemes));
        ext.push(ClientExtension::EcPointFormats(vec![0]));
        ext.push(ClientExtension::ExtendedMasterSecret);
        if !c.alpn.is_empty() {
            ext.push(ClientExtension::Alpn(c.alpn.clone()));
        }
        // RFC 5077: an empty extension asks for a ticket.
        let ticket = match &self.resume {
            Some((s, _)) if s.version == ProtocolVersion::DTLS1_2 => s.ticket.clone(),
            _ => Vec::new(),
        };
        ext.push(ClientExtension::SessionTicket(ticket));
        if !self.config.srtp_profiles.is_empty() {
            // RFC 5764 §4.1.1; we use no MKI.
            ext.push(ClientExtension::UseSrtp(crate::codec::UseSrtp {
                profiles: self.config.srtp_profiles.clone(),
                mki: Vec::new(),
            }));
        }
        let mut suites: Vec<CipherSuite> = c.suites12.iter().map(|s| s.suite).collect();
        suites.push(CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV);
        ClientHello {
            legacy_version: ProtocolVersion::DTLS1_2,
            random: self.random,
            session_id: self.session_id.clone(),
            cookie: Some(cookie),
            cipher_suites: suites,
            compression_methods: vec![0],
            extensions: ext,
        }
    }

    /// RFC 6347 §4.2.1: answer a HelloVerifyRequest with the same hello and
    /// its cookie; neither it nor the first hello enter the transcript.
    fn handle_hello_verify(
        mut self: Box<Self>,
        core: &mut Core,
        msg: &Message<'_>,
    ) -> Result<ClientState> {
        let hvr = crate::codec::HelloVerifyRequest::from_bytes(msg.body)?;
        let Some(d) = &mut core.dtls else {
            return Err(Error::unexpected("HelloVerifyRequest over TLS"));
        };
        d.verify_requests += 1;
        if d.verify_requests > 2 || hvr.cookie.is_empty() {
            return Err(Error::unexpected("unexpected HelloVerifyRequest"));
        }
        d.cookie = Some(hvr.cookie);
        self.transcript = Transcript::default();
        self.send_hello(core)?;
        Ok(ClientState::WaitServerHello(self))
    }

    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
        if msg.typ == HandshakeType::HELLO_VERIFY_REQUEST && core.is_dtls() {
            return self.handle_hello_verify(core, msg);
        }
        let sh: ServerHello = msg.decode(HandshakeType::SERVER_HELLO)?;
        match sh.supported_version() {
            Some(ProtocolVersion::TLS1_3) if offers(&self.config, ProtocolVersion::TLS1_3) => {}
            Some(_) => return Err(Error::illegal("server selected a version we did not offer")),
            // A TLS 1.2 answer carries no supported_versions (RFC 8446 §4.2.1).
            None if offers(&self.config, ProtocolVersion::TLS1_2)
                && self.hrr_suite.is_none()
                && !sh.is_hrr() =>
            {
                if self.early {
                    // RFC 8446 Appendix D.3: 0-RTT data was sent, so a
                    // downgrade to TLS 1.2 must fail the connection.
                    return Err(Error::protocol(
                        AlertDescription::PROTOCOL_VERSION,
                        "server chose TLS 1.2 after we sent 0-RTT data",
                    ));
                }
                let offered = self
                    .resume
                    .take()
                    .map(|(s, _)| s)
                    .filter(|s| is_tls12(s.version));
                let resumed = !sh.session_id.is_empty() && sh.session_id == self.session_id;
                let offered = match (resumed, offered) {
                    (true, None) => {
                        return Err(Error::illegal("server resumed a session we did not offer"))
                    }
                    (true, s) => s,
                    (false, _) => None,
                };
                let hello = self.transcript.into_buffer();
                let st = crate::handshake::tls12::client::start(
                    core,
                    self.config,
                    self.server_name,
                    hello,
                    &sh,
                    msg.raw,
                    offered,
                )?;
                return Ok(ClientState::Tls12(Box::new(st)));
            }
            None => {
                return Err(Error::protocol(
                    AlertDescription::PROTOCOL_VERSION,
                    "server does not support TLS 1.3",
                ))
            }
        }
        if sh.legacy_version != ProtocolVersion::TLS1_2 {
            return Err(Error::illegal("ServerHello legacy_version is not TLS 1.2"));
        }
        if sh.session_id != self.session_id {
            return Err(Error::illegal("ServerHello did not echo our session id"));
        }
        if sh.compression_method != 0 {
            return Err(Error::illegal("ServerHello selected compression"));
        }
        let suite = self
            .config
            .common
            .suites
            .iter()
            .find(|s| s.suite == sh.cipher_suite)
            .copied()
            .ok_or_else(|| Error::illegal("server selected a cipher suite we did not offer"))?;
        if sh.is_hrr() {
            return self.handle_hrr(core, msg, &sh, suite);
        }
        if self.hrr_suite.is_some_and(|s| s != sh.cipher_suite) {
            return Err(Error::illegal(
                "ServerHello suite differs from HelloRetryRequest",
            ));
        }
        let sent = self.sent_extensions();
        for e in &sh.extensions {
            match e {
                ServerExtension::SupportedVersion(_) | ServerExtension::KeyShare(_) => {}
                ServerExtension::PreSharedKey(0)
                    if self
                        .resume
                        .as_ref()
                        .is_some_and(|(s, _)| s.version == ProtocolVersion::TLS1_3) => {}
                other => return Err(misplaced(&sent, other.ext_type(), "ServerHello")),
            }
        }
        let Some(share) = sh.key_share() else {
            return Err(Error::protocol(
                AlertDescription::MISSING_EXTENSION,
                "ServerHello has no key_share",
            ));
        };
        let Some(pos) = self.shares.iter().position(|s| s.group() == share.group) else {
            return Err(Error::illegal(
                "server key share is for a group we did not send",
            ));
        };
        let ours = self.shares.swap_remove(pos);
        let shared = ours.complete(&share.payload)?;
        self.shares.clear();

        core.info.version = Some(ProtocolVersion::TLS1_3);
        core.info.suite = Some(suite.suite);
        core.info.group = Some(share.group);
        self.transcript.start_hash(suite.hash);
        self.transcript.add(msg.raw);
        let mut ticket_params = None;
        let psk = match (sh.selected_psk(), self.resume.take()) {
            (Some(_), Some((s, _))) => {
                if tls13_suite(s.suite).map(|t| t.hash) != Some(suite.hash) {
                    return Err(Error::illegal("resumed with a suite of another hash"));
                }
                core.info.resumed = true;
                ticket_params = Some((s.suite, s.alpn.clone()));
                Some(s.secret)
            }
            _ => None,
        };
        let hs = EarlySecret::new(suite.hash, psk.as_ref().map(|s| s.as_bytes()))
            .into_handshake(shared.as_bytes());
        let hello_hash = self.transcript.current();
        let (client_hs, server_hs) = hs.traffic_secrets(hello_hash.as_bytes());
        core.log_secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &client_hs);
        core.log_secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", &server_hs);
        core.set_read_secret(suite, &server_hs);
        if self.config.middlebox_compat {
            core.send_ccs_once()?;
        }
        core.early_write = None;
        // With 0-RTT offered and the PSK accepted, EncryptedExtensions says
        // whether the early key stays for an EndOfEarlyData.
        let early = self.early && psk.is_some();
        if !early {
            core.set_write_secret(suite, &client_hs)?;
        }
        core.ccs_allowed = true;
        Ok(ClientState::WaitEncryptedExtensions(Box::new(
            WaitEncryptedExtensions {
                keys: Keys {
                    config: self.config,
                    server_name: self.server_name,
                    resumed: psk.is_some(),
                    early,
                    early_params: ticket_params.filter(|_| early),
                    suite,
                    transcript: self.transcript,
                    hs,
                    client_hs,
                    server_hs,
                    sent,
                },
            },
        )))
    }

    /// Extension types our (last) ClientHello carried.
    fn sent_extensions(&self) -> Vec<ExtensionType> {
        self.hello()
            .extensions
            .iter()
            .map(|e| e.ext_type())
            .collect()
    }

    /// RFC 8446 §4.1.4.
    fn handle_hrr(
        mut self: Box<Self>,
        core: &mut Core,
        msg: &Message<'_>,
        sh: &ServerHello,
        suite: &'static Tls13Suite,
    ) -> Result<ClientState> {
        if self.hrr_suite.is_some() {
            return Err(Error::unexpected("second HelloRetryRequest"));
        }
        let sent = self.sent_extensions();
        for e in &sh.extensions {
            match e {
                ServerExtension::SupportedVersion(_)
                | ServerExtension::HrrKeyShare(_)
                | ServerExtension::Cookie(_) => {}
                other => return Err(misplaced(&sent, other.ext_type(), "HelloRetryRequest")),
            }
        }
        let group = sh.hrr_group();
        let cookie = sh.cookie().map(|c| c.to_vec());
        if group.is_none() && cookie.is_none() {
            return Err(Error::illegal(
                "HelloRetryRequest would not change the ClientHello",
            ));
        }
        if let Some(g) = group {
            if !self.config.common.groups.contains(&g) {
                return Err(Error::illegal(
                    "HelloRetryRequest selected a group we did not offer",
                ));
            }
            if self.shares.iter().any(|s| s.group() == g) {
                return Err(Error::illegal("HelloRetryRequest selected a group we sent"));
            }
            self.shares = vec![KeyShare::generate(g)?];
            self.hrr_replaced_shares = true;
        }
        if cookie.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(Error::decode("empty cookie"));
        }
        self.cookie = cookie;
        self.hrr_suite = Some(suite.suite);
        if self
            .resume
            .as_ref()
            .is_some_and(|(s, _)| tls13_suite(s.suite).map(|t| t.hash) != Some(suite.hash))
        {
            self.resume = None;
        }
        core.info.hello_retry = true;
        self.transcript.replace_with_message_hash(suite.hash);
        self.transcript.add(msg.raw);
        if self.config.middlebox_compat {
            core.send_ccs_once()?;
        }
        if self.early {
            // RFC 8446 §4.1.2: no early data after a HelloRetryRequest.
            self.early = false;
            core.early_write = None;
            core.record.clear_write();
        }
        // Only this suite is acceptable now; keep offering ours unchanged
        // (RFC 8446 §4.1.2 allows removing others, not required).
        self.send_hello(core)?;
        // The server may send a CCS right after its HRR.
        core.ccs_allowed = true;
        Ok(ClientState::WaitServerHello(self))
    }
}

/// Secrets and context shared by every state after ServerHello.
struct Keys {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// The server accepted our PSK: it does not authenticate again.
    resumed: bool,
    /// 0-RTT data was sent and may be accepted (decided by
    /// EncryptedExtensions; then EndOfEarlyData ends it).
    early: bool,
    /// The ticket's suite and ALPN, which the early data was sent under.
    early_params: Option<(CipherSuite, Option<Vec<u8>>)>,
    suite: &'static Tls13Suite,
    transcript: Transcript,
    hs: HandshakeSecret,
    client_hs: Secret,
    server_hs: Secret,
    /// Extension types our ClientHello carried: the only ones a server may answer.
    sent: Vec<ExtensionType>,
}

/// RFC 8446 §4.2: an extension we never sent is unsupported_extension; one we
/// sent that has no place in `msg` is illegal_parameter.
fn misplaced(sent: &[ExtensionType], t: ExtensionType, msg: &str) -> Error {
    let alert = if sent.contains(&t) {
        AlertDescription::ILLEGAL_PARAMETER
    } else {
        AlertDescription::UNSUPPORTED_EXTENSION
    };
    Error::protocol(alert, format!("{msg} carries {t:?}"))
}

pub struct WaitEncryptedExtensions {
    keys: Keys,
}

impl WaitEncryptedExtensions {
    fn handle(self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
        let ee: EncryptedExtensions = msg.decode(HandshakeType::ENCRYPTED_EXTENSIONS)?;
        let mut keys = self.keys;
        let offered_alpn = &keys.config.common.alpn;
        for e in &ee.extensions {
            if !keys.sent.contains(&e.ext_type()) {
                return Err(misplaced(&keys.sent, e.ext_type(), "EncryptedExtensions"));
            }
            match e {
                // Sent only for DNS names, so IP literals were caught above.
                ServerExtension::ServerNameAck => {}
                ServerExtension::Alpn(p) => {
                    if !offered_alpn.contains(p) {
                        return Err(Error::illegal(
                            "server chose an ALPN protocol we did not offer",
                        ));
                    }
                    core.info.alpn = Some(p.clone());
                }
                ServerExtension::RecordSizeLimit(limit) => {
                    if *limit < 64 {
                        return Err(Error::illegal("record_size_limit below 64"));
                    }
                    // Clamped, never rejected (RFC 8449 §4); it counts the inner type byte.
                    let l = (*limit).min(16385);
                    core.info.peer_record_size_limit = Some(l);
                    core.record.send_fragment = usize::from(l) - 1;
                }
                ServerExtension::SupportedGroups(_) => {}
                ServerExtension::EarlyData if keys.early => core.info.early_data_accepted = true,
                // Sent by us, but not an answer EncryptedExtensions may carry.
                other => {
                    return Err(Error::protocol(
                        AlertDescription::ILLEGAL_PARAMETER,
                        format!("EncryptedExtensions may not carry {:?}", other.ext_type()),
                    ))
                }
            }
        }
        // RFC 8446 §4.2.10: 0-RTT is accepted only under the ticket's suite
        // and ALPN; the server checks, and so do we (the data already went
        // out under them).
        if let (true, Some((suite, alpn))) = (core.info.early_data_accepted, &keys.early_params) {
            if *suite != keys.suite.suite {
                return Err(Error::illegal("0-RTT accepted under another cipher suite"));
            }
            if *alpn != core.info.alpn {
                return Err(Error::illegal("0-RTT accepted under another ALPN protocol"));
            }
        }
        if keys.early && !core.info.early_data_accepted {
            // Rejected: the early data is lost; the handshake key takes over.
            keys.early = false;
            core.set_write_secret(keys.suite, &keys.client_hs)?;
        }
        if let Some(limit) = keys.config.common.record_size_limit {
            if core.info.peer_record_size_limit.is_some() {
                core.record.recv_fragment = usize::from(limit) - 1;
            }
        }
        keys.transcript.add(msg.raw);
        if keys.resumed {
            return Ok(ClientState::WaitFinished(Box::new(WaitFinished {
                keys,
                cert_request: None,
            })));
        }
        Ok(ClientState::WaitCertificate(Box::new(WaitCertificate {
            keys,
            cert_request: None,
        })))
    }
}

pub struct WaitCertificate {
    keys: Keys,
    /// The server's CertificateRequest context, if it asked for a certificate.
    cert_request: Option<CertRequest>,
}

struct CertRequest {
    context: Vec<u8>,
    schemes: Vec<crate::codec::SignatureScheme>,
}

impl WaitCertificate {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
        if msg.typ == HandshakeType::CERTIFICATE_REQUEST && self.cert_request.is_none() {
            let cr = CertificateRequest13::from_bytes(msg.body)?;
            if !cr.context.is_empty() {
                return Err(Error::illegal(
                    "CertificateRequest context must be empty in the handshake",
                ));
            }
            let Some(schemes) = cr.signature_algorithms() else {
                return Err(Error::protocol(
                    AlertDescription::MISSING_EXTENSION,
                    "CertificateRequest without signature_algorithms",
                ));
            };
            self.cert_request = Some(CertRequest {
                context: cr.context.clone(),
                schemes: schemes.to_vec(),
            });
            self.keys.transcript.add(msg.raw);
            return Ok(ClientState::WaitCertificate(self));
        }
        let cert = msg.decode::<crate::codec::Certificate13>(HandshakeType::CERTIFICATE)?;
        if !cert.context.is_empty() {
            return Err(Error::illegal("server Certificate has a request context"));
        }
        let chain = received_chain(cert, &core.limits)?;
        let Some((leaf, rest)) = chain.split_first() else {
            return Err(Error::decode("server sent no certificate"));
        };
        let now = self.keys.config.common.time.unix_time();
        self.keys
            .config
            .verifier
            .verify_server_cert(leaf, rest, &self.keys.server_name, now)?;
        self.keys.transcript.add(msg.raw);
        Ok(ClientState::WaitCertificateVerify(Box::new(
            WaitCertificateVerify {
                keys: self.keys,
                cert_request: self.cert_request,
                chain,
            },
        )))
    }
}

pub struct WaitCertificateVerify {
    keys: Keys,
    cert_request: Option<CertRequest>,
    chain: Vec<CertificateDer<'static>>,
}

impl WaitCertificateVerify {
    fn handle(mut self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
        let cv: CertificateVerify = msg.decode(HandshakeType::CERTIFICATE_VERIFY)?;
        if !self
            .keys
            .config
            .verifier
            .supported_schemes()
            .contains(&cv.scheme)
        {
            return Err(Error::illegal(
                "CertificateVerify uses a scheme we did not offer",
            ));
        }
        let hash = self.keys.transcript.current();
        let content = signed_content(Side::Server, hash.as_bytes());
        self.keys.config.verifier.verify_tls13_signature(
            cv.scheme,
            &self.chain[0],
            &content,
            &cv.signature,
        )?;
        core.info.peer_signature_scheme = Some(cv.scheme);
        if self.keys.config.common.keep_peer_certificates {
            core.info.peer_certificates = self.chain;
        }
        self.keys.transcript.add(msg.raw);
        Ok(ClientState::WaitFinished(Box::new(WaitFinished {
            keys: self.keys,
            cert_request: self.cert_request,
        })))
    }
}

pub struct WaitFinished {
    keys: Keys,
    cert_request: Option<CertRequest>,
}

impl WaitFinished {
    fn handle(self: Box<Self>, core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
        msg.expect(HandshakeType::FINISHED)?;
        let Keys {
            config,
            server_name,
            early,
            suite,
            mut transcript,
            hs,
            client_hs,
            server_hs,
            ..
        } = self.keys;
        let alg = suite.hash;
        check_finished(alg, &server_hs, transcript.current().as_bytes(), msg.body)?;
        transcript.add(msg.raw);
        core.ccs_allowed = false;

        let master = hs.into_master();
        let server_finished_hash = transcript.current();
        let (client_ap, server_ap) = master.traffic_secrets(server_finished_hash.as_bytes());
        let exporter = master.exporter_master_secret(server_finished_hash.as_bytes());
        core.log_secret("CLIENT_TRAFFIC_SECRET_0", &client_ap);
        core.log_secret("SERVER_TRAFFIC_SECRET_0", &server_ap);
        core.log_secret("EXPORTER_SECRET", &exporter);
        core.set_read_secret(suite, &server_ap);

        if early {
            // RFC 8446 §4.5: end the accepted early data under its key.
            let mut eoed = Vec::new();
            put_handshake(&mut eoed, HandshakeType::END_OF_EARLY_DATA, |_| {});
            transcript.add(&eoed);
            core.send_handshake(&eoed)?;
            core.set_write_secret(suite, &client_hs)?;
        }
        if let Some(req) = self.cert_request {
            send_client_auth(core, &config, &req, &mut transcript)?;
        }
        let fin = finished_message(alg, &client_hs, transcript.current().as_bytes());
        transcript.add(&fin);
        core.send_handshake(&fin)?;
        core.set_write_secret(suite, &client_ap)?;
        let resumption = master.resumption_master_secret(transcript.current().as_bytes());
        if let Some(store) = &config.session_store {
            core.session_sink = Some(super::SessionSink {
                store: store.clone(),
                server_name: server_name.to_str().into_owned(),
                time: config.common.time.clone(),
            });
        }
        core.traffic = Some(TrafficSecrets {
            suite,
            client: client_ap,
            server: server_ap,
            exporter,
            resumption,
        });
        Ok(ClientState::Connected)
    }
}

/// Our Certificate and CertificateVerify, or an empty Certificate.
fn send_client_auth(
    core: &mut Core,
    config: &ClientConfig,
    req: &CertRequest,
    transcript: &mut Transcript,
) -> Result<()> {
    let chosen = config
        .client_cert
        .as_ref()
        .and_then(|ck| ck.key.choose_scheme(&req.schemes, true).map(|s| (ck, s)));
    let Some((ck, scheme)) = chosen else {
        let msg = certificate_message(&req.context, &[]);
        transcript.add(&msg);
        return core.send_handshake(&msg);
    };
    let msg = certificate_message(&req.context, &ck.chain);
    transcript.add(&msg);
    core.send_handshake(&msg)?;
    let content = signed_content(Side::Client, transcript.current().as_bytes());
    let sig = ck.key.sign(scheme, &content)?;
    let cv = certificate_verify_message(scheme, &sig);
    transcript.add(&cv);
    core.send_handshake(&cv)?;
    core.info.signature_scheme = Some(scheme);
    core.info.client_authenticated = true;
    Ok(())
}

/// Messages after the handshake: NewSessionTicket and KeyUpdate are
/// handled by the engine; anything else is unexpected.
fn handle_post_handshake(core: &mut Core, msg: &Message<'_>) -> Result<ClientState> {
    match msg.typ {
        HandshakeType::NEW_SESSION_TICKET => {
            let nst = NewSessionTicket13::from_bytes(msg.body)?;
            store_ticket(core, nst)?;
            Ok(ClientState::Connected)
        }
        _ => Err(Error::unexpected("unexpected post-handshake message")),
    }
}

fn store_ticket(core: &mut Core, nst: NewSessionTicket13) -> Result<()> {
    let Some(t) = &core.traffic else {
        return Err(Error::unexpected(
            "NewSessionTicket before the handshake completed",
        ));
    };
    // RFC 8446 §4.6.1: lifetime over seven days is a protocol error.
    if nst.lifetime > 604_800 {
        return Err(Error::illegal("ticket lifetime over 7 days"));
    }
    core.tickets_received += 1;
    // Tickets past the per-connection limit, or with lifetime 0, are dropped.
    if core.tickets_received > core.limits.max_tickets || nst.lifetime == 0 {
        return Ok(());
    }
    let Some(sink) = &core.session_sink else {
        return Ok(());
    };
    let psk = key_schedule::resumption_psk(t.suite.hash, &t.resumption, &nst.nonce);
    let max_early_data = nst.max_early_data().unwrap_or(0);
    sink.store.put(
        &sink.server_name,
        ClientSession {
            version: ProtocolVersion::TLS1_3,
            suite: t.suite.suite,
            ticket: nst.ticket,
            secret: psk,
            received: sink.time.unix_time().as_secs(),
            lifetime: nst.lifetime,
            age_add: nst.age_add,
            max_early_data,
            alpn: core.info.alpn.clone(),
            ems: false,
            session_id: Vec::new(),
        },
    );
    Ok(())
}

/// A TLS 1.2 or DTLS 1.2 session (resumed by the 1.2 machines).
fn is_tls12(v: ProtocolVersion) -> bool {
    v == ProtocolVersion::TLS1_2 || v == ProtocolVersion::DTLS1_2
}

fn offers(config: &ClientConfig, v: ProtocolVersion) -> bool {
    config.common.versions.contains(&v)
}
