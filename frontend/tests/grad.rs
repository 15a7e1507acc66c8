//! Autograd behaviour: leaves and accumulation, no-grad scopes, detach, `gradient()`, backward
//! after realizing, API misuse, kernel counts of backward passes and deep graphs. The gradient
//! of every op against finite differences is in `grad_ops.rs`.

mod common;

use common::*;
use ferrograd::{no_grad, All, DType, NoGradGuard, Tensor};

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().expect("realize")
}

fn leaf(values: &[f32]) -> Tensor {
    Tensor::from_slice(values, &[values.len()]).requires_grad(true)
}

fn kernels_for(tensors: &[Tensor]) -> usize {
    let before = ferrograd::runtime::stats().kernels;
    Tensor::realize_all(tensors).expect("realize");
    ferrograd::runtime::stats().kernels - before
}

#[test]
fn gradient_of_a_product_is_the_other_factor() {
    let x = Tensor::from_slice(&[1.0f32, -2.0, 3.0], &[3]);
    let w = leaf(&[0.5, 0.25, -1.0]);
    assert!(w.is_requires_grad() && !x.is_requires_grad());
    let loss = (&x * &w).sum(All);
    assert!(loss.is_requires_grad());
    loss.backward();
    let g = w.grad().expect("w has a gradient");
    assert_eq!(
        (g.shape(), g.dtype(), g.device()),
        (w.shape(), DType::F32, w.device())
    );
    assert_eq!(f32s(&g), vec![1.0, -2.0, 3.0]);
    assert!(x.grad().is_none(), "x does not require grad");
}

#[test]
fn gradients_accumulate_across_backward_calls_until_zero_grad() {
    let w = leaf(&[1.0, 2.0]);
    let loss = w.square().sum(All); // d/dw = 2w
    loss.backward();
    loss.backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![4.0, 8.0]);
    // A second, different loss adds its own gradient.
    (&w * 3.0).sum(All).backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![7.0, 11.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
    (&w * 3.0).sum(All).backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![3.0, 3.0]);
}

#[test]
fn clones_share_gradients() {
    let w = leaf(&[1.0, 2.0]);
    let alias = w.clone();
    (&alias * 2.0).sum(All).backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![2.0, 2.0]);
    w.zero_grad();
    assert!(alias.grad().is_none());
}

#[test]
fn constant_leaves_keep_their_identity() {
    // Equal constants are one node in the hash-consed graph; the leaf must still be told apart.
    let w = Tensor::ones(&[3]).requires_grad(true);
    let loss = (&w * &Tensor::ones(&[3])).sum(All) + (&w * &w).sum(All);
    loss.backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![3.0, 3.0, 3.0]);
}

#[test]
fn set_grad_replaces_the_gradient() {
    let w = leaf(&[1.0, 2.0]);
    w.set_grad(Some(Tensor::from_slice(&[10.0f32, 20.0], &[2])));
    (&w * 1.0).sum(All).backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![11.0, 21.0]);
    w.set_grad(None);
    assert!(w.grad().is_none());
}

#[test]
#[should_panic(expected = "set_grad: gradient f32[3] on cpu does not match tensor f32[2] on cpu")]
fn set_grad_checks_the_shape() {
    leaf(&[1.0, 2.0]).set_grad(Some(Tensor::zeros(&[3])));
}

#[test]
fn no_grad_scope_records_nothing() {
    let w = leaf(&[1.0, 2.0]);
    let y = no_grad(|| {
        assert!(!ferrograd::is_grad_enabled());
        &w * 2.0
    });
    assert!(ferrograd::is_grad_enabled());
    assert!(!y.is_requires_grad());
    {
        let _outer = NoGradGuard::new();
        {
            let _inner = NoGradGuard::new();
        }
        assert!(
            !ferrograd::is_grad_enabled(),
            "dropping a nested guard keeps the outer one"
        );
        assert!(!(&w + 1.0).is_requires_grad());
    }
    assert!(ferrograd::is_grad_enabled());
    // A value computed under no_grad is a constant for later backward passes, even though its
    // expression equals a tracked one (same hash-consed node).
    let u = no_grad(|| w.exp());
    let v = w.exp();
    let loss = (&u * &v).sum(All);
    loss.backward();
    let e: Vec<f32> = [1.0f32, 2.0].iter().map(|x| x.exp() * x.exp()).collect();
    let g = f32s(&w.grad().unwrap());
    for (a, b) in g.iter().zip(&e) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{g:?} vs {e:?}");
    }
}

