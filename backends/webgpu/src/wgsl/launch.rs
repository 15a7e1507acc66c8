//! How a program's launch grid maps onto WebGPU workgroups.
//!
//! The grid (`global`, up to three dimensions) is linearized row-major (the last dimension
//! varies fastest, so neighbouring invocations touch neighbouring output elements).
//!
//! * A *plain* program (local size 1 everywhere, no local ids, local memory or barriers: what
//!   the CPU-style lowering emits) runs one grid point per invocation, [`PLAIN_LOCAL`]
//!   invocations per workgroup.
//! * A *workgroup* program runs one grid point per workgroup, with the program's local size.
//!
//! Workgroups are dispatched as a 2-D `gx x gy` array within
//! `maxComputeWorkgroupsPerDimension` (65535 by default), and the shader walks the linear grid
//! with a grid-stride loop (`lin += gx * gy * points per group`), so grids of any size run; the
//! loop's trip count is uniform across a workgroup, so barriers stay legal.

use super::{Features, Gen};
use ferrograd_ir::{DType, Program};

pub(crate) use ferrograd_ir::dispatch::Dispatch;
use ferrograd_ir::dispatch::DispatchLimits;

/// Chooses the dispatch of `program` within the adapter's limits ([`ferrograd_ir::dispatch`]).
pub(crate) fn plan(program: &Program, f: &Features) -> Result<Dispatch, String> {
    ferrograd_ir::dispatch::plan(
        program,
        &DispatchLimits {
            max_local: f.max_local,
            max_invocations: f.max_invocations,
            max_shared_bytes: f.max_shared_bytes,
            max_groups: [f.max_groups, f.max_groups],
            // A workgroup reduction keeps one 8-byte slot per invocation in workgroup memory.
            reduce_bytes_per_invocation: 8,
            names: [
                "maxComputeWorkgroupSize",
                "maxComputeInvocationsPerWorkgroup",
                "maxComputeWorkgroupStorageSize",
            ],
        },
    )
}

impl Gen<'_> {
    /// The entry point's body: the grid-stride loop around the program's instructions.
    pub(super) fn main(&mut self, d: &Dispatch) -> Result<(), String> {
        let wide = self.program.index_dtype == DType::I64;
        let (lin_ty, suffix) = if wide { ("u64", "lu") } else { ("u32", "u") };
        let ity = self.idx_ty();
        let span = d.groups[0] as u64 * d.groups[1] as u64;
        let group = format!(
            "({lin_ty}(wg.y) * {}{suffix} + {lin_ty}(wg.x))",
            d.groups[0]
        );
        let (start, stride) = if d.per_invocation {
            (
                format!("{group} * {}{suffix} + {lin_ty}(lid.x)", d.local[0]),
                span * d.local[0] as u64,
            )
        } else {
            for c in ["x", "y", "z"].iter().take(self.program.local.len()) {
                self.local_ids.push(format!("{ity}(lid.{c})"));
            }
            (group, span)
        };
        self.line(&format!("var lin: {lin_ty} = {start};"));
        self.open("loop");
        self.line(&format!("if !(lin < {}{suffix}) {{ break; }}", d.total));
        // A zero the shader compiler cannot see (see `Gen::opaque`): the grid-stride counter
        // is below 2^31 (2^63 for 64-bit indices) here, but its range is not known to the
        // compiler. (A shifted `arrayLength` is not enough: lavapipe knows its bound.)
        let top = if wide { 63 } else { 31 };
        self.line(&format!("let opq: u32 = u32(lin >> {top}u);"));
        let lin = self.bind(ity, &format!("{ity}(lin)"));
        self.unravel(&lin);
        self.body_insts()?;
        self.line(&format!("continuing {{ lin = lin + {stride}{suffix}; }}"));
        self.close();
        Ok(())
    }

    /// Defines `GroupId(d)` for every dimension from the linear grid index `lin`.
    fn unravel(&mut self, lin: &str) {
        let ity = self.idx_ty();
        let global = self.program.global.clone();
        let mut ids = vec![String::new(); global.len()];
        let mut rest = lin.to_string();
        for d in (0..global.len()).rev() {
            ids[d] = if global[d] == 1 {
                self.idx_lit(0)
            } else if d == 0 {
                rest.clone()
            } else {
                // An empty grid runs no iteration; 1 keeps the text free of `% 0`.
                let n = self.idx_lit(global[d].max(1) as i64);
                let id = self.bind(ity, &format!("{rest} % {n}"));
                rest = self.bind(ity, &format!("{rest} / {n}"));
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
            native_f16: false,
            int64: true,
            float64: true,
            subgroups: false,
            max_groups,
            max_local: [256, 256, 64],
            max_invocations: 256,
            max_shared_bytes: 16384,
        }
    }

    fn program(global: Vec<usize>, local: Vec<usize>, index_dtype: DType) -> Program {
        Program {
            name: "p".into(),
            params: vec![Param {
                dtype: DType::F32,
                len: 1,
                writable: true,
            }],
            global,
            local,
            index_dtype,
            insts: vec![Inst::Const {
                ty: VType::scalar(DType::I32),
                value: Scalar::Int(0),
            }],
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
        // More than 65535 workgroups: a second dimension; the stride stays below 2^31.
        let big = (i32::MAX - 16) as usize;
        let d = plan(&program(vec![big], vec![1], DType::I32), &f).unwrap();
        let stride = d.groups.iter().map(|&g| g as u64).product::<u64>() * 256;
        assert!(
            d.groups[0] == 65535 && d.groups[1] > 1 && stride <= 1 << 31,
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
            .contains("maxComputeWorkgroupSize"));
        assert!(plan(&program(vec![2, 2], vec![64, 32], DType::I32), &f)
            .unwrap_err()
            .contains("maxComputeInvocationsPerWorkgroup"));
        let mut p = program(vec![2], vec![64], DType::I32);
        p.insts.push(Inst::DefineLocal {
            dtype: DType::F64,
            len: 4096,
        });
        assert!(plan(&p, &f)
            .unwrap_err()
            .contains("maxComputeWorkgroupStorageSize"));
    }
}
