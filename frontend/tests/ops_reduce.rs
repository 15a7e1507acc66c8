//! Reductions: sum, mean, max, min, prod, var, std, argmax, argmin, any, all, softmax,
//! log_softmax, logsumexp and cumsum over one axis, several axes, all axes and negative axes,
//! with and without kept axes, on contiguous and non-contiguous inputs.
//!
//! Tolerances: the reference accumulates in f64 and rounds once, the device accumulates in the
//! tensor's dtype, so float sums get an absolute tolerance proportional to the number of summed
//! terms times their magnitude (|x| <= 4 here): 4e-6 * n. Max, min, argmax, any, all and integer
//! reductions are exact.

mod common;

use common::*;
use ferrograd::testing::check;
use ferrograd::{All, DType, Tensor};
use proptest::prelude::*;

const R_SHAPES: &[&[usize]] = &[
    &[1],
    &[5],
    &[33],
    &[3, 5],
    &[7, 1, 3],
    &[4, 33],
    &[2, 3, 5],
    &[3, 4, 5, 2],
    &[16],
    &[8, 64],
    &[4, 16, 4],
];

/// Absolute tolerance for a float sum of `n` terms of magnitude <= 4.
fn sum_atol(n: usize) -> f64 {
    4e-6 * n as f64
}

