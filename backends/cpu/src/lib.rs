//! ferrograd-cpu: the CPU backend. [`CpuDevice`] compiles kernel [`Program`]s to native code
//! with Cranelift and launches them on the rayon thread pool.
//!
//! Module map: `validate` checks programs and infers types; `codegen` translates them to
//! Cranelift IR (`value` representations, `alu`, `cast`, `memory`, inline `math`); `jit` drives
//! Cranelift; `kernel` owns compiled code; `launch` checks arguments and splits the grid across
//! threads; `buffer` is device memory; `helpers` are host functions called from kernels; `info`
//! describes the host.
//!
//! [`Program`]: ferrograd_ir::Program

#![warn(missing_docs)]

mod buffer;
mod codegen;
mod device;
mod helpers;
mod info;
mod jit;
mod kernel;
mod launch;
mod validate;

pub use device::{CpuDevice, CpuOptions, MathImpl};
