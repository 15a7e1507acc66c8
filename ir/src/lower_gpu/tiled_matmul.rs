//! Tiled matrix multiplication for GPUs: contractions staged through workgroup memory.
//!
//! A kernel that sums products, `out[.., m, n] = epilogue(sum_k a(m, k) * b(k, n))`, is
//! recognized on its *plain* Program (no planning: one grid point per output, the reduction a
//! single loop with one accumulator). The operands `a` and `b` are whatever the loop body
//! multiplies: loads through any view (transposes, broadcasts, pads) and elementwise ops fused
//! onto them (casts, scales). The launch dimensions are classified by which operand reads them:
//! only `a` (the M side), only `b` (the N side), or both / neither (batch).
//!
//! The tiled Program runs workgroups of `TX x TY` invocations, each computing a `TM x TN` block
//! of the output (`TM = RM * TY`, `TN = RN * TX`; every invocation holds `RM x RN` accumulators,
//! strided by `TY` and `TX` so neighbouring invocations touch neighbouring elements). The
//! reduction runs in steps of `BK`: the workgroup evaluates the `TM x BK` slice of `a` and the
//! `BK x TN` slice of `b` once into workgroup memory (each invocation a few elements), waits at a
//! barrier, and every invocation then multiplies from workgroup memory. Each operand element is
//! read from global memory `TN` (or `TM`) times fewer than in the plain Program. Out-of-range
//! rows, columns and reduction steps are gated: loads are not made, reduction padding is zero,
//! and stores outside the output are skipped.
//!
//! The operands' and the epilogue's instructions are re-emitted with the original launch ids
//! replaced by the tile's row, column and batch (a set of launch dimensions on one side is
//! flattened into one index and unflattened with div/mod), so every view the plain lowering
//! understood is understood here too.

use crate::dtype::{DType, Scalar};
use crate::ops::BinaryOp;
use crate::program::{Inst, Memory, Program, VType, ValueId};
use std::collections::HashMap;

/// Invocations per workgroup along N (launch dimension 0).
const TX: usize = 16;
/// Accumulators per invocation along M and along N.
const RM: usize = 4;
const RN: usize = 4;
/// Reduction steps staged per barrier.
const BK: usize = 16;
/// Contractions smaller than this along M, N or K keep the plain shape.
const MIN_SIDE: usize = 32;
const MIN_K: i64 = 16;

/// The tiled form of `plain` for workgroups of at most `max_local` invocations, or `None` when
/// `plain` is not a contraction this module recognizes (or is too small to gain from tiling).
pub(super) fn tiled_matmul(plain: &Program, max_local: usize) -> Option<Program> {
    let ty = (max_local / TX).min(16);
    if ty < 4 || plain.uses_workgroups() || plain.index_dtype != DType::I32 {
        return None;
    }
    let c = Contraction::find(plain)?;
    let sides = Sides::classify(plain, &c)?;
    let (m_total, n_total) = (sides.m.size(plain), sides.n.size(plain));
    if m_total < MIN_SIDE || n_total < MIN_SIDE || c.trips < MIN_K {
        return None;
    }
    let shape = Tile {
        ty,
        tm: RM * ty,
        tn: RN * TX,
    };
    let program = Emitter::new(plain, &c, &sides, shape).emit()?;
    Some(program)
}

/// The reduction of a plain Program: `for k in 0..trips { acc = a * b + acc }`.
struct Contraction {
    /// Index of the reduction loop's `EndLoop`.
    end: usize,
    trips: i64,
    acc: ValueId,
    acc_type: VType,
    a: ValueId,
    b: ValueId,
}