/// An axis of `shape` picked by `pick`, returned as a negative axis when `neg`.
fn axis_of(shape: &[usize], pick: usize, neg: bool) -> i64 {
    let a = (pick % shape.len()) as i64;
    if neg {
        a - shape.len() as i64
    } else {
        a
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn float_reductions_match_reference(c in case(R_SHAPES, f32_small), pick in 0usize..8, neg: bool) {
        let x = c.tensor();
        let s = c.shape.clone();
        let ax = axis_of(&s, pick, neg);
        let n = numel(&s);
        let what = |op: &str| format!("{op} axis {ax} of {s:?} {:?}", c.layout);
        check(&x.sum(ax), 1e-5, sum_atol(n), &what("sum"));
        check(&x.sum_keepdim(ax), 1e-5, sum_atol(n), &what("sum_keepdim"));
        check(&x.sum(All), 1e-5, sum_atol(n), &what("sum all"));
        check(&x.sum_keepdim(All), 1e-5, sum_atol(n), &what("sum_keepdim all"));
        check(&x.mean(ax), 1e-5, sum_atol(n), &what("mean"));
        check(&x.mean_keepdim(All), 1e-5, sum_atol(n), &what("mean_keepdim all"));
        check(&x.max(ax), 0.0, 0.0, &what("max"));
        check(&x.max_keepdim(ax), 0.0, 0.0, &what("max_keepdim"));
        check(&x.min(ax), 0.0, 0.0, &what("min"));
        check(&x.min_keepdim(All), 0.0, 0.0, &what("min_keepdim all"));
        check(&x.max(All), 0.0, 0.0, &what("max all"));
        check(&x.argmax(ax), 0.0, 0.0, &what("argmax"));
        check(&x.argmin(ax), 0.0, 0.0, &what("argmin"));
        check(&x.argmax_all(), 0.0, 0.0, &what("argmax_all"));
        check(&x.argmin_all(), 0.0, 0.0, &what("argmin_all"));
        check(&x.var(ax, 1), 1e-4, 1e-5 * n as f64, &what("var"));
        check(&x.var_keepdim(All, 0), 1e-4, 1e-5 * n as f64, &what("var_keepdim all"));
        check(&x.std(ax, 0), 1e-4, 1e-5 * n as f64, &what("std"));
        check(&x.std_keepdim(ax, 1), 1e-4, 1e-5 * n as f64, &what("std_keepdim"));
        check(&x.gt(1.0).any(ax), 0.0, 0.0, &what("any"));
        check(&x.gt(-3.0).all(ax), 0.0, 0.0, &what("all"));
        check(&x.softmax(ax), 1e-5, 1e-6, &what("softmax"));
        check(&x.log_softmax(ax), 1e-5, 1e-5, &what("log_softmax"));
        check(&x.logsumexp(ax), 1e-5, 1e-5, &what("logsumexp"));
        check(&x.logsumexp_keepdim(ax), 1e-5, 1e-5, &what("logsumexp_keepdim"));
        check(&x.cumsum(ax), 1e-5, sum_atol(n), &what("cumsum"));
        if s.len() >= 2 {
            let other = axis_of(&s, pick + 1, !neg);
            check(&x.sum([ax, other]), 1e-5, sum_atol(n), &what("sum two axes"));
            check(&x.sum_keepdim(vec![other, ax]), 1e-5, sum_atol(n), &what("sum_keepdim two axes"));
            check(&x.max([ax, other]), 0.0, 0.0, &what("max two axes"));
            check(&x.min_keepdim([other, ax]), 0.0, 0.0, &what("min_keepdim two axes"));
            check(&x.mean([other, ax]), 1e-5, sum_atol(n), &what("mean two axes"));
        }
    }

    #[test]
    fn prod_matches_reference(c in case(R_SHAPES, || prop_oneof![0.5f32..1.5, -1.5f32..-0.5]), pick in 0usize..8) {
        let x = c.tensor();
        let ax = axis_of(&c.shape, pick, false);
        let n = numel(&c.shape) as f64;
        let what = format!("prod axis {ax} of {:?} {:?}", c.shape, c.layout);
        check(&x.prod(ax), 1e-6 * n + 1e-6, 0.0, &what);
        check(&x.prod_keepdim(All), 1e-6 * n + 1e-6, 0.0, &what);
    }

    #[test]
    fn reductions_with_nan_and_inf_match_reference(c in case(R_SHAPES, f32_special), pick in 0usize..8) {
        let x = c.tensor();
        let ax = axis_of(&c.shape, pick, true);
        let what = |op: &str| format!("{op} axis {ax} of {:?} {:?}", c.shape, c.layout);
        check(&x.max(ax), 0.0, 0.0, &what("max"));
        check(&x.min(ax), 0.0, 0.0, &what("min"));
        check(&x.argmax(ax), 0.0, 0.0, &what("argmax"));
        check(&x.argmin(ax), 0.0, 0.0, &what("argmin"));
        check(&x.any(ax), 0.0, 0.0, &what("any"));
        check(&x.all(ax), 0.0, 0.0, &what("all"));
        check(&x.logsumexp(ax), 1e-5, 1e-4, &what("logsumexp"));
    }

    #[test]
    fn integer_reductions_are_exact(c in case(R_SHAPES, i32_special), pick in 0usize..8) {
        let x = c.tensor();
        let ax = axis_of(&c.shape, pick, false);
        let what = |op: &str| format!("{op} axis {ax} of {:?} {:?}", c.shape, c.layout);
        check(&x.sum(ax), 0.0, 0.0, &what("sum (wrapping)"));
        check(&x.sum(All), 0.0, 0.0, &what("sum all"));
        check(&x.prod(ax), 0.0, 0.0, &what("prod (wrapping)"));
        check(&x.max(ax), 0.0, 0.0, &what("max"));
        check(&x.min(ax), 0.0, 0.0, &what("min"));
        check(&x.argmax(ax), 0.0, 0.0, &what("argmax"));
        check(&x.argmin(ax), 0.0, 0.0, &what("argmin"));
        check(&x.cumsum(ax), 0.0, 0.0, &what("cumsum"));
        check(&x.any(ax), 0.0, 0.0, &what("any"));
        // (Small values: the f32 sum of i32::MIN and i32::MAX depends on the order.)
        check(&x.rem(1000i32).mean(ax), 1e-6, 0.0, &what("mean"));
        let u = x.cast(DType::U8);
        check(&u.sum(ax), 0.0, 0.0, &what("u8 sum"));
        check(&u.max(ax), 0.0, 0.0, &what("u8 max"));
        check(&u.min(ax), 0.0, 0.0, &what("u8 min"));
        let w = x.cast(DType::U32);
        check(&w.max(ax), 0.0, 0.0, &what("u32 max"));
        check(&w.min(ax), 0.0, 0.0, &what("u32 min"));
        check(&x.cast(DType::I64).sum(ax), 0.0, 0.0, &what("i64 sum"));
        check(&x.gt(0i32).sum(ax), 0.0, 0.0, &what("bool sum"));
    }
}

// ---- host expectations --------------------------------------------------------------------------

/// 0, 1, ..., 23 as f32 of shape [2, 3, 4].
fn arange24() -> (Vec<f32>, Tensor) {
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let t = Tensor::from_slice(&v, &[2, 3, 4]);
    (v, t)
}

#[test]
fn sums_over_axes_host_values() {
    let (v, t) = arange24();
    let at = |i: usize, j: usize, k: usize| v[i * 12 + j * 4 + k] as f64;
    let s0 = t.sum(0);
    assert_eq!(s0.shape(), vec![3, 4]);
    let e0: Vec<f64> = (0..3)
        .flat_map(|j| (0..4).map(move |k| (j, k)))
        .map(|(j, k)| at(0, j, k) + at(1, j, k))
        .collect();
    assert_eq!(f64s(&s0), e0, "sum(0)");
    let s1 = t.sum_keepdim(-2);
    assert_eq!(s1.shape(), vec![2, 1, 4]);
    let e1: Vec<f64> = (0..2)
        .flat_map(|i| (0..4).map(move |k| (i, k)))
        .map(|(i, k)| (0..3).map(|j| at(i, j, k)).sum())
        .collect();
    assert_eq!(f64s(&s1), e1, "sum_keepdim(-2)");
    let s02 = t.sum([0, 2]);
    assert_eq!(s02.shape(), vec![3]);
    assert_eq!(f64s(&s02), vec![60.0, 92.0, 124.0], "sum([0, 2])");
    let s02k = t.sum_keepdim([-1, 0]);
    assert_eq!(s02k.shape(), vec![1, 3, 1]);
    assert_eq!(f64s(&s02k), vec![60.0, 92.0, 124.0], "sum_keepdim([-1, 0])");
    let all = t.sum(All);
    assert_eq!(all.shape(), Vec::<usize>::new());
    assert_eq!(all.item::<f32>().unwrap(), 276.0);
    assert_eq!(t.sum_keepdim(All).shape(), vec![1, 1, 1]);
    // On a permuted view: sum over the (new) last axis.
    let p = t.permute([2, 0, 1]).sum(-1);
    assert_eq!(p.shape(), vec![4, 2]);
    let ep: Vec<f64> = (0..4)
        .flat_map(|k| (0..2).map(move |i| (k, i)))
        .map(|(k, i)| (0..3).map(|j| at(i, j, k)).sum())
        .collect();
    assert_eq!(f64s(&p), ep, "permuted sum");
    // Mean, max, min, prod.
    assert_eq!(
        f64s(&t.mean(-1)),
        (0..6).map(|r| (4 * r) as f64 + 1.5).collect::<Vec<_>>(),
        "mean(-1)"
    );
    assert_eq!(
        f64s(&t.max(1)),
        vec![8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0],
        "max(1)"
    );
    assert_eq!(
        f64s(&t.min([0, 1])),
        vec![0.0, 1.0, 2.0, 3.0],
        "min([0, 1])"
    );
    let small = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, -4.0, 0.5, 2.0], &[2, 3]);
    assert_eq!(f64s(&small.prod(1)), vec![6.0, -4.0], "prod(1)");
    assert_eq!(f64s(&small.prod(All)), vec![-24.0], "prod(All)");
    // Integer sums and products.
    let i = Tensor::from_vec(vec![1i32, -2, 3, -4, 5, -6], &[3, 2]);
    assert_eq!(i.sum(0).to_vec::<i32>().unwrap(), vec![9, -12]);
    assert_eq!(i.sum(1).to_vec::<i32>().unwrap(), vec![-1, -1, -1]);
    assert_eq!(i.prod(0).to_vec::<i32>().unwrap(), vec![15, -48]);
    assert_eq!(i.max(All).item::<i32>().unwrap(), 5);
    assert_eq!(i.min(All).item::<i32>().unwrap(), -6);
    let m = i.mean(0);
    assert_eq!(m.dtype(), DType::F32);
    assert_eq!(f64s(&m), vec![3.0, -4.0]);
    // Bools and u8 sum as i32 (no u8 overflow).
    let u = Tensor::from_vec(vec![200u8, 100, 255], &[3]);
    let us = u.sum(0);
    assert_eq!(us.dtype(), DType::I32);
    assert_eq!(us.item::<i32>().unwrap(), 555);
    let b = Tensor::from_vec(vec![true, false, true, true], &[4]);
    assert_eq!(b.sum(0).item::<i32>().unwrap(), 3);
    // u32 above 2^31 and i8 extremes for min/max.
    let w = Tensor::from_vec(vec![5u32, 0x9000_0000, 7], &[3]);
    assert_eq!(w.max(0).item::<u32>().unwrap(), 0x9000_0000);
    assert_eq!(w.min(0).item::<u32>().unwrap(), 5);
    let s8 = Tensor::from_vec(vec![-128i8, 127, 0], &[3]);
    assert_eq!(s8.max(0).item::<i8>().unwrap(), 127);
    assert_eq!(s8.min(0).item::<i8>().unwrap(), -128);
}

