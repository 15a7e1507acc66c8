//! A representative slice of the op suite on a remote device: an in-process worker on
//! loopback, reached over mutual TLS as `remote:127.0.0.1:PORT/cpu`, is the only test device.
//! Every check compares with the f64 reference evaluator (random shapes incl. size 1, odd
//! sizes, 0-d, broadcasting, views, NaN/Inf). The whole op suite runs the same way against a
//! running worker: `FERROGRAD_TEST_BACKENDS=remote:HOST:PORT/cpu cargo test -p ferrograd`.

use ferrograd::distributed::cluster::{self, Identity};
use ferrograd::distributed::worker::{RunningWorker, Worker, WorkerConfig};
use ferrograd::distributed::{remote, Security};
use ferrograd::testing::{check, check_gradients, test_devices};
use ferrograd::{All, Conv2dOptions, Tensor};
use std::time::Duration;

/// Starts a TLS worker in this process and makes it the only test device.
fn remote_test_device() -> (RunningWorker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    cluster::init(dir.path()).unwrap();
    let token = cluster::token(dir.path(), Duration::from_secs(600)).unwrap();
    ferrograd::device::init();
    let config = WorkerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Security::MutualTls(cluster::redeem(&token).unwrap()),
    );
    let worker = Worker::bind(config).unwrap().spawn().unwrap();
    remote::set_client_security(Security::MutualTls(
        Identity::load_client(dir.path()).unwrap(),
    ));
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::set_var(
        "FERROGRAD_TEST_BACKENDS",
        format!("remote:{}/cpu", worker.addr()),
    );
    (worker, dir)
}

/// A standard-normal tensor realized on the CPU (so the checks compare the ops, not the
/// generator's transcendental functions).
fn randn(shape: &[usize]) -> Tensor {
    let t = Tensor::randn(shape).to("cpu").unwrap();
    t.realize().unwrap();
    t
}

#[test]
fn op_suite_slice_on_a_remote_device() {
    let (worker, _dir) = remote_test_device();
    assert_eq!(
        test_devices(),
        vec![std::sync::Arc::from(
            format!("remote:{}/cpu", worker.addr()).as_str()
        )]
    );
    Tensor::manual_seed(7);
    let special = Tensor::from_slice(
        &[
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            0.0,
            -0.0,
            1.5,
            -2.5,
        ],
        &[7],
    );
    for (name, t) in [
        ("exp", special.exp()),
        ("log", special.log()),
        ("sqrt", special.sqrt()),
        ("sin", special.sin()),
        ("relu", special.relu()),
    ] {
        check(&t, 1e-5, 1e-6, name);
    }
    for &(m, k, n) in &[
        (1usize, 1usize, 1usize),
        (3, 5, 7),
        (17, 33, 9),
        (64, 128, 10),
    ] {
        let a = randn(&[m, k]);
        let b = randn(&[k, n]);
        let bias = randn(&[n]);
        check(
            &(a.matmul(&b) + &bias).relu(),
            1e-5,
            1e-5,
            "matmul+bias+relu",
        );
        check(&a.softmax(-1), 1e-5, 1e-6, "softmax");
        check(&a.log_softmax(0), 1e-5, 1e-5, "log_softmax");
        check(&a.max(1), 0.0, 0.0, "max");
        check(&a.sum(All), 1e-5, 1e-4, "sum all");
        check(&a.cumsum(1), 1e-5, 1e-5, "cumsum");
        check(
            &a.permute([1, 0]).flip(0).contiguous(),
            0.0,
            0.0,
            "permute+flip",
        );
        check(&Tensor::cat(&[a.clone(), a.neg()], 1), 0.0, 0.0, "cat");
        check(&a.argmax(1), 0.0, 0.0, "argmax");
    }
    let scalar = Tensor::from_slice(&[2.5f32], &[]);
    let row = randn(&[1, 9]);
    let col = randn(&[5, 1]);
    check(&(&row * &col + &scalar), 1e-6, 0.0, "broadcast");
    check(&(&row.cast(ferrograd::DType::I32) * 3), 0.0, 0.0, "int");
    let x = randn(&[2, 3, 9, 9]);
    let w = randn(&[4, 3, 3, 3]);
    check(
        &x.conv2d(&w, None, Conv2dOptions::default())
            .max_pool2d((2, 2), Conv2dOptions::default().stride(2, 2)),
        1e-5,
        1e-5,
        "conv2d+max_pool2d",
    );
    check_gradients(
        &[randn(&[3, 4]), randn(&[4, 2])],
        |t| t[0].matmul(&t[1]).tanh().sum(All),
        1e-2,
        1e-3,
        "grad of matmul+tanh",
    );
    // The same tensors realized directly on the remote device.
    let name = format!("remote:{}/cpu", worker.addr());
    let a = randn(&[8, 8]).to(&name).unwrap();
    assert_eq!(a.device().as_ref(), name);
    let y = a.matmul(&a).sum(All).item::<f32>().unwrap();
    let expected = a.to("cpu").unwrap();
    let z = expected.matmul(&expected).sum(All).item::<f32>().unwrap();
    assert!((y - z).abs() <= 1e-4 * z.abs().max(1.0), "{y} vs {z}");
}
