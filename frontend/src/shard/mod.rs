//! Tensors split across devices: [`Tensor::shard`] cuts one axis into per-device parts sized by
//! each device's measured speed and memory; a [`ShardedTensor`] maps ops over its parts, adds
//! collectives ([`collective`]) where values must meet, and gathers back with
//! [`ShardedTensor::to_tensor`]. Everything stays lazy: a sharded computation is one graph
//! spanning the devices, realized by the ordinary scheduler.

pub mod collective;
pub mod data_parallel;
mod ops;
pub mod split;

pub use collective::{all_gather, all_reduce, Algorithm, ReduceOp};
pub use data_parallel::DataParallel;
pub use ops::Operand;

use crate::Tensor;
use collective::on_device;
use std::sync::Arc;

/// How a [`ShardedTensor`]'s parts make up its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Part `i` is rows `offsets[i]..offsets[i] + sizes[i]` of `axis`.
    Split {
        /// The axis cut into parts.
        axis: usize,
        /// Rows of each part along `axis`.
        sizes: Vec<usize>,
    },
    /// Every part holds the whole value.
    Replicated,
}

/// A tensor held as one part per device (see [`Layout`]).
#[derive(Clone, Debug)]
pub struct ShardedTensor {
    parts: Vec<Tensor>,
    layout: Layout,
    shape: Vec<usize>,
    /// Relative speed of each device, kept for resharding.
    weights: Vec<f64>,
}

impl Tensor {
    /// Splits `axis` across `devices`, each device's share proportional to its measured speed
    /// ([`split::device_rate`], measured once per device and cached) and capped by its memory.
    /// Panics (naming the op and shape) if the axis has fewer rows than there are devices;
    /// a device that cannot be opened or measured is an error.
    pub fn shard(
        &self,
        devices: &[&str],
        axis: impl crate::AxisInt,
    ) -> crate::Result<ShardedTensor> {
        let mut weights = Vec::with_capacity(devices.len());
        for d in devices {
            weights.push(split::device_rate(d)?);
        }
        self.shard_weighted(devices, axis, &weights)
    }

    /// [`Tensor::shard`] with explicit relative weights instead of measured speeds (still
    /// capped by each device's memory).
    pub fn shard_weighted(
        &self,
        devices: &[&str],
        axis: impl crate::AxisInt,
        weights: &[f64],
    ) -> crate::Result<ShardedTensor> {
        let shape = self.shape();
        let axis = crate::axes::resolve_axis("shard", axis.as_i64(), &shape);
        assert_eq!(
            weights.len(),
            devices.len(),
            "shard: {} weights for {} devices (shape {shape:?})",
            weights.len(),
            devices.len()
        );
        let names = canonical_devices(devices)?;
        let row_bytes = (self.numel() / shape[axis].max(1) * self.dtype().size()).max(1) as u64;
        let mut capacity = Vec::with_capacity(names.len());
        for n in &names {
            let rows = split::device_memory(n)? / row_bytes;
            capacity.push(usize::try_from(rows).unwrap_or(usize::MAX));
        }
        let sizes = split::split_sizes("shard", &shape, shape[axis], weights, &capacity);
        Ok(ShardedTensor::split_onto(
            self, &names, axis, &sizes, weights,
        ))
    }

    /// The same value on every one of `devices` (a [`Layout::Replicated`] sharded tensor).
    pub fn replicate(&self, devices: &[&str]) -> crate::Result<ShardedTensor> {
        let names = canonical_devices(devices)?;
        assert!(
            !names.is_empty(),
            "replicate: no devices for shape {:?}",
            self.shape()
        );
        Ok(ShardedTensor {
            parts: names.iter().map(|d| on_device(self, d)).collect(),
            layout: Layout::Replicated,
            shape: self.shape(),
            weights: vec![1.0; names.len()],
        })
    }
}

fn canonical_devices(devices: &[&str]) -> crate::Result<Vec<Arc<str>>> {
    let mut names = Vec::with_capacity(devices.len());
    for d in devices {
        let name = crate::device::canonical_device(d)?;
        assert!(
            !names.contains(&name),
            "shard: device {name} is listed twice in {devices:?}"
        );
        names.push(name);
    }
    Ok(names)
}

impl ShardedTensor {
    /// `t` cut along `axis` into parts of `sizes` rows, part `i` moved to `devices[i]`.
    fn split_onto(
        t: &Tensor,
        devices: &[Arc<str>],
        axis: usize,
        sizes: &[usize],
        weights: &[f64],
    ) -> ShardedTensor {
        let parts = t
            .split(sizes, axis)
            .iter()
            .zip(devices)
            .map(|(p, d)| on_device(p, d))
            .collect();
        ShardedTensor {
            parts,
            layout: Layout::Split {
                axis,
                sizes: sizes.to_vec(),
            },
            shape: t.shape(),
            weights: weights.to_vec(),
        }
    }

