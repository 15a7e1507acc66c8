//! Checking a tensor against the f64 reference evaluator (the oracle), for this crate's tests
//! and for every backend's op suite ([`check`] runs the tensor's graph on every test device),
//! and checking gradients against finite differences.

pub use crate::gradcheck::check_gradients;
use crate::tensor::Tensor;
use ferrograd_ir::reference::{assert_close, evaluate, RefTensor};
use ferrograd_ir::{Node, NodeRef};
use std::sync::{Arc, OnceLock};

/// The devices the op suite runs on: one per backend listed in `FERROGRAD_TEST_BACKENDS`
/// (comma-separated backend or device names, e.g. `cpu,vulkan` or `vulkan:1`), else `cpu` and
/// the first device of every other backend that found one. A backend named in the variable
/// must have a device: its tests must run, not skip.
pub fn test_devices() -> Vec<Arc<str>> {
    static DEVICES: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    DEVICES
        .get_or_init(|| {
            crate::device::init();
            match std::env::var("FERROGRAD_TEST_BACKENDS") {
                Ok(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| {
                        crate::device::canonical_device(n).unwrap_or_else(|e| {
                            panic!(
                                "FERROGRAD_TEST_BACKENDS names `{n}`, which is not available: {e}"
                            )
                        })
                    })
                    .collect(),
                Err(_) => {
                    let mut seen = std::collections::HashSet::new();
                    ferrograd_runtime::devices()
                        .iter()
                        .map(|d| d.name().clone())
                        .filter(|n| seen.insert(n.split(':').next().unwrap_or(n).to_string()))
                        .collect()
                }
            }
        })
        .clone()
}

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
    computed_node(&t.node())
}

fn computed_node(node: &NodeRef) -> Vec<f64> {
    let bytes = ferrograd_runtime::download(node).unwrap_or_else(|e| {
        panic!(
            "realizing {}{:?} on {}: {e}",
            node.dtype(),
            node.shape(),
            node.device()
        )
    });
    RefTensor::from_bytes(node.dtype(), node.shape(), &bytes).to_f64()
}

/// Computes `t` on every [`test_devices`] device (its own graph, moved there) and compares each
/// result with the reference evaluator.
pub fn check(t: &Tensor, rtol: f64, atol: f64, what: &str) {
    let expected = reference(t);
    assert_eq!(expected.shape, t.shape(), "{what}: reference shape differs");
    let node = t.node();
    for device in test_devices() {
        let moved = ferrograd_ir::retarget(&node, &device);
        let actual = computed_node(&moved);
        assert_close(
            &actual,
            &expected,
            rtol,
            atol,
            &format!("{what} [on {device}]"),
        );
    }
}