impl Contraction {
    fn find(p: &Program) -> Option<Contraction> {
        let start = p
            .insts
            .iter()
            .position(|i| matches!(i, Inst::Loop { .. }))?;
        let Inst::Loop { start: lo, end: hi } = p.insts[start] else {
            return None;
        };
        if constant(p, lo)? != 0 {
            return None;
        }
        let trips = constant(p, hi)?;
        // No control flow or registers outside the one loop: prelude and epilogue are straight.
        let end = start
            + p.insts[start..]
                .iter()
                .position(|i| matches!(i, Inst::EndLoop))?;
        let body = &p.insts[start + 1..end];
        if body
            .iter()
            .any(|i| matches!(i, Inst::Loop { .. } | Inst::If { .. } | Inst::Store { .. }))
        {
            return None;
        }
        let mut writes = body.iter().filter_map(|i| match i {
            Inst::WriteAcc { acc, value } => Some((*acc, *value)),
            _ => None,
        });
        let write = writes.next();
        if writes.next().is_some() {
            return None;
        }
        let outside = p.insts[..start].iter().chain(&p.insts[end + 1..]);
        let mut accs = 0;
        for inst in outside {
            match inst {
                Inst::Loop { .. }
                | Inst::If { .. }
                | Inst::EndLoop
                | Inst::EndIf
                | Inst::WriteAcc { .. } => return None,
                Inst::DefineAcc { .. } => accs += 1,
                _ => {}
            }
        }
        let (acc, value) = write?;
        let acc_type = match p.insts.get(acc.0 as usize)? {
            Inst::DefineAcc { ty, init } if accs == 1 && ty.lanes == 1 && init.as_f64() == 0.0 => {
                *ty
            }
            _ => return None,
        };
        if !matches!(acc_type.dtype, DType::F32 | DType::F64) {
            return None;
        }
        let reads_acc = |v: &ValueId| matches!(p.insts[v.0 as usize], Inst::ReadAcc(a) if a == acc);
        let (a, b) = match &p.insts[value.0 as usize] {
            Inst::MulAcc { a, b, c } if reads_acc(c) => (*a, *b),
            Inst::Binary {
                op: BinaryOp::Add,
                a: x,
                b: y,
            } => {
                let product = if reads_acc(x) {
                    y
                } else if reads_acc(y) {
                    x
                } else {
                    return None;
                };
                match &p.insts[product.0 as usize] {
                    Inst::Binary {
                        op: BinaryOp::Mul,
                        a,
                        b,
                    } => (*a, *b),
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(Contraction {
            end,
            trips,
            acc,
            acc_type,
            a,
            b,
        })
    }
}

fn constant(p: &Program, v: ValueId) -> Option<i64> {
    match p.insts.get(v.0 as usize) {
        Some(Inst::Const { value, .. }) => Some(value.as_i64()),
        _ => None,
    }
}

/// A set of launch dimensions read as one flattened index.
#[derive(Default)]
struct Side {
    dims: Vec<u8>,
}

impl Side {
    fn size(&self, p: &Program) -> usize {
        self.dims.iter().map(|&d| p.global[d as usize]).product()
    }
}

/// Launch dimensions by the operand that reads them.
struct Sides {
    m: Side,
    n: Side,
    batch: Side,
}

impl Sides {
    fn classify(p: &Program, c: &Contraction) -> Option<Sides> {
        let a = launch_dims_read(p, c.a)?;
        let b = launch_dims_read(p, c.b)?;
        let mut sides = Sides {
            m: Side::default(),
            n: Side::default(),
            batch: Side::default(),
        };
        for d in 0..p.global.len() as u8 {
            let side = match (a.contains(&d), b.contains(&d)) {
                (true, false) => &mut sides.m,
                (false, true) => &mut sides.n,
                _ => &mut sides.batch,
            };
            side.dims.push(d);
        }
        (!sides.m.dims.is_empty() && !sides.n.dims.is_empty()).then_some(sides)
    }
}

/// The launch dimensions `v` depends on, or `None` if it depends on anything but launch ids,
/// the reduction variable, constants, global loads and pure arithmetic.
fn launch_dims_read(p: &Program, v: ValueId) -> Option<Vec<u8>> {
    let mut dims = Vec::new();
    let mut seen = vec![false; p.insts.len()];
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut seen[v.0 as usize], true) {
            continue;
        }
        match &p.insts[v.0 as usize] {
            Inst::GroupId(d) => {
                if !dims.contains(d) {
                    dims.push(*d);
                }
            }
            Inst::Loop { .. } | Inst::Const { .. } => {}
            Inst::Load {
                mem: Memory::Global(_),
                index,
                gate,
                ty,
            } if ty.lanes == 1 => {
                stack.push(*index);
                stack.extend(gate);
            }
            inst @ (Inst::Unary { .. }
            | Inst::Binary { .. }
            | Inst::Where { .. }
            | Inst::MulAcc { .. }
            | Inst::Cast { .. }
            | Inst::Bitcast { .. }) => stack.extend(operands(inst)),
            _ => return None,
        }
    }
    Some(dims)
}

/// The value operands of a pure instruction.
fn operands(inst: &Inst) -> Vec<ValueId> {
    match inst {
        Inst::Unary { arg, .. } | Inst::Cast { arg, .. } | Inst::Bitcast { arg, .. } => vec![*arg],
        Inst::Binary { a, b, .. } => vec![*a, *b],
        Inst::Where { cond, a, b } => vec![*cond, *a, *b],
        Inst::MulAcc { a, b, c } => vec![*a, *b, *c],
        _ => vec![],
    }
}

/// Workgroup shape: `TX x ty` invocations computing `tm x tn` outputs.
#[derive(Clone, Copy)]
struct Tile {
    ty: usize,
    tm: usize,
    tn: usize,
}

/// What the original launch ids, reduction variable and accumulator stand for while one copy
/// of the operands or of the epilogue is emitted.
struct Binding {
    group: Vec<ValueId>,
    k: Option<ValueId>,
    acc: Option<ValueId>,
    /// Extra condition on every global load (ranges of the tile).
    gate: Option<ValueId>,
}

struct Emitter<'a> {
    plain: &'a Program,
    c: &'a Contraction,
    sides: &'a Sides,
    tile: Tile,
    insts: Vec<Inst>,
}

