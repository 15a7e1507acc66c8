//! The wire form of a kernel [`Program`].
//!
//! The IR types carry no serde derives on purpose: the wire format is part of the versioned
//! protocol ([`super::PROTOCOL_VERSION`]) and must not change when the IR does. Every IR type a
//! Program contains has a mirror here, converted by exhaustive matches, so a new IR instruction
//! is a compile error in this module until the protocol learns it (and its version is bumped).

use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, Param, Program, ReduceOp, Scalar, UnaryOp, VType, ValueId,
};
use serde::{Deserialize, Serialize};

/// Defines a field-less wire enum mirroring an IR enum, with conversions both ways.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $wire:ident <=> $ir:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[allow(missing_docs)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $wire { $($variant),+ }

        impl From<$ir> for $wire {
            fn from(v: $ir) -> Self {
                match v { $($ir::$variant => $wire::$variant),+ }
            }
        }

        impl From<$wire> for $ir {
            fn from(v: $wire) -> Self {
                match v { $($wire::$variant => $ir::$variant),+ }
            }
        }
    };
}

mirror_enum!(
    /// [`DType`] on the wire.
    WireDType <=> DType { Bool, I8, U8, I32, U32, I64, F16, BF16, F32, F64 }
);
mirror_enum!(
    /// [`UnaryOp`] on the wire.
    WireUnaryOp <=> UnaryOp { Exp2, Log2, Sin, Sqrt, Recip, Neg, Trunc }
);
mirror_enum!(
    /// [`BinaryOp`] on the wire.
    WireBinaryOp <=> BinaryOp { Add, Mul, Max, CmpLt, CmpNe, IDiv, Mod, And, Or, Xor, Shl, Shr }
);
mirror_enum!(
    /// [`ReduceOp`] on the wire.
    WireReduceOp <=> ReduceOp { Sum, Max, Prod }
);

/// [`Scalar`] on the wire (floats travel as their bits, so NaN payloads survive).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireScalar {
    Bool(bool),
    Int(i64),
    FloatBits(u64),
}

impl From<Scalar> for WireScalar {
    fn from(s: Scalar) -> Self {
        match s {
            Scalar::Bool(b) => WireScalar::Bool(b),
            Scalar::Int(i) => WireScalar::Int(i),
            Scalar::Float(f) => WireScalar::FloatBits(f.to_bits()),
        }
    }
}

impl From<WireScalar> for Scalar {
    fn from(s: WireScalar) -> Self {
        match s {
            WireScalar::Bool(b) => Scalar::Bool(b),
            WireScalar::Int(i) => Scalar::Int(i),
            WireScalar::FloatBits(bits) => Scalar::Float(f64::from_bits(bits)),
        }
    }
}

/// [`VType`] on the wire.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireVType {
    pub dtype: WireDType,
    pub lanes: u8,
}

impl From<VType> for WireVType {
    fn from(t: VType) -> Self {
        WireVType {
            dtype: t.dtype.into(),
            lanes: t.lanes,
        }
    }
}

impl From<WireVType> for VType {
    fn from(t: WireVType) -> Self {
        VType::vec(t.dtype.into(), t.lanes)
    }
}

/// [`Memory`] on the wire.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireMemory {
    Global(u32),
    Local(u32),
}

impl From<Memory> for WireMemory {
    fn from(m: Memory) -> Self {
        match m {
            Memory::Global(p) => WireMemory::Global(p),
            Memory::Local(v) => WireMemory::Local(v.0),
        }
    }
}

impl From<WireMemory> for Memory {
    fn from(m: WireMemory) -> Self {
        match m {
            WireMemory::Global(p) => Memory::Global(p),
            WireMemory::Local(v) => Memory::Local(ValueId(v)),
        }
    }
}

/// [`Inst`] on the wire; value ids are plain `u32` instruction indices.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireInst {
    Const {
        ty: WireVType,
        value: WireScalar,
    },
    GroupId(u8),
    LocalId(u8),
    Loop {
        start: u32,
        end: u32,
    },
    EndLoop,
    If {
        cond: u32,
    },
    EndIf,
    DefineAcc {
        ty: WireVType,
        init: WireScalar,
    },
    ReadAcc(u32),
    WriteAcc {
        acc: u32,
        value: u32,
    },
    Unary {
        op: WireUnaryOp,
        arg: u32,
    },
    Binary {
        op: WireBinaryOp,
        a: u32,
        b: u32,
    },
    Where {
        cond: u32,
        a: u32,
        b: u32,
    },
    MulAcc {
        a: u32,
        b: u32,
        c: u32,
    },
    Cast {
        to: WireVType,
        arg: u32,
    },
    Bitcast {
        to: WireVType,
        arg: u32,
    },
    ReduceLanes {
        op: WireReduceOp,
        arg: u32,
    },
    Vectorize(Vec<u32>),
    Extract {
        vec: u32,
        lane: u8,
    },
    Load {
        mem: WireMemory,
        index: u32,
        gate: Option<u32>,
        ty: WireVType,
    },
    Store {
        mem: WireMemory,
        index: u32,
        value: u32,
        gate: Option<u32>,
    },
    DefineLocal {
        dtype: WireDType,
        len: u64,
    },
    Barrier,
    WorkgroupReduce {
        op: WireReduceOp,
        arg: u32,
    },
}

