//! The engine over datagrams (DTLS 1.2, RFC 6347): whole datagrams in,
//! whole datagrams out, flights retransmitted on the timer the caller
//! drives through `dtls_timeout` / `dtls_on_timer`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;

use super::{Engine, Machine};
use crate::codec::{AlertDescription, AlertLevel, ContentType, HandshakeType};
use crate::config::{ClientConfig, ServerConfig};
use crate::error::{Error, Result};
use crate::handshake::dtls::flight::{pack, FlightItem, RetransmitTimer};
use crate::handshake::dtls::reassembly::Fragment;
use crate::handshake::dtls::{DtlsCore, FragmentHeader, DTLS_HS_HEADER_LEN};
use crate::handshake::tls13::client::ClientState;
use crate::handshake::tls13::server::ServerState;
use crate::handshake::tls13::{Core, Message, Side};
use crate::record::dtls::{DtlsHeader, DTLS_HEADER_LEN};

/// How long the flight that ended the handshake is kept for the peer's
/// retransmissions (RFC 6347 §4.2.4: twice the maximum segment lifetime).
const LAST_FLIGHT_KEEP: Duration = Duration::from_secs(240);

/// Default path MTU (DESIGN.md §3).
pub const DEFAULT_MTU: usize = 1200;

/// Smaller sizes a flight is cut to, one step per retransmission, once
/// [`BACKOFF_AFTER`] retransmissions went unanswered (RFC 6347 §4.1.1.1):
/// the common tunnel MTU, the IPv4 minimum datagram (576) less its IP and
/// UDP headers, and a floor that still fits every record header.
const BACKOFF_MTUS: [usize; 3] = [1200, 548, 256];
const BACKOFF_AFTER: u32 = 2;

pub(crate) struct DtlsIo {
    out: VecDeque<Vec<u8>>,
    /// Received application data, each with its record's epoch and
    /// sequence number (`epoch << 48 | seq`).
    app: VecDeque<(u64, Vec<u8>)>,
    /// Our last flight, for retransmission.
    flight: Vec<FlightItem>,
    /// `flight` ended the handshake: it is resent whenever the peer
    /// repeats its own last flight (§4.2.4).
    last_flight: bool,
    /// When the kept last flight is let go (`LAST_FLIGHT_KEEP` after it
    /// went out), if the peer's data has not shown it arrived before.
    keep_until: Option<Instant>,
    /// The peer's ChangeCipherSpec arrived and waits for the messages
    /// before it (records may be reordered).
    peer_ccs: bool,
    timer: RetransmitTimer,
    pub(crate) mtu: usize,
    /// Handshake flights are cut to this size (below `mtu`) after
    /// retransmissions went unanswered; it stays for the rest of the
    /// connection's flights, and `set_mtu` clears it. Application
    /// datagrams keep the caller's MTU (`data_mtu()` is the caller's to set).
    backoff_mtu: Option<usize>,
    /// Datagrams that were empty or held no valid record.
    pub(crate) dropped: u64,
}

impl DtlsIo {
    fn new() -> Self {
        DtlsIo {
            out: VecDeque::new(),
            app: VecDeque::new(),
            flight: Vec::new(),
            last_flight: false,
            keep_until: None,
            peer_ccs: false,
            timer: RetransmitTimer::new(Duration::from_secs(1), Duration::from_secs(60)),
            mtu: DEFAULT_MTU,
            backoff_mtu: None,
            dropped: 0,
        }
    }

    /// The size handshake flights are cut to: never over the caller's MTU.
    fn flight_mtu(&self) -> usize {
        self.backoff_mtu.map_or(self.mtu, |b| b.min(self.mtu))
    }

    /// One step down the back-off sizes, if one is below the current one.
    fn step_down(&mut self) {
        let cur = self.flight_mtu();
        if let Some(&next) = BACKOFF_MTUS.iter().find(|&&m| m < cur) {
            self.backoff_mtu = Some(next);
        }
    }
}

