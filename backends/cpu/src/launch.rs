//! Running a compiled kernel: argument checks and splitting launch dimension 0 across threads.

use crate::buffer::CpuBuffer;
use crate::kernel::CpuKernel;
use ferrograd_ir::{Inst, Program};
use ferrograd_runtime::{Error, RawBuffer, Result};
use rayon::prelude::*;

/// Launches estimated below this many executed instructions run on the calling thread.
const INLINE_WORK: u64 = 1 << 15;

/// Chunks per pool thread, so uneven chunks still balance.
const CHUNKS_PER_THREAD: usize = 16;

/// Trip count assumed for loops whose bounds are not constants.
const UNKNOWN_TRIPS: u64 = 16;

/// Estimated instructions executed by the whole launch of `program`.
pub(crate) fn work_estimate(program: &Program) -> u64 {
    let constant = |v: &ferrograd_ir::ValueId| match program.insts.get(v.0 as usize) {
        Some(Inst::Const { value, .. }) => Some(value.as_i64()),
        _ => None,
    };
    let mut scale = vec![1u64];
    let mut per_point = 0u64;
    for inst in &program.insts {
        let current = *scale.last().unwrap_or(&1);
        per_point = per_point.saturating_add(current);
        match inst {
            Inst::Loop { start, end } => {
                let trips = match (constant(start), constant(end)) {
                    (Some(s), Some(e)) => e.saturating_sub(s).max(0) as u64,
                    _ => UNKNOWN_TRIPS,
                };
                scale.push(current.saturating_mul(trips));
            }
            Inst::EndLoop => {
                scale.pop();
            }
            _ => {}
        }
    }
    let points = program
        .global
        .iter()
        .fold(1u64, |acc, &g| acc.saturating_mul(g as u64));
    points.saturating_mul(per_point.max(1))
}

/// Wrapper making the argument array shareable across the pool.
struct Args(Vec<*mut u8>);

// SAFETY: the pointers are only passed to the kernel, which reads and writes the buffers they
// point to; the buffers outlive the launch (they are borrowed by `launch`), and concurrent
// chunks touch memory as the program dictates, like work-items on any device.
unsafe impl Sync for Args {}

/// Checks `buffers` against the kernel's params and runs it over the whole grid.
pub(crate) fn launch(kernel: &CpuKernel, buffers: &[&RawBuffer], device: &str) -> Result<()> {
    let error = |reason: String| Error::Device {
        device: device.to_string(),
        reason,
    };
    if buffers.len() != kernel.params.len() {
        return Err(error(format!(
            "kernel `{}` takes {} buffers, {} were given",
            kernel.name,
            kernel.params.len(),
            buffers.len()
        )));
    }
    let mut args = Vec::with_capacity(buffers.len());
    for (i, (buffer, param)) in buffers.iter().zip(&kernel.params).enumerate() {
        let buffer = buffer.downcast_ref::<CpuBuffer>().ok_or_else(|| {
            error(format!(
                "buffer {i} of kernel `{}` is not CPU memory",
                kernel.name
            ))
        })?;
        let needed = param.len * param.dtype.size();
        if buffer.len() < needed {
            return Err(error(format!(
                "buffer {i} of kernel `{}` holds {} bytes; the kernel needs {needed} ({} x {})",
                kernel.name,
                buffer.len(),
                param.len,
                param.dtype
            )));
        }
        args.push(buffer.as_ptr());
    }
    run(kernel, &Args(args));
    Ok(())
}

fn run(kernel: &CpuKernel, args: &Args) {
    let rows = kernel.rows;
    let threads = rayon::current_num_threads();
    let call = |start: usize, end: usize| {
        // SAFETY: `entry` is a finalized function of the signature `KernelFn`, alive as long as
        // `kernel`; `args` holds one pointer per param, each to a live buffer checked to hold
        // the param's elements (which the program indexes within, per the IR contract), and
        // `[start, end)` lies within launch dimension 0.
        unsafe { (kernel.entry)(args.0.as_ptr(), start as i64, end as i64) }
    };
    if rows <= 1 || threads <= 1 || kernel.work < INLINE_WORK {
        call(0, rows);
        return;
    }
    let chunks = (threads * CHUNKS_PER_THREAD).min(rows);
    let bound = |c: usize| (rows as u128 * c as u128 / chunks as u128) as usize;
    (0..chunks)
        .into_par_iter()
        .for_each(|c| call(bound(c), bound(c + 1)));
}