#[test]
fn large_sums_and_means() {
    // Long reductions (several vector blocks and threads): 0.25 * (0..n) sums exactly in f32
    // as long as partial sums stay below 2^24.
    let n = 4099;
    let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25).collect();
    let t = Tensor::from_slice(&v, &[n]);
    let expect: f64 = v.iter().map(|&x| x as f64).sum();
    assert_eq!(t.sum(0).item::<f32>().unwrap() as f64, expect);
    let m = t.reshape([1, n]).expand([3, n]).mean(-1);
    assert_close_f64(
        &f64s(&m),
        &[expect / n as f64; 3],
        1e-6,
        0.0,
        "mean of expanded rows",
    );
    let x: Vec<f32> = (0..64 * 129)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let t = Tensor::from_slice(&x, &[64, 129]);
    check(&t.sum(1), 1e-5, sum_atol(129), "sum(1) of 64x129");
    check(&t.sum(0), 1e-5, sum_atol(64), "sum(0) of 64x129");
    check(
        &t.t().sum(0),
        1e-5,
        sum_atol(129),
        "sum(0) of the transpose",
    );
    check(
        &(&t * &t).sum(All),
        1e-5,
        sum_atol(64 * 129) * 4.0,
        "sum of squares",
    );
}

#[test]
fn split_reductions() {
    // Reductions of >= 2^16 elements into few outputs run in two stages.
    let n = 1 << 17;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1024) as f32 / 256.0 - 2.0)
        .collect();
    let t = Tensor::from_slice(&v, &[n]);
    let expect: f64 = v.iter().map(|&x| x as f64).sum();
    assert_close_f64(&f64s(&t.sum(0)), &[expect], 1e-5, 1e-3, "sum of 2^17");
    check(&t.sum(All), 1e-5, 1e-3, "sum of 2^17 vs reference");
    check(&t.mean(0), 1e-5, 1e-6, "mean of 2^17");
    let m = t.reshape([2, 256, 256]);
    check(
        &m.sum([1, 2]),
        1e-5,
        1e-3,
        "sum of trailing axes, 2 outputs",
    );
    check(&m.max([-2, -1]), 0.0, 0.0, "max of trailing axes");
    check(
        &m.min_keepdim([1, 2]),
        0.0,
        0.0,
        "min_keepdim of trailing axes",
    );
    check(&t.argmax(0), 0.0, 0.0, "argmax of 2^17");
    check(
        &m.permute([1, 2, 0]).sum([0, 1]),
        1e-5,
        1e-3,
        "sum of leading axes of a permuted view",
    );
    // Where the maximum sits matters: put it near the end and NaN in the middle.
    let mut w = v.clone();
    w[n - 3] = 100.0;
    let wt = Tensor::from_slice(&w, &[n]);
    assert_eq!(f64s(&wt.max(0)), vec![100.0]);
    assert_eq!(wt.argmax(0).item::<i32>().unwrap(), (n - 3) as i32);
    w[n / 2 + 1] = f32::NAN;
    assert!(f64s(&Tensor::from_slice(&w, &[n]).max(0))[0].is_nan());
    // Exact integer sums.
    let iv: Vec<i32> = (0..n as i32).map(|i| (i % 1000) - 500).collect();
    let it = Tensor::from_slice(&iv, &[n]);
    assert_eq!(it.sum(0).item::<i32>().unwrap(), iv.iter().sum::<i32>());
    assert_eq!(it.max(0).item::<i32>().unwrap(), 499);
    let ones = Tensor::full(&[4, 1 << 16], 1u8);
    assert_eq!(ones.sum(-1).to_vec::<i32>().unwrap(), vec![1 << 16; 4]);
}

