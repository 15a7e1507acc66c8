//! Pipeline placement on remote devices: three in-process workers on loopback (mutual TLS);
//! the split follows the measured (here: set) rates, a user override wins, parameters move to
//! their stage's device, results equal a single-device run, and a device added later is used
//! from the next pass, and activations go worker to worker (the client sees only the input and
//! the output). (Failover with worker processes is in `workers.rs`.)

use ferrograd::distributed::cluster::{self, Identity};
use ferrograd::distributed::worker::{RunningWorker, Worker, WorkerConfig};
use ferrograd::distributed::{remote, Security};
use ferrograd::nn::{Linear, Module, StateKind};
use ferrograd::pipeline::{
    calibrate, measure_link, set_link_rate, set_rate, Pipeline, PipelineLayer, StageEvent,
};
use ferrograd::Tensor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A dense layer with a ReLU.
struct Dense(Linear);

impl Module for Dense {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, StateKind)) {
        self.0.visit_state(f)
    }
    fn set_training(&self, training: bool) {
        self.0.set_training(training)
    }
}

impl PipelineLayer for Dense {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(x).relu()
    }
}

/// `n` dense layers of width 24 (seeded), on the CPU.
fn model(n: usize) -> Vec<Box<dyn PipelineLayer>> {
    Tensor::manual_seed(11);
    (0..n)
        .map(|_| Box::new(Dense(Linear::new(24, 24))) as Box<dyn PipelineLayer>)
        .collect()
}

/// The model run layer by layer where its parameters are (before it is placed). Computed
/// from the layers themselves: the seeded generator is shared by the tests running in
/// parallel, so a second model from the same seed may differ.
fn expected(layers: &[Box<dyn PipelineLayer>], x: &Tensor) -> Vec<f32> {
    let mut y = x.clone();
    for l in layers {
        y = l.forward(&y);
    }
    y.to("cpu").unwrap().to_vec::<f32>().unwrap()
}

/// Eleven TLS workers in this process (each test uses its own, as rates are process-wide), the client's security set; their `remote:` cpu devices.
fn workers() -> &'static [String] {
    static WORKERS: OnceLock<(Vec<RunningWorker>, tempfile::TempDir, Vec<String>)> =
        OnceLock::new();
    &WORKERS
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            cluster::init(dir.path()).unwrap();
            ferrograd::device::init();
            let running: Vec<RunningWorker> = (0..11)
                .map(|_| {
                    let token = cluster::token(dir.path(), Duration::from_secs(600)).unwrap();
                    let config = WorkerConfig::new(
                        "127.0.0.1:0".parse().unwrap(),
                        Security::MutualTls(cluster::redeem(&token).unwrap()),
                    );
                    Worker::bind(config).unwrap().spawn().unwrap()
                })
                .collect();
            remote::set_client_security(Security::MutualTls(
                Identity::load_client(dir.path()).unwrap(),
            ));
            let names = running
                .iter()
                .map(|w| format!("remote:{}/cpu", w.addr()))
                .collect();
            (running, dir, names)
        })
        .2
}

fn input() -> Tensor {
    Tensor::manual_seed(5);
    let x = Tensor::randn(&[7, 24]).to("cpu").unwrap();
    x.realize().unwrap();
    x
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "[{i}] {g} vs {w}");
    }
}

#[test]
fn calibration_measures_a_positive_rate_once() {
    let dev = &workers()[0];
    let r = calibrate(dev).unwrap();
    assert!(r.is_finite() && r > 1e3, "{r}");
    assert_eq!(calibrate(dev).unwrap(), r, "cached");
}

