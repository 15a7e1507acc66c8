//! The reference evaluator: a naive, op-by-op interpreter of a lazy graph on the host, with no
//! fusion and no kernels. It is the oracle every backend is tested against, so its semantics
//! (below) *define* what the primitive ops compute.
//!
//! Values are held as `f64` for the float dtypes and exactly as `i64` for the integer dtypes and
//! bool ([`RefData`]); `u32` values are stored zero-extended (`0..=u32::MAX`), signed ones
//! sign-extended, bools as 0/1.
//!
//! # Semantics
//!
//! * **Rounding.** Every op computes its exact (or `f64`) result and rounds it to the node's dtype
//!   right away: `f32` via `as f32` (round to nearest even), `f16`/`bf16` by correct
//!   round-to-nearest-even from the `f64` value (overflow to ±inf, gradual underflow), `f64`
//!   kept. Integer results wrap to their width (`i8`, `u8`, `i32`, `u32`, `i64`); bool results
//!   are `x != 0` (so `Add` on bools is *or*, `Mul` is *and*, `Max` is *or*).
//! * **Const** fills every element with its value; **Arange(axis)** with the element's index along
//!   `axis` (wrapped to the dtype).
//! * **Cast** (value conversion): float→int truncates toward zero and saturates at the *target*
//!   type's range, NaN→0 (Rust's `as`); int→int wraps; int→float rounds to nearest even
//!   directly from the integer (no double rounding through `f64`); float→float rounds; x→bool is
//!   `x != 0` (NaN→true); bool→x is 0/1.
//! * **Bitcast** reinterprets the bits between equal-size dtypes (`f32`↔`i32`/`u32`, `f64`↔`i64`,
//!   `f16`↔`bf16`, `i8`↔`u8`, `i32`↔`u32`). Bool takes part in no bitcast. Signalling NaNs may
//!   come back quieted (their value passes through `f64`).
//! * **Unary** (floats): `Exp2`, `Log2`, `Sin`, `Sqrt`, `Recip` (`1/x`), `Neg`, `Trunc` are
//!   computed in `f64` and rounded to the dtype. `Neg` on integers wraps (`-MIN == MIN`,
//!   `-1u8 == 255`).
//! * **Binary**: `Add`, `Mul` (integers wrap). `Max` is NaN when either operand is NaN and
//!   `max(-0, +0) == +0`. `CmpLt` is false and `CmpNe` true when a NaN is involved; both give
//!   bool. `IDiv` truncates toward zero, `Mod` takes the dividend's sign (C semantics); `x / 0 ==
//!   0`, `x % 0 == 0`, `MIN / -1 == MIN`, `MIN % -1 == 0`. `And`/`Or`/`Xor` are bitwise (logical
//!   for bools). `Shl`/`Shr` take the shift amount modulo the bit width (`b & (bits - 1)` on the
//!   two's complement amount); `Shr` is arithmetic for signed and logical for unsigned types.
//! * **Ternary**: `Where(cond, a, b)`; `MulAcc(a, b, c) = a*b + c` computed as one fused `f64`
//!   multiply-add, then rounded to the dtype (integers wrap).
//! * **Reduce(op, axes)**: `Sum`, `Max`, `Prod` over `axes`, reduced axes keep size 1. Floats
//!   accumulate in `f64` (sums with Neumaier compensation) and only the final result is rounded
//!   to the dtype: the reference is more accurate than any backend. `Max` propagates NaN.
//!   Integers wrap; bools give *any* (`Sum`, `Max`) and *all* (`Prod`). An empty reduction gives
//!   the identity ([`ReduceOp::identity`]: 0, 1, or the dtype's smallest value / `-inf`).
//! * **Movement** (row-major): `Reshape` to the node's shape, `Permute(perm)` (result axis `i`
//!   is source axis `perm[i]`), `Expand` (broadcasts size-1 axes to the node's shape),
//!   `Pad((before, after) per axis)` with zeros, `Shrink((start, end) per axis)`, `Flip(axes)`.
//! * **Contiguous** and **Copy** are the identity.
//!
//! 0-d tensors (shape `[]`, one element) and zero-size tensors (some dimension 0) are supported
//! by every op.

use crate::dtype::{DType, Scalar};
use crate::graph::{numel, toposort, Node, NodeRef};
use crate::ops::{BinaryOp, Op, ReduceOp, TernaryOp, UnaryOp};
use std::collections::HashMap;

/// The value of `op` applied to one-element constants `srcs` (value, dtype), giving `dtype`,
/// computed by this evaluator: constant folding uses it, so a folded constant follows the
/// semantics above exactly.
pub fn fold_scalar(op: &Op, dtype: DType, srcs: &[(Scalar, DType)]) -> Scalar {
    let device: std::sync::Arc<str> = std::sync::Arc::from("fold");
    let src: Vec<NodeRef> = srcs
        .iter()
        .map(|&(v, dt)| Node::constant(v, dt, &[], &device))
        .collect();
    let node = Node::intern(op.clone(), src, dtype, Vec::new(), device);
    let value = evaluate(&node, &mut |n| {
        panic!("fold_scalar: constant graph has a leaf {n:?}")
    });
    match value.data {
        RefData::Float(v) => Scalar::Float(v[0]),
        RefData::Int(v) if dtype == DType::Bool => Scalar::Bool(v[0] != 0),
        RefData::Int(v) => Scalar::Int(v[0]),
    }
}

/// Host-side values of one tensor: floats as f64, integers and bools exactly as i64.
///
/// Float values are always exactly representable in the tensor's dtype; integer values lie in
/// the dtype's range (`u32` zero-extended, bools 0 or 1).
#[derive(Clone, Debug, PartialEq)]
pub enum RefData {
    /// Values of a float dtype (`f16`, `bf16`, `f32`, `f64`).
    Float(Vec<f64>),
    /// Values of an integer dtype or bool.
    Int(Vec<i64>),
}

impl RefData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            RefData::Float(v) => v.len(),
            RefData::Int(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A host-side tensor: dtype, row-major shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct RefTensor {
    /// The element type the values are rounded / wrapped to.
    pub dtype: DType,
    /// The shape (row-major).
    pub shape: Vec<usize>,
    /// The values, `numel` of them, in row-major order.
    pub data: RefData,
}

impl RefTensor {
    /// A tensor from its parts.
    ///
    /// # Panics
    /// If the data variant does not fit the dtype (`Float` for float dtypes, `Int` otherwise) or
    /// the number of values is not the shape's element count.
    pub fn new(dtype: DType, shape: &[usize], data: RefData) -> Self {
        let t = RefTensor {
            dtype,
            shape: shape.to_vec(),
            data,
        };
        if let Err(e) = t.check() {
            panic!("RefTensor::new: {e}");
        }
        t
    }

    /// A tensor of `dtype` from `f64` values, converted as [`Op::Cast`] would convert an `f64`
    /// (floats round, integers truncate and saturate, bool is `x != 0`).
    pub fn from_f64(dtype: DType, shape: &[usize], values: &[f64]) -> Self {
        Self::new(
            dtype,
            shape,
            collect(dtype, values.iter().map(|&x| cast_float(dtype, x))),
        )
    }

    /// A tensor of `dtype` from `i64` values, converted as [`Op::Cast`] would convert an `i64`
    /// (integers wrap, floats round to nearest, bool is `x != 0`).
    pub fn from_i64(dtype: DType, shape: &[usize], values: &[i64]) -> Self {
        Self::new(
            dtype,
            shape,
            collect(dtype, values.iter().map(|&x| cast_int(dtype, x))),
        )
    }

    /// Decodes native-endian element bytes (as a contiguous device buffer holds them).
    ///
    /// # Panics
    /// If `bytes.len()` is not `numel * dtype.size()`.
    pub fn from_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Self {
        let n = numel(shape);
        let size = dtype.size();
        assert_eq!(
            bytes.len(),
            n * size,
            "RefTensor::from_bytes: {} bytes for {dtype}{shape:?} (expected {})",
            bytes.len(),
            n * size
        );
        let bits = bytes.chunks_exact(size).map(|c| {
            let mut b = [0u8; 8];
            if cfg!(target_endian = "little") {
                b[..size].copy_from_slice(c);
                u64::from_le_bytes(b)
            } else {
                b[8 - size..].copy_from_slice(c);
                u64::from_be_bytes(b)
            }
        });
        let data = if dtype == DType::Bool {
            RefData::Int(bits.map(|b| (b != 0) as i64).collect())
        } else {
            collect(dtype, bits.map(|b| from_bits(dtype, b)))
        };
        Self::new(dtype, shape, data)
    }

    /// Encodes the values as native-endian element bytes (the inverse of [`Self::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let size = self.dtype.size();
        let mut out = Vec::with_capacity(self.numel() * size);
        let mut push = |bits: u64| {
            if cfg!(target_endian = "little") {
                out.extend_from_slice(&bits.to_le_bytes()[..size]);
            } else {
                out.extend_from_slice(&bits.to_be_bytes()[8 - size..]);
            }
        };
        match &self.data {
            RefData::Float(v) => v.iter().for_each(|&x| push(float_bits(self.dtype, x))),
            RefData::Int(v) => v.iter().for_each(|&x| push(x as u64)),
        }
        out
    }

    /// Number of elements (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The values as `f64` (integers above 2^53 in magnitude are rounded).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            RefData::Float(v) => v.clone(),
            RefData::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    fn check(&self) -> Result<(), String> {
        let float_data = matches!(self.data, RefData::Float(_));
        if float_data != self.dtype.is_float() {
            return Err(format!(
                "{} data for dtype {} (shape {:?})",
                if float_data { "Float" } else { "Int" },
                self.dtype,
                self.shape
            ));
        }
        if self.data.len() != self.numel() {
            return Err(format!(
                "{} values for {}{:?} ({} elements)",
                self.data.len(),
                self.dtype,
                self.shape,
                self.numel()
            ));
        }
        Ok(())
    }
}