#[test]
fn half_precision_reductions() {
    // Sums in 16-bit dtypes: the device may accumulate in the 16-bit type.
    let v: Vec<f32> = (0..96)
        .map(|i| ((i * 37) % 17) as f32 * 0.125 - 1.0)
        .collect();
    for (dtype, eps) in [(DType::F16, 1e-3), (DType::BF16, 8e-3)] {
        let x = Tensor::from_slice(&v, &[3, 32])
            .cast(dtype)
            .realize()
            .unwrap()
            .clone();
        check(&x.sum(1), eps, 32.0 * 2.0 * eps, &format!("{dtype} sum(1)"));
        check(&x.sum(0), eps, 3.0 * 2.0 * eps, &format!("{dtype} sum(0)"));
        check(&x.max(1), 0.0, 0.0, &format!("{dtype} max(1)"));
        check(&x.min(0), 0.0, 0.0, &format!("{dtype} min(0)"));
        check(&x.argmax(1), 0.0, 0.0, &format!("{dtype} argmax(1)"));
        check(&x.mean(-1), eps, 2.0 * eps, &format!("{dtype} mean"));
        check(
            &x.softmax(-1),
            4.0 * eps,
            2.0 * eps,
            &format!("{dtype} softmax"),
        );
    }
    let x = Tensor::from_slice(
        &v.iter().map(|&a| a as f64 + 1e-12).collect::<Vec<_>>(),
        &[3, 32],
    );
    check(&x.sum(1), 1e-12, 1e-12, "f64 sum(1)");
    check(&x.var(1, 1), 1e-10, 1e-12, "f64 var(1)");
    check(&x.logsumexp(0), 1e-12, 1e-12, "f64 logsumexp(0)");
}

