//! Elementwise ops: every unary function, binary arithmetic and the `std::ops` overloads,
//! comparisons and logic, integer ops, casts and bitcasts. Random shapes, values and layouts are
//! checked against the f64 reference evaluator (which evaluates the *same* graph); hand-written
//! host expectations check that the compositions compute the functions they are named after.
//!
//! Tolerances: ops that round once (or are exact: neg, abs, relu, floor, max, comparisons, ...)
//! are compared exactly or at 1e-6; ops that go through the device's `exp2`/`log2`/`sin`
//! approximations at rtol 1e-5 with atol 1e-6 (the atol covers results near 0 of compositions
//! that cancel, like `erf`, `tanh` = 2 sigmoid(2x) - 1 and `softplus` near 0); `pow` at rtol 1e-4
//! because the error of `log2` is multiplied by the exponent.

mod common;

use common::*;
use ferrograd::testing::check;
use ferrograd::{DType, Tensor};
use half::{bf16, f16};
use proptest::prelude::*;

type UnaryFn = fn(&Tensor) -> Tensor;

/// (name, op, rtol, atol) for every float unary op, applied to arbitrary values (NaN, ±inf,
/// negative arguments of log/sqrt included: the device must agree with the reference there too).
const UNARY: &[(&str, UnaryFn, f64, f64)] = &[
    ("neg", |x| x.neg(), 0.0, 0.0),
    ("abs", |x| x.abs(), 0.0, 0.0),
    ("relu", |x| x.relu(), 0.0, 0.0),
    ("floor", |x| x.floor(), 0.0, 0.0),
    ("ceil", |x| x.ceil(), 0.0, 0.0),
    ("round", |x| x.round(), 0.0, 0.0),
    ("trunc", |x| x.trunc(), 0.0, 0.0),
    ("sign", |x| x.sign(), 0.0, 0.0),
    ("clamp", |x| x.clamp(-1.5, 2.0), 0.0, 0.0),
    ("square", |x| x.square(), 1e-6, 0.0),
    ("reciprocal", |x| x.reciprocal(), 1e-6, 0.0),
    ("sqrt", |x| x.sqrt(), 1e-6, 0.0),
    ("rsqrt", |x| x.rsqrt(), 1e-6, 0.0),
    ("leaky_relu", |x| x.leaky_relu(0.1), 1e-6, 0.0),
    ("exp", |x| x.exp(), 1e-5, 1e-6),
    ("exp2", |x| x.exp2(), 1e-5, 1e-6),
    ("log", |x| x.log(), 1e-5, 1e-6),
    ("log2", |x| x.log2(), 1e-5, 1e-6),
    ("sin", |x| x.sin(), 1e-5, 1e-6),
    ("cos", |x| x.cos(), 1e-5, 1e-6),
    ("sigmoid", |x| x.sigmoid(), 1e-5, 1e-6),
    ("tanh", |x| x.tanh(), 1e-5, 1e-6),
    ("elu", |x| x.elu(1.0), 1e-5, 1e-6),
    ("silu", |x| x.silu(), 1e-5, 1e-6),
    ("softplus", |x| x.softplus(), 1e-5, 1e-6),
    ("erf", |x| x.erf(), 1e-5, 1e-6),
    ("gelu", |x| x.gelu(), 1e-5, 1e-6),
    ("powf(2.5)", |x| x.powf(2.5), 1e-4, 1e-6),
    ("powf(3)", |x| x.powf(3.0), 1e-6, 0.0),
    ("powf(-2)", |x| x.powf(-2.0), 1e-6, 0.0),
];

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn unary_float_ops_match_reference(c in case(SHAPES, f32_special)) {
        let x = c.tensor();
        for &(name, op, rtol, atol) in UNARY {
            check(&op(&x), rtol, atol, &format!("{name} {:?} {:?}", c.shape, c.layout));
        }
    }

    #[test]
    fn unary_f64_ops_match_reference(c in case(SHAPES, f32_special)) {
        let data: Vec<f64> = c.data.iter().map(|&v| v as f64 * (1.0 + 1e-10)).collect();
        let x = input(&data, &c.shape, c.layout);
        for &(name, op, rtol, atol) in UNARY {
            // f64 results: the f32 tolerances, scaled down (pow keeps its error amplification).
            let (rtol, atol) = (rtol * 1e-6, atol * 1e-6);
            check(&op(&x), rtol, atol, &format!("f64 {name} {:?} {:?}", c.shape, c.layout));
        }
    }

    #[test]
    fn unary_16bit_ops_match_reference(c in case(SHAPES, f32_special), bf: bool) {
        // 16-bit floats: a transcendental may land one 16-bit ulp away from the correctly
        // rounded reference, and compositions that cancel (tanh, erf near 0) turn that into an
        // absolute error of about one ulp of their intermediate values.
        let (dtype, tol): (DType, f64) = if bf { (DType::BF16, 1.6e-2) } else { (DType::F16, 2e-3) };
        // 16-bit buffers (16-bit loads, possibly vectorized), in the case's layout.
        let x = if bf {
            input(&c.data.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>(), &c.shape, c.layout)
        } else {
            input(&c.data.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(), &c.shape, c.layout)
        };
        assert_eq!(x.dtype(), dtype);
        for &(name, op, rtol, atol) in UNARY {
            if name.starts_with("pow") {
                continue;
            }
            let (rtol, atol) = if rtol == 0.0 { (0.0, 0.0) } else { (tol.max(rtol), tol.max(atol)) };
            check(&op(&x), rtol, atol, &format!("{dtype} {name} {:?} {:?}", c.shape, c.layout));
        }
    }

    #[test]
    fn tan_matches_reference(c in case(SHAPES, || -1.2f32..1.2)) {
        // Away from the poles: tan = sin / cos amplifies cos's error by 1/cos^2.
        check(&c.tensor().tan(), 1e-5, 1e-6, &format!("tan {:?} {:?}", c.shape, c.layout));
    }

    #[test]
    fn binary_float_ops_match_reference((a, b) in pair(f32_special)) {
        let (x, y) = (a.tensor(), b.tensor());
        let what = |op: &str| format!("{op} {:?}{:?} with {:?}{:?}", a.shape, a.layout, b.shape, b.layout);
        check(&(&x + &y), 0.0, 0.0, &what("add"));
        check(&(&x - &y), 0.0, 0.0, &what("sub"));
        check(&(&x * &y), 0.0, 0.0, &what("mul"));
        check(&(&x / &y), 1e-6, 0.0, &what("div"));
        check(&x.maximum(&y), 0.0, 0.0, &what("maximum"));
        check(&x.minimum(&y), 0.0, 0.0, &what("minimum"));
        check(&x.pow(&y), 1e-4, 1e-6, &what("pow"));
        check(&x.lt(&y), 0.0, 0.0, &what("lt"));
        check(&x.le(&y), 0.0, 0.0, &what("le"));
        check(&x.gt(&y), 0.0, 0.0, &what("gt"));
        check(&x.ge(&y), 0.0, 0.0, &what("ge"));
        check(&x.eq(&y), 0.0, 0.0, &what("eq"));
        check(&x.ne(&y), 0.0, 0.0, &what("ne"));
        check(&x.logical_and(&y), 0.0, 0.0, &what("logical_and"));
        check(&x.logical_or(&y), 0.0, 0.0, &what("logical_or"));
        check(&x.logical_not(), 0.0, 0.0, &what("logical_not"));
        check(&x.lt(&y).where_(&x, &y), 0.0, 0.0, &what("where"));
        check(&x.gt(0.0).where_(&y, 0.5), 0.0, 0.0, &what("where scalar"));
        // A fused chain of several ops over both inputs.
        check(&((&x * 2.0 - &y).relu() + y.abs().sqrt()), 1e-6, 0.0, &what("chain"));
    }

    #[test]
    fn binary_int_ops_match_reference((a, b) in pair(i32_special)) {
        let (x, y) = (a.tensor(), b.tensor());
        let what = |op: &str| format!("{op} {:?}{:?} with {:?}{:?}", a.shape, a.layout, b.shape, b.layout);
        for (name, t) in [
            ("add", &x + &y),
            ("sub", &x - &y),
            ("mul", &x * &y),
            ("idiv", x.idiv(&y)),
            ("rem", x.rem(&y)),
            ("maximum", x.maximum(&y)),
            ("minimum", x.minimum(&y)),
            ("lt", x.lt(&y)),
            ("le", x.le(&y)),
            ("gt", x.gt(&y)),
            ("ge", x.ge(&y)),
            ("eq", x.eq(&y)),
            ("ne", x.ne(&y)),
            ("bitand", x.bitand(&y)),
            ("bitor", x.bitor(&y)),
            ("bitxor", x.bitxor(&y)),
            ("shl", x.shl(&y)),
            ("shr", x.shr(&y)),
            ("logical_and", x.logical_and(&y)),
            ("where", x.gt(&y).where_(&x, &y)),
            ("div", &x / &y),
        ] {
            let exact = name != "div";
            check(&t, if exact { 0.0 } else { 1e-6 }, 0.0, &what(name));
        }
    }

    #[test]
    fn binary_u8_ops_match_reference((a, b) in pair(any::<u8>)) {
        let (x, y) = (a.tensor(), b.tensor());
        let what = |op: &str| format!("u8 {op} {:?}{:?} with {:?}{:?}", a.shape, a.layout, b.shape, b.layout);
        for (name, t) in [
            ("add", &x + &y),
            ("sub", &x - &y),
            ("mul", &x * &y),
            ("idiv", x.idiv(&y)),
            ("rem", x.rem(&y)),
            ("maximum", x.maximum(&y)),
            ("minimum", x.minimum(&y)),
            ("lt", x.lt(&y)),
            ("ne", x.ne(&y)),
            ("bitxor", x.bitxor(&y)),
            ("shl", x.shl(&y)),
            ("shr", x.shr(&y)),
            ("where", x.gt(&y).where_(&x, &y)),
            ("neg", x.neg()),
            ("to i32", x.cast(DType::I32) - &y.cast(DType::I32)),
        ] {
            check(&t, 0.0, 0.0, &what(name));
        }
    }

    #[test]
    fn binary_wide_int_ops_match_reference((a, b) in pair(|| prop_oneof![4 => -20i64..20, 1 => any::<i64>(), 1 => Just(i64::MIN)]), unsigned: bool) {
        // i64 inputs, or their low 32 bits as u32 inputs.
        let (x, y) = if unsigned {
            let low = |c: &Case<i64>| input(&c.data.iter().map(|&v| v as u32).collect::<Vec<_>>(), &c.shape, c.layout);
            (low(&a), low(&b))
        } else {
            (a.tensor(), b.tensor())
        };
        let what = |op: &str| format!("{} {op} {:?}{:?} with {:?}{:?}", x.dtype(), a.shape, a.layout, b.shape, b.layout);
        for (name, t) in [
            ("add", &x + &y),
            ("mul", &x * &y),
            ("idiv", x.idiv(&y)),
            ("rem", x.rem(&y)),
            ("maximum", x.maximum(&y)),
            ("minimum", x.minimum(&y)),
            ("lt", x.lt(&y)),
            ("ge", x.ge(&y)),
            ("bitand", x.bitand(&y)),
            ("shl", x.shl(&y)),
            ("shr", x.shr(&y)),
            ("abs", x.abs()),
            ("to f32", x.cast(DType::F32)),
            ("to f64", x.cast(DType::F64)),
        ] {
            check(&t, 0.0, 0.0, &what(name));
        }
    }

    #[test]
    fn bool_ops_match_reference((a, b) in pair(any::<bool>)) {
        let (x, y) = (a.tensor(), b.tensor());
        let what = |op: &str| format!("bool {op} {:?}{:?} with {:?}{:?}", a.shape, a.layout, b.shape, b.layout);
        check(&x.logical_and(&y), 0.0, 0.0, &what("and"));
        check(&x.logical_or(&y), 0.0, 0.0, &what("or"));
        check(&x.logical_not(), 0.0, 0.0, &what("not"));
        check(&x.bitxor(&y), 0.0, 0.0, &what("xor"));
        check(&x.ne(&y), 0.0, 0.0, &what("ne"));
        check(&x.eq(&y), 0.0, 0.0, &what("eq"));
        check(&x.lt(&y), 0.0, 0.0, &what("lt"));
        check(&x.where_(&y, false), 0.0, 0.0, &what("where"));
        check(&x.where_(1.5, -2.0), 0.0, 0.0, &what("where scalars"));
        check(&(&x + &y), 0.0, 0.0, &what("add (or)"));
        check(&(&x * &y), 0.0, 0.0, &what("mul (and)"));
        check(&x.cast(DType::F32), 0.0, 0.0, &what("to f32"));
    }

    #[test]
    fn unary_int_ops_match_reference(c in case(SHAPES, i32_special)) {
        let x = c.tensor();
        let what = |op: &str| format!("{op} {:?} {:?}", c.shape, c.layout);
        check(&x.neg(), 0.0, 0.0, &what("neg"));
        check(&x.abs(), 0.0, 0.0, &what("abs"));
        check(&x.sign(), 0.0, 0.0, &what("sign"));
        check(&x.relu(), 0.0, 0.0, &what("relu"));
        check(&x.clamp(-5.0, 7.0), 0.0, 0.0, &what("clamp"));
        check(&x.logical_not(), 0.0, 0.0, &what("logical_not"));
        check(&x.square(), 0.0, 0.0, &what("square"));
        check(&x.cast(DType::F32).sqrt(), 1e-6, 0.0, &what("sqrt of cast"));
    }
}

