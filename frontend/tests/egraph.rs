//! The e-graph optimizer, differentially: random graphs of frontend ops (built so that the
//! rewrite rules have something to find: multiplications by one, additions of -0, double
//! negations, constant conditions, chains of movement ops, reductions of broadcasts) are
//! computed with and without the optimizer on every test device, and both results are
//! compared with the f64 reference evaluator. Inputs include NaN, ±Inf and ±0.

mod common;

use common::*;
use ferrograd::runtime::rewrite::{rewrite_stats, with_egraph, with_mode, Mode};
use ferrograd::testing::check;
use ferrograd::Tensor;
use proptest::prelude::*;

/// One step of a random program on a 2-d float tensor.
#[derive(Clone, Debug)]
enum Step {
    MulOne,
    AddNegZero,
    AddPosZero,
    MulZero,
    NegNeg,
    WhereConst(bool),
    Exp2,
    Sqrt,
    Recip,
    MaxSelf,
    AddOther,
    MulOther,
    TransposeTwice,
    Transpose,
    ReshapeRoundTrip,
    FlipTwice,
    PadShrink,
    SumOfBroadcast(usize),
    SumKeep(usize),
    MaxKeep(usize),
    TransposedSum(usize),
    TransposedMax(usize),
    Square,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::MulOne),
        Just(Step::AddNegZero),
        Just(Step::AddPosZero),
        Just(Step::MulZero),
        Just(Step::NegNeg),
        any::<bool>().prop_map(Step::WhereConst),
        Just(Step::Exp2),
        Just(Step::Sqrt),
        Just(Step::Recip),
        Just(Step::MaxSelf),
        Just(Step::AddOther),
        Just(Step::MulOther),
        Just(Step::TransposeTwice),
        Just(Step::Transpose),
        Just(Step::ReshapeRoundTrip),
        Just(Step::FlipTwice),
        Just(Step::PadShrink),
        (1usize..5).prop_map(Step::SumOfBroadcast),
        (0usize..2).prop_map(Step::SumKeep),
        (0usize..2).prop_map(Step::MaxKeep),
        (0usize..2).prop_map(Step::TransposedSum),
        (0usize..2).prop_map(Step::TransposedMax),
        Just(Step::Square),
    ]
}

/// Applies `s` to `x` (shape kept 2-d); `y` is a second input of `x`'s original shape.
fn apply(x: &Tensor, y: &Tensor, s: &Step) -> Tensor {
    let shape = x.shape();
    match s {
        Step::MulOne => x * 1.0,
        Step::AddNegZero => x + (-0.0),
        Step::AddPosZero => x + 0.0,
        Step::MulZero => x * 0.0,
        Step::NegNeg => x.neg().neg(),
        Step::WhereConst(c) => {
            let cond = x.full_like(if *c { 1.0 } else { 0.0 }).ne(0.0);
            cond.where_(x, x.exp2())
        }
        Step::Exp2 => x.clamp(-20.0, 20.0).exp2(),
        Step::Sqrt => x.sqrt(),
        Step::Recip => x.reciprocal(),
        Step::MaxSelf => x.maximum(x),
        Step::AddOther if y.shape() == shape => x + y,
        Step::MulOther if y.shape() == shape => x * y,
        Step::AddOther | Step::MulOther => x + x.sum_keepdim(ferrograd::All),
        Step::TransposeTwice => x.t().t(),
        Step::Transpose => x.t(),
        Step::ReshapeRoundTrip => x.reshape(vec![shape[0] * shape[1]]).reshape(shape.clone()),
        Step::FlipTwice => x.flip(0).flip(vec![0, 1]).flip(1),
        Step::PadShrink => x
            .pad(&[(1, 2), (0, 1)], 0.0)
            .shrink(&[(1, 1 + shape[0]), (0, shape[1])]),
        Step::SumOfBroadcast(n) => {
            let e = x.unsqueeze(2).expand(vec![shape[0], shape[1], *n]);
            e.sum(2)
        }
        Step::SumKeep(a) => x.sum_keepdim(*a).expand(shape.clone()),
        Step::MaxKeep(a) => x.max_keepdim(*a).expand(shape.clone()),
        // A reduction of a transposed value read transposed back (`permute-reduce`), once
        // through a dropped and re-added unit axis (`permute-reshape`).
        Step::TransposedSum(a) => x.t().sum_keepdim(*a).t().expand(shape.clone()),
        Step::TransposedMax(a) => x.t().max(*a).unsqueeze(*a).t().expand(shape.clone()),
        Step::Square => x.powf(2.0),
    }
}

