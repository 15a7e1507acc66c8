//! Hand-built kernels: 2-D grids, loops with accumulators, gated memory, vectors.
mod common;
use common::*;
use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, ProgramBuilder, ReduceOp, Scalar, UnaryOp, VType, ValueId,
};
use ferrograd_runtime::Device;
use ferrograd_webgpu::WebGpuDevice;
use half::{bf16, f16};

fn c(b: &mut ProgramBuilder, dtype: DType, value: Scalar) -> ValueId {
    b.push(Inst::Const {
        ty: VType::scalar(dtype),
        value,
    })
}

fn bin(b: &mut ProgramBuilder, op: BinaryOp, x: ValueId, y: ValueId) -> ValueId {
    b.push(Inst::Binary { op, a: x, b: y })
}

fn load(
    b: &mut ProgramBuilder,
    p: u32,
    index: ValueId,
    gate: Option<ValueId>,
    ty: VType,
) -> ValueId {
    b.push(Inst::Load {
        mem: Memory::Global(p),
        index,
        gate,
        ty,
    })
}

fn store(b: &mut ProgramBuilder, p: u32, index: ValueId, value: ValueId, gate: Option<ValueId>) {
    b.push(Inst::Store {
        mem: Memory::Global(p),
        index,
        value,
        gate,
    });
}

/// out[y][x] = a[y][x] + b[y][x] on a (rows x cols) grid, `lanes` columns per invocation.
#[test]
fn elementwise_add_on_a_2d_grid() {
    let dev = device();
    let (rows, cols) = (7usize, 12usize);
    let a: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5).collect();
    let bv: Vec<f32> = (0..rows * cols).map(|i| 100.0 - i as f32).collect();
    for lanes in [1u8, 4] {
        let mut b = ProgramBuilder::new();
        let y = b.push(Inst::GroupId(0));
        let x = b.push(Inst::GroupId(1));
        let w = int(&mut b, cols as i64);
        let l = int(&mut b, lanes as i64);
        let row = bin(&mut b, BinaryOp::Mul, y, w);
        let col = bin(&mut b, BinaryOp::Mul, x, l);
        let i = bin(&mut b, BinaryOp::Add, row, col);
        let ty = VType::vec(DType::F32, lanes);
        let va = load(&mut b, 0, i, None, ty);
        let vb = load(&mut b, 1, i, None, ty);
        let s = bin(&mut b, BinaryOp::Add, va, vb);
        store(&mut b, 2, i, s, None);
        let n = rows * cols;
        let p = program(
            "add2d",
            vec![
                param(DType::F32, n, false),
                param(DType::F32, n, false),
                param(DType::F32, n, true),
            ],
            vec![rows, cols / lanes as usize],
            b.finish(),
        );
        let (ba, bb, bo) = (
            upload(&dev, &a),
            upload(&dev, &bv),
            dev.allocate(n * 4).unwrap(),
        );
        run(&dev, &p, &[&ba, &bb, &bo]);
        let got: Vec<f32> = download(&dev, &bo, n);
        let want: Vec<f32> = a.iter().zip(&bv).map(|(x, y)| x + y).collect();
        assert_eq!(got, want, "{lanes} lanes");
    }
}

