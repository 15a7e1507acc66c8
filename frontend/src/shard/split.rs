//! How many rows each device gets: apportioning an axis by weights under memory capacities,
//! and the weights themselves from a measured per-device rate (cached) and device memory.

use crate::Tensor;
use ferrograd_ir::DType;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Splits `total` rows over devices in proportion to `weights` (largest remainder), every
/// device getting at least one row and at most `capacity[i]` rows. `op` and `shape` name the
/// call in the panic messages: fewer rows than devices, a weight that is not positive and
/// finite, or more rows than the devices can hold together are API misuse.
pub fn split_sizes(
    op: &str,
    shape: &[usize],
    total: usize,
    weights: &[f64],
    capacity: &[usize],
) -> Vec<usize> {
    let n = weights.len();
    assert!(n > 0, "{op}: no devices for shape {shape:?}");
    assert_eq!(
        capacity.len(),
        n,
        "{op}: {} capacities for {n} devices (shape {shape:?})",
        capacity.len()
    );
    assert!(
        total >= n,
        "{op}: axis of size {total} of shape {shape:?} cannot give each of {n} devices a row"
    );
    assert!(
        weights.iter().all(|w| w.is_finite() && *w > 0.0),
        "{op}: weights {weights:?} must be positive and finite (shape {shape:?})"
    );
    assert!(
        capacity.iter().all(|&c| c >= 1)
            && capacity.iter().fold(0usize, |a, &c| a.saturating_add(c)) >= total,
        "{op}: {total} rows of shape {shape:?} do not fit the devices' memory (room for {capacity:?} rows)"
    );
    // Devices whose share would exceed their capacity are pinned at it; the rest is shared by
    // weight among the others, until no share exceeds its capacity.
    let mut pinned: Vec<Option<usize>> = vec![None; n];
    loop {
        let free_rows = total - pinned.iter().flatten().sum::<usize>();
        let free: Vec<usize> = (0..n).filter(|&i| pinned[i].is_none()).collect();
        let sizes = apportion(
            free_rows,
            &free.iter().map(|&i| weights[i]).collect::<Vec<_>>(),
        );
        let over: Vec<usize> = free
            .iter()
            .zip(&sizes)
            .filter(|(&i, &s)| s > capacity[i])
            .map(|(&i, _)| i)
            .collect();
        if over.is_empty() {
            let mut out: Vec<usize> = pinned.iter().map(|p| p.unwrap_or(0)).collect();
            for (&i, s) in free.iter().zip(sizes) {
                out[i] = s;
            }
            return out;
        }
        for i in over {
            pinned[i] = Some(capacity[i]);
        }
    }
}

/// `total` (at least `weights.len()`) split by weight, each part at least 1, largest remainder.
fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let spare = total - n;
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| spare as f64 * w / sum).collect();
    let mut sizes: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = spare - sizes.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        sizes[i] += 1;
        left -= 1;
    }
    sizes.iter().map(|s| s + 1).collect()
}

/// Side of the square matmul the calibration times.
const CALIBRATION_SIDE: usize = 96;

/// Measured rates (flop/s) by device name, each measured once per process.
static RATES: Mutex<Option<HashMap<Arc<str>, f64>>> = Mutex::new(None);

/// The measured speed of `device` in flop/s: the best of three runs of a small f32 matmul
/// after a warm-up run (which compiles it), measured once per process and cached. The time
/// includes the launch and, for a remote device, the round trip, which is what a shard pays.
pub fn device_rate(device: &str) -> crate::Result<f64> {
    let name = crate::device::canonical_device(device)?;
    if let Some(rate) = RATES.lock().get_or_insert_with(HashMap::new).get(&name) {
        return Ok(*rate);
    }
    let side = CALIBRATION_SIDE;
    let data: Vec<f32> = (0..side * side).map(|i| (i % 17) as f32 * 0.125).collect();
    let bytes = crate::element::to_bytes(&data);
    let a = Tensor::try_from_bytes_on(&bytes, DType::F32, &[side, side], &name)?;
    let b = Tensor::try_from_bytes_on(&bytes, DType::F32, &[side, side], &name)?;
    let mut best = f64::INFINITY;
    for run in 0..4 {
        let start = Instant::now();
        crate::no_grad(|| a.matmul(&b).sum(crate::All)).to_bytes()?;
        if run > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    let rate = 2.0 * (side * side * side) as f64 / best.max(1e-9);
    RATES
        .lock()
        .get_or_insert_with(HashMap::new)
        .insert(name, rate);
    Ok(rate)
}

/// Bytes of memory `device` offers tensors.
pub fn device_memory(device: &str) -> crate::Result<u64> {
    crate::device::init();
    Ok(ferrograd_runtime::device(device)?
        .device()
        .info()
        .memory_bytes)
}