impl<'a> Emitter<'a> {
    fn new(plain: &'a Program, c: &'a Contraction, sides: &'a Sides, tile: Tile) -> Self {
        Emitter {
            plain,
            c,
            sides,
            tile,
            insts: Vec::with_capacity(plain.insts.len() * 24 + 128),
        }
    }

    fn push(&mut self, inst: Inst) -> ValueId {
        self.insts.push(inst);
        ValueId(self.insts.len() as u32 - 1)
    }

    fn index(&mut self, v: i64) -> ValueId {
        self.push(Inst::Const {
            ty: VType::scalar(DType::I32),
            value: Scalar::Int(v),
        })
    }

    fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> ValueId {
        self.push(Inst::Binary { op, a, b })
    }

    /// `a * k + b` with constant `k`.
    fn scaled_add(&mut self, a: ValueId, k: usize, b: ValueId) -> ValueId {
        let k = self.index(k as i64);
        let ak = self.binary(BinaryOp::Mul, a, k);
        self.binary(BinaryOp::Add, ak, b)
    }

    fn less_than(&mut self, a: ValueId, bound: usize) -> ValueId {
        let bound = self.index(bound as i64);
        self.binary(BinaryOp::CmpLt, a, bound)
    }

    /// The original launch ids of `side`'s dimensions from its flattened index `flat`.
    fn unflatten(&mut self, side: &Side, flat: ValueId, group: &mut [Option<ValueId>]) {
        let mut rest = flat;
        for (i, &d) in side.dims.iter().enumerate().rev() {
            let size = self.plain.global[d as usize];
            if i == 0 {
                group[d as usize] = Some(rest);
            } else {
                let s = self.index(size as i64);
                group[d as usize] = Some(self.binary(BinaryOp::Mod, rest, s));
                rest = self.binary(BinaryOp::IDiv, rest, s);
            }
        }
    }

