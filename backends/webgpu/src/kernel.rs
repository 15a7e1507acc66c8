//! A compiled kernel: compute pipeline and bind group layout, with the dispatch shape chosen by
//! the WGSL renderer.

use crate::wgsl::Dispatch;
use ferrograd_ir::Param;

/// The runtime's view of a compiled kernel (`CompiledKernel` holds one).
pub struct WebGpuKernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) dispatch: Dispatch,
    pub(crate) params: Vec<Param>,
    pub(crate) name: String,
}

/// The bind group layout entries of `params`: binding `i` is param `i`, read-only unless the
/// kernel writes it.
pub(crate) fn layout_entries(params: &[Param]) -> Vec<wgpu::BindGroupLayoutEntry> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: !p.writable,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect()
}
