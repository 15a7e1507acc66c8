//! Launch splitting across threads, 3-D grids, argument checks, and disassembly.
mod common;
use common::*;
use ferrograd_vulkan::VulkanDevice;
use ferrograd_ir::{BinaryOp, DType, Inst, Memory, Program, ProgramBuilder, Scalar, VType};
use ferrograd_runtime::{Device, Error};

/// out[row] = sum over j < 64 of (row * j) % 7 + row, on `rows` rows.
fn rows_program(rows: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let r = b.push(Inst::GroupId(0));
    let acc = b.push(Inst::DefineAcc {
        ty: VType::scalar(DType::I32),
        init: Scalar::Int(0),
    });
    let zero = int(&mut b, 0);
    let seven = int(&mut b, 7);
    let end = int(&mut b, 64);
    let j = b.push(Inst::Loop { start: zero, end });
    let p = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: r,
        b: j,
    });
    let m = b.push(Inst::Binary {
        op: BinaryOp::Mod,
        a: p,
        b: seven,
    });
    let cur = b.push(Inst::ReadAcc(acc));
    let s = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: cur,
        b: m,
    });
    b.push(Inst::WriteAcc { acc, value: s });
    b.push(Inst::EndLoop);
    let total = b.push(Inst::ReadAcc(acc));
    let total = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: total,
        b: r,
    });
    b.push(Inst::Store {
        mem: Memory::Global(0),
        index: r,
        value: total,
        gate: None,
    });
    program(
        "rows",
        vec![param(DType::I32, rows, true)],
        vec![rows],
        b.finish(),
    )
}

fn run_in_pool(dev: &VulkanDevice, p: &Program, rows: usize, threads: usize) -> Vec<i32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let out = dev.allocate(rows * 4).unwrap();
    dev.write(&out, &vec![0xAB; rows * 4]).unwrap();
    let kernel = dev.compile(p).unwrap();
    pool.install(|| dev.launch(&kernel, &[&out])).unwrap();
    download(dev, &out, rows)
}

#[test]
fn launch_splits_rows_across_threads_with_identical_results() {
    let dev = device();
    let rows = 1000;
    let p = rows_program(rows);
    let want: Vec<i32> = (0..rows as i32)
        .map(|r| (0..64).map(|j| (r * j) % 7).sum::<i32>() + r)
        .collect();
    let single = run_in_pool(&dev, &p, rows, 1);
    assert_eq!(single, want);
    for threads in [2, 3, 4, 7] {
        assert_eq!(
            run_in_pool(&dev, &p, rows, threads),
            single,
            "{threads} threads"
        );
    }
    // Odd, tiny and degenerate sizes.
    for rows in [1usize, 2, 3, 29, 0] {
        let p = rows_program(rows);
        let want: Vec<i32> = (0..rows as i32)
            .map(|r| (0..64).map(|j| (r * j) % 7).sum::<i32>() + r)
            .collect();
        assert_eq!(run_in_pool(&dev, &p, rows, 4), want, "{rows} rows");
    }
}

#[test]
fn three_dimensional_grid_visits_every_point_once() {
    let dev = device();
    for index in [DType::I32, DType::I64] {
        for (gx, gy, gz) in [(5usize, 4usize, 3usize), (3, 0, 2), (1, 1, 1), (0, 2, 2)] {
            let mut b = ProgramBuilder::new();
            let k = |b: &mut ProgramBuilder, v: usize| {
                b.push(Inst::Const {
                    ty: VType::scalar(index),
                    value: Scalar::Int(v as i64),
                })
            };
            let x = b.push(Inst::GroupId(0));
            let y = b.push(Inst::GroupId(1));
            let z = b.push(Inst::GroupId(2));
            let sy = k(&mut b, gy);
            let sz = k(&mut b, gz);
            let i = b.push(Inst::Binary {
                op: BinaryOp::Mul,
                a: x,
                b: sy,
            });
            let i = b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: i,
                b: y,
            });
            let i = b.push(Inst::Binary {
                op: BinaryOp::Mul,
                a: i,
                b: sz,
            });
            let i = b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: i,
                b: z,
            });
            let old = b.push(Inst::Load {
                mem: Memory::Global(0),
                index: i,
                gate: None,
                ty: VType::scalar(index),
            });
            let hundred = k(&mut b, 100);
            let v = b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: old,
                b: hundred,
            });
            b.push(Inst::Store {
                mem: Memory::Global(0),
                index: i,
                value: v,
                gate: None,
            });
            let n = gx * gy * gz;
            let mut p = program(
                "grid3",
                vec![param(index, n, true)],
                vec![gx, gy, gz],
                b.finish(),
            );
            p.index_dtype = index;
            let got: Vec<i64> = if index == DType::I32 {
                let buf = upload(&dev, &(0..n as i32).collect::<Vec<_>>());
                run(&dev, &p, &[&buf]);
                download::<i32>(&dev, &buf, n)
                    .into_iter()
                    .map(|v| v as i64)
                    .collect()
            } else {
                let buf = upload(&dev, &(0..n as i64).collect::<Vec<_>>());
                run(&dev, &p, &[&buf]);
                download::<i64>(&dev, &buf, n)
            };
            assert_eq!(
                got,
                (0..n as i64).map(|k| k + 100).collect::<Vec<_>>(),
                "{gx}x{gy}x{gz} {index}"
            );
        }
    }
}

