//! Small program builders shared by the suites and by backend-specific tests.

use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, Param, Program, ProgramBuilder, Scalar, VType, ValueId,
};

/// Every binary op of the kernel IR.
pub const BINARY_OPS: [BinaryOp; 12] = [
    BinaryOp::Add,
    BinaryOp::Mul,
    BinaryOp::Max,
    BinaryOp::CmpLt,
    BinaryOp::CmpNe,
    BinaryOp::IDiv,
    BinaryOp::Mod,
    BinaryOp::And,
    BinaryOp::Or,
    BinaryOp::Xor,
    BinaryOp::Shl,
    BinaryOp::Shr,
];

/// A kernel parameter of `len` elements of `dtype`.
pub fn param(dtype: DType, len: usize, writable: bool) -> Param {
    Param {
        dtype,
        len,
        writable,
    }
}

/// A program with every local size 1 and i32 indices.
pub fn program(name: &str, params: Vec<Param>, global: Vec<usize>, insts: Vec<Inst>) -> Program {
    Program {
        name: name.to_string(),
        local: vec![1; global.len()],
        params,
        global,
        index_dtype: DType::I32,
        insts,
    }
}

/// An i32 constant.
pub fn int(b: &mut ProgramBuilder, v: i64) -> ValueId {
    b.push(Inst::Const {
        ty: VType::scalar(DType::I32),
        value: Scalar::Int(v),
    })
}

/// `out[i] = f(in_0[i], in_1[i], ...)` for `n` elements, `lanes` at a time (n % lanes == 0).
/// `f` gets the loaded operands and returns the value to store.
pub fn map_program(
    name: &str,
    inputs: &[DType],
    out: DType,
    n: usize,
    lanes: u8,
    f: impl FnOnce(&mut ProgramBuilder, &[ValueId]) -> ValueId,
) -> Program {
    let mut b = ProgramBuilder::new();
    let g = b.push(Inst::GroupId(0));
    let w = int(&mut b, lanes as i64);
    let i = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: g,
        b: w,
    });
    let loaded: Vec<ValueId> = inputs
        .iter()
        .enumerate()
        .map(|(p, &d)| {
            b.push(Inst::Load {
                mem: Memory::Global(p as u32),
                index: i,
                gate: None,
                ty: VType::vec(d, lanes),
            })
        })
        .collect();
    let r = f(&mut b, &loaded);
    b.push(Inst::Store {
        mem: Memory::Global(inputs.len() as u32),
        index: i,
        value: r,
        gate: None,
    });
    let mut params: Vec<Param> = inputs.iter().map(|&d| param(d, n, false)).collect();
    params.push(param(out, n, true));
    program(name, params, vec![n / lanes as usize], b.finish())
}

/// `out[row] = sum over j < 64 of (row * j) % 7 + row`, one invocation per row: a loop with an
/// accumulator whose result depends on the invocation, for checking how grids are launched.
pub fn rows_program(rows: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let r = b.push(Inst::GroupId(0));
    let acc = b.push(Inst::DefineAcc {
        ty: VType::scalar(DType::I32),
        init: Scalar::Int(0),
    });
    let zero = int(&mut b, 0);
    let seven = int(&mut b, 7);
    let end = int(&mut b, 64);
    let j = b.push(Inst::Loop { start: zero, end });
    let p = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: r,
        b: j,
    });
    let m = b.push(Inst::Binary {
        op: BinaryOp::Mod,
        a: p,
        b: seven,
    });
    let cur = b.push(Inst::ReadAcc(acc));
    let s = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: cur,
        b: m,
    });
    b.push(Inst::WriteAcc { acc, value: s });
    b.push(Inst::EndLoop);
    let total = b.push(Inst::ReadAcc(acc));
    let total = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: total,
        b: r,
    });
    b.push(Inst::Store {
        mem: Memory::Global(0),
        index: r,
        value: total,
        gate: None,
    });
    program(
        "rows",
        vec![param(DType::I32, rows, true)],
        vec![rows],
        b.finish(),
    )
}

/// What [`rows_program`] stores for `rows` rows.
pub fn rows_want(rows: usize) -> Vec<i32> {
    (0..rows as i32)
        .map(|r| (0..64).map(|j| (r * j) % 7).sum::<i32>() + r)
        .collect()
}

/// Sums each row of 64 f32 with one workgroup of 64 invocations per row: every invocation
/// stores its element to local memory, then a tree reduction halves the active invocations
/// with a barrier after each step; invocation 0 stores the row's sum.
pub fn workgroup_sum(rows: usize, local: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let mem = b.push(Inst::DefineLocal {
        dtype: DType::F32,
        len: local,
    });
    let row = b.push(Inst::GroupId(0));
    let lid = b.push(Inst::LocalId(0));
    let width = int(&mut b, local as i64);
    let base = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: row,
        b: width,
    });
    let at = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: base,
        b: lid,
    });
    let x = b.push(Inst::Load {
        mem: Memory::Global(1),
        index: at,
        gate: None,
        ty: VType::scalar(DType::F32),
    });
    b.push(Inst::Store {
        mem: Memory::Local(mem),
        index: lid,
        value: x,
        gate: None,
    });
    b.push(Inst::Barrier);
    let mut stride = local / 2;
    while stride > 0 {
        let s = int(&mut b, stride as i64);
        let active = b.push(Inst::Binary {
            op: BinaryOp::CmpLt,
            a: lid,
            b: s,
        });
        b.push(Inst::If { cond: active });
        let other = b.push(Inst::Binary {
            op: BinaryOp::Add,
            a: lid,
            b: s,
        });
        let mine = b.push(Inst::Load {
            mem: Memory::Local(mem),
            index: lid,
            gate: None,
            ty: VType::scalar(DType::F32),
        });
        let theirs = b.push(Inst::Load {
            mem: Memory::Local(mem),
            index: other,
            gate: None,
            ty: VType::scalar(DType::F32),
        });
        let sum = b.push(Inst::Binary {
            op: BinaryOp::Add,
            a: mine,
            b: theirs,
        });
        b.push(Inst::Store {
            mem: Memory::Local(mem),
            index: lid,
            value: sum,
            gate: None,
        });
        b.push(Inst::EndIf);
        b.push(Inst::Barrier);
        stride /= 2;
    }
    let zero = int(&mut b, 0);
    let first = b.push(Inst::Binary {
        op: BinaryOp::CmpNe,
        a: lid,
        b: zero,
    });
    let t = b.push(Inst::Const {
        ty: VType::scalar(DType::Bool),
        value: Scalar::Bool(true),
    });
    let is_first = b.push(Inst::Binary {
        op: BinaryOp::Xor,
        a: first,
        b: t,
    });
    let total = b.push(Inst::Load {
        mem: Memory::Local(mem),
        index: zero,
        gate: None,
        ty: VType::scalar(DType::F32),
    });
    b.push(Inst::Store {
        mem: Memory::Global(0),
        index: row,
        value: total,
        gate: Some(is_first),
    });
    let mut p = program(
        "workgroup_sum",
        vec![
            param(DType::F32, rows, true),
            param(DType::F32, rows * local, false),
        ],
        vec![rows],
        b.finish(),
    );
    p.local = vec![local];
    p
}
