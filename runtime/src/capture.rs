//! Capture and replay of realizes: the runtime half of JIT replay (`ferrograd::jit`).
//!
//! While a [`record`] closure runs, every step that [`crate::realize()`] performs on this thread
//! (a kernel launch, a cross-device copy, or the allocation of an empty output) is recorded
//! with the buffer it wrote and the buffers it read. [`Plan::new`] turns the recording into a
//! replayable plan by classifying every buffer a step reads as the output of an earlier step,
//! an input, a piece of state, or an external buffer that does not change between replays
//! (see [`Source`]). [`Plan::run`] then reruns the steps on new input and state buffers without
//! building a graph, scheduling, lowering or hashing a Program.
//!
//! Buffer plan: a step whose output leaves the replay (a result: an output or a state's new
//! value) gets a fresh buffer from the device pool on every replay, so a value handed out by
//! one replay is never overwritten by the next; every other step writes one buffer allocated
//! when the plan is built and reused by every replay. A step therefore never reads the buffer
//! it writes.

use crate::buffer::{Buffer, DeviceHandle};
use crate::device::{CompiledKernel, RawBuffer};
use crate::error::Result;
use ferrograd_ir::BufferHandle;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// What one recorded step does.
#[derive(Clone)]
enum Work {
    /// Launch a compiled kernel with the output followed by the arguments.
    Kernel(CompiledKernel),
    /// Copy the single argument's bytes into the output (a cross-device copy).
    Copy,
    /// Nothing to compute (an empty output): only the buffer exists.
    Alloc,
}

/// One step as recorded during a capture.
struct Recorded {
    device: Arc<DeviceHandle>,
    work: Work,
    bytes: usize,
    out: BufferHandle,
    args: Vec<BufferHandle>,
}

thread_local! {
    static RECORDING: RefCell<Option<Vec<Recorded>>> = const { RefCell::new(None) };
}

/// True while this thread records.
pub(crate) fn is_recording() -> bool {
    RECORDING.with(|r| r.borrow().is_some())
}

fn push(step: Recorded) {
    RECORDING.with(|r| {
        if let Some(steps) = r.borrow_mut().as_mut() {
            steps.push(step);
        }
    });
}

/// Records a kernel launch (called by realize while recording).
pub(crate) fn record_kernel(
    device: &Arc<DeviceHandle>,
    kernel: &CompiledKernel,
    bytes: usize,
    out: &BufferHandle,
    args: &[BufferHandle],
) {
    push(Recorded {
        device: device.clone(),
        work: Work::Kernel(kernel.clone()),
        bytes,
        out: out.clone(),
        args: args.to_vec(),
    });
}

/// Records a cross-device copy of `src` into `out`.
pub(crate) fn record_copy(
    device: &Arc<DeviceHandle>,
    bytes: usize,
    out: &BufferHandle,
    src: &BufferHandle,
) {
    push(Recorded {
        device: device.clone(),
        work: Work::Copy,
        bytes,
        out: out.clone(),
        args: vec![src.clone()],
    });
}

/// Records the allocation of an empty output.
pub(crate) fn record_alloc(device: &Arc<DeviceHandle>, bytes: usize, out: &BufferHandle) {
    push(Recorded {
        device: device.clone(),
        work: Work::Alloc,
        bytes,
        out: out.clone(),
        args: Vec::new(),
    });
}

/// The steps realizes performed during [`record`], in order.
pub struct Recording {
    steps: Vec<Recorded>,
}

/// Ends the recording when dropped, also when the recorded closure panics.
struct RecordGuard;

impl Drop for RecordGuard {
    fn drop(&mut self) {
        RECORDING.with(|r| r.borrow_mut().take());
    }
}

/// Runs `f`, recording every step the realizes inside it perform on this thread. Panics if
/// called while already recording.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Recording) {
    RECORDING.with(|r| {
        let mut r = r.borrow_mut();
        assert!(r.is_none(), "capture: already recording on this thread");
        *r = Some(Vec::new());
    });
    let guard = RecordGuard;
    let result = f();
    let steps = RECORDING
        .with(|r| r.borrow_mut().take())
        .expect("recording started above");
    drop(guard);
    (result, Recording { steps })
}

/// Where a buffer that a replayed step reads, or a result of the replay, comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The output of step `k` of this replay.
    Step(usize),
    /// The buffer of input `i` of the replay.
    Input(usize),
    /// The buffer state `j` holds when the replay starts.
    State(usize),
    /// A buffer that is the same in every replay (a constant uploaded before the capture).
    External(BufferHandle),
}

/// One step of a [`Plan`].
struct PlanStep {
    device: Arc<DeviceHandle>,
    work: Work,
    bytes: usize,
    args: Vec<Source>,
}

