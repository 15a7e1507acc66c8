//! Inline f32 `exp2`, `log2` and `sin`, written once for scalars (`F32`) and vectors (`F32X4`).
//!
//! * `exp2`: `x = n + f` with `n = round(x)`, `|f| <= 1/2`; `2^f` by a degree-6 minimax
//!   polynomial (relative error 2.6e-9), scaled by `2^n` in two exact steps so results that
//!   are subnormal round only once. Inputs are clamped to `[-151, 129]`, which keeps the
//!   overflow to infinity and the underflow to zero; NaN propagates.
//! * `log2`: the FreeBSD/musl `log2f` algorithm: subnormals are scaled by `2^25`, the
//!   significand is reduced to `[sqrt(2)/2, sqrt(2))`, `log(1+f)` comes from a polynomial in
//!   `s = f/(2+f)`, and the result is assembled from hi/lo parts. Special cases by selects:
//!   `log2(±0) = -inf`, `log2(x<0) = NaN`, `log2(inf) = inf`, `log2(NaN) = NaN`.
//! * `sin`: evaluated in f64 (two `f64x2` halves for a vector): Cody-Waite reduction by
//!   `pi/2` with a two-part constant (exact for `|x| < 2^28 pi/2`), musl's `__sindf`/`__cosdf`
//!   kernels, the quadrant picks the kernel and sign, and one final rounding to f32. Beyond
//!   `2^28 pi/2` the result is clamped to `[-1, 1]`; `sin(±inf) = NaN`.

use super::alu::vector_bitcast_flags;
use super::Translator;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32X4, F64, F64X2, I32, I8X16};
use cranelift_codegen::ir::{ConstantData, InstBuilder, MemFlagsData, Type, Value};

/// exp2: `2^f = 1 + f * (C0 + f * (C1 + ... + f * C5))` on `[-1/2, 1/2]`.
const EXP2_POLY: [u32; 6] = [
    0x3f31_7219,
    0x3e75_fdf1,
    0x3d63_5739,
    0x3c1d_9387,
    0x3aaf_b93b,
    0x3923_85a5,
];

/// log2f constants (FreeBSD `e_log2f.c`).
const LG1: u32 = 0x3f2a_aaaa;
const LG2: u32 = 0x3ecc_ce13;
const LG3: u32 = 0x3e91_e9ee;
const LG4: u32 = 0x3e78_9e26;
const IVLN2_HI: u32 = 0x3fb8_b000;
const IVLN2_LO: u32 = 0xb938_9ad4;

/// sin/cos kernels on `[-pi/4, pi/4]` (musl `__sindf.c`, `__cosdf.c`).
const S1: u64 = 0xbfc5_5555_54cb_ac77;
const S2: u64 = 0x3f81_1110_896e_fbb2;
const S3: u64 = 0xbf2a_00f9_e2ca_e774;
const S4: u64 = 0x3ec6_cd87_8c3b_46a7;
const C0: u64 = 0xbfdf_ffff_fd0c_5e81;
const C1: u64 = 0x3fa5_5553_e105_3a42;
const C2: u64 = 0xbf56_c087_e80f_1e27;
const C3: u64 = 0x3ef9_9342_e0ee_5069;
/// 2/pi, and pi/2 as a 33-bit head plus tail (musl `__rem_pio2f.c`).
const INV_PIO2: u64 = 0x3fe4_5f30_6dc9_c883;
const PIO2_1: u64 = 0x3ff9_21fb_5000_0000;
const PIO2_1T: u64 = 0x3e51_10b4_611a_6263;

fn f32c(bits: u32) -> f64 {
    f32::from_bits(bits) as f64
}

fn f64c(bits: u64) -> f64 {
    f64::from_bits(bits)
}

