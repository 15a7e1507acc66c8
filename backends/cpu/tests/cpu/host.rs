//! CPU-only cases: workgroup programs are rejected, launches split across rayon threads with
//! identical results, the device describes the host, disassembly shows machine code, and
//! scalar float selects compile without branches, and loop invariants leave their loops.
use super::Cpu;
use ferrograd_conformance::{
    compile_err, device, download, map_program, rows_program, rows_want, run, upload, TestDevice,
};
use ferrograd_ir::{BinaryOp, DType, Inst, Program, ReduceOp, Scalar, UnaryOp, VType, ValueId};
use ferrograd_runtime::{Device, Error};

fn simple() -> Program {
    map_program("simple", &[DType::F32], DType::F32, 8, 1, |b, v| {
        b.push(Inst::Unary {
            op: UnaryOp::Neg,
            arg: v[0],
        })
    })
}

#[test]
fn workgroup_programs_are_rejected() {
    let dev = device::<Cpu>();
    let mut p = simple();
    p.local = vec![4];
    assert!(compile_err(&dev, &p).contains("the CPU backend runs no workgroup programs"));
    for inst in [
        Inst::LocalId(0),
        Inst::Barrier,
        Inst::DefineLocal {
            dtype: DType::F32,
            len: 16,
        },
        Inst::WorkgroupReduce {
            op: ReduceOp::Sum,
            arg: ValueId(0),
        },
    ] {
        let mut p = simple();
        p.insts.insert(0, inst);
        assert!(compile_err(&dev, &p).contains("no workgroup programs"));
    }
}

fn run_in_pool(dev: &TestDevice<Cpu>, p: &Program, rows: usize, threads: usize) -> Vec<i32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let out = dev.allocate(rows * 4).unwrap();
    dev.write(&out, &vec![0xAB; rows * 4]).unwrap();
    let kernel = dev.compile(p).unwrap();
    pool.install(|| dev.launch(&kernel, &[&out])).unwrap();
    download(dev, &out, rows)
}

#[test]
fn launch_splits_rows_across_threads_with_identical_results() {
    let dev = device::<Cpu>();
    let rows = 1000;
    let p = rows_program(rows);
    let single = run_in_pool(&dev, &p, rows, 1);
    assert_eq!(single, rows_want(rows));
    for threads in [2, 3, 4, 7] {
        assert_eq!(
            run_in_pool(&dev, &p, rows, threads),
            single,
            "{threads} threads"
        );
    }
    // Odd, tiny and degenerate sizes.
    for rows in [1usize, 2, 3, 29, 0] {
        let p = rows_program(rows);
        assert_eq!(
            run_in_pool(&dev, &p, rows, 4),
            rows_want(rows),
            "{rows} rows"
        );
    }
}

#[test]
fn device_info_describes_the_host() {
    let dev = device::<Cpu>();
    let info = dev.info();
    assert_eq!(info.name, "cpu");
    assert_eq!(info.kind, ferrograd_runtime::DeviceKind::Cpu);
    assert_eq!(info.dtypes.len(), 10);
    assert_eq!(info.vector_bytes, 16);
    assert!(info.memory_bytes > 0 && info.compute_units == rayon::current_num_threads());
    assert!(!info.description.is_empty());
    if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("sse4.1") {
        assert!(info.description.contains("sse4.1"), "{}", info.description);
    }
    for (dtype, lanes) in [
        (DType::F32, 4),
        (DType::I32, 4),
        (DType::U32, 4),
        (DType::F64, 1),
        (DType::F16, 1),
        (DType::U8, 1),
    ] {
        assert_eq!(dev.preferred_lanes(dtype), lanes, "{dtype}");
    }
}

#[test]
fn disassembly_shows_machine_code() {
    let dev = device::<Cpu>();
    let p = map_program("exp2x4", &[DType::F32], DType::F32, 16, 4, |b, v| {
        b.push(Inst::Unary {
            op: ferrograd_ir::UnaryOp::Exp2,
            arg: v[0],
        })
    });
    let text = dev.disassemble(&p).unwrap();
    assert!(text.contains("ret"), "{text}");
    if cfg!(target_arch = "x86_64") {
        assert!(text.contains("xmm"), "{text}");
    }
    assert!(matches!(
        dev.disassemble(&Program {
            local: vec![8],
            ..p
        }),
        Err(Error::Compile { .. })
    ));
}

