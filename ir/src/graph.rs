//! The lazy graph: hash-consed nodes of primitive ops, checked when built.
//!
//! Building a node that already exists (same op, sources, dtype, shape, device) returns the
//! existing node, so common subexpressions are shared for free. A node can be *realized*: its
//! value is then cached as a buffer and later graphs treat it as a leaf.

use crate::dtype::{DType, Scalar};
use crate::ops::{BinaryOp, BufferHandle, Op, ReduceOp, TernaryOp, UnaryOp};
use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// A shared reference to a graph node.
pub type NodeRef = Arc<Node>;

/// One node of the lazy graph.
pub struct Node {
    id: u64,
    op: Op,
    src: Vec<NodeRef>,
    dtype: DType,
    shape: Vec<usize>,
    device: Arc<str>,
    realized: OnceLock<BufferHandle>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "%{} = {:?} {}{:?} @{} (",
            self.id, self.op, self.dtype, self.shape, self.device
        )?;
        for (i, s) in self.src.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "%{}", s.id)?;
        }
        f.write_str(")")
    }
}

impl Drop for Node {
    /// Drops long chains iteratively: a source whose last owner is this node is unlinked here
    /// instead of recursing, so dropping a graph of any depth cannot overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.src);
        while let Some(n) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(n) {
                stack.append(&mut inner.src);
            }
        }
    }
}

#[derive(PartialEq, Eq, Hash)]
struct NodeKey {
    op: Op,
    src: Vec<u64>,
    dtype: DType,
    shape: Vec<usize>,
    device: Arc<str>,
}

struct Interner {
    map: HashMap<NodeKey, Weak<Node>>,
    sweep_at: usize,
}

static INTERNER: OnceLock<Mutex<Interner>> = OnceLock::new();
static NEXT_NODE_ID: AtomicU64 = AtomicU64::new(1);

fn interner() -> &'static Mutex<Interner> {
    INTERNER.get_or_init(|| {
        Mutex::new(Interner {
            map: HashMap::new(),
            sweep_at: 1024,
        })
    })
}

