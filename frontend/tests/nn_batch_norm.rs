//! BatchNorm2d: training and evaluation forward passes against hand computations, running
//! statistics after several steps (realized by the pending-update queue or by the layer
//! itself), bounded graphs across steps, gradients, misuse.

mod common;

use common::{assert_close_f64, f64s, Rng};
use ferrograd::nn::{take_pending_updates, BatchNorm2d, Module, StateKind};
use ferrograd::testing::check_gradients;
use ferrograd::{DType, Tensor};
use std::collections::HashSet;

const SHAPE: [usize; 4] = [3, 2, 2, 3];
const EPS: f64 = 1e-5;

/// Per-channel (mean, biased variance) of an `(N, C, H, W)` buffer.
fn channel_stats(x: &[f64], [n, c, h, w]: [usize; 4]) -> Vec<(f64, f64)> {
    (0..c)
        .map(|ch| {
            let vals: Vec<f64> = (0..n)
                .flat_map(|b| {
                    let start = (b * c + ch) * h * w;
                    x[start..start + h * w].to_vec()
                })
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            (mean, var)
        })
        .collect()
}

/// `(x - mean) / sqrt(var + eps) * w + b` per channel.
fn normalize_ref(
    x: &[f64],
    shape: [usize; 4],
    stats: &[(f64, f64)],
    w: &[f64],
    b: &[f64],
) -> Vec<f64> {
    let [_, c, h, wd] = shape;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i / (h * wd) % c;
            let (mean, var) = stats[ch];
            (v - mean) / (var + EPS).sqrt() * w[ch] + b[ch]
        })
        .collect()
}

/// A layer with non-trivial affine parameters.
fn layer(rng: &mut Rng) -> (BatchNorm2d, Vec<f64>, Vec<f64>) {
    let bn = BatchNorm2d::new(SHAPE[1]);
    let w: Vec<f32> = (0..SHAPE[1])
        .map(|_| rng.uniform(0.5, 1.5) as f32)
        .collect();
    let b: Vec<f32> = (0..SHAPE[1])
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    bn.weight.assign(&Tensor::from_slice(&w, &[SHAPE[1]]));
    bn.bias.assign(&Tensor::from_slice(&b, &[SHAPE[1]]));
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    (bn, to64(&w), to64(&b))
}

/// The running statistics torch would hold after `batches` (momentum 0.1, unbiased variance).
fn running_ref(batches: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let c = SHAPE[1];
    let n = (SHAPE[0] * SHAPE[2] * SHAPE[3]) as f64;
    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    for x in batches {
        for (ch, (mean, var)) in channel_stats(x, SHAPE).into_iter().enumerate() {
            rm[ch] = 0.9 * rm[ch] + 0.1 * mean;
            rv[ch] = 0.9 * rv[ch] + 0.1 * var * n / (n - 1.0);
        }
    }
    (rm, rv)
}

fn batch(rng: &mut Rng) -> Tensor {
    rng.tensor(&SHAPE, -3.0, 3.0, 0.0).cast(DType::F32)
}

#[test]
fn training_uses_batch_statistics_and_eval_the_running_ones() {
    let mut rng = Rng::new(1);
    let (bn, w, b) = layer(&mut rng);
    assert!(bn.is_training());
    assert_eq!(f64s(&bn.running_mean), vec![0.0; 2]);
    assert_eq!(f64s(&bn.running_var), vec![1.0; 2]);
    let mut seen = Vec::new();
    for step in 0..2 {
        let x = batch(&mut rng);
        let xv = f64s(&x);
        let y = bn.forward(&x);
        let expected = normalize_ref(&xv, SHAPE, &channel_stats(&xv, SHAPE), &w, &b);
        assert_close_f64(
            &f64s(&y),
            &expected,
            1e-5,
            1e-5,
            &format!("train step {step}"),
        );
        seen.push(xv);
        // What an optimizer step does with the queue.
        let pending = take_pending_updates();
        assert_eq!(
            pending.len(),
            2,
            "step {step}: both running statistics are queued"
        );
        Tensor::realize_all(&pending).unwrap();
        for t in [&bn.running_mean, &bn.running_var] {
            let node = t.node();
            assert!(
                node.realized().is_some() && node.src().is_empty(),
                "step {step}: the queue holds the layer's own buffers, realized without their graph"
            );
        }
        assert!(take_pending_updates().is_empty(), "the queue was taken");
    }
    let (rm, rv) = running_ref(&seen);
    assert_close_f64(&f64s(&bn.running_mean), &rm, 1e-5, 1e-6, "running_mean");
    assert_close_f64(&f64s(&bn.running_var), &rv, 1e-5, 1e-6, "running_var");
    assert_eq!(bn.running_mean.dtype(), DType::F32);

    bn.eval();
    let x = batch(&mut rng);
    let xv = f64s(&x);
    let stats: Vec<(f64, f64)> = rm.iter().copied().zip(rv.iter().copied()).collect();
    assert_close_f64(
        &f64s(&bn.forward(&x)),
        &normalize_ref(&xv, SHAPE, &stats, &w, &b),
        1e-5,
        1e-5,
        "eval",
    );
    assert!(take_pending_updates().is_empty(), "eval updates nothing");
    assert_close_f64(
        &f64s(&bn.running_mean),
        &rm,
        1e-5,
        1e-6,
        "running_mean after eval",
    );
}

/// Number of graph nodes behind a tensor.
fn graph_size(t: &Tensor) -> usize {
    let mut seen = HashSet::new();
    let mut stack = vec![t.node()];
    while let Some(n) = stack.pop() {
        if seen.insert(n.id()) {
            stack.extend(n.src().iter().cloned());
        }
    }
    seen.len()
}

