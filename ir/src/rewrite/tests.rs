//! Per-rule tests: a rewrite each rule must find and one it must not make, with the values of
//! the original and the rewritten graph compared bit for bit under the reference evaluator
//! (inputs include NaN, ±Inf, ±0 and negative integers).

use super::*;
use crate::dtype::{DType, Scalar};
use crate::graph::{Node, NodeRef};
use crate::ops::{BinaryOp, BufferHandle, Op, ReduceOp, TernaryOp, UnaryOp};
use crate::reference::{evaluate, RefData, RefTensor};
use std::sync::Arc;

fn dev() -> Arc<str> {
    Arc::from("cpu")
}

/// A realized leaf of `dtype` and `shape`.
fn leaf(dtype: DType, shape: &[usize]) -> NodeRef {
    Node::buffer(BufferHandle::new(Arc::new(())), dtype, shape, &dev())
}

fn konst(v: Scalar, dtype: DType, shape: &[usize]) -> NodeRef {
    Node::constant(v, dtype, shape, &dev())
}

fn f(v: f64) -> Scalar {
    Scalar::Float(v)
}

fn i(v: i64) -> Scalar {
    Scalar::Int(v)
}

fn bin(op: BinaryOp, a: &NodeRef, b: &NodeRef) -> NodeRef {
    Node::binary(op, a, b)
}

/// A node built without the constructors' own folding (to test the e-graph's).
fn raw(op: Op, src: &[&NodeRef], dtype: DType, shape: &[usize]) -> NodeRef {
    Node::intern(
        op,
        src.iter().map(|s| (*s).clone()).collect(),
        dtype,
        shape.to_vec(),
        dev(),
    )
}

fn rewrite(t: &NodeRef) -> NodeRef {
    rewrite_graph(std::slice::from_ref(t), &RewriteConfig::default())[0].clone()
}

fn rewrite_fast(t: &NodeRef) -> NodeRef {
    let config = RewriteConfig {
        options: RuleOptions { fast_math: true },
        ..RewriteConfig::default()
    };
    rewrite_graph(std::slice::from_ref(t), &config)[0].clone()
}

/// Deterministic leaf values with the special cases in them.
fn leaf_values(n: &Node) -> RefTensor {
    let count = n.numel();
    let seed = n.id() as usize;
    if n.dtype().is_float() {
        let special = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            1.5,
            -2.25,
        ];
        let v: Vec<f64> = (0..count)
            .map(|k| special[(k + seed) % special.len()] * if k % 11 == 10 { 3.0 } else { 1.0 })
            .collect();
        RefTensor::from_f64(n.dtype(), n.shape(), &v)
    } else {
        let v: Vec<i64> = (0..count)
            .map(|k| ((k * 7 + seed * 3) % 23) as i64 - 11)
            .collect();
        RefTensor::from_i64(n.dtype(), n.shape(), &v)
    }
}

