//! [`WebGpuDevice`]: the [`Device`] implementation tying adapters, memory, WGSL compilation
//! and batched launches together, and [`WebGpuBackend`], which registers the devices found.

use crate::adapter;
use crate::batch::{Batch, KernelTime};
use crate::buffer::{padded, WebGpuBuffer};
use crate::error::{backend_error, ErrorSink};
use crate::kernel::{layout_entries, WebGpuKernel};
use crate::wgsl;
use ferrograd_ir::lower::LoweringTarget;
use ferrograd_ir::{validate, DType, Program};
use ferrograd_runtime::{Backend, CompiledKernel, Device, DeviceInfo, Error, RawBuffer, Result};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Queue writes and buffer copies move whole words of this many bytes.
const ALIGN: u64 = wgpu::COPY_BUFFER_ALIGNMENT;

/// How [`WebGpuDevice`]s are opened.
#[derive(Clone, Debug, Default)]
pub struct WebGpuOptions {
    /// Backends to search; `None` means `WGPU_BACKEND` if set, else Vulkan, Metal and DX12.
    pub backends: Option<wgpu::Backends>,
    /// Time every launch with timestamp queries where the adapter has them
    /// ([`WebGpuDevice::kernel_times`]). The registered backend enables it with
    /// `FERROGRAD_WEBGPU_PROFILE=1`.
    pub profile: bool,
    /// Dispatch at most this many workgroups per dimension (below the adapter's limit), so the
    /// grid-stride loops that cover larger grids can be exercised on small grids.
    pub max_workgroup_count: Option<u32>,
    /// Allow at most this many storage buffers per kernel (below the adapter's limit), to
    /// exercise the error for kernels with too many inputs.
    pub max_storage_buffers: Option<u32>,
    /// Pack f16 buffers into 32-bit words even where `shader-f16` exists.
    pub packed_f16: bool,
    /// Reduce across workgroups without subgroup operations even where they exist.
    pub no_subgroups: bool,
}

/// One WebGPU device, named `webgpu:N` (N in the order best adapter first).
pub struct WebGpuDevice {
    /// Process-unique identity (tags the buffers this device allocates).
    id: u64,
    device: wgpu::Device,
    queue: wgpu::Queue,
    features: wgsl::Features,
    limits: wgpu::Limits,
    info: DeviceInfo,
    errors: Arc<ErrorSink>,
    batch: Mutex<Batch>,
}

