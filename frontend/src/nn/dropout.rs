//! Inverted dropout.

use crate::nn::{Module, StateKind};
use crate::Tensor;
use std::sync::atomic::{AtomicBool, Ordering};

/// In training mode (the initial mode), zeroes each element with probability `p` and scales
/// the others by `1 / (1 - p)`, so the expected value is unchanged; the identity in evaluation
/// mode. The mask comes from the seeded generator ([`Tensor::manual_seed`]): the same seed and
/// sequence of calls give the same masks.
pub struct Dropout {
    /// The probability of zeroing an element, in `[0, 1]`.
    pub p: f64,
    /// Training mode (an atomic, so a model stays `Sync`).
    training: AtomicBool,
}

impl Dropout {
    /// A dropout layer zeroing elements with probability `p`. Panics unless `0 <= p <= 1`.
    pub fn new(p: f64) -> Dropout {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout::new: probability {p} is outside [0, 1]"
        );
        Dropout {
            p,
            training: AtomicBool::new(true),
        }
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Applies dropout to the float tensor `x`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        assert!(
            x.dtype().is_float(),
            "Dropout: input must be a float tensor, got {}{:?}",
            x.dtype(),
            x.shape()
        );
        if !self.is_training() || self.p == 0.0 {
            return x.clone();
        }
        if self.p == 1.0 {
            return x.mul(0.0);
        }
        let keep = Tensor::rand(&x.shape()).ge(self.p);
        keep.where_(x.mul(1.0 / (1.0 - self.p)), 0.0)
    }
}

impl Module for Dropout {
    fn visit_state(&self, _f: &mut dyn FnMut(&str, &Tensor, StateKind)) {}

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}
