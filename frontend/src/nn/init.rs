//! Initial values of layer parameters and buffers.

use crate::Tensor;

/// Samples from U(-bound, bound) (default float dtype, seeded generator).
pub(crate) fn uniform(shape: &[usize], bound: f64) -> Tensor {
    Tensor::rand(shape).mul(2.0 * bound).sub(bound)
}

/// `values` computed now (so the layer holds buffers, not random-number graphs) and marked as
/// trainable parameters. `layer` names the constructor in the panic a device failure causes.
pub(crate) fn parameters<const N: usize>(layer: &str, values: [Tensor; N]) -> [Tensor; N] {
    realized(layer, values).map(|t| t.requires_grad(true))
}

/// `values` computed now. Panics with the device's error if that fails.
pub(crate) fn realized<const N: usize>(layer: &str, values: [Tensor; N]) -> [Tensor; N] {
    Tensor::realize_all(&values)
        .unwrap_or_else(|e| panic!("{layer}: computing the initial values: {e}"));
    values
}
