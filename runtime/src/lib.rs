//! ferrograd-runtime: the [`Device`] contract, pooled buffers, the compile cache, the device
//! registry and the executor that realizes lazy graphs.

pub mod device;
pub mod error;

pub use device::{CompiledKernel, Device, DeviceInfo, DeviceKind, RawBuffer};
pub use error::{Error, Result};
