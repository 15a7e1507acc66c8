//! Launch plans: the lowered and compiled kernels of a scheduled graph, kept with its
//! structure in the rewrite step's structure cache ([`crate::rewrite`]). A graph realized again
//! on new buffers (the step of a training or inference loop) has the same structure, hence the
//! same schedule; its kernels then launch from the plan, without lowering each kernel and
//! hashing its Program again.
//!
//! A plan belongs to one way of realizing the structure ([`PlanKey`]: as built or rewritten,
//! and the lowering options), so a tiered rewrite or an `FERROGRAD_OPT` change makes a new one.
//! Debug builds lower every planned kernel anyway and check the plan against it.

use crate::buffer::DeviceHandle;
use crate::device::CompiledKernel;
use ferrograd_ir::Program;
use parking_lot::Mutex;
use std::sync::Arc;

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
pub(crate) struct PlannedKernel {
    /// The device it was compiled for (a device registered again under the same name is not
    /// this one: the kernel is then lowered afresh).
    pub device: Arc<DeviceHandle>,
    /// Its Program (for the profile's names and work counts).
    pub program: Arc<Program>,
    /// The compiled kernel.
    pub compiled: CompiledKernel,
}

/// The kernels of one schedule, by schedule position (`None` for copies and empty outputs).
pub(crate) struct Plan {
    pub kernels: Vec<Option<PlannedKernel>>,
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
