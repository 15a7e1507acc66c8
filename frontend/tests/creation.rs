//! Creation and host transfer: zeros, ones, full, *_like, arange, linspace, eye, rand, randn,
//! randint, manual_seed reproducibility, from_vec / from_slice / scalar, to_vec / item, shape and
//! dtype, devices, and the graph Threefry against the host Threefry.

mod common;

use common::*;
use ferrograd::random::{threefry2x32, threefry_tensor};
use ferrograd::testing::check;
use ferrograd::{DType, Element, Tensor};
use half::{bf16, f16};
use std::sync::{Mutex, MutexGuard};

/// The RNG seed and call counter are global: tests of this file that draw random numbers take
/// this lock so that the reproducibility test sees no other draws.
fn rng_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn zeros_ones_full() {
    let z = Tensor::zeros(&[2, 3]);
    assert_eq!(z.shape(), vec![2, 3]);
    assert_eq!(z.dtype(), DType::F32);
    assert_eq!(z.to_vec::<f32>().unwrap(), vec![0.0; 6]);
    let o = Tensor::ones(&[5]);
    assert_eq!(o.to_vec::<f32>().unwrap(), vec![1.0; 5]);
    assert_eq!(Tensor::ones(&[]).item::<f32>().unwrap(), 1.0);
    let f = Tensor::full(&[3, 1], 2.5f32);
    assert_eq!(f.to_vec::<f32>().unwrap(), vec![2.5; 3]);
    let i = Tensor::full(&[4], -7i32);
    assert_eq!(i.dtype(), DType::I32);
    assert_eq!(i.to_vec::<i32>().unwrap(), vec![-7; 4]);
    let u = Tensor::full(&[2], 250u8);
    assert_eq!(u.to_vec::<u8>().unwrap(), vec![250; 2]);
    let l = Tensor::full(&[2], i64::MIN);
    assert_eq!(l.to_vec::<i64>().unwrap(), vec![i64::MIN; 2]);
    let b = Tensor::full(&[3], true);
    assert_eq!(b.to_vec::<bool>().unwrap(), vec![true; 3]);
    let h = Tensor::full(&[2], f16::from_f32(0.1));
    assert_eq!(h.dtype(), DType::F16);
    assert_eq!(h.to_vec::<f16>().unwrap(), vec![f16::from_f32(0.1); 2]);
    let d = Tensor::full(&[2, 2], 0.1f64);
    assert_eq!(d.to_vec::<f64>().unwrap(), vec![0.1; 4]);
    let n = Tensor::full(&[2], f32::NAN);
    assert!(n.to_vec::<f32>().unwrap().iter().all(|v| v.is_nan()));
    let e = Tensor::zeros(&[0, 4]);
    assert_eq!(e.numel(), 0);
    assert!(e.to_vec::<f32>().unwrap().is_empty());
    // Constants feeding a computation.
    check(
        &(Tensor::full(&[3, 3], 2.0f32) * Tensor::ones(&[3]) + 1.0),
        0.0,
        0.0,
        "full * ones + 1",
    );
}

#[test]
fn like_constructors_keep_shape_and_dtype() {
    let x = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[2, 3]);
    let z = x.zeros_like();
    assert_eq!((z.shape(), z.dtype()), (vec![2, 3], DType::I32));
    assert_eq!(z.to_vec::<i32>().unwrap(), vec![0; 6]);
    assert_eq!(x.ones_like().to_vec::<i32>().unwrap(), vec![1; 6]);
    assert_eq!(
        x.full_like(-3.9).to_vec::<i32>().unwrap(),
        vec![-3; 6],
        "float fill value truncates for ints"
    );
    let h = Tensor::from_vec(vec![bf16::from_f32(1.0); 3], &[3]);
    let hl = h.full_like(0.5);
    assert_eq!(hl.dtype(), DType::BF16);
    assert_eq!(hl.to_vec::<bf16>().unwrap(), vec![bf16::from_f32(0.5); 3]);
    let f = Tensor::from_vec(vec![0.0f32; 4], &[2, 2]).t();
    assert_eq!(f.ones_like().shape(), vec![2, 2]);
    let _g = rng_lock();
    let r = h.rand_like();
    assert_eq!((r.shape(), r.dtype()), (vec![3], DType::BF16));
    let r = x.randn_like();
    assert_eq!((r.shape(), r.dtype()), (vec![2, 3], DType::F32));
}

