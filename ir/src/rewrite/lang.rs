//! The e-graph language over the primitive ops and its analysis (shape, dtype, device and the
//! constant value of every e-class).
//!
//! An e-node is an op with its parameters (permutation, padding, target shape, ...) and its
//! child e-classes. Leaves carry their own dtype and shape; every other e-node gets them from
//! the analysis, which computes them from the children exactly as [`crate::Node`]'s
//! constructors do, so two e-nodes that land in one e-class always agree on them.

use crate::dtype::{DType, Scalar};
use crate::ops::{BinaryOp, Op, ReduceOp, TernaryOp, UnaryOp};
use crate::reference::fold_scalar;
use egg::{Analysis, DidMerge, EGraph, Id, Language};
use std::cmp::Ordering;
use std::sync::Arc;

/// A constant value with a total order (by its bit pattern, so NaN constants are values too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Konst(pub Scalar);

impl PartialOrd for Konst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Konst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key().cmp(&other.0.key())
    }
}

/// The operator of an e-node with its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EOp {
    /// A value that is already computed (a realized node): input `slot` of the graph.
    Leaf {
        /// Position in the graph's list of leaves.
        slot: u32,
        /// Element type.
        dtype: DType,
        /// Shape.
        shape: Vec<usize>,
        /// Device.
        device: Arc<str>,
    },
    /// A constant tensor.
    Const {
        /// The value (already of `dtype`).
        value: Konst,
        /// Element type.
        dtype: DType,
        /// Shape.
        shape: Vec<usize>,
        /// Device.
        device: Arc<str>,
    },
    /// Indices along `axis`.
    Arange {
        /// The axis.
        axis: usize,
        /// Element type.
        dtype: DType,
        /// Shape.
        shape: Vec<usize>,
        /// Device.
        device: Arc<str>,
    },
    /// See [`Op::Unary`].
    Unary(UnaryOp),
    /// Value conversion to the dtype.
    Cast(DType),
    /// Bit reinterpretation as the dtype.
    Bitcast(DType),
    /// See [`Op::Binary`].
    Binary(BinaryOp),
    /// See [`Op::Ternary`].
    Ternary(TernaryOp),
    /// See [`Op::Reduce`].
    Reduce(ReduceOp, Vec<usize>),
    /// Reshape to the shape.
    Reshape(Vec<usize>),
    /// See [`Op::Permute`].
    Permute(Vec<usize>),
    /// Broadcast to the shape.
    Expand(Vec<usize>),
    /// See [`Op::Pad`].
    Pad(Vec<(usize, usize)>),
    /// See [`Op::Shrink`].
    Shrink(Vec<(usize, usize)>),
    /// See [`Op::Flip`].
    Flip(Vec<usize>),
    /// See [`Op::Contiguous`].
    Contiguous,
    /// Copy to the device.
    Copy(Arc<str>),
}

/// The kind of an [`EOp`] without its parameters (the e-node discriminant rules search by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`EOp::Leaf`].
    Leaf,
    /// [`EOp::Const`].
    Const,
    /// [`EOp::Arange`].
    Arange,
    /// [`EOp::Unary`].
    Unary(UnaryOp),
    /// [`EOp::Cast`].
    Cast,
    /// [`EOp::Bitcast`].
    Bitcast,
    /// [`EOp::Binary`].
    Binary(BinaryOp),
    /// [`EOp::Ternary`].
    Ternary(TernaryOp),
    /// [`EOp::Reduce`].
    Reduce,
    /// [`EOp::Reshape`].
    Reshape,
    /// [`EOp::Permute`].
    Permute,
    /// [`EOp::Expand`].
    Expand,
    /// [`EOp::Pad`].
    Pad,
    /// [`EOp::Shrink`].
    Shrink,
    /// [`EOp::Flip`].
    Flip,
    /// [`EOp::Contiguous`].
    Contiguous,
    /// [`EOp::Copy`].
    Copy,
}

impl EOp {
    /// The kind of this op.
    pub fn kind(&self) -> Kind {
        match self {
            EOp::Leaf { .. } => Kind::Leaf,
            EOp::Const { .. } => Kind::Const,
            EOp::Arange { .. } => Kind::Arange,
            EOp::Unary(u) => Kind::Unary(*u),
            EOp::Cast(_) => Kind::Cast,
            EOp::Bitcast(_) => Kind::Bitcast,
            EOp::Binary(b) => Kind::Binary(*b),
            EOp::Ternary(t) => Kind::Ternary(*t),
            EOp::Reduce(..) => Kind::Reduce,
            EOp::Reshape(_) => Kind::Reshape,
            EOp::Permute(_) => Kind::Permute,
            EOp::Expand(_) => Kind::Expand,
            EOp::Pad(_) => Kind::Pad,
            EOp::Shrink(_) => Kind::Shrink,
            EOp::Flip(_) => Kind::Flip,
            EOp::Contiguous => Kind::Contiguous,
            EOp::Copy(_) => Kind::Copy,
        }
    }

