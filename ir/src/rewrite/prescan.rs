//! A linear scan that tells whether saturation can change a structure at all: whether some
//! enabled rule matches a node as the graph stands, or an operation has only constant operands
//! (a fold). When neither holds, egg's first iteration would add nothing and stop saturated,
//! so the rewrite is the identity and building the e-graph is skipped.
//!
//! The checks are necessary conditions of the rules in [`super::rules`] (a rule may still find
//! nothing where the scan says yes, never the reverse); every per-rule must-find test runs
//! through [`super::optimize`], so a rule the scan missed fails its test.

use super::lang::{infer, EOp, Facts};
use super::rules::unrollable;
use super::{RewriteConfig, SNode, Structure};
use crate::dtype::{DType, Scalar};
use crate::ops::{BinaryOp, ReduceOp, TernaryOp, UnaryOp};

/// What the scan knows about one position: its constant value (through movement ops) and
/// its dtype.
#[derive(Clone, Copy)]
struct Known {
    konst: Option<Scalar>,
    dtype: DType,
}

/// True when saturating `structure` under `config` may change it (see the module doc).
pub fn may_rewrite(structure: &Structure, config: &RewriteConfig) -> bool {
    let on = |group: &str| config.groups.contains(&group);
    let groups = Groups {
        algebraic: on("algebraic"),
        movement: on("movement"),
        strength: on("strength"),
        reduce_broadcast: on("reduce-broadcast"),
        distributive: on("distributive"),
        unroll: on("unroll"),
        fast_math: config.options.fast_math,
    };
    let mut known: Vec<Known> = Vec::with_capacity(structure.nodes.len());
    let mut facts: Vec<Facts> = Vec::with_capacity(structure.nodes.len());
    for node in &structure.nodes {
        let src: Vec<Known> = node.src.iter().map(|&s| known[s as usize]).collect();
        let here_facts = infer(&node.op, &|i| facts[node.src[i] as usize].clone());
        if groups.unroll && unrolls(&node.op, &node.src, &facts) {
            return true;
        }
        if config.fold_constants
            && is_compute(&node.op)
            && !src.is_empty()
            && src.iter().all(|k| k.konst.is_some())
        {
            return true;
        }
        let here = known_of(&node.op, &src);
        if groups.matches(node, &structure.nodes, &src, here.dtype) {
            return true;
        }
        known.push(here);
        facts.push(here_facts);
    }
    false
}

/// True when `unroll/small-reduce` applies to a node of `op` over `src`, given the facts of
/// every earlier position.
fn unrolls(op: &EOp, src: &[u32], facts: &[Facts]) -> bool {
    let EOp::Reduce(_, axes) = op else {
        return false;
    };
    let x = &facts[src[0] as usize];
    let count: usize = axes.iter().map(|&a| x.shape[a]).product();
    unrollable(x.dtype, count)
}

/// An op that computes values (constant folding applies to it).
fn is_compute(op: &EOp) -> bool {
    matches!(
        op,
        EOp::Unary(_)
            | EOp::Cast(_)
            | EOp::Bitcast(_)
            | EOp::Binary(_)
            | EOp::Ternary(_)
            | EOp::Reduce(..)
    )
}

fn known_of(op: &EOp, src: &[Known]) -> Known {
    let first = |k: Option<Scalar>| Known {
        konst: k,
        dtype: src[0].dtype,
    };
    match op {
        EOp::Leaf { dtype, .. } | EOp::Arange { dtype, .. } => Known {
            konst: None,
            dtype: *dtype,
        },
        EOp::Const { value, dtype, .. } => Known {
            konst: Some(value.0),
            dtype: *dtype,
        },
        EOp::Cast(d) | EOp::Bitcast(d) => Known {
            konst: None,
            dtype: *d,
        },
        EOp::Binary(b) if b.is_comparison() => Known {
            konst: None,
            dtype: DType::Bool,
        },
        EOp::Ternary(TernaryOp::Where) => Known {
            konst: None,
            dtype: src[1].dtype,
        },
        EOp::Reshape(_)
        | EOp::Permute(_)
        | EOp::Expand(_)
        | EOp::Shrink(_)
        | EOp::Flip(_)
        | EOp::Contiguous => first(src[0].konst),
        EOp::Pad(_) => first(
            src[0]
                .konst
                .filter(|v| v.as_f64() == 0.0 && v.as_f64().is_sign_positive()),
        ),
        _ => first(None),
    }
}

/// The enabled rule groups.
struct Groups {
    algebraic: bool,
    movement: bool,
    strength: bool,
    reduce_broadcast: bool,
    distributive: bool,
    unroll: bool,
    fast_math: bool,
}

