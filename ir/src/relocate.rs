//! Moving a graph off devices that were lost: [`relocate`] rebuilds the graph behind some
//! targets so that nothing runs on, reads from or copies to a moved device.
//!
//! Every node on a moved device is rebuilt on its replacement device: unrealized nodes and
//! realized intermediates are recomputed there from their own op and sources (their buffers
//! went with the device), copies to a moved device become copies to the replacement (or vanish
//! when the source is already there), and buffer leaves, whose lineage the graph does not
//! hold, are resolved by the caller ([`Leaf`]). Nodes on the other devices are kept, realized
//! ones as they are: work that survived is not redone.

use crate::graph::{Node, NodeRef};
use crate::ops::Op;
use std::collections::HashMap;
use std::sync::Arc;

/// What replaces a buffer leaf that lived on a moved device.
pub enum Leaf {
    /// The expression that produced the buffer: it is relocated in the leaf's place.
    Recompute(NodeRef),
    /// A finished replacement (for example the value uploaded again from a host copy).
    Replace(NodeRef),
}

/// The graphs of `targets` with every node on a device that `moved` maps elsewhere rebuilt on
/// the device it maps to (see the module docs). `leaf` is asked for each buffer leaf on a moved
/// device, with the device it moves to; its error stops the walk. Iterative and linear in the
/// size of the graph (each node is rebuilt once).
pub fn relocate<E>(
    targets: &[NodeRef],
    moved: impl Fn(&str) -> Option<Arc<str>>,
    mut leaf: impl FnMut(&NodeRef, &Arc<str>) -> Result<Leaf, E>,
) -> Result<Vec<NodeRef>, E> {
    let mut done: HashMap<u64, NodeRef> = HashMap::new();
    // Buffer leaves standing for an expression: leaf id -> the expression's root.
    let mut stands_for: HashMap<u64, NodeRef> = HashMap::new();
    let mut stack: Vec<(NodeRef, bool)> = targets.iter().map(|t| (t.clone(), false)).collect();
    while let Some((node, expanded)) = stack.pop() {
        if done.contains_key(&node.id()) {
            continue;
        }
        let to = moved(node.device());
        if !expanded {
            if to.is_none() && node.realized().is_some() {
                done.insert(node.id(), node);
                continue;
            }
            if let (Some(dev), Op::Buffer(_)) = (&to, node.op()) {
                match leaf(&node, dev)? {
                    Leaf::Replace(n) => {
                        done.insert(node.id(), n);
                    }
                    Leaf::Recompute(expr) => {
                        stands_for.insert(node.id(), expr.clone());
                        stack.push((node, true));
                        stack.push((expr, false));
                    }
                }
                continue;
            }
            stack.push((node.clone(), true));
            stack.extend(
                node.src()
                    .iter()
                    .filter(|s| !done.contains_key(&s.id()))
                    .map(|s| (s.clone(), false)),
            );
            continue;
        }
        let rebuilt = if let Some(expr) = stands_for.remove(&node.id()) {
            done[&expr.id()].clone()
        } else if matches!(node.op(), Op::Copy) {
            let device = to.unwrap_or_else(|| node.device().clone());
            Node::copy_to(&done[&node.src()[0].id()], &device)
        } else {
            let src: Vec<NodeRef> = node.src().iter().map(|s| done[&s.id()].clone()).collect();
            let unchanged = src.iter().zip(node.src()).all(|(a, b)| Arc::ptr_eq(a, b));
            match to {
                None if unchanged => node.clone(),
                to => Node::intern(
                    node.op().clone(),
                    src,
                    node.dtype(),
                    node.shape().to_vec(),
                    to.unwrap_or_else(|| node.device().clone()),
                ),
            }
        };
        done.insert(node.id(), rebuilt);
    }
    Ok(targets.iter().map(|t| done[&t.id()].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{DType, Scalar};
    use crate::ops::{BinaryOp, BufferHandle, ReduceOp};

    fn dev(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn lost_to(lost: &'static str, to: &'static str) -> impl Fn(&str) -> Option<Arc<str>> {
        move |d: &str| (d == lost).then(|| dev(to))
    }

    fn never(_: &NodeRef, _: &Arc<str>) -> Result<Leaf, String> {
        Err("no leaf expected".into())
    }

    #[test]
    fn nodes_on_a_lost_device_move_and_copies_to_the_survivor_vanish() {
        let a = Node::arange(0, DType::I32, &[4], &dev("b"));
        let on_a = Node::reduce(ReduceOp::Sum, &Node::binary(BinaryOp::Mul, &a, &a), &[0]);
        let a2 = Node::arange(0, DType::I32, &[4], &dev("a"));
        let lost_part = Node::reduce(ReduceOp::Sum, &Node::binary(BinaryOp::Mul, &a2, &a2), &[0]);
        let total = Node::binary(BinaryOp::Add, &on_a, &Node::copy_to(&lost_part, &dev("b")));
        let out = relocate(std::slice::from_ref(&total), lost_to("a", "b"), never).unwrap();
        let order = crate::toposort(&out);
        assert!(order.iter().all(|n| &**n.device() == "b"), "{order:?}");
        assert!(order.iter().all(|n| !matches!(n.op(), Op::Copy)));
        // The lost part is the same expression as the survivor's, so hash-consing shares it.
        assert_eq!(out[0].src()[0].id(), out[0].src()[1].id());
    }

    #[test]
    fn graphs_without_moved_devices_are_returned_unchanged() {
        let a = Node::constant(Scalar::Float(1.0), DType::F32, &[3], &dev("x"));
        let b = Node::binary(BinaryOp::Add, &a, &a);
        let out = relocate(std::slice::from_ref(&b), lost_to("gone", "x"), never).unwrap();
        assert!(Arc::ptr_eq(&out[0], &b));
    }

    #[test]
    fn buffer_leaves_on_a_lost_device_are_resolved_by_the_caller() {
        let leaf = Node::buffer(BufferHandle::new(Arc::new(())), DType::F32, &[2], &dev("a"));
        let y = Node::binary(BinaryOp::Add, &leaf, &leaf);
        let expr = Node::constant(Scalar::Float(2.0), DType::F32, &[2], &dev("a"));
        let mut asked = Vec::new();
        let out = relocate(&[y], lost_to("a", "c"), |n, to| {
            asked.push((n.id(), to.to_string()));
            Ok::<_, String>(Leaf::Recompute(expr.clone()))
        })
        .unwrap();
        assert_eq!(asked, [(leaf.id(), "c".to_string())]);
        assert_eq!(&**out[0].device(), "c");
        assert!(matches!(out[0].src()[0].op(), Op::Const(_)));

        let err = relocate(std::slice::from_ref(&leaf), lost_to("a", "c"), |n, _| {
            Err(format!("%{} has no lineage", n.id()))
        });
        assert_eq!(err.err(), Some(format!("%{} has no lineage", leaf.id())));
    }

    #[test]
    fn realized_nodes_on_survivors_are_kept_and_lost_ones_recomputed() {
        let kept = Node::constant(Scalar::Float(1.0), DType::F32, &[2], &dev("s"));
        let kept = Node::binary(BinaryOp::Add, &kept, &kept);
        kept.set_realized(BufferHandle::new(Arc::new(())));
        let lost = Node::constant(Scalar::Float(3.0), DType::F32, &[2], &dev("a"));
        let lost = Node::binary(BinaryOp::Mul, &lost, &lost);
        lost.set_realized(BufferHandle::new(Arc::new(())));
        let y = Node::binary(BinaryOp::Add, &kept, &Node::copy_to(&lost, &dev("s")));
        let out = relocate(&[y], lost_to("a", "s"), never).unwrap();
        assert!(Arc::ptr_eq(&out[0].src()[0], &kept));
        let redone = &out[0].src()[1];
        assert!(redone.realized().is_none());
        assert!(matches!(redone.op(), Op::Binary(BinaryOp::Mul)));
    }

    /// Random graphs over devices `a`, `b`, `c` (copies between them, realized intermediates)
    /// relocated off `b`: the f64 reference gives the same values, and nothing is left on `b`.
    mod random_graphs {
        use super::*;
        use crate::reference::{evaluate, RefData, RefTensor};
        use proptest::prelude::*;

        const DEVICES: [&str; 3] = ["a", "b", "c"];

        /// A realized node's reference values (kept in its buffer handle).
        fn value(node: &Node) -> RefTensor {
            node.realized()
                .expect("realized")
                .data()
                .downcast_ref::<RefTensor>()
                .expect("a reference tensor")
                .clone()
        }

        fn holding(t: RefTensor, device: &str) -> NodeRef {
            let (dtype, shape) = (t.dtype, t.shape.clone());
            Node::buffer(BufferHandle::new(Arc::new(t)), dtype, &shape, &dev(device))
        }

        fn leaf(seed: usize, device: &str) -> NodeRef {
            let data = (0..6).map(|i| ((seed * 7 + i * 3) % 11) as f64 - 5.0);
            holding(
                RefTensor::new(DType::F32, &[2, 3], RefData::Float(data.collect())),
                device,
            )
        }

        fn build(steps: &[(u8, usize, usize, usize)]) -> NodeRef {
            let mut pool: Vec<NodeRef> = (0..6).map(|i| leaf(i, DEVICES[i % 3])).collect();
            for &(kind, i, j, d) in steps {
                let a = pool[i % pool.len()].clone();
                let b = Node::copy_to(&pool[j % pool.len()], a.device());
                let n = match kind % 6 {
                    0 => Node::copy_to(&a, &dev(DEVICES[d % 3])),
                    1 => Node::binary(BinaryOp::Add, &a, &b),
                    2 => Node::binary(BinaryOp::Mul, &a, &b),
                    3 => Node::binary(BinaryOp::Max, &a, &b),
                    4 => Node::expand(&Node::reduce(ReduceOp::Sum, &a, &[1]), &[2, 3]),
                    _ => {
                        let v = evaluate(&a, &mut value);
                        a.set_realized(BufferHandle::new(Arc::new(v)));
                        a
                    }
                };
                pool.push(n);
            }
            pool.last().expect("non-empty").clone()
        }

        proptest! {
            #[test]
            fn relocated_graphs_compute_the_same_values(
                steps in proptest::collection::vec((0u8..6, 0usize..64, 0usize..64, 0usize..3), 1..40),
                recompute in any::<bool>(),
            ) {
                let target = build(&steps);
                let want = evaluate(&target, &mut value);
                let mut asked = 0;
                let out = relocate(&[target], lost_to("b", "c"), |n, to| {
                    asked += 1;
                    let v = value(n);
                    Ok::<_, String>(if recompute {
                        // The leaf's lineage: a copy of the same values from another device.
                        Leaf::Recompute(Node::copy_to(&holding(v, "a"), n.device()))
                    } else {
                        Leaf::Replace(holding(v, to))
                    })
                })
                .unwrap();
                let order = crate::toposort(&out);
                for n in &order {
                    prop_assert!(&**n.device() != "b", "{n:?} left on the lost device");
                    if matches!(n.op(), Op::Copy) {
                        prop_assert!(n.src()[0].device() != n.device(), "{n:?} copies in place");
                    }
                }
                prop_assert!(asked <= 2, "each of the two leaves on b is resolved once");
                prop_assert_eq!(evaluate(&out[0], &mut value), want);
            }
        }
    }
}
