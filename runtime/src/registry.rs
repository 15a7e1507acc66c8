//! The device registry: backends register themselves; devices are opened on first use and
//! named `cpu`, `vulkan:N`, `webgpu:N`, ... `FERROGRAD_DEVICE` picks the default. Devices that
//! no backend enumerates (remote devices, `remote:host:port/cpu`) are opened on first use by a
//! [`Resolver`] registered for their name prefix.

use crate::buffer::DeviceHandle;
use crate::device::{Device, DeviceInfo};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};

/// A family of devices (one backend) that can enumerate and open its devices.
pub trait Backend: Send + Sync {
    /// Name prefix (`cpu`, `vulkan`, ...).
    fn name(&self) -> &'static str;
    /// Opens every device of this backend that is present. A missing driver is an empty list or
    /// an error, never a panic.
    fn open(&self) -> Result<Vec<Arc<dyn Device>>>;
}

/// Opens devices on demand by name (for names no backend enumerates, such as remote devices).
pub trait Resolver: Send + Sync {
    /// The name prefix this resolver serves (`remote:`).
    fn prefix(&self) -> &'static str;
    /// Opens the device called `name` (which starts with [`Resolver::prefix`]).
    fn open(&self, name: &str) -> Result<Arc<dyn Device>>;
}

struct Registry {
    backends: Vec<Box<dyn Backend>>,
    opened: Option<Vec<Arc<DeviceHandle>>>,
    failures: Vec<String>,
    resolvers: Vec<Arc<dyn Resolver>>,
    /// Devices opened by resolvers, with the name they were asked for.
    resolved: Vec<(String, Arc<DeviceHandle>)>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            backends: Vec::new(),
            opened: None,
            failures: Vec::new(),
            resolvers: Vec::new(),
            resolved: Vec::new(),
        })
    })
}

/// Adds a backend (once per name; later registrations of the same name are ignored).
pub fn register_backend(backend: Box<dyn Backend>) {
    let mut r = registry().lock();
    if r.backends.iter().any(|b| b.name() == backend.name()) {
        return;
    }
    r.backends.push(backend);
    r.opened = None;
}

/// Adds a resolver (once per prefix; later registrations of the same prefix are ignored).
pub fn register_resolver(resolver: Arc<dyn Resolver>) {
    let mut r = registry().lock();
    if r.resolvers.iter().any(|x| x.prefix() == resolver.prefix()) {
        return;
    }
    r.resolvers.push(resolver);
}

fn resolved(r: &Registry, name: &str) -> Option<Arc<DeviceHandle>> {
    r.resolved
        .iter()
        .find(|(asked, d)| asked == name || **d.name() == *name)
        .map(|(_, d)| d.clone())
}

/// Opens `name` through the resolver of its prefix, without holding the registry lock while
/// the resolver works (it may connect to another machine).
fn resolve(name: &str) -> Option<Result<Arc<DeviceHandle>>> {
    let resolver = {
        let r = registry().lock();
        if let Some(d) = resolved(&r, name) {
            return Some(Ok(d));
        }
        r.resolvers
            .iter()
            .find(|x| name.starts_with(x.prefix()))
            .cloned()?
    };
    let device = match resolver.open(name) {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let mut r = registry().lock();
    if let Some(d) = resolved(&r, name) {
        return Some(Ok(d));
    }
    let handle = DeviceHandle::new(device);
    r.resolved.push((name.to_string(), handle.clone()));
    Some(Ok(handle))
}

fn opened(r: &mut Registry) -> Vec<Arc<DeviceHandle>> {
    if r.opened.is_none() {
        let mut devices = Vec::new();
        let mut failures = Vec::new();
        for b in &r.backends {
            match b.open() {
                Ok(list) => devices.extend(list.into_iter().map(DeviceHandle::new)),
                Err(e) => failures.push(format!("{}: {e}", b.name())),
            }
        }
        r.opened = Some(devices);
        r.failures = failures;
    }
    r.opened.clone().expect("opened")
}

/// Every device that the backends found (devices opened by a [`Resolver`] are not listed).
pub fn devices() -> Vec<Arc<DeviceHandle>> {
    opened(&mut registry().lock())
}

/// Why backends that failed to open failed (for `ferrograd devices`).
pub fn backend_failures() -> Vec<String> {
    let mut r = registry().lock();
    opened(&mut r);
    r.failures.clone()
}

/// The device called `name` (`cpu` is also reachable as `cpu:0`; `vulkan` means `vulkan:0`;
/// names with a [`Resolver`]'s prefix are opened by it on first use).
pub fn device(name: &str) -> Result<Arc<DeviceHandle>> {
    let all = devices();
    if let Some(found) = all.iter().find(|d| **d.name() == *name) {
        return Ok(found.clone());
    }
    if let Some(result) = resolve(name) {
        return result;
    }
    let canonical = match name {
        "cpu:0" => "cpu".to_string(),
        n if !n.contains(':') && n != "cpu" => format!("{n}:0"),
        n => n.to_string(),
    };
    all.iter()
        .find(|d| **d.name() == *canonical)
        .cloned()
        .ok_or_else(|| Error::UnknownDevice {
            name: name.to_string(),
            available: all
                .iter()
                .map(|d| d.name().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The default device: `FERROGRAD_DEVICE` if set, else the best found (discrete GPU >
/// integrated GPU > virtual GPU > CPU).
pub fn default_device() -> Result<Arc<DeviceHandle>> {
    if let Ok(name) = std::env::var("FERROGRAD_DEVICE") {
        return device(name.trim()).map_err(|e| Error::Env {
            var: "FERROGRAD_DEVICE",
            value: name.clone(),
            reason: e.to_string(),
        });
    }
    let all = devices();
    all.iter()
        .max_by_key(|d| {
            (
                d.device().info().kind,
                std::cmp::Reverse(d.name().to_string()),
            )
        })
        .cloned()
        .ok_or_else(|| Error::UnknownDevice {
            name: "<default>".into(),
            available: "none (no backend registered)".into(),
        })
}

/// Descriptions of every device found.
pub fn device_infos() -> Vec<DeviceInfo> {
    devices()
        .iter()
        .map(|d| d.device().info().clone())
        .collect()
}