#[test]
fn arange_int_and_float() {
    let a = Tensor::arange(0.0, 5.0, 1.0);
    assert_eq!(a.dtype(), DType::I32);
    assert_eq!(a.to_vec::<i32>().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        Tensor::arange(2.0, 11.0, 3.0).to_vec::<i32>().unwrap(),
        vec![2, 5, 8]
    );
    assert_eq!(
        Tensor::arange(5.0, 0.0, -1.0).to_vec::<i32>().unwrap(),
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(
        Tensor::arange(-3.0, 3.0, 2.0).to_vec::<i32>().unwrap(),
        vec![-3, -1, 1]
    );
    let e = Tensor::arange(3.0, 3.0, 1.0);
    assert_eq!(e.shape(), vec![0]);
    assert_eq!(Tensor::arange(3.0, 0.0, 1.0).shape(), vec![0]);
    let f = Tensor::arange(0.0, 1.0, 0.25);
    assert_eq!(f.dtype(), DType::F32);
    assert_eq!(f.to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75]);
    let g = Tensor::arange(0.5, 3.0, 1.0);
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![0.5, 1.5, 2.5]);
    let h = Tensor::arange(1.0, -1.0, -0.5);
    assert_eq!(h.to_vec::<f32>().unwrap(), vec![1.0, 0.5, 0.0, -0.5]);
    let long = Tensor::arange(0.0, 1000.0, 1.0);
    assert_eq!(
        long.to_vec::<i32>().unwrap(),
        (0..1000).collect::<Vec<i32>>()
    );
    check(
        &(Tensor::arange(0.0, 33.0, 1.0) * 3i32),
        0.0,
        0.0,
        "arange * 3",
    );
}

