//! Reverse-mode automatic differentiation as a graph transformation.
//!
//! A tensor is *tracked* when autograd must reach it: a leaf marked with
//! [`Tensor::requires_grad`], or the result of a primitive op on tracked operands (outside
//! [`no_grad`], and only for float results). Each tracked result carries a [`GradNode`]
//! recording the op's result node, its operand nodes and how autograd reaches each operand.
//! These records form a DAG of their own, separate from the hash-consed node graph, so two
//! tensors with equal values but different histories (`x` and `x.detach()`, or a value computed
//! once under `no_grad` and once outside) stay apart, and a leaf is identified by its tensor, not
//! by its node.
//!
//! [`Tensor::backward`] walks the records from the loss in reverse topological order (iterative,
//! linear in the number of records) and applies the rule of each op
//! ([`crate::grad_rules::vjp`]); the gradients are lazy graph nodes, so the backward pass is
//! scheduled and fused like the forward pass when it is realized. Records keep the forward
//! nodes they need, so realizing a tracked tensor (which swaps its node for a buffer) does not
//! cut the gradient path; untracked tensors keep no record and free their graph as before.

use crate::grad_rules::vjp;
use crate::tensor::{State, Tensor};
use ferrograd_ir::{BinaryOp, Node, NodeRef, Scalar};
use parking_lot::RwLock;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

/// How autograd reaches a tracked tensor.
pub(crate) enum GradNode {
    /// A tensor marked with `requires_grad(true)`; `backward` accumulates into its state.
    Leaf(Weak<RwLock<State>>),
    /// The result `out` of one primitive op on `src`, or of a composite op with its own
    /// gradient rule; `inputs[i]` is how autograd reaches `src[i]` (`None`: not tracked).
    Op {
        /// The forward result node (its op selects the gradient rule of a primitive).
        out: NodeRef,
        /// The operand nodes, in the op's source order.
        src: Vec<NodeRef>,
        /// The records of the operands.
        inputs: Vec<Option<Arc<GradNode>>>,
        /// The gradient rule of a composite op (`None`: the primitive's, from `out`'s op).
        rule: Option<CompositeRule>,
    },
}

/// The gradient rule of a composite op: given its operands and the gradient `g` of its result,
/// the gradient of every operand `i` with `wanted[i]` (as [`crate::grad_rules::vjp`]; each
/// with its operand's shape and dtype).
pub(crate) type CompositeRule =
    Arc<dyn Fn(&[NodeRef], &NodeRef, &[bool]) -> Vec<Option<NodeRef>> + Send + Sync>;

impl GradNode {
    fn inputs(&self) -> &[Option<Arc<GradNode>>] {
        match self {
            GradNode::Leaf(_) => &[],
            GradNode::Op { inputs, .. } => inputs,
        }
    }
}

impl Drop for GradNode {
    /// Drops long chains of records iteratively (deep graphs cannot overflow the stack).
    fn drop(&mut self) {
        let GradNode::Op { inputs, .. } = self else {
            return;
        };
        let mut stack: Vec<Arc<GradNode>> = inputs.drain(..).flatten().collect();
        while let Some(record) = stack.pop() {
            if let Ok(GradNode::Op { inputs, .. }) = &mut Arc::try_unwrap(record) {
                stack.extend(inputs.drain(..).flatten());
            }
        }
    }
}

// ---- no-grad scopes ------------------------------------------------------------------------

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// False inside a [`no_grad`] scope (or while a [`NoGradGuard`] lives) on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// While alive, ops on this thread record nothing for autograd: their results need no gradient.
/// Dropping the guard restores the previous mode, so guards nest.
pub struct NoGradGuard {
    previous: bool,
    /// The mode is per thread: the guard must be dropped on the thread that made it.
    _not_send: PhantomData<*const ()>,
}

