//! Vulkan-only device paths: descriptor pools instead of push descriptors, the staging path,
//! storage-buffer range limits, device info, SPIR-V generation and profiling. (Grids beyond
//! the device limits, sub-allocation, packed storage and workgroup reductions are shared
//! suite groups.)
use super::{open_with, Vulkan};
use ferrograd_conformance::suites::launch::dependent_launches;
use ferrograd_conformance::{
    device, download, map_program, rows_program, rows_want, run, TestDevice,
};
use ferrograd_ir::{DType, Inst, Program};
use ferrograd_runtime::{Device, Error};
use ferrograd_vulkan::VulkanOptions;

fn run_rows(dev: &TestDevice<Vulkan>, rows: usize) -> Vec<i32> {
    let p = rows_program(rows);
    let out = dev.allocate(rows * 4).unwrap();
    dev.write(&out, &vec![0xAB; rows * 4]).unwrap();
    run(dev, &p, &[&out]);
    download(dev, &out, rows)
}

#[test]
fn descriptor_pools_work_where_push_descriptors_are_missing() {
    let dev = open_with(VulkanOptions {
        descriptor_pools: true,
        ..VulkanOptions::default()
    });
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
    let dev = open_with(VulkanOptions {
        force_staging: true,
        ..VulkanOptions::default()
    });
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
fn tensors_beyond_the_storage_buffer_range_are_compile_errors() {
    let dev = device::<Vulkan>();
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
    let dev = device::<Vulkan>();
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
    let dev = device::<Vulkan>();
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
    let dev = open_with(VulkanOptions {
        profile: true,
        ..VulkanOptions::default()
    });
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
    let plain = device::<Vulkan>();
    run(&plain, &p, &[&plain.allocate(400_000).unwrap()]);
    assert!(plain.kernel_times().is_empty());
}