fn bits(t: &RefTensor) -> Vec<u64> {
    match &t.data {
        RefData::Float(v) => v.iter().map(|x| x.to_bits()).collect(),
        RefData::Int(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

/// The two graphs compute bit-identical values.
fn assert_same_values(a: &NodeRef, b: &NodeRef) {
    let va = evaluate(a, &mut |n| leaf_values(n));
    let vb = evaluate(b, &mut |n| leaf_values(n));
    assert_eq!(va.shape, vb.shape);
    assert_eq!(va.dtype, vb.dtype);
    assert_eq!(bits(&va), bits(&vb), "{a:?} vs {b:?}: {va:?} vs {vb:?}");
}

/// The rewrite is exactly `expected` (pointer-equal nodes: hash-consed) and keeps the values.
fn assert_rewrites_to(t: &NodeRef, expected: &NodeRef) {
    let r = rewrite(t);
    assert!(
        Arc::ptr_eq(&r, expected),
        "{t:?} rewrote to {r:?}, expected {expected:?}"
    );
    assert_same_values(t, &r);
}

/// The default (exact) rewrite leaves `t` as it is.
fn assert_unchanged(t: &NodeRef) {
    let r = rewrite(t);
    assert!(Arc::ptr_eq(&r, t), "{t:?} must stay, got {r:?}");
}

// ---- constant folding --------------------------------------------------------------------

#[test]
fn folds_constants_with_reference_semantics() {
    let s = [3];
    let x = leaf(DType::F32, &s);
    let two = konst(f(2.0), DType::F32, &s);
    let three = konst(f(3.0), DType::F32, &s);
    let t = bin(BinaryOp::Mul, &x, &bin(BinaryOp::Add, &two, &three));
    assert_rewrites_to(&t, &bin(BinaryOp::Mul, &x, &konst(f(5.0), DType::F32, &s)));
    // Integer division by zero is 0 in the reference, and so in the folded constant.
    let seven = konst(i(7), DType::I32, &s);
    let zero = konst(i(0), DType::I32, &s);
    let q = bin(BinaryOp::IDiv, &seven, &zero);
    let folded = rewrite(&q);
    assert!(
        matches!(folded.op(), Op::Const(v) if v.as_i64() == 0),
        "{folded:?}"
    );
    // recip(3) is rounded to f32 exactly as the graph would round it.
    let r = Node::unary(UnaryOp::Recip, &three);
    let folded = rewrite(&r);
    assert!(matches!(folded.op(), Op::Const(v) if v.as_f64() == (1.0f64 / 3.0) as f32 as f64));
}

#[test]
fn does_not_fold_leaves_or_when_disabled() {
    let x = leaf(DType::F32, &[3]);
    let e = Node::unary(UnaryOp::Exp2, &x);
    assert_unchanged(&e);
    let a = Node::arange(0, DType::I32, &[4], &dev());
    let t = bin(BinaryOp::Add, &a, &a);
    assert_unchanged(&t);
    let two = konst(f(2.0), DType::F32, &[3]);
    let s = bin(BinaryOp::Add, &two, &two);
    let config = RewriteConfig::only(&[], false);
    assert!(Arc::ptr_eq(
        &rewrite_graph(std::slice::from_ref(&s), &config)[0],
        &s
    ));
}

// ---- algebraic ---------------------------------------------------------------------------

#[test]
fn mul_one() {
    let x = leaf(DType::F32, &[4]);
    let one = konst(f(1.0), DType::F32, &[4]);
    assert_rewrites_to(&bin(BinaryOp::Mul, &one, &x), &x);
    let b = leaf(DType::Bool, &[4]);
    let t = konst(Scalar::Bool(true), DType::Bool, &[4]);
    assert_rewrites_to(&bin(BinaryOp::Mul, &b, &t), &b);
    // must not: x * 2
    assert_unchanged(&bin(BinaryOp::Mul, &x, &konst(f(2.0), DType::F32, &[4])));
}

#[test]
fn add_zero() {
    let n = leaf(DType::I32, &[5]);
    assert_rewrites_to(&bin(BinaryOp::Add, &n, &konst(i(0), DType::I32, &[5])), &n);
    let x = leaf(DType::F32, &[7]);
    assert_rewrites_to(
        &bin(BinaryOp::Add, &x, &konst(f(-0.0), DType::F32, &[7])),
        &x,
    );
    // must not: x + (+0.0) maps -0 to +0.
    let plus = bin(BinaryOp::Add, &x, &konst(f(0.0), DType::F32, &[7]));
    assert_unchanged(&plus);
    assert!(Arc::ptr_eq(&rewrite_fast(&plus), &x), "fast-math drops it");
}

#[test]
fn mul_zero() {
    let n = leaf(DType::I32, &[5]);
    let zero = konst(i(0), DType::I32, &[5]);
    assert_rewrites_to(&bin(BinaryOp::Mul, &n, &zero), &zero);
    // must not: NaN * 0 is NaN.
    let x = leaf(DType::F32, &[7]);
    let fz = konst(f(0.0), DType::F32, &[7]);
    let t = bin(BinaryOp::Mul, &x, &fz);
    assert_unchanged(&t);
    assert!(Arc::ptr_eq(&rewrite_fast(&t), &fz));
}

#[test]
fn neg_neg() {
    let n = leaf(DType::I8, &[9]);
    let nn = Node::unary(UnaryOp::Neg, &Node::unary(UnaryOp::Neg, &n));
    assert_rewrites_to(&nn, &n);
    assert_unchanged(&Node::unary(UnaryOp::Neg, &n));
}

#[test]
fn recip_recip_needs_fast_math() {
    let x = leaf(DType::F32, &[3]);
    let rr = Node::unary(UnaryOp::Recip, &Node::unary(UnaryOp::Recip, &x));
    assert_unchanged(&rr);
    assert!(Arc::ptr_eq(&rewrite_fast(&rr), &x));
}

#[test]
fn where_rules() {
    let a = leaf(DType::F32, &[4]);
    let b = leaf(DType::F32, &[4]);
    let t = konst(Scalar::Bool(true), DType::Bool, &[4]);
    let fl = konst(Scalar::Bool(false), DType::Bool, &[4]);
    assert_rewrites_to(&Node::where_(&t, &a, &b), &a);
    assert_rewrites_to(&Node::where_(&fl, &a, &b), &b);
    let c = leaf(DType::Bool, &[4]);
    assert_rewrites_to(&Node::where_(&c, &a, &a), &a);
    // must not: an unknown condition.
    assert_unchanged(&Node::where_(&c, &a, &b));
}

#[test]
fn idempotent_ops() {
    let x = leaf(DType::F32, &[6]);
    let y = leaf(DType::F32, &[6]);
    assert_rewrites_to(&bin(BinaryOp::Max, &x, &x), &x);
    let n = leaf(DType::U32, &[6]);
    assert_rewrites_to(&bin(BinaryOp::And, &n, &n), &n);
    assert_rewrites_to(&bin(BinaryOp::Or, &n, &n), &n);
    assert_unchanged(&bin(BinaryOp::Max, &x, &y));
}

#[test]
fn sub_self() {
    let n = leaf(DType::I32, &[6]);
    let t = bin(BinaryOp::Add, &n, &Node::unary(UnaryOp::Neg, &n));
    assert_rewrites_to(&t, &konst(i(0), DType::I32, &[6]));
    // must not: Inf - Inf is NaN.
    let x = leaf(DType::F32, &[6]);
    assert_unchanged(&bin(BinaryOp::Add, &x, &Node::unary(UnaryOp::Neg, &x)));
}

// ---- movement ----------------------------------------------------------------------------

#[test]
fn reshape_reshape() {
    let x = leaf(DType::F32, &[2, 6]);
    let r1 = raw(Op::Reshape, &[&x], DType::F32, &[3, 4]);
    let r2 = raw(Op::Reshape, &[&r1], DType::F32, &[12]);
    assert_rewrites_to(&r2, &Node::reshape(&x, &[12]));
    let back = raw(Op::Reshape, &[&r1], DType::F32, &[2, 6]);
    assert_rewrites_to(&back, &x);
    // must not: a permute in between changes the order.
    let p = Node::permute(&r1, &[1, 0]);
    assert_unchanged(&Node::reshape(&p, &[12]));
}

#[test]
fn permute_permute() {
    let x = leaf(DType::F32, &[2, 3, 4]);
    let p = Node::permute(&x, &[2, 0, 1]);
    assert_rewrites_to(&Node::permute(&p, &[1, 2, 0]), &x);
    let q = Node::permute(&p, &[0, 2, 1]);
    assert_rewrites_to(&q, &Node::permute(&x, &[2, 1, 0]));
    // must not: a reshape in between.
    let r = Node::reshape(&p, &[4, 6]);
    assert_unchanged(&Node::permute(&r, &[1, 0]));
}

#[test]
fn permute_moves_through_a_reduction_to_cancel() {
    // A weight gradient (xᵀ·dy)ᵀ as autograd builds it: permute, reduce, drop the unit axes,
    // permute back. The permutations cancel and the reduction writes the final layout.
    let m = leaf(DType::F32, &[4, 3, 5, 2]);
    let r = Node::reduce(ReduceOp::Sum, &Node::permute(&m, &[0, 1, 3, 2]), &[0, 1]);
    let back = Node::permute(&Node::reshape(&r, &[2, 5]), &[1, 0]);
    let expected = Node::reshape(&Node::reduce(ReduceOp::Sum, &m, &[0, 1]), &[5, 2]);
    assert_rewrites_to(&back, &expected);
    // must not: a transpose with nothing to cancel stays on the small reduced value.
    let direct = Node::reshape(&Node::reduce(ReduceOp::Sum, &m, &[0, 1]), &[5, 2]);
    assert_unchanged(&Node::permute(&direct, &[1, 0]));
    // The reduced axes follow the permutation (a max, over a permuted axis).
    let x = leaf(DType::F32, &[5, 4, 2]);
    let mx = Node::reduce(ReduceOp::Max, &Node::permute(&x, &[2, 0, 1]), &[1]);
    let t = Node::permute(&mx, &[1, 2, 0]);
    assert_rewrites_to(&t, &Node::reduce(ReduceOp::Max, &x, &[0]));
}

#[test]
fn permute_moves_below_a_reshape_of_unit_axes_only() {
    let x = leaf(DType::F32, &[3, 1, 4]);
    let q = Node::permute(
        &Node::reshape(&Node::permute(&x, &[2, 1, 0]), &[4, 3]),
        &[1, 0],
    );
    assert_rewrites_to(&q, &Node::reshape(&x, &[3, 4]));
    // must not: a reshape that merges axes changes which elements a permutation moves.
    let y = leaf(DType::F32, &[2, 3, 4]);
    let merged = Node::reshape(&Node::permute(&y, &[1, 0, 2]), &[6, 4]);
    assert_unchanged(&Node::permute(&merged, &[1, 0]));
}

#[test]
fn a_transposing_permute_costs_a_strided_read() {
    let transpose = cost::node_cost(&EOp::Permute(vec![1, 0]), 4096.0, 4.0, &[64, 64]);
    let outer = cost::node_cost(&EOp::Permute(vec![1, 0, 2]), 4096.0, 4.0, &[16, 64, 4]);
    // [64, 1] -> [1, 64] keeps the innermost axis that has more than one element.
    let unit = cost::node_cost(&EOp::Permute(vec![1, 0]), 64.0, 4.0, &[64, 1]);
    assert!(transpose >= 4096.0, "{transpose}");
    assert!(outer <= 0.1 * 4096.0 + 1.0, "{outer}");
    assert!(unit <= 0.1 * 64.0 + 1.0, "{unit}");
}

#[test]
fn expand_expand() {
    let x = leaf(DType::F32, &[1, 1]);
    let e1 = Node::expand(&x, &[1, 3]);
    let e2 = raw(Op::Expand, &[&e1], DType::F32, &[4, 3]);
    assert_rewrites_to(&e2, &Node::expand(&x, &[4, 3]));
    assert_unchanged(&e1);
}

#[test]
fn flip_flip() {
    let x = leaf(DType::I32, &[3, 4]);
    let f0 = Node::flip(&x, &[0]);
    assert_rewrites_to(&Node::flip(&f0, &[0]), &x);
    assert_rewrites_to(&Node::flip(&f0, &[1]), &Node::flip(&x, &[0, 1]));
    assert_unchanged(&f0);
}

#[test]
fn shrink_and_pad_fold() {
    let x = leaf(DType::F32, &[10]);
    let s1 = Node::shrink(&x, &[(2, 9)]);
    assert_rewrites_to(&Node::shrink(&s1, &[(1, 4)]), &Node::shrink(&x, &[(3, 6)]));
    let p1 = Node::pad(&x, &[(1, 2)]);
    assert_rewrites_to(&Node::pad(&p1, &[(3, 0)]), &Node::pad(&x, &[(4, 2)]));
    // shrink of pad inside the source
    let p = Node::pad(&x, &[(2, 3)]);
    assert_rewrites_to(&Node::shrink(&p, &[(2, 12)]), &x);
    assert_rewrites_to(&Node::shrink(&p, &[(4, 8)]), &Node::shrink(&x, &[(2, 6)]));
    // must not: a window that reaches into the padding.
    assert_unchanged(&Node::shrink(&p, &[(1, 8)]));
}

// ---- strength reduction ------------------------------------------------------------------

#[test]
fn unsigned_division_by_powers_of_two() {
    let n = leaf(DType::U32, &[8]);
    let four = konst(i(4), DType::U32, &[8]);
    let shifted = bin(BinaryOp::Shr, &n, &konst(i(2), DType::U32, &[8]));
    assert_rewrites_to(&bin(BinaryOp::IDiv, &n, &four), &shifted);
    let masked = bin(BinaryOp::And, &n, &konst(i(3), DType::U32, &[8]));
    assert_rewrites_to(&bin(BinaryOp::Mod, &n, &four), &masked);
    let s = leaf(DType::I32, &[8]);
    let one = konst(i(1), DType::I32, &[8]);
    assert_rewrites_to(&bin(BinaryOp::IDiv, &s, &one), &s);
    // must not: signed division truncates toward zero, a shift floors.
    let sfour = konst(i(4), DType::I32, &[8]);
    assert_unchanged(&bin(BinaryOp::IDiv, &s, &sfour));
    assert_unchanged(&bin(BinaryOp::Mod, &s, &sfour));
    assert_unchanged(&bin(BinaryOp::IDiv, &n, &konst(i(6), DType::U32, &[8])));
}

#[test]
fn pow_with_small_integer_exponent_needs_fast_math() {
    let x = leaf(DType::F32, &[5]);
    let two = konst(f(2.0), DType::F32, &[5]);
    let p = Node::unary(
        UnaryOp::Exp2,
        &bin(BinaryOp::Mul, &two, &Node::unary(UnaryOp::Log2, &x)),
    );
    assert_unchanged(&p);
    assert!(Arc::ptr_eq(&rewrite_fast(&p), &bin(BinaryOp::Mul, &x, &x)));
    // must not even with fast-math: a fractional exponent.
    let half = konst(f(0.5), DType::F32, &[5]);
    let q = Node::unary(
        UnaryOp::Exp2,
        &bin(BinaryOp::Mul, &half, &Node::unary(UnaryOp::Log2, &x)),
    );
    assert!(Arc::ptr_eq(&rewrite_fast(&q), &q));
}

// ---- reductions of broadcasts ------------------------------------------------------------

#[test]
fn sum_of_broadcast_is_a_product() {
    let x = leaf(DType::F32, &[3, 1]);
    let e = Node::expand(&x, &[3, 5]);
    let s = Node::reduce(ReduceOp::Sum, &e, &[1]);
    let five = konst(f(5.0), DType::F32, &[3, 1]);
    let zero = konst(f(0.0), DType::F32, &[3, 1]);
    let expected = bin(BinaryOp::Add, &bin(BinaryOp::Mul, &x, &five), &zero);
    assert_rewrites_to(&s, &expected);
    let m = Node::reduce(ReduceOp::Max, &e, &[1]);
    assert_rewrites_to(&m, &bin(BinaryOp::Add, &x, &zero));
    let n = leaf(DType::I32, &[1, 4]);
    let ne = Node::expand(&n, &[6, 4]);
    let ns = Node::reduce(ReduceOp::Sum, &ne, &[0]);
    assert_rewrites_to(
        &ns,
        &bin(BinaryOp::Mul, &n, &konst(i(6), DType::I32, &[1, 4])),
    );
    // must not: a reduced axis that was not broadcast; a float product.
    let y = leaf(DType::F32, &[3, 5]);
    assert_unchanged(&Node::reduce(ReduceOp::Sum, &y, &[1]));
    assert_unchanged(&Node::reduce(ReduceOp::Prod, &e, &[1]));
}

// ---- unrolling -----------------------------------------------------------------------------

/// `x` restricted to index `at` along each of `axes` (the other axes whole).
fn element(x: &NodeRef, axes: &[usize], at: &[usize]) -> NodeRef {
    let mut bounds: Vec<(usize, usize)> = x.shape().iter().map(|&n| (0, n)).collect();
    for (&a, &i) in axes.iter().zip(at) {
        bounds[a] = (i, i + 1);
    }
    Node::shrink(x, &bounds)
}

#[test]
fn a_small_reduction_becomes_an_elementwise_kernel() {
    // A 2x2 max-pool window: ((x00 max x01) max x10) max x11, + 0 as the reduction ends.
    let x = leaf(DType::F32, &[3, 2, 5, 2]);
    let m = Node::reduce(ReduceOp::Max, &x, &[1, 3]);
    let at = |i, j| element(&x, &[1, 3], &[i, j]);
    let folded = bin(
        BinaryOp::Max,
        &bin(
            BinaryOp::Max,
            &bin(BinaryOp::Max, &at(0, 0), &at(0, 1)),
            &at(1, 0),
        ),
        &at(1, 1),
    );
    let zero = konst(f(0.0), DType::F32, &[3, 1, 5, 1]);
    let expected = Node::contiguous(&bin(BinaryOp::Add, &folded, &zero));
    assert_rewrites_to(&m, &expected);
    // An integer sum of three: no `+ 0`.
    let n = leaf(DType::I32, &[4, 3]);
    let s = Node::reduce(ReduceOp::Sum, &n, &[1]);
    let e = |j| element(&n, &[1], &[j]);
    let sum = bin(BinaryOp::Add, &bin(BinaryOp::Add, &e(0), &e(1)), &e(2));
    assert_rewrites_to(&s, &Node::contiguous(&sum));
    // must not: five elements per output, one element, or bools.
    assert_unchanged(&Node::reduce(
        ReduceOp::Max,
        &leaf(DType::F32, &[3, 5]),
        &[1],
    ));
    assert_unchanged(&Node::reduce(
        ReduceOp::Sum,
        &leaf(DType::F32, &[3, 1]),
        &[1],
    ));
    assert_unchanged(&Node::reduce(
        ReduceOp::Max,
        &leaf(DType::Bool, &[3, 2]),
        &[1],
    ));
}

#[test]
fn an_unrolled_reduction_keeps_signed_zeros_nan_and_infinities() {
    // Every float reduction over windows of -0s, NaNs and infinities, bit for bit.
    let specials = [
        -0.0,
        -0.0,
        f64::NAN,
        1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        2.5,
    ];
    let x = leaf(DType::F32, &[4, 2]);
    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Prod] {
        let r = Node::reduce(op, &x, &[1]);
        let u = rewrite(&r);
        assert!(
            matches!(u.op(), Op::Contiguous),
            "{op:?} not unrolled: {u:?}"
        );
        let values = |n: &Node| RefTensor::from_f64(n.dtype(), n.shape(), &specials);
        let (a, b) = (
            evaluate(&r, &mut |n| values(n)),
            evaluate(&u, &mut |n| values(n)),
        );
        assert_eq!(bits(&a), bits(&b), "{op:?}: {a:?} vs {b:?}");
    }
}

// ---- distributivity ----------------------------------------------------------------------

#[test]
fn factoring_is_exact_for_integers_only() {
    let a = leaf(DType::I32, &[4]);
    let b = leaf(DType::I32, &[4]);
    let c = leaf(DType::I32, &[4]);
    let t = bin(
        BinaryOp::Add,
        &bin(BinaryOp::Mul, &a, &b),
        &bin(BinaryOp::Mul, &c, &a),
    );
    assert_rewrites_to(&t, &bin(BinaryOp::Mul, &a, &bin(BinaryOp::Add, &b, &c)));
    let x = leaf(DType::F32, &[4]);
    let y = leaf(DType::F32, &[4]);
    let z = leaf(DType::F32, &[4]);
    let ft = bin(
        BinaryOp::Add,
        &bin(BinaryOp::Mul, &x, &y),
        &bin(BinaryOp::Mul, &x, &z),
    );
    assert_unchanged(&ft);
    let fast = rewrite_fast(&ft);
    assert!(Arc::ptr_eq(
        &fast,
        &bin(BinaryOp::Mul, &x, &bin(BinaryOp::Add, &y, &z))
    ));
}

#[test]
fn scaling_factors_out_of_integer_sums() {
    let x = leaf(DType::I32, &[4, 8]);
    let c = leaf(DType::I32, &[4, 1]);
    let s = Node::reduce(
        ReduceOp::Sum,
        &bin(BinaryOp::Mul, &x, &Node::expand(&c, &[4, 8])),
        &[1],
    );
    let expected = bin(BinaryOp::Mul, &Node::reduce(ReduceOp::Sum, &x, &[1]), &c);
    assert_rewrites_to(&s, &expected);
    // must not: floats (rounding), or a scale that varies along the reduced axis.
    let fx = leaf(DType::F32, &[4, 8]);
    let fc = leaf(DType::F32, &[4, 1]);
    let fs = Node::reduce(
        ReduceOp::Sum,
        &bin(BinaryOp::Mul, &fx, &Node::expand(&fc, &[4, 8])),
        &[1],
    );
    assert_unchanged(&fs);
    let row = leaf(DType::I32, &[1, 8]);
    let vs = Node::reduce(
        ReduceOp::Sum,
        &bin(BinaryOp::Mul, &x, &Node::expand(&row, &[4, 8])),
        &[1],
    );
    assert_unchanged(&vs);
}

// ---- extraction, limits, templates ---------------------------------------------------------

#[test]
fn cost_prefers_less_work_not_fewer_nodes() {
    // (x*1) stays out, and a where with a known condition drops the unused branch's exp2.
    let x = leaf(DType::F32, &[64]);
    let t = konst(Scalar::Bool(true), DType::Bool, &[64]);
    let w = Node::where_(&t, &x, &Node::unary(UnaryOp::Exp2, &x));
    assert_rewrites_to(&w, &x);
    let lifted = Lifted::new(std::slice::from_ref(&w));
    let (_, report) = optimize(&lifted.structure, &RewriteConfig::default());
    assert!(report.cost_after < report.cost_before, "{report:?}");
}

#[test]
fn a_second_user_reads_a_reduction_instead_of_recomputing_it() {
    // r is a target; its transpose equals max(x) over axis 1, a reduction that is cheaper as a
    // tree (no strided permute of x) but would be a second reduction of x. (y*1 makes the
    // rewrite worth applying either way.)
    let x = leaf(DType::F32, &[4, 8, 2]);
    let r = Node::reduce(ReduceOp::Max, &Node::permute(&x, &[0, 2, 1]), &[2]);
    let t = Node::permute(&r, &[0, 2, 1]);
    let y = leaf(DType::F32, &[256]);
    let y1 = bin(BinaryOp::Mul, &y, &konst(f(1.0), DType::F32, &[256]));
    let out = rewrite_graph(&[r.clone(), t.clone(), y1], &RewriteConfig::default());
    assert!(Arc::ptr_eq(&out[2], &y));
    let lifted = Lifted::new(&out);
    let reductions = lifted
        .structure
        .nodes
        .iter()
        .filter(|n| matches!(n.op, EOp::Reduce(..)))
        .count();
    assert_eq!(reductions, 1, "{out:?}");
    assert_same_values(&t, &out[1]);
    assert_same_values(&r, &out[0]);
}

#[test]
fn limits_bound_a_large_graph() {
    let one = konst(f(1.0), DType::F32, &[8]);
    let mut x = leaf(DType::F32, &[8]);
    for k in 0..3000 {
        x = if k % 3 == 0 {
            bin(BinaryOp::Mul, &x, &one)
        } else {
            Node::unary(UnaryOp::Neg, &x)
        };
    }
    let lifted = Lifted::new(std::slice::from_ref(&x));
    let config = RewriteConfig {
        node_limit: 500,
        ..RewriteConfig::default()
    };
    let start = std::time::Instant::now();
    let (template, report) = optimize(&lifted.structure, &config);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{report:?}"
    );
    // egg checks the limit between iterations: one iteration may overshoot it, not more.
    assert!(
        report.stop_reason.contains("NodeLimit") || report.stop_reason.contains("TimeLimit"),
        "{report:?}"
    );
    let n = lifted.structure.nodes.len();
    assert!(report.egraph_nodes <= 2 * (n + 500), "{report:?}");
    assert!(template.op_count() <= lifted.structure.nodes.len());
}

#[test]
fn templates_rebuild_on_new_leaves() {
    let build = |x: &NodeRef| {
        let one = konst(f(1.0), DType::F32, &[3]);
        Node::unary(UnaryOp::Sqrt, &bin(BinaryOp::Mul, x, &one))
    };
    let a = leaf(DType::F32, &[3]);
    let b = leaf(DType::F32, &[3]);
    let (la, lb) = (Lifted::new(&[build(&a)]), Lifted::new(&[build(&b)]));
    assert_eq!(
        la.structure, lb.structure,
        "same structure on other buffers"
    );
    let (template, _) = optimize(&la.structure, &RewriteConfig::default());
    let built = template.instantiate(&lb.nodes, &lb.leaves);
    let root = &built[template.roots[0] as usize];
    assert!(Arc::ptr_eq(root, &Node::unary(UnaryOp::Sqrt, &b)));
    // The original Sqrt node maps to the rewritten one.
    let sqrt_pos = la.structure.roots[0] as usize;
    assert_eq!(template.alias[sqrt_pos], Some(template.roots[0]));
}

#[test]
fn instantiation_reuses_the_nodes_the_rewrite_kept() {
    let build = |x: &NodeRef, y: &NodeRef| {
        let one = konst(f(1.0), DType::F32, &[3]);
        let kept = Node::unary(UnaryOp::Exp2, y);
        let changed = Node::unary(UnaryOp::Sqrt, &bin(BinaryOp::Mul, x, &one));
        (bin(BinaryOp::Add, &kept, &changed), kept)
    };
    let (x, y) = (leaf(DType::F32, &[3]), leaf(DType::F32, &[3]));
    let (root, kept) = build(&x, &y);
    let lifted = Lifted::new(std::slice::from_ref(&root));
    let (template, _) = optimize(&lifted.structure, &RewriteConfig::default());
    assert!(!template.is_identity);
    let original_of = |node: &NodeRef| {
        lifted
            .nodes
            .iter()
            .position(|n| Arc::ptr_eq(n, node))
            .map(|p| p as u32)
    };
    // On new leaves: the kept exp2 node is the caller's, the changed part is built.
    let (x2, y2) = (leaf(DType::F32, &[3]), leaf(DType::F32, &[3]));
    let (root2, kept2) = build(&x2, &y2);
    let lifted2 = Lifted::new(std::slice::from_ref(&root2));
    assert_eq!(lifted.structure, lifted2.structure);
    let built = template.instantiate(&lifted2.nodes, &lifted2.leaves);
    let exp2_at = template
        .nodes
        .iter()
        .position(|n| matches!(n.op, EOp::Unary(UnaryOp::Exp2)))
        .expect("exp2 kept");
    assert_eq!(template.reuse[exp2_at], original_of(&kept));
    assert!(Arc::ptr_eq(&built[exp2_at], &kept2), "kept node reused");
    let root_at = template.roots[0] as usize;
    assert_eq!(template.reuse[root_at], None, "the changed sum is new");
    assert!(!Arc::ptr_eq(&built[root_at], &root2));
}

#[test]
fn mulacc_and_ternaries_survive() {
    let a = leaf(DType::F32, &[4]);
    let b = leaf(DType::F32, &[4]);
    let m = Node::mulacc(&a, &b, &a);
    assert_unchanged(&m);
    let _ = TernaryOp::MulAcc;
}
