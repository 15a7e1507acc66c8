//! Times the kernels of one expression one by one (after a warm-up that compiles them).

use ferrograd::Tensor;
use std::time::Instant;

fn time(name: &str, f: impl Fn() -> Tensor) {
    f().realize().unwrap();
    let mut best = f64::MAX;
    for _ in 0..10 {
        let t = f();
        let s = Instant::now();
        t.realize().unwrap();
        best = best.min(s.elapsed().as_secs_f64());
    }
    println!("{name:<24} {:>8.3} ms", best * 1e3);
}

fn main() {
    let x = Tensor::randn(&[4096, 1024]);
    x.realize().unwrap();
    let m = x.max_keepdim(-1);
    m.realize().unwrap();
    let e = (&x - &m).exp();
    let s = e.sum_keepdim(-1);
    s.realize().unwrap();
    time("max over last axis", || x.max_keepdim(-1));
    time("sum(exp(x - m))", || (&x - &m).exp().sum_keepdim(-1));
    time("exp(x - m) / s", || (&x - &m).exp() / &s);
    time("x * 2 (elementwise)", || &x * 2.0);
    time("exp(x)", || x.exp());
    time("softmax", || x.softmax(-1));
    time("softmax (manual)", || {
        let m = x.max_keepdim(-1);
        let e = (&x - &m).exp();
        &e / &e.sum_keepdim(-1)
    });
    let before = ferrograd::runtime::stats().kernels;
    x.softmax(-1).realize().unwrap();
    println!(
        "softmax kernels: {}",
        ferrograd::runtime::stats().kernels - before
    );
}
