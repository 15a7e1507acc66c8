//! Typed errors for programs the WebGPU backend cannot or must not run, workgroup programs
//! (local memory, barriers) within and beyond the device limits, and a randomized check that
//! every well-typed program passes naga validation, compiles and runs.
mod common;
use common::*;
use ferrograd_ir::{
    BinaryOp, DType, Inst, Memory, Param, Program, ProgramBuilder, ReduceOp, Scalar, UnaryOp,
    VType, ValueId,
};
use ferrograd_runtime::{Device, Error};
use ferrograd_webgpu::{WebGpuDevice, WebGpuOptions};

fn compile_err(p: &Program) -> String {
    let dev = device();
    match dev.compile(p) {
        Err(e @ Error::Compile { .. }) => e.to_string(),
        Err(e) => panic!("expected a compile error, got {e}"),
        Ok(_) => panic!("program {} compiled", p.name),
    }
}

fn simple() -> Program {
    map_program("simple", &[DType::F32], DType::F32, 8, 1, |b, v| {
        b.push(Inst::Unary {
            op: UnaryOp::Neg,
            arg: v[0],
        })
    })
}

/// Sums each row of 64 f32 with one workgroup of 64 invocations per row: every invocation
/// stores its element to local memory, then a tree reduction halves the active invocations
/// with a barrier after each step; invocation 0 stores the row's sum.
fn workgroup_sum(rows: usize, local: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let mem = b.push(Inst::DefineLocal {
        dtype: DType::F32,
        len: local,
    });
    let row = b.push(Inst::GroupId(0));
    let lid = b.push(Inst::LocalId(0));
    let width = int(&mut b, local as i64);
    let base = b.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: row,
        b: width,
    });
    let at = b.push(Inst::Binary {
        op: BinaryOp::Add,
        a: base,
        b: lid,
    });
    let x = b.push(Inst::Load {
        mem: Memory::Global(1),
        index: at,
        gate: None,
        ty: VType::scalar(DType::F32),
    });
    b.push(Inst::Store {
        mem: Memory::Local(mem),
        index: lid,
        value: x,
        gate: None,
    });
    b.push(Inst::Barrier);
    let mut stride = local / 2;
    while stride > 0 {
        let s = int(&mut b, stride as i64);
        let active = b.push(Inst::Binary {
            op: BinaryOp::CmpLt,
            a: lid,
            b: s,
        });
        b.push(Inst::If { cond: active });
        let other = b.push(Inst::Binary {
            op: BinaryOp::Add,
            a: lid,
            b: s,
        });
        let mine = b.push(Inst::Load {
            mem: Memory::Local(mem),
            index: lid,
            gate: None,
            ty: VType::scalar(DType::F32),
        });
        let theirs = b.push(Inst::Load {
            mem: Memory::Local(mem),
            index: other,
            gate: None,
            ty: VType::scalar(DType::F32),
        });
        let sum = b.push(Inst::Binary {
            op: BinaryOp::Add,
            a: mine,
            b: theirs,
        });
        b.push(Inst::Store {
            mem: Memory::Local(mem),
            index: lid,
            value: sum,
            gate: None,
        });
        b.push(Inst::EndIf);
        b.push(Inst::Barrier);
        stride /= 2;
    }
    let zero = int(&mut b, 0);
    let first = b.push(Inst::Binary {
        op: BinaryOp::CmpNe,
        a: lid,
        b: zero,
    });
    let t = b.push(Inst::Const {
        ty: VType::scalar(DType::Bool),
        value: Scalar::Bool(true),
    });
    let is_first = b.push(Inst::Binary {
        op: BinaryOp::Xor,
        a: first,
        b: t,
    });
    let total = b.push(Inst::Load {
        mem: Memory::Local(mem),
        index: zero,
        gate: None,
        ty: VType::scalar(DType::F32),
    });
    b.push(Inst::Store {
        mem: Memory::Global(0),
        index: row,
        value: total,
        gate: Some(is_first),
    });
    let mut p = program(
        "workgroup_sum",
        vec![
            param(DType::F32, rows, true),
            param(DType::F32, rows * local, false),
        ],
        vec![rows],
        b.finish(),
    );
    p.local = vec![local];
    p
}

