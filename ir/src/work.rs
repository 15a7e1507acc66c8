//! Static work estimates of a [`Program`]: ALU instructions and bytes moved, weighted by how
//! often each instruction runs (the launch grid times the trip counts of its enclosing loops).
//! Used to measure what the optimizers buy (`FERROGRAD_EGRAPH` A/B runs).

use crate::program::{Inst, Memory, Program};
use crate::BinaryOp;

/// What a Program executes in total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// ALU instructions executed (a vector instruction counts once).
    pub alu_ops: u64,
    /// Of those, integer divisions and modulos (index arithmetic after reshapes).
    pub div_mod_ops: u64,
    /// Bytes loaded from and stored to global memory.
    pub bytes: u64,
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, o: Work) {
        self.alu_ops += o.alu_ops;
        self.div_mod_ops += o.div_mod_ops;
        self.bytes += o.bytes;
    }
}

/// The work `program` does in one launch. Loops with bounds that are not constants count once.
pub fn work(program: &Program) -> Work {
    let types = program.value_types();
    let konst = |v: crate::ValueId| match &program.insts[v.0 as usize] {
        Inst::Const { value, .. } => Some(value.as_i64()),
        _ => None,
    };
    let grid: u64 = program.global.iter().map(|&g| g as u64).product();
    let mut weights = vec![grid.max(1)];
    let mut out = Work::default();
    for inst in &program.insts {
        let w = *weights.last().expect("the launch scope");
        match inst {
            Inst::Loop { start, end } => {
                let trips = match (konst(*start), konst(*end)) {
                    (Some(s), Some(e)) => (e - s).max(0) as u64,
                    _ => 1,
                };
                weights.push(w * trips);
            }
            Inst::If { .. } => weights.push(w),
            Inst::EndLoop | Inst::EndIf => {
                weights.pop();
            }
            Inst::Binary { op, .. } => {
                out.alu_ops += w;
                if matches!(op, BinaryOp::IDiv | BinaryOp::Mod) {
                    out.div_mod_ops += w;
                }
            }
            Inst::Unary { .. }
            | Inst::Where { .. }
            | Inst::MulAcc { .. }
            | Inst::Cast { .. }
            | Inst::ReduceLanes { .. } => out.alu_ops += w,
            Inst::Load {
                mem: Memory::Global(_),
                ty,
                ..
            } => out.bytes += w * (ty.lanes as u64) * ty.dtype.size() as u64,
            Inst::Store {
                mem: Memory::Global(_),
                value,
                ..
            } => {
                if let Some(ty) = types[value.0 as usize] {
                    out.bytes += w * (ty.lanes as u64) * ty.dtype.size() as u64;
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{lower, LoweringTarget};
    use crate::schedule::{schedule, ScheduleItem};
    use crate::{DType, Node, ReduceOp};
    use std::sync::Arc;

    #[test]
    fn counts_work_weighted_by_trips() {
        let dev: Arc<str> = Arc::from("cpu");
        let leaf = Node::buffer(
            crate::BufferHandle::new(Arc::new(())),
            DType::F32,
            &[16, 64],
            &dev,
        );
        let s = Node::reduce(
            ReduceOp::Sum,
            &Node::unary(crate::UnaryOp::Sqrt, &leaf),
            &[1],
        );
        let items = schedule(std::slice::from_ref(&s));
        let ScheduleItem::Kernel(k) = &items[0] else {
            panic!("a kernel")
        };
        let target = LoweringTarget {
            optimize: false,
            ..LoweringTarget::default()
        };
        let w = work(&lower(k, &target));
        // 1024 elements read, 16 written, a sqrt and an add per element at least.
        assert_eq!(w.bytes, 1024 * 4 + 16 * 4);
        assert!(w.alu_ops >= 2 * 1024, "{w:?}");
    }
}