/// `out = a != b ? b : a` on scalars of `dtype`, a ReLU-gradient-like mask (not the
/// `a < b ? a : b` of a minimum, which compiles to `minss`).
fn select_program(dtype: DType) -> Program {
    map_program("select", &[dtype, dtype], dtype, 8, 1, |b, v| {
        let cond = b.push(Inst::Binary {
            op: BinaryOp::CmpNe,
            a: v[0],
            b: v[1],
        });
        b.push(Inst::Where {
            cond,
            a: v[1],
            b: v[0],
        })
    })
}

/// Runs [`select_program`] on `a` and `b` and checks every result bit for bit.
fn check_select<T: ferrograd_conformance::Elem>(
    dev: &TestDevice<Cpu>,
    a: &[T],
    b: &[T],
    bits: impl Fn(T) -> u64,
) -> Program {
    let p = select_program(T::DTYPE);
    let out = dev.allocate(a.len() * T::DTYPE.size()).unwrap();
    run(dev, &p, &[&upload(dev, a), &upload(dev, b), &out]);
    let got: Vec<T> = download(dev, &out, a.len());
    for k in 0..a.len() {
        let want = if a[k] != b[k] { b[k] } else { a[k] };
        assert_eq!(
            bits(got[k]),
            bits(want),
            "{} element {k}: {got:?}",
            T::DTYPE
        );
    }
    p
}

/// A scalar float `Where` picks its operand's exact bits (NaN payloads, signed zeros) through
/// a conditional move: x86 has no float conditional move, and the jump Cranelift emits instead
/// mispredicts on data-dependent conditions (a max-pool's backward kernel ran 3.2x slower).
#[test]
fn scalar_float_selects_are_branchless_and_exact() {
    let dev = device::<Cpu>();
    let quiet_nan_with_payload = f32::from_bits(0x7fc0_1234);
    let a = [
        quiet_nan_with_payload,
        -0.0,
        0.0,
        f32::INFINITY,
        -1.0,
        1.5,
        7.0,
        -3.0,
    ];
    let b = [1.0, 0.0, -0.0, f32::NAN, f32::NEG_INFINITY, 2.5, 7.0, -2.0];
    let p32 = check_select(&dev, &a, &b, |x: f32| x.to_bits() as u64);
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let p64 = check_select(&dev, &wide(&a), &wide(&b), f64::to_bits);
    if cfg!(target_arch = "x86_64") {
        for program in [&p32, &p64] {
            let text = dev.disassemble(program).unwrap();
            // Cranelift prints its jump-over-a-move select as `jnp $next` / `jz $next`.
            assert!(!text.contains("$next"), "a branch in a select:\n{text}");
        }
    }
}

/// `for g in 0..3 { for i in 0..4 { for j in 0..7 { body(g*28 + i*7 + j) } } }` with indices
/// of type `index`, the sum built as `(g*28 + i*7) + j`; `body` gets the builder and the index.
fn rows_of_seven(
    name: &str,
    index: DType,
    params: Vec<ferrograd_ir::Param>,
    body: impl FnOnce(&mut ferrograd_ir::ProgramBuilder, ValueId),
) -> Program {
    let mut b = ferrograd_ir::ProgramBuilder::new();
    let int = |b: &mut ferrograd_ir::ProgramBuilder, v: i64| {
        b.push(Inst::Const {
            ty: VType::scalar(index),
            value: Scalar::Int(v),
        })
    };
    let binary =
        |b: &mut ferrograd_ir::ProgramBuilder, op, x, y| b.push(Inst::Binary { op, a: x, b: y });
    let g = b.push(Inst::GroupId(0));
    let (zero, four, seven) = (int(&mut b, 0), int(&mut b, 4), int(&mut b, 7));
    let i = b.push(Inst::Loop {
        start: zero,
        end: four,
    });
    let j = b.push(Inst::Loop {
        start: zero,
        end: seven,
    });
    let (k28, k7) = (int(&mut b, 28), int(&mut b, 7));
    let row = binary(&mut b, BinaryOp::Mul, g, k28);
    let col = binary(&mut b, BinaryOp::Mul, i, k7);
    let outer = binary(&mut b, BinaryOp::Add, row, col);
    let at = binary(&mut b, BinaryOp::Add, outer, j);
    body(&mut b, at);
    b.push(Inst::EndLoop);
    b.push(Inst::EndLoop);
    let mut p = ferrograd_conformance::program(name, params, vec![3], b.finish());
    p.index_dtype = index;
    p
}

