//! What a physical device can do: features and limits for code generation, and the
//! [`DeviceInfo`] that `ferrograd devices` prints.

use crate::instance::Instance;
use crate::spirv::Features;
use ash::vk;
use ferrograd_ir::DType;
use ferrograd_runtime::{DeviceInfo, DeviceKind};
use std::ffi::CStr;

/// Capabilities of one physical device.
pub(crate) struct Caps {
    /// Code generation features and limits.
    pub(crate) features: Features,
    /// `VK_KHR_push_descriptor` is available.
    pub(crate) push_descriptor: bool,
    /// `VK_KHR_8bit_storage` must be enabled as an extension (Vulkan 1.1 devices).
    pub(crate) ext_8bit: bool,
    /// `VK_KHR_shader_float_controls` must be enabled as an extension (Vulkan 1.1 devices).
    pub(crate) ext_float_controls: bool,
    /// `maxPushDescriptors` (0 without the extension).
    pub(crate) max_push_descriptors: u32,
    /// `maxPerStageDescriptorStorageBuffers`.
    pub(crate) max_storage_buffers: u32,
    /// Nanoseconds per timestamp tick.
    pub(crate) timestamp_period: f32,
    /// `maxMemoryAllocationSize`: the largest single allocation.
    pub(crate) max_allocation: u64,
    /// Subgroup size.
    pub(crate) subgroup_size: u32,
    /// The device's properties.
    pub(crate) props: vk::PhysicalDeviceProperties,
    /// Device-local memory in bytes (largest device-local heap).
    pub(crate) memory_bytes: u64,
    /// Driver name and info.
    pub(crate) driver: String,
    /// Streaming multiprocessors / compute units / shader cores, where the driver reports them.
    pub(crate) compute_units: Option<usize>,
}

fn has_extension(list: &[vk::ExtensionProperties], name: &CStr) -> bool {
    list.iter()
        .any(|e| e.extension_name_as_c_str().is_ok_and(|n| n == name))
}

