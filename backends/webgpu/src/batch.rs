//! Recording launches and copies: one command encoder, with one compute pass holding many
//! dispatches, submitted at `synchronize`/`read` (or every [`MAX_RECORDED`] commands). wgpu
//! orders the dispatches of a pass (each dispatch is its own usage scope, with the barriers it
//! needs). Waiting is `Device::poll` with a blocking wait: no spinning.
//!
//! With profiling, every dispatch gets its own pass whose beginning and end write timestamps.

use crate::kernel::WebGpuKernel;
use ferrograd_runtime::{Error, Result};

/// Commands recorded before a submit is forced (bounds memory held by pending work).
pub(crate) const MAX_RECORDED: usize = 256;

/// Device time of one profiled launch.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's name.
    pub name: String,
    /// Seconds between the start and the end of its dispatch.
    pub seconds: f64,
}

/// Timestamp queries of the launches recorded since the last submit.
struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Names of the launches whose timestamps are pending, in query order.
    pending: Vec<String>,
    /// Nanoseconds per timestamp tick.
    period: f64,
    done: Vec<KernelTime>,
}

/// The open command encoder and pass of a device.
pub(crate) struct Batch {
    device: wgpu::Device,
    queue: wgpu::Queue,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    recorded: usize,
    /// Work was submitted and not yet waited for.
    in_flight: bool,
    profiler: Option<Profiler>,
}

impl Batch {
    /// A batch for `device`; `profile` enables timestamp queries (the device must have
    /// `TIMESTAMP_QUERY`).
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue, profile: bool) -> Batch {
        let profiler = profile.then(|| {
            let count = 2 * MAX_RECORDED as u32;
            let bytes = count as u64 * 8;
            Profiler {
                queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("ferrograd timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("ferrograd timestamp resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("ferrograd timestamp readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                pending: Vec::new(),
                period: queue.get_timestamp_period() as f64,
                done: Vec::new(),
            }
        });
        Batch {
            device: device.clone(),
            queue: queue.clone(),
            encoder: None,
            pass: None,
            recorded: 0,
            in_flight: false,
            profiler,
        }
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("ferrograd batch"),
                })
        })
    }

    /// Records one dispatch of `kernel` with `bind_group`.
    pub(crate) fn dispatch(
        &mut self,
        kernel: &WebGpuKernel,
        bind_group: &wgpu::BindGroup,
    ) -> Result<()> {
        let [x, y, z] = kernel.dispatch.groups;
        if x == 0 {
            return Ok(());
        }
        if self.profiler.is_some() {
            self.pass = None;
            let index = self
                .profiler
                .as_ref()
                .map_or(0, |p| p.pending.len() as u32 * 2);
            let mut encoder = self.encoder.take().unwrap_or_else(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("ferrograd batch"),
                    })
            });
            if let Some(p) = &mut self.profiler {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&kernel.name),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &p.queries,
                        beginning_of_pass_write_index: Some(index),
                        end_of_pass_write_index: Some(index + 1),
                    }),
                });
                pass.set_pipeline(&kernel.pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(x, y, z);
                drop(pass);
                p.pending.push(kernel.name.clone());
            }
            self.encoder = Some(encoder);
        } else {
            if self.pass.is_none() {
                let pass = self
                    .encoder()
                    .begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("ferrograd kernels"),
                        timestamp_writes: None,
                    })
                    .forget_lifetime();
                self.pass = Some(pass);
            }
            let pass = self.pass.as_mut().expect("an open pass");
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
        self.recorded += 1;
        if self.recorded >= MAX_RECORDED {
            self.submit();
        }
        Ok(())
    }

    /// Records a copy of `bytes` bytes of `src` from `src_offset` to `dst` at `dst_offset` (after
    /// every recorded dispatch; offsets and size are multiples of 4).
    pub(crate) fn copy(
        &mut self,
        (src, src_offset): (&wgpu::Buffer, u64),
        (dst, dst_offset): (&wgpu::Buffer, u64),
        bytes: u64,
    ) {
        self.pass = None;
        self.encoder()
            .copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
        self.recorded += 1;
    }

    /// Submits everything recorded (without waiting).
    pub(crate) fn submit(&mut self) {
        self.pass = None;
        let Some(mut encoder) = self.encoder.take() else {
            return;
        };
        if let Some(p) = &self.profiler {
            let n = p.pending.len() as u32 * 2;
            if n > 0 {
                encoder.resolve_query_set(&p.queries, 0..n, &p.resolve, 0);
                encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.readback, 0, n as u64 * 8);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.recorded = 0;
        self.in_flight = true;
        if self
            .profiler
            .as_ref()
            .is_some_and(|p| !p.pending.is_empty())
        {
            // The query set is reused by the next submit: collect these timestamps now.
            if let Err(e) = self.wait().and_then(|()| self.collect_times()) {
                tracing::warn!("reading WebGPU timestamps failed: {e}");
            }
        }
    }

    /// Blocks until all submitted work is done.
    pub(crate) fn wait(&mut self) -> Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device {
                device: "webgpu".into(),
                reason: format!("waiting for the queue failed: {e}"),
            })?;
        self.in_flight = false;
        Ok(())
    }

    /// Submits and waits.
    pub(crate) fn synchronize(&mut self) -> Result<()> {
        self.submit();
        self.wait()
    }

    /// Maps `buffer` (MAP_READ, idle) and copies its start into `out`.
    pub(crate) fn read_mapped(&self, buffer: &wgpu::Buffer, out: &mut [u8]) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device {
                device: "webgpu".into(),
                reason: format!("waiting for a buffer mapping failed: {e}"),
            })?;
        let mapped = rx.try_recv().map_err(|_| Error::Device {
            device: "webgpu".into(),
            reason: "a buffer mapping did not complete".into(),
        })?;
        mapped.map_err(|e| Error::Device {
            device: "webgpu".into(),
            reason: format!("mapping a buffer for reading failed: {e}"),
        })?;
        {
            let view = buffer.get_mapped_range(..).map_err(|e| Error::Device {
                device: "webgpu".into(),
                reason: format!("reading a mapped buffer failed: {e}"),
            })?;
            out.copy_from_slice(&view[..out.len()]);
        }
        buffer.unmap();
        Ok(())
    }

    /// Reads the resolved timestamps of the pending launches (after their submit completed).
    fn collect_times(&mut self) -> Result<()> {
        let Some(p) = &self.profiler else {
            return Ok(());
        };
        let n = p.pending.len() * 2;
        let mut raw = vec![0u8; n * 8];
        self.read_mapped(&p.readback, &mut raw)?;
        let p = self.profiler.as_mut().expect("profiling");
        let ticks: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        for (k, name) in p.pending.drain(..).enumerate() {
            let (start, end) = (ticks[2 * k], ticks[2 * k + 1]);
            p.done.push(KernelTime {
                name,
                seconds: end.saturating_sub(start) as f64 * p.period * 1e-9,
            });
        }
        Ok(())
    }

    /// Profiled launch times completed so far (oldest first), removed from the batch.
    pub(crate) fn take_times(&mut self) -> Vec<KernelTime> {
        self.profiler
            .as_mut()
            .map(|p| std::mem::take(&mut p.done))
            .unwrap_or_default()
    }
}
