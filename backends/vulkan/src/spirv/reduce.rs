//! `WorkgroupReduce`: a value combined across every invocation of a workgroup.
//!
//! * With subgroup arithmetic (`VK_SUBGROUP_FEATURE_ARITHMETIC` in compute shaders) and a
//!   32-bit op whose result does not depend on the order (integer ops, f32 sums and products,
//!   bool any/all): each subgroup reduces with one `OpGroupNonUniform*` instruction, one
//!   elected invocation per subgroup stores the partial result in local memory (slots start
//!   at the identity), and after a barrier every invocation combines the partials. The count
//!   of slots read is the larger of `NumSubgroups` and `ceil(local size / SubgroupSize)`:
//!   lavapipe reports `NumSubgroups` rounded down when the last subgroup is partial.
//! * Otherwise (float max, whose NaN rule subgroup ops do not follow; 16- and 64-bit types): a
//!   tree in local memory, halving the active invocations with a barrier per step.
//!
//! A final barrier lets the next reduction reuse nothing stale.

use super::Gen;
use ferrograd_ir::{DType, ReduceOp};
use rspirv::dr::{Instruction, Operand};
use rspirv::spirv::{self, Op, StorageClass, Word};

/// Builtins a workgroup reduction reads (loaded once at the start of the shader).
#[derive(Clone, Copy, Default)]
pub(super) struct ReduceBuiltins {
    /// `LocalInvocationIndex`.
    pub(super) flat: Word,
    /// `SubgroupId`, `NumSubgroups` and `SubgroupSize` (subgroup path only).
    pub(super) subgroup: Option<(Word, Word, Word)>,
}

