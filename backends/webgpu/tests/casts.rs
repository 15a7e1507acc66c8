//! Every Cast pair among the ten dtypes on edge values, against Rust `as` (saturating float ->
//! int, wrapping int -> int) and `half` (one rounding to f16/bf16); bitcasts.
mod common;
use common::*;
use ferrograd_ir::DType;
use ferrograd_webgpu::WebGpuDevice;
use half::{bf16, f16};

/// A source value, exact.
#[derive(Clone, Copy, Debug)]
enum V {
    B(bool),
    I(i64),
    U(u64),
    F(f64),
}

/// The expected result of casting `v` to `to`, as the bytes a buffer would hold.
fn expected(v: V, to: DType) -> Vec<u8> {
    let b = match v {
        V::B(b) => b,
        V::I(i) => i != 0,
        V::U(u) => u != 0,
        V::F(f) => f != 0.0,
    };
    macro_rules! int_to {
        ($t:ty) => {
            match v {
                V::B(b) => (b as $t).to_le_bytes().to_vec(),
                V::I(i) => (i as $t).to_le_bytes().to_vec(),
                V::U(u) => (u as $t).to_le_bytes().to_vec(),
                V::F(f) => (f as $t).to_le_bytes().to_vec(),
            }
        };
    }
    let as_f64 = match v {
        V::B(b) => b as u8 as f64,
        V::I(i) => i as f64,
        V::U(u) => u as f64,
        V::F(f) => f,
    };
    match to {
        DType::Bool => vec![b as u8],
        DType::I8 => int_to!(i8),
        DType::U8 => int_to!(u8),
        DType::I32 => int_to!(i32),
        DType::U32 => int_to!(u32),
        DType::I64 => int_to!(i64),
        DType::F32 => match v {
            V::I(i) => (i as f32).to_le_bytes().to_vec(),
            V::U(u) => (u as f32).to_le_bytes().to_vec(),
            _ => (as_f64 as f32).to_le_bytes().to_vec(),
        },
        DType::F64 => as_f64.to_le_bytes().to_vec(),
        DType::F16 => to_f16(exact_or(v, 11)).to_le_bytes().to_vec(),
        DType::BF16 => to_bf16(exact_or(v, 8)).to_le_bytes().to_vec(),
    }
}

/// An integer rounded once (nearest, ties to even) to `keep` significant bits, as f64; a float
/// as it is.
fn exact_or(v: V, keep: u32) -> f64 {
    let i: i128 = match v {
        V::F(f) => return f,
        V::B(b) => b as i128,
        V::I(i) => i as i128,
        V::U(u) => u as i128,
    };
    let m = i.unsigned_abs();
    let bits = 128 - m.leading_zeros();
    let r = if bits <= keep {
        m
    } else {
        let shift = bits - keep;
        let (q, rem, half) = (m >> shift, m & ((1 << shift) - 1), 1u128 << (shift - 1));
        let q = if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        q << shift
    };
    if i < 0 {
        -(r as f64)
    } else {
        r as f64
    }
}

fn is_nan(bytes: &[u8], dtype: DType) -> bool {
    match dtype {
        DType::F16 => f16::from_le_bytes(bytes.try_into().unwrap()).is_nan(),
        DType::BF16 => bf16::from_le_bytes(bytes.try_into().unwrap()).is_nan(),
        DType::F32 => f32::from_le_bytes(bytes.try_into().unwrap()).is_nan(),
        DType::F64 => f64::from_le_bytes(bytes.try_into().unwrap()).is_nan(),
        _ => false,
    }
}

