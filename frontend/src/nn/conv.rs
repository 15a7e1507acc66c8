//! The 2-D convolution layer.

use crate::nn::init::{parameters, uniform};
use crate::nn::Module;
use crate::{Conv2dOptions, Tensor};

/// 2-D convolution of `(N, C_in, H, W)` inputs (see [`Tensor::conv2d`]).
#[derive(Module)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    #[module(skip)]
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// A layer from `in_channels` to `out_channels` with a `kernel` of (rows, cols) and a bias.
    /// Like torch, weight and bias are drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    /// `fan_in = in_channels / groups * kh * kw`. Panics if `options.groups` does not divide
    /// both channel counts or a size is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
    ) -> Conv2d {
        let (shape, bound) =
            Self::weight_shape("Conv2d::new", in_channels, out_channels, kernel, &options);
        let [weight, bias] = parameters(
            "Conv2d::new",
            [uniform(&shape, bound), uniform(&[out_channels], bound)],
        );
        Conv2d {
            weight,
            bias: Some(bias),
            options,
        }
    }

    /// A layer without a bias (the weight initialized as in [`Conv2d::new`]).
    pub fn no_bias(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
    ) -> Conv2d {
        let (shape, bound) = Self::weight_shape(
            "Conv2d::no_bias",
            in_channels,
            out_channels,
            kernel,
            &options,
        );
        let [weight] = parameters("Conv2d::no_bias", [uniform(&shape, bound)]);
        Conv2d {
            weight,
            bias: None,
            options,
        }
    }

    /// The weight's shape and the initialization bound, checking the arguments.
    fn weight_shape(
        op: &str,
        in_channels: usize,
        out_channels: usize,
        (kh, kw): (usize, usize),
        options: &Conv2dOptions,
    ) -> (Vec<usize>, f64) {
        let g = options.groups;
        assert!(
            in_channels > 0 && out_channels > 0 && kh > 0 && kw > 0,
            "{op}: channels ({in_channels} -> {out_channels}) and kernel ({kh}, {kw}) must be positive"
        );
        assert!(
            g > 0 && in_channels.is_multiple_of(g) && out_channels.is_multiple_of(g),
            "{op}: groups {g} must divide in_channels {in_channels} and out_channels {out_channels}"
        );
        let fan_in = in_channels / g * kh * kw;
        (
            vec![out_channels, in_channels / g, kh, kw],
            1.0 / (fan_in as f64).sqrt(),
        )
    }

    /// Applies the convolution to `x` of shape `(N, C_in, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, self.bias.as_ref(), self.options)
    }
}
