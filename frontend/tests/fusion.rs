//! Kernel counts: the scheduler fuses what it promises to fuse.

use ferrograd::Tensor;

fn kernels_for(t: &Tensor) -> usize {
    let before = ferrograd::runtime::stats().kernels;
    t.realize().expect("realize");
    ferrograd::runtime::stats().kernels - before
}

#[test]
fn elementwise_chain_into_reduce_is_one_kernel() {
    let a = Tensor::randn(&[64, 33]).realize().unwrap().clone();
    let b = Tensor::randn(&[64, 33]).realize().unwrap().clone();
    let c = Tensor::randn(&[64, 33]).realize().unwrap().clone();
    let y = (&a * &b + &c).relu().sum(ferrograd::All);
    assert_eq!(kernels_for(&y), 1);
}

#[test]
fn matmul_bias_relu_is_one_kernel() {
    let x = Tensor::randn(&[32, 48]).realize().unwrap().clone();
    let w = Tensor::randn(&[48, 16]).realize().unwrap().clone();
    let b = Tensor::randn(&[16]).realize().unwrap().clone();
    let y = (x.matmul(&w) + &b).relu();
    assert_eq!(kernels_for(&y), 1);
    ferrograd::testing::check(&(x.matmul(&w) + &b).relu(), 1e-4, 1e-4, "matmul+bias+relu");
}

#[test]
fn softmax_last_axis_is_at_most_three_kernels() {
    let x = Tensor::randn(&[40, 129]).realize().unwrap().clone();
    let y = x.softmax(-1);
    assert!(kernels_for(&y) <= 3);
    ferrograd::testing::check(&x.softmax(-1), 1e-5, 1e-6, "softmax");
}

#[test]
fn shared_realized_input_is_not_recomputed() {
    let x = Tensor::randn(&[100]);
    x.realize().unwrap();
    let y = (&x + 1.0).sum(ferrograd::All);
    assert_eq!(kernels_for(&y), 1);
}
