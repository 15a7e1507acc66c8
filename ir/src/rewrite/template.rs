//! Graph structures (the unrealized part of a graph with its realized leaves numbered) and
//! templates (the rewritten structure, instantiated on any leaves of the same structure).
//!
//! A training loop builds the same graph on new buffers every step; its structure is equal
//! every time, so the rewrite found for it once is reused (see `ferrograd_runtime`'s cache).

use super::lang::{infer, EOp, Facts, Konst};
use crate::graph::{toposort_with_leaves, Node, NodeRef};
use crate::ops::Op;
use rustc_hash::FxHashMap as HashMap;

/// One node of a structure: an op (leaves numbered by their slot) and its operands' positions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SNode {
    /// The op with its parameters.
    pub op: EOp,
    /// Positions of the operands (always earlier in the list).
    pub src: Vec<u32>,
}

/// The structure of the graph below some targets, sources before users.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Structure {
    /// The nodes, in topological order.
    pub nodes: Vec<SNode>,
    /// Positions of the targets.
    pub roots: Vec<u32>,
}

/// A graph taken apart: its structure, its leaves (realized nodes, by slot) and the original
/// node at every position.
pub struct Lifted {
    /// The structure (the cache key).
    pub structure: Structure,
    /// The realized nodes, by slot.
    pub leaves: Vec<NodeRef>,
    /// The node at every position of the structure.
    pub nodes: Vec<NodeRef>,
}

/// The e-graph operator of `node`, a leaf (input `slot`) when `leaf`.
fn eop_of(node: &Node, leaf: bool, slot: u32) -> EOp {
    let (dtype, shape, device) = (node.dtype(), node.shape().to_vec(), node.device().clone());
    if leaf {
        return EOp::Leaf {
            slot,
            dtype,
            shape,
            device,
        };
    }
    match node.op() {
        Op::Buffer(_) => unreachable!("buffer nodes are leaves"),
        Op::Const(v) => EOp::Const {
            value: Konst(*v),
            dtype,
            shape,
            device,
        },
        Op::Arange(axis) => EOp::Arange {
            axis: *axis,
            dtype,
            shape,
            device,
        },
        Op::Unary(u) => EOp::Unary(*u),
        Op::Cast => EOp::Cast(dtype),
        Op::Bitcast => EOp::Bitcast(dtype),
        Op::Binary(b) => EOp::Binary(*b),
        Op::Ternary(t) => EOp::Ternary(*t),
        Op::Reduce(r, axes) => EOp::Reduce(*r, axes.clone()),
        Op::Reshape => EOp::Reshape(shape),
        Op::Permute(p) => EOp::Permute(p.clone()),
        Op::Expand => EOp::Expand(shape),
        Op::Pad(p) => EOp::Pad(p.clone()),
        Op::Shrink(b) => EOp::Shrink(b.clone()),
        Op::Flip(a) => EOp::Flip(a.clone()),
        Op::Contiguous => EOp::Contiguous,
        Op::Copy => EOp::Copy(device),
    }
}

impl Lifted {
    /// Takes apart the graph below `targets` (walks stop at realized nodes, which become
    /// leaves). Linear in the graph size.
    pub fn new(targets: &[NodeRef]) -> Lifted {
        Lifted::with_leaves(targets, |n| n.realized().is_some())
    }

    /// Takes apart the graph below `targets`, whose walks stop at the nodes `is_leaf` picks
    /// (asked once per node; see [`toposort_with_leaves`]). A kernel's graph is taken apart
    /// down to its scheduled inputs, whatever else is realized by then.
    pub fn with_leaves(targets: &[NodeRef], is_leaf: impl FnMut(&Node) -> bool) -> Lifted {
        let (order, leaf_ids) = toposort_with_leaves(targets, is_leaf);
        let mut pos: HashMap<u64, u32> =
            HashMap::with_capacity_and_hasher(order.len(), Default::default());
        let mut leaves = Vec::new();
        let mut nodes = Vec::with_capacity(order.len());
        for (i, n) in order.iter().enumerate() {
            let op = eop_of(n, leaf_ids.contains(&n.id()), leaves.len() as u32);
            let src = if matches!(op, EOp::Leaf { .. }) {
                leaves.push(n.clone());
                Vec::new()
            } else {
                n.src().iter().map(|s| pos[&s.id()]).collect()
            };
            pos.insert(n.id(), i as u32);
            nodes.push(SNode { op, src });
        }
        Lifted {
            structure: Structure {
                nodes,
                roots: targets.iter().map(|t| pos[&t.id()]).collect(),
            },
            leaves,
            nodes: order,
        }
    }
}

