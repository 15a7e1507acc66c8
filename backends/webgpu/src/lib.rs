//! ferrograd-webgpu: the WebGPU backend. [`WebGpuDevice`] renders kernel [`Program`]s as WGSL
//! text and runs them through `wgpu` on any adapter it finds (Vulkan, Metal, DX12), including
//! Mesa's lavapipe on the CPU through wgpu's Vulkan backend.
//!
//! Module map: `adapter` finds adapters and chooses features and limits; `wgsl` renders
//! programs; `kernel` owns pipelines; `buffer` is device memory; `batch` records dispatches
//! and copies into one command encoder and waits for them; `device` is the
//! [`ferrograd_runtime::Device`] implementation; `error` collects errors wgpu reports through
//! callbacks (validation errors, device loss).
//!
//! [`Program`]: ferrograd_ir::Program

#![warn(missing_docs)]

mod adapter;
mod batch;
mod buffer;
mod device;
mod error;
mod kernel;
mod wgsl;

pub use batch::KernelTime;
pub use buffer::WebGpuBuffer;
pub use device::{WebGpuBackend, WebGpuDevice, WebGpuOptions};
pub use kernel::WebGpuKernel;
/// The wgpu version this backend is built with (for its types in [`WebGpuOptions`]).
pub use wgpu;
