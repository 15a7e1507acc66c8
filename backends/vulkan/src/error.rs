//! Turning Vulkan results into typed runtime errors that say what failed and what to do.

use ash::vk;
use ferrograd_runtime::Error;

/// The message when the Vulkan loader library cannot be loaded.
pub(crate) const NO_LOADER: &str = "the Vulkan loader (libvulkan.so.1) could not be loaded; \
     install a Vulkan loader and driver, e.g. `apt-get install libvulkan1 mesa-vulkan-drivers`";

/// The message when the loader works but reports no device.
pub(crate) const NO_DEVICE: &str = "the Vulkan loader found no device; install a Vulkan driver \
     (for a CPU implementation: `apt-get install mesa-vulkan-drivers`, which provides lavapipe)";

/// An error of the backend as a whole (before a device is named).
pub(crate) fn backend_error(reason: impl Into<String>) -> Error {
    Error::Device {
        device: "vulkan".to_string(),
        reason: reason.into(),
    }
}

/// A failed Vulkan call on `device` while doing `what`.
pub(crate) fn vk_error(device: &str, what: &str, r: vk::Result) -> Error {
    let hint = match r {
        vk::Result::ERROR_DEVICE_LOST => {
            " (the device was lost: a driver reset, a hang or a crash)"
        }
        vk::Result::ERROR_OUT_OF_DEVICE_MEMORY | vk::Result::ERROR_OUT_OF_HOST_MEMORY => {
            " (out of memory)"
        }
        vk::Result::ERROR_INITIALIZATION_FAILED => " (driver initialization failed)",
        _ => "",
    };
    Error::Device {
        device: device.to_string(),
        reason: format!("{what} failed: {r:?}{hint}"),
    }
}

/// A failed allocation of `bytes` bytes on `device`.
pub(crate) fn alloc_error(device: &str, bytes: usize, r: vk::Result) -> Error {
    match r {
        vk::Result::ERROR_OUT_OF_DEVICE_MEMORY | vk::Result::ERROR_OUT_OF_HOST_MEMORY => {
            Error::OutOfMemory {
                device: device.to_string(),
                bytes,
                reason: format!("{r:?}"),
            }
        }
        r => vk_error(device, "allocating memory", r),
    }
}
