//! The fully connected layer.

use crate::nn::init::{parameters, uniform};
use crate::nn::Module;
use crate::Tensor;

/// `y = x @ weight^T + bias` over the last axis of `x`.
#[derive(Module)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer from `in_features` to `out_features` with a bias. Like torch, the weight and the
    /// bias are drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)) (Kaiming-uniform with
    /// a = sqrt(5) for the weight).
    pub fn new(in_features: usize, out_features: usize) -> Linear {
        let bound = 1.0 / (in_features as f64).sqrt();
        let [weight, bias] = parameters(
            "Linear::new",
            [
                uniform(&[out_features, in_features], bound),
                uniform(&[out_features], bound),
            ],
        );
        Linear {
            weight,
            bias: Some(bias),
        }
    }

    /// A layer without a bias (the weight initialized as in [`Linear::new`]).
    pub fn no_bias(in_features: usize, out_features: usize) -> Linear {
        let bound = 1.0 / (in_features as f64).sqrt();
        let [weight] = parameters(
            "Linear::no_bias",
            [uniform(&[out_features, in_features], bound)],
        );
        Linear { weight, bias: None }
    }

    /// Applies the layer to `x` of shape `[..., in_features]`, giving `[..., out_features]`.
    /// Panics if the last axis of `x` is not `in_features` long.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (xs, ws) = (x.shape(), self.weight.shape());
        assert!(
            ws.len() == 2 && xs.last() == Some(&ws[1]),
            "Linear: input {xs:?} does not end in the {} input features of weight {ws:?}",
            ws.get(1).copied().unwrap_or(0)
        );
        let y = x.matmul(&self.weight.t());
        match &self.bias {
            Some(b) => y.add(b),
            None => y,
        }
    }
}
