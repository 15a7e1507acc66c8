//! What a GPU backend reports about its device and how it enforces the device's limits: the
//! device info names the limits that matter, and a tensor larger than one storage-buffer
//! binding is a compile error naming the limit, never a launch that corrupts memory.

use crate::{device, map_program, GpuHarness};
use ferrograd_ir::{DType, Inst};
use ferrograd_runtime::{Device, Error};

pub fn tensors_beyond_the_storage_buffer_range_are_compile_errors<H: GpuHarness>() {
    let dev = device::<H>();
    let prefix = format!("{}=", H::STORAGE_RANGE_KEY);
    let range = dev
        .info()
        .extra
        .iter()
        .find_map(|e| e.strip_prefix(prefix.as_str()))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{} in the device info", H::STORAGE_RANGE_KEY));
    let n = range / 4 + 1;
    let p = map_program("huge", &[DType::F32], DType::F32, n, 1, |b, v| {
        b.push(Inst::Unary {
            op: ferrograd_ir::UnaryOp::Neg,
            arg: v[0],
        })
    });
    let err = dev.compile(&p).expect_err("a too-large param is rejected");
    assert!(
        matches!(err, Error::Compile { .. }) && err.to_string().contains(H::STORAGE_RANGE_LIMIT),
        "{err}"
    );
}

pub fn device_info_describes_the_device<H: GpuHarness>() {
    let dev = device::<H>();
    let info = dev.info();
    assert_eq!(info.name, H::DEVICE_NAME);
    assert!(!info.description.is_empty());
    assert!(info.dtypes.contains(&DType::F32) && info.dtypes.contains(&DType::I32));
    for key in H::INFO_KEYS {
        assert!(
            info.extra.iter().any(|e| e.contains(key)),
            "{key} missing from {:?}",
            info.extra
        );
    }
    assert_eq!(dev.preferred_lanes(DType::F32), 1);
}