/// Row sums and row maxima with a loop and an accumulator, scalar and f32x4 registers.
#[test]
fn reductions_with_loops_and_accumulators() {
    let dev = device();
    let (rows, cols) = (5usize, 64usize);
    for (op, lanes) in [
        (ReduceOp::Sum, 1u8),
        (ReduceOp::Max, 1),
        (ReduceOp::Sum, 4),
        (ReduceOp::Max, 4),
        (ReduceOp::Prod, 4),
    ] {
        let scale = if op == ReduceOp::Prod {
            1.0 / 40.0
        } else {
            1.0
        };
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| (((i * 37) % 101) as f32 - 50.5) * scale)
            .collect();
        let mut b = ProgramBuilder::new();
        let r = b.push(Inst::GroupId(0));
        let ty = VType::vec(DType::F32, lanes);
        let acc = b.push(Inst::DefineAcc {
            ty,
            init: op.identity(DType::F32),
        });
        let zero = int(&mut b, 0);
        let steps = int(&mut b, (cols / lanes as usize) as i64);
        let j = b.push(Inst::Loop {
            start: zero,
            end: steps,
        });
        let w = int(&mut b, cols as i64);
        let l = int(&mut b, lanes as i64);
        let base = bin(&mut b, BinaryOp::Mul, r, w);
        let off = bin(&mut b, BinaryOp::Mul, j, l);
        let i = bin(&mut b, BinaryOp::Add, base, off);
        let x = load(&mut b, 0, i, None, ty);
        let cur = b.push(Inst::ReadAcc(acc));
        let next = bin(&mut b, op.combine(), cur, x);
        b.push(Inst::WriteAcc { acc, value: next });
        b.push(Inst::EndLoop);
        let total = b.push(Inst::ReadAcc(acc));
        let total = if lanes > 1 {
            b.push(Inst::ReduceLanes { op, arg: total })
        } else {
            total
        };
        store(&mut b, 1, r, total, None);
        let p = program(
            "reduce",
            vec![
                param(DType::F32, rows * cols, false),
                param(DType::F32, rows, true),
            ],
            vec![rows],
            b.finish(),
        );
        let (bi, bo) = (upload(&dev, &data), dev.allocate(rows * 4).unwrap());
        run(&dev, &p, &[&bi, &bo]);
        let got: Vec<f32> = download(&dev, &bo, rows);
        for (row, g) in got.iter().enumerate() {
            let xs = &data[row * cols..(row + 1) * cols];
            // Same association as the kernel: per-lane partials, then lanes in order.
            let mut partial = vec![
                match op.identity(DType::F32) {
                    Scalar::Float(f) => f as f32,
                    _ => unreachable!(),
                };
                lanes as usize
            ];
            for (k, x) in xs.iter().enumerate() {
                let p = &mut partial[k % lanes as usize];
                *p = match op {
                    ReduceOp::Sum => *p + x,
                    ReduceOp::Max => p.max(*x),
                    ReduceOp::Prod => *p * x,
                };
            }
            let want = partial[1..].iter().fold(partial[0], |acc, x| match op {
                ReduceOp::Sum => acc + x,
                ReduceOp::Max => acc.max(*x),
                ReduceOp::Prod => acc * x,
            });
            assert_eq!(
                g.to_bits(),
                want.to_bits(),
                "{op:?} row {row}, {lanes} lanes: {g} vs {want}"
            );
        }
    }
}

/// Integer sum over a loop wraps; an accumulator written inside an If.
#[test]
fn integer_accumulator_wraps_and_if_blocks_execute_conditionally() {
    let dev = device();
    let n = 100usize;
    let data: Vec<i32> = (0..n as i32).map(|i| i.wrapping_mul(50_000_000)).collect();
    let mut b = ProgramBuilder::new();
    let acc = b.push(Inst::DefineAcc {
        ty: VType::scalar(DType::I32),
        init: Scalar::Int(0),
    });
    let odd_acc = b.push(Inst::DefineAcc {
        ty: VType::scalar(DType::I32),
        init: Scalar::Int(0),
    });
    let zero = int(&mut b, 0);
    let one = int(&mut b, 1);
    let end = int(&mut b, n as i64);
    let j = b.push(Inst::Loop { start: zero, end });
    let x = load(&mut b, 0, j, None, VType::scalar(DType::I32));
    let cur = b.push(Inst::ReadAcc(acc));
    let s = bin(&mut b, BinaryOp::Add, cur, x);
    b.push(Inst::WriteAcc { acc, value: s });
    let bit = bin(&mut b, BinaryOp::And, j, one);
    let odd = bin(&mut b, BinaryOp::CmpNe, bit, zero);
    b.push(Inst::If { cond: odd });
    let cur = b.push(Inst::ReadAcc(odd_acc));
    let s = bin(&mut b, BinaryOp::Add, cur, one);
    b.push(Inst::WriteAcc {
        acc: odd_acc,
        value: s,
    });
    b.push(Inst::EndIf);
    b.push(Inst::EndLoop);
    let total = b.push(Inst::ReadAcc(acc));
    store(&mut b, 1, zero, total, None);
    let odds = b.push(Inst::ReadAcc(odd_acc));
    store(&mut b, 1, one, odds, None);
    let p = program(
        "isum",
        vec![param(DType::I32, n, false), param(DType::I32, 2, true)],
        vec![1],
        b.finish(),
    );
    let (bi, bo) = (upload(&dev, &data), dev.allocate(8).unwrap());
    run(&dev, &p, &[&bi, &bo]);
    let got: Vec<i32> = download(&dev, &bo, 2);
    assert_eq!(
        got,
        vec![data.iter().fold(0i32, |a, &x| a.wrapping_add(x)), 50]
    );
}

