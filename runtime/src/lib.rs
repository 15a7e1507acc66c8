//! ferrograd-runtime: the [`Device`] contract, pooled buffers, the compile cache, the device
//! registry, the executor that realizes lazy graphs, and capture/replay of realizes.

pub mod buffer;
pub mod capture;
pub mod device;
pub mod error;
mod plan;
pub mod pool;
pub mod profile;
pub mod realize;
pub mod registry;
mod replay;
pub mod rewrite;

pub use buffer::{Buffer, DeviceHandle};
pub use device::{CompiledKernel, Device, DeviceInfo, DeviceKind, RawBuffer};
pub use error::{Error, Result};
pub use realize::{count_work, download, programs, realize, stats, upload, Stats};
pub use registry::{
    default_device, device, devices, register_backend, register_resolver, Backend, Resolver,
};
pub use rewrite::{rewrite_stats, RewriteStats};
