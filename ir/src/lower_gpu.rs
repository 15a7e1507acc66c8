//! Lowering for GPUs: workgroup reductions on top of [`crate::lower::lower`].
//!
//! The CPU-shaped Program (one grid point per output, the reduction as a loop) already maps
//! one grid point to one GPU invocation. What it lacks is parallelism *inside* a reduction: a
//! kernel with few outputs and a long reduction would run a handful of long serial loops. For
//! those, [`lower_gpu`] rewrites the Program into a workgroup program:
//!
//! * each grid point becomes a workgroup of `L` invocations (`LocalId(0)`);
//! * the outermost reduction loop `for r in 0..N` becomes a strided loop: invocation `l` takes
//!   `r = j L + l` for `j in 0..ceil(N/L)` (neighbouring invocations read neighbouring
//!   elements), so every accumulator holds a partial result;
//! * after the loop each accumulator is combined across the workgroup
//!   ([`Inst::WorkgroupReduce`]: the backend uses subgroup operations or a tree in local
//!   memory) and every invocation writes the total back into the accumulator;
//! * the epilogue and the stores run in invocation 0 only.
//!
//! Sums of products with enough rows and columns (matmuls, convolutions as matmuls) become
//! tiled contractions through workgroup memory instead (`tiled_matmul`).
//!
//! Programs whose reduction cannot be recognized (an accumulator updated by something other
//! than `acc = acc op x` or `acc = a * b + acc`, vector accumulators) keep the CPU shape.

use crate::dtype::{DType, Scalar};
use crate::lower::{lower, LoweringTarget};
use crate::ops::Op;
use crate::ops::{BinaryOp, ReduceOp};
use crate::program::{Inst, Memory, Program, VType, ValueId};
use crate::schedule::Kernel;

mod tiled_matmul;

/// Reductions shorter than this stay serial per output.
const MIN_REDUCE: i64 = 128;
/// Kernels with more grid points than this keep one invocation per output: there is enough
/// parallelism already, and splitting every output across a workgroup would multiply the
/// invocations (and barriers) by the local size.
const MAX_POINTS: usize = 1024;

/// Lowers `kernel` for a GPU whose workgroups may hold `max_local` invocations (a power of two
/// is used, at most 256).
pub fn lower_gpu(kernel: &Kernel, target: &LoweringTarget, max_local: usize) -> Program {
    let sums = kernel
        .reduce
        .as_ref()
        .is_some_and(|r| matches!(r.op(), Op::Reduce(ReduceOp::Sum, _)));
    if target.optimize && sums {
        let plain = lower(
            kernel,
            &LoweringTarget {
                optimize: false,
                ..*target
            },
        );
        if let Some(tiled) = tiled_matmul::tiled_matmul(&plain, max_local) {
            return tiled;
        }
    }
    let program = lower(kernel, target);
    let local = (1usize << (usize::BITS - 1 - max_local.max(1).leading_zeros())).min(256);
    workgroup_reduce(program, local)
}

/// The reduction loop of a program and how its accumulators combine.
struct ReduceLoop {
    /// Index of the `Loop` instruction and of its `EndLoop`.
    start: usize,
    end: usize,
    /// Trip count.
    trips: i64,
    /// Each accumulator and the reduction combining partial values of it.
    accs: Vec<(ValueId, ReduceOp)>,
}

fn constant(p: &Program, v: ValueId) -> Option<i64> {
    match p.insts.get(v.0 as usize) {
        Some(Inst::Const { value, .. }) => Some(value.as_i64()),
        _ => None,
    }
}

