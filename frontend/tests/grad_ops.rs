//! The gradient of every differentiable frontend op against central finite differences in f64
//! (`ferrograd::testing::check_gradients`: analytic gradients realized on the device, finite
//! differences of the reference evaluator). Shapes are random with sizes 1 to 5 (size 1 and odd
//! sizes included), binary ops broadcast, reductions run over one, several and all axes with and
//! without kept axes. Inputs stay away from points where an op is not differentiable (the kinks
//! of abs/relu/clamp, ties of max/min).

mod common;

use common::*;
use ferrograd::testing::check_gradients;
use ferrograd::{All, Conv2dOptions, DType, Tensor};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

fn check(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, what: &str) {
    check_gradients(inputs, f, RTOL, ATOL, what);
}

fn check1(x: &Tensor, f: impl Fn(&Tensor) -> Tensor, what: &str) {
    check_gradients(std::slice::from_ref(x), |t| f(&t[0]), RTOL, ATOL, what);
}

// ---- elementwise --------------------------------------------------------------------------------

type Unary = fn(&Tensor) -> Tensor;

/// (name, op, lowest input, highest input, smallest magnitude)
const UNARY: &[(&str, Unary, f64, f64, f64)] = &[
    ("neg", |x| x.neg(), -2.0, 2.0, 0.0),
    ("abs", |x| x.abs(), -2.0, 2.0, 0.05),
    ("exp", |x| x.exp(), -2.0, 2.0, 0.0),
    ("exp2", |x| x.exp2(), -2.0, 2.0, 0.0),
    ("log", |x| x.log(), 0.2, 3.0, 0.0),
    ("log2", |x| x.log2(), 0.2, 3.0, 0.0),
    ("sqrt", |x| x.sqrt(), 0.2, 3.0, 0.0),
    ("rsqrt", |x| x.rsqrt(), 0.2, 3.0, 0.0),
    ("sin", |x| x.sin(), -3.0, 3.0, 0.0),
    ("cos", |x| x.cos(), -3.0, 3.0, 0.0),
    ("tan", |x| x.tan(), -1.2, 1.2, 0.0),
    ("reciprocal", |x| x.reciprocal(), -3.0, 3.0, 0.3),
    ("square", |x| x.square(), -2.0, 2.0, 0.0),
    ("sigmoid", |x| x.sigmoid(), -4.0, 4.0, 0.0),
    ("tanh", |x| x.tanh(), -2.0, 2.0, 0.0),
    ("relu", |x| x.relu(), -2.0, 2.0, 0.05),
    ("leaky_relu", |x| x.leaky_relu(0.1), -2.0, 2.0, 0.05),
    ("elu", |x| x.elu(0.7), -2.0, 2.0, 0.05),
    ("silu", |x| x.silu(), -3.0, 3.0, 0.0),
    ("softplus", |x| x.softplus(), -3.0, 3.0, 0.0),
    ("clamp", |x| x.clamp(-0.5, 0.7), -2.0, 2.0, 0.0),
    ("powf(3)", |x| x.powf(3.0), -2.0, 2.0, 0.0),
    ("powf(-2)", |x| x.powf(-2.0), -2.0, 2.0, 0.3),
    ("pow(2.5)", |x| x.pow(2.5), 0.2, 3.0, 0.0),
    ("pow(3) of negative bases", |x| x.pow(3.0), -2.0, -0.2, 0.0),
    (
        "scalar operands",
        |x| (2.0 - x * 1.5) / 3.0 + 0.5,
        -2.0,
        2.0,
        0.0,
    ),
    ("scalar divided by x", |x| 2.0 / x, -2.0, 2.0, 0.3),
    // Piecewise constant: zero gradient away from the jumps.
    ("floor", |x| x.floor(), -2.0, 2.0, 0.05),
    ("round", |x| x.round() * x, -2.0, 2.0, 0.05),
];