fn id(v: ValueId) -> u32 {
    v.0
}

impl From<&Inst> for WireInst {
    fn from(inst: &Inst) -> Self {
        match inst {
            Inst::Const { ty, value } => WireInst::Const {
                ty: (*ty).into(),
                value: (*value).into(),
            },
            Inst::GroupId(d) => WireInst::GroupId(*d),
            Inst::LocalId(d) => WireInst::LocalId(*d),
            Inst::Loop { start, end } => WireInst::Loop {
                start: id(*start),
                end: id(*end),
            },
            Inst::EndLoop => WireInst::EndLoop,
            Inst::If { cond } => WireInst::If { cond: id(*cond) },
            Inst::EndIf => WireInst::EndIf,
            Inst::DefineAcc { ty, init } => WireInst::DefineAcc {
                ty: (*ty).into(),
                init: (*init).into(),
            },
            Inst::ReadAcc(a) => WireInst::ReadAcc(id(*a)),
            Inst::WriteAcc { acc, value } => WireInst::WriteAcc {
                acc: id(*acc),
                value: id(*value),
            },
            Inst::Unary { op, arg } => WireInst::Unary {
                op: (*op).into(),
                arg: id(*arg),
            },
            Inst::Binary { op, a, b } => WireInst::Binary {
                op: (*op).into(),
                a: id(*a),
                b: id(*b),
            },
            Inst::Where { cond, a, b } => WireInst::Where {
                cond: id(*cond),
                a: id(*a),
                b: id(*b),
            },
            Inst::MulAcc { a, b, c } => WireInst::MulAcc {
                a: id(*a),
                b: id(*b),
                c: id(*c),
            },
            Inst::Cast { to, arg } => WireInst::Cast {
                to: (*to).into(),
                arg: id(*arg),
            },
            Inst::Bitcast { to, arg } => WireInst::Bitcast {
                to: (*to).into(),
                arg: id(*arg),
            },
            Inst::ReduceLanes { op, arg } => WireInst::ReduceLanes {
                op: (*op).into(),
                arg: id(*arg),
            },
            Inst::Vectorize(lanes) => WireInst::Vectorize(lanes.iter().map(|v| v.0).collect()),
            Inst::Extract { vec, lane } => WireInst::Extract {
                vec: id(*vec),
                lane: *lane,
            },
            Inst::Load {
                mem,
                index,
                gate,
                ty,
            } => WireInst::Load {
                mem: (*mem).into(),
                index: id(*index),
                gate: gate.map(id),
                ty: (*ty).into(),
            },
            Inst::Store {
                mem,
                index,
                value,
                gate,
            } => WireInst::Store {
                mem: (*mem).into(),
                index: id(*index),
                value: id(*value),
                gate: gate.map(id),
            },
            Inst::DefineLocal { dtype, len } => WireInst::DefineLocal {
                dtype: (*dtype).into(),
                len: *len as u64,
            },
            Inst::Barrier => WireInst::Barrier,
            Inst::WorkgroupReduce { op, arg } => WireInst::WorkgroupReduce {
                op: (*op).into(),
                arg: id(*arg),
            },
        }
    }
}

impl TryFrom<&WireInst> for Inst {
    type Error = String;

