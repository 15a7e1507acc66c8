//! Remote devices: `remote:HOST:PORT/DEVICE` names a device of the worker at `HOST:PORT`.
//!
//! [`RemoteResolver`] plugs into the runtime registry so the frontend opens remote devices by
//! name like any other. How connections are secured comes from [`set_client_security`], else
//! from the environment: `FERROGRAD_CLUSTER_DIR` (a directory made by `ferrograd cluster
//! init`: mutual TLS with its client certificate) or `FERROGRAD_INSECURE_LOOPBACK=1`
//! (plaintext, loopback workers only).

mod connection;
mod device;

pub use connection::{Connection, Heartbeat};
pub use device::{RemoteDevice, RemoteOptions, CHUNK_BYTES};

use crate::cluster::Identity;
use crate::error::{Error, Result};
use crate::transport::Security;
use parking_lot::RwLock;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

/// The prefix of remote device names.
pub const PREFIX: &str = "remote:";

/// A parsed `remote:HOST:PORT/DEVICE` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteName {
    /// `HOST:PORT` as written.
    pub host_port: String,
    /// The worker-local device name.
    pub device: String,
}

impl RemoteName {
    /// Parses `remote:HOST:PORT/DEVICE` (`HOST` may be a name, an IPv4 address or a bracketed
    /// IPv6 address).
    pub fn parse(name: &str) -> Result<RemoteName> {
        let bad = |reason: &str| Error::Address {
            addr: name.to_string(),
            reason: format!(
                "{reason}; expected remote:HOST:PORT/DEVICE, e.g. remote:10.0.0.2:7070/cpu"
            ),
        };
        let rest = name
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("no `remote:` prefix"))?;
        let (host_port, device) = rest.split_once('/').ok_or_else(|| bad("no `/DEVICE`"))?;
        let (host, port) = host_port
            .rsplit_once(':')
            .ok_or_else(|| bad("no `:PORT`"))?;
        if host.is_empty() || device.is_empty() {
            return Err(bad("empty host or device"));
        }
        port.parse::<u16>()
            .map_err(|_| bad("the port is not a number below 65536"))?;
        Ok(RemoteName {
            host_port: host_port.to_string(),
            device: device.to_string(),
        })
    }

    /// The first address `HOST:PORT` resolves to.
    pub fn socket_addr(&self) -> Result<SocketAddr> {
        self.host_port
            .to_socket_addrs()
            .map_err(|e| Error::Address {
                addr: self.host_port.clone(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| Error::Address {
                addr: self.host_port.clone(),
                reason: "resolves to no address".into(),
            })
    }
}

static SECURITY: RwLock<Option<Security>> = RwLock::new(None);
static OPTIONS: RwLock<Option<RemoteOptions>> = RwLock::new(None);

/// Secures the remote devices opened from now on (instead of the environment).
pub fn set_client_security(security: Security) {
    *SECURITY.write() = Some(security);
}

/// Options (deadline, heartbeat) of the remote devices opened from now on.
pub fn set_remote_options(options: RemoteOptions) {
    *OPTIONS.write() = Some(options);
}

/// The security remote devices use: [`set_client_security`]'s, else the environment's.
pub fn client_security() -> Result<Security> {
    if let Some(s) = SECURITY.read().clone() {
        return Ok(s);
    }
    if let Some(dir) = std::env::var_os("FERROGRAD_CLUSTER_DIR").filter(|d| !d.is_empty()) {
        return Ok(Security::MutualTls(Identity::load_client(&PathBuf::from(
            dir,
        ))?));
    }
    match std::env::var("FERROGRAD_INSECURE_LOOPBACK").as_deref() {
        Ok("1") => Ok(Security::InsecureLoopback),
        _ => Err(Error::Tls {
            peer: "config".into(),
            reason: "no cluster credentials: set FERROGRAD_CLUSTER_DIR to a directory made by \
                     `ferrograd cluster init` (or FERROGRAD_INSECURE_LOOPBACK=1 for a plaintext \
                     worker on this machine)"
                .into(),
        }),
    }
}

/// Opens `remote:HOST:PORT/DEVICE` as a runtime device.
pub fn open(name: &str) -> Result<RemoteDevice> {
    let parsed = RemoteName::parse(name)?;
    let addr = parsed.socket_addr()?;
    let options = OPTIONS.read().unwrap_or_default();
    RemoteDevice::connect(name, addr, &parsed.device, &client_security()?, options)
}

static OPENED: parking_lot::Mutex<Vec<(String, Arc<RemoteDevice>)>> =
    parking_lot::Mutex::new(Vec::new());

/// The remote device the registry opened under `name` (to inspect its connection: loss,
/// round trips).
pub fn opened(name: &str) -> Option<Arc<RemoteDevice>> {
    OPENED
        .lock()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, d)| d.clone())
}

/// The registry hook for `remote:` names.
pub struct RemoteResolver;

impl ferrograd_runtime::Resolver for RemoteResolver {
    fn prefix(&self) -> &'static str {
        PREFIX
    }

    fn open(&self, name: &str) -> ferrograd_runtime::Result<Arc<dyn ferrograd_runtime::Device>> {
        open(name)
            .map(|d| {
                let d = Arc::new(d);
                OPENED.lock().push((name.to_string(), d.clone()));
                d as Arc<dyn ferrograd_runtime::Device>
            })
            .map_err(|e| ferrograd_runtime::Error::Device {
                device: name.to_string(),
                reason: e.to_string(),
            })
    }
}

/// Registers [`RemoteResolver`] with the runtime registry (idempotent).
pub fn register() {
    ferrograd_runtime::register_resolver(Arc::new(RemoteResolver));
}
