//! Ops on [`ShardedTensor`]s: elementwise (with broadcasting against whole tensors and other
//! sharded tensors), reductions (per part, then an all-reduce when the split axis is reduced),
//! matmul (split batch/rows/columns map over parts; a split contracted axis gives partial
//! products that are all-reduced) and movement ops (mapped over parts when the split axis
//! survives, resharded otherwise).

use super::collective::{all_reduce, on_device, Algorithm, ReduceOp};
use super::{Layout, ShardedTensor};
use crate::axes::{
    broadcast_shape, resolve_axes, resolve_axis, resolve_shape, IntoAxes, IntoShape,
};
use crate::Tensor;
use std::sync::Arc;

/// The other operand of a binary op or matmul on a sharded tensor.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    /// Another sharded tensor over the same devices.
    Sharded(&'a ShardedTensor),
    /// An ordinary tensor; the rows each device needs are copied to it.
    Whole(&'a Tensor),
}

impl<'a> From<&'a ShardedTensor> for Operand<'a> {
    fn from(s: &'a ShardedTensor) -> Self {
        Operand::Sharded(s)
    }
}

impl<'a> From<&'a Tensor> for Operand<'a> {
    fn from(t: &'a Tensor) -> Self {
        Operand::Whole(t)
    }
}

impl Operand<'_> {
    fn shape(&self) -> Vec<usize> {
        match self {
            Operand::Sharded(s) => s.shape(),
            Operand::Whole(t) => t.shape(),
        }
    }

    fn split(&self) -> Option<(usize, &[usize])> {
        match self {
            Operand::Sharded(ShardedTensor {
                layout: Layout::Split { axis, sizes },
                ..
            }) => Some((*axis, sizes)),
            _ => None,
        }
    }

    /// The elements within `bounds` as a tensor on `device`.
    fn region(&self, bounds: &[(usize, usize)], device: &Arc<str>) -> Tensor {
        match self {
            Operand::Sharded(s) => s.region_on(bounds, device),
            Operand::Whole(t) => {
                let full = bounds.iter().zip(t.shape()).all(|(b, d)| *b == (0, d));
                let t = if full { (*t).clone() } else { t.shrink(bounds) };
                on_device(&t, device)
            }
        }
    }
}

/// Half-open row ranges of consecutive parts of the given sizes.
fn ranges(sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            start += n;
            (start - n, start)
        })
        .collect()
}

/// Full bounds of `shape`, with axis `axis` (if any) narrowed to `rows`.
fn bounds_with(shape: &[usize], axis: Option<usize>, rows: (usize, usize)) -> Vec<(usize, usize)> {
    let mut b: Vec<(usize, usize)> = shape.iter().map(|&d| (0, d)).collect();
    if let Some(a) = axis {
        b[a] = rows;
    }
    b
}

/// Axis of an operand of rank `rank` aligned (from the right) with output axis `out_axis` of
/// rank `out_rank`, if it has one of more than one element (a size-1 axis broadcasts).
fn aligned_axis(shape: &[usize], out_rank: usize, out_axis: usize) -> Option<usize> {
    let a = out_axis.checked_sub(out_rank - shape.len())?;
    (shape[a] != 1).then_some(a)
}

impl ShardedTensor {
    fn check_devices(&self, op: &str, other: &Operand) {
        if let Operand::Sharded(o) = other {
            assert!(
                o.devices() == self.devices(),
                "{op}: sharded tensors of shapes {:?} and {:?} live on different devices ({:?} vs {:?})",
                self.shape,
                o.shape,
                self.devices(),
                o.devices()
            );
        }
    }

    /// Applies a shape-preserving elementwise function to every part. Panics (naming `op`) if
    /// `f` changes a part's shape.
    pub fn map(&self, op: &str, f: impl Fn(&Tensor) -> Tensor) -> ShardedTensor {
        let parts: Vec<Tensor> = self
            .parts
            .iter()
            .map(|p| {
                let out = f(p);
                assert_eq!(
                    out.shape(),
                    p.shape(),
                    "{op}: map must keep the shape of the part (sharded shape {:?})",
                    self.shape
                );
                out
            })
            .collect();
        ShardedTensor {
            parts,
            ..self.clone()
        }
    }

