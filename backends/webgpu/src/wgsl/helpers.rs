//! WGSL helper functions, generated on request and emitted once per shader.
//!
//! * 16-bit floats live in f32 registers: `round_f16`/`round_bf16` round to the nearest
//!   value (ties to even, overflow to inf, gradual underflow, NaN kept) in integer arithmetic, so
//!   the result does not depend on the driver's conversions or denormal handling;
//!   `f16_bits_to_f32`/`f32_to_f16_bits` convert packed storage.
//! * `max_*` propagates NaN and gives `max(-0, +0) = +0`; `div_*`/`rem_*` never trap
//!   (`x / 0 = 0`, `x % 0 = 0`, `MIN / -1 = MIN`, `MIN % -1 = 0`).
//! * `cast_F_I` saturates float -> int conversions (NaN -> 0); `*_to_f32_odd` round to f32
//!   *to odd* (for exact double roundings).
//! * `exp2`, `log2`, `sin` are computed here (WGSL's builtins are only held to a few ulp near 1
//!   or an absolute error, and leave special values undefined), with the same algorithms as the
//!   Vulkan backend: `exp2` by a Taylor series on `|f| <= 1/2` scaled by `2^n` in two exact
//!   steps; `log2` from the atanh series of the significand reduced to `[sqrt(2)/2, sqrt(2))`;
//!   `sin` by Cody-Waite reduction by pi/2 (f32: six 8-bit parts, exact for |x| < 2^16 pi/2;
//!   f64: four 26-bit parts, exact for |x| < 2^27 pi/2) and Taylor kernels on [-pi/4, pi/4].
//! * NaN tests look at the bits: without a float-controls mode, drivers may assume `x == x`.
//! * The nearest integer is `floor(x + 0.5)`, not `round`: lavapipe's f64 `round` (through
//!   naga's SPIR-V) returns its argument unchanged.

use super::{f32_lit, f64_lit, float_lit};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// pi/2 split into 8-bit parts (the last one full precision) for f32.
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

/// The helper functions one shader needs, by name.
#[derive(Default)]
pub(crate) struct Helpers {
    functions: BTreeMap<String, String>,
}

impl Helpers {
    /// Adds helper `name` (and the helpers it calls).
    pub(crate) fn require(&mut self, name: &str) {
        if self.functions.contains_key(name) {
            return;
        }
        let (text, deps) = generate(name);
        self.functions.insert(name.to_string(), text);
        for d in deps {
            self.require(d);
        }
    }

    /// Every requested function's text.
    pub(crate) fn text(&self) -> String {
        self.functions.values().map(String::as_str).collect()
    }
}

/// `1/k!` for the Taylor coefficients.
fn inv_factorial(k: u32) -> f64 {
    (1..=k).fold(1.0, |acc, i| acc / i as f64)
}

/// Horner evaluation of `sum coefs[i] * z^i` as nested `fma`s.
fn horner(z: &str, coefs: &[f64], wide: bool) -> String {
    let mut acc = float_lit(*coefs.last().expect("coefficients"), wide);
    for &k in coefs.iter().rev().skip(1) {
        acc = format!("fma({acc}, {z}, {})", float_lit(k, wide));
    }
    acc
}

