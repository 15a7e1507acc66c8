//! The executor: schedule a graph, lower and compile its kernels, allocate and launch.

use crate::buffer::{Buffer, DeviceHandle};
use crate::capture;
use crate::error::{Error, Result};
use crate::plan::{Plan, PlanKey, PlannedKernel};
use crate::registry;
#[cfg(debug_assertions)]
use crate::replay::Replay;
use crate::replay::{Step, Tracer, Work};
use crate::rewrite::Found;
use ferrograd_ir::lower::{lower, LoweringTarget};
use ferrograd_ir::lower_gpu::lower_gpu;
use ferrograd_ir::schedule::{Kernel, ScheduleItem};
use ferrograd_ir::{BufferHandle, NodeRef, Program};
use std::collections::HashMap;
use std::sync::Arc;

/// Counters of what realizes did (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Kernels launched.
    pub kernels: usize,
    /// Realizes that ran from a replay (`runtime/src/replay.rs`): no scheduling, no lowering.
    pub replayed: usize,
    /// Of those, kernels lowered for the launch (the others launched from a plan:
    /// `runtime/src/plan.rs`).
    pub lowered: usize,
    /// Cross-device copies.
    pub copies: usize,
    /// ALU instructions the launched kernels executed (counted only under [`count_work`]).
    pub alu_ops: u64,
    /// Bytes the launched kernels loaded and stored (counted only under [`count_work`]).
    pub bytes: u64,
}

