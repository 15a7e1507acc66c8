//! [`CpuDevice`]: the [`Device`] implementation tying buffers, compilation and launches together.

use crate::buffer::CpuBuffer;
use crate::info::{self, VECTOR_BYTES};
use crate::jit::Jit;
use crate::kernel::CpuKernel;
use crate::launch;
use crate::validate::WORKGROUP_ERROR;
use ferrograd_ir::{DType, Program};
use ferrograd_runtime::{CompiledKernel, Device, DeviceInfo, Error, RawBuffer, Result};
use std::sync::Arc;

/// The device name.
const NAME: &str = "cpu";

/// How f32 `exp2`, `log2` and `sin` are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MathImpl {
    /// Inline polynomial code, vectorized with the surrounding kernel (the default).
    #[default]
    Inline,
    /// A call to the C library (`exp2f`, `log2f`, `sinf`) per lane.
    Libm,
}

/// Code generation options of a [`CpuDevice`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuOptions {
    /// Implementation of f32 transcendentals.
    pub f32_math: MathImpl,
}

/// The host CPU: programs are compiled to native code with Cranelift and launched on the rayon
/// global thread pool, splitting launch dimension 0 into contiguous chunks.
pub struct CpuDevice {
    info: DeviceInfo,
    jit: Jit,
    options: CpuOptions,
}

impl CpuDevice {
    /// The host CPU with default options.
    pub fn new() -> Result<CpuDevice> {
        Self::with_options(CpuOptions::default())
    }

    /// The host CPU with explicit code generation options.
    pub fn with_options(options: CpuOptions) -> Result<CpuDevice> {
        let jit = Jit::host().map_err(|reason| Error::Device {
            device: NAME.to_string(),
            reason,
        })?;
        let info = info::device_info(jit.isa());
        Ok(CpuDevice { info, jit, options })
    }

    /// The machine code generated for `program` (Cranelift's disassembly after register
    /// allocation), to inspect hot kernels for spills and instruction selection.
    pub fn disassemble(&self, program: &Program) -> Result<String> {
        self.jit
            .disassemble(program, self.libm_f32())
            .map_err(|reason| compile_error(program, reason))
    }

    fn libm_f32(&self) -> bool {
        self.options.f32_math == MathImpl::Libm
    }
}

fn compile_error(program: &Program, reason: String) -> Error {
    Error::Compile {
        device: NAME.to_string(),
        kernel: program.name.clone(),
        reason,
    }
}

fn device_error(reason: String) -> Error {
    Error::Device {
        device: NAME.to_string(),
        reason,
    }
}

fn cpu_buffer(buffer: &RawBuffer) -> Result<&CpuBuffer> {
    buffer
        .downcast_ref::<CpuBuffer>()
        .ok_or_else(|| device_error("the buffer is not CPU memory".to_string()))
}

impl Device for CpuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn allocate(&self, bytes: usize) -> Result<RawBuffer> {
        let buffer = CpuBuffer::zeroed(bytes).map_err(|reason| Error::OutOfMemory {
            device: NAME.to_string(),
            bytes,
            reason,
        })?;
        Ok(Box::new(buffer))
    }

    fn write_at(&self, dst: &RawBuffer, offset: usize, data: &[u8]) -> Result<()> {
        cpu_buffer(dst)?
            .write_from(offset, data)
            .map_err(device_error)
    }

    fn read_at(&self, src: &RawBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        cpu_buffer(src)?
            .read_into(offset, out)
            .map_err(device_error)
    }

    fn compile(&self, program: &Program) -> Result<CompiledKernel> {
        if program.uses_workgroups() {
            return Err(compile_error(program, WORKGROUP_ERROR.to_string()));
        }
        let kernel = self
            .jit
            .compile(program, self.libm_f32())
            .map_err(|reason| compile_error(program, reason))?;
        tracing::debug!(kernel = %program.name, insts = program.insts.len(), "compiled CPU kernel");
        Ok(Arc::new(kernel))
    }

    fn launch(&self, kernel: &CompiledKernel, buffers: &[&RawBuffer]) -> Result<()> {
        let kernel = kernel.downcast_ref::<CpuKernel>().ok_or_else(|| {
            device_error("the kernel was not compiled by the CPU device".to_string())
        })?;
        launch::launch(kernel, buffers, NAME)
    }

    fn synchronize(&self) -> Result<()> {
        // Launches and copies complete before they return.
        Ok(())
    }

    fn preferred_lanes(&self, dtype: DType) -> u8 {
        match dtype {
            DType::F32 | DType::I32 | DType::U32 => (VECTOR_BYTES / dtype.size()) as u8,
            _ => 1,
        }
    }
}
