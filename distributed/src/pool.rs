//! Reuse of the large buffers bulk transfers go through (received frames, write chunks on the
//! client, read chunks on the worker).
//!
//! A fresh 16 MiB buffer costs a page fault and a page clearing per 4 KiB page on first touch,
//! and freeing it unmaps it again; on the bulk path that was ~13% of the CPU time. Buffers of
//! at least [`POOLED_MIN`] bytes are taken from a process-wide pool and return to it when the
//! last [`Bytes`] view of them is dropped (wherever that happens: the writer task after sending,
//! the session after writing to the device). The pool keeps at most [`POOL_BUFFERS`] buffers
//! and [`POOL_BYTES`] bytes; beyond that a returned buffer is freed.

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Buffers smaller than this are ordinary allocations (cheap, from the allocator's caches).
pub const POOLED_MIN: usize = 256 << 10;
/// Most buffers kept for reuse.
pub const POOL_BUFFERS: usize = 12;
/// Most bytes of capacity kept for reuse.
pub const POOL_BYTES: usize = 256 << 20;

/// A pool of byte buffers.
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers handed out that came from the pool (for tests and diagnostics).
    reused: AtomicU64,
}

/// A buffer taken from a [`BufferPool`], returned to it on drop.
pub struct Pooled {
    data: Vec<u8>,
    pool: &'static BufferPool,
}

impl Pooled {
    /// The bytes (the vector's length; its capacity may be larger).
    pub fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// A shared view that returns the buffer to its pool when the last view is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.data));
    }
}

impl BufferPool {
    /// The process's pool.
    pub fn global() -> &'static BufferPool {
        static POOL: OnceLock<BufferPool> = OnceLock::new();
        POOL.get_or_init(BufferPool::new)
    }

    fn new() -> BufferPool {
        BufferPool {
            free: Mutex::new(Vec::new()),
            reused: AtomicU64::new(0),
        }
    }

    /// An empty vector with room for `capacity` bytes (a reused one when the pool holds one
    /// large enough: the smallest such).
    pub fn empty(&'static self, capacity: usize) -> Pooled {
        let mut data = self.reuse(capacity).unwrap_or_default();
        data.clear();
        data.reserve_exact(capacity);
        Pooled { data, pool: self }
    }

    /// A vector of exactly `len` initialized bytes whose contents are unspecified (left over
    /// from an earlier use, or zero), for callers that overwrite all of them.
    pub fn filled(&'static self, len: usize) -> Pooled {
        let mut data = self.reuse(len).unwrap_or_default();
        if data.len() >= len {
            data.truncate(len);
        } else {
            data.resize(len, 0);
        }
        Pooled { data, pool: self }
    }

    /// A copy of `bytes` as shared bytes (pooled when large).
    pub fn copy(&'static self, bytes: &[u8]) -> Bytes {
        if bytes.len() < POOLED_MIN {
            return Bytes::copy_from_slice(bytes);
        }
        let mut buf = self.empty(bytes.len());
        buf.vec().extend_from_slice(bytes);
        buf.freeze()
    }

    /// How many buffers handed out so far were reused ones.
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    fn reuse(&self, capacity: usize) -> Option<Vec<u8>> {
        if capacity < POOLED_MIN {
            return None;
        }
        let mut free = self.free.lock();
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= capacity)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        self.reused.fetch_add(1, Ordering::Relaxed);
        Some(free.swap_remove(best))
    }

    fn give_back(&self, data: Vec<u8>) {
        if data.capacity() < POOLED_MIN {
            return;
        }
        let mut free = self.free.lock();
        let held: usize = free.iter().map(Vec::capacity).sum();
        if free.len() < POOL_BUFFERS && held + data.capacity() <= POOL_BYTES {
            free.push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of the test's own, so parallel tests do not share it.
    fn pool() -> &'static BufferPool {
        Box::leak(Box::new(BufferPool::new()))
    }

    #[test]
    fn large_buffers_are_reused_after_the_last_view_drops() {
        let pool = pool();
        let data: Vec<u8> = (0..POOLED_MIN + 3).map(|i| (i % 253) as u8).collect();
        let first = pool.copy(&data);
        let ptr = first.as_ptr();
        let slice = first.slice(5..9);
        drop(first);
        assert_eq!(&slice[..], &data[5..9]);
        // Still referenced by `slice`: a new buffer cannot be the same one.
        let other = pool.filled(POOLED_MIN);
        assert_ne!(other.as_ref().as_ptr(), ptr);
        assert_eq!(pool.reused(), 0);
        drop(other);
        drop(slice);
        // Both are back; the smallest adequate one is handed out, with the copy intact.
        let again = pool.copy(&data);
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(&again[..], &data[..]);
        assert_eq!(pool.reused(), 1);
        // The other one, its length cut to what was asked for.
        let filled = pool.filled(POOLED_MIN - 1 + 1);
        assert_eq!(filled.as_ref().len(), POOLED_MIN);
        assert_eq!(pool.reused(), 2);
    }

    #[test]
    fn small_buffers_are_not_pooled_and_the_pool_is_bounded() {
        let pool = pool();
        let small = pool.copy(&[1, 2, 3]);
        assert_eq!(&small[..], &[1, 2, 3]);
        let mut empty = pool.empty(16);
        assert!(empty.vec().is_empty());
        empty.vec().push(9);
        assert_eq!(empty.freeze()[..], [9]);
        assert_eq!(pool.free.lock().len(), 0);
        let many: Vec<Pooled> = (0..POOL_BUFFERS + 4)
            .map(|_| pool.filled(POOLED_MIN))
            .collect();
        drop(many);
        assert_eq!(pool.free.lock().len(), POOL_BUFFERS);
        let one = pool.filled(POOLED_MIN);
        let huge = pool.empty(POOL_BYTES);
        drop(huge);
        assert_eq!(
            pool.free.lock().len(),
            POOL_BUFFERS - 1,
            "over the byte cap: freed"
        );
        drop(one);
        assert_eq!(pool.free.lock().len(), POOL_BUFFERS);
    }
}