// ---- host expectations for the unary compositions ---------------------------------------------

/// Values on which the unary functions are compared with their f64 definitions.
fn grid() -> Vec<f32> {
    let mut v: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.1).collect();
    v.extend([-7.5, -6.0, 5.5, 7.0, 0.25, -0.25, 1e-3, -1e-3]);
    v
}

fn host_unary(x: &[f32], t: &Tensor, f: impl Fn(f64) -> f64, rtol: f64, atol: f64, what: &str) {
    let expected: Vec<f64> = x.iter().map(|&v| f(v as f64)).collect();
    assert_close_f64(&f64s(t), &expected, rtol, atol, what);
}

#[test]
fn unary_ops_compute_their_functions() {
    let x = grid();
    let t = Tensor::from_slice(&x, &[x.len()]);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (r, a) = (2e-5, 2e-6);
    host_unary(&x, &t.neg(), |v| -v, 0.0, 0.0, "neg");
    host_unary(&x, &t.abs(), f64::abs, 0.0, 0.0, "abs");
    host_unary(&x, &t.exp(), f64::exp, r, a, "exp");
    host_unary(&x, &t.exp2(), f64::exp2, r, a, "exp2");
    host_unary(&x, &t.sin(), f64::sin, r, a, "sin");
    host_unary(&x, &t.cos(), f64::cos, r, a, "cos");
    host_unary(&x, &t.square(), |v| v * v, 1e-6, 0.0, "square");
    host_unary(&x, &t.sigmoid(), sig, r, a, "sigmoid");
    host_unary(&x, &t.tanh(), f64::tanh, r, 1e-6, "tanh");
    host_unary(&x, &t.relu(), |v| v.max(0.0), 0.0, 0.0, "relu");
    host_unary(
        &x,
        &t.leaky_relu(0.2),
        |v| if v > 0.0 { v } else { 0.2 * v },
        1e-6,
        0.0,
        "leaky_relu",
    );
    host_unary(
        &x,
        &t.elu(1.5),
        |v| if v > 0.0 { v } else { 1.5 * (v.exp() - 1.0) },
        r,
        a,
        "elu",
    );
    host_unary(&x, &t.silu(), |v| v * sig(v), r, a, "silu");
    host_unary(&x, &t.softplus(), |v| v.exp().ln_1p(), r, a, "softplus");
    host_unary(&x, &t.floor(), f64::floor, 0.0, 0.0, "floor");
    host_unary(&x, &t.ceil(), f64::ceil, 0.0, 0.0, "ceil");
    host_unary(&x, &t.trunc(), f64::trunc, 0.0, 0.0, "trunc");
    host_unary(&x, &t.round(), f64::round_ties_even, 0.0, 0.0, "round");
    host_unary(
        &x,
        &t.sign(),
        |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        },
        0.0,
        0.0,
        "sign",
    );
    host_unary(
        &x,
        &t.clamp(-0.5, 1.25),
        |v| v.clamp(-0.5, 1.25),
        0.0,
        0.0,
        "clamp",
    );
    host_unary(&x, &t.powf(2.0), |v| v * v, 1e-6, 0.0, "powf(2)");
    host_unary(&x, &t.powf(3.0), |v| v * v * v, 1e-6, 0.0, "powf(3)");
    host_unary(&x, &t.powf(0.0), |_| 1.0, 0.0, 0.0, "powf(0)");
    host_unary(
        &x,
        &t.pow(3.0),
        |v| v.powi(3),
        1e-4,
        1e-6,
        "pow(x, 3) with negative bases",
    );
    host_unary(
        &x,
        &t.pow(2.0),
        |v| v * v,
        1e-4,
        1e-6,
        "pow(x, 2) with negative bases",
    );
    host_unary(
        &x,
        &t.pow(0.5),
        f64::sqrt,
        1e-4,
        1e-6,
        "pow(x, 0.5) (NaN for negatives)",
    );

    // Functions with restricted domains.
    let pos: Vec<f32> = (1..=60).map(|i| i as f32 * 0.137).collect();
    let p = Tensor::from_slice(&pos, &[pos.len()]);
    host_unary(&pos, &p.log(), f64::ln, r, a, "log");
    host_unary(&pos, &p.log2(), f64::log2, r, a, "log2");
    host_unary(&pos, &p.sqrt(), f64::sqrt, 1e-6, 0.0, "sqrt");
    host_unary(&pos, &p.rsqrt(), |v| 1.0 / v.sqrt(), 1e-6, 0.0, "rsqrt");
    host_unary(&pos, &p.reciprocal(), |v| 1.0 / v, 1e-6, 0.0, "reciprocal");
    host_unary(&pos, &p.powf(2.5), |v| v.powf(2.5), 1e-4, 0.0, "powf(2.5)");
    host_unary(&pos, &p.powf(-1.0), |v| 1.0 / v, 1e-6, 0.0, "powf(-1)");
    let ang: Vec<f32> = (-12..=12).map(|i| i as f32 * 0.1).collect();
    let g = Tensor::from_slice(&ang, &[ang.len()]);
    host_unary(&ang, &g.tan(), f64::tan, r, a, "tan");
}

