//! Adam and AdamW (the update rules of `torch.optim.Adam` / `AdamW`, without amsgrad).

use super::{check_params, runtime_scalar, Optimizer};
use crate::Tensor;

/// Hyper-parameters of [`Adam`].
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay: an L2 term in the gradient (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW): `p = p·(1 - lr·wd)` before the Adam update.
    pub decoupled: bool,
}

impl AdamConfig {
    /// Adam's defaults with learning rate `lr`.
    pub fn adam(lr: f64) -> AdamConfig {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW's defaults (weight decay 0.01, decoupled) with learning rate `lr`.
    pub fn adamw(lr: f64) -> AdamConfig {
        AdamConfig {
            weight_decay: 0.01,
            decoupled: true,
            ..AdamConfig::adam(lr)
        }
    }
}

/// Adam: `m = β1·m + (1-β1)·g`, `v = β2·v + (1-β2)·g²`,
/// `p = p - lr·(m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps)`.
pub struct Adam {
    params: Vec<Tensor>,
    config: AdamConfig,
    moments: Vec<Option<(Tensor, Tensor)>>,
    steps: Vec<u32>,
}

impl Adam {
    /// Adam (or AdamW, per `config.decoupled`) over `params`. Panics on invalid
    /// hyper-parameters or parameters.
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Adam {
        check_params("Adam::new", &params);
        assert!(
            config.lr >= 0.0
                && (0.0..1.0).contains(&config.beta1)
                && (0.0..1.0).contains(&config.beta2)
                && config.eps >= 0.0
                && config.weight_decay >= 0.0,
            "Adam::new: need lr >= 0, 0 <= betas < 1, eps >= 0, weight_decay >= 0, got {config:?}"
        );
        let n = params.len();
        Adam {
            params,
            config,
            moments: vec![None; n],
            steps: vec![0; n],
        }
    }
}

impl Optimizer for Adam {
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
        for ((p, moments), step) in self
            .params
            .iter()
            .zip(&mut self.moments)
            .zip(&mut self.steps)
        {
            let Some(mut g) = p.grad() else { continue };
            *step += 1;
            let t = *step as i32;
            let mut value = p.detach();
            if c.weight_decay != 0.0 {
                if c.decoupled {
                    value = &value * &runtime_scalar(1.0 - c.lr * c.weight_decay, p);
                } else {
                    g = &g + &(&value * c.weight_decay);
                }
            }
            let (m, v) = match moments.take() {
                None => (&g * (1.0 - c.beta1), &g.square() * (1.0 - c.beta2)),
                Some((m, v)) => (
                    &(&m * c.beta1) + &(&g * (1.0 - c.beta1)),
                    &(&v * c.beta2) + &(&g.square() * (1.0 - c.beta2)),
                ),
            };
            // p - lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
            let step_size = runtime_scalar(c.lr / (1.0 - c.beta1.powi(t)), p);
            let inv_bias2 = runtime_scalar(1.0 / (1.0 - c.beta2.powi(t)).sqrt(), p);
            let denom = &(&v.sqrt() * &inv_bias2) + c.eps;
            p.assign(&(&value - &(&step_size * &(&m / &denom))));
            todo.extend([p.clone(), m.clone(), v.clone()]);
            *moments = Some((m, v));
        }
        todo
    }
}
