//! The backend-neutral kernel IR.
//!
//! A [`Program`] is a typed, linear SSA instruction list with structured loops. It describes one
//! kernel launch: a grid of `global` workgroups of `local` invocations each (at most three
//! dimensions). The CPU backend turns the grid into loops (and splits the outermost global
//! dimension across threads); GPU backends map it to workgroups. Values are scalars or short
//! vectors ([`VType::lanes`] > 1). Mutable registers ([`Inst::DefineAcc`]) carry accumulators
//! across loop iterations; every backend has a natural form for them (Cranelift variables, SPIR-V
//! function variables, WGSL `var`).

use crate::dtype::{DType, Scalar};
use crate::ops::{BinaryOp, ReduceOp, UnaryOp};
use std::hash::Hash;

/// The type of a kernel value: an element dtype and a lane count (1 for a scalar).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VType {
    /// Element type of each lane.
    pub dtype: DType,
    /// Number of lanes (1, 2, 4, 8 or 16).
    pub lanes: u8,
}

impl VType {
    /// A scalar of `dtype`.
    pub fn scalar(dtype: DType) -> Self {
        VType { dtype, lanes: 1 }
    }
    /// A vector of `lanes` elements of `dtype`.
    pub fn vec(dtype: DType, lanes: u8) -> Self {
        VType { dtype, lanes }
    }
    /// The same lane count with another element type.
    pub fn with_dtype(self, dtype: DType) -> Self {
        VType {
            dtype,
            lanes: self.lanes,
        }
    }
}

/// A value defined by an instruction: its index in [`Program::insts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Where a load or store goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Memory {
    /// A global buffer: index into [`Program::params`].
    Global(u32),
    /// Workgroup-shared memory defined by [`Inst::DefineLocal`] (the value is that instruction).
    Local(ValueId),
}

