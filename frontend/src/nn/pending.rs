//! Buffer updates made by forward passes, waiting for the optimizer step to realize them.
//!
//! Tensors are lazy, so a new running statistic assigned in a forward pass is an expression of
//! the batch. Realizing it at once would cut the forward pass's fusion (and synchronize); never
//! realizing it would chain every step's expression onto the last one and keep every batch's
//! graph alive. Instead the layer assigns the expression to its buffer and queues the buffer
//! here (on the calling thread); the optimizer step takes the queue and realizes it together
//! with the new parameters, in one schedule, which then frees the batch's graph.

use crate::tensor::{State, Tensor};
use parking_lot::RwLock;
use std::cell::RefCell;
use std::sync::{Arc, Weak};

thread_local! {
    /// Buffers assigned a lazy value by a forward pass on this thread. Weak: a model dropped
    /// before the step does not stay alive through the queue.
    static PENDING: RefCell<Vec<Weak<RwLock<State>>>> = const { RefCell::new(Vec::new()) };
}

/// Queues `buffer` (just assigned a lazy value) for the next optimizer step on this thread.
/// A buffer is queued once however often it is updated before the step.
pub(crate) fn defer_realize(buffer: &Tensor) {
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        pending.retain(|w| w.strong_count() > 0);
        let ptr = Arc::as_ptr(&buffer.state);
        if !pending.iter().any(|w| std::ptr::eq(w.as_ptr(), ptr)) {
            pending.push(Arc::downgrade(&buffer.state));
        }
    });
}

/// Takes the buffers that forward passes on this thread updated lazily since the last call
/// (the running statistics of [`BatchNorm2d`](crate::nn::BatchNorm2d) in training mode), for an
/// optimizer step to realize together with the updated parameters
/// (`Tensor::realize_all(&[params, take_pending_updates()].concat())`). A training loop without
/// such an optimizer should realize them itself after each step. If nobody does, the next
/// training forward pass of the layer realizes its previous update first, so expressions never
/// chain across more than one step. The queue is per thread: take it on the thread that ran
/// the forward pass.
pub fn take_pending_updates() -> Vec<Tensor> {
    PENDING.with(|pending| {
        pending
            .take()
            .into_iter()
            .filter_map(|w| w.upgrade())
            .map(|state| Tensor { state })
            .collect()
    })
}
