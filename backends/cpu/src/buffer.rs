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

    /// The byte range `offset..offset + len`, if it lies inside the buffer; otherwise why not.
    fn range(&self, what: &str, offset: usize, len: usize) -> Result<(), String> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes => Ok(()),
            _ => Err(format!(
                "cannot {what} bytes {offset}..{} of a buffer of {} bytes",
                offset as u128 + len as u128,
                self.bytes
            )),
        }
    }

    /// Copies `data` into the buffer at byte `offset`.
    pub(crate) fn write_from(&self, offset: usize, data: &[u8]) -> Result<(), String> {
        self.range("write", offset, data.len())?;
        // SAFETY: `offset..offset + data.len()` lies inside the allocation (checked above),
        // which is separate from `data`, a live Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    /// Copies `out.len()` bytes starting at byte `offset` of the buffer into `out`.
    pub(crate) fn read_into(&self, offset: usize, out: &mut [u8]) -> Result<(), String> {
        self.range("read", offset, out.len())?;
        // SAFETY: `offset..offset + out.len()` lies inside the allocation (checked above), which
        // cannot overlap `out`, an exclusively borrowed Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
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
            buf.read_into(0, &mut out).unwrap();
            assert!(out.iter().all(|&b| b == 0));
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            buf.write_from(0, &data).unwrap();
            buf.read_into(0, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn oversized_copies_and_allocations_fail() {
        let buf = CpuBuffer::zeroed(4).unwrap();
        assert!(buf.write_from(0, &[0; 5]).is_err());
        assert!(buf.read_into(0, &mut [0; 5]).is_err());
        assert!(buf.write_from(3, &[0; 2]).is_err());
        assert!(buf.read_into(usize::MAX, &mut [0; 1]).is_err());
        assert!(CpuBuffer::zeroed(usize::MAX - 8).is_err());
    }
}