#[test]
fn workgroup_programs_use_local_memory_and_barriers() {
    let dev = device();
    for rows in [1usize, 3, 100] {
        let p = workgroup_sum(rows, 64);
        let data: Vec<f32> = (0..rows * 64).map(|i| (i % 97) as f32 * 0.5).collect();
        let (out, inp) = (dev.allocate(rows * 4).unwrap(), upload(&dev, &data));
        run(&dev, &p, &[&out, &inp]);
        let want: Vec<f32> = data.chunks(64).map(|c| c.iter().sum()).collect();
        assert_eq!(download::<f32>(&dev, &out, rows), want, "{rows} rows");
    }
}

#[test]
fn workgroup_programs_run_in_grid_stride_loops() {
    let dev = WebGpuDevice::open_all(&WebGpuOptions {
        max_workgroup_count: Some(2),
        ..WebGpuOptions::default()
    })
    .unwrap()
    .remove(0);
    let rows = 11;
    let p = workgroup_sum(rows, 64);
    let data: Vec<f32> = (0..rows * 64).map(|i| (i % 13) as f32).collect();
    let (out, inp) = (dev.allocate(rows * 4).unwrap(), upload(&dev, &data));
    run(&dev, &p, &[&out, &inp]);
    let want: Vec<f32> = data.chunks(64).map(|c| c.iter().sum()).collect();
    assert_eq!(download::<f32>(&dev, &out, rows), want);
}

#[test]
fn workgroup_limits_are_compile_errors() {
    let mut p = workgroup_sum(2, 64);
    p.local = vec![1 << 20];
    assert!(
        compile_err(&p).contains("maxComputeWorkgroupSize"),
        "{}",
        compile_err(&p)
    );
    let mut p = workgroup_sum(2, 64);
    p.insts[0] = Inst::DefineLocal {
        dtype: DType::F32,
        len: 1 << 24,
    };
    assert!(
        compile_err(&p).contains("maxComputeWorkgroupStorageSize"),
        "{}",
        compile_err(&p)
    );
    let mut p = workgroup_sum(2, 64);
    p.insts.push(Inst::LocalId(2));
    assert!(
        compile_err(&p).contains("no local dimension 2"),
        "{}",
        compile_err(&p)
    );
}

