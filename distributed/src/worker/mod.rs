//! The worker daemon (`ferrograd worker`): serves the local devices of the runtime registry to
//! authenticated clients.
//!
//! Per connection: a TLS handshake (client certificate required), the version handshake, then
//! two activities: the reader answers pings at once, runs quick batches (data movement) itself
//! and queues the others, and one thread runs the queued batches in order (`session::Session`)
//! and writes each answer itself. A malformed
//! frame, a frame over the size limit or a client silent for [`WorkerConfig::idle_timeout`]
//! closes that connection and frees its buffers; other sessions are untouched.

mod exchange;
mod session;

use crate::blocking::{block_on_unless, Abort};
use crate::error::{Error, Result};
use crate::frame::{read_frame, write_frame, write_message, DEFAULT_MAX_FRAME};
use crate::protocol::{
    decode_handshake, decode_message, encode_handshake, encode_message, ClientMsg, Hello,
    HelloReply, OutFrame, WireDeviceInfo, WorkerMsg,
};
use crate::transport::{self, Security, HANDSHAKE_TIMEOUT};
use exchange::Exchange;
use session::Session;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest handshake frame accepted (the hello is a device name).
const HANDSHAKE_LIMIT: u32 = 64 << 10;

/// How a worker listens.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Mutual TLS with the worker's identity, or plaintext on loopback.
    pub security: Security,
    /// Largest frame accepted after the handshake.
    pub max_frame: u32,
    /// A session whose client sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout: Duration,
}

impl WorkerConfig {
    /// Listens on `listen` secured as `security` says, with default limits.
    pub fn new(listen: SocketAddr, security: Security) -> Self {
        WorkerConfig {
            listen,
            security,
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// A bound worker, not yet serving.
pub struct Worker {
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: WorkerConfig,
}

/// A worker serving on a background thread (for tests and embedding).
pub struct RunningWorker {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl RunningWorker {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Worker {
    /// Binds the listening socket. Plaintext on a non-loopback address is refused.
    pub fn bind(config: WorkerConfig) -> Result<Worker> {
        let tls = match &config.security {
            Security::InsecureLoopback => {
                if !config.listen.ip().is_loopback() {
                    return Err(Error::InsecureNotLoopback {
                        addr: config.listen.to_string(),
                    });
                }
                None
            }
            Security::MutualTls(id) => Some(transport::server_config(id)?),
        };
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|e| Error::io(&config.listen.to_string(), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&config.listen.to_string(), e))?;
        Ok(Worker {
            listener,
            tls,
            config,
        })
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io(&self.config.listen.to_string(), e))
    }

    /// Serves until the process ends.
    pub fn run(self) -> Result<()> {
        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        self.serve_until(never)
    }

    /// Serves on a background thread until the returned handle is dropped.
    pub fn spawn(self) -> Result<RunningWorker> {
        let addr = self.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("ferrograd-worker-{addr}"))
            .spawn(move || self.serve_until(rx))
            .map_err(|e| Error::io(&addr.to_string(), e))?;
        Ok(RunningWorker {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    fn serve_until(self, shutdown: tokio::sync::oneshot::Receiver<()>) -> Result<()> {
        let addr = self.local_addr()?.to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferrograd-worker-net")
            .enable_all()
            .build()
            .map_err(|e| Error::io(&addr, e))?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)
                .map_err(|e| Error::io(&addr, e))?;
            let exchange = Exchange::new(self.config.security.clone());
            let config = Arc::new(self.config);
            let tls = self.tls;
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    accepted = listener.accept() => {
                        let (tcp, peer) = match accepted {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!(error = %e, "accept failed");
                                continue;
                            }
                        };
                        let tls = tls.clone();
                        let config = config.clone();
                        let exchange = exchange.clone();
                        tokio::spawn(async move {
                            let peer = peer.to_string();
                            if let Err(e) = serve_connection(tcp, &peer, tls, &config, exchange).await {
                                tracing::info!(%peer, error = %e, "connection closed");
                            }
                        });
                    }
                }
            }
        })
    }
}

/// Runs `batch` here when it is quick and nothing is queued for the session thread (so the
/// order of batches is kept): its encoded answer. Otherwise the batch is given back.
fn run_if_quick(
    session: &parking_lot::Mutex<Session>,
    queued: &AtomicUsize,
    batch: crate::protocol::Batch,
    received: Instant,
) -> std::result::Result<OutFrame, crate::protocol::Batch> {
    if queued.load(Ordering::Acquire) != 0 {
        return Err(batch);
    }
    match session.try_lock() {
        Some(mut session) if session.is_quick(&batch) => {
            Ok(encode_message(&session.run(batch, received)))
        }
        _ => Err(batch),
    }
}