/// A recording turned into something that reruns on new inputs and state.
pub struct Plan {
    steps: Vec<PlanStep>,
    /// The buffer each step writes in the current replay (persistent for internal steps).
    current: Vec<Option<BufferHandle>>,
    /// Steps whose output is a result: they get a fresh buffer every replay.
    escaping: Vec<usize>,
    /// Most arguments of any kernel, plus its output.
    max_params: usize,
    kernels: usize,
}

impl Plan {
    /// Builds a plan from `recording`. `inputs` and `state` are the buffers the capture's
    /// inputs and state held when the recording started (they must be distinct buffers);
    /// `results` are the buffers the capture handed out (outputs, new state values). Returns
    /// the plan and where each result comes from. Allocates the internal buffers.
    pub fn new(
        recording: Recording,
        inputs: &[BufferHandle],
        state: &[BufferHandle],
        results: &[BufferHandle],
    ) -> Result<(Plan, Vec<Source>)> {
        let mut known: HashMap<u64, Source> = HashMap::new();
        for (j, h) in state.iter().enumerate() {
            let prev = known.insert(h.id(), Source::State(j));
            assert!(
                prev.is_none(),
                "capture: state {j} shares a buffer with other state"
            );
        }
        for (i, h) in inputs.iter().enumerate() {
            let prev = known.insert(h.id(), Source::Input(i));
            assert!(
                prev.is_none(),
                "capture: input {i} shares a buffer with another input or state"
            );
        }
        let classify = |known: &HashMap<u64, Source>, h: &BufferHandle| {
            known
                .get(&h.id())
                .cloned()
                .unwrap_or_else(|| Source::External(h.clone()))
        };
        let mut steps = Vec::with_capacity(recording.steps.len());
        for (k, r) in recording.steps.into_iter().enumerate() {
            let args = r.args.iter().map(|h| classify(&known, h)).collect();
            known.insert(r.out.id(), Source::Step(k));
            steps.push(PlanStep {
                device: r.device,
                work: r.work,
                bytes: r.bytes,
                args,
            });
        }
        let sources: Vec<Source> = results.iter().map(|h| classify(&known, h)).collect();
        let mut escaping: Vec<usize> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Step(k) => Some(*k),
                _ => None,
            })
            .collect();
        escaping.sort_unstable();
        escaping.dedup();
        let mut current = Vec::with_capacity(steps.len());
        for (k, s) in steps.iter().enumerate() {
            current.push(if escaping.binary_search(&k).is_ok() {
                None
            } else {
                Some(s.device.alloc(s.bytes)?.into_handle())
            });
        }
        let max_params = steps.iter().map(|s| s.args.len() + 1).max().unwrap_or(0);
        let kernels = steps
            .iter()
            .filter(|s| matches!(s.work, Work::Kernel(_)))
            .count();
        let plan = Plan {
            steps,
            current,
            escaping,
            max_params,
            kernels,
        };
        Ok((plan, sources))
    }

    /// Number of kernel launches per replay.
    pub fn kernels(&self) -> usize {
        self.kernels
    }

    /// Reruns every step with `inputs` and `state` in place of the buffers of the capture.
    /// The caller checks that they have the sizes the capture had.
    pub fn run(&mut self, inputs: &[BufferHandle], state: &[BufferHandle]) -> Result<()> {
        for &k in &self.escaping {
            let step = &self.steps[k];
            self.current[k] = Some(step.device.alloc(step.bytes)?.into_handle());
        }
        let mut params: Vec<&RawBuffer> = Vec::with_capacity(self.max_params);
        for (step, out) in self.steps.iter().zip(&self.current) {
            let out = Buffer::from_handle(out.as_ref().expect("every step has a buffer"));
            match &step.work {
                Work::Kernel(kernel) => {
                    params.clear();
                    params.push(out.raw());
                    for a in &step.args {
                        params.push(self.resolve(a, inputs, state).raw());
                    }
                    step.device.device().launch(kernel, &params)?;
                }
                Work::Copy => {
                    let source = self.resolve(&step.args[0], inputs, state);
                    source.copy_to(out, source.bytes().min(out.bytes()))?;
                }
                Work::Alloc => {}
            }
        }
        crate::realize::bump_kernels(self.kernels);
        Ok(())
    }

    fn resolve<'a>(
        &'a self,
        source: &'a Source,
        inputs: &'a [BufferHandle],
        state: &'a [BufferHandle],
    ) -> &'a Buffer {
        Buffer::from_handle(self.handle(source, inputs, state))
    }

    /// The buffer `source` names in the replay that just ran with `inputs` and `state`.
    pub fn handle<'a>(
        &'a self,
        source: &'a Source,
        inputs: &'a [BufferHandle],
        state: &'a [BufferHandle],
    ) -> &'a BufferHandle {
        match source {
            Source::Step(k) => self.current[*k].as_ref().expect("the plan has run"),
            Source::Input(i) => &inputs[*i],
            Source::State(j) => &state[*j],
            Source::External(h) => h,
        }
    }
}
