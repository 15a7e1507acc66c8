//! Elementwise math: broadcasting binary ops, comparisons, and unary functions composed from
//! the primitive ops.

use crate::axes::broadcast_shape;
use crate::grad_rules;
use crate::tensor::{Tensor, DEFAULT_FLOAT};
use ferrograd_ir::{BinaryOp, DType, Node, Scalar, UnaryOp};
use std::f64::consts::{LN_2, LOG2_E, PI};

/// A scalar operand for tensor ops (`&t * 2.0`, `3 - &t`).
pub trait IntoOperand {
    /// The operand as a tensor shaped to broadcast against `like`.
    fn into_operand(self, like: &Tensor) -> Tensor;
}

impl IntoOperand for &Tensor {
    fn into_operand(self, _like: &Tensor) -> Tensor {
        self.clone()
    }
}
impl IntoOperand for Tensor {
    fn into_operand(self, _like: &Tensor) -> Tensor {
        self
    }
}
impl IntoOperand for f64 {
    fn into_operand(self, like: &Tensor) -> Tensor {
        let d = if like.dtype().is_float() {
            like.dtype()
        } else {
            DEFAULT_FLOAT
        };
        Tensor::from_node(Node::constant(Scalar::Float(self), d, &[], &like.device()))
    }
}
impl IntoOperand for f32 {
    fn into_operand(self, like: &Tensor) -> Tensor {
        (self as f64).into_operand(like)
    }
}
impl IntoOperand for i32 {
    fn into_operand(self, like: &Tensor) -> Tensor {
        let d = if like.dtype() == DType::Bool {
            DType::I32
        } else {
            like.dtype()
        };
        Tensor::from_node(Node::constant(
            Scalar::Int(self as i64),
            d,
            &[],
            &like.device(),
        ))
    }
}
impl IntoOperand for i64 {
    fn into_operand(self, like: &Tensor) -> Tensor {
        let d = if like.dtype() == DType::Bool {
            DType::I64
        } else {
            like.dtype()
        };
        Tensor::from_node(Node::constant(Scalar::Int(self), d, &[], &like.device()))
    }
}
impl IntoOperand for bool {
    fn into_operand(self, like: &Tensor) -> Tensor {
        Tensor::from_node(Node::constant(
            Scalar::Bool(self),
            DType::Bool,
            &[],
            &like.device(),
        ))
    }
}

