//! Flights and their retransmission timer (RFC 6347 §4.2.4).

use std::time::{Duration, Instant};

use super::{FragmentHeader, DTLS_HS_HEADER_LEN};
use crate::codec::{ContentType, HandshakeType};
use crate::error::{Error, Result};
use crate::record::dtls::DtlsRecordLayer;

/// One message of a flight, with the epoch it is sent under.
#[derive(Debug, Clone)]
pub enum FlightItem {
    /// A handshake message in its unfragmented DTLS form.
    Handshake {
        epoch: u16,
        msg: Vec<u8>,
    },
    ChangeCipherSpec {
        epoch: u16,
    },
}

/// The retransmission timer: doubling from `initial`, clamped at `max`
/// (not wrapped, as GnuTLS's modulo does); the doubled value carries over
/// to the next flight until one completes without retransmission
/// (§4.2.4.1).
#[derive(Debug, Clone)]
pub struct RetransmitTimer {
    initial: Duration,
    max: Duration,
    current: Duration,
    deadline: Option<Instant>,
    retransmissions: u32,
    /// Part of the peer's answer to the running flight has arrived.
    answered: bool,
}

impl RetransmitTimer {
    pub fn new(initial: Duration, max: Duration) -> Self {
        RetransmitTimer {
            initial,
            max,
            current: initial,
            deadline: None,
            retransmissions: 0,
            answered: false,
        }
    }

    /// A new flight went out.
    pub fn start(&mut self, now: Instant) {
        self.deadline = Some(now + self.current);
        self.retransmissions = 0;
        self.answered = false;
    }

    /// The peer answered: the flight is done.
    pub fn stop(&mut self) {
        if self.deadline.is_some() && self.retransmissions == 0 {
            self.current = self.initial;
        }
        self.deadline = None;
        self.retransmissions = 0;
    }