#[test]
fn updates_nobody_realizes_are_realized_by_the_next_step_and_do_not_chain() {
    let mut rng = Rng::new(2);
    let (bn, _, _) = layer(&mut rng);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..5 {
        let x = batch(&mut rng);
        seen.push(f64s(&x));
        bn.forward(&x);
        sizes.push(graph_size(&bn.running_mean));
        if seen.len() == 2 {
            let (rm, rv) = running_ref(&seen);
            assert_close_f64(
                &f64s(&bn.running_mean),
                &rm,
                1e-5,
                1e-6,
                "running_mean after 2",
            );
            assert_close_f64(
                &f64s(&bn.running_var),
                &rv,
                1e-5,
                1e-6,
                "running_var after 2",
            );
        }
    }
    assert!(
        sizes.windows(2).all(|w| w[0] == w[1]),
        "the running statistics' graph grows from step to step: {sizes:?}"
    );
    let (rm, rv) = running_ref(&seen);
    assert_close_f64(
        &f64s(&bn.running_mean),
        &rm,
        1e-5,
        1e-6,
        "running_mean after 5",
    );
    assert_close_f64(
        &f64s(&bn.running_var),
        &rv,
        1e-5,
        1e-6,
        "running_var after 5",
    );
    // Each buffer is queued once however many steps ran.
    assert_eq!(take_pending_updates().len(), 2);
}

#[test]
fn the_queue_does_not_keep_dropped_layers_alive() {
    let mut rng = Rng::new(3);
    let (bn, _, _) = layer(&mut rng);
    bn.forward(&batch(&mut rng));
    drop(bn);
    assert!(take_pending_updates().is_empty());
}

#[test]
fn f64_inputs_keep_f32_buffers() {
    let mut rng = Rng::new(4);
    let (bn, _, _) = layer(&mut rng);
    let x = rng.tensor(&SHAPE, -3.0, 3.0, 0.0);
    assert_eq!(bn.forward(&x).dtype(), DType::F64);
    let (rm, _) = running_ref(&[f64s(&x)]);
    assert_eq!(bn.running_mean.dtype(), DType::F32);
    assert_close_f64(&f64s(&bn.running_mean), &rm, 1e-6, 1e-7, "running_mean");
    take_pending_updates();
}

#[test]
fn state_names_and_kinds() {
    let bn = BatchNorm2d::new(3);
    let mut entries = Vec::new();
    bn.visit_state(&mut |name, t, kind| entries.push((name.to_string(), kind, t.shape())));
    assert_eq!(
        entries,
        vec![
            ("weight".to_string(), StateKind::Parameter, vec![3]),
            ("bias".to_string(), StateKind::Parameter, vec![3]),
            ("running_mean".to_string(), StateKind::Buffer, vec![3]),
            ("running_var".to_string(), StateKind::Buffer, vec![3]),
        ]
    );
    assert!(bn.weight.is_requires_grad() && !bn.running_mean.is_requires_grad());
}

#[test]
fn gradients_in_training_and_eval_mode() {
    let mut rng = Rng::new(5);
    let x = rng.tensor(&SHAPE, -2.0, 2.0, 0.0);
    let w = rng.tensor(&[SHAPE[1]], 0.5, 1.5, 0.0);
    let b = rng.tensor(&[SHAPE[1]], -1.0, 1.0, 0.0);
    for training in [true, false] {
        check_gradients(
            &[x.clone(), w.clone(), b.clone()],
            |t| {
                let mut bn = BatchNorm2d::new(SHAPE[1]);
                bn.running_mean
                    .assign(&Tensor::from_slice(&[0.3f32, -0.2], &[2]));
                bn.running_var
                    .assign(&Tensor::from_slice(&[0.7f32, 1.6], &[2]));
                bn.set_training(training);
                bn.weight = t[1].clone();
                bn.bias = t[2].clone();
                bn.forward(&t[0])
            },
            1e-5,
            1e-6,
            &format!("batch_norm training {training}"),
        );
    }
    take_pending_updates();
}

#[test]
#[should_panic(
    expected = "BatchNorm2d: input f32[2, 3, 4, 4] must be a float (N, C, H, W) tensor with C = 2"
)]
fn wrong_channel_count() {
    BatchNorm2d::new(2).forward(&Tensor::zeros(&[2, 3, 4, 4]));
}

#[test]
#[should_panic(
    expected = "BatchNorm2d: input [1, 2, 1, 1] has a single value per channel; training needs more"
)]
fn one_value_per_channel_in_training() {
    BatchNorm2d::new(2).forward(&Tensor::zeros(&[1, 2, 1, 1]));
}

#[test]
fn one_value_per_channel_is_fine_in_eval() {
    let bn = BatchNorm2d::new(2);
    bn.eval();
    let y = bn.forward(&Tensor::from_slice(&[1.0f32, 2.0], &[1, 2, 1, 1]));
    assert_close_f64(
        &f64s(&y),
        &[1.0 / (1.0 + EPS).sqrt(), 2.0 / (1.0 + EPS).sqrt()],
        1e-6,
        0.0,
        "eval with one value",
    );
}

#[test]
fn realizing_the_update_reuses_the_forward_pass_statistics() {
    let mut rng = Rng::new(6);
    let (bn, _, _) = layer(&mut rng);
    let x = batch(&mut rng);
    bn.forward(&x).relu().realize().unwrap();
    let before = ferrograd::runtime::stats().kernels;
    Tensor::realize_all(&take_pending_updates()).unwrap();
    let kernels = ferrograd::runtime::stats().kernels - before;
    // One elementwise kernel per buffer at most: the batch mean and variance are not
    // recomputed (that would take three).
    assert!(
        kernels <= 2,
        "realizing the running statistics took {kernels} kernels"
    );
}
