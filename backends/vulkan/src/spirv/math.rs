//! `exp2`, `log2` and `sin`.
//!
//! * f32 `exp2`/`log2` use GLSL.std.450 `Exp2`/`Log2` (3 ulp on conforming drivers), with the
//!   special values (±0, negatives, ±inf, NaN) selected explicitly because GLSL leaves them
//!   undefined.
//! * f32 `sin` is computed here: Cody-Waite reduction by pi/2 with four 11-bit-or-shorter parts
//!   (every product with the quadrant number is exact for |x| < 2^13 pi/2 ~ 12868; beyond that the
//!   absolute error grows with |x|), then Taylor polynomials on [-pi/4, pi/4]. GLSL `Sin` is only
//!   required to be within 2^-11 absolute, far from f32 accuracy.
//! * f64 has no GLSL.std.450 transcendentals: `exp2` is a degree-13 Taylor series of
//!   `e^(f ln 2)` on `|f| <= 1/2`, scaled by `2^n` in two exact steps; `log2` reduces to
//!   `m in [sqrt(2)/2, sqrt(2))` and sums the `atanh` series of `(m-1)/(m+1)`; `sin` is like f32
//!   with four 26-bit parts (exact for |x| < 2^27 pi/2) and longer polynomials.

use super::Gen;
use rspirv::spirv::{GlslStd450Op as GLOp, Op, Word};

/// pi/2 split into parts whose products with quadrant numbers below 2^13 are exact in f32.
const PIO2_F32: [u32; 4] = [0x3fc9_0000, 0x39fd_a000, 0x33a2_2000, 0x2c34_611a];
/// pi/2 split into 26-bit parts (the last one full precision) for f64.
const PIO2_F64: [u64; 4] = [0x3ff9_21fb_5000_0000, 0x3e51_10b4_6000_0000, 0x3c91_a626_3000_0000, 0x3ae8_a2e0_3707_344a];

/// `1/k!` for the Taylor coefficients.
fn inv_factorial(k: u32) -> f64 {
    (1..=k).fold(1.0, |acc, i| acc / i as f64)
}

