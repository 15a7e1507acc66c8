//! The versioned wire protocol between a client (remote devices) and a worker.
//!
//! Every message is one length-delimited frame ([`crate::frame`]) holding a postcard-encoded
//! value, followed, for [`ClientMsg`] and [`WorkerMsg`], by the raw bytes its writes or reads
//! announce ([`Message`]): tensor data is never serialized, only copied where it must be. The first frame each way is a handshake whose first eight bytes are fixed for every
//! version ([`MAGIC`], then the sender's [`PROTOCOL_VERSION`] as a little-endian `u32`), so two
//! builds speaking different versions detect it before decoding anything version-specific.
//! `docs/PROTOCOL.md` is the normative description.

pub mod program;

use crate::error::{Error, Result};
use bytes::Bytes;
use ferrograd_ir::DType;
use ferrograd_runtime::{DeviceInfo, DeviceKind};
use program::{WireDType, WireProgram};
use serde::{Deserialize, Serialize};

/// Version of the wire protocol; bumped on any change to a message's encoding.
pub const PROTOCOL_VERSION: u32 = 3;

/// The first four bytes of both handshake frames.
pub const MAGIC: [u8; 4] = *b"FGRD";

/// The client's first frame (after [`MAGIC`] and the version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The worker-local device the session drives (`cpu`, `vulkan:0`, ...); empty asks for
    /// the device list instead ([`HelloReply::Devices`]).
    pub device: String,
}

/// The worker's answer to [`Hello`] (after [`MAGIC`] and the version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The session is open on this device.
    Welcome(WireDeviceInfo),
    /// The session is refused (unknown device, ...).
    Refused(String),
    /// The worker's device names, the answer to a hello with an empty device name (a probe by
    /// discovery; the connection closes after it).
    Devices(Vec<String>),
}

/// Frames a client sends after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Liveness probe; the worker answers [`WorkerMsg::Pong`] at once, even while it computes.
    Ping(u64),
    /// Commands run in order; answered by one [`WorkerMsg::Done`] or [`WorkerMsg::Failed`].
    Batch(Batch),
}

/// A request: commands the worker runs in order, within a deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Chosen by the client; echoed in the answer.
    pub id: u64,
    /// Milliseconds the client waits for the answer; commands not started by then fail.
    pub deadline_ms: u32,
    /// The commands.
    pub commands: Vec<Command>,
    /// The data of the batch's [`Command::Write`]s and [`Command::Deposit`]s, one segment per
    /// such command in command order.
    /// Not part of the postcard value: the segments follow it in the frame.
    #[serde(skip)]
    pub payload: Vec<Bytes>,
}

/// One operation on the session's device. Buffer ids are chosen by the client; kernel ids are
/// numbered by the client per connection, one per Program sent with [`Command::Compile`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Allocates a buffer of `bytes` bytes under a new id.
    Alloc {
        /// New buffer id.
        buffer: u64,
        /// Size in bytes.
        bytes: u64,
    },
    /// Frees a buffer.
    Free {
        /// Buffer id.
        buffer: u64,
    },
    /// Writes `bytes` bytes into a buffer at byte `offset` (the device's offset write; a
    /// transfer larger than a frame is several of these). The bytes are the batch's next
    /// [`Batch::payload`] segment.
    Write {
        /// Buffer id.
        buffer: u64,
        /// Byte offset in the buffer.
        offset: u64,
        /// Bytes written.
        bytes: u64,
    },
    /// Compiles a Program (cached by the worker) under the id `kernel`.
    Compile {
        /// Kernel id.
        kernel: u64,
        /// The Program.
        program: WireProgram,
    },
    /// Launches a compiled kernel with buffers bound to its params in order.
    Launch {
        /// Kernel id.
        kernel: u64,
        /// Buffer ids.
        buffers: Vec<u64>,
    },
    /// Reads `bytes` bytes of a buffer from byte `offset` (the device's offset read), after
    /// everything before it finished. The data comes back in [`WorkerMsg::Done`], in command
    /// order.
    Read {
        /// Buffer id.
        buffer: u64,
        /// Byte offset in the buffer.
        offset: u64,
        /// Bytes read.
        bytes: u64,
    },
    /// Waits for every launch and copy so far.
    Synchronize,
    /// Sends the first `bytes` bytes of a buffer to another worker, worker to worker: this
    /// worker connects to `peer` (mutual TLS with its own identity), opens a session on its
    /// device `device` and deposits the data there under `ticket` ([`Command::Deposit`]). The
    /// command finishes when the peer has the data.
    Send {
        /// Buffer id (in this session).
        buffer: u64,
        /// Bytes to send.
        bytes: u64,
        /// The destination worker's `HOST:PORT`.
        peer: String,
        /// The destination worker's device the data is for.
        device: String,
        /// Names the data at the destination (chosen by the client, unique per transfer).
        ticket: u64,
    },
    /// One chunk of a `total`-byte parcel another worker sends here under `ticket` (chunks in
    /// order, `offset` 0 first). The parcel waits in the worker's inbox for [`Command::Receive`].
    Deposit {
        /// The parcel's ticket.
        ticket: u64,
        /// Byte offset of this chunk.
        offset: u64,
        /// Bytes of the whole parcel.
        total: u64,
        /// Bytes of this chunk, which follow the batch's value as one of its payload segments
        /// (like a [`Command::Write`]'s).
        bytes: u64,
    },
    /// Writes the complete parcel deposited under `ticket` (of exactly `bytes` bytes) to the
    /// start of a buffer and removes it from the inbox.
    Receive {
        /// Buffer id.
        buffer: u64,
        /// The parcel's ticket.
        ticket: u64,
        /// Bytes the parcel must hold.
        bytes: u64,
    },
}

