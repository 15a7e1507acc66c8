//! The shared cases, one module per group; each case is `pub fn CASE<H: Harness>()`
//! (`<H: GpuHarness>` in the groups that need a GPU backend's fallback paths).

pub mod casts;
pub mod errors;
pub mod float_ops;
pub mod gpu_grids;
pub mod gpu_limits;
pub mod int_ops;
pub mod kernels;
pub mod launch;
pub mod math;
pub mod packed_storage;
pub mod workgroup_reduce;
pub mod workgroups;
