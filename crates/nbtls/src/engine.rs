//! The sans-IO connection: bytes in, bytes out, events out. It performs no
//! I/O and reads no clock; [`crate::Session`] drives it over a transport,
//! and other drivers (tokio, tlsproxy) can too.

use std::sync::Arc;

use rustls_pki_types::ServerName;

use crate::codec::{
    read_handshake_header, AlertDescription, AlertLevel, ContentType, HandshakeType, KeyUpdate,
    KeyUpdateRequest, Reader, HANDSHAKE_HEADER_LEN,
};
use crate::config::{ClientConfig, Common, ServerConfig};
use crate::crypto::key_schedule;
use crate::error::{Error, Result};
use crate::handshake::tls13::client::ClientState;
use crate::handshake::tls13::server::ServerState;
use crate::handshake::tls13::{Core, Message, SessionInfo, Side};
use crate::record::{RecordHeader, HEADER_LEN, MAX_CIPHERTEXT};

#[path = "engine_dtls.rs"]
mod dtls;

/// What processing one record produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// No complete record is buffered: read more (`read_hint` bytes).
    NeedMore,
    /// A record was consumed with nothing for the application (handshake
    /// progress, a post-handshake message, an empty record, ...).
    Consumed,
    /// Application data is buffered (`plaintext_len`).
    Data,
    /// The peer's close_notify arrived.
    Closed,
    /// The server paused after the ClientHello.
    Paused,
}

enum Machine {
    Client(ClientState),
    Server(ServerState),
    /// Only while a state is being replaced, or after a fatal error.
    Gone,
}

/// The protocol engine of one connection.
pub struct Engine {
    core: Core,
    machine: Machine,
    common: Common,
    /// DTLS datagram I/O (`None` for TLS).
    dtls_io: Option<Box<dtls::DtlsIo>>,
    inbuf: crate::record::InBuf,
    /// Handshake bytes received but not yet a whole message.
    hs_buf: Vec<u8>,
    /// `core.read_key_epoch` when `hs_buf` was last appended to.
    hs_epoch: u32,
    error: Option<Error>,
    received_close: bool,
    sent_close: bool,
    empty_records: u32,
    key_updates: u32,
    /// TLS 1.2 warning alerts in a row.
    warning_alerts: u32,
    /// TLS 1.2 renegotiation attempts refused.
    renegotiations_refused: u32,
    /// We asked the peer to update and it has not yet.
    awaiting_peer_update: bool,
    /// The peer asked us to update; our KeyUpdate goes out before the next
    /// application record.
    owe_key_update: bool,
}

impl Engine {
    /// A client engine with its ClientHello queued.
    pub fn client(config: Arc<ClientConfig>, server_name: ServerName<'static>) -> Result<Self> {
        let common = config.common.clone();
        let mut core = Core::new(Side::Client, common.limits.clone(), common.key_log.clone());
        let st = ClientState::start(&mut core, config, server_name)?;
        core.flush_handshake()?;
        Ok(Self::new(core, Machine::Client(st), common))
    }

    /// A server engine waiting for a ClientHello.
    pub fn server(config: Arc<ServerConfig>) -> Self {
        let common = config.common.clone();
        let core = Core::new(Side::Server, common.limits.clone(), common.key_log.clone());
        Self::new(core, Machine::Server(ServerState::start(config)), common)
    }

    fn new(core: Core, machine: Machine, common: Common) -> Self {
        Engine {
            core,
            machine,
            common,
            dtls_io: None,
            inbuf: Default::default(),
            hs_buf: Vec::new(),
            hs_epoch: 0,
            error: None,
            received_close: false,
            sent_close: false,
            empty_records: 0,
            key_updates: 0,
            warning_alerts: 0,
            renegotiations_refused: 0,
            awaiting_peer_update: false,
            owe_key_update: false,
        }
    }

    #[cfg_attr(not(feature = "unstable-engine"), allow(dead_code))]
    pub fn side(&self) -> Side {
        self.core.side
    }

