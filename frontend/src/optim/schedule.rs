//! Learning-rate schedules: a function from the step number to a learning rate, applied with
//! [`super::Optimizer::set_learning_rate`] before each step.

/// A learning rate per step (steps count from 0).
pub trait LrSchedule {
    /// The learning rate of step `step`.
    fn lr(&self, step: usize) -> f64;
}

/// Cosine annealing from `base` to `min` over `total` steps (constant `min` afterwards).
#[derive(Clone, Copy, Debug)]
pub struct CosineSchedule {
    /// Learning rate at step 0.
    pub base: f64,
    /// Learning rate at the end.
    pub min: f64,
    /// Steps to reach `min`.
    pub total: usize,
}

impl LrSchedule for CosineSchedule {
    fn lr(&self, step: usize) -> f64 {
        if self.total == 0 || step >= self.total {
            return self.min;
        }
        let progress = step as f64 / self.total as f64;
        self.min + 0.5 * (self.base - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Linear warm-up from 0 over `warmup` steps to the inner schedule's value, then the inner
/// schedule shifted by `warmup` steps.
#[derive(Clone, Copy, Debug)]
pub struct WarmupSchedule<S> {
    /// Warm-up steps.
    pub warmup: usize,
    /// The schedule after warm-up (its step 0 is the first step after warm-up).
    pub inner: S,
}

impl<S: LrSchedule> LrSchedule for WarmupSchedule<S> {
    fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            self.inner.lr(0) * (step + 1) as f64 / self.warmup as f64
        } else {
            self.inner.lr(step - self.warmup)
        }
    }
}
