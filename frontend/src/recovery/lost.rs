//! Which devices lost their worker, and waiting for a loss to be noticed.

use std::time::{Duration, Instant};

/// How long a lost worker may take to be marked lost (the heartbeat declares a silent worker
/// lost after 1 s; a closed socket is seen at once).
pub(crate) const LOSS_DETECTION: Duration = Duration::from_millis(2000);

/// True if `device` is a remote device whose worker was lost.
pub(crate) fn device_lost(device: &str) -> bool {
    #[cfg(feature = "distributed")]
    {
        ferrograd_distributed::remote::opened(device).is_some_and(|d| d.lost().is_some())
    }
    #[cfg(not(feature = "distributed"))]
    {
        let _ = device;
        false
    }
}

/// The devices among `devices` whose worker was lost. A loss can surface first on another
/// device (a survivor's transfer to the dead worker fails), so when none is marked yet and some
/// are remote, this waits up to [`LOSS_DETECTION`] for one to be.
pub(crate) fn wait_for_lost<'a, I>(devices: I) -> Vec<&'a str>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    let deadline = Instant::now() + LOSS_DETECTION;
    let remote = devices
        .clone()
        .into_iter()
        .any(|d| d.starts_with("remote:"));
    loop {
        let lost: Vec<&str> = devices
            .clone()
            .into_iter()
            .filter(|d| device_lost(d))
            .collect();
        if !lost.is_empty() || !remote || Instant::now() >= deadline {
            return lost;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
