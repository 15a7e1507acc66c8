//! Backend registration and default-device selection for the frontend.

use ferrograd_runtime::{register_backend, Backend, Device, Result};
use std::sync::{Arc, Once, OnceLock};

struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn open(&self) -> Result<Vec<Arc<dyn Device>>> {
        Ok(vec![Arc::new(ferrograd_cpu::CpuDevice::new()?)])
    }
}

/// Registers every backend compiled into this build (idempotent).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        register_backend(Box::new(CpuBackend));
        #[cfg(feature = "vulkan")]
        register_backend(Box::new(ferrograd_vulkan::VulkanBackend));
        #[cfg(feature = "webgpu")]
        register_backend(Box::new(ferrograd_webgpu::WebGpuBackend));
        #[cfg(feature = "distributed")]
        ferrograd_distributed::remote::register();
    });
}

/// A default device chosen by the program ([`set_default_device`]), ahead of the environment.
static CHOSEN: parking_lot::RwLock<Option<Arc<str>>> = parking_lot::RwLock::new(None);

/// Makes `name` the default device for tensors created from now on (a `--device` flag), after
/// checking that it exists.
pub fn set_default_device(name: &str) -> Result<()> {
    let canonical = canonical_device(name)?;
    *CHOSEN.write() = Some(canonical);
    Ok(())
}

/// The name of the default device: the one given to [`set_default_device`], else
/// `FERROGRAD_DEVICE` if set (checked when first used), else the best device found.
pub fn default_device_name() -> Arc<str> {
    if let Some(chosen) = CHOSEN.read().clone() {
        return chosen;
    }
    static NAME: OnceLock<Arc<str>> = OnceLock::new();
    NAME.get_or_init(|| {
        init();
        match std::env::var("FERROGRAD_DEVICE") {
            Ok(name) => Arc::from(name.trim()),
            Err(_) => match ferrograd_runtime::default_device() {
                Ok(d) => d.name().clone(),
                Err(_) => Arc::from("cpu"),
            },
        }
    })
    .clone()
}

/// The default device's canonical name, or why `FERROGRAD_DEVICE` names no device.
pub fn default_device() -> Result<Arc<str>> {
    init();
    Ok(ferrograd_runtime::default_device()?.name().clone())
}

/// Checks that `name` is a known device and returns its canonical name.
pub fn canonical_device(name: &str) -> Result<Arc<str>> {
    init();
    Ok(ferrograd_runtime::device(name)?.name().clone())
}

/// Descriptions of every device found (what `ferrograd devices` prints).
pub fn list_devices() -> Vec<ferrograd_runtime::DeviceInfo> {
    init();
    ferrograd_runtime::registry::device_infos()
}

/// Why backends that are compiled in could not open (driver missing, ...).
pub fn backend_failures() -> Vec<String> {
    init();
    ferrograd_runtime::registry::backend_failures()
}
