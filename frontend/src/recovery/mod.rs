//! Surviving lost workers in any graph: a [`Recovery`] realizes tensors and, when a worker is
//! lost (before or during the realize), moves the lost device's part of the graph to a
//! surviving device and retries, recomputing what was lost from its lineage.
//!
//! Lineage comes from two places. The graph itself: a node that is not realized, or was
//! realized on the lost device, is recomputed from its op and sources ([`ferrograd_ir::relocate()`]).
//! And the [`Recovery`]'s own record for buffer leaves, which a realize cuts off from the graph
//! that made them: every tensor realized through a `Recovery` keeps the expression it is the
//! value of, and [`Recovery::upload`] / [`Recovery::checkpoint`] keep a host copy instead. A
//! buffer that lived only on a lost worker with neither is a [`RecoveryError::NoLineage`],
//! never a wrong answer or a hang.
//!
//! Cost: a kept expression keeps its graph and the intermediate buffers realized with it alive
//! for as long as the realized tensor lives (work that survived is then not redone);
//! [`Recovery::checkpoint`] trades that for a host copy of the value (long chains, such as a
//! training loop's parameters, should be checkpointed).

mod lineage;
pub(crate) mod lost;

use crate::element::{to_bytes, Element};
use crate::{ShardedTensor, Tensor};
use ferrograd_ir::{relocate, toposort, DType, Leaf, Node, NodeRef, Op};
use lineage::{Lineage, LineageStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a [`Recovery`] could not realize its targets.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// A failure that was not (or not only) a lost worker, or a loss that kept recurring.
    #[error(transparent)]
    Runtime(#[from] ferrograd_runtime::Error),
    /// A buffer the targets need lived only on a lost device and nothing says how to make it
    /// again (it was uploaded without a host copy and realized outside any `Recovery`).
    #[error(
        "buffer %{node} ({dtype}{shape:?}) lived only on lost device `{device}` and has no \
         lineage or host copy to recompute it from"
    )]
    NoLineage {
        /// The graph node id of the buffer leaf.
        node: u64,
        /// Its element type.
        dtype: DType,
        /// Its shape.
        shape: Vec<usize>,
        /// The lost device it lived on.
        device: String,
    },
    /// Every device the work could move to was lost.
    #[error("no surviving device to recompute on; lost: {lost:?}")]
    NoSurvivor {
        /// The lost devices.
        lost: Vec<String>,
    },
}

/// How many times one realize moves work off lost devices before giving up (each retry needs
/// another worker to be lost).
const MAX_RECOVERIES: usize = 8;

/// Realizes tensors so that a lost worker costs a recompute on the survivors, not the job
/// (see the module docs).
pub struct Recovery {
    /// Devices to move lost work onto, in order of preference.
    preferred: Vec<Arc<str>>,
    lineage: LineageStore,
    recoveries: AtomicUsize,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery::new()
    }
}

impl Recovery {
    /// Lost work moves to a surviving device of the graph being realized or of the lineage
    /// it is recomputed from (remote devices first), else to the default device.
    pub fn new() -> Recovery {
        Recovery {
            preferred: Vec::new(),
            lineage: LineageStore::new(),
            recoveries: AtomicUsize::new(0),
        }
    }

    /// Lost work moves to the first surviving device of `devices`, then as with
    /// [`Recovery::new`]. An unknown device is an error.
    pub fn onto(devices: &[&str]) -> crate::Result<Recovery> {
        let mut preferred = Vec::with_capacity(devices.len());
        for d in devices {
            preferred.push(crate::device::canonical_device(d)?);
        }
        Ok(Recovery {
            preferred,
            ..Recovery::new()
        })
    }

    /// How many times work was moved off lost devices so far.
    pub fn recoveries(&self) -> usize {
        self.recoveries.load(Ordering::Relaxed)
    }

    /// Number of live buffers whose lineage this `Recovery` keeps.
    pub fn tracked(&self) -> usize {
        self.lineage.len()
    }

