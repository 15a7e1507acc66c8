//! A loader that finds no driver gives a typed error saying what to install, not an abort.
//! (Its own test binary: it changes the process environment before the loader reads it.)

use ferrograd_runtime::{Backend, Error};
use ferrograd_webgpu::{VulkanBackend, WebGpuDevice, WebGpuOptions};

#[test]
fn no_driver_is_a_typed_error_naming_the_packages() {
    // The loader reads the driver list from these variables when the instance is created.
    std::env::set_var(
        "VK_ICD_FILENAMES",
        "/nonexistent/ferrograd-no-such-icd.json",
    );
    std::env::set_var("VK_DRIVER_FILES", "/nonexistent/ferrograd-no-such-icd.json");
    let err = match WebGpuDevice::open_all(WebGpuOptions::default()) {
        Ok(devices) => panic!("{} devices opened without a driver", devices.len()),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Device { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("mesa-vulkan-drivers") || msg.contains("libvulkan1"),
        "{msg}"
    );
    assert!(VulkanBackend.open().is_err());
}
