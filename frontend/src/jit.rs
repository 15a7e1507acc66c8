//! JIT capture and replay of a step function.
//!
//! [`Jit`] wraps a closure from input tensors to output tensors (an inference function, or a
//! training step: forward, backward, optimizer update). The first call runs the closure
//! normally (warm-up: an optimizer's first step builds a different graph from later ones); the
//! second runs it while the runtime records every kernel launch
//! ([`ferrograd_runtime::capture`]); later calls replay the recorded launches on the new
//! inputs without calling the closure, building a graph, scheduling, lowering or hashing.
//!
//! State: tensors whose value the closure reads and replaces (parameters, optimizer state,
//! learning-rate buffers) are declared when the `Jit` is built. A replay reads each state
//! tensor's current buffer and afterwards gives every state tensor the value the step computed
//! for it (a fresh buffer from the device pool, so nothing a caller still holds is overwritten).
//! Anything else the closure reads is frozen at its capture-time value.
//!
//! The closure must build the same graph on every call after the warm-up: values computed on
//! the host each call (a step counter, a learning rate passed as a constant, random numbers
//! drawn with the global seed, an `if` on a tensor's value) are frozen by the capture. That is
//! the caller's responsibility; [`Jit::reset`] recaptures.

use crate::Tensor;
use ferrograd_ir::{BufferHandle, DType, Node};
use ferrograd_runtime::capture::{self, Plan, Source};
use ferrograd_runtime::Result;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// Calls that run the closure normally before the capture.
const WARMUP_CALLS: usize = 1;

/// A step function that is captured on its second call and replayed afterwards.
///
/// ```
/// use ferrograd::jit::Jit;
/// use ferrograd::Tensor;
/// let w = Tensor::from_slice(&[2.0f32, 3.0], &[2]);
/// let mut double = Jit::new(vec![], |x: &[Tensor]| vec![&x[0] * &w]);
/// for i in 0..3 {
///     let x = Tensor::from_slice(&[i as f32, 1.0], &[2]);
///     let y = double.call(&[x]).unwrap();
///     assert_eq!(y[0].to_vec::<f32>().unwrap(), vec![2.0 * i as f32, 3.0]);
/// }
/// assert!(double.is_captured());
/// ```
pub struct Jit<F> {
    f: F,
    state: Vec<Tensor>,
    calls: usize,
    captured: Option<Captured>,
}

/// Shape, dtype and device of a tensor.
#[derive(Clone, PartialEq)]
struct Signature {
    shape: Vec<usize>,
    dtype: DType,
    device: Arc<str>,
}

impl Signature {
    fn of(t: &Tensor) -> Signature {
        let n = t.node();
        Signature {
            shape: n.shape().to_vec(),
            dtype: n.dtype(),
            device: n.device().clone(),
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?} on {}", self.dtype, self.shape, self.device)
    }
}

/// What a capture recorded.
struct Captured {
    plan: Plan,
    inputs: Vec<Signature>,
    outputs: Vec<(Source, Signature)>,
    /// State tensors the step replaces, with where their new value comes from.
    state_out: Vec<(usize, Source)>,
    /// Scratch: this replay's input and state buffers (empty between replays).
    input_bufs: Vec<BufferHandle>,
    state_bufs: Vec<BufferHandle>,
}

impl<F: FnMut(&[Tensor]) -> Vec<Tensor>> Jit<F> {
    /// Wraps `f`. `state` lists every tensor whose value `f` replaces or that changes between
    /// calls by other means: the parameters, [`crate::optim::Optimizer::state_tensors`],
    /// running statistics. Tensors listed twice are kept once.
    pub fn new(state: Vec<Tensor>, f: F) -> Jit<F> {
        let mut seen = HashSet::new();
        let state = state
            .into_iter()
            .filter(|t| seen.insert(Arc::as_ptr(&t.state)))
            .collect();
        Jit {
            f,
            state,
            calls: 0,
            captured: None,
        }
    }

    /// Runs the step on `inputs` and returns its outputs, realized. The first call runs the
    /// closure, the second captures it, later calls replay the capture. A replay panics if
    /// the inputs' number, shapes, dtypes or devices differ from the capture's; its outputs
    /// are new tensors that autograd does not track.
    pub fn call(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if self.captured.is_some() {
            return self.replay(inputs);
        }
        self.calls += 1;
        if self.calls <= WARMUP_CALLS {
            let outputs = (self.f)(inputs);
            realize_with_state(&outputs, &self.state)?;
            return Ok(outputs);
        }
        self.capture(inputs)
    }

    /// Forgets the capture: the next call runs the closure normally again (a warm-up), the one
    /// after captures anew.
    pub fn reset(&mut self) {
        self.captured = None;
        self.calls = 0;
    }

    /// True once a capture exists (later calls replay it).
    pub fn is_captured(&self) -> bool {
        self.captured.is_some()
    }