/// The WGSL text of helper `name` and the helpers it calls.
fn generate(name: &str) -> (String, Vec<&'static str>) {
    let wide = name.ends_with("f64");
    let t = if wide { "f64" } else { "f32" };
    let c = |v: f64| float_lit(v, wide);
    match name {
        "isnan_f32" => (
            "fn isnan_f32(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }\n".into(),
            vec![],
        ),
        "isnan_f64" => (
            "fn isnan_f64(x: f64) -> bool { return (bitcast<u64>(x) & 0x7ffffffffffffffflu) > 0x7ff0000000000000lu; }\n".into(),
            vec![],
        ),
        "max_f32" | "max_f64" => {
            let u = if wide { "u64" } else { "u32" };
            (
                format!(
                    "fn max_{t}(a: {t}, b: {t}) -> {t} {{\n    if isnan_{t}(a) {{ return a; }}\n    if isnan_{t}(b) {{ return b; }}\n    if a > b {{ return a; }}\n    if a < b {{ return b; }}\n    // Equal: for two zeros the sign is negative only if both are (by bits: a driver may\n    // fold `a + b` when b = -a).\n    return bitcast<{t}>(bitcast<{u}>(a) & bitcast<{u}>(b));\n}}\n"
                ),
                vec![if wide { "isnan_f64" } else { "isnan_f32" }],
            )
        }
        "div_i32" | "div_i64" | "rem_i32" | "rem_i64" => {
            let it = &name[4..];
            let s = if it == "i64" { "li" } else { "i" };
            let body = if name.starts_with("div") {
                format!("if b == 0{s} {{ return 0{s}; }}\n    if b == -1{s} {{ return -a; }}\n    return a / b;")
            } else {
                format!("if b == 0{s} || b == -1{s} {{ return 0{s}; }}\n    return a % b;")
            };
            (format!("fn {name}(a: {it}, b: {it}) -> {it} {{\n    {body}\n}}\n"), vec![])
        }
        "div_u32" | "rem_u32" => {
            let sym = if name == "div_u32" { "/" } else { "%" };
            (
                format!("fn {name}(a: u32, b: u32) -> u32 {{\n    if b == 0u {{ return 0u; }}\n    return a {sym} b;\n}}\n"),
                vec![],
            )
        }
        "f16_bits_to_f32" => (
            format!(
                "fn f16_bits_to_f32(h: u32) -> f32 {{\n    let sign = (h & 0x8000u) << 16u;\n    let e = (h >> 10u) & 0x1fu;\n    let m = h & 0x3ffu;\n    var r: u32;\n    if e == 0x1fu {{ r = (m << 13u) | 0x7f800000u; }}\n    else if e == 0u {{ r = bitcast<u32>(f32(m) * {}); }}\n    else {{ r = ((e + 112u) << 23u) | (m << 13u); }}\n    return bitcast<f32>(r | sign);\n}}\n",
                f32_lit(2f32.powi(-24))
            ),
            vec![],
        ),
        "f32_to_f16_bits" => (
            format!(
                "fn f32_to_f16_bits(x: f32) -> u32 {{\n    let bits = bitcast<u32>(x);\n    let sign = (bits >> 16u) & 0x8000u;\n    let a = bits & 0x7fffffffu;\n    if a >= 0x7f800000u {{\n        // Inf/NaN: keep the top payload bits; a NaN whose payload would vanish stays NaN.\n        var m = (a >> 13u) & 0x3ffu;\n        if a > 0x7f800000u && m == 0u {{ m = 0x200u; }}\n        return sign | 0x7c00u | m;\n    }}\n    if a >= 0x38800000u {{ return sign | ((a - 0x38000000u) >> 13u); }}\n    return sign | u32(bitcast<f32>(a) * {});\n}}\n",
                f32_lit(2f32.powi(24))
            ),
            vec![],
        ),
        "round_f16" => (
            format!(
                "fn round_f16(x: f32) -> f32 {{\n    let bits = bitcast<u32>(x);\n    let a = bits & 0x7fffffffu;\n    if a > 0x7f800000u {{ return x; }}\n    var r: u32;\n    if a >= 0x477ff000u {{ r = 0x7f800000u; }}\n    else if a >= 0x38800000u {{ r = (a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u; }}\n    else {{ r = bitcast<u32>(round(bitcast<f32>(a) * {up}) * {down}); }}\n    return bitcast<f32>(r | (bits & 0x80000000u));\n}}\n",
                up = f32_lit(2f32.powi(24)),
                down = f32_lit(2f32.powi(-24))
            ),
            vec![],
        ),
        "round_bf16" => (
            "fn round_bf16(x: f32) -> f32 {\n    let bits = bitcast<u32>(x);\n    if (bits & 0x7fffffffu) > 0x7f800000u { return bitcast<f32>((bits | 0x00400000u) & 0xffff0000u); }\n    return bitcast<f32>((bits + 0x7fffu + ((bits >> 16u) & 1u)) & 0xffff0000u);\n}\n".into(),
            vec![],
        ),
        "u32_to_f32_odd" => (
            "fn u32_to_f32_odd(m: u32) -> f32 {\n    if m < 0x1000000u { return f32(m); }\n    let shift = firstLeadingBit(m) - 23u;\n    let mask = (1u << shift) - 1u;\n    let sticky = select(0u, 1u << shift, (m & mask) != 0u);\n    return f32((m & ~mask) | sticky);\n}\n".into(),
            vec![],
        ),
        "i32_to_f32_odd" => (
            "fn i32_to_f32_odd(x: i32) -> f32 {\n    let m = select(bitcast<u32>(x), 0u - bitcast<u32>(x), x < 0i);\n    let f = u32_to_f32_odd(m);\n    return select(f, -f, x < 0i);\n}\n".into(),
            vec!["u32_to_f32_odd"],
        ),
        "i64_to_f32_odd" => (
            "fn i64_to_f32_odd(x: i64) -> f32 {\n    let m = select(bitcast<u64>(x), 0lu - bitcast<u64>(x), x < 0li);\n    var f: f32;\n    if m < 0x1000000lu { f = f32(m); } else {\n        let hi = u32(m >> 32u);\n        let msb = select(firstLeadingBit(u32(m & 0xfffffffflu)), firstLeadingBit(hi) + 32u, hi != 0u);\n        let shift = msb - 23u;\n        let mask = (1lu << shift) - 1lu;\n        let sticky = select(0lu, 1lu << shift, (m & mask) != 0lu);\n        f = f32((m & ~mask) | sticky);\n    }\n    return select(f, -f, x < 0li);\n}\n".into(),
            vec![],
        ),
        "f64_to_f32_odd" => (
            "fn f64_to_f32_odd(x: f64) -> f32 {\n    let y = f32(x);\n    let back = f64(y);\n    var bits = bitcast<u32>(y);\n    if abs(back) > abs(x) { bits = bits - 1u; }\n    if back != x { bits = bits | 1u; }\n    return bitcast<f32>(bits);\n}\n".into(),
            vec![],
        ),
        _ if name.starts_with("cast_") => float_to_int(name),
        "pow2_f32" => (
            "fn pow2_f32(n: f32) -> f32 { return bitcast<f32>(u32(i32(n) + 127i) << 23u); }\n".into(),
            vec![],
        ),
        "pow2_f64" => (
            "fn pow2_f64(n: f64) -> f64 { return bitcast<f64>(u64(u32(i32(n) + 1023i)) << 52u); }\n".into(),
            vec![],
        ),
        "exp2_f32" | "exp2_f64" => {
            let limit = if wide { 1100.0 } else { 160.0 };
            let degree = if wide { 13 } else { 7 };
            let coefs: Vec<f64> = (0..=degree).map(inv_factorial).collect();
            (
                format!(
                    "fn exp2_{t}(x: {t}) -> {t} {{\n    if isnan_{t}(x) {{ return x; }}\n    let xc = clamp(x, {lo}, {hi});\n    let n = floor(xc + {half});\n    let p_t = (xc - n) * {ln2};\n    let p = {poly};\n    // 2^n = 2^n1 * 2^n2 with both halves in the normal exponent range.\n    let n1 = floor(n * {half});\n    return p * pow2_{t}(n1) * pow2_{t}(n - n1);\n}}\n",
                    lo = c(-limit),
                    hi = c(limit),
                    ln2 = c(std::f64::consts::LN_2),
                    poly = horner("p_t", &coefs, wide),
                    half = c(0.5),
                ),
                if wide { vec!["isnan_f64", "pow2_f64"] } else { vec!["isnan_f32", "pow2_f32"] },
            )
        }
        "log2_f32" | "log2_f64" => (log2(wide), if wide { vec!["isnan_f64"] } else { vec!["isnan_f32"] }),
        "sin_f32" | "sin_f64" => (sin(wide), vec![]),
        // |x| < 2^52 truncated through two exact u32 conversions (high and low 32 bits of the
        // integer part): the compiler may reassociate `|x| + 2^52 - 2^52` away, but not a
        // conversion. The sign is put back afterwards so that trunc(-0.3) = -0; zeros,
        // infinities, NaN and |x| >= 2^52 pass unchanged.
        "trunc_f64" => (
            format!(
                "fn trunc_f64(x: f64) -> f64 {{\n    let a = abs(x);\n    let hi = f64(u32(a * {inv32})) * {two32};\n    let r0 = hi + f64(u32(a - hi));\n    var r = select(a, r0, a < {two52});\n    r = select(r, -r, x < {zero});\n    return select(r, x, a == {zero});\n}}\n",
                inv32 = float_lit(2f64.powi(-32), true),
                two32 = float_lit(2f64.powi(32), true),
                two52 = float_lit(2f64.powi(52), true),
                zero = float_lit(0.0, true),
            ),
            vec![],
        ),
        _ => unreachable!("unknown WGSL helper `{name}`"),
    }
}

