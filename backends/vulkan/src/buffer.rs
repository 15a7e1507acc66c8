//! Device memory: one `VkBuffer` per runtime buffer, its memory sub-allocated from shared blocks
//! (`alloc`; the runtime's pool recycles buffers, so steady-state loops allocate nothing). On
//! unified-memory devices the memory stays mapped and the host copies directly; otherwise copies
//! go through staging buffers.

use crate::alloc::Allocation;
use crate::context::Context;
use crate::error::{alloc_error, vk_error};
use ash::vk;
use ferrograd_runtime::Result;
use std::ptr::NonNull;
use std::sync::Arc;

/// A buffer and its memory, destroyed when the last reference (the runtime's, or a pending
/// command buffer's) goes away.
pub(crate) struct BufferInner {
    ctx: Arc<Context>,
    pub(crate) raw: vk::Buffer,
    memory: Allocation,
    /// Size in bytes as requested.
    pub(crate) len: u64,
    /// Size in bytes as allocated (a multiple of 16, at least 16).
    pub(crate) size: u64,
    /// Host address of the mapped memory, if mapped.
    mapped: Option<NonNull<u8>>,
}

// SAFETY: Vulkan handles may be used from any thread (the device serializes access to queues and
// command buffers under its batch lock); the mapped pointer is only used for copies that the
// device orders against GPU work.
unsafe impl Send for BufferInner {}
// SAFETY: as above; no method mutates the struct.
unsafe impl Sync for BufferInner {}

/// The runtime's view of a Vulkan buffer (`RawBuffer` holds one).
pub struct VulkanBuffer {
    pub(crate) inner: Arc<BufferInner>,
}

impl BufferInner {
    /// Creates a buffer of `size` bytes (at least 16) in memory type `type_index`, mapped when
    /// `map` is set.
    pub(crate) fn new(
        ctx: &Arc<Context>,
        size: usize,
        usage: vk::BufferUsageFlags,
        type_index: u32,
        map: bool,
    ) -> Result<Arc<BufferInner>> {
        let dev = &ctx.raw;
        let bytes = (size.max(16) as u64)
            .checked_next_multiple_of(16)
            .ok_or_else(|| alloc_error(&ctx.name, size, vk::Result::ERROR_OUT_OF_DEVICE_MEMORY))?;
        let info = vk::BufferCreateInfo::default()
            .size(bytes)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: the device is alive and `info` is a valid create info.
        let raw = unsafe { dev.create_buffer(&info, None) }
            .map_err(|r| alloc_error(&ctx.name, size, r))?;
        // SAFETY: `raw` was just created on this device.
        let req = unsafe { dev.get_buffer_memory_requirements(raw) };
        let destroy = || {
            // SAFETY: `raw` is unused and bound to nothing else.
            unsafe { dev.destroy_buffer(raw, None) }
        };
        if req.memory_type_bits & (1 << type_index) == 0 {
            destroy();
            return Err(vk_error(
                &ctx.name,
                "choosing buffer memory",
                vk::Result::ERROR_FORMAT_NOT_SUPPORTED,
            ));
        }
        let memory = match ctx.heaps.lock().allocate(dev, &req, type_index, map) {
            Ok(m) => m,
            Err(r) => {
                destroy();
                return Err(alloc_error(&ctx.name, size, r));
            }
        };
        // SAFETY: the allocation is unused, large enough and aligned for the buffer's
        // requirements, in a memory type the buffer accepts.
        if let Err(r) = unsafe { dev.bind_buffer_memory(raw, memory.memory, memory.offset) } {
            destroy();
            ctx.heaps.lock().free(dev, &memory);
            return Err(vk_error(&ctx.name, "binding buffer memory", r));
        }
        let mapped = memory.ptr;
        Ok(Arc::new(BufferInner {
            ctx: ctx.clone(),
            raw,
            memory,
            len: size as u64,
            size: bytes,
            mapped,
        }))
    }

    /// True if the host can copy to and from the buffer directly.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// Copies `data` into the mapped buffer at byte `offset`. The caller orders this against
    /// GPU work.
    pub(crate) fn write_mapped(&self, offset: u64, data: &[u8]) {
        let ptr = self.mapped.expect("write_mapped on a mapped buffer");
        assert!(
            offset
                .checked_add(data.len() as u64)
                .is_some_and(|end| end <= self.size),
            "write of {} bytes at {offset} into a buffer of {}",
            data.len(),
            self.size
        );
        // SAFETY: the mapping covers `size` bytes, `offset + data.len()` of them are in range
        // (checked above; `offset` fits a usize because the mapping does), the memory is
        // host-coherent and does not overlap `data`; no GPU work touches the buffer (the
        // device synchronized first).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                ptr.as_ptr().add(offset as usize),
                data.len(),
            )
        };
    }

    /// Copies `out.len()` bytes of the mapped buffer starting at byte `offset` into `out`. The
    /// caller orders this against GPU work.
    pub(crate) fn read_mapped(&self, offset: u64, out: &mut [u8]) {
        let ptr = self.mapped.expect("read_mapped on a mapped buffer");
        assert!(
            offset
                .checked_add(out.len() as u64)
                .is_some_and(|end| end <= self.size),
            "read of {} bytes at {offset} from a buffer of {}",
            out.len(),
            self.size
        );
        // SAFETY: as in `write_mapped`, with the GPU's writes made visible to the host by the
        // batch's final barrier and fence wait.
        unsafe {
            std::ptr::copy_nonoverlapping(
                ptr.as_ptr().add(offset as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        };
    }
}

impl Drop for BufferInner {
    fn drop(&mut self) {
        // SAFETY: the last reference is gone, so no pending command buffer uses the buffer
        // (batches hold references until their fence signals).
        unsafe { self.ctx.raw.destroy_buffer(self.raw, None) };
        self.ctx.heaps.lock().free(&self.ctx.raw, &self.memory);
    }
}
