//! Gated loads and stores of global buffers.
//!
//! A load with a false gate reads from a static block of zeros instead of the buffer (the
//! address is selected, so there is no branch), which produces 0 in every type without touching
//! the buffer. A store with a false gate branches around the store.

use super::value::{simd_type, Repr};
use super::Translator;
use crate::helpers::Helper;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, I16, I32, I64, I8};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use ferrograd_ir::{BinaryOp, DType, Inst, Memory, Scalar, VType, ValueId};

/// Largest load in bytes: 16 lanes of 8 bytes.
const MAX_LOAD_BYTES: usize = 16 * 8;

/// What gated-off loads read.
#[repr(C, align(64))]
struct ZeroBlock([u8; MAX_LOAD_BYTES]);

static ZEROS: ZeroBlock = ZeroBlock([0; MAX_LOAD_BYTES]);

/// Flags of buffer accesses: the program promises in-bounds indices, alignment is unknown.
fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl Translator<'_> {
    /// Flags of a load from `mem`. A param the program never writes is read-only for the whole
    /// launch (the Device contract: a read-only param aliases no written one), and outside an
    /// `If` every executed address is valid; such loads may be hoisted out of loops and merged.
    fn load_flags(&self, mem: Memory) -> MemFlagsData {
        let read_only = match mem {
            Memory::Global(p) => self
                .program
                .params
                .get(p as usize)
                .is_some_and(|p| !p.writable),
            Memory::Local(_) => false,
        };
        let inside_if = self
            .frames
            .iter()
            .any(|f| matches!(f, super::Frame::If { .. }));
        if read_only && !inside_if {
            flags().with_readonly().with_can_move()
        } else {
            flags()
        }
    }

    /// Address of element `index` of param `mem`, as a base and a constant byte offset.
    ///
    /// An index `x + y + k` (terms of outer loops first, as the lowering adds them) becomes
    /// `(base + x·size) + y·size` at offset `k·size`: the first sum is invariant in the loop
    /// of `y` and leaves it, and the rest fits one x86 address (`k·size(B, y, size)`), where
    /// `base + (x + y + k)·size` took two more adds per access.
    fn element_addr(&mut self, mem: Memory, index: ValueId) -> Result<(Value, i32, DType), String> {
        let Memory::Global(p) = mem else {
            return Err(crate::validate::WORKGROUP_ERROR.to_string());
        };
        let base = *self
            .params
            .get(p as usize)
            .ok_or("internal: no such param")?;
        let dtype = self
            .program
            .params
            .get(p as usize)
            .ok_or("internal: no such param")?
            .dtype;
        let shift = dtype.size().trailing_zeros() as i64;
        if self.index != I64 {
            let index = self.whole(index)?;
            let index = self.b.ins().sextend(I64, index);
            let offset = self.b.ins().ishl_imm_u(index, shift);
            return Ok((self.b.ins().iadd(base, offset), 0, dtype));
        }
        let (rest, constant) = match self.sum_of(index) {
            Some((x, y)) => match self.int_constant(y) {
                Some(k) => (x, k),
                None => (index, 0),
            },
            None => (index, 0),
        };
        let offset = constant
            .checked_mul(dtype.size() as i64)
            .and_then(|o| i32::try_from(o).ok());
        let (rest, offset) = match offset {
            Some(o) => (rest, o),
            None => (index, 0),
        };
        let (outer, inner) = match self.sum_of(rest) {
            Some((x, y)) => (Some(x), y),
            None => (None, rest),
        };
        let mut addr = base;
        if let Some(outer) = outer {
            let outer = self.whole(outer)?;
            let outer = self.b.ins().ishl_imm_u(outer, shift);
            addr = self.b.ins().iadd(addr, outer);
        }
        let inner = self.whole(inner)?;
        let inner = self.b.ins().ishl_imm_u(inner, shift);
        Ok((self.b.ins().iadd(addr, inner), offset, dtype))
    }

    /// The operands of `id` if it is an index addition.
    fn sum_of(&self, id: ValueId) -> Option<(ValueId, ValueId)> {
        match self.program.insts.get(id.0 as usize)? {
            Inst::Binary {
                op: BinaryOp::Add,
                a,
                b,
            } => Some((*a, *b)),
            _ => None,
        }
    }

    /// The value of `id` if it is an integer constant.
    fn int_constant(&self, id: ValueId) -> Option<i64> {
        match self.program.insts.get(id.0 as usize)? {
            Inst::Const {
                value: Scalar::Int(k),
                ..
            } => Some(*k),
            _ => None,
        }
    }

    /// `Load`: `ty.lanes` consecutive elements from `index`, zero where `gate` is false.
    pub(super) fn load(
        &mut self,
        mem: Memory,
        index: ValueId,
        gate: Option<ValueId>,
        ty: VType,
    ) -> Result<Repr, String> {
        let (mut addr, mut offset, dtype) = self.element_addr(mem, index)?;
        if let Some(gate) = gate {
            // The offset goes into the address first: a gated-off load reads the zero block
            // from its start.
            addr = self.b.ins().iadd_imm_s(addr, offset as i64);
            offset = 0;
            let gate = self.whole(gate)?;
            let zeros = self
                .b
                .ins()
                .iconst(self.ptr, &ZEROS as *const ZeroBlock as i64);
            addr = self.b.ins().select(gate, addr, zeros);
        }
        let flags = self.load_flags(mem);
        if let (Some(simd), false) = (simd_type(ty), ty.dtype == DType::Bool) {
            return Ok(Repr::Whole(self.b.ins().load(simd, flags, addr, offset)));
        }
        let mut lanes = Vec::with_capacity(ty.lanes as usize);
        for lane in 0..ty.lanes as i32 {
            let at = offset + lane * dtype.size() as i32;
            lanes.push(self.load_scalar(dtype, addr, at, flags)?);
        }
        Ok(self.pack(ty, lanes))
    }

    fn load_scalar(
        &mut self,
        dtype: DType,
        addr: Value,
        offset: i32,
        flags: MemFlagsData,
    ) -> Result<Value, String> {
        Ok(match dtype {
            DType::Bool => {
                let byte = self.b.ins().load(I8, flags, addr, offset);
                let zero = self.iconst(I8, 0);
                self.b.ins().icmp(IntCC::NotEqual, byte, zero)
            }
            DType::F16 => {
                let bits = self.b.ins().uload16(I32, flags, addr, offset);
                self.call(Helper::F16FromBits, bits)?
            }
            DType::BF16 => {
                let bits = self.b.ins().uload16(I32, flags, addr, offset);
                let bits = self.b.ins().ishl_imm_u(bits, 16);
                self.b.ins().bitcast(F32, MemFlagsData::new(), bits)
            }
            _ => self
                .b
                .ins()
                .load(super::value::scalar_type(dtype), flags, addr, offset),
        })
    }

    /// `Store`: the lanes of `value` to consecutive elements from `index`, if `gate` holds.
    pub(super) fn store(
        &mut self,
        mem: Memory,
        index: ValueId,
        value: ValueId,
        gate: Option<ValueId>,
    ) -> Result<(), String> {
        let merge = match gate {
            Some(gate) => {
                let gate = self.whole(gate)?;
                Some(self.open_if(gate))
            }
            None => None,
        };
        let (addr, offset, dtype) = self.element_addr(mem, index)?;
        let vt = self.ty(value)?;
        match self.val(value)? {
            Repr::Whole(v) if vt.lanes == 1 || dtype != DType::Bool => {
                self.store_whole(dtype, v, addr, offset, vt)?
            }
            repr => {
                let lanes = self.lanes_of(vt, &repr);
                for (lane, v) in lanes.into_iter().enumerate() {
                    let at = offset + lane as i32 * dtype.size() as i32;
                    self.store_scalar(dtype, v, addr, at)?;
                }
            }
        }
        if let Some(merge) = merge {
            self.close_if(merge);
        }
        Ok(())
    }

    fn store_whole(
        &mut self,
        dtype: DType,
        v: Value,
        addr: Value,
        offset: i32,
        vt: VType,
    ) -> Result<(), String> {
        if vt.lanes > 1 {
            self.b.ins().store(flags(), v, addr, offset);
            Ok(())
        } else {
            self.store_scalar(dtype, v, addr, offset)
        }
    }

    fn store_scalar(
        &mut self,
        dtype: DType,
        v: Value,
        addr: Value,
        offset: i32,
    ) -> Result<(), String> {
        match dtype {
            DType::F16 => {
                let bits = self.call(Helper::F16ToBits, v)?;
                self.b.ins().istore16(flags(), bits, addr, offset);
            }
            DType::BF16 => {
                // The value is exactly representable in bf16: its low 16 bits are zero.
                let bits = self.b.ins().bitcast(I32, MemFlagsData::new(), v);
                let bits = self.b.ins().ushr_imm_u(bits, 16);
                let bits = self.b.ins().ireduce(I16, bits);
                self.b.ins().store(flags(), bits, addr, offset);
            }
            _ => {
                self.b.ins().store(flags(), v, addr, offset);
            }
        }
        Ok(())
    }
}