#[test]
fn special_values_of_unary_ops() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let x = Tensor::from_vec(vec![inf, -inf, nan, 0.0, -0.0], &[5]);
    let n = f64::NAN;
    let (pi, ni) = (f64::INFINITY, f64::NEG_INFINITY);
    let cases: Vec<(&str, Tensor, Vec<f64>)> = vec![
        ("exp", x.exp(), vec![pi, 0.0, n, 1.0, 1.0]),
        ("log", x.log(), vec![pi, n, n, ni, ni]),
        ("sqrt", x.sqrt(), vec![pi, n, n, 0.0, 0.0]),
        ("sigmoid", x.sigmoid(), vec![1.0, 0.0, n, 0.5, 0.5]),
        ("tanh", x.tanh(), vec![1.0, -1.0, n, 0.0, 0.0]),
        ("relu", x.relu(), vec![pi, 0.0, n, 0.0, 0.0]),
        ("abs", x.abs(), vec![pi, pi, n, 0.0, 0.0]),
        ("sign", x.sign(), vec![1.0, -1.0, n, 0.0, 0.0]),
        ("floor", x.floor(), vec![pi, ni, n, 0.0, 0.0]),
        ("round", x.round(), vec![pi, ni, n, 0.0, 0.0]),
        (
            "softplus",
            x.softplus(),
            vec![pi, 0.0, n, std::f64::consts::LN_2, std::f64::consts::LN_2],
        ),
        ("erf", x.erf(), vec![1.0, -1.0, n, 0.0, 0.0]),
        ("clamp", x.clamp(-1.0, 1.0), vec![1.0, -1.0, n, 0.0, 0.0]),
        ("reciprocal", x.reciprocal(), vec![0.0, 0.0, n, pi, ni]),
        ("maximum", x.maximum(0.5), vec![pi, 0.5, n, 0.5, 0.5]),
        ("minimum", x.minimum(0.5), vec![0.5, ni, n, 0.0, -0.0]),
    ];
    for (name, t, expected) in cases {
        assert_close_f64(&f64s(&t), &expected, 1e-6, 1e-6, name);
    }
    // Signed zeros: 1 / max(-0, +0) is +inf, 1 / min(-0, +0) is -inf.
    let z = Tensor::from_vec(vec![-0.0f32], &[1]);
    let pz = Tensor::from_vec(vec![0.0f32], &[1]);
    assert_eq!(f64s(&z.maximum(&pz).reciprocal()), vec![f64::INFINITY]);
    assert_eq!(f64s(&z.minimum(&pz).reciprocal()), vec![f64::NEG_INFINITY]);
}

#[test]
fn round_is_ties_to_even_and_exact() {
    let x = vec![
        0.5f32,
        1.5,
        2.5,
        3.5,
        -0.5,
        -1.5,
        -2.5,
        2.4,
        2.6,
        -2.6,
        0.499_999_97,
        -0.499_999_97,
        8_388_609.0,
        -8_388_609.0,
        1e20,
    ];
    let expected: Vec<f64> = x.iter().map(|&v| (v as f64).round_ties_even()).collect();
    let t = Tensor::from_slice(&x, &[x.len()]);
    assert_close_f64(&f64s(&t.round()), &expected, 0.0, 0.0, "round");
    check(&t.round(), 0.0, 0.0, "round vs reference");
    // The same for f64 (ties and the largest double below 0.5).
    let y = vec![
        0.5f64,
        1.5,
        2.5,
        -2.5,
        0.499_999_999_999_999_94,
        4_503_599_627_370_497.0,
    ];
    let expected: Vec<f64> = y.iter().map(|v| v.round_ties_even()).collect();
    assert_close_f64(
        &f64s(&Tensor::from_slice(&y, &[y.len()]).round()),
        &expected,
        0.0,
        0.0,
        "round f64",
    );
}