/// The first top-level loop of `p` if it is a reduction this module can parallelize.
fn find_reduce_loop(p: &Program) -> Option<ReduceLoop> {
    let mut depth = 0usize;
    let mut start = None;
    let mut end = None;
    for (i, inst) in p.insts.iter().enumerate() {
        match inst {
            Inst::Loop { .. } | Inst::If { .. } => {
                if depth == 0 && start.is_none() && matches!(inst, Inst::Loop { .. }) {
                    start = Some(i);
                }
                depth += 1;
            }
            Inst::EndLoop | Inst::EndIf => {
                depth -= 1;
                if depth == 0 && start.is_some() && end.is_none() {
                    end = Some(i);
                }
            }
            _ => {}
        }
    }
    let (start, end) = (start?, end?);
    let Inst::Loop { start: lo, end: hi } = p.insts[start] else {
        return None;
    };
    if constant(p, lo)? != 0 {
        return None;
    }
    let trips = constant(p, hi)?;
    let types = p.value_types();
    let mut accs: Vec<(ValueId, ReduceOp)> = Vec::new();
    for inst in &p.insts[start..end] {
        let Inst::WriteAcc { acc, value } = inst else {
            continue;
        };
        // Registers of the loop body itself, or vectors, are not this module's business.
        if acc.0 as usize >= start || types[acc.0 as usize].is_none_or(|t| t.lanes != 1) {
            return None;
        }
        let reads_acc =
            |v: &ValueId| matches!(p.insts[v.0 as usize], Inst::ReadAcc(a) if a == *acc);
        let op = match &p.insts[value.0 as usize] {
            Inst::Binary {
                op: BinaryOp::Add,
                a,
                b,
            } if reads_acc(a) || reads_acc(b) => ReduceOp::Sum,
            Inst::Binary {
                op: BinaryOp::Mul,
                a,
                b,
            } if reads_acc(a) || reads_acc(b) => ReduceOp::Prod,
            Inst::Binary {
                op: BinaryOp::Max,
                a,
                b,
            } if reads_acc(a) || reads_acc(b) => ReduceOp::Max,
            Inst::MulAcc { c, .. } if reads_acc(c) => ReduceOp::Sum,
            _ => return None,
        };
        match accs.iter().find(|(a, _)| a == acc) {
            Some((_, known)) if *known != op => return None,
            Some(_) => {}
            None => accs.push((*acc, op)),
        }
    }
    // Accumulators written again after the loop (other than by this rewrite) are not partial sums.
    let later_writes = p.insts[end..]
        .iter()
        .any(|i| matches!(i, Inst::WriteAcc { acc, .. } if accs.iter().any(|(a, _)| a == acc)));
    if accs.is_empty() || later_writes {
        return None;
    }
    Some(ReduceLoop {
        start,
        end,
        trips,
        accs,
    })
}

/// Rewrites `p` into a workgroup reduction of `local` invocations (see the module doc), or
/// returns it unchanged when it does not qualify.
pub fn workgroup_reduce(p: Program, local: usize) -> Program {
    let points: usize = p.global.iter().product();
    if local < 2 || p.uses_workgroups() || points > MAX_POINTS {
        return p;
    }
    let Some(r) = find_reduce_loop(&p) else {
        return p;
    };
    if r.trips < MIN_REDUCE {
        return p;
    }
    let mut out = Rewriter {
        insts: Vec::with_capacity(p.insts.len() + 64),
        map: vec![None; p.insts.len()],
        index: p.index_dtype,
    };
    let lid = out.push(Inst::LocalId(0));
    for (i, inst) in p.insts[..r.start].iter().enumerate() {
        out.copy(i, inst);
    }
    // for j in 0..ceil(N/L): r = j L + lid; if r < N { body }
    let zero = out.konst(0);
    let chunks = out.konst((r.trips + local as i64 - 1) / local as i64);
    let width = out.konst(local as i64);
    let n = out.konst(r.trips);
    let j = out.push(Inst::Loop {
        start: zero,
        end: chunks,
    });
    let base = out.push(Inst::Binary {
        op: BinaryOp::Mul,
        a: j,
        b: width,
    });
    let idx = out.push(Inst::Binary {
        op: BinaryOp::Add,
        a: base,
        b: lid,
    });
    let inside = out.push(Inst::Binary {
        op: BinaryOp::CmpLt,
        a: idx,
        b: n,
    });
    out.push(Inst::If { cond: inside });
    out.map[r.start] = Some(idx);
    for (i, inst) in p.insts.iter().enumerate().take(r.end).skip(r.start + 1) {
        out.copy(i, inst);
    }
    out.push(Inst::EndIf);
    out.push(Inst::EndLoop);
    // Every accumulator combined across the workgroup.
    for &(acc, op) in &r.accs {
        let acc_new = out.map[acc.0 as usize].expect("accumulators are defined before the loop");
        let mine = out.push(Inst::ReadAcc(acc_new));
        let total = out.push(Inst::WorkgroupReduce { op, arg: mine });
        out.push(Inst::WriteAcc {
            acc: acc_new,
            value: total,
        });
    }
    // Epilogue and stores: invocation 0 only.
    let one = out.konst(1);
    let leader = out.push(Inst::Binary {
        op: BinaryOp::CmpLt,
        a: lid,
        b: one,
    });
    out.push(Inst::If { cond: leader });
    for (i, inst) in p.insts.iter().enumerate().skip(r.end + 1) {
        out.copy(i, inst);
    }
    out.push(Inst::EndIf);
    let mut local_dims = vec![1; p.global.len()];
    local_dims[0] = local;
    Program {
        name: format!("{}_wg{local}", p.name),
        local: local_dims,
        insts: out.insts,
        ..p
    }
}