/// Edge values of `dtype` (each exactly representable in it) and their encodings.
fn sources(dtype: DType) -> Vec<(V, Vec<u8>)> {
    let floats = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.7,
        127.9,
        128.5,
        -128.5,
        -129.0,
        255.5,
        256.0,
        -300.25,
        65504.0,
        65519.0,
        65520.0,
        1.0e5,
        3.0e9,
        -3.0e9,
        2147483520.0,
        2147483648.0,
        -2147483904.0,
        4294967040.0,
        4294967296.0,
        9.223_372_036_854_776e18,
        -9.3e18,
        1.0e20,
        -1.0e20,
        3.0e38,
        1.0e-3,
        1.0e-7,
        1.0e-40,
        1.0e-45,
        1.0e300,
        5.0e-324,
        0.1,
        1.0 + 1.0 / 1024.0 + 1.0 / 4096.0,
        // Just above an f16 / bf16 tie, by less than the f64 bits half's from_f64 keeps.
        1.0 + 1.0 / 2048.0 + 1.0e-12,
        -(1.0 + 1.0 / 256.0 + 1.0e-13),
        2049.0 + 1.0e-9,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    match dtype {
        DType::Bool => [false, true]
            .iter()
            .map(|&b| (V::B(b), vec![b as u8]))
            .collect(),
        DType::I8 => [0i8, 1, -1, 5, -5, 127, -128]
            .iter()
            .map(|&i| (V::I(i as i64), i.to_le_bytes().to_vec()))
            .collect(),
        DType::U8 => [0u8, 1, 7, 128, 255]
            .iter()
            .map(|&u| (V::U(u as u64), u.to_le_bytes().to_vec()))
            .collect(),
        DType::I32 => [
            0i32,
            1,
            -1,
            300,
            -129,
            65504,
            65520,
            123_456_789,
            -98_765,
            16_777_217,
            i32::MAX,
            i32::MIN,
        ]
        .iter()
        .map(|&i| (V::I(i as i64), i.to_le_bytes().to_vec()))
        .collect(),
        DType::U32 => [
            0u32,
            1,
            255,
            256,
            1 << 31,
            123_456_789,
            16_777_217,
            u32::MAX,
        ]
        .iter()
        .map(|&u| (V::U(u as u64), u.to_le_bytes().to_vec()))
        .collect(),
        DType::I64 => [
            0i64,
            1,
            -1,
            300,
            -(1 << 40) - 3,
            (1 << 53) + 1,
            (1 << 30) + (1 << 22) + 1,
            (1 << 62) + (1 << 54) + 1,
            -(1 << 62) - (1 << 54) - 1,
            1 << 31,
            i64::MAX,
            i64::MIN,
        ]
        .iter()
        .map(|&i| (V::I(i), i.to_le_bytes().to_vec()))
        .collect(),
        DType::F16 => floats
            .iter()
            .map(|&f| f16::from_f64(f))
            .map(|h| (V::F(h.to_f64()), h.to_le_bytes().to_vec()))
            .collect(),
        DType::BF16 => floats
            .iter()
            .map(|&f| bf16::from_f64(f))
            .map(|h| (V::F(h.to_f64()), h.to_le_bytes().to_vec()))
            .collect(),
        DType::F32 => floats
            .iter()
            .map(|&f| f as f32)
            .map(|x| (V::F(x as f64), x.to_le_bytes().to_vec()))
            .collect(),
        DType::F64 => floats
            .iter()
            .map(|&f| (V::F(f), f.to_le_bytes().to_vec()))
            .collect(),
    }
}

/// Runs `Cast` (or `Bitcast`) from `from` to `to` on raw encoded lanes.
fn run_raw(
    dev: &WebGpuDevice,
    from: DType,
    to: DType,
    data: &[u8],
    lanes: u8,
    bitcast: bool,
) -> Vec<u8> {
    use ferrograd_ir::{Inst, VType};
    use ferrograd_runtime::Device;
    let n = data.len() / from.size();
    let p = map_program("cast", &[from], to, n, lanes, |b, v| {
        let ty = VType::vec(to, lanes);
        b.push(if bitcast {
            Inst::Bitcast { to: ty, arg: v[0] }
        } else {
            Inst::Cast { to: ty, arg: v[0] }
        })
    });
    let src = dev.allocate(data.len()).unwrap();
    dev.write(&src, data).unwrap();
    let dst = dev.allocate(n * to.size()).unwrap();
    run(dev, &p, &[&src, &dst]);
    let mut out = vec![0u8; n * to.size()];
    dev.read(&dst, &mut out).unwrap();
    out
}