impl Engine {
    /// A DTLS 1.2 client with its ClientHello queued.
    pub fn client_dtls(
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<Self> {
        let common = config.common.clone();
        let mut core = Core::new(Side::Client, common.limits.clone(), common.key_log.clone());
        core.dtls = Some(Box::default());
        let st = ClientState::start(&mut core, config, server_name)?;
        let mut e = Self::new(core, Machine::Client(st), common);
        e.dtls_io = Some(Box::new(DtlsIo::new()));
        e.send_flight()?;
        Ok(e)
    }

    /// A DTLS 1.2 server; `client_id` (the peer's address) binds cookies.
    pub fn server_dtls(config: Arc<ServerConfig>, client_id: &[u8]) -> Self {
        let common = config.common.clone();
        let mut core = Core::new(Side::Server, common.limits.clone(), common.key_log.clone());
        core.dtls = Some(Box::new(DtlsCore {
            client_id: client_id.to_vec(),
            ..DtlsCore::default()
        }));
        let mut e = Self::new(core, Machine::Server(ServerState::start(config)), common);
        e.dtls_io = Some(Box::new(DtlsIo::new()));
        e
    }

    /// A DTLS 1.2 server for a ClientHello the stateless check accepted
    /// (`crate::listener::verify_hello`): no cookie round of its own; its
    /// sequence numbers continue from `prestate`, and `datagram` (the
    /// ClientHello) is processed at once.
    pub fn server_dtls_accepted(
        config: Arc<ServerConfig>,
        client_id: &[u8],
        prestate: &crate::listener::Prestate,
        datagram: &[u8],
    ) -> Result<Self> {
        let common = config.common.clone();
        let mut core = Core::new(Side::Server, common.limits.clone(), common.key_log.clone());
        let mut d = DtlsCore {
            client_id: client_id.to_vec(),
            send_seq: prestate.message_seq(),
            ..DtlsCore::default()
        };
        d.reasm.set_next_seq(prestate.message_seq());
        d.records.skip_write_seq(prestate.record_seq());
        core.dtls = Some(Box::new(d));
        let st = ServerState::start_cookie_verified(config);
        let mut e = Self::new(core, Machine::Server(st), common);
        e.dtls_io = Some(Box::new(DtlsIo::new()));
        e.feed_datagram(datagram)?;
        Ok(e)
    }

    pub fn is_datagram(&self) -> bool {
        self.dtls_io.is_some()
    }

    fn now(&self) -> Instant {
        self.common.time.now()
    }

    /// Sends what the handshake queued as a new flight.
    fn send_flight(&mut self) -> Result<()> {
        let handshaking = self.is_handshaking();
        let now = self.now();
        let (Some(d), Some(io)) = (self.core.dtls.as_mut(), self.dtls_io.as_mut()) else {
            return Ok(());
        };
        if d.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut d.pending);
        io.out
            .extend(pack(&items, &mut d.records, io.flight_mtu())?);
        let stateless = std::mem::take(&mut d.stateless);
        io.flight = items;
        io.last_flight = !handshaking;
        io.keep_until = (!handshaking).then(|| now + LAST_FLIGHT_KEEP);
        // A HelloVerifyRequest runs no timer, but a repeated ClientHello
        // (ours was lost) gets it again: the reassembler already passed
        // that message_seq, so the handshake would not answer it.
        if stateless {
            return Ok(());
        }
        // The flight that ends the handshake waits for no answer: it is
        // resent only when the peer repeats its own (§4.2.4).
        if handshaking {
            io.timer.start(now);
        } else {
            io.timer.stop();
        }
        Ok(())
    }

    fn resend_flight(&mut self) -> Result<()> {
        let (Some(d), Some(io)) = (self.core.dtls.as_mut(), self.dtls_io.as_mut()) else {
            return Ok(());
        };
        if !io.flight.is_empty() {
            io.out
                .extend(pack(&io.flight, &mut d.records, io.flight_mtu())?);
        }
        Ok(())
    }

    /// When the session must be called again for a retransmission.
    pub fn dtls_timeout(&self) -> Option<Instant> {
        self.dtls_io.as_ref().and_then(|io| io.timer.deadline())
    }

