//! The buffers every received and sent byte passes through.

use std::collections::VecDeque;
use std::ops::Range;

/// Received bytes: `[consumed | plaintext not yet returned | unread]`,
/// then spare room up to `end`. Records are decrypted in place, so
/// application data is returned to the caller straight from here with one
/// copy.
///
/// `buf.len()` is how much of the allocation was ever initialized (kept
/// across pool reuse); the live bytes end at `end`. Handing out room for a
/// read therefore zero-fills only bytes never used before, not every read.
#[derive(Debug, Default)]
pub struct InBuf {
    buf: Vec<u8>,
    /// End of the bytes received so far.
    end: usize,
    /// Decrypted application data not yet returned.
    pub plain: Range<usize>,
    /// Start of bytes not yet parsed as records.
    pub unread: usize,
}

impl InBuf {
    /// Bytes received but not yet parsed.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.unread..self.end]
    }

    pub fn unread_len(&self) -> usize {
        self.end - self.unread
    }

    pub fn plain_len(&self) -> usize {
        self.plain.len()
    }

    /// Gives `n` bytes of spare room at the end for the transport to fill;
    /// `filled` must follow with the count actually written. The room may
    /// hold stale bytes (never zeroed per read): only `filled` bytes count.
    pub fn space(&mut self, n: usize) -> &mut [u8] {
        self.compact();
        if self.buf.capacity() == 0 {
            self.buf = super::pool::take();
        }
        let start = self.end;
        let need = start + n;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.end = need;
        &mut self.buf[start..need]
    }

    /// Keeps `n` of the bytes handed out by the last `space` call.
    pub fn filled(&mut self, space: usize, n: usize) {
        self.end = self.end - space + n.min(space);
    }

    /// Moves unparsed bytes to the front once nothing before them is needed.
    fn compact(&mut self) {
        if self.plain.is_empty() && self.unread > 0 {
            self.buf.copy_within(self.unread..self.end, 0);
            self.end -= self.unread;
            self.unread = 0;
            self.plain = 0..0;
        }
    }

    /// Takes the next `n` unread bytes as a record and returns its range.
    pub fn take_record(&mut self, n: usize) -> Range<usize> {
        let r = self.unread..self.unread + n;
        self.unread += n;
        r
    }

    pub fn bytes_mut(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self.buf[r]
    }

    pub fn bytes(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Copies buffered plaintext into `out`; returns the count.
    pub fn read_plain(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.plain.len());
        out[..n].copy_from_slice(&self.buf[self.plain.start..self.plain.start + n]);
        self.plain.start += n;
        if self.plain.is_empty() {
            self.plain = 0..0;
            self.release_if_idle();
        }
        n
    }

    /// Frees the allocation when nothing is buffered, so an idle
    /// connection holds no record buffer.
    pub fn release_if_idle(&mut self) {
        if self.plain.is_empty() && self.unread == self.end {
            super::pool::give(std::mem::take(&mut self.buf));
            self.unread = 0;
            self.end = 0;
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// One sealed record waiting for the transport.
#[derive(Debug, Clone, Copy)]
struct Queued {
    start: usize,
    end: usize,
    /// Plaintext bytes of application data it carries.
    app_len: usize,
}

/// Sealed records not yet (fully) written to the transport.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    records: VecDeque<Queued>,
    /// Bytes of `buf` already written.
    sent: usize,
}

impl OutQueue {
    pub fn is_empty(&self) -> bool {
        self.sent == self.buf.len()
    }

    /// Bytes still to write.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// The buffer to append a record to; `commit` must follow.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf = super::pool::take();
            // Pooled buffers keep their initialized length (for `InBuf`).
            self.buf.clear();
        }
        &mut self.buf
    }

    /// Marks everything appended since the last commit as one record.
    pub fn commit(&mut self, app_len: usize) {
        let end = self.buf.len();
        let start = self.records.back().map_or(self.sent, |r| r.end);
        if end > start {
            self.records.push_back(Queued {
                start,
                end,
                app_len,
            });
        }
    }

    /// Records `n` bytes as written.
    pub fn consume(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.buf.len());
        while self.records.front().is_some_and(|r| r.end <= self.sent) {
            self.records.pop_front();
        }
        if self.is_empty() {
            self.records.clear();
            self.sent = 0;
            super::pool::give(std::mem::take(&mut self.buf));
        }
    }

    /// Drops every record none of whose bytes reached the transport;
    /// returns the bytes dropped. A partly written record stays.
    pub fn discard_unsent(&mut self) -> usize {
        let keep = match self.records.front() {
            Some(r) if r.start < self.sent => r.end,
            _ => self.sent,
        };
        let dropped = self.buf.len() - keep;
        self.buf.truncate(keep);
        self.records.retain(|r| r.end <= keep);
        if self.is_empty() {
            self.consume(0);
        }
        dropped
    }

    /// Application plaintext carried by the queued records.
    pub fn queued_app_len(&self) -> usize {
        self.records.iter().map(|r| r.app_len).sum()
    }

    pub fn release_if_idle(&mut self) {
        if self.is_empty() {
            super::pool::give(std::mem::take(&mut self.buf));
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(records: &[usize]) -> OutQueue {
        let mut q = OutQueue::default();
        for &n in records {
            q.buf_mut().extend(std::iter::repeat_n(7u8, n));
            q.commit(n);
        }
        q
    }

    #[test]
    fn discard_keeps_partly_written_record() {
        let mut q = queue(&[10, 20, 30]);
        q.consume(5);
        assert_eq!(q.discard_unsent(), 50);
        assert_eq!(q.len(), 5);
        q.consume(5);
        assert!(q.is_empty());
    }

    #[test]
    fn discard_at_boundary_drops_rest() {
        let mut q = queue(&[10, 20]);
        q.consume(10);
        assert_eq!(q.discard_unsent(), 20);
        assert!(q.is_empty());
        let mut q = queue(&[10, 20]);
        assert_eq!(q.discard_unsent(), 30);
        assert!(q.is_empty());
    }

    #[test]
    fn inbuf_space_and_plain() {
        let mut b = InBuf::default();
        let s = b.space(8);
        s[..3].copy_from_slice(b"abc");
        b.filled(8, 3);
        assert_eq!(b.unread(), b"abc");
        let r = b.take_record(3);
        b.plain = r;
        let mut out = [0u8; 2];
        assert_eq!(b.read_plain(&mut out), 2);
        assert_eq!(&out, b"ab");
        assert_eq!(b.plain_len(), 1);
    }

    #[test]
    fn inbuf_reuses_room_without_exposing_stale_bytes() {
        let mut b = InBuf::default();
        b.space(10).copy_from_slice(b"0123456789");
        b.filled(10, 10);
        b.plain = b.take_record(10);
        let mut out = [0u8; 10];
        assert_eq!(b.read_plain(&mut out), 10);
        assert_eq!(b.capacity(), 0, "released when drained");
        // Room in a reused buffer may hold old bytes; only filled ones count.
        b.space(6)[..2].copy_from_slice(b"ab");
        b.filled(6, 2);
        assert_eq!(b.unread(), b"ab");
        b.space(3).copy_from_slice(b"cde");
        b.filled(3, 3);
        assert_eq!(b.unread(), b"abcde");
        let r = b.take_record(2);
        assert_eq!(b.bytes(r), b"ab");
        // The next read compacts: the unparsed tail moves to the front.
        b.space(1)[0] = b'f';
        b.filled(1, 1);
        assert_eq!(b.unread(), b"cdef");
        assert_eq!(b.unread_len(), 4);
    }
}
