//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay (the update
//! rule of `torch.optim.SGD`).

use super::{check_params, LearningRate, Optimizer};
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
/// `d = d + μ·b` (Nesterov) or `d = b`; then `p = p - lr·d`. Every step after a parameter's
/// first runs the same graph.
pub struct Sgd {
    params: Vec<Tensor>,
    config: SgdConfig,
    lr: LearningRate,
    /// Momentum buffers (lazy zeros until a parameter's first step).
    momentum: Vec<Tensor>,
    /// Whether each parameter has taken a step (its momentum buffer holds a value).
    started: Vec<bool>,
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
        Sgd {
            lr: LearningRate::new(config.lr, &params),
            momentum: params.iter().map(Tensor::zeros_like).collect(),
            started: vec![false; params.len()],
            params,
            config,
        }
    }
}

impl Optimizer for Sgd {
    fn params(&self) -> &[Tensor] {
        &self.params
    }

    fn learning_rate(&self) -> f64 {
        self.lr.value()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr.set(lr);
    }

    fn state_tensors(&self) -> Vec<Tensor> {
        let mut out = self.lr.tensors().to_vec();
        if self.config.momentum != 0.0 {
            out.extend(self.momentum.iter().cloned());
        }
        out
    }

    fn update(&mut self) -> Vec<Tensor> {
        let c = self.config;
        let mut todo = Vec::new();
        for (i, (p, buf)) in self.params.iter().zip(&self.momentum).enumerate() {
            let Some(g) = p.grad() else { continue };
            let value = p.detach();
            let mut d = g;
            if c.weight_decay != 0.0 {
                d = &d + &(&value * c.weight_decay);
            }
            if c.momentum != 0.0 {
                let b = if self.started[i] {
                    &(buf * c.momentum) + &(&d * (1.0 - c.dampening))
                } else {
                    d.clone()
                };
                self.started[i] = true;
                d = if c.nesterov {
                    &d + &(&b * c.momentum)
                } else {
                    b.clone()
                };
                buf.assign(&b);
                todo.push(buf.clone());
            }
            p.assign(&(&value - &(self.lr.for_param(i) * &d)));
            todo.push(p.clone());
        }
        todo
    }
}
