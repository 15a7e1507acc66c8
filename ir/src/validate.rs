//! Checks a [`Program`] before code generation and infers the type of every value; every
//! backend runs it first.
//!
//! Code generation trusts what this module accepts, so every malformed program (dangling
//! operands, type mismatches, unbalanced scopes, values used outside the scope that defines
//! them, bad local memory) ends here as an error message instead of a panic.

use crate::{BinaryOp, DType, Inst, Memory, Program, UnaryOp, VType, ValueId};

/// Most lanes a vector may have.
const MAX_LANES: u8 = 16;

/// The checked program's value types (`None` for instructions without a value).
pub fn check(program: &Program) -> Result<Vec<Option<VType>>, String> {
    check_launch(program)?;
    let mut checker = Checker {
        program,
        types: Vec::with_capacity(program.insts.len()),
        scope_of: Vec::with_capacity(program.insts.len()),
        open: vec![true],
        stack: vec![(0, Scope::Grid)],
    };
    for (i, inst) in program.insts.iter().enumerate() {
        let ty = checker
            .inst(inst)
            .map_err(|e| format!("instruction {i} ({inst:?}): {e}"))?;
        checker.types.push(ty);
    }
    match checker.stack.last() {
        Some((_, Scope::Grid)) => Ok(checker.types),
        _ => Err("a Loop or If is never closed".to_string()),
    }
}

