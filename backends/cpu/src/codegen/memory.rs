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
use ferrograd_ir::{DType, Memory, VType, ValueId};

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

    /// Address of element `index` of param `mem`.
    fn element_addr(&mut self, mem: Memory, index: ValueId) -> Result<(Value, DType), String> {
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
        let index = self.whole(index)?;
        let index = if self.index == I64 {
            index
        } else {
            self.b.ins().sextend(I64, index)
        };
        let offset = self
            .b
            .ins()
            .ishl_imm_u(index, dtype.size().trailing_zeros() as i64);
        Ok((self.b.ins().iadd(base, offset), dtype))
    }

    /// `Load`: `ty.lanes` consecutive elements from `index`, zero where `gate` is false.
    pub(super) fn load(
        &mut self,
        mem: Memory,
        index: ValueId,
        gate: Option<ValueId>,
        ty: VType,
    ) -> Result<Repr, String> {
        let (mut addr, dtype) = self.element_addr(mem, index)?;
        if let Some(gate) = gate {
            let gate = self.whole(gate)?;
            let zeros = self
                .b
                .ins()
                .iconst(self.ptr, &ZEROS as *const ZeroBlock as i64);
            addr = self.b.ins().select(gate, addr, zeros);
        }
        let flags = self.load_flags(mem);
        if let (Some(simd), false) = (simd_type(ty), ty.dtype == DType::Bool) {
            return Ok(Repr::Whole(self.b.ins().load(simd, flags, addr, 0)));
        }
        let mut lanes = Vec::with_capacity(ty.lanes as usize);
        for lane in 0..ty.lanes as i32 {
            lanes.push(self.load_scalar(dtype, addr, lane * dtype.size() as i32, flags)?);
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
        let (addr, dtype) = self.element_addr(mem, index)?;
        let vt = self.ty(value)?;
        match self.val(value)? {
            Repr::Whole(v) if vt.lanes == 1 || dtype != DType::Bool => {
                self.store_whole(dtype, v, addr, vt)?
            }
            repr => {
                let lanes = self.lanes_of(vt, &repr);
                for (lane, v) in lanes.into_iter().enumerate() {
                    self.store_scalar(dtype, v, addr, lane as i32 * dtype.size() as i32)?;
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
        vt: VType,
    ) -> Result<(), String> {
        if vt.lanes > 1 {
            self.b.ins().store(flags(), v, addr, 0);
            Ok(())
        } else {
            self.store_scalar(dtype, v, addr, 0)
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
