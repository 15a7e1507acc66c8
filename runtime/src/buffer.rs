//! Device handles (a device plus its pool and kernel cache) and pooled buffers.

use crate::device::{CompiledKernel, Device, RawBuffer};
use crate::error::Result;
use crate::pool::{bucket_size, Pool};
use ferrograd_ir::{BufferHandle, DType, Program};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Default cap on pooled free memory per device.
const DEFAULT_POOL_BYTES: usize = 2 << 30;

/// A device together with its buffer pool and compiled-kernel cache.
pub struct DeviceHandle {
    name: Arc<str>,
    device: Arc<dyn Device>,
    pool: Mutex<Pool>,
    /// Compiled kernels by their whole Program (a hash alone could collide and launch the
    /// wrong kernel).
    kernels: RwLock<HashMap<Program, CompiledKernel>>,
    fresh_allocations: AtomicUsize,
}

impl DeviceHandle {
    /// Wraps an opened device.
    pub fn new(device: Arc<dyn Device>) -> Arc<Self> {
        Arc::new(DeviceHandle {
            name: Arc::from(device.info().name.as_str()),
            device,
            pool: Mutex::new(Pool::new(DEFAULT_POOL_BYTES)),
            kernels: RwLock::new(HashMap::new()),
            fresh_allocations: AtomicUsize::new(0),
        })
    }
    /// The device's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
    /// The device.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// A buffer of at least `bytes` bytes, from the pool when possible.
    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<Buffer> {
        let bucket = bucket_size(bytes);
        let pooled = self.pool.lock().take(bucket);
        let raw = match pooled {
            Some(raw) => raw,
            None => {
                self.fresh_allocations.fetch_add(1, Ordering::Relaxed);
                self.device.allocate(bucket)?
            }
        };
        Ok(Buffer {
            raw: Some(raw),
            bytes,
            bucket,
            device: self.clone(),
        })
    }

    /// The compiled kernel for `program`, compiling it on first use.
    pub fn kernel(&self, program: &Program) -> Result<CompiledKernel> {
        if let Some(k) = self.kernels.read().get(program) {
            return Ok(k.clone());
        }
        let _span =
            tracing::debug_span!("compile", kernel = %program.name, device = %self.name).entered();
        let compiled = self.device.compile(program)?;
        self.kernels
            .write()
            .insert(program.clone(), compiled.clone());
        Ok(compiled)
    }

    /// Allocations the pool could not serve (each asked the device for new memory). A loop in
    /// a steady state stops adding to it.
    pub fn fresh_allocations(&self) -> usize {
        self.fresh_allocations.load(Ordering::Relaxed)
    }

    /// Number of distinct kernels compiled on this device.
    pub fn compiled_kernels(&self) -> usize {
        self.kernels.read().len()
    }

    /// True if the device can hold and compute `dtype`.
    pub fn supports(&self, dtype: DType) -> bool {
        self.device.info().dtypes.contains(&dtype)
    }
}

/// Device memory that returns to its device's pool when dropped.
pub struct Buffer {
    raw: Option<RawBuffer>,
    bytes: usize,
    bucket: usize,
    device: Arc<DeviceHandle>,
}

impl Buffer {
    /// The backend's memory object.
    pub fn raw(&self) -> &RawBuffer {
        self.raw.as_ref().expect("live buffer")
    }
    /// Size in bytes as requested.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// The device holding it.
    pub fn device(&self) -> &Arc<DeviceHandle> {
        &self.device
    }
    /// Copies `data` into the buffer.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        assert!(
            data.len() <= self.bytes,
            "write: {} bytes into a buffer of {}",
            data.len(),
            self.bytes
        );
        self.device.device.write(self.raw(), data)
    }
    /// Copies the buffer's contents out.
    pub fn read(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.bytes];
        self.device.device.synchronize()?;
        self.device.device.read(self.raw(), &mut out)?;
        Ok(out)
    }
    /// Copies this buffer's first `bytes` bytes into `dst` (on any device): directly between
    /// the devices when they can ([`Device::copy_direct`]), else through host memory.
    pub fn copy_to(&self, dst: &Buffer, bytes: usize) -> Result<()> {
        assert!(
            bytes <= self.bytes && bytes <= dst.bytes,
            "copy_to: {bytes} bytes from a buffer of {} into one of {}",
            self.bytes,
            dst.bytes
        );
        let to = dst.device.device.as_ref();
        if self
            .device
            .device
            .copy_direct(self.raw(), to, dst.raw(), bytes)?
        {
            return Ok(());
        }
        let mut data = self.read()?;
        data.truncate(bytes);
        dst.write(&data)
    }
    /// Wraps the buffer in an IR handle.
    pub fn into_handle(self) -> BufferHandle {
        BufferHandle::new(Arc::new(self))
    }
    /// The buffer behind an IR handle created by [`Buffer::into_handle`].
    pub fn from_handle(handle: &BufferHandle) -> &Buffer {
        handle
            .data()
            .downcast_ref::<Buffer>()
            .expect("buffer handles hold runtime buffers")
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.device.pool.lock().put(self.bucket, raw);
        }
    }
}
