//! Data-parallel training: one replica of a model per device, each batch split across them by
//! device weight, gradients all-reduced so every replica takes the same optimizer step.

use super::collective::{all_reduce, on_device, Algorithm, ReduceOp};
use super::split::{device_rate, split_sizes};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::{Result, Tensor};
use std::sync::Arc;

/// Replicas of a model with their optimizers, one per device.
///
/// A step splits the batch along axis 0 in proportion to the device weights, computes each
/// replica's loss on its rows (scaled by its share of the batch, so the replicas' losses add up
/// to the loss of the whole batch), runs each backward pass on its own device, all-reduces
/// every parameter's gradient and lets every replica's optimizer apply the summed gradient, all
/// in one realize (the gradients travel as one bucket). The summed gradients are bitwise equal on every device, so replicas on
/// devices of one kind stay bitwise equal. Buffers (batch-norm statistics) are per replica.
pub struct DataParallel<M: Module, O: Optimizer> {
    replicas: Vec<M>,
    optimizers: Vec<O>,
    devices: Vec<Arc<str>>,
    weights: Vec<f64>,
    algorithm: Algorithm,
}

/// Gives the leaf `param` the value `value` (possibly on another device), keeping its autograd
/// identity and forgetting any gradient.
fn place(param: &Tensor, value: &Tensor) {
    let mut state = param.state.write();
    state.node = value.node();
    state.grad = None;
}

/// Gives `t` a copy of `value` on `device`; panics naming `what` when their shapes or dtypes
/// differ.
fn place_copy(t: &Tensor, value: &Tensor, device: &Arc<str>, what: &str) {
    assert!(
        value.shape() == t.shape() && value.dtype() == t.dtype(),
        "{what} is {}{:?}, the model's {}{:?}",
        t.dtype(),
        t.shape(),
        value.dtype(),
        value.shape()
    );
    place(t, &on_device(&value.detach(), device));
}

/// Gives each tensor of `pairs` a copy of its partner's value on `device` (one realize).
fn copy_state(pairs: Vec<(Tensor, Tensor)>, device: &Arc<str>) -> Result<()> {
    let mut placed = Vec::with_capacity(pairs.len());
    for (t, value) in pairs {
        place_copy(&t, &value, device, "data_parallel add_replica: new state");
        placed.push(t);
    }
    Tensor::realize_all(&placed)
}

impl<M: Module, O: Optimizer> DataParallel<M, O> {
    /// Replicates `model` onto `devices` (weighted by measured speed): `make_model` builds each
    /// replica (its initial values are replaced with copies of `model`'s state) and
    /// `make_optimizer` its optimizer over the replica's parameters.
    pub fn new(
        model: &M,
        devices: &[&str],
        make_model: impl Fn() -> M,
        make_optimizer: impl Fn(Vec<Tensor>) -> O,
    ) -> Result<Self> {
        let mut weights = Vec::with_capacity(devices.len());
        for d in devices {
            weights.push(device_rate(d)?);
        }
        Self::with_weights(model, devices, &weights, make_model, make_optimizer)
    }

    /// [`DataParallel::new`] with explicit relative device weights.
    pub fn with_weights(
        model: &M,
        devices: &[&str],
        weights: &[f64],
        make_model: impl Fn() -> M,
        make_optimizer: impl Fn(Vec<Tensor>) -> O,
    ) -> Result<Self> {
        assert!(
            !devices.is_empty() && weights.len() == devices.len(),
            "data_parallel: {} weights for devices {devices:?}",
            weights.len()
        );
        let names = super::canonical_devices(devices)?;
        let source = model.state_dict();
        let mut replicas = Vec::with_capacity(names.len());
        let mut placed = Vec::new();
        for device in &names {
            let replica = crate::no_grad(&make_model);
            for (name, t) in replica.state_dict() {
                let value = source.get(&name).unwrap_or_else(|| {
                    panic!("data_parallel: the replica has state `{name}` the model lacks")
                });
                let what = format!("data_parallel: replica state `{name}`");
                place_copy(&t, value, device, &what);
                placed.push(t);
            }
            replicas.push(replica);
        }
        Tensor::realize_all(&placed)?;
        let optimizers = replicas
            .iter()
            .map(|r| make_optimizer(r.parameters()))
            .collect();
        Ok(DataParallel {
            replicas,
            optimizers,
            devices: names,
            weights: weights.to_vec(),
            algorithm: Algorithm::Auto,
        })
    }

