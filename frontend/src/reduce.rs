//! Reductions over one, several or all axes, with and without kept axes.

use crate::axes::{resolve_axes, resolve_axis, AxisInt, IntoAxes};
use crate::tensor::{Tensor, DEFAULT_FLOAT};
use ferrograd_ir::{DType, Node, ReduceOp, Scalar};

/// Reductions of at least this many elements into few outputs run in two stages.
const SPLIT_REDUCE_MIN: usize = 1 << 16;
/// Partial results per output in the first stage of a split reduction.
const SPLIT_REDUCE_GROUPS: usize = 256;

/// A large reduction of trailing axes into few outputs becomes two reductions, so the first
/// stage has enough independent outputs to use every core: `(out, R) -> (out, G, R/G) -> (out, G)
/// -> (out)`. Returns the keepdim result, or None when the shape does not call for it.
fn split_reduce(x: &Tensor, op: ReduceOp, axes: &[usize]) -> Option<Tensor> {
    let shape = x.shape();
    let trailing = !axes.is_empty()
        && axes
            .iter()
            .enumerate()
            .all(|(i, &a)| a == shape.len() - axes.len() + i);
    let outputs: usize = shape[..shape.len() - axes.len()].iter().product();
    let reduced: usize = axes.iter().map(|&a| shape[a]).product();
    if !trailing
        || outputs > 16
        || reduced < SPLIT_REDUCE_MIN
        || !reduced.is_multiple_of(SPLIT_REDUCE_GROUPS)
    {
        return None;
    }
    let lead = &shape[..shape.len() - axes.len()];
    let split = [
        lead.to_vec(),
        vec![SPLIT_REDUCE_GROUPS, reduced / SPLIT_REDUCE_GROUPS],
    ]
    .concat();
    let n = split.len();
    let split = Tensor::apply([x], |[x]| Node::reshape(x, &split));
    let partial = Tensor::apply([&split], |[x]| Node::reduce(op, x, &[n - 1]));
    let total = Tensor::apply([&partial], |[x]| Node::reduce(op, x, &[n - 2]));
    let kept = [lead.to_vec(), vec![1; axes.len()]].concat();
    Some(Tensor::apply([&total], |[x]| Node::reshape(x, &kept)))
}

impl Tensor {
    fn reduce(&self, op: ReduceOp, axes: Option<Vec<i64>>, keepdim: bool, name: &str) -> Tensor {
        let shape = self.shape();
        let axes = resolve_axes(name, axes, &shape);
        let r = split_reduce(self, op, &axes)
            .unwrap_or_else(|| Tensor::apply([self], |[x]| Node::reduce(op, x, &axes)));
        if keepdim {
            r
        } else {
            let s: Vec<usize> = shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            r.reshape(s)
        }
    }

    fn sum_dtype(&self) -> Tensor {
        match self.dtype() {
            DType::Bool | DType::I8 | DType::U8 => self.cast(DType::I32),
            _ => self.clone(),
        }
    }