/// The local device a hello asks for (remote devices are not relayed).
fn open_device(name: &str) -> std::result::Result<Arc<ferrograd_runtime::DeviceHandle>, String> {
    if name.starts_with("remote:") {
        return Err(format!(
            "`{name}` is a remote device; a worker serves only its own devices"
        ));
    }
    ferrograd_runtime::device(name).map_err(|e| e.to_string())
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: &WorkerConfig,
    exchange: Arc<Exchange>,
) -> Result<()> {
    let (mut rd, mut wr) = transport::accept(tcp, peer, tls.as_ref()).await?;
    let hello_frame = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_frame(&mut rd, HANDSHAKE_LIMIT, peer),
    )
    .await
    .map_err(|_| Error::Deadline {
        peer: peer.to_string(),
        what: "hello",
        deadline: HANDSHAKE_TIMEOUT,
    })??
    .ok_or_else(|| Error::Malformed {
        peer: peer.to_string(),
        reason: "closed before the hello".into(),
    })?;
    let refuse = |reason: String| encode_handshake(&HelloReply::Refused(reason));
    let hello: Hello = match decode_handshake(&hello_frame, peer) {
        Ok(h) => h,
        Err(e) => {
            if matches!(e, Error::VersionMismatch { .. }) {
                write_frame(&mut wr, &refuse(e.to_string()), peer).await?;
            }
            return Err(e);
        }
    };
    if hello.device.is_empty() {
        let names = ferrograd_runtime::devices()
            .iter()
            .map(|d| d.name().to_string())
            .collect();
        return write_frame(
            &mut wr,
            &encode_handshake(&HelloReply::Devices(names)),
            peer,
        )
        .await;
    }
    let device = match open_device(&hello.device) {
        Ok(d) => d,
        Err(reason) => {
            write_frame(&mut wr, &refuse(reason.clone()), peer).await?;
            return Err(Error::Refused {
                peer: peer.to_string(),
                reason,
            });
        }
    };
    let info = WireDeviceInfo::describe(device.device().as_ref());
    let memory_limit = usize::try_from(info.memory_bytes).unwrap_or(usize::MAX);
    write_frame(&mut wr, &encode_handshake(&HelloReply::Welcome(info)), peer).await?;
    tracing::info!(%peer, device = %hello.device, "session opened");

    // A quick batch (data movement, see `Session::is_quick`) runs on this reader when nothing
    // is queued before it; the others go to the session thread, which writes each answer
    // itself. Either way no other thread is woken in between. Pongs are written by tasks of
    // their own; the async mutex keeps frames whole and in order.
    let writer = Arc::new(tokio::sync::Mutex::new(wr));
    let closed = Arc::new(Abort::default());
    let session = Arc::new(parking_lot::Mutex::new(Session::new(
        device,
        memory_limit,
        exchange,
    )));
    // Batches handed to the session thread and not yet answered.
    let queued = Arc::new(AtomicUsize::new(0));
    let (batch_tx, batch_rx) = std::sync::mpsc::channel::<(crate::protocol::Batch, Instant)>();
    let (session_writer, session_closed, session_peer) =
        (writer.clone(), closed.clone(), peer.to_string());
    let (thread_session, thread_queued) = (session.clone(), queued.clone());
    std::thread::Builder::new()
        .name(format!("ferrograd-session-{peer}"))
        .spawn(move || {
            while let Ok((batch, received)) = batch_rx.recv() {
                let answer = encode_message(&thread_session.lock().run(batch, received));
                let written = block_on_unless(&session_closed, async {
                    let mut writer = session_writer.lock().await;
                    write_message(&mut *writer, &answer, &session_peer).await
                });
                thread_queued.fetch_sub(1, Ordering::AcqRel);
                if !matches!(written, Some(Ok(()))) {
                    break;
                }
            }
        })
        .map_err(|e| Error::io(peer, e))?;

    let result = async {
        loop {
            let frame = tokio::time::timeout(
                config.idle_timeout,
                read_frame(&mut rd, config.max_frame, peer),
            )
            .await
            .map_err(|_| Error::Deadline {
                peer: peer.to_string(),
                what: "client heartbeat",
                deadline: config.idle_timeout,
            })??;
            let Some(frame) = frame else {
                return Ok(());
            };
            match decode_message::<ClientMsg>(frame, peer)? {
                ClientMsg::Ping(n) => {
                    let (writer, peer) = (writer.clone(), peer.to_string());
                    tokio::spawn(async move {
                        let pong = encode_message(&WorkerMsg::Pong(n));
                        let _ = write_message(&mut *writer.lock().await, &pong, &peer).await;
                    });
                }
                ClientMsg::Batch(batch) => {
                    let received = Instant::now();
                    match run_if_quick(&session, &queued, batch, received) {
                        Ok(answer) => {
                            write_message(&mut *writer.lock().await, &answer, peer).await?
                        }
                        Err(batch) => {
                            queued.fetch_add(1, Ordering::AcqRel);
                            if batch_tx.send((batch, received)).is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }
    .await;
    drop(batch_tx);
    // A session thread blocked writing to a client that stopped reading gives up.
    closed.abort();
    result
}
