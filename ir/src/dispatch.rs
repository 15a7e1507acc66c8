//! How a program's launch grid maps onto GPU workgroups, within a device's limits (shared by
//! the Vulkan and WebGPU backends; each passes its limits and their names in its API).
//!
//! The grid (`global`, up to three dimensions) is linearized row-major. A *plain* program (no
//! workgroup instructions) runs one grid point per invocation, [`PLAIN_LOCAL`] invocations per
//! workgroup; a *workgroup* program runs one grid point per workgroup with the program's local
//! size. Workgroups are dispatched as a 2-D `gx x gy` array within the device's workgroup-count
//! limits and the shader walks the linear grid with a grid-stride loop, so grids of any size
//! run; the loop's trip count is uniform across a workgroup, so barriers stay legal.

use crate::dtype::DType;
use crate::program::{Inst, Program};

/// Invocations per workgroup for plain programs (capped by the device).
pub const PLAIN_LOCAL: u32 = 256;

/// Workgroups and local size of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// Workgroups to dispatch per dimension (`[0, 1, 1]` for an empty grid).
    pub groups: [u32; 3],
    /// The shader's workgroup size.
    pub local: [u32; 3],
    /// Grid points (product of `global`).
    pub total: u64,
    /// True when each invocation is one grid point (plain programs).
    pub per_invocation: bool,
}

/// The device limits a dispatch must respect, with the API's names for error messages.
#[derive(Clone, Copy, Debug)]
pub struct DispatchLimits {
    /// Largest workgroup size per dimension.
    pub max_local: [u32; 3],
    /// Largest number of invocations in one workgroup.
    pub max_invocations: u32,
    /// Workgroup memory in bytes.
    pub max_shared_bytes: u32,
    /// Largest workgroup count in dimensions x and y.
    pub max_groups: [u32; 2],
    /// Workgroup memory a `WorkgroupReduce` uses per invocation, beyond `DefineLocal`s.
    pub reduce_bytes_per_invocation: u64,
    /// The API's names of the workgroup-size, invocation and shared-memory limits.
    pub names: [&'static str; 3],
}

/// Chooses the dispatch of `program` within `limits`.
pub fn plan(program: &Program, limits: &DispatchLimits) -> Result<Dispatch, String> {
    let [size_name, invocations_name, shared_name] = limits.names;
    let total = program
        .global
        .iter()
        .try_fold(1u64, |acc, &g| acc.checked_mul(g as u64))
        .ok_or("the launch grid overflows 64 bits")?;
    let index_limit = match program.index_dtype {
        DType::I32 => i32::MAX as u64,
        _ => i64::MAX as u64,
    };
    if total > index_limit {
        return Err(format!(
            "the launch grid of {total} points does not fit the index dtype {}",
            program.index_dtype
        ));
    }
    let per_invocation = !program.uses_workgroups();
    let local = if per_invocation {
        let x = PLAIN_LOCAL
            .min(limits.max_invocations)
            .min(limits.max_local[0])
            .max(1);
        [x, 1, 1]
    } else {
        let mut local = [1u32; 3];
        for (d, &l) in program.local.iter().enumerate() {
            local[d] = u32::try_from(l).map_err(|_| format!("local size {l} is too large"))?;
            if local[d] == 0 || local[d] > limits.max_local[d] {
                return Err(format!(
                    "local size {} in dimension {d} is outside 1..={} ({size_name})",
                    local[d], limits.max_local[d]
                ));
            }
        }
        let invocations = local.iter().map(|&l| l as u64).product::<u64>();
        if invocations > limits.max_invocations as u64 {
            return Err(format!(
                "a workgroup of {invocations} invocations exceeds {invocations_name} {}",
                limits.max_invocations
            ));
        }
        local
    };
    let invocations = local.iter().map(|&l| l as u64).product::<u64>();
    let shared: u64 = program
        .insts
        .iter()
        .map(|i| match i {
            Inst::DefineLocal { dtype, len } => (*len).max(1) as u64 * register_bytes(*dtype),
            Inst::WorkgroupReduce { .. } => invocations * limits.reduce_bytes_per_invocation,
            _ => 0,
        })
        .sum();
    if shared > limits.max_shared_bytes as u64 {
        return Err(format!(
            "the kernel needs {shared} bytes of workgroup memory; {shared_name} is {}",
            limits.max_shared_bytes
        ));
    }
    let points_per_group = if per_invocation { local[0] as u64 } else { 1 };
    let needed = total.div_ceil(points_per_group);
    let groups = if needed == 0 {
        [0, 1, 1]
    } else {
        let gx = needed.min(limits.max_groups[0].max(1) as u64);
        // With 32-bit indices the stride stays below 2^31, so `lin + stride` (lin < 2^31)
        // never wraps around 2^32.
        let stride_cap = match program.index_dtype {
            DType::I32 => ((1u64 << 31) / (gx * points_per_group)).max(1),
            _ => u64::MAX,
        };
        let gy = needed
            .div_ceil(gx)
            .min(limits.max_groups[1].max(1) as u64)
            .min(stride_cap);
        [gx as u32, gy as u32, 1]
    };
    Ok(Dispatch {
        groups,
        local,
        total,
        per_invocation,
    })
}

/// Bytes of one workgroup-memory element of `dtype` (held in register form: 32 bits, or 64
/// for i64/f64).
pub fn register_bytes(dtype: DType) -> u64 {
    match dtype {
        DType::I64 | DType::F64 => 8,
        _ => 4,
    }
}
