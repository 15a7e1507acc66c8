//! Exact rounding of f64 values to narrow float formats: the oracle for f16/bf16 results.

use half::{bf16, f16};

/// `x` rounded once (nearest, ties to even) to a binary float format with `p` significant
/// bits and exponents `emin..=emax` (subnormals below `2^emin`, overflow to infinity), computed
/// exactly with integers. (`half`'s `from_f64` is not used as an oracle: it drops low bits.)
pub fn round_to_format(x: f64, p: u32, emin: i32, emax: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // |x| = m * 2^e exactly.
    let (m, e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    let lead = e + 63 - m.leading_zeros() as i32;
    let q = lead.max(emin) - (p as i32 - 1);
    let n: u128 = if e >= q {
        (m as u128) << (e - q)
    } else {
        let s = (q - e) as u32;
        if s >= 120 {
            0
        } else {
            let m = m as u128;
            let (n, rem, half) = (m >> s, m & ((1u128 << s) - 1), 1u128 << (s - 1));
            if rem > half || (rem == half && n & 1 == 1) {
                n + 1
            } else {
                n
            }
        }
    };
    let r = n as f64 * 2f64.powi(q);
    let r = if r >= 2f64.powi(emax + 1) {
        f64::INFINITY
    } else {
        r
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// `x` rounded once to f16.
pub fn to_f16(x: f64) -> f16 {
    let r = round_to_format(x, 11, -14, 15);
    if r.is_nan() {
        f16::NAN
    } else {
        f16::from_f64(r)
    }
}

/// `x` rounded once to bf16.
pub fn to_bf16(x: f64) -> bf16 {
    let r = round_to_format(x, 8, -126, 127);
    if r.is_nan() {
        bf16::NAN
    } else {
        bf16::from_f64(r)
    }
}
