//! Collectives over tensors that live on different devices, built as ordinary lazy graph
//! nodes: every transfer is a `Copy` node, every combination an elementwise node on the
//! receiving device. Realizing a result runs them through the normal scheduler, and a copy
//! between two remote devices goes worker to worker. Every device ends up with bitwise the same
//! value: each element is combined in one fixed order, once, and then only copied.

use crate::Tensor;
use ferrograd_ir::Node;
use std::sync::Arc;

/// How partial values combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Elementwise sum.
    Sum,
    /// Elementwise maximum.
    Max,
}

impl ReduceOp {
    fn combine(self, a: &Tensor, b: &Tensor) -> Tensor {
        match self {
            ReduceOp::Sum => a.add(b),
            ReduceOp::Max => a.maximum(b),
        }
    }
}

/// Which all-reduce algorithm to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Ring for tensors of at least [`RING_MIN_ELEMENTS`] elements over three or more
    /// devices, direct otherwise.
    Auto,
    /// Every device receives every other device's partial value and combines them in device
    /// order: one step, `n - 1` messages per device, each of the whole tensor.
    Direct,
    /// Reduce-scatter then all-gather around the ring `0 -> 1 -> ... -> n-1 -> 0`:
    /// `2 (n - 1)` steps, each message `1/n` of the tensor, so every link carries
    /// `2 (n - 1) / n` of it instead of `n - 1` times it.
    Ring,
}

/// Smallest tensor (in elements) [`Algorithm::Auto`] reduces with the ring.
pub const RING_MIN_ELEMENTS: usize = 1 << 15;

/// `t` as a value on `device` (the same tensor if it is already there).
pub(crate) fn on_device(t: &Tensor, device: &Arc<str>) -> Tensor {
    if &t.device() == device {
        t.clone()
    } else {
        Tensor::apply([t], |[n]| Node::copy_to(n, device))
    }
}

fn check_parts(op: &str, parts: &[Tensor]) {
    assert!(!parts.is_empty(), "{op}: no parts");
    let (shape, dtype) = (parts[0].shape(), parts[0].dtype());
    for p in parts {
        assert!(
            p.shape() == shape && p.dtype() == dtype,
            "{op}: parts must share shape and dtype, got {}{:?} and {dtype}{shape:?}",
            p.dtype(),
            p.shape()
        );
    }
}

/// Combines `parts` (one per device, same shape and dtype) with `op`; returns the combined
/// value on every part's device, in the order of `parts`.
pub fn all_reduce(parts: &[Tensor], op: ReduceOp, algorithm: Algorithm) -> Vec<Tensor> {
    check_parts("all_reduce", parts);
    let n = parts.len();
    let numel = parts[0].numel();
    let ring = match algorithm {
        Algorithm::Direct => false,
        Algorithm::Ring => true,
        Algorithm::Auto => n > 2 && numel >= RING_MIN_ELEMENTS,
    };
    if n == 1 {
        parts.to_vec()
    } else if ring && numel >= n {
        ring_all_reduce(parts, op)
    } else {
        direct_all_reduce(parts, op)
    }
}

fn direct_all_reduce(parts: &[Tensor], op: ReduceOp) -> Vec<Tensor> {
    parts
        .iter()
        .map(|own| {
            let device = own.device();
            parts
                .iter()
                .map(|p| on_device(p, &device))
                .reduce(|a, b| op.combine(&a, &b))
                .expect("at least one part")
        })
        .collect()
}

/// The elements `bounds.0..bounds.1` of a flattened tensor.
fn chunk(flat: &Tensor, bounds: (usize, usize)) -> Tensor {
    flat.shrink(&[bounds])
}

fn ring_all_reduce(parts: &[Tensor], op: ReduceOp) -> Vec<Tensor> {
    let n = parts.len();
    let shape = parts[0].shape();
    let numel = parts[0].numel();
    let devices: Vec<Arc<str>> = parts.iter().map(|p| p.device()).collect();
    let bounds: Vec<(usize, usize)> = (0..n)
        .map(|c| (c * numel / n, (c + 1) * numel / n))
        .collect();
    // acc[i][c]: device i's current value of chunk c.
    let mut acc: Vec<Vec<Tensor>> = parts
        .iter()
        .map(|p| {
            let flat = p.reshape([numel]);
            bounds.iter().map(|&b| chunk(&flat, b)).collect()
        })
        .collect();
    // Reduce-scatter: at step s device i sends chunk (i - s) to device i + 1, which combines
    // it with its own. After n - 1 steps device i holds the total of chunk (i + 1) mod n.
    for s in 0..n - 1 {
        let before = acc.clone();
        for (i, held) in before.iter().enumerate() {
            let c = (i + n - s) % n;
            let to = (i + 1) % n;
            let received = on_device(&held[c], &devices[to]);
            acc[to][c] = op.combine(&before[to][c], &received);
        }
    }
    // All-gather: at step s device i passes chunk (i + 1 - s) on to device i + 1.
    for s in 0..n - 1 {
        let before = acc.clone();
        for (i, held) in before.iter().enumerate() {
            let c = (i + 1 + n - s) % n;
            let to = (i + 1) % n;
            acc[to][c] = on_device(&held[c], &devices[to]);
        }
    }
    acc.into_iter()
        .map(|chunks| Tensor::cat(&chunks, 0).reshape(shape.clone()))
        .collect()
}

/// Joins `parts` (one per device, equal outside `axis`) along `axis`; returns the whole tensor
/// on every part's device, in the order of `parts`. Each part travels around the ring, so a
/// device sends `n - 1` messages of one part each.
pub fn all_gather(parts: &[Tensor], axis: usize) -> Vec<Tensor> {
    assert!(!parts.is_empty(), "all_gather: no parts");
    let n = parts.len();
    let devices: Vec<Arc<str>> = parts.iter().map(|p| p.device()).collect();
    // held[i][c]: device i's copy of part c, filled in around the ring.
    let mut held: Vec<Vec<Option<Tensor>>> = (0..n)
        .map(|i| {
            let mut row = vec![None; n];
            row[i] = Some(parts[i].clone());
            row
        })
        .collect();
    for s in 0..n - 1 {
        for i in 0..n {
            let c = (i + n - s) % n;
            let to = (i + 1) % n;
            let value = held[i][c].clone().expect("received at an earlier step");
            held[to][c] = Some(on_device(&value, &devices[to]));
        }
    }
    held.into_iter()
        .map(|row| {
            let row: Vec<Tensor> = row
                .into_iter()
                .map(|p| p.expect("every part arrives"))
                .collect();
            Tensor::cat(&row, axis)
        })
        .collect()
}