/// erf and GELU are differentiated as the functions they compute (`erf' = 2/sqrt(pi) e^(-x^2)`),
/// not through the polynomial that approximates erf, whose own derivative is off by up to 1e-3
/// (so finite differences of the forward pass are not the reference here): their gradients are
/// checked against the closed forms in f64 on random shapes (0-d, size 1, odd sizes).
#[test]
fn erf_and_gelu_have_the_true_derivatives() {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};
    /// The forward approximation (Abramowitz & Stegun 7.1.26), as `Tensor::erf` computes it.
    fn erf(x: f64) -> f64 {
        let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
        let poly = [
            1.061_405_429,
            -1.453_152_027,
            1.421_413_741,
            -0.284_496_736,
            0.254_829_592,
        ]
        .iter()
        .fold(0.0, |p, &c| (p + c) * t);
        (1.0 - poly * (-x * x).exp()).copysign(x)
    }
    let d_erf = |x: f64| FRAC_2_SQRT_PI * (-x * x).exp();
    let d_gelu = |x: f64| {
        0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * (-x * x / 2.0).exp() / (2.0 * PI).sqrt()
    };
    type Derivative<'a> = &'a dyn Fn(f64) -> f64;
    let ops: [(&str, Unary, Derivative); 2] = [
        ("erf", |x| x.erf(), &d_erf),
        ("gelu", |x| x.gelu(), &d_gelu),
    ];
    let mut rng = Rng::new(11);
    for _ in 0..4 {
        let shape = rng.shape(0, 3);
        let values = f64s(&rng.tensor(&shape, -3.0, 3.0, 0.0));
        for (name, f, derivative) in ops {
            let x = Tensor::from_slice(&values, &shape).requires_grad(true);
            f(&x).sum(All).backward();
            let expected: Vec<f64> = values.iter().map(|&v| derivative(v)).collect();
            let actual = f64s(&x.grad().expect("a gradient"));
            assert_close_f64(
                &actual,
                &expected,
                1e-10,
                1e-13,
                &format!("{name} {shape:?}"),
            );
        }
    }
}

/// GELU's backward is one small elementwise graph (it was ten kernels over the activation
/// when autograd differentiated erf's polynomial).
#[test]
fn gelu_backward_is_small() {
    let x = Tensor::randn(&[8, 33]).requires_grad(true);
    x.realize().unwrap();
    x.gelu().sum(All).backward();
    let grad = x.grad().expect("a gradient");
    let before = ferrograd::runtime::stats().kernels;
    grad.realize().unwrap();
    let kernels = ferrograd::runtime::stats().kernels - before;
    assert!(kernels <= 2, "gelu backward launched {kernels} kernels");
}

#[test]
fn unary_ops() {
    let mut rng = Rng::new(1);
    for &(name, f, lo, hi, min_abs) in UNARY {
        for _ in 0..2 {
            let shape = rng.shape(0, 3);
            let x = rng.tensor(&shape, lo, hi, min_abs);
            check1(&x, f, &format!("{name} {shape:?}"));
        }
    }
}

type Binary = fn(&Tensor, &Tensor) -> Tensor;

/// Input values: (lowest, highest, smallest magnitude).
type Range = (f64, f64, f64);

/// Any moderate value.
const ANY: Range = (-2.0, 2.0, 0.0);

/// (name, op, values of a, values of b)
const BINARY: &[(&str, Binary, Range, Range)] = &[
    ("add", |a, b| a + b, ANY, ANY),
    ("sub", |a, b| a - b, ANY, ANY),
    ("mul", |a, b| a * b, ANY, ANY),
    ("div", |a, b| a / b, ANY, (-2.0, 2.0, 0.3)),
    ("pow", |a, b| a.pow(b), (0.3, 2.5, 0.0), ANY),
    ("maximum", |a, b| a.maximum(b), ANY, ANY),
    ("minimum", |a, b| a.minimum(b), ANY, ANY),
    ("where", |a, b| a.lt(b).where_(a * 2.0, b.exp()), ANY, ANY),
    ("a * a + b (shared operand)", |a, b| a * a + b, ANY, ANY),
];

