//! Shared helpers of the integration tests: typed buffers and small program builders.
#![allow(dead_code)]

use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, Param, Program, ProgramBuilder, Scalar, UnaryOp, VType, ValueId,
};
use ferrograd_runtime::{Device, RawBuffer};
use ferrograd_webgpu::{WebGpuDevice, WebGpuOptions};
use half::{bf16, f16};
use std::fmt::Debug;

/// A Rust type stored in kernel buffers.
pub trait Elem: Copy + Debug + PartialEq + 'static {
    const DTYPE: DType;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const DTYPE: DType = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap())
            }
        }
    };
}
elem!(f32, DType::F32);
elem!(f64, DType::F64);
elem!(i32, DType::I32);
elem!(u32, DType::U32);
elem!(i64, DType::I64);
elem!(i8, DType::I8);
elem!(u8, DType::U8);
elem!(f16, DType::F16);
elem!(bf16, DType::BF16);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        assert!(bytes[0] <= 1, "bool byte {} is not 0 or 1", bytes[0]);
        bytes[0] == 1
    }
}

/// The first WebGPU adapter (lavapipe through wgpu's Vulkan backend in CI). WebGPU tests must
/// run where an adapter exists, so a missing adapter fails the test.
pub fn device() -> WebGpuDevice {
    WebGpuDevice::open_all(&WebGpuOptions::default())
        .unwrap_or_else(|e| panic!("no WebGPU adapter for the WebGPU tests: {e}"))
        .remove(0)
}

/// Parses and validates the WGSL generated for `program` with naga (every capability a wgpu
/// device may grant; the device itself checks against its own features when compiling).
pub fn validate_wgsl(dev: &WebGpuDevice, program: &Program) {
    let source = dev.wgsl(program).unwrap_or_else(|e| panic!("{e}"));
    let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
        panic!(
            "naga cannot parse the WGSL of `{}`: {}\n{source}",
            program.name,
            e.emit_to_string(&source)
        )
    });
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!(
            "naga rejects the WGSL of `{}`: {}\n{source}",
            program.name,
            e.emit_to_string(&source)
        )
    });
}

pub fn upload<T: Elem>(dev: &WebGpuDevice, data: &[T]) -> RawBuffer {
    let mut bytes = Vec::new();
    for &x in data {
        x.put(&mut bytes);
    }
    let buf = dev.allocate(bytes.len()).unwrap();
    dev.write(&buf, &bytes).unwrap();
    buf
}

pub fn download<T: Elem>(dev: &WebGpuDevice, buf: &RawBuffer, n: usize) -> Vec<T> {
    let size = T::DTYPE.size();
    let mut bytes = vec![0u8; n * size];
    dev.read(buf, &mut bytes).unwrap();
    bytes.chunks(size).map(T::get).collect()
}

pub fn run(dev: &WebGpuDevice, program: &Program, buffers: &[&RawBuffer]) {
    validate_wgsl(dev, program);
    let kernel = dev.compile(program).unwrap_or_else(|e| panic!("{e}"));
    dev.launch(&kernel, buffers).unwrap();
    dev.synchronize().unwrap();
}

pub fn param(dtype: DType, len: usize, writable: bool) -> Param {
    Param {
        dtype,
        len,
        writable,
    }
}

pub fn program(name: &str, params: Vec<Param>, global: Vec<usize>, insts: Vec<Inst>) -> Program {
    Program {
        name: name.to_string(),
        local: vec![1; global.len()],
        params,
        global,
        index_dtype: DType::I32,
        insts,
    }
}

pub fn int(b: &mut ProgramBuilder, v: i64) -> ValueId {
    b.push(Inst::Const {
        ty: VType::scalar(DType::I32),
        value: Scalar::Int(v),
    })
}

/// `out[i] = f(in_0[i], in_1[i], ...)` for `n` elements, `lanes` at a time (n % lanes == 0).
/// `f` gets the loaded operands and returns the value to store.
pub fn map_program(
    name: &str,
    inputs: &[DType],
    out: DType,
    n: usize,
    lanes: u8,
    f: impl FnOnce(&mut ProgramBuilder, &[ValueId]) -> ValueId,
) -> Program {
    let mut b = ProgramBuilder::new();
    let g = b.push(Inst::GroupId(0));
    let w = int(&mut b, lanes as i64);
    let i = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: g,
        b: w,
    });
    let loaded: Vec<ValueId> = inputs
        .iter()
        .enumerate()
        .map(|(p, &d)| {
            b.push(Inst::Load {
                mem: Memory::Global(p as u32),
                index: i,
                gate: None,
                ty: VType::vec(d, lanes),
            })
        })
        .collect();
    let r = f(&mut b, &loaded);
    b.push(Inst::Store {
        mem: Memory::Global(inputs.len() as u32),
        index: i,
        value: r,
        gate: None,
    });
    let mut params: Vec<Param> = inputs.iter().map(|&d| param(d, n, false)).collect();
    params.push(param(out, n, true));
    program(name, params, vec![n / lanes as usize], b.finish())
}

/// Runs a binary op elementwise over `a`, `b`, `lanes` at a time.
pub fn eval_binary<T: Elem, R: Elem>(
    dev: &WebGpuDevice,
    op: BinaryOp,
    a: &[T],
    b: &[T],
    lanes: u8,
) -> Vec<R> {
    let n = a.len();
    let p = map_program(
        "binary",
        &[T::DTYPE, T::DTYPE],
        R::DTYPE,
        n,
        lanes,
        |bld, v| {
            bld.push(Inst::Binary {
                op,
                a: v[0],
                b: v[1],
            })
        },
    );
    let (ba, bb, bo) = (
        upload(dev, a),
        upload(dev, b),
        dev.allocate(n * R::DTYPE.size()).unwrap(),
    );
    run(dev, &p, &[&ba, &bb, &bo]);
    download(dev, &bo, n)
}

/// Runs a unary op elementwise, `lanes` at a time.
pub fn eval_unary<T: Elem>(dev: &WebGpuDevice, op: UnaryOp, a: &[T], lanes: u8) -> Vec<T> {
    let n = a.len();
    let p = map_program("unary", &[T::DTYPE], T::DTYPE, n, lanes, |bld, v| {
        bld.push(Inst::Unary { op, arg: v[0] })
    });
    let (ba, bo) = (upload(dev, a), dev.allocate(n * T::DTYPE.size()).unwrap());
    run(dev, &p, &[&ba, &bo]);
    download(dev, &bo, n)
}

/// Runs a cast elementwise, `lanes` at a time.
pub fn eval_cast<T: Elem, R: Elem>(
    dev: &WebGpuDevice,
    a: &[T],
    lanes: u8,
    bitcast: bool,
) -> Vec<R> {
    let n = a.len();
    let p = map_program("cast", &[T::DTYPE], R::DTYPE, n, lanes, |bld, v| {
        let to = VType::vec(R::DTYPE, lanes);
        if bitcast {
            bld.push(Inst::Bitcast { to, arg: v[0] })
        } else {
            bld.push(Inst::Cast { to, arg: v[0] })
        }
    });
    let (ba, bo) = (upload(dev, a), dev.allocate(n * R::DTYPE.size()).unwrap());
    run(dev, &p, &[&ba, &bo]);
    download(dev, &bo, n)
}

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