const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl WebGpuDevice {
    /// Opens every adapter found, best first. Errors when there is none; adapters that fail to
    /// open are skipped when at least one other opens.
    pub fn open_all(options: &WebGpuOptions) -> Result<Vec<WebGpuDevice>> {
        let backends = options.backends.unwrap_or_else(|| {
            wgpu::Backends::from_env()
                .unwrap_or(wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12)
        });
        let mut devices = Vec::new();
        let mut failures = Vec::new();
        for a in adapter::adapters(backends)? {
            let name = format!("webgpu:{}", devices.len());
            match Self::open_adapter(&a, name, options) {
                Ok(d) => devices.push(d),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if devices.is_empty() {
            return Err(backend_error(format!(
                "no WebGPU adapter could be opened: {}",
                failures.join("; ")
            )));
        }
        Ok(devices)
    }

    fn open_adapter(
        a: &wgpu::Adapter,
        name: String,
        options: &WebGpuOptions,
    ) -> Result<WebGpuDevice> {
        let mut required_features = adapter::wanted_features(a, options.profile);
        if options.packed_f16 {
            required_features.remove(wgpu::Features::SHADER_F16);
        }
        if options.no_subgroups {
            required_features.remove(wgpu::Features::SUBGROUP);
        }
        // Everything the adapter offers (more storage buffers per stage, larger bindings).
        let required_limits = a.limits();
        let (device, queue) = pollster::block_on(a.request_device(&wgpu::DeviceDescriptor {
            label: Some(&name),
            required_features,
            required_limits,
            ..Default::default()
        }))
        .map_err(|e| Error::Device {
            device: name.clone(),
            reason: format!("requesting the device failed: {e}"),
        })?;
        let errors = ErrorSink::install(&device);
        let mut limits = device.limits();
        if let Some(n) = options.max_workgroup_count {
            limits.max_compute_workgroups_per_dimension =
                limits.max_compute_workgroups_per_dimension.min(n.max(1));
        }
        if let Some(n) = options.max_storage_buffers {
            limits.max_storage_buffers_per_shader_stage =
                limits.max_storage_buffers_per_shader_stage.min(n);
        }
        let features = adapter::shader_features(device.features(), &limits);
        let info = adapter::device_info(name, &a.get_info(), &features, &limits);
        let profile = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let batch = Mutex::new(Batch::new(&device, &queue, profile));
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(WebGpuDevice {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            features,
            limits,
            info,
            errors,
            batch,
        })
    }

    /// The WGSL source generated for `program` (what [`Device::compile`] hands wgpu).
    pub fn wgsl(&self, program: &Program) -> Result<String> {
        Ok(self.render(program)?.source)
    }

    /// Device time of every profiled launch completed since the last call, oldest first
    /// (empty unless opened with [`WebGpuOptions::profile`] on an adapter with timestamps).
    pub fn kernel_times(&self) -> Vec<KernelTime> {
        self.batch.lock().take_times()
    }

    /// The underlying wgpu device, for interoperation. Errors it reports outside an error
    /// scope surface as typed errors at this device's next synchronization.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The limits the device was opened with (after [`WebGpuOptions`] caps).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Destroys the device: every later call returns a typed "device lost" error. (What a
    /// driver reset looks like to the backend; used by the tests.)
    pub fn destroy(&self) {
        self.device.destroy();
        // The lost callback runs on a poll.
        let _ = self.device.poll(wgpu::PollType::Poll);
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

    fn render(&self, program: &Program) -> Result<wgsl::Shader> {
        let types = validate::check(program).map_err(|r| self.compile_error(program, r))?;
        let max_binding = self.limits.max_storage_buffer_binding_size;
        for (i, p) in program.params.iter().enumerate() {
            let bytes = padded(p.len as u64 * p.dtype.size() as u64);
            if bytes > max_binding {
                return Err(self.compile_error(
                    program,
                    format!(
                        "param {i} holds {bytes} bytes ({} x {}); the device binds at most \
                         {max_binding} bytes per storage buffer (max_storage_buffer_binding_size)",
                        p.len, p.dtype
                    ),
                ));
            }
        }
        let limit = self.limits.max_storage_buffers_per_shader_stage as usize;
        if program.params.len() > limit {
            return Err(self.compile_error(
                program,
                format!(
                    "{} buffers; the device binds at most {limit} storage buffers per kernel \
                     (max_storage_buffers_per_shader_stage, already raised to the adapter's limit)",
                    program.params.len()
                ),
            ));
        }
        wgsl::render(program, &types, &self.features).map_err(|r| self.compile_error(program, r))
    }

    /// The end of `offset..offset + len` if that range lies inside `buffer`, else an error
    /// naming the access.
    fn check_range(&self, buffer: &WebGpuBuffer, what: &str, offset: u64, len: u64) -> Result<u64> {
        match offset.checked_add(len) {
            Some(end) if end <= buffer.len => Ok(end),
            _ => Err(self.device_error(format!(
                "cannot {what} {len} bytes at {offset} of a buffer of {} bytes",
                buffer.len
            ))),
        }
    }

    /// Reads `out.len()` bytes of `src` from `offset` (a multiple of 4; the range, rounded up
    /// to whole words, lies inside the buffer's padded size) after all recorded work.
    fn read_words(&self, src: &WebGpuBuffer, offset: u64, out: &mut [u8]) -> Result<()> {
        let size = padded(out.len() as u64);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ferrograd readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut batch = self.batch.lock();
        batch.copy((&src.buffer, offset), (&staging, 0), size);
        batch
            .synchronize()
            .map_err(|e| self.device_error(e.to_string()))?;
        self.errors.check(&self.info.name)?;
        batch
            .read_mapped(&staging, out)
            .map_err(|e| self.device_error(e.to_string()))?;
        self.errors.check(&self.info.name)
    }

    fn buffer<'a>(&self, raw: &'a RawBuffer) -> Result<&'a WebGpuBuffer> {
        raw.downcast_ref::<WebGpuBuffer>()
            .filter(|b| b.owner == self.id)
            .ok_or_else(|| {
                self.device_error("the buffer is not memory of this WebGPU device".into())
            })
    }

    /// Runs `f` inside error scopes and returns the first error wgpu reports for it.
    fn scoped<T>(&self, f: impl FnOnce() -> T) -> (T, Option<wgpu::Error>) {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let value = f();
        let error = pollster::block_on(internal.pop())
            .or(pollster::block_on(validation.pop()))
            .or(pollster::block_on(oom.pop()));
        (value, error)
    }
}

impl Device for WebGpuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn allocate(&self, bytes: usize) -> Result<RawBuffer> {
        self.errors.check(&self.info.name)?;
        let size = padded(bytes as u64);
        if size > self.limits.max_buffer_size {
            return Err(Error::OutOfMemory {
                device: self.info.name.clone(),
                bytes,
                reason: format!(
                    "larger than the device's largest buffer ({} bytes, max_buffer_size)",
                    self.limits.max_buffer_size
                ),
            });
        }
        let (buffer, error) = self.scoped(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: STORAGE_USAGE,
                mapped_at_creation: false,
            })
        });
        if let Some(e) = error {
            return Err(Error::OutOfMemory {
                device: self.info.name.clone(),
                bytes,
                reason: e.to_string(),
            });
        }
        Ok(Box::new(WebGpuBuffer {
            buffer,
            owner: self.id,
            len: bytes as u64,
        }))
    }

    fn write_at(&self, dst: &RawBuffer, offset: usize, data: &[u8]) -> Result<()> {
        self.errors.check(&self.info.name)?;
        let dst = self.buffer(dst)?;
        let (offset, len) = (offset as u64, data.len() as u64);
        let end = self.check_range(dst, "write", offset, len)?;
        if data.is_empty() {
            return Ok(());
        }
        // Queue writes move whole 4-byte words: an unaligned range is widened to the words
        // around it, whose bytes outside the range are read back first so they stay as they
        // were.
        let start = offset / ALIGN * ALIGN;
        let stop = padded(end);
        if start == offset && stop == end {
            // Queue writes run before the next submit's commands: submit what is recorded
            // first, so work recorded earlier (which may use this recycled buffer) sees the
            // old contents.
            self.batch.lock().submit();
            self.queue.write_buffer(&dst.buffer, offset, data);
            return Ok(());
        }
        // Bytes past the buffer's length are padding nobody reads: they need no read-back.
        let mut words = vec![0u8; (stop - start) as usize];
        let word = ALIGN as usize;
        if start < offset {
            self.read_words(dst, start, &mut words[..word])?;
        }
        if stop > end && end < dst.len {
            let last = words.len() - word;
            self.read_words(dst, stop - ALIGN, &mut words[last..])?;
        }
        let at = (offset - start) as usize;
        words[at..at + data.len()].copy_from_slice(data);
        self.batch.lock().submit();
        self.queue.write_buffer(&dst.buffer, start, &words);
        Ok(())
    }

    fn read_at(&self, src: &RawBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.errors.check(&self.info.name)?;
        let src = self.buffer(src)?;
        let (offset, len) = (offset as u64, out.len() as u64);
        let end = self.check_range(src, "read", offset, len)?;
        if out.is_empty() {
            return self.synchronize();
        }
        let start = offset / ALIGN * ALIGN;
        if start == offset {
            return self.read_words(src, start, out);
        }
        let mut words = vec![0u8; (padded(end) - start) as usize];
        self.read_words(src, start, &mut words)?;
        let at = (offset - start) as usize;
        out.copy_from_slice(&words[at..at + out.len()]);
        Ok(())
    }

    fn compile(&self, program: &Program) -> Result<CompiledKernel> {
        self.errors.check(&self.info.name)?;
        let shader = self.render(program)?;
        let ((layout, pipeline), error) = self.scoped(|| {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&program.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source.as_str().into()),
                });
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&program.name),
                    entries: &layout_entries(&program.params),
                });
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(&program.name),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&program.name),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                });
            (layout, pipeline)
        });
        if let Some(e) = error {
            return Err(self.compile_error(program, format!("wgpu rejected the shader: {e}")));
        }
        tracing::debug!(kernel = %program.name, bytes = shader.source.len(), "compiled WebGPU kernel");
        Ok(Arc::new(WebGpuKernel {
            pipeline,
            layout,
            dispatch: shader.dispatch,
            params: program.params.clone(),
            name: program.name.clone(),
        }))
    }

    fn launch(&self, kernel: &CompiledKernel, buffers: &[&RawBuffer]) -> Result<()> {
        let kernel = kernel.downcast_ref::<WebGpuKernel>().ok_or_else(|| {
            self.device_error("the kernel was not compiled by the WebGPU backend".into())
        })?;
        if buffers.len() != kernel.params.len() {
            return Err(self.device_error(format!(
                "kernel `{}` takes {} buffers, {} were given",
                kernel.name,
                kernel.params.len(),
                buffers.len()
            )));
        }
        let mut entries = Vec::with_capacity(buffers.len());
        for (i, (raw, param)) in buffers.iter().zip(&kernel.params).enumerate() {
            let b = self.buffer(raw)?;
            let needed = param.len as u64 * param.dtype.size() as u64;
            if b.len < needed {
                return Err(self.device_error(format!(
                    "buffer {i} of kernel `{}` holds {} bytes; the kernel needs {needed} ({} x {})",
                    kernel.name, b.len, param.len, param.dtype
                )));
            }
            // Exactly the param's (padded) bytes, not the whole pooled buffer.
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &b.buffer,
                    offset: 0,
                    size: std::num::NonZeroU64::new(padded(needed)),
                }),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        });
        self.batch.lock().dispatch(kernel, &bind_group)
    }

    fn synchronize(&self) -> Result<()> {
        self.batch
            .lock()
            .synchronize()
            .map_err(|e| self.device_error(e.to_string()))?;
        self.errors.check(&self.info.name)
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
        let f = &self.features;
        Some(f.max_invocations.min(f.max_local[0]).min(256) as usize)
    }
}

/// The WebGPU backend for the runtime's registry: opens every adapter at first use.
pub struct WebGpuBackend;

impl Backend for WebGpuBackend {
    fn name(&self) -> &'static str {
        "webgpu"
    }
    fn open(&self) -> Result<Vec<Arc<dyn Device>>> {
        let profile = std::env::var("FERROGRAD_WEBGPU_PROFILE").is_ok_and(|v| v == "1");
        Ok(WebGpuDevice::open_all(&WebGpuOptions {
            profile,
            ..WebGpuOptions::default()
        })?
        .into_iter()
        .map(|d| Arc::new(d) as Arc<dyn Device>)
        .collect())
    }
}
