//! Vulkan-only workgroup paths: workgroup programs in grid-stride loops when the device
//! limits the workgroup count, and workgroup sizes, shared memory and local dimensions beyond
//! the device limits as compile errors naming the Vulkan limit.
use super::{open_with, Vulkan};
use ferrograd_conformance::{compile_err, device, download, run, upload, workgroup_sum};
use ferrograd_ir::{DType, Inst};
use ferrograd_runtime::Device;
use ferrograd_vulkan::VulkanOptions;

#[test]
fn workgroup_programs_run_in_grid_stride_loops() {
    let dev = open_with(VulkanOptions {
        max_workgroup_count: Some(2),
        ..VulkanOptions::default()
    });
    let rows = 11;
    let p = workgroup_sum(rows, 64);
    let data: Vec<f32> = (0..rows * 64).map(|i| (i % 13) as f32).collect();
    let (out, inp) = (dev.allocate(rows * 4).unwrap(), upload(&dev, &data));
    run(&dev, &p, &[&out, &inp]);
    let want: Vec<f32> = data.chunks(64).map(|c| c.iter().sum()).collect();
    assert_eq!(download::<_, f32>(&dev, &out, rows), want);
}

#[test]
fn workgroup_limits_are_compile_errors() {
    let dev = device::<Vulkan>();
    let mut p = workgroup_sum(2, 64);
    p.local = vec![1 << 20];
    assert!(
        compile_err(&dev, &p).contains("maxComputeWorkGroupSize"),
        "{}",
        compile_err(&dev, &p)
    );
    let mut p = workgroup_sum(2, 64);
    p.insts[0] = Inst::DefineLocal {
        dtype: DType::F32,
        len: 1 << 24,
    };
    assert!(
        compile_err(&dev, &p).contains("maxComputeSharedMemorySize"),
        "{}",
        compile_err(&dev, &p)
    );
    let mut p = workgroup_sum(2, 64);
    p.insts.push(Inst::LocalId(2));
    assert!(
        compile_err(&dev, &p).contains("no local dimension 2"),
        "{}",
        compile_err(&dev, &p)
    );
}