/// A rewritten structure: instantiated on the leaves of a graph with the structure it was made
/// for, it computes the same targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The rewritten nodes, sources before users.
    pub nodes: Vec<SNode>,
    /// Positions of the targets (in the order of the original roots).
    pub roots: Vec<u32>,
    /// For each position of the original structure, the rewritten node with the same value,
    /// where one was kept.
    pub alias: Vec<Option<u32>>,
    /// For each rewritten node, the position of an original node identical to it (same op on
    /// the same operands): instantiating reuses that node instead of building a copy, so only
    /// what the rewrite changed is built anew ([`identical_originals`]).
    pub reuse: Vec<Option<u32>>,
    /// True when this is the input structure unchanged ([`Template::identity`]): the caller
    /// can use its own graph instead of instantiating this one.
    pub is_identity: bool,
}

/// For each of `nodes` (sources before users), the position in `original` of a node with the
/// same op whose operands are the originals of its operands, where there is one.
pub fn identical_originals(nodes: &[SNode], original: &Structure) -> Vec<Option<u32>> {
    let mut index: HashMap<(&EOp, &[u32]), u32> =
        HashMap::with_capacity_and_hasher(original.nodes.len(), Default::default());
    for (i, n) in original.nodes.iter().enumerate() {
        index.entry((&n.op, n.src.as_slice())).or_insert(i as u32);
    }
    let mut reuse: Vec<Option<u32>> = Vec::with_capacity(nodes.len());
    let mut src = Vec::new();
    for n in nodes {
        src.clear();
        let all_reused = n.src.iter().all(|&s| match reuse[s as usize] {
            Some(p) => {
                src.push(p);
                true
            }
            None => false,
        });
        reuse.push(if all_reused {
            index.get(&(&n.op, src.as_slice())).copied()
        } else {
            None
        });
    }
    reuse
}

impl Template {
    /// The template that changes nothing.
    pub fn identity(structure: &Structure) -> Template {
        Template {
            nodes: structure.nodes.clone(),
            roots: structure.roots.clone(),
            alias: (0..structure.nodes.len() as u32).map(Some).collect(),
            reuse: (0..structure.nodes.len() as u32).map(Some).collect(),
            is_identity: true,
        }
    }

    /// Builds the rewritten graph for a graph of the structure it was made for, given that
    /// graph's nodes by position ([`Lifted::nodes`]) and leaves by slot; returns the node at
    /// every position. Nodes the rewrite kept are the caller's own ([`Template::reuse`]).
    pub fn instantiate(&self, originals: &[NodeRef], leaves: &[NodeRef]) -> Vec<NodeRef> {
        let mut built: Vec<NodeRef> = Vec::with_capacity(self.nodes.len());
        for (n, reuse) in self.nodes.iter().zip(&self.reuse) {
            if let Some(p) = reuse {
                built.push(originals[*p as usize].clone());
                continue;
            }
            let node = match &n.op {
                EOp::Leaf { slot, .. } => leaves[*slot as usize].clone(),
                op => {
                    let src: Vec<NodeRef> =
                        n.src.iter().map(|&s| built[s as usize].clone()).collect();
                    let child = |i: usize| Facts {
                        dtype: src[i].dtype(),
                        shape: src[i].shape().to_vec(),
                        device: src[i].device().clone(),
                        konst: None,
                    };
                    let f = infer(op, &child);
                    Node::intern(
                        op.to_op().expect("not a leaf"),
                        src,
                        f.dtype,
                        f.shape,
                        f.device,
                    )
                }
            };
            built.push(node);
        }
        built
    }

    /// Number of non-leaf nodes.
    pub fn op_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !matches!(n.op, EOp::Leaf { .. }))
            .count()
    }
}