    /// The sticky error, if the connection failed.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    pub fn is_handshaking(&self) -> bool {
        !match &self.machine {
            Machine::Client(c) => c.is_connected(),
            Machine::Server(s) => s.is_connected(),
            Machine::Gone => false,
        }
    }

    pub fn is_paused(&self) -> bool {
        matches!(&self.machine, Machine::Server(s) if s.is_paused())
    }

    pub fn info(&self) -> &SessionInfo {
        &self.core.info
    }

    pub fn received_close(&self) -> bool {
        self.received_close
    }

    pub fn sent_close(&self) -> bool {
        self.sent_close
    }

    pub fn read_ahead(&self) -> bool {
        self.common.read_ahead
    }

    /// Only new transport bytes can move the connection on: no plaintext
    /// is waiting, no whole record is buffered, and it is not closed by
    /// the peer, failed, or paused. Asks nothing about sending, so a
    /// reader (or a read half) can wait on it alone.
    #[cfg_attr(not(feature = "unstable-engine"), allow(dead_code))]
    pub fn wants_read(&self) -> bool {
        self.error.is_none()
            && !self.received_close
            && !self.is_paused()
            && self.inbuf.plain_len() == 0
            && self.buffered_record_len() == 0
    }

    /// Ciphertext is queued for the transport (a flight, a record, an
    /// alert). Independent of `wants_read`: both can hold at once.
    #[cfg_attr(not(feature = "unstable-engine"), allow(dead_code))]
    pub fn wants_write(&self) -> bool {
        self.has_pending_output()
    }

    pub(crate) fn common(&self) -> &Common {
        &self.common
    }

    /// The ClientHello being answered, while paused.
    pub fn paused_client_hello(&self) -> Option<&crate::codec::ClientHello> {
        match &self.machine {
            Machine::Server(s) => s.paused_hello(),
            _ => None,
        }
    }

    /// While paused: answer with another configuration.
    pub fn set_server_config(&mut self, config: Arc<ServerConfig>) -> Result<()> {
        match &mut self.machine {
            Machine::Server(s) => s.set_config(config),
            _ => Err(Error::InvalidRequest("not a paused server")),
        }
    }

    /// Continues a paused server handshake.
    pub fn resume(&mut self) -> Result<()> {
        self.check()?;
        if let Machine::Server(s) = std::mem::replace(&mut self.machine, Machine::Gone) {
            match s.resume(&mut self.core).and_then(|next| {
                self.core.flush_handshake()?;
                Ok(next)
            }) {
                Ok(next) => self.machine = Machine::Server(next),
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    // ---- input ----

    /// Bytes needed to complete the next record (at least 1).
    pub fn read_hint(&self) -> usize {
        let unread = self.inbuf.unread();
        if unread.len() < HEADER_LEN {
            return HEADER_LEN - unread.len();
        }
        let len = usize::from(u16::from_be_bytes([unread[3], unread[4]]));
        (HEADER_LEN + len).saturating_sub(unread.len()).max(1)
    }

    /// A buffer of `n` bytes for the transport to fill; follow with
    /// `recv_filled(n, got)`.
    pub fn recv_space(&mut self, n: usize) -> &mut [u8] {
        self.inbuf.space(n)
    }

    pub fn recv_filled(&mut self, space: usize, got: usize) {
        self.inbuf.filled(space, got);
        if got == 0 {
            // A read that found nothing (`Again`) must not leave an idle
            // connection holding a record buffer.
            self.inbuf.release_if_idle();
        }
    }

    /// Copies `data` in (for drivers that own their read buffers).
    #[cfg_attr(not(feature = "unstable-engine"), allow(dead_code))]
    pub fn feed(&mut self, data: &[u8]) {
        self.inbuf.space(data.len()).copy_from_slice(data);
        self.inbuf.filled(data.len(), data.len());
    }

    /// Decrypted application data not yet read.
    pub fn plaintext_len(&self) -> usize {
        self.inbuf.plain_len()
    }

    /// Bytes of a complete record already buffered but not processed.
    pub fn buffered_record_len(&self) -> usize {
        let unread = self.inbuf.unread();
        if unread.len() < HEADER_LEN {
            return 0;
        }
        let len = HEADER_LEN + usize::from(u16::from_be_bytes([unread[3], unread[4]]));
        if unread.len() >= len {
            len
        } else {
            0
        }
    }

    /// Copies buffered application data into `out`.
    pub fn read_plaintext(&mut self, out: &mut [u8]) -> usize {
        self.inbuf.read_plain(out)
    }

    /// Processes at most one buffered record. Does nothing while
    /// application data is still unread.
    pub fn process(&mut self) -> Result<Progress> {
        self.check()?;
        if self.inbuf.plain_len() > 0 {
            return Ok(Progress::Data);
        }
        if self.received_close {
            return Ok(Progress::Closed);
        }
        if self.is_paused() {
            return Ok(Progress::Paused);
        }
        match self.process_record() {
            Ok(p) => Ok(p),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn process_record(&mut self) -> Result<Progress> {
        let unread = self.inbuf.unread();
        if unread.len() < HEADER_LEN {
            return Ok(Progress::NeedMore);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&unread[..HEADER_LEN]);
        let hdr = RecordHeader::parse(&header)?;
        if unread.len() < HEADER_LEN + hdr.len {
            return Ok(Progress::NeedMore);
        }
        debug_assert!(hdr.len <= MAX_CIPHERTEXT);
        let range = self.inbuf.take_record(HEADER_LEN + hdr.len);
        let body_range = range.start + HEADER_LEN..range.end;

        // A peer that fails before it has keys alerts in plaintext, though we
        // may already read with its handshake key. Such an alert is accepted
        // until the peer's first protected record, never after the handshake
        // (as OpenSSL does); it is the peer's error, not an unexpected record.
        // Only a 2-byte record can be one: a protected alert is longer (its
        // AEAD tag), and must be opened.
        let plaintext_alert = hdr.typ == ContentType::ALERT
            && hdr.len == 2
            && self.is_handshaking()
            && self.core.record.is_reading_encrypted()
            && self.core.record.read_seq() == 0;
        let opened = if plaintext_alert {
            Ok((hdr.typ, 0..hdr.len))
        } else {
            let body = self.inbuf.bytes_mut(body_range.clone());
            self.core.record.open(&header, &hdr, body)
        };
        let (typ, plain) = match opened {
            Ok(v) => v,
            // Early data we refused is skipped, within a budget (RFC 8446
            // §4.2.10): records that do not open under the handshake key,
            // or any application record before it (after an HRR).
            Err(e) if hdr.typ == ContentType::APPLICATION_DATA => {
                let Some(budget) = self.core.early_data_skip else {
                    return Err(e);
                };
                let left = budget
                    .checked_sub(hdr.len)
                    .ok_or_else(|| Error::unexpected("too much early data"))?;
                self.core.early_data_skip = Some(left);
                return Ok(Progress::Consumed);
            }
            Err(e) => return Err(e),
        };
        if hdr.typ == ContentType::APPLICATION_DATA {
            self.core.early_data_skip = None;
        }
        self.handle_plaintext(
            typ,
            body_range.start + plain.start..body_range.start + plain.end,
        )
    }

    fn handle_plaintext(
        &mut self,
        typ: ContentType,
        plain: std::ops::Range<usize>,
    ) -> Result<Progress> {
        if !self.hs_buf.is_empty() && typ != ContentType::HANDSHAKE {
            return Err(Error::unexpected(
                "record interleaved with a fragmented handshake message",
            ));
        }
        match typ {
            ContentType::CHANGE_CIPHER_SPEC if self.core.pending_read.is_some() => {
                if self.inbuf.bytes(plain) != [1] {
                    return Err(Error::unexpected("change_cipher_spec with a bad value"));
                }
                self.core.peer_ccs()?;
                Ok(Progress::Consumed)
            }
            ContentType::CHANGE_CIPHER_SPEC => {
                if !self.core.ccs_allowed || self.inbuf.bytes(plain) != [1] {
                    return Err(Error::unexpected("unexpected change_cipher_spec"));
                }
                self.count_empty()?;
                Ok(Progress::Consumed)
            }
            ContentType::ALERT => self.handle_alert(plain),
            ContentType::HANDSHAKE => {
                if plain.is_empty() {
                    return Err(Error::unexpected("empty handshake record"));
                }
                // A record with content ends a run of empty ones.
                self.empty_records = 0;
                if self.hs_buf.is_empty() {
                    self.hs_epoch = self.core.read_key_epoch;
                } else if self.hs_epoch != self.core.read_key_epoch {
                    return Err(Error::unexpected("handshake message spans a key change"));
                }
                self.hs_buf.extend_from_slice(self.inbuf.bytes(plain));
                self.handle_handshake_bytes()
            }
            ContentType::APPLICATION_DATA => {
                if self.is_handshaking() {
                    return self.accept_early_data(plain);
                }
                if plain.is_empty() {
                    self.count_empty()?;
                    return Ok(Progress::Consumed);
                }
                self.empty_records = 0;
                self.key_updates = 0;
                self.warning_alerts = 0;
                self.inbuf.plain = plain;
                Ok(Progress::Data)
            }
            _ => Err(Error::unexpected("unknown record content type")),
        }
    }

    /// Server: 0-RTT data we accepted is kept for `read_early_data`,
    /// within the announced maximum (RFC 8446 §4.2.10).
    fn accept_early_data(&mut self, plain: std::ops::Range<usize>) -> Result<Progress> {
        let Some(left) = self.core.early_data_accept else {
            return Err(Error::unexpected("application data during the handshake"));
        };
        let left = left
            .checked_sub(plain.len())
            .ok_or_else(|| Error::unexpected("more early data than allowed"))?;
        self.core.early_data_accept = Some(left);
        self.core
            .early_data
            .extend_from_slice(self.inbuf.bytes(plain));
        Ok(Progress::Consumed)
    }

    /// Server: accepted 0-RTT data not yet read.
    pub fn early_data_len(&self) -> usize {
        self.core.early_data.len()
    }

    /// Server: copies accepted 0-RTT data into `out`.
    pub fn read_early_data(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.core.early_data.len());
        out[..n].copy_from_slice(&self.core.early_data[..n]);
        self.core.early_data.drain(..n);
        n
    }

    /// Client: seals 0-RTT data after the ClientHello; returns the bytes
    /// taken (fewer at the ticket's limit).
    pub fn seal_early(&mut self, data: &[u8]) -> Result<usize> {
        self.check()?;
        let Some(left) = self.core.early_write else {
            return Err(Error::InvalidRequest("no 0-RTT on this connection (now)"));
        };
        let n = data.len().min(left).min(self.core.record.send_fragment);
        if n == 0 {
            return Ok(0);
        }
        self.seal_app_record(&data[..n])?;
        self.core.early_write = Some(left - n);
        Ok(n)
    }

    /// Client: 0-RTT bytes that may still be sent (0 when none).
    pub fn early_data_left(&self) -> usize {
        self.core.early_write.unwrap_or(0)
    }

    fn count_empty(&mut self) -> Result<()> {
        self.empty_records += 1;
        if self.empty_records > self.common.limits.max_empty_records {
            return Err(Error::LimitExceeded {
                alert: AlertDescription::UNEXPECTED_MESSAGE,
                limit: "consecutive empty records",
            });
        }
        Ok(())
    }

    fn handle_alert(&mut self, plain: std::ops::Range<usize>) -> Result<Progress> {
        let b = self.inbuf.bytes(plain);
        if b.len() != 2 {
            return Err(Error::decode("alert record of the wrong length"));
        }
        let (level, desc) = (AlertLevel(b[0]), AlertDescription(b[1]));
        if level != AlertLevel::WARNING && level != AlertLevel::FATAL {
            return Err(Error::illegal("unknown alert level"));
        }
        match desc {
            // A close during the handshake aborts it: a sticky error, not an EOF.
            AlertDescription::CLOSE_NOTIFY if self.is_handshaking() => {
                Err(Error::unexpected("close_notify during the handshake"))
            }
            AlertDescription::CLOSE_NOTIFY => {
                self.received_close = true;
                self.hs_buf = Vec::new();
                Ok(Progress::Closed)
            }
            // A closure alert that is not close_notify (RFC 8446 §6.1).
            AlertDescription::USER_CANCELED => {
                self.count_empty()?;
                Ok(Progress::Consumed)
            }
            // TLS 1.2 warnings are not fatal (RFC 5246 §7.2.2), within a bound.
            // A client that has no ServerHello yet may face a TLS 1.2 server
            // (one warning before its hello): read it by the 1.2 rules.
            d if level == AlertLevel::WARNING
                && (self.is_tls12()
                    || (self.core.side == Side::Client && self.core.info.version.is_none())) =>
            {
                self.warning_alerts += 1;
                if self.warning_alerts > 5 {
                    return Err(Error::LimitExceeded {
                        alert: AlertDescription::UNEXPECTED_MESSAGE,
                        limit: "TLS 1.2 warning alerts in a row",
                    });
                }
                let _ = d;
                Ok(Progress::Consumed)
            }
            // Every other alert is fatal in TLS 1.3 (§6.2), whatever its level.
            d => Err(Error::AlertReceived(d)),
        }
    }

    fn handle_handshake_bytes(&mut self) -> Result<Progress> {
        loop {
            if self.hs_buf.len() < HANDSHAKE_HEADER_LEN {
                break;
            }
            let mut r = Reader::new(&self.hs_buf);
            let (typ, len) = read_handshake_header(&mut r)?;
            if len > self.common.limits.max_handshake_message {
                return Err(Error::LimitExceeded {
                    alert: AlertDescription::DECODE_ERROR,
                    limit: "handshake message size",
                });
            }
            let total = HANDSHAKE_HEADER_LEN + len;
            if self.hs_buf.len() < total {
                break;
            }
            let epoch = self.core.read_key_epoch;
            let handled = self.handle_message(typ, total);
            // A refused renegotiation is not fatal: its message is consumed
            // all the same, or the next record would look interleaved.
            if matches!(handled, Ok(()) | Err(Error::Rehandshake)) {
                self.hs_buf.drain(..total);
            }
            handled?;
            if self.core.read_key_epoch != epoch && !self.hs_buf.is_empty() {
                return Err(Error::unexpected(
                    "handshake data after a key change in one record",
                ));
            }
            if self.is_paused() {
                return Ok(Progress::Paused);
            }
        }
        if self.hs_buf.is_empty() && !self.is_handshaking() {
            self.hs_buf = Vec::new();
        }
        Ok(Progress::Consumed)
    }

    fn handle_message(&mut self, typ: HandshakeType, total: usize) -> Result<()> {
        let raw = &self.hs_buf[..total];
        let msg = Message {
            typ,
            body: &raw[HANDSHAKE_HEADER_LEN..],
            raw,
        };
        if !self.is_handshaking() && self.is_tls12() {
            return self.refuse_renegotiation(typ);
        }
        if !self.is_handshaking() && typ == HandshakeType::KEY_UPDATE {
            let ku = <KeyUpdate as crate::codec::Codec>::from_bytes(msg.body)?;
            return self.handle_key_update(ku);
        }
        let machine = std::mem::replace(&mut self.machine, Machine::Gone);
        self.machine = match machine {
            Machine::Client(c) => Machine::Client(c.handle(&mut self.core, &msg)?),
            Machine::Server(s) => Machine::Server(s.handle(&mut self.core, &msg)?),
            Machine::Gone => return Err(Error::internal("no handshake state")),
        };
        self.core.flush_handshake()
    }

    /// TLS 1.2 or DTLS 1.2: no KeyUpdate, renegotiation refused, warnings.
    fn is_tls12(&self) -> bool {
        use crate::codec::ProtocolVersion;
        matches!(
            self.core.info.version,
            Some(ProtocolVersion::TLS1_2 | ProtocolVersion::DTLS1_2)
        )
    }

    /// TLS 1.2 renegotiation (a HelloRequest to a client, a ClientHello to
    /// a server) is refused with a no_renegotiation warning (RFC 5746 §4.5);
    /// after `MAX_REFUSED` refusals the connection is closed.
    fn refuse_renegotiation(&mut self, typ: HandshakeType) -> Result<()> {
        const MAX_REFUSED: u32 = 1;
        let expected = match self.core.side {
            Side::Client => HandshakeType::HELLO_REQUEST,
            Side::Server => HandshakeType::CLIENT_HELLO,
        };
        if typ != expected {
            return Err(Error::unexpected("unexpected post-handshake message"));
        }
        if self.renegotiations_refused >= MAX_REFUSED {
            return Err(Error::LimitExceeded {
                alert: AlertDescription::NO_RENEGOTIATION,
                limit: "refused renegotiations",
            });
        }
        self.renegotiations_refused += 1;
        self.send_alert(AlertLevel::WARNING, AlertDescription::NO_RENEGOTIATION);
        Err(Error::Rehandshake)
    }

    /// RFC 8446 §4.6.3.
    fn handle_key_update(&mut self, ku: KeyUpdate) -> Result<()> {
        self.key_updates += 1;
        if self.key_updates > self.common.limits.max_key_updates {
            return Err(Error::LimitExceeded {
                alert: AlertDescription::UNEXPECTED_MESSAGE,
                limit: "KeyUpdates without application data",
            });
        }
        self.core.peer_key_updated()?;
        self.awaiting_peer_update = false;
        if ku.0 == KeyUpdateRequest::UPDATE_REQUESTED && !self.sent_close {
            // Answered once, before our next application record; recv never writes.
            self.owe_key_update = true;
        }
        Ok(())
    }

    // ---- output ----

    /// Ciphertext waiting for the transport.
    pub fn pending_output(&self) -> &[u8] {
        self.core.out.pending()
    }

    pub fn has_pending_output(&self) -> bool {
        !self.core.out.is_empty()
    }

    /// Records that `n` bytes of `pending_output` were written.
    pub fn output_written(&mut self, n: usize) {
        self.core.out.consume(n);
    }

    /// Drops queued application records none of whose bytes were written
    /// (a tail after the last partly written or control record); returns the
    /// bytes dropped. Their sequence numbers are taken back, or the peer would
    /// fail to open the next record: the dropped ciphertext never left us.
    pub fn discard_unsent(&mut self) -> usize {
        let (bytes, records) = self.core.out.discard_unsent();
        self.core.record.rewind_write_seq(records as u64);
        bytes
    }

    /// Application plaintext carried by queued records.
    pub fn queued_app_len(&self) -> usize {
        self.core.out.queued_app_len()
    }

    /// Most plaintext one record carries.
    pub fn max_fragment(&self) -> usize {
        self.core.record.send_fragment
    }

    /// Seals up to one record of application data; returns the bytes taken.
    pub fn seal(&mut self, data: &[u8]) -> Result<usize> {
        self.check()?;
        if self.is_handshaking() {
            return Err(Error::UnavailableDuringHandshake);
        }
        if self.sent_close {
            return Err(Error::InvalidSession);
        }
        if data.is_empty() {
            return Ok(0);
        }
        self.before_app_record()?;
        let n = data.len().min(self.core.record.send_fragment);
        self.seal_app_record(&data[..n])?;
        Ok(n)
    }

    /// Seals one application-data record and queues it as carrying
    /// `payload.len()` plaintext bytes.
    fn seal_app_record(&mut self, payload: &[u8]) -> Result<()> {
        let r = self.core.record.seal(
            ContentType::APPLICATION_DATA,
            payload,
            self.core.out.buf_mut(),
        );
        if let Err(e) = r {
            return Err(self.fail(e));
        }
        self.core.out.commit(payload.len());
        Ok(())
    }

    /// Queues owed or due KeyUpdates before an application record.
    fn before_app_record(&mut self) -> Result<()> {
        let due = self.core.record.write_alg().is_some_and(|alg| {
            let limit = alg
                .confidentiality_limit()
                .min(self.common.key_update_after);
            self.core.record.write_seq() >= limit
        });
        if due && self.is_tls12() {
            // TLS 1.2 cannot rekey (renegotiation is refused): close instead.
            let e = Error::LimitExceeded {
                alert: AlertDescription::CLOSE_NOTIFY,
                limit: "AEAD usage limit (TLS 1.2)",
            };
            return Err(self.fail(e));
        }
        if self.owe_key_update || due {
            self.owe_key_update = false;
            if let Err(e) = self.core.send_key_update(false) {
                return Err(self.fail(e));
            }
        }
        Ok(())
    }

    /// Queues a KeyUpdate; with `request_peer` the peer must update too
    /// (not repeated until it has).
    pub fn key_update(&mut self, request_peer: bool) -> Result<()> {
        self.check()?;
        if self.is_handshaking() {
            return Err(Error::UnavailableDuringHandshake);
        }
        if self.sent_close {
            return Err(Error::InvalidSession);
        }
        if self.is_tls12() {
            return Err(Error::InvalidRequest("KeyUpdate needs TLS 1.3"));
        }
        let request = request_peer && !self.awaiting_peer_update;
        self.owe_key_update = false;
        if let Err(e) = self.core.send_key_update(request) {
            return Err(self.fail(e));
        }
        self.awaiting_peer_update |= request;
        Ok(())
    }

    /// Queues our close_notify (once).
    pub fn close_notify(&mut self) -> Result<()> {
        self.check()?;
        if !self.sent_close {
            self.sent_close = true;
            self.send_alert(AlertLevel::WARNING, AlertDescription::CLOSE_NOTIFY);
        }
        Ok(())
    }

    fn send_alert(&mut self, level: AlertLevel, desc: AlertDescription) {
        // Over datagrams an alert is a DTLS record of its own, not a TLS one.
        if self.is_datagram() {
            // Best effort: a failed seal leaves only the typed error.
            let _ = self.alert_datagram(level, desc);
            return;
        }
        let r = self.core.record.seal(
            ContentType::ALERT,
            &[level.0, desc.0],
            self.core.out.buf_mut(),
        );
        if r.is_ok() {
            self.core.out.commit(0);
        }
    }

    /// RFC 8446 §7.5 exporter.
    pub fn export_keying_material(
        &self,
        label: &[u8],
        context: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.check()?;
        if let (Some(t), false) = (&self.core.tls12, self.is_handshaking()) {
            return crate::handshake::tls12::export(t, label, context, out);
        }
        match &self.core.traffic {
            Some(t) if !self.is_handshaking() => {
                key_schedule::export_keying_material(
                    t.suite.hash,
                    &t.exporter,
                    label,
                    context,
                    out,
                );
                Ok(())
            }
            _ => Err(Error::UnavailableDuringHandshake),
        }
    }

    /// Tickets the client received (newest last).
    pub fn tickets(&self) -> usize {
        self.core.tickets_received.min(self.core.limits.max_tickets)
    }

    /// Bytes held in buffers (for memory measurements).
    pub fn buffered_capacity(&self) -> usize {
        self.inbuf.capacity() + self.core.out.capacity() + self.hs_buf.capacity()
    }

    /// Frees idle buffers.
    pub fn release_buffers(&mut self) {
        self.inbuf.release_if_idle();
        self.core.out.release_if_idle();
    }

    // ---- errors ----

    fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records a fatal error, queues its alert, and returns it.
    pub fn fail(&mut self, e: Error) -> Error {
        if !e.is_fatal() {
            return e;
        }
        if self.error.is_none() {
            if let Some(alert) = e.alert() {
                // A close (the TLS 1.2 AEAD usage limit) is a closure alert, not
                // an error: close_notify goes out as a warning (RFC 5246 §7.2.1).
                let level = if alert == AlertDescription::CLOSE_NOTIFY {
                    self.sent_close = true;
                    AlertLevel::WARNING
                } else {
                    AlertLevel::FATAL
                };
                self.send_alert(level, alert);
            }
            self.machine = Machine::Gone;
            self.hs_buf = Vec::new();
            self.error = Some(e.clone());
        }
        e
    }
}