fn input(shape: &[usize], seed: usize) -> Tensor {
    let special = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|k| {
            let h = (k * 2654435761 + seed * 40503) % 1000;
            if h < 40 {
                special[h % special.len()] as f32
            } else {
                (h as f32 - 500.0) / 125.0
            }
        })
        .collect();
    Tensor::from_vec(data, shape)
}

fn run(shape: &[usize], seed: usize, steps: &[Step], on: bool) {
    let x0 = input(shape, seed);
    let y = input(shape, seed + 1);
    with_egraph(on, || {
        let mut x = x0.clone();
        for s in steps {
            x = apply(&x, &y, s);
        }
        check(
            &x,
            2e-5,
            1e-6,
            &format!("{steps:?} on {shape:?} (egraph {on})"),
        );
    });
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn optimized_and_unoptimized_graphs_agree_with_the_oracle(
        shape in prop::sample::select(vec![vec![1usize, 1], vec![1, 5], vec![3, 1], vec![3, 5], vec![7, 4], vec![2, 33]]),
        seed in 0usize..1000,
        steps in prop::collection::vec(step(), 1..8),
    ) {
        run(&shape, seed, &steps, true);
        run(&shape, seed, &steps, false);
    }
}

#[test]
fn the_optimizer_runs_and_caches_by_structure() {
    let before = rewrite_stats();
    for seed in 0..3 {
        run(
            &[3, 5],
            seed,
            &[Step::MulOne, Step::TransposeTwice, Step::SumOfBroadcast(4)],
            true,
        );
    }
    let after = rewrite_stats();
    assert!(after.runs + after.cache_hits >= before.runs + before.cache_hits + 3);
    assert!(
        after.cache_hits > before.cache_hits,
        "the same structure is rewritten once"
    );
}

#[test]
fn targets_and_intermediates_get_the_rewritten_buffers() {
    with_egraph(true, || {
        let x = input(&[4, 6], 7);
        let inner = (&x * 1.0).sum_keepdim(1);
        // Two users: the reduction is materialized in its own kernel.
        let out = &inner + inner.exp2();
        out.realize().unwrap();
        // The rewritten graph computed sum(x); its buffer is recorded on the original
        // sum(x * 1) node as well, so later graphs reading `inner` reuse it.
        assert!(inner.node().realized().is_some(), "intermediate recorded");
        let k0 = ferrograd::runtime::stats().kernels;
        let again = &inner * 2.0;
        check(&again, 1e-5, 1e-6, "reuse");
        assert!(ferrograd::runtime::stats().kernels > k0);
    });
}

/// ALU instructions the kernels of one realize of `exp2(x * 1)`, summed over rows when
/// `reduce`, executed on this thread (structures only this test builds: the shape is unique to
/// it).
fn alu_ops_of_one_realize(seed: usize, reduce: bool) -> u64 {
    let x = input(&[7, 13], seed);
    x.realize().unwrap();
    ferrograd::runtime::count_work(true);
    let before = ferrograd::runtime::stats().alu_ops;
    let e = (&x * 1.0).exp2();
    let y = if reduce { e.sum_keepdim(1) } else { e };
    check(&y, 1e-5, 1e-6, "tiered");
    let after = ferrograd::runtime::stats().alu_ops;
    ferrograd::runtime::count_work(false);
    after - before
}

#[test]
fn tiered_mode_optimizes_an_elementwise_structure_from_its_second_realize() {
    let realize = |seed| alu_ops_of_one_realize(seed, false);
    let [first, second, third] = with_mode(Mode::Tiered, || [0, 1, 2].map(realize));
    assert!(
        second < first,
        "the second realize runs the rewritten graph (x * 1 gone): {second} vs {first} ALU ops"
    );
    assert_eq!(second, third, "later realizes reuse the rewrite");
    let eager = with_mode(Mode::Eager, || realize(3));
    let off = with_mode(Mode::Off, || realize(4));
    assert_eq!(eager, second, "eager mode rewrites on first sight");
    assert_eq!(off, first, "off never rewrites");
}

#[test]
fn tiered_mode_optimizes_a_reduction_on_first_sight() {
    let realize = |seed| alu_ops_of_one_realize(seed, true);
    let [first, second] = with_mode(Mode::Tiered, || [5, 6].map(realize));
    let off = with_mode(Mode::Off, || realize(7));
    assert!(
        first < off,
        "the first realize already runs the rewritten graph: {first} vs {off} ALU ops"
    );
    assert_eq!(first, second, "later realizes reuse the rewrite");
}
