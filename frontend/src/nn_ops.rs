//! Linear algebra and neural-network ops composed from primitives: matmul, convolution,
//! pooling, one-hot and gather.

use crate::axes::{broadcast_shape, resolve_axis, AxisInt};
use crate::tensor::Tensor;
use ferrograd_ir::{DType, NodeRef, Scalar};

/// Options of a 2-D convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between windows (rows, cols).
    pub stride: (usize, usize),
    /// Zero padding on each side (rows, cols).
    pub padding: (usize, usize),
    /// Spacing between window taps (rows, cols).
    pub dilation: (usize, usize),
    /// Channel groups (convolution only).
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// Sets the stride.
    pub fn stride(mut self, rows: usize, cols: usize) -> Self {
        self.stride = (rows, cols);
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, rows: usize, cols: usize) -> Self {
        self.padding = (rows, cols);
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, rows: usize, cols: usize) -> Self {
        self.dilation = (rows, cols);
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// True when windows of `kernel` taps do not overlap and leave no gap: stride equal to
    /// the kernel, no padding, no dilation.
    fn tiles(&self, kernel: (usize, usize)) -> bool {
        self.stride == kernel && self.padding == (0, 0) && self.dilation == (1, 1)
    }
}

/// Width of the column panels a large matmul packs its right operand into.
const PANEL: usize = 8;
/// Right operands with at least this many elements are packed.
const PACK_MIN_ELEMENTS: usize = 1 << 16;

impl Tensor {
    /// Matrix product with numpy semantics: 1-D operands are vectors, leading axes broadcast.
    /// Large products first copy the right operand into panels of 8 columns (one extra kernel)
    /// so the inner loop reads it sequentially.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (sa, sb) = (self.shape(), other.shape());
        assert!(
            !sa.is_empty() && !sb.is_empty(),
            "matmul: 0-d operand (shapes {sa:?} and {sb:?})"
        );
        let a = if sa.len() == 1 {
            self.unsqueeze(0)
        } else {
            self.clone()
        };
        let b = if sb.len() == 1 {
            other.unsqueeze(-1)
        } else {
            other.clone()
        };
        let (a_shape, b_shape) = (a.shape(), b.shape());
        let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
        let (k2, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
        assert_eq!(
            k, k2,
            "matmul: inner dimensions differ for shapes {sa:?} and {sb:?}"
        );
        let batch = broadcast_shape(
            "matmul",
            &a_shape[..a_shape.len() - 2],
            &b_shape[..b_shape.len() - 2],
        );
        let dtype = a.dtype().promote(b.dtype());
        let (a, b) = (a.cast(dtype), b.cast(dtype));
        let mut out = if n % PANEL == 0 && k * n >= PACK_MIN_ELEMENTS && m >= 4 * PANEL {
            // Pack the right operand into column panels so the reduction walks it sequentially.
            let bl = b.ndim();
            let mut split = b.shape();
            split.splice(bl - 1.., [n / PANEL, PANEL]);
            let mut perm: Vec<usize> = (0..bl + 1).collect();
            perm.swap(bl - 2, bl - 1); // (..., K, N/P, P) -> (..., N/P, K, P)
            let packed = b.reshape(split).permute(perm).contiguous();
            let full = [batch.clone(), vec![m, n / PANEL, PANEL, k]].concat();
            let a4 = a.unsqueeze(-2).unsqueeze(-2).broadcast_to(&full);
            // Broadcast before transposing: the backward pass then reduces straight into the
            // operand's layout (no transposed copy of the gradient).
            let b_full = [batch.clone(), vec![m, n / PANEL, k, PANEL]].concat();
            let b4 = packed.unsqueeze(-4).broadcast_to(&b_full).transpose(-1, -2);
            a4.mul(&b4)
                .sum(-1)
                .reshape([batch.clone(), vec![m, n]].concat())
        } else {
            let full = [batch.clone(), vec![m, n, k]].concat();
            let a3 = a.unsqueeze(-2).broadcast_to(&full);
            let b3 = b
                .unsqueeze(-3)
                .broadcast_to(&[batch.clone(), vec![m, k, n]].concat())
                .t();
            a3.mul(&b3).sum(-1)
        };
        if sa.len() == 1 {
            out = out.squeeze(-2);
        }
        if sb.len() == 1 {
            out = out.squeeze(-1);
        }
        out
    }

    /// Dot product of two vectors (or matmul for higher ranks).
    pub fn dot(&self, other: &Tensor) -> Tensor {
        self.matmul(other)
    }

