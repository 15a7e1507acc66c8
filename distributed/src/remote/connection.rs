//! A client connection to one worker session: request/answer matching, heartbeats and loss
//! detection.
//!
//! A caller writes its request to the socket itself, on its own thread (the sending half sits
//! behind an async mutex, so frames never interleave and go out in the order they were sent).
//! Two tasks run on the client's network runtime: the reader routes answers to the waiting
//! callers and notes when the worker was last heard from, and the heartbeat task sends a ping
//! every [`Heartbeat::interval`] and declares the worker lost when nothing arrived for
//! [`Heartbeat::timeout`]. A closed socket (a killed worker) is detected by
//! the reader at once; a stopped worker by the heartbeat. Loss fails every waiting request with
//! [`Error::WorkerLost`]. Callers block on a std channel, never on the runtime, so the device
//! works from any thread (including inside another async runtime).

use crate::blocking::{block_on_unless, Abort};
use crate::error::{Error, Result};
use crate::frame::{
    read_frame, write_frame, write_message, write_message_with_tail, DEFAULT_MAX_FRAME,
};
use crate::protocol::{
    decode_handshake, decode_message, encode_handshake, encode_message, encode_message_with_tail,
    Batch, ClientMsg, Command, Hello, HelloReply, WireDeviceInfo, WorkerMsg,
};
use crate::transport::{self, Security, HANDSHAKE_TIMEOUT};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Liveness checking of a worker.
#[derive(Clone, Copy, Debug)]
pub struct Heartbeat {
    /// Time between pings.
    pub interval: Duration,
    /// A worker not heard from for this long is lost.
    pub timeout: Duration,
}

impl Default for Heartbeat {
    /// A ping every 250 ms; lost after 1 s of silence (detected within 1.25 s).
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
        }
    }
}

/// The process-wide runtime that drives client connections (two threads, started on first use).
fn client_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ferrograd-client-net")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Io {
            peer: "local".into(),
            source: std::io::Error::other(e.clone()),
        })
}

/// Runs `fut` on the client runtime and waits for it from the calling (non-async) context.
fn run_blocking<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    client_runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| Error::Io {
        peer: "local".into(),
        source: std::io::Error::other("the client runtime stopped"),
    })
}

type Reply = std::sync::mpsc::Sender<Result<WorkerMsg>>;

