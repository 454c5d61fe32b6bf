//! The datagram paths of [`Session`](super::Session): one pull is one
//! datagram, one push one datagram, and the retransmission timer is the
//! caller's (`timeout()`, `handle_timeout()`); in NONBLOCK mode nothing
//! waits.

use std::time::Duration;

use super::{Direction, Session};
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
        loop {
            if let Some(n) = self.engine.read_datagram(buf) {
                return Ok(n);
            }
            if self.engine.received_close() {
                return Ok(0);
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

    /// The most application data one `send` may carry over DTLS.
    #[doc(alias = "gnutls_dtls_get_data_mtu")]
    pub fn data_mtu(&self) -> usize {
        self.engine.data_mtu()
    }
}