    /// Kernel launches per replay, once captured.
    pub fn captured_kernels(&self) -> Option<usize> {
        self.captured.as_ref().map(|c| c.plan.kernels())
    }

    fn capture(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        for (i, t) in inputs.iter().enumerate() {
            assert!(
                !self.state.iter().any(|s| Arc::ptr_eq(&s.state, &t.state)),
                "Jit: input {i} ({}) is also declared as state",
                Signature::of(t)
            );
        }
        Tensor::realize_all(inputs)?;
        Tensor::realize_all(&self.state)?;
        let input_bufs: Vec<BufferHandle> = inputs.iter().map(buffer_of).collect();
        let mut seen = HashSet::new();
        for (i, h) in input_bufs.iter().enumerate() {
            assert!(
                seen.insert(h.id()),
                "Jit: input {i} ({}) holds the same buffer as an earlier input; pass distinct tensors",
                Signature::of(&inputs[i])
            );
        }
        unalias_state(&self.state, seen)?;
        let state_bufs: Vec<BufferHandle> = self.state.iter().map(buffer_of).collect();
        let (f, state) = (&mut self.f, &self.state);
        let (outputs, recording) = capture::record(|| {
            let outputs = f(inputs);
            realize_with_state(&outputs, state).map(|()| outputs)
        });
        let outputs = outputs?;
        let results: Vec<BufferHandle> = outputs.iter().chain(state).map(buffer_of).collect();
        let (plan, sources) = Plan::new(recording, &input_bufs, &state_bufs, &results)?;
        let (out_src, state_src) = sources.split_at(outputs.len());
        let state_out = state_src
            .iter()
            .enumerate()
            .filter(|(j, s)| !matches!(s, Source::State(k) if k == j))
            .map(|(j, s)| (j, s.clone()))
            .collect();
        self.captured = Some(Captured {
            plan,
            inputs: inputs.iter().map(Signature::of).collect(),
            outputs: out_src
                .iter()
                .cloned()
                .zip(outputs.iter().map(Signature::of))
                .collect(),
            state_out,
            input_bufs: Vec::with_capacity(inputs.len()),
            state_bufs: Vec::with_capacity(state.len()),
        });
        Ok(outputs)
    }

    fn replay(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let c = self.captured.as_mut().expect("replay needs a capture");
        assert_eq!(
            inputs.len(),
            c.inputs.len(),
            "Jit: called with {} inputs, the captured step takes {}",
            inputs.len(),
            c.inputs.len()
        );
        for (i, (t, want)) in inputs.iter().zip(&c.inputs).enumerate() {
            let got = Signature::of(t);
            assert!(
                got == *want,
                "Jit: input {i} is {got}, the captured step takes {want}"
            );
        }
        if inputs.iter().any(|t| t.buffer().is_none()) {
            Tensor::realize_all(inputs)?;
        }
        if self.state.iter().any(|t| t.buffer().is_none()) {
            Tensor::realize_all(&self.state)?;
        }
        c.input_bufs.extend(inputs.iter().map(buffer_of));
        c.state_bufs.extend(self.state.iter().map(buffer_of));
        let ran = c.plan.run(&c.input_bufs, &c.state_bufs);
        let outputs = ran.map(|()| {
            for (j, src) in &c.state_out {
                let h = c.plan.handle(src, &c.input_bufs, &c.state_bufs);
                self.state[*j].set_buffer(h.clone());
            }
            c.outputs
                .iter()
                .map(|(src, sig)| {
                    let h = c.plan.handle(src, &c.input_bufs, &c.state_bufs);
                    Tensor::from_node(Node::buffer(h.clone(), sig.dtype, &sig.shape, &sig.device))
                })
                .collect()
        });
        // Hold no input or state buffer between replays (they return to the pool when freed).
        c.input_bufs.clear();
        c.state_bufs.clear();
        outputs
    }
}

/// The buffer of a realized tensor.
fn buffer_of(t: &Tensor) -> BufferHandle {
    t.buffer().expect("realized before the capture or replay")
}

/// Realizes `outputs` and `state` in one schedule.
fn realize_with_state(outputs: &[Tensor], state: &[Tensor]) -> Result<()> {
    let all: Vec<Tensor> = outputs.iter().chain(state).cloned().collect();
    Tensor::realize_all(&all)
}

/// Gives each state tensor that shares its buffer with an input or earlier state tensor (equal
/// values are one node, hence one buffer) a private copy, so that every buffer the capture
/// reads names one input or one state tensor. `seen` holds the inputs' buffer ids.
fn unalias_state(state: &[Tensor], mut seen: HashSet<u64>) -> Result<()> {
    for t in state {
        if !seen.insert(buffer_of(t).id()) {
            let copy =
                Tensor::try_from_bytes_on(&t.to_bytes()?, t.dtype(), &t.shape(), &t.device())?;
            let h = buffer_of(&copy);
            seen.insert(h.id());
            t.set_buffer(h);
        }
    }
    Ok(())
}