impl Translator<'_> {
    /// A float constant of (scalar or vector) float type `ty`.
    fn fconst_of(&mut self, ty: Type, c: f64) -> Value {
        let lane = if ty.lane_type() == F64 {
            self.b.ins().f64const(c)
        } else {
            self.b.ins().f32const(c as f32)
        };
        if ty.is_vector() {
            self.b.ins().splat(ty, lane)
        } else {
            lane
        }
    }

    /// An integer constant of (scalar or vector) integer type `ty`.
    fn iconst_of(&mut self, ty: Type, c: i64) -> Value {
        let lane = self.iconst(ty.lane_type(), c);
        if ty.is_vector() {
            self.b.ins().splat(ty, lane)
        } else {
            lane
        }
    }

    fn bits_of(&mut self, x: Value) -> Value {
        let ty = self.b.func.dfg.value_type(x);
        let flags = if ty.is_vector() {
            vector_bitcast_flags()
        } else {
            MemFlagsData::new()
        };
        self.b.ins().bitcast(ty.as_int(), flags, x)
    }

    fn float_of(&mut self, ty: Type, bits: Value) -> Value {
        let flags = if ty.is_vector() {
            vector_bitcast_flags()
        } else {
            MemFlagsData::new()
        };
        self.b.ins().bitcast(ty, flags, bits)
    }

    /// `cond ? a : b` where `cond` came from a comparison of values shaped like `a`.
    fn pick(&mut self, cond: Value, a: Value, b: Value) -> Value {
        let ty = self.b.func.dfg.value_type(a);
        if !ty.is_vector() {
            return self.select_scalar(cond, a, b);
        }
        let mask = if self.b.func.dfg.value_type(cond) == ty {
            cond
        } else {
            self.float_of(ty, cond)
        };
        self.b.ins().bitselect(mask, a, b)
    }

    /// `x` clamped so that `x <= hi` (NaN stays NaN).
    fn at_most(&mut self, x: Value, hi: Value) -> Value {
        // Written as `hi < x` so that x86 selects `minps`/`minss`, which keep NaN operands.
        let above = self.b.ins().fcmp(FloatCC::LessThan, hi, x);
        self.pick(above, hi, x)
    }

    /// `x` clamped so that `x >= lo` (NaN stays NaN).
    fn at_least(&mut self, x: Value, lo: Value) -> Value {
        let below = self.b.ins().fcmp(FloatCC::LessThan, x, lo);
        self.pick(below, lo, x)
    }

    /// `x op k` for a constant shift `k` of every lane.
    fn shift(&mut self, x: Value, k: i64, left: bool, arithmetic: bool) -> Value {
        let k = self.iconst(I32, k);
        match (left, arithmetic) {
            (true, _) => self.b.ins().ishl(x, k),
            (false, true) => self.b.ins().sshr(x, k),
            (false, false) => self.b.ins().ushr(x, k),
        }
    }

    /// `2^x` for `F32` or `F32X4`.
    pub(super) fn exp2_f32(&mut self, ty: Type, x: Value) -> Value {
        let it = ty.as_int();
        let hi = self.fconst_of(ty, 129.0);
        let lo = self.fconst_of(ty, -151.0);
        let x = self.at_most(x, hi);
        let x = self.at_least(x, lo);
        // n = round(x) by the 1.5 * 2^23 trick; the integer n sits in the sum's low bits.
        let magic = self.fconst_of(ty, 12_582_912.0);
        let t = self.b.ins().fadd(x, magic);
        let n_float = self.b.ins().fsub(t, magic);
        let f = self.b.ins().fsub(x, n_float);
        let t_bits = self.bits_of(t);
        let magic_bits = self.iconst_of(it, 0x4b40_0000);
        let n = self.b.ins().isub(t_bits, magic_bits);
        let mut q = self.fconst_of(ty, f32c(EXP2_POLY[5]));
        for c in EXP2_POLY[..5].iter().rev() {
            let c = self.fconst_of(ty, f32c(*c));
            q = self.fmul_add(q, f, c);
        }
        let one = self.fconst_of(ty, 1.0);
        let p = self.fmul_add(q, f, one);
        // 2^n = 2^n1 * 2^n2 with both factors normal for n in [-151, 129].
        let n1 = self.shift(n, 1, false, true);
        let n2 = self.b.ins().isub(n, n1);
        let bias = self.iconst_of(it, 127);
        let mut r = p;
        for part in [n1, n2] {
            let e = self.b.ins().iadd(part, bias);
            let e = self.shift(e, 23, true, false);
            let scale = self.float_of(ty, e);
            r = self.b.ins().fmul(r, scale);
        }
        r
    }

    /// `log2(x)` for `F32` or `F32X4`.
    pub(super) fn log2_f32(&mut self, ty: Type, x: Value) -> Value {
        let it = ty.as_int();
        let c = |t: &mut Self, v: f64| t.fconst_of(ty, v);
        // Subnormals (and everything below, which is overridden at the end) scale by 2^25.
        let tiny = c(self, f32::MIN_POSITIVE as f64);
        let is_sub = self.b.ins().fcmp(FloatCC::LessThan, x, tiny);
        let big = c(self, 33_554_432.0);
        let scaled = self.b.ins().fmul(x, big);
        let xs = self.pick(is_sub, scaled, x);
        let minus_25 = self.iconst_of(it, -25);
        let zero_i = self.iconst_of(it, 0);
        let k_adjust = if ty.is_vector() {
            self.b.ins().bitselect(is_sub, minus_25, zero_i)
        } else {
            self.b.ins().select(is_sub, minus_25, zero_i)
        };
        // Reduce the significand into [sqrt(2)/2, sqrt(2)).
        let ix = self.bits_of(xs);
        let offset = self.iconst_of(it, 0x3f80_0000 - 0x3f35_04f3);
        let ix = self.b.ins().iadd(ix, offset);
        let e = self.shift(ix, 23, false, false);
        let bias = self.iconst_of(it, 0x7f);
        let k = self.b.ins().isub(e, bias);
        let k = self.b.ins().iadd(k, k_adjust);
        let mant_mask = self.iconst_of(it, 0x007f_ffff);
        let m = self.b.ins().band(ix, mant_mask);
        let sqrt_half = self.iconst_of(it, 0x3f35_04f3);
        let m = self.b.ins().iadd(m, sqrt_half);
        let m = self.float_of(ty, m);
        let one = c(self, 1.0);
        let f = self.b.ins().fsub(m, one);
        let two = c(self, 2.0);
        let denom = self.b.ins().fadd(two, f);
        let s = self.b.ins().fdiv(f, denom);
        let z = self.b.ins().fmul(s, s);
        let w = self.b.ins().fmul(z, z);
        let (lg1, lg2, lg3, lg4) = (
            c(self, f32c(LG1)),
            c(self, f32c(LG2)),
            c(self, f32c(LG3)),
            c(self, f32c(LG4)),
        );
        let t1 = self.b.ins().fmul(w, lg4);
        let t1 = self.b.ins().fadd(lg2, t1);
        let t1 = self.b.ins().fmul(w, t1);
        let t2 = self.b.ins().fmul(w, lg3);
        let t2 = self.b.ins().fadd(lg1, t2);
        let t2 = self.b.ins().fmul(z, t2);
        let r = self.b.ins().fadd(t2, t1);
        let half = c(self, 0.5);
        let hfsq = self.b.ins().fmul(half, f);
        let hfsq = self.b.ins().fmul(hfsq, f);
        let hi = self.b.ins().fsub(f, hfsq);
        let hi_bits = self.bits_of(hi);
        let hi_mask = self.iconst_of(it, 0xffff_f000);
        let hi_bits = self.b.ins().band(hi_bits, hi_mask);
        let hi = self.float_of(ty, hi_bits);
        let lo = self.b.ins().fsub(f, hi);
        let lo = self.b.ins().fsub(lo, hfsq);
        let tail = self.b.ins().fadd(hfsq, r);
        let tail = self.b.ins().fmul(s, tail);
        let lo = self.b.ins().fadd(lo, tail);
        let (ivln2hi, ivln2lo) = (c(self, f32c(IVLN2_HI)), c(self, f32c(IVLN2_LO)));
        let sum = self.b.ins().fadd(lo, hi);
        let a = self.b.ins().fmul(sum, ivln2lo);
        let bb = self.b.ins().fmul(lo, ivln2hi);
        let a = self.b.ins().fadd(a, bb);
        let cc = self.b.ins().fmul(hi, ivln2hi);
        let a = self.b.ins().fadd(a, cc);
        let kf = self.b.ins().fcvt_from_sint(ty, k);
        let mut result = self.b.ins().fadd(a, kf);
        // Special cases.
        let inf = c(self, f64::INFINITY);
        let is_inf = self.b.ins().fcmp(FloatCC::Equal, x, inf);
        result = self.pick(is_inf, inf, result);
        let zero = c(self, 0.0);
        let neg_inf = c(self, f64::NEG_INFINITY);
        let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, zero);
        result = self.pick(is_zero, neg_inf, result);
        let nan = c(self, f64::NAN);
        let negative_or_nan = self.b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
        self.pick(negative_or_nan, nan, result)
    }

    /// `sin(x)` for `F32` or `F32X4`, computed in f64.
    pub(super) fn sin_f32(&mut self, ty: Type, x: Value) -> Value {
        if !ty.is_vector() {
            let wide = self.b.ins().fpromote(F64, x);
            let r = self.sin_f64_kernel(F64, wide);
            return self.b.ins().fdemote(ty, r);
        }
        let flags = vector_bitcast_flags();
        let low = self.b.ins().fvpromote_low(x);
        let bytes = self.b.ins().bitcast(I8X16, flags, x);
        let upper_mask: Vec<u8> = (8..16).chain(8..16).collect();
        let upper_mask = self
            .b
            .func
            .dfg
            .immediates
            .push(ConstantData::from(upper_mask));
        let upper = self.b.ins().shuffle(bytes, bytes, upper_mask);
        let upper = self.b.ins().bitcast(F32X4, flags, upper);
        let high = self.b.ins().fvpromote_low(upper);
        let r_low = self.sin_f64_kernel(F64X2, low);
        let r_high = self.sin_f64_kernel(F64X2, high);
        let d_low = self.b.ins().fvdemote(r_low);
        let d_high = self.b.ins().fvdemote(r_high);
        let d_low = self.b.ins().bitcast(I8X16, flags, d_low);
        let d_high = self.b.ins().bitcast(I8X16, flags, d_high);
        let join_mask: Vec<u8> = (0..8).chain(16..24).collect();
        let join_mask = self
            .b
            .func
            .dfg
            .immediates
            .push(ConstantData::from(join_mask));
        let joined = self.b.ins().shuffle(d_low, d_high, join_mask);
        self.b.ins().bitcast(F32X4, flags, joined)
    }

    /// `sin(x)` of an f32 value held in f64 (`F64` or `F64X2`), accurate to well under one
    /// f32 ulp for `|x| < 2^28 pi/2`.
    fn sin_f64_kernel(&mut self, ty: Type, x: Value) -> Value {
        let it = ty.as_int();
        let c = |t: &mut Self, v: f64| t.fconst_of(ty, v);
        // n = round(x * 2/pi) by the 1.5 * 2^52 trick; n mod 4 sits in the sum's low bits.
        let inv_pio2 = c(self, f64c(INV_PIO2));
        let toint = c(self, 1.5 * 4_503_599_627_370_496.0);
        let t = self.b.ins().fmul(x, inv_pio2);
        let t = self.b.ins().fadd(t, toint);
        let n_float = self.b.ins().fsub(t, toint);
        let n = self.bits_of(t);
        let (pio2_1, pio2_1t) = (c(self, f64c(PIO2_1)), c(self, f64c(PIO2_1T)));
        let head = self.b.ins().fmul(n_float, pio2_1);
        let y = self.b.ins().fsub(x, head);
        let tail = self.b.ins().fmul(n_float, pio2_1t);
        let y = self.b.ins().fsub(y, tail);
        let z = self.b.ins().fmul(y, y);
        let w = self.b.ins().fmul(z, z);
        // sin: (y + s*(S1 + z*S2)) + s*w*(S3 + z*S4), s = z*y.
        let (s1, s2, s3, s4) = (
            c(self, f64c(S1)),
            c(self, f64c(S2)),
            c(self, f64c(S3)),
            c(self, f64c(S4)),
        );
        let r = self.b.ins().fmul(z, s4);
        let r = self.b.ins().fadd(s3, r);
        let s = self.b.ins().fmul(z, y);
        let p = self.b.ins().fmul(z, s2);
        let p = self.b.ins().fadd(s1, p);
        let p = self.b.ins().fmul(s, p);
        let sin = self.b.ins().fadd(y, p);
        let sw = self.b.ins().fmul(s, w);
        let sw = self.b.ins().fmul(sw, r);
        let sin = self.b.ins().fadd(sin, sw);
        // cos: ((1 + z*C0) + w*C1) + (w*z)*(C2 + z*C3).
        let (c0, c1, c2, c3) = (
            c(self, f64c(C0)),
            c(self, f64c(C1)),
            c(self, f64c(C2)),
            c(self, f64c(C3)),
        );
        let one = c(self, 1.0);
        let r = self.b.ins().fmul(z, c3);
        let r = self.b.ins().fadd(c2, r);
        let a = self.b.ins().fmul(z, c0);
        let a = self.b.ins().fadd(one, a);
        let bw = self.b.ins().fmul(w, c1);
        let a = self.b.ins().fadd(a, bw);
        let wz = self.b.ins().fmul(w, z);
        let wz = self.b.ins().fmul(wz, r);
        let cos = self.b.ins().fadd(a, wz);
        // Quadrant: odd n takes the cosine, n & 2 flips the sign.
        let one_i = self.iconst_of(it, 1);
        let two_i = self.iconst_of(it, 2);
        let odd = self.b.ins().band(n, one_i);
        let odd = self.b.ins().icmp(IntCC::Equal, odd, one_i);
        let v = self.pick(odd, cos, sin);
        let sign = self.b.ins().band(n, two_i);
        let sign = self.shift(sign, 62, true, false);
        let v_bits = self.bits_of(v);
        let v_bits = self.b.ins().bxor(v_bits, sign);
        let v = self.float_of(ty, v_bits);
        // Bounded even where the reduction is inexact (|x| >= 2^28 pi/2).
        let (lo, hi) = (c(self, -1.0), c(self, 1.0));
        let v = self.at_most(v, hi);
        self.at_least(v, lo)
    }
}
