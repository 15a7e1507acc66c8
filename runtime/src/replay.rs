//! Replays: a structure's schedule by positions, so a realize of a structure that has a launch
//! plan (`runtime/src/plan.rs`) runs straight from the graph's leaves. It skips scheduling,
//! instantiating the rewritten graph and recording its buffers on the caller's nodes: the
//! host cost of a steady training step is then the same with the e-graph on or off, and the
//! rewrite's fewer kernels and bytes are a net gain.
//!
//! A replay is traced from the first realize of a plan ([`Tracer`]): every schedule step's
//! inputs are named by where their buffers came from (a leaf slot of the structure or an
//! earlier step), and every node of the caller's graph that ended up with a buffer of this
//! realize is named with its source. The schedule is a function of the structure (the
//! scheduler looks at ops, shapes, devices and which nodes are realized, never at buffers), so
//! every graph of that structure runs the same steps; debug builds check that on every
//! replay. A realize whose buffers cannot all be named (a kernel reading a hash-consed node
//! that an unrelated earlier realize left realized) gets no replay and keeps the plain path.

use crate::buffer::DeviceHandle;
use crate::error::Result;
use crate::plan::PlannedKernel;
use crate::realize::{copy, launch};
use crate::registry;
use ferrograd_ir::{BufferHandle, NodeRef};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Where a buffer of a replayed realize comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The leaf of this slot of the structure.
    Leaf(u32),
    /// The output of this earlier step.
    Step(u32),
}

/// What one step runs.
#[derive(Clone)]
pub(crate) enum Work {
    /// A kernel (`None`: an empty output, allocated and not launched).
    Kernel(Option<PlannedKernel>),
    /// A copy of the single input to this step's device.
    Copy,
}

/// One step of a replay.
#[derive(Clone)]
pub(crate) struct Step {
    /// The device the output lives on.
    pub device: Arc<DeviceHandle>,
    /// What the step runs.
    pub work: Work,
    /// Bytes of its output.
    pub bytes: usize,
    /// Its inputs, in parameter order.
    pub inputs: Vec<Source>,
}

/// A realize of one structure as steps over positions.
pub(crate) struct Replay {
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// Positions of the caller's graph ([`ferrograd_ir::rewrite::Lifted::nodes`]) that receive
    /// a buffer, with its source.
    pub records: Vec<(u32, Source)>,
}

/// Traces the steps of a realize into a [`Replay`].
pub(crate) struct Tracer {
    /// Leaf slot by node id.
    leaves: FxHashMap<u64, u32>,
    /// Step index by the id of the node it materialized.
    outputs: FxHashMap<u64, u32>,
    steps: Vec<Step>,
    /// False once a step read a buffer that is neither a leaf nor an earlier step's.
    complete: bool,
}

impl Tracer {
    /// A tracer for a graph with these leaves (by slot).
    pub fn new(leaves: &[NodeRef]) -> Tracer {
        Tracer {
            leaves: leaves
                .iter()
                .enumerate()
                .map(|(slot, n)| (n.id(), slot as u32))
                .collect(),
            outputs: FxHashMap::default(),
            steps: Vec::new(),
            complete: true,
        }
    }

    fn source(&self, node: &NodeRef) -> Option<Source> {
        self.outputs
            .get(&node.id())
            .map(|&s| Source::Step(s))
            .or_else(|| self.leaves.get(&node.id()).map(|&s| Source::Leaf(s)))
    }

    /// Notes the step that materialized `output` from `inputs`.
    pub fn step(&mut self, output: &NodeRef, step: Step, inputs: &[NodeRef]) {
        let Some(sources) = inputs.iter().map(|n| self.source(n)).collect() else {
            self.complete = false;
            return;
        };
        self.outputs.insert(output.id(), self.steps.len() as u32);
        self.steps.push(Step {
            inputs: sources,
            ..step
        });
    }

    /// The steps traced so far (debug builds check replays against them).
    #[cfg(debug_assertions)]
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The replay, given the caller's graph by position after the realize (`None` when some
    /// buffer could not be named). `produced` are the buffers the steps made, in order, and
    /// `leaves` the graph's leaves by slot.
    pub fn finish(
        self,
        nodes: &[NodeRef],
        leaves: &[NodeRef],
        produced: &[BufferHandle],
    ) -> Option<Replay> {
        if !self.complete || produced.len() != self.steps.len() {
            return None;
        }
        let mut by_buffer: FxHashMap<u64, Source> = FxHashMap::default();
        for (slot, leaf) in leaves.iter().enumerate() {
            if let Some(b) = leaf.realized() {
                by_buffer.insert(b.id(), Source::Leaf(slot as u32));
            }
        }
        for (i, b) in produced.iter().enumerate() {
            by_buffer.insert(b.id(), Source::Step(i as u32));
        }
        let mut records = Vec::new();
        for (pos, node) in nodes.iter().enumerate() {
            if self.leaves.contains_key(&node.id()) {
                continue;
            }
            if let Some(b) = node.realized() {
                records.push((pos as u32, *by_buffer.get(&b.id())?));
            }
        }
        Some(Replay {
            steps: self.steps,
            records,
        })
    }
}

impl Replay {
    /// Runs the steps on `leaves` (by slot) and records the buffers on `nodes` (the caller's
    /// graph by position). `Ok(false)`, having run nothing, when a device of the replay is no
    /// longer the one registered under its name.
    pub fn run(&self, nodes: &[NodeRef], leaves: &[NodeRef]) -> Result<bool> {
        let mut checked: Vec<&Arc<DeviceHandle>> = Vec::new();
        for step in &self.steps {
            if checked.iter().any(|d| Arc::ptr_eq(d, &step.device)) {
                continue;
            }
            match registry::device(step.device.name()) {
                Ok(current) if Arc::ptr_eq(&current, &step.device) => checked.push(&step.device),
                _ => return Ok(false),
            }
        }
        let mut produced: Vec<BufferHandle> = Vec::with_capacity(self.steps.len());
        let mut args: Vec<BufferHandle> = Vec::new();
        for step in &self.steps {
            args.clear();
            args.extend(step.inputs.iter().map(|&s| buffer(s, leaves, &produced)));
            let out = match &step.work {
                Work::Kernel(kernel) => launch(&step.device, kernel.as_ref(), step.bytes, &args)?,
                Work::Copy => copy(&step.device, &args[0])?,
            };
            produced.push(out);
        }
        for &(pos, source) in &self.records {
            nodes[pos as usize].set_realized(buffer(source, leaves, &produced));
        }
        Ok(true)
    }
}

/// The buffer `source` names.
fn buffer(source: Source, leaves: &[NodeRef], produced: &[BufferHandle]) -> BufferHandle {
    match source {
        Source::Leaf(slot) => leaves[slot as usize]
            .realized()
            .cloned()
            .expect("leaves are realized"),
        Source::Step(i) => produced[i as usize].clone(),
    }
}
