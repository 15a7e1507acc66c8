//! Device memory of the CPU backend: 64-byte aligned, zero-initialised heap allocations.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Alignment of every buffer: a cache line, and enough for any SIMD load.
pub(crate) const BUFFER_ALIGN: usize = 64;

/// A heap allocation holding a buffer's bytes.
///
/// The bytes are only reached through the raw pointer (never through a Rust reference that
/// outlives a call), so kernels and copies may read and write them through a shared
/// `&CpuBuffer`. Ordering concurrent accesses is the runtime's job, as on any device.
pub(crate) struct CpuBuffer {
    ptr: NonNull<u8>,
    bytes: usize,
    layout: Layout,
}

// SAFETY: `CpuBuffer` owns its allocation exclusively; the pointer is never shared with another
// owner, so moving the buffer to another thread moves the ownership with it.
unsafe impl Send for CpuBuffer {}
// SAFETY: every access goes through the raw pointer inside `read_into`, `write_from` or a kernel
// launch; none of them creates long-lived references, and callers order conflicting accesses
// (the Device contract), exactly like device memory of any other backend.
unsafe impl Sync for CpuBuffer {}

impl CpuBuffer {
    /// Allocates `bytes` zeroed bytes. A zero-byte buffer still owns a one-byte allocation so
    /// its pointer is valid and aligned. Returns the reason on failure.
    pub(crate) fn zeroed(bytes: usize) -> Result<CpuBuffer, String> {
        let layout = Layout::from_size_align(bytes.max(1), BUFFER_ALIGN)
            .map_err(|_| format!("{bytes} bytes exceed the largest possible allocation"))?;
        // SAFETY: `layout` has a non-zero size (at least one byte) and a power-of-two alignment.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw)
            .ok_or_else(|| "the system allocator returned no memory".to_string())?;
        Ok(CpuBuffer { ptr, bytes, layout })
    }

    /// Size in bytes, as requested.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// The first byte, for kernels.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies `data` into the start of the buffer.
    pub(crate) fn write_from(&self, data: &[u8]) -> Result<(), String> {
        if data.len() > self.bytes {
            return Err(format!(
                "cannot write {} bytes into a buffer of {} bytes",
                data.len(),
                self.bytes
            ));
        }
        // SAFETY: the destination holds at least `data.len()` bytes (checked above) and is a
        // separate allocation from `data`, which is a live Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr(), data.len()) };
        Ok(())
    }

    /// Copies the start of the buffer into `out`.
    pub(crate) fn read_into(&self, out: &mut [u8]) -> Result<(), String> {
        if out.len() > self.bytes {
            return Err(format!(
                "cannot read {} bytes from a buffer of {} bytes",
                out.len(),
                self.bytes
            ));
        }
        // SAFETY: the source holds at least `out.len()` bytes (checked above) and cannot overlap
        // `out`, which is an exclusively borrowed Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this same layout and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_copy_bytes() {
        for size in [0usize, 1, 3, 64, 1000] {
            let buf = CpuBuffer::zeroed(size).unwrap();
            assert_eq!(buf.as_ptr() as usize % BUFFER_ALIGN, 0);
            let mut out = vec![7u8; size];
            buf.read_into(&mut out).unwrap();
            assert!(out.iter().all(|&b| b == 0));
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            buf.write_from(&data).unwrap();
            buf.read_into(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn oversized_copies_and_allocations_fail() {
        let buf = CpuBuffer::zeroed(4).unwrap();
        assert!(buf.write_from(&[0; 5]).is_err());
        assert!(buf.read_into(&mut [0; 5]).is_err());
        assert!(CpuBuffer::zeroed(usize::MAX - 8).is_err());
    }
}
