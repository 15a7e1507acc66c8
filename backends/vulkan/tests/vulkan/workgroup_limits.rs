//! Workgroup sizes, shared memory and local dimensions beyond the device limits are compile
//! errors naming the Vulkan limit.
use super::Vulkan;
use ferrograd_conformance::{compile_err, device, workgroup_sum};
use ferrograd_ir::{DType, Inst};

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