#[test]
fn erf_and_gelu_match_known_values() {
    // Values of erf and of the exact GELU computed with a correctly rounded erf; the A&S
    // polynomial has |error| < 1.5e-7, plus f32 rounding.
    let erf = [
        (0.0f32, 0.0f64),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (1.5, 0.9661051464753108),
        (2.0, 0.9953222650189527),
        (3.0, 0.9999779095030014),
        (-0.5, -0.5204998778130465),
        (-1.0, -0.8427007929497149),
        (-2.0, -0.9953222650189527),
    ];
    let x: Vec<f32> = erf.iter().map(|p| p.0).collect();
    let e: Vec<f64> = erf.iter().map(|p| p.1).collect();
    assert_close_f64(
        &f64s(&Tensor::from_slice(&x, &[x.len()]).erf()),
        &e,
        1e-6,
        1e-6,
        "erf",
    );
    let gelu = [
        (0.0f32, 0.0f64),
        (0.5, 0.34573123063700656),
        (1.0, 0.8413447460685429),
        (2.0, 1.9544997361036416),
        (3.0, 2.99595030590511),
        (-0.5, -0.15426876936299344),
        (-1.0, -0.15865525393145707),
        (-2.0, -0.04550026389635842),
        (-3.0, -0.00404969409489031),
    ];
    let x: Vec<f32> = gelu.iter().map(|p| p.0).collect();
    let e: Vec<f64> = gelu.iter().map(|p| p.1).collect();
    assert_close_f64(
        &f64s(&Tensor::from_slice(&x, &[x.len()]).gelu()),
        &e,
        1e-6,
        1e-6,
        "gelu",
    );
}

// ---- operators -------------------------------------------------------------------------------

#[test]
fn operators_with_owned_borrowed_and_scalar_operands() {
    let av = vec![1.5f32, -2.0, 0.25, 7.0, -0.5, 3.0];
    let bv = vec![0.5f32, 4.0, -1.0, 2.0, 8.0, -3.0];
    let a = Tensor::from_slice(&av, &[2, 3]);
    let b = Tensor::from_slice(&bv, &[2, 3]);
    let host = |f: fn(f32, f32) -> f32| -> Vec<f64> {
        av.iter().zip(&bv).map(|(&x, &y)| f(x, y) as f64).collect()
    };
    let scal = |f: fn(f32) -> f32| -> Vec<f64> { av.iter().map(|&x| f(x) as f64).collect() };
    let exact =
        |t: Tensor, e: Vec<f64>, what: &str| assert_close_f64(&f64s(&t), &e, 0.0, 0.0, what);
    let close =
        |t: Tensor, e: Vec<f64>, what: &str| assert_close_f64(&f64s(&t), &e, 1e-6, 0.0, what);

    exact(&a + &b, host(|x, y| x + y), "&a + &b");
    exact(a.clone() + b.clone(), host(|x, y| x + y), "a + b");
    exact(&a + b.clone(), host(|x, y| x + y), "&a + b");
    exact(a.clone() + &b, host(|x, y| x + y), "a + &b");
    exact(&a - &b, host(|x, y| x - y), "&a - &b");
    exact(a.clone() - b.clone(), host(|x, y| x - y), "a - b");
    exact(&a * &b, host(|x, y| x * y), "&a * &b");
    exact(a.clone() * &b, host(|x, y| x * y), "a * &b");
    close(&a / &b, host(|x, y| x / y), "&a / &b");
    close(a.clone() / b.clone(), host(|x, y| x / y), "a / b");

    exact(&a + 2.0, scal(|x| x + 2.0), "&a + 2.0");
    exact(&a * 2.0, scal(|x| x * 2.0), "&a * 2.0");
    exact(&a - 2.0, scal(|x| x - 2.0), "&a - 2.0");
    close(&a / 4.0, scal(|x| x / 4.0), "&a / 4.0");
    exact(2.0 - &a, scal(|x| 2.0 - x), "2.0 - &a");
    exact(2.0 + &a, scal(|x| 2.0 + x), "2.0 + &a");
    exact(3.0 * &a, scal(|x| 3.0 * x), "3.0 * &a");
    close(3.0 / &a, scal(|x| 3.0 / x), "3.0 / &a");
    exact(1.5 - a.clone(), scal(|x| 1.5 - x), "1.5 - a");
    exact(a.clone() * 0.5, scal(|x| x * 0.5), "a * 0.5");
    // Other scalar types go through the methods.
    exact(a.mul(0.5f32), scal(|x| x * 0.5), "a.mul(0.5f32)");
    exact(a.sub(1i64), scal(|x| x - 1.0), "a.sub(1i64)");
    exact(&a + 3i32, scal(|x| x + 3.0), "&a + 3i32");
    exact(10i32 - &a, scal(|x| 10.0 - x), "10i32 - &a");
    exact(-&a, scal(|x| -x), "-&a");
    exact(-a.clone(), scal(|x| -x), "-a");
    // Mixed chain, evaluated left to right like the host.
    exact(
        &(&a * 2.0 - &b) + 1.0,
        host(|x, y| x * 2.0 - y + 1.0),
        "(&a * 2.0 - &b) + 1.0",
    );
    check(
        &(2.0 - &a * &b / 3.0),
        1e-6,
        0.0,
        "scalar-left chain vs reference",
    );
}

#[test]
fn comparisons_and_logic_host_values() {
    let av = vec![1.0f32, 2.0, f32::NAN, -1.0, 3.0, f32::INFINITY];
    let bv = vec![2.0f32, 2.0, 1.0, f32::NAN, -3.0, f32::INFINITY];
    let a = Tensor::from_slice(&av, &[6]);
    let b = Tensor::from_slice(&bv, &[6]);
    let host = |f: fn(f32, f32) -> bool| -> Vec<bool> {
        av.iter().zip(&bv).map(|(&x, &y)| f(x, y)).collect()
    };
    let got = |t: Tensor| -> Vec<bool> {
        assert_eq!(t.dtype(), DType::Bool);
        t.to_vec::<bool>().unwrap()
    };
    assert_eq!(got(a.lt(&b)), host(|x, y| x < y), "lt");
    assert_eq!(got(a.le(&b)), host(|x, y| x <= y), "le");
    assert_eq!(got(a.gt(&b)), host(|x, y| x > y), "gt");
    assert_eq!(got(a.ge(&b)), host(|x, y| x >= y), "ge");
    assert_eq!(got(a.eq(&b)), host(|x, y| x == y), "eq");
    assert_eq!(got(a.ne(&b)), host(|x, y| x != y), "ne");
    assert_eq!(
        got(a.gt(1.5)),
        av.iter().map(|&x| x > 1.5).collect::<Vec<_>>(),
        "gt scalar"
    );

    let p = Tensor::from_vec(vec![true, true, false, false], &[4]);
    let q = Tensor::from_vec(vec![true, false, true, false], &[4]);
    assert_eq!(got(p.logical_and(&q)), vec![true, false, false, false]);
    assert_eq!(got(p.logical_or(&q)), vec![true, true, true, false]);
    assert_eq!(got(p.logical_not()), vec![false, false, true, true]);
    // Non-zero numbers are true, NaN included.
    let n = Tensor::from_vec(vec![0.0f32, -2.0, f32::NAN, 0.0], &[4]);
    assert_eq!(got(n.logical_not()), vec![true, false, false, true]);
    assert_eq!(got(n.logical_and(&q)), vec![false, false, true, false]);
    let i = Tensor::from_vec(vec![0i32, 5, -1, 0], &[4]);
    assert_eq!(got(i.logical_or(&q)), vec![true, true, true, false]);

    // where_ with tensors and scalars on either side, broadcasting the condition.
    let cond = Tensor::from_vec(vec![true, false, true], &[3, 1]);
    let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]);
    let w = cond.where_(&x, -1.0);
    assert_eq!(w.shape(), vec![3, 2]);
    assert_eq!(f64s(&w), vec![1.0, 2.0, -1.0, -1.0, 1.0, 2.0]);
    let w = cond.where_(7i32, Tensor::from_vec(vec![0i32, 1], &[2]));
    assert_eq!(w.dtype(), DType::I32);
    assert_eq!(w.to_vec::<i32>().unwrap(), vec![7, 7, 0, 1, 7, 7]);
}

