//! Errors the driver reports outside a call's return value (validation errors of recorded
//! work, a lost device) and the messages that say what failed and what to do.

use ferrograd_runtime::Error;
use parking_lot::Mutex;
use std::sync::Arc;

/// The message when no adapter exists.
pub(crate) fn no_adapter(backends: wgpu::Backends) -> String {
    format!(
        "no WebGPU adapter found for backends {backends:?} (WGPU_BACKEND selects them); on \
         Linux install a Vulkan driver, e.g. `apt-get install libvulkan1 mesa-vulkan-drivers` \
         (lavapipe runs on the CPU)"
    )
}

/// An error of the backend as a whole (before a device is named).
pub(crate) fn backend_error(reason: impl Into<String>) -> Error {
    Error::Device {
        device: "webgpu".to_string(),
        reason: reason.into(),
    }
}

/// Errors delivered by wgpu's callbacks: uncaptured validation/internal/out-of-memory errors
/// and device loss. The device checks it at every synchronization point.
#[derive(Default)]
pub(crate) struct ErrorSink {
    errors: Mutex<Vec<String>>,
    lost: Mutex<Option<String>>,
}

impl ErrorSink {
    /// Installs the sink's handlers on `device` (instead of wgpu's default, which panics).
    pub(crate) fn install(device: &wgpu::Device) -> Arc<ErrorSink> {
        let sink = Arc::new(ErrorSink::default());
        let errors = sink.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            errors.errors.lock().push(e.to_string());
        }));
        let lost = sink.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lost.lost.lock() = Some(format!("{reason:?}: {message}"));
        });
        sink
    }

    /// Fails if the device was lost or work reported an error since the last check (the errors
    /// are consumed).
    pub(crate) fn check(&self, device: &str) -> Result<(), Error> {
        if let Some(reason) = self.lost.lock().clone() {
            return Err(Error::Device {
                device: device.to_string(),
                reason: format!("the device was lost ({reason})"),
            });
        }
        let errors = std::mem::take(&mut *self.errors.lock());
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::Device {
            device: device.to_string(),
            reason: errors.join("; "),
        })
    }
}
