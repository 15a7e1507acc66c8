//! BinaryOps on f32/f64, scalar and vector, with NaN, infinities and signed zeros:
//! Max propagates NaN, CmpLt is false with NaN, CmpNe is true with NaN; and no driver rewrite
//! that is wrong for NaN or infinity (`x * 0`, `x + -x`, `x != x`) changes a result.
use crate::*;
use ferrograd_ir::{BinaryOp, DType, Inst, Scalar, UnaryOp, VType};
use ferrograd_runtime::Device;

const EDGES: [f64; 12] = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    3.25,
    1.0e30,
    -1.0e-30,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    1.0e-310,
    7.0,
];

fn pairs() -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for x in EDGES {
        for y in EDGES {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

fn max_ref(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == y {
        // max(-0, +0) is +0.
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else {
        x.max(y)
    }
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Add/Mul/Max/CmpLt/CmpNe on f32 and f64 edge values (NaN, infinities, signed zeros,
/// subnormals), scalar and vector.
pub fn f32_and_f64_binary_ops<H: Harness>() {
    let dev = device::<H>();
    let (a, b) = pairs();
    for lanes in [1u8, 2, 4] {
        let got: Vec<f64> = eval_binary(&dev, BinaryOp::Max, &a, &b, lanes);
        for i in 0..a.len() {
            assert!(
                same(got[i], max_ref(a[i], b[i])),
                "f64 max({}, {}) = {} [{lanes}]",
                a[i],
                b[i],
                got[i]
            );
        }
        let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
        for op in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Max] {
            let got: Vec<f32> = eval_binary(&dev, op, &a32, &b32, lanes);
            for i in 0..a.len() {
                let (x, y) = (a32[i], b32[i]);
                let want = match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Mul => x * y,
                    _ => max_ref(x as f64, y as f64) as f32,
                };
                assert!(
                    same(got[i] as f64, want as f64),
                    "f32 {op:?}({x}, {y}) = {} [{lanes}]",
                    got[i]
                );
            }
        }
        for op in [BinaryOp::CmpLt, BinaryOp::CmpNe] {
            let got32: Vec<bool> = eval_binary(&dev, op, &a32, &b32, lanes);
            let got64: Vec<bool> = eval_binary(&dev, op, &a, &b, lanes);
            for i in 0..a.len() {
                let want = if op == BinaryOp::CmpLt {
                    a[i] < b[i]
                } else {
                    a[i] != b[i]
                };
                let want32 = if op == BinaryOp::CmpLt {
                    a32[i] < b32[i]
                } else {
                    a32[i] != b32[i]
                };
                assert_eq!(
                    got32[i], want32,
                    "f32 {op:?}({}, {}) [{lanes}]",
                    a32[i], b32[i]
                );
                assert_eq!(got64[i], want, "f64 {op:?}({}, {}) [{lanes}]", a[i], b[i]);
            }
        }
    }
}

/// Trunc at every magnitude, f32 and f64: fractions below and above 2^24 (where an f32-precision
/// implementation of f64 rounding breaks), ties, signed zeros (`trunc(-0.3) = -0`), values
/// that are integers already, infinities, NaN and subnormals; scalar and vector (the lists have
/// even lengths: the map programs drop a partial last vector).
pub fn trunc_is_exact_at_every_magnitude<H: Harness>() {
    let dev = device::<H>();
    let xs: Vec<f64> = vec![
        0.0,
        -0.0,
        0.3,
        -0.3,
        2.5,
        -2.5,
        7.999,
        16_777_217.5,
        -16_777_219.25,
        3.0e7 + 0.5,
        1.0e12 + 0.25,
        -5.0e9 - 0.75,
        4.0e15 + 0.5,
        2f64.powi(52) - 0.5,
        2f64.powi(52) + 1.0,
        1.0e300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -1.0e-310,
    ];
    let xs32: Vec<f32> = [
        0.0f32,
        -0.0,
        0.3,
        -0.3,
        2.5,
        -2.5,
        8_388_607.5,
        -8_388_607.5,
    ]
    .into_iter()
    .chain([
        1.0e9,
        3.4e38,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -1.0e-40,
    ])
    .collect();
    for lanes in [1u8, 2] {
        let got = eval_unary(&dev, UnaryOp::Trunc, &xs, lanes);
        for (x, g) in xs.iter().zip(&got) {
            assert!(same(*g, x.trunc()), "f64 trunc({x}) = {g} [{lanes}]");
        }
        let got = eval_unary(&dev, UnaryOp::Trunc, &xs32, lanes);
        for (x, g) in xs32.iter().zip(&got) {
            assert!(
                same(*g as f64, x.trunc() as f64),
                "f32 trunc({x}) = {g} [{lanes}]"
            );
        }
    }
}

/// Drivers may fold (without a float-controls mode, or ignoring it) `x + -x` to 0, `x * 0` to
/// 0, `x == x` to true and `sqrt(x) * sqrt(x)` to x; the shaders must keep NaN and inf
/// semantics regardless.
pub fn value_changing_float_rewrites_are_blocked<H: Harness>() {
    let dev = device::<H>();
    let x = [f32::NAN, f32::INFINITY, -0.0, 2.5, -2.0];
    type Reference = fn(f32) -> f32;
    let cases: [(&str, Reference); 4] = [
        ("x + -x", |v| v + -v),
        ("x * 0", |v| v * 0.0),
        ("x != x", |v| if v.is_nan() { 1.0 } else { 0.0 }),
        ("sqrt(x) * sqrt(x)", |v| v.sqrt() * v.sqrt()),
    ];
    for (k, (what, want)) in cases.iter().enumerate() {
        let p = map_program("rewrite", &[DType::F32], DType::F32, x.len(), 1, |b, v| {
            let zero = b.push(Inst::Const {
                ty: VType::scalar(DType::F32),
                value: Scalar::Float(0.0),
            });
            match k {
                0 => {
                    let n = b.push(Inst::Unary {
                        op: UnaryOp::Neg,
                        arg: v[0],
                    });
                    b.push(Inst::Binary {
                        op: BinaryOp::Add,
                        a: v[0],
                        b: n,
                    })
                }
                1 => b.push(Inst::Binary {
                    op: BinaryOp::Mul,
                    a: v[0],
                    b: zero,
                }),
                3 => {
                    let s = b.push(Inst::Unary {
                        op: UnaryOp::Sqrt,
                        arg: v[0],
                    });
                    b.push(Inst::Binary {
                        op: BinaryOp::Mul,
                        a: s,
                        b: s,
                    })
                }
                _ => {
                    let ne = b.push(Inst::Binary {
                        op: BinaryOp::CmpNe,
                        a: v[0],
                        b: v[0],
                    });
                    b.push(Inst::Cast {
                        to: VType::scalar(DType::F32),
                        arg: ne,
                    })
                }
            }
        });
        let (bx, bo) = (upload(&dev, &x), dev.allocate(4 * x.len()).unwrap());
        run(&dev, &p, &[&bx, &bo]);
        let got = download::<_, f32>(&dev, &bo, x.len());
        for (i, &v) in x.iter().enumerate() {
            let w = want(v);
            assert!(
                got[i].to_bits() == w.to_bits() || (got[i].is_nan() && w.is_nan()),
                "{what} at {v}: got {}, want {w}",
                got[i]
            );
        }
    }
}
