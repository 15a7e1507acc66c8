//! Device memory sub-allocation. Buffers up to [`DEDICATED_ABOVE`] bytes share [`BLOCK`]-sized
//! `VkDeviceMemory` blocks (first fit, freed ranges coalesced), so a process can hold far more
//! buffers than the driver's `maxMemoryAllocationCount` (often 4096); larger buffers get an
//! allocation of their own. Host-visible blocks are mapped once, for their whole life.

use ash::vk;
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;

/// Size of a shared block.
const BLOCK: u64 = 64 << 20;
/// Requests above this size get a dedicated allocation.
const DEDICATED_ABOVE: u64 = BLOCK / 4;

/// Where a buffer's memory lives.
pub(crate) struct Allocation {
    /// The memory object (shared with other buffers unless dedicated).
    pub(crate) memory: vk::DeviceMemory,
    /// Offset of the buffer in `memory`.
    pub(crate) offset: u64,
    /// Host address of the buffer's first byte, when mapped.
    pub(crate) ptr: Option<NonNull<u8>>,
    size: u64,
    /// Heap and block of a sub-allocation; `None` for a dedicated allocation.
    block: Option<(HeapKey, u64)>,
}

// SAFETY: the pointer refers to mapped device memory owned by the allocator; the buffer that
// owns this allocation orders all accesses through it against GPU work.
unsafe impl Send for Allocation {}
// SAFETY: as above; the allocation itself is never mutated after creation.
unsafe impl Sync for Allocation {}

/// Memory type index and whether the memory is mapped.
type HeapKey = (u32, bool);

struct Block {
    id: u64,
    memory: vk::DeviceMemory,
    ptr: Option<NonNull<u8>>,
    /// Free ranges: offset -> length.
    free: BTreeMap<u64, u64>,
}