impl Gen<'_> {
    /// Horner evaluation of `sum coefs[i] * z^i` in the float type `ty`.
    fn horner(&mut self, ty: Word, z: Word, coefs: &[f64], wide: bool) -> Word {
        let c = |g: &mut Self, v: f64| if wide { g.c_f64(v) } else { g.c_f32(v as f32) };
        let mut acc = c(self, *coefs.last().expect("coefficients"));
        for &k in coefs.iter().rev().skip(1) {
            let kc = c(self, k);
            acc = self.glsl(GLOp::Fma, ty, &[acc, z, kc]);
        }
        acc
    }

    /// Special-value handling shared by exp2 and log2: `NaN -> NaN`.
    fn keep_nan(&mut self, ty: Word, x: Word, r: Word) -> Word {
        let bt = self.ty_bool();
        let nan = self.op(Op::IsNan, bt, &[x]);
        self.select(ty, nan, x, r)
    }

    /// f32 `2^x` (GLSL `Exp2` with explicit infinities).
    pub(crate) fn exp2_f32(&mut self, x: Word) -> Word {
        let (ty, bt) = (self.ty_float(32), self.ty_bool());
        // Clamp so the driver sees finite arguments; 2^128 and 2^-150 are inf and 0.
        let (lo, hi) = (self.c_f32(-151.0), self.c_f32(129.0));
        let xc = self.glsl(GLOp::FClamp, ty, &[x, lo, hi]);
        let r = self.glsl(GLOp::Exp2, ty, &[xc]);
        let (zero, inf) = (self.c_f32(0.0), self.c_f32(f32::INFINITY));
        let big = self.op(Op::FOrdGreaterThanEqual, bt, &[x, hi]);
        let small = self.op(Op::FOrdLessThanEqual, bt, &[x, lo]);
        let r = self.select(ty, big, inf, r);
        let r = self.select(ty, small, zero, r);
        self.keep_nan(ty, x, r)
    }

    /// f32 `log2(x)` (GLSL `Log2` with explicit special values).
    pub(crate) fn log2_f32(&mut self, x: Word) -> Word {
        let (ty, bt) = (self.ty_float(32), self.ty_bool());
        let (zero, inf, ninf, nan) =
            (self.c_f32(0.0), self.c_f32(f32::INFINITY), self.c_f32(f32::NEG_INFINITY), self.c_f32(f32::NAN));
        let one = self.c_f32(1.0);
        let positive = self.op(Op::FOrdGreaterThan, bt, &[x, zero]);
        let safe = self.select(ty, positive, x, one);
        let r = self.glsl(GLOp::Log2, ty, &[safe]);
        let is_zero = self.op(Op::FOrdEqual, bt, &[x, zero]);
        let negative = self.op(Op::FOrdLessThan, bt, &[x, zero]);
        let is_inf = self.op(Op::FOrdEqual, bt, &[x, inf]);
        let r = self.select(ty, is_inf, inf, r);
        let r = self.select(ty, is_zero, ninf, r);
        let r = self.select(ty, negative, nan, r);
        self.keep_nan(ty, x, r)
    }

    /// Reduces `x` by pi/2: returns `(r, quadrant)` with `x = q pi/2 + r`, `|r| <~ pi/4`,
    /// `quadrant = q mod 4` as a u32.
    fn reduce_pio2(&mut self, x: Word, wide: bool) -> (Word, Word) {
        let ty = if wide { self.ty_float(64) } else { self.ty_float(32) };
        let u32t = self.ty_int(32);
        let c = |g: &mut Self, v: f64| if wide { g.c_f64(v) } else { g.c_f32(v as f32) };
        let inv = c(self, std::f64::consts::FRAC_2_PI);
        let scaled = self.op(Op::FMul, ty, &[x, inv]);
        let n = self.glsl(GLOp::RoundEven, ty, &[scaled]);
        let parts: Vec<f64> = if wide {
            PIO2_F64.iter().map(|&b| f64::from_bits(b)).collect()
        } else {
            PIO2_F32.iter().map(|&b| f32::from_bits(b) as f64).collect()
        };
        let mut r = x;
        for p in parts {
            let pc = c(self, p);
            let prod = self.op(Op::FMul, ty, &[n, pc]);
            r = self.op(Op::FSub, ty, &[r, prod]);
        }
        // n mod 4, computed exactly in floating point (n is an integer), then as an integer.
        let (quarter, four) = (c(self, 0.25), c(self, 4.0));
        let q = self.op(Op::FMul, ty, &[n, quarter]);
        let q = self.glsl(GLOp::Floor, ty, &[q]);
        let q = self.op(Op::FMul, ty, &[q, four]);
        let q = self.op(Op::FSub, ty, &[n, q]);
        let zero = c(self, 0.0);
        let bt = self.ty_bool();
        let finite = self.op(Op::FOrdEqual, bt, &[q, q]);
        let q = self.select(ty, finite, q, zero);
        let q = self.op(Op::ConvertFToU, u32t, &[q]);
        (r, q)
    }

    /// `sin(x)` from a reduction and Taylor kernels with `sin_terms`/`cos_terms` coefficients.
    fn sin_reduced(&mut self, x: Word, wide: bool, sin_terms: u32, cos_terms: u32) -> Word {
        let ty = if wide { self.ty_float(64) } else { self.ty_float(32) };
        let (u32t, bt) = (self.ty_int(32), self.ty_bool());
        let (r, q) = self.reduce_pio2(x, wide);
        let z = self.op(Op::FMul, ty, &[r, r]);
        // sin r = r + r z (-1/3! + z (1/5! - ...)); cos r = 1 + z (-1/2! + z (1/4! - ...)).
        let sin_c: Vec<f64> =
            (1..=sin_terms).map(|k| if k % 2 == 1 { -inv_factorial(2 * k + 1) } else { inv_factorial(2 * k + 1) }).collect();
        let cos_c: Vec<f64> =
            (1..=cos_terms).map(|k| if k % 2 == 1 { -inv_factorial(2 * k) } else { inv_factorial(2 * k) }).collect();
        let sp = self.horner(ty, z, &sin_c, wide);
        let rz = self.op(Op::FMul, ty, &[r, z]);
        let s = self.glsl(GLOp::Fma, ty, &[rz, sp, r]);
        let cp = self.horner(ty, z, &cos_c, wide);
        let one = if wide { self.c_f64(1.0) } else { self.c_f32(1.0) };
        let cz = self.glsl(GLOp::Fma, ty, &[z, cp, one]);
        let (zero_u, one_u, two_u) = (self.c_u32(0), self.c_u32(1), self.c_u32(2));
        let odd = self.op(Op::BitwiseAnd, u32t, &[q, one_u]);
        let use_cos = self.op(Op::INotEqual, bt, &[odd, zero_u]);
        let v = self.select(ty, use_cos, cz, s);
        let half = self.op(Op::BitwiseAnd, u32t, &[q, two_u]);
        let negate = self.op(Op::INotEqual, bt, &[half, zero_u]);
        let nv = self.op(Op::FNegate, ty, &[v]);
        self.select(ty, negate, nv, v)
    }

    /// f32 `sin(x)`.
    pub(crate) fn sin_f32(&mut self, x: Word) -> Word {
        self.sin_reduced(x, false, 5, 6)
    }

    /// f64 `sin(x)`.
    pub(crate) fn sin_f64(&mut self, x: Word) -> Word {
        self.sin_reduced(x, true, 9, 10)
    }

    /// The f64 `2^n` for an integer-valued f64 `n` in [-1022, 1023], built from its bits.
    fn pow2_f64(&mut self, n: Word) -> Word {
        let (u32t, f64t) = (self.ty_int(32), self.ty_float(64));
        let uvec2 = self.ty_uvec(2);
        let i = self.op(Op::ConvertFToS, u32t, &[n]);
        let bias = self.c_u32(1023);
        let e = self.op(Op::IAdd, u32t, &[i, bias]);
        let twenty = self.c_u32(20);
        let hi = self.op(Op::ShiftLeftLogical, u32t, &[e, twenty]);
        let lo = self.c_u32(0);
        let v = self.op(Op::CompositeConstruct, uvec2, &[lo, hi]);
        self.op(Op::Bitcast, f64t, &[v])
    }

    /// f64 `2^x`.
    pub(crate) fn exp2_f64(&mut self, x: Word) -> Word {
        let ty = self.ty_float(64);
        let (lo, hi) = (self.c_f64(-1100.0), self.c_f64(1100.0));
        let xc = self.glsl(GLOp::FClamp, ty, &[x, lo, hi]);
        let n = self.glsl(GLOp::RoundEven, ty, &[xc]);
        let f = self.op(Op::FSub, ty, &[xc, n]);
        let ln2 = self.c_f64(std::f64::consts::LN_2);
        let t = self.op(Op::FMul, ty, &[f, ln2]);
        let coefs: Vec<f64> = (0..=13).map(inv_factorial).collect();
        let p = self.horner(ty, t, &coefs, true);
        // 2^n = 2^n1 * 2^n2 with both halves in the normal exponent range.
        let half = self.c_f64(0.5);
        let n1 = self.op(Op::FMul, ty, &[n, half]);
        let n1 = self.glsl(GLOp::Floor, ty, &[n1]);
        let n2 = self.op(Op::FSub, ty, &[n, n1]);
        let s1 = self.pow2_f64(n1);
        let s2 = self.pow2_f64(n2);
        let r = self.op(Op::FMul, ty, &[p, s1]);
        let r = self.op(Op::FMul, ty, &[r, s2]);
        self.keep_nan(ty, x, r)
    }

    /// f64 `log2(x)`.
    pub(crate) fn log2_f64(&mut self, x: Word) -> Word {
        let (u32t, f64t, bt) = (self.ty_int(32), self.ty_float(64), self.ty_bool());
        let uvec2 = self.ty_uvec(2);
        // Subnormals: scale into the normal range first.
        let (zero, tiny) = (self.c_f64(0.0), self.c_f64(f64::MIN_POSITIVE));
        let is_sub = self.op(Op::FOrdLessThan, bt, &[x, tiny]);
        let up = self.c_f64(2f64.powi(54));
        let scaled = self.op(Op::FMul, f64t, &[x, up]);
        let y = self.select(f64t, is_sub, scaled, x);
        let (sub_e, no_e) = (self.c_f64(-54.0), zero);
        let e_adj = self.select(f64t, is_sub, sub_e, no_e);
        let words = self.op(Op::Bitcast, uvec2, &[y]);
        let lo = self.b.composite_extract(u32t, None, words, [0]).expect("inside a block");
        let hi = self.b.composite_extract(u32t, None, words, [1]).expect("inside a block");
        let twenty = self.c_u32(20);
        let e = self.op(Op::ShiftRightLogical, u32t, &[hi, twenty]);
        let mask = self.c_u32(0x7ff);
        let e = self.op(Op::BitwiseAnd, u32t, &[e, mask]);
        // Significand in [1, 2); above sqrt(2) it is halved and the exponent incremented.
        let frac_mask = self.c_u32(0x000f_ffff);
        let frac = self.op(Op::BitwiseAnd, u32t, &[hi, frac_mask]);
        let big = self.c_u32(0x6a09e); // top fraction bits of sqrt(2)
        let above = self.op(Op::UGreaterThanEqual, bt, &[frac, big]);
        let (exp_one, exp_half) = (self.c_u32(0x3ff0_0000), self.c_u32(0x3fe0_0000));
        let exp_bits = self.select(u32t, above, exp_half, exp_one);
        let mhi = self.op(Op::BitwiseOr, u32t, &[frac, exp_bits]);
        let mv = self.op(Op::CompositeConstruct, uvec2, &[lo, mhi]);
        let m = self.op(Op::Bitcast, f64t, &[mv]);
        let (one_u, zero_u) = (self.c_u32(1), self.c_u32(0));
        let inc = self.select(u32t, above, one_u, zero_u);
        let e = self.op(Op::IAdd, u32t, &[e, inc]);
        let ef = self.op(Op::ConvertUToF, f64t, &[e]);
        let bias = self.c_f64(-1023.0);
        let ef = self.op(Op::FAdd, f64t, &[ef, bias]);
        let ef = self.op(Op::FAdd, f64t, &[ef, e_adj]);
        // ln m = 2 atanh(s), s = (m - 1) / (m + 1).
        let one = self.c_f64(1.0);
        let num = self.op(Op::FSub, f64t, &[m, one]);
        let den = self.op(Op::FAdd, f64t, &[m, one]);
        let s = self.op(Op::FDiv, f64t, &[num, den]);
        let z = self.op(Op::FMul, f64t, &[s, s]);
        let coefs: Vec<f64> = (0..=12).map(|k| 2.0 / (2 * k + 1) as f64).collect();
        let p = self.horner(f64t, z, &coefs, true);
        let ln_m = self.op(Op::FMul, f64t, &[s, p]);
        let inv_ln2 = self.c_f64(std::f64::consts::LOG2_E);
        let r = self.glsl(GLOp::Fma, f64t, &[ln_m, inv_ln2, ef]);
        // Special values.
        let (inf, ninf, nan) = (self.c_f64(f64::INFINITY), self.c_f64(f64::NEG_INFINITY), self.c_f64(f64::NAN));
        let is_zero = self.op(Op::FOrdEqual, bt, &[x, zero]);
        let negative = self.op(Op::FOrdLessThan, bt, &[x, zero]);
        let is_inf = self.op(Op::FOrdEqual, bt, &[x, inf]);
        let r = self.select(f64t, is_inf, inf, r);
        let r = self.select(f64t, is_zero, ninf, r);
        let r = self.select(f64t, negative, nan, r);
        self.keep_nan(f64t, x, r)
    }
}
