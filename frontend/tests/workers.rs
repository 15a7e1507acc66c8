//! Worker processes on loopback: `ferrograd cluster init` / `cluster token` / `worker --join`
//! pair three workers; each computes; a killed worker is detected within 1.5 s and a stopped
//! (SIGSTOP) one within 2 s as `WorkerLost`, and the survivor keeps computing.

#[path = "common/processes.rs"]
mod processes;

use ferrograd::distributed::remote;
use ferrograd::{All, Error, Tensor};
use processes::{ferrograd, init_cluster, run, WorkerProcess};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The cluster every test of this binary shares (the client's security is process-wide).
fn cluster() -> &'static Path {
    static CLUSTER: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            init_cluster(dir.path());
            dir
        })
        .path()
}

/// `relu(x @ w).sum()` on `device`, compared with the local CPU.
fn computes_correctly(device: &str) -> ferrograd::Result<()> {
    Tensor::manual_seed(3);
    let x = Tensor::randn(&[16, 32]);
    let w = Tensor::randn(&[32, 8]);
    let expected = x.matmul(&w).relu().sum(All).item::<f32>()?;
    let got = x
        .to(device)?
        .matmul(&w.to(device)?)
        .relu()
        .sum(All)
        .item::<f32>()?;
    assert!(
        (got - expected).abs() <= 1e-4 * expected.abs().max(1.0),
        "{device}: {got} vs {expected}"
    );
    Ok(())
}

/// Seconds from `since` until the registry's device `name` reports its worker lost.
fn detection_time(name: &str, since: Instant, limit: Duration) -> Duration {
    let device = remote::opened(name).expect("opened");
    while device.lost().is_none() {
        assert!(since.elapsed() < limit * 3, "{name} never detected as lost");
        std::thread::sleep(Duration::from_millis(5));
    }
    since.elapsed()
}

#[test]
fn three_workers_compute_and_losses_are_detected_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|i| WorkerProcess::start(cluster, &dir.path().join(format!("w{i}"))))
        .collect();
    for w in &workers {
        computes_correctly(&w.device()).unwrap();
    }

    // Killed: the socket closes, detection is immediate.
    let killed = Instant::now();
    workers[0].signal("-KILL");
    let took = detection_time(&workers[0].device(), killed, Duration::from_millis(1500));
    eprintln!("killed worker detected after {took:?}");
    assert!(took <= Duration::from_millis(1500), "{took:?}");
    let err = computes_correctly(&workers[0].device()).unwrap_err();
    assert!(matches!(err, Error::WorkerLost { .. }), "{err}");

    // Stopped: the socket stays open, the heartbeat notices.
    let stopped = Instant::now();
    workers[1].signal("-STOP");
    let took = detection_time(&workers[1].device(), stopped, Duration::from_secs(2));
    eprintln!("stopped worker detected after {took:?}");
    assert!(took <= Duration::from_secs(2), "{took:?}");
    let err = computes_correctly(&workers[1].device()).unwrap_err();
    assert!(matches!(err, Error::WorkerLost { .. }), "{err}");

    // The third worker is unaffected.
    computes_correctly(&workers[2].device()).unwrap();
}

