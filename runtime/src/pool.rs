//! A size-bucketed pool of freed device memory, so steady-state loops allocate nothing.

use crate::device::RawBuffer;
use std::collections::HashMap;

/// Rounds a request up to its bucket: sizes keep their top three significant bits, so a bucket
/// wastes at most a fifth of its size.
pub fn bucket_size(bytes: usize) -> usize {
    if bytes <= 64 {
        return 64;
    }
    let top = usize::BITS - 1 - bytes.leading_zeros();
    let unit = 1usize << (top - 2);
    bytes.div_ceil(unit) * unit
}

/// Freed buffers by bucket size, with a cap on the bytes kept.
pub struct Pool {
    free: HashMap<usize, Vec<RawBuffer>>,
    cached_bytes: usize,
    limit_bytes: usize,
}

impl Pool {
    /// An empty pool keeping at most `limit_bytes` of freed memory.
    pub fn new(limit_bytes: usize) -> Self {
        Pool {
            free: HashMap::new(),
            cached_bytes: 0,
            limit_bytes,
        }
    }

    /// A freed buffer of exactly `bucket` bytes, if one is cached.
    pub fn take(&mut self, bucket: usize) -> Option<RawBuffer> {
        let raw = self.free.get_mut(&bucket)?.pop()?;
        self.cached_bytes -= bucket;
        Some(raw)
    }

    /// Returns a buffer of `bucket` bytes; it is dropped (freed) when the pool is full.
    pub fn put(&mut self, bucket: usize, raw: RawBuffer) {
        if self.cached_bytes + bucket > self.limit_bytes {
            return;
        }
        self.cached_bytes += bucket;
        self.free.entry(bucket).or_default().push(raw);
    }

    /// Bytes currently cached.
    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// Frees everything cached.
    pub fn clear(&mut self) {
        self.free.clear();
        self.cached_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_waste_at_most_a_fifth() {
        for bytes in [
            65usize,
            100,
            1000,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let b = bucket_size(bytes);
            assert!(b >= bytes && (b - bytes) * 5 <= b, "{bytes} -> {b}");
        }
        assert_eq!(bucket_size(4096), 4096);
        assert_eq!(bucket_size(5000), 5120);
    }

    #[test]
    fn pool_reuses_and_caps() {
        let mut p = Pool::new(1000);
        p.put(512, Box::new(1u8));
        assert!(p.take(256).is_none());
        assert!(p.take(512).is_some());
        p.put(800, Box::new(2u8));
        p.put(800, Box::new(3u8)); // over the cap: dropped
        assert_eq!(p.cached_bytes(), 800);
    }
}
