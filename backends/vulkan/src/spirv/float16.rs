//! 16-bit floats held in f32 registers: conversions between f16 bit patterns and f32, and
//! rounding an f32 to the nearest f16 or bf16 value (ties to even), all in integer arithmetic so
//! the result does not depend on the driver's conversion rounding or denormal handling.

use super::Gen;
use rspirv::spirv::{GlslStd450Op as GLOp, Op, Word};

/// f32 bits of the smallest value that rounds to infinity in f16 (65520).
const F16_OVERFLOW_BITS: u32 = 0x477f_f000;
/// f32 bits of the smallest normal f16 (2^-14).
const F16_MIN_NORMAL_BITS: u32 = 0x3880_0000;
/// Difference of the exponent biases (127 - 15), in f32 exponent position.
const REBIAS: u32 = 112 << 23;

impl Gen<'_> {
    fn u32_op(&mut self, code: Op, a: Word, b: u32) -> Word {
        let (t, c) = (self.ty_int(32), self.c_u32(b));
        self.op(code, t, &[a, c])
    }
    fn u32_cmp(&mut self, code: Op, a: Word, b: u32) -> Word {
        let (t, c) = (self.ty_bool(), self.c_u32(b));
        self.op(code, t, &[a, c])
    }

    /// The f32 value of the f16 bit pattern in the low 16 bits of `h` (a u32).
    pub(crate) fn f16_bits_to_f32(&mut self, h: Word) -> Word {
        let (u32t, f32t) = (self.ty_int(32), self.ty_float(32));
        let sign = self.u32_op(Op::BitwiseAnd, h, 0x8000);
        let sign = self.u32_op(Op::ShiftLeftLogical, sign, 16);
        let e = self.u32_op(Op::ShiftRightLogical, h, 10);
        let e = self.u32_op(Op::BitwiseAnd, e, 0x1f);
        let m = self.u32_op(Op::BitwiseAnd, h, 0x3ff);
        let m13 = self.u32_op(Op::ShiftLeftLogical, m, 13);
        let exp = self.u32_op(Op::IAdd, e, 112);
        let exp = self.u32_op(Op::ShiftLeftLogical, exp, 23);
        let normal = self.op(Op::BitwiseOr, u32t, &[exp, m13]);
        let special = self.u32_op(Op::BitwiseOr, m13, 0x7f80_0000);
        let mf = self.op(Op::ConvertUToF, f32t, &[m]);
        let scale = self.c_f32(2f32.powi(-24));
        let sub = self.op(Op::FMul, f32t, &[mf, scale]);
        let sub = self.op(Op::Bitcast, u32t, &[sub]);
        let is_special = self.u32_cmp(Op::IEqual, e, 0x1f);
        let is_sub = self.u32_cmp(Op::IEqual, e, 0);
        let r = self.select(u32t, is_sub, sub, normal);
        let r = self.select(u32t, is_special, special, r);
        let r = self.op(Op::BitwiseOr, u32t, &[r, sign]);
        self.op(Op::Bitcast, f32t, &[r])
    }

    /// The f16 bit pattern (in a u32) of `x`, an f32 holding an f16 value (or a NaN).
    pub(crate) fn f32_to_f16_bits(&mut self, x: Word) -> Word {
        let (u32t, f32t) = (self.ty_int(32), self.ty_float(32));
        let bits = self.op(Op::Bitcast, u32t, &[x]);
        let sign = self.u32_op(Op::ShiftRightLogical, bits, 16);
        let sign = self.u32_op(Op::BitwiseAnd, sign, 0x8000);
        let abs = self.u32_op(Op::BitwiseAnd, bits, 0x7fff_ffff);
        // Inf/NaN: keep the top payload bits; a NaN whose payload would vanish stays quiet NaN.
        let m = self.u32_op(Op::ShiftRightLogical, abs, 13);
        let m = self.u32_op(Op::BitwiseAnd, m, 0x3ff);
        let is_nan = self.u32_cmp(Op::UGreaterThan, abs, 0x7f80_0000);
        let m_zero = self.u32_cmp(Op::IEqual, m, 0);
        let bool_ty = self.ty_bool();
        let lost = self.op(Op::LogicalAnd, bool_ty, &[is_nan, m_zero]);
        let quiet = self.c_u32(0x200);
        let m = self.select(u32t, lost, quiet, m);
        let special = self.u32_op(Op::BitwiseOr, m, 0x7c00);
        let normal = self.u32_op(Op::ISub, abs, REBIAS);
        let normal = self.u32_op(Op::ShiftRightLogical, normal, 13);
        let absf = self.op(Op::Bitcast, f32t, &[abs]);
        let scale = self.c_f32(2f32.powi(24));
        let scaled = self.op(Op::FMul, f32t, &[absf, scale]);
        let sub = self.op(Op::ConvertFToU, u32t, &[scaled]);
        let is_special = self.u32_cmp(Op::UGreaterThanEqual, abs, 0x7f80_0000);
        let is_normal = self.u32_cmp(Op::UGreaterThanEqual, abs, F16_MIN_NORMAL_BITS);
        let r = self.select(u32t, is_normal, normal, sub);
        let r = self.select(u32t, is_special, special, r);
        self.op(Op::BitwiseOr, u32t, &[r, sign])
    }

    /// `x` (f32) rounded to the nearest f16 value, ties to even (overflow to ±inf, gradual
    /// underflow, NaN kept).
    pub(crate) fn round_f16(&mut self, x: Word) -> Word {
        let (u32t, f32t) = (self.ty_int(32), self.ty_float(32));
        let bits = self.op(Op::Bitcast, u32t, &[x]);
        let sign = self.u32_op(Op::BitwiseAnd, bits, 0x8000_0000);
        let abs = self.u32_op(Op::BitwiseAnd, bits, 0x7fff_ffff);
        let odd = self.u32_op(Op::ShiftRightLogical, abs, 13);
        let odd = self.u32_op(Op::BitwiseAnd, odd, 1);
        let bias = self.u32_op(Op::IAdd, odd, 0xfff);
        let normal = self.op(Op::IAdd, u32t, &[abs, bias]);
        let normal = self.u32_op(Op::BitwiseAnd, normal, 0xffff_e000);
        let absf = self.op(Op::Bitcast, f32t, &[abs]);
        let up = self.c_f32(2f32.powi(24));
        let down = self.c_f32(2f32.powi(-24));
        let scaled = self.op(Op::FMul, f32t, &[absf, up]);
        let rounded = self.glsl(GLOp::RoundEven, f32t, &[scaled]);
        let small = self.op(Op::FMul, f32t, &[rounded, down]);
        let small = self.op(Op::Bitcast, u32t, &[small]);
        let inf = self.c_u32(0x7f80_0000);
        let is_nan = self.u32_cmp(Op::UGreaterThan, abs, 0x7f80_0000);
        let overflow = self.u32_cmp(Op::UGreaterThanEqual, abs, F16_OVERFLOW_BITS);
        let is_normal = self.u32_cmp(Op::UGreaterThanEqual, abs, F16_MIN_NORMAL_BITS);
        let r = self.select(u32t, is_normal, normal, small);
        let r = self.select(u32t, overflow, inf, r);
        let r = self.op(Op::BitwiseOr, u32t, &[r, sign]);
        let r = self.select(u32t, is_nan, bits, r);
        self.op(Op::Bitcast, f32t, &[r])
    }

    /// `x` (f32) rounded to the nearest bf16 value, ties to even; NaN becomes a quiet NaN.
    pub(crate) fn round_bf16(&mut self, x: Word) -> Word {
        let (u32t, f32t) = (self.ty_int(32), self.ty_float(32));
        let bits = self.op(Op::Bitcast, u32t, &[x]);
        let lsb = self.u32_op(Op::ShiftRightLogical, bits, 16);
        let lsb = self.u32_op(Op::BitwiseAnd, lsb, 1);
        let bias = self.u32_op(Op::IAdd, lsb, 0x7fff);
        let rounded = self.op(Op::IAdd, u32t, &[bits, bias]);
        let rounded = self.u32_op(Op::BitwiseAnd, rounded, 0xffff_0000);
        let quiet = self.u32_op(Op::BitwiseOr, bits, 0x0040_0000);
        let quiet = self.u32_op(Op::BitwiseAnd, quiet, 0xffff_0000);
        let abs = self.u32_op(Op::BitwiseAnd, bits, 0x7fff_ffff);
        let is_nan = self.u32_cmp(Op::UGreaterThan, abs, 0x7f80_0000);
        let r = self.select(u32t, is_nan, quiet, rounded);
        self.op(Op::Bitcast, f32t, &[r])
    }
}
