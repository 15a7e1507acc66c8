//! The rewrite rules, in named groups.
//!
//! Every rule is a local rewrite: it looks at the e-nodes of one kind in an e-class (and at
//! their operands' e-classes) and adds equivalent e-nodes to that e-class. Parameters of the
//! ops (permutations, paddings, shapes) take part in the match, which egg's textual patterns
//! cannot express, so each rule is a function; `KindSearcher` finds the e-classes it applies
//! to through egg's per-op index.
//!
//! Exactness (IEEE, and the reference semantics of `crate::reference`) is noted per rule.
//! Rules marked *fast-math* change float results (rounding, signed zeros, NaN/Inf) and are
//! only applied when [`RuleOptions::fast_math`] is set; several are exact for integers and
//! bools (wrapping arithmetic is a ring) and applied to those always.

use super::lang::{ENode, EOp, Facts, GraphAnalysis, GraphEGraph, Kind, Konst};
use crate::dtype::{DType, Scalar};
use crate::ops::{BinaryOp, ReduceOp, TernaryOp, UnaryOp};
use egg::{Applier, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};

/// Options that decide which rules may apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RuleOptions {
    /// Allow rewrites that change float results (see the module doc).
    pub fast_math: bool,
}

/// A rewrite function: the e-classes equal to e-class `id` that it adds.
type RewriteFn = fn(&mut GraphEGraph, Id, RuleOptions) -> Vec<Id>;

/// One rule of a group.
pub struct RuleDef {
    /// `group/name`.
    pub name: &'static str,
    /// The kind of e-node the rule starts from.
    pub kind: Kind,
    /// True when the rule is exact for every dtype; false when it needs fast-math for floats.
    pub exact: bool,
    rewrite: RewriteFn,
}

/// Finds the e-classes holding an e-node of one kind.
struct KindSearcher(Kind);

impl Searcher<ENode, GraphAnalysis> for KindSearcher {
    fn search_eclass_with_limit(
        &self,
        egraph: &GraphEGraph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, ENode>> {
        (limit > 0 && egraph[eclass].nodes.iter().any(|n| n.op.kind() == self.0)).then(|| {
            SearchMatches {
                eclass,
                substs: vec![Subst::default()],
                ast: None,
            }
        })
    }

    fn search_with_limit(
        &self,
        egraph: &GraphEGraph,
        mut limit: usize,
    ) -> Vec<SearchMatches<'_, ENode>> {
        let mut out = Vec::new();
        let Some(classes) = egraph.classes_for_op(&self.0) else {
            return out;
        };
        for id in classes {
            if limit == 0 {
                break;
            }
            if let Some(m) = self.search_eclass_with_limit(egraph, id, limit) {
                limit -= 1;
                out.push(m);
            }
        }
        out
    }

    fn vars(&self) -> Vec<Var> {
        Vec::new()
    }
}

/// Applies a [`RewriteFn`] and unions what it finds with the matched e-class.
struct LocalApplier {
    rewrite: RewriteFn,
    options: RuleOptions,
}

impl Applier<ENode, GraphAnalysis> for LocalApplier {
    fn apply_one(
        &self,
        egraph: &mut GraphEGraph,
        eclass: Id,
        _subst: &Subst,
        _ast: Option<&PatternAst<ENode>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for id in (self.rewrite)(egraph, eclass, self.options) {
            if egraph.union(eclass, id) {
                changed.push(eclass);
            }
        }
        changed
    }
}

impl RuleDef {
    /// The egg rewrite of this rule under `options`.
    pub fn to_rewrite(&self, options: RuleOptions) -> Rewrite<ENode, GraphAnalysis> {
        Rewrite::new(
            self.name,
            KindSearcher(self.kind),
            LocalApplier {
                rewrite: self.rewrite,
                options,
            },
        )
        .expect("rule names are unique and searchers bind no variables")
    }
}