    /// The graph op of this e-node (leaves have none: they are bound to realized nodes).
    pub fn to_op(&self) -> Option<Op> {
        Some(match self {
            EOp::Leaf { .. } => return None,
            EOp::Const { value, .. } => Op::Const(value.0),
            EOp::Arange { axis, .. } => Op::Arange(*axis),
            EOp::Unary(u) => Op::Unary(*u),
            EOp::Cast(_) => Op::Cast,
            EOp::Bitcast(_) => Op::Bitcast,
            EOp::Binary(b) => Op::Binary(*b),
            EOp::Ternary(t) => Op::Ternary(*t),
            EOp::Reduce(r, axes) => Op::Reduce(*r, axes.clone()),
            EOp::Reshape(_) => Op::Reshape,
            EOp::Permute(p) => Op::Permute(p.clone()),
            EOp::Expand(_) => Op::Expand,
            EOp::Pad(p) => Op::Pad(p.clone()),
            EOp::Shrink(b) => Op::Shrink(b.clone()),
            EOp::Flip(a) => Op::Flip(a.clone()),
            EOp::Contiguous => Op::Contiguous,
            EOp::Copy(_) => Op::Copy,
        })
    }
}

/// An e-node: an op and its child e-classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ENode {
    /// The op.
    pub op: EOp,
    /// The operands.
    pub children: Vec<Id>,
}

impl ENode {
    /// An e-node of `op` over `children`.
    pub fn new(op: EOp, children: Vec<Id>) -> Self {
        ENode { op, children }
    }
}

impl Language for ENode {
    type Discriminant = Kind;

    fn discriminant(&self) -> Kind {
        self.op.kind()
    }
    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.children.len() == other.children.len()
    }
    fn children(&self) -> &[Id] {
        &self.children
    }
    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

/// What the analysis knows about an e-class.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Device.
    pub device: Arc<str>,
    /// The value of every element, when it is known to be one constant.
    pub konst: Option<Scalar>,
}

impl Facts {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// True when every element is known to equal `v` (compared after casting `v` to the dtype).
    pub fn is_const(&self, v: Scalar) -> bool {
        self.konst.is_some_and(|k| k == v.cast(self.dtype))
    }
}

/// The e-graph of this language.
pub type GraphEGraph = EGraph<ENode, GraphAnalysis>;

/// Shape/dtype/device inference and (when enabled) constant folding.
#[derive(Clone, Debug, Default)]
pub struct GraphAnalysis {
    /// Fold e-classes whose value is a known constant into a `Const` e-node (the
    /// `constant-folding` rule group).
    pub fold_constants: bool,
}

fn reduced_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut out = shape.to_vec();
    for &a in axes {
        out[a] = 1;
    }
    out
}

/// The facts of a node of `op` from the facts of its operands (an op that does not fit its
/// operands is never built by the rules).
pub fn infer(op: &EOp, child: &dyn Fn(usize) -> Facts) -> Facts {
    let same = |dtype: DType, shape: Vec<usize>, device: Arc<str>| Facts {
        dtype,
        shape,
        device,
        konst: None,
    };
    match op {
        EOp::Leaf {
            dtype,
            shape,
            device,
            ..
        }
        | EOp::Arange {
            dtype,
            shape,
            device,
            ..
        } => same(*dtype, shape.clone(), device.clone()),
        EOp::Const {
            value,
            dtype,
            shape,
            device,
        } => Facts {
            dtype: *dtype,
            shape: shape.clone(),
            device: device.clone(),
            konst: Some(value.0),
        },
        EOp::Cast(d) | EOp::Bitcast(d) => {
            let a = child(0);
            same(*d, a.shape, a.device)
        }
        EOp::Binary(b) if b.is_comparison() => {
            let a = child(0);
            same(DType::Bool, a.shape, a.device)
        }
        EOp::Ternary(TernaryOp::Where) => {
            let a = child(1);
            same(a.dtype, a.shape, a.device)
        }
        EOp::Unary(_) | EOp::Binary(_) | EOp::Ternary(_) | EOp::Flip(_) | EOp::Contiguous => {
            let a = child(0);
            same(a.dtype, a.shape, a.device)
        }
        EOp::Reduce(_, axes) => {
            let a = child(0);
            same(a.dtype, reduced_shape(&a.shape, axes), a.device)
        }
        EOp::Reshape(s) | EOp::Expand(s) => {
            let a = child(0);
            same(a.dtype, s.clone(), a.device)
        }
        EOp::Permute(p) => {
            let a = child(0);
            let shape = p.iter().map(|&i| a.shape[i]).collect();
            same(a.dtype, shape, a.device)
        }
        EOp::Pad(p) => {
            let a = child(0);
            let shape = a
                .shape
                .iter()
                .zip(p)
                .map(|(&n, &(b, e))| n + b + e)
                .collect();
            same(a.dtype, shape, a.device)
        }
        EOp::Shrink(b) => {
            let a = child(0);
            let shape = b.iter().map(|&(s, e)| e - s).collect();
            same(a.dtype, shape, a.device)
        }
        EOp::Copy(d) => {
            let a = child(0);
            same(a.dtype, a.shape, d.clone())
        }
    }
}

