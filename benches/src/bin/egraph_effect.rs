//! The e-graph optimizer's effect, measured: runs each workload in a fresh process with
//! `FERROGRAD_EGRAPH=tiered` (the default) and `=0` (cold caches both times) and prints
//! kernels, ALU instructions and bytes moved per step (static counts of the launched Programs,
//! weighted by loop trip counts), the warm-up steps' wall time (graph rewrite and kernel
//! compilation included) and the median steady-state step (rewrite cached by graph structure).
//!
//! `cargo run --release -p ferrograd-benches --bin egraph_effect [-- WORKLOAD...]`
//!
//! `-- --interleaved STEPS WORKLOAD...` measures the steady step differently: one process per
//! workload runs both modes (`runtime::rewrite::with_mode`), warms each up, then alternates
//! on and off step by step, so both see the same machine load; it prints the median of each
//! and their ratio. Use it on a noisy machine, where fresh-process medians drift with the load.

use ferrograd::nn::loss::cross_entropy;
use ferrograd::nn::{Conv2d, LayerNorm, Linear, Module, MultiheadAttention};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::{All, Conv2dOptions, Tensor};
use std::process::Command;
use std::time::{Duration, Instant};

/// Steady steps per fresh process: a median of 7 swung by +-25% between runs on this noisy
/// machine, one of 60 by about +-10%.
const STEADY_STEPS: usize = 60;

/// A workload: builds its state, returns one step.
type Step = Box<dyn FnMut()>;

fn mnist_step() -> Step {
    Tensor::manual_seed(1);
    let conv1 = Conv2d::new(1, 8, (3, 3), Conv2dOptions::default());
    let conv2 = Conv2d::new(8, 16, (3, 3), Conv2dOptions::default());
    let fc1 = Linear::new(16 * 5 * 5, 128);
    let fc2 = Linear::new(128, 10);
    let mut params = conv1.parameters();
    params.extend(conv2.parameters());
    params.extend(fc1.parameters());
    params.extend(fc2.parameters());
    let mut opt = Adam::new(params, AdamConfig::adam(1e-3));
    let x = Tensor::rand(&[64, 1, 28, 28]);
    let y = Tensor::randint(0, 10, &[64]);
    x.realize().expect("input");
    y.realize().expect("labels");
    Box::new(move || {
        let pool = Conv2dOptions::default().stride(2, 2);
        let h = conv1.forward(&x).relu().max_pool2d((2, 2), pool);
        let h = conv2.forward(&h).relu().max_pool2d((2, 2), pool);
        let h = fc1.forward(&h.flatten(1, -1)).relu();
        let logits = fc2.forward(&h);
        let loss = cross_entropy(&logits, &y, 0.0);
        loss.backward();
        opt.step_with(&[&loss]).expect("step");
        opt.zero_grad();
        loss.item::<f32>().expect("loss");
    })
}

fn transformer_block() -> Step {
    Tensor::manual_seed(2);
    let (b, t, d) = (4, 32, 64);
    let ln1 = LayerNorm::new(&[d]);
    let ln2 = LayerNorm::new(&[d]);
    let attn = MultiheadAttention::new(d, 4);
    let fc1 = Linear::new(d, 4 * d);
    let fc2 = Linear::new(4 * d, d);
    let mut params = ln1.parameters();
    params.extend(ln2.parameters());
    params.extend(attn.parameters());
    params.extend(fc1.parameters());
    params.extend(fc2.parameters());
    let mut opt = Adam::new(params, AdamConfig::adam(1e-3));
    let x = Tensor::randn(&[b, t, d]);
    x.realize().expect("input");
    Box::new(move || {
        let n = ln1.forward(&x);
        let h = &x + attn.forward(&n, &n, &n, true);
        let out = &h + fc2.forward(&fc1.forward(&ln2.forward(&h)).gelu());
        let loss = out.square().mean(All);
        loss.backward();
        opt.step_with(&[&loss]).expect("step");
        opt.zero_grad();
        loss.item::<f32>().expect("loss");
    })
}

fn workload(name: &str) -> Step {
    match name {
        "mnist_step" => mnist_step(),
        "transformer_block" => transformer_block(),
        other => {
            let w = ferrograd_benches::workloads()
                .into_iter()
                .find(|w| w.name == other)
                .unwrap_or_else(|| panic!("unknown workload {other}"));
            w.run
        }
    }
}

fn names() -> Vec<String> {
    let mut v = vec!["mnist_step".to_string(), "transformer_block".to_string()];
    v.extend(
        ferrograd_benches::workloads()
            .iter()
            .map(|w| w.name.to_string()),
    );
    v
}

/// Steps timed together as the warm-up: in the default tiered mode a graph is optimized at the
/// second realize of its structure, and a training step's first structure differs from the
/// steady one (optimizer state starts as constant zeros), so egg and the compilation of
/// rewritten kernels are paid by the third step.
const WARMUP_STEPS: usize = 3;

