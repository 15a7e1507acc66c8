//! Data-parallel training of the MNIST convnet across `ferrograd worker` processes on loopback
//! (mutual TLS): the batch is split unevenly, gradients are all-reduced, and a few Adam steps
//! match training on one device; the replicas stay bitwise equal. A worker killed mid-training
//! is dropped and its shard recomputed on the survivors, with the same result.

#[path = "common/processes.rs"]
mod processes;

use ferrograd::data::{Mnist, Split};
use ferrograd::models::MnistNet;
use ferrograd::nn::loss::cross_entropy;
use ferrograd::nn::Module;
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::shard::{Algorithm, DataParallel};
use ferrograd::Tensor;
use processes::{shared_cluster as cluster, WorkerProcess};
use std::time::Duration;

const BATCH: usize = 24;
const STEPS: usize = 3;
const LR: f64 = 2e-3;

/// Runs one data-parallel step on `(x, y)` and checks its loss against `want`, the loss of the
/// same step on one device.
fn data_parallel_step_matches<O: Optimizer>(
    dp: &mut DataParallel<MnistNet, O>,
    x: &Tensor,
    y: &Tensor,
    want: f32,
    step: usize,
) {
    let got = dp
        .step(x, y, |m, x, y| cross_entropy(&m.forward(x), y, 0.0))
        .unwrap()
        .item::<f32>()
        .unwrap();
    eprintln!(
        "step {step}: one device {want}, data parallel {got} on {} workers",
        dp.devices().len()
    );
    assert!(
        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
        "step {step}: loss {got} vs {want}"
    );
}

/// One Adam step of `net` on one device; the loss.
fn single_step(net: &MnistNet, opt: &mut Adam, x: &Tensor, y: &Tensor) -> f32 {
    let loss = cross_entropy(&net.forward(x), y, 0.0);
    loss.backward();
    opt.step_with(&[&loss]).unwrap();
    loss.item::<f32>().unwrap()
}

fn assert_params_close(got: &MnistNet, want: &MnistNet) {
    for ((name, w), (_, g)) in values(want).iter().zip(values(got)) {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4,
                "{name}[{i}]: data parallel {a} vs one device {b}"
            );
        }
    }
}

fn values(m: &MnistNet) -> Vec<(String, Vec<f32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec::<f32>().unwrap()))
        .collect()
}

#[test]
fn data_parallel_mnist_on_two_workers_matches_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(cluster(), &dir.path().join(format!("w{i}"))))
        .collect();
    let devices: Vec<String> = workers.iter().map(WorkerProcess::device).collect();
    let devices: Vec<&str> = devices.iter().map(String::as_str).collect();

    Tensor::manual_seed(5);
    let model = MnistNet::new();
    Tensor::realize_all(&model.parameters()).unwrap();
    let single = MnistNet::new();
    single.load_state_dict(&model.state_dict()).unwrap();
    let mut opt = Adam::new(single.parameters(), AdamConfig::adam(LR));
    // Uneven: the first worker takes three quarters of each batch. The ring all-reduce is
    // forced so the two-device ring path is what the gradients go through.
    let mut dp = DataParallel::with_weights(&model, &devices, &[3.0, 1.0], MnistNet::new, |p| {
        Adam::new(p, AdamConfig::adam(LR))
    })
    .unwrap()
    .with_algorithm(Algorithm::Ring);
    assert_eq!(dp.split_of(BATCH), [18, 6]);

    let data = Mnist::vendored().unwrap();
    for step in 0..STEPS {
        let idx: Vec<usize> = (step * BATCH..(step + 1) * BATCH).collect();
        let (x, y) = data.batch(Split::Train, &idx);
        let want = single_step(&single, &mut opt, &x, &y);
        data_parallel_step_matches(&mut dp, &x, &y, want, step);
    }

    let replicas: Vec<_> = dp.replicas().iter().map(values).collect();
    for (name, v) in &replicas[1] {
        let first = &replicas[0].iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(v, first, "replicas differ in {name}");
    }
    let changed = values(&single)
        .iter()
        .zip(values(&model))
        .any(|((_, a), (_, b))| a != &b);
    assert!(changed, "training changed nothing");
    assert_params_close(&dp.replicas()[0], &single);
}

