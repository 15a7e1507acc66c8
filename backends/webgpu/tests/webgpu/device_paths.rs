//! WebGPU-only device paths: kernels with more storage buffers than WebGPU's default limit (and
//! beyond the adapter's), WGSL generation and profiling. (Grids beyond the device limits, the
//! storage-range limit and device info, sub-allocation, packed storage and workgroup
//! reductions are shared suite groups.)
use super::{open_with, WebGpu};
use ferrograd_conformance::{device, download, map_program, rows_program, run, upload, TestDevice};
use ferrograd_ir::{BinaryOp, DType, Inst, Program};
use ferrograd_runtime::{Device, Error};
use ferrograd_webgpu::WebGpuOptions;

/// `out[i] = in_0[i] + in_1[i] + ... + in_{k-1}[i]` for `k` inputs.
fn sum_of_inputs(dev: &TestDevice<WebGpu>, k: usize) -> Result<Vec<f32>, Error> {
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
    let dev = device::<WebGpu>();
    assert!(dev.limits().max_storage_buffers_per_shader_stage > 8);
    let k = 12;
    let want: Vec<f32> = (0..37)
        .map(|i| (i * (1..=k).sum::<usize>()) as f32)
        .collect();
    assert_eq!(sum_of_inputs(&dev, k).unwrap(), want);
}

#[test]
fn kernels_beyond_the_binding_limit_are_clear_compile_errors() {
    let dev = open_with(WebGpuOptions {
        max_storage_buffers: Some(8),
        ..WebGpuOptions::default()
    });
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
fn wgsl_is_text_with_one_compute_entry_point() {
    let dev = device::<WebGpu>();
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
    let dev = open_with(WebGpuOptions {
        profile: true,
        ..WebGpuOptions::default()
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
        .all(|t| t.name == "rows" && t.seconds.is_finite() && t.seconds >= 0.0));
    assert!(times.iter().map(|t| t.seconds).sum::<f64>() > 0.0);
    assert!(dev.kernel_times().is_empty(), "times are drained");
    // Without profiling nothing is recorded.
    let plain = device::<WebGpu>();
    run(&plain, &p, &[&plain.allocate(400_000).unwrap()]);
    assert!(plain.kernel_times().is_empty());
}