impl Caps {
    /// Queries `pd`.
    pub(crate) fn query(instance: &Instance, pd: vk::PhysicalDevice) -> Caps {
        let raw = &instance.raw;
        let mut f8 = vk::PhysicalDevice8BitStorageFeatures::default();
        let mut f16 = vk::PhysicalDevice16BitStorageFeatures::default();
        let mut f2 = vk::PhysicalDeviceFeatures2::default()
            .push_next(&mut f8)
            .push_next(&mut f16);
        let mut push = vk::PhysicalDevicePushDescriptorPropertiesKHR::default();
        let mut subgroup = vk::PhysicalDeviceSubgroupProperties::default();
        let mut driver_props = vk::PhysicalDeviceDriverProperties::default();
        let mut maintenance3 = vk::PhysicalDeviceMaintenance3Properties::default();
        let mut float_controls = vk::PhysicalDeviceFloatControlsProperties::default();
        // SAFETY: `pd` belongs to the live instance; the chains point at locals alive for the calls.
        let extensions = unsafe {
            raw.get_physical_device_features2(pd, &mut f2);
            raw.enumerate_device_extension_properties(pd)
                .unwrap_or_default()
        };
        let driver_ext = has_extension(&extensions, ash::khr::driver_properties::NAME);
        let float_controls_ext = has_extension(&extensions, ash::khr::shader_float_controls::NAME);
        let nv_sm_ext = has_extension(&extensions, ash::nv::shader_sm_builtins::NAME);
        let amd_core_ext = has_extension(&extensions, ash::amd::shader_core_properties::NAME);
        let arm_core_ext = has_extension(&extensions, ash::arm::shader_core_builtins::NAME);
        let mut nv_sm = vk::PhysicalDeviceShaderSMBuiltinsPropertiesNV::default();
        let mut amd_core = vk::PhysicalDeviceShaderCorePropertiesAMD::default();
        let mut arm_core = vk::PhysicalDeviceShaderCoreBuiltinsPropertiesARM::default();
        let mut p2 = vk::PhysicalDeviceProperties2::default()
            .push_next(&mut push)
            .push_next(&mut subgroup)
            .push_next(&mut maintenance3);
        if driver_ext {
            p2 = p2.push_next(&mut driver_props);
        }
        if float_controls_ext {
            p2 = p2.push_next(&mut float_controls);
        }
        if nv_sm_ext {
            p2 = p2.push_next(&mut nv_sm);
        }
        if amd_core_ext {
            p2 = p2.push_next(&mut amd_core);
        }
        if arm_core_ext {
            p2 = p2.push_next(&mut arm_core);
        }
        // SAFETY: as above.
        let memory = unsafe {
            raw.get_physical_device_properties2(pd, &mut p2);
            raw.get_physical_device_memory_properties(pd)
        };
        let props = p2.properties;
        let features = f2.features;
        let limits = props.limits;
        let push_descriptor = has_extension(&extensions, ash::khr::push_descriptor::NAME);
        let ext_8bit = has_extension(&extensions, ash::khr::_8bit_storage::NAME);
        let storage8 = f8.storage_buffer8_bit_access == vk::TRUE
            && (ext_8bit || props.api_version >= vk::API_VERSION_1_2);
        let memory_bytes = memory.memory_heaps[..memory.memory_heap_count as usize]
            .iter()
            .filter(|h| h.flags.contains(vk::MemoryHeapFlags::DEVICE_LOCAL))
            .map(|h| h.size)
            .max()
            .unwrap_or(0);
        let driver = if driver_ext {
            let name = driver_props
                .driver_name_as_c_str()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let info = driver_props
                .driver_info_as_c_str()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name} {info}").trim().to_string()
        } else {
            String::new()
        };
        let compute_units = if nv_sm_ext {
            Some(nv_sm.shader_sm_count as usize)
        } else if amd_core_ext {
            Some(
                (amd_core.shader_engine_count
                    * amd_core.shader_arrays_per_engine_count
                    * amd_core.compute_units_per_shader_array) as usize,
            )
        } else if arm_core_ext {
            Some(arm_core.shader_core_count as usize)
        } else if props.device_type == vk::PhysicalDeviceType::CPU {
            // A CPU implementation (lavapipe) runs a thread per core.
            std::thread::available_parallelism().ok().map(|n| n.get())
        } else {
            None
        }
        .filter(|&n| n > 0);
        Caps {
            compute_units,
            features: Features {
                int64: features.shader_int64 == vk::TRUE,
                float64: features.shader_float64 == vk::TRUE,
                storage8,
                storage16: f16.storage_buffer16_bit_access == vk::TRUE,
                max_groups: limits.max_compute_work_group_count,
                max_local: limits.max_compute_work_group_size,
                max_invocations: limits.max_compute_work_group_invocations,
                max_shared_bytes: limits.max_compute_shared_memory_size,
                max_buffer_range: limits.max_storage_buffer_range as u64,
                preserve_nan32: float_controls_ext
                    && float_controls.shader_signed_zero_inf_nan_preserve_float32 == vk::TRUE,
                subgroup_arith: subgroup
                    .supported_operations
                    .contains(vk::SubgroupFeatureFlags::ARITHMETIC)
                    && subgroup
                        .supported_stages
                        .contains(vk::ShaderStageFlags::COMPUTE),
                preserve_nan64: float_controls_ext
                    && float_controls.shader_signed_zero_inf_nan_preserve_float64 == vk::TRUE,
            },
            ext_float_controls: float_controls_ext && props.api_version < vk::API_VERSION_1_2,
            push_descriptor,
            ext_8bit: ext_8bit && props.api_version < vk::API_VERSION_1_2,
            max_push_descriptors: if push_descriptor {
                push.max_push_descriptors
            } else {
                0
            },
            max_storage_buffers: limits.max_per_stage_descriptor_storage_buffers,
            timestamp_period: limits.timestamp_period,
            max_allocation: maintenance3.max_memory_allocation_size,
            subgroup_size: subgroup.subgroup_size,
            props,
            memory_bytes,
            driver,
        }
    }

    /// The dtypes kernels can use on this device.
    pub(crate) fn dtypes(&self) -> Vec<DType> {
        let f = &self.features;
        DType::ALL
            .into_iter()
            .filter(|d| match d {
                DType::I64 => f.int64,
                DType::F64 => f.float64,
                // 8/16-bit types are packed into words where the device lacks 8/16-bit storage.
                _ => true,
            })
            .collect()
    }

    /// The device kind. A CPU implementation (lavapipe) counts as a CPU, so the native CPU
    /// backend stays the default over it.
    pub(crate) fn kind(&self) -> DeviceKind {
        match self.props.device_type {
            vk::PhysicalDeviceType::DISCRETE_GPU => DeviceKind::DiscreteGpu,
            vk::PhysicalDeviceType::INTEGRATED_GPU => DeviceKind::IntegratedGpu,
            vk::PhysicalDeviceType::VIRTUAL_GPU => DeviceKind::VirtualGpu,
            _ => DeviceKind::Cpu,
        }
    }

    /// What `ferrograd devices` shows.
    pub(crate) fn device_info(&self, name: String) -> DeviceInfo {
        let f = &self.features;
        let model = self
            .props
            .device_name_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let api = self.props.api_version;
        let version = format!(
            "Vulkan {}.{}.{}",
            vk::api_version_major(api),
            vk::api_version_minor(api),
            vk::api_version_patch(api)
        );
        let description = if self.driver.is_empty() {
            format!("{model} ({version})")
        } else {
            format!("{model} ({}, {version})", self.driver)
        };
        let yes = |b: bool| if b { "yes" } else { "no" };
        DeviceInfo {
            name,
            description,
            kind: self.kind(),
            memory_bytes: self.memory_bytes,
            compute_units: self.compute_units.unwrap_or(0),
            vector_bytes: 4,
            dtypes: self.dtypes(),
            extra: vec![
                format!("type={:?}", self.props.device_type),
                format!("max_storage_buffer_bytes={}", f.max_buffer_range),
                format!(
                    "max_workgroup_size={:?} max_invocations={}",
                    f.max_local, f.max_invocations
                ),
                format!("max_workgroup_count={:?}", f.max_groups),
                format!("shared_memory_bytes={}", f.max_shared_bytes),
                format!(
                    "subgroup_size={} subgroup_arithmetic={}",
                    self.subgroup_size,
                    yes(f.subgroup_arith)
                ),
                format!(
                    "f16=yes f64={} i64={} 8bit_storage={} 16bit_storage={}",
                    yes(f.float64),
                    yes(f.int64),
                    yes(f.storage8),
                    yes(f.storage16)
                ),
                format!("push_descriptors={}", yes(self.push_descriptor)),
                "codegen=spirv (rspirv)".to_string(),
            ],
        }
    }
}
