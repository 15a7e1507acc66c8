//! Grids of every shape (empty, 3-D, beyond the workgroup-count limit), batches of dependent
//! launches, kernels with many inputs, argument checks, limits, profiling and device info.
mod common;
use common::*;
use ferrograd_ir::{BinaryOp, DType, Inst, Memory, Program, ProgramBuilder, Scalar, VType};
use ferrograd_runtime::{Device, Error};
use ferrograd_webgpu::{WebGpuDevice, WebGpuOptions};

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

fn rows_want(rows: usize) -> Vec<i32> {
    (0..rows as i32)
        .map(|r| (0..64).map(|j| (r * j) % 7).sum::<i32>() + r)
        .collect()
}

fn run_rows(dev: &WebGpuDevice, rows: usize) -> Vec<i32> {
    let p = rows_program(rows);
    let out = dev.allocate(rows * 4).unwrap();
    dev.write(&out, &vec![0xAB; rows * 4]).unwrap();
    run(dev, &p, &[&out]);
    download(dev, &out, rows)
}

#[test]
fn one_dimensional_grids_of_any_size() {
    let dev = device();
    for rows in [1usize, 2, 3, 29, 63, 64, 65, 1000, 0] {
        assert_eq!(run_rows(&dev, rows), rows_want(rows), "{rows} rows");
    }
}

#[test]
fn grids_beyond_the_workgroup_count_limit_use_a_grid_stride_loop() {
    // A device limited to 3 x 3 workgroups: every grid larger than 9 workgroups is walked by the
    // grid-stride loop, for plain and workgroup (barrier) programs alike.
    let dev = WebGpuDevice::open_all(&WebGpuOptions {
        max_workgroup_count: Some(3),
        ..WebGpuOptions::default()
    })
    .unwrap()
    .remove(0);
    for rows in [1usize, 255, 256 * 9, 256 * 9 + 1, 100_000] {
        assert_eq!(run_rows(&dev, rows), rows_want(rows), "{rows} rows");
    }
}

#[test]
fn grids_beyond_one_dimension_of_workgroups_use_two() {
    let dev = device();
    // More than 65535 workgroups of 256 invocations: a 2-D dispatch.
    let rows = 65_535 * 256 + 4099;
    assert_eq!(run_rows(&dev, rows), rows_want(rows));
}

fn dependent_launches(dev: &WebGpuDevice) {
    let n = 1000;
    let p = map_program(
        "inc",
        &[DType::I32, DType::I32],
        DType::I32,
        n,
        1,
        |b, v| {
            b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: v[0],
                b: v[1],
            })
        },
    );
    validate_wgsl(dev, &p);
    let kernel = dev.compile(&p).unwrap();
    let ones = upload(dev, &vec![1i32; n]);
    let mut a = upload(dev, &(0..n as i32).collect::<Vec<_>>());
    let mut b = dev.allocate(n * 4).unwrap();
    // 600 launches (more than one submission), each reading the previous one's output.
    for _ in 0..600 {
        dev.launch(&kernel, &[&a, &ones, &b]).unwrap();
        std::mem::swap(&mut a, &mut b);
    }
    dev.synchronize().unwrap();
    assert_eq!(
        download::<i32>(dev, &a, n),
        (0..n as i32).map(|i| i + 600).collect::<Vec<_>>()
    );
}

#[test]
fn batched_dependent_launches_see_each_others_writes() {
    dependent_launches(&device());
}

/// `out[i] = in_0[i] + in_1[i] + ... + in_{k-1}[i]` for `k` inputs.
fn sum_of_inputs(dev: &WebGpuDevice, k: usize) -> Result<Vec<f32>, Error> {
    let n = 37;
    let dtypes = vec![DType::F32; k];
    let p = map_program("many_inputs", &dtypes, DType::F32, n, 1, |b, v| {
        v[1..].iter().fold(v[0], |acc, &x| {
            b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: acc,
                b: x,
            })
        })
    });
    let kernel = dev.compile(&p)?;
    let inputs: Vec<_> = (0..k)
        .map(|j| {
            upload(
                dev,
                &(0..n).map(|i| (i * (j + 1)) as f32).collect::<Vec<f32>>(),
            )
        })
        .collect();
    let out = dev.allocate(n * 4).unwrap();
    let mut args: Vec<&ferrograd_runtime::RawBuffer> = inputs.iter().collect();
    args.push(&out);
    dev.launch(&kernel, &args)?;
    dev.synchronize()?;
    Ok(download(dev, &out, n))
}

#[test]
fn kernels_with_more_inputs_than_the_default_binding_limit_run() {
    // WebGPU's default is 8 storage buffers per stage; the device asks for the adapter's limit.
    let dev = device();
    assert!(dev.limits().max_storage_buffers_per_shader_stage > 8);
    let k = 12;
    let want: Vec<f32> = (0..37)
        .map(|i| (i * (1..=k).sum::<usize>()) as f32)
        .collect();
    assert_eq!(sum_of_inputs(&dev, k).unwrap(), want);
}

