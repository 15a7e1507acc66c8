//! Times the spine workloads and prints one JSON object per line (`name`, `median_s`, `runs`),
//! for benches/peers/run.py to compare against numpy, torch and tinygrad in the same run.

use std::time::{Duration, Instant};

fn main() {
    let budget = Duration::from_secs_f64(
        std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    );
    for mut w in ferrograd_benches::workloads() {
        (w.run)(); // warm-up: compiles the kernels
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 5 || (start.elapsed() < budget && times.len() < 200) {
            let t = Instant::now();
            (w.run)();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times[times.len() / 2];
        println!(
            "{{\"name\": \"{}\", \"median_s\": {median:.9}, \"runs\": {}}}",
            w.name,
            times.len()
        );
    }
}
