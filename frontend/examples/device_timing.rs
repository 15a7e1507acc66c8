//! Wall time of a few kernels on every device found (after a warm-up that compiles them),
//! including the wait for the device to finish. `cargo run --release --example device_timing`.

use ferrograd::Tensor;
use std::time::Instant;

fn time(device: &str, name: &str, f: impl Fn() -> Tensor) {
    let handle = ferrograd::runtime::device(device).expect("listed device");
    let run = || {
        f().realize().unwrap();
        handle.device().synchronize().unwrap();
    };
    run();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let s = Instant::now();
        run();
        best = best.min(s.elapsed().as_secs_f64());
    }
    println!("{device:<10} {name:<28} {:>9.3} ms", best * 1e3);
}

fn main() {
    let names: Vec<String> = ferrograd::device::list_devices()
        .into_iter()
        .map(|d| d.name)
        .collect();
    let host = Tensor::randn(&[1 << 22]);
    let m = Tensor::randn(&[256, 256]);
    let big = Tensor::randn(&[512, 512]);
    let rows = Tensor::randn(&[4096, 1024]);
    for d in &names {
        let x = host.to(d).unwrap();
        let a = m.to(d).unwrap();
        let b = big.to(d).unwrap();
        let r = rows.to(d).unwrap();
        Tensor::realize_all(&[x.clone(), a.clone(), b.clone(), r.clone()]).unwrap();
        time(d, "exp(x), 4M", || x.exp());
        time(d, "x * 2 + 1, 4M", || &(&x * 2.0) + 1.0);
        time(d, "sum(x), 4M", || x.sum(ferrograd::All));
        time(d, "max over rows [4096,1024]", || r.max_keepdim(-1));
        time(d, "softmax [4096,1024]", || r.softmax(-1));
        time(d, "matmul 256x256x256", || a.matmul(&a));
        time(d, "matmul 512x512x512", || b.matmul(&b));
    }
}
