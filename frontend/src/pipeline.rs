//! Pipeline-parallel inference across devices (typically workers' `remote:` devices), with
//! placement by measured speed and memory and failover when a worker is lost.
//!
//! A [`Pipeline`] holds a model's layers in order. [`Pipeline::new`] measures every device
//! ([`calibrate`]: a matmul's rate; [`measure_link`]: the rate data reaches it; both cached per
//! device), estimates each layer's cost
//! ([`PipelineLayer::flops`], parameter bytes, input bytes) and asks
//! [`crate::distributed::place_with`] for contiguous stages (the user may pin layers); each
//! layer's parameters and buffers then move to their stage's device. [`Pipeline::forward`] runs
//! stage by stage: the activation goes from the previous stage's device to the stage's device
//! (worker to worker between remote devices: only the input and the final output pass through
//! the client), the stage's layers run there as one realize, and the stage's output stays
//! there as the checkpoint the next stage starts from.
//!
//! **Failover.** Every value of a stage is a pure function (its graph, the lineage) of the
//! stage's input checkpoint and the layers' parameters, of which the pipeline keeps host
//! copies. When a stage fails and devices were lost (killed, stopped or unreachable workers:
//! the stage's own or the one holding its input), the lost devices are dropped, the layers are
//! placed again on the surviving devices (moving parameters from the host copies where their
//! device changed), checkpoints that lived on lost devices are forgotten, and the pass
//! continues from the latest surviving checkpoint (at worst the host input): the lost work is
//! recomputed on survivors and the result is the one of a run without the failure. A device
//! added with [`Pipeline::add_device`] takes part from the next pass.

use crate::distributed::{place_with, LayerCost, Placement, WorkerCapacity};
use crate::nn::Module;
use crate::recovery::lost;
use crate::{Error, Result, Tensor};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

/// A layer a [`Pipeline`] can run: a module with a forward pass.
pub trait PipelineLayer: Module {
    /// The layer's output for `x`.
    fn forward(&self, x: &Tensor) -> Tensor;

    /// Floating-point operations of one forward pass on an input of `input_shape`. The default
    /// counts a multiply and an add per parameter per sample (exact for dense layers), taking
    /// the first axis as the batch.
    fn flops(&self, input_shape: &[usize]) -> f64 {
        let params: usize = self.parameters().iter().map(Tensor::numel).sum();
        2.0 * params as f64 * input_shape.first().copied().unwrap_or(1) as f64
    }
}

impl PipelineLayer for crate::nn::Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::nn::Linear::forward(self, x)
    }
}

/// Side of the square matmul [`calibrate`] times.
const CALIBRATION_N: usize = 128;

fn rates() -> &'static Mutex<HashMap<String, f64>> {
    static RATES: OnceLock<Mutex<HashMap<String, f64>>> = OnceLock::new();
    RATES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The measured rate of `device` in floating-point operations per second: the best of three
/// timed `128 x 128 x 128` f32 matmuls (after one that compiles the kernel), including the
/// round trip to read a value back, as a pipeline stage would. Measured once per device and
/// process, then cached ([`set_rate`] replaces it).
pub fn calibrate(device: &str) -> Result<f64> {
    let name = crate::device::canonical_device(device)?.to_string();
    if let Some(&r) = rates().lock().get(&name) {
        return Ok(r);
    }
    let n = CALIBRATION_N;
    let a = Tensor::ones(&[n, n]).to(&name)?;
    let b = Tensor::full(&[n, n], 0.5f32).to(&name)?;
    Tensor::realize_all(&[a.clone(), b.clone()])?;
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = Instant::now();
        let v = a.matmul(&b).sum(crate::All).item::<f32>()?;
        let secs = t.elapsed().as_secs_f64();
        if v != (n * n * n) as f32 * 0.5 {
            return Err(Error::Device {
                device: name,
                reason: format!("calibration matmul computed {v}"),
            });
        }
        best = best.min(secs);
    }
    let rate = 2.0 * (n * n * n) as f64 / best.max(1e-9);
    rates().lock().insert(name, rate);
    Ok(rate)
}

