//! Finding workers: multicast DNS on the local network (mdns-sd) and a static peer list.
//!
//! A worker started with `--announce` registers a `_ferrograd._tcp.local.` service whose TXT
//! record carries its devices, the protocol version and the SHA-256 fingerprint of its cluster
//! CA ([`cluster_fingerprint`]). A client browsing the network keeps only the workers whose
//! fingerprint equals its own, so workers of other clusters on the same network are ignored
//! (the fingerprint is public data: authentication is still the mutual TLS of every
//! connection). Static peers (`host:port`, from a list or a file) are probed over an
//! authenticated connection that asks the worker for its device list.

use crate::error::{Error, Result};
use crate::frame::{read_frame, write_frame, DEFAULT_MAX_FRAME};
use crate::protocol::{decode_handshake, encode_handshake, Hello, HelloReply, PROTOCOL_VERSION};
use crate::transport::{self, Security, HANDSHAKE_TIMEOUT};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

/// The DNS-SD service type workers announce.
pub const SERVICE_TYPE: &str = "_ferrograd._tcp.local.";

/// The fingerprint announced by plaintext (loopback-only) workers, which have no CA.
pub const INSECURE_FINGERPRINT: &str = "insecure-loopback";

/// How a worker was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Multicast DNS on the local network.
    Mdns,
    /// The static peer list (and answered an authenticated probe).
    Static,
}

/// A worker found by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundWorker {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its device names (`cpu`, `vulkan:0`, ...); `remote:ADDR/NAME` opens one.
    pub devices: Vec<String>,
    /// How it was found.
    pub source: Source,
}

impl FoundWorker {
    /// The `remote:` names of its devices.
    pub fn remote_names(&self) -> Vec<String> {
        self.devices
            .iter()
            .map(|d| format!("remote:{}/{d}", self.addr))
            .collect()
    }
}

/// The cluster a security setting belongs to: the hex SHA-256 of the cluster CA certificate,
/// or [`INSECURE_FINGERPRINT`] for plaintext.
pub fn cluster_fingerprint(security: &Security) -> String {
    match security {
        Security::InsecureLoopback => INSECURE_FINGERPRINT.to_string(),
        Security::MutualTls(id) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, id.ca.as_ref());
            digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

fn discovery_error(e: impl std::fmt::Display) -> Error {
    Error::Discovery(e.to_string())
}

/// A worker's mDNS announcement; withdrawn when dropped.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}

/// Announces a worker listening on `addr` with `devices` to the local network. A worker bound
/// to an unspecified address (`0.0.0.0`) is announced on every interface's addresses.
pub fn announce(addr: SocketAddr, devices: &[String], security: &Security) -> Result<Announcement> {
    let daemon = ServiceDaemon::new().map_err(discovery_error)?;
    if addr.ip().is_loopback() {
        daemon
            .enable_interface(mdns_sd::IfKind::LoopbackV4)
            .map_err(discovery_error)?;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or_else(|| "ferrograd".into());
    let instance = format!("{host}-{}", addr.port());
    let properties = [
        ("devices", devices.join(",")),
        ("ca", cluster_fingerprint(security)),
        ("proto", PROTOCOL_VERSION.to_string()),
    ];
    let info = if addr.ip().is_unspecified() {
        ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &format!("{host}.local."),
            "",
            addr.port(),
            &properties[..],
        )
        .map(ServiceInfo::enable_addr_auto)
    } else {
        ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &format!("{host}.local."),
            addr.ip(),
            addr.port(),
            &properties[..],
        )
    }
    .map_err(discovery_error)?;
    let fullname = info.get_fullname().to_string();
    daemon.register(info).map_err(discovery_error)?;
    Ok(Announcement { daemon, fullname })
}

