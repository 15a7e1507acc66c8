//! Launch plans: a graph realized again on new buffers launches its kernels from the plan kept
//! with its structure (no lowering; a replay, without scheduling), with the same results, on
//! every test device and in every mode of the rewrite step.

use ferrograd::runtime::rewrite::{with_mode, Mode};
use ferrograd::testing::{check, test_devices};
use ferrograd::Tensor;

/// A graph with a reduction, broadcasting, a transposed operand and a cross-device copy when
/// `device` is not the CPU (the shapes are this test's own).
fn graph(seed: u64, device: &str) -> Tensor {
    Tensor::manual_seed(seed);
    let x = Tensor::randn(&[5, 11]).to(device).unwrap();
    let y = Tensor::randn(&[11, 5]).to(device).unwrap();
    let b = Tensor::randn(&[5, 1]).to(device).unwrap();
    for t in [&x, &y, &b] {
        t.realize().unwrap();
    }
    ((&x * 2.0).exp2() + y.t() * &b).sum_keepdim(1) - x.max_keepdim(1)
}

/// (kernels launched, kernels lowered, replayed) by one realize of `graph(seed)`.
fn realize_counts(seed: u64, device: &str) -> (usize, usize, usize) {
    let out = graph(seed, device);
    let before = ferrograd::runtime::stats();
    out.realize().unwrap();
    let after = ferrograd::runtime::stats();
    check(&out, 1e-5, 1e-5, &format!("seed {seed} on {device}"));
    (
        after.kernels - before.kernels,
        after.lowered - before.lowered,
        after.replayed - before.replayed,
    )
}

#[test]
fn a_repeated_graph_launches_from_its_plan() {
    for mode in [Mode::Off, Mode::Tiered, Mode::Eager] {
        for device in test_devices() {
            with_mode(mode, || {
                // Tiered mode rewrites at the second realize (a new plan), so the third is
                // the first that must find one in every mode.
                let counts: Vec<_> = (0..4).map(|s| realize_counts(s, &device)).collect();
                for &(kernels, lowered, replayed) in &counts[2..] {
                    assert!(kernels > 0, "{mode:?} on {device}: nothing launched");
                    assert_eq!(
                        lowered, 0,
                        "{mode:?} on {device}: {lowered} of {kernels} kernels lowered again"
                    );
                    assert_eq!(replayed, 1, "{mode:?} on {device}: not replayed");
                }
            });
        }
    }
}

#[test]
fn a_new_structure_is_lowered() {
    let device = "cpu";
    let shape_of_this_test = Tensor::randn(&[3, 17]);
    shape_of_this_test.realize().unwrap();
    let before = ferrograd::runtime::stats();
    let out = (&shape_of_this_test * 3.0).sum(1);
    out.realize().unwrap();
    let after = ferrograd::runtime::stats();
    assert!(
        after.lowered > before.lowered,
        "a new graph on {device} is lowered"
    );
    assert_eq!(
        after.replayed, before.replayed,
        "a new graph is not replayed"
    );
    check(&out, 1e-5, 1e-5, "new structure");
}

/// (kernels, lowered) of each of `steps` Adam steps of a small model (shapes of its own).
fn adam_steps(steps: usize) -> Vec<(usize, usize)> {
    use ferrograd::optim::{Adam, AdamConfig, Optimizer};
    Tensor::manual_seed(9);
    let x = Tensor::randn(&[6, 7]);
    let w = Tensor::randn(&[7, 3]).requires_grad(true);
    let mut opt = Adam::new(vec![w.clone()], AdamConfig::adam(0.01));
    (0..steps)
        .map(|_| {
            let before = ferrograd::runtime::stats();
            let loss = x.matmul(&w).relu().sum(ferrograd::All);
            loss.backward();
            opt.step_with(&[&loss]).unwrap();
            opt.zero_grad();
            let after = ferrograd::runtime::stats();
            (
                after.kernels - before.kernels,
                after.lowered - before.lowered,
            )
        })
        .collect()
}

#[test]
fn a_new_structure_lowers_only_kernels_no_earlier_graph_had() {
    let steps = with_mode(Mode::Off, || adam_steps(3));
    // Step 2's graph differs from step 1's (the optimizer state is no longer constant
    // zeros), but its forward and backward kernels are step 1's: only the update is new.
    let (kernels, lowered) = steps[1];
    assert!(
        lowered < kernels,
        "step 2 lowered all its {kernels} kernels ({steps:?})"
    );
    assert_eq!(steps[2].1, 0, "step 3 launches from its plan ({steps:?})");
}