/// Sets the rate [`calibrate`] reports for `device` (a measurement made elsewhere, or a
/// user's estimate).
pub fn set_rate(device: &str, flops_per_sec: f64) -> Result<()> {
    let name = crate::device::canonical_device(device)?.to_string();
    rates().lock().insert(name, flops_per_sec);
    Ok(())
}

/// Bytes [`measure_link`] sends.
const LINK_PROBE_BYTES: usize = 1 << 20;

fn link_rates() -> &'static Mutex<HashMap<String, f64>> {
    static RATES: OnceLock<Mutex<HashMap<String, f64>>> = OnceLock::new();
    RATES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The measured rate, in bytes per second, at which activations reach `device`: for a remote
/// device, 1 MiB written to it in one batch (one round trip) against an empty round trip, the
/// best of three of each; a local device has no link (`f64::INFINITY`). It is the client's link
/// to the worker, taken as the worker's link (activations come from the previous stage's
/// worker). Measured once per device and process, then cached ([`set_link_rate`] replaces it).
pub fn measure_link(device: &str) -> Result<f64> {
    let name = crate::device::canonical_device(device)?.to_string();
    if let Some(&r) = link_rates().lock().get(&name) {
        return Ok(r);
    }
    if !name.starts_with("remote:") {
        return Ok(f64::INFINITY);
    }
    let handle = ferrograd_runtime::device(&name)?;
    let payload = vec![0u8; LINK_PROBE_BYTES];
    let mut empty = f64::INFINITY;
    let mut full = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        handle.device().synchronize()?;
        empty = empty.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let buffer = ferrograd_runtime::upload(&handle, &payload)?;
        handle.device().synchronize()?;
        full = full.min(t.elapsed().as_secs_f64());
        drop(buffer);
    }
    let rate = LINK_PROBE_BYTES as f64 / (full - empty).max(1e-9);
    link_rates().lock().insert(name, rate);
    Ok(rate)
}

/// Sets the link rate [`measure_link`] reports for `device`, in bytes per second
/// (`f64::INFINITY`: treat the link as free).
pub fn set_link_rate(device: &str, bytes_per_sec: f64) -> Result<()> {
    let name = crate::device::canonical_device(device)?.to_string();
    link_rates().lock().insert(name, bytes_per_sec);
    Ok(())
}

/// What happens during a pass, for observers (progress, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageEvent {
    /// Layers `layers` are about to run on `device`.
    Starting {
        /// The device.
        device: String,
        /// The layer range.
        layers: std::ops::Range<usize>,
    },
    /// `device` was lost while running `layers`; they are placed again and recomputed.
    FailedOver {
        /// The lost device.
        device: String,
        /// The layer range that failed.
        layers: std::ops::Range<usize>,
        /// The runtime's reason.
        reason: String,
    },
}

type Observer = Box<dyn FnMut(&StageEvent) + Send>;

/// A model split into stages over several devices (see the module docs).
pub struct Pipeline {
    layers: Vec<Box<dyn PipelineLayer>>,
    /// Host copies of every layer's state tensors, in `visit_state` order.
    host_state: Vec<Vec<Tensor>>,
    devices: Vec<String>,
    pins: HashMap<usize, usize>,
    costs: Vec<LayerCost>,
    placement: Placement,
    /// The device each layer's state is on now.
    layer_device: Vec<String>,
    observer: Option<Observer>,
    failovers: usize,
}

