//! Neural-network building blocks: the [`Module`] trait and its derive, layers and losses.
//!
//! A layer is a plain struct of public tensors with a `forward` method; constructors initialize
//! parameters like torch does (from the seeded generator, see [`Tensor::manual_seed`]), realized
//! and marked with `requires_grad(true)`. Layers whose forward pass updates buffers in training
//! mode ([`BatchNorm2d`]) queue the new values for the next optimizer step: see
//! [`take_pending_updates`].
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