#[test]
fn a_request_blocked_on_a_stopped_worker_fails_with_worker_lost_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(cluster(), &dir.path().join("w"));
    let name = worker.device();
    let x = Tensor::randn(&[4, 4]).to(&name).unwrap();
    x.realize().unwrap();
    worker.signal("-STOP");
    let stopped = Instant::now();
    // This read waits on the stopped worker; the heartbeat ends the wait.
    let err = (&x + 1.0).to_vec::<f32>().unwrap_err();
    let took = stopped.elapsed();
    eprintln!("blocked request failed after {took:?}: {err}");
    assert!(matches!(err, Error::WorkerLost { .. }), "{err}");
    assert!(took <= Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_worker_refuses_an_expired_token_and_plaintext_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let token = run(&[
        "cluster",
        "token",
        cluster().to_str().unwrap(),
        "--ttl-secs",
        "0",
    ]);
    let out = ferrograd()
        .args(["worker", "--listen", "127.0.0.1:0", "--join", token.trim()])
        .arg("--state")
        .arg(dir.path().join("w"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
    let out = ferrograd()
        .args(["worker", "--listen", "0.0.0.0:0", "--insecure-loopback"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing plaintext"));
}

#[test]
fn a_worker_killed_mid_inference_fails_the_running_requests_with_worker_lost() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(cluster(), &dir.path().join("w"));
    let name = worker.device();
    let pid = worker.child.id().to_string();
    // Connected and warm before the kill is scheduled.
    let w = Tensor::randn(&[256, 256]).to(&name).unwrap();
    w.realize().unwrap();
    let killed_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let killer = {
        let killed_at = killed_at.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            *killed_at.lock().unwrap() = Some(Instant::now());
            assert!(status.success());
        })
    };
    // Inference in a loop (each step a fresh input, so every step launches kernels) until the
    // kill lands in the middle of one.
    let start = Instant::now();
    let err = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the kill never surfaced"
        );
        let x = Tensor::randn(&[64, 256]).to(&name).unwrap();
        if let Err(e) = x.matmul(&w).relu().sum(All).item::<f32>() {
            break e;
        }
    };
    let failed_at = Instant::now();
    killer.join().unwrap();
    let killed_at = killed_at.lock().unwrap().expect("killed");
    let took = failed_at.saturating_duration_since(killed_at);
    eprintln!("inference failed {took:?} after the kill: {err}");
    assert!(matches!(err, Error::WorkerLost { .. }), "{err}");
    assert!(took <= Duration::from_millis(1500), "{took:?}");
}

/// A dense layer with a ReLU, for the pipeline tests.
struct Dense(ferrograd::nn::Linear);

impl ferrograd::nn::Module for Dense {
    fn visit_state(&self, f: &mut dyn FnMut(&str, &Tensor, ferrograd::nn::StateKind)) {
        self.0.visit_state(f)
    }
    fn set_training(&self, training: bool) {
        self.0.set_training(training)
    }
}

impl ferrograd::pipeline::PipelineLayer for Dense {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(x).relu()
    }
}

fn dense_model(n: usize, width: usize) -> Vec<Box<dyn ferrograd::pipeline::PipelineLayer>> {
    Tensor::manual_seed(21);
    (0..n)
        .map(|_| {
            Box::new(Dense(ferrograd::nn::Linear::new(width, width)))
                as Box<dyn ferrograd::pipeline::PipelineLayer>
        })
        .collect()
}

#[test]
fn a_pipeline_finishes_with_the_same_result_when_a_worker_is_killed_mid_inference() {
    pipeline_survives_a_lost_worker("-KILL", Duration::from_millis(1500), true);
}

#[test]
fn a_pipeline_finishes_with_the_same_result_when_a_worker_is_stopped_mid_inference() {
    pipeline_survives_a_lost_worker("-STOP", Duration::from_secs(2), false);
}

