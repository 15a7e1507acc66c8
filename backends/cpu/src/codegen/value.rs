//! How kernel values live in Cranelift IR, and moving between the scalar and SIMD forms.
//!
//! * Scalars: bool is an `i8` holding 0 or 1; i8/u8 `i8`; i32/u32 `i32`; i64 `i64`;
//!   f16, bf16 and f32 an `f32` (f16/bf16 values are always exactly representable in their
//!   type: every operation rounds its result); f64 `f64`.
//! * Vectors of four 32-bit lanes (f32x4, i32x4, u32x4) are one 128-bit SIMD value; a 4-lane
//!   bool is an `i32x4` lane mask (all ones or all zeros), which is what a 32-bit SIMD comparison
//!   produces.
//! * Every other vector is held lane by lane (one scalar per lane), and operations on it are
//!   applied per lane. This covers every lane count the IR can express.

use super::Translator;
use crate::helpers::{f64_to_bf16, f64_to_f16};
use cranelift_codegen::ir::immediates::Imm64;
use cranelift_codegen::ir::types::{F32, F32X4, F64, I32, I32X4, I64, I8};
use cranelift_codegen::ir::{condcodes::IntCC, InstBuilder, Type, Value};
use ferrograd_ir::{DType, Scalar, VType, ValueId};

/// A per-lane code generator: gets one scalar per operand, returns the lane's result.
pub(crate) type LaneFn<'f, T> = dyn FnMut(&mut T, &[Value]) -> Result<Value, String> + 'f;

/// A kernel value in Cranelift IR.
#[derive(Clone, Debug)]
pub(crate) enum Repr {
    /// A scalar, or a whole vector in one SIMD register (see [`simd_type`]).
    Whole(Value),
    /// A vector without a SIMD form, one scalar per lane.
    Lanes(Vec<Value>),
}

/// The Cranelift type holding one lane of `dtype`.
pub(crate) fn scalar_type(dtype: DType) -> Type {
    match dtype {
        DType::Bool | DType::I8 | DType::U8 => I8,
        DType::I32 | DType::U32 => I32,
        DType::I64 => I64,
        DType::F16 | DType::BF16 | DType::F32 => F32,
        DType::F64 => F64,
    }
}

/// The SIMD type holding a whole value of type `vt`, if it has one.
pub(crate) fn simd_type(vt: VType) -> Option<Type> {
    match (vt.dtype, vt.lanes) {
        (DType::F32, 4) => Some(F32X4),
        (DType::I32 | DType::U32 | DType::Bool, 4) => Some(I32X4),
        _ => None,
    }
}

/// The Cranelift type of a [`Repr::Whole`] value of type `vt`, or `None` for lane-wise vectors.
pub(crate) fn whole_type(vt: VType) -> Option<Type> {
    if vt.lanes == 1 {
        Some(scalar_type(vt.dtype))
    } else {
        simd_type(vt)
    }
}

/// `v` as a zero-extended immediate of an integer type of `bits` bits (Cranelift's encoding).
pub(crate) fn int_imm(bits: u32, v: i64) -> Imm64 {
    let masked = if bits >= 64 {
        v
    } else {
        v & ((1i64 << bits) - 1)
    };
    Imm64::new(masked)
}

/// `value` converted to `dtype` as a `Cast` would convert it (saturating float -> int,
/// wrapping int -> int, one rounding to float types).
pub(crate) fn const_value(dtype: DType, value: Scalar) -> Scalar {
    let float = |x: f64| match dtype {
        DType::F16 => f64_to_f16(x).to_f64(),
        DType::BF16 => f64_to_bf16(x).to_f64(),
        DType::F32 => x as f32 as f64,
        _ => x,
    };
    let int = |i: i64| match dtype {
        DType::I8 => i as i8 as i64,
        DType::U8 => i as u8 as i64,
        DType::I32 => i as i32 as i64,
        DType::U32 => i as u32 as i64,
        _ => i,
    };
    match (value, dtype) {
        (_, DType::Bool) => Scalar::Bool(value.as_bool()),
        (Scalar::Float(x), d) if d.is_float() => Scalar::Float(float(x)),
        (Scalar::Float(x), d) => Scalar::Int(match d {
            DType::I8 => x as i8 as i64,
            DType::U8 => x as u8 as i64,
            DType::I32 => x as i32 as i64,
            DType::U32 => x as u32 as i64,
            _ => x as i64,
        }),
        (Scalar::Int(_) | Scalar::Bool(_), DType::F32) => {
            Scalar::Float(value.as_i64() as f32 as f64)
        }
        (Scalar::Int(_) | Scalar::Bool(_), d) if d.is_float() => {
            Scalar::Float(float(crate::helpers::i64_to_f64_sticky(value.as_i64())))
        }
        (Scalar::Int(_) | Scalar::Bool(_), _) => Scalar::Int(int(value.as_i64())),
    }
}

