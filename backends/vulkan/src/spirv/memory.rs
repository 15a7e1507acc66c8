//! Storage buffers (params), workgroup memory (`DefineLocal`), and gated loads and stores.
//!
//! A gated-off load reads element 0 instead (every bound buffer holds at least one element's
//! bytes) and selects zero; a gated-off store is skipped by a selection construct.

use super::Gen;
use ferrograd_ir::{DType, Inst, Memory, VType, ValueId};
use rspirv::dr::Operand;
use rspirv::spirv::{Decoration, Op, StorageClass, Word};
use std::collections::HashSet;

impl Gen<'_> {
    /// The SPIR-V type of one stored element of `dtype` in a storage buffer.
    fn storage_ty(&mut self, dtype: DType) -> Word {
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
                let stride = param.dtype.size() as u32;
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
    fn local_elem_ty(&mut self, dtype: DType) -> Word {
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
            let (ptr, elem, dtype) = self.element_ptr(mem, at)?;
            let raw = self.load_ptr(elem, ptr);
            let mut v = match mem {
                Memory::Global(_) => self.storage_to_register(dtype, raw),
                Memory::Local(_) if dtype == DType::Bool => {
                    let zero = self.c_u32(0);
                    let bool_ty = self.ty_bool();
                    self.op(Op::INotEqual, bool_ty, &[raw, zero])
                }
                Memory::Local(_) => raw,
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
            let (ptr, _, dtype) = self.element_ptr(mem, at)?;
            let raw = match mem {
                Memory::Global(_) => self.register_to_storage(dtype, v),
                Memory::Local(_) if dtype == DType::Bool => {
                    let (one, zero, u32t) = (self.c_u32(1), self.c_u32(0), self.ty_int(32));
                    self.select(u32t, v, one, zero)
                }
                Memory::Local(_) => v,
            };
            self.store_ptr(ptr, raw);
        }
        if let Some(merge) = merge {
            self.b.branch(merge).map_err(err)?;
            self.b.begin_block(Some(merge)).map_err(err)?;
        }
        Ok(())
    }

    /// A stored element of `dtype` in register form.
    fn storage_to_register(&mut self, dtype: DType, raw: Word) -> Word {
        let u32t = self.ty_int(32);
        match dtype {
            DType::Bool => {
                let wide = self.op(Op::UConvert, u32t, &[raw]);
                let zero = self.c_u32(0);
                let bool_ty = self.ty_bool();
                self.op(Op::INotEqual, bool_ty, &[wide, zero])
            }
            DType::I8 => self.op(Op::SConvert, u32t, &[raw]),
            DType::U8 => self.op(Op::UConvert, u32t, &[raw]),
            DType::F16 => {
                let bits = self.op(Op::UConvert, u32t, &[raw]);
                self.f16_bits_to_f32(bits)
            }
            DType::BF16 => {
                let bits = self.op(Op::UConvert, u32t, &[raw]);
                let sixteen = self.c_u32(16);
                let bits = self.op(Op::ShiftLeftLogical, u32t, &[bits, sixteen]);
                let f32t = self.ty_float(32);
                self.op(Op::Bitcast, f32t, &[bits])
            }
            _ => raw,
        }
    }

    /// A register value of `dtype` in its stored form.
    fn register_to_storage(&mut self, dtype: DType, v: Word) -> Word {
        let u32t = self.ty_int(32);
        match dtype {
            DType::Bool => {
                let (one, zero) = (self.c_u32(1), self.c_u32(0));
                let wide = self.select(u32t, v, one, zero);
                let u8t = self.ty_int(8);
                self.op(Op::UConvert, u8t, &[wide])
            }
            DType::I8 | DType::U8 => {
                let u8t = self.ty_int(8);
                self.op(Op::UConvert, u8t, &[v])
            }
            DType::F16 => {
                let bits = self.f32_to_f16_bits(v);
                let u16t = self.ty_int(16);
                self.op(Op::UConvert, u16t, &[bits])
            }
            DType::BF16 => {
                let bits = self.op(Op::Bitcast, u32t, &[v]);
                let sixteen = self.c_u32(16);
                let bits = self.op(Op::ShiftRightLogical, u32t, &[bits, sixteen]);
                let u16t = self.ty_int(16);
                self.op(Op::UConvert, u16t, &[bits])
            }
            _ => v,
        }
    }
}