/// Three worker processes run a six-layer pipeline; `signal` hits the middle stage's worker
/// as that stage starts; the pass must fail over within `limit` and give the same result. With
/// `join`, a fourth worker joins afterwards and must be used from the next pass.
fn pipeline_survives_a_lost_worker(signal: &str, limit: Duration, join: bool) {
    use ferrograd::pipeline::{set_rate, Pipeline, StageEvent};
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|i| WorkerProcess::start(cluster, &dir.path().join(format!("p{i}"))))
        .collect();
    let names: Vec<String> = workers.iter().map(WorkerProcess::device).collect();
    for n in &names {
        set_rate(n, 1e9).unwrap();
        ferrograd::pipeline::set_link_rate(n, f64::INFINITY).unwrap();
    }
    let width = 48;
    Tensor::manual_seed(8);
    let x = Tensor::randn(&[5, width]).to("cpu").unwrap();
    x.realize().unwrap();
    // The expected values come from the very layers the pipeline gets (other tests of this
    // binary use the shared seeded generator concurrently).
    let layers = dense_model(6, width);
    let mut want = x.clone();
    for l in &layers {
        want = l.forward(&want);
    }
    let want = want.to("cpu").unwrap().to_vec::<f32>().unwrap();
    let close = |got: &Tensor| {
        let got = got.to_vec::<f32>().unwrap();
        got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| (g - w).abs() <= 1e-4 * w.abs().max(1.0))
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut p =
        Pipeline::new(layers, &refs, &[5, width], std::collections::HashMap::new()).unwrap();
    assert_eq!(p.placement().stages, vec![0..2, 2..4, 4..6]);
    assert!(close(&p.forward(&x).unwrap()), "the pass without a failure");

    // Hit the middle stage's worker as its stage starts: the pass is half done.
    let victim = workers[1].child.id().to_string();
    let signal = signal.to_string();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let killed_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    {
        let (events, killed_at, signal) = (events.clone(), killed_at.clone(), signal.clone());
        p.set_observer(move |e| {
            events.lock().unwrap().push((e.clone(), Instant::now()));
            if matches!(e, StageEvent::Starting { layers, .. } if layers.start == 2)
                && killed_at.lock().unwrap().is_none()
            {
                let status = Command::new("kill")
                    .args([&signal, &victim])
                    .status()
                    .unwrap();
                assert!(status.success());
                *killed_at.lock().unwrap() = Some(Instant::now());
            }
        });
    }
    let got = p.forward(&x).unwrap();
    assert!(close(&got), "the pass with a worker killed in the middle");
    assert_eq!(p.failovers(), 1);
    assert_eq!(p.devices(), [names[0].clone(), names[2].clone()]);
    let killed_at = killed_at.lock().unwrap().expect("killed");
    let failed = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|(e, at)| match e {
            StageEvent::FailedOver { device, layers, .. } => {
                assert_eq!((device, layers), (&names[1], &(2..4)));
                Some(*at)
            }
            _ => None,
        })
        .expect("a failover event");
    let took = failed.saturating_duration_since(killed_at);
    eprintln!("stage failed over {took:?} after kill {signal}");
    assert!(took <= limit, "{took:?}");
    // The survivors hold every layer now; the next pass uses them only.
    assert_eq!(p.placement().stages, vec![0..3, 3..6]);
    assert!(close(&p.forward(&x).unwrap()));
    if !join {
        return;
    }

    // A worker that joins is used from the next pass.
    let joined = WorkerProcess::start(cluster, &dir.path().join("p3"));
    set_rate(&joined.device(), 1e9).unwrap();
    ferrograd::pipeline::set_link_rate(&joined.device(), f64::INFINITY).unwrap();
    p.add_device(&joined.device()).unwrap();
    events.lock().unwrap().clear();
    assert!(close(&p.forward(&x).unwrap()));
    let used: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(e, _)| match e {
            StageEvent::Starting { device, .. } => Some(device.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(used, [names[0].clone(), names[2].clone(), joined.device()]);
}

#[test]
fn cluster_discover_lists_static_peers_of_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster();
    let worker = WorkerProcess::start(cluster, &dir.path().join("d"));
    let peers = dir.path().join("peers");
    std::fs::write(&peers, format!("# ours\n{}\n127.0.0.1:1\n", worker.addr)).unwrap();
    let out = ferrograd()
        .args(["cluster", "discover", "--wait-ms", "0", "--peers-file"])
        .arg(&peers)
        .env("FERROGRAD_CLUSTER_DIR", cluster)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.contains(&format!("{} (Static): {}", worker.addr, worker.device())),
        "{out}"
    );
    assert!(out.contains("127.0.0.1:1: unreachable"), "{out}");
}
