//! [`VulkanDevice`]: the [`Device`] implementation tying instance, memory, compilation and
//! batched launches together, and [`VulkanBackend`], which registers the devices found.

use crate::batch::{Batch, KernelTime};
use crate::buffer::{BufferInner, VulkanBuffer};
use crate::context::Context;
use crate::error::{backend_error, NO_DEVICE};
use crate::info::Caps;
use crate::instance::Instance;
use crate::kernel::{KernelInner, VulkanKernel};
use crate::spirv;
use ash::vk;
use ferrograd_ir::lower::LoweringTarget;
use ferrograd_ir::validate;
use ferrograd_ir::{DType, Program};
use ferrograd_runtime::{Backend, CompiledKernel, Device, DeviceInfo, Error, RawBuffer, Result};
use parking_lot::Mutex;
use std::sync::Arc;

/// How a [`VulkanDevice`] is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VulkanOptions {
    /// Copy through staging buffers even where the device memory is host-visible (unified
    /// memory), as on a discrete GPU. For testing the staging path on integrated/CPU devices.
    pub force_staging: bool,
    /// Time every launch with timestamp queries ([`VulkanDevice::kernel_times`]). The backend
    /// registered with the runtime enables it when `FERROGRAD_VULKAN_PROFILE=1`.
    pub profile: bool,
    /// Dispatch at most this many workgroups per dimension (below the device's own limit), so
    /// the grid-stride loops that cover larger grids can be exercised on small grids.
    pub max_workgroup_count: Option<u32>,
    /// Bind descriptors from per-batch descriptor pools even where `VK_KHR_push_descriptor`
    /// exists (the path drivers without the extension take).
    pub descriptor_pools: bool,
    /// Pack bool/i8/u8 and f16/bf16 buffers into 32-bit words even where 8/16-bit storage
    /// exists (the path devices without it take).
    pub packed_storage: bool,
    /// Reduce across workgroups without subgroup operations even where they exist (the path
    /// devices without subgroup arithmetic take).
    pub no_subgroups: bool,
}

/// One Vulkan device, named `vulkan:N` (N in the order best device first).
pub struct VulkanDevice {
    ctx: Arc<Context>,
    caps: Caps,
    info: DeviceInfo,
    batch: Mutex<Batch>,
}

const STORAGE_USAGE: vk::BufferUsageFlags = vk::BufferUsageFlags::from_raw(
    vk::BufferUsageFlags::STORAGE_BUFFER.as_raw()
        | vk::BufferUsageFlags::TRANSFER_SRC.as_raw()
        | vk::BufferUsageFlags::TRANSFER_DST.as_raw(),
);

