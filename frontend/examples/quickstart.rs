//! A tour of the lazy Tensor API: build a small computation, let ferrograd fuse and compile it,
//! and read the results back. Run with `cargo run --release --example quickstart`.

use ferrograd::{All, Conv2dOptions, Tensor};
use std::time::Instant;

fn main() -> ferrograd::Result<()> {
    Tensor::manual_seed(42);
    println!(
        "default device: {}",
        ferrograd::device::default_device_name()
    );

    // A two-layer MLP forward pass on random data. Nothing runs until `to_vec`.
    let x = Tensor::randn(&[64, 784]);
    let w1 = Tensor::randn(&[784, 128]) * (1.0 / 28.0);
    let b1 = Tensor::zeros(&[128]);
    let w2 = Tensor::randn(&[128, 10]) * (1.0 / 128f64.sqrt());
    let logits = (x.matmul(&w1) + &b1).relu().matmul(&w2);
    let probs = logits.softmax(-1);
    let t = Instant::now();
    let first = probs.slice(0, Some(0), Some(1), 1).to_vec::<f32>()?;
    println!(
        "class probabilities of sample 0: {first:.3?} ({:.1} ms incl. compile)",
        t.elapsed().as_secs_f64() * 1e3
    );
    let rows = probs.sum(-1).to_vec::<f32>()?;
    println!(
        "every row sums to 1: {}",
        rows.iter().all(|s| (s - 1.0).abs() < 1e-5)
    );

    // Reductions, broadcasting and integer ops.
    let a = Tensor::arange(0.0, 12.0, 1.0).reshape([3, 4]);
    println!("a = {:?}", a.to_vec::<i32>()?);
    println!("a.sum(0) = {:?}", a.sum(0).to_vec::<i32>()?);
    println!("a.max(-1) = {:?}", a.max(-1).to_vec::<i32>()?);
    println!("argmax of a.T: {:?}", a.t().argmax(-1).to_vec::<i32>()?);
    println!("mean = {}", a.mean(All).item::<f32>()?);

    // A convolution and a pooling layer on an image batch.
    let img = Tensor::rand(&[2, 3, 16, 16]);
    let kernel = Tensor::randn(&[8, 3, 3, 3]);
    let feat = img
        .conv2d(&kernel, None, Conv2dOptions::default().padding(1, 1))
        .relu();
    let pooled = feat.max_pool2d((2, 2), Conv2dOptions::default().stride(2, 2));
    println!(
        "conv -> pool shape {:?}, mean {:.4}",
        pooled.shape(),
        pooled.mean(All).item::<f32>()?
    );

    // Timing a fused elementwise chain on 4M elements.
    let n = 1 << 22;
    let (u, v) = (Tensor::randn(&[n]), Tensor::randn(&[n]));
    Tensor::realize_all(&[u.clone(), v.clone()])?;
    let y = (&u * &v + 1.0).gelu();
    y.realize()?;
    let t = Instant::now();
    let y = (&u * &v + 1.0).gelu();
    y.realize()?;
    println!(
        "gelu(u*v+1) on {n} elements: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