#[test]
fn malformed_programs_give_compile_errors() {
    let f32s = VType::scalar(DType::F32);
    let i32s = VType::scalar(DType::I32);
    type Edit = Box<dyn Fn(&mut Program)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "dangling operand",
            Box::new(|p| {
                p.insts.push(Inst::Unary {
                    op: UnaryOp::Neg,
                    arg: ValueId(999),
                })
            }),
        ),
        (
            "forward reference",
            Box::new(|p| {
                p.insts.insert(
                    0,
                    Inst::Unary {
                        op: UnaryOp::Neg,
                        arg: ValueId(3),
                    },
                )
            }),
        ),
        (
            "operand without value",
            Box::new(|p| {
                let store = ValueId(p.insts.len() as u32 - 1);
                p.insts.push(Inst::Unary {
                    op: UnaryOp::Neg,
                    arg: store,
                });
            }),
        ),
        (
            "type mismatch",
            Box::new(move |p| {
                p.insts.push(Inst::Const {
                    ty: i32s,
                    value: Scalar::Int(1),
                });
                p.insts.push(Inst::Const {
                    ty: f32s,
                    value: Scalar::Float(1.0),
                });
                let n = p.insts.len() as u32;
                p.insts.push(Inst::Binary {
                    op: BinaryOp::Add,
                    a: ValueId(n - 2),
                    b: ValueId(n - 1),
                });
            }),
        ),
        (
            "open loop",
            Box::new(|p| {
                p.insts.push(Inst::Loop {
                    start: ValueId(1),
                    end: ValueId(1),
                })
            }),
        ),
        ("stray EndLoop", Box::new(|p| p.insts.push(Inst::EndLoop))),
        ("stray EndIf", Box::new(|p| p.insts.push(Inst::EndIf))),
        (
            "exp2 of an integer",
            Box::new(|p| {
                p.insts.push(Inst::Unary {
                    op: UnaryOp::Exp2,
                    arg: ValueId(0),
                })
            }),
        ),
        (
            "shift of a float",
            Box::new(move |p| {
                p.insts.push(Inst::Const {
                    ty: f32s,
                    value: Scalar::Float(1.0),
                });
                let n = p.insts.len() as u32;
                p.insts.push(Inst::Binary {
                    op: BinaryOp::Shl,
                    a: ValueId(n - 1),
                    b: ValueId(n - 1),
                });
            }),
        ),
        (
            "bitcast of a bool",
            Box::new(|p| {
                p.insts.push(Inst::Const {
                    ty: VType::scalar(DType::Bool),
                    value: Scalar::Bool(true),
                });
                let n = p.insts.len() as u32;
                p.insts.push(Inst::Bitcast {
                    to: VType::scalar(DType::U8),
                    arg: ValueId(n - 1),
                });
            }),
        ),
        (
            "idiv of floats",
            Box::new(move |p| {
                p.insts.push(Inst::Const {
                    ty: f32s,
                    value: Scalar::Float(1.0),
                });
                let n = p.insts.len() as u32;
                p.insts.push(Inst::Binary {
                    op: BinaryOp::IDiv,
                    a: ValueId(n - 1),
                    b: ValueId(n - 1),
                });
            }),
        ),
        (
            "store to read-only param",
            Box::new(|p| p.params[1].writable = false),
        ),
        (
            "load of the wrong dtype",
            Box::new(|p| p.params[0].dtype = DType::I32),
        ),
        (
            "missing param",
            Box::new(|p| {
                p.params.pop();
            }),
        ),
        (
            "float index dtype",
            Box::new(|p| p.index_dtype = DType::F32),
        ),
        (
            "no launch dimensions",
            Box::new(|p| {
                p.global.clear();
                p.local.clear();
            }),
        ),
        (
            "four launch dimensions",
            Box::new(|p| {
                p.global = vec![1; 4];
                p.local = vec![1; 4];
            }),
        ),
        (
            "local and global lengths differ",
            Box::new(|p| p.local = vec![1, 1]),
        ),
        (
            "grid too large for i32 indices",
            Box::new(|p| p.global = vec![1 << 40]),
        ),
        (
            "GroupId of a missing dimension",
            Box::new(|p| p.insts.push(Inst::GroupId(2))),
        ),
        (
            "zero lanes",
            Box::new(move |p| {
                p.insts.push(Inst::Const {
                    ty: VType::vec(DType::F32, 0),
                    value: Scalar::Float(0.0),
                })
            }),
        ),
        (
            "too many lanes",
            Box::new(move |p| {
                p.insts.push(Inst::Const {
                    ty: VType::vec(DType::F32, 32),
                    value: Scalar::Float(0.0),
                })
            }),
        ),
        (
            "empty vectorize",
            Box::new(|p| p.insts.push(Inst::Vectorize(vec![]))),
        ),
        (
            "extract past the end",
            Box::new(|p| {
                p.insts.push(Inst::Extract {
                    vec: ValueId(0),
                    lane: 1,
                })
            }),
        ),
        (
            "cast changing lanes",
            Box::new(|p| {
                p.insts.push(Inst::Cast {
                    to: VType::vec(DType::F32, 4),
                    arg: ValueId(0),
                })
            }),
        ),
        (
            "bitcast changing size",
            Box::new(|p| {
                p.insts.push(Inst::Bitcast {
                    to: VType::scalar(DType::I64),
                    arg: ValueId(0),
                })
            }),
        ),
        (
            "read of a non-register",
            Box::new(|p| p.insts.push(Inst::ReadAcc(ValueId(0)))),
        ),
        (
            "if on a non-bool",
            Box::new(|p| {
                p.insts.push(Inst::If { cond: ValueId(0) });
                p.insts.push(Inst::EndIf);
            }),
        ),
        (
            "value used after its loop",
            Box::new(move |p| {
                p.insts.push(Inst::Loop {
                    start: ValueId(0),
                    end: ValueId(0),
                });
                let n = p.insts.len() as u32;
                p.insts.push(Inst::Const {
                    ty: f32s,
                    value: Scalar::Float(2.0),
                });
                p.insts.push(Inst::EndLoop);
                p.insts.push(Inst::Unary {
                    op: UnaryOp::Neg,
                    arg: ValueId(n),
                });
            }),
        ),
        (
            "loop variable used after its loop",
            Box::new(move |p| {
                p.insts.push(Inst::Loop {
                    start: ValueId(0),
                    end: ValueId(0),
                });
                let n = p.insts.len() as u32;
                p.insts.push(Inst::EndLoop);
                p.insts.push(Inst::Unary {
                    op: UnaryOp::Neg,
                    arg: ValueId(n - 1),
                });
            }),
        ),
        (
            "local memory access",
            Box::new(|p| {
                p.insts.push(Inst::Load {
                    mem: Memory::Local(ValueId(0)),
                    index: ValueId(0),
                    gate: None,
                    ty: VType::scalar(DType::F32),
                })
            }),
        ),
    ];
    for (what, edit) in cases {
        let mut p = simple();
        edit(&mut p);
        let err = compile_err(&p);
        assert!(!err.is_empty(), "{what}");
        eprintln!("{what}: {err}");
    }
}

