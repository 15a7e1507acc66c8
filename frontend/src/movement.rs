//! Movement ops: reshapes, permutations, broadcasting, padding, slicing, joining. None copies
//! data; they become index expressions inside the kernels that read them.

use crate::axes::{resolve_axis, resolve_shape, AxisInt, IntoShape};
use crate::tensor::Tensor;
use ferrograd_ir::{DType, Node, Scalar};

impl Tensor {
    /// The same elements with a new shape; one axis may be `-1` (inferred).
    pub fn reshape(&self, shape: impl IntoShape) -> Tensor {
        let s = resolve_shape("reshape", &shape.raw_shape(), &self.shape());
        Tensor::apply([self], |[n]| Node::reshape(n, &s))
    }

    /// Reorders axes: result axis i is axis `perm[i]` (negative axes allowed).
    pub fn permute(&self, perm: impl IntoShape) -> Tensor {
        let shape = self.shape();
        let raw = perm.raw_shape();
        assert_eq!(
            raw.len(),
            shape.len(),
            "permute: {raw:?} does not fit shape {shape:?}"
        );
        let p: Vec<usize> = raw
            .iter()
            .map(|&a| resolve_axis("permute", a, &shape))
            .collect();
        Tensor::apply([self], |[n]| Node::permute(n, &p))
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: impl AxisInt, b: impl AxisInt) -> Tensor {
        let shape = self.shape();
        let (a, b) = (
            resolve_axis("transpose", a.as_i64(), &shape),
            resolve_axis("transpose", b.as_i64(), &shape),
        );
        let mut p: Vec<usize> = (0..shape.len()).collect();
        p.swap(a, b);
        Tensor::apply([self], |[n]| Node::permute(n, &p))
    }

    /// The transpose of the last two axes.
    pub fn t(&self) -> Tensor {
        assert!(
            self.ndim() >= 2,
            "t: needs at least 2 axes, got shape {:?}",
            self.shape()
        );
        self.transpose(-2, -1)
    }