#[test]
fn binary_ops_with_broadcasting() {
    let mut rng = Rng::new(2);
    for &(name, f, (alo, ahi, amin), (blo, bhi, bmin)) in BINARY {
        for _ in 0..4 {
            let (sa, sb) = rng.pick(PAIRS);
            let (sa, sb) = if rng.unit() < 0.5 { (sa, sb) } else { (sb, sa) };
            let a = rng.tensor(sa, alo, ahi, amin);
            let b = rng.tensor(sb, blo, bhi, bmin);
            check(
                &[a, b],
                |t| f(&t[0], &t[1]),
                &format!("{name} {sa:?} {sb:?}"),
            );
        }
    }
}

#[test]
fn scalar_maximum_and_minimum() {
    let mut rng = Rng::new(3);
    let x = rng.tensor(&[4, 5], -2.0, 2.0, 0.0);
    check1(&x, |x| x.maximum(0.3), "maximum(0.3)");
    check1(&x, |x| x.minimum(0.3), "minimum(0.3)");
}

// ---- reductions ---------------------------------------------------------------------------------

/// A random shape of rank 1 to 3 (sizes from `lo` to 5), one of its axes (negative half the
/// time) and a non-empty subset of its axes.
fn reduce_case(rng: &mut Rng, lo: usize) -> (Vec<usize>, i64, Vec<i64>) {
    let rank = 1 + rng.below(3);
    let shape: Vec<usize> = (0..rank).map(|_| lo + rng.below(6 - lo)).collect();
    let axis = rng.below(rank) as i64 - if rng.unit() < 0.5 { rank as i64 } else { 0 };
    let mut several: Vec<i64> = (0..rank as i64).filter(|_| rng.unit() < 0.6).collect();
    if several.is_empty() {
        several.push(rank as i64 - 1);
    }
    (shape, axis, several)
}

type Reduce = fn(&Tensor, i64, &[i64]) -> Tensor;

/// (name, op on (x, one axis, several axes), smallest size of a reduced axis, values away from 0)
const REDUCTIONS: &[(&str, Reduce, usize, f64)] = &[
    ("sum(axis)", |x, a, _| x.sum(a), 1, 0.0),
    ("sum_keepdim(axes)", |x, _, s| x.sum_keepdim(s), 1, 0.0),
    ("sum(All)", |x, _, _| x.sum(All), 1, 0.0),
    ("mean(axes)", |x, _, s| x.mean(s), 1, 0.0),
    ("mean_keepdim(axis)", |x, a, _| x.mean_keepdim(a), 1, 0.0),
    ("mean(All)", |x, _, _| x.mean(All), 1, 0.0),
    ("max(axis)", |x, a, _| x.max(a), 1, 0.0),
    ("max_keepdim(axes)", |x, _, s| x.max_keepdim(s), 1, 0.0),
    ("max(All)", |x, _, _| x.max(All), 1, 0.0),
    ("min(axes)", |x, _, s| x.min(s), 1, 0.0),
    ("min_keepdim(axis)", |x, a, _| x.min_keepdim(a), 1, 0.0),
    ("min(All)", |x, _, _| x.min(All), 1, 0.0),
    ("prod(axis)", |x, a, _| x.prod(a), 1, 0.5),
    ("prod_keepdim(axes)", |x, _, s| x.prod_keepdim(s), 1, 0.5),
    ("prod(All)", |x, _, _| x.prod(All), 1, 0.5),
    ("var(axis, 1)", |x, a, _| x.var(a, 1), 2, 0.0),
    (
        "var_keepdim(axes, 0)",
        |x, _, s| x.var_keepdim(s, 0),
        2,
        0.0,
    ),
    ("var(All, 1)", |x, _, _| x.var(All, 1), 2, 0.0),
    ("std(axes, 1)", |x, _, s| x.std(s, 1), 2, 0.0),
    (
        "std_keepdim(axis, 0)",
        |x, a, _| x.std_keepdim(a, 0),
        2,
        0.0,
    ),
    ("softmax", |x, a, _| x.softmax(a), 1, 0.0),
    ("log_softmax", |x, a, _| x.log_softmax(a), 1, 0.0),
    ("logsumexp", |x, a, _| x.logsumexp(a), 1, 0.0),
    (
        "logsumexp_keepdim",
        |x, a, _| x.logsumexp_keepdim(a),
        1,
        0.0,
    ),
    ("cumsum", |x, a, _| x.cumsum(a), 1, 0.0),
];

