//! Rust element types that tensors can be built from and read back into.

use ferrograd_ir::{DType, Scalar};

/// A Rust type with a matching tensor dtype.
pub trait Element: Copy + Send + Sync + 'static {
    /// The tensor dtype of this type.
    const DTYPE: DType;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// Reads one value from the start of `bytes`.
    fn get(bytes: &[u8]) -> Self;
    /// The value as an IR scalar.
    fn to_scalar(self) -> Scalar;
}

macro_rules! element {
    ($t:ty, $d:expr, $kind:ident, $conv:ty) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(
                    bytes[..std::mem::size_of::<$t>()]
                        .try_into()
                        .expect("enough bytes"),
                )
            }
            fn to_scalar(self) -> Scalar {
                Scalar::$kind(<$conv>::from(self))
            }
        }
    };
}

element!(f32, DType::F32, Float, f64);
element!(f64, DType::F64, Float, f64);
element!(i8, DType::I8, Int, i64);
element!(u8, DType::U8, Int, i64);
element!(i32, DType::I32, Int, i64);
element!(u32, DType::U32, Int, i64);
element!(i64, DType::I64, Int, i64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn to_scalar(self) -> Scalar {
        Scalar::Bool(self)
    }
}

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        half::f16::from_le_bytes([bytes[0], bytes[1]])
    }
    fn to_scalar(self) -> Scalar {
        Scalar::Float(self.to_f64())
    }
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        half::bf16::from_le_bytes([bytes[0], bytes[1]])
    }
    fn to_scalar(self) -> Scalar {
        Scalar::Float(self.to_f64())
    }
}

/// Encodes a slice as little-endian bytes.
pub fn to_bytes<T: Element>(data: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * T::DTYPE.size());
    for &x in data {
        x.put(&mut out);
    }
    out
}

/// Decodes little-endian bytes.
pub fn from_bytes<T: Element>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(T::DTYPE.size()).map(T::get).collect()
}