/// Evaluates `target` op by op on the host and returns its value.
///
/// `leaf` is called once for every reachable node that has a realized buffer
/// (`node.realized().is_some()`, including every [`Op::Buffer`]) and must return that node's
/// values (dtype and shape of the node); the sources of realized nodes are not visited. Every
/// other node is evaluated exactly once (shared subgraphs are memoized by node id), iteratively
/// in topological order, so arbitrarily deep graphs do not overflow the stack. Intermediate
/// values are dropped as soon as their last user has been evaluated.
///
/// # Panics
/// If `leaf` returns a tensor whose dtype, shape or value count differs from its node's, or the
/// graph holds an invalid bitcast (to or from bool).
pub fn evaluate(target: &NodeRef, leaf: &mut dyn FnMut(&Node) -> RefTensor) -> RefTensor {
    let order = toposort(std::slice::from_ref(target));
    // Remaining uses of each value by nodes still to be evaluated.
    let mut uses: HashMap<u64, usize> = HashMap::new();
    for node in &order {
        if node.realized().is_none() {
            for s in node.src() {
                *uses.entry(s.id()).or_default() += 1;
            }
        }
    }
    let mut values: HashMap<u64, RefTensor> = HashMap::with_capacity(order.len());
    for node in &order {
        let value = if node.realized().is_some() {
            let t = leaf(node);
            if let Err(e) = t.check() {
                panic!("reference: leaf value for {node:?} is malformed: {e}");
            }
            assert!(
                t.dtype == node.dtype() && t.shape == node.shape(),
                "reference: leaf value for {node:?} is {}{:?}, expected {}{:?}",
                t.dtype,
                t.shape,
                node.dtype(),
                node.shape()
            );
            t
        } else {
            let srcs: Vec<&RefTensor> = node
                .src()
                .iter()
                .map(|s| {
                    values
                        .get(&s.id())
                        .expect("reference: source evaluated before its user")
                })
                .collect();
            let t = RefTensor {
                dtype: node.dtype(),
                shape: node.shape().to_vec(),
                data: eval_op(node, &srcs),
            };
            if let Err(e) = t.check() {
                panic!("reference: internal error evaluating {node:?}: {e}");
            }
            for s in node.src() {
                let left = uses.get_mut(&s.id()).expect("reference: use count");
                *left -= 1;
                if *left == 0 && s.id() != target.id() {
                    values.remove(&s.id());
                }
            }
            t
        };
        values.insert(node.id(), value);
    }
    values
        .remove(&target.id())
        .expect("reference: target was evaluated")
}

/// Compares backend output `actual` (as `f64`) with the reference value `expected`.
///
/// For float dtypes an element matches when both are NaN, both are equal (this covers equal
/// infinities), or both are finite and `|actual - expected| <= atol + rtol * |expected|`. For
/// integer and bool dtypes the tolerances are ignored and values must be equal.
///
/// # Panics
/// With a message naming `what`, the number of mismatching elements, the first mismatching flat
/// index (and its multi-index) and both values there; also when the lengths differ.
pub fn assert_close(actual: &[f64], expected: &RefTensor, rtol: f64, atol: f64, what: &str) {
    let exp = expected.to_f64();
    assert_eq!(
        actual.len(),
        exp.len(),
        "{what}: got {} elements, expected {} ({}{:?})",
        actual.len(),
        exp.len(),
        expected.dtype,
        expected.shape
    );
    let float = expected.dtype.is_float();
    let matches = |a: f64, e: f64| {
        if a.is_nan() || e.is_nan() {
            a.is_nan() && e.is_nan()
        } else if a == e {
            true
        } else {
            float && a.is_finite() && e.is_finite() && (a - e).abs() <= atol + rtol * e.abs()
        }
    };
    let mut first = None;
    let mut count = 0usize;
    for (i, (&a, &e)) in actual.iter().zip(&exp).enumerate() {
        if !matches(a, e) {
            count += 1;
            first.get_or_insert(i);
        }
    }
    if let Some(i) = first {
        let tol = if float {
            format!("rtol {rtol}, atol {atol}")
        } else {
            "exact".to_string()
        };
        panic!(
            "{what}: {count} of {} elements mismatch ({}{:?}, {tol}); first at flat index {i} {:?}: \
             actual {:?}, expected {:?}",
            exp.len(),
            expected.dtype,
            expected.shape,
            unravel(i, &expected.shape),
            actual[i],
            exp[i]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar semantics
// ---------------------------------------------------------------------------------------------

/// One element: a float value or an integer / bool value.
#[derive(Clone, Copy)]
enum Val {
    F(f64),
    I(i64),
}

fn collect(dtype: DType, vals: impl Iterator<Item = Val>) -> RefData {
    if dtype.is_float() {
        RefData::Float(
            vals.map(|v| match v {
                Val::F(x) => x,
                Val::I(_) => unreachable!("integer value for float dtype {dtype}"),
            })
            .collect(),
        )
    } else {
        RefData::Int(
            vals.map(|v| match v {
                Val::I(x) => x,
                Val::F(_) => unreachable!("float value for dtype {dtype}"),
            })
            .collect(),
        )
    }
}

/// 2^k as an f64, for k in the normal exponent range.
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k), "pow2({k})");
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Rounds `x` to nearest even in a binary format with `frac_bits` stored fraction bits, smallest
/// normal exponent `emin` and largest exponent `emax` (with subnormals, overflow to infinity).
fn round_to_format(x: f64, frac_bits: i32, emin: i32, emax: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let a = x.abs();
    // Values below f64's normal range are far below any smaller format's subnormals.
    let e = if a < f64::MIN_POSITIVE {
        -1023
    } else {
        ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023
    };
    // The quantum (unit in the last place) of the format at this magnitude.
    let q = e.max(emin) - frac_bits;
    let r = (a * pow2(-q)).round_ties_even() * pow2(q);
    let max = (2.0 - pow2(-frac_bits)) * pow2(emax);
    let r = if r > max { f64::INFINITY } else { r };
    r.copysign(x)
}

/// Rounds an f64 to the float `dtype` (the value stays an f64).
fn round_float(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F64 => x,
        DType::F32 => x as f32 as f64,
        DType::F16 => round_to_format(x, 10, -14, 15),
        DType::BF16 => round_to_format(x, 7, -126, 127),
        _ => unreachable!("round_float: {dtype} is not a float dtype"),
    }
}

/// Wraps an integer to the width of `dtype` (bool: `v != 0`).
fn wrap_int(dtype: DType, v: i64) -> i64 {
    match dtype {
        DType::Bool => (v != 0) as i64,
        DType::I8 => v as i8 as i64,
        DType::U8 => v as u8 as i64,
        DType::I32 => v as i32 as i64,
        DType::U32 => v as u32 as i64,
        DType::I64 => v,
        _ => unreachable!("wrap_int: {dtype} is not an integer dtype"),
    }
}

/// Converts an integer to the float `dtype` with a single rounding to nearest even.
fn int_to_float(dtype: DType, v: i64) -> f64 {
    match dtype {
        DType::F64 => v as f64,
        DType::F32 => v as f32 as f64,
        DType::F16 | DType::BF16 => {
            let keep = if dtype == DType::F16 { 11 } else { 8 };
            let m = v.unsigned_abs();
            let bits = 64 - m.leading_zeros();
            let r = if bits <= keep {
                m as f64
            } else {
                let shift = bits - keep;
                let mut q = m >> shift;
                let rem = m & ((1u64 << shift) - 1);
                let half = 1u64 << (shift - 1);
                if rem > half || (rem == half && q & 1 == 1) {
                    q += 1;
                }
                q as f64 * pow2(shift as i32)
            };
            // Exact with `keep` significant bits; this only maps overflow to infinity.
            round_float(dtype, if v < 0 { -r } else { r })
        }
        _ => unreachable!("int_to_float: {dtype} is not a float dtype"),
    }
}

/// Converts a float to the integer or bool `dtype`: truncation toward zero, saturating at the
/// target range, NaN to 0; bool is `x != 0`.
fn float_to_int(dtype: DType, x: f64) -> i64 {
    match dtype {
        DType::Bool => (x != 0.0) as i64,
        DType::I8 => x as i8 as i64,
        DType::U8 => x as u8 as i64,
        DType::I32 => x as i32 as i64,
        DType::U32 => x as u32 as i64,
        DType::I64 => x as i64,
        _ => unreachable!("float_to_int: {dtype} is not an integer dtype"),
    }
}

/// Cast of a float value to `dtype`.
fn cast_float(dtype: DType, x: f64) -> Val {
    if dtype.is_float() {
        Val::F(round_float(dtype, x))
    } else {
        Val::I(float_to_int(dtype, x))
    }
}

/// Cast of an integer (or bool) value to `dtype`.
fn cast_int(dtype: DType, v: i64) -> Val {
    if dtype.is_float() {
        Val::F(int_to_float(dtype, v))
    } else {
        Val::I(wrap_int(dtype, v))
    }
}

/// The bit pattern of a float value stored in `dtype`.
fn float_bits(dtype: DType, x: f64) -> u64 {
    match dtype {
        DType::F64 => x.to_bits(),
        DType::F32 => (x as f32).to_bits() as u64,
        DType::F16 => half::f16::from_f64(x).to_bits() as u64,
        DType::BF16 => half::bf16::from_f64(x).to_bits() as u64,
        _ => unreachable!("float_bits: {dtype} is not a float dtype"),
    }
}