#[test]
fn reductions_over_one_several_and_all_axes() {
    let mut rng = Rng::new(4);
    for &(name, f, min_size, min_abs) in REDUCTIONS {
        for _ in 0..3 {
            let (shape, axis, several) = reduce_case(&mut rng, min_size);
            // Products stay moderate with magnitudes in [0.5, 1.5).
            let hi = if min_abs > 0.0 { 1.5 } else { 2.0 };
            let x = rng.tensor(&shape, -hi, hi, min_abs);
            check1(
                &x,
                |x| f(x, axis, &several),
                &format!("{name} of {shape:?}, axis {axis}, axes {several:?}"),
            );
        }
    }
}

#[test]
fn products_with_zeros() {
    let x = Tensor::from_slice(
        &[
            0.0f64, 2.0, 3.0, 0.5, 0.0, 0.0, 1.5, -2.0, 4.0, 0.0, 1.0, 1.0,
        ],
        &[3, 4],
    );
    check1(&x, |x| x.prod(1), "prod with zeros along rows");
    check1(&x, |x| x.prod(0), "prod with zeros along columns");
    check1(&x, |x| x.prod(All), "prod(All) with zeros");
}

// ---- movement -----------------------------------------------------------------------------------

type Movement = fn(&Tensor) -> Tensor;

/// Ops on a (3, 4, 5) input.
const MOVEMENT: &[(&str, Movement)] = &[
    ("reshape", |x| x.reshape([6, -1])),
    ("reshape to 1-D", |x| x.reshape([-1])),
    ("permute", |x| x.permute([2, 0, 1])),
    ("transpose", |x| x.transpose(0, -1)),
    ("t", |x| x.t()),
    ("expand", |x| {
        x.slice(1, Some(1), Some(2), 1).expand([2, 3, 4, 5])
    }),
    ("squeeze", |x| x.slice(1, Some(2), Some(3), 1).squeeze(All)),
    ("squeeze(axis)", |x| {
        x.slice(0, Some(0), Some(1), 1).squeeze(0)
    }),
    ("unsqueeze", |x| x.unsqueeze(1).unsqueeze(-1)),
    ("flatten", |x| x.flatten(1, 2)),
    ("flatten all", |x| x.flatten(0, -1)),
    ("pad with zeros", |x| x.pad(&[(1, 0), (0, 2), (2, 1)], 0.0)),
    ("pad with a value", |x| {
        x.pad(&[(0, 1), (1, 1), (0, 0)], 1.5)
    }),
    ("shrink", |x| x.shrink(&[(1, 3), (0, 4), (2, 3)])),
    ("slice with step 2", |x| x.slice(2, Some(1), None, 2)),
    ("slice with step -2", |x| x.slice(-1, None, None, -2)),
    ("slice with step -1 and bounds", |x| {
        x.slice(1, Some(-1), Some(0), -1)
    }),
    ("slice with step 3 on two axes", |x| {
        x.slice(0, None, None, 3).slice(2, Some(0), Some(4), 3)
    }),
    ("select", |x| x.select(1, -2)),
    ("flip", |x| x.flip(All)),
    ("flip(axis)", |x| x.flip(1)),
    ("contiguous", |x| x.permute([1, 2, 0]).contiguous()),
    ("repeat", |x| x.repeat(&[2, 1, 1, 3])),
    ("cat", |x| {
        let (a, b) = (x.sin(), x.slice(1, Some(1), Some(3), 1));
        Tensor::cat(&[a, b, x.clone()], 1)
    }),
    ("stack", |x| {
        Tensor::stack(&[x.clone(), x.exp(), x * 2.0], -1)
    }),
    ("split", |x| {
        let parts = x.split(&[1, 3, 1], 2);
        Tensor::cat(&[parts[2].exp(), parts[0].clone(), parts[1].square()], 2)
    }),
    ("chunk", |x| {
        let parts = x.chunk(2, 1);
        &parts[0] * &parts[1].sin()
    }),
];

