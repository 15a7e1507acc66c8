//! Launch plans: the lowered and compiled kernels of a scheduled graph, kept with its
//! structure in the rewrite step's structure cache ([`crate::rewrite`]). A graph realized again
//! on new buffers (the step of a training or inference loop) has the same structure, hence the
//! same schedule; its kernels then launch from the plan, without lowering each kernel and
//! hashing its Program again.
//!
//! A plan belongs to one way of realizing the structure ([`PlanKey`]: as built or rewritten,
//! and the lowering options), so a tiered rewrite or an `FERROGRAD_OPT` change makes a new one.
//! Debug builds lower every planned kernel anyway and check the plan against it.
//!
//! A plan for a new structure (the first steps of a loop, whose graphs differ while optimizer
//! state is still constant; the switch to the rewritten graph in tiered mode) takes each kernel
//! from a second cache keyed by the kernel's own structure ([`kernel`]), so only kernels no
//! earlier graph had are lowered.

use crate::buffer::DeviceHandle;
use crate::device::CompiledKernel;
use crate::error::Result;
use crate::replay::Replay;
use ferrograd_ir::rewrite::canonical::compose_permutes;
use ferrograd_ir::rewrite::{Lifted, Structure};
use ferrograd_ir::schedule::Kernel;
use ferrograd_ir::Program;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::{Arc, OnceLock};

/// What a plan was made for, besides the graph's structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanKey {
    /// The rewritten graph was scheduled (not the caller's).
    pub rewritten: bool,
    /// The kernel optimizer was on (`FERROGRAD_OPT`).
    pub optimize: bool,
    /// Load indices went through the index e-graph.
    pub index_egraph: bool,
}

/// One kernel of a plan.
#[derive(Clone)]
pub(crate) struct PlannedKernel {
    /// The device it was compiled for (a device registered again under the same name is not
    /// this one: the kernel is then lowered afresh).
    pub device: Arc<DeviceHandle>,
    /// Its Program (for the profile's names and work counts).
    pub program: Arc<Program>,
    /// The compiled kernel.
    pub compiled: CompiledKernel,
}

/// The kernels of one schedule, by schedule position (`None` for copies and empty outputs),
/// and its replay.
pub(crate) struct Plan {
    pub kernels: Vec<Option<PlannedKernel>>,
    /// The schedule by positions, where every buffer of the realize that made the plan could
    /// be named (`runtime/src/replay.rs`).
    pub replay: Option<Replay>,
}

/// The plans of one structure (a few at most).
#[derive(Default)]
pub(crate) struct Plans(Mutex<Vec<(PlanKey, Arc<Plan>)>>);

impl Plans {
    pub(crate) fn get(&self, key: PlanKey) -> Option<Arc<Plan>> {
        let plans = self.0.lock();
        plans
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
    }

    pub(crate) fn insert(&self, key: PlanKey, plan: Plan) {
        let mut plans = self.0.lock();
        if !plans.iter().any(|(k, _)| *k == key) {
            plans.push((key, Arc::new(plan)));
        }
    }
}

/// Kernels kept at most by [`kernel`]; the cache is emptied when it is full.
const KERNEL_CACHE_CAPACITY: usize = 8192;

/// A kernel's graph down to its inputs (permute chains composed: `compose_permutes`, so the
/// kernels a tiered rewrite changed only by folding permute pairs are not lowered again), the
/// positions of its inputs (in parameter order) and of its fused reduction in that graph, the
/// device (its handle's address: the entry holds the handle, so the address is not reused
/// while it exists) and the lowering options.
type KernelKey = (Structure, Vec<u32>, Option<u32>, usize, bool, bool);

fn kernel_cache() -> &'static Mutex<FxHashMap<KernelKey, PlannedKernel>> {
    static CACHE: OnceLock<Mutex<FxHashMap<KernelKey, PlannedKernel>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The cache key of kernel `k` on the device at address `device` with the options of `key`;
/// `None` when an input is not below the output (the kernel is then never cached).
fn kernel_key(device: usize, k: &Kernel, key: PlanKey) -> Option<KernelKey> {
    // Down to the scheduled inputs, as the lowering reads it: a node the kernel computes stays
    // in the key even when another thread has realized it since (interned nodes are shared).
    let lifted = Lifted::with_leaves(std::slice::from_ref(&k.output), |n| {
        k.inputs.iter().any(|i| i.id() == n.id())
    });
    let (structure, canonical) = compose_permutes(&lifted.structure);
    let position = |node: &ferrograd_ir::NodeRef| {
        lifted
            .nodes
            .iter()
            .position(|n| n.id() == node.id())
            .and_then(|p| canonical[p])
    };
    let inputs = k
        .inputs
        .iter()
        .map(position)
        .collect::<Option<Vec<u32>>>()?;
    let reduce = k.reduce.as_ref().and_then(position);
    Some((
        structure,
        inputs,
        reduce,
        device,
        key.optimize,
        key.index_egraph,
    ))
}

/// The lowered and compiled kernel `k` on `device` (whose inputs are realized) with the
/// options of `key`: from the cache when a kernel with the same structure was lowered
/// before, else from `lower`.
pub(crate) fn kernel(
    device: &Arc<DeviceHandle>,
    k: &Kernel,
    key: PlanKey,
    lower: impl FnOnce() -> Result<PlannedKernel>,
) -> Result<PlannedKernel> {
    let Some(cache_key) = kernel_key(Arc::as_ptr(device) as usize, k, key) else {
        return lower();
    };
    if let Some(hit) = kernel_cache().lock().get(&cache_key) {
        return Ok(hit.clone());
    }
    let planned = lower()?;
    let mut cache = kernel_cache().lock();
    if cache.len() >= KERNEL_CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(cache_key, planned.clone());
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrograd_ir::schedule::{schedule, ScheduleItem};
    use ferrograd_ir::{BinaryOp, BufferHandle, DType, Node, Scalar};

    /// The kernel `contiguous(0 * beta + (1 - beta))` (an optimizer's first bias correction),
    /// whose fused node another thread realizes between the schedule and the lowering.
    fn bias_correction_kernel(beta: f64) -> Kernel {
        let cpu: Arc<str> = Arc::from("cpu");
        let c = |v: f64| Node::constant(Scalar::Float(v), DType::F32, &[], &cpu);
        let bias = Node::binary(
            BinaryOp::Add,
            &Node::binary(BinaryOp::Mul, &c(0.0), &c(beta)),
            &c(1.0 - beta),
        );
        let items = schedule(&[Node::contiguous(&bias)]);
        let [ScheduleItem::Kernel(k)] = &items[..] else {
            panic!("one kernel expected, got {items:?}");
        };
        assert!(k.inputs.is_empty(), "the bias is computed, not read");
        bias.set_realized(BufferHandle::new(Arc::new(())));
        k.clone()
    }

    /// Two kernels computing different constants never share a cache entry, even when the
    /// nodes they compute were realized meanwhile (the hash-consed bias corrections of two
    /// concurrent training loops: one took the other's Program and stored 0.1 for 0.001).
    #[test]
    fn a_kernel_key_reaches_down_to_the_scheduled_inputs_only() {
        let key = PlanKey {
            rewritten: false,
            optimize: true,
            index_egraph: true,
        };
        let keys = [0.8125, 0.96875].map(|beta| kernel_key(0, &bias_correction_kernel(beta), key));
        assert!(keys[0].is_some());
        assert_ne!(keys[0], keys[1]);
    }
}