    /// Re-emits the value `v` of the plain Program under `bind` (memoized in `done`); `None` if
    /// it needs something other than launch ids, the bound reduction variable or accumulator,
    /// constants, global loads and scalar arithmetic.
    fn value(
        &mut self,
        v: ValueId,
        bind: &Binding,
        done: &mut HashMap<u32, ValueId>,
    ) -> Option<ValueId> {
        let mut stack = vec![(v, false)];
        while let Some((v, ready)) = stack.pop() {
            if done.contains_key(&v.0) {
                continue;
            }
            let inst = &self.plain.insts[v.0 as usize];
            if !ready {
                stack.push((v, true));
                let deps = match inst {
                    Inst::Load { index, gate, .. } => {
                        std::iter::once(*index).chain(*gate).collect()
                    }
                    other => operands(other),
                };
                stack.extend(deps.into_iter().map(|d| (d, false)));
                continue;
            }
            let m = |x: &ValueId| done[&x.0];
            let new = match inst {
                Inst::GroupId(d) => bind.group[*d as usize],
                Inst::Loop { .. } => bind.k?,
                Inst::ReadAcc(a) if *a == self.c.acc => {
                    let acc = bind.acc?;
                    self.push(Inst::ReadAcc(acc))
                }
                Inst::Load {
                    mem: mem @ Memory::Global(_),
                    index,
                    gate,
                    ty,
                } if ty.lanes == 1 => {
                    let gate = match (gate.as_ref().map(m), bind.gate) {
                        (Some(g), Some(extra)) => Some(self.binary(BinaryOp::And, g, extra)),
                        (g, extra) => g.or(extra),
                    };
                    let index = m(index);
                    self.push(Inst::Load {
                        mem: *mem,
                        index,
                        gate,
                        ty: *ty,
                    })
                }
                Inst::Const { .. } => self.push(inst.clone()),
                pure @ (Inst::Unary { .. }
                | Inst::Binary { .. }
                | Inst::Where { .. }
                | Inst::MulAcc { .. }
                | Inst::Cast { .. }
                | Inst::Bitcast { .. }) => {
                    let mut inst = pure.clone();
                    remap(&mut inst, |x| done[&x.0]);
                    self.push(inst)
                }
                _ => return None,
            };
            done.insert(v.0, new);
        }
        Some(done[&v.0])
    }