    /// Sliding windows along `axis`: that axis becomes the number of windows and a new last axis
    /// of size `size` holds each window's taps (`step` between windows, `dilation` between
    /// taps). Pure movement ops; nothing is copied.
    pub fn unfold(&self, axis: impl AxisInt, size: usize, step: usize, dilation: usize) -> Tensor {
        let shape = self.shape();
        let ax = resolve_axis("unfold", axis.as_i64(), &shape);
        let len = shape[ax];
        let span = dilation * (size - 1) + 1;
        assert!(
            size > 0 && step > 0 && dilation > 0,
            "unfold: size, step and dilation must be positive"
        );
        assert!(
            span <= len,
            "unfold: window span {span} exceeds axis {ax} of shape {shape:?}"
        );
        let windows = (len - span) / step + 1;
        let x = self.transpose(ax, -1);
        let lead: Vec<usize> = x.shape()[..shape.len() - 1].to_vec();
        // Repeat the row so that rows of length len + dilation start `dilation` apart.
        let row = len + dilation;
        let reps = (size * row).div_ceil(len);
        let rep_shape = [lead.clone(), vec![reps, len]].concat();
        let flat = x
            .unsqueeze(-2)
            .broadcast_to(&rep_shape)
            .reshape([lead.clone(), vec![reps * len]].concat());
        let mut b: Vec<(usize, usize)> = flat.shape().iter().map(|&d| (0, d)).collect();
        *b.last_mut().expect("axis") = (0, size * row);
        let taps = flat
            .shrink(&b)
            .reshape([lead.clone(), vec![size, row]].concat());
        let taps = taps.slice(
            -1,
            Some(0),
            Some(((windows - 1) * step + 1) as i64),
            step as i64,
        );
        // (..., size, windows) -> (..., windows, size), then the window axis back in place.
        let n = taps.ndim();
        let taps = taps.transpose(n - 1, n - 2);
        let mut perm: Vec<usize> = (0..n).collect();
        perm.swap(ax, n - 2);
        taps.permute(perm)
    }

    /// The windows of a grouped convolution's input `(N, C, H, W)`, as
    /// `(N, groups, 1, C / groups, OH, OW, kh, kw)` (the axis of size 1 broadcasts over each
    /// group's output channels).
    pub(crate) fn conv_windows(
        &self,
        kernel: (usize, usize),
        cin_g: usize,
        opts: &Conv2dOptions,
    ) -> Tensor {
        let win = self.windows2d(kernel, opts, 0.0, "conv2d"); // (N, C, OH, OW, kh, kw)
        let s = win.shape();
        win.reshape([s[0], opts.groups, 1, cin_g, s[2], s[3], s[4], s[5]])
    }

    fn windows2d(
        &self,
        kernel: (usize, usize),
        opts: &Conv2dOptions,
        pad_value: f64,
        op: &str,
    ) -> Tensor {
        let s = self.shape();
        assert_eq!(s.len(), 4, "{op}: input must be (N, C, H, W), got {s:?}");
        let (ph, pw) = opts.padding;
        let (kh, kw) = kernel;
        if opts.tiles(kernel) && kh <= s[2] && kw <= s[3] {
            // Non-overlapping windows tile the image: a reshape, whose gradient is a reshape
            // too (no reduction over overlapping windows).
            let (oh, ow) = (s[2] / kh, s[3] / kw);
            return self
                .shrink(&[(0, s[0]), (0, s[1]), (0, oh * kh), (0, ow * kw)])
                .reshape([s[0], s[1], oh, kh, ow, kw])
                .permute([0, 1, 2, 4, 3, 5]);
        }
        let mut x = self.pad(&[(0, 0), (0, 0), (ph, ph), (pw, pw)], pad_value);
        let overlapping = kh > opts.stride.0 || kw > opts.stride.1;
        if (ph, pw) != (0, 0) && overlapping {
            // Overlapping windows read each element several times: padded once into its own
            // buffer, the windows are read without a bounds check per element, and a row of
            // them vectorizes (a transposed convolution's input gradient ran ~3x slower).
            x = x.contiguous();
        }
        x.unfold(2, kernel.0, opts.stride.0, opts.dilation.0)
            .unfold(3, kernel.1, opts.stride.1, opts.dilation.1)
    }