#[test]
fn movement_ops() {
    let mut rng = Rng::new(5);
    for &(name, f) in MOVEMENT {
        let x = rng.tensor(&[3, 4, 5], -2.0, 2.0, 0.0);
        check1(&x, f, name);
    }
}

#[test]
fn expand_to_random_shapes() {
    let mut rng = Rng::new(6);
    for _ in 0..4 {
        let target = rng.shape(1, 4);
        let lead = rng.below(target.len());
        let small: Vec<usize> = target[lead..]
            .iter()
            .map(|&d| if rng.unit() < 0.5 { 1 } else { d })
            .collect();
        let x = rng.tensor(&small, -2.0, 2.0, 0.0);
        check1(
            &x,
            |x| x.expand(target.clone()),
            &format!("expand {small:?} to {target:?}"),
        );
    }
}

// ---- linear algebra and nn ----------------------------------------------------------------------

#[test]
fn matmul_batched_and_broadcast() {
    let mut rng = Rng::new(7);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[1, 5], &[5, 1]),
        (&[2, 3, 4], &[2, 4, 3]),
        (&[3, 1, 2, 5], &[2, 5, 3]),
        (&[4], &[4, 3]),
        (&[2, 3, 4], &[4]),
        (&[5], &[5]),
    ];
    for &(sa, sb) in cases {
        let a = rng.tensor(sa, -1.0, 1.0, 0.0);
        let b = rng.tensor(sb, -1.0, 1.0, 0.0);
        check(
            &[a, b],
            |t| t[0].matmul(&t[1]),
            &format!("matmul {sa:?} @ {sb:?}"),
        );
    }
    let (u, v) = (
        rng.tensor(&[7], -1.0, 1.0, 0.0),
        rng.tensor(&[7], -1.0, 1.0, 0.0),
    );
    check(&[u, v], |t| t[0].dot(&t[1]), "dot");
}

#[test]
fn matmul_of_a_transposed_view() {
    let mut rng = Rng::new(8);
    let (a, b) = (
        rng.tensor(&[4, 3], -1.0, 1.0, 0.0),
        rng.tensor(&[5, 4], -1.0, 1.0, 0.0),
    );
    check(&[a, b], |t| t[0].t().matmul(&t[1].t()), "a^T @ b^T");
}

#[test]
fn conv2d_with_stride_padding_dilation_groups_and_bias() {
    let mut rng = Rng::new(9);
    let cases = [
        ([2, 3, 5, 6], [4, 3, 3, 3], Conv2dOptions::default(), true),
        (
            [1, 2, 6, 5],
            [3, 2, 3, 2],
            Conv2dOptions::default().stride(2, 1).padding(1, 0),
            false,
        ),
        (
            [1, 2, 7, 6],
            [2, 2, 2, 3],
            Conv2dOptions::default().dilation(2, 1).padding(0, 1),
            true,
        ),
        (
            [2, 4, 5, 5],
            [6, 2, 3, 3],
            Conv2dOptions::default()
                .groups(2)
                .stride(2, 2)
                .padding(1, 1),
            true,
        ),
    ];
    for (xs, ws, opts, with_bias) in cases {
        let x = rng.tensor(&xs, -1.0, 1.0, 0.0);
        let w = rng.tensor(&ws, -1.0, 1.0, 0.0);
        let b = rng.tensor(&[ws[0]], -1.0, 1.0, 0.0);
        let what = format!("conv2d {xs:?} * {ws:?} {opts:?} bias {with_bias}");
        if with_bias {
            check(&[x, w, b], |t| t[0].conv2d(&t[1], Some(&t[2]), opts), &what);
        } else {
            check(&[x, w], |t| t[0].conv2d(&t[1], None, opts), &what);
        }
    }
}