    /// A tensor of `data` on `device`, with a host copy kept so it can be uploaded again
    /// elsewhere if `device` is lost. Panics if `data` does not fill `shape`.
    pub fn upload<T: Element>(
        &self,
        data: &[T],
        shape: &[usize],
        device: &str,
    ) -> crate::Result<Tensor> {
        let bytes: Arc<[u8]> = to_bytes(data).into();
        let name = crate::device::canonical_device(device)?;
        let t = Tensor::try_from_bytes_on(&bytes, T::DTYPE, shape, &name)?;
        self.lineage.record(&t.node(), Lineage::Host(bytes));
        Ok(t)
    }

    /// Realizes `t` and keeps a host copy of its value as its lineage (dropping the graph
    /// kept for it, if any).
    pub fn checkpoint(&self, t: &Tensor) -> Result<(), RecoveryError> {
        self.realize(std::slice::from_ref(t))?;
        let bytes: Arc<[u8]> = t.to_bytes()?.into();
        self.lineage.record(&t.node(), Lineage::Host(bytes));
        Ok(())
    }

    /// Realizes `tensors` in one schedule like [`Tensor::realize_all`]; when workers are
    /// lost, moves their part of the graph to a survivor and retries (see the module docs).
    /// The tensors then hold buffers on the devices that computed them.
    pub fn realize(&self, tensors: &[Tensor]) -> Result<(), RecoveryError> {
        let originals: Vec<NodeRef> = tensors.iter().map(Tensor::node).collect();
        let mut nodes = originals.clone();
        let mut recovered = 0;
        loop {
            nodes = self.relocate_lost(&nodes)?;
            let error = match ferrograd_runtime::realize(&nodes) {
                Ok(()) => {
                    self.commit(tensors, &originals, &nodes);
                    return Ok(());
                }
                Err(e) => e,
            };
            let devices = graph_devices(&nodes);
            let lost = lost::wait_for_lost(devices.iter().map(|d| &**d));
            if lost.is_empty() || recovered == MAX_RECOVERIES {
                return Err(error.into());
            }
            recovered += 1;
            tracing::warn!(?lost, %error, "recovery: a realize met lost workers");
        }
    }

