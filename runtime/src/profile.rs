//! Per-kernel timing for finding hot kernels: when enabled (`FERROGRAD_PROFILE=1` or
//! [`enable`]), every launch is followed by a device synchronize and timed. Off by default (a
//! synchronize per launch would serialize GPU work).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);
static ENV_CHECKED: OnceLock<()> = OnceLock::new();
static TIMES: Mutex<Option<HashMap<String, KernelTime>>> = Mutex::new(None);

/// Accumulated time of one kernel (by Program name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTime {
    /// Kernel name.
    pub name: String,
    /// Launches.
    pub launches: usize,
    /// Total time from launch to completion.
    pub total: Duration,
}

/// Turns per-kernel timing on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// True when launches are being timed.
pub fn enabled() -> bool {
    ENV_CHECKED.get_or_init(|| {
        if std::env::var("FERROGRAD_PROFILE").is_ok_and(|v| v != "0") {
            ENABLED.store(true, Ordering::Relaxed);
        }
    });
    ENABLED.load(Ordering::Relaxed)
}

/// Adds one timed launch of `name`.
pub(crate) fn record(name: &str, elapsed: Duration) {
    let mut times = TIMES.lock();
    let entry = times
        .get_or_insert_with(HashMap::new)
        .entry(name.to_string())
        .or_insert_with(|| KernelTime {
            name: name.to_string(),
            ..Default::default()
        });
    entry.launches += 1;
    entry.total += elapsed;
}

/// Everything timed so far, slowest total first; clears the record.
pub fn take_report() -> Vec<KernelTime> {
    let mut all: Vec<KernelTime> = TIMES
        .lock()
        .take()
        .unwrap_or_default()
        .into_values()
        .collect();
    all.sort_by_key(|k| std::cmp::Reverse(k.total));
    all
}
