//! Pipeline placement: which worker runs which layers of a model.
//!
//! The layers of a model run in order, so a placement gives each worker (in the order given,
//! which is the order activations flow) one contiguous range of layers, possibly empty. The
//! split minimizes the slowest stage's time (layer flops divided by the worker's measured rate,
//! plus the activation bytes it receives divided by the link rate), which is what bounds a
//! pipeline's throughput and the latency of one pass; each stage's parameters must fit in its
//! worker's memory. A user override pins layers to workers; the split honours the pins.
//! Dynamic programming over (layer, worker): O(workers x layers^2), nothing for real models.

use std::collections::HashMap;
use std::ops::Range;

/// What one layer costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerCost {
    /// Floating-point operations of one forward pass.
    pub flops: f64,
    /// Bytes of parameters the layer keeps on its device.
    pub param_bytes: u64,
    /// Bytes of the activation the layer receives.
    pub input_bytes: u64,
}

/// What one worker (device) offers.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerCapacity {
    /// The device name (`remote:HOST:PORT/DEVICE`, `cpu`, ...).
    pub device: String,
    /// Measured floating-point operations per second.
    pub flops_per_sec: f64,
    /// Bytes of memory available for parameters.
    pub memory_bytes: u64,
    /// Measured bytes per second for activations sent to it (`f64::INFINITY`: free).
    pub link_bytes_per_sec: f64,
}

/// Why no placement exists.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// The parameters do not fit in the workers' memory with the layers in order (and the pins).
    #[error("the {layers} layers do not fit in the memory of the {workers} workers ({needed} bytes of parameters in all){pins}")]
    DoesNotFit {
        /// Layers.
        layers: usize,
        /// Workers.
        workers: usize,
        /// Bytes of parameters of all layers.
        needed: u64,
        /// Notes the pins, if any.
        pins: String,
    },
    /// An override names a layer or worker that does not exist.
    #[error("override: layer {layer} to worker {worker}, but there are {layers} layers and {workers} workers")]
    BadOverride {
        /// The layer index.
        layer: usize,
        /// The worker index.
        worker: usize,
        /// Layers.
        layers: usize,
        /// Workers.
        workers: usize,
    },
    /// No workers.
    #[error("no workers to place {0} layers on")]
    NoWorkers(usize),
}

/// Which worker runs which layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// Per worker (in the order given), its range of layers (empty: unused).
    pub stages: Vec<Range<usize>>,
    /// Estimated time of the slowest stage, in seconds.
    pub bottleneck_secs: f64,
}

impl Placement {
    /// The worker index of every layer.
    pub fn worker_of_layers(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (w, r) in self.stages.iter().enumerate() {
            out.extend(r.clone().map(|_| w));
        }
        out
    }
}

/// Seconds `worker` needs for `layers`.
fn stage_secs(layers: &[LayerCost], worker: &WorkerCapacity) -> f64 {
    let Some(first) = layers.first() else {
        return 0.0;
    };
    let flops: f64 = layers.iter().map(|l| l.flops).sum();
    let compute = flops / worker.flops_per_sec.max(f64::MIN_POSITIVE);
    compute + first.input_bytes as f64 / worker.link_bytes_per_sec.max(f64::MIN_POSITIVE)
}

/// Places `layers` on `workers` (see the module docs); `pins` maps layer index to worker
/// index for the layers the user places by hand.
pub fn place_with(
    layers: &[LayerCost],
    workers: &[WorkerCapacity],
    pins: &HashMap<usize, usize>,
) -> Result<Placement, PlacementError> {
    let (n, k) = (layers.len(), workers.len());
    if k == 0 {
        return Err(PlacementError::NoWorkers(n));
    }
    for (&layer, &worker) in pins {
        if layer >= n || worker >= k {
            return Err(PlacementError::BadOverride {
                layer,
                worker,
                layers: n,
                workers: k,
            });
        }
    }
    let mut prefix_bytes = vec![0u64; n + 1];
    for (i, l) in layers.iter().enumerate() {
        prefix_bytes[i + 1] = prefix_bytes[i] + l.param_bytes;
    }
    // Layers a..b may go to worker w: they fit and no pin sends one of them elsewhere.
    let allowed = |w: usize, a: usize, b: usize| {
        prefix_bytes[b] - prefix_bytes[a] <= workers[w].memory_bytes
            && (a..b).all(|i| pins.get(&i).is_none_or(|&p| p == w))
    };
    // best[w][i]: the smallest bottleneck placing layers 0..i on workers 0..w (None: impossible);
    // cut[w][i]: where worker w-1's range starts in that solution.
    let mut best = vec![vec![None::<f64>; n + 1]; k + 1];
    let mut cut = vec![vec![0usize; n + 1]; k + 1];
    best[0][0] = Some(0.0);
    for w in 1..=k {
        for i in 0..=n {
            for a in (0..=i).rev() {
                if !allowed(w - 1, a, i) {
                    // Growing the range to the left only adds bytes and layers: stop once it
                    // does not fit (a pin conflict may also end it; both only get worse).
                    break;
                }
                let Some(before) = best[w - 1][a] else {
                    continue;
                };
                let t = before.max(stage_secs(&layers[a..i], &workers[w - 1]));
                if best[w][i].is_none_or(|b| t < b) {
                    best[w][i] = Some(t);
                    cut[w][i] = a;
                }
            }
        }
    }
    let Some(bottleneck_secs) = best[k][n] else {
        return Err(PlacementError::DoesNotFit {
            layers: n,
            workers: k,
            needed: prefix_bytes[n],
            pins: if pins.is_empty() {
                String::new()
            } else {
                format!(" with {} pinned layers", pins.len())
            },
        });
    };
    let mut stages = vec![0..0; k];
    let mut end = n;
    for w in (1..=k).rev() {
        let start = cut[w][end];
        stages[w - 1] = start..end;
        end = start;
    }
    Ok(Placement {
        stages,
        bottleneck_secs,
    })
}