/// One instruction. Indices are of [`Program::index_dtype`]; element indices count elements of the
/// memory's dtype, not bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Inst {
    /// A constant, splatted to every lane of `ty`.
    Const {
        /// Result type.
        ty: VType,
        /// The value (already representable in `ty.dtype`).
        value: Scalar,
    },
    /// This invocation's workgroup index along launch dimension `dim` (`0..global[dim]`).
    GroupId(u8),
    /// This invocation's index inside its workgroup along `dim` (`0..local[dim]`).
    LocalId(u8),
    /// Starts a loop; the instruction's value is the induction variable, from `start` (inclusive)
    /// to `end` (exclusive) in steps of 1. Both bounds are index-typed values defined before.
    Loop {
        /// First value.
        start: ValueId,
        /// One past the last value.
        end: ValueId,
    },
    /// Closes the innermost open [`Inst::Loop`].
    EndLoop,
    /// Executes the following instructions up to the matching [`Inst::EndIf`] only when `cond`
    /// (a scalar bool) holds. Values defined inside are not used outside.
    If {
        /// Scalar bool condition.
        cond: ValueId,
    },
    /// Closes the innermost open [`Inst::If`].
    EndIf,
    /// A mutable register initialised to `init` (splatted to `ty`'s lanes).
    DefineAcc {
        /// Register type.
        ty: VType,
        /// Initial value.
        init: Scalar,
    },
    /// Reads the current value of a register.
    ReadAcc(ValueId),
    /// Writes a register: `acc = value`.
    WriteAcc {
        /// The [`Inst::DefineAcc`].
        acc: ValueId,
        /// The new value (same type as the register).
        value: ValueId,
    },
    /// Elementwise op of one operand (result type = operand type).
    Unary {
        /// The op.
        op: UnaryOp,
        /// Operand.
        arg: ValueId,
    },
    /// Elementwise op of two operands of the same type. Comparisons give bool lanes.
    Binary {
        /// The op.
        op: BinaryOp,
        /// Left operand.
        a: ValueId,
        /// Right operand.
        b: ValueId,
    },
    /// `cond ? a : b` per lane; `cond` is bool with the same lane count.
    Where {
        /// Condition.
        cond: ValueId,
        /// Taken where true.
        a: ValueId,
        /// Taken where false.
        b: ValueId,
    },
    /// `a * b + c` per lane (a fused multiply-add is allowed).
    MulAcc {
        /// Factor.
        a: ValueId,
        /// Factor.
        b: ValueId,
        /// Addend.
        c: ValueId,
    },
    /// Value conversion per lane (float->int truncates toward zero, saturating).
    Cast {
        /// Result type (same lanes).
        to: VType,
        /// Operand.
        arg: ValueId,
    },
    /// Bit reinterpretation per lane (same element size).
    Bitcast {
        /// Result type (same lanes).
        to: VType,
        /// Operand.
        arg: ValueId,
    },
    /// Combines the lanes of a vector into a scalar.
    ReduceLanes {
        /// Combining op.
        op: ReduceOp,
        /// The vector.
        arg: ValueId,
    },
    /// Builds a vector from scalars.
    Vectorize(Vec<ValueId>),
    /// One lane of a vector, as a scalar.
    Extract {
        /// The vector.
        vec: ValueId,
        /// Lane number.
        lane: u8,
    },
    /// Loads `ty.lanes` consecutive elements starting at `index`. Where `gate` (scalar bool) is
    /// false, nothing is read and the result is zero.
    Load {
        /// Source memory.
        mem: Memory,
        /// Element index of lane 0.
        index: ValueId,
        /// Optional scalar bool guard.
        gate: Option<ValueId>,
        /// Result type.
        ty: VType,
    },
    /// Stores the lanes of `value` to consecutive elements starting at `index`, only where
    /// `gate` (scalar bool) holds.
    Store {
        /// Destination memory.
        mem: Memory,
        /// Element index of lane 0.
        index: ValueId,
        /// The value.
        value: ValueId,
        /// Optional scalar bool guard.
        gate: Option<ValueId>,
    },
    /// Workgroup-shared memory of `len` elements of `dtype`.
    DefineLocal {
        /// Element type.
        dtype: DType,
        /// Number of elements.
        len: usize,
    },
    /// Waits until every invocation of the workgroup reaches this point; orders local memory.
    Barrier,
    /// Combines the scalar `arg` of every invocation of the workgroup with `op`; every
    /// invocation gets the result. Like a barrier, every invocation must reach it (uniform
    /// control flow). Backends choose the method (subgroup operations, local memory).
    WorkgroupReduce {
        /// Combining op.
        op: ReduceOp,
        /// Each invocation's scalar.
        arg: ValueId,
    },
}

/// A global buffer parameter of a kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    /// Element type.
    pub dtype: DType,
    /// Number of elements.
    pub len: usize,
    /// True if the kernel stores to it.
    pub writable: bool,
}

/// One kernel: parameters, launch grid and instructions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Program {
    /// A readable name (for traces and profiles).
    pub name: String,
    /// Global buffers, in launch argument order.
    pub params: Vec<Param>,
    /// Number of workgroups per launch dimension (1 to 3 dimensions).
    pub global: Vec<usize>,
    /// Invocations per workgroup per launch dimension (same length as `global`).
    pub local: Vec<usize>,
    /// The dtype of indices, loop variables, group and local ids (`I32` or `I64`).
    pub index_dtype: DType,
    /// Instructions; [`ValueId`] `i` is the value of `insts[i]`.
    pub insts: Vec<Inst>,
}

impl Program {
    /// True if the program uses workgroup-local memory, barriers or local sizes above 1.
    pub fn uses_workgroups(&self) -> bool {
        self.local.iter().any(|&l| l > 1)
            || self.insts.iter().any(|i| {
                matches!(
                    i,
                    Inst::DefineLocal { .. }
                        | Inst::Barrier
                        | Inst::LocalId(_)
                        | Inst::WorkgroupReduce { .. }
                )
            })
    }