impl Block {
    /// First fit of `size` bytes at `align`; returns the offset.
    fn take(&mut self, size: u64, align: u64) -> Option<u64> {
        let (start, len, at) = self.free.iter().find_map(|(&start, &len)| {
            let at = start.next_multiple_of(align);
            (at + size <= start + len).then_some((start, len, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        if at + size < start + len {
            self.free.insert(at + size, start + len - at - size);
        }
        Some(at)
    }

    /// Returns `[offset, offset + size)`, merging it with free neighbours.
    fn give(&mut self, mut offset: u64, mut size: u64) {
        if let Some((&prev, &len)) = self.free.range(..offset).next_back() {
            if prev + len == offset {
                self.free.remove(&prev);
                offset = prev;
                size += len;
            }
        }
        if let Some(len) = self.free.remove(&(offset + size)) {
            size += len;
        }
        self.free.insert(offset, size);
    }

    fn is_empty(&self) -> bool {
        self.free.get(&0) == Some(&BLOCK)
    }
}

/// Every block of a device, by memory type.
#[derive(Default)]
pub(crate) struct Heaps {
    heaps: HashMap<HeapKey, Vec<Block>>,
    next_id: u64,
}

// SAFETY: blocks hold mapped pointers to device memory only the allocator hands out; the
// heaps are used under the context's lock.
unsafe impl Send for Heaps {}

/// Allocates `size` bytes of memory type `type_index`, mapped when `map`.
fn allocate_memory(
    dev: &ash::Device,
    size: u64,
    type_index: u32,
    map: bool,
) -> Result<(vk::DeviceMemory, Option<NonNull<u8>>), vk::Result> {
    let info = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(type_index);
    // SAFETY: the device is alive; `type_index` is one of its memory types.
    let memory = unsafe { dev.allocate_memory(&info, None) }?;
    if !map {
        return Ok((memory, None));
    }
    // SAFETY: the caller picked a host-visible type; the memory is not mapped yet.
    match unsafe { dev.map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) } {
        Ok(p) => Ok((memory, NonNull::new(p.cast::<u8>()))),
        Err(r) => {
            // SAFETY: the memory is unused.
            unsafe { dev.free_memory(memory, None) };
            Err(r)
        }
    }
}

impl Heaps {
    /// Memory for a buffer with requirements `req` in type `type_index`.
    pub(crate) fn allocate(
        &mut self,
        dev: &ash::Device,
        req: &vk::MemoryRequirements,
        type_index: u32,
        map: bool,
    ) -> Result<Allocation, vk::Result> {
        if req.size > DEDICATED_ABOVE {
            let (memory, ptr) = allocate_memory(dev, req.size, type_index, map)?;
            return Ok(Allocation {
                memory,
                offset: 0,
                ptr,
                size: req.size,
                block: None,
            });
        }
        let key = (type_index, map);
        let align = req.alignment.max(1);
        let blocks = self.heaps.entry(key).or_default();
        let found = blocks.iter_mut().find_map(|b| {
            b.take(req.size, align)
                .map(|at| (b.id, b.memory, b.ptr, at))
        });
        let (id, memory, base, offset) = match found {
            Some(f) => f,
            None => {
                let (memory, ptr) = allocate_memory(dev, BLOCK, type_index, map)?;
                self.next_id += 1;
                let mut block = Block {
                    id: self.next_id,
                    memory,
                    ptr,
                    free: BTreeMap::from([(0, BLOCK)]),
                };
                let at = block
                    .take(req.size, align)
                    .expect("a fresh block fits a small request");
                let found = (block.id, memory, ptr, at);
                blocks.push(block);
                found
            }
        };
        // SAFETY: `offset + size` lies within the mapped block.
        let ptr = base.map(|p| unsafe { NonNull::new_unchecked(p.as_ptr().add(offset as usize)) });
        Ok(Allocation {
            memory,
            offset,
            ptr,
            size: req.size,
            block: Some((key, id)),
        })
    }

    /// Returns an allocation (its buffer is destroyed and no longer used by the GPU).
    pub(crate) fn free(&mut self, dev: &ash::Device, a: &Allocation) {
        let Some((key, id)) = a.block else {
            // SAFETY: a dedicated allocation belongs to the destroyed buffer alone.
            unsafe { dev.free_memory(a.memory, None) };
            return;
        };
        let Some(blocks) = self.heaps.get_mut(&key) else {
            return;
        };
        let Some(i) = blocks.iter().position(|b| b.id == id) else {
            return;
        };
        blocks[i].give(a.offset, a.size);
        // Keep at most one empty block per heap.
        if blocks[i].is_empty() && blocks.iter().filter(|b| b.is_empty()).count() > 1 {
            let block = blocks.swap_remove(i);
            // SAFETY: no buffer lives in the block any more.
            unsafe { dev.free_memory(block.memory, None) };
        }
    }

    /// Frees every block (when the device closes, after every buffer is gone).
    pub(crate) fn release(&mut self, dev: &ash::Device) {
        for block in self.heaps.drain().flat_map(|(_, blocks)| blocks) {
            // SAFETY: no buffer is alive any more (they hold the context that owns the heaps).
            unsafe { dev.free_memory(block.memory, None) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block {
            id: 1,
            memory: vk::DeviceMemory::null(),
            ptr: None,
            free: BTreeMap::from([(0, BLOCK)]),
        }
    }

    #[test]
    fn first_fit_aligns_and_coalesces() {
        let mut b = block();
        let x = b.take(100, 64).unwrap();
        let y = b.take(100, 256).unwrap();
        let z = b.take(10, 4).unwrap();
        assert_eq!((x, y), (0, 256));
        assert!(z >= 100 && z + 10 <= 256, "the gap before y is reused: {z}");
        b.give(y, 100);
        b.give(x, 100);
        b.give(z, 10);
        assert!(b.is_empty(), "{:?}", b.free);
        assert_eq!(b.take(BLOCK, 1), Some(0));
        assert_eq!(b.take(1, 1), None);
    }
}
