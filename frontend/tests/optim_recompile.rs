//! Optimizer steps reuse compiled kernels. In its own test binary: the check counts the CPU
//! device's compiled kernels, which tests running beside it in one process would change.

use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::runtime::rewrite::{with_mode, Mode};
use ferrograd::{All, Tensor};

/// Runs an AdamW loop that changes its learning rate from the third step on; returns the
/// kernels compiled after the second step.
fn kernels_compiled_after_step_two() -> usize {
    let dev = ferrograd::runtime::device("cpu").unwrap();
    let x = Tensor::randn(&[8, 5]);
    let w = Tensor::randn(&[5, 3]).requires_grad(true);
    let mut opt = Adam::new(vec![w.clone()], AdamConfig::adamw(0.01));
    let step = |opt: &mut Adam| {
        let loss = x.matmul(&w).relu().sum(All);
        loss.backward();
        opt.step_with(&[&loss]).unwrap();
    };
    step(&mut opt);
    step(&mut opt);
    let compiled = dev.compiled_kernels();
    for i in 0..5 {
        opt.set_learning_rate(0.01 / (i + 1) as f64);
        step(&mut opt);
    }
    dev.compiled_kernels() - compiled
}

/// With and without the e-graph optimizer, eager and tiered (it rewrites the first step
/// differently, which once left the update kernel's parameter order, then sorted by buffer age,
/// compiled in one order only; tiered mode rewrites from the second step on).
#[test]
fn later_steps_and_learning_rate_changes_compile_nothing_new() {
    ferrograd::device::init();
    for mode in [Mode::Off, Mode::Eager, Mode::Tiered] {
        let new = with_mode(mode, kernels_compiled_after_step_two);
        assert_eq!(new, 0, "steps recompiled {new} kernels (e-graph {mode:?})");
    }
}