#[test]
fn kernels_beyond_the_binding_limit_are_clear_compile_errors() {
    let dev = WebGpuDevice::open_all(&WebGpuOptions {
        max_storage_buffers: Some(8),
        ..WebGpuOptions::default()
    })
    .unwrap()
    .remove(0);
    assert_eq!(sum_of_inputs(&dev, 7).unwrap()[3], (3 * 28) as f32);
    let err = sum_of_inputs(&dev, 8).expect_err("9 buffers exceed a limit of 8");
    assert!(
        matches!(err, Error::Compile { .. })
            && err
                .to_string()
                .contains("max_storage_buffers_per_shader_stage"),
        "{err}"
    );
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
fn tensors_beyond_the_storage_buffer_range_are_compile_errors() {
    let dev = device();
    let range = dev
        .info()
        .extra
        .iter()
        .find_map(|e| e.strip_prefix("max_storage_buffer_binding_size="))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .expect("max_storage_buffer_binding_size in the device info");
    let n = range / 4 + 1;
    let p = map_program("huge", &[DType::F32], DType::F32, n, 1, |b, v| {
        b.push(Inst::Unary {
            op: ferrograd_ir::UnaryOp::Neg,
            arg: v[0],
        })
    });
    let err = dev.compile(&p).expect_err("a too-large param is rejected");
    assert!(
        matches!(err, Error::Compile { .. })
            && err.to_string().contains("max_storage_buffer_binding_size"),
        "{err}"
    );
}

#[test]
fn device_info_describes_the_device() {
    let dev = device();
    let info = dev.info();
    assert_eq!(info.name, "webgpu:0");
    assert!(!info.description.is_empty());
    assert!(info.dtypes.contains(&DType::F32) && info.dtypes.contains(&DType::I32));
    for key in [
        "max_storage_buffer_binding_size=",
        "max_storage_buffers_per_stage=",
        "max_workgroup_size=",
        "max_workgroups_per_dimension=",
        "workgroup_storage_bytes=",
        "shader_f16=",
        "subgroups=",
    ] {
        assert!(
            info.extra.iter().any(|e| e.contains(key)),
            "{key} missing from {:?}",
            info.extra
        );
    }
    assert_eq!(dev.preferred_lanes(DType::F32), 1);
}

#[test]
fn wgsl_is_text_with_one_compute_entry_point() {
    let dev = device();
    let text = dev.wgsl(&rows_program(5)).unwrap();
    assert!(
        text.contains("@compute") && text.contains("fn main("),
        "{text}"
    );
    assert!(dev
        .wgsl(&Program {
            insts: vec![Inst::EndLoop],
            ..rows_program(5)
        })
        .is_err());
}

#[test]
fn profiling_times_every_launch() {
    let dev = WebGpuDevice::open_all(&WebGpuOptions {
        profile: true,
        ..WebGpuOptions::default()
    })
    .unwrap()
    .remove(0);
    let p = rows_program(100_000);
    let kernel = dev.compile(&p).unwrap();
    let out = dev.allocate(400_000).unwrap();
    // More launches than one submission holds.
    for _ in 0..300 {
        dev.launch(&kernel, &[&out]).unwrap();
    }
    dev.synchronize().unwrap();
    let times = dev.kernel_times();
    assert_eq!(times.len(), 300);
    assert!(times
        .iter()
        .all(|t| t.name == "rows" && t.seconds.is_finite() && t.seconds >= 0.0));
    assert!(times.iter().map(|t| t.seconds).sum::<f64>() > 0.0);
    assert!(dev.kernel_times().is_empty(), "times are drained");
    // Without profiling nothing is recorded.
    let plain = device();
    run(&plain, &p, &[&plain.allocate(400_000).unwrap()]);
    assert!(plain.kernel_times().is_empty());
}

#[test]
fn thousands_of_small_buffers_do_not_overlap() {
    // More buffers than drivers' usual maxMemoryAllocationCount (4096).
    {
        let dev = device();
        let sizes = |i: usize| 4 + (i * 37) % 300;
        let bufs: Vec<_> = (0..5000)
            .map(|i| {
                let b = dev.allocate(sizes(i)).unwrap();
                dev.write(&b, &vec![(i % 251) as u8; sizes(i)]).unwrap();
                b
            })
            .collect();
        for (i, b) in bufs.iter().enumerate().step_by(7) {
            let mut out = vec![0u8; sizes(i)];
            dev.read(b, &mut out).unwrap();
            assert!(out.iter().all(|&x| x == (i % 251) as u8), "buffer {i}");
        }
        drop(bufs);
        // Freed ranges are reused, and a large buffer gets memory of its own.
        let big = dev.allocate(40 << 20).unwrap();
        dev.write(&big, &[9u8; 1000]).unwrap();
        let mut out = [0u8; 1000];
        dev.read(&big, &mut out).unwrap();
        assert_eq!(out, [9u8; 1000]);
    }
}

#[test]
fn writes_while_work_is_pending_are_ordered_after_it() {
    let dev = device();
    let p = rows_program(1000);
    let kernel = dev.compile(&p).unwrap();
    let out = dev.allocate(4000).unwrap();
    dev.launch(&kernel, &[&out]).unwrap();
    // Recorded, not yet run: the write must land after the kernel's stores.
    dev.write(&out, &[1u8; 16]).unwrap();
    let got: Vec<i32> = download(&dev, &out, 1000);
    assert_eq!(&got[..4], &[0x0101_0101; 4]);
    assert_eq!(&got[4..], &rows_want(1000)[4..]);
}