#[test]
fn linspace_and_eye() {
    let l = Tensor::linspace(0.0, 1.0, 5);
    assert_eq!(l.dtype(), DType::F32);
    assert_eq!(l.to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    let l = Tensor::linspace(-1.0, 1.0, 33);
    let v = l.to_vec::<f32>().unwrap();
    assert_eq!(v.len(), 33);
    assert_eq!((v[0], v[16], v[32]), (-1.0, 0.0, 1.0));
    for (i, x) in v.iter().enumerate() {
        assert!(
            (x - (-1.0 + i as f32 / 16.0)).abs() < 1e-6,
            "linspace element {i}: {x}"
        );
    }
    assert_eq!(
        Tensor::linspace(3.0, 7.0, 1).to_vec::<f32>().unwrap(),
        vec![3.0]
    );
    assert_eq!(
        Tensor::linspace(2.0, -2.0, 3).to_vec::<f32>().unwrap(),
        vec![2.0, 0.0, -2.0]
    );
    let e = Tensor::eye(3);
    assert_eq!(e.shape(), vec![3, 3]);
    assert_eq!(e.dtype(), DType::F32);
    assert_eq!(
        e.to_vec::<f32>().unwrap(),
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(Tensor::eye(1).to_vec::<f32>().unwrap(), vec![1.0]);
    let e7 = Tensor::eye(7).to_vec::<f32>().unwrap();
    for (i, x) in e7.iter().enumerate() {
        assert_eq!(*x, if i / 7 == i % 7 { 1.0 } else { 0.0 });
    }
    // eye is the identity of matmul.
    let m = Tensor::from_vec(
        (0..21).map(|i| i as f32 - 10.0).collect::<Vec<_>>(),
        &[3, 7],
    );
    assert_eq!(
        m.matmul(&Tensor::eye(7)).to_vec::<f32>().unwrap(),
        m.to_vec::<f32>().unwrap()
    );
}

#[test]
fn rand_is_uniform_in_unit_interval() {
    let _g = rng_lock();
    let n = 100_000;
    let r = Tensor::rand(&[n]);
    assert_eq!(r.dtype(), DType::F32);
    let v = r.to_vec::<f32>().unwrap();
    assert!(
        v.iter().all(|&x| (0.0..1.0).contains(&x)),
        "rand outside [0, 1)"
    );
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.01, "rand mean {mean}");
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((var - 1.0 / 12.0).abs() < 0.005, "rand variance {var}");
    // Every tenth of the interval gets about a tenth of the samples.
    let mut bins = [0usize; 10];
    for &x in &v {
        bins[(x * 10.0) as usize] += 1;
    }
    assert!(
        bins.iter().all(|&b| (b as f64 - 10_000.0).abs() < 600.0),
        "rand histogram {bins:?}"
    );
    // The next call draws different numbers; a multi-dimensional shape has the right size.
    let r2 = Tensor::rand(&[4, 25]);
    assert_eq!(r2.shape(), vec![4, 25]);
    assert_ne!(r2.to_vec::<f32>().unwrap(), v[..100].to_vec());
}

#[test]
fn randn_is_standard_normal() {
    let _g = rng_lock();
    let n = 100_000;
    let v = Tensor::randn(&[n]).to_vec::<f32>().unwrap();
    assert!(
        v.iter().all(|x| x.is_finite()),
        "randn produced a non-finite value"
    );
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    assert!(mean.abs() < 0.02, "randn mean {mean}");
    assert!((std - 1.0).abs() < 0.02, "randn std {std}");
    // About 68.3% within one standard deviation.
    let inside = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / n as f64;
    assert!(
        (inside - 0.6827).abs() < 0.01,
        "randn: {inside} within one sigma"
    );
}

#[test]
fn randint_stays_in_bounds() {
    let _g = rng_lock();
    let r = Tensor::randint(-3, 5, &[10_000]);
    assert_eq!(r.dtype(), DType::I32);
    let v = r.to_vec::<i32>().unwrap();
    assert!(
        v.iter().all(|x| (-3..5).contains(x)),
        "randint outside [-3, 5)"
    );
    for k in -3..5 {
        let c = v.iter().filter(|&&x| x == k).count();
        assert!(
            (c as f64 - 1250.0).abs() < 200.0,
            "randint: {k} drawn {c} times"
        );
    }
    let one = Tensor::randint(7, 8, &[50]).to_vec::<i32>().unwrap();
    assert_eq!(one, vec![7; 50]);
    let wide = Tensor::randint(i32::MIN, i32::MAX, &[1000])
        .to_vec::<i32>()
        .unwrap();
    assert!(wide.iter().any(|&x| x < -1_000_000_000) && wide.iter().any(|&x| x > 1_000_000_000));
}

#[test]
fn manual_seed_reproduces_every_generator() {
    // One test: the seed and call counter are global state.
    let _g = rng_lock();
    let draw = || {
        let a = Tensor::rand(&[1000]).to_vec::<f32>().unwrap();
        let b = Tensor::rand(&[1000]).to_vec::<f32>().unwrap();
        let c = Tensor::randn(&[7, 3]).to_vec::<f32>().unwrap();
        let d = Tensor::randint(0, 100, &[33]).to_vec::<i32>().unwrap();
        (a, b, c, d)
    };
    Tensor::manual_seed(42);
    let first = draw();
    Tensor::manual_seed(42);
    let second = draw();
    assert_eq!(first, second, "same seed, same values");
    assert_ne!(first.0, first.1, "consecutive calls differ");
    Tensor::manual_seed(43);
    let other = draw();
    assert_ne!(first.0, other.0, "another seed gives other values");
    // Values depend on the call, not on when the tensor is realized.
    Tensor::manual_seed(7);
    let x = Tensor::rand(&[16]);
    let y = Tensor::rand(&[16]);
    let yv = y.to_vec::<f32>().unwrap();
    let xv = x.to_vec::<f32>().unwrap();
    Tensor::manual_seed(7);
    assert_eq!(Tensor::rand(&[16]).to_vec::<f32>().unwrap(), xv);
    assert_eq!(Tensor::rand(&[16]).to_vec::<f32>().unwrap(), yv);
    // Seeds above 32 bits use both key words.
    Tensor::manual_seed(1 << 40);
    let hi = Tensor::rand(&[100]).to_vec::<f32>().unwrap();
    Tensor::manual_seed(0);
    let lo = Tensor::rand(&[100]).to_vec::<f32>().unwrap();
    assert_ne!(hi, lo);
}

#[test]
fn graph_threefry_matches_host() {
    let ctr0: Vec<u32> = vec![0, 1, 2, 0xffff_ffff, 0x243f_6a88, 12345, 0x8000_0000];
    let ctr1: Vec<u32> = vec![0, 0, 7, 0xffff_ffff, 0x85a3_08d3, 99, 1];
    let c0 = Tensor::from_slice(&ctr0, &[7]);
    let c1 = Tensor::from_slice(&ctr1, &[7]);
    for key in [
        [0u32, 0],
        [0xffff_ffff, 0xffff_ffff],
        [0x1319_8a2e, 0x0370_7344],
        [0x5eed, 0],
    ] {
        let [x0, x1] = threefry_tensor(key, &c0, &c1);
        assert_eq!(x0.dtype(), DType::U32);
        let host: Vec<[u32; 2]> = ctr0
            .iter()
            .zip(&ctr1)
            .map(|(&a, &b)| threefry2x32(key, [a, b]))
            .collect();
        assert_eq!(
            x0.to_vec::<u32>().unwrap(),
            host.iter().map(|h| h[0]).collect::<Vec<_>>(),
            "word 0, key {key:x?}"
        );
        assert_eq!(
            x1.to_vec::<u32>().unwrap(),
            host.iter().map(|h| h[1]).collect::<Vec<_>>(),
            "word 1, key {key:x?}"
        );
    }
    // Random123 known answer through the graph.
    let [a, b] = threefry_tensor(
        [0x1319_8a2e, 0x0370_7344],
        &Tensor::from_vec(vec![0x243f_6a88u32], &[1]),
        &Tensor::from_vec(vec![0x85a3_08d3u32], &[1]),
    );
    assert_eq!(
        (a.item::<u32>().unwrap(), b.item::<u32>().unwrap()),
        (0xc492_3a9c, 0x483d_f7a0)
    );
    // Counters from a strided view (the RNG inside a fused kernel with movement).
    let many: Vec<u32> = (0..64u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
    let m = Tensor::from_slice(&many, &[8, 8]).t();
    let z = Tensor::full(&[8, 8], 3u32);
    let [w, _] = threefry_tensor([1, 2], &m, &z);
    let expect: Vec<u32> = (0..64)
        .map(|i| threefry2x32([1, 2], [many[(i % 8) * 8 + i / 8], 3])[0])
        .collect();
    assert_eq!(w.to_vec::<u32>().unwrap(), expect);
}

fn roundtrip<T: Element + PartialEq + std::fmt::Debug>(
    data: Vec<T>,
    shape: &[usize],
    dtype: DType,
) {
    let t = Tensor::from_vec(data.clone(), shape);
    assert_eq!(t.dtype(), dtype);
    assert_eq!(t.shape(), shape.to_vec());
    assert_eq!(t.ndim(), shape.len());
    assert_eq!(t.numel(), data.len());
    assert_eq!(t.to_vec::<T>().unwrap(), data, "{dtype} roundtrip");
    let s = Tensor::from_slice(&data, shape);
    assert_eq!(s.to_vec::<T>().unwrap(), data, "{dtype} from_slice");
}

#[test]
fn from_vec_to_vec_roundtrip_every_dtype() {
    roundtrip(
        vec![1.5f32, -0.0, f32::INFINITY, f32::MIN_POSITIVE, 3.0, -7.25],
        &[2, 3],
        DType::F32,
    );
    roundtrip(vec![0.1f64, -1e300, 5e-324], &[3], DType::F64);
    roundtrip(
        vec![f16::from_f32(0.5), f16::MAX, f16::from_f32(-3.0)],
        &[3, 1],
        DType::F16,
    );
    roundtrip(
        vec![bf16::from_f32(1e30), bf16::from_f32(-0.1)],
        &[1, 2],
        DType::BF16,
    );
    roundtrip(vec![i8::MIN, -1, 0, i8::MAX], &[4], DType::I8);
    roundtrip(vec![0u8, 128, 255], &[3], DType::U8);
    roundtrip(vec![i32::MIN, -1, i32::MAX, 0, 5], &[5], DType::I32);
    roundtrip(vec![u32::MAX, 0, 0x8000_0000], &[3], DType::U32);
    roundtrip(vec![i64::MIN, i64::MAX, -1], &[3], DType::I64);
    roundtrip(vec![true, false, false, true], &[2, 2], DType::Bool);
    roundtrip(Vec::<f32>::new(), &[0], DType::F32);
    roundtrip(vec![9i32], &[1, 1, 1], DType::I32);
}

#[test]
fn scalar_item_and_metadata() {
    let s = Tensor::scalar(2.5f32);
    assert_eq!(s.shape(), Vec::<usize>::new());
    assert_eq!(s.ndim(), 0);
    assert_eq!(s.numel(), 1);
    assert_eq!(s.item::<f32>().unwrap(), 2.5);
    assert_eq!(Tensor::scalar(-4i64).item::<i64>().unwrap(), -4);
    assert!(Tensor::scalar(true).item::<bool>().unwrap());
    let one = Tensor::from_vec(vec![7u8], &[1, 1]);
    assert_eq!(one.item::<u8>().unwrap(), 7);
    // A computed 0-d value.
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    assert_eq!((&t * &t).sum(ferrograd::All).item::<f32>().unwrap(), 14.0);
    assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, 2.0, 3.0]);
    // Metadata does not realize anything and survives realization.
    let y = t.exp().reshape([3, 1]);
    assert_eq!((y.shape(), y.dtype()), (vec![3, 1], DType::F32));
    y.realize().unwrap();
    assert_eq!((y.shape(), y.dtype()), (vec![3, 1], DType::F32));
    let dbg = format!("{y:?}");
    let device = ferrograd::device::default_device_name();
    assert!(
        dbg.contains("f32") && dbg.contains("[3, 1]") && dbg.contains(&*device),
        "Debug: {dbg}"
    );
    // Realized values are stable and shared by clones.
    let z = t.exp();
    let z2 = z.clone();
    z.realize().unwrap();
    assert_eq!(z.to_vec::<f32>().unwrap(), z2.to_vec::<f32>().unwrap());
}

