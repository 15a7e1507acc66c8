//! Recording and submitting work. Launches and copies are recorded into the current command
//! buffer and submitted together at `synchronize`/`read` (or when a batch grows past
//! [`MAX_COMMANDS`]), with a memory barrier before every command so each one sees the writes of
//! everything recorded before it. Two command buffers alternate, each with a fence; the objects a
//! batch uses are kept alive until its fence signals. Descriptors are pushed
//! (`VK_KHR_push_descriptor`) or, without the extension, allocated from the batch's own
//! descriptor pool, which is reset when the batch's fence has signaled.

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
/// Launch timings kept until [`Batch::take_times`] collects them.
const MAX_TIMES: usize = 1 << 16;
/// Most buffers one kernel binds (the guaranteed minimum of `maxPushDescriptors`).
pub(crate) const MAX_BINDINGS: usize = 32;

/// What a recorded command keeps alive (buffers and kernels) until its submission completes.
type Retained = Arc<dyn std::any::Any + Send + Sync>;

struct Frame {
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    pending: bool,
    retained: Vec<Retained>,
    /// Timestamp queries (two per launch) when profiling.
    queries: vk::QueryPool,
    /// Kernel name of each launch with timestamps, in query order.
    timed: Vec<Arc<str>>,
    /// Descriptor sets of this frame's launches, without push descriptors.
    descriptors: vk::DescriptorPool,
}

/// How long one launch ran on the device.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's name.
    pub name: Arc<str>,
    /// Device time between the launch's start and end timestamps, in nanoseconds.
    pub nanos: f64,
}

/// Per-launch timing state.
struct Profiler {
    /// Nanoseconds per tick.
    period: f64,
    /// Mask of the valid timestamp bits.
    mask: u64,
    /// Finished launches, oldest first.
    times: Vec<KernelTime>,
}

/// The device's command recorder (used under the device's lock).
pub(crate) struct Batch {
    ctx: Arc<Context>,
    pool: vk::CommandPool,
    frames: Vec<Frame>,
    current: usize,
    recording: bool,
    commands: usize,
    profiler: Option<Profiler>,
}

