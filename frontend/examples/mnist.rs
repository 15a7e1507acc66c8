//! Trains a small convnet on MNIST (the copy vendored in `frontend/data/mnist`, or any dataset
//! of the same IDX layout with `--data DIR`) and prints the test accuracy.
//!
//! ```text
//! cargo run --release --example mnist -- [--epochs N] [--batch-size B] [--lr LR]
//!                                        [--data DIR] [--device NAME] [--save FILE]
//! ```

use clap::Parser;
use ferrograd::data::{Mnist, Split};
use ferrograd::models::MnistNet as Net;
use ferrograd::nn::loss::cross_entropy;
use ferrograd::nn::Module;
use ferrograd::optim::{Adam, AdamConfig, CosineSchedule, LrSchedule, Optimizer};
use ferrograd::{DType, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Train a small convnet on MNIST with ferrograd")]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (Adam, cosine decay to zero).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// A directory with the four MNIST-layout IDX files (optionally .gz) instead of the
    /// vendored MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device to train on (default: FERROGRAD_DEVICE, else the best found).
    #[arg(long)]
    device: Option<String>,
    /// Save the trained weights to this safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Seed of the initialization and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A reproducible shuffle (splitmix64 + Fisher-Yates).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

/// Fraction of `split` the model classifies correctly.
fn accuracy(net: &Net, data: &Mnist, split: Split) -> ferrograd::Result<f64> {
    net.eval();
    let n = data.len(split);
    let mut correct = 0;
    for start in (0..n).step_by(1000) {
        let idx: Vec<usize> = (start..(start + 1000).min(n)).collect();
        let (x, y) = data.batch(split, &idx);
        let hits = ferrograd::no_grad(|| net.forward(&x).argmax(-1).eq(&y).cast(DType::I32));
        correct += hits.sum(-1).item::<i32>()? as usize;
    }
    net.train();
    Ok(correct as f64 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(device) = &args.device {
        ferrograd::device::set_default_device(device)?;
    }
    Tensor::manual_seed(args.seed);
    let data = match &args.data {
        Some(dir) => Mnist::load(dir)?,
        None => Mnist::vendored()?,
    };
    let (rows, cols) = data.image_size();
    assert!(
        (rows, cols) == (28, 28),
        "this convnet expects 28x28 images; the dataset has {rows}x{cols}"
    );
    println!(
        "training on {} ({} train / {} test images), {} epochs of batch {}",
        ferrograd::device::default_device_name(),
        data.len(Split::Train),
        data.len(Split::Test),
        args.epochs,
        args.batch_size
    );

    let net = Net::new();
    let mut opt = Adam::new(net.parameters(), AdamConfig::adam(args.lr));
    let steps_per_epoch = data.len(Split::Train) / args.batch_size;
    let total_steps = steps_per_epoch * args.epochs;
    let schedule = CosineSchedule {
        base: args.lr,
        min: 0.0,
        total: total_steps,
    };
    let style = ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    )?
    .progress_chars("=> ");
    let start = Instant::now();
    let mut step = 0;
    let mut test = 0.0;
    for epoch in 0..args.epochs {
        let bar = ProgressBar::new(steps_per_epoch as u64)
            .with_style(style.clone())
            .with_prefix(format!("{}/{}", epoch + 1, args.epochs));
        let order = shuffled(data.len(Split::Train), args.seed ^ (epoch as u64 + 1));
        let (mut seen, mut hits, mut loss_avg) = (0usize, 0usize, 0.0f64);
        let epoch_start = Instant::now();
        for batch in order.chunks_exact(args.batch_size) {
            let (x, y) = data.batch(Split::Train, batch);
            let logits = net.forward(&x);
            let loss = cross_entropy(&logits, &y, 0.0);
            let correct = logits.argmax(-1).eq(&y).cast(DType::I32).sum(-1);
            loss.backward();
            opt.set_learning_rate(schedule.lr(step));
            opt.step_with(&[&loss, &correct])?;
            step += 1;
            seen += batch.len();
            hits += correct.item::<i32>()? as usize;
            let l = loss.item::<f32>()? as f64;
            loss_avg = if seen == batch.len() {
                l
            } else {
                0.98 * loss_avg + 0.02 * l
            };
            bar.inc(1);
            bar.set_message(format!(
                "loss {loss_avg:.4} acc {:.2}% {:.1} steps/s",
                100.0 * hits as f64 / seen as f64,
                bar.position() as f64 / epoch_start.elapsed().as_secs_f64()
            ));
        }
        bar.finish();
        test = accuracy(&net, &data, Split::Test)?;
        println!(
            "epoch {}: test accuracy {:.2}% ({:.1} s so far)",
            epoch + 1,
            100.0 * test,
            start.elapsed().as_secs_f64()
        );
    }
    println!(
        "final test accuracy: {:.2}% after {} steps in {:.1} s",
        100.0 * test,
        step,
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.save {
        ferrograd::state::save_safetensors(&net.state_dict(), path)?;
        println!("saved weights to {}", path.display());
    }
    Ok(())
}