    fn try_from(inst: &WireInst) -> Result<Self, String> {
        let v = ValueId;
        Ok(match inst {
            WireInst::Const { ty, value } => Inst::Const {
                ty: (*ty).into(),
                value: (*value).into(),
            },
            WireInst::GroupId(d) => Inst::GroupId(*d),
            WireInst::LocalId(d) => Inst::LocalId(*d),
            WireInst::Loop { start, end } => Inst::Loop {
                start: v(*start),
                end: v(*end),
            },
            WireInst::EndLoop => Inst::EndLoop,
            WireInst::If { cond } => Inst::If { cond: v(*cond) },
            WireInst::EndIf => Inst::EndIf,
            WireInst::DefineAcc { ty, init } => Inst::DefineAcc {
                ty: (*ty).into(),
                init: (*init).into(),
            },
            WireInst::ReadAcc(a) => Inst::ReadAcc(v(*a)),
            WireInst::WriteAcc { acc, value } => Inst::WriteAcc {
                acc: v(*acc),
                value: v(*value),
            },
            WireInst::Unary { op, arg } => Inst::Unary {
                op: (*op).into(),
                arg: v(*arg),
            },
            WireInst::Binary { op, a, b } => Inst::Binary {
                op: (*op).into(),
                a: v(*a),
                b: v(*b),
            },
            WireInst::Where { cond, a, b } => Inst::Where {
                cond: v(*cond),
                a: v(*a),
                b: v(*b),
            },
            WireInst::MulAcc { a, b, c } => Inst::MulAcc {
                a: v(*a),
                b: v(*b),
                c: v(*c),
            },
            WireInst::Cast { to, arg } => Inst::Cast {
                to: (*to).into(),
                arg: v(*arg),
            },
            WireInst::Bitcast { to, arg } => Inst::Bitcast {
                to: (*to).into(),
                arg: v(*arg),
            },
            WireInst::ReduceLanes { op, arg } => Inst::ReduceLanes {
                op: (*op).into(),
                arg: v(*arg),
            },
            WireInst::Vectorize(lanes) => Inst::Vectorize(lanes.iter().map(|&l| v(l)).collect()),
            WireInst::Extract { vec, lane } => Inst::Extract {
                vec: v(*vec),
                lane: *lane,
            },
            WireInst::Load {
                mem,
                index,
                gate,
                ty,
            } => Inst::Load {
                mem: (*mem).into(),
                index: v(*index),
                gate: gate.map(v),
                ty: (*ty).into(),
            },
            WireInst::Store {
                mem,
                index,
                value,
                gate,
            } => Inst::Store {
                mem: (*mem).into(),
                index: v(*index),
                value: v(*value),
                gate: gate.map(v),
            },
            WireInst::DefineLocal { dtype, len } => Inst::DefineLocal {
                dtype: (*dtype).into(),
                len: usize::try_from(*len).map_err(|_| format!("local length {len} too large"))?,
            },
            WireInst::Barrier => Inst::Barrier,
            WireInst::WorkgroupReduce { op, arg } => Inst::WorkgroupReduce {
                op: (*op).into(),
                arg: v(*arg),
            },
        })
    }
}

/// [`Param`] on the wire.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireParam {
    pub dtype: WireDType,
    pub len: u64,
    pub writable: bool,
}

/// [`Program`] on the wire.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireProgram {
    pub name: String,
    pub params: Vec<WireParam>,
    pub global: Vec<u64>,
    pub local: Vec<u64>,
    pub index_dtype: WireDType,
    pub insts: Vec<WireInst>,
}

impl From<&Program> for WireProgram {
    fn from(p: &Program) -> Self {
        WireProgram {
            name: p.name.clone(),
            params: p
                .params
                .iter()
                .map(|q| WireParam {
                    dtype: q.dtype.into(),
                    len: q.len as u64,
                    writable: q.writable,
                })
                .collect(),
            global: p.global.iter().map(|&g| g as u64).collect(),
            local: p.local.iter().map(|&l| l as u64).collect(),
            index_dtype: p.index_dtype.into(),
            insts: p.insts.iter().map(WireInst::from).collect(),
        }
    }
}

fn to_usize(x: u64, what: &str) -> Result<usize, String> {
    usize::try_from(x).map_err(|_| format!("{what} {x} does not fit this machine's usize"))
}

impl TryFrom<&WireProgram> for Program {
    type Error = String;

    /// Rebuilds the Program. Structural validity (operands, scopes, types) is checked by the
    /// backend that compiles it ([`ferrograd_ir::validate`]), not here.
    fn try_from(p: &WireProgram) -> Result<Self, String> {
        let sizes = |v: &[u64], what: &str| -> Result<Vec<usize>, String> {
            v.iter().map(|&x| to_usize(x, what)).collect()
        };
        Ok(Program {
            name: p.name.clone(),
            params: p
                .params
                .iter()
                .map(|q| {
                    Ok(Param {
                        dtype: q.dtype.into(),
                        len: to_usize(q.len, "param length")?,
                        writable: q.writable,
                    })
                })
                .collect::<Result<_, String>>()?,
            global: sizes(&p.global, "global size")?,
            local: sizes(&p.local, "local size")?,
            index_dtype: p.index_dtype.into(),
            insts: p
                .insts
                .iter()
                .map(Inst::try_from)
                .collect::<Result<_, String>>()?,
        })
    }
}