/// Frames a worker sends after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// Answer to [`ClientMsg::Ping`] with the same number.
    Pong(u64),
    /// Every command of batch `id` ran; `reads` holds the data of its reads in order.
    Done {
        /// The batch id.
        id: u64,
        /// Bytes of each read (the segments' lengths on the wire).
        read_bytes: Vec<u64>,
        /// Read results, one segment per read. Not part of the postcard value: the segments
        /// follow it in the frame.
        #[serde(skip)]
        reads: Vec<Bytes>,
    },
    /// Command `index` of batch `id` failed; the commands after it did not run.
    Failed {
        /// The batch id.
        id: u64,
        /// Index of the failing command.
        index: u32,
        /// Why.
        reason: String,
    },
}

/// [`DeviceKind`] on the wire.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireDeviceKind {
    Cpu,
    VirtualGpu,
    IntegratedGpu,
    DiscreteGpu,
}

impl From<DeviceKind> for WireDeviceKind {
    fn from(k: DeviceKind) -> Self {
        match k {
            DeviceKind::Cpu => WireDeviceKind::Cpu,
            DeviceKind::VirtualGpu => WireDeviceKind::VirtualGpu,
            DeviceKind::IntegratedGpu => WireDeviceKind::IntegratedGpu,
            DeviceKind::DiscreteGpu => WireDeviceKind::DiscreteGpu,
        }
    }
}

impl From<WireDeviceKind> for DeviceKind {
    fn from(k: WireDeviceKind) -> Self {
        match k {
            WireDeviceKind::Cpu => DeviceKind::Cpu,
            WireDeviceKind::VirtualGpu => DeviceKind::VirtualGpu,
            WireDeviceKind::IntegratedGpu => DeviceKind::IntegratedGpu,
            WireDeviceKind::DiscreteGpu => DeviceKind::DiscreteGpu,
        }
    }
}

/// What a client needs to know about a worker's device to lower kernels for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDeviceInfo {
    /// The worker-local canonical name.
    pub name: String,
    /// Description (model, driver).
    pub description: String,
    /// Kind of hardware.
    pub kind: WireDeviceKind,
    /// Memory available to tensors, in bytes.
    pub memory_bytes: u64,
    /// Parallel compute units.
    pub compute_units: u64,
    /// Widest SIMD vector in bytes.
    pub vector_bytes: u64,
    /// Supported dtypes, each with its preferred vector lanes.
    pub dtypes: Vec<(WireDType, u8)>,
    /// Other capabilities (`key=value`).
    pub extra: Vec<String>,
    /// Preferred lanes for dtypes the device does not list (lowering asks for them too).
    pub default_lanes: u8,
    /// Vector lanes the kernel lowering uses for 32-bit types.
    pub lanes32: u8,
    /// Whether kernels use 64-bit indices.
    pub wide_index: bool,
    /// Invocations per workgroup for workgroup reductions, if the device runs them.
    pub workgroup_size: Option<u64>,
    /// Parallel workers the CPU-style launch splits across.
    pub parallelism: u64,
}

