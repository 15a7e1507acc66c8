//! The primitive op set. Everything else is a composition written in the frontend.

use crate::dtype::{DType, Scalar};
use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Elementwise ops of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    /// 2^x (floats).
    Exp2,
    /// log2(x) (floats).
    Log2,
    /// sin(x) (floats, radians).
    Sin,
    /// Square root (floats).
    Sqrt,
    /// 1/x (floats).
    Recip,
    /// -x.
    Neg,
    /// Round toward zero, keeping the float dtype.
    Trunc,
}

/// Elementwise ops of two operands of the same dtype and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// a + b (integers wrap).
    Add,
    /// a * b (integers wrap).
    Mul,
    /// max(a, b); NaN wins.
    Max,
    /// a < b, giving bool.
    CmpLt,
    /// a != b, giving bool.
    CmpNe,
    /// Integer division rounding toward zero.
    IDiv,
    /// Integer remainder with the sign of the dividend.
    Mod,
    /// Bitwise / logical and.
    And,
    /// Bitwise / logical or.
    Or,
    /// Bitwise / logical xor.
    Xor,
    /// Shift left (integers).
    Shl,
    /// Shift right (arithmetic for signed, logical for unsigned).
    Shr,
}

impl BinaryOp {
    /// True for ops whose result is bool.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::CmpLt | BinaryOp::CmpNe)
    }
}

/// Ops of three operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TernaryOp {
    /// cond ? a : b (cond is bool).
    Where,
    /// a * b + c.
    MulAcc,
}

/// Reductions over axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Product.
    Prod,
}

impl ReduceOp {
    /// The identity element of the reduction for `dtype`.
    pub fn identity(self, dtype: DType) -> Scalar {
        match self {
            ReduceOp::Sum => Scalar::Int(0).cast(dtype),
            ReduceOp::Prod => Scalar::Int(1).cast(dtype),
            ReduceOp::Max => dtype.min_value(),
        }
    }

    /// The binary op that combines two partial results.
    pub fn combine(self) -> BinaryOp {
        match self {
            ReduceOp::Sum => BinaryOp::Add,
            ReduceOp::Prod => BinaryOp::Mul,
            ReduceOp::Max => BinaryOp::Max,
        }
    }
}

static NEXT_BUFFER_ID: AtomicU64 = AtomicU64::new(1);

/// An opaque handle to realized device memory. The IR never looks inside; the runtime stores its
/// own buffer type in `data` and downcasts it. Equality and hashing are by identity.
#[derive(Clone)]
pub struct BufferHandle {
    id: u64,
    data: Arc<dyn Any + Send + Sync>,
}

impl BufferHandle {
    /// Wraps a runtime buffer.
    pub fn new(data: Arc<dyn Any + Send + Sync>) -> Self {
        BufferHandle {
            id: NEXT_BUFFER_ID.fetch_add(1, Ordering::Relaxed),
            data,
        }
    }
    /// The unique id of this buffer.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The runtime's buffer object.
    pub fn data(&self) -> &Arc<dyn Any + Send + Sync> {
        &self.data
    }
}

impl PartialEq for BufferHandle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for BufferHandle {}
impl std::hash::Hash for BufferHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl fmt::Debug for BufferHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buf#{}", self.id)
    }
}

/// A primitive op of the lazy graph. Shapes of the result live on the node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Realized memory (a leaf), contiguous in row-major order.
    Buffer(BufferHandle),
    /// Every element is this constant (a leaf).
    Const(Scalar),
    /// Every element is its own index along `axis` (a leaf; integer dtype).
    Arange(usize),
    /// Elementwise op of one operand.
    Unary(UnaryOp),
    /// Value conversion to the node's dtype.
    Cast,
    /// Bit reinterpretation to the node's dtype (same size).
    Bitcast,
    /// Elementwise op of two operands.
    Binary(BinaryOp),
    /// Elementwise op of three operands.
    Ternary(TernaryOp),
    /// Reduction over the listed axes; reduced axes keep size 1.
    Reduce(ReduceOp, Vec<usize>),
    /// Same elements in row-major order, new shape (the node's).
    Reshape,
    /// Reorders axes: result axis i is source axis `perm[i]`.
    Permute(Vec<usize>),
    /// Broadcasts size-1 axes to the node's shape.
    Expand,
    /// Pads each axis with (before, after) zeros.
    Pad(Vec<(usize, usize)>),
    /// Keeps [start, end) of each axis.
    Shrink(Vec<(usize, usize)>),
    /// Reverses the listed axes.
    Flip(Vec<usize>),
    /// Forces materialization into a contiguous buffer.
    Contiguous,
    /// Moves the source to the node's device.
    Copy,
}

impl Op {
    /// True for the movement ops (they only change how elements are indexed).
    pub fn is_movement(&self) -> bool {
        matches!(
            self,
            Op::Reshape | Op::Permute(_) | Op::Expand | Op::Pad(_) | Op::Shrink(_) | Op::Flip(_)
        )
    }

    /// True for elementwise ALU ops.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Cast | Op::Bitcast | Op::Binary(_) | Op::Ternary(_)
        )
    }

    /// True for leaves (no sources).
    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Buffer(_) | Op::Const(_) | Op::Arange(_))
    }
}