const fn rule(name: &'static str, kind: Kind, exact: bool, rewrite: RewriteFn) -> RuleDef {
    RuleDef {
        name,
        kind,
        exact,
        rewrite,
    }
}

/// Algebraic identities.
pub const ALGEBRAIC: &[RuleDef] = &[
    rule(
        "algebraic/mul-one",
        Kind::Binary(BinaryOp::Mul),
        true,
        mul_one,
    ),
    rule(
        "algebraic/add-zero",
        Kind::Binary(BinaryOp::Add),
        false,
        add_zero,
    ),
    rule(
        "algebraic/mul-zero",
        Kind::Binary(BinaryOp::Mul),
        false,
        mul_zero,
    ),
    rule(
        "algebraic/neg-neg",
        Kind::Unary(UnaryOp::Neg),
        true,
        neg_neg,
    ),
    rule(
        "algebraic/recip-recip",
        Kind::Unary(UnaryOp::Recip),
        false,
        recip_recip,
    ),
    rule(
        "algebraic/where-const",
        Kind::Ternary(TernaryOp::Where),
        true,
        where_const,
    ),
    rule(
        "algebraic/where-same",
        Kind::Ternary(TernaryOp::Where),
        true,
        where_same,
    ),
    rule(
        "algebraic/max-self",
        Kind::Binary(BinaryOp::Max),
        true,
        idempotent,
    ),
    rule(
        "algebraic/and-self",
        Kind::Binary(BinaryOp::And),
        true,
        idempotent,
    ),
    rule(
        "algebraic/or-self",
        Kind::Binary(BinaryOp::Or),
        true,
        idempotent,
    ),
    rule(
        "algebraic/sub-self",
        Kind::Binary(BinaryOp::Add),
        false,
        sub_self,
    ),
];

/// Movement folding.
pub const MOVEMENT: &[RuleDef] = &[
    rule(
        "movement/reshape-reshape",
        Kind::Reshape,
        true,
        reshape_reshape,
    ),
    rule(
        "movement/permute-permute",
        Kind::Permute,
        true,
        permute_permute,
    ),
    rule("movement/expand-expand", Kind::Expand, true, expand_expand),
    rule("movement/flip-flip", Kind::Flip, true, flip_flip),
    rule("movement/shrink-shrink", Kind::Shrink, true, shrink_shrink),
    rule("movement/pad-pad", Kind::Pad, true, pad_pad),
    rule("movement/shrink-pad", Kind::Shrink, true, shrink_pad),
    rule(
        "movement/permute-reduce",
        Kind::Permute,
        true,
        permute_reduce,
    ),
    rule(
        "movement/permute-reshape",
        Kind::Permute,
        true,
        permute_unit_reshape,
    ),
];

/// Strength reduction.
pub const STRENGTH: &[RuleDef] = &[
    rule(
        "strength/idiv-pow2",
        Kind::Binary(BinaryOp::IDiv),
        true,
        idiv_pow2,
    ),
    rule(
        "strength/mod-pow2",
        Kind::Binary(BinaryOp::Mod),
        true,
        mod_pow2,
    ),
    rule(
        "strength/pow-small-int",
        Kind::Unary(UnaryOp::Exp2),
        false,
        pow_small_int,
    ),
];

/// Reductions of broadcasts.
pub const REDUCE_BROADCAST: &[RuleDef] = &[rule(
    "reduce-broadcast/reduce-expand",
    Kind::Reduce,
    true,
    reduce_expand,
)];

/// Small reductions written out as elementwise ops.
pub const UNROLL: &[RuleDef] = &[rule(
    "unroll/small-reduce",
    Kind::Reduce,
    true,
    unroll_small_reduce,
)];

/// Distributivity where it saves work.
pub const DISTRIBUTIVE: &[RuleDef] = &[
    rule(
        "distributive/factor-mul",
        Kind::Binary(BinaryOp::Add),
        false,
        factor_mul,
    ),
    rule(
        "distributive/sum-of-scaled",
        Kind::Reduce,
        false,
        sum_of_scaled,
    ),
];