impl Pipeline {
    /// Places `layers` on `devices` for inputs of `input_shape`, by measured speed and memory,
    /// and moves their state to the chosen devices. `pins` maps layer indices to device
    /// indices the user chose (an override of the split).
    pub fn new(
        layers: Vec<Box<dyn PipelineLayer>>,
        devices: &[&str],
        input_shape: &[usize],
        pins: HashMap<usize, usize>,
    ) -> Result<Pipeline> {
        let host_state = layers
            .iter()
            .map(|l| {
                let mut state = Vec::new();
                l.visit_state(&mut |_, t, _| state.push(t.clone()));
                let copies: Vec<Tensor> = state
                    .iter()
                    .map(|t| t.detach().to("cpu"))
                    .collect::<Result<_>>()?;
                Tensor::realize_all(&copies)?;
                Ok(copies)
            })
            .collect::<Result<Vec<_>>>()?;
        let layer_device = layers
            .iter()
            .map(|l| {
                let mut device = String::from("cpu");
                l.visit_state(&mut |_, t, _| device = t.device().to_string());
                device
            })
            .collect();
        let costs = layer_costs(&layers, input_shape);
        let mut pipeline = Pipeline {
            layers,
            host_state,
            devices: devices.iter().map(|d| d.to_string()).collect(),
            pins,
            costs,
            placement: Placement {
                stages: Vec::new(),
                bottleneck_secs: 0.0,
            },
            layer_device,
            observer: None,
            failovers: 0,
        };
        pipeline.replace()?;
        Ok(pipeline)
    }

    /// The current split: per device (in [`Pipeline::devices`] order) its layer range.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The devices taking part, in stage order.
    pub fn devices(&self) -> &[String] {
        &self.devices
    }

    /// Stages recomputed after a lost device, over the pipeline's life.
    pub fn failovers(&self) -> usize {
        self.failovers
    }

    /// Calls `observer` at every stage start and failover.
    pub fn set_observer(&mut self, observer: impl FnMut(&StageEvent) + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Adds a device (a worker that joined); the layers are placed again now, so the next pass
    /// uses it.
    pub fn add_device(&mut self, device: &str) -> Result<()> {
        self.devices.push(device.to_string());
        self.replace()
    }

    fn capacities(&self) -> Result<Vec<WorkerCapacity>> {
        self.devices
            .iter()
            .map(|d| {
                let memory_bytes = ferrograd_runtime::device(d)?.device().info().memory_bytes;
                Ok(WorkerCapacity {
                    device: d.clone(),
                    flops_per_sec: calibrate(d)?,
                    memory_bytes,
                    link_bytes_per_sec: measure_link(d)?,
                })
            })
            .collect()
    }

    /// Places the layers on the current devices and moves the state of every layer whose
    /// device changed (from the host copies, so a lost device is never read).
    fn replace(&mut self) -> Result<()> {
        let capacities = self.capacities()?;
        let placement =
            place_with(&self.costs, &capacities, &self.pins).map_err(|e| Error::Device {
                device: self.devices.join(","),
                reason: format!("pipeline placement: {e}"),
            })?;
        let targets = placement.worker_of_layers();
        for (i, layer) in self.layers.iter().enumerate() {
            let device = &self.devices[targets[i]];
            if &self.layer_device[i] == device {
                continue;
            }
            let mut state = Vec::new();
            layer.visit_state(&mut |_, t, _| state.push(t.clone()));
            let moved: Vec<Tensor> = self.host_state[i]
                .iter()
                .map(|h| h.to(device))
                .collect::<Result<_>>()?;
            Tensor::realize_all(&moved)?;
            for (t, m) in state.iter().zip(&moved) {
                t.relocate(m);
            }
            self.layer_device[i] = device.clone();
        }
        self.placement = placement;
        Ok(())
    }

    fn notify(&mut self, event: StageEvent) {
        if let Some(o) = &mut self.observer {
            o(&event);
        }
    }

    /// Runs the model on `x`, stage by stage, failing over lost devices (see the module docs).
    /// The result is on the host (`cpu`).
    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let input = x.detach().to("cpu")?;
        input.realize()?;
        // The pass's lineage: each stage's input by its first layer, on the device of the
        // stage that produced it (the first on the host, which is never lost).
        let mut checkpoints: Vec<(usize, Tensor)> = vec![(0, input)];
        loop {
            let (next, current) = checkpoints.last().cloned().expect("the host input");
            if next == self.layers.len() {
                return Ok(current);
            }
            let worker = self.placement.worker_of_layers()[next];
            let layers = next..self.placement.stages[worker].end;
            let device = self.devices[worker].clone();
            self.notify(StageEvent::Starting {
                device: device.clone(),
                layers: layers.clone(),
            });
            let error = match self.run_stage(layers.clone(), &current, &device) {
                Ok(out) => {
                    checkpoints.push((layers.end, out));
                    continue;
                }
                Err(e) => e,
            };
            let lost: Vec<String> = lost::wait_for_lost(self.devices.iter().map(String::as_str))
                .into_iter()
                .map(str::to_string)
                .collect();
            if lost.is_empty() {
                return Err(error);
            }
            for d in &lost {
                self.notify(StageEvent::FailedOver {
                    device: d.clone(),
                    layers: layers.clone(),
                    reason: error.to_string(),
                });
                self.failovers += 1;
                let index = self.devices.iter().position(|x| x == d).expect("listed");
                self.drop_device(index);
            }
            self.replace()?;
            // Stage inputs that were on a lost worker are recomputed from an earlier one.
            checkpoints.retain(|(_, t)| !lost.iter().any(|d| **d == *t.device()));
        }
    }