    /// Broadcasts to `shape`; `-1` keeps an axis.
    pub fn expand(&self, shape: impl IntoShape) -> Tensor {
        let raw = shape.raw_shape();
        let cur = self.shape();
        let off = raw.len().saturating_sub(cur.len());
        let target: Vec<usize> = raw
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d == -1 {
                    assert!(i >= off, "expand: -1 for a new axis in {raw:?}");
                    cur[i - off]
                } else {
                    d as usize
                }
            })
            .collect();
        self.broadcast_to(&target)
    }

    /// Removes size-1 axes (all of them, or the ones listed).
    pub fn squeeze(&self, axes: impl crate::axes::IntoAxes) -> Tensor {
        let shape = self.shape();
        let drop = match axes.raw_axes() {
            None => (0..shape.len())
                .filter(|&i| shape[i] == 1)
                .collect::<Vec<_>>(),
            Some(list) => list
                .into_iter()
                .map(|a| resolve_axis("squeeze", a, &shape))
                .filter(|&i| shape[i] == 1)
                .collect(),
        };
        let s: Vec<usize> = shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, &d)| d)
            .collect();
        Tensor::apply([self], |[n]| Node::reshape(n, &s))
    }

    /// Inserts a size-1 axis at `axis` (negative counts from the end of the result).
    pub fn unsqueeze(&self, axis: impl AxisInt) -> Tensor {
        let mut shape = self.shape();
        let n = shape.len() as i64 + 1;
        let a = axis.as_i64();
        let a = if a < 0 { a + n } else { a };
        assert!(
            (0..n).contains(&a),
            "unsqueeze: axis {} out of range for shape {shape:?}",
            axis.as_i64()
        );
        shape.insert(a as usize, 1);
        Tensor::apply([self], |[n]| Node::reshape(n, &shape))
    }

    /// Merges axes `start..=end` into one.
    pub fn flatten(&self, start: impl AxisInt, end: impl AxisInt) -> Tensor {
        let shape = self.shape();
        if shape.is_empty() {
            return self.reshape([1]);
        }
        let (s, e) = (
            resolve_axis("flatten", start.as_i64(), &shape),
            resolve_axis("flatten", end.as_i64(), &shape),
        );
        assert!(
            s <= e,
            "flatten: start axis {s} after end axis {e} (shape {shape:?})"
        );
        let mut out: Vec<usize> = shape[..s].to_vec();
        out.push(shape[s..=e].iter().product());
        out.extend_from_slice(&shape[e + 1..]);
        Tensor::apply([self], |[n]| Node::reshape(n, &out))
    }

    /// Forces the value into its own contiguous buffer when realized.
    pub fn contiguous(&self) -> Tensor {
        Tensor::apply([self], |[n]| Node::contiguous(n))
    }

    /// Pads every axis with `(before, after)` elements equal to `value`.
    pub fn pad(&self, padding: &[(usize, usize)], value: f64) -> Tensor {
        let shape = self.shape();
        assert_eq!(
            padding.len(),
            shape.len(),
            "pad: {padding:?} does not fit shape {shape:?}"
        );
        let padded = Tensor::apply([self], |[n]| Node::pad(n, padding));
        if value == 0.0 {
            return padded;
        }
        let inside = Tensor::from_node(Node::constant(
            Scalar::Bool(true),
            DType::Bool,
            &shape,
            &self.device(),
        ));
        let inside = Tensor::from_node(Node::pad(&inside.node(), padding));
        inside.where_(&padded, padded.const_like(Scalar::Float(value)))
    }

    /// Keeps `[start, end)` of every axis.
    pub fn shrink(&self, bounds: &[(usize, usize)]) -> Tensor {
        Tensor::apply([self], |[n]| Node::shrink(n, bounds))
    }

    /// Reverses the listed axes.
    pub fn flip(&self, axes: impl crate::axes::IntoAxes) -> Tensor {
        let shape = self.shape();
        let axes = crate::axes::resolve_axes("flip", axes.raw_axes(), &shape);
        Tensor::apply([self], |[n]| Node::flip(n, &axes))
    }

    /// Python-style slice `[start:end:step]` of one axis (negative indices count from the end,
    /// `None` bounds mean the natural end for the step's direction).
    pub fn slice(
        &self,
        axis: impl AxisInt,
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    ) -> Tensor {
        let shape = self.shape();
        let ax = resolve_axis("slice", axis.as_i64(), &shape);
        assert!(
            step != 0,
            "slice: step is zero (axis {ax} of shape {shape:?})"
        );
        let n = shape[ax] as i64;
        let clamp = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
        let norm = |v: i64| if v < 0 { v + n } else { v };
        let (begin, stop) = if step > 0 {
            (
                clamp(start.map_or(0, norm), 0, n),
                clamp(end.map_or(n, norm), 0, n),
            )
        } else {
            (
                clamp(start.map_or(n - 1, norm), -1, n - 1),
                clamp(end.map_or(-1, |e| if e < 0 { e + n } else { e }), -1, n - 1),
            )
        };
        let count = if step > 0 {
            (stop - begin).max(0).div_euclid(1).max(0)
        } else {
            (begin - stop).max(0)
        };
        let stride = step.unsigned_abs() as usize;
        let len = (count as usize).div_ceil(stride);
        // Select the covered run in forward order, then take every `stride`-th element.
        let (lo, flip) = if step > 0 {
            (begin as usize, false)
        } else {
            ((begin - (count - 1)) as usize, true)
        };
        let mut bounds: Vec<(usize, usize)> = shape.iter().map(|&d| (0, d)).collect();
        bounds[ax] = (lo, lo + count as usize);
        let mut x = self.shrink(&bounds);
        if flip {
            x = x.flip(ax);
        }
        if stride == 1 || len == 0 {
            return x;
        }
        let run = count as usize;
        let mut padding = vec![(0, 0); shape.len()];
        padding[ax] = (0, len * stride - run);
        let x = x.pad(&padding, 0.0);
        let mut split = shape.clone();
        split[ax] = len;
        split.insert(ax + 1, stride);
        let x = Tensor::apply([&x], |[n]| Node::reshape(n, &split));
        let mut keep: Vec<(usize, usize)> = split.iter().map(|&d| (0, d)).collect();
        keep[ax + 1] = (0, 1);
        let x = x.shrink(&keep);
        split.remove(ax + 1);
        Tensor::apply([&x], |[n]| Node::reshape(n, &split))
    }

    /// Elements `index` of `axis`, dropping the axis.
    pub fn select(&self, axis: impl AxisInt, index: i64) -> Tensor {
        let shape = self.shape();
        let ax = resolve_axis("select", axis.as_i64(), &shape);
        let n = shape[ax] as i64;
        let i = if index < 0 { index + n } else { index };
        assert!(
            (0..n).contains(&i),
            "select: index {index} out of range for axis {ax} of shape {shape:?}"
        );
        self.slice(ax, Some(i), Some(i + 1), 1).squeeze(ax)
    }

    /// Joins tensors along an existing axis.
    pub fn cat(tensors: &[Tensor], axis: impl AxisInt) -> Tensor {
        assert!(!tensors.is_empty(), "cat: no tensors");
        let first = tensors[0].shape();
        let ax = resolve_axis("cat", axis.as_i64(), &first);
        let dtype = tensors
            .iter()
            .map(|t| t.dtype())
            .reduce(|a, b| a.promote(b))
            .expect("non-empty");
        for t in tensors {
            let s = t.shape();
            let same = s.len() == first.len()
                && s.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, (a, b))| i == ax || a == b);
            assert!(
                same,
                "cat: shape {s:?} does not match {first:?} outside axis {ax}"
            );
        }
        let total: usize = tensors.iter().map(|t| t.shape()[ax]).sum();
        let mut offset = 0;
        let mut acc: Option<Tensor> = None;
        for t in tensors {
            let n = t.shape()[ax];
            let mut padding = vec![(0, 0); first.len()];
            padding[ax] = (offset, total - offset - n);
            offset += n;
            let p = t.cast(dtype).pad(&padding, 0.0);
            acc = Some(match acc {
                None => p,
                Some(a) if dtype == DType::Bool => a.bitor(&p),
                Some(a) => a.add(&p),
            });
        }
        acc.expect("non-empty")
    }

    /// Joins tensors along a new axis.
    pub fn stack(tensors: &[Tensor], axis: impl AxisInt) -> Tensor {
        assert!(!tensors.is_empty(), "stack: no tensors");
        let a = axis.as_i64();
        let list: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(a)).collect();
        Tensor::cat(&list, a)
    }

    /// Splits `axis` into pieces of the given sizes.
    pub fn split(&self, sizes: &[usize], axis: impl AxisInt) -> Vec<Tensor> {
        let shape = self.shape();
        let ax = resolve_axis("split", axis.as_i64(), &shape);
        assert_eq!(
            sizes.iter().sum::<usize>(),
            shape[ax],
            "split: sizes {sizes:?} do not add up to axis {ax} of {shape:?}"
        );
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let mut b: Vec<(usize, usize)> = shape.iter().map(|&d| (0, d)).collect();
                b[ax] = (start, start + n);
                start += n;
                self.shrink(&b)
            })
            .collect()
    }

    /// Splits `axis` into `chunks` pieces of equal size (the last may be smaller).
    pub fn chunk(&self, chunks: usize, axis: impl AxisInt) -> Vec<Tensor> {
        let shape = self.shape();
        let ax = resolve_axis("chunk", axis.as_i64(), &shape);
        assert!(chunks > 0, "chunk: zero chunks for shape {shape:?}");
        let size = shape[ax].div_ceil(chunks).max(1);
        let mut sizes = Vec::new();
        let mut left = shape[ax];
        while left > 0 {
            sizes.push(size.min(left));
            left -= size.min(left);
        }
        self.split(&sizes, ax)
    }

    /// Tiles the tensor `reps[i]` times along axis i (like torch's `repeat`).
    pub fn repeat(&self, reps: &[usize]) -> Tensor {
        let mut shape = self.shape();
        assert!(
            reps.len() >= shape.len(),
            "repeat: {reps:?} has fewer entries than shape {shape:?} has axes"
        );
        while shape.len() < reps.len() {
            shape.insert(0, 1);
        }
        let base = self.reshape(shape.clone());
        let interleaved: Vec<usize> = shape.iter().flat_map(|&d| [1, d]).collect();
        let expanded: Vec<usize> = shape.iter().zip(reps).flat_map(|(&d, &r)| [r, d]).collect();
        let final_shape: Vec<usize> = shape.iter().zip(reps).map(|(&d, &r)| d * r).collect();
        base.reshape(interleaved)
            .broadcast_to(&expanded)
            .reshape(final_shape)
    }
}