impl VulkanDevice {
    /// Opens every Vulkan device present, best first. Errors when the loader is missing or no
    /// device exists; devices that fail to open (driver errors)
    /// are skipped when at least one other opens.
    pub fn open_all(options: VulkanOptions) -> Result<Vec<VulkanDevice>> {
        let instance = Instance::new()?;
        let physical = instance.physical_devices()?;
        if physical.is_empty() {
            return Err(backend_error(NO_DEVICE));
        }
        let mut devices = Vec::new();
        let mut failures = Vec::new();
        for pd in physical {
            let name = format!("vulkan:{}", devices.len());
            match Self::open_physical(&instance, pd, name, options) {
                Ok(d) => devices.push(d),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if devices.is_empty() {
            return Err(backend_error(format!(
                "no Vulkan device could be opened: {}",
                failures.join("; ")
            )));
        }
        Ok(devices)
    }

    fn open_physical(
        instance: &Arc<Instance>,
        pd: vk::PhysicalDevice,
        name: String,
        options: VulkanOptions,
    ) -> Result<VulkanDevice> {
        let mut caps = Caps::query(instance, pd);
        if let Some(limit) = options.max_workgroup_count {
            let groups = &mut caps.features.max_groups;
            *groups = groups.map(|g| g.min(limit.max(1)));
        }
        if options.descriptor_pools {
            caps.push_descriptor = false;
        }
        if options.no_subgroups {
            caps.features.subgroup_arith = false;
        }
        if options.packed_storage {
            caps.features.storage8 = false;
            caps.features.storage16 = false;
        }
        let ctx = Context::open(
            instance.clone(),
            pd,
            &caps,
            name.clone(),
            options.force_staging,
        )?;
        let batch = Mutex::new(Batch::new(&ctx, options.profile, caps.timestamp_period)?);
        let info = caps.device_info(name);
        Ok(VulkanDevice {
            ctx,
            caps,
            info,
            batch,
        })
    }

    /// The SPIR-V module generated for `program` (what [`Device::compile`] hands the driver).
    pub fn spirv(&self, program: &Program) -> Result<Vec<u32>> {
        Ok(self.translate(program)?.words)
    }

    /// Device time of every launch completed since the last call, oldest first (empty unless
    /// opened with [`VulkanOptions::profile`]). Launches complete at `synchronize` or `read`.
    pub fn kernel_times(&self) -> Vec<KernelTime> {
        self.batch.lock().take_times()
    }

    /// True when buffers are host-visible and copied directly (unified memory).
    pub fn is_unified_memory(&self) -> bool {
        self.ctx.memory.mapped
    }

    fn compile_error(&self, program: &Program, reason: String) -> Error {
        Error::Compile {
            device: self.info.name.clone(),
            kernel: program.name.clone(),
            reason,
        }
    }

    fn device_error(&self, reason: String) -> Error {
        Error::Device {
            device: self.info.name.clone(),
            reason,
        }
    }

    fn translate(&self, program: &Program) -> Result<spirv::Shader> {
        let types = validate::check(program).map_err(|r| self.compile_error(program, r))?;
        let f = &self.caps.features;
        for (i, p) in program.params.iter().enumerate() {
            let bytes = p.len as u64 * p.dtype.size() as u64;
            if bytes > f.max_buffer_range {
                return Err(self.compile_error(
                    program,
                    format!(
                        "param {i} holds {bytes} bytes ({} x {}); the device binds at most {} bytes per storage buffer (maxStorageBufferRange)",
                        p.len, p.dtype, f.max_buffer_range
                    ),
                ));
            }
        }
        let push_limit = if self.caps.push_descriptor {
            self.caps.max_push_descriptors
        } else {
            u32::MAX
        };
        let limit = push_limit
            .min(crate::batch::MAX_BINDINGS as u32)
            .min(self.caps.max_storage_buffers) as usize;
        if program.params.len() > limit {
            return Err(self.compile_error(
                program,
                format!(
                    "{} buffers; the device binds at most {limit} per kernel",
                    program.params.len()
                ),
            ));
        }
        spirv::translate(program, &types, f).map_err(|r| self.compile_error(program, r))
    }

    fn buffer<'a>(&self, raw: &'a RawBuffer) -> Result<&'a Arc<BufferInner>> {
        raw.downcast_ref::<VulkanBuffer>()
            .map(|b| &b.inner)
            .ok_or_else(|| {
                self.device_error("the buffer is not Vulkan memory of this backend".into())
            })
    }

    fn staging(&self, bytes: usize) -> Result<Arc<BufferInner>> {
        let usage = vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST;
        BufferInner::new(&self.ctx, bytes, usage, self.ctx.memory.staging, true)
    }
}