impl Batch {
    /// A command pool and [`FRAMES`] command buffers with fences; with `profile` (and a queue
    /// that has timestamps), every launch is timed (`timestamp_period` ns per tick).
    pub(crate) fn new(ctx: &Arc<Context>, profile: bool, timestamp_period: f32) -> Result<Batch> {
        let dev = &ctx.raw;
        let err = |what: &str, r: vk::Result| vk_error(&ctx.name, what, r);
        let pool_info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(ctx.queue_family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: the device is alive; the pool is destroyed in Drop.
        let pool = unsafe { dev.create_command_pool(&pool_info, None) }
            .map_err(|r| err("creating a command pool", r))?;
        let profiler = (profile && ctx.timestamp_bits > 0).then(|| Profiler {
            period: timestamp_period as f64,
            mask: if ctx.timestamp_bits >= 64 {
                u64::MAX
            } else {
                (1u64 << ctx.timestamp_bits) - 1
            },
            times: Vec::new(),
        });
        let mut batch = Batch {
            ctx: ctx.clone(),
            pool,
            frames: Vec::new(),
            current: 0,
            recording: false,
            commands: 0,
            profiler,
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
            // Pushed before creating the query pool so Drop destroys the fence on failure.
            batch.frames.push(Frame {
                cmd,
                fence,
                pending: false,
                retained: Vec::new(),
                queries: vk::QueryPool::null(),
                timed: Vec::new(),
                descriptors: vk::DescriptorPool::null(),
            });
            if ctx.push.is_none() {
                let sizes = [vk::DescriptorPoolSize::default()
                    .ty(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count((MAX_COMMANDS * MAX_BINDINGS) as u32)];
                let info = vk::DescriptorPoolCreateInfo::default()
                    .max_sets(MAX_COMMANDS as u32)
                    .pool_sizes(&sizes);
                // SAFETY: the device is alive; the pool is destroyed in Drop.
                let pool = unsafe { dev.create_descriptor_pool(&info, None) }
                    .map_err(|r| err("creating a descriptor pool", r))?;
                batch.frames.last_mut().expect("pushed above").descriptors = pool;
            }
            if batch.profiler.is_some() {
                let info = vk::QueryPoolCreateInfo::default()
                    .query_type(vk::QueryType::TIMESTAMP)
                    .query_count(2 * MAX_COMMANDS as u32);
                // SAFETY: the device is alive; the pool is destroyed in Drop.
                let queries = unsafe { dev.create_query_pool(&info, None) }
                    .map_err(|r| err("creating a query pool", r))?;
                batch.frames.last_mut().expect("pushed above").queries = queries;
            }
        }
        Ok(batch)
    }

    /// Waits for frame `i` if it was submitted, then releases what it kept alive.
    fn retire(&mut self, i: usize) -> Result<()> {
        let frame = &mut self.frames[i];
        if !frame.pending {
            // Nothing in flight (or a recording whose submission failed): drop what it held.
            if !(self.recording && i == self.current) {
                frame.retained.clear();
                frame.timed.clear();
            }
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
        if let (Some(profiler), false) = (&mut self.profiler, frame.timed.is_empty()) {
            let mut ticks = vec![0u64; 2 * frame.timed.len()];
            // SAFETY: the queries were written by the completed submission; `ticks` holds one
            // u64 per query.
            unsafe {
                dev.get_query_pool_results(
                    frame.queries,
                    0,
                    &mut ticks,
                    vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
                )
            }
            .map_err(|r| vk_error(&self.ctx.name, "reading timestamps", r))?;
            for (name, pair) in frame.timed.drain(..).zip(ticks.chunks(2)) {
                let ticks =
                    (pair[1] & profiler.mask).wrapping_sub(pair[0] & profiler.mask) & profiler.mask;
                let nanos = ticks as f64 * profiler.period;
                tracing::debug!(kernel = %name, micros = nanos / 1e3, "vulkan launch time");
                if profiler.times.len() >= MAX_TIMES {
                    // Nobody collects them: keep the newest half.
                    profiler.times.drain(..MAX_TIMES / 2);
                }
                profiler.times.push(KernelTime { name, nanos });
            }
        }
        Ok(())
    }

    /// The timings of every launch completed since the last call (empty when not profiling).
    pub(crate) fn take_times(&mut self) -> Vec<KernelTime> {
        self.profiler
            .as_mut()
            .map(|p| std::mem::take(&mut p.times))
            .unwrap_or_default()
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
            let descriptors = self.frames[self.current].descriptors;
            if descriptors != vk::DescriptorPool::null() {
                // SAFETY: the sets allocated from the pool were used only by the frame's
                // previous submission, which completed (retired above).
                unsafe {
                    self.ctx
                        .raw
                        .reset_descriptor_pool(descriptors, vk::DescriptorPoolResetFlags::empty())
                }
                .map_err(|r| vk_error(&self.ctx.name, "resetting a descriptor pool", r))?;
            }
            if self.profiler.is_some() {
                // SAFETY: `cmd` is recording; the frame's queries are no longer in use.
                unsafe {
                    self.ctx.raw.cmd_reset_query_pool(
                        cmd,
                        self.frames[self.current].queries,
                        0,
                        2 * MAX_COMMANDS as u32,
                    )
                };
            }
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
        // Descriptors live on the stack: no allocation per launch.
        let mut infos = [vk::DescriptorBufferInfo::default(); MAX_BINDINGS];
        let mut writes = [vk::WriteDescriptorSet::default(); MAX_BINDINGS];
        let n = buffers.len();
        assert!(
            n <= MAX_BINDINGS,
            "launch: {n} buffers; kernels are compiled with at most {MAX_BINDINGS}"
        );
        for (info, b) in infos.iter_mut().zip(buffers) {
            *info = vk::DescriptorBufferInfo::default()
                .buffer(b.raw)
                .offset(0)
                .range(b.size.min(max_range));
        }
        for (i, (write, info)) in writes.iter_mut().zip(&infos[..n]).enumerate() {
            *write = vk::WriteDescriptorSet::default()
                .dst_binding(i as u32)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(std::slice::from_ref(info));
        }
        let writes = &writes[..n];
        let set = match self.ctx.push {
            Some(_) => None,
            None => Some(self.descriptor_set(kernel, writes)?),
        };
        let frame = &mut self.frames[self.current];
        let query = if self.profiler.is_some() {
            frame.timed.push(Arc::from(kernel.name.as_str()));
            Some(2 * (frame.timed.len() as u32 - 1))
        } else {
            None
        };
        // SAFETY: `cmd` is recording; the pipeline, layout and buffers are alive and retained
        // below until the submission completes; binding i matches param i of the layout; the
        // queries (when profiling) were reset at the start of this command buffer and each is
        // written once (a batch holds at most MAX_COMMANDS launches).
        unsafe {
            let dev = &self.ctx.raw;
            if let Some(q) = query {
                dev.cmd_write_timestamp(cmd, vk::PipelineStageFlags::TOP_OF_PIPE, frame.queries, q);
            }
            dev.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, kernel.pipeline);
            match (&self.ctx.push, set) {
                (Some(push), _) => push.cmd_push_descriptor_set(
                    cmd,
                    vk::PipelineBindPoint::COMPUTE,
                    kernel.layout,
                    0,
                    writes,
                ),
                (None, Some(set)) => dev.cmd_bind_descriptor_sets(
                    cmd,
                    vk::PipelineBindPoint::COMPUTE,
                    kernel.layout,
                    0,
                    &[set],
                    &[],
                ),
                (None, None) => unreachable!("a set is allocated without push descriptors"),
            }
            dev.cmd_dispatch(cmd, groups[0], groups[1], groups[2]);
            if let Some(q) = query {
                dev.cmd_write_timestamp(
                    cmd,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    frame.queries,
                    q + 1,
                );
            }
        }
        frame.retained.push(kernel.clone());
        frame
            .retained
            .extend(buffers.iter().map(|b| (*b).clone() as Retained));
        self.end_command()
    }

    /// A descriptor set for `kernel` from the current frame's pool, written with `writes`.
    fn descriptor_set(
        &self,
        kernel: &KernelInner,
        writes: &[vk::WriteDescriptorSet],
    ) -> Result<vk::DescriptorSet> {
        let layouts = [kernel.set_layout];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.frames[self.current].descriptors)
            .set_layouts(&layouts);
        // SAFETY: the pool holds MAX_COMMANDS sets of MAX_BINDINGS buffers and is reset when a
        // recording starts; a recording holds at most MAX_COMMANDS launches of at most
        // MAX_BINDINGS buffers, so allocation fits.
        let set = unsafe { self.ctx.raw.allocate_descriptor_sets(&info) }
            .map_err(|r| vk_error(&self.ctx.name, "allocating a descriptor set", r))?[0];
        let mut bound = [vk::WriteDescriptorSet::default(); MAX_BINDINGS];
        for (b, w) in bound.iter_mut().zip(writes) {
            *b = (*w).dst_set(set);
        }
        // SAFETY: the set is fresh and unused; the writes point at live buffer infos.
        unsafe {
            self.ctx
                .raw
                .update_descriptor_sets(&bound[..writes.len()], &[])
        };
        Ok(set)
    }

    /// Records a copy of `bytes` bytes of `src` from `src_offset` into `dst` at `dst_offset`.
    pub(crate) fn copy(
        &mut self,
        (src, src_offset): (&Arc<BufferInner>, u64),
        (dst, dst_offset): (&Arc<BufferInner>, u64),
        bytes: u64,
    ) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let cmd = self.begin_command()?;
        let region = [vk::BufferCopy::default()
            .src_offset(src_offset)
            .dst_offset(dst_offset)
            .size(bytes)];
        // SAFETY: `cmd` is recording; both buffers hold `bytes` bytes from their offsets (the
        // caller checked) and are retained until the submission completes.
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
                self.ctx.raw.destroy_query_pool(f.queries, None);
                self.ctx.raw.destroy_descriptor_pool(f.descriptors, None);
            }
            self.ctx.raw.destroy_command_pool(self.pool, None);
        }
        for f in &mut self.frames {
            f.retained.clear();
        }
    }
}
