//! No adapter is a typed error saying what to install, not an abort; `WGPU_BACKEND` selects
//! the backends searched. (Its own test binary: it changes the process environment before
//! wgpu reads it.)

use ferrograd_runtime::{Backend, Error};
use ferrograd_webgpu::{wgpu, WebGpuBackend, WebGpuDevice, WebGpuOptions};

fn assert_no_adapter(err: Error) {
    assert!(matches!(err, Error::Device { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("no WebGPU adapter") && msg.contains("mesa-vulkan-drivers"),
        "{msg}"
    );
}

#[test]
fn no_adapter_is_a_typed_error_naming_the_packages() {
    // Metal and DX12 do not exist on Linux: an explicit choice of them finds nothing.
    if cfg!(target_os = "linux") {
        let options = WebGpuOptions {
            backends: Some(wgpu::Backends::METAL | wgpu::Backends::DX12),
            ..WebGpuOptions::default()
        };
        match WebGpuDevice::open_all(&options) {
            Ok(d) => panic!("{} adapters found without a backend", d.len()),
            Err(e) => assert_no_adapter(e),
        }
        // The registered backend honours WGPU_BACKEND.
        std::env::set_var("WGPU_BACKEND", "metal");
        match WebGpuBackend.open() {
            Ok(d) => panic!("{} adapters found with WGPU_BACKEND=metal", d.len()),
            Err(e) => assert_no_adapter(e),
        }
        std::env::remove_var("WGPU_BACKEND");
    }
    // The Vulkan loader reads the driver list from these variables when an instance is created.
    std::env::set_var(
        "VK_ICD_FILENAMES",
        "/nonexistent/ferrograd-no-such-icd.json",
    );
    std::env::set_var("VK_DRIVER_FILES", "/nonexistent/ferrograd-no-such-icd.json");
    let options = WebGpuOptions {
        backends: Some(wgpu::Backends::VULKAN),
        ..WebGpuOptions::default()
    };
    match WebGpuDevice::open_all(&options) {
        Ok(d) => panic!("{} adapters opened without a driver", d.len()),
        Err(e) => assert_no_adapter(e),
    }
}