#[test]
fn launch_checks_buffers() {
    let dev = device();
    let p = rows_program(10);
    let kernel = dev.compile(&p).unwrap();
    let small = dev.allocate(39).unwrap();
    let ok = dev.allocate(40).unwrap();
    assert!(matches!(
        dev.launch(&kernel, &[]),
        Err(Error::Device { .. })
    ));
    assert!(matches!(
        dev.launch(&kernel, &[&ok, &ok]),
        Err(Error::Device { .. })
    ));
    let err = dev.launch(&kernel, &[&small]).unwrap_err();
    assert!(
        matches!(err, Error::Device { .. }) && err.to_string().contains("39 bytes"),
        "{err}"
    );
    let foreign: ferrograd_runtime::RawBuffer = Box::new(vec![0u8; 40]);
    assert!(matches!(
        dev.launch(&kernel, &[&foreign]),
        Err(Error::Device { .. })
    ));
    let not_a_kernel: ferrograd_runtime::CompiledKernel = std::sync::Arc::new(5u32);
    assert!(matches!(
        dev.launch(&not_a_kernel, &[&ok]),
        Err(Error::Device { .. })
    ));
    dev.launch(&kernel, &[&ok]).unwrap();
}

#[test]
fn memory_errors_are_typed() {
    let dev = device();
    assert!(matches!(
        dev.allocate(usize::MAX),
        Err(Error::OutOfMemory {
            bytes: usize::MAX,
            ..
        })
    ));
    let empty = dev.allocate(0).unwrap();
    dev.write(&empty, &[]).unwrap();
    dev.read(&empty, &mut []).unwrap();
    assert!(matches!(dev.write(&empty, &[1]), Err(Error::Device { .. })));
    let foreign: ferrograd_runtime::RawBuffer = Box::new(0u8);
    assert!(matches!(
        dev.read(&foreign, &mut [0]),
        Err(Error::Device { .. })
    ));
}

#[test]
fn device_info_describes_the_host() {
    let dev = device();
    let info = dev.info();
    assert_eq!(info.name, "cpu");
    assert_eq!(info.kind, ferrograd_runtime::DeviceKind::Cpu);
    assert_eq!(info.dtypes.len(), 10);
    assert_eq!(info.vector_bytes, 16);
    assert!(info.memory_bytes > 0 && info.compute_units == rayon::current_num_threads());
    assert!(!info.description.is_empty());
    if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("sse4.1") {
        assert!(info.description.contains("sse4.1"), "{}", info.description);
    }
    for (dtype, lanes) in [
        (DType::F32, 4),
        (DType::I32, 4),
        (DType::U32, 4),
        (DType::F64, 1),
        (DType::F16, 1),
        (DType::U8, 1),
    ] {
        assert_eq!(dev.preferred_lanes(dtype), lanes, "{dtype}");
    }
}

#[test]
fn disassembly_shows_machine_code() {
    let dev = device();
    let p = map_program("exp2x4", &[DType::F32], DType::F32, 16, 4, |b, v| {
        b.push(Inst::Unary {
            op: ferrograd_ir::UnaryOp::Exp2,
            arg: v[0],
        })
    });
    let text = dev.disassemble(&p).unwrap();
    assert!(text.contains("ret"), "{text}");
    if cfg!(target_arch = "x86_64") {
        assert!(text.contains("xmm"), "{text}");
    }
    assert!(matches!(
        dev.disassemble(&Program {
            local: vec![8],
            ..p
        }),
        Err(Error::Compile { .. })
    ));
}