/// Every rule group with its name. Constant folding is not a rule list: the analysis folds
/// (`GraphAnalysis::fold_constants`), computing each value with the reference evaluator.
pub const GROUPS: &[(&str, &[RuleDef])] = &[
    ("algebraic", ALGEBRAIC),
    ("movement", MOVEMENT),
    ("strength", STRENGTH),
    ("reduce-broadcast", REDUCE_BROADCAST),
    ("distributive", DISTRIBUTIVE),
    ("unroll", UNROLL),
];

// ---- helpers -----------------------------------------------------------------------------

fn facts(eg: &GraphEGraph, id: Id) -> &Facts {
    &eg[id].data
}

fn nodes_of(eg: &GraphEGraph, id: Id, kind: Kind) -> Vec<ENode> {
    eg[id]
        .nodes
        .iter()
        .filter(|n| n.op.kind() == kind)
        .cloned()
        .collect()
}

/// Every node of kind `outer` in class `id` with every node of kind `inner` in the class of its
/// first operand: what a rule folding one op into the op below it matches.
fn stacked(eg: &GraphEGraph, id: Id, outer: Kind, inner: Kind) -> Vec<(ENode, ENode)> {
    nodes_of(eg, id, outer)
        .into_iter()
        .flat_map(|n| {
            nodes_of(eg, n.children[0], inner)
                .into_iter()
                .map(move |i| (n.clone(), i))
        })
        .collect()
}

fn add(eg: &mut GraphEGraph, op: EOp, children: Vec<Id>) -> Id {
    eg.add(ENode::new(op, children))
}

/// A constant with the dtype, shape and device of e-class `like`.
fn konst_like(eg: &mut GraphEGraph, like: Id, value: Scalar) -> Id {
    let f = facts(eg, like).clone();
    add(
        eg,
        EOp::Const {
            value: Konst(value.cast(f.dtype)),
            dtype: f.dtype,
            shape: f.shape,
            device: f.device,
        },
        Vec::new(),
    )
}

/// True when a float rewrite may change results only under fast-math.
fn allowed(dtype: DType, options: RuleOptions) -> bool {
    !dtype.is_float() || options.fast_math
}

fn binary_operands(eg: &GraphEGraph, id: Id, op: BinaryOp) -> Vec<(Id, Id)> {
    nodes_of(eg, id, Kind::Binary(op))
        .into_iter()
        .map(|n| (n.children[0], n.children[1]))
        .collect()
}

// ---- algebraic ---------------------------------------------------------------------------

/// `x * 1 -> x` (exact: also NaN and Inf, and `and true` for bools).
fn mul_one(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (a, b) in binary_operands(eg, id, BinaryOp::Mul) {
        for (x, c) in [(a, b), (b, a)] {
            if facts(eg, c).is_const(Scalar::Int(1)) {
                out.push(x);
            }
        }
    }
    out
}

/// `x + 0 -> x`: exact for integers, bools and `x + (-0.0)`; `x + (+0.0)` turns `-0` into `+0`,
/// so that one is fast-math.
fn add_zero(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (a, b) in binary_operands(eg, id, BinaryOp::Add) {
        for (x, c) in [(a, b), (b, a)] {
            let Some(k) = facts(eg, c).konst else {
                continue;
            };
            let zero = match k {
                Scalar::Float(f) => f == 0.0 && (f.is_sign_negative() || options.fast_math),
                other => !other.as_bool(),
            };
            if zero {
                out.push(x);
            }
        }
    }
    out
}

/// `x * 0 -> 0`: exact for integers and bools; for floats `NaN * 0`, `Inf * 0` and `-x * 0`
/// differ, so fast-math.
fn mul_zero(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (a, b) in binary_operands(eg, id, BinaryOp::Mul) {
        for c in [a, b] {
            let f = facts(eg, c);
            if f.is_const(Scalar::Int(0)) && allowed(f.dtype, options) {
                out.push(c);
            }
        }
    }
    out
}

