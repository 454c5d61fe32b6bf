//! The DTLS anti-replay window (RFC 6347 §4.1.2.6): the highest sequence
//! number seen and a 64-record bitmap below it. Checked after a record
//! authenticates, so forged records cannot move it.

#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    /// Highest sequence number accepted, if any.
    top: Option<u64>,
    /// Bit i set: `top - i` was seen (bit 0 is `top` itself).
    seen: u64,
}

impl ReplayWindow {
    const SIZE: u64 = 64;

    /// Whether `seq` could be new (call before decrypting, to skip work).
    pub fn may_accept(&self, seq: u64) -> bool {
        match self.top {
            None => true,
            Some(top) if seq > top => true,
            Some(top) => {
                let back = top - seq;
                back < Self::SIZE && self.seen & (1 << back) == 0
            }
        }
    }

    /// Marks `seq` seen; `false` if it was a replay or too old.
    pub fn accept(&mut self, seq: u64) -> bool {
        if !self.may_accept(seq) {
            return false;
        }
        match self.top {
            Some(top) if seq <= top => self.seen |= 1 << (top - seq),
            Some(top) => {
                let shift = seq - top;
                self.seen = if shift >= Self::SIZE {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.top = Some(seq);
            }
            None => {
                self.seen = 1;
                self.top = Some(seq);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicates_old_and_jumps() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        assert!(!w.accept(5), "duplicate");
        assert!(w.accept(7));
        assert!(w.accept(6), "late but new");
        assert!(!w.accept(6));
        assert!(w.accept(100));
        assert!(w.accept(37), "63 behind is inside the window");
        assert!(!w.accept(36), "64 behind is too old");
        assert!(w.accept(1000), "a large jump resets the bitmap");
        assert!(!w.accept(100));
        assert!(w.accept(999));
        assert!(!w.accept(0));
    }

    #[test]
    fn first_record_may_be_any_number() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(u64::from(u32::MAX) << 16));
        assert!(w.accept((u64::from(u32::MAX) << 16) - 3));
    }
}