#[test]
fn pooling() {
    let mut rng = Rng::new(10);
    let x = rng.tensor(&[2, 3, 6, 5], -2.0, 2.0, 0.0);
    check1(
        &x,
        |x| x.max_pool2d((2, 2), Conv2dOptions::default().stride(2, 2)),
        "max_pool2d 2x2 stride 2",
    );
    let overlapping = Conv2dOptions::default().stride(2, 1).padding(1, 1);
    check1(
        &x,
        |x| x.max_pool2d((3, 3), overlapping),
        "max_pool2d 3x3 overlapping, padded",
    );
    check1(
        &x,
        |x| x.avg_pool2d((2, 3), Conv2dOptions::default()),
        "avg_pool2d 2x3",
    );
    check1(
        &x,
        |x| x.avg_pool2d((3, 3), overlapping),
        "avg_pool2d 3x3 overlapping, padded",
    );
}

#[test]
fn gather_along_each_axis() {
    let mut rng = Rng::new(11);
    let x = rng.tensor(&[3, 5], -2.0, 2.0, 0.0);
    let idx1: Vec<i32> = (0..12).map(|_| rng.below(5) as i32).collect();
    let idx1 = Tensor::from_slice(&idx1, &[3, 4]);
    check1(
        &x,
        |x| x.gather(1, &idx1),
        "gather along axis 1 (repeated indices)",
    );
    let idx0: Vec<i32> = (0..10).map(|_| rng.below(3) as i32).collect();
    let idx0 = Tensor::from_slice(&idx0, &[2, 5]);
    check1(&x, |x| x.gather(0, &idx0), "gather along axis 0");
}

#[test]
fn unfold_windows() {
    let mut rng = Rng::new(12);
    let x = rng.tensor(&[2, 9], -2.0, 2.0, 0.0);
    check1(
        &x,
        |x| x.unfold(1, 3, 2, 2),
        "unfold size 3 step 2 dilation 2",
    );
}

#[test]
fn cross_entropy_of_a_small_network() {
    let mut rng = Rng::new(13);
    let x = rng.tensor(&[4, 6], -1.0, 1.0, 0.0);
    let w1 = rng.tensor(&[6, 5], -1.0, 1.0, 0.0);
    let b1 = rng.tensor(&[5], -0.5, 0.5, 0.0);
    let w2 = rng.tensor(&[5, 3], -1.0, 1.0, 0.0);
    let labels = Tensor::from_slice(&[0i32, 2, 1, 2], &[4]);
    let f = |t: &[Tensor]| {
        let h = (t[0].matmul(&t[1]) + &t[2]).tanh();
        let logits = h.matmul(&t[3]);
        let picked = logits.log_softmax(-1) * labels.one_hot(3).cast(DType::F64);
        picked.sum(-1).mean(All).neg()
    };
    check(&[x, w1, b1, w2], f, "mlp + cross entropy");
}

/// The input gradient of a convolution with overlapping windows is a transposed convolution:
/// the output gradient padded (and dilated by the stride) into a buffer of its own, then its
/// convolution, plus for a stride that leaves rows uncovered a kernel padding those rows
/// (differentiating the forward's unfold took four kernels at stride 1: the window gradients,
/// then sums of the overlapping copies back through the unfold, axis by axis).
#[test]
fn conv2d_input_gradient_is_a_transposed_convolution() {
    for (opts, what, most) in [
        (Conv2dOptions::default(), "stride 1", 2),
        (
            Conv2dOptions::default().stride(2, 2).padding(1, 1),
            "stride 2, padding 1",
            3,
        ),
        (
            Conv2dOptions::default().dilation(2, 1).groups(3),
            "dilated, grouped",
            2,
        ),
    ] {
        let x = Tensor::randn(&[2, 3, 17, 17]).requires_grad(true);
        let w = Tensor::randn(&[6, 1, 3, 3]);
        let w = if opts.groups == 3 {
            w
        } else {
            Tensor::randn(&[6, 3, 3, 3])
        };
        x.realize().unwrap();
        w.realize().unwrap();
        x.conv2d(&w, None, opts).sum(All).backward();
        let grad = x.grad().expect("a gradient");
        let before = ferrograd::runtime::stats().kernels;
        grad.realize().unwrap();
        let kernels = ferrograd::runtime::stats().kernels - before;
        assert!(kernels <= most, "{what}: {kernels} kernels");
    }
}
