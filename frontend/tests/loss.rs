//! Losses against hand computations in f64, their gradients against central finite
//! differences, numerical edge cases and misuse panics.

mod common;

use common::{f64s, Rng};
use ferrograd::nn::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
};
use ferrograd::testing::check_gradients;
use ferrograd::{DType, Tensor};

fn scalar(t: &Tensor) -> f64 {
    assert_eq!(t.shape(), Vec::<usize>::new(), "a loss is 0-d");
    f64s(t)[0]
}

fn close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

/// Row-wise log-softmax.
fn log_softmax(x: &[f64], c: usize) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            row.iter().map(move |v| v - lse).collect::<Vec<_>>()
        })
        .collect()
}

fn cross_entropy_ref(logits: &[f64], targets: &[i32], c: usize, eps: f64) -> f64 {
    let lp = log_softmax(logits, c);
    let n = targets.len();
    (0..n)
        .map(|i| {
            let row = &lp[i * c..(i + 1) * c];
            let nll = -row[targets[i] as usize];
            let uniform = -row.iter().sum::<f64>() / c as f64;
            (1.0 - eps) * nll + eps * uniform
        })
        .sum::<f64>()
        / n as f64
}

#[test]
fn cross_entropy_matches_hand_computation() {
    // A worked example: softmax([2, 1, 0.1])[0] = 0.6590, so the loss is -ln 0.6590.
    let logits = Tensor::from_slice(&[2.0f32, 1.0, 0.1], &[1, 3]);
    let target = Tensor::from_slice(&[0i32], &[1]);
    close(
        scalar(&cross_entropy(&logits, &target, 0.0)),
        0.417_030,
        1e-5,
        "worked example",
    );
    // Smoothing 0.1: 0.9 * 0.41703 + 0.1 * mean(0.41703, 1.41703, 2.31703).
    close(
        scalar(&cross_entropy(&logits, &target, 0.1)),
        0.9 * 0.417_030 + 0.1 * (0.417_030 + 1.417_030 + 2.317_030) / 3.0,
        1e-5,
        "worked example with smoothing",
    );

    let mut rng = Rng::new(1);
    let (n, c) = (6, 5);
    let x = rng.tensor(&[n, c], -3.0, 3.0, 0.0);
    let targets = [0i32, 4, 2, 2, 1, 3];
    let t = Tensor::from_slice(&targets, &[n]);
    let xv = f64s(&x);
    for eps in [0.0f32, 0.1, 0.35, 1.0] {
        let expected = cross_entropy_ref(&xv, &targets, c, eps as f64);
        close(
            scalar(&cross_entropy(&x, &t, eps)),
            expected,
            1e-12,
            &format!("f64, smoothing {eps}"),
        );
        let loss32 = cross_entropy(&x.cast(DType::F32), &t.cast(DType::I64), eps);
        assert_eq!(loss32.dtype(), DType::F32);
        close(
            scalar(&loss32),
            expected,
            1e-5,
            &format!("f32, smoothing {eps}"),
        );
    }
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    let logits = Tensor::from_slice(&[1000.0f32, 0.0, -1000.0, 1000.0, 0.0, -1000.0], &[2, 3]);
    let targets = Tensor::from_slice(&[0i32, 2], &[2]);
    // Row 0 is certain and right (0), row 1 is certain and wrong (2000).
    close(
        scalar(&cross_entropy(&logits, &targets, 0.0)),
        1000.0,
        1e-6,
        "huge logits",
    );
}

#[test]
fn nll_mse_and_binary_cross_entropy_match_hand_computations() {
    let mut rng = Rng::new(2);
    let lp = rng.tensor(&[4, 3], -3.0, -0.1, 0.0);
    let targets = [2i32, 0, 0, 1];
    let lpv = f64s(&lp);
    let expected = -(0..4)
        .map(|i| lpv[i * 3 + targets[i] as usize])
        .sum::<f64>()
        / 4.0;
    close(
        scalar(&nll_loss(&lp, &Tensor::from_slice(&targets, &[4]))),
        expected,
        1e-12,
        "nll_loss",
    );

    let a = rng.tensor(&[2, 3, 2], -2.0, 2.0, 0.0);
    let b = rng.tensor(&[2, 3, 2], -2.0, 2.0, 0.0);
    let (av, bv) = (f64s(&a), f64s(&b));
    let expected = av
        .iter()
        .zip(&bv)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        / 12.0;
    close(scalar(&mse_loss(&a, &b)), expected, 1e-12, "mse_loss");

    let p = rng.tensor(&[5], 0.05, 0.95, 0.0);
    let t = rng.tensor(&[5], 0.0, 1.0, 0.0);
    let (pv, tv) = (f64s(&p), f64s(&t));
    let bce = |p: f64, t: f64| -(t * p.ln().max(-100.0) + (1.0 - t) * (1.0 - p).ln().max(-100.0));
    let expected = pv.iter().zip(&tv).map(|(&p, &t)| bce(p, t)).sum::<f64>() / 5.0;
    close(
        scalar(&binary_cross_entropy(&p, &t)),
        expected,
        1e-12,
        "bce",
    );

    let x = rng.tensor(&[5], -4.0, 4.0, 0.0);
    let xv = f64s(&x);
    let expected = xv
        .iter()
        .zip(&tv)
        .map(|(&x, &t)| bce(1.0 / (1.0 + (-x).exp()), t))
        .sum::<f64>()
        / 5.0;
    close(
        scalar(&binary_cross_entropy_with_logits(&x, &t)),
        expected,
        1e-12,
        "bce with logits",
    );
}

