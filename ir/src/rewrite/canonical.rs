//! Canonical kernel structures: chains of permutes composed into one permute (an identity
//! dropped) and nodes nothing uses any more removed, so a kernel of the rewritten graph that
//! differs from the caller's only where `movement/permute-permute` folded a pair has the same
//! key as the caller's kernel. The runtime keys its cache of lowered kernels by this form;
//! composing permutes is exact (the same index map), so both lower to the same Program.

use super::lang::EOp;
use super::template::{SNode, Structure};

/// `structure` with permute chains composed and unused nodes removed, and the new position of
/// every old position that is still used.
pub fn compose_permutes(structure: &Structure) -> (Structure, Vec<Option<u32>>) {
    // Pass 1: every node's replacement among the old positions, with permutes composed.
    let mut nodes: Vec<SNode> = Vec::with_capacity(structure.nodes.len());
    let mut to_new: Vec<u32> = Vec::with_capacity(structure.nodes.len());
    for n in &structure.nodes {
        let src: Vec<u32> = n.src.iter().map(|&s| to_new[s as usize]).collect();
        let node = match (
            &n.op,
            nodes.get(src.first().copied().unwrap_or(u32::MAX) as usize),
        ) {
            (EOp::Permute(outer), Some(inner)) => match &inner.op {
                EOp::Permute(first) => {
                    let composed: Vec<usize> = outer.iter().map(|&p| first[p]).collect();
                    if composed.iter().enumerate().all(|(i, &p)| i == p) {
                        to_new.push(inner.src[0]);
                        continue;
                    }
                    SNode {
                        op: EOp::Permute(composed),
                        src: inner.src.clone(),
                    }
                }
                _ => SNode {
                    op: n.op.clone(),
                    src,
                },
            },
            _ => SNode {
                op: n.op.clone(),
                src,
            },
        };
        to_new.push(nodes.len() as u32);
        nodes.push(node);
    }
    let roots: Vec<u32> = structure
        .roots
        .iter()
        .map(|&r| to_new[r as usize])
        .collect();
    // Pass 2: keep what the roots reach, in order.
    let mut live = vec![false; nodes.len()];
    for &r in &roots {
        live[r as usize] = true;
    }
    for i in (0..nodes.len()).rev() {
        if live[i] {
            for &s in &nodes[i].src {
                live[s as usize] = true;
            }
        }
    }
    let mut renumber: Vec<Option<u32>> = vec![None; nodes.len()];
    let mut kept = Vec::with_capacity(nodes.len());
    for (i, mut n) in nodes.into_iter().enumerate() {
        if live[i] {
            n.src = n
                .src
                .iter()
                .map(|&s| renumber[s as usize].expect("sources come first"))
                .collect();
            renumber[i] = Some(kept.len() as u32);
            kept.push(n);
        }
    }
    let positions = to_new.iter().map(|&p| renumber[p as usize]).collect();
    let canonical = Structure {
        nodes: kept,
        roots: roots
            .iter()
            .map(|&r| renumber[r as usize].expect("roots are live"))
            .collect(),
    };
    (canonical, positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Node, NodeRef};
    use crate::ops::{BinaryOp, BufferHandle, ReduceOp};
    use crate::rewrite::Lifted;
    use crate::DType;
    use std::sync::Arc;

    fn leaf(shape: &[usize]) -> NodeRef {
        let dev: Arc<str> = Arc::from("cpu");
        Node::buffer(BufferHandle::new(Arc::new(())), DType::F32, shape, &dev)
    }

    fn canonical(target: &NodeRef) -> Structure {
        compose_permutes(&Lifted::new(std::slice::from_ref(target)).structure).0
    }

    #[test]
    fn a_permute_pair_has_the_key_of_its_composition() {
        let x = leaf(&[2, 3, 4]);
        let y = leaf(&[4, 2, 3]);
        let pair = Node::permute(&Node::permute(&x, &[1, 2, 0]), &[1, 2, 0]);
        let single = Node::permute(&x, &[2, 0, 1]);
        let sum =
            |p: &NodeRef| Node::reduce(ReduceOp::Sum, &Node::binary(BinaryOp::Add, p, &y), &[0]);
        assert_eq!(canonical(&sum(&pair)), canonical(&sum(&single)));
        assert_ne!(
            Lifted::new(&[sum(&pair)]).structure,
            Lifted::new(&[sum(&single)]).structure,
            "the plain structures differ"
        );
    }

    #[test]
    fn an_inverse_pair_vanishes_and_other_chains_stay_distinct() {
        let x = leaf(&[2, 3, 4]);
        let y = leaf(&[2, 3, 4]);
        let add = |a: &NodeRef| Node::binary(BinaryOp::Add, a, &y);
        let there_and_back = Node::permute(&Node::permute(&x, &[1, 2, 0]), &[2, 0, 1]);
        assert_eq!(canonical(&add(&there_and_back)), canonical(&add(&x)));
        // A permute another op still reads is kept.
        let p = Node::permute(&x, &[0, 2, 1]);
        let squared = Node::binary(BinaryOp::Mul, &p, &p);
        let shared = Node::binary(
            BinaryOp::Add,
            &Node::permute(&p, &[0, 2, 1]),
            &Node::permute(&squared, &[0, 2, 1]),
        );
        let (c, positions) =
            compose_permutes(&Lifted::new(std::slice::from_ref(&shared)).structure);
        assert_eq!(
            positions.len(),
            Lifted::new(&[shared]).structure.nodes.len()
        );
        let permutes = c
            .nodes
            .iter()
            .filter(|n| matches!(n.op, EOp::Permute(_)))
            .count();
        assert_eq!(permutes, 2, "{c:?}");
        // Different compositions are different keys.
        let cube = leaf(&[3, 3, 3]);
        let other = leaf(&[3, 3, 3]);
        let add = |a: &NodeRef| Node::binary(BinaryOp::Add, a, &other);
        let a = Node::permute(&Node::permute(&cube, &[1, 0, 2]), &[0, 2, 1]);
        let b = Node::permute(&Node::permute(&cube, &[0, 2, 1]), &[1, 0, 2]);
        assert_ne!(canonical(&add(&a)), canonical(&add(&b)));
    }
}
