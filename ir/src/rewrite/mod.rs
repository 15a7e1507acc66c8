//! Graph rewriting by equality saturation (egg).
//!
//! The unrealized graph below some targets is loaded into an e-graph ([`lang`]), saturated with
//! the rule groups of [`rules`] under node, iteration and time limits, and the cheapest
//! equivalent graph is extracted by [`cost::FusedCost`] (bytes moved plus flops after fusion,
//! not node count). The result is a [`Template`] over the graph's [`Structure`], so a caller can
//! cache it and rebuild the rewritten graph on new leaves ([`Template::instantiate`]).
//!
//! # Rule groups and exactness
//!
//! Exact rules give bit-identical results under the reference semantics
//! (`crate::reference`) for every input, NaN, Inf and signed zeros included. *Fast-math*
//! rules change float results and only run with [`RuleOptions::fast_math`]; where a rule is
//! exact for integers/bools it runs on those always.
//!
//! | group / rule | rewrite | floats | ints, bools |
//! | --- | --- | --- | --- |
//! | constant folding (analysis) | any op of constants -> its value, computed by the reference | exact | exact |
//! | algebraic/mul-one | `x*1 -> x` | exact | exact |
//! | algebraic/add-zero | `x+0 -> x` | exact for `-0.0`; `+0.0` fast-math (`-0+0 = +0`) | exact |
//! | algebraic/mul-zero | `x*0 -> 0` | fast-math (NaN, Inf, `-0`) | exact |
//! | algebraic/neg-neg | `-(-x) -> x` | exact | exact (wrapping) |
//! | algebraic/recip-recip | `1/(1/x) -> x` | fast-math (rounding, overflow) | n/a |
//! | algebraic/where-const | `where(true/false, a, b) -> a / b` | exact | exact |
//! | algebraic/where-same | `where(c, a, a) -> a` | exact | exact |
//! | algebraic/max-self, and-self, or-self | `op(x, x) -> x` | exact | exact |
//! | algebraic/sub-self | `x + (-x) -> 0` | fast-math (`Inf-Inf` is NaN) | exact |
//! | movement/* | reshape∘reshape, permute∘permute, expand∘expand, flip∘flip, shrink∘shrink, pad∘pad, shrink∘pad inside the source | exact | exact |
//! | movement/permute-reduce, permute-reshape | a permutation moves below a reduction (reduced axes renumbered) and below a reshape that only adds or drops size-1 axes, where it can cancel another: a weight gradient `(xᵀ·dy)ᵀ` is reduced straight into its final layout | exact (each output sums the same elements; a reduction's order is the backend's either way) | exact |
//! | strength/idiv-pow2, mod-pow2 | `x / 2^k -> x >> k`, `x % 2^k -> x & (2^k-1)` (unsigned), `x / 1 -> x` | n/a | exact |
//! | strength/pow-small-int | `exp2(n*log2(a)) -> a*a*..` for n in 2..=4 | fast-math (rounding) | n/a |
//! | reduce-broadcast/reduce-expand | `sum(expand(x)) -> x*n (+0)`, `max(expand(x)) -> x (+0)` | exact (the reference sums exactly) | exact |
//! | distributive/factor-mul | `a*b + a*c -> a*(b+c)` | fast-math (rounding) | exact (ring) |
//! | distributive/sum-of-scaled | `sum(x*expand(c)) -> sum(x)*c` | fast-math (rounding) | exact |
//! | unroll/small-reduce | a reduction over at most 4 elements per output -> `contiguous(((x0 op x1) op x2) op x3 (+0))` over shrinks of its input: a 2x2 max-pool window or its gradient's tie count becomes an elementwise kernel | exact (the same elements combined in the reduction's order, from its identity) | exact |
//!
//! Float division is `a * recip(b)` in this IR, so `x / c -> x * (1/c)` is constant folding of
//! `recip(c)` (exact: it is what the graph computes anyway).

pub mod canonical;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod prescan;
pub mod rules;
pub mod template;

pub use lang::{ENode, EOp, Facts, GraphAnalysis, GraphEGraph};
pub use rules::{RuleDef, RuleOptions, GROUPS};
pub use template::{identical_originals, Lifted, SNode, Structure, Template};