    fn drop_device(&mut self, index: usize) {
        self.devices.remove(index);
        // Pins to the lost device are released; later devices move down one index.
        self.pins = self
            .pins
            .iter()
            .filter(|(_, &w)| w != index)
            .map(|(&l, &w)| (l, if w > index { w - 1 } else { w }))
            .collect();
        // Its layers have no valid copy anywhere but the host.
        for d in &mut self.layer_device {
            if !self.devices.contains(d) {
                d.clear();
            }
        }
    }

    /// Runs `layers` on `device` from `input` (copied worker to worker when both are remote);
    /// the output stays on `device`, except the last stage's, which is copied to the host.
    fn run_stage(
        &self,
        layers: std::ops::Range<usize>,
        input: &Tensor,
        device: &str,
    ) -> Result<Tensor> {
        let last = layers.end == self.layers.len();
        let mut x = input.to(device)?;
        for layer in &self.layers[layers] {
            x = layer.forward(&x);
        }
        let out = if last { x.to("cpu")? } else { x };
        out.realize()?;
        Ok(out)
    }
}

/// Each layer's cost for inputs of `input_shape` (output shapes come from the lazy graph, on
/// the device the layer's state is on; nothing runs).
fn layer_costs(layers: &[Box<dyn PipelineLayer>], input_shape: &[usize]) -> Vec<LayerCost> {
    let mut shape = input_shape.to_vec();
    layers
        .iter()
        .map(|l| {
            let mut param_bytes = 0u64;
            let mut device: Option<std::sync::Arc<str>> = None;
            l.visit_state(&mut |_, t, _| {
                param_bytes += (t.numel() * t.dtype().size()) as u64;
                device = Some(t.device());
            });
            let cost = LayerCost {
                flops: l.flops(&shape),
                param_bytes,
                input_bytes: (shape.iter().product::<usize>() * 4) as u64,
            };
            let probe = Tensor::from_node(ferrograd_ir::Node::constant(
                ferrograd_ir::Scalar::Float(0.0),
                crate::DEFAULT_FLOAT,
                &shape,
                &device.unwrap_or_else(crate::device::default_device_name),
            ));
            shape = l.forward(&probe).shape();
            cost
        })
        .collect()
}

impl Tensor {
    /// Makes this tensor (and its clones) hold `value`, which may live on another device;
    /// autograd identity is kept. The pipeline's way of moving a layer's state.
    fn relocate(&self, value: &Tensor) {
        let v = value.node();
        let mut state = self.state.write();
        assert!(
            state.node.shape() == v.shape() && state.node.dtype() == v.dtype(),
            "relocate: value {}{:?} does not match tensor {}{:?}",
            v.dtype(),
            v.shape(),
            state.node.dtype(),
            state.node.shape()
        );
        state.node = v;
    }
}
