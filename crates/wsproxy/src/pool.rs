//! A bounded pool of byte buffers shared by all connections: relays take a
//! buffer while data flows and give it back when their direction goes
//! quiet, so an idle connection holds none, and a busy proxy does not
//! allocate (and page in) a fresh buffer for every burst.

use std::sync::{Arc, Mutex};

/// A pool of `Vec<u8>`s.
#[derive(Clone, Debug)]
pub struct BufferPool {
    inner: Arc<Mutex<Vec<Vec<u8>>>>,
    capacity: usize,
    keep: usize,
    /// Buffers are handed out full length (zeroed when made), to read into
    /// without `unsafe`; otherwise empty with the capacity.
    filled: bool,
}

impl BufferPool {
    /// Empty buffers of `capacity` bytes; at most `keep` are kept when returned.
    pub fn new(capacity: usize, keep: usize) -> BufferPool {
        BufferPool { inner: Arc::new(Mutex::new(Vec::new())), capacity, keep, filled: false }
    }

    /// Buffers of exactly `len` initialized bytes (zeroed when first made,
    /// then whatever the last user left); at most `keep` are kept.
    pub fn filled(len: usize, keep: usize) -> BufferPool {
        BufferPool { filled: true, ..BufferPool::new(len, keep) }
    }

    /// A buffer: empty with at least the pool's capacity, or full length
    /// for a [`BufferPool::filled`] pool.
    pub fn take(&self) -> Vec<u8> {
        let fresh = || if self.filled { vec![0; self.capacity] } else { Vec::with_capacity(self.capacity) };
        self.inner.lock().ok().and_then(|mut p| p.pop()).unwrap_or_else(fresh)
    }

    /// Returns a buffer; one grown far past the pool's size (or, for a
    /// filled pool, of another length) is dropped.
    pub fn give(&self, mut buf: Vec<u8>) {
        if self.filled {
            if buf.len() != self.capacity {
                return;
            }
        } else if buf.capacity() < self.capacity || buf.capacity() > 4 * self.capacity.max(1 << 16) {
            return;
        } else {
            buf.clear();
        }
        if let Ok(mut pool) = self.inner.lock()
            && pool.len() < self.keep
        {
            pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let pool = BufferPool::new(1024, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"data");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr, "the same buffer comes back");
        for _ in 0..5 {
            pool.give(Vec::with_capacity(1024));
        }
        assert_eq!(pool.inner.lock().map(|p| p.len()).unwrap_or(0), 2);
        pool.give(Vec::with_capacity(10));
        assert_eq!(pool.inner.lock().map(|p| p.len()).unwrap_or(0), 2);
    }

    #[test]
    fn filled_buffers_keep_their_length() {
        let pool = BufferPool::filled(1024, 2);
        let mut a = pool.take();
        assert_eq!(a.len(), 1024);
        a[0] = 7;
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!((b.len(), b.as_ptr()), (1024, ptr));
        pool.give(Vec::with_capacity(1024));
        assert_eq!(pool.inner.lock().map(|p| p.len()).unwrap_or(0), 0);
    }
}