/// Runs in the child: prints `kernels alu bytes warmup_ms steady_ms egg_ms index_egg_ms`
/// (kernels, ALU ops and bytes of the step after the warm-up; egg times up to the end of the
/// warm-up, setup included).
fn child(name: &str) {
    let mut step = workload(name);
    let t0 = Instant::now();
    let compiled = || {
        ferrograd::runtime::registry::devices()
            .iter()
            .map(|d| d.compiled_kernels())
            .sum::<usize>()
    };
    for _ in 0..WARMUP_STEPS {
        let (b, c, t) = (ferrograd::runtime::stats(), compiled(), Instant::now());
        step();
        let a = ferrograd::runtime::stats();
        eprintln!(
            "warm-up step: {} kernels, {} lowered, {} compiled, {:.1} ms",
            a.kernels - b.kernels,
            a.lowered - b.lowered,
            compiled() - c,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let warmup = t0.elapsed();
    ferrograd::runtime::count_work(true);
    let s0 = ferrograd::runtime::stats();
    step();
    let s1 = ferrograd::runtime::stats();
    ferrograd::runtime::count_work(false);
    let egg = ferrograd::runtime::rewrite_stats().egg_time;
    let index_egg = ferrograd_ir::index_egraph::stats().egg_time;
    let mut times: Vec<Duration> = (0..STEADY_STEPS)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed()
        })
        .collect();
    times.sort();
    let rs = ferrograd::runtime::rewrite_stats();
    eprintln!("rewrite stats after all steps: {rs:?}");
    eprintln!(
        "index stats after all steps: {:?}",
        ferrograd_ir::index_egraph::stats()
    );
    if ferrograd::runtime::profile::enabled() {
        for k in ferrograd::runtime::profile::take_report().iter().take(12) {
            eprintln!(
                "{:>10.3} ms {:>4} x {}",
                k.total.as_secs_f64() * 1e3,
                k.launches,
                k.name
            );
        }
    }
    println!(
        "RESULT {} {} {} {:.2} {:.3} {:.2} {:.2}",
        s1.kernels - s0.kernels,
        s1.alu_ops - s0.alu_ops,
        s1.bytes - s0.bytes,
        warmup.as_secs_f64() * 1e3,
        times[STEADY_STEPS / 2].as_secs_f64() * 1e3,
        egg.as_secs_f64() * 1e3,
        index_egg.as_secs_f64() * 1e3,
    );
}

/// Runs one workload with the optimizer on and off alternately in this process and prints
/// `| workload | steps | on ms | off ms | on/off | overhead |` (medians of the steady steps; the
/// rewrite step's own time per optimized step: lifting, hashing, instantiating, recording).
fn interleaved(name: &str, steps: usize) {
    use ferrograd::runtime::rewrite::{with_mode, Mode};
    let mode = |on: bool| if on { Mode::Tiered } else { Mode::Off };
    let mut step = workload(name);
    for on in [true, false, true, false] {
        with_mode(mode(on), &mut step);
    }
    let overhead_before = ferrograd::runtime::rewrite_stats().overhead_time;
    let mut on_times = Vec::with_capacity(steps);
    let mut off_times = Vec::with_capacity(steps);
    for i in 0..2 * steps {
        // Alternate which mode goes first in each pair, so neither always follows the other.
        let on = (i % 2 == 0) == (i / 2 % 2 == 0);
        let t = Instant::now();
        with_mode(mode(on), &mut step);
        let elapsed = t.elapsed();
        if on {
            on_times.push(elapsed);
        } else {
            off_times.push(elapsed);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let overhead = ferrograd::runtime::rewrite_stats().overhead_time - overhead_before;
    let (on_ms, off_ms) = (median(&mut on_times), median(&mut off_times));
    println!(
        "| {name} | {steps} | {on_ms:.2} | {off_ms:.2} | {:.3} | {:.3} |",
        on_ms / off_ms,
        overhead.as_secs_f64() * 1e3 / steps as f64
    );
}

fn run_child(name: &str, egraph: &str) -> Vec<String> {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args(["--child", name])
        .env("FERROGRAD_EGRAPH", egraph)
        .output()
        .expect("running the workload");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "{name} (FERROGRAD_EGRAPH={egraph}) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split_whitespace().map(str::to_string).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1]);
        return;
    }
    if args.first().map(String::as_str) == Some("--interleaved") {
        let steps: usize = args
            .get(1)
            .and_then(|s| s.parse().ok())
            .expect("--interleaved STEPS WORKLOAD...");
        let selected = if args.len() > 2 {
            args[2..].to_vec()
        } else {
            names()
        };
        println!(
            "| workload | steps per mode | on ms | off ms | on/off | rewrite overhead ms/step |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        for name in &selected {
            let out = Command::new(std::env::current_exe().expect("own path"))
                .args(["--interleaved-child", &steps.to_string(), name])
                .output()
                .expect("running the workload");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                panic!("{name} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--interleaved-child") {
        interleaved(&args[2], args[1].parse().expect("steps"));
        return;
    }
    let selected = if args.is_empty() { names() } else { args };
    println!("| workload | egraph | kernels/step | ALU ops/step | bytes/step | first {WARMUP_STEPS} steps ms (rewrite + compile) | steady step ms (median of {STEADY_STEPS}) | graph egg ms | index egg ms |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for name in &selected {
        for mode in ["tiered", "0"] {
            let r = run_child(name, mode);
            println!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if mode == "0" { "off" } else { "on" },
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6]
            );
        }
    }
}