    /// The type of every value (None for instructions that define no value).
    pub fn value_types(&self) -> Vec<Option<VType>> {
        let mut types: Vec<Option<VType>> = Vec::with_capacity(self.insts.len());
        let idx = VType::scalar(self.index_dtype);
        for inst in &self.insts {
            let ty_of = |v: &ValueId, types: &Vec<Option<VType>>| {
                types[v.0 as usize].expect("operand has a value")
            };
            let t = match inst {
                Inst::Const { ty, .. } => Some(*ty),
                Inst::GroupId(_) | Inst::LocalId(_) | Inst::Loop { .. } => Some(idx),
                Inst::EndLoop
                | Inst::If { .. }
                | Inst::EndIf
                | Inst::WriteAcc { .. }
                | Inst::Store { .. }
                | Inst::Barrier => None,
                Inst::DefineAcc { ty, .. } => Some(*ty),
                Inst::ReadAcc(a) => Some(ty_of(a, &types)),
                Inst::Unary { arg, .. } => Some(ty_of(arg, &types)),
                Inst::Binary { op, a, .. } => {
                    let t = ty_of(a, &types);
                    Some(if op.is_comparison() {
                        t.with_dtype(DType::Bool)
                    } else {
                        t
                    })
                }
                Inst::Where { a, .. } => Some(ty_of(a, &types)),
                Inst::MulAcc { a, .. } => Some(ty_of(a, &types)),
                Inst::Cast { to, .. } | Inst::Bitcast { to, .. } => Some(*to),
                Inst::ReduceLanes { arg, .. } | Inst::WorkgroupReduce { arg, .. } => {
                    Some(VType::scalar(ty_of(arg, &types).dtype))
                }
                Inst::Vectorize(lanes) => Some(VType::vec(
                    ty_of(&lanes[0], &types).dtype,
                    lanes.len() as u8,
                )),
                Inst::Extract { vec, .. } => Some(VType::scalar(ty_of(vec, &types).dtype)),
                Inst::Load { ty, .. } => Some(*ty),
                Inst::DefineLocal { dtype, .. } => Some(VType::scalar(*dtype)),
            };
            types.push(t);
        }
        types
    }
}

/// Appends instructions to a [`Program`], deduplicating pure instructions (common
/// subexpression elimination) within the current loop scope.
pub struct ProgramBuilder {
    insts: Vec<Inst>,
    pure: std::collections::HashMap<Inst, ValueId>,
    scopes: Vec<Vec<Inst>>,
}

impl Default for ProgramBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgramBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        ProgramBuilder {
            insts: Vec::new(),
            pure: Default::default(),
            scopes: vec![Vec::new()],
        }
    }

    fn is_pure(inst: &Inst) -> bool {
        matches!(
            inst,
            Inst::Const { .. }
                | Inst::GroupId(_)
                | Inst::LocalId(_)
                | Inst::Unary { .. }
                | Inst::Binary { .. }
                | Inst::Where { .. }
                | Inst::MulAcc { .. }
                | Inst::Cast { .. }
                | Inst::Bitcast { .. }
                | Inst::Vectorize(_)
                | Inst::Extract { .. }
                | Inst::ReduceLanes { .. }
        )
    }

    /// Appends `inst`, or returns the existing value of an identical pure instruction.
    pub fn push(&mut self, inst: Inst) -> ValueId {
        if Self::is_pure(&inst) {
            if let Some(&v) = self.pure.get(&inst) {
                return v;
            }
        }
        let id = ValueId(self.insts.len() as u32);
        match &inst {
            Inst::Loop { .. } | Inst::If { .. } => self.scopes.push(Vec::new()),
            Inst::EndLoop | Inst::EndIf => {
                // Values defined inside the closed scope are not visible after it.
                for dead in self.scopes.pop().expect("balanced scopes") {
                    self.pure.remove(&dead);
                }
            }
            _ => {}
        }
        if Self::is_pure(&inst) {
            self.pure.insert(inst.clone(), id);
            self.scopes.last_mut().expect("scope").push(inst.clone());
        }
        self.insts.push(inst);
        id
    }

    /// Number of instructions so far.
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    /// True if nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// The instructions built so far.
    pub fn finish(self) -> Vec<Inst> {
        assert_eq!(
            self.scopes.len(),
            1,
            "ProgramBuilder: unbalanced Loop/If scopes"
        );
        self.insts
    }
}