/// `cast_F_I`: saturating float -> int (register form of I), truncating toward zero, NaN -> 0.
fn float_to_int(name: &str) -> (String, Vec<&'static str>) {
    let mut parts = name.split('_').skip(1);
    let (from, to) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let wide = from == "f64";
    let (lo, hi, min, max, reg, s): (f64, f64, &str, &str, &str, &str) = match to {
        "i8" => (-128.0, 128.0, "-128", "127", "i32", "i"),
        "u8" => (0.0, 256.0, "0", "255", "u32", "u"),
        "i32" => (
            -2147483648.0,
            2147483648.0,
            "(-2147483647i - 1",
            "2147483647",
            "i32",
            "i",
        ),
        "u32" => (0.0, 4294967296.0, "0", "4294967295", "u32", "u"),
        _ => (
            -9223372036854775808.0,
            9223372036854775808.0,
            "(-9223372036854775807li - 1",
            "9223372036854775807",
            "i64",
            "li",
        ),
    };
    // `min` of the most negative values is written as a parenthesized difference.
    let min = if min.starts_with('(') {
        format!("{min}{s})")
    } else {
        format!("{min}{s}")
    };
    let mut text = String::new();
    let _ = write!(
        text,
        "fn {name}(x: {from}) -> {reg} {{\n    if x >= {hi} {{ return {max}{s}; }}\n    if x < {lo} {{ return {min}; }}\n    if !(x >= {lo}) {{ return 0{s}; }}\n    return {reg}(x);\n}}\n",
        hi = float_lit(hi, wide),
        lo = float_lit(lo, wide),
    );
    (text, vec![])
}

