//! The scheduler: cuts a lazy graph into kernels.
//!
//! Rules (one pass over the graph in topological order, linear in its size):
//! - every target, `Contiguous` and `Copy` node is materialized into its own buffer;
//! - elementwise and movement ops are never materialized on their own: they are inlined into
//!   every kernel that reads them (movement ops become index expressions), except a shared
//!   subexpression that is expensive to recompute;
//! - a reduction is materialized, unless its only use is a chain of elementwise ops (and
//!   reshapes that only add or drop size-1 axes) ending at a materialized node: then it fuses into
//!   that node's kernel as its reduction, with the chain as the kernel's epilogue. A kernel has
//!   at most one reduction.

use crate::graph::{toposort_with_leaves, Node, NodeRef};
use crate::ops::Op;
use rustc_hash::FxHashSet;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One fused kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The node whose value the kernel stores (contiguous, row-major).
    pub output: NodeRef,
    /// The reduction fused into this kernel, if any.
    pub reduce: Option<NodeRef>,
    /// Materialized nodes the kernel reads, in parameter order (after the output): the order
    /// of a walk of the kernel's graph, so it depends on the graph's shape only, never on when
    /// its buffers were created (a kernel must compile once however its inputs are numbered).
    pub inputs: Vec<NodeRef>,
}

/// One step of a schedule.
#[derive(Clone, Debug)]
pub enum ScheduleItem {
    /// Run a kernel.
    Kernel(Kernel),
    /// Copy `src` (materialized on its device) to `output`'s device.
    Copy {
        /// The Copy node.
        output: NodeRef,
        /// Its materialized source.
        src: NodeRef,
    },
}

impl ScheduleItem {
    /// The node this step materializes.
    pub fn output(&self) -> &NodeRef {
        match self {
            ScheduleItem::Kernel(k) => &k.output,
            ScheduleItem::Copy { output, .. } => output,
        }
    }
}

/// Recomputing a shared inlined subexpression costing more than this many ops materializes it.
const MAX_SHARED_INLINE_COST: usize = 48;

/// An elementwise op more than this many inlined ops deep inside one kernel is materialized, so a
/// long lazy chain (a loop that never realizes) becomes several kernels: each kernel's code, its
/// compile time and the depth of the walks that lower it stay bounded.
pub const MAX_FUSED_DEPTH: usize = 256;

