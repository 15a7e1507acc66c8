//! Axis splitting: an iteration axis that the kernel reads through `v / k` and `v % k` (a
//! dimension merged from smaller ones: attention's heads merged back into the model width, a
//! flattened image) becomes the axes `v / k` and `v % k`. Every index is affine in those, so
//! the planner can merge, vectorize and tile them like any other axis; unsplit, the whole axis
//! stayed scalar (a weight gradient read through the head merge ran 2-3x slower than the same
//! reduction over contiguous rows).

use super::Space;
use crate::index::{Atom, Idx, IdxCtx};

/// The iteration space after splitting, and the way back to the original axes.
pub(super) struct Split {
    /// The space the kernel is planned and emitted over.
    pub space: Space,
    /// Each original axis as `(split axis, multiplier)` parts.
    parts: Vec<Vec<(usize, i64)>>,
}

impl Split {
    /// Splits the axes of `orig` whose variable (`vars`, one per axis) some of `indices`
    /// divides or reduces modulo a proper divisor `k` of the axis' size: into `n / k` and `k`,
    /// or along a chain of such divisors (`64 -> 4 x 4 x 4` for `v / 16`, `v / 4 % 4`, `v % 4`).
    pub fn new(orig: &Space, indices: &[&Idx], vars: &[Idx]) -> Split {
        let mut full = Vec::new();
        let mut reduce = Vec::new();
        let mut parts = Vec::new();
        for (d, (&n, &r)) in orig.full.iter().zip(&orig.reduce).enumerate() {
            let mut divisors = Vec::new();
            if let [(Atom::Var(v), 1)] = vars[d].terms() {
                for e in indices {
                    collect_divisors(e, *v, &mut divisors);
                }
            }
            let chain = divisor_chain(n as i64, divisors);
            let mut axis = Vec::new();
            let mut size = n as i64;
            for k in chain.into_iter().chain([1]) {
                axis.push((full.len(), k));
                full.push((size / k) as usize);
                reduce.push(r);
                size = k;
            }
            parts.push(axis);
        }
        Split {
            space: Space { full, reduce },
            parts,
        }
    }

    /// `orig` itself, no axis split.
    pub fn whole(orig: &Space) -> Split {
        Split {
            space: Space {
                full: orig.full.clone(),
                reduce: orig.reduce.clone(),
            },
            parts: (0..orig.full.len()).map(|d| vec![(d, 1)]).collect(),
        }
    }

    /// True when no axis was split.
    pub fn is_identity(&self) -> bool {
        self.parts.iter().all(|p| p.len() == 1)
    }

    /// The original axes' indices given the split axes' indices.
    pub fn original(&self, ctx: &IdxCtx, idx: &[Idx]) -> Vec<Idx> {
        self.parts
            .iter()
            .map(|axis| {
                axis.iter().fold(Idx::konst(0), |acc, &(a, k)| {
                    ctx.add(&acc, &ctx.mul(&idx[a], k))
                })
            })
            .collect()
    }
}

/// The divisors `k` of `x / k` and `x % k` in `e` (nested ones included) where `x` is the
/// variable `v` alone.
fn collect_divisors(e: &Idx, v: u32, out: &mut Vec<i64>) {
    for (atom, _) in e.terms() {
        if let Atom::Div(inner, k) | Atom::Mod(inner, k) = atom {
            if matches!(inner.terms(), [(Atom::Var(w), 1)] if *w == v) && inner.constant() == 0 {
                out.push(*k);
            }
            collect_divisors(inner, v, out);
        }
    }
}

/// The largest chain `n > k1 > k2 > ... > 1` of `divisors` that each divide the previous one,
/// largest first.
fn divisor_chain(n: i64, mut divisors: Vec<i64>) -> Vec<i64> {
    divisors.sort_unstable_by(|a, b| b.cmp(a));
    divisors.dedup();
    let mut chain: Vec<i64> = Vec::new();
    for k in divisors {
        let last = chain.last().copied().unwrap_or(n);
        if k > 1 && k < last && last % k == 0 {
            chain.push(k);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[b, t, 64]` value read from a `[h, t, 16]` buffer (heads merged): `o = 16h + d` at
    /// `h*512 + t*16 + d`.
    fn head_merged_load(ctx: &IdxCtx, t: &Idx, o: &Idx) -> Idx {
        ctx.add(
            &ctx.add(&ctx.mul(&ctx.div(o, 16), 512), &ctx.mul(t, 16)),
            &ctx.modulo(o, 16),
        )
    }

    /// The space of `full` and `reduce`, a context, and one variable per axis.
    fn space(full: &[usize], reduce: &[bool]) -> (Space, IdxCtx, Vec<Idx>) {
        let mut ctx = IdxCtx::new();
        let vars = full.iter().map(|&n| ctx.var(n)).collect();
        let space = Space {
            full: full.to_vec(),
            reduce: reduce.to_vec(),
        };
        (space, ctx, vars)
    }

    #[test]
    fn a_head_merged_axis_splits_into_heads_and_head_width() {
        let (orig, ctx, vars) = space(&[8, 64], &[true, false]);
        let load = head_merged_load(&ctx, &vars[0], &vars[1]);
        let split = Split::new(&orig, &[&load], &vars);
        assert_eq!(split.space.full, vec![8, 4, 16]);
        assert_eq!(split.space.reduce, vec![true, false, false]);
        let (_, ctx, svars) = space(&split.space.full, &split.space.reduce);
        let back = split.original(&ctx, &svars);
        let reload = head_merged_load(&ctx, &back[0], &back[1]);
        // Affine in the split variables: h*512 + t*16 + d.
        assert!(reload
            .terms()
            .iter()
            .all(|(a, _)| matches!(a, Atom::Var(_))));
    }

    #[test]
    fn axes_without_divisions_stay_whole() {
        let (orig, ctx, vars) = space(&[6, 10], &[false, false]);
        let affine = ctx.add(&ctx.mul(&vars[0], 10), &vars[1]);
        // 10 % 3 != 0: a division that does not divide the axis is no split.
        let odd = ctx.div(&vars[1], 3);
        let split = Split::new(&orig, &[&affine, &odd], &vars);
        assert!(split.is_identity());
        assert_eq!(divisor_chain(64, vec![4, 16, 16, 8]), vec![16, 8, 4]);
        assert_eq!(divisor_chain(64, vec![16, 6]), vec![16]);
    }
}