    /// Applies an elementwise binary function with broadcasting. The result is split like
    /// whichever operand is split (this one first); each device gets the other operand's
    /// elements its part needs, from wherever they are (for a whole tensor, only those rows;
    /// a sharded operand split another way is resharded region by region). Panics (naming
    /// `op` and both shapes) if the shapes do not broadcast or the sharded tensors live on
    /// different devices.
    pub fn zip<'a>(
        &self,
        op: &str,
        other: impl Into<Operand<'a>>,
        f: impl Fn(&Tensor, &Tensor) -> Tensor,
    ) -> ShardedTensor {
        let other = other.into();
        self.check_devices(op, &other);
        let (ls, rs) = (self.shape.clone(), other.shape());
        let out = broadcast_shape(op, &ls, &rs);
        let rank = out.len();
        let lifted = |shape: &[usize], axis: usize| axis + (rank - shape.len());
        let split = match (&self.layout, other.split()) {
            (Layout::Split { axis, sizes }, _) => Some((lifted(&ls, *axis), sizes.clone())),
            (Layout::Replicated, Some((axis, sizes))) => Some((lifted(&rs, axis), sizes.to_vec())),
            _ => None,
        };
        let devices = self.devices();
        let rows: Vec<(usize, usize)> = match &split {
            Some((_, sizes)) => ranges(sizes),
            None => vec![(0, 0); devices.len()],
        };
        let me = Operand::Sharded(self);
        let parts = devices
            .iter()
            .zip(rows)
            .map(|(device, r)| {
                let side = |o: &Operand, shape: &[usize]| {
                    let axis = split
                        .as_ref()
                        .and_then(|(oa, _)| aligned_axis(shape, rank, *oa));
                    o.region(&bounds_with(shape, axis, r), device)
                };
                f(&side(&me, &ls), &side(&other, &rs))
            })
            .collect();
        let layout = match split {
            Some((axis, sizes)) => Layout::Split { axis, sizes },
            None => Layout::Replicated,
        };
        ShardedTensor {
            parts,
            layout,
            shape: out,
            weights: self.weights.clone(),
        }
    }

    /// Elementwise sum (broadcasting).
    pub fn add<'a>(&self, other: impl Into<Operand<'a>>) -> ShardedTensor {
        self.zip("add", other, |a, b| a.add(b))
    }

    /// Elementwise difference (broadcasting).
    pub fn sub<'a>(&self, other: impl Into<Operand<'a>>) -> ShardedTensor {
        self.zip("sub", other, |a, b| a.sub(b))
    }

    /// Elementwise product (broadcasting).
    pub fn mul<'a>(&self, other: impl Into<Operand<'a>>) -> ShardedTensor {
        self.zip("mul", other, |a, b| a.mul(b))
    }

    /// Elementwise quotient (broadcasting).
    pub fn div<'a>(&self, other: impl Into<Operand<'a>>) -> ShardedTensor {
        self.zip("div", other, |a, b| a.div(b))
    }

    /// Elementwise maximum (broadcasting).
    pub fn maximum<'a>(&self, other: impl Into<Operand<'a>>) -> ShardedTensor {
        self.zip("maximum", other, |a, b| a.maximum(b))
    }

    /// `max(x, 0)` on every part.
    pub fn relu(&self) -> ShardedTensor {
        self.map("relu", Tensor::relu)
    }

    /// `e^x` on every part.
    pub fn exp(&self) -> ShardedTensor {
        self.map("exp", Tensor::exp)
    }

    fn reduce(
        &self,
        op: &str,
        axes: Option<Vec<i64>>,
        keepdim: bool,
        how: ReduceOp,
    ) -> ShardedTensor {
        let axes = resolve_axes(op, axes, &self.shape);
        let reduce_part = |p: &Tensor| match how {
            ReduceOp::Sum => p.sum_keepdim(axes.clone()),
            ReduceOp::Max => p.max_keepdim(axes.clone()),
        };
        let mut parts: Vec<Tensor> = self.parts.iter().map(reduce_part).collect();
        let mut layout = self.layout.clone();
        if let Layout::Split { axis, .. } = &self.layout {
            if axes.contains(axis) {
                parts = all_reduce(&parts, how, Algorithm::Auto);
                layout = Layout::Replicated;
            }
        }
        let kept: Vec<usize> = (0..self.shape.len())
            .filter(|a| !axes.contains(a))
            .collect();
        let shape: Vec<usize> = if keepdim {
            self.shape
                .iter()
                .enumerate()
                .map(|(a, &d)| if axes.contains(&a) { 1 } else { d })
                .collect()
        } else {
            kept.iter().map(|&a| self.shape[a]).collect()
        };
        if !keepdim {
            if let Layout::Split { axis, sizes } = &layout {
                let new_axis = kept
                    .iter()
                    .position(|a| a == axis)
                    .expect("split axis kept");
                parts = parts
                    .iter()
                    .zip(sizes)
                    .map(|(p, &rows)| {
                        let mut s = shape.clone();
                        s[new_axis] = rows;
                        p.reshape(s)
                    })
                    .collect();
                layout = Layout::Split {
                    axis: new_axis,
                    sizes: sizes.clone(),
                };
            } else {
                parts = parts.iter().map(|p| p.reshape(shape.clone())).collect();
            }
        }
        ShardedTensor {
            parts,
            layout,
            shape,
            weights: self.weights.clone(),
        }
    }

    /// Sum over `axes`: per part, then all-reduced if the split axis is among them.
    pub fn sum(&self, axes: impl IntoAxes) -> ShardedTensor {
        self.reduce("sum", axes.raw_axes(), false, ReduceOp::Sum)
    }

    /// [`ShardedTensor::sum`] keeping reduced axes as size 1.
    pub fn sum_keepdim(&self, axes: impl IntoAxes) -> ShardedTensor {
        self.reduce("sum", axes.raw_axes(), true, ReduceOp::Sum)
    }

    /// Maximum over `axes`: per part, then all-reduced if the split axis is among them.
    pub fn max(&self, axes: impl IntoAxes) -> ShardedTensor {
        self.reduce("max", axes.raw_axes(), false, ReduceOp::Max)
    }

    /// Mean over `axes` (a sum divided by the number of elements reduced).
    pub fn mean(&self, axes: impl IntoAxes) -> ShardedTensor {
        let raw = axes.raw_axes();
        let resolved = resolve_axes("mean", raw.clone(), &self.shape);
        let count: usize = resolved.iter().map(|&a| self.shape[a]).product();
        let sum = self.reduce("mean", raw, false, ReduceOp::Sum);
        sum.map("mean", |p| p.div(count.max(1) as f64))
    }

    /// Matrix product with broadcasting batch axes (both operands at least 2-D). A split batch,
    /// row or column axis maps over the parts (the other operand's rows each device needs are
    /// brought to it); a split contracted axis gives each device a partial product over its
    /// slice of the contraction, and the partials are all-reduced (ring when large). Panics,
    /// naming both shapes, if the shapes do not fit.
    pub fn matmul<'a>(&self, other: impl Into<Operand<'a>>) -> ShardedTensor {
        let other = other.into();
        self.check_devices("matmul", &other);
        let (ls, rs) = (self.shape.clone(), other.shape());
        assert!(
            ls.len() >= 2 && rs.len() >= 2 && ls[ls.len() - 1] == rs[rs.len() - 2],
            "matmul: sharded shapes {ls:?} and {rs:?} do not fit (both need 2+ axes, inner sizes equal)"
        );
        let (ln, rn) = (ls.len(), rs.len());
        let mut out = broadcast_shape("matmul", &ls[..ln - 2], &rs[..rn - 2]);
        out.extend([ls[ln - 2], rs[rn - 1]]);
        let on = out.len();
        #[derive(Clone, Copy, PartialEq)]
        enum Role {
            Batch(usize),
            Rows,
            Cols,
            Contracted,
        }
        let role = match (self.axis(), other.split().map(|s| s.0)) {
            (Some(a), _) if a == ln - 1 => Some(Role::Contracted),
            (Some(a), _) if a == ln - 2 => Some(Role::Rows),
            (Some(a), _) => Some(Role::Batch(a + on - ln)),
            (None, Some(b)) if b == rn - 2 => Some(Role::Contracted),
            (None, Some(b)) if b == rn - 1 => Some(Role::Cols),
            (None, Some(b)) => Some(Role::Batch(b + on - rn)),
            (None, None) => None,
        };
        let sizes: Vec<usize> = match (&self.layout, other.split()) {
            (Layout::Split { sizes, .. }, _) => sizes.clone(),
            (_, Some((_, sizes))) => sizes.to_vec(),
            _ => vec![0; self.parts.len()],
        };
        let axes_for = |role: Option<Role>| -> (Option<usize>, Option<usize>) {
            match role {
                Some(Role::Batch(oa)) => (
                    aligned_axis(&ls[..ln - 2], on - 2, oa),
                    aligned_axis(&rs[..rn - 2], on - 2, oa),
                ),
                Some(Role::Rows) => (Some(ln - 2), None),
                Some(Role::Cols) => (None, Some(rn - 1)),
                Some(Role::Contracted) => (Some(ln - 1), Some(rn - 2)),
                None => (None, None),
            }
        };
        let (la, ra) = axes_for(role);
        let me = Operand::Sharded(self);
        let devices = self.devices();
        let mut parts: Vec<Tensor> = devices
            .iter()
            .zip(ranges(&sizes))
            .map(|(device, r)| {
                let lhs = me.region(&bounds_with(&ls, la, r), device);
                let rhs = other.region(&bounds_with(&rs, ra, r), device);
                lhs.matmul(&rhs)
            })
            .collect();
        let layout = match role {
            Some(Role::Batch(oa)) => Layout::Split { axis: oa, sizes },
            Some(Role::Rows) => Layout::Split {
                axis: on - 2,
                sizes,
            },
            Some(Role::Cols) => Layout::Split {
                axis: on - 1,
                sizes,
            },
            Some(Role::Contracted) => {
                parts = all_reduce(&parts, ReduceOp::Sum, Algorithm::Auto);
                Layout::Replicated
            }
            None => Layout::Replicated,
        };
        ShardedTensor {
            parts,
            layout,
            shape: out,
            weights: self.weights.clone(),
        }
    }

    /// Reorders axes (`perm[i]` is the source of result axis `i`); the split axis moves with
    /// its data, nothing is transferred.
    pub fn permute(&self, perm: &[usize]) -> ShardedTensor {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        assert!(
            perm.len() == rank
                && perm
                    .iter()
                    .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)),
            "permute: {perm:?} is not a permutation of the axes of sharded shape {:?}",
            self.shape
        );
        let layout = match &self.layout {
            Layout::Split { axis, sizes } => Layout::Split {
                axis: perm.iter().position(|p| p == axis).expect("a permutation"),
                sizes: sizes.clone(),
            },
            Layout::Replicated => Layout::Replicated,
        };
        ShardedTensor {
            parts: self
                .parts
                .iter()
                .map(|p| p.permute(perm.to_vec()))
                .collect(),
            layout,
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            weights: self.weights.clone(),
        }
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: impl crate::AxisInt, b: impl crate::AxisInt) -> ShardedTensor {
        let (a, b) = (
            resolve_axis("transpose", a.as_i64(), &self.shape),
            resolve_axis("transpose", b.as_i64(), &self.shape),
        );
        let mut perm: Vec<usize> = (0..self.shape.len()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The same elements in a new shape. When the axes before the split axis and the split
    /// axis itself survive the reshape, every part reshapes in place; otherwise the value is
    /// resharded along the first new axis with at least one row per device (all-gather, then
    /// each device keeps its rows), or replicated when there is none.
    pub fn reshape(&self, shape: impl IntoShape) -> ShardedTensor {
        let new = resolve_shape("reshape", &shape.raw_shape(), &self.shape);
        let Layout::Split { axis, sizes } = &self.layout else {
            return ShardedTensor {
                parts: self.parts.iter().map(|p| p.reshape(new.clone())).collect(),
                shape: new,
                ..self.clone()
            };
        };
        let before: usize = self.shape[..*axis].iter().product();
        let kept = (0..new.len())
            .find(|&k| new[..k].iter().product::<usize>() == before && new[k] == self.shape[*axis]);
        if let Some(k) = kept {
            let parts = self
                .parts
                .iter()
                .zip(sizes)
                .map(|(p, &rows)| {
                    let mut s = new.clone();
                    s[k] = rows;
                    p.reshape(s)
                })
                .collect();
            return ShardedTensor {
                parts,
                layout: Layout::Split {
                    axis: k,
                    sizes: sizes.clone(),
                },
                shape: new,
                weights: self.weights.clone(),
            };
        }
        let whole = self.all_gather().reshape(new.clone());
        match new.iter().position(|&d| d >= self.parts.len()) {
            Some(k) => whole.split_locally(k),
            None => whole,
        }
    }

    /// A replicated tensor split along `axis` by its weights, each device keeping its rows of
    /// its own copy (no transfer).
    fn split_locally(&self, axis: usize) -> ShardedTensor {
        debug_assert_eq!(self.layout, Layout::Replicated);
        let unlimited = vec![usize::MAX; self.parts.len()];
        let sizes = super::split::split_sizes(
            "reshard",
            &self.shape,
            self.shape[axis],
            &self.weights,
            &unlimited,
        );
        let parts = self
            .parts
            .iter()
            .zip(ranges(&sizes))
            .map(|(p, r)| p.shrink(&bounds_with(&self.shape, Some(axis), r)))
            .collect();
        ShardedTensor {
            parts,
            layout: Layout::Split { axis, sizes },
            shape: self.shape.clone(),
            weights: self.weights.clone(),
        }
    }
}
