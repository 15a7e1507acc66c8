//! `exp2`, `log2` and `sin`.
//!
//! * Every function is computed here, not with GLSL.std.450 `Exp2`/`Log2`/`Sin`: those are
//!   only required to be within 3 ulp (exp2: 3 + 2|x| ulp), an absolute 2^-21 near 1 (log2) and
//!   an absolute 2^-11 (sin), leave special values undefined, and may flush denormals.
//!   The same algorithms serve f32 and f64 (f64 has no GLSL.std.450 transcendentals at all).
//! * f32 `sin` is computed here: Cody-Waite reduction by pi/2 with six 8-bit parts and a full
//!   one (every product with the quadrant number is exact for |x| < 2^16 pi/2 ~ 102943; beyond
//!   that the absolute error grows with |x|), then Taylor polynomials on [-pi/4, pi/4]. GLSL
//!   `Sin` is only required to be within 2^-11 absolute, far from f32 accuracy.
//! * `exp2`: `e^(f ln 2)` by Taylor series on `|f| <= 1/2`, scaled by `2^n` in two exact steps.
//! * `log2`: the significand reduced to `m in [sqrt(2)/2, sqrt(2))`, `ln m` from the `atanh`
//!   series of `(m-1)/(m+1)`; subnormals scaled first.
//! * f64 `sin` is like f32 with four 26-bit parts (exact for |x| < 2^27 pi/2) and longer
//!   polynomials. Beyond the exact range both are only kept within [-1, 1].
//! * f64 rounding (`trunc`, and the round/floor steps above) is computed here too: llvmpipe
//!   evaluates GLSL.std.450's f64 `Trunc`/`Floor`/`RoundEven` in f32 precision.

use super::Gen;
use rspirv::spirv::{GlslStd450Op as GLOp, Op, Word};