/// `-(-x) -> x` (exact; wrapping negation is an involution too).
fn neg_neg(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (_, inner) in stacked(eg, id, Kind::Unary(UnaryOp::Neg), Kind::Unary(UnaryOp::Neg)) {
        out.push(inner.children[0]);
    }
    out
}

/// `1/(1/x) -> x` (fast-math: each reciprocal rounds, and `1/(1/x)` overflows for tiny `x`).
fn recip_recip(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    if !options.fast_math {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (_, inner) in stacked(
        eg,
        id,
        Kind::Unary(UnaryOp::Recip),
        Kind::Unary(UnaryOp::Recip),
    ) {
        out.push(inner.children[0]);
    }
    out
}

/// `where(true, a, b) -> a`, `where(false, a, b) -> b` (exact).
fn where_const(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for n in nodes_of(eg, id, Kind::Ternary(TernaryOp::Where)) {
        if let Some(c) = facts(eg, n.children[0]).konst {
            out.push(if c.as_bool() {
                n.children[1]
            } else {
                n.children[2]
            });
        }
    }
    out
}

/// `where(c, a, a) -> a` (exact).
fn where_same(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    nodes_of(eg, id, Kind::Ternary(TernaryOp::Where))
        .into_iter()
        .filter(|n| eg.find(n.children[1]) == eg.find(n.children[2]))
        .map(|n| n.children[1])
        .collect()
}

/// `max(x, x)`, `x & x`, `x | x -> x` (exact, NaN included).
fn idempotent(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    eg[id]
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.op,
                EOp::Binary(BinaryOp::Max | BinaryOp::And | BinaryOp::Or)
            ) && eg.find(n.children[0]) == eg.find(n.children[1])
        })
        .map(|n| n.children[0])
        .collect()
}

/// `x + (-x) -> 0`: exact for integers; fast-math for floats (`Inf - Inf` is NaN).
fn sub_self(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    if !allowed(facts(eg, id).dtype, options) || facts(eg, id).dtype == DType::Bool {
        return Vec::new();
    }
    let mut hit = false;
    for (a, b) in binary_operands(eg, id, BinaryOp::Add) {
        for (x, y) in [(a, b), (b, a)] {
            hit |= nodes_of(eg, y, Kind::Unary(UnaryOp::Neg))
                .iter()
                .any(|n| eg.find(n.children[0]) == eg.find(x));
        }
    }
    if hit {
        vec![konst_like(eg, id, Scalar::Int(0))]
    } else {
        Vec::new()
    }
}

// ---- movement ----------------------------------------------------------------------------

/// `reshape(reshape(x)) -> reshape(x)`, or `x` when the shapes agree (exact).
fn reshape_reshape(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Reshape, Kind::Reshape) {
        let EOp::Reshape(shape) = &n.op else {
            continue;
        };
        let x = inner.children[0];
        if facts(eg, x).shape == *shape {
            out.push(x);
        } else {
            out.push(add(eg, EOp::Reshape(shape.clone()), vec![x]));
        }
    }
    out
}

/// `permute(permute(x, q), p) -> permute(x, q∘p)`, or `x` for the identity (exact).
fn permute_permute(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Permute, Kind::Permute) {
        let (EOp::Permute(p), EOp::Permute(q)) = (&n.op, &inner.op) else {
            continue;
        };
        let composed: Vec<usize> = p.iter().map(|&i| q[i]).collect();
        let x = inner.children[0];
        if composed.iter().enumerate().all(|(i, &c)| i == c) {
            out.push(x);
        } else {
            out.push(add(eg, EOp::Permute(composed), vec![x]));
        }
    }
    out
}