#[test]
fn var_std_host_values() {
    let v = vec![2.0f32, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let t = Tensor::from_slice(&v, &[8]);
    assert_close_f64(
        &f64s(&t.var(0, 0)),
        &[4.0],
        1e-6,
        0.0,
        "population variance",
    );
    assert_close_f64(&f64s(&t.std(0, 0)), &[2.0], 1e-6, 0.0, "population std");
    assert_close_f64(
        &f64s(&t.var(0, 1)),
        &[32.0 / 7.0],
        1e-6,
        0.0,
        "unbiased variance",
    );
    let m = t.reshape([2, 4]);
    // Rows [2, 4, 4, 4] and [5, 5, 7, 9]: means 3.5 and 6.5.
    assert_close_f64(&f64s(&m.var(1, 1)), &[1.0, 11.0 / 3.0], 1e-6, 0.0, "var(1)");
    let k = m.std_keepdim(-1, 0);
    assert_eq!(k.shape(), vec![2, 1]);
    assert_close_f64(
        &f64s(&k),
        &[0.75f64.sqrt(), 2.75f64.sqrt()],
        1e-6,
        0.0,
        "std_keepdim",
    );
    assert_eq!(m.var_keepdim(All, 0).shape(), vec![1, 1]);
}

#[test]
fn argmax_argmin_host_values() {
    let v = vec![
        1.0f32,
        5.0,
        5.0,
        -2.0,
        3.0,
        -2.0,
        0.0,
        9.0,
        9.0,
        f32::NAN,
        1.0,
        f32::NAN,
    ];
    let t = Tensor::from_slice(&v, &[3, 4]);
    // Ties give the first index; NaN counts as the extreme.
    let am = t.argmax(1);
    assert_eq!(am.dtype(), DType::I32);
    assert_eq!(am.to_vec::<i32>().unwrap(), vec![1, 3, 1]);
    assert_eq!(t.argmin(-1).to_vec::<i32>().unwrap(), vec![3, 1, 1]);
    assert_eq!(t.argmax(0).to_vec::<i32>().unwrap(), vec![2, 2, 0, 2]);
    assert_eq!(t.argmin(0).to_vec::<i32>().unwrap(), vec![0, 2, 1, 2]);
    let finite = Tensor::from_vec(vec![3i32, -1, 7, 7, -5, 0], &[2, 3]);
    assert_eq!(finite.argmax_all().item::<i32>().unwrap(), 2);
    assert_eq!(finite.argmin_all().item::<i32>().unwrap(), 4);
    assert_eq!(finite.argmax_all().shape(), Vec::<usize>::new());
    assert_eq!(finite.argmax(1).to_vec::<i32>().unwrap(), vec![2, 0]);
    // On a flipped view the index is in view coordinates.
    assert_eq!(
        finite.flip(1).argmax(1).to_vec::<i32>().unwrap(),
        vec![0, 2]
    );
}

#[test]
fn max_min_propagate_nan() {
    let t = Tensor::from_vec(
        vec![1.0f32, f32::NAN, 3.0, -1.0, f32::NEG_INFINITY, 2.0],
        &[2, 3],
    );
    let mx = f64s(&t.max(1));
    assert!(mx[0].is_nan() && mx[1] == 2.0, "max: {mx:?}");
    let mn = f64s(&t.min(1));
    assert!(mn[0].is_nan() && mn[1] == f64::NEG_INFINITY, "min: {mn:?}");
    assert!(f64s(&t.max(All))[0].is_nan());
    let s = f64s(&t.sum(1));
    assert!(s[0].is_nan() && s[1] == f64::NEG_INFINITY, "sum: {s:?}");
}

#[test]
fn any_all_host_values() {
    let t = Tensor::from_vec(
        vec![0.0f32, 0.0, 0.0, 1.0, 0.0, 2.0, f32::NAN, 3.0, 4.0],
        &[3, 3],
    );
    assert_eq!(t.any(1).to_vec::<bool>().unwrap(), vec![false, true, true]);
    assert_eq!(t.all(1).to_vec::<bool>().unwrap(), vec![false, false, true]);
    assert_eq!(t.any(0).to_vec::<bool>().unwrap(), vec![true, true, true]);
    assert_eq!(
        t.all(0).to_vec::<bool>().unwrap(),
        vec![false, false, false]
    );
    assert!(t.any(All).item::<bool>().unwrap());
    assert!(!t.all(All).item::<bool>().unwrap());
    let b = Tensor::from_vec(vec![true, true, false, true], &[2, 2]);
    assert_eq!(b.all(-1).to_vec::<bool>().unwrap(), vec![true, false]);
    assert_eq!(b.any(-2).to_vec::<bool>().unwrap(), vec![true, true]);
}

#[test]
fn softmax_logsumexp_host_values() {
    let rows = [
        vec![1.0f64, 2.0, 3.0],
        vec![1000.0, 1000.0, 999.0],
        vec![-1e9, 0.0, f64::NEG_INFINITY],
    ];
    let v: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
    let t = Tensor::from_slice(&v, &[3, 3]);
    let mut sm = Vec::new();
    let mut lse = Vec::new();
    for r in &rows {
        let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = r.iter().map(|x| (x - m).exp()).sum();
        sm.extend(r.iter().map(|x| (x - m).exp() / s));
        lse.push(m + s.ln());
    }
    assert_close_f64(
        &f64s(&t.softmax(-1)),
        &sm,
        1e-5,
        1e-7,
        "softmax (large values stay finite)",
    );
    assert_close_f64(&f64s(&t.logsumexp(1)), &lse, 1e-6, 1e-5, "logsumexp");
    let ls: Vec<f64> = rows
        .iter()
        .zip(&lse)
        .flat_map(|(r, l)| r.iter().map(move |x| (x - l).max(-1e30)))
        .collect();
    let got: Vec<f64> = f64s(&t.log_softmax(1))
        .iter()
        .map(|x| x.max(-1e30))
        .collect();
    // |lse| ~ 1000 in f32 is good to 6e-5.
    assert_close_f64(&got, &ls, 1e-5, 1e-4, "log_softmax");
    // Along axis 0 (a strided reduction), rows sum to one.
    let s0 = f64s(&t.softmax(0).sum(0));
    assert_close_f64(&s0, &[1.0, 1.0, 1.0], 1e-6, 0.0, "softmax(0) sums to one");
    // A row of -inf gives -inf, not NaN.
    let ninf = Tensor::from_vec(vec![f32::NEG_INFINITY; 4], &[2, 2]);
    assert_eq!(f64s(&ninf.logsumexp(1)), vec![f64::NEG_INFINITY; 2]);
    assert_eq!(t.logsumexp_keepdim(0).shape(), vec![1, 3]);
}

#[test]
fn cumsum_host_values() {
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(f64s(&t.cumsum(1)), vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    assert_eq!(f64s(&t.cumsum(-2)), vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]);
    assert_eq!(t.cumsum(0).shape(), vec![2, 3]);
    let i = Tensor::from_vec(vec![5i32, -2, 7, i32::MAX, 1], &[5]);
    assert_eq!(
        i.cumsum(0).to_vec::<i32>().unwrap(),
        vec![
            5,
            3,
            10,
            10i32.wrapping_add(i32::MAX),
            11i32.wrapping_add(i32::MAX)
        ]
    );
    let b = Tensor::from_vec(vec![true, false, true, true], &[4]);
    assert_eq!(b.cumsum(0).to_vec::<i32>().unwrap(), vec![1, 1, 2, 3]);
    let long: Vec<f32> = (1..=33).map(|i| i as f32).collect();
    let l = Tensor::from_slice(&long, &[33]).flip(0).cumsum(0);
    let mut acc = 0.0;
    let expect: Vec<f64> = long
        .iter()
        .rev()
        .map(|&x| {
            acc += x as f64;
            acc
        })
        .collect();
    assert_eq!(f64s(&l), expect, "cumsum of a flipped view");
}

#[test]
fn reductions_of_zero_d_and_unit_axes() {
    let s = Tensor::scalar(3.5f32);
    assert_eq!(s.sum(All).item::<f32>().unwrap(), 3.5);
    assert_eq!(s.max(All).item::<f32>().unwrap(), 3.5);
    assert_eq!(s.mean(All).item::<f32>().unwrap(), 3.5);
    check(&s.sum(All), 0.0, 0.0, "0-d sum");
    let one = Tensor::from_vec(vec![-2.0f32], &[1, 1]);
    assert_eq!(one.sum(0).shape(), vec![1]);
    assert_eq!(f64s(&one.softmax(1)), vec![1.0]);
    assert_eq!(one.argmax(0).to_vec::<i32>().unwrap(), vec![0]);
}

#[test]
fn empty_reductions_give_the_identity() {
    let e = Tensor::from_vec(Vec::<f32>::new(), &[0, 3]);
    assert_eq!(f64s(&e.sum(0)), vec![0.0; 3]);
    assert_eq!(f64s(&e.prod(0)), vec![1.0; 3]);
    assert_eq!(f64s(&e.max(0)), vec![f64::NEG_INFINITY; 3]);
}
