//! Host functions that generated code calls: f16 conversions and libm transcendentals.
//!
//! Each is an `extern "C"` function registered as a JIT symbol under [`Helper::name`].

use cranelift_codegen::ir::types::{F32, F64, I32, I64};
use cranelift_codegen::ir::Type;
use half::{bf16, f16};

// SAFETY (of the declarations): these match the C prototypes of the math library functions
// of the same names, which take and return plain doubles/floats and have no preconditions.
#[cfg_attr(unix, link(name = "m"))]
extern "C" {
    fn exp2(x: f64) -> f64;
    fn log2(x: f64) -> f64;
    fn sin(x: f64) -> f64;
    fn exp2f(x: f32) -> f32;
    fn log2f(x: f32) -> f32;
    fn sinf(x: f32) -> f32;
}

/// The f16 with bit pattern `bits` (low 16 bits), widened to f32.
extern "C" fn fg_f16_from_bits(bits: u32) -> f32 {
    f16::from_bits(bits as u16).to_f32()
}

/// The bit pattern of `x` rounded to f16 (nearest, ties to even), in the low 16 bits.
extern "C" fn fg_f16_to_bits(x: f32) -> u32 {
    f16::from_f32(x).to_bits() as u32
}

/// `x` rounded to f16, widened back to f32.
extern "C" fn fg_round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// `x` rounded once to f16, widened to f32.
extern "C" fn fg_f64_to_f16(x: f64) -> f32 {
    f64_to_f16(x).to_f32()
}

/// `x` rounded once to bf16, widened to f32.
extern "C" fn fg_f64_to_bf16(x: f64) -> f32 {
    f64_to_bf16(x).to_f32()
}

/// `v` rounded once to bf16 (nearest, ties to even), widened to f32.
extern "C" fn fg_i64_to_bf16(v: i64) -> f32 {
    f64_to_bf16(i64_to_f64_sticky(v)).to_f32()
}

/// `x` rounded once to f16 (nearest, ties to even).
///
/// `half::f16::from_f64` drops the low 32 bits of the significand before rounding, which
/// misrounds values just above a tie; rounding to odd into f32 first keeps those bits as a
/// sticky bit, and `from_f32` then rounds correctly (24 >= 11 + 2 bits).
pub(crate) fn f64_to_f16(x: f64) -> f16 {
    f16::from_f32(f64_to_f32_odd(x))
}

/// `x` rounded once to bf16 (nearest, ties to even); see [`f64_to_f16`].
pub(crate) fn f64_to_bf16(x: f64) -> bf16 {
    bf16::from_f32(f64_to_f32_odd(x))
}

/// `x` as f32, rounded to odd: an inexact result is the neighbour toward zero with its last
/// significand bit set. Values beyond the f32 range become infinite (both narrow formats
/// overflow well before that).
fn f64_to_f32_odd(x: f64) -> f32 {
    let f = x as f32;
    if !f.is_finite() || f as f64 == x {
        return f;
    }
    let toward_zero = if (f as f64).abs() > x.abs() {
        f32::from_bits(f.to_bits() - 1)
    } else {
        f
    };
    f32::from_bits(toward_zero.to_bits() | 1)
}

/// `v` as f64, rounded to odd where it has more than 53 significant bits: the dropped bits
/// survive as a sticky last bit, so one more rounding to a format of at most 51 bits (f16,
/// bf16, f32) rounds exactly as a single rounding of `v` would.
pub(crate) fn i64_to_f64_sticky(v: i64) -> f64 {
    let m = v.unsigned_abs();
    let bits = 64 - m.leading_zeros();
    let r = if bits <= 53 {
        m as f64
    } else {
        let shift = bits - 53;
        let sticky = (m & ((1u64 << shift) - 1) != 0) as u64;
        ((m >> shift) | sticky) as f64 * (1u64 << shift) as f64
    };
    if v < 0 {
        -r
    } else {
        r
    }
}

/// A function the generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Helper {
    /// f16 bits (u32) -> f32.
    F16FromBits,
    /// f32 -> f16 bits (u32).
    F16ToBits,
    /// f32 -> f32 rounded to f16.
    RoundF16,
    /// f64 -> f32 holding the value rounded to f16.
    F64ToF16,
    /// f64 -> f32 holding the value rounded to bf16.
    F64ToBf16,
    /// i64 -> f32 holding the value rounded once to bf16.
    I64ToBf16,
    /// libm `exp2`.
    Exp2F64,
    /// libm `log2`.
    Log2F64,
    /// libm `sin`.
    SinF64,
    /// libm `exp2f`.
    Exp2F32,
    /// libm `log2f`.
    Log2F32,
    /// libm `sinf`.
    SinF32,
}

