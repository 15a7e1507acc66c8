//! The extraction cost: an estimate of the work a graph costs after fusion.
//!
//! Elementwise and movement ops fuse into the kernels that read them, so they cost their ALU
//! work per element (transcendentals and integer division more than adds) and, for movement
//! ops, the index arithmetic they add. Leaves cost the bytes read from memory. Materialized
//! nodes (reductions, `Contiguous`, `Copy`) cost their work plus writing and reading back
//! their result; a reduction also pays a loop per output element, which is most of its cost
//! when it combines only a few elements. A shrink costs the kept share of its operand's work
//! (not through a pad): the shrinks that take a small reduction apart into elementwise ops
//! read its input once between them. One flop is weighted like one byte moved (roughly what a
//! CPU core sustains on a streaming kernel). A permutation that brings another axis innermost
//! costs a strided read per element (its readers walk memory across, which defeats vector
//! loads and wastes cache lines); one that keeps the innermost axis only its index
//! arithmetic. Every e-node adds one more, so the cost grows strictly with the tree (egg's
//! extractor needs a monotonic cost).

use super::lang::{ENode, EOp, GraphEGraph};
use crate::ops::{BinaryOp, UnaryOp};
use egg::{CostFunction, Id};

/// Estimated bytes moved plus flops of an extracted graph.
pub struct FusedCost<'a> {
    egraph: &'a GraphEGraph,
}

impl<'a> FusedCost<'a> {
    /// The cost function over `egraph`'s e-classes.
    pub fn new(egraph: &'a GraphEGraph) -> Self {
        FusedCost { egraph }
    }
}

/// ALU operations per element of an elementwise op.
fn flops_per_element(op: &EOp) -> f64 {
    match op {
        EOp::Unary(UnaryOp::Exp2 | UnaryOp::Log2 | UnaryOp::Sin) => 8.0,
        EOp::Unary(UnaryOp::Sqrt | UnaryOp::Recip) => 4.0,
        EOp::Binary(BinaryOp::IDiv | BinaryOp::Mod) => 8.0,
        EOp::Bitcast(_) => 0.0,
        EOp::Reshape(_) | EOp::Pad(_) => 0.5,
        EOp::Flip(_) => 0.2,
        EOp::Permute(_) | EOp::Shrink(_) => 0.1,
        EOp::Expand(_) => 0.05,
        _ => 1.0,
    }
}

/// The reduction loop of one output element (its setup, accumulator and exit), in flops: a
/// reduction over a 2x2 window ran ~2x slower than the same four elements combined by
/// elementwise ops.
const REDUCE_LOOP: f64 = 8.0;

/// A strided read, per element: a permutation that changes the innermost axis.
const STRIDED_READ: f64 = 1.0;

/// True when permutation `perm` of a value of `shape` brings another axis innermost (size-1
/// axes aside).
fn moves_innermost(perm: &[usize], shape: &[usize]) -> bool {
    let inner = |axes: &mut dyn Iterator<Item = usize>| axes.filter(|&a| shape[a] != 1).last();
    inner(&mut perm.iter().copied()) != inner(&mut (0..shape.len()))
}

/// Cost of one e-node whose output has `numel` elements of `size` bytes, given its first
/// operand's shape (empty for an e-node without operands).
pub fn node_cost(op: &EOp, numel: f64, size: f64, first_shape: &[usize]) -> f64 {
    let first_numel = first_shape.iter().product::<usize>() as f64;
    1.0 + match op {
        EOp::Leaf { .. } => numel * size,
        EOp::Const { .. } | EOp::Arange { .. } => 0.0,
        EOp::Reduce(..) => first_numel + numel * (2.0 * size + REDUCE_LOOP),
        EOp::Contiguous => 2.0 * numel * size,
        EOp::Copy(_) => 4.0 * numel * size,
        EOp::Permute(p) if moves_innermost(p, first_shape) => numel * STRIDED_READ,
        other => numel * flops_per_element(other),
    }
}

impl CostFunction<ENode> for FusedCost<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &ENode, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let first_shape: &[usize] = enode
            .children
            .first()
            .map_or(&[], |&c| &self.egraph[c].data.shape);
        let (numel, size) = match &enode.op {
            EOp::Leaf { dtype, shape, .. }
            | EOp::Const { dtype, shape, .. }
            | EOp::Arange { dtype, shape, .. } => {
                (shape.iter().product::<usize>() as f64, dtype.size() as f64)
            }
            _ => {
                let child = |i: usize| &self.egraph[enode.children[i]].data;
                let first = child(0);
                let numel = match &enode.op {
                    EOp::Reduce(_, axes) => {
                        let reduced: usize = axes.iter().map(|&a| first.shape[a]).product();
                        first.numel() / reduced.max(1)
                    }
                    EOp::Reshape(s) | EOp::Expand(s) => s.iter().product(),
                    EOp::Pad(p) => first
                        .shape
                        .iter()
                        .zip(p)
                        .map(|(&n, &(b, e))| n + b + e)
                        .product(),
                    EOp::Shrink(b) => b.iter().map(|&(s, e)| e - s).product(),
                    _ => first.numel(),
                };
                let size = match &enode.op {
                    EOp::Cast(d) | EOp::Bitcast(d) => d.size(),
                    EOp::Binary(b) if b.is_comparison() => 1,
                    EOp::Ternary(crate::ops::TernaryOp::Where) => child(1).dtype.size(),
                    _ => first.dtype.size(),
                };
                (numel as f64, size as f64)
            }
        };
        // A shrink computes (or reads) its operand only where it keeps it: the shrinks that
        // take a reduction's elements apart each cost their share of its input, not all of
        // it. Not through a pad, whose kept part may be all of its source.
        let kept = match &enode.op {
            EOp::Shrink(_)
                if !self.egraph[enode.children[0]]
                    .nodes
                    .iter()
                    .any(|n| matches!(n.op, EOp::Pad(_))) =>
            {
                numel / (first_shape.iter().product::<usize>() as f64).max(1.0)
            }
            _ => 1.0,
        };
        enode
            .children
            .iter()
            .fold(node_cost(&enode.op, numel, size, first_shape), |acc, &c| {
                acc + kept * costs(c)
            })
    }
}
