//! Times the GPU benchmark set on one device and prints one JSON object per line (`name`,
//! `median_s`, `runs`, `flops`, `bytes`), for benches/peers/gpu.py to compare against torch on
//! the same GPU in the same run.
//!
//! `ferrograd-gpu-peer --device vulkan:0 [--budget SECONDS] [--small]`: every iteration builds
//! the expression, realizes it and waits for the device (`synchronize`), so a figure is the
//! whole cost a user sees. `--small` shrinks the sizes for CPU implementations (lavapipe).

use clap::Parser;
use ferrograd::{DType, Tensor};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Device to run on (`ferrograd devices` lists them).
    #[arg(long)]
    device: String,
    /// Seconds of timed iterations per workload (at least 5 iterations run).
    #[arg(long, default_value_t = 2.0)]
    budget: f64,
    /// Sizes for CPU-speed devices: matmul 512 instead of 4096, add of 4M instead of 64M,
    /// softmax 1024x1024 instead of 8192x4096.
    #[arg(long)]
    small: bool,
}

struct Workload {
    name: &'static str,
    flops: f64,
    bytes: f64,
    run: Box<dyn Fn() -> Tensor>,
}

fn on(device: &str, t: Tensor) -> Tensor {
    let t = t.to(device).expect("moving an input to the device");
    t.realize().expect("realizing an input");
    t
}

fn workloads(device: &str, small: bool) -> Vec<Workload> {
    let (n, elems, rows, cols) = if small {
        (512usize, 4usize << 20, 1024usize, 1024usize)
    } else {
        (4096, 64 << 20, 8192, 4096)
    };
    let mut out = Vec::new();
    for (dtype, name) in [(DType::F32, "matmul_f32"), (DType::F16, "matmul_f16")] {
        let a = on(device, Tensor::randn(&[n, n]).cast(dtype));
        let b = on(device, Tensor::randn(&[n, n]).cast(dtype));
        out.push(Workload {
            name,
            flops: 2.0 * (n as f64).powi(3),
            bytes: 3.0 * dtype.size() as f64 * (n * n) as f64,
            run: Box::new(move || a.matmul(&b)),
        });
    }
    let x = on(device, Tensor::randn(&[elems]));
    let y = on(device, Tensor::randn(&[elems]));
    out.push(Workload {
        name: "add_f32",
        flops: elems as f64,
        bytes: 3.0 * 4.0 * elems as f64,
        run: Box::new(move || &x + &y),
    });
    let s = on(device, Tensor::randn(&[rows, cols]));
    out.push(Workload {
        name: "softmax_f32",
        flops: 0.0,
        bytes: 2.0 * 4.0 * (rows * cols) as f64,
        run: Box::new(move || s.softmax(-1)),
    });
    out
}

fn main() -> ferrograd::Result<()> {
    let args = Args::parse();
    ferrograd::device::init();
    let handle = ferrograd::runtime::device(&args.device)?;
    let budget = Duration::from_secs_f64(args.budget);
    for w in workloads(&args.device, args.small) {
        let once = || -> ferrograd::Result<()> {
            (w.run)().realize()?;
            handle.device().synchronize()
        };
        once()?; // warm-up: compiles the kernels
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 5 || (start.elapsed() < budget && times.len() < 200) {
            let t = Instant::now();
            once()?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times[times.len() / 2];
        println!(
            "{{\"name\": \"{}\", \"median_s\": {median:.9}, \"runs\": {}, \"flops\": {}, \"bytes\": {}}}",
            w.name,
            times.len(),
            w.flops,
            w.bytes
        );
    }
    Ok(())
}
