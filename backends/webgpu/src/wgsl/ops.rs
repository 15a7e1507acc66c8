//! Arithmetic on one lane: unary and binary ops and `MulAcc`, with the reference semantics
//! (wrapping integers, NaN-propagating max, division by zero giving 0, shift amounts modulo the
//! width, 16-bit floats rounded after every op). Each function returns a WGSL expression.

use super::{float_lit, int_lit, Gen};
use ferrograd_ir::{BinaryOp, DType, UnaryOp};

impl Gen<'_> {
    /// Re-wraps a register expression holding an 8-bit integer (sign-extends i8, masks u8).
    pub(crate) fn wrap(&self, dtype: DType, e: &str) -> String {
        match dtype {
            DType::I8 => format!("(({e}) << 24u) >> 24u"),
            DType::U8 => format!("({e}) & 0xffu"),
            _ => e.to_string(),
        }
    }

    /// Rounds an f32 expression to f16/bf16 when `dtype` is one of those.
    pub(crate) fn round_to(&mut self, dtype: DType, e: &str) -> String {
        match dtype {
            DType::F16 => format!("{}({e})", self.helper("round_f16")),
            DType::BF16 => format!("{}({e})", self.helper("round_bf16")),
            _ => e.to_string(),
        }
    }

    /// Suffix of helper names for the float register width of `dtype`.
    fn float_suffix(dtype: DType) -> &'static str {
        if dtype == DType::F64 {
            "f64"
        } else {
            "f32"
        }
    }

    /// `op(x)` on one lane of `dtype`.
    pub(crate) fn unary(&mut self, op: UnaryOp, dtype: DType, x: &str) -> Result<String, String> {
        if !dtype.is_float() {
            return match op {
                UnaryOp::Neg if dtype.is_signed_int() => Ok(self.wrap(dtype, &format!("-{x}"))),
                UnaryOp::Neg if dtype != DType::Bool => Ok(self.wrap(dtype, &format!("0u - {x}"))),
                // -b is b for a truth value; an integer is its own truncation.
                UnaryOp::Neg | UnaryOp::Trunc => Ok(x.to_string()),
                _ => Err(format!("{op:?} on {dtype}")),
            };
        }
        let wide = dtype == DType::F64;
        let sfx = Self::float_suffix(dtype);
        let r = match op {
            UnaryOp::Neg => return Ok(self.opaque(dtype, &format!("-{x}"))),
            // lavapipe's f64 `trunc` loses the sign of zero and the fraction of large values.
            UnaryOp::Trunc if wide => return Ok(format!("{}({x})", self.helper("trunc_f64"))),
            UnaryOp::Trunc => return Ok(format!("trunc({x})")),
            // Results the driver could pair with their inverse (`sqrt(x) * sqrt(x) -> x`,
            // `exp2(log2(x)) -> x`: wrong for x < 0) pass through the opaque zero.
            UnaryOp::Sqrt => self.opaque(dtype, &format!("sqrt({x})")),
            UnaryOp::Recip => self.opaque(dtype, &format!("{} / {x}", float_lit(1.0, wide))),
            UnaryOp::Exp2 => {
                let f = self.helper(&format!("exp2_{sfx}"));
                self.opaque(dtype, &format!("{f}({x})"))
            }
            UnaryOp::Log2 => {
                let f = self.helper(&format!("log2_{sfx}"));
                self.opaque(dtype, &format!("{f}({x})"))
            }
            UnaryOp::Sin => format!("{}({x})", self.helper(&format!("sin_{sfx}"))),
        };
        Ok(self.round_to(dtype, &r))
    }

    /// `op(a, b)` on one lane of `dtype` (comparisons give bool).
    pub(crate) fn binary(
        &mut self,
        op: BinaryOp,
        dtype: DType,
        a: &str,
        b: &str,
    ) -> Result<String, String> {
        if dtype == DType::Bool {
            return Ok(bool_binary(op, a, b));
        }
        if dtype.is_float() {
            let sfx = Self::float_suffix(dtype);
            let r = match op {
                BinaryOp::Add => format!("{a} + {b}"),
                BinaryOp::Mul => format!("{a} * {b}"),
                // The max of two 16-bit values is one of them: no rounding.
                BinaryOp::Max => {
                    return Ok(format!("{}({a}, {b})", self.helper(&format!("max_{sfx}"))))
                }
                BinaryOp::CmpLt => return Ok(format!("{a} < {b}")),
                // `!=` is an ordered comparison in SPIR-V output, and drivers may fold
                // `x == x` to true: NaN != x must be true, so NaN is also tested by its bits.
                BinaryOp::CmpNe => {
                    let nan = self.helper(&format!("isnan_{sfx}"));
                    return Ok(format!("!({a} == {b}) || {nan}({a}) || {nan}({b})"));
                }
                _ => return Err(format!("{op:?} on {dtype}")),
            };
            return Ok(self.round_to(dtype, &r));
        }
        let reg = super::reg_ty(dtype);
        let r = match op {
            BinaryOp::Add => format!("{a} + {b}"),
            BinaryOp::Mul => format!("{a} * {b}"),
            BinaryOp::Max => return Ok(format!("max({a}, {b})")),
            BinaryOp::CmpLt => return Ok(format!("{a} < {b}")),
            BinaryOp::CmpNe => return Ok(format!("{a} != {b}")),
            BinaryOp::And => return Ok(format!("{a} & {b}")),
            BinaryOp::Or => return Ok(format!("{a} | {b}")),
            BinaryOp::Xor => return Ok(format!("{a} ^ {b}")),
            BinaryOp::IDiv | BinaryOp::Mod => {
                let name = if op == BinaryOp::IDiv { "div" } else { "rem" };
                format!("{}({a}, {b})", self.helper(&format!("{name}_{reg}")))
            }
            BinaryOp::Shl | BinaryOp::Shr => {
                let bits = dtype.size() as i64 * 8;
                let amount = format!("u32({b} & {})", int_lit(dtype, bits - 1));
                let sym = if op == BinaryOp::Shl { "<<" } else { ">>" };
                format!("{a} {sym} {amount}")
            }
        };
        Ok(self.wrap(dtype, &r))
    }

    /// `a * b + c` on one lane (floats fused and rounded once to f32/f64, then to 16 bits).
    pub(crate) fn mul_acc(&mut self, dtype: DType, a: &str, b: &str, c: &str) -> String {
        if dtype == DType::Bool {
            return format!("({a} && {b}) || {c}");
        }
        if dtype.is_float() {
            return self.round_to(dtype, &format!("fma({a}, {b}, {c})"));
        }
        self.wrap(dtype, &format!("{a} * {b} + {c}"))
    }
}

/// Ops on truth values (the integer op on 0/1, true when non-zero).
fn bool_binary(op: BinaryOp, a: &str, b: &str) -> String {
    match op {
        BinaryOp::Add | BinaryOp::Max | BinaryOp::Or => format!("{a} || {b}"),
        // a / b is 0 where b is 0 and a where b is 1.
        BinaryOp::Mul | BinaryOp::And | BinaryOp::IDiv => format!("{a} && {b}"),
        BinaryOp::Xor | BinaryOp::CmpNe => format!("{a} != {b}"),
        // a % 1 and a % 0 are both 0.
        BinaryOp::Mod => "false".into(),
        // 1 << 1 == 2 is still true.
        BinaryOp::Shl => a.to_string(),
        // a < b only for false < true; 1 >> 1 == 0.
        BinaryOp::CmpLt => format!("!{a} && {b}"),
        BinaryOp::Shr => format!("{a} && !{b}"),
    }
}
