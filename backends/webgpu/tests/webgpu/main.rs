//! The WebGPU backend's shared cases: the conformance suite (see `ferrograd-conformance`) run
//! on the first WebGPU adapter (lavapipe through wgpu's Vulkan backend in CI) with every
//! program's WGSL parsed and validated by naga, plus the WebGPU-only cases in the modules below.
//! (`launch.rs`, `failures.rs`, `packed_storage.rs`, `workgroup_reduce.rs` and `no_device.rs`
//! are their own test binaries.)
#[path = "../common/mod.rs"]
mod common;
mod float_rewrites;
mod workgroup_limits;

use ferrograd_conformance::Harness;
use ferrograd_ir::Program;
use ferrograd_webgpu::{WebGpuDevice, WebGpuOptions};

/// The WebGPU backend as the conformance suite sees it.
struct WebGpu;

impl Harness for WebGpu {
    type Device = WebGpuDevice;

    /// The first adapter. WebGPU tests must run where an adapter exists, so a missing adapter
    /// fails the test.
    fn open() -> WebGpuDevice {
        WebGpuDevice::open_all(&WebGpuOptions::default())
            .unwrap_or_else(|e| panic!("no WebGPU adapter for the WebGPU tests: {e}"))
            .remove(0)
    }

    fn check_program(device: &WebGpuDevice, program: &Program) {
        common::validate_wgsl(device, program);
    }

    /// f32 exp2/log2 are WGSL's built-ins; sin is the backend's own code.
    const F32_TRANSCENDENTAL_ULP: f64 = 3.0;
    /// Every f64 transcendental is the backend's own code.
    const F64_TRANSCENDENTAL_ULP: f64 = 4.0;
    /// Each program goes through naga and the driver's compiler (about 3 s on lavapipe).
    const RANDOM_PROGRAM_ROUNDS: usize = 20;
}

ferrograd_conformance::suite!(
    WebGpu,
    [kernels, casts, float_ops, int_ops, math, errors, launch, workgroups]
);
