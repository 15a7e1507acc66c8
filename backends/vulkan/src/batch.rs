//! Recording and submitting work. Launches and copies are recorded into the current command
//! buffer and submitted together at `synchronize`/`read` (or when a batch grows past
//! [`MAX_COMMANDS`]), with a memory barrier before every command so each one sees the writes of
//! everything recorded before it. Two command buffers alternate, each with a fence; the objects a
//! batch uses are kept alive until its fence signals.

use crate::buffer::BufferInner;
use crate::context::Context;
use crate::error::vk_error;
use crate::kernel::KernelInner;
use ash::vk;
use ferrograd_runtime::Result;
use std::sync::Arc;

/// Commands in one submission before it is flushed without waiting.
const MAX_COMMANDS: usize = 256;
/// Command buffers in flight.
const FRAMES: usize = 2;

/// What a recorded command keeps alive (buffers and kernels) until its submission completes.
type Retained = Arc<dyn std::any::Any + Send + Sync>;

struct Frame {
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    pending: bool,
    retained: Vec<Retained>,
}

/// The device's command recorder (used under the device's lock).
pub(crate) struct Batch {
    ctx: Arc<Context>,
    pool: vk::CommandPool,
    frames: Vec<Frame>,
    current: usize,
    recording: bool,
    commands: usize,
    /// Scratch space for descriptor infos (no allocation per launch once grown).
    infos: Vec<vk::DescriptorBufferInfo>,
}

impl Batch {
    /// A command pool and [`FRAMES`] command buffers with fences.
    pub(crate) fn new(ctx: &Arc<Context>) -> Result<Batch> {
        let dev = &ctx.raw;
        let err = |what: &str, r: vk::Result| vk_error(&ctx.name, what, r);
        let pool_info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(ctx.queue_family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: the device is alive; the pool is destroyed in Drop.
        let pool = unsafe { dev.create_command_pool(&pool_info, None) }
            .map_err(|r| err("creating a command pool", r))?;
        let mut batch = Batch {
            ctx: ctx.clone(),
            pool,
            frames: Vec::new(),
            current: 0,
            recording: false,
            commands: 0,
            infos: Vec::new(),
        };
        let alloc = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(FRAMES as u32);
        // SAFETY: `pool` is alive; the buffers are freed with it.
        let cmds = unsafe { dev.allocate_command_buffers(&alloc) }
            .map_err(|r| err("allocating command buffers", r))?;
        for cmd in cmds {
            // SAFETY: the device is alive; fences are destroyed in Drop.
            let fence = unsafe { dev.create_fence(&vk::FenceCreateInfo::default(), None) }
                .map_err(|r| err("creating a fence", r))?;
            batch.frames.push(Frame {
                cmd,
                fence,
                pending: false,
                retained: Vec::new(),
            });
        }
        Ok(batch)
    }

    /// Waits for frame `i` if it was submitted, then releases what it kept alive.
    fn retire(&mut self, i: usize) -> Result<()> {
        let frame = &mut self.frames[i];
        if !frame.pending {
            return Ok(());
        }
        let dev = &self.ctx.raw;
        // SAFETY: the fence belongs to this device and was submitted with the frame.
        unsafe { dev.wait_for_fences(&[frame.fence], true, u64::MAX) }
            .map_err(|r| vk_error(&self.ctx.name, "waiting for submitted work", r))?;
        // SAFETY: the fence is signaled and no longer in use.
        unsafe { dev.reset_fences(&[frame.fence]) }
            .map_err(|r| vk_error(&self.ctx.name, "resetting a fence", r))?;
        frame.pending = false;
        frame.retained.clear();
        Ok(())
    }

    /// The command buffer being recorded, starting one if needed; then a barrier against
    /// everything recorded or submitted before.
    fn begin_command(&mut self) -> Result<vk::CommandBuffer> {
        if !self.recording {
            self.retire(self.current)?;
            let cmd = self.frames[self.current].cmd;
            let info = vk::CommandBufferBeginInfo::default()
                .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            // SAFETY: the frame's previous submission completed (retired above), so the buffer
            // is not in use; the pool allows resetting individual buffers.
            unsafe {
                self.ctx
                    .raw
                    .reset_command_buffer(cmd, vk::CommandBufferResetFlags::empty())
                    .and_then(|_| self.ctx.raw.begin_command_buffer(cmd, &info))
            }
            .map_err(|r| vk_error(&self.ctx.name, "starting a command buffer", r))?;
            self.recording = true;
        }
        let cmd = self.frames[self.current].cmd;
        let stages = vk::PipelineStageFlags::COMPUTE_SHADER | vk::PipelineStageFlags::TRANSFER;
        let barrier = [vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE | vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(
                vk::AccessFlags::SHADER_READ
                    | vk::AccessFlags::SHADER_WRITE
                    | vk::AccessFlags::TRANSFER_READ
                    | vk::AccessFlags::TRANSFER_WRITE,
            )];
        // SAFETY: `cmd` is in the recording state.
        unsafe {
            self.ctx.raw.cmd_pipeline_barrier(
                cmd,
                stages,
                stages,
                vk::DependencyFlags::empty(),
                &barrier,
                &[],
                &[],
            );
        }
        self.commands += 1;
        Ok(cmd)
    }

    /// Flushes when the batch is long, so retained objects and latency stay bounded.
    fn end_command(&mut self) -> Result<()> {
        if self.commands >= MAX_COMMANDS {
            self.submit()?;
        }
        Ok(())
    }

    /// Records one launch of `kernel` over `buffers` (already checked against its params), each
    /// bound with a range of at most `max_range` bytes.
    pub(crate) fn dispatch(
        &mut self,
        kernel: &Arc<KernelInner>,
        buffers: &[&Arc<BufferInner>],
        max_range: u64,
    ) -> Result<()> {
        let groups = kernel.dispatch.groups;
        if groups[0] == 0 {
            return Ok(());
        }
        let cmd = self.begin_command()?;
        self.infos.clear();
        self.infos.extend(buffers.iter().map(|b| {
            vk::DescriptorBufferInfo::default()
                .buffer(b.raw)
                .offset(0)
                .range(b.size.min(max_range))
        }));
        let writes: Vec<vk::WriteDescriptorSet> = self
            .infos
            .iter()
            .enumerate()
            .map(|(i, info)| {
                vk::WriteDescriptorSet::default()
                    .dst_binding(i as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(std::slice::from_ref(info))
            })
            .collect();
        let push = self
            .ctx
            .push
            .as_ref()
            .expect("devices are opened only with push descriptors");
        // SAFETY: `cmd` is recording; the pipeline, layout and buffers are alive and retained
        // below until the submission completes; binding i matches param i of the layout.
        unsafe {
            self.ctx
                .raw
                .cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, kernel.pipeline);
            push.cmd_push_descriptor_set(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                kernel.layout,
                0,
                &writes,
            );
            self.ctx
                .raw
                .cmd_dispatch(cmd, groups[0], groups[1], groups[2]);
        }
        let frame = &mut self.frames[self.current];
        frame.retained.push(kernel.clone());
        frame
            .retained
            .extend(buffers.iter().map(|b| (*b).clone() as Retained));
        self.end_command()
    }

    /// Records a copy of the first `bytes` bytes of `src` into `dst`.
    pub(crate) fn copy(
        &mut self,
        src: &Arc<BufferInner>,
        dst: &Arc<BufferInner>,
        bytes: u64,
    ) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let cmd = self.begin_command()?;
        let region = [vk::BufferCopy::default().size(bytes)];
        // SAFETY: `cmd` is recording; both buffers hold at least `bytes` bytes (the caller
        // checked) and are retained until the submission completes.
        unsafe { self.ctx.raw.cmd_copy_buffer(cmd, src.raw, dst.raw, &region) };
        let frame = &mut self.frames[self.current];
        frame.retained.push(src.clone());
        frame.retained.push(dst.clone());
        self.end_command()
    }

