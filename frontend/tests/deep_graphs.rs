//! Deep graphs: a long chain of lazy ops (built in a loop without realizing) must realize and
//! differentiate without overflowing the stack, on the test thread's default stack.

use ferrograd::{All, Tensor};

const DEPTH: usize = 20_000;

#[test]
fn a_deep_elementwise_chain_realizes() {
    ferrograd::device::init();
    let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0], &[3]);
    let mut y = x.clone();
    for i in 0..DEPTH {
        y = if i % 2 == 0 { &y + 1.0 } else { &y * 0.5 };
    }
    let before = ferrograd::runtime::stats().kernels;
    let got = y.to_vec::<f32>().unwrap();
    let kernels = ferrograd::runtime::stats().kernels - before;
    // The chain is cut into kernels of bounded depth: neither one giant kernel nor one per op.
    let depth = ferrograd_ir::schedule::MAX_FUSED_DEPTH;
    assert!(
        (DEPTH / depth..=2 * DEPTH / depth + 1).contains(&kernels),
        "{kernels} kernels for a chain of {DEPTH} ops"
    );
    let want: Vec<f32> = [0.5f32, -1.0, 2.0]
        .iter()
        .map(|&v| {
            let mut v = v as f64;
            for i in 0..DEPTH {
                v = if i % 2 == 0 { v + 1.0 } else { v * 0.5 };
            }
            v as f32
        })
        .collect();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
    }
}

#[test]
fn a_deep_chain_differentiates() {
    ferrograd::device::init();
    let x = Tensor::from_slice(&[0.25f32, 1.5], &[2]).requires_grad(true);
    let mut y = x.clone();
    for _ in 0..DEPTH {
        y = &y * 1.0001;
    }
    y.sum(All).backward();
    let g = x.grad().expect("x has a gradient").to_vec::<f32>().unwrap();
    let want = 1.0001f64.powi(DEPTH as i32) as f32;
    for v in g {
        assert!((v - want).abs() <= 1e-3 * want, "{v} vs {want}");
    }
}