impl NoGradGuard {
    /// Turns gradient tracking off on this thread until the guard is dropped.
    pub fn new() -> NoGradGuard {
        NoGradGuard {
            previous: GRAD_ENABLED.with(|g| g.replace(false)),
            _not_send: PhantomData,
        }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        NoGradGuard::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` with gradient tracking off on this thread (inference, optimizer updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

// ---- tracking ------------------------------------------------------------------------------

impl Tensor {
    /// The result of one primitive op: `build` makes one node whose sources are the operands'
    /// nodes (a reshape may fold into its operand's reshape), or returns an operand's node (an
    /// op that folded to the identity, which then shares that operand's tracking). The result
    /// is tracked when an operand is, gradients are enabled and it is a float.
    pub(crate) fn apply<const N: usize>(
        operands: [&Tensor; N],
        build: impl FnOnce(&[NodeRef; N]) -> NodeRef,
    ) -> Tensor {
        let mut origins: [Option<Arc<GradNode>>; N] = [const { None }; N];
        let nodes: [NodeRef; N] = std::array::from_fn(|i| {
            let state = operands[i].state.read();
            origins[i] = state.origin.clone();
            state.node.clone()
        });
        let out = build(&nodes);
        if origins.iter().all(Option::is_none) || !out.dtype().is_float() || !is_grad_enabled() {
            return Tensor::from_node(out);
        }
        if let Some(i) = nodes.iter().position(|n| Arc::ptr_eq(n, &out)) {
            let origin = origins[i].take();
            return Tensor::with_origin(out, origin);
        }
        debug_assert!(
            matches!(out.op(), ferrograd_ir::Op::Reshape)
                || (out.src().len() == N
                    && out.src().iter().zip(&nodes).all(|(s, n)| Arc::ptr_eq(s, n))),
            "apply: {out:?} is not one op on the operands {nodes:?}"
        );
        let record = GradNode::Op {
            out: out.clone(),
            src: Vec::from(nodes),
            inputs: Vec::from(origins),
            rule: None,
        };
        Tensor::with_origin(out, Some(Arc::new(record)))
    }

    /// The result of a composite op: `forward` builds it from primitives on untracked copies of
    /// the operands, and autograd differentiates it with `rule` (one small gradient graph)
    /// instead of through every primitive. Tracked like [`Tensor::apply`]'s results.
    pub(crate) fn composite<const N: usize>(
        operands: [&Tensor; N],
        forward: impl FnOnce([Tensor; N]) -> Tensor,
        rule: CompositeRule,
    ) -> Tensor {
        let origins: Vec<Option<Arc<GradNode>>> = operands
            .iter()
            .map(|t| t.state.read().origin.clone())
            .collect();
        let out = forward(operands.map(Tensor::detach)).node();
        if origins.iter().all(Option::is_none) || !out.dtype().is_float() || !is_grad_enabled() {
            return Tensor::from_node(out);
        }
        let record = GradNode::Op {
            out: out.clone(),
            src: operands.iter().map(|t| t.node()).collect(),
            inputs: origins,
            rule: Some(rule),
        };
        Tensor::with_origin(out, Some(Arc::new(record)))
    }

    fn is_own_leaf(&self, origin: &GradNode) -> bool {
        matches!(origin, GradNode::Leaf(w) if std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.state)))
    }

    /// Marks this tensor (and its clones, which share the mark) as a leaf whose gradient
    /// [`Tensor::backward`] accumulates into [`Tensor::grad`] (`true`), or unmarks a leaf
    /// (`false`, keeping any gradient it has). Marking a tensor that is already tracked changes
    /// nothing. Panics for a non-float tensor, and for `false` on a tensor computed from tracked
    /// tensors (use [`Tensor::detach`]).
    pub fn requires_grad(self, requires: bool) -> Tensor {
        let mut state = self.state.write();
        match (&state.origin, requires) {
            (None, true) => {
                let n = &state.node;
                assert!(
                    n.dtype().is_float(),
                    "requires_grad: only float tensors can require gradients, got {} tensor of shape {:?}",
                    n.dtype(),
                    n.shape()
                );
                state.origin = Some(Arc::new(GradNode::Leaf(Arc::downgrade(&self.state))));
            }
            (Some(origin), false) => {
                assert!(
                    self.is_own_leaf(origin),
                    "requires_grad: the tensor of shape {:?} is computed from tensors that require grad; \
                     use detach() for a copy that does not",
                    state.node.shape()
                );
                state.origin = None;
            }
            _ => {}
        }
        drop(state);
        self
    }

    /// True if autograd tracks this tensor: a leaf marked with `requires_grad(true)` or a value
    /// computed from one (outside `no_grad`).
    pub fn is_requires_grad(&self) -> bool {
        self.state.read().origin.is_some()
    }

    /// The same value, as a constant that autograd does not track (no data is copied).
    pub fn detach(&self) -> Tensor {
        Tensor::from_node(self.node())
    }

    /// The gradient accumulated by [`Tensor::backward`] (a lazy tensor with this tensor's shape,
    /// dtype and device), or `None` if none was computed since the last [`Tensor::zero_grad`].
    pub fn grad(&self) -> Option<Tensor> {
        self.state.read().grad.clone()
    }

    /// Replaces the accumulated gradient with `grad`'s value (taken as a constant). Panics if
    /// `grad` differs from this tensor in shape, dtype or device.
    pub fn set_grad(&self, grad: Option<Tensor>) {
        // A fresh handle: the stored gradient never shares its lock with a tracked tensor
        // (not even with this one), so accumulating into it cannot deadlock.
        let grad = grad.map(|g| g.detach());
        if let Some(g) = &grad {
            let (t, gn) = (self.node(), g.node());
            assert!(
                t.shape() == gn.shape() && t.dtype() == gn.dtype() && t.device() == gn.device(),
                "set_grad: gradient {}{:?} on {} does not match tensor {}{:?} on {}",
                gn.dtype(),
                gn.shape(),
                gn.device(),
                t.dtype(),
                t.shape(),
                t.device()
            );
        }
        self.state.write().grad = grad;
    }

    /// Forgets the accumulated gradient (`grad()` is `None` until the next backward).
    pub fn zero_grad(&self) {
        self.state.write().grad = None;
    }

    /// Replaces the value of this tensor and its clones with `value`'s, keeping its autograd
    /// identity: a leaf stays the same leaf with the same gradient (what an optimizer step
    /// needs). `value` is taken as a constant (its own history is not tracked). Panics if the
    /// shape, dtype or device differ, or if this tensor is computed from tracked tensors.
    pub fn assign(&self, value: &Tensor) {
        let v = value.node();
        let mut state = self.state.write();
        let n = &state.node;
        assert!(
            n.shape() == v.shape() && n.dtype() == v.dtype() && n.device() == v.device(),
            "assign: value {}{:?} on {} does not match tensor {}{:?} on {}",
            v.dtype(),
            v.shape(),
            v.device(),
            n.dtype(),
            n.shape(),
            n.device()
        );
        if let Some(origin) = &state.origin {
            assert!(
                self.is_own_leaf(origin),
                "assign: the tensor of shape {:?} is computed from tensors that require grad",
                n.shape()
            );
        }
        state.node = v;
    }

    /// Computes the gradient of this one-element float tensor (the loss) with respect to every
    /// leaf it depends on, adding it to each leaf's [`Tensor::grad`]. The gradients are lazy:
    /// realize them (e.g. together with [`Tensor::realize_all`]) to run the backward pass.
    /// Calling it again (on this or another loss) accumulates. Panics if the tensor is not a
    /// one-element float tensor or does not require grad.
    ///
    /// ```
    /// use ferrograd::{All, Tensor};
    /// let w = Tensor::from_slice(&[1.0f32, -2.0], &[2]).requires_grad(true);
    /// let loss = (&w * &w).sum(All); // d loss / dw = 2w
    /// loss.backward();
    /// assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![2.0, -4.0]);
    /// ```
    pub fn backward(&self) {
        let (seed, root) = self.loss_root("backward");
        let is_leaf = |r: &GradNode| matches!(r, GradNode::Leaf(w) if w.strong_count() > 0);
        propagate(&root, seed, is_leaf, |record, g| {
            let GradNode::Leaf(w) = record else { return };
            let Some(leaf) = w.upgrade() else { return };
            let mut state = leaf.write();
            let total = match state.grad.take() {
                Some(old) => Node::binary(BinaryOp::Add, &old.node(), &g),
                None => g,
            };
            state.grad = Some(Tensor::from_node(total));
        });
    }

    /// The gradients of this one-element float tensor with respect to `targets` (leaves or
    /// intermediate tracked tensors), as lazy tensors shaped like the targets, without touching
    /// any [`Tensor::grad`]. A tracked target the loss does not depend on gets zeros. Panics if
    /// this is not a one-element float tensor that requires grad, or a target is not tracked.
    pub fn gradient(&self, targets: &[&Tensor]) -> Vec<Tensor> {
        let (seed, root) = self.loss_root("gradient");
        let keys: Vec<*const GradNode> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let state = t.state.read();
                let origin = state.origin.as_ref().unwrap_or_else(|| {
                    panic!(
                        "gradient: target {i} ({} tensor of shape {:?}) does not require grad",
                        state.node.dtype(),
                        state.node.shape()
                    )
                });
                Arc::as_ptr(origin)
            })
            .collect();
        let wanted: HashSet<*const GradNode> = keys.iter().copied().collect();
        let mut found: HashMap<*const GradNode, NodeRef> = HashMap::new();
        propagate(
            &root,
            seed,
            |r| wanted.contains(&(r as *const GradNode)),
            |r, g| {
                found.insert(r as *const GradNode, g);
            },
        );
        targets
            .iter()
            .zip(keys)
            .map(|(t, key)| match found.get(&key) {
                Some(g) => Tensor::from_node(g.clone()),
                None => t.zeros_like(),
            })
            .collect()
    }

    /// The seed gradient (ones) and the record of a loss, checking that it is one.
    fn loss_root(&self, op: &str) -> (NodeRef, Arc<GradNode>) {
        let state = self.state.read();
        let n = &state.node;
        assert!(
            n.dtype().is_float() && n.numel() == 1,
            "{op}: the loss must be a one-element float tensor, got {} tensor of shape {:?}",
            n.dtype(),
            n.shape()
        );
        let root = state.origin.clone().unwrap_or_else(|| {
            panic!(
                "{op}: the {} tensor of shape {:?} does not require grad (nothing it is computed from was marked \
                 with requires_grad(true), or it was computed under no_grad)",
                n.dtype(),
                n.shape()
            )
        });
        (
            Node::constant(Scalar::Float(1.0), n.dtype(), n.shape(), n.device()),
            root,
        )
    }
}

