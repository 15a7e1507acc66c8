//! Adam and AdamW (the update rules of `torch.optim.Adam` / `AdamW`, without amsgrad).

use super::{check_params, LearningRate, Optimizer};
use crate::Tensor;
use ferrograd_ir::Scalar;

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
///
/// The moments start as (lazy) zeros and the bias corrections `1-β^t` are 0-d tensors per
/// parameter, updated on the device as `c = β·c + (1-β)`, so every step after the first runs
/// the same graph (and can be replayed by [`crate::jit::Jit`]).
pub struct Adam {
    params: Vec<Tensor>,
    config: AdamConfig,
    lr: LearningRate,
    state: Vec<AdamState>,
}

/// Adam's state for one parameter.
struct AdamState {
    m: Tensor,
    v: Tensor,
    /// `1 - β1^t`.
    bias1: Tensor,
    /// `1 - β2^t`.
    bias2: Tensor,
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
        let state = params
            .iter()
            .map(|p| AdamState {
                m: p.zeros_like(),
                v: p.zeros_like(),
                bias1: p.const_like(Scalar::Float(0.0)),
                bias2: p.const_like(Scalar::Float(0.0)),
            })
            .collect();
        Adam {
            lr: LearningRate::new(config.lr, &params),
            params,
            config,
            state,
        }
    }
}

impl Optimizer for Adam {
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
        for s in &self.state {
            out.extend([s.m.clone(), s.v.clone(), s.bias1.clone(), s.bias2.clone()]);
        }
        out
    }

    fn update(&mut self) -> Vec<Tensor> {
        let c = self.config;
        let mut todo = Vec::new();
        for (i, (p, s)) in self.params.iter().zip(&self.state).enumerate() {
            let Some(mut g) = p.grad() else { continue };
            let lr = self.lr.for_param(i);
            let mut value = p.detach();
            if c.weight_decay != 0.0 {
                if c.decoupled {
                    value = &value * &(&(lr * -c.weight_decay) + 1.0);
                } else {
                    g = &g + &(&value * c.weight_decay);
                }
            }
            let m = &(&s.m * c.beta1) + &(&g * (1.0 - c.beta1));
            let v = &(&s.v * c.beta2) + &(&g.square() * (1.0 - c.beta2));
            let bias1 = &(&s.bias1 * c.beta1) + (1.0 - c.beta1);
            let bias2 = &(&s.bias2 * c.beta2) + (1.0 - c.beta2);
            // p - lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
            let step_size = lr / &bias1;
            let denom = &(&v.sqrt() * &bias2.rsqrt()) + c.eps;
            p.assign(&(&value - &(&step_size * &(&m / &denom))));
            s.m.assign(&m);
            s.v.assign(&v);
            s.bias1.assign(&bias1);
            s.bias2.assign(&bias2);
            todo.extend([
                p.clone(),
                s.m.clone(),
                s.v.clone(),
                s.bias1.clone(),
                s.bias2.clone(),
            ]);
        }
        todo
    }
}