    /// Sum over `axes` (bool and 8-bit integers sum as i32).
    pub fn sum(&self, axes: impl IntoAxes) -> Tensor {
        self.sum_dtype()
            .reduce(ReduceOp::Sum, axes.raw_axes(), false, "sum")
    }
    /// Sum keeping reduced axes as size 1.
    pub fn sum_keepdim(&self, axes: impl IntoAxes) -> Tensor {
        self.sum_dtype()
            .reduce(ReduceOp::Sum, axes.raw_axes(), true, "sum")
    }
    /// Product over `axes`.
    pub fn prod(&self, axes: impl IntoAxes) -> Tensor {
        self.sum_dtype()
            .reduce(ReduceOp::Prod, axes.raw_axes(), false, "prod")
    }
    /// Product keeping reduced axes.
    pub fn prod_keepdim(&self, axes: impl IntoAxes) -> Tensor {
        self.sum_dtype()
            .reduce(ReduceOp::Prod, axes.raw_axes(), true, "prod")
    }
    /// Maximum over `axes` (NaN propagates).
    pub fn max(&self, axes: impl IntoAxes) -> Tensor {
        self.reduce(ReduceOp::Max, axes.raw_axes(), false, "max")
    }
    /// Maximum keeping reduced axes.
    pub fn max_keepdim(&self, axes: impl IntoAxes) -> Tensor {
        self.reduce(ReduceOp::Max, axes.raw_axes(), true, "max")
    }
    fn min_impl(&self, axes: Option<Vec<i64>>, keepdim: bool) -> Tensor {
        if self.dtype().is_float() {
            self.neg().reduce(ReduceOp::Max, axes, keepdim, "min").neg()
        } else if self.dtype() == DType::Bool {
            self.logical_not()
                .reduce(ReduceOp::Max, axes, keepdim, "min")
                .logical_not()
        } else {
            // Bitwise not reverses the order of every integer type.
            self.bitxor(-1i64)
                .reduce(ReduceOp::Max, axes, keepdim, "min")
                .bitxor(-1i64)
        }
    }
    /// Minimum over `axes` (NaN propagates).
    pub fn min(&self, axes: impl IntoAxes) -> Tensor {
        self.min_impl(axes.raw_axes(), false)
    }
    /// Minimum keeping reduced axes.
    pub fn min_keepdim(&self, axes: impl IntoAxes) -> Tensor {
        self.min_impl(axes.raw_axes(), true)
    }
    fn count(&self, axes: &Option<Vec<i64>>) -> usize {
        let shape = self.shape();
        resolve_axes("mean", axes.clone(), &shape)
            .iter()
            .map(|&a| shape[a])
            .product()
    }
    fn float_like(&self) -> Tensor {
        if self.dtype().is_float() {
            self.clone()
        } else {
            self.cast(DEFAULT_FLOAT)
        }
    }
    /// Mean over `axes`.
    pub fn mean(&self, axes: impl IntoAxes) -> Tensor {
        let a = axes.raw_axes();
        let n = self.count(&a) as f64;
        self.float_like()
            .reduce(ReduceOp::Sum, a, false, "mean")
            .div(n)
    }
    /// Mean keeping reduced axes.
    pub fn mean_keepdim(&self, axes: impl IntoAxes) -> Tensor {
        let a = axes.raw_axes();
        let n = self.count(&a) as f64;
        self.float_like()
            .reduce(ReduceOp::Sum, a, true, "mean")
            .div(n)
    }
    fn var_impl(&self, axes: Option<Vec<i64>>, correction: usize, keepdim: bool) -> Tensor {
        let n = self.count(&axes);
        let x = self.float_like();
        let mean = x
            .reduce(ReduceOp::Sum, axes.clone(), true, "var")
            .div(n as f64);
        let dev = x
            .sub(&mean)
            .square()
            .reduce(ReduceOp::Sum, axes, keepdim, "var");
        dev.div(n.saturating_sub(correction) as f64)
    }
    /// Variance with `correction` (1 = unbiased, like torch's default).
    pub fn var(&self, axes: impl IntoAxes, correction: usize) -> Tensor {
        self.var_impl(axes.raw_axes(), correction, false)
    }
    /// Variance keeping reduced axes.
    pub fn var_keepdim(&self, axes: impl IntoAxes, correction: usize) -> Tensor {
        self.var_impl(axes.raw_axes(), correction, true)
    }
    /// Standard deviation with `correction`.
    pub fn std(&self, axes: impl IntoAxes, correction: usize) -> Tensor {
        self.var(axes, correction).sqrt()
    }
    /// Standard deviation keeping reduced axes.
    pub fn std_keepdim(&self, axes: impl IntoAxes, correction: usize) -> Tensor {
        self.var_keepdim(axes, correction).sqrt()
    }
    /// True where any element along `axes` is non-zero.
    pub fn any(&self, axes: impl IntoAxes) -> Tensor {
        self.ne(0i32)
            .cast(DType::I32)
            .reduce(ReduceOp::Max, axes.raw_axes(), false, "any")
            .ne(0i32)
    }
    /// True where all elements along `axes` are non-zero.
    pub fn all(&self, axes: impl IntoAxes) -> Tensor {
        self.eq(0i32)
            .cast(DType::I32)
            .reduce(ReduceOp::Max, axes.raw_axes(), false, "all")
            .eq(0i32)
    }
    fn arg_extreme(&self, axis: Option<i64>, keepdim: bool, largest: bool) -> Tensor {
        // Indices have no gradient: record nothing for autograd.
        let (x, ax) = match axis {
            None => (self.detach().reshape([-1]), 0usize),
            Some(a) => (self.detach(), resolve_axis("argmax", a, &self.shape())),
        };
        let shape = x.shape();
        assert!(
            shape[ax] > 0,
            "argmax: axis {ax} of shape {shape:?} is empty"
        );
        let m = if largest {
            x.max_keepdim(ax)
        } else {
            x.min_keepdim(ax)
        };
        let hit = x.eq(&m);
        let hit = if x.dtype().is_float() {
            hit.logical_or(&x.ne(&x))
        } else {
            hit
        };
        let idx = x.indices_here(&shape, ax);
        let cand = hit.where_(&idx, shape[ax] as i32);
        let r = cand.min_keepdim(ax);
        match (axis, keepdim) {
            (None, true) => r.reshape(vec![1usize; self.ndim()]),
            (None, false) => r.reshape(Vec::<usize>::new()),
            (Some(_), true) => r,
            (Some(_), false) => r.squeeze(ax),
        }
    }
    /// Index of the first maximum along `axis` (NaN counts as the maximum), as i32.
    pub fn argmax(&self, axis: impl AxisInt) -> Tensor {
        self.arg_extreme(Some(axis.as_i64()), false, true)
    }
    /// Index of the first maximum of the flattened tensor.
    pub fn argmax_all(&self) -> Tensor {
        self.arg_extreme(None, false, true)
    }
    /// Index of the first minimum along `axis` (NaN counts as the minimum), as i32.
    pub fn argmin(&self, axis: impl AxisInt) -> Tensor {
        self.arg_extreme(Some(axis.as_i64()), false, false)
    }
    /// Index of the first minimum of the flattened tensor.
    pub fn argmin_all(&self) -> Tensor {
        self.arg_extreme(None, false, false)
    }
    /// log(sum(exp(x))) over `axis`, computed stably.
    pub fn logsumexp(&self, axis: impl AxisInt) -> Tensor {
        self.logsumexp_keepdim(axis).squeeze(axis.as_i64())
    }
    /// `logsumexp` keeping the reduced axis.
    pub fn logsumexp_keepdim(&self, axis: impl AxisInt) -> Tensor {
        let x = self.float_like();
        // The shift cancels out, so its gradient is zero: detached, the backward pass skips it.
        let m = x.max_keepdim(axis.as_i64()).detach();
        let finite = m.abs().lt(f64::INFINITY);
        let shift = finite.where_(&m, 0.0);
        x.sub(&shift)
            .exp()
            .sum_keepdim(axis.as_i64())
            .log()
            .add(&shift)
    }
    /// Softmax along `axis`.
    pub fn softmax(&self, axis: impl AxisInt) -> Tensor {
        let x = self.float_like();
        // Softmax is shift-invariant: the detached max costs the backward pass nothing.
        let e = x.sub(x.max_keepdim(axis.as_i64()).detach()).exp();
        e.div(e.sum_keepdim(axis.as_i64()))
    }
    /// Log of the softmax along `axis`.
    pub fn log_softmax(&self, axis: impl AxisInt) -> Tensor {
        let x = self.float_like();
        x.sub(x.logsumexp_keepdim(axis.as_i64()))
    }
    /// Running sum along `axis`.
    pub fn cumsum(&self, axis: impl AxisInt) -> Tensor {
        let shape = self.shape();
        if shape.is_empty() {
            return self.clone();
        }
        let ax = resolve_axis("cumsum", axis.as_i64(), &shape);
        let n = shape[ax];
        let x = self.sum_dtype().transpose(ax, -1);
        let moved = x.shape();
        // out[..., i] = sum_j (j <= i) * x[..., j]
        let mut square = moved.clone();
        square.insert(square.len() - 1, n);
        let xs = x.unsqueeze(-2).broadcast_to(&square);
        let rows = x.indices_here(&[n, n], 0);
        let cols = x.indices_here(&[n, n], 1);
        let keep = cols.le(&rows);
        let zero = xs.const_like(Scalar::Int(0));
        keep.where_(&xs, &zero).sum(-1).transpose(ax, -1)
    }
}