#[test]
fn no_grad_is_per_thread() {
    let _guard = NoGradGuard::new();
    let w = leaf(&[1.0]);
    let tracked = std::thread::spawn(move || (&w * 2.0).is_requires_grad())
        .join()
        .unwrap();
    assert!(tracked, "another thread still records");
}

#[test]
fn detach_blocks_the_gradient() {
    let w = leaf(&[1.0, -3.0]);
    assert!(!w.detach().is_requires_grad());
    let loss = (&w * &w.detach()).sum(All); // d/dw = w, not 2w
    loss.backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![1.0, -3.0]);
}

#[test]
fn gradient_wrt_targets_leaves_grad_untouched() {
    let w = leaf(&[1.0, 2.0, 3.0]);
    let h = w.square(); // intermediate
    let loss = (&h * 2.0).sum(All);
    let unused = leaf(&[5.0, 6.0]);
    let gs = loss.gradient(&[&w, &h, &unused]);
    assert_eq!(f32s(&gs[0]), vec![4.0, 8.0, 12.0]);
    assert_eq!(f32s(&gs[1]), vec![2.0, 2.0, 2.0]);
    assert_eq!(
        f32s(&gs[2]),
        vec![0.0, 0.0],
        "a target the loss does not use gets zeros"
    );
    assert!(w.grad().is_none() && unused.grad().is_none());
}

#[test]
#[should_panic(expected = "gradient: target 1 (f32 tensor of shape [2]) does not require grad")]
fn gradient_wrt_an_untracked_target_panics() {
    let w = leaf(&[1.0, 2.0]);
    let x = Tensor::from_slice(&[1.0f32, 2.0], &[2]);
    let _ = (&w * &x).sum(All).gradient(&[&w, &x]);
}

#[test]
fn backward_after_realizing_the_loss_and_intermediates() {
    let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0], &[3]);
    let w = leaf(&[1.0, 2.0, -0.5]);
    let h = (&x * &w).exp();
    h.realize().unwrap(); // swaps h's node for a buffer
    let loss = (&h + &w).sum(All);
    let value: f32 = loss.item().unwrap(); // and the loss's
    assert!(value.is_finite());
    loss.backward();
    let want: Vec<f32> = [0.5f32, -1.0, 2.0]
        .iter()
        .zip([1.0f32, 2.0, -0.5])
        .map(|(x, w)| x * (x * w).exp() + 1.0)
        .collect();
    let got = f32s(&w.grad().unwrap());
    for (a, b) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn realize_frees_the_graph_only_of_untracked_tensors() {
    let x = Tensor::from_slice(&[1.0f32, 2.0], &[2]);
    for tracked in [false, true] {
        let x = x.clone().requires_grad(tracked);
        let a = &x * 2.0;
        let inner = std::sync::Arc::downgrade(&a.node());
        let y = a.exp();
        drop(a);
        y.realize().unwrap();
        // Autograd keeps the forward expression of tracked tensors (backward needs it).
        assert_eq!(inner.upgrade().is_some(), tracked, "tracked: {tracked}");
        drop(y);
        assert!(inner.upgrade().is_none(), "tracked: {tracked}");
    }
}

#[test]
fn dead_leaves_are_skipped() {
    let w = leaf(&[1.0, 2.0]);
    let v = leaf(&[3.0, 4.0]);
    let loss = (&w * &v).sum(All);
    drop(v);
    loss.backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![3.0, 4.0]);
}

#[test]
fn gradients_keep_the_leaf_dtype() {
    let w = Tensor::from_slice(&[1.0f32, 2.0], &[2]).requires_grad(true);
    // Through an f64 computation and back.
    let loss = w.cast(DType::F64).square().sum(All);
    loss.backward();
    let g = w.grad().unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(f32s(&g), vec![2.0, 4.0]);
    // Half precision leaves get half precision gradients.
    let h = Tensor::from_slice(&[1.0f32, 2.0], &[2])
        .cast(DType::F16)
        .requires_grad(true);
    (&h * 3.0).sum(All).cast(DType::F32).backward();
    assert_eq!(h.grad().unwrap().dtype(), DType::F16);
    assert_eq!(
        h.grad().unwrap().cast(DType::F32).to_vec::<f32>().unwrap(),
        vec![3.0, 3.0]
    );
}