    fn emit(mut self) -> Option<Program> {
        let Tile { ty, tm, tn } = self.tile;
        let (sides, plain) = (self.sides, self.plain);
        let types = plain.value_types();
        let dims = plain.global.len();
        let acc_type = self.c.acc_type;
        let lx = self.push(Inst::LocalId(0));
        let ly = self.push(Inst::LocalId(1));
        let gn = self.push(Inst::GroupId(0));
        let gm = self.push(Inst::GroupId(1));
        let gb = self.push(Inst::GroupId(2));
        let a_tile = self.push(Inst::DefineLocal {
            dtype: acc_type.dtype,
            len: BK * tm,
        });
        let b_tile = self.push(Inst::DefineLocal {
            dtype: acc_type.dtype,
            len: BK * tn,
        });
        let accs: Vec<ValueId> = (0..RM * RN)
            .map(|_| {
                self.push(Inst::DefineAcc {
                    ty: acc_type,
                    init: Scalar::Float(0.0),
                })
            })
            .collect();
        let mut group = vec![None; dims];
        self.unflatten(&sides.batch, gb, &mut group);
        let tid = self.scaled_add(ly, TX, lx);
        let m0 = {
            let t = self.index(tm as i64);
            self.binary(BinaryOp::Mul, gm, t)
        };
        let n0 = {
            let t = self.index(tn as i64);
            self.binary(BinaryOp::Mul, gn, t)
        };
        let (m_total, n_total) = (sides.m.size(plain), sides.n.size(plain));
        let trips = self.c.trips as usize;
        let zero = self.index(0);
        let k_tiles = self.index(trips.div_ceil(BK) as i64);
        let kt = self.push(Inst::Loop {
            start: zero,
            end: k_tiles,
        });
        let bk = self.index(BK as i64);
        let k0 = self.binary(BinaryOp::Mul, kt, bk);
        let threads = TX * ty;
        // Stage a(m0.., k0..) as a_tile[kk * tm + row] and b(k0.., n0..) as b_tile[kk * tn + col].
        for (operand, side, len, rows_fast) in [
            (self.c.a, &sides.m, tm, true),
            (self.c.b, &sides.n, tn, false),
        ] {
            let (tile_mem, origin, total) = if rows_fast {
                (a_tile, m0, m_total)
            } else {
                (b_tile, n0, n_total)
            };
            for step in 0..(len * BK).div_ceil(threads) {
                let offset = self.index((step * threads) as i64);
                let e = self.binary(BinaryOp::Add, tid, offset);
                let (along, kk) = if rows_fast {
                    let w = self.index(BK as i64);
                    (
                        self.binary(BinaryOp::IDiv, e, w),
                        self.binary(BinaryOp::Mod, e, w),
                    )
                } else {
                    let w = self.index(len as i64);
                    (
                        self.binary(BinaryOp::Mod, e, w),
                        self.binary(BinaryOp::IDiv, e, w),
                    )
                };
                let pos = self.binary(BinaryOp::Add, origin, along);
                let k = self.binary(BinaryOp::Add, k0, kk);
                let pos_in = self.less_than(pos, total);
                let k_in = self.less_than(k, trips);
                let inside = self.binary(BinaryOp::And, pos_in, k_in);
                let mut g = group.clone();
                self.unflatten(side, pos, &mut g);
                let bind = Binding {
                    group: g.into_iter().map(|x| x.unwrap_or(zero)).collect(),
                    k: Some(k),
                    acc: None,
                    gate: Some(inside),
                };
                let value = self.value(operand, &bind, &mut HashMap::new())?;
                let value = self.cast_to(value, types[operand.0 as usize]?, acc_type)?;
                let zero_value = self.push(Inst::Const {
                    ty: acc_type,
                    value: Scalar::Float(0.0),
                });
                let value = self.push(Inst::Where {
                    cond: inside,
                    a: value,
                    b: zero_value,
                });
                let at = self.scaled_add(kk, len, along);
                // Tiles that do not divide the thread count leave the last step partly idle.
                let in_tile = self.less_than(e, len * BK);
                self.push(Inst::Store {
                    mem: Memory::Local(tile_mem),
                    index: at,
                    value,
                    gate: (!(len * BK).is_multiple_of(threads)).then_some(in_tile),
                });
            }
        }
        self.push(Inst::Barrier);
        let bk_end = self.index(BK as i64);
        let kk = self.push(Inst::Loop {
            start: zero,
            end: bk_end,
        });
        let a_row = self.index(tm as i64);
        let a_base = self.binary(BinaryOp::Mul, kk, a_row);
        let b_row = self.index(tn as i64);
        let b_base = self.binary(BinaryOp::Mul, kk, b_row);
        let a_vals: Vec<ValueId> = (0..RM)
            .map(|i| self.tile_load(a_tile, a_base, ly, i * ty, acc_type))
            .collect();
        let b_vals: Vec<ValueId> = (0..RN)
            .map(|j| self.tile_load(b_tile, b_base, lx, j * TX, acc_type))
            .collect();
        for i in 0..RM {
            for j in 0..RN {
                let acc = accs[i * RN + j];
                let old = self.push(Inst::ReadAcc(acc));
                let new = self.push(Inst::MulAcc {
                    a: a_vals[i],
                    b: b_vals[j],
                    c: old,
                });
                self.push(Inst::WriteAcc { acc, value: new });
            }
        }
        self.push(Inst::EndLoop);
        self.push(Inst::Barrier);
        self.push(Inst::EndLoop);
        // Epilogue: once per accumulator, at its row and column, stores gated to the output.
        for i in 0..RM {
            for j in 0..RN {
                let row = self.offset(m0, ly, i * ty);
                let col = self.offset(n0, lx, j * TX);
                let row_in = self.less_than(row, m_total);
                let col_in = self.less_than(col, n_total);
                let inside = self.binary(BinaryOp::And, row_in, col_in);
                let mut g = group.clone();
                self.unflatten(&sides.m, row, &mut g);
                self.unflatten(&sides.n, col, &mut g);
                let bind = Binding {
                    group: g.into_iter().map(|x| x.unwrap_or(zero)).collect(),
                    k: None,
                    acc: Some(accs[i * RN + j]),
                    gate: Some(inside),
                };
                self.epilogue(&bind)?;
            }
        }
        let groups = |side: &Side| side.size(plain).max(1);
        Some(Program {
            name: format!("{}_tiled{tm}x{tn}", self.plain.name),
            params: self.plain.params.clone(),
            global: vec![
                n_total.div_ceil(tn),
                m_total.div_ceil(tm),
                groups(&self.sides.batch),
            ],
            local: vec![TX, ty, 1],
            index_dtype: DType::I32,
            insts: self.insts,
        })
    }

    /// `base + lid + k`.
    fn offset(&mut self, base: ValueId, lid: ValueId, k: usize) -> ValueId {
        let k = self.index(k as i64);
        let lk = self.binary(BinaryOp::Add, lid, k);
        self.binary(BinaryOp::Add, base, lk)
    }

