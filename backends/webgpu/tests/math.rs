//! Accuracy of exp2/log2/sin in ulp against f64 libm, for scalars and 4-lane vectors (f32
//! exp2/log2 use the driver's GLSL.std.450 instructions, sin and every f64 function the
//! backend's own code); special values; Sqrt/Recip/Trunc/Neg.
mod common;
use common::*;
use ferrograd_ir::UnaryOp;

/// Error of `got` in units in the last place of the f32 nearest to `want`.
fn ulps(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let w32 = want as f32;
    if w32.is_infinite() || got.is_infinite() {
        return if got == w32 { 0.0 } else { f64::INFINITY };
    }
    let exponent = ((want.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let ulp = 2f64.powi(exponent.max(-126) - 23);
    (got as f64 - want).abs() / ulp
}

/// Every `step`-th f32 bit pattern in `[lo, hi]`, both signs if `signed`, plus `extra`.
fn sweep(lo: f32, hi: f32, step: u32, signed: bool, extra: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = extra.to_vec();
    let mut bits = lo.to_bits();
    while bits <= hi.to_bits() {
        let x = f32::from_bits(bits);
        v.push(x);
        if signed {
            v.push(-x);
        }
        bits += step;
    }
    while !v.len().is_multiple_of(4) {
        v.push(1.0);
    }
    v
}

fn check(
    name: &str,
    op: UnaryOp,
    reference: fn(f64) -> f64,
    inputs: &[f32],
    max_ulps: f64,
    abs_tol: f64,
) {
    let dev = device();
    {
        for lanes in [1u8, 4] {
            let got = eval_unary(&dev, op, inputs, lanes);
            let mut worst = (0.0f64, 0.0f32);
            for (&x, &g) in inputs.iter().zip(&got) {
                let want = reference(x as f64);
                let e = ulps(g, want);
                let abs_ok = (g as f64 - want).abs() <= abs_tol;
                assert!(
                    e <= max_ulps || abs_ok,
                    "{name}({x:e}) = {g:e}, want {want:e} ({e} ulp) [{lanes} lanes]"
                );
                if e > worst.0 {
                    worst = (e, x);
                }
            }
            eprintln!(
                "{name} {lanes} lanes: {} values, max error {:.3} ulp at {:e}",
                inputs.len(),
                worst.0,
                worst.1
            );
        }
    }
}

const SPECIALS: [f32; 12] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    0.0,
    -0.0,
    1.0,
    -1.0,
    f32::MIN_POSITIVE,
    1.0e-45,
    f32::MAX,
    f32::MIN,
    0.5,
];

#[test]
fn exp2_is_within_three_ulp() {
    let extra: Vec<f32> = SPECIALS
        .iter()
        .copied()
        .chain([
            128.0, 127.99999, -126.0, -126.5, -149.0, -149.5, -150.0, -150.5, -160.0, 129.5,
            1.0e-8, -1.0e-8,
        ])
        .collect();
    let inputs = sweep(1.0e-30, 152.0, 1009, true, &extra);
    check("exp2", UnaryOp::Exp2, f64::exp2, &inputs, 3.0, 0.0);
    let dev = device();
    let got = eval_unary(
        &dev,
        UnaryOp::Exp2,
        &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 128.0],
        4,
    );
    assert!(got[0].is_nan());
    assert_eq!(&got[1..], &[f32::INFINITY, 0.0, f32::INFINITY]);
    let got = eval_unary(&dev, UnaryOp::Exp2, &[-149.0f32, -150.0, -149.5, 0.0], 4);
    assert_eq!(got, vec![1.0e-45, 0.0, 1.0e-45, 1.0]);
}

#[test]
fn log2_is_within_three_ulp() {
    let extra: Vec<f32> = SPECIALS
        .iter()
        .copied()
        .chain([2.0, 0.999_999_9, 1.000_000_1, 3.0e-39, 1.0e-40])
        .collect();
    let inputs = sweep(1.0e-45, f32::MAX, 4099, true, &extra);
    check("log2", UnaryOp::Log2, f64::log2, &inputs, 3.0, 0.0);
    let dev = device();
    let got = eval_unary(
        &dev,
        UnaryOp::Log2,
        &[
            0.0,
            -0.0,
            -1.0,
            f32::INFINITY,
            f32::NAN,
            1.0,
            1.0e-45,
            f32::NEG_INFINITY,
        ],
        4,
    );
    assert_eq!(&got[..2], &[f32::NEG_INFINITY, f32::NEG_INFINITY]);
    assert!(got[2].is_nan() && got[4].is_nan() && got[7].is_nan());
    assert_eq!((got[3], got[5], got[6]), (f32::INFINITY, 0.0, -149.0));
}