#[test]
fn integer_paths_carry_no_gradient() {
    let w = leaf(&[1.5, -2.5]);
    assert!(!w.cast(DType::I32).is_requires_grad());
    assert!(!w.gt(0.0).is_requires_grad());
    // floor is piecewise constant: zero gradient; the other term still flows.
    let loss = (w.floor() + &w * 2.0).sum(All);
    loss.backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![2.0, 2.0]);
}

#[test]
fn assign_keeps_the_leaf() {
    let w = leaf(&[1.0, 2.0]);
    (&w * &w).sum(All).backward();
    let g = w.grad().unwrap();
    no_grad(|| w.assign(&(&w - &(&g * 0.5))));
    assert!(w.is_requires_grad());
    assert_eq!(f32s(&w), vec![0.0, 0.0]);
    w.zero_grad();
    (&w + 1.0).square().sum(All).backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![2.0, 2.0]);
}

#[test]
fn requires_grad_false_unmarks_a_leaf() {
    let w = leaf(&[1.0]).requires_grad(false);
    assert!(!w.is_requires_grad());
    assert!(!(&w * 2.0).is_requires_grad());
}

#[test]
#[should_panic(
    expected = "backward: the loss must be a one-element float tensor, got f32 tensor of shape [3]"
)]
fn backward_of_a_non_scalar_panics() {
    (&leaf(&[1.0, 2.0, 3.0]) * 2.0).backward();
}

#[test]
#[should_panic(expected = "backward: the f32 tensor of shape [] does not require grad")]
fn backward_of_an_untracked_loss_panics() {
    Tensor::from_slice(&[1.0f32, 2.0], &[2]).sum(All).backward();
}

#[test]
#[should_panic(
    expected = "requires_grad: only float tensors can require gradients, got i32 tensor of shape [2]"
)]
fn integer_leaves_panic() {
    let _ = Tensor::from_slice(&[1i32, 2], &[2]).requires_grad(true);
}

#[test]
#[should_panic(
    expected = "requires_grad: the tensor of shape [2] is computed from tensors that require grad"
)]
fn unmarking_a_computed_tensor_panics() {
    let _ = (&leaf(&[1.0, 2.0]) * 2.0).requires_grad(false);
}

#[test]
#[should_panic(expected = "assign: value f32[3] on cpu does not match tensor f32[2] on cpu")]
fn assign_checks_the_shape() {
    leaf(&[1.0, 2.0]).assign(&Tensor::zeros(&[3]));
}

#[test]
fn backward_of_mul_relu_sum_fuses() {
    let x = Tensor::randn(&[64, 33])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let w = Tensor::randn(&[64, 33])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let loss = (&x * &w).relu().sum(All);
    loss.backward();
    let (gx, gw) = (x.grad().unwrap(), w.grad().unwrap());
    // Each gradient is one elementwise kernel: mask, product and seed fuse.
    assert_eq!(kernels_for(&[gx.clone(), gw.clone()]), 2);
    let (gx, gw) = (f32s(&gx), f32s(&gw));
    let (xv, wv) = (f32s(&x), f32s(&w));
    for i in 0..xv.len() {
        let on = xv[i] * wv[i] > 0.0;
        assert_eq!(gx[i], if on { wv[i] } else { 0.0 });
        assert_eq!(gw[i], if on { xv[i] } else { 0.0 });
    }
}

#[test]
fn backward_of_a_linear_layer_fuses() {
    let x = Tensor::randn(&[32, 48])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let w = Tensor::randn(&[48, 16])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let b = Tensor::randn(&[16])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let loss = (x.matmul(&w) + &b).relu().sum(All);
    loss.backward();
    let grads = [x.grad().unwrap(), w.grad().unwrap(), b.grad().unwrap()];
    // The forward product (the relu mask needs it), then one reduction kernel per gradient
    // with the mask fused in: dX = mask W^T, dW = X^T mask (no transposed copy), db = sum(mask).
    assert_eq!(kernels_for(&grads), 4);
    let mask = (x.matmul(&w) + &b).gt(0.0).cast(DType::F32);
    assert_close_f64(
        &f64s(&grads[0]),
        &f64s(&mask.matmul(&w.t())),
        1e-5,
        1e-4,
        "dX = mask W^T",
    );
    assert_close_f64(
        &f64s(&grads[1]),
        &f64s(&x.t().matmul(&mask)),
        1e-5,
        1e-4,
        "dW = X^T mask",
    );
    assert_close_f64(&f64s(&grads[2]), &f64s(&mask.sum(0)), 0.0, 0.0, "db");
}