impl Translator<'_> {
    /// The representation of a checked operand.
    pub(super) fn val(&self, v: ValueId) -> Result<Repr, String> {
        self.values
            .get(v.0 as usize)
            .and_then(|r| r.clone())
            .ok_or_else(|| format!("internal: %{} has no code", v.0))
    }

    /// The type of a checked operand.
    pub(super) fn ty(&self, v: ValueId) -> Result<VType, String> {
        self.types
            .get(v.0 as usize)
            .copied()
            .flatten()
            .ok_or_else(|| format!("internal: %{} has no type", v.0))
    }

    /// An integer constant of Cranelift type `ty` (scalar).
    pub(super) fn iconst(&mut self, ty: Type, v: i64) -> Value {
        self.b.ins().iconst(ty, int_imm(ty.bits(), v))
    }

    /// A scalar constant of `dtype` in its register form.
    pub(super) fn scalar_const(&mut self, dtype: DType, value: Scalar) -> Value {
        match const_value(dtype, value) {
            Scalar::Bool(b) => self.iconst(I8, b as i64),
            Scalar::Int(i) => self.iconst(scalar_type(dtype), i),
            Scalar::Float(f) if dtype == DType::F64 => self.b.ins().f64const(f),
            Scalar::Float(f) => self.b.ins().f32const(f as f32),
        }
    }

    /// A constant of type `vt` (the value splatted to every lane).
    pub(super) fn constant(&mut self, vt: VType, value: Scalar) -> Repr {
        if vt.dtype == DType::Bool && simd_type(vt).is_some() {
            let mask = if value.as_bool() { -1 } else { 0 };
            let lane = self.iconst(I32, mask);
            return Repr::Whole(self.b.ins().splat(I32X4, lane));
        }
        let lane = self.scalar_const(vt.dtype, value);
        match simd_type(vt) {
            Some(ty) => Repr::Whole(self.b.ins().splat(ty, lane)),
            None if vt.lanes == 1 => Repr::Whole(lane),
            None => Repr::Lanes(vec![lane; vt.lanes as usize]),
        }
    }

    /// The lanes of a value of type `vt`, each in scalar form.
    pub(super) fn lanes_of(&mut self, vt: VType, repr: &Repr) -> Vec<Value> {
        match repr {
            Repr::Lanes(lanes) => lanes.clone(),
            Repr::Whole(v) if vt.lanes == 1 => vec![*v],
            Repr::Whole(v) => (0..vt.lanes)
                .map(|lane| self.extract_lane(vt, *v, lane))
                .collect(),
        }
    }

    /// Lane `lane` of the SIMD value `v` of type `vt`, in scalar form.
    pub(super) fn extract_lane(&mut self, vt: VType, v: Value, lane: u8) -> Value {
        let x = self.b.ins().extractlane(v, lane);
        if vt.dtype == DType::Bool {
            let zero = self.iconst(I32, 0);
            self.b.ins().icmp(IntCC::NotEqual, x, zero)
        } else {
            x
        }
    }

    /// Packs scalar-form lanes into the representation of `vt`.
    pub(super) fn pack(&mut self, vt: VType, lanes: Vec<Value>) -> Repr {
        let Some(ty) = simd_type(vt) else {
            return if lanes.len() == 1 {
                Repr::Whole(lanes[0])
            } else {
                Repr::Lanes(lanes)
            };
        };
        if lanes.len() > 1 && lanes.iter().all(|&l| l == lanes[0]) && vt.dtype != DType::Bool {
            return Repr::Whole(self.b.ins().splat(ty, lanes[0]));
        }
        let lanes: Vec<Value> = if vt.dtype == DType::Bool {
            // 0/1 -> 0/-1: a lane mask.
            lanes
                .into_iter()
                .map(|l| {
                    let wide = self.b.ins().uextend(I32, l);
                    self.b.ins().ineg(wide)
                })
                .collect()
        } else {
            lanes
        };
        let mut v = self.b.ins().scalar_to_vector(ty, lanes[0]);
        for (i, lane) in lanes.iter().enumerate().skip(1) {
            v = self.b.ins().insertlane(v, *lane, i as u8);
        }
        Repr::Whole(v)
    }

    /// Applies `f` lane by lane to values of the given types and packs the results as `out`.
    pub(super) fn per_lane(
        &mut self,
        out: VType,
        args: &[(VType, Repr)],
        f: &mut LaneFn<'_, Self>,
    ) -> Result<Repr, String> {
        let mut lanes = Vec::with_capacity(args.len());
        for (vt, repr) in args {
            lanes.push(self.lanes_of(*vt, repr));
        }
        let mut results = Vec::with_capacity(out.lanes as usize);
        for lane in 0..out.lanes as usize {
            let operands: Vec<Value> = lanes.iter().map(|l| l[lane]).collect();
            results.push(f(self, &operands)?);
        }
        Ok(self.pack(out, results))
    }
}
