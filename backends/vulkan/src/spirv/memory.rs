//! Storage buffers (params), workgroup memory (`DefineLocal`), and gated loads and stores.
//!
//! A gated-off load reads element 0 instead (every bound buffer holds at least one element's
//! bytes) and selects zero; a gated-off store is skipped by a selection construct.
//!
//! On devices without 8-bit (16-bit) storage, bool/i8/u8 (f16/bf16) buffers are declared as
//! 32-bit words: a load extracts the element's bits from its word; a store clears and sets them
//! with two atomic operations (`AtomicAnd`, `AtomicOr`), so invocations writing neighbouring
//! elements of one word never lose each other's writes.

use super::Gen;
use ferrograd_ir::{DType, Inst, Memory, VType, ValueId};
use rspirv::dr::Operand;
use rspirv::spirv::{Decoration, Op, StorageClass, Word};
use std::collections::HashSet;

impl Gen<'_> {
    /// Bits per element when `dtype` is packed into 32-bit words (no 8/16-bit storage).
    pub(super) fn packed_bits(&self, dtype: DType) -> Option<u32> {
        match dtype.size() {
            1 if !self.features.storage8 => Some(8),
            2 if !self.features.storage16 => Some(16),
            _ => None,
        }
    }

    /// The SPIR-V type of one stored element of `dtype` in a storage buffer.
    fn storage_ty(&mut self, dtype: DType) -> Word {
        if self.packed_bits(dtype).is_some() {
            return self.ty_int(32);
        }
        match dtype {
            DType::Bool | DType::I8 | DType::U8 => self.ty_int(8),
            DType::F16 | DType::BF16 => self.ty_int(16),
            DType::I32 | DType::U32 => self.ty_int(32),
            DType::I64 => self.ty_int(64),
            DType::F32 => self.ty_float(32),
            DType::F64 => self.ty_float(64),
        }
    }

    /// One storage-buffer variable per param: set 0, binding = param index.
    pub(super) fn declare_params(&mut self) {
        let mut decorated = HashSet::new();
        for (i, param) in self.program.params.iter().enumerate() {
            let elem = self.storage_ty(param.dtype);
            let array = self.b.type_runtime_array(elem);
            let block = self.b.type_struct([array]);
            if decorated.insert(array) {
                let stride = if self.packed_bits(param.dtype).is_some() {
                    4
                } else {
                    param.dtype.size() as u32
                };
                self.b.decorate(
                    array,
                    Decoration::ArrayStride,
                    [Operand::LiteralBit32(stride)],
                );
            }
            if decorated.insert(block) {
                self.b.decorate(block, Decoration::Block, []);
                self.b
                    .member_decorate(block, 0, Decoration::Offset, [Operand::LiteralBit32(0)]);
            }
            let ptr = self.ty_ptr(StorageClass::StorageBuffer, block);
            let var = self
                .b
                .variable(ptr, None, StorageClass::StorageBuffer, None);
            self.b
                .decorate(var, Decoration::DescriptorSet, [Operand::LiteralBit32(0)]);
            self.b
                .decorate(var, Decoration::Binding, [Operand::LiteralBit32(i as u32)]);
            if !param.writable {
                self.b.decorate(var, Decoration::NonWritable, []);
            }
            self.params.push(var);
        }
    }

    /// The type of one workgroup-memory element of `dtype` (register form; bool as a 0/1 u32).
    pub(super) fn local_elem_ty(&mut self, dtype: DType) -> Word {
        match dtype {
            DType::Bool => self.ty_int(32),
            d => self.reg_ty(d),
        }
    }

    /// One workgroup array per `DefineLocal`.
    pub(super) fn declare_locals(&mut self) -> Result<(), String> {
        for (i, inst) in self.program.insts.iter().enumerate() {
            if let Inst::DefineLocal { dtype, len } = inst {
                let elem = self.local_elem_ty(*dtype);
                let n =
                    u32::try_from(*len).map_err(|_| format!("local memory of {len} elements"))?;
                let n = self.c_u32(n.max(1));
                let array = self.b.type_array(elem, n);
                let ptr = self.ty_ptr(StorageClass::Workgroup, array);
                let var = self.b.variable(ptr, None, StorageClass::Workgroup, None);
                self.locals.insert(i as u32, var);
            }
            if let Inst::WorkgroupReduce { arg, .. } = inst {
                // One slot per invocation (per subgroup on the subgroup path).
                let dtype = self.types[arg.0 as usize].map_or(DType::U32, |t| t.dtype);
                let elem = self.local_elem_ty(dtype);
                let n = self.c_u32(self.local_count.max(1));
                let array = self.b.type_array(elem, n);
                let ptr = self.ty_ptr(StorageClass::Workgroup, array);
                let var = self.b.variable(ptr, None, StorageClass::Workgroup, None);
                self.locals.insert(i as u32, var);
            }
        }
        Ok(())
    }

    /// Pointer to element `index` of `mem`, and the element's dtype.
    fn element_ptr(&mut self, mem: Memory, index: Word) -> Result<(Word, Word, DType), String> {
        match mem {
            Memory::Global(p) => {
                let dtype = self
                    .program
                    .params
                    .get(p as usize)
                    .ok_or("internal: no such param")?
                    .dtype;
                let elem = self.storage_ty(dtype);
                let ptr_ty = self.ty_ptr(StorageClass::StorageBuffer, elem);
                let var = self.params[p as usize];
                let zero = self.c_u32(0);
                let ptr = self.op(Op::AccessChain, ptr_ty, &[var, zero, index]);
                Ok((ptr, elem, dtype))
            }
            Memory::Local(v) => {
                let Some(Inst::DefineLocal { dtype, .. }) = self.program.insts.get(v.0 as usize)
                else {
                    return Err("internal: local memory is not a DefineLocal".into());
                };
                let dtype = *dtype;
                let elem = self.local_elem_ty(dtype);
                let ptr_ty = self.ty_ptr(StorageClass::Workgroup, elem);
                let var = *self
                    .locals
                    .get(&v.0)
                    .ok_or("internal: local memory variable")?;
                let ptr = self.op(Op::AccessChain, ptr_ty, &[var, index]);
                Ok((ptr, elem, dtype))
            }
        }
    }

    /// Element index of lane `lane` (`index + lane`).
    fn lane_index(&mut self, index: Word, lane: u8) -> Word {
        if lane == 0 {
            return index;
        }
        let it = self.program.index_dtype;
        let ity = self.idx_ty();
        let l = self.c_int(it, lane as i64);
        self.op(Op::IAdd, ity, &[index, l])
    }

    /// `Load`: `ty.lanes` consecutive elements, zero where the gate is false.
    pub(super) fn load(
        &mut self,
        mem: Memory,
        index: ValueId,
        gate: Option<ValueId>,
        ty: VType,
    ) -> Result<Vec<Word>, String> {
        let index = self.scalar(index)?;
        let gate = gate.map(|g| self.scalar(g)).transpose()?;
        let reg = self.reg_ty(ty.dtype);
        let mut lanes = Vec::with_capacity(ty.lanes as usize);
        for lane in 0..ty.lanes {
            let mut at = self.lane_index(index, lane);
            if let Some(g) = gate {
                let ity = self.idx_ty();
                let zero = self.c_int(self.program.index_dtype, 0);
                at = self.select(ity, g, at, zero);
            }
            let mut v = match mem {
                Memory::Global(p) => self.load_global(p, at)?,
                Memory::Local(_) => {
                    let (ptr, elem, dtype) = self.element_ptr(mem, at)?;
                    let raw = self.load_ptr(elem, ptr);
                    if dtype == DType::Bool {
                        let zero = self.c_u32(0);
                        let bool_ty = self.ty_bool();
                        self.op(Op::INotEqual, bool_ty, &[raw, zero])
                    } else {
                        raw
                    }
                }
            };
            if let Some(g) = gate {
                let zero = self.scalar_const(ty.dtype, ferrograd_ir::Scalar::Int(0));
                v = self.select(reg, g, v, zero);
            }
            lanes.push(v);
        }
        Ok(lanes)
    }

    /// `Store`: the lanes of `value` to consecutive elements, if the gate holds.
    pub(super) fn store(
        &mut self,
        mem: Memory,
        index: ValueId,
        value: ValueId,
        gate: Option<ValueId>,
    ) -> Result<(), String> {
        let err = |e: rspirv::dr::Error| format!("internal: {e:?}");
        let index = self.scalar(index)?;
        let lanes = self.lanes(value)?;
        let merge = match gate {
            Some(g) => {
                let g = self.scalar(g)?;
                let (then, merge) = (self.b.id(), self.b.id());
                self.b
                    .selection_merge(merge, rspirv::spirv::SelectionControl::NONE)
                    .map_err(err)?;
                self.b.branch_conditional(g, then, merge, []).map_err(err)?;
                self.b.begin_block(Some(then)).map_err(err)?;
                Some(merge)
            }
            None => None,
        };
        for (lane, v) in lanes.into_iter().enumerate() {
            let at = self.lane_index(index, lane as u8);
            if let Memory::Global(p) = mem {
                self.store_global(p, at, v)?;
                continue;
            }
            let (ptr, _, dtype) = self.element_ptr(mem, at)?;
            let raw = if dtype == DType::Bool {
                let (one, zero, u32t) = (self.c_u32(1), self.c_u32(0), self.ty_int(32));
                self.select(u32t, v, one, zero)
            } else {
                v
            };
            self.store_ptr(ptr, raw);
        }
        if let Some(merge) = merge {
            self.b.branch(merge).map_err(err)?;
            self.b.begin_block(Some(merge)).map_err(err)?;
        }
        Ok(())
    }

    /// Element `at` of param `p` in register form.
    fn load_global(&mut self, p: u32, at: Word) -> Result<Word, String> {
        let dtype = self.program.params[p as usize].dtype;
        if let Some(bits) = self.packed_bits(dtype) {
            let (ptr, shift) = self.packed_word(p, at, bits);
            let u32t = self.ty_int(32);
            let word = self.load_ptr(u32t, ptr);
            let moved = self.op(Op::ShiftRightLogical, u32t, &[word, shift]);
            let mask = self.c_u32((1u32 << bits) - 1);
            let field = self.op(Op::BitwiseAnd, u32t, &[moved, mask]);
            return Ok(self.bits_to_register(dtype, field));
        }
        let (ptr, elem, _) = self.element_ptr(Memory::Global(p), at)?;
        let raw = self.load_ptr(elem, ptr);
        Ok(match dtype.size() {
            1 | 2 => {
                let u32t = self.ty_int(32);
                let bits = self.op(Op::UConvert, u32t, &[raw]);
                self.bits_to_register(dtype, bits)
            }
            _ => raw,
        })
    }

    /// Stores register value `v` to element `at` of param `p`.
    fn store_global(&mut self, p: u32, at: Word, v: Word) -> Result<(), String> {
        let dtype = self.program.params[p as usize].dtype;
        if dtype.size() > 2 {
            let (ptr, _, _) = self.element_ptr(Memory::Global(p), at)?;
            self.store_ptr(ptr, v);
            return Ok(());
        }
        let bits = self.register_to_bits(dtype, v);
        let u32t = self.ty_int(32);
        let Some(width) = self.packed_bits(dtype) else {
            let (ptr, elem, _) = self.element_ptr(Memory::Global(p), at)?;
            let raw = self.op(Op::UConvert, elem, &[bits]);
            self.store_ptr(ptr, raw);
            return Ok(());
        };
        let (ptr, shift) = self.packed_word(p, at, width);
        let ones = self.c_u32((1u32 << width) - 1);
        let mask = self.op(Op::ShiftLeftLogical, u32t, &[ones, shift]);
        let keep = self.op(Op::Not, u32t, &[mask]);
        let value = self.op(Op::ShiftLeftLogical, u32t, &[bits, shift]);
        // Relaxed device-scope atomics: other invocations may write the word's other elements.
        let scope = self.c_u32(rspirv::spirv::Scope::Device as u32);
        let relaxed = self.c_u32(rspirv::spirv::MemorySemantics::RELAXED.bits());
        self.op(Op::AtomicAnd, u32t, &[ptr, scope, relaxed, keep]);
        self.op(Op::AtomicOr, u32t, &[ptr, scope, relaxed, value]);
        Ok(())
    }

    /// Pointer to the 32-bit word holding element `at` of packed param `p` (`bits` per
    /// element), and the element's bit offset in it.
    fn packed_word(&mut self, p: u32, at: Word, bits: u32) -> (Word, Word) {
        let it = self.program.index_dtype;
        let ity = self.idx_ty();
        let u32t = self.ty_int(32);
        let per_word = 32 / bits;
        let log = self.c_int(it, per_word.trailing_zeros() as i64);
        let word = self.op(Op::ShiftRightLogical, ity, &[at, log]);
        let lane_mask = self.c_int(it, per_word as i64 - 1);
        let lane = self.op(Op::BitwiseAnd, ity, &[at, lane_mask]);
        let lane = if it == DType::I64 {
            self.op(Op::UConvert, u32t, &[lane])
        } else {
            lane
        };
        let width = self.c_u32(bits);
        let shift = self.op(Op::IMul, u32t, &[lane, width]);
        let ptr_ty = self.ty_ptr(StorageClass::StorageBuffer, u32t);
        let var = self.params[p as usize];
        let zero = self.c_u32(0);
        let ptr = self.op(Op::AccessChain, ptr_ty, &[var, zero, word]);
        (ptr, shift)
    }

    /// The register value of an 8- or 16-bit element from its bits (in a u32).
    fn bits_to_register(&mut self, dtype: DType, bits: Word) -> Word {
        let u32t = self.ty_int(32);
        match dtype {
            DType::Bool => {
                let zero = self.c_u32(0);
                let bool_ty = self.ty_bool();
                self.op(Op::INotEqual, bool_ty, &[bits, zero])
            }
            DType::I8 => self.wrap(DType::I8, bits),
            DType::F16 => self.f16_bits_to_f32(bits),
            DType::BF16 => {
                let sixteen = self.c_u32(16);
                let bits = self.op(Op::ShiftLeftLogical, u32t, &[bits, sixteen]);
                let f32t = self.ty_float(32);
                self.op(Op::Bitcast, f32t, &[bits])
            }
            _ => bits,
        }
    }

    /// The bits (in a u32) of an 8- or 16-bit register value.
    fn register_to_bits(&mut self, dtype: DType, v: Word) -> Word {
        let u32t = self.ty_int(32);
        match dtype {
            DType::Bool => {
                let (one, zero) = (self.c_u32(1), self.c_u32(0));
                self.select(u32t, v, one, zero)
            }
            DType::I8 => self.wrap(DType::U8, v),
            DType::F16 => self.f32_to_f16_bits(v),
            DType::BF16 => {
                let bits = self.op(Op::Bitcast, u32t, &[v]);
                let sixteen = self.c_u32(16);
                self.op(Op::ShiftRightLogical, u32t, &[bits, sixteen])
            }
            _ => v,
        }
    }
}
