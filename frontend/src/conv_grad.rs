//! The gradients of `conv2d` with overlapping windows. With respect to the input it is a
//! transposed convolution: the output gradient, dilated by the stride, correlated with the
//! spatially flipped weight whose input and output channels are swapped within each group.
//! Differentiating the forward's windows instead (padding, unfolding) sums the overlapping
//! window copies back through div/mod-heavy index math: those were the slowest kernels of a
//! convnet's training step. With respect to the weight it is the forward's windows times the
//! output gradient, summed over batch and positions (what autograd builds too).

use crate::nn_ops::Conv2dOptions;
use crate::tensor::Tensor;
use ferrograd_ir::NodeRef;

/// The gradients of `conv2d(src[0], src[1], opts)` (no bias) for the `wanted` operands, given
/// the gradient `g` of its result.
pub(crate) fn conv2d_vjp(
    src: &[NodeRef],
    g: &NodeRef,
    wanted: &[bool],
    opts: Conv2dOptions,
) -> Vec<Option<NodeRef>> {
    let (x, w, g) = (
        Tensor::from_node(src[0].clone()),
        Tensor::from_node(src[1].clone()),
        Tensor::from_node(g.clone()),
    );
    let grad_x = wanted[0].then(|| input_grad(&x, &w, &g, opts).cast(x.dtype()).node());
    let grad_w = wanted[1].then(|| weight_grad(&x, &w, &g, opts).cast(w.dtype()).node());
    vec![grad_x, grad_w]
}

/// The gradient with respect to the input `x` (N, C_in, H, W).
fn input_grad(x: &Tensor, w: &Tensor, g: &Tensor, opts: Conv2dOptions) -> Tensor {
    let xs = x.shape();
    let (n, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let ws = w.shape();
    let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let groups = opts.groups;
    let ((sh, sw), (ph, pw), (dh, dw)) = (opts.stride, opts.padding, opts.dilation);
    let g = dilate(&dilate(g, 2, sh), 3, sw);
    let flipped = w
        .reshape([groups, cout / groups, cin_g, kh, kw])
        .permute([0, 2, 1, 3, 4])
        .reshape([cin, cout / groups, kh, kw])
        .flip([2, 3]);
    let full = g.conv2d(
        &flipped,
        None,
        Conv2dOptions {
            stride: (1, 1),
            padding: (dh * (kh - 1), dw * (kw - 1)),
            dilation: (dh, dw),
            groups,
        },
    );
    // `full` covers the padded input from its first row and column up to the last one a
    // window reached; rows and columns past it (when the stride does not divide the span)
    // and the padding get no gradient.
    let (fh, fw) = (full.shape()[2], full.shape()[3]);
    full.pad(
        &[(0, 0), (0, 0), (0, h + 2 * ph - fh), (0, wd + 2 * pw - fw)],
        0.0,
    )
    .shrink(&[(0, n), (0, cin), (ph, ph + h), (pw, pw + wd)])
}

/// The gradient with respect to the weight `w` (C_out, C_in / groups, kh, kw).
fn weight_grad(x: &Tensor, w: &Tensor, g: &Tensor, opts: Conv2dOptions) -> Tensor {
    let ws = w.shape();
    let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let groups = opts.groups;
    let gs = g.shape();
    let (n, oh, ow) = (gs[0], gs[2], gs[3]);
    let windows = x.conv_windows((kh, kw), cin_g, &opts);
    let g = g.reshape([n, groups, cout / groups, 1, oh, ow, 1, 1]);
    windows
        .mul(&g)
        .sum([0, 4, 5])
        .reshape([cout, cin_g, kh, kw])
}

/// `t` with `stride - 1` zeros between consecutive elements along `axis`.
fn dilate(t: &Tensor, axis: usize, stride: usize) -> Tensor {
    let shape = t.shape();
    let len = shape[axis];
    if stride == 1 || len == 0 {
        return t.clone();
    }
    let mut padding = vec![(0, 0); shape.len() + 1];
    padding[axis + 1] = (0, stride - 1);
    let mut spread = shape.clone();
    spread[axis] = len * stride;
    let mut bounds: Vec<(usize, usize)> = spread.iter().map(|&d| (0, d)).collect();
    bounds[axis] = (0, (len - 1) * stride + 1);
    t.unsqueeze(axis as i64 + 1)
        .pad(&padding, 0.0)
        .reshape(spread)
        .shrink(&bounds)
}
