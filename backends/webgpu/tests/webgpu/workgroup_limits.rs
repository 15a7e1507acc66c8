//! WebGPU-only workgroup paths: workgroup programs in grid-stride loops when the device limits
//! the workgroup count, and workgroup sizes, shared memory and local dimensions beyond the
//! device limits as compile errors naming the WebGPU limit.
use super::WebGpu;
use ferrograd_conformance::{
    compile_err, device, download, run, upload, workgroup_sum, TestDevice,
};
use ferrograd_ir::{DType, Inst};
use ferrograd_runtime::Device;
use ferrograd_webgpu::{WebGpuDevice, WebGpuOptions};

#[test]
fn workgroup_programs_run_in_grid_stride_loops() {
    let dev: TestDevice<WebGpu> = TestDevice::wrap(
        WebGpuDevice::open_all(&WebGpuOptions {
            max_workgroup_count: Some(2),
            ..WebGpuOptions::default()
        })
        .unwrap()
        .remove(0),
    );
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
    let dev = device::<WebGpu>();
    let mut p = workgroup_sum(2, 64);
    p.local = vec![1 << 20];
    let err = compile_err(&dev, &p);
    assert!(err.contains("maxComputeWorkgroupSize"), "{err}");
    let mut p = workgroup_sum(2, 64);
    p.insts[0] = Inst::DefineLocal {
        dtype: DType::F32,
        len: 1 << 24,
    };
    let err = compile_err(&dev, &p);
    assert!(err.contains("maxComputeWorkgroupStorageSize"), "{err}");
    let mut p = workgroup_sum(2, 64);
    p.insts.push(Inst::LocalId(2));
    let err = compile_err(&dev, &p);
    assert!(err.contains("no local dimension 2"), "{err}");
}
