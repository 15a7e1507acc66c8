//! `std::ops` overloads: owned, borrowed and scalar operands on either side. Scalars are `f64`
//! and `i32` only, so literals (`&t * 2.0`, `1 - &t`) infer without annotations; other scalar
//! types go through the methods (`t.mul(x_f32)`).

use crate::tensor::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! tensor_binop {
    ($trait:ident, $method:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$method(self, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(&self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$method(&self, &rhs)
            }
        }
        tensor_binop!(@scalar $trait, $method, f64, i32);
    };
    (@scalar $trait:ident, $method:ident, $($s:ty),*) => {$(
        impl $trait<$s> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: $s) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
        impl $trait<$s> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: $s) -> Tensor {
                Tensor::$method(&self, rhs)
            }
        }
        impl $trait<&Tensor> for $s {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                let lhs = crate::elementwise::IntoOperand::into_operand(self, rhs);
                Tensor::$method(&lhs, rhs)
            }
        }
        impl $trait<Tensor> for $s {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                let lhs = crate::elementwise::IntoOperand::into_operand(self, &rhs);
                Tensor::$method(&lhs, &rhs)
            }
        }
    )*};
}

tensor_binop!(Add, add);
tensor_binop!(Sub, sub);
tensor_binop!(Mul, mul);
tensor_binop!(Div, div);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}
impl Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
