//! Gradient checking: analytic gradients (realized on the device) against central finite
//! differences computed with the f64 reference evaluator.

use crate::axes::All;
use crate::tensor::Tensor;
use crate::testing::leaf_value;
use ferrograd_ir::reference::{evaluate, RefTensor};
use ferrograd_ir::{DType, Node};
use std::collections::HashMap;

/// Leaf values for the reference evaluator, read once; a finite-difference probe replaces one.
struct Leaves {
    cache: HashMap<u64, RefTensor>,
}

impl Leaves {
    fn value(&mut self, n: &Node) -> RefTensor {
        self.cache
            .entry(n.id())
            .or_insert_with(|| leaf_value(n))
            .clone()
    }
}

/// Deterministic pseudo-random values in [-1, 1).
fn weights(n: usize) -> Vec<f64> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// Checks the gradients of `f` at `inputs` against central finite differences in f64.
///
/// The inputs' values are copied into fresh f64 leaves that require grad; the loss is
/// `sum(f(leaves) * w)` with fixed pseudo-random weights `w` in [-1, 1), so every output element
/// counts. The analytic gradients come from [`Tensor::gradient`], realized on the device. The
/// finite differences evaluate the loss's graph with the reference evaluator (exact f64
/// semantics) at `x ± h` for every input element, `h = 1e-6 * max(1, |x|)`. Every element must
/// satisfy `|analytic - fd| <= atol + rtol * |fd|`. `f` must build its result lazily (not
/// realize it), so that the probes reach the output, and should avoid points where it is not
/// differentiable (kinks, ties).
pub fn check_gradients(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Tensor,
    rtol: f64,
    atol: f64,
    what: &str,
) {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            let v = t
                .to_f64_vec()
                .unwrap_or_else(|e| panic!("{what}: reading input {t:?}: {e}"));
            Tensor::from_slice(&v, &t.shape()).requires_grad(true)
        })
        .collect();
    let y = f(&leaves);
    assert!(
        y.dtype().is_float(),
        "{what}: f returned a {} tensor of shape {:?}",
        y.dtype(),
        y.shape()
    );
    let w = Tensor::from_slice(&weights(y.numel()), &y.shape());
    let loss = y.cast(DType::F64).mul(&w).sum(All);

    // Finite differences first: realizing the gradients may realize forward nodes, and the
    // reference evaluator stops at realized nodes.
    let loss_node = loss.node();
    let mut reader = Leaves {
        cache: HashMap::new(),
    };
    let mut numeric = Vec::with_capacity(leaves.len());
    for leaf in &leaves {
        let node = leaf.node();
        let base = reader.value(&node);
        let x = base.to_f64();
        let mut fd = Vec::with_capacity(x.len());
        for j in 0..x.len() {
            let h = 1e-6 * x[j].abs().max(1.0);
            let mut at = |delta: f64| {
                let mut probe = x.clone();
                probe[j] += delta;
                reader.cache.insert(
                    node.id(),
                    RefTensor::from_f64(DType::F64, node.shape(), &probe),
                );
                evaluate(&loss_node, &mut |n| reader.value(n)).to_f64()[0]
            };
            fd.push((at(h) - at(-h)) / (2.0 * h));
        }
        reader.cache.insert(node.id(), base);
        numeric.push(fd);
    }

    let targets: Vec<&Tensor> = leaves.iter().collect();
    let grads = loss.gradient(&targets);
    Tensor::realize_all(&grads).unwrap_or_else(|e| panic!("{what}: realizing the gradients: {e}"));
    for (i, ((g, leaf), fd)) in grads.iter().zip(&leaves).zip(&numeric).enumerate() {
        assert_eq!(
            (g.shape(), g.dtype()),
            (leaf.shape(), DType::F64),
            "{what}: gradient of input {i} has the wrong shape or dtype"
        );
        let analytic = g
            .to_vec::<f64>()
            .unwrap_or_else(|e| panic!("{what}: reading gradient {i}: {e}"));
        for (j, (&a, &n)) in analytic.iter().zip(fd).enumerate() {
            assert!(
                (a - n).abs() <= atol + rtol * n.abs(),
                "{what}: d loss / d input {i} (shape {:?}) element {j}: analytic {a}, finite difference {n} \
                 (rtol {rtol}, atol {atol})\n analytic {analytic:?}\n numeric  {fd:?}",
                leaf.shape()
            );
        }
    }
}
