//! The shared cases, one module per group; each case is `pub fn CASE<H: Harness>()`.

pub mod casts;
pub mod errors;
pub mod float_ops;
pub mod int_ops;
pub mod kernels;
pub mod launch;
pub mod math;
pub mod workgroups;
