//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay (the update
//! rule of `torch.optim.SGD`).

use super::{check_params, runtime_scalar, Optimizer};
use crate::Tensor;

/// Hyper-parameters of [`Sgd`].
#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables momentum).
    pub momentum: f64,
    /// Dampening of the momentum's gradient term.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// SGD: `d = g + wd·p`; with momentum `b = μ·b + (1-τ)·d` (`b = d` on the first step) and
/// `d = d + μ·b` (Nesterov) or `d = b`; then `p = p - lr·d`.
pub struct Sgd {
    params: Vec<Tensor>,
    config: SgdConfig,
    momentum: Vec<Option<Tensor>>,
}

impl Sgd {
    /// SGD over `params` (float tensors with `requires_grad(true)`). Panics on invalid
    /// hyper-parameters or parameters.
    pub fn new(params: Vec<Tensor>, config: SgdConfig) -> Sgd {
        check_params("Sgd::new", &params);
        assert!(
            config.lr >= 0.0 && config.momentum >= 0.0 && config.weight_decay >= 0.0,
            "Sgd::new: lr, momentum and weight_decay must be non-negative, got {config:?}"
        );
        assert!(
            !config.nesterov || (config.momentum > 0.0 && config.dampening == 0.0),
            "Sgd::new: Nesterov momentum needs momentum > 0 and dampening 0, got {config:?}"
        );
        let momentum = vec![None; params.len()];
        Sgd {
            params,
            config,
            momentum,
        }
    }
}

impl Optimizer for Sgd {
    fn params(&self) -> &[Tensor] {
        &self.params
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn update(&mut self) -> Vec<Tensor> {
        let c = self.config;
        let mut todo = Vec::new();
        for (p, buf) in self.params.iter().zip(&mut self.momentum) {
            let Some(g) = p.grad() else { continue };
            let value = p.detach();
            let mut d = g;
            if c.weight_decay != 0.0 {
                d = &d + &(&value * c.weight_decay);
            }
            if c.momentum != 0.0 {
                let b = match buf.take() {
                    None => d.clone(),
                    Some(b) => &(&b * c.momentum) + &(&d * (1.0 - c.dampening)),
                };
                d = if c.nesterov {
                    &d + &(&b * c.momentum)
                } else {
                    b.clone()
                };
                todo.push(b.clone());
                *buf = Some(b);
            }
            let lr = runtime_scalar(c.lr, p);
            p.assign(&(&value - &(&lr * &d)));
            todo.push(p.clone());
        }
        todo
    }
}