/// The value of `dtype` (not bool) with the bit pattern `bits` (low `size * 8` bits).
fn from_bits(dtype: DType, bits: u64) -> Val {
    match dtype {
        DType::F64 => Val::F(f64::from_bits(bits)),
        DType::F32 => Val::F(f32::from_bits(bits as u32) as f64),
        DType::F16 => Val::F(half::f16::from_bits(bits as u16).to_f64()),
        DType::BF16 => Val::F(half::bf16::from_bits(bits as u16).to_f64()),
        DType::I8 => Val::I(bits as u8 as i8 as i64),
        DType::U8 => Val::I(bits as u8 as i64),
        DType::I32 => Val::I(bits as u32 as i32 as i64),
        DType::U32 => Val::I(bits as u32 as i64),
        DType::I64 => Val::I(bits as i64),
        DType::Bool => unreachable!("from_bits: bool has no bit pattern conversion"),
    }
}

/// max with NaN propagation; `max(-0, +0) == +0`.
fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a > b || (a == b && a.is_sign_positive()) {
        a
    } else {
        b
    }
}

fn unary_float(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Exp2 => x.exp2(),
        UnaryOp::Log2 => x.log2(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Neg => -x,
        UnaryOp::Trunc => x.trunc(),
    }
}

/// A binary op on float operands; the result is already in its dtype's representation.
fn binary_float(op: BinaryOp, dtype: DType, a: f64, b: f64) -> Val {
    match op {
        BinaryOp::Add => Val::F(round_float(dtype, a + b)),
        BinaryOp::Mul => Val::F(round_float(dtype, a * b)),
        BinaryOp::Max => Val::F(round_float(dtype, fmax(a, b))),
        BinaryOp::CmpLt => Val::I((a < b) as i64),
        BinaryOp::CmpNe => Val::I((a != b) as i64),
        _ => panic!("reference: {op:?} is not defined for float operands ({dtype})"),
    }
}

/// A binary op on integer / bool operands of dtype `src`; the result has dtype `dtype`.
fn binary_int(op: BinaryOp, src: DType, dtype: DType, a: i64, b: i64) -> i64 {
    let bits = (src.size() * 8) as u32;
    let r = match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Max => a.max(b),
        BinaryOp::CmpLt => return (a < b) as i64,
        BinaryOp::CmpNe => return (a != b) as i64,
        BinaryOp::IDiv => {
            if b == 0 {
                0
            } else {
                a.wrapping_div(b)
            }
        }
        BinaryOp::Mod => {
            if b == 0 {
                0
            } else {
                a.wrapping_rem(b)
            }
        }
        BinaryOp::And => a & b,
        BinaryOp::Or => a | b,
        BinaryOp::Xor => a ^ b,
        BinaryOp::Shl => a.wrapping_shl((b as u64 & (bits as u64 - 1)) as u32),
        BinaryOp::Shr => {
            let s = (b as u64 & (bits as u64 - 1)) as u32;
            if src.is_signed_int() {
                a >> s
            } else {
                ((a as u64) >> s) as i64
            }
        }
    };
    wrap_int(dtype, r)
}

// ---------------------------------------------------------------------------------------------
// Index helpers
// ---------------------------------------------------------------------------------------------

/// Row-major strides of `shape` (in elements).
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1];
    }
    st
}

/// The multi-index of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