impl Groups {
    /// True when a rule of an enabled group may match `node` (of `nodes`), whose operands are
    /// known as `k` and whose dtype is `dtype`.
    fn matches(&self, node: &SNode, nodes: &[SNode], k: &[Known], dtype: DType) -> bool {
        let (op, src) = (&node.op, node.src.as_slice());
        let op_of = |i: usize| &nodes[src[i] as usize].op;
        // `-x` at operand `neg` where `x` is operand `other`.
        let neg_of = |neg: usize, other: usize| {
            let n = &nodes[src[neg] as usize];
            matches!(n.op, EOp::Unary(UnaryOp::Neg)) && n.src[0] == src[other]
        };
        let value = |i: usize| k[i].konst.map(|v| v.as_f64());
        let any_const = |v: f64| (0..k.len()).any(|i| value(i) == Some(v));
        // Floats change under these rules only with fast-math; ints and bools always allow them.
        let inexact_ok = !dtype.is_float() || self.fast_math;
        let kind = |i: usize| std::mem::discriminant(op_of(i));
        let algebraic = self.algebraic
            && match op {
                EOp::Binary(BinaryOp::Mul) => any_const(1.0) || (any_const(0.0) && inexact_ok),
                EOp::Binary(BinaryOp::Add) => {
                    any_const(0.0)
                        || (inexact_ok && dtype != DType::Bool && (neg_of(0, 1) || neg_of(1, 0)))
                }
                EOp::Unary(UnaryOp::Neg) => matches!(op_of(0), EOp::Unary(UnaryOp::Neg)),
                EOp::Unary(UnaryOp::Recip) => {
                    self.fast_math && matches!(op_of(0), EOp::Unary(UnaryOp::Recip))
                }
                EOp::Ternary(TernaryOp::Where) => k[0].konst.is_some() || src[1] == src[2],
                EOp::Binary(BinaryOp::Max | BinaryOp::And | BinaryOp::Or) => src[0] == src[1],
                _ => false,
            };
        let movement = self.movement
            && match op {
                EOp::Permute(_) => matches!(
                    op_of(0),
                    EOp::Permute(_) | EOp::Reduce(..) | EOp::Reshape(_)
                ),
                EOp::Reshape(_) | EOp::Expand(_) | EOp::Flip(_) | EOp::Pad(_) => {
                    kind(0) == std::mem::discriminant(op)
                }
                EOp::Shrink(_) => matches!(op_of(0), EOp::Shrink(_) | EOp::Pad(_)),
                _ => false,
            };
        let strength = self.strength
            && match op {
                EOp::Binary(BinaryOp::IDiv | BinaryOp::Mod) => k[1].konst.is_some(),
                EOp::Unary(UnaryOp::Exp2) => self.fast_math,
                _ => false,
            };
        let reduce_broadcast = self.reduce_broadcast
            && matches!(op, EOp::Reduce(..))
            && matches!(op_of(0), EOp::Expand(_));
        let distributive = self.distributive
            && inexact_ok
            && dtype != DType::Bool
            && match op {
                EOp::Binary(BinaryOp::Add) => {
                    matches!(op_of(0), EOp::Binary(BinaryOp::Mul))
                        && matches!(op_of(1), EOp::Binary(BinaryOp::Mul))
                }
                EOp::Reduce(ReduceOp::Sum, _) => matches!(op_of(0), EOp::Binary(BinaryOp::Mul)),
                _ => false,
            };
        algebraic || movement || strength || reduce_broadcast || distributive
    }
}

#[cfg(test)]
mod tests {
    use super::super::{optimize, Lifted};
    use super::*;
    use crate::graph::{Node, NodeRef};
    use crate::ops::BufferHandle;
    use std::sync::Arc;

    fn leaf(shape: &[usize]) -> NodeRef {
        let dev: Arc<str> = Arc::from("cpu");
        Node::buffer(BufferHandle::new(Arc::new(())), DType::F32, shape, &dev)
    }

    fn structure(t: &NodeRef) -> Structure {
        Lifted::new(std::slice::from_ref(t)).structure
    }

    #[test]
    fn a_lean_graph_skips_the_e_graph() {
        let (a, b) = (leaf(&[6, 3]), leaf(&[3]));
        let b = Node::expand(&Node::reshape(&b, &[1, 3]), &[6, 3]);
        let y = Node::binary(BinaryOp::Mul, &Node::unary(UnaryOp::Exp2, &a), &b);
        let y = Node::reduce(ReduceOp::Max, &Node::permute(&y, &[1, 0]), &[1]);
        let s = structure(&y);
        assert!(!may_rewrite(&s, &RewriteConfig::default()));
        let (template, report) = optimize(&s, &RewriteConfig::default());
        assert!(report.skipped && template.is_identity);
    }

    #[test]
    fn a_graph_a_rule_matches_is_rewritten() {
        let a = leaf(&[4, 3]);
        let y = Node::reduce(ReduceOp::Sum, &Node::expand(&leaf(&[4, 1]), &[4, 3]), &[1]);
        let y = Node::binary(BinaryOp::Add, &a, &Node::expand(&y, &[4, 3]));
        let s = structure(&y);
        assert!(may_rewrite(&s, &RewriteConfig::default()));
        let (template, report) = optimize(&s, &RewriteConfig::default());
        assert!(!report.skipped && !template.is_identity);
        // The same graph with its group off has nothing to do.
        let only_movement = RewriteConfig::only(&["movement"], true);
        assert!(!may_rewrite(&s, &only_movement));
    }
}
