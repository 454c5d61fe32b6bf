//! Reassembly of handshake messages from fragments that may arrive
//! duplicated, overlapping, reordered or differently cut (RFC 6347
//! §4.2.3), within bounds: a few messages ahead and a byte budget.

use super::{FragmentHeader, DTLS_HS_HEADER_LEN};
use crate::codec::AlertDescription;
use crate::error::{Error, Result};

/// Messages buffered ahead of the next expected one (DESIGN.md §4).
const MAX_AHEAD: u16 = 6;

struct Partial {
    hdr: FragmentHeader,
    body: Vec<u8>,
    /// Covered byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
}

impl Partial {
    fn complete(&self) -> bool {
        self.hdr.len == 0 || self.have == [(0, self.hdr.len)]
    }

    fn add(&mut self, start: usize, data: &[u8]) {
        let end = start + data.len();
        self.body[start..end].copy_from_slice(data);
        self.have.push((start, end));
        self.have.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.have.len());
        for &(s, e) in &self.have {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.have = merged;
    }
}

/// What a fragment was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// Part of a message we expect (now or soon).
    Accepted,
    /// A message already delivered: the peer is retransmitting its flight.
    Old,
    /// Too far ahead to buffer; dropped.
    Dropped,
}

#[derive(Default)]
pub struct Reassembler {
    next_seq: u16,
    partial: Vec<Partial>,
}

impl Reassembler {
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Skips to `seq` (a server after a stateless HelloVerifyRequest).
    pub fn set_next_seq(&mut self, seq: u16) {
        self.next_seq = seq;
        self.partial.retain(|p| p.hdr.seq >= seq);
    }

    /// Adds one fragment. Conflicting lengths or types for one message are
    /// an error (the peer is broken or hostile).
    pub fn add(&mut self, frag: &[u8], max_message: usize) -> Result<Fragment> {
        let Some((hdr, data)) = FragmentHeader::parse(frag) else {
            return Err(Error::decode("malformed handshake fragment"));
        };
        if hdr.seq < self.next_seq {
            return Ok(Fragment::Old);
        }
        if hdr.seq - self.next_seq >= MAX_AHEAD {
            return Ok(Fragment::Dropped);
        }
        if hdr.len > max_message {
            return Err(Error::LimitExceeded {
                alert: AlertDescription::DECODE_ERROR,
                limit: "handshake message size",
            });
        }
        let p = match self.partial.iter_mut().position(|p| p.hdr.seq == hdr.seq) {
            Some(i) => &mut self.partial[i],
            None => {
                self.partial.push(Partial {
                    hdr,
                    body: vec![0; hdr.len],
                    have: Vec::new(),
                });
                let last = self.partial.len() - 1;
                &mut self.partial[last]
            }
        };
        if p.hdr.len != hdr.len || p.hdr.typ != hdr.typ {
            return Err(Error::illegal(
                "handshake fragments disagree on the message",
            ));
        }
        p.add(hdr.offset, data);
        Ok(Fragment::Accepted)
    }

    /// The next message, whole, in its transcript form (unfragmented
    /// 12-byte header), once all of it arrived.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        let i = self
            .partial
            .iter()
            .position(|p| p.hdr.seq == self.next_seq && p.complete())?;
        let p = self.partial.swap_remove(i);
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut out = Vec::with_capacity(DTLS_HS_HEADER_LEN + p.body.len());
        FragmentHeader {
            offset: 0,
            frag_len: p.hdr.len,
            ..p.hdr
        }
        .encode(&mut out);
        out.extend_from_slice(&p.body);
        Some(out)
    }

    /// Whether any message (complete or not) waits for its turn.
    pub fn has_buffered(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Bytes held for incomplete messages.
    pub fn buffered(&self) -> usize {
        self.partial.iter().map(|p| p.body.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::HandshakeType;

    fn frag(seq: u16, len: usize, off: usize, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        FragmentHeader {
            typ: HandshakeType::CERTIFICATE,
            len,
            seq,
            offset: off,
            frag_len: data.len(),
        }
        .encode(&mut v);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reorders_overlaps_and_duplicates() {
        let msg: Vec<u8> = (0..100).collect();
        let mut r = Reassembler::default();
        assert_eq!(
            r.add(&frag(0, 100, 60, &msg[60..]), 1000).unwrap(),
            Fragment::Accepted
        );
        assert!(r.next_message().is_none());
        r.add(&frag(0, 100, 10, &msg[10..70]), 1000).unwrap();
        r.add(&frag(0, 100, 10, &msg[10..70]), 1000).unwrap();
        r.add(&frag(0, 100, 0, &msg[..20]), 1000).unwrap();
        let m = r.next_message().unwrap();
        assert_eq!(&m[DTLS_HS_HEADER_LEN..], &msg[..]);
        assert_eq!(r.next_seq(), 1);
        assert_eq!(
            r.add(&frag(0, 100, 0, &msg[..20]), 1000).unwrap(),
            Fragment::Old
        );
        assert_eq!(
            r.add(&frag(9, 100, 0, &msg[..20]), 1000).unwrap(),
            Fragment::Dropped
        );
    }

    #[test]
    fn conflicting_and_oversized_fragments_are_errors() {
        let mut r = Reassembler::default();
        r.add(&frag(0, 100, 0, &[1; 10]), 1000).unwrap();
        assert!(r.add(&frag(0, 90, 10, &[1; 10]), 1000).is_err());
        assert!(r.add(&frag(1, 5000, 0, &[1; 10]), 1000).is_err());
        // A fragment past its message's end is malformed.
        assert!(r.add(&frag(1, 10, 5, &[1; 10]), 1000).is_err());
    }
}
