//! The device registry: backends register themselves; devices are opened on first use and
//! named `cpu`, `vulkan:N`, `webgpu:N`, ... `FERROGRAD_DEVICE` picks the default.

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

struct Registry {
    backends: Vec<Box<dyn Backend>>,
    opened: Option<Vec<Arc<DeviceHandle>>>,
    failures: Vec<String>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            backends: Vec::new(),
            opened: None,
            failures: Vec::new(),
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

/// Every device that was found.
pub fn devices() -> Vec<Arc<DeviceHandle>> {
    opened(&mut registry().lock())
}

/// Why backends that failed to open failed (for `ferrograd devices`).
pub fn backend_failures() -> Vec<String> {
    let mut r = registry().lock();
    opened(&mut r);
    r.failures.clone()
}

/// The device called `name` (`cpu` is also reachable as `cpu:0`; `vulkan` means `vulkan:0`).
pub fn device(name: &str) -> Result<Arc<DeviceHandle>> {
    let all = devices();
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