#[test]
fn every_cast_pair_matches_rust_as() {
    let dev = device();
    let mut checked = 0;
    for from in DType::ALL {
        let mut src = sources(from);
        while !src.len().is_multiple_of(4) {
            src.push(src[0].clone());
        }
        let data: Vec<u8> = src.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        for to in DType::ALL {
            for lanes in [1u8, 4] {
                let out = run_raw(&dev, from, to, &data, lanes, false);
                for (i, (v, _)) in src.iter().enumerate() {
                    let got = &out[i * to.size()..(i + 1) * to.size()];
                    let want = expected(*v, to);
                    let ok = got == want.as_slice() || (is_nan(got, to) && is_nan(&want, to));
                    assert!(
                        ok,
                        "cast {from} -> {to} ({lanes} lanes) of {v:?}: got {got:?}, want {want:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 2000);
}

#[test]
fn bitcasts_reinterpret_bits() {
    let dev = device();
    let i32s: Vec<u8> = [
        0i32,
        1,
        -1,
        0x3f80_0000,
        0x7f80_0001,
        i32::MIN,
        0x7fc0_0000,
        12345,
    ]
    .iter()
    .flat_map(|x| x.to_le_bytes())
    .collect();
    let i64s: Vec<u8> = [
        0i64,
        -1,
        0x3ff0_0000_0000_0000,
        0x7ff0_0000_0000_0001,
        i64::MIN,
        42,
    ]
    .iter()
    .flat_map(|x| x.to_le_bytes())
    .collect();
    let i16s: Vec<u8> = [0u16, 0x3c00, 0xbc00, 0x7c00, 0x7e00, 0x0001, 0x3f80, 0xc2f7]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    for lanes in [1u8, 2] {
        for (a, b, data) in [
            (DType::I32, DType::F32, &i32s),
            (DType::F32, DType::I32, &i32s),
            (DType::F32, DType::U32, &i32s),
            (DType::U32, DType::I32, &i32s),
            (DType::I64, DType::F64, &i64s),
            (DType::F64, DType::I64, &i64s),
            (DType::F16, DType::BF16, &i16s),
            (DType::BF16, DType::F16, &i16s),
        ] {
            assert_eq!(
                &run_raw(&dev, a, b, data, lanes, true),
                data,
                "bitcast {a} -> {b}, {lanes} lanes"
            );
        }
    }
    let i32x4 = run_raw(&dev, DType::I32, DType::F32, &i32s, 4, true);
    assert_eq!(i32x4, i32s);
    let back = run_raw(&dev, DType::F32, DType::U32, &i32s, 4, true);
    assert_eq!(back, i32s);
    // Bytes: i8 <-> u8 keep the bits. Bool has no defined bit pattern in a kernel: a bitcast to
    // or from it is refused at compile time (a Cast is the way to convert).
    let bytes = vec![0u8, 1, 2, 255];
    assert_eq!(run_raw(&dev, DType::I8, DType::U8, &bytes, 4, true), bytes);
    for (from, to) in [(DType::U8, DType::Bool), (DType::Bool, DType::I8)] {
        let p = map_program("cast", &[from], to, 4, 1, |b, v| {
            b.push(ferrograd_ir::Inst::Bitcast {
                to: ferrograd_ir::VType::scalar(to),
                arg: v[0],
            })
        });
        let err = ferrograd_runtime::Device::compile(&dev, &p)
            .expect_err("a bool bitcast must be refused");
        assert!(err.to_string().contains("bool"), "{err}");
    }
}