/// Places `layers` on `workers` with no pins ([`place_with`]).
pub fn place(
    layers: &[LayerCost],
    workers: &[WorkerCapacity],
) -> Result<Placement, PlacementError> {
    place_with(layers, workers, &HashMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(n: usize, flops: f64, bytes: u64) -> Vec<LayerCost> {
        vec![
            LayerCost {
                flops,
                param_bytes: bytes,
                input_bytes: 0,
            };
            n
        ]
    }

    fn worker(rate: f64, memory: u64) -> WorkerCapacity {
        WorkerCapacity {
            device: format!("w{rate}"),
            flops_per_sec: rate,
            memory_bytes: memory,
            link_bytes_per_sec: f64::INFINITY,
        }
    }

    #[test]
    fn a_twice_faster_worker_gets_twice_the_layers() {
        let p = place(
            &layers(12, 1e9, 10),
            &[worker(2e9, 1 << 20), worker(1e9, 1 << 20)],
        )
        .unwrap();
        assert_eq!(p.stages, vec![0..8, 8..12]);
        assert!((p.bottleneck_secs - 4.0).abs() < 1e-9);
        let p = place(
            &layers(9, 1e9, 10),
            &[worker(1e9, 1 << 20), worker(2e9, 1 << 20)],
        )
        .unwrap();
        assert_eq!(p.stages, vec![0..3, 3..9]);
        assert_eq!(p.worker_of_layers(), [0, 0, 0, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn memory_limits_move_layers_to_slower_workers_or_fail() {
        // The fast worker holds only 3 layers' parameters.
        let p = place(&layers(8, 1e9, 100), &[worker(4e9, 300), worker(1e9, 1000)]).unwrap();
        assert_eq!(p.stages, vec![0..3, 3..8]);
        let err = place(&layers(8, 1e9, 100), &[worker(4e9, 300), worker(1e9, 300)]).unwrap_err();
        assert!(
            matches!(err, PlacementError::DoesNotFit { needed: 800, .. }),
            "{err}"
        );
    }

    #[test]
    fn uneven_layers_and_link_costs_are_weighed() {
        let mut ls = layers(4, 1e9, 1);
        ls[3].flops = 3e9;
        let p = place(&ls, &[worker(1e9, 100), worker(1e9, 100)]).unwrap();
        assert_eq!(p.stages, vec![0..3, 3..4]);
        // A slow link to worker 1 makes shipping the big activation there not worth it.
        for l in &mut ls {
            l.input_bytes = 1 << 30;
        }
        let mut slow = worker(1e9, 100);
        slow.link_bytes_per_sec = 1e8;
        let p = place(&ls, &[worker(1e9, 100), slow]).unwrap();
        assert_eq!(p.stages, vec![0..4, 4..4]);
    }

    #[test]
    fn pins_override_the_split_and_bad_pins_are_errors() {
        let ws = [worker(2e9, 1 << 20), worker(1e9, 1 << 20)];
        let pins = HashMap::from([(5, 1)]);
        let p = place_with(&layers(12, 1e9, 10), &ws, &pins).unwrap();
        assert_eq!(p.stages, vec![0..5, 5..12]);
        let pins = HashMap::from([(0, 1)]);
        let p = place_with(&layers(12, 1e9, 10), &ws, &pins).unwrap();
        assert_eq!(p.stages, vec![0..0, 0..12]);
        let err = place_with(&layers(2, 1.0, 1), &ws, &HashMap::from([(2, 0)])).unwrap_err();
        assert!(matches!(err, PlacementError::BadOverride { layer: 2, .. }));
        assert!(matches!(
            place(&layers(2, 1.0, 1), &[]),
            Err(PlacementError::NoWorkers(2))
        ));
        // A pin that contradicts the layer order cannot be met.
        let pins = HashMap::from([(0, 1), (1, 0)]);
        assert!(place_with(&layers(2, 1.0, 1), &ws, &pins).is_err());
    }

    #[test]
    fn no_layers_place_trivially() {
        let p = place(&[], &[worker(1.0, 0)]).unwrap();
        assert_eq!(p.stages.len(), 1);
        assert!(p.stages[0].is_empty());
    }
}