/// `log2_T`: significand in [sqrt(2)/2, sqrt(2)), `e + log2(m)` with `f = m - 1` (exact),
/// `s = f/(2+f)`, `ln m = f - (f^2/2 - s (f^2/2 + R))`, `R = sum_k 2 s^2k/(2k+1)`.
fn log2(wide: bool) -> String {
    let t = if wide { "f64" } else { "f32" };
    let c = |v: f64| float_lit(v, wide);
    let terms = if wide { 12 } else { 6 };
    let coefs: Vec<f64> = (1..=terms).map(|k| 2.0 / (2 * k + 1) as f64).collect();
    let reduce = if wide {
        format!(
            "    var y = x;\n    var e_adj = {zero};\n    if x < {tiny} {{ y = x * {up}; e_adj = {sub}; }}\n    let bits = bitcast<u64>(y);\n    let hi = u32(bits >> 32u);\n    let frac = hi & 0x000fffffu;\n    let above = frac >= 0x6a09eu;\n    let top = u64(frac | select(0x3ff00000u, 0x3fe00000u, above)) << 32u;\n    let m = bitcast<f64>(top | (bits & 0xfffffffflu));\n    let e = ((hi >> 20u) & 0x7ffu) + select(0u, 1u, above);\n    let ef = f64(e) + {bias} + e_adj;\n",
            zero = c(0.0),
            tiny = f64_lit(f64::MIN_POSITIVE),
            up = f64_lit(2f64.powi(54)),
            sub = c(-54.0),
            bias = c(-1023.0),
        )
    } else {
        format!(
            "    var y = x;\n    var e_adj = {zero};\n    if x < {tiny} {{ y = x * {up}; e_adj = {sub}; }}\n    let bits = bitcast<u32>(y);\n    let frac = bits & 0x007fffffu;\n    let above = frac >= 0x003504f3u;\n    let m = bitcast<f32>(frac | select(0x3f800000u, 0x3f000000u, above));\n    let e = ((bits >> 23u) & 0xffu) + select(0u, 1u, above);\n    let ef = f32(e) + {bias} + e_adj;\n",
            zero = c(0.0),
            tiny = f32_lit(f32::MIN_POSITIVE),
            up = f32_lit(2f32.powi(32)),
            sub = c(-32.0),
            bias = c(-127.0),
        )
    };
    format!(
        "fn log2_{t}(x: {t}) -> {t} {{\n    if isnan_{t}(x) {{ return x; }}\n    if x < {zero} {{ return {nan}; }}\n    if x == {zero} {{ return {ninf}; }}\n    if x == {inf} {{ return x; }}\n{reduce}    let f = m - {one};\n    let s = f / (f + {two});\n    let z = s * s;\n    let r = z * {poly};\n    let hfsq = f * f * {half};\n    let corr = hfsq - s * (hfsq + r);\n    let lt = fma(-corr, {log2e}, ef);\n    return fma(f, {log2e}, lt);\n}}\n",
        zero = c(0.0),
        nan = nan_lit(wide),
        ninf = inf_lit(wide, true),
        inf = inf_lit(wide, false),
        one = c(1.0),
        two = c(2.0),
        half = c(0.5),
        poly = horner("z", &coefs, wide),
        log2e = c(std::f64::consts::LOG2_E),
    )
}

