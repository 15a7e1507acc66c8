//! Loss functions. Each returns the mean over its elements as a 0-d tensor and panics, naming
//! the function and the shapes, when its arguments do not fit together.

use crate::{All, Tensor};

/// Checks `[N, C]` float scores against `[N]` integer targets; returns `C`.
fn check_classes(op: &str, scores: &Tensor, targets: &Tensor) -> usize {
    let (ss, ts) = (scores.shape(), targets.shape());
    assert!(
        scores.dtype().is_float()
            && targets.dtype().is_int()
            && ss.len() == 2
            && ts.len() == 1
            && ss[0] == ts[0],
        "{op}: needs float scores [N, C] and integer targets [N], got {}{ss:?} and {}{ts:?}",
        scores.dtype(),
        targets.dtype()
    );
    ss[1]
}

/// Checks that `a` and `b` are float tensors of one shape.
fn check_same(op: &str, what: [&str; 2], a: &Tensor, b: &Tensor) {
    assert!(
        a.dtype().is_float() && b.dtype().is_float() && a.shape() == b.shape(),
        "{op}: {} {}{:?} and {} {}{:?} must be float tensors of the same shape",
        what[0],
        a.dtype(),
        a.shape(),
        what[1],
        b.dtype(),
        b.shape()
    );
}

/// `-log_probs[i, targets[i]]` for every row `i` (`[N]`).
fn picked(log_probs: &Tensor, targets: &Tensor) -> Tensor {
    log_probs.gather(1, &targets.unsqueeze(1)).squeeze(1).neg()
}

/// Mean negative log-likelihood: `mean_i(-log_probs[i, targets[i]])` for log-probabilities
/// `[N, C]` and class indices `[N]`. Targets are lazy, so their range is not checked: a target
/// outside `[0, C)` contributes zero.
pub fn nll_loss(log_probs: &Tensor, targets: &Tensor) -> Tensor {
    check_classes("nll_loss", log_probs, targets);
    picked(log_probs, targets).mean(All)
}

/// Mean cross-entropy between `logits` `[N, C]` (unnormalized) and class indices `targets`
/// `[N]`, computed through `log_softmax`. With `label_smoothing` `ε` in `[0, 1]` the target
/// distribution is `(1 - ε)` on the class plus `ε / C` everywhere (torch's definition), so a
/// row's loss is `(1 - ε) * -log p[target] + ε * mean_c(-log p[c])`. Targets outside `[0, C)`
/// are not checked (see [`nll_loss`]).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, label_smoothing: f32) -> Tensor {
    check_classes("cross_entropy", logits, targets);
    assert!(
        (0.0..=1.0).contains(&label_smoothing),
        "cross_entropy: label_smoothing {label_smoothing} is outside [0, 1] (logits {:?})",
        logits.shape()
    );
    let log_probs = logits.log_softmax(-1);
    let nll = picked(&log_probs, targets);
    if label_smoothing == 0.0 {
        return nll.mean(All);
    }
    let eps = label_smoothing as f64;
    let uniform = log_probs.mean(-1).neg();
    nll.mul(1.0 - eps).add(uniform.mul(eps)).mean(All)
}

/// Mean squared error `mean((pred - target)^2)` of two float tensors of the same shape.
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Tensor {
    check_same("mse_loss", ["pred", "target"], pred, target);
    pred.sub(target).square().mean(All)
}

/// Mean binary cross-entropy `-(t * log p + (1 - t) * log(1 - p))` between probabilities
/// `probs` and targets in `[0, 1]` of the same shape. Like torch, each log is clamped at -100,
/// so a probability of exactly 0 or 1 gives a finite loss (its gradient there is not finite;
/// prefer [`binary_cross_entropy_with_logits`]).
pub fn binary_cross_entropy(probs: &Tensor, target: &Tensor) -> Tensor {
    check_same("binary_cross_entropy", ["probs", "target"], probs, target);
    let log_p = probs.log().maximum(-100.0);
    let log_q = probs.neg().add(1.0).log().maximum(-100.0);
    target
        .mul(&log_p)
        .add(target.neg().add(1.0).mul(&log_q))
        .neg()
        .mean(All)
}

/// [`binary_cross_entropy`] of `sigmoid(logits)`, computed stably from the logits as
/// `softplus(x) - x * t` (no log of a rounded probability).
pub fn binary_cross_entropy_with_logits(logits: &Tensor, target: &Tensor) -> Tensor {
    check_same(
        "binary_cross_entropy_with_logits",
        ["logits", "target"],
        logits,
        target,
    );
    logits.softplus().sub(logits.mul(target)).mean(All)
}
