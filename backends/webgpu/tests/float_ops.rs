//! BinaryOps on f32/f64, scalar and vector, with NaN, infinities and signed zeros:
//! Max propagates NaN, CmpLt is false with NaN, CmpNe is true with NaN.
mod common;
use common::*;
use ferrograd_ir::BinaryOp;

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

#[test]
fn f32_and_f64_binary_ops() {
    let dev = device();
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

/// Without a float-controls mode drivers may fold `x + -x` to 0, `x * 0` to 0 and `x == x` to
/// true; the shaders must keep NaN and inf semantics regardless.
#[test]
fn value_changing_float_rewrites_are_blocked() {
    use ferrograd_ir::{DType, Inst, Scalar, UnaryOp, VType};
    use ferrograd_runtime::Device;
    let dev = device();
    let x = [f32::NAN, f32::INFINITY, -0.0, 2.5];
    type Reference = fn(f32) -> f32;
    let cases: [(&str, Reference); 3] = [
        ("x + -x", |v| v + -v),
        ("x * 0", |v| v * 0.0),
        ("x != x", |v| if v.is_nan() { 1.0 } else { 0.0 }),
    ];
    for (k, (what, want)) in cases.iter().enumerate() {
        let p = map_program("rewrite", &[DType::F32], DType::F32, 4, 1, |b, v| {
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
        let (bx, bo) = (upload(&dev, &x), dev.allocate(16).unwrap());
        run(&dev, &p, &[&bx, &bo]);
        let got = download::<f32>(&dev, &bo, 4);
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
