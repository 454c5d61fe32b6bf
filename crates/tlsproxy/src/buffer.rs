//! A bounded ring buffer per direction per connection. It is what makes
//! backpressure work: when it is full the loop stops reading the fast side.
//! Storage is taken only while bytes are held, so idle connections cost
//! none.

/// Storage a ring starts with.
const INITIAL: usize = 16 * 1024;

#[derive(Debug)]
pub struct Ring {
    buf: Vec<u8>,
    cap: usize,
    head: usize,
    len: usize,
    /// Bytes that ever entered the buffer.
    pub total_in: u64,
    /// Bytes that ever left it.
    pub total_out: u64,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            cap,
            head: 0,
            len: 0,
            total_in: 0,
            total_out: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn room(&self) -> usize {
        self.cap - self.len
    }

    pub fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// The longest run of held bytes starting at the oldest.
    pub fn readable(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        let end = (self.head + self.len).min(self.buf.len());
        &self.buf[self.head..end]
    }

    /// Drops `n` bytes from the front (they were written out).
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.readable().len());
        let n = n.min(self.len);
        self.head = (self.head + n) % self.buf.len().max(1);
        self.len -= n;
        self.total_out += n as u64;
        if self.len == 0 {
            // Start over at 0 so the next fill gets the longest run.
            self.head = 0;
        }
    }

    /// The longest run of free space after the held bytes; `commit` the
    /// count actually filled. Storage starts at `INITIAL` bytes and doubles
    /// (up to the bound) only when it fills up, i.e. when the other side
    /// lags.
    pub fn writable(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; self.cap.min(INITIAL)];
        }
        if self.len == self.buf.len() && self.buf.len() < self.cap {
            self.grow();
        }
        let size = self.buf.len();
        if self.len == size {
            return &mut [];
        }
        let tail = self.head + self.len;
        if tail < size {
            &mut self.buf[tail..]
        } else {
            // The held bytes reach the end: free space is before the head.
            &mut self.buf[tail - size..self.head]
        }
    }

    fn grow(&mut self) {
        let size = self.buf.len();
        let new = (size * 2).min(self.cap);
        let mut v = Vec::with_capacity(new);
        let first_end = (self.head + self.len).min(size);
        v.extend_from_slice(&self.buf[self.head..first_end]);
        v.extend_from_slice(&self.buf[..self.len - (first_end - self.head)]);
        v.resize(new, 0);
        self.buf = v;
        self.head = 0;
    }

    pub fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.room());
        self.len += n.min(self.room());
        self.total_in += n as u64;
    }

    /// Frees the storage when nothing is held.
    pub fn release_if_empty(&mut self) {
        if self.len == 0 && !self.buf.is_empty() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }

    /// Bytes of storage held now.
    #[allow(dead_code)]
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(r: &mut Ring, data: &[u8]) -> usize {
        let w = r.writable();
        let n = w.len().min(data.len());
        w[..n].copy_from_slice(&data[..n]);
        r.commit(n);
        n
    }

    #[test]
    fn wraps_and_keeps_order() {
        let mut r = Ring::new(8);
        assert_eq!(fill(&mut r, b"abcdef"), 6);
        assert_eq!(r.readable(), b"abcdef");
        r.consume(4);
        assert_eq!(r.room(), 6);
        // Free run after the tail is 2, then it wraps to the front.
        assert_eq!(fill(&mut r, b"ghijkl"), 2);
        assert_eq!(fill(&mut r, b"ijkl"), 4);
        assert!(r.is_full());
        assert!(r.writable().is_empty());
        let mut out = Vec::new();
        while !r.is_empty() {
            let s = r.readable().to_vec();
            out.extend_from_slice(&s);
            r.consume(s.len());
        }
        assert_eq!(out, b"efghijkl");
        assert_eq!(r.total_in, 12);
        assert_eq!(r.total_out, 12);
        r.release_if_empty();
        assert_eq!(r.allocated(), 0);
    }

    #[test]
    fn grows_up_to_the_bound_keeping_order() {
        let cap = 4 * INITIAL;
        let mut r = Ring::new(cap);
        let data: Vec<u8> = (0..cap + 100).map(|i| (i % 251) as u8).collect();
        // Offset the head so growth has to linearize a wrapped buffer.
        assert_eq!(fill(&mut r, &data[..100]), 100);
        r.consume(100);
        let mut put = 0;
        let mut out = Vec::new();
        while put < data.len() {
            let n = fill(&mut r, &data[put..]);
            if n == 0 {
                assert!(r.is_full());
                assert_eq!(r.allocated(), cap);
                let s = r.readable().to_vec();
                out.extend_from_slice(&s[..s.len().min(1000)]);
                r.consume(s.len().min(1000));
            }
            put += n;
        }
        while !r.is_empty() {
            let s = r.readable().to_vec();
            out.extend_from_slice(&s);
            r.consume(s.len());
        }
        assert!(out == data[..]);
    }

    #[test]
    fn randomized_against_a_model() {
        for cap in [13, INITIAL + 7, 3 * INITIAL] {
            model_check(cap);
        }
    }

    fn model_check(cap: usize) {
        let mut r = Ring::new(cap);
        let mut model = std::collections::VecDeque::new();
        let mut x: u32 = 12345 ^ cap as u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut counter = 0u8;
        for _ in 0..2_000 {
            if next() % 2 == 0 {
                let want = (next() as usize) % (cap / 2 + 2);
                let w = r.writable();
                let n = w.len().min(want);
                for b in &mut w[..n] {
                    *b = counter;
                    model.push_back(counter);
                    counter = counter.wrapping_add(1);
                }
                r.commit(n);
            } else {
                let s = r.readable();
                let n = s.len().min((next() as usize) % (cap / 2 + 2));
                for b in &s[..n] {
                    assert_eq!(Some(*b), model.pop_front());
                }
                r.consume(n);
            }
            assert_eq!(r.len(), model.len());
            if r.is_empty() && next() % 5 == 0 {
                r.release_if_empty();
            }
        }
    }
}