    fn tile_load(
        &mut self,
        tile: ValueId,
        base: ValueId,
        lid: ValueId,
        k: usize,
        ty: VType,
    ) -> ValueId {
        let at = self.offset(base, lid, k);
        self.push(Inst::Load {
            mem: Memory::Local(tile),
            index: at,
            gate: None,
            ty,
        })
    }

    /// `v`, of type `have`, as the accumulator's type `ty` (operands are usually already of it).
    fn cast_to(&mut self, v: ValueId, have: VType, ty: VType) -> Option<ValueId> {
        if have == ty {
            Some(v)
        } else if have.lanes == 1 {
            Some(self.push(Inst::Cast { to: ty, arg: v }))
        } else {
            None
        }
    }

    /// The plain Program's epilogue (everything after the reduction loop) under `bind`: its
    /// stores, gated by `bind.gate`, and the values they need.
    fn epilogue(&mut self, bind: &Binding) -> Option<()> {
        let mut done = HashMap::new();
        let plain = self.plain;
        for inst in &plain.insts[self.c.end + 1..] {
            if let Inst::Store {
                mem: Memory::Global(param),
                index,
                value,
                gate,
            } = inst
            {
                let index = self.value(*index, bind, &mut done)?;
                let value = self.value(*value, bind, &mut done)?;
                let extra = bind.gate.expect("epilogue stores are gated");
                let gate = match gate {
                    Some(g) => {
                        let g = self.value(*g, bind, &mut done)?;
                        self.binary(BinaryOp::And, g, extra)
                    }
                    None => extra,
                };
                self.push(Inst::Store {
                    mem: Memory::Global(*param),
                    index,
                    value,
                    gate: Some(gate),
                });
            } else if matches!(inst, Inst::Store { .. }) {
                return None;
            }
        }
        Some(())
    }
}

