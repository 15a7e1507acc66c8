//! A compiled kernel: shader module, descriptor set layout (for push descriptors where the
//! driver has them), pipeline layout and compute
//! pipeline, with the dispatch shape chosen by the code generator.

use crate::context::Context;
use crate::error::vk_error;
use crate::spirv::{Dispatch, Shader};
use ash::vk;
use ferrograd_ir::{Param, Program};
use ferrograd_runtime::Result;
use std::sync::Arc;

/// Vulkan objects of one compiled Program.
pub(crate) struct KernelInner {
    ctx: Arc<Context>,
    module: vk::ShaderModule,
    pub(crate) set_layout: vk::DescriptorSetLayout,
    pub(crate) layout: vk::PipelineLayout,
    pub(crate) pipeline: vk::Pipeline,
    pub(crate) dispatch: Dispatch,
    pub(crate) params: Vec<Param>,
    pub(crate) name: String,
}

/// The runtime's view of a compiled kernel (`CompiledKernel` holds one).
pub struct VulkanKernel {
    pub(crate) inner: Arc<KernelInner>,
}

impl KernelInner {
    /// Creates the pipeline for `shader`, compiled from `program`.
    pub(crate) fn create(
        ctx: &Arc<Context>,
        program: &Program,
        shader: &Shader,
    ) -> Result<Arc<KernelInner>> {
        let dev = &ctx.raw;
        let err = |what: &str, r: vk::Result| {
            vk_error(
                &ctx.name,
                &format!("{what} for kernel `{}`", program.name),
                r,
            )
        };
        let mut kernel = KernelInner {
            ctx: ctx.clone(),
            module: vk::ShaderModule::null(),
            set_layout: vk::DescriptorSetLayout::null(),
            layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            dispatch: shader.dispatch,
            params: program.params.clone(),
            name: program.name.clone(),
        };
        let module_info = vk::ShaderModuleCreateInfo::default().code(&shader.words);
        // SAFETY: `words` is a complete SPIR-V module; objects created here are destroyed by
        // `kernel`'s Drop (null handles are ignored), also on the error paths below.
        kernel.module = unsafe { dev.create_shader_module(&module_info, None) }
            .map_err(|r| err("creating the shader module", r))?;
        let bindings: Vec<vk::DescriptorSetLayoutBinding> = (0..program.params.len() as u32)
            .map(|i| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(i)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let flags = if ctx.push.is_some() {
            vk::DescriptorSetLayoutCreateFlags::PUSH_DESCRIPTOR_KHR
        } else {
            vk::DescriptorSetLayoutCreateFlags::empty()
        };
        let set_info = vk::DescriptorSetLayoutCreateInfo::default()
            .flags(flags)
            .bindings(&bindings);
        // SAFETY: as above.
        kernel.set_layout = unsafe { dev.create_descriptor_set_layout(&set_info, None) }
            .map_err(|r| err("creating the descriptor set layout", r))?;
        let set_layouts = [kernel.set_layout];
        let layout_info = vk::PipelineLayoutCreateInfo::default().set_layouts(&set_layouts);
        // SAFETY: as above.
        kernel.layout = unsafe { dev.create_pipeline_layout(&layout_info, None) }
            .map_err(|r| err("creating the pipeline layout", r))?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(kernel.module)
            .name(c"main");
        let info = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(kernel.layout)];
        // SAFETY: as above; the pipeline cache belongs to the same device.
        let pipelines = unsafe { dev.create_compute_pipelines(ctx.pipeline_cache, &info, None) }
            .map_err(|(_, r)| err("creating the compute pipeline", r))?;
        kernel.pipeline = pipelines[0];
        Ok(Arc::new(kernel))
    }
}

impl Drop for KernelInner {
    fn drop(&mut self) {
        // SAFETY: the last reference is gone, so no pending command buffer uses these objects
        // (batches hold references until their fence signals). Null handles are ignored.
        unsafe {
            let dev = &self.ctx.raw;
            dev.destroy_pipeline(self.pipeline, None);
            dev.destroy_pipeline_layout(self.layout, None);
            dev.destroy_descriptor_set_layout(self.set_layout, None);
            dev.destroy_shader_module(self.module, None);
        }
    }
}