// ---- integers ---------------------------------------------------------------------------------

#[test]
fn integer_ops_are_exact_host_values() {
    let av: Vec<i32> = vec![7, -7, 7, -7, 0, i32::MIN, i32::MIN, i32::MAX, 5, -9, 13, 1];
    let bv: Vec<i32> = vec![2, 2, -2, -2, 3, -1, 0, 1, 0, 4, -5, 31];
    let a = Tensor::from_slice(&av, &[3, 4]);
    let b = Tensor::from_slice(&bv, &[3, 4]);
    let host = |f: fn(i32, i32) -> i32| -> Vec<i32> {
        av.iter().zip(&bv).map(|(&x, &y)| f(x, y)).collect()
    };
    let got = |t: Tensor, what: &str| -> Vec<i32> {
        assert_eq!(t.dtype(), DType::I32, "{what}");
        t.to_vec::<i32>().unwrap()
    };
    assert_eq!(
        got(&a + &b, "add"),
        host(i32::wrapping_add),
        "add (wrapping)"
    );
    assert_eq!(
        got(&a - &b, "sub"),
        host(i32::wrapping_sub),
        "sub (wrapping)"
    );
    assert_eq!(
        got(&a * &b, "mul"),
        host(i32::wrapping_mul),
        "mul (wrapping)"
    );
    let idiv = |x: i32, y: i32| if y == 0 { 0 } else { x.wrapping_div(y) };
    let rem = |x: i32, y: i32| if y == 0 { 0 } else { x.wrapping_rem(y) };
    assert_eq!(
        got(a.idiv(&b), "idiv"),
        host(idiv),
        "idiv (toward zero, x/0 = 0, MIN/-1 = MIN)"
    );
    assert_eq!(
        got(a.rem(&b), "rem"),
        host(rem),
        "rem (dividend's sign, x%0 = 0)"
    );
    assert_eq!(got(a.maximum(&b), "maximum"), host(i32::max), "maximum");
    assert_eq!(got(a.minimum(&b), "minimum"), host(i32::min), "minimum");
    assert_eq!(got(a.bitand(&b), "bitand"), host(|x, y| x & y), "bitand");
    assert_eq!(got(a.bitor(&b), "bitor"), host(|x, y| x | y), "bitor");
    assert_eq!(got(a.bitxor(&b), "bitxor"), host(|x, y| x ^ y), "bitxor");
    assert_eq!(
        got(a.neg(), "neg"),
        av.iter().map(|x| x.wrapping_neg()).collect::<Vec<_>>(),
        "neg"
    );
    assert_eq!(
        got(a.abs(), "abs"),
        av.iter().map(|x| x.wrapping_abs()).collect::<Vec<_>>(),
        "abs"
    );
    assert_eq!(
        got(a.sign(), "sign"),
        av.iter().map(|x| x.signum()).collect::<Vec<_>>(),
        "sign"
    );
    assert_eq!(
        got(a.clamp(-8.5, 6.5), "clamp"),
        av.iter().map(|x| (*x).clamp(-8, 6)).collect::<Vec<_>>(),
        "clamp"
    );
    assert_eq!(
        got(a.idiv(3i32), "idiv scalar"),
        av.iter().map(|x| x / 3).collect::<Vec<_>>(),
        "idiv by 3"
    );
    assert_eq!(got(a.rem(0i32), "rem 0"), vec![0; 12], "rem by 0");
    // Shifts take the amount modulo 32; shr is arithmetic for i32.
    let sh: Vec<i32> = vec![0, 1, 4, 31, 32, 33, -1, 5, 3, 2, 1, 0];
    let s = Tensor::from_slice(&sh, &[3, 4]);
    let shl: Vec<i32> = av
        .iter()
        .zip(&sh)
        .map(|(&x, &k)| x.wrapping_shl(k as u32))
        .collect();
    let shr: Vec<i32> = av
        .iter()
        .zip(&sh)
        .map(|(&x, &k)| x.wrapping_shr(k as u32))
        .collect();
    assert_eq!(got(a.shl(&s), "shl"), shl, "shl");
    assert_eq!(got(a.shr(&s), "shr"), shr, "shr");
    // True division of integers is a float division.
    let d = &a / &b;
    assert_eq!(d.dtype(), DType::F32);
    let expected: Vec<f64> = av
        .iter()
        .zip(&bv)
        .map(|(&x, &y)| (x as f32 / y as f32) as f64)
        .collect();
    assert_close_f64(&f64s(&d), &expected, 1e-6, 0.0, "int / int");
    // Scalar operands keep the integer dtype.
    assert_eq!(
        got(&a * 3i32, "mul scalar"),
        av.iter().map(|x| x.wrapping_mul(3)).collect::<Vec<_>>()
    );
    assert_eq!(
        got(100i32 - &a, "rsub scalar"),
        av.iter()
            .map(|x| 100i32.wrapping_sub(*x))
            .collect::<Vec<_>>()
    );
}