/// Number of elements of a shape (1 for a 0-d shape).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Node {
    /// The unique id of this node (stable for its lifetime, increasing in creation order).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The op.
    pub fn op(&self) -> &Op {
        &self.op
    }
    /// The sources.
    pub fn src(&self) -> &[NodeRef] {
        &self.src
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// The device name this node's value lives on.
    pub fn device(&self) -> &Arc<str> {
        &self.device
    }
    /// The buffer holding this node's value, if it was realized.
    pub fn realized(&self) -> Option<&BufferHandle> {
        self.realized.get()
    }
    /// Records the buffer that holds this node's value. A second call keeps the first buffer.
    pub fn set_realized(&self, buffer: BufferHandle) {
        let _ = self.realized.set(buffer);
    }

    pub(crate) fn intern(
        op: Op,
        src: Vec<NodeRef>,
        dtype: DType,
        shape: Vec<usize>,
        device: Arc<str>,
    ) -> NodeRef {
        if let Op::Buffer(b) = &op {
            // Buffer leaves are not interned: the table outlives dead entries until a sweep,
            // and a key holding the handle would keep freed memory out of the pool until then.
            // A buffer node is shared by sharing the node itself.
            let realized = OnceLock::new();
            let _ = realized.set(b.clone());
            return Arc::new(Node {
                id: NEXT_NODE_ID.fetch_add(1, Ordering::Relaxed),
                op,
                src,
                dtype,
                shape,
                device,
                realized,
            });
        }
        let key = NodeKey {
            op,
            src: src.iter().map(|s| s.id).collect(),
            dtype,
            shape,
            device,
        };
        let mut table = interner().lock();
        if let Some(existing) = table.map.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        let node = Arc::new(Node {
            id: NEXT_NODE_ID.fetch_add(1, Ordering::Relaxed),
            realized: OnceLock::new(),
            op: key.op.clone(),
            src,
            dtype: key.dtype,
            shape: key.shape.clone(),
            device: key.device.clone(),
        });
        table.map.insert(key, Arc::downgrade(&node));
        if table.map.len() >= table.sweep_at {
            table.map.retain(|_, w| w.strong_count() > 0);
            table.sweep_at = (table.map.len() * 2).max(1024);
        }
        node
    }

    /// A leaf holding realized memory of `dtype` and `shape` on `device`.
    pub fn buffer(
        buffer: BufferHandle,
        dtype: DType,
        shape: &[usize],
        device: &Arc<str>,
    ) -> NodeRef {
        Self::intern(
            Op::Buffer(buffer),
            vec![],
            dtype,
            shape.to_vec(),
            device.clone(),
        )
    }

    /// A tensor whose elements all equal `value` (cast to `dtype`).
    pub fn constant(value: Scalar, dtype: DType, shape: &[usize], device: &Arc<str>) -> NodeRef {
        Self::intern(
            Op::Const(value.cast(dtype)),
            vec![],
            dtype,
            shape.to_vec(),
            device.clone(),
        )
    }

    /// A tensor whose elements equal their index along `axis`.
    pub fn arange(axis: usize, dtype: DType, shape: &[usize], device: &Arc<str>) -> NodeRef {
        assert!(
            axis < shape.len(),
            "arange: axis {axis} out of range for shape {shape:?}"
        );
        assert!(
            dtype.is_int(),
            "arange: index nodes must have an integer dtype, got {dtype}"
        );
        Self::intern(
            Op::Arange(axis),
            vec![],
            dtype,
            shape.to_vec(),
            device.clone(),
        )
    }

    /// An elementwise op of one operand.
    pub fn unary(op: UnaryOp, a: &NodeRef) -> NodeRef {
        let float_only = !matches!(op, UnaryOp::Neg);
        assert!(
            !float_only || a.dtype.is_float(),
            "{op:?}: needs a float operand, got {} of shape {:?}",
            a.dtype,
            a.shape
        );
        assert!(
            a.dtype != DType::Bool,
            "{op:?}: not defined for bool (shape {:?})",
            a.shape
        );
        Self::intern(
            Op::Unary(op),
            vec![a.clone()],
            a.dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// Converts values to `dtype`.
    pub fn cast(a: &NodeRef, dtype: DType) -> NodeRef {
        if a.dtype == dtype {
            return a.clone();
        }
        Self::intern(
            Op::Cast,
            vec![a.clone()],
            dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// Reinterprets bits as `dtype` (same element size).
    pub fn bitcast(a: &NodeRef, dtype: DType) -> NodeRef {
        assert_eq!(
            a.dtype.size(),
            dtype.size(),
            "bitcast: {} to {} changes the element size (shape {:?})",
            a.dtype,
            dtype,
            a.shape
        );
        if a.dtype == dtype {
            return a.clone();
        }
        Self::intern(
            Op::Bitcast,
            vec![a.clone()],
            dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// An elementwise op of two operands of equal dtype and shape.
    pub fn binary(op: BinaryOp, a: &NodeRef, b: &NodeRef) -> NodeRef {
        assert_eq!(
            a.shape, b.shape,
            "{op:?}: shapes {:?} and {:?} differ (broadcast first)",
            a.shape, b.shape
        );
        assert_eq!(
            a.dtype, b.dtype,
            "{op:?}: dtypes {} and {} differ (shapes {:?})",
            a.dtype, b.dtype, a.shape
        );
        assert_eq!(
            a.device, b.device,
            "{op:?}: operands on devices {} and {}",
            a.device, b.device
        );
        match op {
            BinaryOp::IDiv | BinaryOp::Mod | BinaryOp::Shl | BinaryOp::Shr => assert!(
                a.dtype.is_int(),
                "{op:?}: needs integer operands, got {} (shapes {:?})",
                a.dtype,
                a.shape
            ),
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => assert!(
                !a.dtype.is_float(),
                "{op:?}: needs integer or bool operands, got {} (shapes {:?})",
                a.dtype,
                a.shape
            ),
            _ => {}
        }
        let dtype = if op.is_comparison() {
            DType::Bool
        } else {
            a.dtype
        };
        Self::intern(
            Op::Binary(op),
            vec![a.clone(), b.clone()],
            dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// `cond ? a : b` elementwise.
    pub fn where_(cond: &NodeRef, a: &NodeRef, b: &NodeRef) -> NodeRef {
        assert!(
            cond.shape == a.shape && a.shape == b.shape,
            "where: shapes {:?}, {:?}, {:?} differ",
            cond.shape,
            a.shape,
            b.shape
        );
        assert_eq!(
            cond.dtype,
            DType::Bool,
            "where: condition must be bool, got {}",
            cond.dtype
        );
        assert_eq!(
            a.dtype, b.dtype,
            "where: branch dtypes {} and {} differ",
            a.dtype, b.dtype
        );
        Self::intern(
            Op::Ternary(TernaryOp::Where),
            vec![cond.clone(), a.clone(), b.clone()],
            a.dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// `a * b + c` elementwise.
    pub fn mulacc(a: &NodeRef, b: &NodeRef, c: &NodeRef) -> NodeRef {
        assert!(
            a.shape == b.shape && b.shape == c.shape && a.dtype == b.dtype && b.dtype == c.dtype,
            "mulacc: operands {}{:?}, {}{:?}, {}{:?} differ",
            a.dtype,
            a.shape,
            b.dtype,
            b.shape,
            c.dtype,
            c.shape
        );
        Self::intern(
            Op::Ternary(TernaryOp::MulAcc),
            vec![a.clone(), b.clone(), c.clone()],
            a.dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// Reduces over `axes` (sorted, deduplicated); reduced axes keep size 1.
    pub fn reduce(op: ReduceOp, a: &NodeRef, axes: &[usize]) -> NodeRef {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        for &ax in &axes {
            assert!(
                ax < a.shape.len(),
                "reduce {op:?}: axis {ax} out of range for shape {:?}",
                a.shape
            );
        }
        let axes: Vec<usize> = axes.into_iter().filter(|&ax| a.shape[ax] != 1).collect();
        if axes.is_empty() {
            return a.clone();
        }
        let mut shape = a.shape.clone();
        for &ax in &axes {
            shape[ax] = 1;
        }
        Self::intern(
            Op::Reduce(op, axes),
            vec![a.clone()],
            a.dtype,
            shape,
            a.device.clone(),
        )
    }

    /// Same elements in row-major order with a new shape.
    pub fn reshape(a: &NodeRef, shape: &[usize]) -> NodeRef {
        assert_eq!(
            numel(shape),
            a.numel(),
            "reshape: cannot reshape {:?} ({} elements) to {:?}",
            a.shape,
            a.numel(),
            shape
        );
        if shape == a.shape.as_slice() {
            return a.clone();
        }
        if let Op::Reshape = a.op {
            return Self::reshape(&a.src[0], shape);
        }
        Self::intern(
            Op::Reshape,
            vec![a.clone()],
            a.dtype,
            shape.to_vec(),
            a.device.clone(),
        )
    }

    /// Reorders axes: result axis i is source axis `perm[i]`.
    pub fn permute(a: &NodeRef, perm: &[usize]) -> NodeRef {
        let mut seen = vec![false; a.shape.len()];
        assert_eq!(
            perm.len(),
            a.shape.len(),
            "permute: {perm:?} does not fit shape {:?}",
            a.shape
        );
        for &p in perm {
            assert!(
                p < seen.len() && !seen[p],
                "permute: {perm:?} is not a permutation for shape {:?}",
                a.shape
            );
            seen[p] = true;
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return a.clone();
        }
        let shape = perm.iter().map(|&p| a.shape[p]).collect();
        Self::intern(
            Op::Permute(perm.to_vec()),
            vec![a.clone()],
            a.dtype,
            shape,
            a.device.clone(),
        )
    }

    /// Broadcasts size-1 axes of `a` to `shape` (same rank).
    pub fn expand(a: &NodeRef, shape: &[usize]) -> NodeRef {
        assert_eq!(
            shape.len(),
            a.shape.len(),
            "expand: rank of {:?} differs from {shape:?}",
            a.shape
        );
        for (i, (&s, &t)) in a.shape.iter().zip(shape).enumerate() {
            assert!(
                s == t || s == 1,
                "expand: axis {i} of {:?} cannot become {t} (target {shape:?})",
                a.shape
            );
        }
        if shape == a.shape.as_slice() {
            return a.clone();
        }
        Self::intern(
            Op::Expand,
            vec![a.clone()],
            a.dtype,
            shape.to_vec(),
            a.device.clone(),
        )
    }

    /// Pads each axis with `(before, after)` zeros.
    pub fn pad(a: &NodeRef, padding: &[(usize, usize)]) -> NodeRef {
        assert_eq!(
            padding.len(),
            a.shape.len(),
            "pad: {padding:?} does not fit shape {:?}",
            a.shape
        );
        if padding.iter().all(|&(b, e)| b == 0 && e == 0) {
            return a.clone();
        }
        let shape = a
            .shape
            .iter()
            .zip(padding)
            .map(|(&s, &(b, e))| s + b + e)
            .collect();
        Self::intern(
            Op::Pad(padding.to_vec()),
            vec![a.clone()],
            a.dtype,
            shape,
            a.device.clone(),
        )
    }

    /// Keeps `[start, end)` of each axis.
    pub fn shrink(a: &NodeRef, bounds: &[(usize, usize)]) -> NodeRef {
        assert_eq!(
            bounds.len(),
            a.shape.len(),
            "shrink: {bounds:?} does not fit shape {:?}",
            a.shape
        );
        for (i, (&(s, e), &n)) in bounds.iter().zip(&a.shape).enumerate() {
            assert!(
                s <= e && e <= n,
                "shrink: bounds ({s}, {e}) invalid for axis {i} of {:?}",
                a.shape
            );
        }
        if bounds
            .iter()
            .zip(&a.shape)
            .all(|(&(s, e), &n)| s == 0 && e == n)
        {
            return a.clone();
        }
        let shape = bounds.iter().map(|&(s, e)| e - s).collect();
        Self::intern(
            Op::Shrink(bounds.to_vec()),
            vec![a.clone()],
            a.dtype,
            shape,
            a.device.clone(),
        )
    }

    /// Reverses the listed axes.
    pub fn flip(a: &NodeRef, axes: &[usize]) -> NodeRef {
        let mut axes: Vec<usize> = axes
            .iter()
            .copied()
            .filter(|&ax| a.shape.get(ax).is_none_or(|&n| n > 1))
            .collect();
        axes.sort_unstable();
        axes.dedup();
        for &ax in &axes {
            assert!(
                ax < a.shape.len(),
                "flip: axis {ax} out of range for shape {:?}",
                a.shape
            );
        }
        if axes.is_empty() {
            return a.clone();
        }
        Self::intern(
            Op::Flip(axes),
            vec![a.clone()],
            a.dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// Forces `a` into its own contiguous buffer.
    pub fn contiguous(a: &NodeRef) -> NodeRef {
        if matches!(a.op, Op::Buffer(_) | Op::Contiguous) {
            return a.clone();
        }
        Self::intern(
            Op::Contiguous,
            vec![a.clone()],
            a.dtype,
            a.shape.clone(),
            a.device.clone(),
        )
    }

    /// The value of `a` on `device`.
    pub fn copy_to(a: &NodeRef, device: &Arc<str>) -> NodeRef {
        if &a.device == device {
            return a.clone();
        }
        Self::intern(
            Op::Copy,
            vec![a.clone()],
            a.dtype,
            a.shape.clone(),
            device.clone(),
        )
    }
}

/// The same computation as `target` on `device`: buffer leaves are copied there (a `Copy` node
/// each), constants and index leaves are recreated there, every other op is rebuilt on its
/// retargeted sources, also where it was realized already (so the new device computes it).
/// Used to run one graph on several devices (backend test suites).
pub fn retarget(target: &NodeRef, device: &Arc<str>) -> NodeRef {
    let mut map: std::collections::HashMap<u64, NodeRef> = std::collections::HashMap::new();
    let mut stack: Vec<(NodeRef, bool)> = vec![(target.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if map.contains_key(&node.id) {
            continue;
        }
        let leaf = matches!(node.op, Op::Buffer(_));
        if !expanded && !leaf {
            stack.push((node.clone(), true));
            stack.extend(
                node.src
                    .iter()
                    .filter(|s| !map.contains_key(&s.id))
                    .map(|s| (s.clone(), false)),
            );
            continue;
        }
        let moved = if leaf {
            Node::copy_to(&node, device)
        } else if matches!(node.op, Op::Copy) {
            map[&node.src[0].id].clone()
        } else {
            let src = node.src.iter().map(|s| map[&s.id].clone()).collect();
            Node::intern(
                node.op.clone(),
                src,
                node.dtype,
                node.shape.clone(),
                device.clone(),
            )
        };
        map.insert(node.id, moved);
    }
    map.remove(&target.id).expect("the target was visited")
}

/// The nodes reachable from `targets`, sources before users, stopping at realized nodes
/// (which are included as leaves). Iterative, linear in the graph size.
pub fn toposort(targets: &[NodeRef]) -> Vec<NodeRef> {
    toposort_with_leaves(targets, |n| n.realized().is_some()).0
}

/// [`toposort`] stopping at the nodes `is_leaf` picks (asked once per node reached, so one
/// walk sees one consistent set of leaves even while other threads realize shared nodes), and
/// the ids of those leaves.
pub fn toposort_with_leaves(
    targets: &[NodeRef],
    mut is_leaf: impl FnMut(&Node) -> bool,
) -> (Vec<NodeRef>, FxHashSet<u64>) {
    let mut order = Vec::new();
    let mut leaves = FxHashSet::default();
    let mut visited = FxHashSet::default();
    let mut stack: Vec<(NodeRef, bool)> =
        targets.iter().rev().map(|t| (t.clone(), false)).collect();
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !visited.insert(node.id) {
            continue;
        }
        if is_leaf(&node) {
            leaves.insert(node.id);
            order.push(node);
            continue;
        }
        stack.push((node.clone(), true));
        for s in node.src.iter().rev() {
            if !visited.contains(&s.id) {
                stack.push((s.clone(), false));
            }
        }
    }
    (order, leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Arc<str> {
        Arc::from("cpu")
    }

    #[test]
    fn identical_nodes_are_shared() {
        let a = Node::constant(Scalar::Float(1.0), DType::F32, &[2, 3], &cpu());
        let b = Node::constant(Scalar::Float(1.0), DType::F32, &[2, 3], &cpu());
        assert!(Arc::ptr_eq(&a, &b));
        let s1 = Node::binary(BinaryOp::Add, &a, &b);
        let s2 = Node::binary(BinaryOp::Add, &a, &b);
        assert!(Arc::ptr_eq(&s1, &s2));
        let c = Node::constant(Scalar::Float(2.0), DType::F32, &[2, 3], &cpu());
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn movement_shapes() {
        let a = Node::arange(1, DType::I32, &[2, 3], &cpu());
        assert_eq!(Node::permute(&a, &[1, 0]).shape(), &[3, 2]);
        assert_eq!(Node::pad(&a, &[(1, 0), (2, 2)]).shape(), &[3, 7]);
        assert_eq!(Node::shrink(&a, &[(0, 1), (1, 3)]).shape(), &[1, 2]);
        let r = Node::reshape(&Node::reshape(&a, &[6]), &[3, 2]);
        assert!(Arc::ptr_eq(&r.src()[0], &a), "reshape of reshape folds");
        assert_eq!(Node::reduce(ReduceOp::Sum, &a, &[1]).shape(), &[2, 1]);
    }

    #[test]
    #[should_panic(expected = "Add: shapes [2, 3] and [3, 2] differ")]
    fn mismatched_binary_panics_with_shapes() {
        let a = Node::arange(0, DType::I32, &[2, 3], &cpu());
        let b = Node::arange(0, DType::I32, &[3, 2], &cpu());
        Node::binary(BinaryOp::Add, &a, &b);
    }

    #[test]
    #[should_panic(expected = "reshape: cannot reshape [2, 3]")]
    fn bad_reshape_panics() {
        let a = Node::arange(0, DType::I32, &[2, 3], &cpu());
        Node::reshape(&a, &[4]);
    }

    #[test]
    fn dropping_a_deep_chain_does_not_overflow() {
        let one = Node::constant(Scalar::Float(1.0), DType::F32, &[1], &cpu());
        let mut x = one.clone();
        for _ in 0..200_000 {
            x = Node::binary(BinaryOp::Add, &x, &one);
        }
        assert_eq!(toposort(&[x.clone()]).len(), 200_001);
        drop(x);
    }

    #[test]
    fn toposort_orders_sources_first() {
        let a = Node::arange(0, DType::I32, &[4], &cpu());
        let b = Node::binary(BinaryOp::Mul, &a, &a);
        let c = Node::binary(BinaryOp::Add, &b, &a);
        let order = toposort(std::slice::from_ref(&c));
        let pos = |n: &NodeRef| order.iter().position(|x| Arc::ptr_eq(x, n)).unwrap();
        assert!(pos(&a) < pos(&b) && pos(&b) < pos(&c));
        assert_eq!(order.len(), 3);
    }
}
