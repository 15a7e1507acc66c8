//! Scaled dot-product attention and multi-head attention.

use crate::nn::init::{parameters, uniform};
use crate::nn::{Linear, Module};
use crate::Tensor;

/// `softmax(q @ k^T / sqrt(d)) @ v` for `q` of shape `[..., L, d]`, `k` of shape `[..., S, d]`
/// and `v` of shape `[..., S, dv]` (leading axes broadcast), giving `[..., L, dv]`. With
/// `causal`, query `i` attends only to keys `j <= i` (torch's `is_causal`, aligned at the top
/// left). Panics if the shapes do not fit together.
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Tensor {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    assert!(
        qs.len() >= 2
            && ks.len() >= 2
            && vs.len() >= 2
            && qs[qs.len() - 1] == ks[ks.len() - 1]
            && ks[ks.len() - 2] == vs[vs.len() - 2],
        "scaled_dot_product_attention: query {qs:?}, key {ks:?} and value {vs:?} must be \
         [..., L, d], [..., S, d] and [..., S, dv]"
    );
    let d = qs[qs.len() - 1];
    let scores = q.matmul(&k.t()).mul(1.0 / (d as f64).sqrt());
    let scores = if causal {
        let (l, s) = (qs[qs.len() - 2], ks[ks.len() - 2]);
        let past = Tensor::indices(&[l, s], 1).le(Tensor::indices(&[l, s], 0));
        past.where_(&scores, f64::NEG_INFINITY)
    } else {
        scores
    };
    scores.softmax(-1).matmul(v)
}

/// Multi-head attention over `[batch, seq, embed_dim]` inputs: the queries, keys and values
/// are projected, split into `num_heads` heads of `embed_dim / num_heads`, attended with
/// [`scaled_dot_product_attention`] per head, joined and projected by `out_proj`.
#[derive(Module)]
pub struct MultiheadAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    /// Number of heads.
    #[module(skip)]
    pub num_heads: usize,
}

impl MultiheadAttention {
    /// Attention with `num_heads` heads (which must divide `embed_dim`), initialized like
    /// torch: the query, key and value weights are the three blocks of one Xavier-uniform
    /// `[3 * embed_dim, embed_dim]` matrix, the output weight is a default [`Linear`] weight,
    /// and every bias is zero.
    pub fn new(embed_dim: usize, num_heads: usize) -> MultiheadAttention {
        assert!(
            embed_dim > 0 && num_heads > 0 && embed_dim.is_multiple_of(num_heads),
            "MultiheadAttention::new: num_heads {num_heads} must divide embed_dim {embed_dim}"
        );
        let e = embed_dim;
        let xavier = (6.0 / (4 * e) as f64).sqrt();
        let [wq, wk, wv, bq, bk, bv, bo] = parameters(
            "MultiheadAttention::new",
            [
                uniform(&[e, e], xavier),
                uniform(&[e, e], xavier),
                uniform(&[e, e], xavier),
                Tensor::zeros(&[e]),
                Tensor::zeros(&[e]),
                Tensor::zeros(&[e]),
                Tensor::zeros(&[e]),
            ],
        );
        let out_proj = Linear {
            bias: Some(bo),
            ..Linear::no_bias(e, e)
        };
        MultiheadAttention {
            q_proj: Linear {
                weight: wq,
                bias: Some(bq),
            },
            k_proj: Linear {
                weight: wk,
                bias: Some(bk),
            },
            v_proj: Linear {
                weight: wv,
                bias: Some(bv),
            },
            out_proj,
            num_heads,
        }
    }

    /// Attends `query` `[batch, L, embed_dim]` to `key` and `value` `[batch, S, embed_dim]`
    /// (optionally causally, see [`scaled_dot_product_attention`]), giving
    /// `[batch, L, embed_dim]`. Panics if the shapes do not fit the layer.
    pub fn forward(&self, query: &Tensor, key: &Tensor, value: &Tensor, causal: bool) -> Tensor {
        let e = self.q_proj.weight.shape()[1];
        let (qs, ks, vs) = (query.shape(), key.shape(), value.shape());
        assert!(
            qs.len() == 3
                && ks.len() == 3
                && qs[2] == e
                && ks == vs
                && ks[0] == qs[0]
                && ks[2] == e,
            "MultiheadAttention: query {qs:?}, key {ks:?} and value {vs:?} must be \
             [batch, L, {e}], [batch, S, {e}] and [batch, S, {e}]"
        );
        let h = self.num_heads;
        let heads = |x: Tensor| {
            let s = x.shape();
            x.reshape([s[0], s[1], h, e / h]).transpose(1, 2)
        };
        let q = heads(self.q_proj.forward(query));
        let k = heads(self.k_proj.forward(key));
        let v = heads(self.v_proj.forward(value));
        let out = scaled_dot_product_attention(&q, &k, &v, causal); // [batch, h, L, e / h]
        self.out_proj
            .forward(&out.transpose(1, 2).reshape([qs[0], qs[1], e]))
    }
}