#[test]
fn u8_u32_i64_ops_are_exact() {
    // u8 wraps, shifts are logical, idiv/rem by zero give 0.
    let av: Vec<u8> = vec![0, 1, 200, 255, 17, 128, 3];
    let bv: Vec<u8> = vec![0, 255, 100, 2, 5, 1, 9];
    let a = Tensor::from_slice(&av, &[7]);
    let b = Tensor::from_slice(&bv, &[7]);
    let h =
        |f: fn(u8, u8) -> u8| -> Vec<u8> { av.iter().zip(&bv).map(|(&x, &y)| f(x, y)).collect() };
    assert_eq!(
        (&a + &b).to_vec::<u8>().unwrap(),
        h(u8::wrapping_add),
        "u8 add"
    );
    assert_eq!(
        (&a - &b).to_vec::<u8>().unwrap(),
        h(u8::wrapping_sub),
        "u8 sub"
    );
    assert_eq!(
        (&a * &b).to_vec::<u8>().unwrap(),
        h(u8::wrapping_mul),
        "u8 mul"
    );
    assert_eq!(
        a.idiv(&b).to_vec::<u8>().unwrap(),
        h(|x, y| x.checked_div(y).unwrap_or(0)),
        "u8 idiv"
    );
    assert_eq!(
        a.rem(&b).to_vec::<u8>().unwrap(),
        h(|x, y| x.checked_rem(y).unwrap_or(0)),
        "u8 rem"
    );
    assert_eq!(
        a.maximum(&b).to_vec::<u8>().unwrap(),
        h(u8::max),
        "u8 maximum"
    );
    assert_eq!(
        a.minimum(&b).to_vec::<u8>().unwrap(),
        h(u8::min),
        "u8 minimum"
    );
    assert_eq!(
        a.shr(&b).to_vec::<u8>().unwrap(),
        h(|x, y| x.wrapping_shr(y as u32)),
        "u8 shr (logical)"
    );
    assert_eq!(
        a.shl(&b).to_vec::<u8>().unwrap(),
        h(|x, y| x.wrapping_shl(y as u32)),
        "u8 shl"
    );
    assert_eq!(
        a.lt(&b).to_vec::<bool>().unwrap(),
        av.iter().zip(&bv).map(|(x, y)| x < y).collect::<Vec<_>>(),
        "u8 lt"
    );
    assert_eq!(
        a.neg().to_vec::<u8>().unwrap(),
        av.iter().map(|x| x.wrapping_neg()).collect::<Vec<_>>(),
        "u8 neg"
    );
    assert_eq!(
        a.clamp(-1.0, 100.0).to_vec::<u8>().unwrap(),
        av.iter().map(|&x| x.min(100)).collect::<Vec<_>>(),
        "u8 clamp"
    );
    check(&(&a * &b + &a), 0.0, 0.0, "u8 chain vs reference");

    // u32 above i32::MAX: comparisons, shifts and division are unsigned.
    let av: Vec<u32> = vec![0, 1, 0x8000_0000, u32::MAX, 123_456_789, 7];
    let bv: Vec<u32> = vec![1, 0, 3, 0xffff_fff0, 31, 40];
    let a = Tensor::from_slice(&av, &[2, 3]);
    let b = Tensor::from_slice(&bv, &[2, 3]);
    let h = |f: fn(u32, u32) -> u32| -> Vec<u32> {
        av.iter().zip(&bv).map(|(&x, &y)| f(x, y)).collect()
    };
    assert_eq!(
        (&a + &b).to_vec::<u32>().unwrap(),
        h(u32::wrapping_add),
        "u32 add"
    );
    assert_eq!(
        (&a * &b).to_vec::<u32>().unwrap(),
        h(u32::wrapping_mul),
        "u32 mul"
    );
    assert_eq!(
        a.idiv(&b).to_vec::<u32>().unwrap(),
        h(|x, y| x.checked_div(y).unwrap_or(0)),
        "u32 idiv"
    );
    assert_eq!(
        a.rem(&b).to_vec::<u32>().unwrap(),
        h(|x, y| x.checked_rem(y).unwrap_or(0)),
        "u32 rem"
    );
    assert_eq!(
        a.maximum(&b).to_vec::<u32>().unwrap(),
        h(u32::max),
        "u32 maximum"
    );
    assert_eq!(
        a.minimum(&b).to_vec::<u32>().unwrap(),
        h(u32::min),
        "u32 minimum"
    );
    assert_eq!(
        a.shr(&b).to_vec::<u32>().unwrap(),
        h(|x, y| x.wrapping_shr(y)),
        "u32 shr"
    );
    assert_eq!(
        a.shl(&b).to_vec::<u32>().unwrap(),
        h(|x, y| x.wrapping_shl(y)),
        "u32 shl"
    );
    assert_eq!(
        a.gt(&b).to_vec::<bool>().unwrap(),
        av.iter().zip(&bv).map(|(x, y)| x > y).collect::<Vec<_>>(),
        "u32 gt"
    );
    check(&a.bitxor(&b).shr(3i32), 0.0, 0.0, "u32 chain vs reference");

    // i64 beyond 32 bits.
    let av: Vec<i64> = vec![1 << 40, -(1 << 40) - 3, i64::MIN, i64::MAX, -7, 9];
    let bv: Vec<i64> = vec![3, 7, -1, 2, 0, -4];
    let a = Tensor::from_slice(&av, &[6]);
    let b = Tensor::from_slice(&bv, &[6]);
    let h = |f: fn(i64, i64) -> i64| -> Vec<i64> {
        av.iter().zip(&bv).map(|(&x, &y)| f(x, y)).collect()
    };
    assert_eq!(
        (&a + &b).to_vec::<i64>().unwrap(),
        h(i64::wrapping_add),
        "i64 add"
    );
    assert_eq!(
        (&a * &b).to_vec::<i64>().unwrap(),
        h(i64::wrapping_mul),
        "i64 mul"
    );
    assert_eq!(
        a.idiv(&b).to_vec::<i64>().unwrap(),
        h(|x, y| if y == 0 { 0 } else { x.wrapping_div(y) }),
        "i64 idiv"
    );
    assert_eq!(
        a.rem(&b).to_vec::<i64>().unwrap(),
        h(|x, y| if y == 0 { 0 } else { x.wrapping_rem(y) }),
        "i64 rem"
    );
    assert_eq!(
        a.shr(&b).to_vec::<i64>().unwrap(),
        h(|x, y| x.wrapping_shr(y as u32)),
        "i64 shr"
    );
    assert_eq!(
        a.shl(&b).to_vec::<i64>().unwrap(),
        h(|x, y| x.wrapping_shl(y as u32)),
        "i64 shl"
    );
    assert_eq!(
        a.minimum(&b).to_vec::<i64>().unwrap(),
        h(i64::min),
        "i64 minimum"
    );
    assert_eq!(
        a.abs().to_vec::<i64>().unwrap(),
        av.iter().map(|x| x.wrapping_abs()).collect::<Vec<_>>(),
        "i64 abs"
    );

    // Promotion: i32 with u32 is i64, u8 with i8 is i32.
    let x = Tensor::from_vec(vec![-1i32, 2], &[2]);
    let y = Tensor::from_vec(vec![u32::MAX, 3], &[2]);
    let s = &x + &y;
    assert_eq!(s.dtype(), DType::I64);
    assert_eq!(s.to_vec::<i64>().unwrap(), vec![u32::MAX as i64 - 1, 5]);
    let p = Tensor::from_vec(vec![200u8], &[1]) + Tensor::from_vec(vec![-100i8], &[1]);
    assert_eq!(p.dtype(), DType::I32);
    assert_eq!(p.to_vec::<i32>().unwrap(), vec![100]);
}

// ---- casts and bitcasts -------------------------------------------------------------------------