impl Helper {
    /// Every helper.
    pub(crate) const ALL: [Helper; 12] = [
        Helper::F16FromBits,
        Helper::F16ToBits,
        Helper::RoundF16,
        Helper::F64ToF16,
        Helper::F64ToBf16,
        Helper::I64ToBf16,
        Helper::Exp2F64,
        Helper::Log2F64,
        Helper::SinF64,
        Helper::Exp2F32,
        Helper::Log2F32,
        Helper::SinF32,
    ];

    /// The JIT symbol name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Helper::F16FromBits => "fg_f16_from_bits",
            Helper::F16ToBits => "fg_f16_to_bits",
            Helper::RoundF16 => "fg_round_f16",
            Helper::F64ToF16 => "fg_f64_to_f16",
            Helper::F64ToBf16 => "fg_f64_to_bf16",
            Helper::I64ToBf16 => "fg_i64_to_bf16",
            Helper::Exp2F64 => "exp2",
            Helper::Log2F64 => "log2",
            Helper::SinF64 => "sin",
            Helper::Exp2F32 => "exp2f",
            Helper::Log2F32 => "log2f",
            Helper::SinF32 => "sinf",
        }
    }

    /// Parameter and result type (every helper takes one value and returns one).
    pub(crate) fn signature(self) -> (Type, Type) {
        match self {
            Helper::F16FromBits => (I32, F32),
            Helper::F16ToBits => (F32, I32),
            Helper::RoundF16 | Helper::Exp2F32 | Helper::Log2F32 | Helper::SinF32 => (F32, F32),
            Helper::F64ToF16 | Helper::F64ToBf16 => (F64, F32),
            Helper::I64ToBf16 => (I64, F32),
            Helper::Exp2F64 | Helper::Log2F64 | Helper::SinF64 => (F64, F64),
        }
    }

    /// The function's address.
    pub(crate) fn address(self) -> *const u8 {
        match self {
            Helper::F16FromBits => fg_f16_from_bits as extern "C" fn(u32) -> f32 as *const u8,
            Helper::F16ToBits => fg_f16_to_bits as extern "C" fn(f32) -> u32 as *const u8,
            Helper::RoundF16 => fg_round_f16 as extern "C" fn(f32) -> f32 as *const u8,
            Helper::F64ToF16 => fg_f64_to_f16 as extern "C" fn(f64) -> f32 as *const u8,
            Helper::F64ToBf16 => fg_f64_to_bf16 as extern "C" fn(f64) -> f32 as *const u8,
            Helper::I64ToBf16 => fg_i64_to_bf16 as extern "C" fn(i64) -> f32 as *const u8,
            Helper::Exp2F64 => exp2 as unsafe extern "C" fn(f64) -> f64 as *const u8,
            Helper::Log2F64 => log2 as unsafe extern "C" fn(f64) -> f64 as *const u8,
            Helper::SinF64 => sin as unsafe extern "C" fn(f64) -> f64 as *const u8,
            Helper::Exp2F32 => exp2f as unsafe extern "C" fn(f32) -> f32 as *const u8,
            Helper::Log2F32 => log2f as unsafe extern "C" fn(f32) -> f32 as *const u8,
            Helper::SinF32 => sinf as unsafe extern "C" fn(f32) -> f32 as *const u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_helpers_round_to_nearest_even() {
        // 1 + 2^-11 is halfway between two f16 values: ties go to the even one (1.0).
        assert_eq!(fg_round_f16(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(
            fg_round_f16(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2f32.powi(-9)
        );
        assert_eq!(fg_f16_to_bits(1.0), 0x3c00);
        assert_eq!(fg_f16_from_bits(0x3c00), 1.0);
        assert!(fg_f16_from_bits(0x7e00).is_nan());
        assert_eq!(fg_f64_to_f16(65520.0), f32::INFINITY);
        assert_eq!(fg_f64_to_bf16(1.0 + 2f64.powi(-8)), 1.0);
        // Just above a tie in the low bits of an f64: rounds up (half's from_f64 rounds down).
        assert_eq!(
            fg_f64_to_f16(1.0 + 2f64.powi(-11) + 2f64.powi(-40)),
            1.0 + 2f32.powi(-10)
        );
        assert_eq!(
            fg_f64_to_bf16(-(1.0 + 2f64.powi(-8) + 2f64.powi(-45))),
            -(1.0 + 2f32.powi(-7))
        );
        assert_eq!(fg_f64_to_bf16(2f64.powi(-150)), 0.0);
        assert_eq!(fg_f64_to_bf16(1.0e39), f32::INFINITY);
        // 2^62 + 2^54 + 1 is just above a bf16 tie; via a plain f64 it would round down.
        let v = (1i64 << 62) + (1 << 54) + 1;
        assert_eq!(fg_i64_to_bf16(v), (2f64.powi(62) + 2f64.powi(55)) as f32);
        assert_eq!(fg_i64_to_bf16(-v), -(2f64.powi(62) + 2f64.powi(55)) as f32);
        assert_eq!(fg_i64_to_bf16(i64::MIN), -(2f64.powi(63)) as f32);
    }
}
