//! Per-step time of a training step run eagerly (build the graph, schedule, lower, look up the
//! compile cache, launch) and replayed by `ferrograd::jit::Jit` (launch only), for a tiny MLP
//! whose kernels take almost no time (so the step time is host overhead) and for an MNIST-sized
//! convnet at batch 128. Prints the best of three medians for each (eager and replay rounds
//! alternate, because machines shared with other jobs are noisy).
//!
//! `cargo run --release -p ferrograd --example jit_overhead`

use ferrograd::jit::Jit;
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::{All, Conv2dOptions, Tensor};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// A model: its parameters and a forward function.
struct Model {
    params: Vec<Tensor>,
    forward: fn(&[Tensor], &Tensor) -> Tensor,
}

fn param(shape: &[usize], scale: f64) -> Tensor {
    let t = &Tensor::randn(shape) * scale;
    t.realize().unwrap();
    t.requires_grad(true)
}

/// 16 -> 32 -> 10 MLP.
fn mlp() -> Model {
    Model {
        params: vec![
            param(&[16, 32], 0.25),
            param(&[32], 0.0),
            param(&[32, 10], 0.18),
            param(&[10], 0.0),
        ],
        forward: |p, x| &(&x.matmul(&p[0]) + &p[1]).relu().matmul(&p[2]) + &p[3],
    }
}

/// conv(1->8, 3x3) relu pool2 -> conv(8->16, 3x3) relu pool2 -> linear(400 -> 10).
fn convnet() -> Model {
    Model {
        params: vec![
            param(&[8, 1, 3, 3], 0.33),
            param(&[8], 0.0),
            param(&[16, 8, 3, 3], 0.12),
            param(&[16], 0.0),
            param(&[400, 10], 0.05),
            param(&[10], 0.0),
        ],
        forward: |p, x| {
            let pool = Conv2dOptions::default().stride(2, 2);
            let opts = Conv2dOptions::default();
            let h = x
                .conv2d(&p[0], Some(&p[1]), opts)
                .relu()
                .max_pool2d((2, 2), pool);
            let h = h
                .conv2d(&p[2], Some(&p[3]), opts)
                .relu()
                .max_pool2d((2, 2), pool);
            &h.flatten(1, -1).matmul(&p[4]) + &p[5]
        },
    }
}

/// Forward, cross-entropy against one-hot `y`, backward, Adam step; returns the loss.
fn step(model: &Model, opt: &mut Adam, x: &Tensor, y: &Tensor) -> Tensor {
    let logp = (model.forward)(&model.params, x).log_softmax(-1);
    let loss = &(&logp * y).sum(All) * (-1.0 / x.shape()[0] as f64);
    loss.backward();
    opt.step_with(&[&loss]).unwrap();
    loss
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median seconds of `f` over `iters` calls after `warmup` calls.
fn time(warmup: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let dev = ferrograd::runtime::default_device().unwrap();
    median(
        (0..iters)
            .map(|_| {
                let start = Instant::now();
                f();
                dev.device().synchronize().unwrap();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn measure(name: &str, make: fn() -> Model, x_shape: &[usize], iters: usize) {
    let batch = x_shape[0];
    let x = Tensor::randn(x_shape);
    let labels = Tensor::randint(0, 10, &[batch]);
    let y = labels.one_hot(10).cast(ferrograd::DType::F32);
    Tensor::realize_all(&[x.clone(), y.clone()]).unwrap();

    let eager_model = make();
    let mut eager_opt = Adam::new(eager_model.params.clone(), AdamConfig::adam(1e-3));

    let model = Rc::new(make());
    let opt = Rc::new(RefCell::new(Adam::new(
        model.params.clone(),
        AdamConfig::adam(1e-3),
    )));
    let mut state = model.params.clone();
    state.extend(opt.borrow().state_tensors());
    let (m, o) = (model.clone(), opt.clone());
    let mut jit = Jit::new(state, move |inputs: &[Tensor]| {
        vec![step(&m, &mut o.borrow_mut(), &inputs[0], &inputs[1])]
    });
    let inputs = [x.clone(), y.clone()];
    let (mut eager, mut replay) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        eager = eager.min(time(3, iters, || {
            step(&eager_model, &mut eager_opt, &x, &y);
        }));
        replay = replay.min(time(3, iters, || {
            jit.call(&inputs).unwrap();
        }));
    }
    let kernels = jit.captured_kernels().unwrap();
    println!(
        "{name:<28} {kernels:>4} kernels  eager {:>9.1} us  replay {:>9.1} us  saved {:>8.1} us/step ({:.1} us/kernel)",
        eager * 1e6,
        replay * 1e6,
        (eager - replay) * 1e6,
        (eager - replay) * 1e6 / kernels as f64,
    );
}

fn main() {
    ferrograd::device::init();
    measure("MLP 16-32-10, batch 4", mlp, &[4, 16], 200);
    measure("convnet MNIST, batch 128", convnet, &[128, 1, 28, 28], 30);
}