#[test]
fn deep_graphs_do_not_overflow_the_stack() {
    let w = leaf(&[1.0]);
    let mut y = w.clone();
    for _ in 0..100_000 {
        y = &y * 1.0;
    }
    let loss = y.sum(All);
    loss.backward();
    assert!(w.grad().is_some());
    drop(loss);
    drop(y);
    w.zero_grad();
}

#[test]
fn a_chain_gives_the_product_of_its_derivatives() {
    let w = leaf(&[0.3, -0.7]);
    let mut y = w.clone();
    for _ in 0..50 {
        y = y.sin();
    }
    y.sum(All).backward();
    let mut want = vec![];
    for &x0 in &[0.3f64, -0.7] {
        let (mut x, mut d) = (x0, 1.0);
        for _ in 0..50 {
            d *= x.cos();
            x = x.sin();
        }
        want.push(d);
    }
    let got = f64s(&w.grad().unwrap());
    assert_close_f64(&got, &want, 1e-4, 1e-6, "50 nested sines");
}

#[test]
fn large_reductions_in_two_stages_differentiate() {
    // 2^16 elements reduce in two stages (a split reduction); the gradient flows through both.
    let n = 1usize << 16;
    let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 / n as f32).collect();
    let argmax = values
        .iter()
        .position(|&v| v == (n - 1) as f32 / n as f32)
        .unwrap();
    let x = Tensor::from_slice(&values, &[n]).requires_grad(true);
    let gs = x.sum(All).gradient(&[&x]);
    assert!(f32s(&gs[0]).iter().all(|&g| g == 1.0));
    let gm = f32s(&x.max(All).gradient(&[&x])[0]);
    assert_eq!(gm[argmax], 1.0);
    assert_eq!(gm.iter().filter(|&&g| g != 0.0).count(), 1);
}

#[test]
fn a_tensor_can_be_its_own_gradient() {
    let w = leaf(&[1.0, 2.0]);
    w.set_grad(Some(w.clone()));
    (&w * 3.0).sum(All).backward();
    assert_eq!(f32s(&w.grad().unwrap()), vec![4.0, 5.0]);
}

#[test]
fn large_matmul_gradients_are_the_transposed_products() {
    // Large enough for the packed right operand (a contiguous copy in column panels).
    let (m, k, n) = (32, 256, 256);
    let x = Tensor::randn(&[m, k])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let w = Tensor::randn(&[k, n])
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true);
    let r = Tensor::randn(&[m, n]).realize().unwrap().clone();
    (x.matmul(&w) * &r).sum(All).backward();
    let (gx, gw) = (f64s(&x.grad().unwrap()), f64s(&w.grad().unwrap()));
    let (xd, wd) = (x.detach(), w.detach());
    assert_close_f64(&gx, &f64s(&r.matmul(&wd.t())), 1e-4, 1e-3, "dX = R W^T");
    assert_close_f64(&gw, &f64s(&xd.t().matmul(&r)), 1e-4, 1e-3, "dW = X^T R");
}

#[test]
fn gradient_descent_fits_a_linear_model() {
    // The loop an optimizer runs: backward, an update under no_grad with assign, zero_grad.
    let x = Tensor::randn(&[64, 3]).realize().unwrap().clone();
    let y = x.matmul(&Tensor::from_slice(&[1.0f32, -2.0, 0.5], &[3, 1]));
    let w = Tensor::zeros(&[3, 1]).requires_grad(true);
    let b = Tensor::zeros(&[1]).requires_grad(true);
    let mut losses = vec![];
    for _ in 0..60 {
        let loss = (x.matmul(&w) + &b - &y).square().mean(All);
        losses.push(loss.item::<f32>().unwrap());
        loss.backward();
        no_grad(|| {
            for p in [&w, &b] {
                p.assign(&(p - &(p.grad().unwrap() * 0.2)));
                p.zero_grad();
            }
        });
        Tensor::realize_all(&[w.clone(), b.clone()]).unwrap();
        assert!(w.is_requires_grad() && b.is_requires_grad());
    }
    assert!(losses[59] < 1e-4 * losses[0], "losses {losses:?}");
    let fitted = f32s(&w);
    assert!(
        (fitted[0] - 1.0).abs() < 1e-2 && (fitted[1] + 2.0).abs() < 1e-2,
        "{fitted:?}"
    );
}