use crate::graph::NodeRef;
use egg::{Id, Runner};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What a rewrite may do and how long it may take.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RewriteConfig {
    /// Which rules may apply.
    pub options: RuleOptions,
    /// The rule groups to run (names from [`GROUPS`]).
    pub groups: Vec<&'static str>,
    /// Fold constant subgraphs.
    pub fold_constants: bool,
    /// Stop when the e-graph holds this many e-nodes beyond the input graph's size.
    pub node_limit: usize,
    /// Stop after this many saturation iterations.
    pub iter_limit: usize,
    /// Stop after this long.
    pub time_limit: Duration,
}

impl Default for RewriteConfig {
    fn default() -> Self {
        RewriteConfig {
            options: RuleOptions::default(),
            groups: GROUPS.iter().map(|(name, _)| *name).collect(),
            fold_constants: true,
            node_limit: 10_000,
            iter_limit: 8,
            time_limit: Duration::from_millis(40),
        }
    }
}

impl RewriteConfig {
    /// Only the named rule groups (and constant folding when `fold` is set).
    pub fn only(groups: &[&'static str], fold: bool) -> Self {
        RewriteConfig {
            groups: groups.to_vec(),
            fold_constants: fold,
            ..Self::default()
        }
    }
}

/// What one rewrite did.
#[derive(Clone, Debug)]
pub struct Report {
    /// Saturation iterations run.
    pub iterations: usize,
    /// E-nodes at the end.
    pub egraph_nodes: usize,
    /// Why saturation stopped.
    pub stop_reason: String,
    /// Estimated cost of the input graph and of the extracted one.
    pub cost_before: f64,
    /// See `cost_before`.
    pub cost_after: f64,
    /// True when the pre-scan ([`prescan::may_rewrite`]) found nothing any rule or fold could
    /// change, so no e-graph was built (the counts and costs above are then 0).
    pub skipped: bool,
    /// How often each rule applied over all iterations (rules that never applied left out),
    /// most applied first.
    pub applied: Vec<(String, usize)>,
}

/// Rewrites `structure`: saturates it with the configured rules under the limits and extracts
/// the cheapest equivalent structure. Falls back to the input when extraction finds nothing
/// cheaper, and returns it at once when no rule or fold can apply ([`prescan::may_rewrite`]).
pub fn optimize(structure: &Structure, config: &RewriteConfig) -> (Template, Report) {
    if !prescan::may_rewrite(structure, config) {
        let report = Report {
            iterations: 0,
            egraph_nodes: 0,
            stop_reason: "no rule or fold applies".to_string(),
            cost_before: 0.0,
            cost_after: 0.0,
            skipped: true,
            applied: Vec::new(),
        };
        return (Template::identity(structure), report);
    }
    let analysis = GraphAnalysis {
        fold_constants: config.fold_constants,
    };
    let mut egraph = GraphEGraph::new(analysis);
    let mut ids: Vec<Id> = Vec::with_capacity(structure.nodes.len());
    for n in &structure.nodes {
        let children = n.src.iter().map(|&s| ids[s as usize]).collect();
        ids.push(egraph.add(ENode::new(n.op.clone(), children)));
    }
    egraph.rebuild();
    let rewrites: Vec<_> = GROUPS
        .iter()
        .filter(|(name, _)| config.groups.contains(name))
        .flat_map(|(_, defs)| defs.iter())
        .map(|d| d.to_rewrite(config.options))
        .collect();
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_node_limit(structure.nodes.len() + config.node_limit)
        .with_iter_limit(config.iter_limit)
        .with_time_limit(config.time_limit)
        .run(&rewrites);
    let egraph = &runner.egraph;
    let cost_before = structure_cost(structure, egraph, &ids);
    let roots: Vec<Id> = structure.roots.iter().map(|&r| ids[r as usize]).collect();
    // Tree costs first; then again with what that graph materializes taken as paid, so a
    // second user of a reduction reads it rather than recomputing it. The graph cheaper as a
    // whole (each node counted once) wins.
    let extract_with = |paid: &HashSet<Id>| {
        extract(
            &extract::Best::new(egraph, paid),
            egraph,
            structure,
            &roots,
            &ids,
        )
    };
    let first = extract_with(&HashSet::new());
    let second = first
        .as_ref()
        .and_then(|(_, _, materialized)| extract_with(materialized));
    let best = [first, second]
        .into_iter()
        .flatten()
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let (template, cost_after) = match best {
        Some((t, c, _)) if c < cost_before => (t, c),
        _ => (Template::identity(structure), cost_before),
    };
    let report = Report {
        iterations: runner.iterations.len(),
        egraph_nodes: egraph.total_size(),
        stop_reason: format!("{:?}", runner.stop_reason),
        cost_before,
        cost_after,
        skipped: false,
        applied: applied_rules(&runner),
    };
    (template, report)
}

fn applied_rules(runner: &Runner<ENode, GraphAnalysis>) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for iteration in &runner.iterations {
        for (rule, n) in &iteration.applied {
            *counts.entry(rule.to_string()).or_default() += n;
        }
    }
    let mut applied: Vec<_> = counts.into_iter().collect();
    applied.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    applied
}

