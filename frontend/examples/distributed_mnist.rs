//! Trains the MNIST convnet data-parallel across ferrograd workers: every step splits the batch
//! across the workers (by their measured speed), each worker runs forward and backward on its
//! rows, the gradients are all-reduced worker to worker and every replica takes the same Adam
//! step. Prints the loss, the step time and what passed through this process, then the test
//! accuracy of the first replica.
//!
//! ```text
//! # workers started elsewhere (FERROGRAD_CLUSTER_DIR holds the cluster's client identity):
//! cargo run --release --example distributed_mnist -- --workers 10.0.0.2:7070,10.0.0.3:7070
//! # or N TLS workers on loopback, in this process, with a throwaway cluster:
//! cargo run --release --example distributed_mnist -- --spawn-local 2
//! ```

use clap::Parser;
use ferrograd::data::{Mnist, Split};
use ferrograd::distributed::cluster::{self, Identity};
use ferrograd::distributed::worker::{RunningWorker, Worker, WorkerConfig};
use ferrograd::distributed::{remote, Security};
use ferrograd::models::MnistNet;
use ferrograd::nn::loss::cross_entropy;
use ferrograd::nn::Module;
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::shard::DataParallel;
use ferrograd::{DType, Tensor};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Train the MNIST convnet data-parallel across ferrograd workers")]
struct Args {
    /// Workers as HOST:PORT, comma-separated (secured by FERROGRAD_CLUSTER_DIR).
    #[arg(long, value_delimiter = ',')]
    workers: Vec<String>,
    /// Start this many TLS workers on loopback in this process instead (a throwaway cluster).
    #[arg(long)]
    spawn_local: Option<usize>,
    /// The workers' device to train on.
    #[arg(long, default_value = "cpu")]
    worker_device: String,
    /// Training steps.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Examples per step (split across the workers).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Relative worker weights instead of measured speeds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    weights: Vec<f64>,
    /// Steps at the start left out of the timing (kernel compilation).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Seed of the initialization.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also time the same steps on this process's CPU alone (the baseline for the step time).
    #[arg(long)]
    local_baseline: bool,
}

/// Milliseconds per step of plain single-device training on this process's CPU, over the same
/// batches (after the same warm-up).
fn local_step_ms(args: &Args, data: &Mnist) -> Result<f64, Box<dyn std::error::Error>> {
    Tensor::manual_seed(args.seed);
    let net = MnistNet::new();
    let mut opt = Adam::new(net.parameters(), AdamConfig::adam(args.lr));
    let train = data.len(Split::Train);
    let mut timed = Duration::ZERO;
    for step in 0..args.steps {
        let first = (step * args.batch_size) % (train - args.batch_size);
        let idx: Vec<usize> = (first..first + args.batch_size).collect();
        let (x, y) = data.batch(Split::Train, &idx);
        let t = Instant::now();
        let loss = cross_entropy(&net.forward(&x), &y, 0.0);
        loss.backward();
        opt.step_with(&[&loss])?;
        loss.item::<f32>()?;
        if step >= args.warmup {
            timed += t.elapsed();
        }
    }
    Ok(timed.as_secs_f64() * 1e3 / args.steps.saturating_sub(args.warmup).max(1) as f64)
}

