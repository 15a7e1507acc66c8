//! ferrograd-vulkan: the Vulkan backend. [`VulkanDevice`] compiles kernel [`Program`]s to SPIR-V
//! (generated directly with rspirv, no shader compiler at run time) and runs them through ash on
//! any Vulkan 1.1 device, including Mesa's lavapipe on the CPU.
//!
//! Module map: `instance` loads the loader and enumerates devices; `info` reads features and
//! limits; `context` opens the logical device, its memory types and pipeline cache; `alloc`
//! sub-allocates device memory; `buffer` is device memory; `spirv` translates them; `kernel` owns pipelines;
//! `batch` records launches and copies into command buffers and submits them; `device` is the
//! [`ferrograd_runtime::Device`] implementation; `error` maps Vulkan results to typed errors.
//!
//! [`Program`]: ferrograd_ir::Program

#![warn(missing_docs)]

mod alloc;
mod batch;
mod buffer;
mod context;
mod device;
mod error;
mod info;
mod instance;
mod kernel;
mod spirv;

pub use batch::KernelTime;
pub use buffer::VulkanBuffer;
pub use device::{VulkanBackend, VulkanDevice, VulkanOptions};
pub use kernel::VulkanKernel;
