//! Lookup tables of vectors.

use crate::nn::init::parameters;
use crate::nn::Module;
use crate::Tensor;

/// A table of `num_embeddings` vectors of `embedding_dim` elements, looked up by integer index.
#[derive(Module)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A table with entries drawn from N(0, 1), like torch.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Embedding {
        let [weight] = parameters(
            "Embedding::new",
            [Tensor::randn(&[num_embeddings, embedding_dim])],
        );
        Embedding { weight }
    }

    /// The rows of the table at `indices` (an integer tensor of any shape), shaped
    /// `[..indices.shape, embedding_dim]`. The gradient reaches exactly the rows looked up.
    ///
    /// Indices are lazy, so their range is not checked: an index outside
    /// `[0, num_embeddings)` gives a row of zeros (torch raises an error).
    pub fn forward(&self, indices: &Tensor) -> Tensor {
        let ws = self.weight.shape();
        assert!(
            indices.dtype().is_int() && ws.len() == 2,
            "Embedding: indices must be an integer tensor, got {}{:?} (table {ws:?})",
            indices.dtype(),
            indices.shape()
        );
        let dim = ws[1];
        let n = indices.numel();
        let rows = indices.reshape([n, 1]).expand([n, dim]);
        let mut out_shape = indices.shape();
        out_shape.push(dim);
        self.weight.gather(0, &rows).reshape(out_shape)
    }
}
