//! One client session on a worker: the session's buffers and kernels on one local device, and
//! the commands of each batch run in order.
//!
//! Everything a client sends is checked before it reaches the device (ids, sizes, offsets,
//! the buffers a launch binds against the Program's params), and a panic inside a backend is
//! caught: a bad command fails its batch with a reason, never the worker.

use super::exchange::Exchange;
use crate::pool::BufferPool;
use crate::protocol::program::WireProgram;
use crate::protocol::{Batch, Command, WorkerMsg};
use bytes::Bytes;
use ferrograd_ir::Program;
use ferrograd_runtime::{Buffer, CompiledKernel, DeviceHandle};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Kernel {
    compiled: CompiledKernel,
    /// Bytes each param spans (a bound buffer must be at least that large).
    param_bytes: Vec<usize>,
}

/// The state of one client session.
pub(crate) struct Session {
    device: Arc<DeviceHandle>,
    buffers: HashMap<u64, Buffer>,
    kernels: HashMap<u64, Kernel>,
    allocated: usize,
    memory_limit: usize,
    exchange: Arc<Exchange>,
    /// When the running batch's deadline passes.
    deadline: Instant,
    /// A kernel was launched and no synchronize or read has waited for it since.
    launched: bool,
}

/// Most bytes of data (and of allocations) a batch may move to count as quick.
const QUICK_BYTES: u64 = 1 << 20;

type Outcome = Result<(), String>;

impl Session {
    /// A session on `device` that may hold at most `memory_limit` bytes of buffers and
    /// exchanges data with other workers through `exchange`.
    pub(crate) fn new(
        device: Arc<DeviceHandle>,
        memory_limit: usize,
        exchange: Arc<Exchange>,
    ) -> Self {
        Session {
            device,
            buffers: HashMap::new(),
            kernels: HashMap::new(),
            allocated: 0,
            memory_limit,
            exchange,
            deadline: Instant::now(),
            launched: false,
        }
    }

    /// Whether `batch` takes only a moment: allocations, writes, reads and frees of at most
    /// [`QUICK_BYTES`] together, and no read that would wait for a launched kernel. Such a
    /// batch may run on the connection's reader instead of being handed to the session thread.
    pub(crate) fn is_quick(&self, batch: &Batch) -> bool {
        let mut bytes = 0u64;
        for command in &batch.commands {
            bytes = bytes.saturating_add(match command {
                Command::Alloc { bytes, .. } | Command::Write { bytes, .. } => *bytes,
                Command::Read { bytes, .. } if !self.launched => *bytes,
                Command::Free { .. } => 0,
                _ => return false,
            });
        }
        bytes <= QUICK_BYTES
    }