/// The constant value of `node` when its operands' values are known constants.
fn fold(node: &ENode, facts: &Facts, child: &dyn Fn(usize) -> Facts) -> Option<Scalar> {
    let konst = |i: usize| child(i).konst;
    match &node.op {
        EOp::Const { value, .. } => Some(value.0),
        EOp::Unary(_) | EOp::Cast(_) | EOp::Bitcast(_) | EOp::Binary(_) | EOp::Ternary(_) => {
            let mut srcs = Vec::with_capacity(node.children.len());
            for i in 0..node.children.len() {
                srcs.push((konst(i)?, child(i).dtype));
            }
            let op = node.op.to_op().expect("not a leaf");
            Some(fold_scalar(&op, facts.dtype, &srcs))
        }
        // Moving a constant keeps it constant (a pad adds zeros: only a zero stays constant).
        EOp::Reshape(_)
        | EOp::Permute(_)
        | EOp::Expand(_)
        | EOp::Shrink(_)
        | EOp::Flip(_)
        | EOp::Contiguous => konst(0),
        EOp::Pad(_) => konst(0).filter(|v| v.as_f64() == 0.0 && !v.as_f64().is_sign_negative()),
        EOp::Reduce(op, axes) => {
            let a = child(0);
            let v = a.konst?;
            let n: usize = axes.iter().map(|&ax| a.shape[ax]).product();
            if n == 0 {
                return Some(op.identity(a.dtype));
            }
            match op {
                ReduceOp::Max => Some(v),
                // Sum of n copies: the exact product rounded once, as the reference computes it,
                // plus +0 (a sum starts at +0, so a sum of -0s is +0).
                ReduceOp::Sum if a.dtype != DType::Bool => {
                    let d = a.dtype;
                    let mul = Op::Binary(BinaryOp::Mul);
                    let prod = fold_scalar(&mul, d, &[(v, d), (Scalar::Int(n as i64).cast(d), d)]);
                    let zero = Scalar::Int(0).cast(d);
                    Some(fold_scalar(
                        &Op::Binary(BinaryOp::Add),
                        d,
                        &[(prod, d), (zero, d)],
                    ))
                }
                ReduceOp::Sum => Some(v),
                ReduceOp::Prod => None,
            }
        }
        EOp::Leaf { .. } | EOp::Arange { .. } | EOp::Copy(_) => None,
    }
}

impl Analysis<ENode> for GraphAnalysis {
    type Data = Facts;

    fn make(egraph: &mut GraphEGraph, enode: &ENode, _id: Id) -> Facts {
        let child = |i: usize| egraph[enode.children[i]].data.clone();
        let mut facts = infer(&enode.op, &child);
        if egraph.analysis.fold_constants || matches!(enode.op, EOp::Const { .. }) {
            facts.konst = fold(enode, &facts, &child);
        }
        facts
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        debug_assert!(
            a.dtype == b.dtype && a.shape == b.shape && a.device == b.device,
            "e-graph: merged classes disagree: {a:?} vs {b:?}"
        );
        if a.konst.is_none() && b.konst.is_some() {
            a.konst = b.konst;
            DidMerge(true, false)
        } else {
            DidMerge(false, a.konst != b.konst)
        }
    }

    fn modify(egraph: &mut GraphEGraph, id: Id) {
        if !egraph.analysis.fold_constants {
            return;
        }
        let facts = egraph[id].data.clone();
        let Some(value) = facts.konst else {
            return;
        };
        // A constant that is only moved (reshaped, broadcast, ...) is already free: folding it
        // would change nothing but the scheduler's view of how costly its users are.
        let moved_const = |n: &ENode| {
            matches!(n.op, EOp::Const { .. })
                || (n.op.to_op().is_some_and(|op| op.is_movement())
                    && egraph[n.children[0]]
                        .nodes
                        .iter()
                        .any(|c| matches!(c.op, EOp::Const { .. })))
        };
        if egraph[id].nodes.iter().any(moved_const) {
            return;
        }
        let c = egraph.add(ENode::new(
            EOp::Const {
                value: Konst(value),
                dtype: facts.dtype,
                shape: facts.shape,
                device: facts.device,
            },
            Vec::new(),
        ));
        egraph.union(id, c);
    }
}
