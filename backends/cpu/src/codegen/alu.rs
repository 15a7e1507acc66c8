//! Arithmetic: unary and binary ops, `Where`, `MulAcc` and lane reductions.
//!
//! Each op has a scalar form (also used lane by lane for vectors without a SIMD form) and, where
//! Cranelift lowers it well, a SIMD form for the 4 x 32-bit vectors.

use super::value::Repr;
use super::Translator;
use crate::helpers::Helper;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, I32, I64};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use ferrograd_ir::{BinaryOp, DType, Inst, ReduceOp, Scalar, UnaryOp, VType, ValueId};

/// Flags for bitcasts between vector types (lane order is little-endian).
pub(super) fn vector_bitcast_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Translator<'_> {
    /// `op(arg)`.
    pub(super) fn unary(&mut self, op: UnaryOp, arg: ValueId) -> Result<Repr, String> {
        let vt = self.ty(arg)?;
        let repr = self.val(arg)?;
        if let (Repr::Whole(x), true) = (&repr, vt.lanes > 1) {
            if let Some(v) = self.simd_unary(op, vt, *x) {
                return Ok(Repr::Whole(v));
            }
        }
        self.per_lane(vt, &[(vt, repr)], &mut |t, l| {
            t.scalar_unary(op, vt.dtype, l[0])
        })
    }

    fn scalar_unary(&mut self, op: UnaryOp, dtype: DType, x: Value) -> Result<Value, String> {
        if !dtype.is_float() {
            return match op {
                UnaryOp::Neg if dtype != DType::Bool => Ok(self.b.ins().ineg(x)),
                // -b is b for a truth value (non-zero stays non-zero); truncation of an integer
                // is the integer.
                UnaryOp::Neg | UnaryOp::Trunc => Ok(x),
                _ => Err(format!("{op:?} on {dtype}")),
            };
        }
        let r = match op {
            UnaryOp::Neg => return Ok(self.b.ins().fneg(x)),
            UnaryOp::Trunc => return Ok(self.b.ins().trunc(x)),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Recip => {
                let one = self.scalar_const(dtype, Scalar::Float(1.0));
                self.b.ins().fdiv(one, x)
            }
            UnaryOp::Exp2 | UnaryOp::Log2 | UnaryOp::Sin => self.transcendental(op, dtype, x)?,
        };
        self.round_to(dtype, r)
    }

    /// `exp2`, `log2` or `sin` of a scalar float.
    fn transcendental(&mut self, op: UnaryOp, dtype: DType, x: Value) -> Result<Value, String> {
        let (libm_f64, libm_f32) = match op {
            UnaryOp::Exp2 => (Helper::Exp2F64, Helper::Exp2F32),
            UnaryOp::Log2 => (Helper::Log2F64, Helper::Log2F32),
            _ => (Helper::SinF64, Helper::SinF32),
        };
        if dtype == DType::F64 {
            self.call(libm_f64, x)
        } else if self.config.libm_f32 {
            self.call(libm_f32, x)
        } else {
            Ok(self.f32_transcendental(op, F32, x))
        }
    }

    /// Inline f32 `exp2`/`log2`/`sin` on an `F32` or `F32X4` value.
    fn f32_transcendental(&mut self, op: UnaryOp, ty: Type, x: Value) -> Value {
        match op {
            UnaryOp::Exp2 => self.exp2_f32(ty, x),
            UnaryOp::Log2 => self.log2_f32(ty, x),
            _ => self.sin_f32(ty, x),
        }
    }

    fn simd_unary(&mut self, op: UnaryOp, vt: VType, x: Value) -> Option<Value> {
        match vt.dtype {
            DType::F32 => Some(match op {
                UnaryOp::Neg => self.b.ins().fneg(x),
                UnaryOp::Trunc => self.b.ins().trunc(x),
                UnaryOp::Sqrt => self.b.ins().sqrt(x),
                UnaryOp::Recip => {
                    let one = self.b.ins().f32const(1.0);
                    let ones = self.b.ins().splat(F32X4, one);
                    self.b.ins().fdiv(ones, x)
                }
                UnaryOp::Exp2 | UnaryOp::Log2 | UnaryOp::Sin if self.config.libm_f32 => {
                    return None
                }
                UnaryOp::Exp2 | UnaryOp::Log2 | UnaryOp::Sin => {
                    self.f32_transcendental(op, F32X4, x)
                }
            }),
            DType::I32 | DType::U32 => match op {
                UnaryOp::Neg => Some(self.b.ins().ineg(x)),
                UnaryOp::Trunc => Some(x),
                _ => None,
            },
            DType::Bool => matches!(op, UnaryOp::Neg | UnaryOp::Trunc).then_some(x),
            _ => None,
        }
    }

    /// Rounds an f32-held result to f16/bf16 precision when `dtype` is one of those.
    pub(super) fn round_to(&mut self, dtype: DType, x: Value) -> Result<Value, String> {
        match dtype {
            DType::F16 => self.call(Helper::RoundF16, x),
            DType::BF16 => Ok(self.round_bf16(x)),
            _ => Ok(x),
        }
    }

    /// Rounds a scalar f32 to bf16 precision (nearest, ties to even; NaN stays a quiet NaN),
    /// exactly like `half::bf16::from_f32`.
    pub(super) fn round_bf16(&mut self, x: Value) -> Value {
        let flags = MemFlagsData::new();
        let bits = self.b.ins().bitcast(I32, flags, x);
        let shifted = self.b.ins().ushr_imm_u(bits, 16);
        let lsb = self.b.ins().band_imm_u(shifted, 1);
        let bias = self.b.ins().iadd_imm_u(lsb, 0x7fff);
        let rounded = self.b.ins().iadd(bits, bias);
        let high = self.iconst(I32, 0xffff_0000);
        let rounded = self.b.ins().band(rounded, high);
        let quiet = self.b.ins().bor_imm_u(bits, 0x0040_0000);
        let quiet = self.b.ins().band(quiet, high);
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let r = self.b.ins().select(is_nan, quiet, rounded);
        self.b.ins().bitcast(F32, flags, r)
    }

    /// `op(a, b)`.
    pub(super) fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<Repr, String> {
        let vt = self.ty(a)?;
        let out = if op.is_comparison() {
            vt.with_dtype(DType::Bool)
        } else {
            vt
        };
        let (ra, rb) = (self.val(a)?, self.val(b)?);
        if let (Repr::Whole(x), Repr::Whole(y), true) = (&ra, &rb, vt.lanes > 1) {
            let shift = match self.program.insts.get(b.0 as usize) {
                Some(Inst::Const { value, .. }) => Some(value.as_i64()),
                _ => None,
            };
            if let Some(v) = self.simd_binary(op, vt, *x, *y, shift) {
                return Ok(Repr::Whole(v));
            }
        }
        self.per_lane(out, &[(vt, ra), (vt, rb)], &mut |t, l| {
            t.scalar_binary(op, vt.dtype, l[0], l[1])
        })
    }

    pub(super) fn scalar_binary(
        &mut self,
        op: BinaryOp,
        dtype: DType,
        a: Value,
        b: Value,
    ) -> Result<Value, String> {
        if dtype == DType::Bool {
            return Ok(self.bool_binary(op, a, b));
        }
        if dtype.is_float() {
            let r = match op {
                BinaryOp::Add => self.b.ins().fadd(a, b),
                BinaryOp::Mul => self.b.ins().fmul(a, b),
                BinaryOp::Max => return Ok(self.b.ins().fmax(a, b)),
                BinaryOp::CmpLt => return Ok(self.b.ins().fcmp(FloatCC::LessThan, a, b)),
                BinaryOp::CmpNe => return Ok(self.b.ins().fcmp(FloatCC::NotEqual, a, b)),
                _ => return Err(format!("{op:?} on {dtype}")),
            };
            return self.round_to(dtype, r);
        }
        let signed = dtype.is_signed_int();
        let ins = self.b.ins();
        Ok(match op {
            BinaryOp::Add => ins.iadd(a, b),
            BinaryOp::Mul => ins.imul(a, b),
            BinaryOp::Max if signed => ins.smax(a, b),
            BinaryOp::Max => ins.umax(a, b),
            BinaryOp::CmpLt => ins.icmp(
                if signed {
                    IntCC::SignedLessThan
                } else {
                    IntCC::UnsignedLessThan
                },
                a,
                b,
            ),
            BinaryOp::CmpNe => ins.icmp(IntCC::NotEqual, a, b),
            BinaryOp::And => ins.band(a, b),
            BinaryOp::Or => ins.bor(a, b),
            BinaryOp::Xor => ins.bxor(a, b),
            BinaryOp::IDiv | BinaryOp::Mod => return Ok(self.int_div(op, signed, a, b)),
            BinaryOp::Shl | BinaryOp::Shr => {
                let ty = self.b.func.dfg.value_type(a);
                let amount = self.b.ins().band_imm_u(b, ty.bits() as i64 - 1);
                match (op, signed) {
                    (BinaryOp::Shl, _) => self.b.ins().ishl(a, amount),
                    (_, true) => self.b.ins().sshr(a, amount),
                    (_, false) => self.b.ins().ushr(a, amount),
                }
            }
        })
    }

    /// Ops on truth values, the same for `i8` 0/1 scalars and `i32x4` lane masks: the integer
    /// op on 0/1 operands, whose result is true when non-zero.
    fn bool_binary(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        let ins = self.b.ins();
        match op {
            BinaryOp::Add | BinaryOp::Max | BinaryOp::Or => ins.bor(a, b),
            // a / b is 0 where b is 0 and a where b is 1.
            BinaryOp::Mul | BinaryOp::And | BinaryOp::IDiv => ins.band(a, b),
            BinaryOp::Xor | BinaryOp::CmpNe => ins.bxor(a, b),
            // a % 1 and a % 0 are both 0.
            BinaryOp::Mod => ins.bxor(a, a),
            // 1 << 1 == 2 is still true.
            BinaryOp::Shl => a,
            // a < b only for false < true; 1 >> 1 == 0.
            BinaryOp::CmpLt | BinaryOp::Shr => {
                let (x, y) = if op == BinaryOp::CmpLt {
                    (b, a)
                } else {
                    (a, b)
                };
                let not_y = ins.bnot(y);
                self.b.ins().band(x, not_y)
            }
        }
    }

    /// Integer division or remainder that never traps: x / 0 == 0, x % 0 == 0, and
    /// MIN / -1 == MIN (wrapping), MIN % -1 == 0.
    fn int_div(&mut self, op: BinaryOp, signed: bool, a: Value, b: Value) -> Value {
        let ty = self.b.func.dfg.value_type(a);
        let zero = self.iconst(ty, 0);
        let one = self.iconst(ty, 1);
        let is_zero = self.b.ins().icmp(IntCC::Equal, b, zero);
        if !signed {
            let divisor = self.b.ins().select(is_zero, one, b);
            return if op == BinaryOp::Mod {
                self.b.ins().urem(a, divisor)
            } else {
                let q = self.b.ins().udiv(a, divisor);
                self.b.ins().select(is_zero, zero, q)
            };
        }
        let minus_one = self.iconst(ty, -1);
        let is_minus_one = self.b.ins().icmp(IntCC::Equal, b, minus_one);
        let special = self.b.ins().bor(is_zero, is_minus_one);
        let divisor = self.b.ins().select(special, one, b);
        if op == BinaryOp::Mod {
            // a % 1 == 0 covers both special divisors.
            return self.b.ins().srem(a, divisor);
        }
        let q = self.b.ins().sdiv(a, divisor);
        let negated = self.b.ins().ineg(a);
        let q = self.b.ins().select(is_minus_one, negated, q);
        self.b.ins().select(is_zero, zero, q)
    }

    /// SIMD form of a binary op on a 4 x 32-bit vector, if there is a good one. `shift` is the
    /// constant right operand, if any (SIMD shifts take one amount for every lane).
    fn simd_binary(
        &mut self,
        op: BinaryOp,
        vt: VType,
        a: Value,
        b: Value,
        shift: Option<i64>,
    ) -> Option<Value> {
        match vt.dtype {
            DType::Bool => Some(self.bool_binary(op, a, b)),
            DType::F32 => {
                let ins = self.b.ins();
                match op {
                    BinaryOp::Add => Some(ins.fadd(a, b)),
                    BinaryOp::Mul => Some(ins.fmul(a, b)),
                    BinaryOp::Max => Some(ins.fmax(a, b)),
                    BinaryOp::CmpLt => Some(ins.fcmp(FloatCC::LessThan, a, b)),
                    BinaryOp::CmpNe => Some(ins.fcmp(FloatCC::NotEqual, a, b)),
                    _ => None,
                }
            }
            DType::I32 | DType::U32 => {
                let signed = vt.dtype == DType::I32;
                match (op, shift) {
                    (BinaryOp::Shl | BinaryOp::Shr, Some(amount)) => {
                        let amount = self.iconst(I32, amount & 31);
                        Some(match (op, signed) {
                            (BinaryOp::Shl, _) => self.b.ins().ishl(a, amount),
                            (_, true) => self.b.ins().sshr(a, amount),
                            (_, false) => self.b.ins().ushr(a, amount),
                        })
                    }
                    _ => {
                        let ins = self.b.ins();
                        match op {
                            BinaryOp::Add => Some(ins.iadd(a, b)),
                            BinaryOp::Mul => Some(ins.imul(a, b)),
                            BinaryOp::Max if signed => Some(ins.smax(a, b)),
                            BinaryOp::Max => Some(ins.umax(a, b)),
                            BinaryOp::CmpLt if signed => {
                                Some(ins.icmp(IntCC::SignedLessThan, a, b))
                            }
                            BinaryOp::CmpLt => Some(ins.icmp(IntCC::UnsignedLessThan, a, b)),
                            BinaryOp::CmpNe => Some(ins.icmp(IntCC::NotEqual, a, b)),
                            BinaryOp::And => Some(ins.band(a, b)),
                            BinaryOp::Or => Some(ins.bor(a, b)),
                            BinaryOp::Xor => Some(ins.bxor(a, b)),
                            _ => None,
                        }
                    }
                }
            }
            _ => None,
        }
    }

    /// `cond ? a : b` per lane.
    pub(super) fn select(&mut self, cond: ValueId, a: ValueId, b: ValueId) -> Result<Repr, String> {
        let vt = self.ty(a)?;
        let (rc, ra, rb) = (self.val(cond)?, self.val(a)?, self.val(b)?);
        if let (Repr::Whole(c), Repr::Whole(x), Repr::Whole(y), true) =
            (&rc, &ra, &rb, vt.lanes > 1)
        {
            // SIMD: `c` is an i32x4 lane mask.
            let mask = if vt.dtype == DType::F32 {
                self.b.ins().bitcast(F32X4, vector_bitcast_flags(), *c)
            } else {
                *c
            };
            return Ok(Repr::Whole(self.b.ins().bitselect(mask, *x, *y)));
        }
        let cvt = vt.with_dtype(DType::Bool);
        self.per_lane(vt, &[(cvt, rc), (vt, ra), (vt, rb)], &mut |t, l| {
            Ok(t.select_scalar(l[0], l[1], l[2]))
        })
    }

    /// `cond ? a : b` on scalars, without a branch. A float select lowers to a jump over a
    /// move on x86, which mispredicts about half the time on a data-dependent condition (a
    /// ReLU's gradient mask: a max-pool's backward kernel ran 3.2x slower); through the integer
    /// registers it is a conditional move.
    pub(super) fn select_scalar(&mut self, cond: Value, a: Value, b: Value) -> Value {
        let ty = self.b.func.dfg.value_type(a);
        let bits = match ty {
            F32 => I32,
            F64 => I64,
            _ => return self.b.ins().select(cond, a, b),
        };
        let flags = MemFlagsData::new();
        let x = self.b.ins().bitcast(bits, flags, a);
        let y = self.b.ins().bitcast(bits, flags, b);
        let picked = self.b.ins().select(cond, x, y);
        self.b.ins().bitcast(ty, flags, picked)
    }

    /// `a * b + c` per lane. f32/f64 use a fused multiply-add where the target has one; f16 and
    /// bf16 compute in f64 (where the product is exact) and round once, like a fused op.
    pub(super) fn mul_acc(&mut self, a: ValueId, b: ValueId, c: ValueId) -> Result<Repr, String> {
        let vt = self.ty(a)?;
        let (ra, rb, rc) = (self.val(a)?, self.val(b)?, self.val(c)?);
        if let (Repr::Whole(x), Repr::Whole(y), Repr::Whole(z), true) =
            (&ra, &rb, &rc, vt.lanes > 1)
        {
            let v = match vt.dtype {
                DType::F32 => self.fmul_add(*x, *y, *z),
                DType::Bool => {
                    let p = self.b.ins().band(*x, *y);
                    self.b.ins().bor(p, *z)
                }
                _ => {
                    let p = self.b.ins().imul(*x, *y);
                    self.b.ins().iadd(p, *z)
                }
            };
            return Ok(Repr::Whole(v));
        }
        let dtype = vt.dtype;
        self.per_lane(
            vt,
            &[(vt, ra), (vt, rb), (vt, rc)],
            &mut |t, l| match dtype {
                DType::F32 | DType::F64 => Ok(t.fmul_add(l[0], l[1], l[2])),
                DType::F16 | DType::BF16 => {
                    let [x, y, z] = [l[0], l[1], l[2]].map(|v| t.b.ins().fpromote(F64, v));
                    let p = t.b.ins().fmul(x, y);
                    let s = t.b.ins().fadd(p, z);
                    let narrow = if dtype == DType::F16 {
                        Helper::F64ToF16
                    } else {
                        Helper::F64ToBf16
                    };
                    t.call(narrow, s)
                }
                _ => {
                    let p = t.scalar_binary(BinaryOp::Mul, dtype, l[0], l[1])?;
                    t.scalar_binary(BinaryOp::Add, dtype, p, l[2])
                }
            },
        )
    }

    /// `a * b + c` on floats, fused when the target has FMA.
    pub(super) fn fmul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.config.has_fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// Combines the lanes of a vector, first lane to last.
    pub(super) fn reduce(&mut self, op: ReduceOp, arg: ValueId) -> Result<Repr, String> {
        let vt = self.ty(arg)?;
        let repr = self.val(arg)?;
        let lanes = self.lanes_of(vt, &repr);
        let (first, rest) = lanes
            .split_first()
            .ok_or("internal: vector without lanes")?;
        let mut acc = *first;
        for lane in rest {
            acc = self.scalar_binary(op.combine(), vt.dtype, acc, *lane)?;
        }
        Ok(Repr::Whole(acc))
    }
}