/// Starts `n` loopback workers with mutual TLS in a fresh cluster and secures this client.
fn spawn_local(
    n: usize,
) -> Result<(Vec<RunningWorker>, tempfile::TempDir), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    cluster::init(dir.path())?;
    ferrograd::device::init();
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        let token = cluster::token(dir.path(), Duration::from_secs(3600))?;
        let config = WorkerConfig::new(
            "127.0.0.1:0".parse()?,
            Security::MutualTls(cluster::redeem(&token)?),
        );
        workers.push(Worker::bind(config)?.spawn()?);
    }
    remote::set_client_security(Security::MutualTls(Identity::load_client(dir.path())?));
    Ok((workers, dir))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    ferrograd::device::set_default_device("cpu")?;
    let (_local, addrs) = match args.spawn_local {
        Some(n) => {
            let (workers, dir) = spawn_local(n)?;
            let addrs = workers.iter().map(|w| w.addr().to_string()).collect();
            (Some((workers, dir)), addrs)
        }
        None => (None, args.workers.clone()),
    };
    if addrs.is_empty() {
        return Err("give --workers HOST:PORT,... or --spawn-local N".into());
    }
    let devices: Vec<String> = addrs
        .iter()
        .map(|a| format!("remote:{a}/{}", args.worker_device))
        .collect();
    let names: Vec<&str> = devices.iter().map(String::as_str).collect();

    Tensor::manual_seed(args.seed);
    let model = MnistNet::new();
    let optimizer = |p| Adam::new(p, AdamConfig::adam(args.lr));
    let mut dp = if args.weights.is_empty() {
        DataParallel::new(&model, &names, MnistNet::new, optimizer)?
    } else {
        DataParallel::with_weights(&model, &names, &args.weights, MnistNet::new, optimizer)?
    };
    println!(
        "data-parallel over {} workers, batch {} split {:?}",
        names.len(),
        args.batch_size,
        dp.split_of(args.batch_size)
    );

    let data = Mnist::vendored()?;
    let train = data.len(Split::Train);
    let host_bytes = || -> u64 {
        names
            .iter()
            .filter_map(|n| remote::opened(n))
            .map(|d| d.host_bytes())
            .sum()
    };
    let round_trips = || -> u64 {
        names
            .iter()
            .filter_map(|n| remote::opened(n))
            .map(|d| d.connection().round_trips())
            .sum()
    };
    let (mut timed, mut timed_steps) = (Duration::ZERO, 0usize);
    let (mut bytes0, mut trips0) = (0, 0);
    let start = Instant::now();
    for step in 0..args.steps {
        if step == args.warmup {
            (bytes0, trips0) = (host_bytes(), round_trips());
        }
        let first = (step * args.batch_size) % (train - args.batch_size);
        let idx: Vec<usize> = (first..first + args.batch_size).collect();
        let (x, y) = data.batch(Split::Train, &idx);
        let t = Instant::now();
        let loss = dp.step(&x, &y, |m, x, y| cross_entropy(&m.forward(x), y, 0.0))?;
        let loss = loss.item::<f32>()?;
        if step >= args.warmup {
            timed += t.elapsed();
            timed_steps += 1;
        }
        if step % 50 == 0 || step + 1 == args.steps {
            println!("step {step}: loss {loss:.4}");
        }
    }
    if timed_steps > 0 {
        println!(
            "{:.1} ms per step after {} warm-up steps ({} timed); per step through this process: {:.0} KiB, {:.1} round trips",
            timed.as_secs_f64() * 1e3 / timed_steps as f64,
            args.warmup,
            timed_steps,
            (host_bytes() - bytes0) as f64 / 1024.0 / timed_steps as f64,
            (round_trips() - trips0) as f64 / timed_steps as f64,
        );
    }

    if args.local_baseline {
        println!(
            "baseline: {:.1} ms per step on this process's cpu alone",
            local_step_ms(&args, &data)?
        );
    }

    let net = &dp.replicas()[0];
    net.eval();
    let n = data.len(Split::Test).min(2000);
    let mut correct = 0;
    for first in (0..n).step_by(500) {
        let idx: Vec<usize> = (first..(first + 500).min(n)).collect();
        let (x, y) = data.batch(Split::Test, &idx);
        let x = x.to(names[0])?;
        let y = y.to(names[0])?;
        let hits = ferrograd::no_grad(|| net.forward(&x).argmax(-1).eq(&y).cast(DType::I32));
        correct += hits.sum(-1).item::<i32>()? as usize;
    }
    println!(
        "test accuracy of replica 0 on {n} images: {:.2}% ({:.1} s in all)",
        100.0 * correct as f64 / n as f64,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