/// `permute(reduce(x, axes), p) -> reduce(permute(x, p), axes')`: a permutation moves through
/// a reduction (reduced axes keep size 1, so both sides have one shape), where it can meet and
/// cancel a permutation below, as in a weight gradient `(xᵀ·dy)ᵀ`, whose reduction then writes
/// the layout its readers want. Exact: each output sums the same elements; the order of a
/// reduction is the backend's in either form.
fn permute_reduce(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Permute, Kind::Reduce) {
        let (EOp::Permute(p), EOp::Reduce(op, axes)) = (&n.op, &inner.op) else {
            continue;
        };
        // Result axis `j` is source axis `p[j]`.
        let moved: Vec<usize> = (0..p.len()).filter(|&j| axes.contains(&p[j])).collect();
        let permuted = add(eg, EOp::Permute(p.clone()), vec![inner.children[0]]);
        out.push(add(eg, EOp::Reduce(*op, moved), vec![permuted]));
    }
    out
}

/// `permute(reshape(x), p)` where the reshape only inserts or removes size-1 axes ->
/// `reshape(permute(x, q))` with `q` the same reordering of `x`'s axes, so the permutation can
/// go on down (exact).
fn permute_unit_reshape(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Permute, Kind::Reshape) {
        let EOp::Permute(p) = &n.op else {
            continue;
        };
        let x = inner.children[0];
        let from = facts(eg, x).shape.clone();
        let to = facts(eg, n.children[0]).shape.clone();
        let non_unit = |shape: &[usize]| -> Vec<usize> {
            (0..shape.len()).filter(|&a| shape[a] != 1).collect()
        };
        let (src_axes, mid_axes) = (non_unit(&from), non_unit(&to));
        let same = src_axes.len() == mid_axes.len()
            && src_axes
                .iter()
                .zip(&mid_axes)
                .all(|(&a, &b)| from[a] == to[b]);
        if !same {
            continue;
        }
        // The source's non-unit axes take their new order in the positions they hold; its
        // size-1 axes stay where they are.
        let mut reordered = p
            .iter()
            .filter_map(|&m| mid_axes.iter().position(|&b| b == m).map(|k| src_axes[k]));
        let q: Vec<usize> = (0..from.len())
            .map(|a| {
                if from[a] == 1 {
                    a
                } else {
                    reordered.next().expect("one source axis per non-unit axis")
                }
            })
            .collect();
        let shape = facts(eg, id).shape.clone();
        if q.iter().enumerate().all(|(i, &a)| i == a) {
            out.push(if shape == from {
                x
            } else {
                add(eg, EOp::Reshape(shape), vec![x])
            });
        } else {
            let permuted = add(eg, EOp::Permute(q), vec![x]);
            out.push(add(eg, EOp::Reshape(shape), vec![permuted]));
        }
    }
    out
}

/// `expand(expand(x)) -> expand(x)` (exact).
fn expand_expand(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Expand, Kind::Expand) {
        out.push(add(eg, n.op.clone(), vec![inner.children[0]]));
    }
    out
}

/// `flip(flip(x, a), b) -> flip(x, a xor b)`, or `x` when the axes cancel (exact).
fn flip_flip(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Flip, Kind::Flip) {
        let (EOp::Flip(a), EOp::Flip(b)) = (&n.op, &inner.op) else {
            continue;
        };
        let mut axes: Vec<usize> = a
            .iter()
            .filter(|x| !b.contains(x))
            .chain(b.iter().filter(|x| !a.contains(x)))
            .copied()
            .collect();
        axes.sort_unstable();
        let x = inner.children[0];
        out.push(if axes.is_empty() {
            x
        } else {
            add(eg, EOp::Flip(axes), vec![x])
        });
    }
    out
}

/// `shrink(shrink(x)) -> shrink(x)` with the composed bounds (exact).
fn shrink_shrink(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Shrink, Kind::Shrink) {
        let (EOp::Shrink(outer), EOp::Shrink(b)) = (&n.op, &inner.op) else {
            continue;
        };
        let bounds = b
            .iter()
            .zip(outer)
            .map(|(&(s, _), &(s2, e2))| (s + s2, s + e2))
            .collect();
        out.push(add(eg, EOp::Shrink(bounds), vec![inner.children[0]]));
    }
    out
}

