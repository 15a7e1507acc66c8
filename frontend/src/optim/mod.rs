//! Optimizers and learning-rate schedules.
//!
//! An optimizer holds the parameters (shared handles to the model's tensors) and its own state
//! (momenta). A step builds the updated values lazily from the parameters' gradients, assigns
//! them (the parameters keep their autograd identity), and realizes parameters, state and any
//! extra tensors (the loss, batch-norm statistics) in one schedule, so the forward pass,
//! backward pass and update run as one set of fused kernels.
//!
//! Values that change from step to step (learning rate, bias corrections) enter the graph as
//! small device buffers, never as constants: the kernels of step `t` are the kernels of step 1,
//! so they are compiled once.

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

    /// Changes the learning rate from the next step on (no recompilation: it is a buffer).
    fn set_learning_rate(&mut self, lr: f64);

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