/// A replay records buffers on the caller's nodes as the plain path does: a materialized
/// intermediate the caller holds is realized by the realize of its consumer, and a target the
/// rewrite folds into a leaf (`x * 1`) gets the leaf's buffer.
#[test]
fn a_replay_realizes_the_intermediates_the_caller_holds() {
    for mode in [Mode::Off, Mode::Tiered, Mode::Eager] {
        with_mode(mode, || {
            for seed in 0..4 {
                Tensor::manual_seed(100 + seed);
                let x = Tensor::randn(&[3, 13]);
                x.realize().unwrap();
                let hidden = (&x * 2.0).exp2().contiguous();
                let out = hidden.sum(1);
                let same = &x * 1.0;
                let before = ferrograd::runtime::stats();
                Tensor::realize_all(&[out.clone(), same.clone()]).unwrap();
                let replayed = ferrograd::runtime::stats().replayed - before.replayed;
                if seed >= 2 {
                    assert_eq!(replayed, 1, "{mode:?}, seed {seed}: not replayed");
                }
                assert!(
                    hidden.node().realized().is_some(),
                    "{mode:?}, seed {seed}: the intermediate has no buffer"
                );
                let kernels = ferrograd::runtime::stats().kernels;
                let what = format!("{mode:?}, seed {seed}");
                hidden.to_vec::<f32>().unwrap();
                out.to_vec::<f32>().unwrap();
                assert_eq!(
                    same.to_vec::<f32>().unwrap(),
                    x.to_vec::<f32>().unwrap(),
                    "{what}"
                );
                assert_eq!(
                    ferrograd::runtime::stats().kernels,
                    kernels,
                    "{what}: reading the results launched kernels"
                );
                check(&hidden, 1e-5, 1e-5, &what);
                check(&out, 1e-5, 1e-5, &what);
            }
        });
    }
}

/// A tiered rewrite that only folds a permute pair lowers no kernel again: the cache of
/// lowered kernels keys a kernel's graph with permute chains composed.
#[test]
fn a_rewrite_that_only_folds_a_permute_pair_lowers_nothing_new() {
    with_mode(Mode::Tiered, || {
        let counts: Vec<(usize, usize)> = (0..3)
            .map(|seed| {
                Tensor::manual_seed(200 + seed);
                let x = Tensor::randn(&[5, 6, 9]);
                let y = Tensor::randn(&[9, 5, 6]);
                x.realize().unwrap();
                y.realize().unwrap();
                let out = x.permute([1, 2, 0]).permute([1, 2, 0]) + &y;
                let before = ferrograd::runtime::stats();
                out.realize().unwrap();
                let after = ferrograd::runtime::stats();
                check(&out, 0.0, 0.0, &format!("seed {seed}"));
                (
                    after.lowered - before.lowered,
                    after.replayed - before.replayed,
                )
            })
            .collect();
        // Realize 2 runs the rewritten graph (a new plan, not a replay of realize 1's) and
        // finds its kernel in the cache; realize 3 replays it.
        assert_eq!(counts, vec![(1, 0), (0, 0), (0, 1)]);
    });
}

/// A rewrite that saves less than 0.5% of a graph's estimated cost is not applied: the second
/// realize replays the first one's plan instead of compiling the rewritten graph (here a folded
/// permute pair on a small operand of a large sum; the test above folds one on the large
/// operand, which is applied).
#[test]
fn a_rewrite_below_the_minimum_gain_is_not_applied() {
    with_mode(Mode::Tiered, || {
        let replayed: Vec<usize> = (0..3)
            .map(|seed| {
                Tensor::manual_seed(300 + seed);
                let big = Tensor::randn(&[64, 65]);
                let small = Tensor::randn(&[1, 65]);
                big.realize().unwrap();
                small.realize().unwrap();
                let out = &big + small.permute([1, 0]).permute([1, 0]);
                let before = ferrograd::runtime::stats();
                out.realize().unwrap();
                let replayed = ferrograd::runtime::stats().replayed - before.replayed;
                check(&out, 0.0, 0.0, &format!("seed {seed}"));
                replayed
            })
            .collect();
        assert_eq!(replayed, vec![0, 1, 1]);
    });
}
