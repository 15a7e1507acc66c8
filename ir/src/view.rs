//! Views: movement ops as index maps. A movement op never copies; inside a kernel it rewrites the
//! index at which its source is read (and, for pads, the validity gate under which it is read).

use crate::graph::Node;
use crate::index::{Gate, Idx, IdxCtx};
use crate::ops::Op;

/// Row-major strides of a contiguous shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= n as i64;
    }
    strides
}

/// Flat row-major index of `idx` in a contiguous tensor of `shape`.
pub fn flat_index(ctx: &IdxCtx, shape: &[usize], idx: &[Idx]) -> Idx {
    contiguous_strides(shape)
        .iter()
        .zip(idx)
        .fold(Idx::konst(0), |acc, (&s, i)| ctx.add(&acc, &ctx.mul(i, s)))
}

/// Indices of a contiguous `shape` holding the flat index `flat`. A shape with a zero-sized
/// dimension holds no element, so no index into it is ever evaluated: all parts are zero then.
pub fn unravel(ctx: &IdxCtx, shape: &[usize], flat: &Idx) -> Vec<Idx> {
    if shape.contains(&0) {
        return vec![Idx::konst(0); shape.len()];
    }
    contiguous_strides(shape)
        .iter()
        .zip(shape)
        .map(|(&s, &n)| {
            if n == 1 {
                Idx::konst(0)
            } else {
                ctx.modulo(&ctx.div(flat, s), n as i64)
            }
        })
        .collect()
}

/// For a movement node, the index of its source read for result index `idx`, and the gate under
/// which that read is valid (outside the gate the result is the pad value, zero).
pub fn source_index(ctx: &IdxCtx, node: &Node, idx: &[Idx], gate: &Gate) -> (Vec<Idx>, Gate) {
    // Where the gate fails nothing is read: the index may assume it holds.
    let narrowed = ctx.narrowed(gate);
    let ctx = narrowed.as_ref();
    let src_shape = node.src()[0].shape();
    match node.op() {
        Op::Reshape => {
            let flat = flat_index(ctx, node.shape(), idx);
            (unravel(ctx, src_shape, &flat), gate.clone())
        }
        Op::Permute(perm) => {
            let mut out = vec![Idx::konst(0); perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                out[p] = idx[i].clone();
            }
            (out, gate.clone())
        }
        Op::Expand => {
            let out = idx
                .iter()
                .zip(src_shape.iter().zip(node.shape()))
                .map(|(i, (&s, &t))| {
                    if s == 1 && t != 1 {
                        Idx::konst(0)
                    } else {
                        i.clone()
                    }
                })
                .collect();
            (out, gate.clone())
        }
        Op::Pad(padding) => {
            let mut g = gate.clone();
            let mut out = Vec::with_capacity(idx.len());
            for ((i, &(before, _)), &n) in idx.iter().zip(padding).zip(src_shape) {
                g = g.and(ctx, i, before as i64, (before + n) as i64);
                out.push(ctx.add_const(i, -(before as i64)));
            }
            (out, g)
        }
        Op::Shrink(bounds) => {
            let out = idx
                .iter()
                .zip(bounds)
                .map(|(i, &(s, _))| ctx.add_const(i, s as i64))
                .collect();
            (out, gate.clone())
        }
        Op::Flip(axes) => {
            let out = idx
                .iter()
                .enumerate()
                .map(|(d, i)| {
                    if axes.contains(&d) {
                        ctx.add_const(&ctx.mul(i, -1), src_shape[d] as i64 - 1)
                    } else {
                        i.clone()
                    }
                })
                .collect();
            (out, gate.clone())
        }
        other => panic!("source_index: {other:?} is not a movement op"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Node};
    use std::sync::Arc;

    #[test]
    fn permute_then_reshape_maps_back() {
        let dev: Arc<str> = Arc::from("cpu");
        let a = Node::arange(0, DType::I32, &[2, 3], &dev);
        let p = Node::permute(&a, &[1, 0]); // (3, 2)
        let r = Node::reshape(&p, &[6]);
        let mut ctx = IdxCtx::new();
        let i = ctx.var(6);
        let (pi, _) = source_index(&ctx, &r, std::slice::from_ref(&i), &Gate::always());
        let (ai, _) = source_index(&ctx, &p, &pi, &Gate::always());
        // element i of the flattened transpose is a[i % 2][i / 2]
        for v in 0..6 {
            assert_eq!(ai[0].eval(&[v]), v % 2);
            assert_eq!(ai[1].eval(&[v]), v / 2);
        }
    }

    #[test]
    fn pad_gates_and_shifts() {
        let dev: Arc<str> = Arc::from("cpu");
        let a = Node::arange(0, DType::I32, &[3], &dev);
        let p = Node::pad(&a, &[(2, 1)]);
        let mut ctx = IdxCtx::new();
        let i = ctx.var(6);
        let (si, g) = source_index(&ctx, &p, &[i], &Gate::always());
        assert!(!g.eval(&[1]) && g.eval(&[2]) && g.eval(&[4]) && !g.eval(&[5]));
        assert_eq!(si[0].eval(&[3]), 1);
    }

    #[test]
    fn merged_contiguous_reshape_needs_no_div() {
        let mut ctx = IdxCtx::new();
        let i = ctx.var(4);
        let j = ctx.var(5);
        let flat = flat_index(&ctx, &[4, 5], &[i.clone(), j.clone()]);
        let back = unravel(&ctx, &[4, 5], &flat);
        assert_eq!(back, vec![i, j]);
    }

    /// A reshape read through padding is read only where the padding's gate holds, so its
    /// index is simplified under that gate: rows of 10 padded to 11 and flattened back to
    /// 100 per image need no division (`(100·i + 10·h + w) / 100 == i` for `h, w < 10`).
    #[test]
    fn a_reshape_under_padding_is_simplified_where_the_gate_holds() {
        let dev: Arc<str> = Arc::from("cpu");
        let a = Node::arange(0, DType::I32, &[4, 100], &dev);
        let rows = Node::reshape(&a, &[4, 10, 10]);
        let padded = Node::pad(&rows, &[(0, 0), (0, 1), (0, 1)]);
        let mut ctx = IdxCtx::new();
        let idx = [ctx.var(4), ctx.var(11), ctx.var(11)];
        let (ri, gate) = source_index(&ctx, &padded, &idx, &Gate::always());
        let (ai, _) = source_index(&ctx, &rows, &ri, &gate);
        assert_eq!(
            ai,
            [idx[0].clone(), ctx.add(&ctx.mul(&idx[1], 10), &idx[2])]
        );
        for (i, h, w) in [(0, 0, 0), (3, 9, 9), (2, 4, 7)] {
            assert!(gate.eval(&[i, h, w]));
            assert_eq!(ai[0].eval(&[i, h, w]), i);
            assert_eq!(ai[1].eval(&[i, h, w]), 10 * h + w);
        }
        assert!(!gate.eval(&[1, 10, 3]) && !gate.eval(&[1, 3, 10]));
    }
}
