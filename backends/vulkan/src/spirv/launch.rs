//! How a program's launch grid maps onto Vulkan workgroups.
//!
//! The grid (`global`, up to three dimensions) is linearized row-major (the last dimension
//! varies fastest, so neighbouring invocations touch neighbouring output elements).
//!
//! * A *plain* program (local size 1 everywhere, no local ids, local memory or barriers: what
//!   the CPU-style lowering emits) runs one grid point per invocation, [`PLAIN_LOCAL`]
//!   invocations per workgroup.
//! * A *workgroup* program runs one grid point per workgroup, with the program's local size.
//!
//! Workgroups are dispatched as a 2-D `gx x gy` array within `maxComputeWorkGroupCount`, and the
//! shader walks the linear grid with a grid-stride loop (`lin += gx * gy * local`), so grids of
//! any size run; the loop's trip count is uniform across a workgroup, so barriers stay legal.

use super::{Features, Gen};
use ferrograd_ir::{DType, Program};
use rspirv::spirv::{self, Op, Word};

pub(crate) use ferrograd_ir::dispatch::Dispatch;
use ferrograd_ir::dispatch::DispatchLimits;

/// Chooses the dispatch of `program` within the device limits ([`ferrograd_ir::dispatch`]).
pub(crate) fn plan(program: &Program, f: &Features) -> Result<Dispatch, String> {
    ferrograd_ir::dispatch::plan(
        program,
        &DispatchLimits {
            max_local: f.max_local,
            max_invocations: f.max_invocations,
            max_shared_bytes: f.max_shared_bytes,
            max_groups: [f.max_groups[0], f.max_groups[1]],
            // The reduction's partials live in `DefineLocal`s the backend declares itself.
            reduce_bytes_per_invocation: 0,
            names: [
                "maxComputeWorkGroupSize",
                "maxComputeWorkGroupInvocations",
                "maxComputeSharedMemorySize",
            ],
        },
    )
}