    /// The logical shape (of the whole value).
    pub fn shape(&self) -> Vec<usize> {
        self.shape.clone()
    }

    /// How the parts make up the value.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The per-device parts, in device order.
    pub fn parts(&self) -> &[Tensor] {
        &self.parts
    }

    /// The devices, in order.
    pub fn devices(&self) -> Vec<Arc<str>> {
        self.parts.iter().map(|p| p.device()).collect()
    }

    /// The relative device weights the split was made with.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The sharded axis, if the layout is [`Layout::Split`].
    pub fn axis(&self) -> Option<usize> {
        match &self.layout {
            Layout::Split { axis, .. } => Some(*axis),
            Layout::Replicated => None,
        }
    }

    /// Computes every part now (one schedule for all devices).
    pub fn realize(&self) -> crate::Result<&ShardedTensor> {
        Tensor::realize_all(&self.parts)?;
        Ok(self)
    }

    /// The whole value as one tensor on the first device.
    pub fn to_tensor(&self) -> Tensor {
        let first = self.parts[0].device();
        self.gather_on(&first)
    }

    /// The whole value as one tensor on `device` (the parts are copied there and joined).
    pub fn gather(&self, device: &str) -> crate::Result<Tensor> {
        let name = crate::device::canonical_device(device)?;
        Ok(self.gather_on(&name))
    }

    fn gather_on(&self, device: &Arc<str>) -> Tensor {
        match &self.layout {
            Layout::Replicated => {
                let own = self.parts.iter().find(|p| &p.device() == device);
                on_device(own.unwrap_or(&self.parts[0]), device)
            }
            Layout::Split { axis, .. } => {
                let moved: Vec<Tensor> = self.parts.iter().map(|p| on_device(p, device)).collect();
                Tensor::cat(&moved, *axis)
            }
        }
    }

    /// The whole value on every device ([`all_gather`] for a split layout).
    pub fn all_gather(&self) -> ShardedTensor {
        match &self.layout {
            Layout::Replicated => self.clone(),
            Layout::Split { axis, .. } => ShardedTensor {
                parts: all_gather(&self.parts, *axis),
                layout: Layout::Replicated,
                shape: self.shape.clone(),
                weights: self.weights.clone(),
            },
        }
    }

    /// The same value split along `axis` instead (sizes from the stored weights; the devices
    /// stay the same). Parts are moved between devices directly, never through one device.
    pub fn reshard(&self, axis: impl crate::AxisInt) -> ShardedTensor {
        let axis = crate::axes::resolve_axis("reshard", axis.as_i64(), &self.shape);
        if self.axis() == Some(axis) {
            return self.clone();
        }
        let devices = self.devices();
        let unlimited = vec![usize::MAX; devices.len()];
        let sizes = split::split_sizes(
            "reshard",
            &self.shape,
            self.shape[axis],
            &self.weights,
            &unlimited,
        );
        let mut bounds: Vec<(usize, usize)> = self.shape.iter().map(|&d| (0, d)).collect();
        let mut start = 0;
        let parts = devices
            .iter()
            .zip(&sizes)
            .map(|(device, &rows)| {
                bounds[axis] = (start, start + rows);
                start += rows;
                // The rows this device needs, taken from whichever parts hold them.
                self.region_on(&bounds, device)
            })
            .collect();
        ShardedTensor {
            parts,
            layout: Layout::Split { axis, sizes },
            shape: self.shape.clone(),
            weights: self.weights.clone(),
        }
    }

    /// The elements within `bounds` (per-axis half-open ranges of the whole value) as a tensor
    /// on `device`, assembled from the parts that hold them.
    fn region_on(&self, bounds: &[(usize, usize)], device: &Arc<str>) -> Tensor {
        match &self.layout {
            Layout::Replicated => {
                let own = self
                    .parts
                    .iter()
                    .find(|p| &p.device() == device)
                    .unwrap_or(&self.parts[0]);
                on_device(&own.shrink(bounds), device)
            }
            Layout::Split { axis, sizes } => {
                let (lo, hi) = bounds[*axis];
                let mut pieces = Vec::new();
                let mut start = 0;
                for (part, &rows) in self.parts.iter().zip(sizes) {
                    let (a, b) = (lo.max(start), hi.min(start + rows));
                    if a < b {
                        let mut local = bounds.to_vec();
                        local[*axis] = (a - start, b - start);
                        let whole = local.iter().zip(part.shape()).all(|(b, d)| *b == (0, d));
                        let piece = if whole {
                            part.clone()
                        } else {
                            part.shrink(&local)
                        };
                        pieces.push(on_device(&piece, device));
                    }
                    start += rows;
                }
                if pieces.len() == 1 {
                    pieces.pop().expect("one piece")
                } else {
                    Tensor::cat(&pieces, *axis)
                }
            }
        }
    }
}
