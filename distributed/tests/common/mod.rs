//! Shared helpers: the CPU backend for in-process workers, clusters in temporary directories,
//! workers on loopback and remote devices connected to them.

#![allow(dead_code)]

use ferrograd_distributed::cluster::{self, Identity};
use ferrograd_distributed::remote::{Heartbeat, RemoteDevice, RemoteOptions};
use ferrograd_distributed::worker::{RunningWorker, Worker, WorkerConfig};
use ferrograd_distributed::Security;
use ferrograd_runtime::{register_backend, Backend, Device};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn open(&self) -> ferrograd_runtime::Result<Vec<Arc<dyn Device>>> {
        Ok(vec![Arc::new(ferrograd_cpu::CpuDevice::new()?)])
    }
}

/// Registers the CPU backend (the device in-process workers serve).
pub fn init() {
    register_backend(Box::new(Cpu));
}

/// A cluster (CA + client identity) in a temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        cluster::init(dir.path()).expect("cluster init");
        Cluster { dir }
    }
    pub fn client(&self) -> Identity {
        Identity::load_client(self.dir.path()).expect("client identity")
    }
    pub fn worker_identity(&self) -> Identity {
        let token = cluster::token(self.dir.path(), Duration::from_secs(600)).expect("token");
        cluster::redeem(&token).expect("redeem")
    }
    /// A worker of this cluster on a free loopback port.
    pub fn worker(&self) -> RunningWorker {
        init();
        let config = WorkerConfig::new(loopback(), Security::MutualTls(self.worker_identity()));
        Worker::bind(config).expect("bind").spawn().expect("spawn")
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A plaintext worker on a free loopback port.
pub fn insecure_worker() -> RunningWorker {
    init();
    let config = WorkerConfig::new(loopback(), Security::InsecureLoopback);
    Worker::bind(config).expect("bind").spawn().expect("spawn")
}

/// Short deadlines and the default heartbeat.
pub fn options() -> RemoteOptions {
    RemoteOptions {
        deadline: Duration::from_secs(30),
        heartbeat: Heartbeat::default(),
    }
}

/// The worker's `cpu` as a remote device.
pub fn connect(
    addr: SocketAddr,
    security: &Security,
) -> ferrograd_distributed::Result<RemoteDevice> {
    RemoteDevice::connect(
        &format!("remote:{addr}/cpu"),
        addr,
        "cpu",
        security,
        options(),
    )
}
