//! The datagram paths of [`Session`](super::Session): one pull is one
//! datagram, one push one datagram, and the retransmission timer is the
//! caller's (`timeout()`, `handle_timeout()`); in NONBLOCK mode nothing
//! waits.

use std::time::Duration;

use super::{Direction, Session};
use crate::codec::SrtpProtectionProfile;
use crate::error::{Error, Result};
use crate::transport::Transport;

/// Room for the largest DTLS record (RFC 6347 §4.1: 2^14 + 2048 + header),
/// whatever the local MTU.
const DATAGRAM_BUF: usize = 16384 + 2048 + 13;

impl<T: Transport> Session<T> {
    /// Pushes queued datagrams, one push each.
    pub(super) fn flush_datagrams(&mut self) -> Result<()> {
        while let Some(d) = self.engine.pending_datagram() {
            self.direction = Direction::Write;
            match self.transport.push(d) {
                Ok(_) => self.engine.datagram_sent(),
                // EMSGSIZE: the datagram is dropped; the caller lowers the MTU.
                Err(e) if e.raw_os_error() == Some(90) => {
                    self.engine.datagram_sent();
                    return Err(Error::LargePacket);
                }
                Err(e) => return Err(self.engine.fail(Error::from_io(&e))),
            }
        }
        Ok(())
    }

    /// Reads one datagram and feeds it to the engine. In blocking mode it
    /// waits at most until `wait`.
    fn pull_datagram(&mut self, wait: Option<Duration>) -> Result<()> {
        if let (Some(w), false) = (wait, self.nonblocking()) {
            self.direction = Direction::Read;
            match self.transport.pull_timeout(w) {
                Ok(true) => {}
                Ok(false) => return Err(Error::TimedOut),
                Err(e) => return Err(self.engine.fail(Error::from_io(&e))),
            }
        }
        if self.dgram_buf.len() < DATAGRAM_BUF {
            self.dgram_buf = vec![0; DATAGRAM_BUF];
        }
        self.direction = Direction::Read;
        match self.transport.pull(&mut self.dgram_buf) {
            // An empty datagram is not an EOF in DTLS: dropped.
            Ok(0) => Ok(()),
            Ok(n) => {
                let buf = std::mem::take(&mut self.dgram_buf);
                let r = self.engine.feed_datagram(&buf[..n]);
                self.dgram_buf = buf;
                if r.is_err() {
                    // The fatal alert the engine queued goes out now: the
                    // caller may never call again (the TLS path does the same).
                    let _ = self.flush_datagrams();
                }
                r
            }
            Err(e) => Err(self.engine.fail(Error::from_io(&e))),
        }
    }

    /// Until the next retransmission or the handshake deadline.
    fn next_wait(&self) -> Option<Duration> {
        self.timeout()
    }

    pub(super) fn drive_handshake_dtls(&mut self) -> Result<()> {
        loop {
            self.check_handshake_deadline()?;
            self.engine.dtls_on_timer()?;
            self.flush_datagrams()?;
            if let Some(e) = self.engine.error() {
                return Err(e.clone());
            }
            if !self.engine.is_handshaking() {
                self.established = true;
                self.handshake_deadline = None;
                return Ok(());
            }
            match self.pull_datagram(self.next_wait()) {
                // A timer fired while waiting: retransmit and go on.
                Err(Error::TimedOut) => {}
                other => other?,
            }
        }
    }