/// The records reachable from `root`, inputs before users (so `root` is last). Iterative.
fn postorder(root: &Arc<GradNode>) -> Vec<Arc<GradNode>> {
    let mut order = Vec::new();
    let mut visited: HashSet<*const GradNode> = HashSet::new();
    let mut stack = vec![(root.clone(), false)];
    while let Some((record, expanded)) = stack.pop() {
        if expanded {
            order.push(record);
            continue;
        }
        if !visited.insert(Arc::as_ptr(&record)) {
            continue;
        }
        stack.push((record.clone(), true));
        for input in record.inputs().iter().flatten() {
            if !visited.contains(&Arc::as_ptr(input)) {
                stack.push((input.clone(), false));
            }
        }
    }
    order
}

/// The reverse sweep: seeds `root` with `seed`, visits the records in reverse topological order
/// and hands each target its total gradient (`sink`). Only records on a path to a target are
/// differentiated. Linear in the number of records.
fn propagate(
    root: &Arc<GradNode>,
    seed: NodeRef,
    is_target: impl Fn(&GradNode) -> bool,
    mut sink: impl FnMut(&GradNode, NodeRef),
) {
    let order = postorder(root);
    let index: HashMap<*const GradNode, usize> = order
        .iter()
        .enumerate()
        .map(|(i, r)| (Arc::as_ptr(r), i))
        .collect();
    let at = |r: &Arc<GradNode>| index[&Arc::as_ptr(r)];
    let target: Vec<bool> = order.iter().map(|r| is_target(r)).collect();
    let mut needed = target.clone();
    for (i, record) in order.iter().enumerate() {
        needed[i] |= record
            .inputs()
            .iter()
            .flatten()
            .any(|input| needed[at(input)]);
    }
    let mut grads: Vec<Option<NodeRef>> = vec![None; order.len()];
    grads[order.len() - 1] = Some(seed);
    for i in (0..order.len()).rev() {
        let Some(g) = grads[i].take() else { continue };
        if !needed[i] {
            continue;
        }
        if target[i] {
            sink(&order[i], g.clone());
        }
        let GradNode::Op {
            out,
            src,
            inputs,
            rule,
        } = &*order[i]
        else {
            continue;
        };
        let wanted: Vec<bool> = inputs
            .iter()
            .map(|input| input.as_ref().is_some_and(|r| needed[at(r)]))
            .collect();
        if !wanted.contains(&true) {
            continue;
        }
        let grads_of_src = match rule {
            Some(rule) => rule(src, &g, &wanted),
            None => vjp(out, src, &g, &wanted),
        };
        for (input, d) in inputs.iter().zip(grads_of_src) {
            if let (Some(input), Some(d)) = (input, d) {
                let slot = &mut grads[at(input)];
                *slot = Some(match slot.take() {
                    Some(acc) => Node::binary(BinaryOp::Add, &acc, &d),
                    None => d,
                });
            }
        }
    }
}
