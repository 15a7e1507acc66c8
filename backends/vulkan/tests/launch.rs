//! Grids of every shape (empty, 3-D, beyond the workgroup-count limit), batches of dependent
//! launches, the staging path, argument checks, limits and device info.
mod common;
use common::*;
use ferrograd_ir::{BinaryOp, DType, Inst, Memory, Program, ProgramBuilder, Scalar, VType};
use ferrograd_runtime::{Device, Error};
use ferrograd_vulkan::{VulkanDevice, VulkanOptions};

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

fn run_rows(dev: &VulkanDevice, rows: usize) -> Vec<i32> {
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
    let dev = VulkanDevice::open_all(VulkanOptions {
        max_workgroup_count: Some(3),
        ..VulkanOptions::default()
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

fn dependent_launches(dev: &VulkanDevice) {
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
    validate_spirv(dev, &p);
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

#[test]
fn descriptor_pools_work_where_push_descriptors_are_missing() {
    let dev = VulkanDevice::open_all(VulkanOptions {
        descriptor_pools: true,
        ..VulkanOptions::default()
    })
    .unwrap()
    .remove(0);
    assert!(
        dev.info().extra.iter().any(|e| e == "push_descriptors=no"),
        "{:?}",
        dev.info().extra
    );
    dependent_launches(&dev);
    assert_eq!(run_rows(&dev, 1000), rows_want(1000));
}

#[test]
fn staging_copies_work_like_mapped_memory() {
    let dev = VulkanDevice::open_all(VulkanOptions {
        force_staging: true,
        ..VulkanOptions::default()
    })
    .unwrap()
    .remove(0);
    assert!(!dev.is_unified_memory());
    assert_eq!(run_rows(&dev, 1000), rows_want(1000));
    // A write recorded after a launch is ordered after it.
    let p = rows_program(10);
    let kernel = dev.compile(&p).unwrap();
    let out = dev.allocate(40).unwrap();
    dev.launch(&kernel, &[&out]).unwrap();
    dev.write(&out, &[7u8; 8]).unwrap();
    let got: Vec<i32> = download(&dev, &out, 10);
    assert_eq!(&got[..2], &[0x0707_0707, 0x0707_0707]);
    assert_eq!(&got[2..], &rows_want(10)[2..]);
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
        .find_map(|e| e.strip_prefix("max_storage_buffer_bytes="))
        .and_then(|v| v.parse::<usize>().ok())
        .expect("max_storage_buffer_bytes in the device info");
    let n = range / 4 + 1;
    let p = map_program("huge", &[DType::F32], DType::F32, n, 1, |b, v| {
        b.push(Inst::Unary {
            op: ferrograd_ir::UnaryOp::Neg,
            arg: v[0],
        })
    });
    let err = dev.compile(&p).expect_err("a too-large param is rejected");
    assert!(
        matches!(err, Error::Compile { .. }) && err.to_string().contains("maxStorageBufferRange"),
        "{err}"
    );
}

#[test]
fn device_info_describes_the_device() {
    let dev = device();
    let info = dev.info();
    assert_eq!(info.name, "vulkan:0");
    assert!(!info.description.is_empty());
    assert!(info.dtypes.contains(&DType::F32) && info.dtypes.contains(&DType::I32));
    for key in [
        "max_storage_buffer_bytes=",
        "max_workgroup_size=",
        "max_workgroup_count=",
        "shared_memory_bytes=",
        "subgroup_size=",
        "f16=",
    ] {
        assert!(
            info.extra.iter().any(|e| e.contains(key)),
            "{key} missing from {:?}",
            info.extra
        );
    }
    assert_eq!(dev.preferred_lanes(DType::F32), 1);
    // Compute units come from the driver (SMs, CUs, shader cores) or, for a CPU
    // implementation such as lavapipe, the host's cores; never a made-up figure.
    if info.kind == ferrograd_runtime::DeviceKind::Cpu {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        assert_eq!(info.compute_units, cores);
    }
    assert!(info.to_string().contains("compute units"));
}

#[test]
fn spirv_is_generated_without_a_driver_compiler() {
    let dev = device();
    let words = dev.spirv(&rows_program(5)).unwrap();
    assert_eq!(words[0], 0x0723_0203, "SPIR-V magic number");
    assert!(dev
        .spirv(&Program {
            insts: vec![Inst::EndLoop],
            ..rows_program(5)
        })
        .is_err());
}

#[test]
fn profiling_times_every_launch() {
    let dev = VulkanDevice::open_all(VulkanOptions {
        profile: true,
        ..VulkanOptions::default()
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
        .all(|t| &*t.name == "rows" && t.nanos.is_finite() && t.nanos >= 0.0));
    assert!(times.iter().map(|t| t.nanos).sum::<f64>() > 0.0);
    assert!(dev.kernel_times().is_empty(), "times are drained");
    // Without profiling nothing is recorded.
    let plain = device();
    run(&plain, &p, &[&plain.allocate(400_000).unwrap()]);
    assert!(plain.kernel_times().is_empty());
}

#[test]
fn thousands_of_small_buffers_share_memory_without_overlap() {
    // More buffers than drivers' usual maxMemoryAllocationCount (4096): they share blocks.
    for dev in [
        device(),
        VulkanDevice::open_all(VulkanOptions {
            force_staging: true,
            ..VulkanOptions::default()
        })
        .unwrap()
        .remove(0),
    ] {
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