/// A tiny deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const BINARY: [BinaryOp; 12] = [
    BinaryOp::Add,
    BinaryOp::Mul,
    BinaryOp::Max,
    BinaryOp::CmpLt,
    BinaryOp::CmpNe,
    BinaryOp::IDiv,
    BinaryOp::Mod,
    BinaryOp::And,
    BinaryOp::Or,
    BinaryOp::Xor,
    BinaryOp::Shl,
    BinaryOp::Shr,
];
const UNARY: [UnaryOp; 7] = [
    UnaryOp::Exp2,
    UnaryOp::Log2,
    UnaryOp::Sin,
    UnaryOp::Sqrt,
    UnaryOp::Recip,
    UnaryOp::Neg,
    UnaryOp::Trunc,
];

fn binary_ok(op: BinaryOp, d: DType) -> bool {
    match op {
        BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::CmpLt | BinaryOp::CmpNe => true,
        _ => !d.is_float(),
    }
}

/// A random well-typed program over every dtype and lane count, loading from one param per
/// dtype (16 elements, index 0) and storing its last value.
fn random_program(rng: &mut Rng, len: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let mut vals: Vec<(ValueId, VType)> = Vec::new();
    let zero = int(&mut b, 0);
    let lanes_of = [1u8, 1, 2, 4, 4, 8, 16];
    let value_of = |b: &mut ProgramBuilder,
                    vals: &mut Vec<(ValueId, VType)>,
                    rng: &mut Rng,
                    ty: VType|
     -> ValueId {
        let found: Vec<ValueId> = vals
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(v, _)| *v)
            .collect();
        if !found.is_empty() && rng.below(4) != 0 {
            return rng.pick(&found);
        }
        let value = match rng.below(3) {
            0 => Scalar::Int(rng.next() as i64 >> rng.below(64)),
            1 => Scalar::Float(f64::from_bits(rng.next()) % 1.0e6),
            _ => Scalar::Bool(rng.below(2) == 0),
        };
        let v = if rng.below(2) == 0 {
            b.push(Inst::Const { ty, value })
        } else {
            // Half the loads are gated by a constant (true or false).
            let gate = match rng.below(4) {
                0 => Some(b.push(Inst::Const {
                    ty: VType::scalar(DType::Bool),
                    value: Scalar::Bool(true),
                })),
                1 => Some(b.push(Inst::Const {
                    ty: VType::scalar(DType::Bool),
                    value: Scalar::Bool(false),
                })),
                _ => None,
            };
            let mem =
                Memory::Global(DType::ALL.iter().position(|&d| d == ty.dtype).unwrap() as u32);
            b.push(Inst::Load {
                mem,
                index: zero,
                gate,
                ty,
            })
        };
        vals.push((v, ty));
        v
    };
    for _ in 0..len {
        let dtype = rng.pick(&DType::ALL);
        let ty = VType::vec(dtype, rng.pick(&lanes_of));
        let a = value_of(&mut b, &mut vals, rng, ty);
        let (v, t) = match rng.below(10) {
            0 => {
                let op = rng.pick(&UNARY);
                if !dtype.is_float() && !matches!(op, UnaryOp::Neg | UnaryOp::Trunc) {
                    continue;
                }
                (b.push(Inst::Unary { op, arg: a }), ty)
            }
            1 | 2 => {
                let op = rng.pick(&BINARY);
                if !binary_ok(op, dtype) {
                    continue;
                }
                let c = value_of(&mut b, &mut vals, rng, ty);
                (
                    b.push(Inst::Binary { op, a, b: c }),
                    if op.is_comparison() {
                        ty.with_dtype(DType::Bool)
                    } else {
                        ty
                    },
                )
            }
            3 => {
                let cond = value_of(&mut b, &mut vals, rng, ty.with_dtype(DType::Bool));
                let c = value_of(&mut b, &mut vals, rng, ty);
                (b.push(Inst::Where { cond, a, b: c }), ty)
            }
            4 => {
                let c = value_of(&mut b, &mut vals, rng, ty);
                let d = value_of(&mut b, &mut vals, rng, ty);
                (b.push(Inst::MulAcc { a, b: c, c: d }), ty)
            }
            5 => {
                let to = ty.with_dtype(rng.pick(&DType::ALL));
                (b.push(Inst::Cast { to, arg: a }), to)
            }
            6 => {
                if dtype == DType::Bool {
                    continue;
                }
                let same: Vec<DType> = DType::ALL
                    .iter()
                    .copied()
                    .filter(|&d| d.size() == dtype.size() && d != DType::Bool)
                    .collect();
                let to = ty.with_dtype(rng.pick(&same));
                (b.push(Inst::Bitcast { to, arg: a }), to)
            }
            7 => (
                b.push(Inst::ReduceLanes {
                    op: rng.pick(&[ReduceOp::Sum, ReduceOp::Max, ReduceOp::Prod]),
                    arg: a,
                }),
                VType::scalar(dtype),
            ),
            8 => {
                let lane = rng.below(ty.lanes as usize) as u8;
                (b.push(Inst::Extract { vec: a, lane }), VType::scalar(dtype))
            }
            _ => {
                let n = rng.pick(&[2usize, 4, 8, 16]);
                let s = VType::scalar(dtype);
                let parts: Vec<ValueId> = (0..n)
                    .map(|_| value_of(&mut b, &mut vals, rng, s))
                    .collect();
                (b.push(Inst::Vectorize(parts)), VType::vec(dtype, n as u8))
            }
        };
        vals.push((v, t));
    }
    // Store every value, so that none is optimized away before instruction selection.
    let yes = b.push(Inst::Const {
        ty: VType::scalar(DType::Bool),
        value: Scalar::Bool(true),
    });
    for (k, (v, ty)) in vals.into_iter().enumerate() {
        let out = DType::ALL.len() + DType::ALL.iter().position(|&d| d == ty.dtype).unwrap();
        let gate = (k % 3 == 0).then_some(yes);
        b.push(Inst::Store {
            mem: Memory::Global(out as u32),
            index: zero,
            value: v,
            gate,
        });
    }
    let mut params: Vec<Param> = DType::ALL.iter().map(|&d| param(d, 16, false)).collect();
    params.extend(DType::ALL.iter().map(|&d| param(d, 16, true)));
    program("random", params, vec![2], b.finish())
}

#[test]
fn random_well_typed_programs_compile_and_run() {
    let dev = device();
    let mut rng = Rng(0x5eed);
    // 20 rounds: each program goes through naga and the driver's compiler (about 3 s on lavapipe).
    for round in 0..20 {
        let p = random_program(&mut rng, 24);
        validate_wgsl(&dev, &p);
        let kernel = dev
            .compile(&p)
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{:#?}", p.insts));
        let mut bufs = Vec::new();
        for (i, param) in p.params.iter().enumerate() {
            let bytes: Vec<u8> = (0..param.len * param.dtype.size())
                .map(|_| {
                    if param.dtype == DType::Bool {
                        (rng.below(2)) as u8
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            let buf = dev.allocate(bytes.len()).unwrap();
            if i < DType::ALL.len() {
                dev.write(&buf, &bytes).unwrap();
            }
            bufs.push(buf);
        }
        let refs: Vec<&ferrograd_runtime::RawBuffer> = bufs.iter().collect();
        dev.launch(&kernel, &refs).unwrap();
    }
}