impl WireDeviceInfo {
    /// Describes a local device.
    pub fn describe(device: &dyn ferrograd_runtime::Device) -> Self {
        let info = device.info();
        let target = device.lowering_target(true);
        WireDeviceInfo {
            name: info.name.clone(),
            description: info.description.clone(),
            kind: info.kind.into(),
            memory_bytes: info.memory_bytes,
            compute_units: info.compute_units as u64,
            vector_bytes: info.vector_bytes as u64,
            dtypes: info
                .dtypes
                .iter()
                .map(|&d| (d.into(), device.preferred_lanes(d)))
                .collect(),
            extra: info.extra.clone(),
            default_lanes: device.preferred_lanes(DType::F32),
            lanes32: target.lanes32,
            wide_index: target.wide_index,
            workgroup_size: device.workgroup_size().map(|w| w as u64),
            parallelism: device.parallelism() as u64,
        }
    }

    /// The [`DeviceInfo`] a client shows for this device under its remote `name`.
    pub fn to_info(&self, name: &str, addr: &str) -> DeviceInfo {
        DeviceInfo {
            name: name.to_string(),
            description: format!("{} on worker {addr}", self.description),
            kind: self.kind.into(),
            memory_bytes: self.memory_bytes,
            compute_units: self.compute_units as usize,
            vector_bytes: self.vector_bytes as usize,
            dtypes: self.dtypes.iter().map(|(d, _)| (*d).into()).collect(),
            extra: self.extra.clone(),
        }
    }
}

/// Encodes a handshake frame body: magic, version, then `body`.
pub fn encode_handshake<T: Serialize>(body: &T) -> Vec<u8> {
    encode_handshake_as(PROTOCOL_VERSION, body)
}

