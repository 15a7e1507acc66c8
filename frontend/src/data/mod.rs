//! Datasets: the IDX file format and MNIST-layout datasets (images + labels, train + test).

mod error;
mod idx;
mod mnist;

pub use error::DataError;
pub use idx::{parse_idx, read_idx, IdxArray};
pub use mnist::{Mnist, Split};