impl Device for VulkanDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn allocate(&self, bytes: usize) -> Result<RawBuffer> {
        if bytes as u64 > self.caps.max_allocation {
            return Err(Error::OutOfMemory {
                device: self.info.name.clone(),
                bytes,
                reason: format!(
                    "larger than the device's largest allocation ({} bytes)",
                    self.caps.max_allocation
                ),
            });
        }
        let inner = BufferInner::new(
            &self.ctx,
            bytes,
            STORAGE_USAGE,
            self.ctx.memory.device,
            self.ctx.memory.mapped,
        )?;
        Ok(Box::new(VulkanBuffer { inner }))
    }

    fn write_at(&self, dst: &RawBuffer, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.buffer(dst)?;
        let offset = offset as u64;
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > dst.len)
        {
            return Err(self.device_error(format!(
                "cannot write {} bytes at {offset} into a buffer of {} bytes",
                data.len(),
                dst.len
            )));
        }
        let mut batch = self.batch.lock();
        // With no work recorded or in flight nothing can still use the buffer: copy directly.
        // Otherwise (it may be a recycled buffer that pending work reads or writes) the copy is
        // recorded in order, through a staging buffer, without waiting.
        if dst.is_mapped() && batch.is_idle() {
            dst.write_mapped(offset, data);
            return Ok(());
        }
        let staging = self.staging(data.len())?;
        staging.write_mapped(0, data);
        batch.copy((&staging, 0), (dst, offset), data.len() as u64)
    }

    fn read_at(&self, src: &RawBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.buffer(src)?;
        let offset = offset as u64;
        if offset
            .checked_add(out.len() as u64)
            .is_none_or(|end| end > src.len)
        {
            return Err(self.device_error(format!(
                "cannot read {} bytes at {offset} from a buffer of {} bytes",
                out.len(),
                src.len
            )));
        }
        let mut batch = self.batch.lock();
        if src.is_mapped() {
            batch.synchronize()?;
            src.read_mapped(offset, out);
            return Ok(());
        }
        let staging = self.staging(out.len())?;
        batch.copy((src, offset), (&staging, 0), out.len() as u64)?;
        batch.synchronize()?;
        staging.read_mapped(0, out);
        Ok(())
    }

    fn compile(&self, program: &Program) -> Result<CompiledKernel> {
        let shader = self.translate(program)?;
        let inner = KernelInner::create(&self.ctx, program, &shader)?;
        tracing::debug!(kernel = %program.name, words = shader.words.len(), "compiled Vulkan kernel");
        Ok(Arc::new(VulkanKernel { inner }))
    }

    fn launch(&self, kernel: &CompiledKernel, buffers: &[&RawBuffer]) -> Result<()> {
        let kernel = &kernel
            .downcast_ref::<VulkanKernel>()
            .ok_or_else(|| {
                self.device_error("the kernel was not compiled by the Vulkan backend".into())
            })?
            .inner;
        if buffers.len() != kernel.params.len() {
            return Err(self.device_error(format!(
                "kernel `{}` takes {} buffers, {} were given",
                kernel.name,
                kernel.params.len(),
                buffers.len()
            )));
        }
        let mut inners = Vec::with_capacity(buffers.len());
        for (i, (raw, param)) in buffers.iter().zip(&kernel.params).enumerate() {
            let b = self.buffer(raw)?;
            let needed = param.len as u64 * param.dtype.size() as u64;
            if b.len < needed {
                return Err(self.device_error(format!(
                    "buffer {i} of kernel `{}` holds {} bytes; the kernel needs {needed} ({} x {})",
                    kernel.name, b.len, param.len, param.dtype
                )));
            }
            inners.push(b);
        }
        self.batch
            .lock()
            .dispatch(kernel, &inners, self.caps.features.max_buffer_range)
    }

    fn synchronize(&self) -> Result<()> {
        self.batch.lock().synchronize()
    }

    fn preferred_lanes(&self, _dtype: DType) -> u8 {
        1
    }

    fn lowering_target(&self, optimize: bool) -> LoweringTarget {
        // One invocation per lane is the GPU's vector; 32-bit indices are native.
        LoweringTarget {
            lanes32: 1,
            optimize,
            wide_index: false,
            index_egraph: true,
        }
    }

    fn workgroup_size(&self) -> Option<usize> {
        let f = &self.caps.features;
        Some(f.max_invocations.min(f.max_local[0]).min(256) as usize)
    }
}

/// The Vulkan backend for the runtime's registry: opens every device at first use.
pub struct VulkanBackend;

impl Backend for VulkanBackend {
    fn name(&self) -> &'static str {
        "vulkan"
    }
    fn open(&self) -> Result<Vec<Arc<dyn Device>>> {
        let profile = std::env::var("FERROGRAD_VULKAN_PROFILE").is_ok_and(|v| v == "1");
        Ok(VulkanDevice::open_all(VulkanOptions {
            profile,
            ..VulkanOptions::default()
        })?
        .into_iter()
        .map(|d| Arc::new(d) as Arc<dyn Device>)
        .collect())
    }
}
