//! Vulkan-only device paths: descriptor pools instead of push descriptors, the staging path,
//! compute units, SPIR-V generation and profiling. (Grids beyond the device limits, the
//! storage-range limit and device info, sub-allocation, packed storage and workgroup
//! reductions are shared suite groups.)
use super::{open_with, Vulkan};
use ferrograd_conformance::suites::launch::dependent_launches;
use ferrograd_conformance::{device, download, rows_program, rows_want, run, TestDevice};
use ferrograd_ir::{Inst, Program};
use ferrograd_runtime::Device;
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
fn compute_units_come_from_the_driver() {
    let dev = device::<Vulkan>();
    let info = dev.info();
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