    /// Retransmits the flight if its timer is due; never waits.
    pub fn dtls_on_timer(&mut self) -> Result<()> {
        self.check()?;
        let now = self.now();
        if !self
            .dtls_io
            .as_ref()
            .is_some_and(|io| io.timer.expired(now))
        {
            return Ok(());
        }
        if let Some(io) = &mut self.dtls_io {
            // Repeated silence may be a path that drops large datagrams.
            if io.timer.retransmissions() >= BACKOFF_AFTER {
                io.step_down();
            }
        }
        self.resend_flight()?;
        if let Some(io) = &mut self.dtls_io {
            io.timer.back_off(now);
        }
        Ok(())
    }

    /// Processes one received datagram. Records that fail any check are
    /// dropped, never fatal (RFC 6347 §4.1.2.7).
    pub fn feed_datagram(&mut self, dgram: &[u8]) -> Result<()> {
        self.check()?;
        match self.feed_inner(dgram) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn feed_inner(&mut self, dgram: &[u8]) -> Result<()> {
        let now = self.now();
        if let Some(io) = &mut self.dtls_io {
            if io.keep_until.is_some_and(|t| now >= t) {
                io.flight.clear();
                io.keep_until = None;
            }
        }
        let mut rest = dgram;
        let mut repeated = false;
        let mut any = false;
        while let Some(hdr) = DtlsHeader::parse(rest) {
            let total = DTLS_HEADER_LEN + hdr.len;
            let Some(rec) = rest.get(DTLS_HEADER_LEN..total) else {
                break;
            };
            let mut body = rec.to_vec();
            rest = &rest[total..];
            let Some(d) = self.core.dtls.as_mut() else {
                break;
            };
            let Some((typ, range)) = d.records.open(&hdr, &mut body) else {
                // Forged records are dropped, but only so many per key
                // (RFC 9147 §4.5.3): past that the session ends.
                if d.records
                    .integrity_limit_reached(self.common.limits.max_aead_failures)
                {
                    return Err(Error::LimitExceeded {
                        alert: AlertDescription::BAD_RECORD_MAC,
                        limit: "AEAD integrity limit (records failing authentication)",
                    });
                }
                continue;
            };
            any = true;
            let plain = &body[range];
            match typ {
                ContentType::CHANGE_CIPHER_SPEC if plain == [1] && self.is_handshaking() => {
                    // It may have overtaken messages sent before it under
                    // the old epoch: switching now would make them (and
                    // their retransmissions) unreadable. It waits for them.
                    if let Some(io) = &mut self.dtls_io {
                        io.peer_ccs = true;
                    }
                    self.apply_peer_ccs()?;
                }
                ContentType::ALERT if plain.len() == 2 => {
                    let (level, desc) = (AlertLevel(plain[0]), AlertDescription(plain[1]));
                    if desc == AlertDescription::CLOSE_NOTIFY {
                        self.received_close = true;
                    } else if level == AlertLevel::FATAL {
                        return Err(Error::AlertReceived(desc));
                    }
                }
                ContentType::HANDSHAKE => repeated |= self.feed_fragments(plain)?,
                ContentType::APPLICATION_DATA if !self.is_handshaking() && !plain.is_empty() => {
                    if let Some(io) = &mut self.dtls_io {
                        // The peer has our last flight: no need to keep it.
                        io.flight.clear();
                        io.app.push_back((hdr.seq64(), plain.to_vec()));
                    }
                }
                _ => {}
            }
        }
        if !any {
            if let Some(io) = &mut self.dtls_io {
                io.dropped += 1;
            }
        }
        let done = !self.is_handshaking();
        if let Some(io) = &mut self.dtls_io {
            if done && !io.last_flight && !io.flight.is_empty() {
                // The peer's flight ended the handshake, so it had ours:
                // answering its retransmissions with ours would only make
                // both sides echo each other for ever.
                io.flight.clear();
                io.timer.stop();
            }
        }
        // The peer repeating its flight means ours was lost (§4.2.4).
        if repeated {
            self.resend_flight()?;
        }
        self.send_flight()
    }

    /// Switches the read epoch at the peer's ChangeCipherSpec once every
    /// message before its Finished was taken.
    fn apply_peer_ccs(&mut self) -> Result<()> {
        use crate::handshake::tls12::{client::Client12, server::Server12};
        let awaits_finished = match &self.machine {
            Machine::Client(ClientState::Tls12(c)) => {
                matches!(&**c, Client12::WaitFinished(w) if !w.awaits_ticket())
            }
            Machine::Server(ServerState::Tls12(s)) => {
                matches!(
                    **s,
                    Server12::WaitFinished(_) | Server12::WaitResumedFinished(_)
                )
            }
            _ => false,
        };
        let Some(io) = &mut self.dtls_io else {
            return Ok(());
        };
        if io.peer_ccs && awaits_finished && self.core.pending_read.is_some() {
            io.peer_ccs = false;
            // A message still buffered came under the old epoch, yet it is
            // after the ChangeCipherSpec in order: a key change may not cut
            // through buffered messages (a plaintext Finished would pass).
            if self
                .core
                .dtls
                .as_ref()
                .is_some_and(|d| d.reasm.has_buffered())
            {
                return Err(Error::unexpected(
                    "handshake messages buffered across a key change",
                ));
            }
            self.core.peer_ccs()?;
        }
        Ok(())
    }

    /// Returns whether the peer was retransmitting an old flight.
    fn feed_fragments(&mut self, mut plain: &[u8]) -> Result<bool> {
        let mut repeated = false;
        let limit = self.common.limits.max_handshake_message;
        while let Some((hdr, _)) = FragmentHeader::parse(plain) {
            let handshaking = self.is_handshaking();
            let len = DTLS_HS_HEADER_LEN + hdr.frag_len;
            let frag = &plain[..len];
            plain = &plain[len..];
            let Some(d) = self.core.dtls.as_mut() else {
                break;
            };
            match d.reasm.add(frag, limit)? {
                // Once the handshake is done, only the peer's Finished, its
                // first bytes, says it repeats its last flight (§4.2.4): one
                // answer per repeated flight, however finely it is cut.
                Fragment::Old if !handshaking => {
                    repeated |=
                        hdr.typ == HandshakeType::FINISHED && hdr.offset == 0 && hdr.frag_len > 0;
                }
                // An empty fragment repeats no data (a peer may add them to
                // any message, ServerHelloDone's included).
                Fragment::Old => repeated |= hdr.frag_len > 0,
                Fragment::Dropped => {}
                Fragment::Accepted => {
                    let now = self.common.time.now();
                    if let Some(io) = &mut self.dtls_io {
                        io.timer.answered(now);
                    }
                }
            }
            while let Some(msg) = self.core.dtls.as_mut().and_then(|d| d.reasm.next_message()) {
                self.dtls_message(&msg)?;
                self.apply_peer_ccs()?;
            }
        }
        // Bytes left that are no fragment (cut short, or reaching past
        // their message's end) are a malformed message, not padding.
        if !plain.is_empty() {
            return Err(Error::decode("malformed handshake fragment"));
        }
        Ok(repeated)
    }

    fn dtls_message(&mut self, raw: &[u8]) -> Result<()> {
        let typ = HandshakeType(raw[0]);
        let msg = Message {
            typ,
            body: &raw[DTLS_HS_HEADER_LEN..],
            raw,
        };
        // Repeats of old messages never get here (the reassembler passed
        // their message_seq): this is a new message, and DTLS 1.2 has none
        // after the handshake (no renegotiation; an extra Finished).
        if !self.is_handshaking() {
            return Err(Error::unexpected("unexpected post-handshake message"));
        }
        let machine = std::mem::replace(&mut self.machine, Machine::Gone);
        self.machine = match machine {
            Machine::Client(c) => Machine::Client(c.handle(&mut self.core, &msg)?),
            Machine::Server(s) => Machine::Server(s.handle(&mut self.core, &msg)?),
            Machine::Gone => return Err(Error::internal("no handshake state")),
        };
        Ok(())
    }

    /// The next datagram to send, if any.
    pub fn pending_datagram(&self) -> Option<&[u8]> {
        self.dtls_io
            .as_ref()
            .and_then(|io| io.out.front())
            .map(Vec::as_slice)
    }

    /// The front datagram was sent (or refused for its size).
    pub fn datagram_sent(&mut self) {
        if let Some(io) = &mut self.dtls_io {
            io.out.pop_front();
        }
    }

    /// Drops every queued datagram; returns the bytes dropped.
    pub fn discard_datagrams(&mut self) -> usize {
        self.dtls_io
            .as_mut()
            .map_or(0, |io| io.out.drain(..).map(|d| d.len()).sum())
    }

    pub fn mtu(&self) -> usize {
        self.dtls_io.as_ref().map_or(0, |io| io.mtu)
    }

    pub fn set_mtu(&mut self, mtu: usize) {
        let handshaking = self.is_handshaking();
        let (Some(d), Some(io)) = (self.core.dtls.as_mut(), self.dtls_io.as_mut()) else {
            return;
        };
        io.mtu = mtu.clamp(64, 16384);
        io.backoff_mtu = None;
        // A flight queued but not yet sent (the ClientHello is built when
        // the session is created) is cut again to the new MTU; resending
        // the whole flight is harmless if part of it already went out.
        if handshaking && !io.out.is_empty() && !io.flight.is_empty() {
            if let Ok(datagrams) = pack(&io.flight, &mut d.records, io.mtu) {
                io.out.clear();
                io.out.extend(datagrams);
            }
        }
    }

    /// The most application data one datagram carries now.
    pub fn data_mtu(&self) -> usize {
        match (&self.core.dtls, &self.dtls_io) {
            (Some(d), Some(io)) => io
                .mtu
                .saturating_sub(d.records.overhead(d.records.write_epoch())),
            _ => 0,
        }
    }

    /// Seals `data` as one datagram; over `data_mtu()` is `LargePacket`.
    pub fn seal_datagram(&mut self, data: &[u8]) -> Result<usize> {
        self.check()?;
        if self.is_handshaking() {
            return Err(Error::UnavailableDuringHandshake);
        }
        if self.sent_close {
            return Err(Error::InvalidSession);
        }
        if data.len() > self.data_mtu() {
            return Err(Error::LargePacket);
        }
        let (Some(d), Some(io)) = (self.core.dtls.as_mut(), self.dtls_io.as_mut()) else {
            return Err(Error::InvalidRequest("not a datagram session"));
        };
        let mut out = Vec::with_capacity(data.len() + 64);
        d.records.seal(
            d.records.write_epoch(),
            ContentType::APPLICATION_DATA,
            data,
            &mut out,
        )?;
        io.out.push_back(out);
        Ok(data.len())
    }

    /// Queues our close_notify as a datagram.
    pub fn close_notify_datagram(&mut self) -> Result<()> {
        self.check()?;
        if !self.sent_close {
            self.sent_close = true;
            self.alert_datagram(AlertLevel::WARNING, AlertDescription::CLOSE_NOTIFY)?;
        }
        Ok(())
    }

    /// Queues an alert as its own datagram, under the current write epoch.
    pub(crate) fn alert_datagram(
        &mut self,
        level: AlertLevel,
        desc: AlertDescription,
    ) -> Result<()> {
        if let (Some(d), Some(io)) = (self.core.dtls.as_mut(), self.dtls_io.as_mut()) {
            let mut out = Vec::new();
            d.records.seal(
                d.records.write_epoch(),
                ContentType::ALERT,
                &[level.0, desc.0],
                &mut out,
            )?;
            io.out.push_back(out);
        }
        Ok(())
    }

    /// Copies the next received datagram's data into `out` (the rest of
    /// it stays for the next call when `out` is short), with its record's
    /// `epoch << 48 | sequence number`.
    pub fn read_datagram_seq(&mut self, out: &mut [u8]) -> Option<(usize, u64)> {
        let io = self.dtls_io.as_mut()?;
        let (seq, front) = io.app.front_mut()?;
        let seq = *seq;
        let n = out.len().min(front.len());
        out[..n].copy_from_slice(&front[..n]);
        if n == front.len() {
            io.app.pop_front();
        } else {
            front.drain(..n);
        }
        Some((n, seq))
    }

    /// Received application bytes not yet read.
    pub fn datagram_pending(&self) -> usize {
        self.dtls_io
            .as_ref()
            .map_or(0, |io| io.app.iter().map(|(_, d)| d.len()).sum())
    }
}