    /// 2-D convolution of `self` (N, C_in, H, W) with `weight` (C_out, C_in/groups, kh, kw)
    /// plus an optional `bias` (C_out).
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: Conv2dOptions) -> Tensor {
        let (xs, ws) = (self.shape(), weight.shape());
        assert!(
            xs.len() == 4 && ws.len() == 4,
            "conv2d: input {xs:?} and weight {ws:?} must both be 4-D"
        );
        let g = opts.groups;
        let (n, cin) = (xs[0], xs[1]);
        let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
        assert!(
            g > 0 && cin % g == 0 && cout % g == 0,
            "conv2d: groups {g} must divide C_in {cin} and C_out {cout}"
        );
        assert_eq!(
            cin / g,
            cin_g,
            "conv2d: weight {ws:?} expects {} input channels per group, input {xs:?} has {}",
            cin_g,
            cin / g
        );
        let forward = move |[x, w]: [Tensor; 2]| {
            let win = x.conv_windows((kh, kw), cin_g, &opts);
            let (oh, ow) = (win.shape()[4], win.shape()[5]);
            let w = w.reshape([1, g, cout / g, cin_g, 1, 1, kh, kw]);
            win.mul(&w).sum([3, 6, 7]).reshape([n, cout, oh, ow])
        };
        let out = if opts.tiles((kh, kw)) {
            // Windows that tile the image are a reshape: autograd's gradient is a reshape too.
            forward([self.clone(), weight.clone()])
        } else {
            Tensor::composite(
                [self, weight],
                forward,
                std::sync::Arc::new(move |src: &[NodeRef], grad: &NodeRef, wanted: &[bool]| {
                    crate::conv_grad::conv2d_vjp(src, grad, wanted, opts)
                }),
            )
        };
        match bias {
            Some(b) => {
                assert_eq!(
                    b.shape(),
                    vec![cout],
                    "conv2d: bias shape {:?} must be [{cout}]",
                    b.shape()
                );
                out.add(b.reshape([1, cout, 1, 1]))
            }
            None => out,
        }
    }

    /// 2-D max pooling over (N, C, H, W); padding is -infinity.
    pub fn max_pool2d(&self, kernel: (usize, usize), opts: Conv2dOptions) -> Tensor {
        self.windows2d(kernel, &opts, f64::NEG_INFINITY, "max_pool2d")
            .max([-2, -1])
    }

    /// 2-D average pooling over (N, C, H, W); zero padding counts in the average.
    pub fn avg_pool2d(&self, kernel: (usize, usize), opts: Conv2dOptions) -> Tensor {
        self.windows2d(kernel, &opts, 0.0, "avg_pool2d")
            .mean([-2, -1])
    }

    /// One-hot encoding of integer class indices: a new last axis of `classes` (i32 0/1).
    pub fn one_hot(&self, classes: usize) -> Tensor {
        assert!(
            !self.dtype().is_float(),
            "one_hot: needs integer indices, got {} (shape {:?})",
            self.dtype(),
            self.shape()
        );
        let shape = [self.shape(), vec![classes]].concat();
        let idx = self.indices_here(&shape, shape.len() - 1);
        self.cast(DType::I32)
            .unsqueeze(-1)
            .eq(&idx)
            .cast(DType::I32)
    }

    /// `out[i][j] = self[i][index[i][j]]` along `axis` (torch's gather): `index` has the same
    /// rank, and each of its other axes is at most as long as `self`'s.
    pub fn gather(&self, axis: impl AxisInt, index: &Tensor) -> Tensor {
        let (xs, is) = (self.shape(), index.shape());
        let ax = resolve_axis("gather", axis.as_i64(), &xs);
        assert_eq!(
            xs.len(),
            is.len(),
            "gather: index {is:?} and input {xs:?} differ in rank"
        );
        for d in 0..xs.len() {
            assert!(
                d == ax || is[d] <= xs[d],
                "gather: index {is:?} exceeds input {xs:?} on axis {d}"
            );
        }
        assert!(
            !index.dtype().is_float(),
            "gather: index must be integer, got {}",
            index.dtype()
        );
        let n = xs[ax];
        let bounds: Vec<(usize, usize)> = (0..xs.len())
            .map(|d| (0, if d == ax { n } else { is[d] }))
            .collect();
        let x = self.shrink(&bounds).unsqueeze(ax as i64); // (..., 1, n, ...)
        let mut full = is.clone();
        full.insert(ax + 1, n);
        let x = x.broadcast_to(&full);
        let hit = index
            .cast(DType::I32)
            .unsqueeze(ax as i64 + 1)
            .eq(index.indices_here(&full, ax + 1));
        hit.where_(&x, x.const_like(Scalar::Int(0)))
            .sum(ax as i64 + 1)
            .cast(self.dtype())
    }
}
