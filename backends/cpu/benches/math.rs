//! f32 `exp2` over 16M elements: inline polynomial code vs one libm `exp2f` call per lane,
//! for f32x4 and scalar kernels, on one thread and on the whole rayon pool.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrograd_cpu::{CpuDevice, CpuOptions, MathImpl};
use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, Param, Program, ProgramBuilder, Scalar, UnaryOp, VType,
};
use ferrograd_runtime::Device;

const N: usize = 16 << 20;

/// `out[i] = exp2(in[i])`, `lanes` elements per grid point.
fn exp2_program(lanes: u8) -> Program {
    let mut b = ProgramBuilder::new();
    let g = b.push(Inst::GroupId(0));
    let w = b.push(Inst::Const {
        ty: VType::scalar(DType::I32),
        value: Scalar::Int(lanes as i64),
    });
    let i = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: g,
        b: w,
    });
    let ty = VType::vec(DType::F32, lanes);
    let x = b.push(Inst::Load {
        mem: Memory::Global(0),
        index: i,
        gate: None,
        ty,
    });
    let y = b.push(Inst::Unary {
        op: UnaryOp::Exp2,
        arg: x,
    });
    b.push(Inst::Store {
        mem: Memory::Global(1),
        index: i,
        value: y,
        gate: None,
    });
    Program {
        name: format!("exp2_x{lanes}"),
        params: vec![
            Param {
                dtype: DType::F32,
                len: N,
                writable: false,
            },
            Param {
                dtype: DType::F32,
                len: N,
                writable: true,
            },
        ],
        global: vec![N / lanes as usize],
        local: vec![1],
        index_dtype: DType::I32,
        insts: b.finish(),
    }
}

fn bench_exp2(c: &mut Criterion) {
    let input: Vec<u8> = (0..N)
        .flat_map(|i| ((i % 20_000) as f32 * 0.01 - 100.0).to_le_bytes())
        .collect();
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let mut group = c.benchmark_group("exp2_f32_16M");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    for (label, math) in [("inline", MathImpl::Inline), ("libm", MathImpl::Libm)] {
        let dev = CpuDevice::with_options(CpuOptions { f32_math: math }).expect("host CPU");
        let src = dev.allocate(N * 4).expect("input buffer");
        dev.write(&src, &input).expect("upload");
        let dst = dev.allocate(N * 4).expect("output buffer");
        for lanes in [4u8, 1] {
            let kernel = dev.compile(&exp2_program(lanes)).expect("compile");
            group.bench_function(format!("{label}_x{lanes}_1thread"), |b| {
                b.iter(|| single.install(|| dev.launch(&kernel, &[&src, &dst]).expect("launch")))
            });
            group.bench_function(
                format!("{label}_x{lanes}_{}threads", rayon::current_num_threads()),
                |b| b.iter(|| dev.launch(&kernel, &[&src, &dst]).expect("launch")),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_exp2);
criterion_main!(benches);
