//! Seeded determinism of layer initialization and dropout masks. One test in its own binary:
//! the generator's seed and call counter are global, so concurrent tests would interleave.

use ferrograd::nn::{Conv2d, Dropout, Embedding, Linear, Module, MultiheadAttention};
use ferrograd::{Conv2dOptions, Tensor};

/// Every parameter of freshly built layers plus two dropout masks, as bits.
fn draw() -> Vec<Vec<u32>> {
    let x = Tensor::ones(&[256]);
    let d = Dropout::new(0.5);
    let mut tensors = Linear::new(8, 4).parameters();
    tensors.extend(Conv2d::new(2, 4, (3, 3), Conv2dOptions::default()).parameters());
    tensors.extend(Embedding::new(5, 3).parameters());
    tensors.extend(MultiheadAttention::new(4, 2).parameters());
    tensors.push(d.forward(&x));
    tensors.push(d.forward(&x));
    tensors
        .iter()
        .map(|t| {
            t.to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_parameters_and_masks() {
    Tensor::manual_seed(42);
    let a = draw();
    Tensor::manual_seed(42);
    let b = draw();
    assert_eq!(a, b);
    let n = a.len();
    assert_ne!(
        a[n - 1],
        a[n - 2],
        "consecutive dropout calls drew the same mask"
    );
    Tensor::manual_seed(43);
    let c = draw();
    for (i, (x, y)) in a.iter().zip(&c).enumerate() {
        // Zero-initialized biases (attention) are the same under any seed.
        if x.iter().any(|&v| v != 0) {
            assert_ne!(x, y, "tensor {i} does not depend on the seed");
        }
    }
}