/// An open session with a worker.
pub struct Connection {
    peer: String,
    writer: Arc<tokio::sync::Mutex<transport::Writer>>,
    /// Fired when the worker is lost: stops callers blocked writing to it.
    closed: Abort,
    pending: Mutex<HashMap<u64, Reply>>,
    lost: OnceLock<(String, Instant)>,
    next_id: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` when the worker was last heard from.
    last_heard_ms: AtomicU64,
    round_trips: AtomicU64,
}

impl Connection {
    /// Connects to `addr`, opens a session on the worker's `device` and starts the heartbeat.
    pub fn open(
        addr: SocketAddr,
        device: &str,
        security: &Security,
        heartbeat: Heartbeat,
    ) -> Result<(Arc<Connection>, WireDeviceInfo)> {
        let security = security.clone();
        let hello = Hello {
            device: device.to_string(),
        };
        run_blocking(async move {
            let peer = addr.to_string();
            let (mut rd, mut wr) = transport::connect(addr, &security).await?;
            write_frame(&mut wr, &encode_handshake(&hello), &peer).await?;
            let reply = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                read_frame(&mut rd, DEFAULT_MAX_FRAME, &peer),
            )
            .await
            .map_err(|_| Error::Deadline {
                peer: peer.clone(),
                what: "welcome",
                deadline: HANDSHAKE_TIMEOUT,
            })?
            .map_err(|e| tls_refusal(e, &peer))?
            .ok_or_else(|| Error::Refused {
                peer: peer.clone(),
                reason: "the worker closed the connection during the handshake".into(),
            })?;
            let info = match decode_handshake::<HelloReply>(&reply, &peer)? {
                HelloReply::Welcome(info) => info,
                HelloReply::Refused(reason) => return Err(Error::Refused { peer, reason }),
                HelloReply::Devices(_) => {
                    return Err(Error::Malformed {
                        peer,
                        reason: "a device list where a welcome was expected".into(),
                    })
                }
            };
            let conn = Arc::new(Connection {
                peer,
                writer: Arc::new(tokio::sync::Mutex::new(wr)),
                closed: Abort::default(),
                pending: Mutex::new(HashMap::new()),
                lost: OnceLock::new(),
                next_id: AtomicU64::new(1),
                started: Instant::now(),
                last_heard_ms: AtomicU64::new(0),
                round_trips: AtomicU64::new(0),
            });
            tokio::spawn(read_loop(Arc::downgrade(&conn), rd));
            tokio::spawn(heartbeat_loop(Arc::downgrade(&conn), heartbeat));
            Ok((conn, info))
        })?
    }

    /// The worker's address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Why and when the worker was declared lost, if it was.
    pub fn lost(&self) -> Option<(&str, Instant)> {
        self.lost.get().map(|(r, t)| (r.as_str(), *t))
    }

    /// Requests answered so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn lost_error(&self) -> Option<Error> {
        self.lost.get().map(|(reason, _)| Error::WorkerLost {
            peer: self.peer.clone(),
            reason: reason.clone(),
        })
    }

    fn mark_lost(&self, reason: String) {
        if self.lost.set((reason, Instant::now())).is_ok() {
            tracing::warn!(peer = %self.peer, reason = %self.lost.get().expect("set").0, "worker lost");
        }
        self.closed.abort();
        let waiting: Vec<Reply> = self.pending.lock().drain().map(|(_, r)| r).collect();
        for reply in waiting {
            let _ = reply.send(Err(self.lost_error().expect("marked lost")));
        }
    }

    fn heard(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_heard_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Sends `commands` as one batch, without waiting; the answer arrives on the returned
    /// channel. `payload` holds the data of the batch's writes, one segment per write in order.
    /// Sending order is the order the worker runs batches in.
    pub fn send(
        &self,
        commands: Vec<Command>,
        payload: Vec<Bytes>,
        deadline: Duration,
    ) -> Result<std::sync::mpsc::Receiver<Result<WorkerMsg>>> {
        self.send_with_tail(commands, payload, None, deadline)
    }

    /// [`Connection::send`] where the last write's data is `tail`, borrowed: it is written to
    /// the socket (or sealed) from where it lies, before this returns.
    pub fn send_with_tail(
        &self,
        commands: Vec<Command>,
        payload: Vec<Bytes>,
        tail: Option<&[u8]>,
        deadline: Duration,
    ) -> Result<std::sync::mpsc::Receiver<Result<WorkerMsg>>> {
        if let Some(e) = self.lost_error() {
            return Err(e);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        self.pending.lock().insert(id, tx);
        // Loss may have drained `pending` just before the insert.
        if let Some(e) = self.lost_error() {
            self.pending.lock().remove(&id);
            return Err(e);
        }
        let batch = ClientMsg::Batch(Batch {
            id,
            deadline_ms: deadline.as_millis().min(u32::MAX as u128) as u32,
            commands,
            payload,
        });
        let frame = match tail {
            Some(tail) => encode_message_with_tail(&batch, tail.len()),
            None => encode_message(&batch),
        };
        let tail = tail.unwrap_or_default();
        let written = block_on_unless(&self.closed, async {
            let mut writer = self.writer.lock().await;
            write_message_with_tail(&mut *writer, &frame, tail, &self.peer).await
        });
        match written {
            Some(Ok(())) => Ok(rx),
            Some(Err(e)) => {
                self.mark_lost(format!("sending failed: {e}"));
                Err(self.lost_error().expect("marked lost"))
            }
            None => Err(self.lost_error().expect("marked lost")),
        }
    }

    /// Waits for the answer of a batch sent by [`Connection::send`]: the data of its reads.
    pub fn wait(
        &self,
        answer: std::sync::mpsc::Receiver<Result<WorkerMsg>>,
        deadline: Duration,
    ) -> Result<Vec<Bytes>> {
        let result = match receive_spinning(&answer, deadline) {
            Ok(Ok(WorkerMsg::Done { reads, .. })) => Ok(reads),
            Ok(Ok(WorkerMsg::Failed { index, reason, .. })) => Err(Error::Refused {
                peer: self.peer.clone(),
                reason: format!("command {index} of the batch failed: {reason}"),
            }),
            Ok(Ok(WorkerMsg::Pong(_))) => Err(Error::Malformed {
                peer: self.peer.clone(),
                reason: "a pong was routed as an answer".into(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.lost_error().unwrap_or_else(|| Error::Deadline {
                peer: self.peer.clone(),
                what: "request",
                deadline,
            })),
        };
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Sends a batch and waits for its answer.
    pub fn request(
        &self,
        commands: Vec<Command>,
        payload: Vec<Bytes>,
        deadline: Duration,
    ) -> Result<Vec<Bytes>> {
        let answer = self.send(commands, payload, deadline)?;
        self.wait(answer, deadline)
    }
}

impl Drop for Connection {
    /// Closes the connection cleanly (close_notify under TLS), which ends the worker's
    /// session. In the background and bounded: a stopped worker may never read it.
    fn drop(&mut self) {
        let writer = self.writer.clone();
        if let Ok(rt) = client_runtime() {
            rt.spawn(async move {
                let close = async { writer.lock().await.shutdown().await };
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, close).await;
            });
        }
    }
}

/// How long a caller polls for its answer (yielding the CPU between polls) before it sleeps.
/// A sleeping caller is woken by the reader task, and on an idle virtual CPU that wake-up
/// costs tens of microseconds; a short request's answer usually arrives within this time.
/// Busy-polling without yielding was measured too: it took the CPU the worker needed.
const ANSWER_SPIN: Duration = Duration::from_micros(300);

/// Waits for `answer`: polls it for [`ANSWER_SPIN`], then sleeps until `deadline`.
fn receive_spinning<T>(
    answer: &std::sync::mpsc::Receiver<T>,
    deadline: Duration,
) -> std::result::Result<T, std::sync::mpsc::RecvTimeoutError> {
    let start = Instant::now();
    let spin = ANSWER_SPIN.min(deadline);
    loop {
        match answer.try_recv() {
            Ok(v) => return Ok(v),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
            }
            Err(std::sync::mpsc::TryRecvError::Empty) if start.elapsed() < spin => {
                std::thread::yield_now()
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                return answer.recv_timeout(deadline.saturating_sub(start.elapsed()))
            }
        }
    }
}

/// With TLS 1.3 a client learns that the worker rejected its certificate only when it reads;
/// name that case instead of reporting a bare I/O error.
fn tls_refusal(e: Error, peer: &str) -> Error {
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData => {
            Error::Tls {
                peer: peer.to_string(),
                reason: source.to_string(),
            }
        }
        other => other,
    }
}

async fn read_loop(conn: Weak<Connection>, mut rd: transport::Reader) {
    let peer = match conn.upgrade() {
        Some(c) => c.peer.clone(),
        None => return,
    };
    loop {
        let frame = read_frame(&mut rd, DEFAULT_MAX_FRAME, &peer).await;
        let Some(c) = conn.upgrade() else { return };
        let msg = match frame {
            Ok(Some(frame)) => match decode_message::<WorkerMsg>(frame, &peer) {
                Ok(msg) => msg,
                Err(e) => return c.mark_lost(e.to_string()),
            },
            Ok(None) => return c.mark_lost("the worker closed the connection".into()),
            Err(e) => return c.mark_lost(e.to_string()),
        };
        c.heard();
        let id = match &msg {
            WorkerMsg::Pong(_) => continue,
            WorkerMsg::Done { id, .. } | WorkerMsg::Failed { id, .. } => *id,
        };
        let reply = c.pending.lock().remove(&id);
        if let Some(reply) = reply {
            let _ = reply.send(Ok(msg));
        }
    }
}

async fn heartbeat_loop(conn: Weak<Connection>, heartbeat: Heartbeat) {
    let mut tick = tokio::time::interval(heartbeat.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tick.tick().await;
        let Some(c) = conn.upgrade() else { return };
        if c.lost.get().is_some() {
            return;
        }
        let silent = c.started.elapsed().saturating_sub(Duration::from_millis(
            c.last_heard_ms.load(Ordering::Relaxed),
        ));
        if silent > heartbeat.timeout {
            return c.mark_lost(format!(
                "no answer to heartbeats for {:.2} s",
                silent.as_secs_f64()
            ));
        }
        seq += 1;
        // While a request is being written the ping waits for the next tick; the ping's own
        // write runs apart, so a worker that stopped reading cannot stall the silence check.
        let Ok(mut writer) = c.writer.clone().try_lock_owned() else {
            continue;
        };
        let ping = encode_message(&ClientMsg::Ping(seq));
        let (conn, peer) = (conn.clone(), c.peer.clone());
        tokio::spawn(async move {
            if let Err(e) = write_message(&mut *writer, &ping, &peer).await {
                if let Some(c) = conn.upgrade() {
                    c.mark_lost(format!("sending failed: {e}"));
                }
            }
        });
    }
}