thread_local! {
    static STATS: std::cell::Cell<Stats> = const {
        std::cell::Cell::new(Stats { kernels: 0, replayed: 0, lowered: 0, copies: 0, alu_ops: 0, bytes: 0 })
    };
    static COUNT_WORK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread's realizes count the ALU instructions and bytes of every launched kernel
/// in [`stats`] ([`ferrograd_ir::work::work`] of its Program; off by default: it walks the
/// Program once per launch).
pub fn count_work(on: bool) {
    COUNT_WORK.with(|c| c.set(on));
}

/// What this thread's realizes did so far.
pub fn stats() -> Stats {
    STATS.with(|s| s.get())
}

fn bump(f: impl FnOnce(&mut Stats)) {
    STATS.with(|s| {
        let mut v = s.get();
        f(&mut v);
        s.set(v);
    });
}

/// Whether the kernel optimizer is on (`FERROGRAD_OPT=0` turns it off).
fn kernel_optimizer_on() -> bool {
    std::env::var("FERROGRAD_OPT")
        .map(|v| v != "0")
        .unwrap_or(true)
}

/// The lowering target for a device ([`crate::Device::lowering_target`]; `FERROGRAD_OPT=0`
/// turns the kernel optimizer off). The e-graph index simplification runs unless the rewrite
/// step is off (`FERROGRAD_EGRAPH=0`, [`crate::rewrite`]); it is not tied to the graph's tier,
/// so the kernels a tiered rewrite leaves alone keep their lowering.
pub fn lowering_target(device: &DeviceHandle) -> LoweringTarget {
    let mut target = device.device().lowering_target(kernel_optimizer_on());
    target.index_egraph &= crate::rewrite::enabled();
    target
}

/// The Program of kernel `k` for `device`: CPU-shaped, or with workgroup reductions where the
/// device runs them.
fn lower_for(device: &DeviceHandle, k: &Kernel) -> Program {
    let target = lowering_target(device);
    match device.device().workgroup_size() {
        Some(local) => lower_gpu(k, &target, local),
        None => lower(k, &target),
    }
}

/// The buffer of kernel input `node`: the one this realize produced, else (a leaf) its own.
fn handle_of(node: &NodeRef, produced: &HashMap<u64, BufferHandle>) -> BufferHandle {
    produced
        .get(&node.id())
        .or_else(|| node.realized())
        .cloned()
        .expect("scheduled inputs are materialized first")
}

/// The Programs that realizing `targets` would run, without running them (for inspection).
pub fn programs(targets: &[NodeRef]) -> Result<Vec<Program>> {
    let Some(found) = crate::rewrite::rewrite(targets) else {
        return Ok(Vec::new());
    };
    let rewritten = found.instantiate(targets);
    let targets = rewritten.as_ref().map_or(targets, |r| &r.targets);
    let mut out = Vec::new();
    for item in found.schedule(targets) {
        if let ScheduleItem::Kernel(k) = item {
            let dev = registry::device(k.output.device())?;
            out.push(lower_for(&dev, &k));
        }
    }
    Ok(out)
}

/// The kernel `k` launches: from `planned` when that was made for this device, else lowered
/// and compiled now.
fn kernel_for(
    dev: &Arc<DeviceHandle>,
    k: &Kernel,
    planned: Option<&PlannedKernel>,
    key: PlanKey,
) -> Result<PlannedKernel> {
    let planned = match planned.filter(|p| Arc::ptr_eq(&p.device, dev)) {
        Some(p) => p.clone(),
        None => crate::plan::kernel(dev, k, key, || {
            let program = lower_for(dev, k);
            let compiled = dev.kernel(&program)?;
            bump(|s| s.lowered += 1);
            Ok(PlannedKernel {
                device: dev.clone(),
                program: Arc::new(program),
                compiled,
            })
        })?,
    };
    debug_assert!(
        *planned.program == lower_for(dev, k),
        "launch plan out of date for kernel {}",
        planned.program.name
    );
    Ok(planned)
}

/// The device of `node`, checked to support the dtypes of `nodes`.
fn device_for(node: &NodeRef, nodes: &[NodeRef]) -> Result<Arc<DeviceHandle>> {
    let dev = registry::device(node.device())?;
    for n in std::iter::once(node).chain(nodes) {
        if !dev.supports(n.dtype()) {
            return Err(Error::UnsupportedDType {
                device: dev.name().to_string(),
                dtype: n.dtype(),
            });
        }
    }
    Ok(dev)
}

/// Allocates a `bytes`-byte output on `dev` and launches `kernel` into it with `inputs`
/// (`None`: an empty output, allocated and not launched).
pub(crate) fn launch(
    dev: &Arc<DeviceHandle>,
    kernel: Option<&PlannedKernel>,
    bytes: usize,
    inputs: &[BufferHandle],
) -> Result<BufferHandle> {
    let out = dev.alloc(bytes)?.into_handle();
    let Some(kernel) = kernel else {
        if capture::is_recording() {
            capture::record_alloc(dev, bytes, &out);
        }
        return Ok(out);
    };
    let mut raws = Vec::with_capacity(inputs.len() + 1);
    raws.push(Buffer::from_handle(&out).raw());
    for h in inputs {
        raws.push(Buffer::from_handle(h).raw());
    }
    if crate::profile::enabled() {
        let start = std::time::Instant::now();
        dev.device().launch(&kernel.compiled, &raws)?;
        dev.device().synchronize()?;
        crate::profile::record(&kernel.program.name, start.elapsed());
    } else {
        dev.device().launch(&kernel.compiled, &raws)?;
    }
    if capture::is_recording() {
        capture::record_kernel(dev, &kernel.compiled, bytes, &out, inputs);
    }
    if COUNT_WORK.with(|c| c.get()) {
        let w = ferrograd_ir::work::work(&kernel.program);
        bump(|s| {
            s.alu_ops += w.alu_ops;
            s.bytes += w.bytes;
        });
    }
    bump_kernels(1);
    Ok(out)
}

/// Counts `n` kernel launches in this thread's [`stats`].
pub(crate) fn bump_kernels(n: usize) {
    bump(|s| s.kernels += n);
}

/// Copies `src` into a new buffer on `dev`.
pub(crate) fn copy(dev: &Arc<DeviceHandle>, src: &BufferHandle) -> Result<BufferHandle> {
    let source = Buffer::from_handle(src);
    let bytes = source.bytes();
    let out = dev.alloc(bytes)?;
    source.copy_to(&out, bytes)?;
    let out = out.into_handle();
    if capture::is_recording() {
        capture::record_copy(dev, bytes, &out, src);
    }
    bump(|s| s.copies += 1);
    Ok(out)
}

/// Computes the values of `targets` and records their buffers on the nodes
/// ([`ferrograd_ir::Node::realized`]). Intermediate materialized nodes keep their buffers too.
/// The graph is first rewritten by the e-graph optimizer ([`crate::rewrite`]); a structure
/// realized before runs from its launch plan's replay (`runtime/src/replay.rs`).
pub fn realize(targets: &[NodeRef]) -> Result<()> {
    let Some(found) = crate::rewrite::rewrite(targets) else {
        return Ok(());
    };
    let key = PlanKey {
        rewritten: found.template.is_some(),
        optimize: kernel_optimizer_on(),
        index_egraph: crate::rewrite::enabled(),
    };
    let plan = found.plans.get(key);
    if let Some(replay) = plan.as_ref().and_then(|p| p.replay.as_ref()) {
        #[cfg(debug_assertions)]
        check_replay(replay, &found, targets, key);
        if replay.run(&found.nodes, &found.leaves)? {
            bump(|s| s.replayed += 1);
            return Ok(());
        }
    }
    let rewritten = found.instantiate(targets);
    let graph = rewritten.as_ref().map_or(targets, |r| &r.targets);
    let traced = realize_scheduled(&found, graph, plan.as_deref(), key)?;
    if let Some(rewritten) = &rewritten {
        rewritten.record_on_originals();
    }
    if let Some((kernels, tracer, produced)) = traced {
        let replay = tracer.finish(&found.nodes, &found.leaves, &produced);
        found.plans.insert(key, Plan { kernels, replay });
    }
    Ok(())
}

/// Debug builds: the replay about to run is the one the plain path would trace now (same
/// steps, sources and Programs).
#[cfg(debug_assertions)]
fn check_replay(replay: &Replay, found: &Found, targets: &[NodeRef], key: PlanKey) {
    let rewritten = found.instantiate(targets);
    let graph = rewritten.as_ref().map_or(targets, |r| &r.targets);
    let items = found.schedule(graph);
    assert_eq!(items.len(), replay.steps.len(), "replay out of date");
    let mut tracer = Tracer::new(&found.leaves);
    for (item, step) in items.iter().zip(&replay.steps) {
        let inputs = match item {
            ScheduleItem::Kernel(k) => {
                if let Work::Kernel(Some(planned)) = &step.work {
                    assert!(
                        *planned.program == lower_for(&step.device, k),
                        "replayed kernel {} out of date (key {key:?})",
                        planned.program.name
                    );
                }
                k.inputs.clone()
            }
            ScheduleItem::Copy { src, .. } => vec![src.clone()],
        };
        tracer.step(item.output(), step.clone(), &inputs);
    }
    let traced: Vec<_> = tracer.steps().iter().map(|s| &s.inputs).collect();
    let replayed: Vec<_> = replay.steps.iter().map(|s| &s.inputs).collect();
    assert_eq!(traced, replayed, "replay inputs out of date");
}

/// The launch plan's kernels of a realize, its tracer and the buffers its steps made.
type Traced = (Vec<Option<PlannedKernel>>, Tracer, Vec<BufferHandle>);

/// Schedules `graph` as it is over `found`'s leaves and runs the schedule, launching kernels
/// from `plan` when it fits the schedule; when no plan was given, returns this schedule's
/// kernels and its trace (over those leaves) for a new plan.
fn realize_scheduled(
    found: &Found,
    graph: &[NodeRef],
    plan: Option<&Plan>,
    key: PlanKey,
) -> Result<Option<Traced>> {
    let items = found.schedule(graph);
    let plan = plan.filter(|p| p.kernels.len() == items.len());
    let mut made = plan.is_none().then(|| {
        (
            Vec::with_capacity(items.len()),
            Tracer::new(&found.leaves),
            Vec::with_capacity(items.len()),
        )
    });
    let mut produced: HashMap<u64, BufferHandle> = HashMap::new();
    let _span = tracing::debug_span!("realize", items = items.len()).entered();
    for (i, item) in items.iter().enumerate() {
        let (handle, dev, work, bytes, inputs) = match item {
            ScheduleItem::Kernel(k) => {
                let dev = device_for(&k.output, &k.inputs)?;
                let bytes = k.output.numel() * k.output.dtype().size();
                let kernel = if k.output.numel() == 0 {
                    None
                } else {
                    let planned = plan.and_then(|p| p.kernels[i].as_ref());
                    Some(kernel_for(&dev, k, planned, key)?)
                };
                let inputs: Vec<BufferHandle> =
                    k.inputs.iter().map(|n| handle_of(n, &produced)).collect();
                let out = launch(&dev, kernel.as_ref(), bytes, &inputs)?;
                (out, dev, Work::Kernel(kernel), bytes, &k.inputs[..])
            }
            ScheduleItem::Copy { output, src } => {
                let dev = registry::device(output.device())?;
                let src_handle = handle_of(src, &produced);
                let bytes = Buffer::from_handle(&src_handle).bytes();
                let out = copy(&dev, &src_handle)?;
                (out, dev, Work::Copy, bytes, std::slice::from_ref(src))
            }
        };
        if let Some((kernels, tracer, made_buffers)) = &mut made {
            kernels.push(match &work {
                Work::Kernel(k) => k.clone(),
                Work::Copy => None,
            });
            let step = Step {
                device: dev,
                work,
                bytes,
                inputs: Vec::new(),
            };
            tracer.step(item.output(), step, inputs);
            made_buffers.push(handle.clone());
        }
        item.output().set_realized(handle.clone());
        produced.insert(item.output().id(), handle);
    }
    Ok(made)
}

/// Uploads host bytes as a new buffer on `device`.
pub fn upload(device: &Arc<DeviceHandle>, bytes: &[u8]) -> Result<BufferHandle> {
    let buf = device.alloc(bytes.len())?;
    buf.write(bytes)?;
    Ok(buf.into_handle())
}

/// Downloads a realized node's bytes.
pub fn download(node: &NodeRef) -> Result<Vec<u8>> {
    if node.realized().is_none() {
        realize(std::slice::from_ref(node))?;
    }
    let h = node.realized().expect("realized above");
    let mut bytes = Buffer::from_handle(h).read()?;
    bytes.truncate(node.numel() * node.dtype().size());
    Ok(bytes)
}
