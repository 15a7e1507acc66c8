//! ferrograd: lazy tensors, compiled into fused kernels for whatever device you have.
//!
//! ```no_run
//! use ferrograd::Tensor;
//! let x = Tensor::randn(&[4, 784]);
//! let w = Tensor::randn(&[784, 10]);
//! let y = x.matmul(&w).relu().sum(-1);
//! println!("{:?}", y.to_vec::<f32>().unwrap());
//! ```

// `#[derive(Module)]` names `::ferrograd`; this lets the crate's own layers use it.
extern crate self as ferrograd;

mod autograd;
mod axes;
mod conv_grad;
pub mod data;
pub mod device;
mod element;
mod elementwise;
mod grad_rules;
mod gradcheck;
pub mod jit;
pub mod models;
mod movement;
pub mod nn;
mod nn_ops;
mod operators;
pub mod optim;
#[cfg(feature = "distributed")]
pub mod pipeline;
pub mod random;
pub mod recovery;
mod reduce;
pub mod shard;
pub mod state;
mod tensor;
pub mod testing;

pub use autograd::{is_grad_enabled, no_grad, NoGradGuard};
pub use axes::{All, AxisInt, IntoAxes, IntoShape};
pub use element::Element;
pub use elementwise::IntoOperand;
/// The distributed runtime: workers, remote devices (`remote:HOST:PORT/DEVICE`), cluster
/// security.
#[cfg(feature = "distributed")]
pub use ferrograd_distributed as distributed;
pub use ferrograd_ir::DType;
pub use ferrograd_runtime as runtime;
pub use ferrograd_runtime::{Error, Result};
pub use jit::Jit;
pub use nn_ops::Conv2dOptions;
pub use recovery::{Recovery, RecoveryError};
pub use shard::ShardedTensor;
pub use tensor::{Tensor, DEFAULT_FLOAT};