    pub(super) fn send_datagram(&mut self, data: &[u8]) -> Result<usize> {
        if let Some(n) = self.committed {
            self.flush_datagrams().map_err(|e| self.failed(e))?;
            self.committed = None;
            return Ok(n);
        }
        if !self.established {
            return Err(Error::UnavailableDuringHandshake);
        }
        let n = self.engine.seal_datagram(data)?;
        self.committed = Some(n);
        match self.flush_datagrams() {
            Ok(()) => {
                self.committed = None;
                Ok(n)
            }
            Err(Error::LargePacket) => {
                self.committed = None;
                Err(Error::LargePacket)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    pub(super) fn recv_datagram(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_datagram_seq(buf).map(|(n, _)| n)
    }

    fn recv_datagram_seq(&mut self, buf: &mut [u8]) -> Result<(usize, u64)> {
        loop {
            if let Some(r) = self.engine.read_datagram_seq(buf) {
                return Ok(r);
            }
            if self.engine.received_close() {
                return Ok((0, 0));
            }
            if let Some(e) = self.engine.error() {
                return Err(e.clone());
            }
            if !self.established {
                return Err(Error::UnavailableDuringHandshake);
            }
            // Serving the peer's retransmissions may need a write first.
            self.engine.dtls_on_timer()?;
            self.flush_datagrams()?;
            self.pull_datagram(self.record_timeout)?;
        }
    }

    /// DTLS close: our close_notify, sent once (there is no reliable
    /// half-close to wait for over datagrams).
    pub(super) fn bye_datagram(&mut self) -> Result<()> {
        self.engine.close_notify_datagram()?;
        self.flush_datagrams().map_err(|e| self.failed(e))
    }

    /// The path MTU datagrams are cut to (default 1200).
    #[doc(alias = "gnutls_dtls_get_mtu")]
    pub fn mtu(&self) -> usize {
        self.engine.mtu()
    }

    #[doc(alias = "gnutls_dtls_set_mtu")]
    pub fn set_mtu(&mut self, mtu: usize) {
        self.engine.set_mtu(mtu);
    }

    /// DTLS `recv` that also returns the received record's sequence number
    /// as `epoch << 48 | sequence_number`, for loss detection: numbers grow
    /// with the peer's sending order, and a gap means records were lost or
    /// are still to come (a reordered one arrives later with a smaller
    /// number). `(0, 0)` after the peer's close_notify.
    #[doc(alias = "gnutls_record_recv_seq")]
    pub fn recv_with_seq(&mut self, buf: &mut [u8]) -> Result<(usize, u64)> {
        if !self.engine.is_datagram() {
            return Err(Error::InvalidRequest("recv_with_seq is for DTLS sessions"));
        }
        self.recv_datagram_seq(buf)
    }

    /// The SRTP protection profile the handshake negotiated (DTLS-SRTP,
    /// RFC 5764), if any.
    #[doc(alias = "gnutls_srtp_get_selected_profile")]
    pub fn srtp_profile(&self) -> Option<SrtpProtectionProfile> {
        self.engine.info().srtp_profile
    }

    /// The SRTP master keys and salts (RFC 5764 §4.2): the exporter with
    /// label "EXTRACTOR-dtls_srtp" and no context, split for the
    /// negotiated profile.
    #[doc(alias = "gnutls_srtp_get_keys")]
    pub fn srtp_keying_material(&self) -> Result<SrtpKeyingMaterial> {
        let profile = self
            .srtp_profile()
            .ok_or(Error::InvalidRequest("no SRTP profile was negotiated"))?;
        let (key_len, salt_len) = profile
            .key_salt_len()
            .ok_or(Error::InvalidRequest("unknown SRTP profile"))?;
        let mut block = zeroize::Zeroizing::new(vec![0u8; 2 * (key_len + salt_len)]);
        self.export_keying_material(b"EXTRACTOR-dtls_srtp", &[], &mut block)?;
        let (client_key, rest) = block.split_at(key_len);
        let (server_key, rest) = rest.split_at(key_len);
        let (client_salt, server_salt) = rest.split_at(salt_len);
        Ok(SrtpKeyingMaterial {
            profile,
            client_write_key: client_key.to_vec(),
            server_write_key: server_key.to_vec(),
            client_write_salt: client_salt.to_vec(),
            server_write_salt: server_salt.to_vec(),
        })
    }

    /// The most application data one `send` may carry over DTLS.
    #[doc(alias = "gnutls_dtls_get_data_mtu")]
    pub fn data_mtu(&self) -> usize {
        self.engine.data_mtu()
    }
}

/// SRTP master keys and salts from a DTLS-SRTP handshake (RFC 5764 §4.2),
/// wiped on drop. The client protects what it sends with the client key
/// and salt, the server with the server's.
pub struct SrtpKeyingMaterial {
    profile: SrtpProtectionProfile,
    client_write_key: Vec<u8>,
    server_write_key: Vec<u8>,
    client_write_salt: Vec<u8>,
    server_write_salt: Vec<u8>,
}

impl SrtpKeyingMaterial {
    pub fn profile(&self) -> SrtpProtectionProfile {
        self.profile
    }
    pub fn client_write_key(&self) -> &[u8] {
        &self.client_write_key
    }
    pub fn server_write_key(&self) -> &[u8] {
        &self.server_write_key
    }
    pub fn client_write_salt(&self) -> &[u8] {
        &self.client_write_salt
    }
    pub fn server_write_salt(&self) -> &[u8] {
        &self.server_write_salt
    }
    /// The exporter output as RFC 5764 §4.2 lays it out: client key,
    /// server key, client salt, server salt.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = Vec::new();
        for part in [
            &self.client_write_key,
            &self.server_write_key,
            &self.client_write_salt,
            &self.server_write_salt,
        ] {
            v.extend_from_slice(part);
        }
        zeroize::Zeroizing::new(v)
    }
}

impl Drop for SrtpKeyingMaterial {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.client_write_key.zeroize();
        self.server_write_key.zeroize();
        self.client_write_salt.zeroize();
        self.server_write_salt.zeroize();
    }
}

impl std::fmt::Debug for SrtpKeyingMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeyingMaterial")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}