    /// Adds a replica on `device` with relative weight `weight` (a worker that joined): it gets
    /// copies of the first replica's current parameters, buffers and optimizer state (moments,
    /// bias corrections, learning rate), so the next [`DataParallel::step`] splits the batch
    /// over every replica and continues the same training. `make_model` and `make_optimizer`
    /// build the replica and its optimizer as in [`DataParallel::new`].
    pub fn add_replica(
        &mut self,
        device: &str,
        weight: f64,
        make_model: impl Fn() -> M,
        make_optimizer: impl Fn(Vec<Tensor>) -> O,
    ) -> Result<()> {
        let device = crate::device::canonical_device(device)?;
        assert!(
            !self.devices.contains(&device),
            "data_parallel add_replica: device {device} already holds a replica"
        );
        assert!(
            weight > 0.0 && weight.is_finite(),
            "data_parallel add_replica: weight {weight} for {device} is not positive"
        );
        let replica = crate::no_grad(&make_model);
        let source = self.replicas[0].state_dict();
        let mut pairs: Vec<(Tensor, Tensor)> = Vec::new();
        for (name, t) in replica.state_dict() {
            let value = source.get(&name).unwrap_or_else(|| {
                panic!("data_parallel add_replica: the replica has state `{name}` the others lack")
            });
            pairs.push((t, value.clone()));
        }
        copy_state(pairs, &device)?;
        // Made after the parameters moved, so its own buffers are on the new device too.
        let optimizer = make_optimizer(replica.parameters());
        let (theirs, ours) = (
            self.optimizers[0].state_tensors(),
            optimizer.state_tensors(),
        );
        assert_eq!(
            theirs.len(),
            ours.len(),
            "data_parallel add_replica: the new optimizer has {} state tensors, the others {}",
            ours.len(),
            theirs.len()
        );
        copy_state(ours.into_iter().zip(theirs).collect(), &device)?;
        self.replicas.push(replica);
        self.optimizers.push(optimizer);
        self.devices.push(device);
        self.weights.push(weight);
        Ok(())
    }

    /// Uses `algorithm` for the gradient all-reduce (default [`Algorithm::Auto`]).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The replicas, in device order.
    pub fn replicas(&self) -> &[M] {
        &self.replicas
    }

    /// The devices, in order.
    pub fn devices(&self) -> &[Arc<str>] {
        &self.devices
    }

    /// Sets every replica's learning rate.
    pub fn set_learning_rate(&mut self, lr: f64) {
        for o in &mut self.optimizers {
            o.set_learning_rate(lr);
        }
    }

    /// Rows of a batch of `rows` each device gets.
    pub fn split_of(&self, rows: usize) -> Vec<usize> {
        let unlimited = vec![usize::MAX; self.devices.len()];
        split_sizes("data_parallel", &[rows], rows, &self.weights, &unlimited)
    }

    /// One training step on `inputs` / `targets` (split along axis 0); `loss` computes a
    /// replica's mean loss on its rows. Returns the loss of the whole batch (realized, on the
    /// first device). Panics if inputs and targets disagree in rows or there are fewer rows
    /// than devices.
    ///
    /// If the step fails because workers were lost (killed, stopped, unreachable), every
    /// surviving replica goes back to its state before the step (parameters and optimizer
    /// state are buffers of the previous step, untouched by the failed one), the lost replicas
    /// are dropped, and the step runs again on the survivors with the whole batch: the lost
    /// shard is recomputed from the same inputs and the same state, so training continues with
    /// the result it would have had.
    pub fn step(
        &mut self,
        inputs: &Tensor,
        targets: &Tensor,
        loss: impl Fn(&M, &Tensor, &Tensor) -> Tensor,
    ) -> Result<Tensor> {
        loop {
            let snapshot = self.snapshot();
            let error = match self.try_step(inputs, targets, &loss) {
                Ok(total) => return Ok(total),
                Err(e) => e,
            };
            let lost = self.lost_replicas();
            if lost.is_empty() || lost.len() == self.replicas.len() {
                return Err(error);
            }
            report_lost(&lost, &self.devices, &error);
            for (t, node) in snapshot {
                let mut state = t.state.write();
                state.node = node;
                state.grad = None;
            }
            for &i in lost.iter().rev() {
                self.replicas.remove(i);
                self.optimizers.remove(i);
                self.devices.remove(i);
                self.weights.remove(i);
            }
        }
    }