/// `pad(pad(x)) -> pad(x)` with the summed paddings (exact: both pad with zeros).
fn pad_pad(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Pad, Kind::Pad) {
        let (EOp::Pad(outer), EOp::Pad(p)) = (&n.op, &inner.op) else {
            continue;
        };
        let padding = p
            .iter()
            .zip(outer)
            .map(|(&(b, e), &(b2, e2))| (b + b2, e + e2))
            .collect();
        out.push(add(eg, EOp::Pad(padding), vec![inner.children[0]]));
    }
    out
}

/// `shrink(pad(x))` whose window lies inside `x`: `shrink(x)` (or `x`); a window that reaches
/// into the padding is left alone (exact).
fn shrink_pad(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (n, inner) in stacked(eg, id, Kind::Shrink, Kind::Pad) {
        let (EOp::Shrink(bounds), EOp::Pad(p)) = (&n.op, &inner.op) else {
            continue;
        };
        let x = inner.children[0];
        let shape = facts(eg, x).shape.clone();
        let inside = bounds
            .iter()
            .zip(p)
            .zip(&shape)
            .all(|((&(s, e), &(before, _)), &len)| s >= before && e <= before + len);
        if !inside {
            continue;
        }
        let rel: Vec<(usize, usize)> = bounds
            .iter()
            .zip(p)
            .map(|(&(s, e), &(before, _))| (s - before, e - before))
            .collect();
        let whole = rel
            .iter()
            .zip(&shape)
            .all(|(&(s, e), &len)| s == 0 && e == len);
        out.push(if whole {
            x
        } else {
            add(eg, EOp::Shrink(rel), vec![x])
        });
    }
    out
}

// ---- strength reduction ------------------------------------------------------------------

/// The exponent `k` when e-class `c` is the constant `2^k` (k >= 0).
fn pow2_const(eg: &GraphEGraph, c: Id) -> Option<u32> {
    let v = facts(eg, c).konst?.as_i64();
    (v > 0 && (v as u64).is_power_of_two()).then(|| v.trailing_zeros())
}

/// `x / 2^k -> x >> k` for unsigned integers, `x / 1 -> x` for every integer (exact:
/// truncation and flooring agree on non-negative values).
fn idiv_pow2(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (x, c) in binary_operands(eg, id, BinaryOp::IDiv) {
        let Some(k) = pow2_const(eg, c) else {
            continue;
        };
        let dtype = facts(eg, x).dtype;
        if k == 0 {
            out.push(x);
        } else if matches!(dtype, DType::U8 | DType::U32) {
            let shift = konst_like(eg, x, Scalar::Int(k as i64));
            out.push(add(eg, EOp::Binary(BinaryOp::Shr), vec![x, shift]));
        }
    }
    out
}

/// `x % 2^k -> x & (2^k - 1)` for unsigned integers (exact).
fn mod_pow2(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for (x, c) in binary_operands(eg, id, BinaryOp::Mod) {
        let Some(k) = pow2_const(eg, c) else {
            continue;
        };
        if matches!(facts(eg, x).dtype, DType::U8 | DType::U32) {
            let mask = konst_like(eg, x, Scalar::Int((1i64 << k) - 1));
            out.push(add(eg, EOp::Binary(BinaryOp::And), vec![x, mask]));
        }
    }
    out
}

