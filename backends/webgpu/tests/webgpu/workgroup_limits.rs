//! Workgroup sizes, shared memory and local dimensions beyond the device limits are compile
//! errors naming the WebGPU limit.
use super::WebGpu;
use ferrograd_conformance::{compile_err, device, workgroup_sum};
use ferrograd_ir::{DType, Inst};

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
