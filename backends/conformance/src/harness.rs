//! What a backend tells the suites about itself: how to open its device and the few places
//! where backends legitimately differ (accuracy of transcendentals, extra program checks).

use ferrograd_ir::Program;
use ferrograd_runtime::Device;

/// A backend under test. Implemented once per backend in its test crate (usually on a unit
/// struct) and passed to [`crate::suite!`]. Everything a backend may do differently from
/// another is data here, never a copy of a test.
pub trait Harness: 'static {
    /// The device type the backend implements.
    type Device: Device;

    /// Opens the default device. Panics with a message saying why when there is none: a
    /// backend's tests run where its device exists.
    fn open() -> Self::Device;

    /// Extra checks of every program before it is compiled by [`crate::run`] (the Vulkan
    /// backend validates its SPIR-V with `spirv-val`). Panics when a check fails.
    fn check_program(_device: &Self::Device, _program: &Program) {}

    /// The device configurations whose f32 `Exp2`/`Log2`/`Sin` are held to
    /// [`Harness::F32_TRANSCENDENTAL_ULP`], each with a label for failure messages (the CPU
    /// backend checks its inline polynomials and its libm calls).
    fn f32_math_variants() -> Vec<(String, Self::Device)> {
        vec![("default".to_string(), Self::open())]
    }

    /// The device configurations whose buffer memory paths must all hold many small buffers
    /// without overlap, each with a label for failure messages (the Vulkan backend checks its
    /// staging path beside mapped memory).
    fn memory_variants() -> Vec<(String, Self::Device)> {
        vec![("default".to_string(), Self::open())]
    }

    /// The largest error, in ulp of the f32 nearest the exact result, of f32
    /// `Exp2`/`Log2`/`Sin` (Sin up to |x| = 1e5).
    const F32_TRANSCENDENTAL_ULP: f64;

    /// The largest error, in ulp of the exact result, of f64 `Exp2`/`Log2`/`Sin`; `0.0` means
    /// bit-identical to the host's libm.
    const F64_TRANSCENDENTAL_ULP: f64;

    /// How many random well-typed programs the fuzz case compiles and runs.
    const RANDOM_PROGRAM_ROUNDS: usize;
}

/// A GPU-style backend: it runs workgroup programs and can be opened with the configurations
/// that force its fallback paths, so the suites that need them (`gpu_grids`,
/// `workgroup_reduce`, `packed_storage`) test those paths on every such backend alike; its
/// limits' names are data for `gpu_limits`.
pub trait GpuHarness: Harness {
    /// The default device, but dispatching at most `count` workgroups per grid dimension, so
    /// larger grids go through the backend's grid-stride loop.
    fn open_with_max_workgroup_count(count: u32) -> Self::Device;

    /// The default device with subgroup operations disabled: workgroup reductions go through
    /// the local-memory tree.
    fn open_without_subgroups() -> Self::Device;

    /// The default device with 8- and 16-bit storage disabled: every small dtype (f16
    /// included) is packed into 32-bit words.
    fn open_packed_storage() -> Self::Device;

    /// The default device's registered name (`vulkan:0`).
    const DEVICE_NAME: &'static str;

    /// What the device info must report (each a `key=` prefix of an `info().extra` entry).
    const INFO_KEYS: &'static [&'static str];

    /// The `info().extra` key of the largest storage-buffer binding, in bytes.
    const STORAGE_RANGE_KEY: &'static str;

    /// The name of that limit in the compile error of a larger tensor.
    const STORAGE_RANGE_LIMIT: &'static str;
}
