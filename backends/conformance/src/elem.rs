//! Rust types stored in kernel buffers, with their dtype and byte encoding.

use ferrograd_ir::DType;
use half::{bf16, f16};
use std::fmt::Debug;

/// A Rust type stored in kernel buffers.
pub trait Elem: Copy + Debug + PartialEq + 'static {
    /// The dtype of buffers holding this type.
    const DTYPE: DType;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// Decodes one value from exactly `DTYPE.size()` bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap())
            }
        }
    };
}
elem!(f32, DType::F32);
elem!(f64, DType::F64);
elem!(i32, DType::I32);
elem!(u32, DType::U32);
elem!(i64, DType::I64);
elem!(i8, DType::I8);
elem!(u8, DType::U8);
elem!(f16, DType::F16);
elem!(bf16, DType::BF16);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        assert!(bytes[0] <= 1, "bool byte {} is not 0 or 1", bytes[0]);
        bytes[0] == 1
    }
}
