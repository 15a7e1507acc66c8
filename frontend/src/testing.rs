//! Checking a tensor against the f64 reference evaluator (the oracle), for this crate's tests
//! and for every backend's op suite, and checking gradients against finite differences.

pub use crate::gradcheck::check_gradients;
use crate::tensor::Tensor;
use ferrograd_ir::reference::{assert_close, evaluate, RefTensor};
use ferrograd_ir::Node;

/// The reference value of `t` (computed on the host from its graph, no fusion, no kernels).
pub fn reference(t: &Tensor) -> RefTensor {
    evaluate(&t.node(), &mut leaf_value)
}

/// The value of a realized node, read back from its buffer (a leaf of the reference evaluator).
pub(crate) fn leaf_value(n: &Node) -> RefTensor {
    let bytes = ferrograd_runtime::Buffer::from_handle(n.realized().expect("leaf is realized"))
        .read()
        .expect("reading a leaf buffer for the reference");
    RefTensor::from_bytes(n.dtype(), n.shape(), &bytes[..n.numel() * n.dtype().size()])
}

/// The values the device computes for `t`, in `t`'s own dtype, as f64.
pub fn computed(t: &Tensor) -> Vec<f64> {
    let node = t.node();
    let bytes =
        ferrograd_runtime::download(&node).unwrap_or_else(|e| panic!("realizing {t:?}: {e}"));
    RefTensor::from_bytes(node.dtype(), node.shape(), &bytes).to_f64()
}

/// Realizes `t` on its device and compares it with the reference evaluator.
pub fn check(t: &Tensor, rtol: f64, atol: f64, what: &str) {
    let expected = reference(t);
    assert_eq!(expected.shape, t.shape(), "{what}: reference shape differs");
    let actual = computed(t);
    assert_close(&actual, &expected, rtol, atol, what);
}
