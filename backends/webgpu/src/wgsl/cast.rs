//! Value conversions (`Cast`) and bit reinterpretations (`Bitcast`) of one lane.
//!
//! Casts follow Rust `as`: float -> int truncates toward zero and saturates to the target range
//! (NaN -> 0); int -> int wraps; anything -> bool is `!= 0` (NaN -> true); bool -> number is 0
//! or 1; every conversion into a float type rounds once, to nearest even. Conversions that would
//! round twice (f64 -> f16/bf16, wide integers -> bf16) first round to f32 *to odd*, which makes
//! the second rounding exact. Integer width changes go through bit patterns (`bitcast`), so
//! they never depend on how the shader compiler treats signed/unsigned conversions.

use super::{float_lit, int_lit, reg_ty, Gen};
use ferrograd_ir::DType;

impl Gen<'_> {
    /// Converts one lane from `from` to `to`; returns the expression.
    pub(crate) fn cast(&mut self, from: DType, to: DType, x: &str) -> Result<String, String> {
        if from == to {
            return Ok(x.to_string());
        }
        if to == DType::Bool {
            return Ok(if from.is_float() {
                format!("!({x} == {})", float_lit(0.0, from == DType::F64))
            } else {
                format!("{x} != {}", int_lit(from, 0))
            });
        }
        if from == DType::Bool {
            let (one, zero) = if to.is_float() {
                let wide = to == DType::F64;
                (float_lit(1.0, wide), float_lit(0.0, wide))
            } else {
                (int_lit(to, 1), int_lit(to, 0))
            };
            return Ok(format!("select({zero}, {one}, {x})"));
        }
        if !from.is_float() {
            return Ok(match to {
                t if t.is_int() => self.int_resize(from, to, x),
                DType::F32 | DType::F64 => format!("{}({x})", reg_ty(to)),
                // Integers below 2^24 are exact in f32; larger ones overflow f16 either way.
                DType::F16 => self.round_to(DType::F16, &format!("f32({x})")),
                _ => {
                    let odd = match from {
                        DType::I8 | DType::U8 => format!("f32({x})"),
                        _ => format!(
                            "{}({x})",
                            self.helper(&format!("{}_to_f32_odd", reg_ty(from)))
                        ),
                    };
                    self.round_to(DType::BF16, &odd)
                }
            });
        }
        if to.is_float() {
            return Ok(match (from, to) {
                (_, DType::F64) => format!("f64({x})"),
                (DType::F64, DType::F32) => format!("f32({x})"),
                (DType::F64, _) => {
                    let odd = format!("{}({x})", self.helper("f64_to_f32_odd"));
                    self.round_to(to, &odd)
                }
                // f16 and bf16 values are exact in f32; narrowing rounds once.
                _ => self.round_to(to, x),
            });
        }
        let name = format!("cast_{}_{}", reg_ty(from), to.name());
        Ok(format!("{}({x})", self.helper(&name)))
    }

    /// Wrapping integer conversion between registers.
    fn int_resize(&self, from: DType, to: DType, x: &str) -> String {
        match (from, to) {
            (DType::I64, _) => {
                // The low word, as a value within [0, 2^32): exact under any conversion.
                let low = format!("u32({x} & 0xffffffffli)");
                match to {
                    DType::U32 => low,
                    DType::U8 => self.wrap(DType::U8, &low),
                    _ => self.wrap(to, &format!("bitcast<i32>({low})")),
                }
            }
            (_, DType::I64) if from.is_signed_int() => format!("i64({x})"),
            (_, DType::I64) => format!("bitcast<i64>(u64({x}))"),
            // i8/i32 registers are i32, u8/u32 registers u32.
            _ => {
                let same_kind = from.is_signed_int() == to.is_signed_int();
                let moved = if same_kind {
                    x.to_string()
                } else {
                    format!("bitcast<{}>({x})", reg_ty(to))
                };
                self.wrap(to, &moved)
            }
        }
    }

    /// Reinterprets the bits of one lane (equal element sizes).
    pub(crate) fn bitcast(&mut self, from: DType, to: DType, x: &str) -> Result<String, String> {
        Ok(match (from, to) {
            _ if from == to => x.to_string(),
            (DType::I8, DType::U8) => format!("bitcast<u32>({x}) & 0xffu"),
            (DType::U8, DType::I8) => self.wrap(DType::I8, &format!("bitcast<i32>({x})")),
            (DType::F16, DType::BF16) => {
                let bits = format!("{}({x})", self.helper("f32_to_f16_bits"));
                format!("bitcast<f32>({bits} << 16u)")
            }
            (DType::BF16, DType::F16) => {
                let f = self.helper("f16_bits_to_f32");
                format!("{f}(bitcast<u32>({x}) >> 16u)")
            }
            (DType::I32, DType::U32)
            | (DType::U32, DType::I32)
            | (DType::F32, DType::I32 | DType::U32)
            | (DType::I32 | DType::U32, DType::F32)
            | (DType::F64, DType::I64)
            | (DType::I64, DType::F64) => format!("bitcast<{}>({x})", reg_ty(to)),
            _ => return Err(format!("bitcast from {from} to {to}")),
        })
    }
}