/// Loads and stores whose gate is false use an index far out of bounds: they must not touch
/// memory (a read or write there would fault), loads produce zero.
#[test]
fn gated_loads_and_stores_do_not_touch_memory() {
    let dev = device();
    let valid = 6usize;
    let data: Vec<f32> = (0..valid).map(|i| i as f32 + 1.0).collect();
    for lanes in [1u8, 4] {
        let items = 8 / lanes as usize;
        let mut b = ProgramBuilder::new();
        let g = b.push(Inst::GroupId(0));
        let l = int(&mut b, lanes as i64);
        let i = bin(&mut b, BinaryOp::Mul, g, l);
        let limit = int(&mut b, (valid as i64 / lanes as i64) * lanes as i64);
        let inside = bin(&mut b, BinaryOp::CmpLt, i, limit);
        let far = int(&mut b, 1 << 30);
        let index = b.push(Inst::Where {
            cond: inside,
            a: i,
            b: far,
        });
        let ty = VType::vec(DType::F32, lanes);
        let x = load(&mut b, 0, index, Some(inside), ty);
        // Everything loaded goes to out[i]; the doubled value only where in bounds.
        store(&mut b, 1, i, x, None);
        let two = b.push(Inst::Const {
            ty,
            value: Scalar::Float(2.0),
        });
        let y = bin(&mut b, BinaryOp::Mul, x, two);
        store(&mut b, 2, index, y, Some(inside));
        let n = items * lanes as usize;
        let p = program(
            "gated",
            vec![
                param(DType::F32, valid, false),
                param(DType::F32, n, true),
                param(DType::F32, valid, true),
            ],
            vec![items],
            b.finish(),
        );
        let (bi, bo, bd) = (
            upload(&dev, &data),
            dev.allocate(n * 4).unwrap(),
            upload(&dev, &vec![-1.0f32; valid]),
        );
        run(&dev, &p, &[&bi, &bo, &bd]);
        let got: Vec<f32> = download(&dev, &bo, n);
        let covered = (valid / lanes as usize) * lanes as usize;
        let want: Vec<f32> = (0..n)
            .map(|k| if k < covered { data[k] } else { 0.0 })
            .collect();
        assert_eq!(got, want, "{lanes} lanes");
        let doubled: Vec<f32> = download(&dev, &bd, valid);
        let want: Vec<f32> = (0..valid)
            .map(|k| if k < covered { 2.0 * data[k] } else { -1.0 })
            .collect();
        assert_eq!(doubled, want, "{lanes} lanes");
    }
}

