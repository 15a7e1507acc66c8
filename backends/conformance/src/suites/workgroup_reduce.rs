//! `WorkgroupReduce` for every reduce op over the dtypes kernels reduce, with power-of-two and
//! odd local sizes, through subgroup operations and through the local-memory tree.

use crate::{download, int, param, program, run, upload, Elem, GpuHarness, TestDevice};
use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, Program, ProgramBuilder, ReduceOp, Scalar, VType,
};
use ferrograd_runtime::Device;

/// `out[g] = op over l < local of in[g local + l]`, stored by invocation 0 of each workgroup.
fn reduce_program(op: ReduceOp, dtype: DType, groups: usize, local: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let g = b.push(Inst::GroupId(0));
    let l = b.push(Inst::LocalId(0));
    let width = int(&mut b, local as i64);
    let base = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: g,
        b: width,
    });
    let at = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: base,
        b: l,
    });
    let x = b.push(Inst::Load {
        mem: Memory::Global(1),
        index: at,
        gate: None,
        ty: VType::scalar(dtype),
    });
    let total = b.push(Inst::WorkgroupReduce { op, arg: x });
    let one = int(&mut b, 1);
    let first = b.push(Inst::Binary {
        op: BinaryOp::CmpLt,
        a: l,
        b: one,
    });
    b.push(Inst::Store {
        mem: Memory::Global(0),
        index: g,
        value: total,
        gate: Some(first),
    });
    let mut p = program(
        "workgroup_reduce",
        vec![
            param(dtype, groups, true),
            param(dtype, groups * local, false),
        ],
        vec![groups],
        b.finish(),
    );
    p.local = vec![local];
    p
}

fn check<H: GpuHarness, T: Elem>(
    dev: &TestDevice<H>,
    op: ReduceOp,
    data: &[T],
    local: usize,
    fold: impl Fn(T, T) -> T,
    same: impl Fn(T, T) -> bool,
) {
    let groups = data.len() / local;
    let p = reduce_program(op, T::DTYPE, groups, local);
    let (out, inp) = (
        dev.allocate(groups * T::DTYPE.size()).unwrap(),
        upload(dev, data),
    );
    run(dev, &p, &[&out, &inp]);
    let got: Vec<T> = download(dev, &out, groups);
    for (i, chunk) in data.chunks(local).enumerate() {
        let want = chunk[1..].iter().fold(chunk[0], |a, &b| fold(a, b));
        assert!(
            same(got[i], want),
            "{op:?} {} local {local} group {i}: got {:?}, want {want:?}",
            T::DTYPE,
            got[i]
        );
    }
}

/// The reference max: NaN wins, max(-0, +0) = +0.
fn max_ref(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else {
        a.max(b)
    }
}

/// The default device (subgroup operations where the device has them) and one without them.
fn devices<H: GpuHarness>() -> Vec<TestDevice<H>> {
    vec![
        crate::device::<H>(),
        TestDevice::wrap(H::open_without_subgroups()),
    ]
}

pub fn workgroup_reductions_of_every_op_and_dtype<H: GpuHarness>() {
    for dev in devices::<H>() {
        for local in [64usize, 100, 256] {
            let n = 3 * local;
            // Small integers keep float sums exact in any order.
            let f: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let eq = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
            check(&dev, ReduceOp::Sum, &f, local, |a, b| a + b, eq);
            check(&dev, ReduceOp::Max, &f, local, max_ref, eq);
            let small: Vec<f32> = (0..n).map(|i| if i % 5 == 0 { 2.0 } else { 1.0 }).collect();
            check(&dev, ReduceOp::Prod, &small, local, |a, b| a * b, eq);
            // NaN propagates through max; -0 and +0 give +0.
            let mut nan = f.clone();
            nan[local + 3] = f32::NAN;
            nan[2 * local..].iter_mut().for_each(|v| *v = -0.0);
            nan[2 * local + 1] = 0.0;
            check(&dev, ReduceOp::Max, &nan, local, max_ref, |a, b| {
                a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()
            });
            let i: Vec<i32> = (0..n).map(|k| (k as i32 * 7919) % 2001 - 1000).collect();
            check(&dev, ReduceOp::Sum, &i, local, i32::wrapping_add, |a, b| {
                a == b
            });
            check(&dev, ReduceOp::Max, &i, local, i32::max, |a, b| a == b);
            check(
                &dev,
                ReduceOp::Prod,
                &i,
                local,
                i32::wrapping_mul,
                |a, b| a == b,
            );
            let u: Vec<u32> = (0..n)
                .map(|k| (k as u32).wrapping_mul(2_654_435_761))
                .collect();
            check(&dev, ReduceOp::Max, &u, local, u32::max, |a, b| a == b);
            check(&dev, ReduceOp::Sum, &u, local, u32::wrapping_add, |a, b| {
                a == b
            });
            let s: Vec<i8> = (0..n).map(|k| (k as i64 * 37 % 256 - 128) as i8).collect();
            check(&dev, ReduceOp::Sum, &s, local, i8::wrapping_add, |a, b| {
                a == b
            });
            check(&dev, ReduceOp::Max, &s, local, i8::max, |a, b| a == b);
            let b8: Vec<u8> = (0..n).map(|k| (k * 13) as u8).collect();
            check(&dev, ReduceOp::Max, &b8, local, u8::max, |a, b| a == b);
            let bools: Vec<bool> = (0..n)
                .map(|k| k % local == local - 1 || k >= 2 * local)
                .collect();
            check(
                &dev,
                ReduceOp::Sum,
                &bools,
                local,
                |a, b| a || b,
                |a, b| a == b,
            );
            check(
                &dev,
                ReduceOp::Prod,
                &bools,
                local,
                |a, b| a && b,
                |a, b| a == b,
            );
            let d: Vec<f64> = f.iter().map(|&v| v as f64 * 0.5).collect();
            check(&dev, ReduceOp::Sum, &d, local, |a, b| a + b, |a, b| a == b);
            let l: Vec<i64> = (0..n).map(|k| (k as i64) << 40).collect();
            check(&dev, ReduceOp::Sum, &l, local, i64::wrapping_add, |a, b| {
                a == b
            });
        }
    }
}

pub fn workgroup_reduce_needs_uniform_control_flow<H: GpuHarness>() {
    let dev = crate::device::<H>();
    let mut b = ProgramBuilder::new();
    let c = b.push(Inst::Const {
        ty: VType::scalar(DType::Bool),
        value: Scalar::Bool(true),
    });
    let x = b.push(Inst::Const {
        ty: VType::scalar(DType::F32),
        value: Scalar::Float(1.0),
    });
    b.push(Inst::If { cond: c });
    b.push(Inst::WorkgroupReduce {
        op: ReduceOp::Sum,
        arg: x,
    });
    b.push(Inst::EndIf);
    let q = Program {
        insts: b.finish(),
        ..reduce_program(ReduceOp::Sum, DType::F32, 2, 64)
    };
    let err = dev
        .compile(&q)
        .expect_err("a reduction under an If is refused");
    assert!(err.to_string().contains("uniform control flow"), "{err}");
}