#[test]
fn binary_cross_entropy_clamps_logs_at_minus_100() {
    let p = Tensor::from_slice(&[0.0f32, 1.0, 0.3], &[3]);
    let t = Tensor::from_slice(&[1.0f32, 0.0, 1.0], &[3]);
    // log 0 -> -100 on both confidently wrong elements.
    let expected = (100.0 + 100.0 - 0.3f64.ln()) / 3.0;
    close(
        scalar(&binary_cross_entropy(&p, &t)),
        expected,
        1e-6,
        "clamped",
    );
    // Confidently right elements cost nothing (0 * -100, not 0 * -inf = NaN).
    let right = Tensor::from_slice(&[0.0f32, 1.0], &[2]);
    let target = Tensor::from_slice(&[0.0f32, 1.0], &[2]);
    assert_eq!(scalar(&binary_cross_entropy(&right, &target)), 0.0);
}

#[test]
fn binary_cross_entropy_with_logits_is_stable_for_huge_logits() {
    let x = Tensor::from_slice(&[200.0f32, -200.0, 200.0, -200.0], &[4]);
    let t = Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0], &[4]);
    close(
        scalar(&binary_cross_entropy_with_logits(&x, &t)),
        100.0,
        1e-6,
        "huge logits",
    );
}

#[test]
fn loss_gradients() {
    let mut rng = Rng::new(3);
    let logits = rng.tensor(&[4, 5], -2.0, 2.0, 0.0);
    let targets = Tensor::from_slice(&[1i32, 4, 0, 1], &[4]);
    for eps in [0.0f32, 0.2] {
        check_gradients(
            std::slice::from_ref(&logits),
            |t| cross_entropy(&t[0], &targets, eps),
            1e-5,
            1e-7,
            &format!("cross_entropy smoothing {eps}"),
        );
    }
    let lp = rng.tensor(&[4, 5], -3.0, -0.1, 0.0);
    check_gradients(&[lp], |t| nll_loss(&t[0], &targets), 1e-5, 1e-7, "nll_loss");
    let a = rng.tensor(&[3, 4], -2.0, 2.0, 0.0);
    let b = rng.tensor(&[3, 4], -2.0, 2.0, 0.0);
    check_gradients(&[a, b], |t| mse_loss(&t[0], &t[1]), 1e-5, 1e-7, "mse_loss");
    let p = rng.tensor(&[6], 0.05, 0.95, 0.0);
    let target = rng.tensor(&[6], 0.0, 1.0, 0.0);
    check_gradients(
        &[p, target.clone()],
        |t| binary_cross_entropy(&t[0], &t[1]),
        1e-5,
        1e-7,
        "binary_cross_entropy",
    );
    let x = rng.tensor(&[6], -4.0, 4.0, 0.1);
    check_gradients(
        &[x, target],
        |t| binary_cross_entropy_with_logits(&t[0], &t[1]),
        1e-5,
        1e-7,
        "binary_cross_entropy_with_logits",
    );
}

// ---- misuse -------------------------------------------------------------------------------------

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape)
}

fn labels(n: usize) -> Tensor {
    Tensor::full(&[n], 0i32)
}

#[test]
#[should_panic(
    expected = "cross_entropy: needs float scores [N, C] and integer targets [N], got f32[4, 3] and i32[5]"
)]
fn cross_entropy_batch_mismatch() {
    cross_entropy(&zeros(&[4, 3]), &labels(5), 0.0);
}

#[test]
#[should_panic(
    expected = "cross_entropy: needs float scores [N, C] and integer targets [N], got f32[4, 3] and f32[4]"
)]
fn cross_entropy_float_targets() {
    cross_entropy(&zeros(&[4, 3]), &zeros(&[4]), 0.0);
}

#[test]
#[should_panic(
    expected = "cross_entropy: needs float scores [N, C] and integer targets [N], got f32[2, 4, 3] and i32[2]"
)]
fn cross_entropy_wrong_rank() {
    cross_entropy(&zeros(&[2, 4, 3]), &labels(2), 0.0);
}

#[test]
#[should_panic(expected = "cross_entropy: label_smoothing 1.5 is outside [0, 1] (logits [4, 3])")]
fn cross_entropy_bad_smoothing() {
    cross_entropy(&zeros(&[4, 3]), &labels(4), 1.5);
}

#[test]
#[should_panic(
    expected = "nll_loss: needs float scores [N, C] and integer targets [N], got f32[3] and i32[3]"
)]
fn nll_loss_wrong_rank() {
    nll_loss(&zeros(&[3]), &labels(3));
}

#[test]
#[should_panic(
    expected = "mse_loss: pred f32[2, 3] and target f32[3] must be float tensors of the same shape"
)]
fn mse_shape_mismatch() {
    mse_loss(&zeros(&[2, 3]), &zeros(&[3]));
}

#[test]
#[should_panic(
    expected = "binary_cross_entropy: probs f32[3] and target i32[3] must be float tensors of the same shape"
)]
fn bce_integer_target() {
    binary_cross_entropy(&zeros(&[3]), &labels(3));
}