/// Where with a 4-lane bool condition from a 32-bit comparison (a SIMD mask) and from memory.
#[test]
fn where_with_vector_conditions() {
    let dev = device();
    let a: Vec<f32> = vec![1.0, -2.0, f32::NAN, 4.0, 0.0, -0.0, 7.0, -8.0];
    let bv: Vec<f32> = vec![2.0, -3.0, 1.0, f32::NAN, -0.0, 0.0, 7.0, 9.0];
    let p = map_program(
        "where",
        &[DType::F32, DType::F32],
        DType::F32,
        8,
        4,
        |b, v| {
            let lt = b.push(Inst::Binary {
                op: BinaryOp::CmpLt,
                a: v[0],
                b: v[1],
            });
            b.push(Inst::Where {
                cond: lt,
                a: v[0],
                b: v[1],
            })
        },
    );
    let (ba, bb, bo) = (
        upload(&dev, &a),
        upload(&dev, &bv),
        dev.allocate(32).unwrap(),
    );
    run(&dev, &p, &[&ba, &bb, &bo]);
    let got: Vec<f32> = download(&dev, &bo, 8);
    for k in 0..8 {
        let want = if a[k] < bv[k] { a[k] } else { bv[k] };
        assert!(
            got[k].to_bits() == want.to_bits() || (got[k].is_nan() && want.is_nan()),
            "lane {k}"
        );
    }
    // Conditions loaded from memory, selecting i32, u8 and bool lanes.
    let cond = vec![true, false, false, true, true, true, false, false];
    let xs: Vec<i32> = (0..8).collect();
    let ys: Vec<i32> = (0..8).map(|k| -k - 100).collect();
    let want: Vec<i32> = (0..8)
        .map(|k| if cond[k] { xs[k] } else { ys[k] })
        .collect();
    for lanes in [1u8, 4, 8] {
        let p = map_program(
            "where_mem",
            &[DType::Bool, DType::I32, DType::I32],
            DType::I32,
            8,
            lanes,
            |b, v| {
                b.push(Inst::Where {
                    cond: v[0],
                    a: v[1],
                    b: v[2],
                })
            },
        );
        let (bc, bx, by, bo) = (
            upload(&dev, &cond),
            upload(&dev, &xs),
            upload(&dev, &ys),
            dev.allocate(32).unwrap(),
        );
        run(&dev, &p, &[&bc, &bx, &by, &bo]);
        assert_eq!(download::<i32>(&dev, &bo, 8), want, "{lanes} lanes");
        let p = map_program(
            "where_bool",
            &[DType::Bool, DType::Bool, DType::Bool],
            DType::Bool,
            8,
            lanes,
            |b, v| {
                b.push(Inst::Where {
                    cond: v[0],
                    a: v[1],
                    b: v[2],
                })
            },
        );
        let t: Vec<bool> = vec![true; 8];
        let f: Vec<bool> = vec![false; 8];
        let (bc, bt, bf, bo) = (
            upload(&dev, &cond),
            upload(&dev, &t),
            upload(&dev, &f),
            dev.allocate(8).unwrap(),
        );
        run(&dev, &p, &[&bc, &bt, &bf, &bo]);
        assert_eq!(download::<bool>(&dev, &bo, 8), cond, "{lanes} lanes");
    }
}

