//! The CPU backend's integration tests: the shared conformance suite (see
//! `ferrograd-conformance`) run on [`CpuDevice`], plus the CPU-only cases in [`host`].
mod host;

use ferrograd_conformance::Harness;
use ferrograd_cpu::{CpuDevice, CpuOptions, MathImpl};

/// The CPU backend as the conformance suite sees it.
struct Cpu;

impl Harness for Cpu {
    type Device = CpuDevice;

    fn open() -> CpuDevice {
        CpuDevice::new().expect("host CPU is supported")
    }

    /// Both f32 math implementations: inline polynomials and libm calls.
    fn f32_math_variants() -> Vec<(String, CpuDevice)> {
        [MathImpl::Inline, MathImpl::Libm]
            .into_iter()
            .map(|f32_math| {
                let dev = CpuDevice::with_options(CpuOptions { f32_math }).unwrap();
                (format!("{f32_math:?}"), dev)
            })
            .collect()
    }

    const F32_TRANSCENDENTAL_ULP: f64 = 2.0;
    /// f64 transcendentals call the host's libm: bit-identical.
    const F64_TRANSCENDENTAL_ULP: f64 = 0.0;
    const RANDOM_PROGRAM_ROUNDS: usize = 300;
}

// No `workgroups` group: the CPU backend rejects workgroup programs (see `host`).
ferrograd_conformance::suite!(
    Cpu,
    [kernels, casts, float_ops, int_ops, math, errors, launch]
);
