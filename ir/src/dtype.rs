//! Element types and scalar constants.

use std::fmt;

/// The element type of a tensor or of a kernel value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean, stored as one byte (0 or 1).
    Bool,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
}

impl DType {
    /// Every dtype, in promotion order.
    pub const ALL: [DType; 10] = [
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// True for the integer types (not bool).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I8 | DType::U8 | DType::I32 | DType::U32 | DType::I64
        )
    }

    /// True for signed integers.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I32 | DType::I64)
    }

    /// The short lowercase name (`f32`, `i64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// Result type of a binary op between `self` and `other` (numpy-like, kept small).
    pub fn promote(self, other: DType) -> DType {
        if self == other {
            return self;
        }
        use DType::*;
        match (self, other) {
            (Bool, x) | (x, Bool) => x,
            (F64, _) | (_, F64) => F64,
            (F32, _) | (_, F32) => F32,
            (F16, BF16) | (BF16, F16) => F32,
            (F16, _) | (_, F16) => F16,
            (BF16, _) | (_, BF16) => BF16,
            (I64, _) | (_, I64) => I64,
            (U32, I8) | (I8, U32) | (U32, I32) | (I32, U32) => I64,
            (U32, _) | (_, U32) => U32,
            (I32, _) | (_, I32) => I32,
            (I8, U8) | (U8, I8) => I32,
            _ => self,
        }
    }

    /// Smallest value (for max-reductions' identity).
    pub fn min_value(self) -> Scalar {
        match self {
            DType::Bool => Scalar::Bool(false),
            DType::I8 => Scalar::Int(i8::MIN as i64),
            DType::U8 | DType::U32 => Scalar::Int(0),
            DType::I32 => Scalar::Int(i32::MIN as i64),
            DType::I64 => Scalar::Int(i64::MIN),
            _ => Scalar::Float(f64::NEG_INFINITY),
        }
    }

    /// Largest value (for min-reductions' identity).
    pub fn max_value(self) -> Scalar {
        match self {
            DType::Bool => Scalar::Bool(true),
            DType::I8 => Scalar::Int(i8::MAX as i64),
            DType::U8 => Scalar::Int(u8::MAX as i64),
            DType::U32 => Scalar::Int(u32::MAX as i64),
            DType::I32 => Scalar::Int(i32::MAX as i64),
            DType::I64 => Scalar::Int(i64::MAX),
            _ => Scalar::Float(f64::INFINITY),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scalar constant. Integers are kept exact as `i64`, floats as `f64`.
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// Any integer dtype's value.
    Int(i64),
    /// Any float dtype's value.
    Float(f64),
}

impl Scalar {
    /// The value as f64 (exact for floats, rounded for huge integers).
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as i64 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The value as i64 (floats truncate toward zero, saturating).
    pub fn as_i64(self) -> i64 {
        match self {
            Scalar::Bool(b) => b as i64,
            Scalar::Int(i) => i,
            Scalar::Float(f) => f as i64,
        }
    }

    /// The value as a truth value (non-zero is true).
    pub fn as_bool(self) -> bool {
        match self {
            Scalar::Bool(b) => b,
            Scalar::Int(i) => i != 0,
            Scalar::Float(f) => f != 0.0,
        }
    }

    /// Converts the value to the representation of `dtype` as a cast op does: floats to
    /// integers truncate and saturate at the target width, integers wrap.
    pub fn cast(self, dtype: DType) -> Scalar {
        match (self, dtype) {
            (_, DType::Bool) => Scalar::Bool(self.as_bool()),
            (Scalar::Float(f), DType::I8) => Scalar::Int(f as i8 as i64),
            (Scalar::Float(f), DType::U8) => Scalar::Int(f as u8 as i64),
            (Scalar::Float(f), DType::I32) => Scalar::Int(f as i32 as i64),
            (Scalar::Float(f), DType::U32) => Scalar::Int(f as u32 as i64),
            (Scalar::Int(i), DType::F32) => Scalar::Float(i as f32 as f64),
            (_, DType::F64) => Scalar::Float(self.as_f64()),
            (_, DType::F32) => Scalar::Float(self.as_f64() as f32 as f64),
            (_, DType::F16) => Scalar::Float(half::f16::from_f64(self.as_f64()).to_f64()),
            (_, DType::BF16) => Scalar::Float(half::bf16::from_f64(self.as_f64()).to_f64()),
            (_, DType::I8) => Scalar::Int(self.as_i64() as i8 as i64),
            (_, DType::U8) => Scalar::Int(self.as_i64() as u8 as i64),
            (_, DType::I32) => Scalar::Int(self.as_i64() as i32 as i64),
            (_, DType::U32) => Scalar::Int(self.as_i64() as u32 as i64),
            (_, DType::I64) => Scalar::Int(self.as_i64()),
        }
    }

    /// Bit pattern used for hashing and equality (so NaN constants hash-cons).
    pub fn key(self) -> (u8, u64) {
        match self {
            Scalar::Bool(b) => (0, b as u64),
            Scalar::Int(i) => (1, i as u64),
            Scalar::Float(f) => (2, f.to_bits()),
        }
    }
}

impl PartialEq for Scalar {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Scalar {}
impl std::hash::Hash for Scalar {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_is_symmetric() {
        for a in DType::ALL {
            for b in DType::ALL {
                assert_eq!(a.promote(b), b.promote(a), "{a} {b}");
            }
        }
        assert_eq!(DType::I32.promote(DType::F16), DType::F16);
        assert_eq!(DType::U8.promote(DType::I8), DType::I32);
    }

    #[test]
    fn casts_round_and_wrap() {
        assert_eq!(Scalar::Int(300).cast(DType::U8), Scalar::Int(44));
        assert_eq!(Scalar::Float(-1.7).cast(DType::I32), Scalar::Int(-1));
        assert_eq!(Scalar::Float(0.1).cast(DType::F32).as_f64(), 0.1f32 as f64);
        assert_eq!(Scalar::Int(2).cast(DType::Bool), Scalar::Bool(true));
    }
}
