//! The [`Module`] trait: a model is a plain struct whose fields are layers and tensors; it
//! exposes its parameters and buffers by name, so state dicts, optimizers and train/eval
//! switches need no boilerplate (`#[derive(Module)]` writes the two methods for a struct).

use crate::state::{StateDict, StateError};
use crate::Tensor;

/// What a tensor of a module's state is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// Trained by the optimizer (it requires grad).
    Parameter,
    /// Saved and loaded with the model but not trained (running statistics).
    Buffer,
}

/// A layer or a model.
pub trait Module {
    /// Calls `f(name, tensor, kind)` for every tensor of this module's state, with names
    /// relative to this module (`weight`, `conv1.bias`, `layers.0.weight`).
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind));

    /// Switches training-dependent behaviour (dropout, batch statistics) of this module and
    /// every module inside it.
    fn set_training(&self, training: bool);

    /// The trainable parameters, in a stable order.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// The trainable parameters with their names.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_state(&mut |name, t, kind| {
            if kind == StateKind::Parameter {
                out.push((name.to_string(), t.clone()));
            }
        });
        out
    }

    /// The buffers (state that is saved but not trained).
    fn buffers(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.visit_state(&mut |_, t, kind| {
            if kind == StateKind::Buffer {
                out.push(t.clone());
            }
        });
        out
    }

    /// Parameters and buffers by name (the tensors themselves, not copies).
    fn state_dict(&self) -> StateDict {
        let mut out = StateDict::new();
        self.visit_state(&mut |name, t, _| {
            out.insert(name.to_string(), t.clone());
        });
        out
    }

    /// Replaces every parameter and buffer with the entry of `dict` of the same name. Checks
    /// everything before changing anything: a missing key, a wrong shape or a wrong dtype is an
    /// error naming the key (and both shapes or dtypes); keys the model does not have are
    /// errors too.
    fn load_state_dict(&self, dict: &StateDict) -> Result<(), StateError> {
        let mut pairs = Vec::new();
        let mut problem = None;
        self.visit_state(&mut |name, t, _| {
            if problem.is_some() {
                return;
            }
            match dict.get(name) {
                None => problem = Some(StateError::MissingKey(name.to_string())),
                Some(v) if v.shape() != t.shape() => {
                    problem = Some(StateError::ShapeMismatch {
                        key: name.to_string(),
                        expected: t.shape(),
                        found: v.shape(),
                    })
                }
                Some(v) if v.dtype() != t.dtype() => {
                    problem = Some(StateError::DTypeMismatch {
                        key: name.to_string(),
                        expected: t.dtype(),
                        found: v.dtype(),
                    })
                }
                Some(v) => pairs.push((t.clone(), v.clone())),
            }
        });
        if let Some(p) = problem {
            return Err(p);
        }
        for (t, v) in &mut pairs {
            if v.device() != t.device() {
                *v = v.to(&t.device())?;
            }
        }
        if pairs.len() != dict.len() {
            let known = self.state_dict();
            if let Some(extra) = dict.keys().find(|k| !known.contains_key(*k)) {
                return Err(StateError::UnexpectedKey(extra.clone()));
            }
        }
        for (t, v) in &pairs {
            t.assign(v);
        }
        let values: Vec<Tensor> = pairs.into_iter().map(|(t, _)| t).collect();
        Tensor::realize_all(&values)?;
        Ok(())
    }

    /// Training mode (dropout active, batch statistics).
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (dropout off, running statistics).
    fn eval(&self) {
        self.set_training(false);
    }
}

/// Visits `child`'s state under `prefix` (what `#[derive(Module)]` generates per field). A bare
/// tensor (empty relative name) is named `prefix` itself.
pub fn visit_child(prefix: &str, child: &dyn Module, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
    child.visit_state(&mut |name, t, kind| {
        if name.is_empty() {
            f(prefix, t, kind)
        } else {
            f(&format!("{prefix}.{name}"), t, kind)
        }
    });
}

/// A bare tensor field of a module is a trainable parameter.
impl Module for Tensor {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
        f("", self, StateKind::Parameter);
    }
    fn set_training(&self, _training: bool) {}
}

impl<M: Module> Module for Vec<M> {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
        for (i, m) in self.iter().enumerate() {
            visit_child(&i.to_string(), m, f);
        }
    }
    fn set_training(&self, training: bool) {
        for m in self {
            m.set_training(training);
        }
    }
}

impl<M: Module> Module for Option<M> {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
        if let Some(m) = self {
            m.visit_state(f);
        }
    }
    fn set_training(&self, training: bool) {
        if let Some(m) = self {
            m.set_training(training);
        }
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
        (**self).visit_state(f);
    }
    fn set_training(&self, training: bool) {
        (**self).set_training(training);
    }
}