/// `exp2(n * log2(a)) -> a * a * ...` for a constant integer `n` in 2..=4 (how `pow` with a
/// constant exponent is built). Fast-math: `exp2`/`log2` round differently from products.
fn pow_small_int(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    if !options.fast_math {
        return Vec::new();
    }
    let mut out = Vec::new();
    for n in nodes_of(eg, id, Kind::Unary(UnaryOp::Exp2)) {
        for (a, b) in binary_operands(eg, n.children[0], BinaryOp::Mul) {
            for (k, l) in [(a, b), (b, a)] {
                let Some(e) = facts(eg, k).konst.map(|v| v.as_f64()) else {
                    continue;
                };
                if !(e.fract() == 0.0 && (2.0..=4.0).contains(&e)) {
                    continue;
                }
                for log in nodes_of(eg, l, Kind::Unary(UnaryOp::Log2)) {
                    let base = log.children[0];
                    let mut acc = base;
                    for _ in 1..e as usize {
                        acc = add(eg, EOp::Binary(BinaryOp::Mul), vec![acc, base]);
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

// ---- reductions of broadcasts ------------------------------------------------------------

/// `reduce(expand(x))` over axes that only the expand made long: a sum is `x * n` (floats:
/// `x * n + 0`, since a sum of `-0`s is `+0`; the reference sums exactly, and `x * n` rounds the
/// exact value once), a max is `x` (floats: `x + 0`, as the reference ends a max reduction with
/// `+ 0`), a product of bools is `x`; an expand to the remaining axes
/// is kept. Exact.
fn reduce_expand(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for n in nodes_of(eg, id, Kind::Reduce) {
        let EOp::Reduce(op, axes) = &n.op else {
            continue;
        };
        for ex in nodes_of(eg, n.children[0], Kind::Expand) {
            let x = ex.children[0];
            let xf = facts(eg, x).clone();
            let big = &facts(eg, n.children[0]).shape;
            if !axes.iter().all(|&a| xf.shape[a] == 1) {
                continue;
            }
            let count: usize = axes.iter().map(|&a| big[a]).product();
            let target = facts(eg, id).shape.clone();
            let base = if target == xf.shape {
                x
            } else {
                add(eg, EOp::Expand(target), vec![x])
            };
            let value = match (op, xf.dtype) {
                (_, _) if count == 0 => continue,
                (_, DType::Bool) => base,
                // The reference's float max ends like its sum (`+ 0`), so -0 becomes +0.
                (ReduceOp::Max, dtype) if dtype.is_float() => {
                    let zero = konst_like(eg, base, Scalar::Int(0));
                    add(eg, EOp::Binary(BinaryOp::Add), vec![base, zero])
                }
                (ReduceOp::Max, _) => base,
                (ReduceOp::Prod, _) => continue,
                (ReduceOp::Sum, dtype) => {
                    let n = konst_like(eg, base, Scalar::Int(count as i64));
                    let scaled = add(eg, EOp::Binary(BinaryOp::Mul), vec![base, n]);
                    if dtype.is_float() {
                        let zero = konst_like(eg, base, Scalar::Int(0));
                        add(eg, EOp::Binary(BinaryOp::Add), vec![scaled, zero])
                    } else {
                        scaled
                    }
                }
            };
            out.push(value);
        }
    }
    out
}

// ---- unrolling -----------------------------------------------------------------------------

/// The most elements per output a reduction written out as elementwise ops may combine.
const MAX_UNROLLED_REDUCE: usize = 4;

/// True when `unroll/small-reduce` writes out a reduction of `dtype` values combining `count`
/// elements per output.
pub fn unrollable(dtype: DType, count: usize) -> bool {
    dtype != DType::Bool && (2..=MAX_UNROLLED_REDUCE).contains(&count)
}

/// `reduce(op, x, axes)` over at most [`MAX_UNROLLED_REDUCE`] elements per output ->
/// `contiguous(((x0 op x1) op x2) op x3)` over shrinks of `x`, in the order the reduction
/// visits them (row-major over the reduced axes), with `+ 0` at the end for floats (the
/// reference ends every float reduction with `+ 0`: a sum, max or product that is `-0` comes
/// out `+0`). Exact: the same elements combined in the same order, from the identity. A 2x2
/// max-pool's window, or its gradient's tie count, becomes an elementwise kernel instead of a
/// reduction with two-element loops; `contiguous` keeps it materialized as the reduction was
/// (bare, it would be recomputed by every kernel that reads it).
fn unroll_small_reduce(eg: &mut GraphEGraph, id: Id, _: RuleOptions) -> Vec<Id> {
    let mut out = Vec::new();
    for n in nodes_of(eg, id, Kind::Reduce) {
        let EOp::Reduce(op, axes) = &n.op else {
            continue;
        };
        let x = n.children[0];
        let xf = facts(eg, x).clone();
        let count: usize = axes.iter().map(|&a| xf.shape[a]).product();
        if !unrollable(xf.dtype, count) {
            continue;
        }
        let mut axes = axes.clone();
        axes.sort_unstable();
        let mut bounds: Vec<(usize, usize)> = xf.shape.iter().map(|&s| (0, s)).collect();
        let mut acc: Option<Id> = None;
        for k in 0..count {
            // The k-th element in row-major order over the reduced axes.
            let mut rest = k;
            for &a in axes.iter().rev() {
                let i = rest % xf.shape[a];
                rest /= xf.shape[a];
                bounds[a] = (i, i + 1);
            }
            let part = add(eg, EOp::Shrink(bounds.clone()), vec![x]);
            acc = Some(match acc {
                None => part,
                Some(a) => add(eg, EOp::Binary(op.combine()), vec![a, part]),
            });
        }
        let mut value = acc.expect("count >= 2");
        if xf.dtype.is_float() {
            let zero = konst_like(eg, value, Scalar::Int(0));
            value = add(eg, EOp::Binary(BinaryOp::Add), vec![value, zero]);
        }
        out.push(add(eg, EOp::Contiguous, vec![value]));
    }
    out
}

// ---- distributivity ----------------------------------------------------------------------

/// `a*b + a*c -> a*(b + c)`: exact for integers (a ring under wrapping), fast-math for floats.
fn factor_mul(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    if !allowed(facts(eg, id).dtype, options) || facts(eg, id).dtype == DType::Bool {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (l, r) in binary_operands(eg, id, BinaryOp::Add) {
        let left = binary_operands(eg, l, BinaryOp::Mul);
        let right = binary_operands(eg, r, BinaryOp::Mul);
        for &(a, b) in &left {
            for &(c, d) in &right {
                for (x, y, p, q) in [(a, b, c, d), (a, b, d, c), (b, a, c, d), (b, a, d, c)] {
                    if eg.find(x) == eg.find(p) {
                        let sum = add(eg, EOp::Binary(BinaryOp::Add), vec![y, q]);
                        out.push(add(eg, EOp::Binary(BinaryOp::Mul), vec![x, sum]));
                    }
                }
            }
        }
    }
    out
}

/// `sum(x * expand(c))` where `c` is constant along the reduced axes: `sum(x) * expand(c)` (one
/// multiply per output instead of per input). Exact for integers, fast-math for floats.
fn sum_of_scaled(eg: &mut GraphEGraph, id: Id, options: RuleOptions) -> Vec<Id> {
    let dtype = facts(eg, id).dtype;
    if !allowed(dtype, options) || dtype == DType::Bool {
        return Vec::new();
    }
    let mut out = Vec::new();
    for n in nodes_of(eg, id, Kind::Reduce) {
        let EOp::Reduce(ReduceOp::Sum, axes) = &n.op else {
            continue;
        };
        for (a, b) in binary_operands(eg, n.children[0], BinaryOp::Mul) {
            for (x, s) in [(a, b), (b, a)] {
                for ex in nodes_of(eg, s, Kind::Expand) {
                    let c = ex.children[0];
                    if !axes.iter().all(|&ax| facts(eg, c).shape[ax] == 1) {
                        continue;
                    }
                    let target = facts(eg, id).shape.clone();
                    let scale = if facts(eg, c).shape == target {
                        c
                    } else {
                        add(eg, EOp::Expand(target), vec![c])
                    };
                    let summed = add(eg, n.op.clone(), vec![x]);
                    out.push(add(eg, EOp::Binary(BinaryOp::Mul), vec![summed, scale]));
                }
            }
        }
    }
    out
}
