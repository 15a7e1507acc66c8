//! ferrograd-ir: dtypes, the primitive op set, the hash-consed lazy graph, index expressions for
//! movement ops (views), the scheduler that cuts a graph into fused kernels, and the
//! backend-neutral kernel IR ([`Program`]).

pub mod dispatch;
pub mod dtype;
pub mod graph;
pub mod index;
pub mod index_egraph;
pub mod lower;
pub mod lower_gpu;
pub mod ops;
pub mod program;
pub mod reference;
pub mod relocate;
pub mod rewrite;
pub mod schedule;
pub mod validate;
pub mod view;
pub mod work;

pub use dtype::{DType, Scalar};
pub use graph::{numel, retarget, toposort, toposort_with_leaves, Node, NodeRef};
pub use ops::{BinaryOp, BufferHandle, Op, ReduceOp, TernaryOp, UnaryOp};
pub use program::{Inst, Memory, Param, Program, ProgramBuilder, VType, ValueId};
pub use reference::{assert_close, evaluate, RefData, RefTensor};
pub use relocate::{relocate, Leaf};