#[test]
fn devices_and_copies() {
    let t = Tensor::from_vec(vec![1i32, 2, 3], &[3]);
    assert_eq!(t.device(), ferrograd::device::default_device_name());
    let c = t.to("cpu").unwrap();
    assert_eq!(&*c.device(), "cpu");
    assert_eq!(c.to_vec::<i32>().unwrap(), vec![1, 2, 3]);
    let c0 = (&t * 2i32).to("cpu:0").unwrap();
    assert_eq!(&*c0.device(), "cpu");
    assert_eq!(c0.to_vec::<i32>().unwrap(), vec![2, 4, 6]);
    let devs = ferrograd::device::list_devices();
    assert!(
        devs.iter().any(|d| d.name == "cpu"),
        "cpu is listed: {devs:?}"
    );
    let cpu = devs.iter().find(|d| d.name == "cpu").unwrap();
    for d in [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I32,
        DType::U8,
        DType::Bool,
    ] {
        assert!(cpu.dtypes.contains(&d), "cpu supports {d}");
    }
}

#[test]
fn input_layout_helper_matches_host_model() {
    // The shared test helper's views agree with its host model (so other files can rely on it).
    let data: Vec<f32> = (0..60).map(|i| i as f32).collect();
    for &shape in &[&[2usize, 3, 5][..], &[7], &[3, 1]] {
        for &layout in LAYOUTS {
            let t = input(&data, shape, layout);
            let expect: Vec<f64> = input_values(&data, shape, layout)
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_eq!(f64s(&t), expect, "{shape:?} {layout:?}");
        }
    }
}