impl Gen<'_> {
    /// The subgroup instruction reducing `op` over `dtype` registers, where it is exact.
    fn subgroup_op(&self, op: ReduceOp, dtype: DType) -> Option<Op> {
        if !self.features.subgroup_arith {
            return None;
        }
        Some(match (op, dtype) {
            (ReduceOp::Sum, DType::F32) => Op::GroupNonUniformFAdd,
            (ReduceOp::Prod, DType::F32) => Op::GroupNonUniformFMul,
            (ReduceOp::Sum, DType::I8 | DType::U8 | DType::I32 | DType::U32) => {
                Op::GroupNonUniformIAdd
            }
            (ReduceOp::Prod, DType::I8 | DType::U8 | DType::I32 | DType::U32) => {
                Op::GroupNonUniformIMul
            }
            (ReduceOp::Max, DType::I8 | DType::I32) => Op::GroupNonUniformSMax,
            (ReduceOp::Max, DType::U8 | DType::U32) => Op::GroupNonUniformUMax,
            (ReduceOp::Sum | ReduceOp::Max, DType::Bool) => Op::GroupNonUniformLogicalOr,
            (ReduceOp::Prod, DType::Bool) => Op::GroupNonUniformLogicalAnd,
            _ => return None,
        })
    }

    /// True if any `WorkgroupReduce` of the program takes the subgroup path.
    pub(super) fn uses_subgroups(&self) -> bool {
        let types = self.types;
        self.program.insts.iter().any(|i| match i {
            ferrograd_ir::Inst::WorkgroupReduce { op, arg } => {
                types[arg.0 as usize].is_some_and(|t| self.subgroup_op(*op, t.dtype).is_some())
            }
            _ => false,
        })
    }

    fn barrier(&mut self) -> Result<(), String> {
        let wg = self.c_u32(spirv::Scope::Workgroup as u32);
        let sem = self.c_u32(
            (spirv::MemorySemantics::ACQUIRE_RELEASE | spirv::MemorySemantics::WORKGROUP_MEMORY)
                .bits(),
        );
        self.b
            .control_barrier(wg, wg, sem)
            .map_err(|e| format!("internal: {e:?}"))
    }

    /// Runs `then` only where `cond` holds (a selection construct).
    fn when(
        &mut self,
        cond: Word,
        then: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let err = |e: rspirv::dr::Error| format!("internal: {e:?}");
        let (block, merge) = (self.b.id(), self.b.id());
        self.b
            .selection_merge(merge, spirv::SelectionControl::NONE)
            .map_err(err)?;
        self.b
            .branch_conditional(cond, block, merge, [])
            .map_err(err)?;
        self.b.begin_block(Some(block)).map_err(err)?;
        then(self)?;
        self.b.branch(merge).map_err(err)?;
        self.b.begin_block(Some(merge)).map_err(err)?;
        Ok(())
    }

    /// Element `index` of the reduction's local array, as a register of `dtype`.
    fn slot_load(&mut self, array: Word, dtype: DType, index: Word) -> Word {
        let elem = self.local_elem_ty(dtype);
        let ptr_ty = self.ty_ptr(StorageClass::Workgroup, elem);
        let ptr = self.op(Op::AccessChain, ptr_ty, &[array, index]);
        let raw = self.load_ptr(elem, ptr);
        if dtype == DType::Bool {
            let (zero, bt) = (self.c_u32(0), self.ty_bool());
            self.op(Op::INotEqual, bt, &[raw, zero])
        } else {
            raw
        }
    }

    fn slot_store(&mut self, array: Word, dtype: DType, index: Word, v: Word) {
        let elem = self.local_elem_ty(dtype);
        let ptr_ty = self.ty_ptr(StorageClass::Workgroup, elem);
        let ptr = self.op(Op::AccessChain, ptr_ty, &[array, index]);
        let raw = if dtype == DType::Bool {
            let (one, zero, u32t) = (self.c_u32(1), self.c_u32(0), self.ty_int(32));
            self.select(u32t, v, one, zero)
        } else {
            v
        };
        self.store_ptr(ptr, raw);
    }

    /// `WorkgroupReduce` instruction `id` of `x` (a `dtype` register).
    pub(super) fn workgroup_reduce(
        &mut self,
        id: u32,
        op: ReduceOp,
        dtype: DType,
        x: Word,
    ) -> Result<Word, String> {
        let array = *self.locals.get(&id).ok_or("internal: reduction memory")?;
        let flat = self.reduce_builtins.flat;
        let (u32t, bt) = (self.ty_int(32), self.ty_bool());
        let result = match (self.subgroup_op(op, dtype), self.reduce_builtins.subgroup) {
            (Some(code), Some((sid, reported, size))) => {
                let ty = self.reg_ty(dtype);
                let identity = self.scalar_const(dtype, op.identity(dtype));
                self.slot_store(array, dtype, flat, identity);
                self.barrier()?;
                // Slots to read: max(NumSubgroups, ceil(local / SubgroupSize)), at most local.
                let local = self.c_u32(self.local_count);
                let one = self.c_u32(1);
                let size_m1 = self.op(Op::ISub, u32t, &[size, one]);
                let padded = self.op(Op::IAdd, u32t, &[local, size_m1]);
                let packed = self.op(Op::UDiv, u32t, &[padded, size]);
                let more = self.op(Op::UGreaterThan, bt, &[packed, reported]);
                let count = self.select(u32t, more, packed, reported);
                let over = self.op(Op::UGreaterThan, bt, &[count, local]);
                let count = self.select(u32t, over, local, count);
                let scope = self.c_u32(spirv::Scope::Subgroup as u32);
                let part = self.b.id();
                self.push_inst(Instruction::new(
                    code,
                    Some(ty),
                    Some(part),
                    vec![
                        Operand::IdRef(scope),
                        Operand::GroupOperation(spirv::GroupOperation::Reduce),
                        Operand::IdRef(x),
                    ],
                ));
                let part = self.wrap(dtype, part);
                let elected = self.op(Op::GroupNonUniformElect, bt, &[scope]);
                self.when(elected, |g| {
                    g.slot_store(array, dtype, sid, part);
                    Ok(())
                })?;
                self.barrier()?;
                // Every invocation combines the partial results in order.
                let vars = self
                    .vars
                    .get(&id)
                    .ok_or("internal: reduction variables")?
                    .clone();
                let (total, counter) = (vars[0], vars[1]);
                self.store_ptr(total, identity);
                let zero = self.c_u32(0);
                self.store_ptr(counter, zero);
                let err = |e: rspirv::dr::Error| format!("internal: {e:?}");
                let (header, body, cont, merge) =
                    (self.b.id(), self.b.id(), self.b.id(), self.b.id());
                self.b.branch(header).map_err(err)?;
                self.b.begin_block(Some(header)).map_err(err)?;
                let i = self.load_ptr(u32t, counter);
                let more = self.op(Op::ULessThan, bt, &[i, count]);
                self.b
                    .loop_merge(merge, cont, spirv::LoopControl::NONE, [])
                    .map_err(err)?;
                self.b
                    .branch_conditional(more, body, merge, [])
                    .map_err(err)?;
                self.b.begin_block(Some(body)).map_err(err)?;
                let v = self.slot_load(array, dtype, i);
                let acc = self.load_ptr(ty, total);
                let acc = self.binary(op.combine(), dtype, acc, v)?;
                self.store_ptr(total, acc);
                self.b.branch(cont).map_err(err)?;
                self.b.begin_block(Some(cont)).map_err(err)?;
                let one = self.c_u32(1);
                let next = self.op(Op::IAdd, u32t, &[i, one]);
                self.store_ptr(counter, next);
                self.b.branch(header).map_err(err)?;
                self.b.begin_block(Some(merge)).map_err(err)?;
                self.load_ptr(ty, total)
            }
            _ => {
                let n = self.local_count;
                self.slot_store(array, dtype, flat, x);
                self.barrier()?;
                let mut stride = n.next_power_of_two() / 2;
                while stride > 0 {
                    let s = self.c_u32(stride);
                    let other = self.op(Op::IAdd, u32t, &[flat, s]);
                    let nc = self.c_u32(n);
                    let low = self.op(Op::ULessThan, bt, &[flat, s]);
                    let inside = self.op(Op::ULessThan, bt, &[other, nc]);
                    let active = self.op(Op::LogicalAnd, bt, &[low, inside]);
                    self.when(active, |g| {
                        let a = g.slot_load(array, dtype, flat);
                        let b = g.slot_load(array, dtype, other);
                        let c = g.binary(op.combine(), dtype, a, b)?;
                        g.slot_store(array, dtype, flat, c);
                        Ok(())
                    })?;
                    self.barrier()?;
                    stride /= 2;
                }
                let zero = self.c_u32(0);
                self.slot_load(array, dtype, zero)
            }
        };
        self.barrier()?;
        Ok(result)
    }
}
