//! Neural-network building blocks: the [`Module`] trait and its derive, layers and losses.
//!
//! A layer is a plain struct of public tensors with a `forward` method; constructors initialize
//! parameters like torch does (from the seeded generator, see [`Tensor::manual_seed`]), realized
//! and marked with `requires_grad(true)`. Layers whose forward pass updates buffers in training
//! mode ([`BatchNorm2d`]) queue the new values for the next optimizer step: see
//! [`take_pending_updates`].
//!
//! ```
//! use ferrograd::nn::{loss, Linear, Module};
//! use ferrograd::Tensor;
//!
//! #[derive(Module)]
//! struct Mlp {
//!     fc1: Linear,
//!     fc2: Linear,
//!     #[module(skip)]
//!     hidden: usize,
//! }
//!
//! impl Mlp {
//!     fn forward(&self, x: &Tensor) -> Tensor {
//!         self.fc2.forward(&self.fc1.forward(x).relu())
//!     }
//! }
//!
//! let net = Mlp { fc1: Linear::new(4, 8), fc2: Linear::new(8, 3), hidden: 8 };
//! let x = Tensor::randn(&[5, 4]);
//! let labels = Tensor::from_slice(&[0i32, 2, 1, 1, 0], &[5]);
//! loss::cross_entropy(&net.forward(&x), &labels, 0.1).backward();
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
//! assert_eq!(net.fc1.weight.grad().unwrap().shape(), vec![net.hidden, 4]);
//! ```
//!
//! [`Tensor::manual_seed`]: crate::Tensor::manual_seed

mod attention;
mod batch_norm;
mod conv;
mod dropout;
mod embedding;
mod init;
mod linear;
pub mod loss;
mod module;
mod norm;
mod pending;

pub use attention::{scaled_dot_product_attention, MultiheadAttention};
pub use batch_norm::BatchNorm2d;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use ferrograd_derive::Module;
pub use linear::Linear;
pub use module::{visit_child, Module, StateKind};
pub use norm::{LayerNorm, RMSNorm};
pub use pending::take_pending_updates;