#[test]
fn casts_between_dtypes() {
    let fv = vec![
        1.7f32,
        -1.7,
        300.5,
        -300.5,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3e9,
        -3e9,
        0.0,
        65520.0,
        1e-8,
        1e10,
        -1e19,
        2147483520.0,
    ];
    let f = Tensor::from_slice(&fv, &[fv.len()]);
    assert_eq!(
        f.cast(DType::I32).to_vec::<i32>().unwrap(),
        fv.iter().map(|&x| x as i32).collect::<Vec<_>>(),
        "f32->i32 (trunc, saturate, NaN->0)"
    );
    assert_eq!(
        f.cast(DType::U8).to_vec::<u8>().unwrap(),
        fv.iter().map(|&x| x as u8).collect::<Vec<_>>(),
        "f32->u8"
    );
    assert_eq!(
        f.cast(DType::I8).to_vec::<i8>().unwrap(),
        fv.iter().map(|&x| x as i8).collect::<Vec<_>>(),
        "f32->i8"
    );
    assert_eq!(
        f.cast(DType::U32).to_vec::<u32>().unwrap(),
        fv.iter().map(|&x| x as u32).collect::<Vec<_>>(),
        "f32->u32"
    );
    assert_eq!(
        f.cast(DType::I64).to_vec::<i64>().unwrap(),
        fv.iter().map(|&x| x as i64).collect::<Vec<_>>(),
        "f32->i64"
    );
    assert_eq!(
        f.cast(DType::Bool).to_vec::<bool>().unwrap(),
        fv.iter()
            .map(|&x| x != 0.0 || x.is_nan())
            .collect::<Vec<_>>(),
        "f32->bool"
    );
    let bits16 = |v: Vec<f16>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits16(f.cast(DType::F16).to_vec::<f16>().unwrap())
            .iter()
            .zip(&fv)
            .filter(|(_, x)| !x.is_nan())
            .map(|(b, _)| *b)
            .collect::<Vec<_>>(),
        fv.iter()
            .filter(|x| !x.is_nan())
            .map(|&x| f16::from_f32(x).to_bits())
            .collect::<Vec<_>>(),
        "f32->f16 (round to nearest even, overflow to inf)"
    );
    let b = f.cast(DType::BF16).to_vec::<bf16>().unwrap();
    for (got, &x) in b.iter().zip(&fv) {
        let want = bf16::from_f32(x);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "f32->bf16 of {x}: got {got}, want {want}"
        );
    }
    let d = f.cast(DType::F64).to_vec::<f64>().unwrap();
    assert_close_f64(
        &d,
        &fv.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        0.0,
        0.0,
        "f32->f64",
    );

    // Integers to floats round to nearest even; ints to ints wrap.
    let iv = vec![16_777_217i32, -16_777_219, i32::MAX, i32::MIN, 300, -1, 0];
    let i = Tensor::from_slice(&iv, &[iv.len()]);
    assert_eq!(
        i.cast(DType::F32).to_vec::<f32>().unwrap(),
        iv.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        "i32->f32"
    );
    assert_eq!(
        i.cast(DType::U8).to_vec::<u8>().unwrap(),
        iv.iter().map(|&x| x as u8).collect::<Vec<_>>(),
        "i32->u8"
    );
    assert_eq!(
        i.cast(DType::I8).to_vec::<i8>().unwrap(),
        iv.iter().map(|&x| x as i8).collect::<Vec<_>>(),
        "i32->i8"
    );
    assert_eq!(
        i.cast(DType::U32).to_vec::<u32>().unwrap(),
        iv.iter().map(|&x| x as u32).collect::<Vec<_>>(),
        "i32->u32"
    );
    assert_eq!(
        i.cast(DType::I64).to_vec::<i64>().unwrap(),
        iv.iter().map(|&x| x as i64).collect::<Vec<_>>(),
        "i32->i64"
    );
    assert_eq!(
        i.cast(DType::F64).to_vec::<f64>().unwrap(),
        iv.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        "i32->f64"
    );
    assert_eq!(
        i.cast(DType::Bool).to_vec::<bool>().unwrap(),
        iv.iter().map(|&x| x != 0).collect::<Vec<_>>(),
        "i32->bool"
    );
    // (2^60 + 2^36 + 1 rounds up in one step, but to 2^60 through f64: no double rounding.)
    let lv = vec![
        (1i64 << 53) + 1,
        -(1i64 << 60) - 1,
        i64::MAX,
        5_000_000_000,
        (1i64 << 60) + (1 << 36) + 1,
    ];
    let l = Tensor::from_slice(&lv, &[5]);
    assert_eq!(
        l.cast(DType::F32).to_vec::<f32>().unwrap(),
        lv.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        "i64->f32"
    );
    assert_eq!(
        l.cast(DType::F64).to_vec::<f64>().unwrap(),
        lv.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        "i64->f64"
    );
    assert_eq!(
        l.cast(DType::I32).to_vec::<i32>().unwrap(),
        lv.iter().map(|&x| x as i32).collect::<Vec<_>>(),
        "i64->i32"
    );
    let uv = vec![u32::MAX, 0x8000_0001, 5];
    let u = Tensor::from_slice(&uv, &[3]);
    assert_eq!(
        u.cast(DType::F32).to_vec::<f32>().unwrap(),
        uv.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        "u32->f32"
    );
    assert_eq!(
        u.cast(DType::I64).to_vec::<i64>().unwrap(),
        uv.iter().map(|&x| x as i64).collect::<Vec<_>>(),
        "u32->i64"
    );
    assert_eq!(
        u.cast(DType::I32).to_vec::<i32>().unwrap(),
        uv.iter().map(|&x| x as i32).collect::<Vec<_>>(),
        "u32->i32"
    );
    let bv = vec![true, false, true];
    let bt = Tensor::from_slice(&bv, &[3]);
    assert_eq!(
        bt.cast(DType::F32).to_vec::<f32>().unwrap(),
        vec![1.0, 0.0, 1.0],
        "bool->f32"
    );
    assert_eq!(
        bt.cast(DType::I32).to_vec::<i32>().unwrap(),
        vec![1, 0, 1],
        "bool->i32"
    );
    // Half precision to wider floats is exact.
    let hv: Vec<f16> = [0.1f32, -2.5, 65504.0, 6e-8]
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let h = Tensor::from_slice(&hv, &[4]);
    assert_eq!(
        h.cast(DType::F32).to_vec::<f32>().unwrap(),
        hv.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        "f16->f32"
    );
    assert_eq!(
        h.cast(DType::BF16).to_vec::<bf16>().unwrap(),
        hv.iter()
            .map(|x| bf16::from_f32(x.to_f32()))
            .collect::<Vec<_>>(),
        "f16->bf16"
    );
    let gv: Vec<bf16> = [0.1f32, -3.0e38, 1.0e-3]
        .iter()
        .map(|&x| bf16::from_f32(x))
        .collect();
    let g = Tensor::from_slice(&gv, &[3]);
    assert_eq!(
        g.cast(DType::F32).to_vec::<f32>().unwrap(),
        gv.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        "bf16->f32"
    );
    let dv = vec![0.1f64, 1e300, -1e-300, 1.0 + f64::EPSILON];
    let dd = Tensor::from_slice(&dv, &[4]);
    assert_eq!(
        dd.cast(DType::F32).to_vec::<f32>().unwrap(),
        dv.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        "f64->f32"
    );
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn casts_match_reference(c in case(SHAPES, f32_special)) {
        let x = c.tensor();
        for d in [DType::Bool, DType::I8, DType::U8, DType::I32, DType::U32, DType::I64, DType::F16, DType::BF16, DType::F64] {
            check(&x.cast(d), 0.0, 0.0, &format!("cast f32->{d} {:?} {:?}", c.shape, c.layout));
            check(&x.cast(d).cast(DType::F32), 0.0, 0.0, &format!("cast f32->{d}->f32 {:?} {:?}", c.shape, c.layout));
        }
    }

    #[test]
    fn int_casts_match_reference(c in case(SHAPES, i32_special)) {
        let x = c.tensor();
        for d in [DType::Bool, DType::I8, DType::U8, DType::U32, DType::I64, DType::F16, DType::BF16, DType::F32, DType::F64] {
            check(&x.cast(d), 0.0, 0.0, &format!("cast i32->{d} {:?} {:?}", c.shape, c.layout));
        }
    }
}

