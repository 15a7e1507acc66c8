//! Synthetic graphs for the rewrite benchmarks.

use ferrograd_ir::{BinaryOp, BufferHandle, DType, Node, NodeRef, ReduceOp, Scalar, UnaryOp};
use std::sync::Arc;

/// A deterministic graph of about `nodes` nodes on `[8, 16]` f32 values mixing what models
/// build (elementwise chains, reductions with broadcasts, transposes, reshapes, pads/shrinks,
/// selects) with things the rewrite rules find (multiplications by one, double negations,
/// transposes of transposes, sums of broadcasts). Returns the targets (the last few values).
pub fn mixed_graph(nodes: usize) -> Vec<NodeRef> {
    let dev: Arc<str> = Arc::from("cpu");
    let shape = [8usize, 16];
    let leaf = || Node::buffer(BufferHandle::new(Arc::new(())), DType::F32, &shape, &dev);
    let mut pool: Vec<NodeRef> = (0..8).map(|_| leaf()).collect();
    let one = Node::constant(Scalar::Float(1.0), DType::F32, &shape, &dev);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    let mut count = 0usize;
    loop {
        if count >= nodes {
            // Stop once the graph below the targets has `nodes` nodes (hash-consing shares
            // equal subexpressions, so fewer are reachable than were built).
            let targets = pool[pool.len() - 4..].to_vec();
            if ferrograd_ir::toposort(&targets).len() >= nodes {
                return targets;
            }
            count = nodes - nodes / 16;
        }
        let a = pool[pool.len() - 1 - next(pool.len().min(6))].clone();
        let b = pool[next(pool.len())].clone();
        let (v, added) = match next(12) {
            0 => (Node::binary(BinaryOp::Add, &a, &b), 1),
            1 => (Node::binary(BinaryOp::Mul, &a, &b), 1),
            2 => (Node::binary(BinaryOp::Mul, &a, &one), 1),
            3 => (Node::unary(UnaryOp::Neg, &Node::unary(UnaryOp::Neg, &a)), 2),
            4 => (Node::unary(UnaryOp::Exp2, &a), 1),
            5 => (Node::binary(BinaryOp::Max, &a, &b), 1),
            6 => (Node::permute(&Node::permute(&a, &[1, 0]), &[1, 0]), 2),
            7 => (
                Node::reshape(
                    &Node::permute(&Node::reshape(&a, &[16, 8]), &[1, 0]),
                    &shape,
                ),
                3,
            ),
            8 => {
                let s = Node::reduce(ReduceOp::Sum, &a, &[1]);
                (Node::expand(&s, &shape), 2)
            }
            9 => {
                let e = Node::expand(&Node::reshape(&a, &[8, 16, 1]), &[8, 16, 4]);
                let s = Node::reduce(ReduceOp::Sum, &e, &[2]);
                (Node::reshape(&s, &shape), 4)
            }
            10 => {
                let p = Node::pad(&a, &[(1, 1), (0, 2)]);
                (Node::shrink(&p, &[(1, 9), (0, 16)]), 2)
            }
            _ => {
                let c = Node::binary(BinaryOp::CmpLt, &a, &b);
                (Node::where_(&c, &a, &b), 2)
            }
        };
        count += added;
        pool.push(v);
    }
}
