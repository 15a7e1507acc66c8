//! Contractions on GPU devices run as tiled kernels through workgroup memory
//! (`ir::lower_gpu::tiled_matmul`). These shapes are large enough to take that path: sides that
//! are not multiples of the tile, a reduction length that is not a multiple of the staged
//! step, transposed and padded operands, batches (own and broadcast), fused epilogues and
//! prologues, f64, the packed right operand, NaN and infinity confined to their rows, and
//! convolution. Every case is checked against the reference on every test device; on devices
//! with workgroups the kernel must be the tiled one.

mod common;

use common::*;
use ferrograd::testing::{check, test_devices};
use ferrograd::{Conv2dOptions, DType, Tensor};

fn dot_atol(k: usize) -> f64 {
    2e-6 * k as f64 + 1e-6
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// Asserts that `t`'s last kernel is tiled on devices that run workgroups.
fn assert_tiled(t: &Tensor, what: &str) {
    for dev in test_devices() {
        let handle = ferrograd::runtime::device(&dev).expect("test device opens");
        if handle.device().workgroup_size().is_none() {
            continue;
        }
        let on_dev = ferrograd_ir::retarget(&t.node(), &dev);
        let programs = ferrograd::runtime::programs(&[on_dev]).expect("lowers");
        let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        assert!(
            names.iter().any(|n| n.contains("_tiled")),
            "{what} on {dev}: no tiled kernel among {names:?}"
        );
    }
}

fn matrix(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_slice(&values(numel(shape), seed), shape)
}

#[test]
fn odd_sides_and_reduction_tails() {
    for (i, &(m, k, n)) in [(33, 17, 65), (64, 48, 40), (100, 31, 129), (128, 128, 128)]
        .iter()
        .enumerate()
    {
        let a = matrix(&[m, k], 10 + i as u64);
        let b = matrix(&[k, n], 20 + i as u64);
        let y = a.matmul(&b);
        check(&y, 1e-5, dot_atol(k), &format!("{m}x{k} @ {k}x{n}"));
        assert_tiled(&y, &format!("{m}x{k} @ {k}x{n}"));
    }
}

#[test]
fn transposed_operands_and_batches() {
    let (m, k, n) = (45, 37, 70);
    let a = matrix(&[3, k, m], 1).transpose(-1, -2);
    let b = matrix(&[n, k], 2).t();
    let y = a.matmul(&b);
    assert_eq!(y.shape(), vec![3, m, n]);
    check(
        &y,
        1e-5,
        dot_atol(k),
        "batched transposed @ broadcast transposed",
    );
    assert_tiled(&y, "batched transposed");
    let b3 = matrix(&[3, k, n], 3);
    let z = matrix(&[3, m, k], 4).matmul(&b3);
    check(&z, 1e-5, dot_atol(k), "batched @ batched");
}

#[test]
fn fused_prologue_and_epilogue() {
    let (m, k, n) = (50, 40, 90);
    let x = matrix(&[m, k], 5);
    let w = matrix(&[k, n], 6);
    let bias = matrix(&[n], 7);
    // exp of the left operand and a scale of the right fuse into the staging loads; bias and
    // relu into the stores.
    let y = (x.exp().matmul(&(&w * 0.5)) + &bias).relu();
    check(&y, 1e-5, 3.0 * dot_atol(k), "relu(exp(x) @ (w / 2) + b)");
    assert_tiled(&y, "fused prologue and epilogue");
}

#[test]
fn padded_operand() {
    let (m, k, n) = (40, 30, 36);
    let a = matrix(&[m - 4, k - 2], 8).pad(&[(1, 3), (2, 0)], 0.0);
    let b = matrix(&[k, n], 9);
    let y = a.matmul(&b);
    check(&y, 1e-5, dot_atol(k), "padded @ b");
    assert_tiled(&y, "padded operand");
}

#[test]
fn f64_contraction() {
    let (m, k, n) = (48, 33, 52);
    let a = matrix(&[m, k], 11).cast(DType::F64);
    let b = matrix(&[k, n], 12).cast(DType::F64);
    let y = a.matmul(&b);
    check(&y, 1e-12, 1e-12, "f64 matmul");
}

#[test]
fn packed_right_operand() {
    // n % 8 == 0 and k * n >= 2^16: the frontend packs b into column panels first.
    let (m, k, n) = (40, 256, 264);
    let a = matrix(&[m, k], 13);
    let b = matrix(&[k, n], 14);
    let y = a.matmul(&b);
    check(&y, 1e-5, dot_atol(k), "packed panels");
    assert_tiled(&y, "packed panels");
}

#[test]
fn nan_and_infinity_stay_in_their_rows() {
    let (m, k, n) = (36, 20, 34);
    let mut av = values(m * k, 15);
    av[5 * k + 3] = f32::NAN;
    av[9 * k + 7] = f32::INFINITY;
    let a = Tensor::from_slice(&av, &[m, k]);
    let b = matrix(&[k, n], 16);
    let y = a.matmul(&b);
    check(&y, 1e-5, dot_atol(k), "NaN and inf rows");
    for dev in test_devices() {
        let got = y.to(&dev).unwrap().to_vec::<f32>().unwrap();
        for (i, row) in got.chunks(n).enumerate() {
            let bad = row.iter().filter(|v| !v.is_finite()).count();
            let want = if i == 5 || i == 9 { n } else { 0 };
            assert_eq!(bad, want, "row {i} on {dev}: {bad} non-finite values");
        }
    }
}

#[test]
fn convolution() {
    let x = matrix(&[2, 3, 20, 20], 17);
    let w = matrix(&[40, 3, 3, 3], 18);
    let y = x.conv2d(
        &w,
        None,
        Conv2dOptions {
            padding: (1, 1),
            ..Default::default()
        },
    );
    check(&y, 1e-5, dot_atol(27), "conv2d 3->40");
}
