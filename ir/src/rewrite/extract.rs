//! Extraction of the cheapest e-node per e-class, by a worklist over e-class parents.
//!
//! egg's own `Extractor` sweeps every e-class until no cost changes, which takes as many
//! sweeps as the graph is deep: quadratic on the long chains models build. Here an e-node is
//! (re)costed only when one of its children got cheaper, so a DAG-shaped e-graph is costed in
//! time linear in its size (plus re-costing where rewrites made an e-class cheaper).
//!
//! Costs are tree costs, which count a shared subgraph once per user. So an e-class can be
//! given as *paid*: a value the graph materializes anyway (a reduction another user needs),
//! whose users are charged only reading it. Without that, a second user of a reduction may
//! pick an equal value that recomputes it in another layout (a max-pool's maximum reduced
//! again over permuted windows for its gradient), which is cheaper as a tree but doubles the
//! reduction.

use super::cost::FusedCost;
use super::lang::{ENode, GraphEGraph};
use egg::{CostFunction, Id};
use std::collections::{HashMap, HashSet, VecDeque};

/// The best e-node of every reachable e-class and its (tree) cost.
pub struct Best {
    best: HashMap<Id, (f64, ENode)>,
}

impl Best {
    /// Costs every e-class of `egraph`; a user of a class in `paid` (canonical ids) is charged
    /// reading its value, not computing it.
    pub fn new(egraph: &GraphEGraph, paid: &HashSet<Id>) -> Best {
        let read = |class: Id| {
            let f = &egraph[class].data;
            1.0 + (f.numel() * f.dtype.size()) as f64
        };
        let mut cost_fn = FusedCost::new(egraph);
        // (class, node) of every e-node, and the e-nodes that use each class.
        let mut nodes: Vec<(Id, &ENode)> = Vec::with_capacity(egraph.total_size());
        let mut users: HashMap<Id, Vec<usize>> = HashMap::new();
        for class in egraph.classes() {
            for n in &class.nodes {
                let k = nodes.len();
                nodes.push((class.id, n));
                for &c in &n.children {
                    users.entry(egraph.find(c)).or_default().push(k);
                }
            }
        }
        let mut best: HashMap<Id, (f64, ENode)> =
            HashMap::with_capacity(egraph.number_of_classes());
        let mut queue: VecDeque<usize> = (0..nodes.len())
            .filter(|&k| nodes[k].1.children.is_empty())
            .collect();
        let mut queued = vec![false; nodes.len()];
        for &k in &queue {
            queued[k] = true;
        }
        while let Some(k) = queue.pop_front() {
            queued[k] = false;
            let (class, node) = nodes[k];
            if !node
                .children
                .iter()
                .all(|c| best.contains_key(&egraph.find(*c)))
            {
                continue;
            }
            let cost = cost_fn.cost(node, |c| {
                let c = egraph.find(c);
                if paid.contains(&c) {
                    read(c)
                } else {
                    best[&c].0
                }
            });
            let improved = best.get(&class).is_none_or(|(old, _)| cost < *old);
            if improved {
                best.insert(class, (cost, node.clone()));
                for &u in users.get(&class).map(Vec::as_slice).unwrap_or(&[]) {
                    if !queued[u] {
                        queued[u] = true;
                        queue.push_back(u);
                    }
                }
            }
        }
        Best { best }
    }

    /// The cheapest e-node of e-class `id` (canonical), if the class has a finite cost.
    pub fn node(&self, id: Id) -> Option<&ENode> {
        self.best.get(&id).map(|(_, n)| n)
    }
}
