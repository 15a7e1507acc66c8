use ferrograd::data::{Mnist, Split};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::{Conv2dOptions, Tensor};
use std::time::Instant;

fn param(shape: &[usize], fan_in: usize) -> Tensor {
    let b = 1.0 / (fan_in as f64).sqrt();
    ((Tensor::rand(shape) * 2.0 - 1.0) * b)
        .realize()
        .unwrap()
        .clone()
        .requires_grad(true)
}

fn main() {
    let data = Mnist::vendored().unwrap();
    let c1 = std::env::var("C1")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8usize);
    let c2 = std::env::var("C2")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16usize);
    let bs = std::env::var("BS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128usize);
    let w1 = param(&[c1, 1, 3, 3], 9);
    let b1 = param(&[c1], 9);
    let w2 = param(&[c2, c1, 3, 3], 9 * c1);
    let b2 = param(&[c2], 9 * c1);
    let pad: usize = std::env::var("PAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let side = if pad == 1 { 7 } else { 5 };
    let hid: usize = std::env::var("HID")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let out3 = if hid > 0 { hid } else { 10 };
    let w3 = param(&[c2 * side * side, out3], c2 * side * side);
    let w4 = param(&[hid.max(1), 10], hid.max(1));
    let b4 = param(&[10], hid.max(1));
    let b3 = param(&[out3], c2 * side * side);
    let mut opt = Adam::new(
        vec![
            w1.clone(),
            b1.clone(),
            w2.clone(),
            b2.clone(),
            w3.clone(),
            w4.clone(),
            b4.clone(),
            b3.clone(),
        ],
        AdamConfig::adam(2e-3),
    );
    let fwd = |x: &Tensor| {
        let h = x
            .conv2d(&w1, Some(&b1), Conv2dOptions::default().padding(pad, pad))
            .relu()
            .max_pool2d((2, 2), Conv2dOptions::default().stride(2, 2));
        let h = h
            .conv2d(&w2, Some(&b2), Conv2dOptions::default().padding(pad, pad))
            .relu()
            .max_pool2d((2, 2), Conv2dOptions::default().stride(2, 2));
        let h = h.reshape([x.shape()[0], c2 * side * side]).matmul(&w3) + &b3;
        if hid > 0 {
            (h.relu().matmul(&w4)) + &b4
        } else {
            h
        }
    };
    let n = 60000 / bs;
    let t0 = Instant::now();
    let mut tb = 0.0;
    let mut ts = 0.0;
    let epochs: usize = std::env::var("EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut perm: Vec<usize> = (0..60000).collect();
    let mut seed = 12345u64;
    for gstep in 0..(n * epochs).min(
        std::env::var("STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX),
    ) {
        let step = gstep % n;
        if step == 0 {
            for i in (1..perm.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                perm.swap(i, (seed % (i as u64 + 1)) as usize);
            }
        }
        let idx: Vec<usize> = perm[step * bs..(step + 1) * bs].to_vec();
        {
            use ferrograd::optim::LrSchedule;
            let sch = ferrograd::optim::CosineSchedule {
                base: 3e-3,
                min: 1e-5,
                total: n * epochs,
            };
            opt.set_learning_rate(sch.lr(gstep));
        }
        let (x, y) = data.batch(Split::Train, &idx);
        let s = Instant::now();
        let logits = fwd(&x);
        let loss = (logits.log_softmax(-1) * y.one_hot(10).cast(ferrograd::DType::F32))
            .sum(-1)
            .mean(-1)
            * -1.0;
        loss.backward();
        tb += s.elapsed().as_secs_f64();
        let s = Instant::now();
        opt.step_with(&[&loss]).unwrap();
        ts += s.elapsed().as_secs_f64();
        if gstep % 100 == 0 {
            println!(
                "step {step} loss {:.4} {:.1} ms/step (graph {:.1} ms, step {:.1} ms) kernels {}",
                loss.item::<f32>().unwrap(),
                t0.elapsed().as_secs_f64() * 1e3 / (gstep + 1) as f64,
                tb * 1e3 / (gstep + 1) as f64,
                ts * 1e3 / (gstep + 1) as f64,
                ferrograd::runtime::stats().kernels
            );
        }
    }
    println!("train time {:.1} s", t0.elapsed().as_secs_f64());
    let mut correct = 0;
    for b in 0..100 {
        let idx: Vec<usize> = (b * 100..(b + 1) * 100).collect();
        let (x, y) = data.batch(Split::Test, &idx);
        let pred = ferrograd::no_grad(|| fwd(&x).argmax(-1));
        let p = pred.cast(ferrograd::DType::I32).to_vec::<i32>().unwrap();
        let yv = y.to_vec::<i32>().unwrap();
        correct += p.iter().zip(&yv).filter(|(a, b)| a == b).count();
    }
    println!(
        "test accuracy {:.2}% total {:.1} s",
        correct as f64 / 100.0,
        t0.elapsed().as_secs_f64()
    );
    for k in ferrograd::runtime::profile::take_report().iter().take(25) {
        println!(
            "{:>9.2} ms {:>5} {}",
            k.total.as_secs_f64() * 1e3 / k.launches as f64,
            k.launches,
            k.name
        );
    }
}
#[allow(dead_code)]
fn _x() {}