#[test]
fn bitcasts_reinterpret_bits() {
    let fv = vec![1.0f32, -2.5, 0.0, -0.0, f32::INFINITY, 1e-40, 3.4e38];
    let f = Tensor::from_slice(&fv, &[fv.len()]);
    assert_eq!(
        f.bitcast(DType::U32).to_vec::<u32>().unwrap(),
        fv.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "f32->u32"
    );
    assert_eq!(
        f.bitcast(DType::I32).to_vec::<i32>().unwrap(),
        fv.iter().map(|x| x.to_bits() as i32).collect::<Vec<_>>(),
        "f32->i32"
    );
    let iv = vec![0x3f80_0000u32, 0x4049_0fdb, 0xff80_0000, 1];
    let i = Tensor::from_slice(&iv, &[4]);
    assert_eq!(
        i.bitcast(DType::F32).to_vec::<f32>().unwrap(),
        iv.iter().map(|&x| f32::from_bits(x)).collect::<Vec<_>>(),
        "u32->f32"
    );
    assert_eq!(
        i.bitcast(DType::I32).to_vec::<i32>().unwrap(),
        iv.iter().map(|&x| x as i32).collect::<Vec<_>>(),
        "u32->i32"
    );
    let dv = vec![1.5f64, -0.1, f64::MAX];
    let d = Tensor::from_slice(&dv, &[3]);
    assert_eq!(
        d.bitcast(DType::I64).to_vec::<i64>().unwrap(),
        dv.iter().map(|x| x.to_bits() as i64).collect::<Vec<_>>(),
        "f64->i64"
    );
    let hv: Vec<f16> = [1.0f32, -0.5, 100.0]
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let h = Tensor::from_slice(&hv, &[3]);
    assert_eq!(
        h.bitcast(DType::BF16)
            .to_vec::<bf16>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>(),
        hv.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "f16->bf16"
    );
    let bv = vec![0u8, 127, 128, 255];
    let b = Tensor::from_slice(&bv, &[4]);
    assert_eq!(
        b.bitcast(DType::I8).to_vec::<i8>().unwrap(),
        vec![0, 127, -128, -1],
        "u8->i8"
    );
    // A bitcast inside a fused expression, on a non-contiguous view.
    let x = Tensor::from_slice(&fv, &[fv.len()]).flip(0);
    check(
        &x.abs().bitcast(DType::I32).shr(23i32),
        0.0,
        0.0,
        "exponent bits of |x|",
    );
}

// ---- other float dtypes -------------------------------------------------------------------------

#[test]
fn f16_bf16_f64_elementwise() {
    let xs: Vec<f32> = vec![
        -3.5,
        -1.0,
        -0.3,
        0.0,
        0.25,
        1.0,
        2.75,
        7.0,
        f32::NAN,
        f32::INFINITY,
    ];
    let ys: Vec<f32> = vec![2.0, 0.5, 1.5, -1.0, 4.0, -2.0, 0.75, 3.0, 1.0, -1.0];
    // f16 / bf16: the device may compute in f32 and round each op; transcendentals may differ
    // from the correctly rounded reference by one 16-bit ulp.
    for (dtype, tol) in [(DType::F16, 1e-3), (DType::BF16, 8e-3)] {
        let x = Tensor::from_slice(&xs, &[10])
            .cast(dtype)
            .realize()
            .unwrap()
            .clone();
        let y = Tensor::from_slice(&ys, &[10])
            .cast(dtype)
            .realize()
            .unwrap()
            .clone();
        assert_eq!((&x + &y).dtype(), dtype);
        check(&(&x + &y), 0.0, 0.0, &format!("{dtype} add"));
        check(&(&x * &y), 0.0, 0.0, &format!("{dtype} mul"));
        check(&(&x / &y), tol, 0.0, &format!("{dtype} div"));
        check(&x.maximum(&y), 0.0, 0.0, &format!("{dtype} maximum"));
        check(&x.lt(&y), 0.0, 0.0, &format!("{dtype} lt"));
        check(&x.relu(), 0.0, 0.0, &format!("{dtype} relu"));
        check(&x.floor(), 0.0, 0.0, &format!("{dtype} floor"));
        check(&x.round(), 0.0, 0.0, &format!("{dtype} round"));
        check(&x.exp(), tol, 1e-3, &format!("{dtype} exp"));
        check(&x.abs().sqrt(), tol, 0.0, &format!("{dtype} sqrt"));
        check(&x.sigmoid(), tol, 1e-3, &format!("{dtype} sigmoid"));
        check(&x.sin(), tol, 1e-3, &format!("{dtype} sin"));
        // Mixed 16-bit dtypes promote to f32.
        let other = if dtype == DType::F16 {
            DType::BF16
        } else {
            DType::F16
        };
        let z = &x + &y.cast(other);
        assert_eq!(z.dtype(), DType::F32);
        check(&z, 0.0, 0.0, &format!("{dtype} + {other}"));
        // Host values: 16-bit results round the f32 result.
        let expected: Vec<f64> = xs
            .iter()
            .zip(&ys)
            .map(|(&a, &b)| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b) as f64
                }
            })
            .collect();
        let got = f64s(&x.maximum(&y));
        assert_close_f64(&got, &expected, tol, 0.0, &format!("{dtype} maximum host"));
    }
    // f64 keeps double precision.
    let xd: Vec<f64> = xs.iter().map(|&v| v as f64 + 1e-12).collect();
    let x = Tensor::from_slice(&xd, &[10]);
    assert_eq!(x.exp().dtype(), DType::F64);
    check(&x.exp(), 1e-12, 1e-14, "f64 exp");
    check(&x.sin(), 1e-12, 1e-14, "f64 sin");
    check(&x.abs().log(), 1e-12, 1e-14, "f64 log");
    check(&x.tanh(), 1e-12, 1e-14, "f64 tanh");
    check(&(&x * 3.0 + 1.0), 0.0, 0.0, "f64 affine");
    let expected: Vec<f64> = xd.iter().map(|v| v * 3.0 + 1.0).collect();
    assert_close_f64(
        &f64s(&(&x * 3.0 + 1.0)),
        &expected,
        0.0,
        0.0,
        "f64 affine host",
    );
    let e: Vec<f64> = xd.iter().map(|v| v.exp()).collect();
    assert_close_f64(&f64s(&x.exp()), &e, 1e-12, 0.0, "f64 exp host");
}

#[test]
fn zero_size_and_large_elementwise() {
    let e = Tensor::from_vec(Vec::<f32>::new(), &[3, 0]);
    let y = (&e * 2.0).exp();
    assert_eq!(y.shape(), vec![3, 0]);
    assert!(y.to_vec::<f32>().unwrap().is_empty());
    // A size that is not a multiple of any vector width, big enough to be split across threads.
    let n = 100_003;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 1001) as f32 - 500.0) * 0.01)
        .collect();
    let x = Tensor::from_slice(&v, &[n]);
    let got = (&x * &x + 1.0).sqrt().to_vec::<f32>().unwrap();
    for (i, (&g, &a)) in got.iter().zip(&v).enumerate() {
        let want = (a * a + 1.0).sqrt();
        assert!(
            (g - want).abs() <= 1e-6 * want,
            "element {i}: got {g}, want {want}"
        );
    }
}