    /// Submits what was recorded (without waiting).
    pub(crate) fn submit(&mut self) -> Result<()> {
        if !self.recording {
            return Ok(());
        }
        let frame = &mut self.frames[self.current];
        let dev = &self.ctx.raw;
        let to_host = [vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE | vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)];
        let cmds = [frame.cmd];
        let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
        self.recording = false;
        self.commands = 0;
        // SAFETY: `cmd` is recording; the queue is used only under the device's lock; the fence
        // is unsignaled (reset when the frame was retired).
        unsafe {
            dev.cmd_pipeline_barrier(
                frame.cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER | vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &to_host,
                &[],
                &[],
            );
            dev.end_command_buffer(frame.cmd)
                .and_then(|_| dev.queue_submit(self.ctx.queue, &submit, frame.fence))
        }
        .map_err(|r| vk_error(&self.ctx.name, "submitting work", r))?;
        frame.pending = true;
        self.current = (self.current + 1) % FRAMES;
        Ok(())
    }

    /// True when nothing is recorded or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        !self.recording && self.frames.iter().all(|f| !f.pending)
    }

    /// Submits what was recorded and waits for all work to finish.
    pub(crate) fn synchronize(&mut self) -> Result<()> {
        self.submit()?;
        for i in 0..FRAMES {
            self.retire(i)?;
        }
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: waiting for the device to go idle first means no command buffer or fence is
        // in use when they are destroyed; destroying the pool frees its command buffers.
        unsafe {
            let _ = self.ctx.raw.device_wait_idle();
            for f in &self.frames {
                self.ctx.raw.destroy_fence(f.fence, None);
            }
            self.ctx.raw.destroy_command_pool(self.pool, None);
        }
        for f in &mut self.frames {
            f.retained.clear();
        }
    }
}
