//! `remote:HOST:PORT/DEVICE`: a worker's device as an ordinary [`Device`].
//!
//! Buffers live on the worker under ids this side chooses, so allocating costs no round trip.
//! Allocations, writes, launches and frees are queued and sent as one batch when a value is
//! needed here (a read), at [`Device::synchronize`], or when the queue grows large; a realize
//! followed by a read therefore costs one round trip for all its launches (plus one for the
//! read, which `Buffer::read` precedes with a synchronize). A Program is sent once per
//! connection under an id this side numbers (keyed by the whole Program, so no two Programs
//! share one), and compiled eagerly so compile errors surface at `compile`. Errors of queued commands surface at the next batch that is sent.

use super::connection::{Connection, Heartbeat};
use crate::error::Error as DistError;
use crate::pool::BufferPool;
use crate::protocol::program::WireProgram;
use crate::protocol::{Command, WireDeviceInfo};
use crate::transport::Security;
use bytes::Bytes;
use ferrograd_ir::lower::LoweringTarget;
use ferrograd_ir::{DType, Program};
use ferrograd_runtime::{CompiledKernel, Device, DeviceInfo, Error, RawBuffer, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

type Answer = std::sync::mpsc::Receiver<crate::Result<crate::protocol::WorkerMsg>>;

/// Bytes per write or read chunk (each chunk is one frame, below the frame limit).
pub const CHUNK_BYTES: usize = 16 << 20;
/// Chunks of one bulk transfer sent before the first is answered.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Queued commands that force a batch out.
const MAX_QUEUED_COMMANDS: usize = 4096;

/// Options of a remote device.
#[derive(Clone, Copy, Debug)]
pub struct RemoteOptions {
    /// Deadline of each request.
    pub deadline: Duration,
    /// Liveness checking.
    pub heartbeat: Heartbeat,
}

impl Default for RemoteOptions {
    /// 60 s per request, the default heartbeat.
    fn default() -> Self {
        RemoteOptions {
            deadline: Duration::from_secs(60),
            heartbeat: Heartbeat::default(),
        }
    }
}

#[derive(Default)]
struct Queue {
    commands: Vec<Command>,
    /// Data of the queued writes, one segment per write.
    payload: Vec<Bytes>,
    bytes: usize,
    /// Launches were sent since the last synchronize.
    unsynchronized: bool,
}

/// A buffer on the worker.
struct RemoteBuffer {
    id: u64,
    bytes: usize,
    queue: Weak<Mutex<Queue>>,
}

impl Drop for RemoteBuffer {
    fn drop(&mut self) {
        if let Some(q) = self.queue.upgrade() {
            q.lock().commands.push(Command::Free { buffer: self.id });
        }
    }
}

/// A kernel compiled on the worker.
struct RemoteKernel {
    id: u64,
}

/// A device of a worker, reached over the network.
pub struct RemoteDevice {
    info: DeviceInfo,
    remote: WireDeviceInfo,
    conn: Arc<Connection>,
    queue: Arc<Mutex<Queue>>,
    next_buffer: AtomicU64,
    /// The Programs compiled on the worker, with their kernel ids (numbered from 1).
    compiled: Mutex<HashMap<Program, u64>>,
    options: RemoteOptions,
    /// Tensor bytes written from and read into this process.
    host_bytes: AtomicU64,
}

/// A ticket for one worker-to-worker transfer: unique within this process (a counter) and,
/// with the process id and start time mixed in, across the clients of one worker.
fn next_ticket() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (nanos ^ ((std::process::id() as u64) << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    });
    base.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl RemoteDevice {
    /// Connects to the worker at `addr` and opens a session on its device `device`; the device
    /// is called `name` here.
    pub fn connect(
        name: &str,
        addr: SocketAddr,
        device: &str,
        security: &Security,
        options: RemoteOptions,
    ) -> crate::Result<RemoteDevice> {
        let (conn, remote) = Connection::open(addr, device, security, options.heartbeat)?;
        Ok(RemoteDevice {
            info: remote.to_info(name, &addr.to_string()),
            remote,
            conn,
            queue: Arc::new(Mutex::new(Queue::default())),
            next_buffer: AtomicU64::new(1),
            compiled: Mutex::new(HashMap::new()),
            options,
            host_bytes: AtomicU64::new(0),
        })
    }

    /// The connection (loss state, round-trip count).
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// Tensor bytes that passed through this process to or from the worker (writes and
    /// reads; worker-to-worker transfers do not count).
    pub fn host_bytes(&self) -> u64 {
        self.host_bytes.load(Ordering::Relaxed)
    }

    /// Why the worker was declared lost, if it was.
    pub fn lost(&self) -> Option<String> {
        self.conn.lost().map(|(r, _)| r.to_string())
    }

    fn error(&self, e: DistError) -> Error {
        match e {
            DistError::WorkerLost { peer, reason } => Error::WorkerLost {
                device: self.info.name.clone(),
                reason: format!("{peer}: {reason}"),
            },
            other => Error::Device {
                device: self.info.name.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// An error unless `offset..offset + len` lies inside `buffer`.
    fn check_range(
        &self,
        buffer: &RemoteBuffer,
        what: &str,
        offset: usize,
        len: usize,
    ) -> Result<()> {
        if offset
            .checked_add(len)
            .is_some_and(|end| end <= buffer.bytes)
        {
            return Ok(());
        }
        Err(Error::Device {
            device: self.info.name.clone(),
            reason: format!(
                "{what} of {len} bytes at {offset} of a buffer of {} bytes",
                buffer.bytes
            ),
        })
    }

    fn misuse(&self, what: &str) -> Error {
        Error::Device {
            device: self.info.name.clone(),
            reason: format!("{what} does not belong to a remote device"),
        }
    }

    fn buffer<'a>(&self, raw: &'a RawBuffer) -> Result<&'a RemoteBuffer> {
        raw.downcast_ref::<RemoteBuffer>()
            .ok_or_else(|| self.misuse("a buffer"))
    }

    /// Sends what is queued plus `extra` (with the data of its writes) as one batch, without
    /// waiting (`None`: nothing to send).
    /// Sends what is queued plus `extra` as one batch, without waiting; `tail` is the data of
    /// the last write of `extra`, borrowed.
    fn send_queued(&self, extra: Vec<Command>, tail: Option<&[u8]>) -> Result<Option<Answer>> {
        let mut q = self.queue.lock();
        let mut commands = std::mem::take(&mut q.commands);
        let payload = std::mem::take(&mut q.payload);
        q.bytes = 0;
        commands.extend(extra);
        if commands.is_empty() {
            return Ok(None);
        }
        for c in &commands {
            match c {
                Command::Launch { .. } => q.unsynchronized = true,
                Command::Synchronize | Command::Read { .. } => q.unsynchronized = false,
                _ => {}
            }
        }
        // Sent under the lock, so batches reach the worker in the order they were queued.
        self.conn
            .send_with_tail(commands, payload, tail, self.options.deadline)
            .map(Some)
            .map_err(|e| self.error(e))
    }

    fn wait(&self, answer: Answer) -> Result<Vec<Bytes>> {
        self.conn
            .wait(answer, self.options.deadline)
            .map_err(|e| self.error(e))
    }

    /// Sends what is queued plus `extra` as one batch and waits; the data of its reads.
    fn flush_with(&self, extra: Vec<Command>) -> Result<Vec<Bytes>> {
        match self.send_queued(extra, None)? {
            Some(answer) => self.wait(answer),
            None => Ok(Vec::new()),
        }
    }

    /// Sends one batch per item of `chunks` (a command and the data of a write) with at most
    /// [`CHUNKS_IN_FLIGHT`] unanswered, and hands each answer to `done` in order.
    fn pipelined<'a>(
        &self,
        chunks: impl Iterator<Item = (Command, Option<&'a [u8]>)>,
        mut done: impl FnMut(usize, Vec<Bytes>) -> Result<()>,
    ) -> Result<()> {
        let mut in_flight = std::collections::VecDeque::new();
        let mut next = 0;
        for (command, data) in chunks {
            if in_flight.len() >= CHUNKS_IN_FLIGHT {
                let answer = in_flight.pop_front().expect("non-empty");
                done(next, self.wait(answer)?)?;
                next += 1;
            }
            let answer = self.send_queued(vec![command], data)?;
            in_flight.push_back(answer.expect("one command"));
        }
        for answer in in_flight {
            done(next, self.wait(answer)?)?;
            next += 1;
        }
        Ok(())
    }

    fn enqueue(&self, command: Command, data: Option<Bytes>) -> Result<()> {
        let full = {
            let mut q = self.queue.lock();
            q.commands.push(command);
            if let Some(data) = data {
                q.bytes += data.len();
                q.payload.push(data);
            }
            q.commands.len() >= MAX_QUEUED_COMMANDS || q.bytes >= CHUNK_BYTES
        };
        if full {
            self.flush_with(Vec::new())?;
        }
        Ok(())
    }
}

impl Device for RemoteDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn allocate(&self, bytes: usize) -> Result<RawBuffer> {
        if bytes as u64 > self.remote.memory_bytes {
            return Err(Error::OutOfMemory {
                device: self.info.name.clone(),
                bytes,
                reason: format!("the worker's device has {} bytes", self.remote.memory_bytes),
            });
        }
        let id = self.next_buffer.fetch_add(1, Ordering::Relaxed);
        self.enqueue(
            Command::Alloc {
                buffer: id,
                bytes: bytes as u64,
            },
            None,
        )?;
        Ok(Box::new(RemoteBuffer {
            id,
            bytes,
            queue: Arc::downgrade(&self.queue),
        }))
    }

    fn write_at(&self, dst: &RawBuffer, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.buffer(dst)?;
        self.check_range(dst, "write", offset, data.len())?;
        self.host_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let write = |i: usize, chunk: &[u8]| Command::Write {
            buffer: dst.id,
            offset: (offset + i * CHUNK_BYTES) as u64,
            bytes: chunk.len() as u64,
        };
        if data.len() > CHUNK_BYTES {
            // Each chunk is written to the socket (or sealed) straight from `data`.
            let chunks = data.chunks(CHUNK_BYTES).enumerate();
            return self.pipelined(chunks.map(|(i, c)| (write(i, c), Some(c))), |_, _| Ok(()));
        }
        // Queued: the one copy of the data on this side, into a segment the batch owns.
        self.enqueue(write(0, data), Some(BufferPool::global().copy(data)))
    }

    fn read_at(&self, src: &RawBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.buffer(src)?;
        self.check_range(src, "read", offset, out.len())?;
        let len = out.len();
        self.host_bytes.fetch_add(len as u64, Ordering::Relaxed);
        let reads = (0..len.div_ceil(CHUNK_BYTES).max(1)).map(move |i| {
            let read = Command::Read {
                buffer: src.id,
                offset: (offset + i * CHUNK_BYTES) as u64,
                bytes: (len - i * CHUNK_BYTES).min(CHUNK_BYTES) as u64,
            };
            (read, None)
        });
        self.pipelined(reads, |i, mut data| {
            let start = i * CHUNK_BYTES;
            let chunk = &mut out[start..(start + CHUNK_BYTES).min(len)];
            let data = data.pop().unwrap_or_default();
            if data.len() != chunk.len() {
                return Err(self.error(DistError::Malformed {
                    peer: self.conn.peer().to_string(),
                    reason: format!("asked for {} bytes, got {}", chunk.len(), data.len()),
                }));
            }
            chunk.copy_from_slice(&data);
            Ok(())
        })
    }

    fn compile(&self, program: &Program) -> Result<CompiledKernel> {
        // Held across the round trip: two threads compiling one Program send it once, and no
        // id is used before the worker has its kernel.
        let mut compiled = self.compiled.lock();
        if let Some(&id) = compiled.get(program) {
            return Ok(Arc::new(RemoteKernel { id }));
        }
        let id = compiled.len() as u64 + 1;
        let compile = Command::Compile {
            kernel: id,
            program: WireProgram::from(program),
        };
        self.flush_with(vec![compile]).map_err(|e| match e {
            Error::Device { device, reason } => Error::Compile {
                device,
                kernel: program.name.clone(),
                reason,
            },
            other => other,
        })?;
        compiled.insert(program.clone(), id);
        Ok(Arc::new(RemoteKernel { id }))
    }

    fn launch(&self, kernel: &CompiledKernel, buffers: &[&RawBuffer]) -> Result<()> {
        let kernel = kernel
            .downcast_ref::<RemoteKernel>()
            .ok_or_else(|| self.misuse("a kernel"))?;
        let buffers = buffers
            .iter()
            .map(|b| self.buffer(b).map(|b| b.id))
            .collect::<Result<Vec<u64>>>()?;
        self.enqueue(
            Command::Launch {
                kernel: kernel.id,
                buffers,
            },
            None,
        )
    }

    fn synchronize(&self) -> Result<()> {
        let needed = {
            let q = self.queue.lock();
            !q.commands.is_empty() || q.unsynchronized
        };
        if needed {
            self.flush_with(vec![Command::Synchronize])?;
        }
        Ok(())
    }

    fn preferred_lanes(&self, dtype: DType) -> u8 {
        self.remote
            .dtypes
            .iter()
            .find(|(d, _)| DType::from(*d) == dtype)
            .map(|(_, lanes)| *lanes)
            .unwrap_or(self.remote.default_lanes)
    }

    fn parallelism(&self) -> usize {
        self.remote.parallelism as usize
    }

    fn lowering_target(&self, optimize: bool) -> LoweringTarget {
        LoweringTarget {
            lanes32: self.remote.lanes32,
            optimize,
            wide_index: self.remote.wide_index,
            index_egraph: true,
        }
    }

    fn workgroup_size(&self) -> Option<usize> {
        self.remote.workgroup_size.map(|w| w as usize)
    }

    /// Between two remote devices opened through the registry: this worker sends the bytes to
    /// the other worker itself ([`Command::Send`]), then the other worker's queue gets the
    /// matching [`Command::Receive`]. The send is flushed and answered before the receive is
    /// queued, so the parcel is there when the receive runs.
    fn copy_direct(
        &self,
        src: &RawBuffer,
        to: &dyn Device,
        dst: &RawBuffer,
        bytes: usize,
    ) -> Result<bool> {
        let Some(target) = super::opened(&to.info().name) else {
            return Ok(false);
        };
        let (src, dst) = (self.buffer(src)?, target.buffer(dst)?);
        let ticket = next_ticket();
        self.flush_with(vec![Command::Send {
            buffer: src.id,
            bytes: bytes as u64,
            peer: target.conn.peer().to_string(),
            device: target.remote.name.clone(),
            ticket,
        }])?;
        target.enqueue(
            Command::Receive {
                buffer: dst.id,
                ticket,
                bytes: bytes as u64,
            },
            None,
        )?;
        Ok(true)
    }
}