/// ReduceLanes (Sum/Max/Prod) over f32x4, i32x4, u8x16, f64x2 and bool x4.
#[test]
fn reduce_lanes() {
    let dev = device();
    fn reduce_program(dtype: DType, lanes: u8, op: ReduceOp) -> ferrograd_ir::Program {
        let mut b = ProgramBuilder::new();
        let g = b.push(Inst::GroupId(0));
        let l = int(&mut b, lanes as i64);
        let i = bin(&mut b, BinaryOp::Mul, g, l);
        let v = load(&mut b, 0, i, None, VType::vec(dtype, lanes));
        let r = b.push(Inst::ReduceLanes { op, arg: v });
        store(&mut b, 1, g, r, None);
        program(
            "rl",
            vec![
                param(dtype, 2 * lanes as usize, false),
                param(dtype, 2, true),
            ],
            vec![2],
            b.finish(),
        )
    }
    let f: Vec<f32> = vec![1.5, -2.0, 8.0, 0.25, 3.0, f32::NAN, 1.0, 2.0];
    for (op, want) in [
        (ReduceOp::Sum, [7.75f32, f32::NAN]),
        (ReduceOp::Max, [8.0, f32::NAN]),
        (ReduceOp::Prod, [-6.0, f32::NAN]),
    ] {
        let (bi, bo) = (upload(&dev, &f), dev.allocate(8).unwrap());
        run(&dev, &reduce_program(DType::F32, 4, op), &[&bi, &bo]);
        let got: Vec<f32> = download(&dev, &bo, 2);
        assert_eq!(got[0], want[0], "{op:?}");
        assert!(got[1].is_nan(), "{op:?} with NaN");
    }
    let i: Vec<i32> = vec![i32::MAX, 1, -5, 3, -1, -2, -3, -4];
    for (op, want) in [
        (ReduceOp::Sum, [0, -10]),
        (ReduceOp::Max, [i32::MAX, -1]),
        (ReduceOp::Prod, [i32::MAX.wrapping_mul(-15), 24]),
    ] {
        let (bi, bo) = (upload(&dev, &i), dev.allocate(8).unwrap());
        run(&dev, &reduce_program(DType::I32, 4, op), &[&bi, &bo]);
        let want = if op == ReduceOp::Sum {
            [i[..4].iter().fold(0i32, |a, x| a.wrapping_add(*x)), -10]
        } else {
            want
        };
        assert_eq!(download::<i32>(&dev, &bo, 2), want.to_vec(), "{op:?}");
    }
    let u: Vec<u8> = (0..32).map(|k| (k * 29 % 256) as u8).collect();
    let (bi, bo) = (upload(&dev, &u), dev.allocate(2).unwrap());
    run(
        &dev,
        &reduce_program(DType::U8, 16, ReduceOp::Sum),
        &[&bi, &bo],
    );
    let want: Vec<u8> = u
        .chunks(16)
        .map(|c| c.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
        .collect();
    assert_eq!(download::<u8>(&dev, &bo, 2), want);
    let d: Vec<f64> = vec![1.0e300, 1.0e300, -4.0, 0.5];
    let (bi, bo) = (upload(&dev, &d), dev.allocate(16).unwrap());
    run(
        &dev,
        &reduce_program(DType::F64, 2, ReduceOp::Prod),
        &[&bi, &bo],
    );
    assert_eq!(download::<f64>(&dev, &bo, 2), vec![f64::INFINITY, -2.0]);
    let bools = vec![false, true, false, false, false, false, false, false];
    for (op, want) in [
        (ReduceOp::Max, vec![true, false]),
        (ReduceOp::Sum, vec![true, false]),
        (ReduceOp::Prod, vec![false, false]),
    ] {
        let (bi, bo) = (upload(&dev, &bools), dev.allocate(2).unwrap());
        run(&dev, &reduce_program(DType::Bool, 4, op), &[&bi, &bo]);
        assert_eq!(download::<bool>(&dev, &bo, 2), want, "bool {op:?}");
    }
}

/// Vectorize builds vectors from scalars, Extract takes lanes back out; also MulAcc.
#[test]
fn vectorize_extract_and_mul_acc() {
    let dev = device();
    for dtype in [DType::F32, DType::I32, DType::F64, DType::I8] {
        let mut b = ProgramBuilder::new();
        let zero = int(&mut b, 0);
        let lanes: Vec<ValueId> = (0..4)
            .map(|k| c(&mut b, dtype, Scalar::Int(k * 3 + 1)))
            .collect();
        let v = b.push(Inst::Vectorize(lanes));
        let two = b.push(Inst::Const {
            ty: VType::vec(dtype, 4),
            value: Scalar::Int(2),
        });
        let five = b.push(Inst::Const {
            ty: VType::vec(dtype, 4),
            value: Scalar::Int(5),
        });
        let m = b.push(Inst::MulAcc {
            a: v,
            b: two,
            c: five,
        });
        let e = b.push(Inst::Extract { vec: m, lane: 2 });
        let e = b.push(Inst::Cast {
            to: VType::scalar(DType::I32),
            arg: e,
        });
        store(&mut b, 0, zero, e, None);
        let p = program("vec", vec![param(DType::I32, 1, true)], vec![1], b.finish());
        let bo = dev.allocate(4).unwrap();
        run(&dev, &p, &[&bo]);
        assert_eq!(
            download::<i32>(&dev, &bo, 1),
            vec![(2 * 3 + 1) * 2 + 5],
            "{dtype}"
        );
    }
    // Vectorize of bools into a lane mask, used by Where.
    let mut b = ProgramBuilder::new();
    let zero = int(&mut b, 0);
    let t = c(&mut b, DType::Bool, Scalar::Bool(true));
    let f = c(&mut b, DType::Bool, Scalar::Bool(false));
    let mask = b.push(Inst::Vectorize(vec![t, f, f, t]));
    let x = b.push(Inst::Const {
        ty: VType::vec(DType::F32, 4),
        value: Scalar::Float(1.0),
    });
    let y = b.push(Inst::Const {
        ty: VType::vec(DType::F32, 4),
        value: Scalar::Float(-1.0),
    });
    let w = b.push(Inst::Where {
        cond: mask,
        a: x,
        b: y,
    });
    store(&mut b, 0, zero, w, None);
    let p = program(
        "vecmask",
        vec![param(DType::F32, 4, true)],
        vec![1],
        b.finish(),
    );
    let bo = dev.allocate(16).unwrap();
    run(&dev, &p, &[&bo]);
    assert_eq!(download::<f32>(&dev, &bo, 4), vec![1.0, -1.0, -1.0, 1.0]);
}

/// f16/bf16 arithmetic rounds after every op: results equal computing in that type.
#[test]
fn f16_and_bf16_round_after_every_op() {
    let dev = device();
    let xs: Vec<f32> = vec![
        1.0, 0.1, 3.25159, -2.5, 1000.0, 65504.0, 1.0e-5, 6.0e-8, -0.0, 0.333, 2049.0, 7.0,
    ];
    let ys: Vec<f32> = vec![
        1.0e-3,
        0.2,
        2.61828,
        1.5,
        0.001,
        1.0,
        3.0e-5,
        6.0e-8,
        0.0,
        3.0,
        1.0,
        1.0 / 3.0,
    ];
    fn check<T: Elem>(dev: &WebGpuDevice, a: &[T], b: &[T], to: fn(T) -> f64, from: fn(f64) -> T) {
        let n = a.len();
        for lanes in [1u8, 4] {
            for (op, f) in [
                (BinaryOp::Add, (|x, y| x + y) as fn(f64, f64) -> f64),
                (BinaryOp::Mul, |x, y| x * y),
                (BinaryOp::Max, f64::max),
            ] {
                let got: Vec<T> = eval_binary(dev, op, a, b, lanes);
                for k in 0..n {
                    assert_eq!(
                        got[k],
                        from(f(to(a[k]), to(b[k]))),
                        "{op:?} {:?} {:?}",
                        a[k],
                        b[k]
                    );
                }
            }
            for (op, f) in [
                (UnaryOp::Sqrt, f64::sqrt as fn(f64) -> f64),
                (UnaryOp::Recip, |x| 1.0 / x),
                (UnaryOp::Neg, |x| -x),
            ] {
                let got = eval_unary(dev, op, a, lanes);
                for k in 0..n {
                    let want = from(f(to(a[k])));
                    assert!(
                        got[k] == want || to(want).is_nan() && to(got[k]).is_nan(),
                        "{op:?} {:?}",
                        a[k]
                    );
                }
            }
            // a * b + a rounds once (a fused op), like the f64 reference.
            let p = map_program(
                "fma16",
                &[T::DTYPE, T::DTYPE],
                T::DTYPE,
                n,
                lanes,
                |bl, v| {
                    bl.push(Inst::MulAcc {
                        a: v[0],
                        b: v[1],
                        c: v[0],
                    })
                },
            );
            let (ba, bb, bo) = (upload(dev, a), upload(dev, b), dev.allocate(n * 2).unwrap());
            run(dev, &p, &[&ba, &bb, &bo]);
            let got: Vec<T> = download(dev, &bo, n);
            for k in 0..n {
                assert_eq!(
                    got[k],
                    from(to(a[k]).mul_add(to(b[k]), to(a[k]))),
                    "mulacc {:?}",
                    a[k]
                );
            }
        }
    }
    let h: Vec<f16> = xs.iter().map(|&x| f16::from_f32(x)).collect();
    let hy: Vec<f16> = ys.iter().map(|&x| f16::from_f32(x)).collect();
    check(&dev, &h, &hy, f16::to_f64, to_f16);
    let bf: Vec<bf16> = xs.iter().map(|&x| bf16::from_f32(x)).collect();
    let bfy: Vec<bf16> = ys.iter().map(|&x| bf16::from_f32(x)).collect();
    check(&dev, &bf, &bfy, bf16::to_f64, to_bf16);
    // A sum that f32 would keep but f16 loses: 2048 + 1 == 2048 in f16.
    let got: Vec<f16> = eval_binary(
        &dev,
        BinaryOp::Add,
        &[f16::from_f32(2048.0); 4],
        &[f16::from_f32(1.0); 4],
        4,
    );
    assert_eq!(got, vec![f16::from_f32(2048.0); 4]);
    // Transcendentals on f16 round to the nearest f16 (within one f16 ulp of libm).
    let got = eval_unary(&dev, UnaryOp::Exp2, &h, 4);
    for (x, g) in h.iter().zip(&got) {
        let want = f16::from_f64(x.to_f64().exp2());
        assert!(
            *g == want
                || (g.to_f64() - want.to_f64()).abs() <= (want.to_f64().abs() * 1.0e-3).max(6.0e-8),
            "exp2 f16 {x}"
        );
    }
}