/// The first block of a disassembly with a line (leading spaces trimmed) that `pred` accepts.
fn block_with(text: &str, pred: impl Fn(&str) -> bool) -> Option<&str> {
    text.split("\nblock")
        .find(|block| block.lines().any(|l| pred(l.trim_start())))
}

/// Index arithmetic that does not depend on a loop's variable is computed before the loop:
/// `out[g*28 + i*7 + j]` multiplies the group id by 28 and `i` by 7 outside the inner loop.
/// (Cranelift hoists pure values only while it walks a loop's blocks before the loop's exit;
/// with the exit first it hoisted nothing. It hoists `g*28` one loop only, not out of the
/// loop over `i`.)
#[test]
fn loop_invariant_arithmetic_leaves_the_loop() {
    let dev = device::<Cpu>();
    let params = vec![ferrograd_conformance::param(DType::I32, 84, true)];
    let p = rows_of_seven("invariants", DType::I32, params, |b, at| {
        b.push(Inst::Store {
            mem: ferrograd_ir::Memory::Global(0),
            index: at,
            value: at,
            gate: None,
        });
    });
    let out = dev.allocate(84 * 4).unwrap();
    run(&dev, &p, &[&out]);
    let got: Vec<i32> = download(&dev, &out, 84);
    assert_eq!(got, (0..84).collect::<Vec<i32>>());
    if cfg!(target_arch = "x86_64") {
        let text = dev.disassemble(&p).unwrap();
        // The block that stores (the innermost loop's body) multiplies nothing.
        let store_block = block_with(&text, |l| l.starts_with("movl %") && l.contains(", (%"))
            .expect("a block with the store");
        assert!(!store_block.contains("imul"), "{text}");
    }
}

/// An access at `(outer + j) + k` with 64-bit indices: `base + outer·size` is computed
/// outside the loop over `j`, and the constant `k` goes into the instruction's displacement,
/// so the innermost loop adds nothing to address an element (`0x14(B, j, 4)`).
#[test]
fn accesses_fold_outer_index_and_constant_into_the_address() {
    let dev = device::<Cpu>();
    let params = vec![
        ferrograd_conformance::param(DType::F32, 84, true),
        ferrograd_conformance::param(DType::F32, 89, false),
    ];
    let p = rows_of_seven("addresses", DType::I64, params, |b, at| {
        let k5 = b.push(Inst::Const {
            ty: VType::scalar(DType::I64),
            value: Scalar::Int(5),
        });
        let from = b.push(Inst::Binary {
            op: BinaryOp::Add,
            a: at,
            b: k5,
        });
        let value = b.push(Inst::Load {
            mem: ferrograd_ir::Memory::Global(1),
            index: from,
            gate: None,
            ty: VType::scalar(DType::F32),
        });
        b.push(Inst::Store {
            mem: ferrograd_ir::Memory::Global(0),
            index: at,
            value,
            gate: None,
        });
    });
    let input: Vec<f32> = (0..89).map(|v| v as f32 * 0.5 - 3.0).collect();
    let src = upload(&dev, &input);
    let out = dev.allocate(84 * 4).unwrap();
    run(&dev, &p, &[&out, &src]);
    let got: Vec<f32> = download(&dev, &out, 84);
    assert_eq!(got, input[5..].to_vec());
    if cfg!(target_arch = "x86_64") {
        let text = dev.disassemble(&p).unwrap();
        // The innermost loop's body: the block that loads.
        let body = block_with(&text, |l| l.contains("movss 0x14("))
            .unwrap_or_else(|| panic!("no load at displacement 0x14:\n{text}"));
        let adds = body
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with("lea") || l.starts_with("add")
            })
            .count();
        assert!(adds <= 1, "more than the loop counter's add:\n{text}");
    }
}
