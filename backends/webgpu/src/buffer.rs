//! Device memory of the WebGPU backend.

/// A storage buffer (what the runtime's `RawBuffer` holds for this backend). Its size is the
/// requested size rounded up to 4 bytes (WebGPU copies and bindings work in 4-byte units).
pub struct WebGpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    /// Identity of the device that allocated it (buffers of another device are refused).
    pub(crate) owner: u64,
    /// Bytes requested by the runtime.
    pub(crate) len: u64,
}

/// `bytes` rounded up to WebGPU's 4-byte copy unit (at least 4: empty buffers cannot be bound).
pub(crate) fn padded(bytes: u64) -> u64 {
    bytes
        .div_ceil(wgpu::COPY_BUFFER_ALIGNMENT)
        .max(1)
        .saturating_mul(wgpu::COPY_BUFFER_ALIGNMENT)
}
