//! Value conversions (`Cast`) and bit reinterpretations (`Bitcast`).
//!
//! Casts follow Rust `as`: float -> int truncates toward zero and saturates to the target range
//! (NaN -> 0); int -> int wraps; anything -> bool is `!= 0`; bool -> number is 0 or 1; every
//! conversion into a float type rounds once, to nearest even.

use super::alu::vector_bitcast_flags;
use super::value::Repr;
use super::Translator;
use crate::helpers::Helper;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, I32, I32X4, I8};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use ferrograd_ir::{DType, VType, ValueId};

impl Translator<'_> {
    /// Converts `arg` to `to` (same lane count).
    pub(super) fn cast(&mut self, arg: ValueId, to: VType) -> Result<Repr, String> {
        let from = self.ty(arg)?;
        let repr = self.val(arg)?;
        if from.dtype == to.dtype {
            return Ok(repr);
        }
        if let (Repr::Whole(x), true) = (&repr, from.lanes > 1) {
            if let Some(v) = self.simd_cast(from.dtype, to, *x) {
                return Ok(Repr::Whole(v));
            }
        }
        self.per_lane(to, &[(from, repr)], &mut |t, l| {
            t.scalar_cast(from.dtype, to.dtype, l[0])
        })
    }

    /// SIMD conversions between the 4 x 32-bit vector types, where `x` is one.
    fn simd_cast(&mut self, from: DType, to: VType, x: Value) -> Option<Value> {
        crate::codegen::value::simd_type(to)?;
        let ins = self.b.ins();
        Some(match (from, to.dtype) {
            (DType::F32, DType::I32) => ins.fcvt_to_sint_sat(I32X4, x),
            (DType::F32, DType::U32) => ins.fcvt_to_uint_sat(I32X4, x),
            (DType::I32, DType::F32) => ins.fcvt_from_sint(F32X4, x),
            (DType::U32, DType::F32) => ins.fcvt_from_uint(F32X4, x),
            (DType::I32, DType::U32) | (DType::U32, DType::I32) => x,
            (DType::F32, DType::Bool) => {
                let zero = ins.f32const(0.0);
                let zeros = self.b.ins().splat(F32X4, zero);
                self.b.ins().fcmp(FloatCC::NotEqual, x, zeros)
            }
            (DType::I32 | DType::U32, DType::Bool) => {
                let zero = ins.iconst(I32, 0);
                let zeros = self.b.ins().splat(I32X4, zero);
                self.b.ins().icmp(IntCC::NotEqual, x, zeros)
            }
            // The mask is 0 or -1 per lane: negating gives 0 or 1.
            (DType::Bool, DType::I32 | DType::U32) => ins.ineg(x),
            // Keep the bits of 1.0 where the mask is set.
            (DType::Bool, DType::F32) => {
                let one = ins.iconst(I32, 1.0f32.to_bits() as i64);
                let ones = self.b.ins().splat(I32X4, one);
                let bits = self.b.ins().band(x, ones);
                self.b.ins().bitcast(F32X4, vector_bitcast_flags(), bits)
            }
            _ => return None,
        })
    }

    /// Converts one lane from `from` to `to`.
    pub(super) fn scalar_cast(
        &mut self,
        from: DType,
        to: DType,
        x: Value,
    ) -> Result<Value, String> {
        if from == to {
            return Ok(x);
        }
        if to == DType::Bool {
            return Ok(match from {
                DType::F64 => {
                    let zero = self.b.ins().f64const(0.0);
                    self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
                }
                f if f.is_float() => {
                    let zero = self.b.ins().f32const(0.0);
                    self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
                }
                _ => {
                    let ty = self.b.func.dfg.value_type(x);
                    let zero = self.iconst(ty, 0);
                    self.b.ins().icmp(IntCC::NotEqual, x, zero)
                }
            });
        }
        if !from.is_float() {
            // Integers and bool (0/1, so unsigned).
            let signed = from.is_signed_int();
            return match to {
                t if t.is_int() => Ok(self.int_resize(x, signed, t)),
                DType::F32 | DType::F64 => {
                    Ok(self.int_to_float(x, signed, super::value::scalar_type(to)))
                }
                // One rounding from the integer: i64 -> bf16 rounds exactly in a helper; every
                // other integer is exact in f64, and an i64 too wide for f64 overflows f16.
                DType::BF16 if from == DType::I64 => self.call(Helper::I64ToBf16, x),
                _ => {
                    let wide = self.int_to_float(x, signed, F64);
                    self.call(
                        if to == DType::F16 {
                            Helper::F64ToF16
                        } else {
                            Helper::F64ToBf16
                        },
                        wide,
                    )
                }
            };
        }
        if to.is_float() {
            return self.float_to_float(from, to, x);
        }
        Ok(self.float_to_int(x, to))
    }

    /// Wrapping integer conversion to `to`.
    fn int_resize(&mut self, x: Value, signed: bool, to: DType) -> Value {
        let from_ty = self.b.func.dfg.value_type(x);
        let to_ty = super::value::scalar_type(to);
        match from_ty.bits().cmp(&to_ty.bits()) {
            std::cmp::Ordering::Equal => x,
            std::cmp::Ordering::Greater => self.b.ins().ireduce(to_ty, x),
            std::cmp::Ordering::Less if signed => self.b.ins().sextend(to_ty, x),
            std::cmp::Ordering::Less => self.b.ins().uextend(to_ty, x),
        }
    }

    fn int_to_float(&mut self, x: Value, signed: bool, ty: cranelift_codegen::ir::Type) -> Value {
        if signed {
            self.b.ins().fcvt_from_sint(ty, x)
        } else {
            self.b.ins().fcvt_from_uint(ty, x)
        }
    }

    fn float_to_float(&mut self, from: DType, to: DType, x: Value) -> Result<Value, String> {
        Ok(match (from, to) {
            (_, DType::F64) => self.b.ins().fpromote(F64, x),
            (DType::F64, DType::F32) => self.b.ins().fdemote(F32, x),
            (DType::F64, DType::F16) => self.call(Helper::F64ToF16, x)?,
            (DType::F64, _) => self.call(Helper::F64ToBf16, x)?,
            // f16 and bf16 values are exact in f32.
            (_, DType::F32) => x,
            (_, DType::F16) => self.call(Helper::RoundF16, x)?,
            _ => self.round_bf16(x),
        })
    }

    /// Saturating float -> int conversion, truncating toward zero, NaN -> 0.
    fn float_to_int(&mut self, x: Value, to: DType) -> Value {
        let (lo, hi) = match to {
            DType::I32 => return self.b.ins().fcvt_to_sint_sat(I32, x),
            DType::U32 => return self.b.ins().fcvt_to_uint_sat(I32, x),
            DType::I64 => {
                return self
                    .b
                    .ins()
                    .fcvt_to_sint_sat(cranelift_codegen::ir::types::I64, x)
            }
            DType::I8 => (i8::MIN as i64, i8::MAX as i64),
            _ => (0, u8::MAX as i64),
        };
        // Through i32 (which saturates far outside the 8-bit range), then clamp.
        let wide = self.b.ins().fcvt_to_sint_sat(I32, x);
        let lo = self.iconst(I32, lo);
        let hi = self.iconst(I32, hi);
        let clamped = self.b.ins().smax(wide, lo);
        let clamped = self.b.ins().smin(clamped, hi);
        self.b.ins().ireduce(I8, clamped)
    }

    /// Reinterprets the bits of `arg` as `to` (same element size and lane count).
    pub(super) fn bitcast(&mut self, arg: ValueId, to: VType) -> Result<Repr, String> {
        let from = self.ty(arg)?;
        let repr = self.val(arg)?;
        if from.dtype == to.dtype {
            return Ok(repr);
        }
        if let (Repr::Whole(x), true) = (&repr, from.lanes > 1) {
            match (from.dtype, to.dtype) {
                (DType::I32, DType::U32) | (DType::U32, DType::I32) => return Ok(repr),
                (DType::F32, DType::I32 | DType::U32) => {
                    return Ok(Repr::Whole(self.b.ins().bitcast(
                        I32X4,
                        vector_bitcast_flags(),
                        *x,
                    )))
                }
                (DType::I32 | DType::U32, DType::F32) => {
                    return Ok(Repr::Whole(self.b.ins().bitcast(
                        F32X4,
                        vector_bitcast_flags(),
                        *x,
                    )))
                }
                _ => {}
            }
        }
        self.per_lane(to, &[(from, repr)], &mut |t, l| {
            t.scalar_bitcast(from.dtype, to.dtype, l[0])
        })
    }

    fn scalar_bitcast(&mut self, from: DType, to: DType, x: Value) -> Result<Value, String> {
        let flags = MemFlagsData::new();
        Ok(match (from, to) {
            // A byte reinterpreted as bool is true when non-zero (bools hold 0 or 1).
            (_, DType::Bool) => {
                let zero = self.iconst(I8, 0);
                self.b.ins().icmp(IntCC::NotEqual, x, zero)
            }
            (DType::F16, DType::BF16) => {
                let bits = self.call(Helper::F16ToBits, x)?;
                let bits = self.b.ins().ishl_imm_u(bits, 16);
                self.b.ins().bitcast(F32, flags, bits)
            }
            (DType::BF16, DType::F16) => {
                let bits = self.b.ins().bitcast(I32, flags, x);
                let bits = self.b.ins().ushr_imm_u(bits, 16);
                self.call(Helper::F16FromBits, bits)?
            }
            _ => {
                let (from_ty, to_ty) = (
                    super::value::scalar_type(from),
                    super::value::scalar_type(to),
                );
                if from_ty == to_ty {
                    x
                } else {
                    self.b.ins().bitcast(to_ty, flags, x)
                }
            }
        })
    }
}
