//! Driver-side failures: a validation error of recorded work and a lost device are typed
//! errors with a clear message; nothing aborts or hangs.
use super::WebGpu;
use ferrograd_conformance::{device, download, map_program, upload};
use ferrograd_ir::{DType, Inst, UnaryOp};
use ferrograd_runtime::{Device, Error};

fn negate(n: usize) -> ferrograd_ir::Program {
    map_program("negate", &[DType::F32], DType::F32, n, 1, |b, v| {
        b.push(Inst::Unary {
            op: UnaryOp::Neg,
            arg: v[0],
        })
    })
}

#[test]
fn buffers_of_another_device_are_refused() {
    let (a, b) = (device::<WebGpu>(), device::<WebGpu>());
    let kernel = a.compile(&negate(4)).unwrap();
    let (x, y) = (
        upload(&b, &[1.0f32, 2.0, 3.0, 4.0]),
        b.allocate(16).unwrap(),
    );
    let err = a.launch(&kernel, &[&x, &y]).expect_err("foreign buffers");
    assert!(
        matches!(err, Error::Device { .. }) && err.to_string().contains("not memory of this"),
        "{err}"
    );
}

#[test]
fn a_validation_error_is_a_typed_error_at_the_next_synchronization() {
    let dev = device::<WebGpu>();
    // Mappable storage buffers are invalid in WebGPU: wgpu reports a validation error through
    // the device's error callback (whose default handler would panic).
    let _invalid = dev
        .wgpu_device()
        .create_buffer(&ferrograd_webgpu::wgpu::BufferDescriptor {
            label: Some("invalid"),
            size: 16,
            usage: ferrograd_webgpu::wgpu::BufferUsages::MAP_READ
                | ferrograd_webgpu::wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    let err = dev
        .synchronize()
        .expect_err("the validation error is reported");
    assert!(
        matches!(err, Error::Device { .. }) && err.to_string().contains("webgpu:0"),
        "{err}"
    );
    // Reported once; the device keeps working.
    let kernel = dev.compile(&negate(4)).unwrap();
    let x = upload(&dev, &[1.0f32, 2.0, 3.0, 4.0]);
    let y = dev.allocate(16).unwrap();
    dev.launch(&kernel, &[&x, &y]).unwrap();
    assert_eq!(
        download::<_, f32>(&dev, &y, 4),
        vec![-1.0, -2.0, -3.0, -4.0]
    );
}

#[test]
fn a_lost_device_is_a_typed_error_for_every_call() {
    let dev = device::<WebGpu>();
    let kernel = dev.compile(&negate(4)).unwrap();
    let x = upload(&dev, &[1.0f32, 2.0, 3.0, 4.0]);
    let y = dev.allocate(16).unwrap();
    dev.destroy();
    let lost = |r: Result<(), Error>, what: &str| {
        let err = r.expect_err(what);
        assert!(
            matches!(err, Error::Device { .. }) && err.to_string().contains("lost"),
            "{what}: {err}"
        );
    };
    lost(dev.allocate(16).map(|_| ()), "allocate");
    lost(dev.write(&x, &[0u8; 16]), "write");
    lost(dev.read(&y, &mut [0u8; 16]), "read");
    lost(dev.compile(&negate(8)).map(|_| ()), "compile");
    lost(
        dev.launch(&kernel, &[&x, &y])
            .and_then(|()| dev.synchronize()),
        "launch",
    );
}
