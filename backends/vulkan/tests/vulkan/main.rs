//! The Vulkan backend's integration tests: the shared conformance suite (see
//! `ferrograd-conformance`) run on the first [`VulkanDevice`] (lavapipe in CI) with every
//! program's SPIR-V checked by `spirv-val`, plus the Vulkan-only cases in the modules below.
//! (`no_device.rs` is its own test binary: it changes the process environment.)
mod device_paths;
mod workgroup_limits;

use ferrograd_conformance::{GpuHarness, Harness, TestDevice};
use ferrograd_ir::Program;
use ferrograd_vulkan::{VulkanDevice, VulkanOptions};

/// The Vulkan backend as the conformance suite sees it.
struct Vulkan;

impl Harness for Vulkan {
    type Device = VulkanDevice;

    /// The first Vulkan device. Vulkan tests must run where a device exists, so a missing
    /// device fails the test.
    fn open() -> VulkanDevice {
        open_first(VulkanOptions::default())
    }

    fn check_program(device: &VulkanDevice, program: &Program) {
        validate_spirv(device, program);
    }

    /// f32 exp2/log2 are the driver's GLSL.std.450 instructions; sin is the backend's own code.
    const F32_TRANSCENDENTAL_ULP: f64 = 3.0;
    /// Every f64 transcendental is the backend's own code.
    const F64_TRANSCENDENTAL_ULP: f64 = 4.0;
    /// Fewer than on the CPU: every round also runs `spirv-val`.
    const RANDOM_PROGRAM_ROUNDS: usize = 100;

    /// Mapped device memory and the staging-copy path.
    fn memory_variants() -> Vec<(String, VulkanDevice)> {
        vec![
            ("mapped".to_string(), Self::open()),
            (
                "staging".to_string(),
                open_first(VulkanOptions {
                    force_staging: true,
                    ..VulkanOptions::default()
                }),
            ),
        ]
    }
}

impl GpuHarness for Vulkan {
    const DEVICE_NAME: &'static str = "vulkan:0";
    const INFO_KEYS: &'static [&'static str] = &[
        "max_storage_buffer_bytes=",
        "max_workgroup_size=",
        "max_workgroup_count=",
        "shared_memory_bytes=",
        "subgroup_size=",
        "f16=",
    ];
    const STORAGE_RANGE_KEY: &'static str = "max_storage_buffer_bytes";
    const STORAGE_RANGE_LIMIT: &'static str = "maxStorageBufferRange";

    fn open_with_max_workgroup_count(count: u32) -> VulkanDevice {
        open_first(VulkanOptions {
            max_workgroup_count: Some(count),
            ..VulkanOptions::default()
        })
    }

    fn open_without_subgroups() -> VulkanDevice {
        open_first(VulkanOptions {
            no_subgroups: true,
            ..VulkanOptions::default()
        })
    }

    fn open_packed_storage() -> VulkanDevice {
        open_first(VulkanOptions {
            packed_storage: true,
            ..VulkanOptions::default()
        })
    }
}

ferrograd_conformance::suite!(
    Vulkan,
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

/// The first Vulkan device opened with `options`.
fn open_first(options: VulkanOptions) -> VulkanDevice {
    VulkanDevice::open_all(options)
        .unwrap_or_else(|e| panic!("no Vulkan device for the Vulkan tests: {e}"))
        .remove(0)
}

/// The first Vulkan device opened with `options`, for the suites' helpers.
fn open_with(options: VulkanOptions) -> TestDevice<Vulkan> {
    TestDevice::wrap(open_first(options))
}

/// Checks the SPIR-V generated for `program` with `spirv-val` (skipped with a note when the
/// tool is not installed).
pub fn validate_spirv(dev: &VulkanDevice, program: &Program) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let words = dev.spirv(program).unwrap_or_else(|e| panic!("{e}"));
    let path = std::env::temp_dir().join(format!(
        "ferrograd-vk-{}-{}.spv",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("spirv-val")
        .args(["--target-env", "vulkan1.1"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    match out {
        Err(_) => eprintln!(
            "note: spirv-val is not installed; SPIR-V of `{}` not validated",
            program.name
        ),
        Ok(o) => assert!(
            o.status.success(),
            "spirv-val rejects `{}`: {}{}",
            program.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}
