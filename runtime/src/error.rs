//! Typed errors for everything that comes from outside the API: devices, drivers, environment.

use ferrograd_ir::DType;

/// A runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No device of that name exists.
    #[error("unknown device `{name}`; available devices: {available}")]
    UnknownDevice {
        /// The name asked for.
        name: String,
        /// Comma-separated list of what exists.
        available: String,
    },
    /// The device cannot hold or compute this dtype.
    #[error("device `{device}` does not support dtype {dtype}")]
    UnsupportedDType {
        /// The device.
        device: String,
        /// The dtype.
        dtype: DType,
    },
    /// Turning a Program into device code failed.
    #[error("compiling kernel `{kernel}` for `{device}` failed: {reason}")]
    Compile {
        /// The device.
        device: String,
        /// The kernel's name.
        kernel: String,
        /// What went wrong.
        reason: String,
    },
    /// Memory could not be allocated.
    #[error("device `{device}` could not allocate {bytes} bytes: {reason}")]
    OutOfMemory {
        /// The device.
        device: String,
        /// Size requested.
        bytes: usize,
        /// What the driver said.
        reason: String,
    },
    /// The device or driver failed while running.
    #[error("device `{device}` failed: {reason}")]
    Device {
        /// The device.
        device: String,
        /// What went wrong.
        reason: String,
    },
    /// A remote device's worker stopped answering (connection closed or heartbeats missed).
    #[error("device `{device}` lost its worker: {reason}")]
    WorkerLost {
        /// The device.
        device: String,
        /// How the loss was detected.
        reason: String,
    },
    /// An environment variable holds an unusable value.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Env {
        /// Variable name.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

/// Result with the runtime [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