impl Gen<'_> {
    /// Emits the grid-stride loop around `body`, defining `GroupId`/`LocalId` values first.
    pub(super) fn launch(
        &mut self,
        d: &Dispatch,
        wg_var: Word,
        lid_var: Word,
        body: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let err = |e: rspirv::dr::Error| format!("internal: {e:?}");
        let it = self.program.index_dtype;
        let ity = self.idx_ty();
        let u32t = self.ty_int(32);
        let uvec3 = self.ty_uvec(3);
        let lin_var = self.lin_var;

        let wg = self.load_ptr(uvec3, wg_var);
        let lid = self.load_ptr(uvec3, lid_var);
        let comp = |g: &mut Self, v: Word, i: u32| -> Result<Word, String> {
            g.b.composite_extract(u32t, None, v, [i]).map_err(err)
        };
        let (wx, wy) = (comp(self, wg, 0)?, comp(self, wg, 1)?);
        let gx = self.c_u32(d.groups[0]);
        let row = self.op(Op::IMul, u32t, &[wy, gx]);
        let group = self.op(Op::IAdd, u32t, &[row, wx]);
        let widen = |g: &mut Self, v: Word| {
            if it == DType::I64 {
                g.op(Op::UConvert, ity, &[v])
            } else {
                v
            }
        };
        let group = widen(self, group);
        let span = d.groups[0] as u64 * d.groups[1] as u64 * d.groups[2] as u64;
        let (start, stride) = if d.per_invocation {
            let lx = comp(self, lid, 0)?;
            let lx = widen(self, lx);
            let wgsize = self.c_int(it, d.local[0] as i64);
            let base = self.op(Op::IMul, ity, &[group, wgsize]);
            (
                self.op(Op::IAdd, ity, &[base, lx]),
                span * d.local[0] as u64,
            )
        } else {
            for i in 0..self.program.local.len() as u32 {
                let l = comp(self, lid, i)?;
                let l = widen(self, l);
                self.local_ids.push(l);
            }
            (group, span)
        };
        self.store_ptr(lin_var, start);

        let (header, inner, cont, exit) = (self.b.id(), self.b.id(), self.b.id(), self.b.id());
        self.b.branch(header).map_err(err)?;
        self.b.begin_block(Some(header)).map_err(err)?;
        let lin = self.load_ptr(ity, lin_var);
        let total = self.c_int(it, d.total as i64);
        let bool_ty = self.ty_bool();
        let more = self.op(Op::ULessThan, bool_ty, &[lin, total]);
        self.b
            .loop_merge(exit, cont, spirv::LoopControl::NONE, [])
            .map_err(err)?;
        self.b
            .branch_conditional(more, inner, exit, [])
            .map_err(err)?;
        self.b.begin_block(Some(inner)).map_err(err)?;
        // A zero the driver's compiler cannot see (see `Gen::opaque_float`): the grid-stride
        // counter is below 2^31 (2^63 for 64-bit indices) here, but its range is not known to
        // the compiler.
        let top = self.c_int(it, if it == DType::I64 { 63 } else { 31 });
        let high = self.op(Op::ShiftRightLogical, ity, &[lin, top]);
        self.opaque_zero = Some(if it == DType::I64 {
            self.op(Op::UConvert, u32t, &[high])
        } else {
            high
        });
        self.unravel(lin);
        body(self)?;
        self.b.branch(cont).map_err(err)?;
        self.b.begin_block(Some(cont)).map_err(err)?;
        let lin = self.load_ptr(ity, lin_var);
        let step = self.c_int(it, stride as i64);
        let next = self.op(Op::IAdd, ity, &[lin, step]);
        self.store_ptr(lin_var, next);
        self.b.branch(header).map_err(err)?;
        self.b.begin_block(Some(exit)).map_err(err)?;
        Ok(())
    }

    /// Defines `GroupId(d)` for every dimension from the linear grid index `lin`.
    fn unravel(&mut self, lin: Word) {
        let it = self.program.index_dtype;
        let ity = self.idx_ty();
        let global = self.program.global.clone();
        let mut ids = vec![0; global.len()];
        let mut rest = lin;
        for d in (0..global.len()).rev() {
            ids[d] = if global[d] == 1 {
                self.c_int(it, 0)
            } else if d == 0 {
                rest
            } else {
                let n = self.c_int(it, global[d] as i64);
                let id = self.op(Op::UMod, ity, &[rest, n]);
                rest = self.op(Op::UDiv, ity, &[rest, n]);
                id
            };
        }
        self.group_ids = ids;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrograd_ir::Inst;
    use ferrograd_ir::{Param, Scalar, VType};

    fn features(max_groups: u32) -> Features {
        Features {
            int64: true,
            float64: true,
            storage8: true,
            storage16: true,
            max_groups: [max_groups; 3],
            max_local: [1024, 1024, 64],
            max_invocations: 1024,
            max_shared_bytes: 32768,
            max_buffer_range: 1 << 27,
            preserve_nan32: true,
            preserve_nan64: true,
            subgroup_arith: true,
        }
    }

    fn program(global: Vec<usize>, local: Vec<usize>, index_dtype: DType) -> Program {
        let insts = vec![Inst::Const {
            ty: VType::scalar(DType::I32),
            value: Scalar::Int(0),
        }];
        let params = vec![Param {
            dtype: DType::F32,
            len: 1,
            writable: true,
        }];
        Program {
            name: "p".into(),
            params,
            global,
            local,
            index_dtype,
            insts,
        }
    }

    #[test]
    fn grids_fit_the_workgroup_count_limits() {
        let f = features(65535);
        let d = plan(&program(vec![1000], vec![1], DType::I32), &f).unwrap();
        assert_eq!(
            (d.groups, d.local, d.total, d.per_invocation),
            ([4, 1, 1], [256, 1, 1], 1000, true)
        );
        let d = plan(&program(vec![0, 5], vec![1, 1], DType::I32), &f).unwrap();
        assert_eq!(d.groups, [0, 1, 1]);
        // Beyond one dimension of workgroups: a second one; 32-bit indices cap the stride at 2^31.
        let big = (i32::MAX - 16) as usize;
        let d = plan(&program(vec![big], vec![1], DType::I32), &f).unwrap();
        let stride = d.groups.iter().map(|&g| g as u64).product::<u64>() * 256;
        assert!(
            d.groups[1] > 1 && stride <= 1 << 31 && stride * 2 >= big as u64,
            "{d:?}"
        );
        // Tiny limits: the grid-stride loop covers the rest.
        let d = plan(&program(vec![100_000], vec![1], DType::I64), &features(3)).unwrap();
        assert_eq!(d.groups, [3, 3, 1]);
    }

    #[test]
    fn workgroup_programs_keep_their_local_size_within_limits() {
        let f = features(65535);
        let d = plan(&program(vec![7, 3], vec![64, 4], DType::I32), &f).unwrap();
        assert_eq!(
            (d.local, d.groups, d.per_invocation),
            ([64, 4, 1], [21, 1, 1], false)
        );
        assert!(plan(&program(vec![2], vec![2048], DType::I32), &f)
            .unwrap_err()
            .contains("maxComputeWorkGroupSize"));
        assert!(plan(&program(vec![2, 2], vec![64, 32], DType::I32), &f)
            .unwrap_err()
            .contains("maxComputeWorkGroupInvocations"));
        let mut p = program(vec![2], vec![64], DType::I32);
        p.insts.push(Inst::DefineLocal {
            dtype: DType::F64,
            len: 8192,
        });
        assert!(plan(&p, &f)
            .unwrap_err()
            .contains("maxComputeSharedMemorySize"));
    }
}