#[test]
fn the_split_follows_the_rates_and_the_result_equals_one_device() {
    let ws = workers();
    let (a, b) = (&ws[1], &ws[2]);
    set_rate(a, 2e9).unwrap();
    set_rate(b, 1e9).unwrap();
    // Links treated as free: this test is about the flop rates.
    set_link_rate(a, f64::INFINITY).unwrap();
    set_link_rate(b, f64::INFINITY).unwrap();
    let layers = model(9);
    let x = input();
    let want = expected(&layers, &x);
    let weights: Vec<Tensor> = layers.iter().map(|l| l.parameters()[0].clone()).collect();
    let mut p = Pipeline::new(layers, &[a, b], &[7, 24], HashMap::new()).unwrap();
    // Equal layers, a worker twice as fast: it gets twice the layers.
    assert_eq!(p.placement().stages, vec![0..6, 6..9]);
    // The layers' own tensors moved to their stage's device.
    let moved: Vec<String> = weights.iter().map(|w| w.device().to_string()).collect();
    assert_eq!(moved[..6], vec![a.clone(); 6][..]);
    assert_eq!(moved[6..], vec![b.clone(); 3][..]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    p.set_observer(move |e| log.lock().unwrap().push(e.clone()));
    let got = p.forward(&x).unwrap();
    assert_eq!(got.device().as_ref(), "cpu");
    assert_close(&got.to_vec::<f32>().unwrap(), &want);
    assert_eq!(
        *events.lock().unwrap(),
        vec![
            StageEvent::Starting {
                device: a.clone(),
                layers: 0..6
            },
            StageEvent::Starting {
                device: b.clone(),
                layers: 6..9
            },
        ]
    );
    // Reversed rates reverse the split.
    set_rate(a, 1e9).unwrap();
    set_rate(b, 2e9).unwrap();
    let p = Pipeline::new(model(9), &[a, b], &[7, 24], HashMap::new()).unwrap();
    assert_eq!(p.placement().stages, vec![0..3, 3..9]);
}

#[test]
fn a_user_override_wins_and_a_joining_device_is_used_from_the_next_pass() {
    let ws = &workers()[3..6];
    for w in ws {
        set_rate(w, 1e9).unwrap();
        set_link_rate(w, f64::INFINITY).unwrap();
    }
    // Pin layer 1 to the second device: the first keeps only layer 0.
    let pins = HashMap::from([(1, 1)]);
    let layers = model(4);
    let x = input();
    let want = expected(&layers, &x);
    let mut p = Pipeline::new(layers, &[&ws[0], &ws[1]], &[7, 24], pins).unwrap();
    assert_eq!(p.placement().stages, vec![0..1, 1..4]);
    assert_close(&p.forward(&x).unwrap().to_vec::<f32>().unwrap(), &want);
    p.add_device(&ws[2]).unwrap();
    assert_eq!(p.placement().stages, vec![0..1, 1..3, 3..4]);
    assert_close(&p.forward(&x).unwrap().to_vec::<f32>().unwrap(), &want);
    assert_eq!(p.failovers(), 0);
    // Without the pin the four equal layers split evenly-ish over three equal devices.
    let q = Pipeline::new(
        model(4),
        &[&ws[0], &ws[1], &ws[2]],
        &[7, 24],
        HashMap::new(),
    )
    .unwrap();
    let sizes: Vec<usize> = q.placement().stages.iter().map(|r| r.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 4);
    assert_eq!(*sizes.iter().max().unwrap(), 2, "{sizes:?}");
    let layers = model(2);
    let err = Pipeline::new(layers, &[&ws[0]], &[7, 24], HashMap::from([(0, 3)]))
        .err()
        .expect("a pin to a device that does not exist");
    assert!(err.to_string().contains("override"), "{err}");
}

#[test]
fn activations_go_worker_to_worker_and_only_the_input_and_output_pass_the_client() {
    let ws = &workers()[6..9];
    for w in ws {
        set_rate(w, 1e9).unwrap();
    }
    let (width, hidden, batch) = (8, 512, 4);
    Tensor::manual_seed(13);
    let layers: Vec<Box<dyn PipelineLayer>> = (0..6)
        .map(|i| {
            let (inp, out) = match i {
                0 => (width, hidden),
                5 => (hidden, width),
                _ => (hidden, hidden),
            };
            Box::new(Dense(Linear::new(inp, out))) as Box<dyn PipelineLayer>
        })
        .collect();
    let x = Tensor::randn(&[batch, width]).to("cpu").unwrap();
    x.realize().unwrap();
    let want = expected(&layers, &x);
    let pins = HashMap::from([(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]);
    let names: Vec<&str> = ws.iter().map(String::as_str).collect();
    let mut p = Pipeline::new(layers, &names, &[batch, width], pins).unwrap();
    assert_eq!(p.placement().stages, vec![0..2, 2..4, 4..6]);
    let through_client = || -> u64 {
        ws.iter()
            .map(|d| remote::opened(d).unwrap().host_bytes())
            .sum()
    };
    for pass in 0..2 {
        let before = through_client();
        let got = p.forward(&x).unwrap().to_vec::<f32>().unwrap();
        let moved = through_client() - before;
        // Input 128 B and output 128 B; each of the two activations between stages is 8 KiB.
        eprintln!("pass {pass}: {moved} bytes through the client");
        assert!(
            moved < 1024,
            "pass {pass}: {moved} bytes through the client"
        );
        assert_close(&got, &want);
    }
}

#[test]
fn links_are_measured_and_a_slow_link_moves_layers_away() {
    let ws = &workers()[9..11];
    let (a, b) = (&ws[0], &ws[1]);
    let link = measure_link(a).unwrap();
    // 1 MiB over loopback TLS: well above 1 MB/s and finite.
    assert!(link.is_finite() && link > 1e6, "{link} B/s");
    assert_eq!(measure_link(a).unwrap(), link, "cached");
    assert_eq!(measure_link("cpu").unwrap(), f64::INFINITY);
    set_rate(a, 1e9).unwrap();
    set_rate(b, 1e9).unwrap();
    // Each stage pays its input (7 x 24 f32) over its link: at 1 B/s nothing goes to `b`.
    set_link_rate(b, 1.0).unwrap();
    let p = Pipeline::new(model(4), &[a, b], &[7, 24], HashMap::new()).unwrap();
    assert_eq!(p.placement().stages, vec![0..4, 4..4]);
    set_link_rate(a, f64::INFINITY).unwrap();
    set_link_rate(b, f64::INFINITY).unwrap();
    let p = Pipeline::new(model(4), &[a, b], &[7, 24], HashMap::new()).unwrap();
    assert_eq!(p.placement().stages, vec![0..2, 2..4]);
}