    /// Runs a batch received at `received`; the answer to send back.
    pub(crate) fn run(&mut self, batch: Batch, received: Instant) -> WorkerMsg {
        let deadline = received + Duration::from_millis(batch.deadline_ms as u64);
        self.deadline = deadline;
        let mut reads = Vec::new();
        let mut payload = batch.payload.into_iter();
        for (index, command) in batch.commands.into_iter().enumerate() {
            let failed = |reason: String| WorkerMsg::Failed {
                id: batch.id,
                index: index as u32,
                reason,
            };
            if Instant::now() > deadline {
                return failed(format!(
                    "the batch's deadline of {} ms passed before this command started",
                    batch.deadline_ms
                ));
            }
            let data = match command {
                Command::Write { .. } | Command::Deposit { .. } => payload.next(),
                _ => None,
            };
            match catch_unwind(AssertUnwindSafe(|| self.command(command, data, &mut reads))) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return failed(reason),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    return failed(format!("the device panicked: {what}"));
                }
            }
        }
        WorkerMsg::Done {
            id: batch.id,
            read_bytes: reads.iter().map(|r: &Bytes| r.len() as u64).collect(),
            reads,
        }
    }

    /// Runs one command; `data` is the payload segment of a write.
    fn command(
        &mut self,
        command: Command,
        data: Option<Bytes>,
        reads: &mut Vec<Bytes>,
    ) -> Outcome {
        match command {
            Command::Alloc { buffer, bytes } => self.alloc(buffer, bytes),
            Command::Free { buffer } => self.free(buffer),
            Command::Write { buffer, offset, .. } => {
                // The decoder attached one segment per write; a missing one is a bug here.
                let data = data.ok_or("a write without its data")?;
                self.write(buffer, offset, &data)
            }
            Command::Compile { kernel, program } => self.compile(kernel, &program),
            Command::Launch { kernel, buffers } => {
                self.launched = true;
                self.launch(kernel, &buffers)
            }
            Command::Read {
                buffer,
                offset,
                bytes,
            } => {
                reads.push(self.read(buffer, offset, bytes)?);
                self.launched = false;
                Ok(())
            }
            Command::Synchronize => {
                let synchronized = self.device.device().synchronize();
                self.launched = false;
                synchronized.map_err(|e| e.to_string())
            }
            Command::Send {
                buffer,
                bytes,
                peer,
                device,
                ticket,
            } => {
                let data = self.read(buffer, 0, bytes)?;
                let left = self.deadline.saturating_duration_since(Instant::now());
                self.exchange.send(&data, &peer, &device, ticket, left)
            }
            Command::Deposit {
                ticket,
                offset,
                total,
                ..
            } => {
                // The decoder attached one segment per deposit, as for writes.
                let data = data.ok_or("a deposit without its data")?;
                self.exchange.deposit(ticket, offset, total, &data)
            }
            Command::Receive {
                buffer,
                ticket,
                bytes,
            } => {
                let capacity = self.buffer(buffer)?.bytes();
                if bytes as usize > capacity {
                    return Err(format!(
                        "receive of {bytes} bytes into buffer #{buffer} of {capacity} bytes"
                    ));
                }
                let data = self.exchange.take(ticket, bytes)?;
                self.buffer(buffer)?.write(&data).map_err(|e| e.to_string())
            }
        }
    }

    fn buffer(&self, id: u64) -> Result<&Buffer, String> {
        self.buffers
            .get(&id)
            .ok_or_else(|| format!("no buffer #{id} in this session"))
    }

    fn alloc(&mut self, id: u64, bytes: u64) -> Outcome {
        if self.buffers.contains_key(&id) {
            return Err(format!("buffer #{id} already exists"));
        }
        let bytes = usize::try_from(bytes).map_err(|_| format!("{bytes} bytes is too large"))?;
        let after = self.allocated.saturating_add(bytes);
        if after > self.memory_limit {
            return Err(format!(
                "allocating {bytes} bytes would exceed the session's limit of {} bytes ({} in use)",
                self.memory_limit, self.allocated
            ));
        }
        let buffer = self.device.alloc(bytes).map_err(|e| e.to_string())?;
        self.allocated = after;
        self.buffers.insert(id, buffer);
        Ok(())
    }

    fn free(&mut self, id: u64) -> Outcome {
        let buffer = self
            .buffers
            .remove(&id)
            .ok_or_else(|| format!("no buffer #{id} in this session"))?;
        self.allocated -= buffer.bytes();
        Ok(())
    }

    /// The byte range `offset..offset + bytes` of buffer `id`, if it lies inside the buffer.
    fn range(&self, what: &str, id: u64, offset: u64, bytes: u64) -> Result<usize, String> {
        let capacity = self.buffer(id)?.bytes();
        match offset.checked_add(bytes) {
            Some(end) if end <= capacity as u64 => Ok(offset as usize),
            _ => Err(format!(
                "{what} of bytes {offset}..{} of buffer #{id} of {capacity} bytes",
                offset as u128 + bytes as u128
            )),
        }
    }

    /// Writes `data` into buffer `id` at byte `offset`, straight from the received frame.
    fn write(&mut self, id: u64, offset: u64, data: &[u8]) -> Outcome {
        let offset = self.range("write", id, offset, data.len() as u64)?;
        self.device
            .device()
            .write_at(self.buffer(id)?.raw(), offset, data)
            .map_err(|e| e.to_string())
    }

    /// Bytes `offset..offset + bytes` of buffer `id`, read after everything before (into a
    /// pooled buffer when large: it returns to the pool once the answer is sent).
    fn read(&mut self, id: u64, offset: u64, bytes: u64) -> Result<Bytes, String> {
        let offset = self.range("read", id, offset, bytes)?;
        let mut data = BufferPool::global().filled(bytes as usize);
        let device = self.device.device();
        device.synchronize().map_err(|e| e.to_string())?;
        device
            .read_at(self.buffer(id)?.raw(), offset, data.vec())
            .map_err(|e| e.to_string())?;
        Ok(data.freeze())
    }

    fn compile(&mut self, id: u64, wire: &WireProgram) -> Outcome {
        let program = Program::try_from(wire)?;
        let param_bytes = program
            .params
            .iter()
            .map(|p| p.len.checked_mul(p.dtype.size()))
            .collect::<Option<Vec<usize>>>()
            .ok_or("a param's size overflows")?;
        let compiled = self.device.kernel(&program).map_err(|e| e.to_string())?;
        self.kernels.insert(
            id,
            Kernel {
                compiled,
                param_bytes,
            },
        );
        Ok(())
    }

    fn launch(&mut self, id: u64, buffer_ids: &[u64]) -> Outcome {
        let kernel = self
            .kernels
            .get(&id)
            .ok_or_else(|| format!("no kernel {id:#x} compiled in this session"))?;
        if buffer_ids.len() != kernel.param_bytes.len() {
            return Err(format!(
                "kernel {id:#x} takes {} buffers, {} given",
                kernel.param_bytes.len(),
                buffer_ids.len()
            ));
        }
        let mut raws = Vec::with_capacity(buffer_ids.len());
        for (&b, &need) in buffer_ids.iter().zip(&kernel.param_bytes) {
            let buffer = self.buffer(b)?;
            if buffer.bytes() < need {
                return Err(format!(
                    "buffer #{b} holds {} bytes, the kernel's param needs {need}",
                    buffer.bytes()
                ));
            }
            raws.push(buffer.raw());
        }
        self.device
            .device()
            .launch(&kernel.compiled, &raws)
            .map_err(|e| e.to_string())
    }
}
