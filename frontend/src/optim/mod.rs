//! Optimizers and learning-rate schedules.
//!
//! An optimizer holds the parameters (shared handles to the model's tensors) and its own state
//! (momenta). A step builds the updated values lazily from the parameters' gradients, assigns
//! them (the parameters keep their autograd identity), and realizes parameters, state and any
//! extra tensors (the loss, batch-norm statistics) in one schedule, so the forward pass,
//! backward pass and update run as one set of fused kernels.
//!
//! Values that change from step to step enter the graph as small device buffers, never as
//! constants, so the kernels of step `t` are the kernels of step 2 and are compiled once: the
//! learning rate is a 0-d buffer per parameter dtype and device that
//! [`Optimizer::set_learning_rate`] replaces, and Adam's bias corrections are 0-d state tensors
//! updated on the device. Every such buffer is reachable through [`Optimizer::state_tensors`],
//! so a captured step ([`crate::jit::Jit`]) reads the current values on every replay.

mod adam;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use schedule::{CosineSchedule, LrSchedule, WarmupSchedule};
pub use sgd::{Sgd, SgdConfig};

use crate::{Result, Tensor};

/// An optimizer over a fixed list of parameters.
pub trait Optimizer {
    /// The parameters it updates.
    fn params(&self) -> &[Tensor];

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Changes the learning rate from the next step on (no recompilation: it is a buffer,
    /// replaced with [`Tensor::assign`], so a replayed [`crate::jit::Jit`] step sees it too).
    fn set_learning_rate(&mut self, lr: f64);

    /// The optimizer's own tensors whose values change between steps (learning-rate buffers,
    /// momenta, bias corrections), in a stable order. They exist from construction on (momenta
    /// start as lazy zeros), so they can be declared, with the parameters, as the state of a
    /// [`crate::jit::Jit`] before the first step.
    fn state_tensors(&self) -> Vec<Tensor>;

    /// Assigns every parameter that has a gradient its updated value, lazily, and returns the
    /// tensors to realize for the step to take effect (the parameters and the optimizer's
    /// state). Parameters without a gradient are left alone.
    fn update(&mut self) -> Vec<Tensor>;

    /// One step: [`Optimizer::update`], then one realize of the parameters, the optimizer
    /// state, the pending batch-norm statistics and `also` (pass the loss to have it computed in
    /// the same schedule), then the gradients are cleared.
    fn step_with(&mut self, also: &[&Tensor]) -> Result<()> {
        let mut todo = crate::no_grad(|| self.update());
        todo.extend(crate::nn::take_pending_updates());
        todo.extend(also.iter().map(|t| (*t).clone()));
        Tensor::realize_all(&todo)?;
        self.zero_grad();
        Ok(())
    }

    /// One step with nothing else realized alongside.
    fn step(&mut self) -> Result<()> {
        self.step_with(&[])
    }

    /// Clears the gradient of every parameter.
    fn zero_grad(&self) {
        for p in self.params() {
            p.zero_grad();
        }
    }
}

/// A 0-d tensor holding `value` in `like`'s dtype on `like`'s device, as a buffer (a kernel
/// input), so that a changing value does not change the compiled kernels.
pub(crate) fn runtime_scalar(value: f64, like: &Tensor) -> Tensor {
    use ferrograd_ir::DType;
    let dtype = like.dtype();
    let bytes = match dtype {
        DType::F64 => value.to_le_bytes().to_vec(),
        DType::F32 => (value as f32).to_le_bytes().to_vec(),
        DType::F16 => half::f16::from_f64(value).to_le_bytes().to_vec(),
        DType::BF16 => half::bf16::from_f64(value).to_le_bytes().to_vec(),
        other => panic!(
            "optimizer: parameters must be float tensors, got a {other} tensor of shape {:?}",
            like.shape()
        ),
    };
    Tensor::from_bytes_on(&bytes, dtype, &[], &like.device())
}

/// The learning rate as 0-d device buffers, one per distinct (dtype, device) of the parameters.
pub(crate) struct LearningRate {
    value: f64,
    tensors: Vec<Tensor>,
    of_param: Vec<usize>,
}

impl LearningRate {
    /// Buffers holding `value` for `params`.
    pub(crate) fn new(value: f64, params: &[Tensor]) -> LearningRate {
        let mut tensors: Vec<Tensor> = Vec::new();
        let mut of_param = Vec::with_capacity(params.len());
        for p in params {
            let found = tensors
                .iter()
                .position(|t| t.dtype() == p.dtype() && t.device() == p.device());
            of_param.push(found.unwrap_or_else(|| {
                tensors.push(runtime_scalar(value, p));
                tensors.len() - 1
            }));
        }
        LearningRate {
            value,
            tensors,
            of_param,
        }
    }
    /// The current value.
    pub(crate) fn value(&self) -> f64 {
        self.value
    }
    /// Replaces every buffer with one holding `value`.
    pub(crate) fn set(&mut self, value: f64) {
        self.value = value;
        for t in &self.tensors {
            t.assign(&runtime_scalar(value, t));
        }
    }
    /// The buffer parameter `i` reads.
    pub(crate) fn for_param(&self, i: usize) -> &Tensor {
        &self.tensors[self.of_param[i]]
    }
    /// Every buffer.
    pub(crate) fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }
}

/// Panics unless every parameter is a float tensor that requires grad.
fn check_params(op: &str, params: &[Tensor]) {
    for (i, p) in params.iter().enumerate() {
        assert!(
            p.dtype().is_float() && p.is_requires_grad(),
            "{op}: parameter {i} ({} tensor of shape {:?}) must be a float tensor with requires_grad(true)",
            p.dtype(),
            p.shape()
        );
    }
}
