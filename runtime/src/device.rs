//! The contract every backend implements. Small on purpose: memory, copies, compile, launch.

use crate::error::Result;
use ferrograd_ir::lower::LoweringTarget;
use ferrograd_ir::{DType, Program};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Device memory as the backend represents it. The runtime never looks inside.
pub type RawBuffer = Box<dyn Any + Send + Sync>;

/// A compiled kernel as the backend represents it.
pub type CompiledKernel = Arc<dyn Any + Send + Sync>;

/// What kind of hardware a device is; used to pick the best default device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    /// A CPU.
    Cpu,
    /// A software (CPU-emulated) GPU such as lavapipe.
    VirtualGpu,
    /// A GPU sharing memory with the CPU.
    IntegratedGpu,
    /// A GPU with its own memory.
    DiscreteGpu,
}

/// What `ferrograd devices` shows about a device.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Canonical name (`cpu`, `vulkan:0`, ...).
    pub name: String,
    /// Human-readable description (model, driver).
    pub description: String,
    /// Kind of hardware.
    pub kind: DeviceKind,
    /// Memory available to tensors, in bytes.
    pub memory_bytes: u64,
    /// Parallel compute units (cores, SMs); 0 when the driver does not report them.
    pub compute_units: usize,
    /// Widest SIMD vector in bytes.
    pub vector_bytes: usize,
    /// Supported dtypes.
    pub dtypes: Vec<DType>,
    /// Other capabilities worth knowing, as `key=value` strings.
    pub extra: Vec<String>,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dtypes: Vec<&str> = self.dtypes.iter().map(|d| d.name()).collect();
        write!(
            f,
            "{:<12} {:?} — {}\n    memory {:.1} GiB, {} compute units, {}-byte vectors\n    dtypes: {}",
            self.name,
            self.kind,
            self.description,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            match self.compute_units {
                0 => "unknown".to_string(),
                n => n.to_string(),
            },
            self.vector_bytes,
            dtypes.join(" ")
        )?;
        for e in &self.extra {
            write!(f, "\n    {e}")?;
        }
        Ok(())
    }
}

/// A compute device. Calls on one device may come from several threads.
pub trait Device: Send + Sync + 'static {
    /// Capabilities and identity.
    fn info(&self) -> &DeviceInfo;
    /// Allocates `bytes` bytes of device memory (contents unspecified).
    fn allocate(&self, bytes: usize) -> Result<RawBuffer>;
    /// Copies `data` into `dst` at byte `offset`, leaving the other bytes of `dst` as they
    /// were. A range past the buffer's end is an error. Ordered like [`Device::write`].
    fn write_at(&self, dst: &RawBuffer, offset: usize, data: &[u8]) -> Result<()>;
    /// Copies `out.len()` bytes of `src` starting at byte `offset` into `out`, after every
    /// launch and copy before it. A range past the buffer's end is an error.
    fn read_at(&self, src: &RawBuffer, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Copies `data` into the start of `dst`.
    fn write(&self, dst: &RawBuffer, data: &[u8]) -> Result<()> {
        self.write_at(dst, 0, data)
    }
    /// Copies the start of `src` into `out`.
    fn read(&self, src: &RawBuffer, out: &mut [u8]) -> Result<()> {
        self.read_at(src, 0, out)
    }
    /// Turns a Program into device code. The runtime caches the result by the Program's hash.
    fn compile(&self, program: &Program) -> Result<CompiledKernel>;
    /// Runs a compiled kernel with `buffers` bound to the Program's params, in order.
    fn launch(&self, kernel: &CompiledKernel, buffers: &[&RawBuffer]) -> Result<()>;
    /// Waits for every launched kernel and copy to finish.
    fn synchronize(&self) -> Result<()>;
    /// Lanes the kernel optimizer should use for vectors of `dtype` (1 disables vectors).
    fn preferred_lanes(&self, dtype: DType) -> u8;
    /// Number of parallel workers the CPU-style launch splits across (for heuristics).
    fn parallelism(&self) -> usize {
        self.info().compute_units.max(1)
    }
    /// What the kernel lowering may assume (`optimize` comes from `FERROGRAD_OPT`). The default
    /// suits a CPU: the preferred f32 lanes, and 64-bit indices on CPUs.
    fn lowering_target(&self, optimize: bool) -> LoweringTarget {
        LoweringTarget {
            lanes32: self.preferred_lanes(DType::F32),
            optimize,
            wide_index: self.info().kind == DeviceKind::Cpu,
            index_egraph: true,
        }
    }
    /// Invocations per workgroup for workgroup (shared-memory) reductions, on devices that run
    /// them ([`ferrograd_ir::lower_gpu`]); `None` keeps CPU-shaped kernels.
    fn workgroup_size(&self) -> Option<usize> {
        None
    }
    /// Copies the first `bytes` bytes of `src` (a buffer of this device) into `dst` (a buffer of
    /// `to`) without the data passing through this process, when the two devices can do that
    /// (two remote devices: worker to worker). `Ok(false)` means they cannot, and the runtime
    /// reads and writes instead. The default cannot.
    fn copy_direct(
        &self,
        _src: &RawBuffer,
        _to: &dyn Device,
        _dst: &RawBuffer,
        _bytes: usize,
    ) -> Result<bool> {
        Ok(false)
    }
}
