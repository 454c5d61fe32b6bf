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
}

/// A buffer with room for at least one record. Its length is how much of
/// it a previous user initialized (its contents are stale): appenders
/// clear it, `InBuf` reuses the initialized bytes as read room.
pub fn take() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(BUFFER_SIZE))
}

/// Returns a buffer to the pool (oversized ones are freed). Its length is
/// kept, so the next `InBuf` need not zero-fill it again.
pub fn give(buf: Vec<u8>) {
    if buf.capacity() < BUFFER_SIZE || buf.capacity() > 4 * BUFFER_SIZE {
        return;
    }
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