    /// The elements of `t` (realized through this `Recovery`), read again from a recomputed
    /// value if its device is lost between the realize and the read.
    pub fn to_vec<T: Element>(&self, t: &Tensor) -> Result<Vec<T>, RecoveryError> {
        let mut tries = 0;
        loop {
            self.realize(std::slice::from_ref(t))?;
            match t.to_vec::<T>() {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let device = t.device();
                    if tries == MAX_RECOVERIES || lost::wait_for_lost([&*device]).is_empty() {
                        return Err(e.into());
                    }
                    tries += 1;
                }
            }
        }
    }

    /// Every part of `sharded` realized as by [`Recovery::realize`]; parts of lost devices
    /// end up on survivors.
    pub fn realize_sharded(&self, sharded: &ShardedTensor) -> Result<(), RecoveryError> {
        self.realize(sharded.parts())
    }

    /// `nodes` with the part of their graph on lost devices moved to a survivor.
    fn relocate_lost(&self, nodes: &[NodeRef]) -> Result<Vec<NodeRef>, RecoveryError> {
        let devices = graph_devices(nodes);
        let lost: Vec<String> = devices
            .iter()
            .filter(|d| lost::device_lost(d))
            .map(|d| d.to_string())
            .collect();
        if lost.is_empty() {
            return Ok(nodes.to_vec());
        }
        let survivor = self
            .survivor(&self.candidate_devices(nodes))
            .ok_or_else(|| RecoveryError::NoSurvivor { lost: lost.clone() })?;
        self.recoveries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(?lost, %survivor, "recovery: moving lost work to a survivor");
        let moved = |d: &str| lost::device_lost(d).then(|| survivor.clone());
        relocate(nodes, moved, |leaf, to| self.remake(leaf, to))
    }

    /// The devices of what relocating `nodes` would visit: the graph down to realized nodes,
    /// through nodes realized on lost devices (they are rebuilt) and into the lineage of lost
    /// buffer leaves; in first-seen order.
    fn candidate_devices(&self, nodes: &[NodeRef]) -> Vec<Arc<str>> {
        let mut devices: Vec<Arc<str>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<NodeRef> = nodes.to_vec();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.id()) {
                continue;
            }
            if !devices.contains(n.device()) {
                devices.push(n.device().clone());
            }
            let lost = lost::device_lost(n.device());
            if matches!(n.op(), Op::Buffer(_)) {
                if let (true, Some(Lineage::Expr(e))) = (lost, self.lineage.get(&n)) {
                    stack.push(e);
                }
            } else if lost || n.realized().is_none() {
                stack.extend(n.src().iter().cloned());
            }
        }
        devices
    }

    /// Where lost work goes: the first surviving preferred device, else a surviving remote
    /// device of the graph or its lineage, else another of their devices, else the default
    /// device.
    fn survivor(&self, graph: &[Arc<str>]) -> Option<Arc<str>> {
        let remote = graph.iter().filter(|d| d.starts_with("remote:"));
        let local = graph.iter().filter(|d| !d.starts_with("remote:"));
        self.preferred
            .iter()
            .chain(remote)
            .chain(local)
            .cloned()
            .chain(std::iter::once(crate::device::default_device_name()))
            .find(|d| !lost::device_lost(d))
    }

    /// What stands for buffer leaf `leaf` of a lost device on device `to`.
    fn remake(&self, leaf: &NodeRef, to: &Arc<str>) -> Result<Leaf, RecoveryError> {
        match self.lineage.get(leaf) {
            Some(Lineage::Expr(expr)) => Ok(Leaf::Recompute(expr)),
            Some(Lineage::Host(bytes)) => {
                let device = ferrograd_runtime::device(to)?;
                let handle = ferrograd_runtime::upload(&device, &bytes)?;
                let node = Node::buffer(handle, leaf.dtype(), leaf.shape(), device.name());
                self.lineage.record(&node, Lineage::Host(bytes));
                Ok(Leaf::Replace(node))
            }
            None => Err(RecoveryError::NoLineage {
                node: leaf.id(),
                dtype: leaf.dtype(),
                shape: leaf.shape().to_vec(),
                device: leaf.device().to_string(),
            }),
        }
    }

    /// Points each tensor at its realized value (a buffer leaf whose lineage is the
    /// expression), unless the tensor was changed meanwhile.
    fn commit(&self, tensors: &[Tensor], originals: &[NodeRef], nodes: &[NodeRef]) {
        for ((t, original), n) in tensors.iter().zip(originals).zip(nodes) {
            let Some(handle) = n.realized() else {
                continue;
            };
            let leaf = if matches!(n.op(), Op::Buffer(_)) {
                n.clone()
            } else {
                let leaf = Node::buffer(handle.clone(), n.dtype(), n.shape(), n.device());
                self.lineage.record(&leaf, Lineage::Expr(n.clone()));
                leaf
            };
            let mut state = t.state.write();
            if Arc::ptr_eq(&state.node, original) {
                state.node = leaf;
            }
        }
    }
}

/// The devices of the graph behind `nodes` (down to realized nodes), in first-seen order.
fn graph_devices(nodes: &[NodeRef]) -> Vec<Arc<str>> {
    let mut devices: Vec<Arc<str>> = Vec::new();
    for n in toposort(nodes) {
        if !devices.contains(n.device()) {
            devices.push(n.device().clone());
        }
    }
    devices
}

impl Tensor {
    /// Realizes this tensor through `recovery`, surviving lost workers (see
    /// [`crate::recovery`]).
    pub fn realize_resilient(&self, recovery: &Recovery) -> Result<&Tensor, RecoveryError> {
        recovery.realize(std::slice::from_ref(self))?;
        Ok(self)
    }
}