/// Copies instructions into a new list, renumbering operands.
struct Rewriter {
    insts: Vec<Inst>,
    /// New id of each old instruction.
    map: Vec<Option<ValueId>>,
    index: DType,
}

impl Rewriter {
    fn push(&mut self, inst: Inst) -> ValueId {
        self.insts.push(inst);
        ValueId(self.insts.len() as u32 - 1)
    }

    fn konst(&mut self, v: i64) -> ValueId {
        self.push(Inst::Const {
            ty: VType::scalar(self.index),
            value: Scalar::Int(v),
        })
    }

    /// Copies old instruction `i` with its operands renumbered.
    fn copy(&mut self, i: usize, inst: &Inst) {
        let m =
            |v: &ValueId| self.map[v.0 as usize].expect("operands are defined before their users");
        let mem = |x: &Memory| match x {
            Memory::Global(p) => Memory::Global(*p),
            Memory::Local(v) => Memory::Local(m(v)),
        };
        let new = match inst {
            Inst::Loop { start, end } => Inst::Loop {
                start: m(start),
                end: m(end),
            },
            Inst::If { cond } => Inst::If { cond: m(cond) },
            Inst::ReadAcc(a) => Inst::ReadAcc(m(a)),
            Inst::WriteAcc { acc, value } => Inst::WriteAcc {
                acc: m(acc),
                value: m(value),
            },
            Inst::Unary { op, arg } => Inst::Unary {
                op: *op,
                arg: m(arg),
            },
            Inst::Binary { op, a, b } => Inst::Binary {
                op: *op,
                a: m(a),
                b: m(b),
            },
            Inst::Where { cond, a, b } => Inst::Where {
                cond: m(cond),
                a: m(a),
                b: m(b),
            },
            Inst::MulAcc { a, b, c } => Inst::MulAcc {
                a: m(a),
                b: m(b),
                c: m(c),
            },
            Inst::Cast { to, arg } => Inst::Cast {
                to: *to,
                arg: m(arg),
            },
            Inst::Bitcast { to, arg } => Inst::Bitcast {
                to: *to,
                arg: m(arg),
            },
            Inst::ReduceLanes { op, arg } => Inst::ReduceLanes {
                op: *op,
                arg: m(arg),
            },
            Inst::Vectorize(parts) => Inst::Vectorize(parts.iter().map(m).collect()),
            Inst::Extract { vec, lane } => Inst::Extract {
                vec: m(vec),
                lane: *lane,
            },
            Inst::Load {
                mem: x,
                index,
                gate,
                ty,
            } => Inst::Load {
                mem: mem(x),
                index: m(index),
                gate: gate.as_ref().map(m),
                ty: *ty,
            },
            Inst::Store {
                mem: x,
                index,
                value,
                gate,
            } => Inst::Store {
                mem: mem(x),
                index: m(index),
                value: m(value),
                gate: gate.as_ref().map(m),
            },
            other => other.clone(),
        };
        let id = self.push(new);
        self.map[i] = Some(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::Param;

    /// out[g] = sum over r < n of in[g n + r] (the CPU shape).
    fn row_sum(rows: usize, n: usize) -> Program {
        let i32s = VType::scalar(DType::I32);
        let f32s = VType::scalar(DType::F32);
        let insts = vec![
            Inst::GroupId(0), // 0
            Inst::DefineAcc {
                ty: f32s,
                init: Scalar::Float(0.0),
            }, // 1
            Inst::Const {
                ty: i32s,
                value: Scalar::Int(0),
            }, // 2
            Inst::Const {
                ty: i32s,
                value: Scalar::Int(n as i64),
            }, // 3
            Inst::Loop {
                start: ValueId(2),
                end: ValueId(3),
            }, // 4
            Inst::Binary {
                op: BinaryOp::Mul,
                a: ValueId(0),
                b: ValueId(3),
            }, // 5
            Inst::Binary {
                op: BinaryOp::Add,
                a: ValueId(5),
                b: ValueId(4),
            }, // 6
            Inst::Load {
                mem: Memory::Global(1),
                index: ValueId(6),
                gate: None,
                ty: f32s,
            }, // 7
            Inst::ReadAcc(ValueId(1)), // 8
            Inst::Binary {
                op: BinaryOp::Add,
                a: ValueId(8),
                b: ValueId(7),
            }, // 9
            Inst::WriteAcc {
                acc: ValueId(1),
                value: ValueId(9),
            }, // 10
            Inst::EndLoop,    // 11
            Inst::ReadAcc(ValueId(1)), // 12
            Inst::Store {
                mem: Memory::Global(0),
                index: ValueId(0),
                value: ValueId(12),
                gate: None,
            },
        ];
        Program {
            name: "row_sum".into(),
            params: vec![
                Param {
                    dtype: DType::F32,
                    len: rows,
                    writable: true,
                },
                Param {
                    dtype: DType::F32,
                    len: rows * n,
                    writable: false,
                },
            ],
            global: vec![rows],
            local: vec![1],
            index_dtype: DType::I32,
            insts,
        }
    }

    #[test]
    fn long_reductions_become_workgroup_reductions() {
        let p = workgroup_reduce(row_sum(3, 1000), 256);
        assert_eq!(p.local, vec![256]);
        assert!(p.uses_workgroups());
        let reduces = p
            .insts
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    Inst::WorkgroupReduce {
                        op: ReduceOp::Sum,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(
            reduces, 1,
            "the accumulator is combined across the workgroup"
        );
        assert!(
            matches!(p.insts.last(), Some(Inst::EndIf)),
            "stores run in invocation 0 only"
        );
        // Every operand refers to an earlier instruction.
        for (i, inst) in p.insts.iter().enumerate() {
            let ok = format!("{inst:?}")
                .match_indices("ValueId(")
                .all(|(at, _)| {
                    format!("{inst:?}")[at + 8..]
                        .split(')')
                        .next()
                        .and_then(|v| v.parse::<usize>().ok())
                        .is_some_and(|v| v < i)
                });
            assert!(ok, "instruction {i} {inst:?} uses a later value");
        }
    }

    #[test]
    fn short_or_many_output_reductions_keep_the_cpu_shape() {
        assert_eq!(workgroup_reduce(row_sum(3, 100), 256), row_sum(3, 100));
        assert_eq!(
            workgroup_reduce(row_sum(2000, 1000), 256),
            row_sum(2000, 1000)
        );
        assert_eq!(workgroup_reduce(row_sum(3, 1000), 1), row_sum(3, 1000));
    }
}
