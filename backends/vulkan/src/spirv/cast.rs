//! Value conversions (`Cast`) and bit reinterpretations (`Bitcast`) of one lane.
//!
//! Casts follow Rust `as`: float -> int truncates toward zero and saturates to the target range
//! (NaN -> 0); int -> int wraps; anything -> bool is `!= 0` (NaN -> true); bool -> number is 0
//! or 1; every conversion into a float type rounds once, to nearest even. Conversions that would
//! round twice (f64 -> f16/bf16, wide integers -> bf16) first round to f32 *to odd*, which makes
//! the second rounding exact.

use super::Gen;
use ferrograd_ir::DType;
use rspirv::spirv::{GlslStd450Op as GLOp, Op, Word};

impl Gen<'_> {
    /// Converts one lane from `from` to `to`.
    pub(crate) fn cast(&mut self, from: DType, to: DType, x: Word) -> Result<Word, String> {
        if from == to {
            return Ok(x);
        }
        let bt = self.ty_bool();
        if to == DType::Bool {
            return Ok(if from.is_float() {
                let zero = self.c_float(from, 0.0);
                self.op(Op::FUnordNotEqual, bt, &[x, zero])
            } else {
                let zero = self.c_int(from, 0);
                self.op(Op::INotEqual, bt, &[x, zero])
            });
        }
        let ty = self.reg_ty(to);
        if from == DType::Bool {
            let (one, zero) = if to.is_float() {
                (self.c_float(to, 1.0), self.c_float(to, 0.0))
            } else {
                (self.c_int(to, 1), self.c_int(to, 0))
            };
            return Ok(self.select(ty, x, one, zero));
        }
        if !from.is_float() {
            return Ok(match to {
                t if t.is_int() => self.int_resize(from, to, x),
                DType::F32 | DType::F64 => {
                    let code = if from.is_signed_int() {
                        Op::ConvertSToF
                    } else {
                        Op::ConvertUToF
                    };
                    self.op(code, ty, &[x])
                }
                // Integers below 2^24 are exact in f32; larger ones overflow f16 either way.
                DType::F16 => {
                    let f = self.cast(from, DType::F32, x)?;
                    self.round_f16(f)
                }
                _ => {
                    let f = self.int_to_f32_odd(from, x);
                    self.round_bf16(f)
                }
            });
        }
        if to.is_float() {
            return Ok(self.float_to_float(from, to, x));
        }
        Ok(self.float_to_int(from, to, x))
    }

    /// Wrapping integer conversion between registers.
    fn int_resize(&mut self, from: DType, to: DType, x: Word) -> Word {
        match (from, to) {
            (DType::I64, _) => {
                let u32t = self.ty_int(32);
                let low = self.op(Op::UConvert, u32t, &[x]);
                self.wrap(to, low)
            }
            (_, DType::I64) => {
                let u64t = self.ty_int(64);
                let code = if from.is_signed_int() {
                    Op::SConvert
                } else {
                    Op::UConvert
                };
                self.op(code, u64t, &[x])
            }
            _ => self.wrap(to, x),
        }
    }

    fn float_to_float(&mut self, from: DType, to: DType, x: Word) -> Word {
        match (from, to) {
            (_, DType::F64) => {
                let t = self.ty_float(64);
                self.op(Op::FConvert, t, &[x])
            }
            (DType::F64, DType::F32) => {
                let t = self.ty_float(32);
                self.op(Op::FConvert, t, &[x])
            }
            (DType::F64, _) => {
                let odd = self.f64_to_f32_odd(x);
                self.round_to(to, odd)
            }
            // f16 and bf16 values are exact in f32; narrowing rounds once.
            _ => self.round_to(to, x),
        }
    }

    /// f64 -> f32 rounded to odd: truncated toward zero, lowest bit set when inexact.
    fn f64_to_f32_odd(&mut self, x: Word) -> Word {
        let (f32t, f64t, u32t, bt) = (
            self.ty_float(32),
            self.ty_float(64),
            self.ty_int(32),
            self.ty_bool(),
        );
        let y = self.op(Op::FConvert, f32t, &[x]);
        let back = self.op(Op::FConvert, f64t, &[y]);
        let abs_back = self.glsl(GLOp::FAbs, f64t, &[back]);
        let abs_x = self.glsl(GLOp::FAbs, f64t, &[x]);
        let too_big = self.op(Op::FOrdGreaterThan, bt, &[abs_back, abs_x]);
        let inexact = self.op(Op::FOrdNotEqual, bt, &[back, x]);
        let bits = self.op(Op::Bitcast, u32t, &[y]);
        let (one, zero) = (self.c_u32(1), self.c_u32(0));
        let dec = self.select(u32t, too_big, one, zero);
        let bits = self.op(Op::ISub, u32t, &[bits, dec]);
        let sticky = self.select(u32t, inexact, one, zero);
        let bits = self.op(Op::BitwiseOr, u32t, &[bits, sticky]);
        self.op(Op::Bitcast, f32t, &[bits])
    }

    /// An integer register rounded to f32 *to odd* (exact for 8-bit sources).
    fn int_to_f32_odd(&mut self, from: DType, x: Word) -> Word {
        let (f32t, bt) = (self.ty_float(32), self.ty_bool());
        let wide = from == DType::I64;
        let ty = self.reg_ty(from);
        let signed = from.is_signed_int();
        let zero = self.c_int(from, 0);
        let negative = if signed {
            self.op(Op::SLessThan, bt, &[x, zero])
        } else {
            self.c_bool(false)
        };
        let neg = self.op(Op::SNegate, ty, &[x]);
        let mag = self.select(ty, negative, neg, x);
        // Index of the highest set bit (-1 for zero), as a 32-bit int.
        let u32t = self.ty_int(32);
        let msb = if wide {
            let thirty_two = self.c_u64(32);
            let hi = self.op(Op::ShiftRightLogical, ty, &[mag, thirty_two]);
            let hi = self.op(Op::UConvert, u32t, &[hi]);
            let lo = self.op(Op::UConvert, u32t, &[mag]);
            let msb_hi = self.glsl(GLOp::FindUMsb, u32t, &[hi]);
            let c32 = self.c_u32(32);
            let msb_hi = self.op(Op::IAdd, u32t, &[msb_hi, c32]);
            let msb_lo = self.glsl(GLOp::FindUMsb, u32t, &[lo]);
            let z = self.c_u32(0);
            let has_hi = self.op(Op::INotEqual, bt, &[hi, z]);
            self.select(u32t, has_hi, msb_hi, msb_lo)
        } else {
            self.glsl(GLOp::FindUMsb, u32t, &[mag])
        };
        // Bits below the 24 that f32 keeps are folded into a sticky lowest kept bit.
        let c23 = self.c_u32(23);
        let over = self.op(Op::SGreaterThan, bt, &[msb, c23]);
        let shift = self.op(Op::ISub, u32t, &[msb, c23]);
        let z = self.c_u32(0);
        let shift = self.select(u32t, over, shift, z);
        let shift = if wide {
            self.op(Op::UConvert, ty, &[shift])
        } else {
            shift
        };
        let one = self.c_int(from, 1);
        let unit = self.op(Op::ShiftLeftLogical, ty, &[one, shift]);
        let mask = self.op(Op::ISub, ty, &[unit, one]);
        let low = self.op(Op::BitwiseAnd, ty, &[mag, mask]);
        let not_mask = self.op(Op::Not, ty, &[mask]);
        let kept = self.op(Op::BitwiseAnd, ty, &[mag, not_mask]);
        let inexact = self.op(Op::INotEqual, bt, &[low, zero]);
        let sticky = self.select(ty, inexact, unit, zero);
        let kept = self.op(Op::BitwiseOr, ty, &[kept, sticky]);
        let f = self.op(Op::ConvertUToF, f32t, &[kept]);
        let nf = self.op(Op::FNegate, f32t, &[f]);
        self.select(f32t, negative, nf, f)
    }

    /// Saturating float -> int conversion, truncating toward zero, NaN -> 0.
    fn float_to_int(&mut self, from: DType, to: DType, x: Word) -> Word {
        let (lo, hi): (f64, f64) = match to {
            DType::I8 => (-128.0, 128.0),
            DType::U8 => (0.0, 256.0),
            DType::I32 => (-2147483648.0, 2147483648.0),
            DType::U32 => (0.0, 4294967296.0),
            _ => (-9223372036854775808.0, 9223372036854775808.0),
        };
        let (min, max): (i64, i64) = match to {
            DType::I8 => (i8::MIN as i64, i8::MAX as i64),
            DType::U8 => (0, u8::MAX as i64),
            DType::I32 => (i32::MIN as i64, i32::MAX as i64),
            DType::U32 => (0, u32::MAX as i64),
            _ => (i64::MIN, i64::MAX),
        };
        let (ty, ft, bt) = (self.reg_ty(to), self.reg_ty(from), self.ty_bool());
        let (lo_c, hi_c) = (self.c_float(from, lo), self.c_float(from, hi));
        let ge_lo = self.op(Op::FOrdGreaterThanEqual, bt, &[x, lo_c]);
        let lt_hi = self.op(Op::FOrdLessThan, bt, &[x, hi_c]);
        let in_range = self.op(Op::LogicalAnd, bt, &[ge_lo, lt_hi]);
        let zero = self.c_float(from, 0.0);
        let safe = self.select(ft, in_range, x, zero);
        let code = if to.is_signed_int() {
            Op::ConvertFToS
        } else {
            Op::ConvertFToU
        };
        let v = self.op(code, ty, &[safe]);
        let above = self.op(Op::FOrdGreaterThanEqual, bt, &[x, hi_c]);
        let below = self.op(Op::FOrdLessThan, bt, &[x, lo_c]);
        let (min_c, max_c) = (self.c_int(to, min), self.c_int(to, max));
        let v = self.select(ty, above, max_c, v);
        self.select(ty, below, min_c, v)
    }

    /// Reinterprets the bits of one lane (equal element sizes).
    pub(crate) fn bitcast(&mut self, from: DType, to: DType, x: Word) -> Result<Word, String> {
        let ty = self.reg_ty(to);
        Ok(match (from, to) {
            _ if from == to => x,
            (DType::I32, DType::U32) | (DType::U32, DType::I32) => x,
            (DType::I8, DType::U8) | (DType::U8, DType::I8) => self.wrap(to, x),
            (DType::F16, DType::BF16) => {
                let h = self.f32_to_f16_bits(x);
                let sixteen = self.c_u32(16);
                let u32t = self.ty_int(32);
                let bits = self.op(Op::ShiftLeftLogical, u32t, &[h, sixteen]);
                self.op(Op::Bitcast, ty, &[bits])
            }
            (DType::BF16, DType::F16) => {
                let u32t = self.ty_int(32);
                let bits = self.op(Op::Bitcast, u32t, &[x]);
                let sixteen = self.c_u32(16);
                let h = self.op(Op::ShiftRightLogical, u32t, &[bits, sixteen]);
                self.f16_bits_to_f32(h)
            }
            (DType::F32, DType::I32 | DType::U32)
            | (DType::I32 | DType::U32, DType::F32)
            | (DType::F64, DType::I64)
            | (DType::I64, DType::F64) => self.op(Op::Bitcast, ty, &[x]),
            _ => return Err(format!("bitcast from {from} to {to}")),
        })
    }
}
