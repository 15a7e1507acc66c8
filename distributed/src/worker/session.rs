//! One client session on a worker: the session's buffers and kernels on one local device, and
//! the commands of each batch run in order.
//!
//! Everything a client sends is checked before it reaches the device (ids, sizes, offsets,
//! the buffers a launch binds against the Program's params), and a panic inside a backend is
//! caught: a bad command fails its batch with a reason, never the worker.

use super::exchange::Exchange;
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

/// A buffer being filled in chunks larger than one frame allows.
struct Staging {
    data: Vec<u8>,
    done: usize,
}

/// A buffer's contents being sent back in chunks (slices of it go out without a copy).
struct Draining {
    data: Bytes,
    done: usize,
}

/// The state of one client session.
pub(crate) struct Session {
    device: Arc<DeviceHandle>,
    buffers: HashMap<u64, Buffer>,
    kernels: HashMap<u64, Kernel>,
    writes: HashMap<u64, Staging>,
    reads: HashMap<u64, Draining>,
    allocated: usize,
    memory_limit: usize,
    exchange: Arc<Exchange>,
    /// When the running batch's deadline passes.
    deadline: Instant,
}

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
            writes: HashMap::new(),
            reads: HashMap::new(),
            allocated: 0,
            memory_limit,
            exchange,
            deadline: Instant::now(),
        }
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
            Command::Write {
                buffer,
                offset,
                total,
                ..
            } => {
                // The decoder attached one segment per write; a missing one is a bug here.
                let data = data.ok_or("a write without its data")?;
                self.write(buffer, offset, total, &data)
            }
            Command::Compile { kernel, program } => self.compile(kernel, &program),
            Command::Launch { kernel, buffers } => self.launch(kernel, &buffers),
            Command::Read {
                buffer,
                offset,
                bytes,
                total,
            } => {
                reads.push(self.read(buffer, offset, bytes, total)?);
                Ok(())
            }
            Command::Synchronize => self
                .device
                .device()
                .synchronize()
                .map_err(|e| e.to_string()),
            Command::Send {
                buffer,
                bytes,
                peer,
                device,
                ticket,
            } => {
                let data = self.read(buffer, 0, bytes, bytes)?;
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
        self.writes.remove(&id);
        self.reads.remove(&id);
        Ok(())
    }

    /// Writes chunk `data` at `offset` of a `total`-byte write starting at the buffer's start.
    /// Chunks arrive in order; the device is written once the last one is in.
    fn write(&mut self, id: u64, offset: u64, total: u64, data: &[u8]) -> Outcome {
        let capacity = self.buffer(id)?.bytes();
        let (offset, total) = (offset as usize, total as usize);
        if total > capacity || offset.checked_add(data.len()).is_none_or(|end| end > total) {
            return Err(format!(
                "write of bytes {offset}..{} (of {total}) into buffer #{id} of {capacity} bytes",
                offset.saturating_add(data.len())
            ));
        }
        if offset == 0 && data.len() == total {
            self.writes.remove(&id);
            return self.buffer(id)?.write(data).map_err(|e| e.to_string());
        }
        if offset == 0 {
            self.writes.insert(
                id,
                Staging {
                    data: Vec::with_capacity(total),
                    done: 0,
                },
            );
        }
        let staging = self
            .writes
            .get_mut(&id)
            .filter(|s| s.done == offset && s.data.capacity() >= total)
            .ok_or_else(|| format!("write chunk at {offset} into buffer #{id} is out of order"))?;
        staging.data.extend_from_slice(data);
        staging.done += data.len();
        if staging.done == total {
            let staging = self.writes.remove(&id).expect("present above");
            self.buffer(id)?
                .write(&staging.data)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Bytes `offset..offset + bytes` of the buffer's first `total` bytes. The device is read
    /// once, at the first chunk; later chunks are slices of that copy.
    fn read(&mut self, id: u64, offset: u64, bytes: u64, total: u64) -> Result<Bytes, String> {
        let capacity = self.buffer(id)?.bytes();
        let (offset, bytes, total) = (offset as usize, bytes as usize, total as usize);
        if total > capacity || offset.checked_add(bytes).is_none_or(|end| end > total) {
            return Err(format!(
                "read of bytes {offset}..{} (of {total}) from buffer #{id} of {capacity} bytes",
                offset.saturating_add(bytes)
            ));
        }
        if offset == 0 {
            let mut data = vec![0u8; total];
            let device = self.device.device();
            device.synchronize().map_err(|e| e.to_string())?;
            device
                .read(self.buffer(id)?.raw(), &mut data)
                .map_err(|e| e.to_string())?;
            let data = Bytes::from(data);
            if bytes == total {
                return Ok(data);
            }
            self.reads.insert(id, Draining { data, done: 0 });
        }
        let staging = self
            .reads
            .get_mut(&id)
            .filter(|s| s.done == offset && s.data.len() == total)
            .ok_or_else(|| format!("read chunk at {offset} of buffer #{id} is out of order"))?;
        let chunk = staging.data.slice(offset..offset + bytes);
        staging.done += bytes;
        if staging.done == total {
            self.reads.remove(&id);
        }
        Ok(chunk)
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
