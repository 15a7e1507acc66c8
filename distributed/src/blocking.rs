//! Running a short future to completion on the calling thread.
//!
//! A request is written to the socket by the thread that makes it (and a worker's answer by
//! the session thread that computed it) instead of being handed to a writer task: every
//! hand-off between threads costs a wake-up, which on an idle virtual CPU is tens of
//! microseconds. Tokio's sockets and `tokio::sync` primitives can be polled from any thread
//! while their runtime runs; only timers need the runtime's context, so the futures run here
//! must not use them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use tokio::sync::Notify;

/// Wakes the thread that waits in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parking between polls, until it completes.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// A one-way signal that stops [`block_on_unless`] (a connection was lost or closed).
#[derive(Default)]
pub(crate) struct Abort {
    set: AtomicBool,
    notify: Notify,
}

impl Abort {
    /// Fires the signal (again is harmless).
    pub(crate) fn abort(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Completes once the signal fired.
    async fn fired(&self) {
        let notified = self.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a signal in between is not missed.
        notified.as_mut().enable();
        if self.set.load(Ordering::SeqCst) {
            return;
        }
        notified.await
    }
}

/// [`block_on`], given up when `abort` fires (`None`): a write to a peer that stopped reading
/// would otherwise block forever.
pub(crate) fn block_on_unless<F: Future>(abort: &Abort, future: F) -> Option<F::Output> {
    block_on(async {
        tokio::select! {
            biased;
            _ = abort.fired() => None,
            output = future => Some(output),
        }
    })
}
