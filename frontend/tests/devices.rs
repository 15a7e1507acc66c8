//! Every test device (see `ferrograd::testing::test_devices`): copies between each pair, work
//! on values that arrived by copy, and the device list.

use ferrograd::testing::test_devices;
use ferrograd::Tensor;

#[test]
fn copies_between_every_pair_of_test_devices() {
    let devices = test_devices();
    let t = Tensor::from_vec(
        (0..37).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<_>>(),
        &[37],
    );
    let want: Vec<f32> = (0..37)
        .map(|i| ((i as f32 * 0.5 - 3.0) * 2.0 + 1.0).max(0.0))
        .collect();
    for a in &devices {
        for b in &devices {
            let on_a = t.to(a).unwrap();
            assert_eq!(&*on_a.device(), &**a);
            let computed = (&on_a * 2.0 + 1.0).relu();
            assert_eq!(&*computed.device(), &**a);
            let on_b = computed.to(b).unwrap();
            assert_eq!(&*on_b.device(), &**b);
            assert_eq!(on_b.to_vec::<f32>().unwrap(), want, "{a} -> {b}");
        }
    }
}

#[test]
fn every_test_device_is_listed_with_its_limits() {
    let listed = ferrograd::device::list_devices();
    for d in test_devices() {
        let info = listed
            .iter()
            .find(|i| *i.name == *d)
            .unwrap_or_else(|| panic!("{d} is not listed: {listed:?}"));
        if d.starts_with("vulkan") {
            for key in [
                "max_storage_buffer_bytes=",
                "max_workgroup_size=",
                "shared_memory_bytes=",
                "subgroup_size=",
                "f64=",
            ] {
                assert!(
                    info.extra.iter().any(|e| e.contains(key)),
                    "{d}: {key} missing from {:?}",
                    info.extra
                );
            }
        }
        if d.starts_with("webgpu") {
            for key in [
                "max_storage_buffer_binding_size=",
                "max_storage_buffers_per_stage=",
                "max_workgroup_size=",
                "max_workgroups_per_dimension=",
                "workgroup_storage_bytes=",
                "f64=",
            ] {
                assert!(
                    info.extra.iter().any(|e| e.contains(key)),
                    "{d}: {key} missing from {:?}",
                    info.extra
                );
            }
        }
    }
}

#[test]
fn long_reductions_with_few_outputs_use_workgroups_on_gpus() {
    let data: Vec<f32> = (0..3 * 5000)
        .map(|i| ((i * 37) % 101) as f32 * 0.25 - 12.0)
        .collect();
    for d in test_devices() {
        let x = Tensor::from_vec(data.clone(), &[3, 5000]).to(&d).unwrap();
        let sums = [x.sum(-1), x.max(-1), (&x * &x).sum(-1)];
        let programs = ferrograd::runtime::programs(&[sums[0].node()]).unwrap();
        let wide = programs.iter().any(|p| p.local[0] > 1);
        let gpu = ferrograd::runtime::device(&d)
            .unwrap()
            .device()
            .workgroup_size()
            .is_some();
        assert_eq!(
            wide,
            gpu,
            "{d}: workgroup programs {:?}",
            programs.iter().map(|p| &p.name).collect::<Vec<_>>()
        );
        for s in &sums {
            ferrograd::testing::check(s, 1e-5, 1e-3, &format!("reduction on {d}"));
        }
        // A matmul with a long inner dimension: a register tile of accumulators, each combined
        // across the workgroup, and a fused epilogue.
        let a = Tensor::from_vec(data[..8 * 1500].to_vec(), &[8, 1500])
            .to(&d)
            .unwrap();
        let b = Tensor::from_vec(
            data[..1500 * 6].iter().map(|v| v * 0.01).collect(),
            &[1500, 6],
        )
        .to(&d)
        .unwrap();
        let y = (a.matmul(&b) + 1.0).relu();
        let programs = ferrograd::runtime::programs(&[y.node()]).unwrap();
        assert_eq!(
            programs.iter().any(|p| p.local[0] > 1),
            gpu,
            "{d}: matmul programs"
        );
        ferrograd::testing::check(&y, 1e-4, 1e-3, &format!("matmul on {d}"));
    }
}

#[test]
fn tensors_beyond_a_gpu_storage_buffer_give_a_typed_error() {
    for d in test_devices() {
        let info = ferrograd::device::list_devices()
            .into_iter()
            .find(|i| *i.name == *d)
            .expect("listed");
        // (Vulkan's and WebGPU's names of the limit.)
        let Some((range, limit)) = info.extra.iter().find_map(|e| {
            e.strip_prefix("max_storage_buffer_bytes=")
                .map(|r| (r, "maxStorageBufferRange"))
                .or_else(|| {
                    e.strip_prefix("max_storage_buffer_binding_size=")
                        .map(|r| (r, "max_storage_buffer_binding_size"))
                })
        }) else {
            continue;
        };
        let range: usize = range.parse().expect("a byte count");
        if range > 1 << 28 {
            continue; // too large to allocate in a test
        }
        let x = Tensor::zeros(&[range / 4 + 1]).to(&d).unwrap();
        let err = (&x + 1.0)
            .realize()
            .expect_err("a kernel over the limit is refused");
        assert!(matches!(err, ferrograd::Error::Compile { .. }), "{err}");
        assert!(err.to_string().contains(limit), "{err}");
    }
}