/// Browses the local network for `wait` and returns the workers of our cluster (same CA
/// fingerprint, same protocol version), one per address.
pub fn browse(security: &Security, wait: Duration, loopback: bool) -> Result<Vec<FoundWorker>> {
    let ours = cluster_fingerprint(security);
    let daemon = ServiceDaemon::new().map_err(discovery_error)?;
    if loopback {
        daemon
            .enable_interface(mdns_sd::IfKind::LoopbackV4)
            .map_err(discovery_error)?;
    }
    let events = daemon.browse(SERVICE_TYPE).map_err(discovery_error)?;
    let mut found = BTreeMap::new();
    let end = Instant::now() + wait;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(info) = event else {
            continue;
        };
        let prop = |key: &str| info.get_property_val_str(key).unwrap_or("").to_string();
        if prop("ca") != ours || prop("proto") != PROTOCOL_VERSION.to_string() {
            continue;
        }
        let devices: Vec<String> = prop("devices")
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
        for ip in info.get_addresses_v4() {
            let addr = SocketAddr::new(IpAddr::V4(ip), info.get_port());
            found.insert(
                addr,
                FoundWorker {
                    addr,
                    devices: devices.clone(),
                    source: Source::Mdns,
                },
            );
        }
    }
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}

/// Parses a static peer list: `host:port` entries separated by commas, spaces or newlines;
/// `#` starts a comment that runs to the end of its line.
pub fn parse_peers(list: &str) -> Result<Vec<String>> {
    let mut peers = Vec::new();
    for line in list.lines() {
        let line = line.split('#').next().unwrap_or("");
        for entry in line.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
            let (host, port) = entry.rsplit_once(':').ok_or_else(|| Error::Address {
                addr: entry.to_string(),
                reason: "expected HOST:PORT".into(),
            })?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(Error::Address {
                    addr: entry.to_string(),
                    reason: "expected HOST:PORT with a port below 65536".into(),
                });
            }
            peers.push(entry.to_string());
        }
    }
    Ok(peers)
}

/// Reads a static peer list from a file (format of [`parse_peers`]).
pub fn read_peer_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    parse_peers(&text)
}

/// Asks the worker at `host_port` for its devices over an authenticated connection (a hello
/// with an empty device name).
pub fn probe(host_port: &str, security: &Security) -> Result<FoundWorker> {
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| Error::Address {
            addr: host_port.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| Error::Address {
            addr: host_port.to_string(),
            reason: "resolves to no address".into(),
        })?;
    let security = security.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("local", e))?;
    rt.block_on(async move {
        let peer = addr.to_string();
        let (mut rd, mut wr) = transport::connect(addr, &security).await?;
        let hello = Hello {
            device: String::new(),
        };
        write_frame(&mut wr, &encode_handshake(&hello), &peer).await?;
        let reply = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            read_frame(&mut rd, DEFAULT_MAX_FRAME, &peer),
        )
        .await
        .map_err(|_| Error::Deadline {
            peer: peer.clone(),
            what: "device list",
            deadline: HANDSHAKE_TIMEOUT,
        })??
        .ok_or_else(|| Error::Refused {
            peer: peer.clone(),
            reason: "the worker closed the connection (not a member of our cluster?)".into(),
        })?;
        match decode_handshake::<HelloReply>(&reply, &peer)? {
            HelloReply::Devices(devices) => Ok(FoundWorker {
                addr,
                devices,
                source: Source::Static,
            }),
            HelloReply::Refused(reason) => Err(Error::Refused { peer, reason }),
            HelloReply::Welcome(_) => Err(Error::Malformed {
                peer,
                reason: "a welcome where the device list was asked for".into(),
            }),
        }
    })
}

/// Probes every static peer; the ones that answer, and for each one that does not, why.
pub fn probe_all(
    peers: &[String],
    security: &Security,
) -> (Vec<FoundWorker>, Vec<(String, Error)>) {
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for peer in peers {
        match probe(peer, security) {
            Ok(w) => found.push(w),
            Err(e) => failed.push((peer.clone(), e)),
        }
    }
    (found, failed)
}