#[test]
fn a_worker_killed_mid_training_has_its_shard_recomputed_on_the_survivors() {
    let dir = tempfile::tempdir().unwrap();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|i| WorkerProcess::start(cluster(), &dir.path().join(format!("k{i}"))))
        .collect();
    let devices: Vec<String> = workers.iter().map(WorkerProcess::device).collect();
    let names: Vec<&str> = devices.iter().map(String::as_str).collect();

    Tensor::manual_seed(6);
    let model = MnistNet::new();
    Tensor::realize_all(&model.parameters()).unwrap();
    let single = MnistNet::new();
    single.load_state_dict(&model.state_dict()).unwrap();
    let mut opt = Adam::new(single.parameters(), AdamConfig::adam(LR));
    let mut dp = DataParallel::with_weights(&model, &names, &[1.0, 1.0, 1.0], MnistNet::new, |p| {
        Adam::new(p, AdamConfig::adam(LR))
    })
    .unwrap();

    let data = Mnist::vendored().unwrap();
    let steps = STEPS + 1;
    let mut killer = None;
    for step in 0..steps {
        let idx: Vec<usize> = (step * BATCH..(step + 1) * BATCH).collect();
        let (x, y) = data.batch(Split::Train, &idx);
        let want = single_step(&single, &mut opt, &x, &y);
        if step == 2 {
            // Lands inside this step (or, on a fast machine, just after it: the next step
            // then meets the dead worker).
            let pid = workers[1].child.id().to_string();
            killer = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let status = std::process::Command::new("kill")
                    .args(["-KILL", &pid])
                    .status()
                    .unwrap();
                assert!(status.success());
            }));
        }
        data_parallel_step_matches(&mut dp, &x, &y, want, step);
    }
    killer.unwrap().join().unwrap();
    let left: Vec<&str> = dp.devices().iter().map(|d| &**d).collect();
    assert_eq!(left, [names[0], names[2]]);
    assert_params_close(&dp.replicas()[0], &single);
    assert_params_close(&dp.replicas()[1], &single);
}

#[test]
fn a_worker_joining_mid_training_is_used_from_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(cluster(), &dir.path().join(format!("j{i}"))))
        .collect();
    let devices: Vec<String> = workers.iter().map(WorkerProcess::device).collect();
    let names: Vec<&str> = devices.iter().map(String::as_str).collect();

    Tensor::manual_seed(7);
    let model = MnistNet::new();
    Tensor::realize_all(&model.parameters()).unwrap();
    let single = MnistNet::new();
    single.load_state_dict(&model.state_dict()).unwrap();
    let mut opt = Adam::new(single.parameters(), AdamConfig::adam(LR));
    let make_opt = |p| Adam::new(p, AdamConfig::adam(LR));
    let mut dp =
        DataParallel::with_weights(&model, &names, &[1.0, 1.0], MnistNet::new, make_opt).unwrap();

    let data = Mnist::vendored().unwrap();
    for step in 0..STEPS + 1 {
        if step == 2 {
            // Joins after two steps: Adam's moments and bias corrections are not fresh.
            workers.push(WorkerProcess::start(cluster(), &dir.path().join("j2")));
            let joined = workers[2].device();
            dp.add_replica(&joined, 1.0, MnistNet::new, make_opt)
                .unwrap();
            assert_eq!(dp.devices().len(), 3);
            assert_eq!(dp.split_of(BATCH), [8, 8, 8]);
        }
        let idx: Vec<usize> = (step * BATCH..(step + 1) * BATCH).collect();
        let (x, y) = data.batch(Split::Train, &idx);
        let want = single_step(&single, &mut opt, &x, &y);
        data_parallel_step_matches(&mut dp, &x, &y, want, step);
    }
    for replica in dp.replicas() {
        assert_params_close(replica, &single);
    }
    let joined = values(&dp.replicas()[2]);
    for (name, v) in &values(&dp.replicas()[0]) {
        let other = &joined.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(v, other, "the joined replica differs in {name}");
    }
}
