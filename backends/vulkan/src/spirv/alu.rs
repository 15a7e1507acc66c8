//! Arithmetic on one lane: unary and binary ops and `MulAcc`, with the reference semantics
//! (wrapping integers, NaN-propagating max, division by zero giving 0, shift amounts modulo the
//! width, 16-bit floats rounded after every op).

use super::Gen;
use ferrograd_ir::{BinaryOp, DType, UnaryOp};
use rspirv::spirv::{GlslStd450Op as GLOp, Op, Word};

impl Gen<'_> {
    /// Re-wraps a 32-bit register holding an 8-bit integer (sign-extends i8, masks u8).
    pub(crate) fn wrap(&mut self, dtype: DType, v: Word) -> Word {
        let u32t = self.ty_int(32);
        match dtype {
            DType::I8 => {
                let s = self.c_u32(24);
                let up = self.op(Op::ShiftLeftLogical, u32t, &[v, s]);
                self.op(Op::ShiftRightArithmetic, u32t, &[up, s])
            }
            DType::U8 => {
                let m = self.c_u32(0xff);
                self.op(Op::BitwiseAnd, u32t, &[v, m])
            }
            _ => v,
        }
    }

    /// Rounds an f32-held result to f16/bf16 when `dtype` is one of those.
    pub(crate) fn round_to(&mut self, dtype: DType, v: Word) -> Word {
        match dtype {
            DType::F16 => self.round_f16(v),
            DType::BF16 => self.round_bf16(v),
            _ => v,
        }
    }

    /// `op(x)` on one lane of `dtype`.
    pub(crate) fn unary(&mut self, op: UnaryOp, dtype: DType, x: Word) -> Result<Word, String> {
        let ty = self.reg_ty(dtype);
        if !dtype.is_float() {
            return match op {
                UnaryOp::Neg if dtype != DType::Bool => {
                    let n = self.op(Op::SNegate, ty, &[x]);
                    Ok(self.wrap(dtype, n))
                }
                // -b is b for a truth value; an integer is its own truncation.
                UnaryOp::Neg | UnaryOp::Trunc => Ok(x),
                _ => Err(format!("{op:?} on {dtype}")),
            };
        }
        let r = match op {
            UnaryOp::Neg => return Ok(self.op(Op::FNegate, ty, &[x])),
            UnaryOp::Trunc if dtype == DType::F64 => return Ok(self.trunc_f64(x)),
            UnaryOp::Trunc => return Ok(self.glsl(GLOp::Trunc, ty, &[x])),
            UnaryOp::Sqrt => self.glsl(GLOp::Sqrt, ty, &[x]),
            UnaryOp::Recip => {
                let one = self.c_float(dtype, 1.0);
                self.op(Op::FDiv, ty, &[one, x])
            }
            UnaryOp::Exp2 if dtype == DType::F64 => self.exp2_f64(x),
            UnaryOp::Log2 if dtype == DType::F64 => self.log2_f64(x),
            UnaryOp::Sin if dtype == DType::F64 => self.sin_f64(x),
            UnaryOp::Exp2 => self.exp2_f32(x),
            UnaryOp::Log2 => self.log2_f32(x),
            UnaryOp::Sin => self.sin_f32(x),
        };
        Ok(self.round_to(dtype, r))
    }

    /// `op(a, b)` on one lane of `dtype` (comparisons give bool).
    pub(crate) fn binary(
        &mut self,
        op: BinaryOp,
        dtype: DType,
        a: Word,
        b: Word,
    ) -> Result<Word, String> {
        if dtype == DType::Bool {
            return Ok(self.bool_binary(op, a, b));
        }
        let ty = self.reg_ty(dtype);
        let bool_ty = self.ty_bool();
        if dtype.is_float() {
            let r = match op {
                BinaryOp::Add => self.op(Op::FAdd, ty, &[a, b]),
                BinaryOp::Mul => self.op(Op::FMul, ty, &[a, b]),
                BinaryOp::Max => return Ok(self.float_max(dtype, a, b)),
                BinaryOp::CmpLt => return Ok(self.op(Op::FOrdLessThan, bool_ty, &[a, b])),
                BinaryOp::CmpNe => return Ok(self.op(Op::FUnordNotEqual, bool_ty, &[a, b])),
                _ => return Err(format!("{op:?} on {dtype}")),
            };
            return Ok(self.round_to(dtype, r));
        }
        let signed = dtype.is_signed_int();
        let r = match op {
            BinaryOp::Add => self.op(Op::IAdd, ty, &[a, b]),
            BinaryOp::Mul => self.op(Op::IMul, ty, &[a, b]),
            BinaryOp::Max => {
                let gt = self.op(
                    if signed {
                        Op::SGreaterThan
                    } else {
                        Op::UGreaterThan
                    },
                    bool_ty,
                    &[a, b],
                );
                return Ok(self.select(ty, gt, a, b));
            }
            BinaryOp::CmpLt => {
                return Ok(self.op(
                    if signed { Op::SLessThan } else { Op::ULessThan },
                    bool_ty,
                    &[a, b],
                ))
            }
            BinaryOp::CmpNe => return Ok(self.op(Op::INotEqual, bool_ty, &[a, b])),
            BinaryOp::And => return Ok(self.op(Op::BitwiseAnd, ty, &[a, b])),
            BinaryOp::Or => return Ok(self.op(Op::BitwiseOr, ty, &[a, b])),
            BinaryOp::Xor => return Ok(self.op(Op::BitwiseXor, ty, &[a, b])),
            BinaryOp::IDiv | BinaryOp::Mod => self.int_div(op, dtype, a, b),
            BinaryOp::Shl | BinaryOp::Shr => {
                let bits = dtype.size() as i64 * 8;
                let mask = self.c_int(dtype, bits - 1);
                let amount = self.op(Op::BitwiseAnd, ty, &[b, mask]);
                let code = match (op, signed) {
                    (BinaryOp::Shl, _) => Op::ShiftLeftLogical,
                    (_, true) => Op::ShiftRightArithmetic,
                    (_, false) => Op::ShiftRightLogical,
                };
                self.op(code, ty, &[a, amount])
            }
        };
        Ok(self.wrap(dtype, r))
    }

    /// Ops on truth values (the integer op on 0/1, true when non-zero).
    fn bool_binary(&mut self, op: BinaryOp, a: Word, b: Word) -> Word {
        let t = self.ty_bool();
        match op {
            BinaryOp::Add | BinaryOp::Max | BinaryOp::Or => self.op(Op::LogicalOr, t, &[a, b]),
            // a / b is 0 where b is 0 and a where b is 1.
            BinaryOp::Mul | BinaryOp::And | BinaryOp::IDiv => self.op(Op::LogicalAnd, t, &[a, b]),
            BinaryOp::Xor | BinaryOp::CmpNe => self.op(Op::LogicalNotEqual, t, &[a, b]),
            // a % 1 and a % 0 are both 0.
            BinaryOp::Mod => self.c_bool(false),
            // 1 << 1 == 2 is still true.
            BinaryOp::Shl => a,
            // a < b only for false < true; 1 >> 1 == 0.
            BinaryOp::CmpLt | BinaryOp::Shr => {
                let (x, y) = if op == BinaryOp::CmpLt {
                    (b, a)
                } else {
                    (a, b)
                };
                let not_y = self.op(Op::LogicalNot, t, &[y]);
                self.op(Op::LogicalAnd, t, &[x, not_y])
            }
        }
    }

    /// max(a, b): NaN if either is NaN, and max(-0, +0) = +0.
    fn float_max(&mut self, dtype: DType, a: Word, b: Word) -> Word {
        let ty = self.reg_ty(dtype);
        let bt = self.ty_bool();
        let gt = self.op(Op::FOrdGreaterThan, bt, &[a, b]);
        let lt = self.op(Op::FOrdLessThan, bt, &[a, b]);
        // Neither greater: equal (take `a`, except for two zeros, whose sum is +0 when the signs
        // differ) or unordered (the sum is NaN).
        let sum = self.op(Op::FAdd, ty, &[a, b]);
        let zero = self.c_float(dtype, 0.0);
        let a_zero = self.op(Op::FOrdEqual, bt, &[a, zero]);
        let nan_a = self.op(Op::IsNan, bt, &[a]);
        let nan_b = self.op(Op::IsNan, bt, &[b]);
        let nan = self.op(Op::LogicalOr, bt, &[nan_a, nan_b]);
        let tie = self.op(Op::LogicalOr, bt, &[a_zero, nan]);
        let eq = self.select(ty, tie, sum, a);
        let r = self.select(ty, lt, b, eq);
        self.select(ty, gt, a, r)
    }

    /// Integer division or remainder that never traps: x / 0 == 0, x % 0 == 0, and
    /// MIN / -1 == MIN (wrapping), MIN % -1 == 0. Operands are registers of `dtype`.
    fn int_div(&mut self, op: BinaryOp, dtype: DType, a: Word, b: Word) -> Word {
        let ty = self.reg_ty(dtype);
        let bt = self.ty_bool();
        let zero = self.c_int(dtype, 0);
        let one = self.c_int(dtype, 1);
        let is_zero = self.op(Op::IEqual, bt, &[b, zero]);
        if !dtype.is_signed_int() {
            let divisor = self.select(ty, is_zero, one, b);
            return if op == BinaryOp::Mod {
                self.op(Op::UMod, ty, &[a, divisor])
            } else {
                let q = self.op(Op::UDiv, ty, &[a, divisor]);
                self.select(ty, is_zero, zero, q)
            };
        }
        let minus_one = match dtype {
            DType::I64 => self.c_u64(u64::MAX),
            _ => self.c_u32(u32::MAX),
        };
        let is_minus_one = self.op(Op::IEqual, bt, &[b, minus_one]);
        let special = self.op(Op::LogicalOr, bt, &[is_zero, is_minus_one]);
        let divisor = self.select(ty, special, one, b);
        if op == BinaryOp::Mod {
            // a % 1 == 0 covers both special divisors.
            return self.op(Op::SRem, ty, &[a, divisor]);
        }
        let q = self.op(Op::SDiv, ty, &[a, divisor]);
        let negated = self.op(Op::SNegate, ty, &[a]);
        let q = self.select(ty, is_minus_one, negated, q);
        self.select(ty, is_zero, zero, q)
    }

    /// `a * b + c` on one lane (floats fused and rounded once to f32/f64, then to 16 bits).
    pub(crate) fn mul_acc(
        &mut self,
        dtype: DType,
        a: Word,
        b: Word,
        c: Word,
    ) -> Result<Word, String> {
        let ty = self.reg_ty(dtype);
        if dtype == DType::Bool {
            let p = self.op(Op::LogicalAnd, ty, &[a, b]);
            return Ok(self.op(Op::LogicalOr, ty, &[p, c]));
        }
        if dtype.is_float() {
            let r = self.glsl(GLOp::Fma, ty, &[a, b, c]);
            return Ok(self.round_to(dtype, r));
        }
        let p = self.op(Op::IMul, ty, &[a, b]);
        let s = self.op(Op::IAdd, ty, &[p, c]);
        Ok(self.wrap(dtype, s))
    }
}
