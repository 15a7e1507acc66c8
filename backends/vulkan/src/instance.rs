//! The Vulkan loader and instance, shared by every device of the process.

use crate::error::{backend_error, NO_DEVICE, NO_LOADER};
use ash::vk;
use ferrograd_runtime::Result;
use std::sync::Arc;

/// The loaded library and a Vulkan 1.1 instance.
pub(crate) struct Instance {
    /// Keeps the loader library loaded while the instance lives.
    _entry: ash::Entry,
    pub(crate) raw: ash::Instance,
}

impl Instance {
    /// Loads the loader dynamically and creates an instance (no layers, no extensions).
    pub(crate) fn new() -> Result<Arc<Instance>> {
        // SAFETY: loading the system's Vulkan loader runs its initialization code; the loader is
        // a well-known system library and stays loaded as long as `_entry` lives.
        let entry = unsafe { ash::Entry::load() }
            .map_err(|e| backend_error(format!("{NO_LOADER} ({e})")))?;
        // SAFETY: `entry` holds a loaded loader; the query takes no pointers from us.
        let version = unsafe { entry.try_enumerate_instance_version() }
            .map_err(|e| {
                backend_error(format!(
                    "querying the Vulkan instance version failed: {e:?}"
                ))
            })?
            .unwrap_or(vk::API_VERSION_1_0);
        if version < vk::API_VERSION_1_1 {
            return Err(backend_error(format!(
                "the Vulkan loader supports version {}.{}; ferrograd needs Vulkan 1.1",
                vk::api_version_major(version),
                vk::api_version_minor(version)
            )));
        }
        let app = vk::ApplicationInfo::default()
            .application_name(c"ferrograd")
            .engine_name(c"ferrograd")
            .api_version(vk::API_VERSION_1_1);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: `info` and what it points to live across the call; no allocator is passed.
        let raw = unsafe { entry.create_instance(&info, None) }.map_err(|e| match e {
            // The loader reports a missing or unusable driver this way.
            vk::Result::ERROR_INCOMPATIBLE_DRIVER => backend_error(format!("{NO_DEVICE} ({e:?})")),
            e => backend_error(format!("creating a Vulkan instance failed: {e:?}")),
        })?;
        Ok(Arc::new(Instance { _entry: entry, raw }))
    }

    /// The physical devices, best first (discrete > integrated > virtual > CPU), stable otherwise.
    pub(crate) fn physical_devices(&self) -> Result<Vec<vk::PhysicalDevice>> {
        // SAFETY: the instance is alive.
        let mut list = unsafe { self.raw.enumerate_physical_devices() }
            .map_err(|e| backend_error(format!("enumerating Vulkan devices failed: {e:?}")))?;
        let rank = |pd: &vk::PhysicalDevice| {
            // SAFETY: `pd` was enumerated from this live instance.
            let props = unsafe { self.raw.get_physical_device_properties(*pd) };
            match props.device_type {
                vk::PhysicalDeviceType::DISCRETE_GPU => 0,
                vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
                vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
                vk::PhysicalDeviceType::CPU => 3,
                _ => 4,
            }
        };
        list.sort_by_key(rank);
        Ok(list)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: every device created from the instance holds an `Arc<Instance>`, so none is
        // alive any more.
        unsafe { self.raw.destroy_instance(None) };
    }
}