impl Tensor {
    /// Broadcasts to `shape` (numpy rules), panicking with the shapes if impossible.
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        let s = self.shape();
        if s == shape {
            return self.clone();
        }
        assert!(
            s.len() <= shape.len(),
            "broadcast_to: cannot broadcast {s:?} to {shape:?}"
        );
        let mut padded = vec![1; shape.len() - s.len()];
        padded.extend_from_slice(&s);
        for (i, (&a, &b)) in padded.iter().zip(shape).enumerate() {
            assert!(
                a == b || a == 1,
                "broadcast_to: axis {i} of {s:?} cannot become {b} (target {shape:?})"
            );
        }
        let r = Tensor::apply([self], |[n]| Node::reshape(n, &padded));
        Tensor::apply([&r], |[n]| Node::expand(n, shape))
    }

    /// Casts both operands to their common dtype and broadcast shape.
    pub(crate) fn align(op: &str, a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
        let shape = broadcast_shape(op, &a.shape(), &b.shape());
        let dtype = a.dtype().promote(b.dtype());
        (
            a.cast(dtype).broadcast_to(&shape),
            b.cast(dtype).broadcast_to(&shape),
        )
    }

    fn binary(&self, op: BinaryOp, other: impl IntoOperand, name: &str) -> Tensor {
        let o = other.into_operand(self);
        let (a, b) = Tensor::align(name, self, &o);
        Tensor::apply([&a, &b], |[a, b]| Node::binary(op, a, b))
    }

    fn unary(&self, op: UnaryOp) -> Tensor {
        let t = if self.dtype().is_float() || op == UnaryOp::Neg {
            self.clone()
        } else {
            self.cast(DEFAULT_FLOAT)
        };
        Tensor::apply([&t], |[n]| Node::unary(op, n))
    }

    fn float(&self) -> Tensor {
        if self.dtype().is_float() {
            self.clone()
        } else {
            self.cast(DEFAULT_FLOAT)
        }
    }

    /// Converts values to `dtype` (floats to ints truncate toward zero).
    pub fn cast(&self, dtype: DType) -> Tensor {
        Tensor::apply([self], |[n]| Node::cast(n, dtype))
    }

    /// Reinterprets the bits as `dtype` (same element size).
    pub fn bitcast(&self, dtype: DType) -> Tensor {
        Tensor::apply([self], |[n]| Node::bitcast(n, dtype))
    }

    // ---- arithmetic ---------------------------------------------------------------------------

    /// `self + other` with broadcasting.
    pub fn add(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Add, other, "add")
    }
    /// `self - other` with broadcasting.
    pub fn sub(&self, other: impl IntoOperand) -> Tensor {
        let o = other.into_operand(self);
        let (a, b) = Tensor::align("sub", self, &o);
        assert!(
            a.dtype() != DType::Bool,
            "sub: not defined for bool tensors (shape {:?})",
            a.shape()
        );
        a.add(b.neg())
    }
    /// `self * other` with broadcasting.
    pub fn mul(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Mul, other, "mul")
    }
    /// True division `self / other` (integers are divided as floats).
    pub fn div(&self, other: impl IntoOperand) -> Tensor {
        let o = other.into_operand(self);
        let (a, b) = Tensor::align("div", &self.float(), &o.float());
        a.mul(b.reciprocal())
    }
    /// Integer division rounding toward zero (Rust's `/` on integers); x / 0 is 0.
    pub fn idiv(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::IDiv, other, "idiv")
    }
    /// Integer remainder with the dividend's sign (Rust's `%` on integers); x % 0 is 0.
    pub fn rem(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Mod, other, "rem")
    }
    /// `-self`.
    pub fn neg(&self) -> Tensor {
        assert!(
            self.dtype() != DType::Bool,
            "neg: not defined for bool tensors (shape {:?})",
            self.shape()
        );
        Tensor::apply([self], |[n]| Node::unary(UnaryOp::Neg, n))
    }
    /// Elementwise maximum (NaN propagates).
    pub fn maximum(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Max, other, "maximum")
    }
    /// Elementwise minimum (NaN propagates).
    pub fn minimum(&self, other: impl IntoOperand) -> Tensor {
        let o = other.into_operand(self);
        let (a, b) = Tensor::align("minimum", self, &o);
        if a.dtype().is_float() {
            a.neg().maximum(b.neg()).neg()
        } else {
            a.lt(&b).where_(&a, &b)
        }
    }
    /// `self ^ exponent` (floats). Negative bases give NaN unless the exponent is an integer.
    pub fn pow(&self, exponent: impl IntoOperand) -> Tensor {
        let e = exponent.into_operand(self);
        let (x, y) = Tensor::align("pow", &self.float(), &e.float());
        let mag = y.mul(x.abs().log2()).exp2();
        let y_int = y.trunc().eq(&y);
        let y_odd = y_int.logical_and(&y.mul(0.5).trunc().eq(y.mul(0.5)).logical_not());
        let neg = x.lt(0.0);
        let signed = y_odd.where_(mag.neg(), &mag);
        let nan = x.full_like(f64::NAN);
        let r = neg.where_(y_int.where_(&signed, &nan), &mag);
        y.eq(0.0).where_(x.full_like(1.0), &r)
    }
    /// `self ^ n` for a constant exponent; small integer exponents become multiplications.
    pub fn powf(&self, n: f64) -> Tensor {
        if n.fract() == 0.0 && n.abs() <= 4.0 {
            let x = self.float();
            let k = n.abs() as u32;
            if k == 0 {
                return x.ones_like();
            }
            let r = (1..k).fold(x.clone(), |r, _| r.mul(&x));
            return if n < 0.0 { r.reciprocal() } else { r };
        }
        self.pow(n)
    }

    // ---- comparisons and logic ----------------------------------------------------------------

    /// `self < other` (bool).
    pub fn lt(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::CmpLt, other, "lt")
    }
    /// `self > other` (bool).
    pub fn gt(&self, other: impl IntoOperand) -> Tensor {
        let o = other.into_operand(self);
        o.binary(BinaryOp::CmpLt, self, "gt")
    }
    /// `self != other` (bool; true where either is NaN).
    pub fn ne(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::CmpNe, other, "ne")
    }
    /// `self == other` (bool; false where either is NaN).
    pub fn eq(&self, other: impl IntoOperand) -> Tensor {
        self.ne(other).logical_not()
    }
    /// `self <= other` (bool; false where either is NaN).
    pub fn le(&self, other: impl IntoOperand) -> Tensor {
        let o = other.into_operand(self);
        self.lt(&o).logical_or(&self.eq(&o))
    }
    /// `self >= other` (bool; false where either is NaN).
    pub fn ge(&self, other: impl IntoOperand) -> Tensor {
        let o = other.into_operand(self);
        o.le(self)
    }
    fn as_bool(&self) -> Tensor {
        if self.dtype() == DType::Bool {
            self.clone()
        } else {
            self.ne(0i32)
        }
    }
    /// Logical and (non-zero is true).
    pub fn logical_and(&self, other: &Tensor) -> Tensor {
        self.as_bool()
            .binary(BinaryOp::And, other.as_bool(), "logical_and")
    }
    /// Logical or (non-zero is true).
    pub fn logical_or(&self, other: &Tensor) -> Tensor {
        self.as_bool()
            .binary(BinaryOp::Or, other.as_bool(), "logical_or")
    }
    /// Logical not (non-zero is true).
    pub fn logical_not(&self) -> Tensor {
        self.as_bool().binary(BinaryOp::Xor, true, "logical_not")
    }
    /// Bitwise and (integers and bools).
    pub fn bitand(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::And, other, "bitand")
    }
    /// Bitwise or (integers and bools).
    pub fn bitor(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Or, other, "bitor")
    }
    /// Bitwise xor (integers and bools).
    pub fn bitxor(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Xor, other, "bitxor")
    }
    /// Shift left (integers; amount modulo the bit width).
    pub fn shl(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Shl, other, "shl")
    }
    /// Shift right (integers; arithmetic for signed).
    pub fn shr(&self, other: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Shr, other, "shr")
    }
    /// `self ? a : b` elementwise, with broadcasting (`self` is the condition).
    pub fn where_(&self, a: impl IntoOperand, b: impl IntoOperand) -> Tensor {
        let a = a.into_operand(self);
        let b = b.into_operand(&a);
        let shape = broadcast_shape(
            "where",
            &broadcast_shape("where", &self.shape(), &a.shape()),
            &b.shape(),
        );
        let dtype = a.dtype().promote(b.dtype());
        let c = self.as_bool().broadcast_to(&shape);
        let a = a.cast(dtype).broadcast_to(&shape);
        let b = b.cast(dtype).broadcast_to(&shape);
        Tensor::apply([&c, &a, &b], |[c, a, b]| Node::where_(c, a, b))
    }

    // ---- unary math ---------------------------------------------------------------------------

    /// 2^x.
    pub fn exp2(&self) -> Tensor {
        self.unary(UnaryOp::Exp2)
    }
    /// log2(x).
    pub fn log2(&self) -> Tensor {
        self.unary(UnaryOp::Log2)
    }
    /// e^x.
    pub fn exp(&self) -> Tensor {
        self.float().mul(LOG2_E).exp2()
    }
    /// Natural logarithm.
    pub fn log(&self) -> Tensor {
        self.log2().mul(LN_2)
    }
    /// Square root.
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }
    /// 1 / sqrt(x).
    pub fn rsqrt(&self) -> Tensor {
        self.sqrt().reciprocal()
    }
    /// sin(x).
    pub fn sin(&self) -> Tensor {
        self.unary(UnaryOp::Sin)
    }
    /// cos(x).
    pub fn cos(&self) -> Tensor {
        self.float().neg().add(PI / 2.0).sin()
    }
    /// tan(x).
    pub fn tan(&self) -> Tensor {
        self.sin().div(self.cos())
    }
    /// 1 / x.
    pub fn reciprocal(&self) -> Tensor {
        self.unary(UnaryOp::Recip)
    }
    /// x * x.
    pub fn square(&self) -> Tensor {
        self.mul(self)
    }
    /// |x|.
    pub fn abs(&self) -> Tensor {
        if self.dtype() == DType::Bool || matches!(self.dtype(), DType::U8 | DType::U32) {
            return self.clone();
        }
        self.maximum(self.neg())
    }
    /// -1, 0 or 1 by the sign of x (NaN stays NaN).
    pub fn sign(&self) -> Tensor {
        let pos = self.gt(0i32).cast(self.dtype());
        let neg = self.lt(0i32).cast(self.dtype());
        let s = pos.sub(&neg);
        if self.dtype().is_float() {
            self.ne(self).where_(self, &s)
        } else {
            s
        }
    }
    /// Rounds toward zero.
    pub fn trunc(&self) -> Tensor {
        if !self.dtype().is_float() {
            return self.clone();
        }
        self.unary(UnaryOp::Trunc)
    }
    /// Rounds toward negative infinity.
    pub fn floor(&self) -> Tensor {
        if !self.dtype().is_float() {
            return self.clone();
        }
        let t = self.trunc();
        t.sub(self.lt(&t).cast(self.dtype()))
    }
    /// Rounds toward positive infinity.
    pub fn ceil(&self) -> Tensor {
        if !self.dtype().is_float() {
            return self.clone();
        }
        let t = self.trunc();
        t.add(self.gt(&t).cast(self.dtype()))
    }
    /// Rounds to the nearest integer, ties to even (like torch and numpy).
    pub fn round(&self) -> Tensor {
        if !self.dtype().is_float() {
            return self.clone();
        }
        // From the truncation: `x - trunc(x)` is exact, whereas `floor(x + 0.5)` rounds the
        // sum (0.49999997 + 0.5 == 1.0 and 2^23 + 1 + 0.5 == 2^23 + 2 in f32).
        let t = self.trunc();
        let frac = self.sub(&t).abs();
        let odd = t.mul(0.5).trunc().mul(2.0).ne(&t);
        let away = frac.gt(0.5).logical_or(&frac.eq(0.5).logical_and(&odd));
        let step = self
            .lt(0i32)
            .where_(self.full_like(-1.0), self.full_like(1.0));
        away.where_(t.add(&step), &t)
    }
    /// Clamps into `[lo, hi]`.
    pub fn clamp(&self, lo: f64, hi: f64) -> Tensor {
        assert!(
            lo <= hi,
            "clamp: lower bound {lo} exceeds upper bound {hi} (shape {:?})",
            self.shape()
        );
        if self.dtype().is_float() {
            self.maximum(lo).minimum(hi)
        } else {
            // Bounds outside the dtype's range saturate (a negative bound must not wrap around
            // to a huge unsigned one).
            let (min, max) = (
                self.dtype().min_value().as_f64(),
                self.dtype().max_value().as_f64(),
            );
            let lo = lo.ceil().clamp(min, max) as i64;
            let hi = hi.floor().clamp(min, max) as i64;
            self.maximum(lo).minimum(hi)
        }
    }
    /// max(x, 0).
    pub fn relu(&self) -> Tensor {
        self.maximum(0i32)
    }
    /// x for x > 0, else slope * x.
    pub fn leaky_relu(&self, slope: f64) -> Tensor {
        self.gt(0i32).where_(self, self.mul(slope))
    }
    /// x for x > 0, else alpha * (e^x - 1).
    pub fn elu(&self, alpha: f64) -> Tensor {
        self.gt(0i32).where_(self, self.exp().sub(1.0).mul(alpha))
    }
    /// 1 / (1 + e^-x).
    pub fn sigmoid(&self) -> Tensor {
        self.float().neg().exp().add(1.0).reciprocal()
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        self.mul(2.0).sigmoid().mul(2.0).sub(1.0)
    }
    /// x * sigmoid(x).
    pub fn silu(&self) -> Tensor {
        self.mul(self.sigmoid())
    }
    /// log(1 + e^x), computed without overflow.
    pub fn softplus(&self) -> Tensor {
        let x = self.float();
        x.relu().add(x.abs().neg().exp().add(1.0).log())
    }
    /// The error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). Its gradient is the
    /// derivative of erf itself, `2/sqrt(pi) exp(-x^2)`, not of the approximating polynomial.
    pub fn erf(&self) -> Tensor {
        Tensor::composite(
            [&self.float()],
            |[x]| x.erf_approximation(),
            std::sync::Arc::new(grad_rules::erf),
        )
    }

    /// The forward computation of [`Tensor::erf`].
    fn erf_approximation(&self) -> Tensor {
        let x = self;
        let a = x.abs();
        let t = a.mul(0.327_591_1).add(1.0).reciprocal();
        let poly = [
            1.061_405_429,
            -1.453_152_027,
            1.421_413_741,
            -0.284_496_736,
            0.254_829_592,
        ]
        .iter()
        .fold(None::<Tensor>, |acc, &c| {
            Some(match acc {
                None => t.mul(c),
                Some(p) => p.add(c).mul(&t),
            })
        })
        .expect("coefficients");
        let y = poly.mul(a.square().neg().exp()).neg().add(1.0);
        x.lt(0i32).where_(y.neg(), &y)
    }
    /// GELU with the exact erf form: x/2 * (1 + erf(x / sqrt 2)).
    pub fn gelu(&self) -> Tensor {
        let x = self.float();
        x.mul(0.5)
            .mul(x.mul(std::f64::consts::FRAC_1_SQRT_2).erf().add(1.0))
    }
}