/// [`encode_handshake`] claiming protocol `version` (tests use it to play an old peer).
pub fn encode_handshake_as<T: Serialize>(version: u32, body: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    postcard::to_io(body, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Decodes a handshake frame from `peer`: checks the magic and the version before the body.
pub fn decode_handshake<T: for<'de> Deserialize<'de>>(frame: &[u8], peer: &str) -> Result<T> {
    if frame.len() < 8 || frame[..4] != MAGIC {
        return Err(Error::Malformed {
            peer: peer.to_string(),
            reason: "handshake does not start with the ferrograd magic (not a ferrograd peer?)"
                .into(),
        });
    }
    let theirs = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    if theirs != PROTOCOL_VERSION {
        return Err(Error::VersionMismatch {
            peer: peer.to_string(),
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    decode(&frame[8..], peer)
}

/// Encodes a value (no length prefix). Session messages go through [`encode_message`], which
/// also carries their data.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_allocvec(msg).expect("encoding to a Vec cannot fail")
}

/// A session message: a postcard value followed in its frame by raw byte segments whose
/// lengths the value announces (the data of writes and reads).
pub trait Message: Serialize + for<'de> Deserialize<'de> {
    /// The segments' lengths as the (decoded) value announces them.
    fn announced(&self) -> Vec<u64>;
    /// The segments to send after the value.
    fn segments(&self) -> &[Bytes];
    /// Attaches the segments received after the value.
    fn attach(&mut self, segments: Vec<Bytes>);
}

impl Message for ClientMsg {
    fn announced(&self) -> Vec<u64> {
        match self {
            ClientMsg::Ping(_) => Vec::new(),
            ClientMsg::Batch(b) => b
                .commands
                .iter()
                .filter_map(|c| match c {
                    Command::Write { bytes, .. } | Command::Deposit { bytes, .. } => Some(*bytes),
                    _ => None,
                })
                .collect(),
        }
    }

    fn segments(&self) -> &[Bytes] {
        match self {
            ClientMsg::Ping(_) => &[],
            ClientMsg::Batch(b) => &b.payload,
        }
    }

    fn attach(&mut self, segments: Vec<Bytes>) {
        if let ClientMsg::Batch(b) = self {
            b.payload = segments;
        }
    }
}

impl Message for WorkerMsg {
    fn announced(&self) -> Vec<u64> {
        match self {
            WorkerMsg::Done { read_bytes, .. } => read_bytes.clone(),
            _ => Vec::new(),
        }
    }

    fn segments(&self) -> &[Bytes] {
        match self {
            WorkerMsg::Done { reads, .. } => reads,
            _ => &[],
        }
    }

    fn attach(&mut self, segments: Vec<Bytes>) {
        if let WorkerMsg::Done { reads, .. } = self {
            *reads = segments;
        }
    }
}

/// An encoded session message: the frame's head (length prefix and postcard value) and the
/// segments that follow it, written from where they are without being copied together.
pub struct OutFrame {
    /// Length prefix (the whole frame's body) and the postcard value.
    pub head: Vec<u8>,
    /// Raw segments after the value.
    pub segments: Vec<Bytes>,
}

impl OutFrame {
    /// Bytes of the frame body (everything after the length prefix).
    pub fn body_len(&self) -> usize {
        self.head.len() - 4 + self.segments.iter().map(Bytes::len).sum::<usize>()
    }
}

/// Encodes a session message as a frame. Panics if a segment's length differs from what the
/// message announces (a bug of the sender, never input from a peer).
pub fn encode_message<T: Message>(msg: &T) -> OutFrame {
    encode_frame(msg, None)
}

/// [`encode_message`] for a message whose last announced segment, `tail` bytes long, is not
/// among its segments: the caller writes it after them from where it lies
/// ([`crate::frame::write_message_with_tail`]), so it is not copied into a segment first.
pub fn encode_message_with_tail<T: Message>(msg: &T, tail: usize) -> OutFrame {
    encode_frame(msg, Some(tail))
}

fn encode_frame<T: Message>(msg: &T, tail: Option<usize>) -> OutFrame {
    let announced = msg.announced();
    let segments = msg.segments();
    let lengths: Vec<u64> = segments
        .iter()
        .map(|s| s.len() as u64)
        .chain(tail.map(|t| t as u64))
        .collect();
    assert!(
        announced == lengths,
        "encode_message: the message announces segments of {announced:?} bytes but carries {lengths:?}"
    );
    let mut head = postcard::to_extend(msg, vec![0u8; 4]).expect("encoding to a Vec cannot fail");
    let body = head.len() - 4 + lengths.iter().sum::<u64>() as usize;
    let body = u32::try_from(body).expect("a frame body below 4 GiB (bulk data is chunked)");
    head[..4].copy_from_slice(&body.to_le_bytes());
    OutFrame {
        head,
        segments: segments.to_vec(),
    }
}

/// Decodes a session message from a frame body: the postcard value, then exactly the segments
/// it announces, which become slices of `frame` (no copy). A length mismatch is malformed.
pub fn decode_message<T: Message>(frame: Bytes, peer: &str) -> Result<T> {
    let malformed = |reason: String| Error::Malformed {
        peer: peer.to_string(),
        reason,
    };
    let (mut value, rest) = postcard::take_from_bytes::<T>(&frame)
        .map_err(|e| malformed(format!("undecodable: {e}")))?;
    let mut at = frame.len() - rest.len();
    let announced = value.announced();
    let total = announced
        .iter()
        .try_fold(0u64, |sum, &n| sum.checked_add(n))
        .ok_or_else(|| malformed("announced data overflows".into()))?;
    if total != rest.len() as u64 {
        return Err(malformed(format!(
            "the message announces {total} bytes of data, the frame holds {}",
            rest.len()
        )));
    }
    let mut segments = Vec::with_capacity(announced.len());
    for n in announced {
        segments.push(frame.slice(at..at + n as usize));
        at += n as usize;
    }
    value.attach(segments);
    Ok(value)
}

/// Decodes a message body; trailing bytes are an error (a frame holds exactly one message).
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8], peer: &str) -> Result<T> {
    let malformed = |reason: String| Error::Malformed {
        peer: peer.to_string(),
        reason,
    };
    let (value, rest) =
        postcard::take_from_bytes(frame).map_err(|e| malformed(format!("undecodable: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}