    /// Every tensor a step changes (parameters, buffers, optimizer state) with its node now.
    fn snapshot(&self) -> Vec<(Tensor, ferrograd_ir::NodeRef)> {
        let mut out = Vec::new();
        for (r, o) in self.replicas.iter().zip(&self.optimizers) {
            for t in r.state_dict().into_values().chain(o.state_tensors()) {
                let node = t.node();
                out.push((t, node));
            }
        }
        out
    }

    /// Indices of the replicas whose device was lost. A loss can surface first on another
    /// device (a survivor's transfer to the dead worker fails), so this waits up to the
    /// heartbeat's detection bound for the lost device to be marked.
    fn lost_replicas(&self) -> Vec<usize> {
        let lost = crate::recovery::lost::wait_for_lost(self.devices.iter().map(|d| &**d));
        (0..self.devices.len())
            .filter(|&i| lost.contains(&&*self.devices[i]))
            .collect()
    }

    fn try_step(
        &mut self,
        inputs: &Tensor,
        targets: &Tensor,
        loss: &impl Fn(&M, &Tensor, &Tensor) -> Tensor,
    ) -> Result<Tensor> {
        let (xs, ys) = (inputs.shape(), targets.shape());
        assert!(
            !xs.is_empty() && !ys.is_empty() && xs[0] == ys[0],
            "data_parallel: inputs {xs:?} and targets {ys:?} need the same number of rows"
        );
        let sizes = self.split_of(xs[0]);
        let x_parts = inputs.split(&sizes, 0);
        let y_parts = targets.split(&sizes, 0);
        let mut losses = Vec::with_capacity(self.replicas.len());
        for (((replica, device), (x, y)), &rows) in self
            .replicas
            .iter()
            .zip(&self.devices)
            .zip(x_parts.iter().zip(&y_parts))
            .zip(&sizes)
        {
            let part = loss(replica, &on_device(x, device), &on_device(y, device));
            let scaled = part.mul(rows as f64 / xs[0] as f64);
            scaled.backward();
            losses.push(scaled.detach());
        }
        self.all_reduce_gradients();
        let first = &self.devices[0];
        let total = losses
            .iter()
            .map(|l| on_device(l, first))
            .reduce(|a, b| a.add(&b))
            .expect("at least one replica");
        let mut todo = crate::no_grad(|| {
            self.optimizers
                .iter_mut()
                .flat_map(|o| o.update())
                .collect::<Vec<_>>()
        });
        todo.extend(crate::nn::take_pending_updates());
        todo.push(total.clone());
        Tensor::realize_all(&todo)?;
        for o in &self.optimizers {
            o.zero_grad();
        }
        Ok(total)
    }

    /// Replaces every replica's parameter gradients with their sum over the replicas: each
    /// replica's gradients are flattened into one bucket, the buckets are all-reduced at once
    /// (one collective per step instead of one per parameter), and each replica cuts its
    /// summed bucket back into gradients.
    fn all_reduce_gradients(&self) {
        let params: Vec<Vec<Tensor>> = self.replicas.iter().map(|r| r.parameters()).collect();
        // Parameters with a gradient on every replica (the same ones, replicas being equal).
        let with_grad: Vec<usize> = (0..params[0].len())
            .filter(|&k| params.iter().all(|p| p[k].grad().is_some()))
            .collect();
        if with_grad.is_empty() {
            return;
        }
        let sizes: Vec<usize> = with_grad.iter().map(|&k| params[0][k].numel()).collect();
        let buckets: Vec<Tensor> = params
            .iter()
            .map(|p| {
                let flat: Vec<Tensor> = with_grad
                    .iter()
                    .map(|&k| p[k].grad().expect("filtered").reshape([-1]))
                    .collect();
                Tensor::cat(&flat, 0)
            })
            .collect();
        let reduced = all_reduce(&buckets, ReduceOp::Sum, self.algorithm);
        for (p, bucket) in params.iter().zip(reduced) {
            for (&k, g) in with_grad.iter().zip(bucket.split(&sizes, 0)) {
                p[k].set_grad(Some(g.reshape(p[k].shape())));
            }
        }
    }
}

fn report_lost(lost: &[usize], devices: &[Arc<str>], error: &ferrograd_runtime::Error) {
    let names: Vec<&str> = lost.iter().map(|&i| &*devices[i]).collect();
    tracing::warn!(lost = ?names, %error, "data_parallel: recomputing the step on the survivors");
}
