//! The benchmark workloads, shared by the criterion benches and the peer comparison binary.
//! Each workload realizes its inputs once (outside the timing) and returns a closure that
//! builds the expression and realizes it, so a timed call measures graph building, scheduling,
//! the (cached) kernel lookup and the kernels themselves.

pub mod graphs;

use ferrograd::{All, Tensor};

/// A named workload: the closure runs one iteration.
pub struct Workload {
    /// Name used in reports (matches benches/peers/run.py).
    pub name: &'static str,
    /// Floating-point operations per iteration (0 when the figure is bandwidth).
    pub flops: f64,
    /// Bytes read and written per iteration, counting each input and output once.
    pub bytes: f64,
    /// One iteration.
    pub run: Box<dyn FnMut()>,
}

fn realized(t: Tensor) -> Tensor {
    t.realize().expect("realize input");
    t
}

/// Runs `t` to completion, panicking on device errors.
fn finish(t: Tensor) {
    t.realize().expect("realize");
}

/// The five workloads of the spine issue, at full size.
pub fn workloads() -> Vec<Workload> {
    let n16m = 16 * 1024 * 1024;
    let mut out = Vec::new();
    {
        let a = realized(Tensor::randn(&[1024, 1024]));
        let b = realized(Tensor::randn(&[1024, 1024]));
        out.push(Workload {
            name: "matmul_1024",
            flops: 2.0 * 1024f64.powi(3),
            bytes: 3.0 * 4.0 * 1024.0 * 1024.0,
            run: Box::new(move || finish(a.matmul(&b))),
        });
    }
    {
        let a = realized(Tensor::randn(&[n16m]));
        let b = realized(Tensor::randn(&[n16m]));
        out.push(Workload {
            name: "add_16m",
            flops: 0.0,
            bytes: 3.0 * 4.0 * n16m as f64,
            run: Box::new(move || finish(&a + &b)),
        });
    }
    {
        let a = realized(Tensor::randn(&[n16m]));
        out.push(Workload {
            name: "sum_16m",
            flops: 0.0,
            bytes: 4.0 * n16m as f64,
            run: Box::new(move || finish(a.sum(All))),
        });
    }
    {
        let x = realized(Tensor::randn(&[4096, 1024]));
        out.push(Workload {
            name: "softmax_4096x1024",
            flops: 0.0,
            bytes: 2.0 * 4.0 * 4096.0 * 1024.0,
            run: Box::new(move || finish(x.softmax(-1))),
        });
    }
    {
        let x = realized(Tensor::randn(&[n16m]));
        let w = realized(Tensor::randn(&[n16m]));
        let b = realized(Tensor::randn(&[n16m]));
        out.push(Workload {
            name: "gelu_chain_16m",
            flops: 0.0,
            bytes: 4.0 * 4.0 * n16m as f64,
            run: Box::new(move || finish((&x * &w + &b).gelu())),
        });
    }
    out
}
