//! 8- and 16-bit buffers packed into 32-bit words (the path of devices without 8/16-bit
//! storage): every small dtype round-trips through loads and stores, neighbouring elements
//! written by different invocations (and gated-off stores) leave each other intact, and casts
//! between small and wide types agree with the native 8/16-bit path.

use crate::{download, eval_cast, int, param, program, run, upload, Elem, GpuHarness, TestDevice};
use ferrograd_ir::{BinaryOp, DType, Inst, Memory, ProgramBuilder, VType};
use ferrograd_runtime::Device;
use half::{bf16, f16};

/// The device with every small dtype packed into 32-bit words.
fn packed<H: GpuHarness>() -> TestDevice<H> {
    TestDevice::wrap(H::open_packed_storage())
}

/// `out[i] = x[i]` where `i % 3 != 1` (gated store); other elements keep their old bytes.
fn gated_copy<H: GpuHarness, T: Elem>(dev: &TestDevice<H>, x: &[T], old: &[T]) -> Vec<T> {
    let n = x.len();
    let mut b = ProgramBuilder::new();
    let i = b.push(Inst::GroupId(0));
    let v = b.push(Inst::Load {
        mem: Memory::Global(0),
        index: i,
        gate: None,
        ty: VType::scalar(T::DTYPE),
    });
    let three = int(&mut b, 3);
    let one = int(&mut b, 1);
    let m = b.push(Inst::Binary {
        op: BinaryOp::Mod,
        a: i,
        b: three,
    });
    let keep = b.push(Inst::Binary {
        op: BinaryOp::CmpNe,
        a: m,
        b: one,
    });
    b.push(Inst::Store {
        mem: Memory::Global(1),
        index: i,
        value: v,
        gate: Some(keep),
    });
    let p = program(
        "gated_copy",
        vec![param(T::DTYPE, n, false), param(T::DTYPE, n, true)],
        vec![n],
        b.finish(),
    );
    let (bx, bo) = (upload(dev, x), upload(dev, old));
    run(dev, &p, &[&bx, &bo]);
    download(dev, &bo, n)
}

fn check_copy<H: GpuHarness, T: Elem>(dev: &TestDevice<H>, x: Vec<T>, old: Vec<T>) {
    let got = gated_copy(dev, &x, &old);
    let want: Vec<T> = (0..x.len())
        .map(|i| if i % 3 != 1 { x[i] } else { old[i] })
        .collect();
    assert_eq!(got, want, "{}", T::DTYPE);
}

pub fn small_types_round_trip_through_packed_words<H: GpuHarness>() {
    let dev = packed::<H>();
    for n in [1usize, 2, 3, 5, 8, 33, 1000] {
        check_copy(&dev, (0..n).map(|i| i % 2 == 0).collect(), vec![true; n]);
        check_copy(&dev, (0..n).map(|i| i as u8).collect(), vec![0xAA; n]);
        check_copy(
            &dev,
            (0..n).map(|i| (i as i64 * 37 - 128) as i8).collect(),
            vec![-1; n],
        );
        check_copy(
            &dev,
            (0..n).map(|i| f16::from_f32(i as f32 * -0.25)).collect(),
            vec![f16::MAX; n],
        );
        check_copy(
            &dev,
            (0..n).map(|i| bf16::from_f32(i as f32 * 3.5)).collect(),
            vec![bf16::ONE; n],
        );
    }
}

pub fn packed_casts_agree_with_native_storage<H: GpuHarness>() {
    let (native, packed) = (crate::device::<H>(), packed::<H>());
    let xs: Vec<f32> = vec![
        0.0,
        -0.0,
        1.5,
        -2.5,
        127.9,
        300.0,
        -129.0,
        65504.0,
        1e-6,
        f32::NAN,
        f32::INFINITY,
        -7.25,
        0.1,
    ];
    {
        let lanes = 1u8;
        let a: Vec<u8> = eval_cast(&native, &xs, lanes, false);
        assert_eq!(a, eval_cast::<H, f32, u8>(&packed, &xs, lanes, false));
        let a: Vec<i8> = eval_cast(&native, &xs, lanes, false);
        assert_eq!(a, eval_cast::<H, f32, i8>(&packed, &xs, lanes, false));
        let a: Vec<bool> = eval_cast(&native, &xs, lanes, false);
        assert_eq!(a, eval_cast::<H, f32, bool>(&packed, &xs, lanes, false));
        let a: Vec<f16> = eval_cast(&native, &xs, lanes, false);
        let b: Vec<f16> = eval_cast(&packed, &xs, lanes, false);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let a: Vec<bf16> = eval_cast(&native, &xs, lanes, false);
        let b: Vec<bf16> = eval_cast(&packed, &xs, lanes, false);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    // And back from the small types, in 4-lane vectors (4 neighbours per word).
    let bytes: Vec<u8> = (0..16).map(|i| (i * 17) as u8).collect();
    let a: Vec<f32> = eval_cast(&native, &bytes, 4, false);
    assert_eq!(a, eval_cast::<H, u8, f32>(&packed, &bytes, 4, false));
    assert!(
        packed.info().dtypes.contains(&DType::Bool) && packed.info().dtypes.contains(&DType::F16)
    );
}