/// Replaces every value operand of `inst` through `f`.
fn remap(inst: &mut Inst, f: impl Fn(&ValueId) -> ValueId) {
    match inst {
        Inst::Unary { arg, .. } | Inst::Cast { arg, .. } | Inst::Bitcast { arg, .. } => {
            *arg = f(arg)
        }
        Inst::Binary { a, b, .. } => {
            *a = f(a);
            *b = f(b);
        }
        Inst::Where { cond, a, b } => {
            *cond = f(cond);
            *a = f(a);
            *b = f(b);
        }
        Inst::MulAcc { a, b, c } => {
            *a = f(a);
            *b = f(b);
            *c = f(c);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::Param;

    fn i32c(v: i64) -> Inst {
        Inst::Const {
            ty: VType::scalar(DType::I32),
            value: Scalar::Int(v),
        }
    }

    fn bin(op: BinaryOp, a: u32, b: u32) -> Inst {
        Inst::Binary {
            op,
            a: ValueId(a),
            b: ValueId(b),
        }
    }

    fn load(param: u32, index: u32) -> Inst {
        Inst::Load {
            mem: Memory::Global(param),
            index: ValueId(index),
            gate: None,
            ty: VType::scalar(DType::F32),
        }
    }

    /// The plain Program of `out[m, n] = sum_k a[m, k] * b[k, n]`; `a_reads_n` makes the left
    /// operand's index depend on `n` too, `combine` replaces the multiply-add.
    fn plain(m: usize, k: usize, n: usize, a_reads_n: bool, combine: Option<BinaryOp>) -> Program {
        let f32s = VType::scalar(DType::F32);
        let mut insts = vec![
            Inst::GroupId(0), // 0: m
            Inst::GroupId(1), // 1: n
            Inst::DefineAcc {
                ty: f32s,
                init: Scalar::Float(0.0),
            }, // 2
            i32c(0),          // 3
            i32c(k as i64),   // 4
            Inst::Loop {
                start: ValueId(3),
                end: ValueId(4),
            }, // 5: k
            bin(BinaryOp::Mul, 0, 4), // 6
            bin(BinaryOp::Add, 6, 5), // 7
            bin(
                if a_reads_n {
                    BinaryOp::Add
                } else {
                    BinaryOp::Mul
                },
                7,
                if a_reads_n { 1 } else { 7 },
            ), // 8
            load(1, if a_reads_n { 8 } else { 7 }), // 9
            i32c(n as i64),   // 10
            bin(BinaryOp::Mul, 5, 10), // 11
            bin(BinaryOp::Add, 11, 1), // 12
            load(2, 12),      // 13
            Inst::ReadAcc(ValueId(2)), // 14
        ];
        match combine {
            None => insts.push(Inst::MulAcc {
                a: ValueId(9),
                b: ValueId(13),
                c: ValueId(14),
            }), // 15
            Some(op) => insts.push(bin(op, 14, 9)),
        }
        insts.extend([
            Inst::WriteAcc {
                acc: ValueId(2),
                value: ValueId(15),
            }, // 16
            Inst::EndLoop,             // 17
            Inst::ReadAcc(ValueId(2)), // 18
            i32c(n as i64),            // 19
            bin(BinaryOp::Mul, 0, 19), // 20
            bin(BinaryOp::Add, 20, 1), // 21
            Inst::Store {
                mem: Memory::Global(0),
                index: ValueId(21),
                value: ValueId(18),
                gate: None,
            },
        ]);
        let param = |len: usize, writable: bool| Param {
            dtype: DType::F32,
            len,
            writable,
        };
        Program {
            name: "matmul".into(),
            params: vec![param(m * n, true), param(m * k, false), param(k * n, false)],
            global: vec![m, n],
            local: vec![1, 1],
            index_dtype: DType::I32,
            insts,
        }
    }

    fn count(p: &Program, f: impl Fn(&Inst) -> bool) -> usize {
        p.insts.iter().filter(|i| f(i)).count()
    }

    #[test]
    fn a_contraction_becomes_a_valid_tiled_program() {
        let source = plain(100, 40, 70, false, None);
        crate::validate::check(&source).expect("the test's plain program is valid");
        let tiled = tiled_matmul(&source, 256).expect("a 100x40x70 matmul is tiled");
        crate::validate::check(&tiled).expect("the tiled program is valid");
        assert_eq!(tiled.local, vec![16, 16, 1]);
        // N = 70 in tiles of 64 columns, M = 100 in tiles of 64 rows, no batch.
        assert_eq!(tiled.global, vec![2, 2, 1]);
        assert_eq!(count(&tiled, |i| matches!(i, Inst::Barrier)), 2);
        assert_eq!(count(&tiled, |i| matches!(i, Inst::DefineLocal { .. })), 2);
        assert_eq!(
            count(&tiled, |i| matches!(i, Inst::DefineAcc { .. })),
            RM * RN
        );
        // Every store to the output is gated (edge tiles), one per accumulator.
        let stores = count(&tiled, |i| {
            matches!(
                i,
                Inst::Store {
                    mem: Memory::Global(0),
                    gate: Some(_),
                    ..
                }
            )
        });
        assert_eq!(stores, RM * RN);
    }

    #[test]
    fn smaller_workgroups_make_shorter_tiles() {
        let tiled = tiled_matmul(&plain(100, 40, 70, false, None), 128).expect("tiled");
        crate::validate::check(&tiled).expect("valid");
        assert_eq!(tiled.local, vec![16, 8, 1]);
        assert_eq!(tiled.global, vec![2, 4, 1], "M = 100 in tiles of 32 rows");
        assert!(tiled_matmul(&plain(100, 40, 70, false, None), 32).is_none());
    }

    #[test]
    fn what_is_not_a_tiled_contraction_keeps_its_shape() {
        // Too small on a side or along the reduction.
        assert!(tiled_matmul(&plain(8, 40, 70, false, None), 256).is_none());
        assert!(tiled_matmul(&plain(100, 8, 70, false, None), 256).is_none());
        // The left operand reads both output axes: no M side.
        assert!(tiled_matmul(&plain(100, 40, 70, true, None), 256).is_none());
        // A max or a plain sum is not a sum of products.
        assert!(tiled_matmul(&plain(100, 40, 70, false, Some(BinaryOp::Max)), 256).is_none());
        assert!(tiled_matmul(&plain(100, 40, 70, false, Some(BinaryOp::Add)), 256).is_none());
        // A workgroup program is left alone.
        let wg = crate::lower_gpu::workgroup_reduce(plain(4, 4096, 2, false, None), 256);
        assert!(wg.uses_workgroups());
        assert!(tiled_matmul(&wg, 256).is_none());
    }
}