/// The cost of the input structure (each node counted once, as the scheduler shares them).
fn structure_cost(structure: &Structure, egraph: &GraphEGraph, ids: &[Id]) -> f64 {
    structure
        .nodes
        .iter()
        .zip(ids)
        .map(|(n, &id)| node_cost_in(egraph, &n.op, id, n.src.first().map(|&s| ids[s as usize])))
        .sum()
}

fn node_cost_in(egraph: &GraphEGraph, op: &EOp, id: Id, first: Option<Id>) -> f64 {
    let f = &egraph[id].data;
    let first_shape: &[usize] = first.map_or(&[], |c| &egraph[c].data.shape);
    cost::node_cost(op, f.numel() as f64, f.dtype.size() as f64, first_shape)
}

/// The best e-node of every e-class reachable from `roots`, as a template, with its cost (each
/// node once) and the e-classes it materializes (reductions, copies); `None` when the choice is
/// cyclic (never with tree costs; possible where paid classes cut a cycle short).
fn extract(
    extractor: &extract::Best,
    egraph: &GraphEGraph,
    structure: &Structure,
    roots: &[Id],
    ids: &[Id],
) -> Option<(Template, f64, HashSet<Id>)> {
    let mut materialized = HashSet::new();
    let mut pos: HashMap<Id, u32> = HashMap::new();
    let mut nodes: Vec<SNode> = Vec::new();
    let mut cost = 0.0;
    let mut on_path: std::collections::HashSet<Id> = Default::default();
    for &root in roots {
        let mut stack: Vec<(Id, bool)> = vec![(egraph.find(root), false)];
        while let Some((class, expanded)) = stack.pop() {
            if pos.contains_key(&class) {
                continue;
            }
            let best = extractor.node(class)?;
            if !expanded {
                if !on_path.insert(class) {
                    return None;
                }
                stack.push((class, true));
                for &c in best.children.iter().rev() {
                    let c = egraph.find(c);
                    if !pos.contains_key(&c) {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            on_path.remove(&class);
            let src = best
                .children
                .iter()
                .map(|&c| pos.get(&egraph.find(c)).copied())
                .collect::<Option<Vec<u32>>>()?;
            let first = best.children.first().copied();
            cost += node_cost_in(egraph, &best.op, class, first);
            if matches!(best.op, EOp::Reduce(..) | EOp::Contiguous | EOp::Copy(_)) {
                materialized.insert(class);
            }
            pos.insert(class, nodes.len() as u32);
            nodes.push(SNode {
                op: best.op.clone(),
                src,
            });
        }
    }
    let template = Template {
        is_identity: false,
        roots: roots.iter().map(|&r| pos[&egraph.find(r)]).collect(),
        alias: ids
            .iter()
            .map(|&i| pos.get(&egraph.find(i)).copied())
            .collect(),
        reuse: identical_originals(&nodes, structure),
        nodes,
    };
    Some((template, cost, materialized))
}

/// Rewrites the graph below `targets` and returns the rewritten targets (a convenience for
/// tests and tools; the runtime caches templates instead).
pub fn rewrite_graph(targets: &[NodeRef], config: &RewriteConfig) -> Vec<NodeRef> {
    let lifted = Lifted::new(targets);
    let (template, _) = optimize(&lifted.structure, config);
    let built = template.instantiate(&lifted.nodes, &lifted.leaves);
    template
        .roots
        .iter()
        .map(|&r| built[r as usize].clone())
        .collect()
}

#[cfg(test)]
mod tests;
