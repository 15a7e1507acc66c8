//! The WebGPU backend's integration tests: the shared conformance suite (see
//! `ferrograd-conformance`) run on the first WebGPU adapter (lavapipe through wgpu's Vulkan
//! backend in CI) with every program's WGSL parsed and validated by naga, plus the WebGPU-only
//! cases in the modules below. (`no_device.rs` is its own test binary: it changes the process
//! environment.)
mod device_paths;
mod failures;
mod workgroup_limits;

use ferrograd_conformance::{GpuHarness, Harness, TestDevice};
use ferrograd_ir::Program;
use ferrograd_webgpu::{WebGpuDevice, WebGpuOptions};

/// The WebGPU backend as the conformance suite sees it.
struct WebGpu;

impl Harness for WebGpu {
    type Device = WebGpuDevice;

    /// The first adapter. WebGPU tests must run where an adapter exists, so a missing adapter
    /// fails the test.
    fn open() -> WebGpuDevice {
        open_first(&WebGpuOptions::default())
    }

    fn check_program(device: &WebGpuDevice, program: &Program) {
        validate_wgsl(device, program);
    }

    /// f32 exp2/log2 are WGSL's built-ins; sin is the backend's own code.
    const F32_TRANSCENDENTAL_ULP: f64 = 3.0;
    /// Every f64 transcendental is the backend's own code.
    const F64_TRANSCENDENTAL_ULP: f64 = 4.0;
    /// Each program goes through naga and the driver's compiler (about 3 s on lavapipe).
    const RANDOM_PROGRAM_ROUNDS: usize = 20;
}

impl GpuHarness for WebGpu {
    const DEVICE_NAME: &'static str = "webgpu:0";
    const INFO_KEYS: &'static [&'static str] = &[
        "max_storage_buffer_binding_size=",
        "max_storage_buffers_per_stage=",
        "max_workgroup_size=",
        "max_workgroups_per_dimension=",
        "workgroup_storage_bytes=",
        "shader_f16=",
        "subgroups=",
    ];
    const STORAGE_RANGE_KEY: &'static str = "max_storage_buffer_binding_size";
    const STORAGE_RANGE_LIMIT: &'static str = "max_storage_buffer_binding_size";

    fn open_with_max_workgroup_count(count: u32) -> WebGpuDevice {
        open_first(&WebGpuOptions {
            max_workgroup_count: Some(count),
            ..WebGpuOptions::default()
        })
    }

    fn open_without_subgroups() -> WebGpuDevice {
        open_first(&WebGpuOptions {
            no_subgroups: true,
            ..WebGpuOptions::default()
        })
    }

    /// bool, i8, u8 and bf16 are always packed in WGSL; this also packs f16.
    fn open_packed_storage() -> WebGpuDevice {
        open_first(&WebGpuOptions {
            packed_f16: true,
            ..WebGpuOptions::default()
        })
    }
}

ferrograd_conformance::suite!(
    WebGpu,
    [
        kernels,
        casts,
        float_ops,
        int_ops,
        math,
        errors,
        launch,
        workgroups,
        gpu_grids,
        gpu_limits,
        workgroup_reduce,
        packed_storage
    ]
);

/// The first WebGPU adapter opened with `options`. WebGPU tests must run where an adapter
/// exists, so a missing adapter fails the test.
fn open_first(options: &WebGpuOptions) -> WebGpuDevice {
    WebGpuDevice::open_all(options)
        .unwrap_or_else(|e| panic!("no WebGPU adapter for the WebGPU tests: {e}"))
        .remove(0)
}

/// The first WebGPU adapter opened with `options`, for the suites' helpers.
fn open_with(options: WebGpuOptions) -> TestDevice<WebGpu> {
    TestDevice::wrap(open_first(&options))
}

/// Parses and validates the WGSL generated for `program` with naga (every capability a wgpu
/// device may grant; the device itself checks against its own features when compiling).
fn validate_wgsl(dev: &WebGpuDevice, program: &Program) {
    let source = dev.wgsl(program).unwrap_or_else(|e| panic!("{e}"));
    let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
        panic!(
            "naga cannot parse the WGSL of `{}`: {}\n{source}",
            program.name,
            e.emit_to_string(&source)
        )
    });
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!(
            "naga rejects the WGSL of `{}`: {}\n{source}",
            program.name,
            e.emit_to_string(&source)
        )
    });
}