/// pi/2 split into 8-bit parts (the last one full precision): products with quadrant numbers
/// below 2^16 are exact in f32.
const PIO2_F32: [u32; 7] = [
    0x3fc9_0000,
    0x39fd_0000,
    0x35aa_0000,
    0x3088_0000,
    0x2c34_0000,
    0x27c2_0000,
    0x22d3_1319,
];
/// pi/2 split into 26-bit parts (the last one full precision) for f64.
const PIO2_F64: [u64; 4] = [
    0x3ff9_21fb_5000_0000,
    0x3e51_10b4_6000_0000,
    0x3c91_a626_3000_0000,
    0x3ae8_a2e0_3707_344a,
];

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

    /// f32 `2^x`.
    pub(crate) fn exp2_f32(&mut self, x: Word) -> Word {
        self.exp2(x, false)
    }

    /// Special values of log2 on top of `r`: `log2(+inf) = +inf`, `log2(±0) = -inf`,
    /// `log2(x < 0) = NaN`, NaN stays NaN.
    fn log2_specials(&mut self, x: Word, r: Word, wide: bool) -> Word {
        let (ty, bt) = if wide {
            (self.ty_float(64), self.ty_bool())
        } else {
            (self.ty_float(32), self.ty_bool())
        };
        let c = |g: &mut Self, v: f64| if wide { g.c_f64(v) } else { g.c_f32(v as f32) };
        let (zero, inf, ninf, nan) = (
            c(self, 0.0),
            c(self, f64::INFINITY),
            c(self, f64::NEG_INFINITY),
            c(self, f64::NAN),
        );
        let is_zero = self.op(Op::FOrdEqual, bt, &[x, zero]);
        let negative = self.op(Op::FOrdLessThan, bt, &[x, zero]);
        let is_inf = self.op(Op::FOrdEqual, bt, &[x, inf]);
        let r = self.select(ty, is_inf, inf, r);
        let r = self.select(ty, is_zero, ninf, r);
        let r = self.select(ty, negative, nan, r);
        self.keep_nan(ty, x, r)
    }

    /// `e + log2(m)` for `m` in [sqrt(2)/2, sqrt(2)). With `f = m - 1` (exact) and
    /// `s = f/(2+f)`, `ln m = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R))` where
    /// `R = sum_k 2 s^2k/(2k+1)` (k = 1..=terms); the exact leading `f` is scaled by `log2(e)` in
    /// the final fused multiply-add.
    fn log2_reduced(&mut self, m: Word, e: Word, wide: bool, terms: u32) -> Word {
        let ty = if wide {
            self.ty_float(64)
        } else {
            self.ty_float(32)
        };
        let c = |g: &mut Self, v: f64| if wide { g.c_f64(v) } else { g.c_f32(v as f32) };
        let (one, two, half) = (c(self, 1.0), c(self, 2.0), c(self, 0.5));
        let f = self.op(Op::FSub, ty, &[m, one]);
        let den = self.op(Op::FAdd, ty, &[f, two]);
        let s = self.op(Op::FDiv, ty, &[f, den]);
        let z = self.op(Op::FMul, ty, &[s, s]);
        let coefs: Vec<f64> = (1..=terms).map(|k| 2.0 / (2 * k + 1) as f64).collect();
        let p = self.horner(ty, z, &coefs, wide);
        let r = self.op(Op::FMul, ty, &[z, p]);
        let ff = self.op(Op::FMul, ty, &[f, f]);
        let hfsq = self.op(Op::FMul, ty, &[ff, half]);
        let sum = self.op(Op::FAdd, ty, &[hfsq, r]);
        let ssum = self.op(Op::FMul, ty, &[s, sum]);
        let corr = self.op(Op::FSub, ty, &[hfsq, ssum]);
        let ncorr = self.op(Op::FNegate, ty, &[corr]);
        let log2e = c(self, std::f64::consts::LOG2_E);
        let t = self.glsl(GLOp::Fma, ty, &[ncorr, log2e, e]);
        self.glsl(GLOp::Fma, ty, &[f, log2e, t])
    }

    /// f32 `log2(x)`: the significand reduced to [sqrt(2)/2, sqrt(2)) and the atanh series
    /// (GLSL `Log2` is only held to an absolute error near 1).
    pub(crate) fn log2_f32(&mut self, x: Word) -> Word {
        let (ty, u32t, bt) = (self.ty_float(32), self.ty_int(32), self.ty_bool());
        // Subnormals: scale into the normal range first.
        let (tiny, up, zero) = (
            self.c_f32(f32::MIN_POSITIVE),
            self.c_f32(2f32.powi(32)),
            self.c_f32(0.0),
        );
        let is_sub = self.op(Op::FOrdLessThan, bt, &[x, tiny]);
        let scaled = self.op(Op::FMul, ty, &[x, up]);
        let y = self.select(ty, is_sub, scaled, x);
        let sub_e = self.c_f32(-32.0);
        let e_adj = self.select(ty, is_sub, sub_e, zero);
        let bits = self.op(Op::Bitcast, u32t, &[y]);
        let twenty_three = self.c_u32(23);
        let e = self.op(Op::ShiftRightLogical, u32t, &[bits, twenty_three]);
        let mask = self.c_u32(0xff);
        let e = self.op(Op::BitwiseAnd, u32t, &[e, mask]);
        let frac_mask = self.c_u32(0x007f_ffff);
        let frac = self.op(Op::BitwiseAnd, u32t, &[bits, frac_mask]);
        let sqrt2_frac = self.c_u32(0x0035_04f3);
        let above = self.op(Op::UGreaterThanEqual, bt, &[frac, sqrt2_frac]);
        let (exp_one, exp_half) = (self.c_u32(0x3f80_0000), self.c_u32(0x3f00_0000));
        let exp_bits = self.select(u32t, above, exp_half, exp_one);
        let mbits = self.op(Op::BitwiseOr, u32t, &[frac, exp_bits]);
        let m = self.op(Op::Bitcast, ty, &[mbits]);
        let (one_u, zero_u) = (self.c_u32(1), self.c_u32(0));
        let inc = self.select(u32t, above, one_u, zero_u);
        let e = self.op(Op::IAdd, u32t, &[e, inc]);
        let ef = self.op(Op::ConvertUToF, ty, &[e]);
        let bias = self.c_f32(-127.0);
        let ef = self.op(Op::FAdd, ty, &[ef, bias]);
        let ef = self.op(Op::FAdd, ty, &[ef, e_adj]);
        let r = self.log2_reduced(m, ef, false, 6);
        self.log2_specials(x, r, false)
    }

    /// `v` rounded to the nearest integer, ties to even. f64 does not use GLSL `RoundEven`:
    /// llvmpipe (Mesa 22) evaluates f64 `RoundEven`, `Floor` and `Trunc` in f32 precision, so
    /// they return large values unchanged. Instead `|v| + 2^52 - 2^52` rounds exactly for
    /// `|v| < 2^52` (larger magnitudes are integers already), then the sign is restored
    /// (`-0.3 -> -0`, `±0`, infinities and NaN unchanged).
    fn round_even(&mut self, ty: Word, v: Word, wide: bool) -> Word {
        if !wide {
            return self.glsl(GLOp::RoundEven, ty, &[v]);
        }
        let magnitude = self.glsl(GLOp::FAbs, ty, &[v]);
        let rounded = self.round_magnitude_f64(magnitude);
        self.with_sign_of_f64(v, magnitude, rounded)
    }

    /// `floor(v)`; f64 from [`Self::round_even`] (see there).
    fn floor(&mut self, ty: Word, v: Word, wide: bool) -> Word {
        if !wide {
            return self.glsl(GLOp::Floor, ty, &[v]);
        }
        let rounded = self.round_even(ty, v, true);
        let bt = self.ty_bool();
        let above = self.op(Op::FOrdGreaterThan, bt, &[rounded, v]);
        let one = self.c_f64(1.0);
        let lower = self.op(Op::FSub, ty, &[rounded, one]);
        self.select(ty, above, lower, rounded)
    }

    /// f64 `trunc(v)`, exact for every value (see [`Self::round_even`] for why not GLSL's).
    pub(crate) fn trunc_f64(&mut self, v: Word) -> Word {
        let (ty, bt) = (self.ty_float(64), self.ty_bool());
        let magnitude = self.glsl(GLOp::FAbs, ty, &[v]);
        let rounded = self.round_magnitude_f64(magnitude);
        let above = self.op(Op::FOrdGreaterThan, bt, &[rounded, magnitude]);
        let one = self.c_f64(1.0);
        let lower = self.op(Op::FSub, ty, &[rounded, one]);
        let truncated = self.select(ty, above, lower, rounded);
        self.with_sign_of_f64(v, magnitude, truncated)
    }

    /// A non-negative f64 `a` rounded to an integer (ties to even); `a >= 2^52`, infinity and
    /// NaN are returned as they are.
    fn round_magnitude_f64(&mut self, a: Word) -> Word {
        let (ty, bt) = (self.ty_float(64), self.ty_bool());
        let two52 = self.c_f64(2f64.powi(52));
        let shifted = self.op(Op::FAdd, ty, &[a, two52]);
        let rounded = self.op(Op::FSub, ty, &[shifted, two52]);
        let small = self.op(Op::FOrdLessThan, bt, &[a, two52]);
        self.select(ty, small, rounded, a)
    }

    /// The non-negative `r` (derived from `|v| = magnitude`) with `v`'s sign; `±0` stays `v`.
    fn with_sign_of_f64(&mut self, v: Word, magnitude: Word, r: Word) -> Word {
        let (ty, bt) = (self.ty_float(64), self.ty_bool());
        let zero = self.c_f64(0.0);
        let negative = self.op(Op::FOrdLessThan, bt, &[v, zero]);
        let minus_r = self.op(Op::FNegate, ty, &[r]);
        let signed = self.select(ty, negative, minus_r, r);
        let is_zero = self.op(Op::FOrdEqual, bt, &[magnitude, zero]);
        self.select(ty, is_zero, v, signed)
    }

    /// Reduces `x` by pi/2: returns `(r, quadrant)` with `x = q pi/2 + r`, `|r| <~ pi/4`,
    /// `quadrant = q mod 4` as a u32.
    fn reduce_pio2(&mut self, x: Word, wide: bool) -> (Word, Word) {
        let ty = if wide {
            self.ty_float(64)
        } else {
            self.ty_float(32)
        };
        let u32t = self.ty_int(32);
        let c = |g: &mut Self, v: f64| if wide { g.c_f64(v) } else { g.c_f32(v as f32) };
        let inv = c(self, std::f64::consts::FRAC_2_PI);
        let scaled = self.op(Op::FMul, ty, &[x, inv]);
        let n = self.round_even(ty, scaled, wide);
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
        let q = self.floor(ty, q, wide);
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
        let ty = if wide {
            self.ty_float(64)
        } else {
            self.ty_float(32)
        };
        let (u32t, bt) = (self.ty_int(32), self.ty_bool());
        let (r, q) = self.reduce_pio2(x, wide);
        let z = self.op(Op::FMul, ty, &[r, r]);
        // sin r = r + r z (-1/3! + z (1/5! - ...)); cos r = 1 + z (-1/2! + z (1/4! - ...)).
        let sin_c: Vec<f64> = (1..=sin_terms)
            .map(|k| {
                if k % 2 == 1 {
                    -inv_factorial(2 * k + 1)
                } else {
                    inv_factorial(2 * k + 1)
                }
            })
            .collect();
        let cos_c: Vec<f64> = (1..=cos_terms)
            .map(|k| {
                if k % 2 == 1 {
                    -inv_factorial(2 * k)
                } else {
                    inv_factorial(2 * k)
                }
            })
            .collect();
        let sp = self.horner(ty, z, &sin_c, wide);
        let rz = self.op(Op::FMul, ty, &[r, z]);
        let s = self.glsl(GLOp::Fma, ty, &[rz, sp, r]);
        let cp = self.horner(ty, z, &cos_c, wide);
        let one = if wide {
            self.c_f64(1.0)
        } else {
            self.c_f32(1.0)
        };
        let cz = self.glsl(GLOp::Fma, ty, &[z, cp, one]);
        let (zero_u, one_u, two_u) = (self.c_u32(0), self.c_u32(1), self.c_u32(2));
        let odd = self.op(Op::BitwiseAnd, u32t, &[q, one_u]);
        let use_cos = self.op(Op::INotEqual, bt, &[odd, zero_u]);
        let v = self.select(ty, use_cos, cz, s);
        let half = self.op(Op::BitwiseAnd, u32t, &[q, two_u]);
        let negate = self.op(Op::INotEqual, bt, &[half, zero_u]);
        let nv = self.op(Op::FNegate, ty, &[v]);
        let v = self.select(ty, negate, nv, v);
        // Beyond the exact reduction the value is inaccurate; keep it within [-1, 1].
        let (one, minus_one) = if wide {
            (self.c_f64(1.0), self.c_f64(-1.0))
        } else {
            (self.c_f32(1.0), self.c_f32(-1.0))
        };
        let above = self.op(Op::FOrdGreaterThan, bt, &[v, one]);
        let v = self.select(ty, above, one, v);
        let below = self.op(Op::FOrdLessThan, bt, &[v, minus_one]);
        self.select(ty, below, minus_one, v)
    }

    /// f32 `sin(x)`.
    pub(crate) fn sin_f32(&mut self, x: Word) -> Word {
        self.sin_reduced(x, false, 5, 6)
    }

    /// f64 `sin(x)`.
    pub(crate) fn sin_f64(&mut self, x: Word) -> Word {
        self.sin_reduced(x, true, 9, 10)
    }

    /// `2^n` for an integer-valued float `n` in the normal exponent range, built from its bits.
    fn pow2(&mut self, n: Word, wide: bool) -> Word {
        let u32t = self.ty_int(32);
        let i = self.op(Op::ConvertFToS, u32t, &[n]);
        let (bias, shift) = if wide {
            (self.c_u32(1023), self.c_u32(20))
        } else {
            (self.c_u32(127), self.c_u32(23))
        };
        let e = self.op(Op::IAdd, u32t, &[i, bias]);
        let hi = self.op(Op::ShiftLeftLogical, u32t, &[e, shift]);
        if wide {
            let (f64t, uvec2) = (self.ty_float(64), self.ty_uvec(2));
            let lo = self.c_u32(0);
            let v = self.op(Op::CompositeConstruct, uvec2, &[lo, hi]);
            self.op(Op::Bitcast, f64t, &[v])
        } else {
            let f32t = self.ty_float(32);
            self.op(Op::Bitcast, f32t, &[hi])
        }
    }

    /// `2^x`: `x = n + f` with `n = round(x)`, `e^(f ln 2)` by its Taylor series (degree 7 for
    /// f32, 13 for f64; `|f ln 2| <= 0.35`), scaled by `2^n` in two exact steps so subnormal
    /// results round once. Arguments are clamped beyond the overflow/underflow points.
    fn exp2(&mut self, x: Word, wide: bool) -> Word {
        let ty = if wide {
            self.ty_float(64)
        } else {
            self.ty_float(32)
        };
        let c = |g: &mut Self, v: f64| if wide { g.c_f64(v) } else { g.c_f32(v as f32) };
        let limit = if wide { 1100.0 } else { 160.0 };
        let (lo, hi) = (c(self, -limit), c(self, limit));
        let xc = self.glsl(GLOp::FClamp, ty, &[x, lo, hi]);
        let n = self.glsl(GLOp::RoundEven, ty, &[xc]);
        let f = self.op(Op::FSub, ty, &[xc, n]);
        let ln2 = c(self, std::f64::consts::LN_2);
        let t = self.op(Op::FMul, ty, &[f, ln2]);
        let degree = if wide { 13 } else { 7 };
        let coefs: Vec<f64> = (0..=degree).map(inv_factorial).collect();
        let p = self.horner(ty, t, &coefs, wide);
        // 2^n = 2^n1 * 2^n2 with both halves in the normal exponent range.
        let half = c(self, 0.5);
        let n1 = self.op(Op::FMul, ty, &[n, half]);
        let n1 = self.glsl(GLOp::Floor, ty, &[n1]);
        let n2 = self.op(Op::FSub, ty, &[n, n1]);
        let s1 = self.pow2(n1, wide);
        let s2 = self.pow2(n2, wide);
        let r = self.op(Op::FMul, ty, &[p, s1]);
        let r = self.op(Op::FMul, ty, &[r, s2]);
        self.keep_nan(ty, x, r)
    }

    /// f64 `2^x`.
    pub(crate) fn exp2_f64(&mut self, x: Word) -> Word {
        self.exp2(x, true)
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
        let lo = self
            .b
            .composite_extract(u32t, None, words, [0])
            .expect("inside a block");
        let hi = self
            .b
            .composite_extract(u32t, None, words, [1])
            .expect("inside a block");
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
        let r = self.log2_reduced(m, ef, true, 12);
        self.log2_specials(x, r, true)
    }
}
