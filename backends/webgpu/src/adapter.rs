//! Finding adapters and opening them: which features and limits to request, and what
//! `ferrograd devices` shows.

use crate::error::{backend_error, no_adapter};
use crate::wgsl::Features;
use ferrograd_ir::DType;
use ferrograd_runtime::{DeviceInfo, DeviceKind, Result};

/// Optional features used when the adapter has them.
const WANTED: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SHADER_INT64)
    .union(wgpu::Features::SHADER_F64)
    .union(wgpu::Features::SUBGROUP);

/// Every adapter of `backends`, best first (discrete > integrated > virtual > CPU).
pub(crate) fn adapters(backends: wgpu::Backends) -> Result<Vec<wgpu::Adapter>> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        flags: wgpu::InstanceFlags::empty().with_env(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let mut found = pollster::block_on(instance.enumerate_adapters(backends));
    if found.is_empty() {
        return Err(backend_error(no_adapter(backends)));
    }
    found.sort_by_key(|a| std::cmp::Reverse(kind(&a.get_info())));
    Ok(found)
}

/// The device kind. A CPU implementation (lavapipe) counts as a CPU, so the native CPU
/// backend stays the default over it.
pub(crate) fn kind(info: &wgpu::AdapterInfo) -> DeviceKind {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu,
        wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => DeviceKind::Cpu,
    }
}

/// The features to request from `adapter` (`profile` adds timestamp queries).
pub(crate) fn wanted_features(adapter: &wgpu::Adapter, profile: bool) -> wgpu::Features {
    let mut wanted = WANTED;
    if profile {
        wanted |= wgpu::Features::TIMESTAMP_QUERY;
    }
    adapter.features() & wanted
}

/// What the WGSL renderer may use on a device with `features` and `limits`.
pub(crate) fn shader_features(features: wgpu::Features, limits: &wgpu::Limits) -> Features {
    Features {
        native_f16: features.contains(wgpu::Features::SHADER_F16),
        int64: features.contains(wgpu::Features::SHADER_INT64),
        float64: features.contains(wgpu::Features::SHADER_F64),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        max_groups: limits.max_compute_workgroups_per_dimension,
        max_local: [
            limits.max_compute_workgroup_size_x,
            limits.max_compute_workgroup_size_y,
            limits.max_compute_workgroup_size_z,
        ],
        max_invocations: limits.max_compute_invocations_per_workgroup,
        max_shared_bytes: limits.max_compute_workgroup_storage_size,
    }
}

/// What `ferrograd devices` shows about an opened device.
pub(crate) fn device_info(
    name: String,
    info: &wgpu::AdapterInfo,
    features: &Features,
    limits: &wgpu::Limits,
) -> DeviceInfo {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    DeviceInfo {
        name,
        description: format!("{} ({:?}; {driver})", info.name, info.backend),
        kind: kind(info),
        memory_bytes: limits.max_buffer_size,
        // WebGPU does not report compute units.
        compute_units: 0,
        vector_bytes: 4,
        dtypes: DType::ALL
            .into_iter()
            .filter(|d| match d {
                DType::I64 => features.int64,
                DType::F64 => features.float64,
                // bool/i8/u8/bf16 (and f16 without shader-f16) are packed into 32-bit words.
                _ => true,
            })
            .collect(),
        extra: vec![
            format!("type={:?} backend={:?}", info.device_type, info.backend),
            "memory shown is max_buffer_size (WebGPU reports no heap size)".to_string(),
            format!(
                "max_storage_buffer_binding_size={}",
                limits.max_storage_buffer_binding_size
            ),
            format!(
                "max_storage_buffers_per_stage={}",
                limits.max_storage_buffers_per_shader_stage
            ),
            format!(
                "max_workgroup_size={:?} max_invocations={}",
                features.max_local, features.max_invocations
            ),
            format!("max_workgroups_per_dimension={}", features.max_groups),
            format!("workgroup_storage_bytes={}", features.max_shared_bytes),
            format!(
                "shader_f16={} i64={} f64={} subgroups={}",
                yes(features.native_f16),
                yes(features.int64),
                yes(features.float64),
                yes(features.subgroups)
            ),
            "codegen=wgsl (naga)".to_string(),
        ],
    }
}