fn check_launch(program: &Program) -> Result<(), String> {
    if program.global.is_empty() || program.global.len() > 3 {
        return Err(format!(
            "the launch grid has {} dimensions; 1 to 3 are supported",
            program.global.len()
        ));
    }
    if program.local.len() != program.global.len() {
        return Err(format!(
            "`local` has {} dimensions but `global` has {}",
            program.local.len(),
            program.global.len()
        ));
    }
    let max_index = match program.index_dtype {
        DType::I32 => i32::MAX as u64,
        DType::I64 => i64::MAX as u64,
        other => return Err(format!("index dtype {other} is not i32 or i64")),
    };
    if let Some(&size) = program.global.iter().find(|&&g| g as u64 > max_index) {
        return Err(format!(
            "grid size {size} does not fit the index dtype {}",
            program.index_dtype
        ));
    }
    for (i, param) in program.params.iter().enumerate() {
        if param
            .len
            .checked_mul(param.dtype.size())
            .is_none_or(|b| b > isize::MAX as usize)
        {
            return Err(format!(
                "param {i} of {} {} elements is too large",
                param.len, param.dtype
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Grid,
    Loop,
    If,
}

struct Checker<'a> {
    program: &'a Program,
    types: Vec<Option<VType>>,
    /// The scope id each instruction was defined in.
    scope_of: Vec<usize>,
    /// Per scope id: whether it is still open (its values are visible).
    open: Vec<bool>,
    /// Open scopes, innermost last.
    stack: Vec<(usize, Scope)>,
}

impl Checker<'_> {
    fn inst(&mut self, inst: &Inst) -> Result<Option<VType>, String> {
        let index = VType::scalar(self.program.index_dtype);
        let scope = self.stack.last().map_or(0, |s| s.0);
        self.scope_of.push(scope);
        let ty = match inst {
            Inst::Const { ty, .. } | Inst::DefineAcc { ty, .. } => Some(valid_type(*ty)?),
            Inst::GroupId(dim) => {
                if *dim as usize >= self.program.global.len() {
                    return Err(format!("no launch dimension {dim}"));
                }
                Some(index)
            }
            Inst::LocalId(dim) => {
                if *dim as usize >= self.program.local.len() {
                    return Err(format!("no local dimension {dim}"));
                }
                Some(index)
            }
            Inst::DefineLocal { dtype, .. } => {
                if self.stack.len() > 1 {
                    return Err("DefineLocal inside a Loop or If".to_string());
                }
                Some(VType::scalar(*dtype))
            }
            Inst::Barrier => None,
            Inst::WorkgroupReduce { arg, .. } => {
                let ty = self.value(*arg)?;
                if ty.lanes != 1 {
                    return Err(format!("WorkgroupReduce of a {}-lane vector", ty.lanes));
                }
                if self.stack.len() > 1 {
                    return Err(
                        "WorkgroupReduce inside a Loop or If (it needs uniform control flow)"
                            .to_string(),
                    );
                }
                Some(ty)
            }
            Inst::Loop { start, end } => {
                self.expect(*start, index, "loop start")?;
                self.expect(*end, index, "loop end")?;
                self.open_scope(Scope::Loop);
                // The induction variable lives inside the loop only.
                if let (Some(slot), Some(&(inner, _))) =
                    (self.scope_of.last_mut(), self.stack.last())
                {
                    *slot = inner;
                }
                Some(index)
            }
            Inst::If { cond } => {
                self.expect(*cond, VType::scalar(DType::Bool), "if condition")?;
                self.open_scope(Scope::If);
                None
            }
            Inst::EndLoop => self.close_scope(Scope::Loop)?,
            Inst::EndIf => self.close_scope(Scope::If)?,
            Inst::ReadAcc(acc) => Some(self.acc(*acc)?),
            Inst::WriteAcc { acc, value } => {
                let ty = self.acc(*acc)?;
                self.expect(*value, ty, "register value")?;
                None
            }
            Inst::Unary { op, arg } => {
                let ty = self.value(*arg)?;
                check_unary(*op, ty.dtype)?;
                Some(ty)
            }
            Inst::Binary { op, a, b } => {
                let ty = self.value(*a)?;
                self.expect(*b, ty, "right operand")?;
                check_binary(*op, ty.dtype)?;
                Some(if op.is_comparison() {
                    ty.with_dtype(DType::Bool)
                } else {
                    ty
                })
            }
            Inst::Where { cond, a, b } => {
                let ty = self.value(*a)?;
                self.expect(*b, ty, "false operand")?;
                self.expect(*cond, ty.with_dtype(DType::Bool), "condition")?;
                Some(ty)
            }
            Inst::MulAcc { a, b, c } => {
                let ty = self.value(*a)?;
                self.expect(*b, ty, "factor")?;
                self.expect(*c, ty, "addend")?;
                Some(ty)
            }
            Inst::Cast { to, arg } => {
                let from = self.value(*arg)?;
                let to = valid_type(*to)?;
                if to.lanes != from.lanes {
                    return Err(format!(
                        "cast changes the lane count from {} to {}",
                        from.lanes, to.lanes
                    ));
                }
                Some(to)
            }
            Inst::Bitcast { to, arg } => {
                let from = self.value(*arg)?;
                let to = valid_type(*to)?;
                if to.lanes != from.lanes || to.dtype.size() != from.dtype.size() {
                    return Err(format!("bitcast from {from:?} to {to:?} changes the size"));
                }
                if from.dtype == DType::Bool || to.dtype == DType::Bool {
                    return Err("bool takes part in no bitcast (use Cast)".to_string());
                }
                Some(to)
            }
            Inst::ReduceLanes { arg, .. } => Some(VType::scalar(self.value(*arg)?.dtype)),
            Inst::Vectorize(parts) => {
                let first = parts.first().ok_or("Vectorize of no values")?;
                let elem = self.value(*first)?;
                if elem.lanes != 1 {
                    return Err("Vectorize takes scalars".to_string());
                }
                if parts.len() > MAX_LANES as usize {
                    return Err(format!(
                        "Vectorize of {} values; at most {MAX_LANES} lanes",
                        parts.len()
                    ));
                }
                for part in parts {
                    self.expect(*part, elem, "Vectorize lane")?;
                }
                Some(VType::vec(elem.dtype, parts.len() as u8))
            }
            Inst::Extract { vec, lane } => {
                let ty = self.value(*vec)?;
                if *lane >= ty.lanes {
                    return Err(format!("lane {lane} of a {}-lane vector", ty.lanes));
                }
                Some(VType::scalar(ty.dtype))
            }
            Inst::Load {
                mem,
                index: at,
                gate,
                ty,
            } => {
                let ty = valid_type(*ty)?;
                self.memory(*mem, ty.dtype)?;
                self.expect(*at, index, "load index")?;
                if let Some(gate) = gate {
                    self.expect(*gate, VType::scalar(DType::Bool), "load gate")?;
                }
                Some(ty)
            }
            Inst::Store {
                mem,
                index: at,
                value,
                gate,
            } => {
                let ty = self.value(*value)?;
                if let Some(param) = self.memory(*mem, ty.dtype)? {
                    if !self.program.params[param].writable {
                        return Err(format!("store to param {param}, which is not writable"));
                    }
                }
                self.expect(*at, index, "store index")?;
                if let Some(gate) = gate {
                    self.expect(*gate, VType::scalar(DType::Bool), "store gate")?;
                }
                None
            }
        };
        Ok(ty)
    }

    fn open_scope(&mut self, kind: Scope) {
        let id = self.open.len();
        self.open.push(true);
        self.stack.push((id, kind));
    }

    fn close_scope(&mut self, kind: Scope) -> Result<Option<VType>, String> {
        match self.stack.last() {
            Some(&(id, k)) if k == kind => {
                self.open[id] = false;
                self.stack.pop();
                // The closing instruction belongs to the enclosing scope.
                if let (Some(slot), Some(&(outer, _))) =
                    (self.scope_of.last_mut(), self.stack.last())
                {
                    *slot = outer;
                }
                Ok(None)
            }
            _ => Err("closes a scope that is not open".to_string()),
        }
    }

    /// The type of operand `v`, which must be defined earlier in a scope that is still open.
    fn value(&self, v: ValueId) -> Result<VType, String> {
        let i = v.0 as usize;
        if i >= self.types.len() {
            return Err(format!("operand %{i} is not defined before its use"));
        }
        if !self.open[self.scope_of[i]] {
            return Err(format!(
                "operand %{i} is used outside the Loop or If that defines it"
            ));
        }
        self.types[i]
            .ok_or_else(|| format!("operand %{i} ({:?}) has no value", self.program.insts[i]))
    }

    fn expect(&self, v: ValueId, want: VType, what: &str) -> Result<(), String> {
        let got = self.value(v)?;
        if got != want {
            return Err(format!("{what} %{} is {got:?}, expected {want:?}", v.0));
        }
        Ok(())
    }

    fn acc(&self, acc: ValueId) -> Result<VType, String> {
        let ty = self.value(acc)?;
        match self.program.insts[acc.0 as usize] {
            Inst::DefineAcc { .. } => Ok(ty),
            _ => Err(format!("%{} is not a DefineAcc register", acc.0)),
        }
    }

    /// Checks an access of `dtype` to `mem`; returns the param index for global memory.
    fn memory(&self, mem: Memory, dtype: DType) -> Result<Option<usize>, String> {
        let p = match mem {
            Memory::Global(p) => p,
            Memory::Local(v) => {
                let ty = self.value(v)?;
                if !matches!(self.program.insts[v.0 as usize], Inst::DefineLocal { .. }) {
                    return Err(format!("%{} is not a DefineLocal", v.0));
                }
                if ty.dtype != dtype {
                    return Err(format!(
                        "local memory %{} holds {}, accessed as {dtype}",
                        v.0, ty.dtype
                    ));
                }
                return Ok(None);
            }
        };
        let param = self
            .program
            .params
            .get(p as usize)
            .ok_or_else(|| format!("no param {p}"))?;
        if param.dtype != dtype {
            return Err(format!(
                "param {p} holds {}, accessed as {dtype}",
                param.dtype
            ));
        }
        Ok(Some(p as usize))
    }
}

fn valid_type(ty: VType) -> Result<VType, String> {
    if ty.lanes == 0 || ty.lanes > MAX_LANES {
        return Err(format!(
            "{} lanes; 1 to {MAX_LANES} are supported",
            ty.lanes
        ));
    }
    Ok(ty)
}

fn check_unary(op: UnaryOp, dtype: DType) -> Result<(), String> {
    match op {
        UnaryOp::Exp2 | UnaryOp::Log2 | UnaryOp::Sin | UnaryOp::Sqrt | UnaryOp::Recip
            if !dtype.is_float() =>
        {
            Err(format!("{op:?} needs a float operand, not {dtype}"))
        }
        _ => Ok(()),
    }
}

fn check_binary(op: BinaryOp, dtype: DType) -> Result<(), String> {
    let ok = match op {
        BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::CmpLt | BinaryOp::CmpNe => true,
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => !dtype.is_float(),
        BinaryOp::IDiv | BinaryOp::Mod | BinaryOp::Shl | BinaryOp::Shr => !dtype.is_float(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{op:?} is not defined on {dtype}"))
    }
}