/// Nodes that must be materialized (have their own buffer) to run `targets`, whose walk
/// stopped at `leaves`.
fn materialized_set(
    order: &[NodeRef],
    leaves: &FxHashSet<u64>,
    targets: &[NodeRef],
) -> (HashSet<u64>, HashMap<u64, Vec<NodeRef>>) {
    let mut users: HashMap<u64, Vec<NodeRef>> = HashMap::new();
    for n in order {
        if !leaves.contains(&n.id()) {
            for s in n.src() {
                users.entry(s.id()).or_default().push(n.clone());
            }
        }
    }
    let mut mat: HashSet<u64> = HashSet::new();
    for t in targets {
        if !leaves.contains(&t.id()) {
            mat.insert(t.id());
        }
    }
    let mut cost: HashMap<u64, usize> = HashMap::new();
    // Longest chain of inlined ops ending at each node, within its kernel.
    let mut depth: HashMap<u64, usize> = HashMap::new();
    // ALU ops an inlined node recomputes (movement ops are index arithmetic, not counted).
    let mut alu: HashMap<u64, usize> = HashMap::new();
    for n in order {
        if leaves.contains(&n.id()) {
            continue;
        }
        match n.op() {
            Op::Contiguous | Op::Reduce(..) => {
                mat.insert(n.id());
            }
            Op::Copy => {
                mat.insert(n.id());
                let s = &n.src()[0];
                if !leaves.contains(&s.id()) {
                    mat.insert(s.id());
                }
            }
            _ => {}
        }
        let c = if mat.contains(&n.id()) {
            0
        } else {
            1 + n
                .src()
                .iter()
                .map(|s| cost.get(&s.id()).copied().unwrap_or(0))
                .sum::<usize>()
        };
        let d = if mat.contains(&n.id()) {
            0
        } else {
            1 + n
                .src()
                .iter()
                .map(|s| depth.get(&s.id()).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        let shared = users.get(&n.id()).is_some_and(|u| u.len() > 1);
        let too_costly = shared && c > MAX_SHARED_INLINE_COST;
        if (too_costly || d > MAX_FUSED_DEPTH) && !n.op().is_movement() {
            mat.insert(n.id());
            cost.insert(n.id(), 0);
            depth.insert(n.id(), 0);
        } else {
            cost.insert(n.id(), c);
            depth.insert(n.id(), d);
        }
        let a = if mat.contains(&n.id()) {
            0
        } else {
            usize::from(n.op().is_elementwise())
                + n.src()
                    .iter()
                    .map(|s| alu.get(&s.id()).copied().unwrap_or(0))
                    .sum::<usize>()
        };
        alu.insert(n.id(), a);
        if matches!(n.op(), Op::Expand) {
            materialize_broadcast_source(n, leaves, &mut mat, &mut cost, &mut alu);
        }
    }
    (mat, users)
}

/// Recomputing a broadcast subexpression of at least this many ALU ops in every element it
/// is broadcast to (instead of reading it from a buffer) materializes it when the extra work
/// exceeds [`MAX_SHARED_INLINE_COST`] per source element.
const MIN_BROADCAST_MATERIALIZE_COST: usize = 8;

/// An `Expand` reads each element of its source many times; inlined, an elementwise source is
/// recomputed that many times (e.g. a gradient chain feeding a matmul, once per output
/// column). Materializes the expand's first non-movement source when that recomputation costs
/// more than storing and loading it.
fn materialize_broadcast_source(
    expand: &NodeRef,
    leaves: &FxHashSet<u64>,
    mat: &mut HashSet<u64>,
    cost: &mut HashMap<u64, usize>,
    alu: &mut HashMap<u64, usize>,
) {
    let mut src = expand.src()[0].clone();
    while src.op().is_movement() && !leaves.contains(&src.id()) && !mat.contains(&src.id()) {
        src = src.src()[0].clone();
    }
    if leaves.contains(&src.id()) || mat.contains(&src.id()) || !src.op().is_elementwise() {
        return;
    }
    let c = alu.get(&src.id()).copied().unwrap_or(0);
    let factor = expand.numel() / src.numel().max(1);
    if c >= MIN_BROADCAST_MATERIALIZE_COST
        && c.saturating_mul(factor.saturating_sub(1)) > MAX_SHARED_INLINE_COST
    {
        mat.insert(src.id());
        cost.insert(src.id(), 0);
        alu.insert(src.id(), 0);
    }
}

/// True if `reshape` only inserts or drops size-1 axes.
fn is_unit_reshape(node: &NodeRef) -> bool {
    let non1 = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    non1(node.shape()) == non1(node.src()[0].shape())
}

/// Where reduction `r` can fuse forward: the materialized node ending its single-use chain.
fn epilogue_root(
    r: &NodeRef,
    mat: &HashSet<u64>,
    users: &HashMap<u64, Vec<NodeRef>>,
) -> Option<NodeRef> {
    let mut cur = r.clone();
    loop {
        let us = users.get(&cur.id())?;
        if us.len() != 1 {
            return None;
        }
        let u = &us[0];
        let ok = match u.op() {
            Op::Reshape => is_unit_reshape(u),
            Op::Contiguous => true,
            op => op.is_elementwise() && u.shape() == cur.shape(),
        };
        if !ok || u.src().iter().filter(|s| Arc::ptr_eq(s, &cur)).count() != 1 {
            return None;
        }
        if mat.contains(&u.id()) {
            return Some(u.clone());
        }
        cur = u.clone();
    }
}

/// Cuts the graph below `targets` into kernels and copies, in execution order; realized nodes
/// are read, not computed.
pub fn schedule(targets: &[NodeRef]) -> Vec<ScheduleItem> {
    schedule_with_leaves(targets, |n| n.realized().is_some())
}

/// [`schedule`] reading the nodes `is_leaf` picks (each realized) and computing every other
/// node, realized or not. `is_leaf` is asked once per node: a node another thread realizes
/// while this runs (interned nodes are shared) cannot change the cut halfway, and a caller
/// that fixed its leaves earlier (the realize, when it looked up its launch plan) gets the
/// schedule that plan was made for.
pub fn schedule_with_leaves(
    targets: &[NodeRef],
    is_leaf: impl FnMut(&Node) -> bool,
) -> Vec<ScheduleItem> {
    let (order, leaves) = toposort_with_leaves(targets, is_leaf);
    let (mut mat, users) = materialized_set(&order, &leaves, targets);
    // Fuse reductions forward into their epilogue, at most one per kernel.
    let mut fused: HashMap<u64, NodeRef> = HashMap::new(); // root id -> reduce
    for n in &order {
        if leaves.contains(&n.id())
            || !matches!(n.op(), Op::Reduce(..))
            || targets.iter().any(|t| t.id() == n.id())
        {
            continue;
        }
        if let Some(root) = epilogue_root(n, &mat, &users) {
            if let std::collections::hash_map::Entry::Vacant(e) = fused.entry(root.id()) {
                e.insert(n.clone());
                mat.remove(&n.id());
            }
        }
    }
    let mut items = Vec::new();
    for n in &order {
        if leaves.contains(&n.id()) || !mat.contains(&n.id()) {
            continue;
        }
        if let Op::Copy = n.op() {
            items.push(ScheduleItem::Copy {
                output: n.clone(),
                src: n.src()[0].clone(),
            });
            continue;
        }
        // A target that is itself a fusable reduction is its own root.
        let reduce = fused
            .get(&n.id())
            .cloned()
            .or_else(|| matches!(n.op(), Op::Reduce(..)).then(|| n.clone()));
        let inputs = kernel_inputs(n, &leaves, &mat);
        items.push(ScheduleItem::Kernel(Kernel {
            output: n.clone(),
            reduce,
            inputs,
        }));
    }
    items
}

/// The leaves and materialized nodes read by the kernel rooted at `root`, in the order a
/// depth-first walk from the root (operands left to right) first reaches them.
fn kernel_inputs(root: &NodeRef, leaves: &FxHashSet<u64>, mat: &HashSet<u64>) -> Vec<NodeRef> {
    let mut inputs = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<NodeRef> = if matches!(root.op(), Op::Contiguous) {
        vec![root.src()[0].clone()]
    } else {
        root.src().iter().rev().cloned().collect()
    };
    while let Some(n) = stack.pop() {
        if !seen.insert(n.id()) {
            continue;
        }
        if leaves.contains(&n.id()) || mat.contains(&n.id()) {
            inputs.push(n);
        } else {
            stack.extend(n.src().iter().rev().cloned());
        }
    }
    inputs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, BufferHandle, DType, Node, ReduceOp, UnaryOp};

    fn leaf(shape: &[usize]) -> NodeRef {
        let dev: Arc<str> = Arc::from("cpu");
        Node::buffer(BufferHandle::new(Arc::new(())), DType::F32, shape, &dev)
    }

    /// `sum(expand(f(x)) * w)`: a matmul-like reduction reading `f(x)` once per output column.
    fn broadcast_into_reduction(f: impl Fn(&NodeRef) -> NodeRef) -> usize {
        let x = leaf(&[16, 32, 1]);
        let w = leaf(&[1, 32, 64]);
        let fx = Node::expand(&f(&x), &[16, 32, 64]);
        let prod = Node::binary(BinaryOp::Mul, &fx, &Node::expand(&w, &[16, 32, 64]));
        schedule(&[Node::reduce(ReduceOp::Sum, &prod, &[1])]).len()
    }

    /// The parameter order of a kernel is the graph's, not its buffers' ages: the same kernel
    /// over buffers created in the other order is the same kernel (an optimizer whose learning
    /// rate buffer was replaced compiled its update kernel again).
    #[test]
    fn kernel_inputs_follow_the_graph_not_buffer_age() {
        let inputs_of = |a: &NodeRef, b: &NodeRef| {
            let y = Node::binary(BinaryOp::Add, a, &Node::expand(b, &[4, 3]));
            match &schedule(&[y])[..] {
                [ScheduleItem::Kernel(k)] => k.inputs.iter().map(|n| n.id()).collect::<Vec<_>>(),
                other => panic!("one kernel expected, got {}", other.len()),
            }
        };
        let older_matrix = leaf(&[4, 3]);
        let newer_scalar = leaf(&[1, 1]);
        assert_eq!(
            inputs_of(&older_matrix, &newer_scalar),
            vec![older_matrix.id(), newer_scalar.id()]
        );
        let older_scalar = leaf(&[1, 1]);
        let newer_matrix = leaf(&[4, 3]);
        assert_eq!(
            inputs_of(&newer_matrix, &older_scalar),
            vec![newer_matrix.id(), older_scalar.id()]
        );
    }

    #[test]
    fn costly_broadcast_sources_are_materialized() {
        let costly =
            |x: &NodeRef| (0..10).fold(x.clone(), |acc, _| Node::unary(UnaryOp::Sqrt, &acc));
        assert_eq!(
            broadcast_into_reduction(costly),
            2,
            "computed once, then read"
        );
        let cheap = |x: &NodeRef| Node::unary(UnaryOp::Neg, x);
        assert_eq!(
            broadcast_into_reduction(cheap),
            1,
            "a cheap source stays fused"
        );
    }

    /// A node realized while the schedule is being cut (by another thread: interned nodes are
    /// shared) is computed by the kernel that fuses it, never half-read: the leaves are fixed
    /// once per node as the walk reaches them.
    #[test]
    fn a_node_realized_during_the_walk_stays_fused() {
        let x = leaf(&[7, 3]);
        let fused = Node::unary(UnaryOp::Sqrt, &Node::unary(UnaryOp::Exp2, &x));
        let y = Node::contiguous(&Node::binary(BinaryOp::Mul, &fused, &fused));
        let items = schedule_with_leaves(std::slice::from_ref(&y), |n| {
            let leaf = n.realized().is_some();
            if n.id() == fused.id() {
                n.set_realized(BufferHandle::new(Arc::new(())));
            }
            leaf
        });
        let [ScheduleItem::Kernel(k)] = &items[..] else {
            panic!("one kernel expected, got {}", items.len());
        };
        assert!(fused.realized().is_some());
        assert_eq!(
            k.inputs.iter().map(|n| n.id()).collect::<Vec<_>>(),
            [x.id()]
        );
    }
}
