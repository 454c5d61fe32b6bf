//! A per-thread pool of record buffers, so a session holds a buffer only
//! while a record is partly read or written, and taking one back costs no
//! allocation per record.

use std::cell::RefCell;

use super::tls::{HEADER_LEN, MAX_CIPHERTEXT};

/// Capacity of a pooled buffer: one whole record.
pub const BUFFER_SIZE: usize = HEADER_LEN + MAX_CIPHERTEXT;
/// Buffers kept per thread; more are freed.
const MAX_POOLED: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// Receive buffers keep their initialised length, so a read into one
    /// never zero-fills.
    static FILLED: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A receive buffer of `BUFFER_SIZE` initialised bytes.
pub fn take_filled() -> Vec<u8> {
    FILLED
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; BUFFER_SIZE])
}

/// Returns a receive buffer (oversized or undersized ones are freed).
pub fn give_filled(buf: Vec<u8>) {
    if buf.len() != BUFFER_SIZE || buf.capacity() > 4 * BUFFER_SIZE {
        return;
    }
    FILLED.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(buf);
        }
    });
}

/// An empty buffer with room for at least one record.
pub fn take() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(BUFFER_SIZE))
}

/// Returns a buffer to the pool (oversized ones are freed).
pub fn give(mut buf: Vec<u8>) {
    if buf.capacity() < BUFFER_SIZE || buf.capacity() > 4 * BUFFER_SIZE {
        return;
    }
    buf.clear();
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused() {
        let b = take();
        let ptr = b.as_ptr();
        give(b);
        let again = take();
        assert_eq!(again.as_ptr(), ptr);
    }
}