    /// Part of the peer's next flight arrived, so ours did: the flight
    /// counts as answered (§4.2.4.1), but the timer keeps running from now,
    /// since the rest of the peer's flight may be lost and only our
    /// retransmission makes the peer send it again.
    pub fn answered(&mut self, now: Instant) {
        if self.deadline.is_some() {
            if !self.answered && self.retransmissions == 0 {
                self.current = self.initial;
            }
            self.answered = true;
            self.deadline = Some(now + self.current);
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// After a retransmission: double (clamped) and restart.
    pub fn back_off(&mut self, now: Instant) {
        self.current = (self.current * 2).min(self.max);
        self.retransmissions += 1;
        self.deadline = Some(now + self.current);
    }

    pub fn retransmissions(&self) -> u32 {
        self.retransmissions
    }

    pub fn interval(&self) -> Duration {
        self.current
    }
}

/// Seals a flight into datagrams of at most `mtu` bytes, fragmenting
/// handshake messages as needed (§4.2.3).
pub fn pack(
    items: &[FlightItem],
    records: &mut DtlsRecordLayer,
    mtu: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for item in items {
        match item {
            FlightItem::ChangeCipherSpec { epoch } => {
                if cur.len() + records.overhead(*epoch) + 1 > mtu && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                records.seal(*epoch, ContentType::CHANGE_CIPHER_SPEC, &[1], &mut cur)?;
            }
            FlightItem::Handshake { epoch, msg } => {
                let Some((hdr, body)) = FragmentHeader::parse(msg) else {
                    return Err(Error::internal("flight message is not in DTLS form"));
                };
                let per_record = records.overhead(*epoch) + DTLS_HS_HEADER_LEN;
                if mtu <= per_record {
                    return Err(Error::LargePacket);
                }
                let mut off = 0;
                loop {
                    let mut room = mtu.saturating_sub(cur.len() + per_record);
                    // Start a new datagram rather than send a sliver, or
                    // when not even the headers fit (an empty body such as
                    // ServerHelloDone).
                    let sliver = room < body.len() - off && room < 64;
                    if (sliver || cur.len() + per_record > mtu) && !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                        room = mtu - per_record;
                    }
                    let n = room.min(body.len() - off);
                    let mut rec = Vec::with_capacity(DTLS_HS_HEADER_LEN + n);
                    FragmentHeader {
                        typ: HandshakeType(hdr.typ.0),
                        offset: off,
                        frag_len: n,
                        ..hdr
                    }
                    .encode(&mut rec);
                    rec.extend_from_slice(&body[off..off + n]);
                    records.seal(*epoch, ContentType::HANDSHAKE, &rec, &mut cur)?;
                    off += n;
                    if off >= body.len() {
                        break;
                    }
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::dtls::dtls_message;
    use crate::handshake::dtls::reassembly::Reassembler;
    use crate::record::dtls::{DtlsHeader, DTLS_HEADER_LEN};

    #[test]
    fn timer_doubles_clamps_and_carries_over() {
        let t0 = Instant::now();
        let mut t = RetransmitTimer::new(Duration::from_secs(1), Duration::from_secs(60));
        t.start(t0);
        let mut seen = Vec::new();
        let mut now = t0;
        for _ in 0..8 {
            let d = t.deadline().unwrap();
            seen.push((d - now).as_secs());
            now = d;
            assert!(t.expired(now));
            t.back_off(now);
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60]);
        // Answered after retransmissions: the next flight keeps the longer interval.
        t.stop();
        t.start(now);
        assert_eq!((t.deadline().unwrap() - now).as_secs(), 60);
        // Answered without retransmission: back to the initial value.
        t.stop();
        t.start(now);
        assert_eq!((t.deadline().unwrap() - now).as_secs(), 1);
    }

    /// Part of the peer's flight arriving keeps the timer running (the rest
    /// may be lost), from the arrival, at the interval §4.2.4.1 gives.
    #[test]
    fn a_partly_received_answer_keeps_the_timer_running() {
        let t0 = Instant::now();
        let mut t = RetransmitTimer::new(Duration::from_secs(1), Duration::from_secs(60));
        t.answered(t0);
        assert_eq!(t.deadline(), None, "no flight of ours: nothing to run");
        t.start(t0);
        t.back_off(t0 + Duration::from_secs(1));
        let later = t0 + Duration::from_millis(2500);
        t.answered(later);
        // After a retransmission the doubled interval carries over.
        assert_eq!(t.deadline(), Some(later + Duration::from_secs(2)));
        t.answered(later);
        assert_eq!(t.deadline(), Some(later + Duration::from_secs(2)));
        let mut fresh = RetransmitTimer::new(Duration::from_secs(1), Duration::from_secs(60));
        fresh.start(t0);
        fresh.answered(later);
        assert_eq!(fresh.deadline(), Some(later + Duration::from_secs(1)));
    }

    #[test]
    fn packing_respects_the_mtu_and_reassembles() {
        let mut tls = vec![11u8, 0, 0x0b, 0xb8];
        tls.extend((0..3000u32).map(|i| i as u8));
        let items = vec![
            FlightItem::Handshake {
                epoch: 0,
                msg: dtls_message(&[2, 0, 0, 3, 9, 9, 9], 1),
            },
            FlightItem::Handshake {
                epoch: 0,
                msg: dtls_message(&tls, 2),
            },
        ];
        for mtu in [104, 400, 1500] {
            let mut rl = DtlsRecordLayer::new();
            let dgrams = pack(&items, &mut rl, mtu).unwrap();
            assert!(dgrams.iter().all(|d| d.len() <= mtu), "mtu {mtu}");
            let mut r = Reassembler::default();
            r.set_next_seq(1);
            for d in &dgrams {
                let mut rest = &d[..];
                while let Some(h) = DtlsHeader::parse(rest) {
                    let body = &rest[DTLS_HEADER_LEN..DTLS_HEADER_LEN + h.len];
                    r.add(body, 1 << 16).unwrap();
                    rest = &rest[DTLS_HEADER_LEN + h.len..];
                }
            }
            assert_eq!(r.next_message().unwrap()[12..], [9, 9, 9]);
            assert_eq!(r.next_message().unwrap()[12..], tls[4..]);
        }
    }
}
