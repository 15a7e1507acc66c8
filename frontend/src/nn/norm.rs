//! Per-sample normalization layers: layer norm and RMS norm.

use crate::nn::init::parameters;
use crate::nn::Module;
use crate::{DType, Tensor};

/// Checks that `x` ends in `shape` and returns the axes `shape` covers.
fn trailing_axes(op: &str, x: &Tensor, shape: &[usize]) -> Vec<usize> {
    let xs = x.shape();
    assert!(
        x.dtype().is_float() && xs.len() >= shape.len() && xs.ends_with(shape),
        "{op}: input {}{xs:?} must be a float tensor ending in the normalized shape {shape:?}",
        x.dtype()
    );
    (xs.len() - shape.len()..xs.len()).collect()
}

/// Normalizes the last axes of its input to zero mean and unit (biased) variance, then scales
/// and shifts elementwise: `(x - mean) / sqrt(var + eps) * weight + bias`.
#[derive(Module)]
pub struct LayerNorm {
    /// The scale, shaped like the normalized axes (ones initially).
    pub weight: Tensor,
    /// The shift, shaped like the normalized axes (zeros initially).
    pub bias: Tensor,
    /// The shape of the normalized (trailing) axes.
    #[module(skip)]
    pub normalized_shape: Vec<usize>,
    /// Added to the variance (1e-5, like torch).
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// A layer normalizing trailing axes of shape `normalized_shape` (non-empty).
    pub fn new(normalized_shape: &[usize]) -> LayerNorm {
        assert!(
            !normalized_shape.is_empty(),
            "LayerNorm::new: the normalized shape is empty"
        );
        let [weight, bias] = parameters(
            "LayerNorm::new",
            [
                Tensor::ones(normalized_shape),
                Tensor::zeros(normalized_shape),
            ],
        );
        LayerNorm {
            weight,
            bias,
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// Normalizes `x`, which must end in the normalized shape.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let axes = trailing_axes("LayerNorm", x, &self.normalized_shape);
        let mean = x.mean_keepdim(axes.as_slice());
        let var = x.var_keepdim(axes.as_slice(), 0);
        x.sub(&mean)
            .mul(var.add(self.eps).rsqrt())
            .mul(&self.weight)
            .add(&self.bias)
    }
}

/// Root-mean-square normalization of the last axis: `x / sqrt(mean(x^2) + eps) * weight`.
#[derive(Module)]
pub struct RMSNorm {
    /// The scale, `[dim]` (ones initially).
    pub weight: Tensor,
    /// Added to the mean square; `None` (the default, like torch) uses the machine epsilon
    /// of the input's dtype.
    #[module(skip)]
    pub eps: Option<f64>,
}

/// The difference between 1 and the next larger value of a float dtype.
fn machine_epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2f64.powi(-10),
        DType::BF16 => 2f64.powi(-7),
        DType::F64 => f64::EPSILON,
        _ => f32::EPSILON as f64,
    }
}

impl RMSNorm {
    /// A layer normalizing a last axis of `dim` elements.
    pub fn new(dim: usize) -> RMSNorm {
        let [weight] = parameters("RMSNorm::new", [Tensor::ones(&[dim])]);
        RMSNorm { weight, eps: None }
    }

    /// Normalizes the last axis of `x`, which must be `dim` long.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let axes = trailing_axes("RMSNorm", x, &self.weight.shape());
        let eps = self.eps.unwrap_or_else(|| machine_epsilon(x.dtype()));
        let ms = x.square().mean_keepdim(axes.as_slice());
        x.mul(ms.add(eps).rsqrt()).mul(&self.weight)
    }
}