#[test]
fn sin_is_within_three_ulp_up_to_1e5() {
    // Exact range reduction covers |x| < 2^16 pi/2 (about 102943).
    let extra: Vec<f32> = [
        f32::NAN,
        0.0,
        -0.0,
        std::f32::consts::PI,
        std::f32::consts::FRAC_PI_2,
        2.0 * std::f32::consts::PI,
        1.0e5,
        99_999.99,
        355.0,
        103_993.0 / 33_102.0,
        1.0e-40,
        std::f32::consts::FRAC_PI_4,
    ]
    .to_vec();
    let inputs = sweep(1.0e-30, 1.0e5, 1013, true, &extra);
    check("sin", UnaryOp::Sin, f64::sin, &inputs, 3.0, 1.0e-7);
    // Outside the accurate range: NaN for infinities, still bounded for huge finite values.
    let dev = device();
    let got = eval_unary(
        &dev,
        UnaryOp::Sin,
        &[f32::INFINITY, f32::NEG_INFINITY, 1.0e30, f32::MAX],
        4,
    );
    assert!(got[0].is_nan() && got[1].is_nan());
    assert!(got[2].abs() <= 1.0 && got[3].abs() <= 1.0, "{got:?}");
}

/// Error of `got` in units in the last place of `want` (f64).
fn ulps64(got: f64, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if want.is_infinite() || got.is_infinite() || want == 0.0 {
        return if got == want { 0.0 } else { f64::INFINITY };
    }
    let exponent = ((want.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023;
    (got - want).abs() / 2f64.powi(exponent.max(-1022) - 52)
}

#[test]
fn f64_transcendentals_are_within_four_ulp() {
    let dev = device();
    let mut xs: Vec<f64> = vec![
        0.0,
        -0.0,
        0.5,
        1.0,
        -3.25,
        100.0,
        1.0e-300,
        1.0e300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0e6,
        -7.0e-3,
    ];
    xs.extend((0..500).map(|i| (i as f64 - 250.0) * 0.731 + 1e-3));
    xs.extend((0..200).map(|i| 1.37f64.powi(i - 100)));
    for lanes in [1u8, 2] {
        for (op, f) in [
            (UnaryOp::Exp2, f64::exp2 as fn(f64) -> f64),
            (UnaryOp::Log2, f64::log2),
            (UnaryOp::Sin, f64::sin),
        ] {
            let got = eval_unary(&dev, op, &xs, lanes);
            let mut worst = 0.0f64;
            for (x, g) in xs.iter().zip(&got) {
                let want = f(*x);
                let e = ulps64(*g, want);
                // Results that are 0 (sin(0), log2(1)) must be exact; sin near its zeros is
                // held to an absolute error instead.
                let abs_ok = op == UnaryOp::Sin && (g - want).abs() <= 1e-15 * x.abs().max(1.0);
                assert!(
                    e <= 4.0 || abs_ok,
                    "{op:?}({x}) = {g}, want {want} ({e} ulp)"
                );
                if e.is_finite() {
                    worst = worst.max(e);
                }
            }
            eprintln!("f64 {op:?} {lanes} lanes: max error {worst:.3} ulp");
        }
    }
}

#[test]
fn sqrt_recip_trunc_neg_are_exact() {
    let dev = device();
    let xs: Vec<f32> = vec![
        2.0,
        0.1,
        -0.0,
        3.0e38,
        1.0e-40,
        -5.5,
        7.999,
        f32::INFINITY,
        f32::NAN,
        16.0,
        -2.5,
        1.0e10,
    ];
    for lanes in [1u8, 4] {
        type Case = (UnaryOp, fn(f32) -> f32);
        let cases: [Case; 4] = [
            (UnaryOp::Sqrt, f32::sqrt),
            (UnaryOp::Recip, |x| 1.0 / x),
            (UnaryOp::Trunc, f32::trunc),
            (UnaryOp::Neg, |x| -x),
        ];
        for (op, f) in cases {
            let got = eval_unary(&dev, op, &xs, lanes);
            for (x, g) in xs.iter().zip(&got) {
                let want = f(*x);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "{op:?}({x}) = {g}, want {want}"
                );
            }
        }
        let xs64: Vec<f64> = xs.iter().map(|&x| x as f64 * 1.1).collect();
        let got = eval_unary(&dev, UnaryOp::Recip, &xs64, 2.min(lanes));
        for (x, g) in xs64.iter().zip(&got) {
            assert!(
                g.to_bits() == (1.0 / x).to_bits() || g.is_nan(),
                "recip({x})"
            );
        }
    }
}