/// `sin_T`: reduction by pi/2 into `r` and the quadrant, then the sine or cosine kernel.
fn sin(wide: bool) -> String {
    let t = if wide { "f64" } else { "f32" };
    let c = |v: f64| float_lit(v, wide);
    let (sin_terms, cos_terms) = if wide { (9, 10) } else { (5, 6) };
    let parts: Vec<f64> = if wide {
        PIO2_F64.iter().map(|&b| f64::from_bits(b)).collect()
    } else {
        PIO2_F32.iter().map(|&b| f32::from_bits(b) as f64).collect()
    };
    let sign = |k: u32, v: f64| if k % 2 == 1 { -v } else { v };
    let sin_c: Vec<f64> = (1..=sin_terms)
        .map(|k| sign(k, inv_factorial(2 * k + 1)))
        .collect();
    let cos_c: Vec<f64> = (1..=cos_terms)
        .map(|k| sign(k, inv_factorial(2 * k)))
        .collect();
    let mut text = format!(
        "fn sin_{t}(x: {t}) -> {t} {{\n    let n = floor(x * {inv} + {half});\n    var r = x;\n",
        inv = c(std::f64::consts::FRAC_2_PI),
        half = c(0.5)
    );
    for p in parts {
        // As one fma (the product is exact either way): a driver may not factor `n` out of
        // a chain of fmas as it may out of `r - n * p1 - n * p2`.
        let _ = writeln!(text, "    r = fma(-n, {}, r);", c(p));
    }
    let _ = write!(
        text,
        "    // n mod 4, exact in floating point (n is an integer); 0 for inf/NaN.\n    let qf = n - floor(n * {quarter}) * {four};\n    let q = select(0u, u32(qf), qf >= {zero} && qf < {four});\n    let z = r * r;\n    let s = fma(r * z, {sp}, r);\n    let co = fma(z, {cp}, {one});\n    var v = select(s, co, (q & 1u) != 0u);\n    v = select(v, -v, (q & 2u) != 0u);\n    // Beyond the exact reduction the value is inaccurate; keep it within [-1, 1].\n    v = select(v, {one}, v > {one});\n    return select(v, -{one}, v < -{one});\n}}\n",
        quarter = c(0.25),
        four = c(4.0),
        zero = c(0.0),
        one = c(1.0),
        sp = horner("z", &sin_c, wide),
        cp = horner("z", &cos_c, wide),
    );
    text
}

/// A quiet NaN of register width.
fn nan_lit(wide: bool) -> String {
    if wide {
        "bitcast<f64>(0x7ff8000000000000lu)".into()
    } else {
        "bitcast<f32>(0x7fc00000u)".into()
    }
}

/// Infinity (negative when `negative`) of register width.
fn inf_lit(wide: bool, negative: bool) -> String {
    match (wide, negative) {
        (true, false) => "bitcast<f64>(0x7ff0000000000000lu)".into(),
        (true, true) => "bitcast<f64>(0xfff0000000000000lu)".into(),
        (false, false) => "bitcast<f32>(0x7f800000u)".into(),
        (false, true) => "bitcast<f32>(0xff800000u)".into(),
    }
}
