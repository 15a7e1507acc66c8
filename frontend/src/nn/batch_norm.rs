//! Batch normalization over the channels of `(N, C, H, W)` inputs.

use crate::nn::init::{parameters, realized};
use crate::nn::pending::defer_realize;
use crate::nn::{visit_child, Module, StateKind};
use crate::{no_grad, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// Batch normalization of `(N, C, H, W)` inputs per channel:
/// `(x - mean) / sqrt(var + eps) * weight + bias`.
///
/// In training mode (the initial mode) `mean` and `var` are the batch's statistics over
/// `(N, H, W)` (biased variance), and the running statistics move towards them:
/// `running = (1 - momentum) * running + momentum * batch`, with the *unbiased* batch variance
/// for `running_var` (torch's semantics). In evaluation mode the running statistics are used.
///
/// The running-statistic update is lazy: the forward pass assigns the new values (computed
/// under [`no_grad`]) to the buffers with [`Tensor::assign`] and queues the buffers for the
/// optimizer step, which realizes them with the parameters
/// ([`take_pending_updates`](crate::nn::take_pending_updates)). If no one realized the previous
/// update when the next training forward pass runs, that pass realizes it first.
pub struct BatchNorm2d {
    /// Per-channel scale `[C]` (ones initially).
    pub weight: Tensor,
    /// Per-channel shift `[C]` (zeros initially).
    pub bias: Tensor,
    /// Running mean `[C]` (a buffer; zeros initially).
    pub running_mean: Tensor,
    /// Running unbiased variance `[C]` (a buffer; ones initially).
    pub running_var: Tensor,
    /// Weight of the batch statistics in the running update (0.1, like torch).
    pub momentum: f64,
    /// Added to the variance (1e-5, like torch).
    pub eps: f64,
    /// Training mode (an atomic, so a model stays `Sync`).
    training: AtomicBool,
}

impl BatchNorm2d {
    /// A layer for `channels` channels, in training mode.
    pub fn new(channels: usize) -> BatchNorm2d {
        let [weight, bias] = parameters(
            "BatchNorm2d::new",
            [Tensor::ones(&[channels]), Tensor::zeros(&[channels])],
        );
        let [running_mean, running_var] = realized(
            "BatchNorm2d::new",
            [Tensor::zeros(&[channels]), Tensor::ones(&[channels])],
        );
        BatchNorm2d {
            weight,
            bias,
            running_mean,
            running_var,
            momentum: 0.1,
            eps: 1e-5,
            training: AtomicBool::new(true),
        }
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Normalizes `x` of shape `(N, C, H, W)`; in training mode also updates the running
    /// statistics (see the type's docs). Panics if `x` is not a 4-D float tensor with `C`
    /// channels, or, in training mode, if a channel has a single value (`N * H * W == 1`).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let xs = x.shape();
        let c = self.weight.numel();
        assert!(
            x.dtype().is_float() && xs.len() == 4 && xs[1] == c,
            "BatchNorm2d: input {}{xs:?} must be a float (N, C, H, W) tensor with C = {c}",
            x.dtype()
        );
        let per_channel = [1, c, 1, 1];
        let (mean, var) = if self.is_training() {
            let n = xs[0] * xs[2] * xs[3];
            assert!(
                n > 1,
                "BatchNorm2d: input {xs:?} has a single value per channel; training needs more"
            );
            let mean = x.mean_keepdim([0, 2, 3]);
            let var = x.var_keepdim([0, 2, 3], 0);
            self.update_running_stats(&mean, &var, n);
            (mean, var)
        } else {
            (
                self.running_mean.reshape(per_channel),
                self.running_var.reshape(per_channel),
            )
        };
        x.sub(&mean)
            .mul(var.add(self.eps).rsqrt())
            .mul(self.weight.reshape(per_channel))
            .add(self.bias.reshape(per_channel))
    }

    /// Assigns the lazy running-statistic update for a batch of `n` values per channel with
    /// statistics `mean` and biased `var` (`[1, C, 1, 1]`), and queues it for the next step.
    fn update_running_stats(&self, mean: &Tensor, var: &Tensor, n: usize) {
        let (rm, rv) = (&self.running_mean, &self.running_var);
        if rm.node().realized().is_none() || rv.node().realized().is_none() {
            // The previous update was not realized by an optimizer step: do it now, so the
            // expressions do not chain from step to step.
            Tensor::realize_all(&[rm.clone(), rv.clone()]).unwrap_or_else(|e| {
                panic!("BatchNorm2d: realizing the previous running statistics: {e}")
            });
        }
        no_grad(|| {
            let m = self.momentum;
            let c = rm.numel();
            let batch_mean = mean.reshape([c]).cast(rm.dtype());
            let unbiased = var
                .reshape([c])
                .mul(n as f64 / (n - 1) as f64)
                .cast(rv.dtype());
            rm.assign(&rm.mul(1.0 - m).add(batch_mean.mul(m)));
            rv.assign(&rv.mul(1.0 - m).add(unbiased.mul(m)));
        });
        defer_realize(rm);
        defer_realize(rv);
    }
}

impl Module for BatchNorm2d {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
        visit_child("weight", &self.weight, f);
        visit_child("bias", &self.bias, f);
        f("running_mean", &self.running_mean, StateKind::Buffer);
        f("running_var", &self.running_var, StateKind::Buffer);
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}