/// Calls `f` with every multi-index of `shape` in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..numel(shape) {
        f(&idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Builds a tensor of `out_shape` whose element at multi-index `o` is the source element at the
/// multi-index that `map(o, s)` writes into `s`, or zero where `map` returns false (padding).
fn gather(
    src: &RefTensor,
    out_shape: &[usize],
    map: impl Fn(&[usize], &mut [usize]) -> bool,
) -> RefData {
    let st = strides(&src.shape);
    let mut sidx = vec![0usize; src.shape.len()];
    let mut flat: Vec<Option<usize>> = Vec::with_capacity(numel(out_shape));
    for_each_index(out_shape, |o| {
        if map(o, &mut sidx) {
            debug_assert!(sidx.iter().zip(&src.shape).all(|(&i, &n)| i < n));
            flat.push(Some(sidx.iter().zip(&st).map(|(&i, &s)| i * s).sum()));
        } else {
            flat.push(None);
        }
    });
    match &src.data {
        RefData::Float(v) => RefData::Float(flat.iter().map(|f| f.map_or(0.0, |i| v[i])).collect()),
        RefData::Int(v) => RefData::Int(flat.iter().map(|f| f.map_or(0, |i| v[i])).collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------------

fn int_data<'a>(t: &'a RefTensor, what: &str) -> &'a [i64] {
    match &t.data {
        RefData::Int(v) => v,
        RefData::Float(_) => panic!(
            "reference: {what} needs integer data, got {}{:?}",
            t.dtype, t.shape
        ),
    }
}

/// Evaluates one unrealized node from the values of its sources.
fn eval_op(node: &Node, srcs: &[&RefTensor]) -> RefData {
    let dtype = node.dtype();
    let shape = node.shape();
    let n = numel(shape);
    match node.op() {
        Op::Buffer(b) => panic!("reference: buffer node {node:?} ({b:?}) is not realized"),
        Op::Const(value) => {
            let v = match *value {
                Scalar::Float(x) => cast_float(dtype, x),
                Scalar::Int(i) => cast_int(dtype, i),
                Scalar::Bool(b) => cast_int(dtype, b as i64),
            };
            collect(dtype, std::iter::repeat_n(v, n))
        }
        Op::Arange(axis) => {
            let stride = strides(shape)[*axis];
            let len = shape[*axis];
            collect(
                dtype,
                (0..n).map(|i| cast_int(dtype, ((i / stride) % len) as i64)),
            )
        }
        Op::Unary(op) => {
            let a = srcs[0];
            match &a.data {
                RefData::Float(v) => RefData::Float(
                    v.iter()
                        .map(|&x| round_float(dtype, unary_float(*op, x)))
                        .collect(),
                ),
                RefData::Int(v) => match op {
                    UnaryOp::Neg => RefData::Int(
                        v.iter()
                            .map(|&x| wrap_int(dtype, x.wrapping_neg()))
                            .collect(),
                    ),
                    _ => panic!("reference: {op:?} is not defined for {}", a.dtype),
                },
            }
        }
        Op::Cast => match &srcs[0].data {
            RefData::Float(v) => collect(dtype, v.iter().map(|&x| cast_float(dtype, x))),
            RefData::Int(v) => collect(dtype, v.iter().map(|&x| cast_int(dtype, x))),
        },
        Op::Bitcast => {
            let a = srcs[0];
            assert!(
                a.dtype != DType::Bool && dtype != DType::Bool && a.dtype.size() == dtype.size(),
                "reference: bitcast {} to {} is not a valid bitcast ({node:?})",
                a.dtype,
                dtype
            );
            let mask = if a.dtype.size() == 8 {
                u64::MAX
            } else {
                (1u64 << (a.dtype.size() * 8)) - 1
            };
            match &a.data {
                RefData::Float(v) => collect(
                    dtype,
                    v.iter().map(|&x| from_bits(dtype, float_bits(a.dtype, x))),
                ),
                RefData::Int(v) => {
                    collect(dtype, v.iter().map(|&x| from_bits(dtype, x as u64 & mask)))
                }
            }
        }
        Op::Binary(op) => {
            let (a, b) = (srcs[0], srcs[1]);
            match (&a.data, &b.data) {
                (RefData::Float(x), RefData::Float(y)) => collect(
                    dtype,
                    x.iter()
                        .zip(y)
                        .map(|(&x, &y)| binary_float(*op, dtype, x, y)),
                ),
                (RefData::Int(x), RefData::Int(y)) => RefData::Int(
                    x.iter()
                        .zip(y)
                        .map(|(&x, &y)| binary_int(*op, a.dtype, dtype, x, y))
                        .collect(),
                ),
                _ => panic!(
                    "reference: {op:?} operands {} and {} differ ({node:?})",
                    a.dtype, b.dtype
                ),
            }
        }
        Op::Ternary(TernaryOp::Where) => {
            let cond = int_data(srcs[0], "where condition");
            match (&srcs[1].data, &srcs[2].data) {
                (RefData::Float(a), RefData::Float(b)) => RefData::Float(
                    cond.iter()
                        .zip(a.iter().zip(b))
                        .map(|(&c, (&a, &b))| if c != 0 { a } else { b })
                        .collect(),
                ),
                (RefData::Int(a), RefData::Int(b)) => RefData::Int(
                    cond.iter()
                        .zip(a.iter().zip(b))
                        .map(|(&c, (&a, &b))| if c != 0 { a } else { b })
                        .collect(),
                ),
                _ => panic!("reference: where branches differ ({node:?})"),
            }
        }
        Op::Ternary(TernaryOp::MulAcc) => match (&srcs[0].data, &srcs[1].data, &srcs[2].data) {
            (RefData::Float(a), RefData::Float(b), RefData::Float(c)) => RefData::Float(
                a.iter()
                    .zip(b)
                    .zip(c)
                    .map(|((&a, &b), &c)| round_float(dtype, a.mul_add(b, c)))
                    .collect(),
            ),
            (RefData::Int(a), RefData::Int(b), RefData::Int(c)) => RefData::Int(
                a.iter()
                    .zip(b)
                    .zip(c)
                    .map(|((&a, &b), &c)| wrap_int(dtype, a.wrapping_mul(b).wrapping_add(c)))
                    .collect(),
            ),
            _ => panic!("reference: mulacc operands differ ({node:?})"),
        },
        Op::Reduce(op, axes) => reduce(*op, axes, srcs[0], shape),
        Op::Reshape => srcs[0].data.clone(),
        Op::Permute(perm) => gather(srcs[0], shape, |o, s| {
            for (i, &p) in perm.iter().enumerate() {
                s[p] = o[i];
            }
            true
        }),
        Op::Expand => {
            let src_shape = &srcs[0].shape;
            gather(srcs[0], shape, |o, s| {
                for d in 0..o.len() {
                    s[d] = if src_shape[d] == 1 { 0 } else { o[d] };
                }
                true
            })
        }
        Op::Pad(padding) => {
            let src_shape = &srcs[0].shape;
            gather(srcs[0], shape, |o, s| {
                for d in 0..o.len() {
                    let before = padding[d].0;
                    if o[d] < before || o[d] >= before + src_shape[d] {
                        return false;
                    }
                    s[d] = o[d] - before;
                }
                true
            })
        }
        Op::Shrink(bounds) => gather(srcs[0], shape, |o, s| {
            for d in 0..o.len() {
                s[d] = o[d] + bounds[d].0;
            }
            true
        }),
        Op::Flip(axes) => gather(srcs[0], shape, |o, s| {
            for d in 0..o.len() {
                s[d] = if axes.contains(&d) {
                    shape[d] - 1 - o[d]
                } else {
                    o[d]
                };
            }
            true
        }),
        Op::Contiguous | Op::Copy => srcs[0].data.clone(),
    }
}

/// Reduces `src` over `axes` into `out_shape` (the source shape with reduced axes set to 1).
fn reduce(op: ReduceOp, axes: &[usize], src: &RefTensor, out_shape: &[usize]) -> RefData {
    let dtype = src.dtype;
    let out_n = numel(out_shape);
    // Output stride of each source axis; 0 for reduced axes.
    let ost: Vec<usize> = strides(out_shape)
        .into_iter()
        .enumerate()
        .map(|(d, s)| if axes.contains(&d) { 0 } else { s })
        .collect();
    let out_of = |idx: &[usize]| -> usize { idx.iter().zip(&ost).map(|(&i, &s)| i * s).sum() };
    match &src.data {
        RefData::Float(v) => {
            let mut acc = vec![op.identity(dtype).as_f64(); out_n];
            let mut comp = vec![0.0f64; out_n];
            let mut i = 0;
            for_each_index(&src.shape, |idx| {
                let (o, x) = (out_of(idx), v[i]);
                i += 1;
                match op {
                    ReduceOp::Sum => {
                        // Neumaier's compensated summation.
                        let s = acc[o];
                        let t = s + x;
                        comp[o] += if s.abs() >= x.abs() {
                            (s - t) + x
                        } else {
                            (x - t) + s
                        };
                        acc[o] = t;
                    }
                    ReduceOp::Prod => acc[o] *= x,
                    ReduceOp::Max => acc[o] = fmax(acc[o], x),
                }
            });
            RefData::Float(
                acc.iter()
                    .zip(&comp)
                    .map(|(&s, &c)| {
                        round_float(
                            dtype,
                            if s.is_finite() && c.is_finite() {
                                s + c
                            } else {
                                s
                            },
                        )
                    })
                    .collect(),
            )
        }
        RefData::Int(v) => {
            let mut acc = vec![op.identity(dtype).as_i64(); out_n];
            let mut i = 0;
            for_each_index(&src.shape, |idx| {
                let (o, x) = (out_of(idx), v[i]);
                i += 1;
                acc[o] = match op {
                    ReduceOp::Sum => acc[o].wrapping_add(x),
                    ReduceOp::Prod => acc[o].wrapping_mul(x),
                    ReduceOp::Max => acc[o].max(x),
                };
            });
            RefData::Int(acc.into_iter().map(|x| wrap_int(dtype, x)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::BufferHandle;
    use std::sync::Arc;

    fn cpu() -> Arc<str> {
        Arc::from("cpu")
    }

    /// A realized leaf holding `t`; [`eval`] hands the tensor back to the evaluator.
    fn input(t: RefTensor) -> NodeRef {
        let (dtype, shape) = (t.dtype, t.shape.clone());
        Node::buffer(BufferHandle::new(Arc::new(t)), dtype, &shape, &cpu())
    }

    fn read_leaf(node: &Node) -> RefTensor {
        let buf = node.realized().expect("leaf is realized");
        buf.data()
            .downcast_ref::<RefTensor>()
            .expect("test buffers hold RefTensors")
            .clone()
    }

    fn eval(n: &NodeRef) -> RefTensor {
        evaluate(n, &mut |node: &Node| read_leaf(node))
    }

    fn floats(dtype: DType, shape: &[usize], v: &[f64]) -> NodeRef {
        input(RefTensor::from_f64(dtype, shape, v))
    }

    fn ints(dtype: DType, shape: &[usize], v: &[i64]) -> NodeRef {
        input(RefTensor::from_i64(dtype, shape, v))
    }

    fn int_vals(t: &RefTensor) -> Vec<i64> {
        match &t.data {
            RefData::Int(v) => v.clone(),
            RefData::Float(_) => panic!("expected integer data, got {}", t.dtype),
        }
    }

    fn float_vals(t: &RefTensor) -> Vec<f64> {
        match &t.data {
            RefData::Float(v) => v.clone(),
            RefData::Int(_) => panic!("expected float data, got {}", t.dtype),
        }
    }

    /// Evaluates `n` and checks dtype, shape and exact integer values.
    fn check_ints(n: &NodeRef, shape: &[usize], expected: &[i64]) {
        let t = eval(n);
        assert_eq!(t.dtype, n.dtype());
        assert_eq!(t.shape, shape, "shape of {n:?}");
        assert_eq!(int_vals(&t), expected, "values of {n:?}");
    }

    /// Evaluates `n` and checks dtype, shape and bit-exact float values (NaN matches NaN).
    fn check_floats(n: &NodeRef, shape: &[usize], expected: &[f64]) {
        let t = eval(n);
        assert_eq!(t.dtype, n.dtype());
        assert_eq!(t.shape, shape, "shape of {n:?}");
        let got = float_vals(&t);
        assert_eq!(got.len(), expected.len(), "length of {n:?}");
        for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
            assert!(
                g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
                "{n:?}[{i}]: got {g:e}, expected {e:e}"
            );
        }
    }

    /// [[0, 1, 2], [3, 4, 5]] as i32.
    fn arange23() -> NodeRef {
        Node::reshape(&Node::arange(0, DType::I32, &[6], &cpu()), &[2, 3])
    }

    fn bin(op: BinaryOp, a: &NodeRef, b: &NodeRef) -> NodeRef {
        Node::binary(op, a, b)
    }

    #[test]
    fn arange_and_const() {
        check_ints(&arange23(), &[2, 3], &[0, 1, 2, 3, 4, 5]);
        check_ints(
            &Node::arange(1, DType::I32, &[2, 3], &cpu()),
            &[2, 3],
            &[0, 1, 2, 0, 1, 2],
        );
        check_ints(
            &Node::arange(0, DType::I64, &[2, 3], &cpu()),
            &[2, 3],
            &[0, 0, 0, 1, 1, 1],
        );
        // Arange wraps to its dtype.
        let a = Node::arange(0, DType::I8, &[130], &cpu());
        let t = eval(&a);
        assert_eq!(int_vals(&t)[127..], [127, -128, -127]);
        check_floats(
            &Node::constant(Scalar::Float(0.1), DType::F32, &[2], &cpu()),
            &[2],
            &[0.1f32 as f64; 2],
        );
        check_ints(
            &Node::constant(Scalar::Int(-3), DType::I32, &[1, 2], &cpu()),
            &[1, 2],
            &[-3, -3],
        );
        check_ints(
            &Node::constant(Scalar::Bool(true), DType::Bool, &[3], &cpu()),
            &[3],
            &[1, 1, 1],
        );
    }

    #[test]
    fn movement_ops_on_2x3() {
        let a = arange23();
        check_ints(&Node::reshape(&a, &[3, 2]), &[3, 2], &[0, 1, 2, 3, 4, 5]);
        check_ints(&Node::reshape(&a, &[6, 1]), &[6, 1], &[0, 1, 2, 3, 4, 5]);
        check_ints(&Node::permute(&a, &[1, 0]), &[3, 2], &[0, 3, 1, 4, 2, 5]);
        check_ints(
            &Node::pad(&a, &[(1, 0), (0, 2)]),
            &[3, 5],
            &[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 5, 0, 0],
        );
        check_ints(
            &Node::pad(&a, &[(0, 1), (1, 1)]),
            &[3, 5],
            &[0, 0, 1, 2, 0, 0, 3, 4, 5, 0, 0, 0, 0, 0, 0],
        );
        check_ints(&Node::shrink(&a, &[(0, 2), (1, 3)]), &[2, 2], &[1, 2, 4, 5]);
        check_ints(&Node::shrink(&a, &[(1, 2), (0, 2)]), &[1, 2], &[3, 4]);
        check_ints(&Node::flip(&a, &[1]), &[2, 3], &[2, 1, 0, 5, 4, 3]);
        check_ints(&Node::flip(&a, &[0]), &[2, 3], &[3, 4, 5, 0, 1, 2]);
        check_ints(&Node::flip(&a, &[0, 1]), &[2, 3], &[5, 4, 3, 2, 1, 0]);
        let row = Node::shrink(&a, &[(0, 1), (0, 3)]);
        check_ints(&Node::expand(&row, &[2, 3]), &[2, 3], &[0, 1, 2, 0, 1, 2]);
        let col = Node::shrink(&a, &[(0, 2), (2, 3)]);
        check_ints(&Node::expand(&col, &[2, 3]), &[2, 3], &[2, 2, 2, 5, 5, 5]);
        let one = Node::reshape(&Node::shrink(&a, &[(1, 2), (1, 2)]), &[1, 1, 1]);
        check_ints(&Node::expand(&one, &[2, 1, 2]), &[2, 1, 2], &[4, 4, 4, 4]);
        // A composition: pad, flip, shrink, permute.
        let p = Node::pad(&a, &[(1, 1), (1, 0)]); // [4, 4]: rows 0, [0 0 1 2], [0 3 4 5], 0
        let f = Node::flip(&p, &[0, 1]); // rows 0, [5 4 3 0], [2 1 0 0], 0
        let s = Node::shrink(&f, &[(1, 3), (0, 2)]); // [[5, 4], [2, 1]]
        check_ints(&Node::permute(&s, &[1, 0]), &[2, 2], &[5, 2, 4, 1]);
        // Movement ops keep float values and pad floats with +0.0.
        let fl = Node::cast(&a, DType::F32);
        check_floats(
            &Node::pad(&Node::flip(&fl, &[1]), &[(0, 0), (1, 0)]),
            &[2, 4],
            &[0.0, 2.0, 1.0, 0.0, 0.0, 5.0, 4.0, 3.0],
        );
    }

    #[test]
    fn permute_3d_matches_index_formula() {
        let a = Node::reshape(&Node::arange(0, DType::I32, &[24], &cpu()), &[2, 3, 4]);
        let p = Node::permute(&a, &[2, 0, 1]); // shape [4, 2, 3]; p[i, j, k] = a[j, k, i]
        let mut expected = Vec::new();
        for i in 0..4 {
            for j in 0..2 {
                for k in 0..3 {
                    expected.push((j * 12 + k * 4 + i) as i64);
                }
            }
        }
        check_ints(&p, &[4, 2, 3], &expected);
        // Hand-checked corners: p[1, 0, 2] = a[0, 2, 1] = 9; p[3, 1, 0] = a[1, 0, 3] = 15.
        let t = eval(&p);
        assert_eq!(int_vals(&t)[6 + 2], 9);
        assert_eq!(int_vals(&t)[3 * 6 + 3], 15);
    }

    #[test]
    fn reductions() {
        let x = Node::cast(&arange23(), DType::F32);
        check_floats(
            &Node::reduce(ReduceOp::Sum, &x, &[0]),
            &[1, 3],
            &[3.0, 5.0, 7.0],
        );
        check_floats(
            &Node::reduce(ReduceOp::Sum, &x, &[1]),
            &[2, 1],
            &[3.0, 12.0],
        );
        check_floats(&Node::reduce(ReduceOp::Sum, &x, &[0, 1]), &[1, 1], &[15.0]);
        check_floats(&Node::reduce(ReduceOp::Max, &x, &[1]), &[2, 1], &[2.0, 5.0]);
        check_floats(
            &Node::reduce(ReduceOp::Max, &x, &[0]),
            &[1, 3],
            &[3.0, 4.0, 5.0],
        );
        let x1 = bin(
            BinaryOp::Add,
            &x,
            &Node::constant(Scalar::Float(1.0), DType::F32, &[2, 3], &cpu()),
        );
        check_floats(
            &Node::reduce(ReduceOp::Prod, &x1, &[1]),
            &[2, 1],
            &[6.0, 120.0],
        );
        check_floats(
            &Node::reduce(ReduceOp::Prod, &x1, &[0, 1]),
            &[1, 1],
            &[720.0],
        );
        // Several axes of a 3-d tensor: sum over axes 0 and 2 of arange(24).reshape(2, 3, 4).
        let a = Node::reshape(&Node::arange(0, DType::I32, &[24], &cpu()), &[2, 3, 4]);
        // Row k: sum over j, l of (12 j + 4 k + l) = 2*4*4k + 4*12 + 2*6 = 32k + 60.
        check_ints(
            &Node::reduce(ReduceOp::Sum, &a, &[2, 0]),
            &[1, 3, 1],
            &[60, 92, 124],
        );
        check_ints(
            &Node::reduce(ReduceOp::Max, &a, &[0, 1]),
            &[1, 1, 4],
            &[20, 21, 22, 23],
        );
        // Integer sums wrap: 200 ones in i8 is -56.
        let ones = Node::constant(Scalar::Int(1), DType::I8, &[200], &cpu());
        check_ints(&Node::reduce(ReduceOp::Sum, &ones, &[0]), &[1], &[-56]);
        let u = ints(DType::U8, &[3], &[16, 16, 3]);
        check_ints(&Node::reduce(ReduceOp::Prod, &u, &[0]), &[1], &[0]); // 768 mod 256
                                                                         // Bool reductions: any / all.
        let b = ints(DType::Bool, &[2, 2], &[1, 0, 0, 0]);
        check_ints(&Node::reduce(ReduceOp::Sum, &b, &[1]), &[2, 1], &[1, 0]);
        check_ints(&Node::reduce(ReduceOp::Prod, &b, &[1]), &[2, 1], &[0, 0]);
        check_ints(&Node::reduce(ReduceOp::Max, &b, &[0]), &[1, 2], &[1, 0]);
    }

    #[test]
    fn float_sums_accumulate_in_f64() {
        // Summed in f32 every +1 would be lost; the reference rounds once at the end.
        let x = floats(DType::F32, &[5], &[16777216.0, 1.0, 1.0, 1.0, 1.0]);
        check_floats(&Node::reduce(ReduceOp::Sum, &x, &[0]), &[1], &[16777220.0]);
        // f64 sums are compensated: naive f64 summation gives 0 here.
        let y = floats(DType::F64, &[3], &[1e16, 1.0, -1e16]);
        check_floats(&Node::reduce(ReduceOp::Sum, &y, &[0]), &[1], &[1.0]);
        // f16: 4 * 2049 = 8196 is exact in f64 and rounds (tie, even) to 8192 in f16... but the
        // inputs are f16 values first: 2049 rounds to 2048 (tie to even), so 4 * 2048 = 8192.
        let h = floats(DType::F16, &[4], &[2049.0, 2049.0, 2049.0, 2049.0]);
        check_floats(&Node::reduce(ReduceOp::Sum, &h, &[0]), &[1], &[8192.0]);
        let h = floats(DType::F16, &[3], &[2048.0, 1.0, 1.0]);
        check_floats(&Node::reduce(ReduceOp::Sum, &h, &[0]), &[1], &[2050.0]);
        // Infinities and NaN propagate.
        let z = floats(DType::F32, &[3], &[f64::INFINITY, 1.0, f64::NEG_INFINITY]);
        check_floats(&Node::reduce(ReduceOp::Sum, &z, &[0]), &[1], &[f64::NAN]);
        let z = floats(DType::F32, &[2], &[f64::INFINITY, 1.0]);
        check_floats(
            &Node::reduce(ReduceOp::Sum, &z, &[0]),
            &[1],
            &[f64::INFINITY],
        );
        // The final result overflows f32.
        let big = floats(DType::F32, &[2], &[3e38, 3e38]);
        check_floats(
            &Node::reduce(ReduceOp::Sum, &big, &[0]),
            &[1],
            &[f64::INFINITY],
        );
    }

    #[test]
    fn integer_division_and_modulo() {
        let a = ints(
            DType::I32,
            &[9],
            &[7, -7, 7, -7, 5, -5, i32::MIN as i64, i32::MIN as i64, 0],
        );
        let b = ints(DType::I32, &[9], &[2, 2, -2, -2, 0, 0, -1, 1, 3]);
        check_ints(
            &bin(BinaryOp::IDiv, &a, &b),
            &[9],
            &[3, -3, -3, 3, 0, 0, i32::MIN as i64, i32::MIN as i64, 0],
        );
        check_ints(
            &bin(BinaryOp::Mod, &a, &b),
            &[9],
            &[1, -1, 1, -1, 0, 0, 0, 0, 0],
        );
        let a = ints(DType::I8, &[2], &[-128, -128]);
        let b = ints(DType::I8, &[2], &[-1, 3]);
        check_ints(&bin(BinaryOp::IDiv, &a, &b), &[2], &[-128, -42]);
        check_ints(&bin(BinaryOp::Mod, &a, &b), &[2], &[0, -2]);
        let a = ints(DType::I64, &[1], &[i64::MIN]);
        let b = ints(DType::I64, &[1], &[-1]);
        check_ints(&bin(BinaryOp::IDiv, &a, &b), &[1], &[i64::MIN]);
        check_ints(&bin(BinaryOp::Mod, &a, &b), &[1], &[0]);
        let a = ints(DType::U8, &[3], &[200, 255, 9]);
        let b = ints(DType::U8, &[3], &[7, 0, 255]);
        check_ints(&bin(BinaryOp::IDiv, &a, &b), &[3], &[28, 0, 0]);
        check_ints(&bin(BinaryOp::Mod, &a, &b), &[3], &[4, 0, 9]);
        let a = ints(DType::U32, &[1], &[u32::MAX as i64]);
        let b = ints(DType::U32, &[1], &[2]);
        check_ints(&bin(BinaryOp::IDiv, &a, &b), &[1], &[(u32::MAX / 2) as i64]);
    }

    #[test]
    fn integer_wrapping_and_shifts() {
        let a = ints(DType::I32, &[3], &[i32::MAX as i64, i32::MIN as i64, 65536]);
        let b = ints(DType::I32, &[3], &[1, -1, 65536]);
        check_ints(
            &bin(BinaryOp::Add, &a, &b),
            &[3],
            &[i32::MIN as i64, i32::MAX as i64, 131072],
        );
        check_ints(
            &bin(BinaryOp::Mul, &a, &b),
            &[3],
            &[i32::MAX as i64, i32::MIN as i64, 0],
        );
        check_ints(
            &Node::unary(UnaryOp::Neg, &a),
            &[3],
            &[-(i32::MAX as i64), i32::MIN as i64, -65536],
        );
        let u = ints(DType::U8, &[2], &[200, 1]);
        let v = ints(DType::U8, &[2], &[100, 0]);
        check_ints(&bin(BinaryOp::Add, &u, &v), &[2], &[44, 1]);
        check_ints(&Node::unary(UnaryOp::Neg, &u), &[2], &[56, 255]);
        let u = ints(DType::U32, &[2], &[u32::MAX as i64, 65536]);
        let v = ints(DType::U32, &[2], &[1, 65536]);
        check_ints(&bin(BinaryOp::Add, &u, &v), &[2], &[0, 131072]);
        check_ints(&bin(BinaryOp::Mul, &u, &v), &[2], &[u32::MAX as i64, 0]);
        check_ints(&bin(BinaryOp::CmpLt, &v, &u), &[2], &[1, 0]); // unsigned order
        check_ints(&bin(BinaryOp::Max, &u, &v), &[2], &[u32::MAX as i64, 65536]);
        let l = ints(DType::I64, &[1], &[i64::MAX]);
        check_ints(
            &bin(BinaryOp::Add, &l, &ints(DType::I64, &[1], &[1])),
            &[1],
            &[i64::MIN],
        );

        // Shifts: amount modulo the bit width, arithmetic / logical right shifts.
        let a = ints(DType::I32, &[7], &[1, 1, 1, -8, -1, 1, 3]);
        let s = ints(DType::I32, &[7], &[31, 32, 33, 1, 31, -1, 0]);
        check_ints(
            &bin(BinaryOp::Shl, &a, &s),
            &[7],
            &[
                i32::MIN as i64,
                1,
                2,
                -16,
                i32::MIN as i64,
                i32::MIN as i64,
                3,
            ],
        );
        check_ints(&bin(BinaryOp::Shr, &a, &s), &[7], &[0, 1, 0, -4, -1, 0, 3]);
        let a = ints(DType::U32, &[3], &[0x8000_0000, 0x8000_0000, 6]);
        let s = ints(DType::U32, &[3], &[31, 32, 1]);
        check_ints(&bin(BinaryOp::Shr, &a, &s), &[3], &[1, 0x8000_0000, 3]);
        check_ints(&bin(BinaryOp::Shl, &a, &s), &[3], &[0, 0x8000_0000, 12]);
        let a = ints(DType::U8, &[3], &[200, 1, 255]);
        let s = ints(DType::U8, &[3], &[1, 9, 8]);
        check_ints(&bin(BinaryOp::Shr, &a, &s), &[3], &[100, 0, 255]);
        check_ints(&bin(BinaryOp::Shl, &a, &s), &[3], &[144, 2, 255]);
        let a = ints(DType::I8, &[3], &[1, -128, -128]);
        let s = ints(DType::I8, &[3], &[-1, 7, 1]);
        check_ints(&bin(BinaryOp::Shl, &a, &s), &[3], &[-128, 0, 0]);
        check_ints(&bin(BinaryOp::Shr, &a, &s), &[3], &[0, -1, -64]);
        let a = ints(DType::I64, &[2], &[1, i64::MIN]);
        let s = ints(DType::I64, &[2], &[64, 63]);
        check_ints(&bin(BinaryOp::Shl, &a, &s), &[2], &[1, 0]);
        check_ints(&bin(BinaryOp::Shr, &a, &s), &[2], &[1, -1]);

        // Bitwise ops; logical on bools, and Add / Mul / Max on bools are or / and / or.
        let a = ints(DType::I32, &[2], &[0b1100, -1]);
        let b = ints(DType::I32, &[2], &[0b1010, 5]);
        check_ints(&bin(BinaryOp::And, &a, &b), &[2], &[0b1000, 5]);
        check_ints(&bin(BinaryOp::Or, &a, &b), &[2], &[0b1110, -1]);
        check_ints(&bin(BinaryOp::Xor, &a, &b), &[2], &[0b0110, -6]);
        let p = ints(DType::Bool, &[4], &[0, 0, 1, 1]);
        let q = ints(DType::Bool, &[4], &[0, 1, 0, 1]);
        check_ints(&bin(BinaryOp::And, &p, &q), &[4], &[0, 0, 0, 1]);
        check_ints(&bin(BinaryOp::Or, &p, &q), &[4], &[0, 1, 1, 1]);
        check_ints(&bin(BinaryOp::Xor, &p, &q), &[4], &[0, 1, 1, 0]);
        check_ints(&bin(BinaryOp::Add, &p, &q), &[4], &[0, 1, 1, 1]);
        check_ints(&bin(BinaryOp::Mul, &p, &q), &[4], &[0, 0, 0, 1]);
        check_ints(&bin(BinaryOp::CmpLt, &p, &q), &[4], &[0, 1, 0, 0]);
        check_ints(&bin(BinaryOp::CmpNe, &p, &q), &[4], &[0, 1, 1, 0]);
    }

    #[test]
    fn casts_saturate_wrap_and_round_once() {
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        let x = floats(
            DType::F32,
            &[8],
            &[300.0, -300.0, 1.9, -1.9, nan, inf, -inf, -0.5],
        );
        check_ints(
            &Node::cast(&x, DType::I8),
            &[8],
            &[127, -128, 1, -1, 0, 127, -128, 0],
        );
        check_ints(
            &Node::cast(&x, DType::U8),
            &[8],
            &[255, 0, 1, 0, 0, 255, 0, 0],
        );
        check_ints(
            &Node::cast(&x, DType::Bool),
            &[8],
            &[1, 1, 1, 1, 1, 1, 1, 1],
        );
        let x = floats(DType::F64, &[5], &[3e9, -3e9, 4294967296.0, -1.0, 1e300]);
        check_ints(
            &Node::cast(&x, DType::I32),
            &[5],
            &[
                i32::MAX as i64,
                i32::MIN as i64,
                i32::MAX as i64,
                -1,
                i32::MAX as i64,
            ],
        );
        check_ints(
            &Node::cast(&x, DType::U32),
            &[5],
            &[3_000_000_000, 0, u32::MAX as i64, 0, u32::MAX as i64],
        );
        check_ints(
            &Node::cast(&x, DType::I64),
            &[5],
            &[3_000_000_000, -3_000_000_000, 4294967296, -1, i64::MAX],
        );
        let z = floats(DType::F32, &[3], &[0.0, -0.0, 2.5]);
        check_ints(&Node::cast(&z, DType::Bool), &[3], &[0, 0, 1]);
        // int -> int wraps; x -> bool is x != 0; bool -> x is 0 / 1.
        let i = ints(DType::I32, &[4], &[300, -1, -129, 256]);
        check_ints(&Node::cast(&i, DType::U8), &[4], &[44, 255, 127, 0]);
        check_ints(&Node::cast(&i, DType::I8), &[4], &[44, -1, 127, 0]);
        check_ints(
            &Node::cast(&i, DType::U32),
            &[4],
            &[300, u32::MAX as i64, u32::MAX as i64 - 128, 256],
        );
        check_ints(&Node::cast(&i, DType::Bool), &[4], &[1, 1, 1, 1]);
        let u = ints(DType::U32, &[2], &[u32::MAX as i64, 7]);
        check_ints(&Node::cast(&u, DType::I32), &[2], &[-1, 7]);
        check_floats(&Node::cast(&u, DType::F64), &[2], &[u32::MAX as f64, 7.0]);
        let b = ints(DType::Bool, &[2], &[1, 0]);
        check_floats(&Node::cast(&b, DType::F32), &[2], &[1.0, 0.0]);
        check_ints(&Node::cast(&b, DType::I64), &[2], &[1, 0]);
        // int -> float rounds once: 2^60 + 2^36 + 1 is above the f32 midpoint 2^60 + 2^36, although
        // it rounds to that midpoint in f64 (which would then tie to even, down to 2^60).
        let big = ints(DType::I64, &[1], &[(1 << 60) + (1 << 36) + 1]);
        check_floats(
            &Node::cast(&big, DType::F32),
            &[1],
            &[((1u64 << 60) + (1u64 << 37)) as f64],
        );
        // Same for bf16: 2^60 + 2^53 + 2^52 - 1 is just below the midpoint.
        let big = ints(
            DType::I64,
            &[2],
            &[
                (1 << 60) + (1 << 53) + (1 << 52) - 1,
                -(1 << 60) - (1 << 53) - (1 << 52),
            ],
        );
        check_floats(
            &Node::cast(&big, DType::BF16),
            &[2],
            &[
                ((1u64 << 60) + (1u64 << 53)) as f64,
                -(((1u64 << 60) + (1u64 << 54)) as f64),
            ],
        );
        let i = ints(DType::I32, &[4], &[65519, 65520, 2049, -70000]);
        check_floats(
            &Node::cast(&i, DType::F16),
            &[4],
            &[65504.0, inf, 2048.0, -inf],
        );
        // float -> float rounds.
        let f = floats(DType::F64, &[4], &[0.1, 65519.0, 65520.0, 1e-8]);
        check_floats(
            &Node::cast(&f, DType::F32),
            &[4],
            &[0.1f32 as f64, 65519.0, 65520.0, 1e-8f32 as f64],
        );
        check_floats(
            &Node::cast(&f, DType::F16),
            &[4],
            &[half::f16::from_f32(0.1).to_f64(), 65504.0, inf, 0.0],
        );
        let h = floats(DType::F32, &[1], &[1.0 / 3.0]);
        check_floats(&Node::cast(&h, DType::BF16), &[1], &[0.333984375]);
    }

    #[test]
    fn bitcasts_reinterpret_bits() {
        let one = floats(DType::F32, &[3], &[1.0, -0.0, -2.0]);
        check_ints(
            &Node::bitcast(&one, DType::U32),
            &[3],
            &[0x3f80_0000, 0x8000_0000, 0xc000_0000],
        );
        check_ints(
            &Node::bitcast(&one, DType::I32),
            &[3],
            &[0x3f80_0000, i32::MIN as i64, 0xc000_0000u32 as i32 as i64],
        );
        let u = ints(DType::U32, &[2], &[0x3f80_0000, 0x7f80_0000]);
        check_floats(&Node::bitcast(&u, DType::F32), &[2], &[1.0, f64::INFINITY]);
        let i = ints(DType::I32, &[1], &[-1]);
        check_floats(&Node::bitcast(&i, DType::F32), &[1], &[f64::NAN]);
        let d = floats(DType::F64, &[1], &[1.0]);
        check_ints(
            &Node::bitcast(&d, DType::I64),
            &[1],
            &[0x3ff0_0000_0000_0000],
        );
        let l = ints(DType::I64, &[1], &[0x4000_0000_0000_0000]);
        check_floats(&Node::bitcast(&l, DType::F64), &[1], &[2.0]);
        let b = ints(DType::U8, &[2], &[255, 128]);
        check_ints(&Node::bitcast(&b, DType::I8), &[2], &[-1, -128]);
        let s = ints(DType::I8, &[2], &[-1, 5]);
        check_ints(&Node::bitcast(&s, DType::U8), &[2], &[255, 5]);
        // f16 1.0 is 0x3c00, which as bf16 is 2^(0x78 - 127) = 2^-7.
        let h = floats(DType::F16, &[1], &[1.0]);
        check_floats(&Node::bitcast(&h, DType::BF16), &[1], &[0.0078125]);
        // Round trip f32 -> u32 -> f32.
        let x = floats(DType::F32, &[2], &[0.1, -3.5e-40]);
        check_floats(
            &Node::bitcast(&Node::bitcast(&x, DType::U32), DType::F32),
            &[2],
            &[0.1f32 as f64, -3.5e-40f32 as f64],
        );
    }

    #[test]
    #[should_panic(expected = "bitcast bool to u8 is not a valid bitcast")]
    fn bool_bitcast_panics() {
        let b = ints(DType::Bool, &[1], &[1]);
        eval(&Node::bitcast(&b, DType::U8));
    }

    #[test]
    fn half_precision_rounding() {
        let third = 0.333251953125; // f16 0x3555, the nearest f16 to 1/3
        assert_eq!(half::f16::from_bits(0x3555).to_f64(), third);
        let three = Node::constant(Scalar::Float(3.0), DType::F16, &[1], &cpu());
        check_floats(&Node::unary(UnaryOp::Recip, &three), &[1], &[third]);
        let one = Node::constant(Scalar::Float(1.0), DType::F16, &[1], &cpu());
        check_floats(
            &bin(BinaryOp::Mul, &one, &Node::unary(UnaryOp::Recip, &three)),
            &[1],
            &[third],
        );
        // 1 + (2^-11 + 2^-21) lies just above the midpoint of 1 and 1 + 2^-10: it rounds up
        // (rounding only on the upper 32 bits of the f64 would see a tie and go to 1).
        let a = floats(DType::F16, &[1], &[1.0]);
        let b = floats(DType::F16, &[1], &[2f64.powi(-11) + 2f64.powi(-21)]);
        check_floats(&bin(BinaryOp::Add, &a, &b), &[1], &[1.0 + 2f64.powi(-10)]);
        let b = floats(DType::F16, &[1], &[2f64.powi(-11)]);
        check_floats(&bin(BinaryOp::Add, &a, &b), &[1], &[1.0]);
        // Sticky bits below the upper 32 bits of the f64 count (half's `from_f64` misses them and
        // returns 1.0 for both).
        let t = RefTensor::from_f64(
            DType::F16,
            &[2],
            &[
                1.0 + 2f64.powi(-11) + 2f64.powi(-40),
                1.0 + 2f64.powi(-11) - 2f64.powi(-40),
            ],
        );
        assert_eq!(float_vals(&t), [1.0 + 2f64.powi(-10), 1.0]);
        let t = RefTensor::from_f64(DType::BF16, &[1], &[1.0 + 2f64.powi(-8) + 2f64.powi(-40)]);
        assert_eq!(float_vals(&t), [1.0 + 2f64.powi(-7)]);
        // Subnormals and overflow.
        let t = RefTensor::from_f64(
            DType::F16,
            &[4],
            &[
                2f64.powi(-25),
                2f64.powi(-25) + 2f64.powi(-40),
                3.0 * 2f64.powi(-25),
                -1e6,
            ],
        );
        assert_eq!(
            float_vals(&t),
            [0.0, 2f64.powi(-24), 2f64.powi(-23), f64::NEG_INFINITY]
        );
        let t = RefTensor::from_f64(DType::BF16, &[3], &[3.39e38, 3.4e38, 2f64.powi(-134)]);
        assert_eq!(float_vals(&t), [3.3895313892515355e38, f64::INFINITY, 0.0]);
        let big = Node::constant(Scalar::Float(20.0), DType::F16, &[1], &cpu());
        check_floats(&Node::unary(UnaryOp::Exp2, &big), &[1], &[f64::INFINITY]);
    }

    #[test]
    fn half_rounding_agrees_with_half_from_f32() {
        // half's f32 -> f16 / bf16 conversions are correctly rounded: compare on many patterns.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..200_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bits = if i < 65536 {
                (i << 16) | (state as u32 & 0xffff)
            } else {
                state as u32
            };
            let x = f32::from_bits(bits);
            let h = half::f16::from_f32(x).to_f64();
            let r = round_float(DType::F16, x as f64);
            assert!(
                r.to_bits() == h.to_bits() || (r.is_nan() && h.is_nan()),
                "f16 of {x:e} ({bits:#x}): {r:e} vs {h:e}"
            );
            let h = half::bf16::from_f32(x).to_f64();
            let r = round_float(DType::BF16, x as f64);
            assert!(
                r.to_bits() == h.to_bits() || (r.is_nan() && h.is_nan()),
                "bf16 of {x:e} ({bits:#x}): {r:e} vs {h:e}"
            );
        }
    }

    #[test]
    fn unary_float_ops() {
        let x = floats(DType::F32, &[4], &[3.0, -1.7, 0.0, 2.5]);
        check_floats(
            &Node::unary(UnaryOp::Exp2, &x),
            &[4],
            &[
                8.0,
                (-1.7f32 as f64).exp2() as f32 as f64,
                1.0,
                2.5f64.exp2() as f32 as f64,
            ],
        );
        check_floats(
            &Node::unary(UnaryOp::Trunc, &x),
            &[4],
            &[3.0, -1.0, 0.0, 2.0],
        );
        check_floats(
            &Node::unary(UnaryOp::Neg, &x),
            &[4],
            &[-3.0, 1.7f32 as f64, -0.0, -2.5],
        );
        check_floats(
            &Node::unary(UnaryOp::Recip, &x),
            &[4],
            &[
                (1.0f64 / 3.0) as f32 as f64,
                (1.0 / (-1.7f32 as f64)) as f32 as f64,
                f64::INFINITY,
                0.4f32 as f64,
            ],
        );
        let y = floats(DType::F32, &[4], &[8.0, 2.0, 0.0, -1.0]);
        check_floats(
            &Node::unary(UnaryOp::Log2, &y),
            &[4],
            &[3.0, 1.0, f64::NEG_INFINITY, f64::NAN],
        );
        check_floats(
            &Node::unary(UnaryOp::Sqrt, &y),
            &[4],
            &[
                8f64.sqrt() as f32 as f64,
                std::f32::consts::SQRT_2 as f64,
                0.0,
                f64::NAN,
            ],
        );
        check_floats(
            &Node::unary(UnaryOp::Sin, &y),
            &[4],
            &[
                8f64.sin() as f32 as f64,
                2f64.sin() as f32 as f64,
                0.0,
                (-1f64).sin() as f32 as f64,
            ],
        );
        let d = floats(DType::F64, &[1], &[2.0]);
        check_floats(
            &Node::unary(UnaryOp::Sqrt, &d),
            &[1],
            &[std::f64::consts::SQRT_2],
        );
    }

    #[test]
    fn nan_semantics_of_max_and_comparisons() {
        let nan = f64::NAN;
        let a = floats(DType::F32, &[5], &[nan, 1.0, nan, 1.0, -0.0]);
        let b = floats(DType::F32, &[5], &[1.0, nan, nan, 2.0, 0.0]);
        check_floats(
            &bin(BinaryOp::Max, &a, &b),
            &[5],
            &[nan, nan, nan, 2.0, 0.0],
        );
        check_floats(
            &bin(BinaryOp::Max, &b, &a),
            &[5],
            &[nan, nan, nan, 2.0, 0.0],
        );
        check_ints(&bin(BinaryOp::CmpLt, &a, &b), &[5], &[0, 0, 0, 1, 0]);
        check_ints(&bin(BinaryOp::CmpLt, &b, &a), &[5], &[0, 0, 0, 0, 0]);
        check_ints(&bin(BinaryOp::CmpNe, &a, &b), &[5], &[1, 1, 1, 1, 0]);
        check_ints(&bin(BinaryOp::CmpNe, &a, &a), &[5], &[1, 0, 1, 0, 0]);
        check_floats(&Node::reduce(ReduceOp::Max, &a, &[0]), &[1], &[nan]);
        let c = floats(DType::F32, &[3], &[-5.0, f64::NEG_INFINITY, -7.0]);
        check_floats(&Node::reduce(ReduceOp::Max, &c, &[0]), &[1], &[-5.0]);
    }

    #[test]
    fn ternary_ops() {
        let c = ints(DType::Bool, &[3], &[1, 0, 1]);
        let a = floats(DType::F32, &[3], &[1.0, 2.0, 3.0]);
        let b = floats(DType::F32, &[3], &[-1.0, -2.0, -3.0]);
        check_floats(&Node::where_(&c, &a, &b), &[3], &[1.0, -2.0, 3.0]);
        let ai = ints(DType::I8, &[3], &[1, 2, 3]);
        let bi = ints(DType::I8, &[3], &[-1, -2, -3]);
        check_ints(&Node::where_(&c, &ai, &bi), &[3], &[1, -2, 3]);
        // MulAcc rounds once: (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24 exactly, while rounding the product
        // to f32 first would give 2^-11.
        let e = 1.0 + 2f64.powi(-12);
        let x = floats(DType::F32, &[1], &[e]);
        let m = floats(DType::F32, &[1], &[-1.0]);
        check_floats(
            &Node::mulacc(&x, &x, &m),
            &[1],
            &[2f64.powi(-11) + 2f64.powi(-24)],
        );
        check_floats(
            &bin(BinaryOp::Add, &bin(BinaryOp::Mul, &x, &x), &m),
            &[1],
            &[2f64.powi(-11)],
        );
        let p = ints(DType::I8, &[2], &[100, -128]);
        let q = ints(DType::I8, &[2], &[2, -1]);
        let r = ints(DType::I8, &[2], &[100, 0]);
        check_ints(&Node::mulacc(&p, &q, &r), &[2], &[44, -128]);
    }

    #[test]
    fn zero_dim_tensor() {
        let a = Node::constant(Scalar::Float(2.5), DType::F32, &[], &cpu());
        let s = bin(BinaryOp::Add, &a, &a);
        check_floats(&s, &[], &[5.0]);
        let r = Node::reshape(&s, &[1, 1]);
        check_floats(&Node::expand(&r, &[1, 3]), &[1, 3], &[5.0, 5.0, 5.0]);
        let back = Node::reshape(
            &Node::reduce(ReduceOp::Sum, &Node::expand(&r, &[2, 3]), &[0, 1]),
            &[],
        );
        check_floats(&back, &[], &[30.0]);
        let i = ints(DType::I32, &[], &[7]);
        check_ints(
            &Node::cast(&Node::unary(UnaryOp::Neg, &i), DType::I8),
            &[],
            &[-7],
        );
        assert_eq!(eval(&i).numel(), 1);
    }

    #[test]
    fn zero_size_tensor() {
        let z = Node::constant(Scalar::Float(1.0), DType::F32, &[0, 3], &cpu());
        let s = bin(BinaryOp::Add, &z, &z);
        check_floats(&s, &[0, 3], &[]);
        check_floats(&Node::permute(&s, &[1, 0]), &[3, 0], &[]);
        // Padding an empty tensor gives zeros; reducing over an empty axis gives the identity.
        check_floats(&Node::pad(&s, &[(1, 1), (0, 0)]), &[2, 3], &[0.0; 6]);
        check_floats(&Node::reduce(ReduceOp::Sum, &s, &[0]), &[1, 3], &[0.0; 3]);
        check_floats(&Node::reduce(ReduceOp::Prod, &s, &[0]), &[1, 3], &[1.0; 3]);
        check_floats(
            &Node::reduce(ReduceOp::Max, &s, &[0]),
            &[1, 3],
            &[f64::NEG_INFINITY; 3],
        );
        check_floats(&Node::reduce(ReduceOp::Sum, &s, &[1]), &[0, 1], &[]);
        let e = Node::arange(1, DType::I32, &[2, 0], &cpu());
        check_ints(&e, &[2, 0], &[]);
        check_ints(
            &Node::reduce(ReduceOp::Max, &e, &[1]),
            &[2, 1],
            &[i32::MIN as i64; 2],
        );
        let u = Node::reduce(
            ReduceOp::Max,
            &Node::constant(Scalar::Int(3), DType::U8, &[0], &cpu()),
            &[0],
        );
        check_ints(&u, &[1], &[0]);
        assert_eq!(eval(&s).numel(), 0);
    }

    #[test]
    fn deep_chain_of_adds_does_not_overflow() {
        let one = Node::constant(Scalar::Int(1), DType::I32, &[4], &cpu());
        let tenth = Node::constant(Scalar::Float(0.1), DType::F32, &[4], &cpu());
        let mut chain_i = vec![Node::arange(0, DType::I32, &[4], &cpu())];
        let mut chain_f = vec![Node::cast(&chain_i[0], DType::F32)];
        for _ in 0..10_000 {
            chain_i.push(bin(BinaryOp::Add, chain_i.last().unwrap(), &one));
            chain_f.push(bin(BinaryOp::Add, chain_f.last().unwrap(), &tenth));
        }
        check_ints(
            chain_i.last().unwrap(),
            &[4],
            &[10_000, 10_001, 10_002, 10_003],
        );
        // Rounded to f32 after every add.
        let expected: Vec<f64> = (0..4)
            .map(|i| {
                let mut x = i as f32;
                for _ in 0..10_000 {
                    x += 0.1f32;
                }
                x as f64
            })
            .collect();
        check_floats(chain_f.last().unwrap(), &[4], &expected);
        // Drop from the end so that no drop recurses through the whole chain.
        while chain_i.pop().is_some() {}
        while chain_f.pop().is_some() {}
    }

    #[test]
    fn realized_nodes_are_leaves_and_memoized() {
        let x = floats(DType::F32, &[2], &[1.0, 2.0]);
        let y = bin(BinaryOp::Mul, &x, &x);
        let z = bin(BinaryOp::Add, &y, &bin(BinaryOp::Add, &x, &y));
        let mut calls = Vec::new();
        let t = evaluate(&z, &mut |n: &Node| {
            calls.push(n.id());
            read_leaf(n)
        });
        assert_eq!(float_vals(&t), [3.0, 10.0]);
        assert_eq!(calls, [x.id()], "the shared leaf is read once");

        // A realized intermediate is read, not recomputed, and its sources are not visited.
        let a = Node::arange(0, DType::I32, &[3], &cpu());
        let sq = bin(BinaryOp::Mul, &a, &a);
        sq.set_realized(BufferHandle::new(Arc::new(RefTensor::from_i64(
            DType::I32,
            &[3],
            &[10, 20, 30],
        ))));
        let out = bin(BinaryOp::Add, &sq, &a);
        let mut seen = Vec::new();
        let t = evaluate(&out, &mut |n: &Node| {
            seen.push(n.id());
            read_leaf(n)
        });
        assert_eq!(int_vals(&t), [10, 21, 32]);
        assert_eq!(seen, [sq.id()]);
        // A realized target is itself a leaf.
        assert_eq!(int_vals(&eval(&sq)), [10, 20, 30]);
    }

    #[test]
    #[should_panic(expected = "leaf value for")]
    fn malformed_leaf_panics() {
        let x = floats(DType::F32, &[2], &[1.0, 2.0]);
        evaluate(&x, &mut |_: &Node| {
            RefTensor::from_f64(DType::F32, &[3], &[1.0, 2.0, 3.0])
        });
    }

    #[test]
    fn bytes_round_trip() {
        for dtype in DType::ALL {
            let t = RefTensor::from_f64(dtype, &[2, 2], &[0.0, 1.0, 2.0, 100.0]);
            let bytes = t.to_bytes();
            assert_eq!(bytes.len(), 4 * dtype.size());
            assert_eq!(RefTensor::from_bytes(dtype, &[2, 2], &bytes), t, "{dtype}");
        }
        let t = RefTensor::from_bytes(DType::F32, &[1], &1.0f32.to_ne_bytes());
        assert_eq!(t.data, RefData::Float(vec![1.0]));
        let t = RefTensor::from_bytes(DType::I8, &[2], &[0xff, 0x80]);
        assert_eq!(t.data, RefData::Int(vec![-1, -128]));
    }

    #[test]
    fn assert_close_accepts_matches() {
        let e = RefTensor::from_f64(DType::F32, &[4], &[1.0, f64::NAN, f64::INFINITY, -2.0]);
        assert_close(
            &[1.0 + 1e-7, f64::NAN, f64::INFINITY, -2.0],
            &e,
            1e-6,
            0.0,
            "floats",
        );
        let e = RefTensor::from_i64(DType::I32, &[2], &[5, -3]);
        assert_close(&[5.0, -3.0], &e, 0.0, 0.0, "ints");
        assert_close(
            &[],
            &RefTensor::from_f64(DType::F32, &[0], &[]),
            0.0,
            0.0,
            "empty",
        );
    }

    #[test]
    #[should_panic(
        expected = "floats: 2 of 4 elements mismatch (f32[2, 2], rtol 0.001, atol 0); first at flat index 1 [0, 1]: actual 2.1, expected 2.0"
    )]
    fn assert_close_reports_first_mismatch() {
        let e = RefTensor::from_f64(DType::F32, &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_close(&[1.0, 2.1, 3.0, 5.0], &e, 1e-3, 0.0, "floats");
    }

    #[test]
    #[should_panic(
        expected = "ints: 1 of 2 elements mismatch (i32[2], exact); first at flat index 0 [0]: actual 5.4, expected 5.0"
    )]
    fn assert_close_ignores_tolerance_for_ints() {
        let e = RefTensor::from_i64(DType::I32, &[2], &[5, 6]);
        assert_close(&[5.4, 6.0], &e, 1.0, 1.0, "ints");
    }

    #[test]
    #[should_panic(expected = "nan: 1 of 1 elements mismatch")]
    fn assert_close_nan_vs_number_mismatches() {
        let e = RefTensor::from_f64(DType::F64, &[1], &[1.0]);
        assert_close(&[f64::NAN], &e, 1.0, 1.0, "nan");
    }

    #[test]
    #[should_panic(expected = "inf: 1 of 1 elements mismatch")]
    fn assert_close_infinity_vs_finite_mismatches() {
        let e = RefTensor::from_f64(DType::F32, &[1], &[f64::INFINITY]);
        assert_close(&[f64::MAX], &e, 1.0, 1.0, "inf");
    }
}
