//! `WorkgroupReduce`: a value combined across every invocation of a workgroup.
//!
//! * With the adapter's `SUBGROUP` feature and a 32-bit op the subgroup instructions compute
//!   as the reference does (integer sum/product/max, f32 sum and product, bool any/all): each
//!   subgroup reduces with one `subgroup*` call, its first invocation (`subgroup_invocation_id` 0) stores the
//!   partial result in its slot (`subgroup_id`; every slot starts at the identity), and after a
//!   barrier every invocation combines the `ceil(local size / subgroup size)` partials in order.
//! * Otherwise (float max, whose NaN rule subgroup ops do not follow; 64-bit types): a tree in
//!   workgroup memory, halving the active invocations with a barrier per step.
//!
//! A final barrier keeps the next reduction from overwriting slots still being read.

use super::memory::local_elem;
use super::{reg_ty, scalar_lit, Gen};
use ferrograd_ir::{DType, Inst, ReduceOp};
use std::fmt::Write as _;

impl Gen<'_> {
    /// The WGSL subgroup function reducing `op` over `dtype` registers, where it is exact.
    fn subgroup_fn(&self, op: ReduceOp, dtype: DType) -> Option<&'static str> {
        if !self.features.subgroups {
            return None;
        }
        Some(match (op, dtype) {
            (ReduceOp::Sum, DType::F32 | DType::I32 | DType::U32) => "subgroupAdd",
            (ReduceOp::Prod, DType::F32 | DType::I32 | DType::U32) => "subgroupMul",
            (ReduceOp::Max, DType::I8 | DType::U8 | DType::I32 | DType::U32) => "subgroupMax",
            (ReduceOp::Sum | ReduceOp::Max, DType::Bool) => "subgroupAny",
            (ReduceOp::Prod, DType::Bool) => "subgroupAll",
            _ => return None,
        })
    }

    /// True if any `WorkgroupReduce` of the program takes the subgroup path.
    pub(super) fn uses_subgroups(&self) -> bool {
        self.program.insts.iter().any(|i| match i {
            Inst::WorkgroupReduce { op, arg } => {
                self.types[arg.0 as usize].is_some_and(|t| self.subgroup_fn(*op, t.dtype).is_some())
            }
            _ => false,
        })
    }

    /// Slot `i` of reduction array `array` as a register of `dtype`.
    fn slot(array: &str, dtype: DType, i: &str) -> String {
        if dtype == DType::Bool {
            format!("{array}[{i}] != 0u")
        } else {
            format!("{array}[{i}]")
        }
    }

    /// Stores register expression `v` of `dtype` into slot `i`.
    fn set_slot(&mut self, array: &str, dtype: DType, i: &str, v: &str) {
        let v = if dtype == DType::Bool {
            format!("select(0u, 1u, {v})")
        } else {
            v.to_string()
        };
        self.line(&format!("{array}[{i}] = {v};"));
    }

    /// `WorkgroupReduce` instruction `id` of `x` (a `dtype` register); returns the result's name.
    pub(super) fn workgroup_reduce(
        &mut self,
        id: u32,
        op: ReduceOp,
        dtype: DType,
        x: &str,
    ) -> Result<String, String> {
        let n = self.local_count;
        let array = format!("r{id}");
        let _ = writeln!(
            self.globals,
            "var<workgroup> {array}: array<{}, {n}>;",
            local_elem(dtype)
        );
        let ty = reg_ty(dtype);
        let result = match self.subgroup_fn(op, dtype) {
            Some(f) => {
                let identity = scalar_lit(dtype, op.identity(dtype));
                self.set_slot(&array, dtype, "flat", &identity);
                self.line("workgroupBarrier();");
                let part = self.bind(ty, &format!("{f}({x})"));
                self.open("if sg_lane == 0u");
                self.set_slot(&array, dtype, "sg_id", &part);
                self.close();
                self.line("workgroupBarrier();");
                let total = format!("w{id}");
                self.line(&format!("var {total}: {ty} = {identity};"));
                self.open(&format!(
                    "for (var k{id} = 0u; k{id} < ({n}u + sg_size - 1u) / sg_size; k{id} = k{id} + 1u)"
                ));
                let v = Self::slot(&array, dtype, &format!("k{id}"));
                let acc = self.binary(op.combine(), dtype, &total, &v)?;
                self.line(&format!("{total} = {acc};"));
                self.close();
                self.bind(ty, &total)
            }
            None => {
                self.set_slot(&array, dtype, "flat", x);
                self.line("workgroupBarrier();");
                let mut stride = n.next_power_of_two() / 2;
                while stride > 0 {
                    self.open(&format!("if flat < {stride}u && flat + {stride}u < {n}u"));
                    let a = Self::slot(&array, dtype, "flat");
                    let b = Self::slot(&array, dtype, &format!("flat + {stride}u"));
                    let (a, b) = (self.bind(ty, &a), self.bind(ty, &b));
                    let c = self.binary(op.combine(), dtype, &a, &b)?;
                    self.set_slot(&array, dtype, "flat", &c);
                    self.close();
                    self.line("workgroupBarrier();");
                    stride /= 2;
                }
                let v = Self::slot(&array, dtype, "0u");
                self.bind(ty, &v)
            }
        };
        self.line("workgroupBarrier();");
        Ok(result)
    }
}
