//! Sharded tensors and collectives, compared with the same computation on one device: on two
//! local devices (`cpu` and `vulkan:0` when lavapipe or a GPU is there, else `cpu` and an
//! in-process loopback worker) and on three in-process TLS workers, where copies between
//! workers must go worker to worker (the client's byte counters prove it).

use ferrograd::distributed::cluster::{self, Identity};
use ferrograd::distributed::worker::{RunningWorker, Worker, WorkerConfig};
use ferrograd::distributed::{remote, Security};
use ferrograd::shard::split::split_sizes;
use ferrograd::shard::{all_gather, all_reduce, Algorithm, Layout, ReduceOp};
use ferrograd::{All, ShardedTensor, Tensor};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Three TLS workers in this process and the client identity, shared by the tests.
struct Cluster {
    workers: Vec<RunningWorker>,
    _dir: tempfile::TempDir,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        cluster::init(dir.path()).unwrap();
        ferrograd::device::init();
        let workers = (0..3)
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
        Cluster { workers, _dir: dir }
    })
}

/// The workers' cpu devices, by name.
fn worker_devices() -> Vec<String> {
    cluster()
        .workers
        .iter()
        .map(|w| format!("remote:{}/cpu", w.addr()))
        .collect()
}

/// Tests that use the workers share them; the test that counts the bytes passing through the
/// client holds them alone (another test's uploads in its window counted: 1,092 bytes once
/// under a full workspace run).
static WORKERS: RwLock<()> = RwLock::new(());

fn workers_shared() -> RwLockReadGuard<'static, ()> {
    WORKERS.read().unwrap_or_else(PoisonError::into_inner)
}

fn workers_alone() -> RwLockWriteGuard<'static, ()> {
    WORKERS.write().unwrap_or_else(PoisonError::into_inner)
}

/// Two local devices: the CPU and the first Vulkan device, or a loopback worker without one.
fn local_devices() -> Vec<String> {
    ferrograd::device::init();
    let has_vulkan = ferrograd::device::list_devices()
        .iter()
        .any(|d| d.name == "vulkan:0");
    if has_vulkan {
        vec!["cpu".into(), "vulkan:0".into()]
    } else {
        eprintln!("no vulkan:0; the second device is a loopback worker");
        vec!["cpu".into(), worker_devices()[0].clone()]
    }
}

fn names(devices: &[String]) -> Vec<&str> {
    devices.iter().map(String::as_str).collect()
}

/// A realized CPU tensor of `shape` with values from a seeded generator.
fn data(shape: &[usize], seed: u64) -> Tensor {
    Tensor::manual_seed(seed);
    let t = Tensor::randn(shape).to("cpu").unwrap();
    t.realize().unwrap();
    t
}

fn assert_close(op: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{op}: shapes");
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a - b).abs() <= 1e-4 * b.abs().max(1.0) || (a.is_nan() && b.is_nan());
        assert!(ok, "{op}: element {i}: {a} vs {b}");
    }
}

/// Every op family on a sharded tensor against the same op on the whole tensor.
fn ops_match_one_device(devices: &[&str]) {
    let n = devices.len();
    // Odd sizes; the split gives the first device a single row.
    let mut weights = vec![1.0; n];
    weights[0] = 1e-6;
    let x = data(&[7, 5], 1);
    let sx = x.shard_weighted(devices, 0, &weights).unwrap();
    let Layout::Split { axis: 0, sizes } = sx.layout().clone() else {
        panic!("split along 0: {:?}", sx.layout())
    };
    assert_eq!(sizes[0], 1, "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 7);
    for (p, d) in sx.parts().iter().zip(devices) {
        assert_eq!(&*p.device(), *d);
    }
    assert_close("gather", &sx.to_tensor(), &x);

    // Elementwise: unary, broadcasting against a whole row vector, a column vector, a 0-d
    // value, and against a sharded tensor split the same way and another way.
    let row = data(&[5], 2);
    let col = data(&[7, 1], 3);
    let y = data(&[7, 5], 4);
    let sy = y.shard_weighted(devices, 0, &weights).unwrap();
    let sy_other = y.shard_weighted(devices, 1, &vec![1.0; n]).unwrap();
    assert_close("relu", &sx.relu().to_tensor(), &x.relu());
    assert_close("add row", &sx.add(&row).to_tensor(), &x.add(&row));
    assert_close("mul col", &sx.mul(&col).to_tensor(), &x.mul(&col));
    assert_close(
        "sub 0-d",
        &sx.sub(&Tensor::scalar(0.5f32)).to_tensor(),
        &x.sub(0.5),
    );
    assert_close("add sharded", &sx.add(&sy).to_tensor(), &x.add(&y));
    assert_close("mul resplit", &sx.mul(&sy_other).to_tensor(), &x.mul(&y));
    // A whole tensor broadcasting over a new leading axis of the result.
    let x3 = data(&[3, 7, 5], 5);
    let s3 = x3.shard_weighted(devices, 1, &weights).unwrap();
    assert_close("add 3-d", &s3.add(&x).to_tensor(), &x3.add(&x));
    assert_close(
        "row + sharded",
        &sx.maximum(&row).to_tensor(),
        &x.maximum(&row),
    );

    // Reductions over the split axis (all-reduce), over other axes, over everything.
    assert_close("sum 0", &sx.sum(0).to_tensor(), &x.sum(0));
    assert_close("sum 1", &sx.sum(1).to_tensor(), &x.sum(1));
    assert_close("sum all", &sx.sum(All).to_tensor(), &x.sum(All));
    assert_close("max 0", &sx.max(0).to_tensor(), &x.max(0));
    assert_close("mean 1", &sx.mean(1).to_tensor(), &x.mean(1));
    assert_close(
        "sum keep",
        &sx.sum_keepdim(0).to_tensor(),
        &x.sum_keepdim(0),
    );
    assert_close("sum 3-d", &s3.sum([0, 2]).to_tensor(), &x3.sum([0, 2]));
    assert!(matches!(sx.sum(0).layout(), Layout::Replicated));
    assert!(matches!(sx.sum(1).layout(), Layout::Split { axis: 0, .. }));

    // Matmul: split rows, split batch, split contraction (partial sums + all-reduce), split
    // columns of the right operand.
    let w = data(&[5, 3], 6);
    assert_close("matmul rows", &sx.matmul(&w).to_tensor(), &x.matmul(&w));
    let b = data(&[3, 5, 2], 7);
    let sb = x3.shard_weighted(devices, 0, &vec![1.0; n]).unwrap();
    assert_close("matmul batch", &sb.matmul(&b).to_tensor(), &x3.matmul(&b));
    let sk = x.shard_weighted(devices, 1, &weights).unwrap();
    let contracted = sk.matmul(&w);
    assert!(matches!(contracted.layout(), Layout::Replicated));
    assert_close("matmul contracted", &contracted.to_tensor(), &x.matmul(&w));
    let sw = w.shard_weighted(devices, 0, &weights).unwrap();
    assert_close(
        "matmul both contracted",
        &sk.matmul(&sw).to_tensor(),
        &x.matmul(&w),
    );
    let wide = data(&[5, 9], 8);
    let scols = wide.shard_weighted(devices, 1, &weights).unwrap();
    let rep = x.replicate(devices).unwrap();
    let by_cols = rep.matmul(&scols);
    assert!(matches!(by_cols.layout(), Layout::Split { axis: 1, .. }));
    assert_close("matmul cols", &by_cols.to_tensor(), &x.matmul(&wide));

    // Movement: permute keeps the data in place, reshape keeps or reshards the split.
    assert_close("transpose", &sx.transpose(0, 1).to_tensor(), &x.t());
    assert_close(
        "permute 3-d",
        &s3.permute(&[2, 0, 1]).to_tensor(),
        &x3.permute([2, 0, 1]),
    );
    let kept = s3.reshape([3, 7, 5, 1]);
    assert!(matches!(kept.layout(), Layout::Split { axis: 1, .. }));
    assert_close("reshape kept", &kept.to_tensor(), &x3.reshape([3, 7, 5, 1]));
    let merged = s3.reshape([21, 5]);
    assert!(matches!(merged.layout(), Layout::Split { axis: 0, .. }));
    assert_close(
        "reshape resharded",
        &merged.to_tensor(),
        &x3.reshape([21, 5]),
    );
    assert_close("reshard", &sx.reshard(1).to_tensor(), &x);
    assert_close("all-gather", &sx.all_gather().parts()[n - 1], &x);
}

#[test]
fn sharded_ops_match_one_device_on_local_devices() {
    let _workers = workers_shared();
    let devices = local_devices();
    ops_match_one_device(&names(&devices));
}

#[test]
fn sharded_ops_match_one_device_on_three_workers() {
    let _workers = workers_shared();
    let devices = worker_devices();
    ops_match_one_device(&names(&devices));
}

#[test]
fn measured_weights_split_the_axis_completely() {
    let _workers = workers_shared();
    let devices = local_devices();
    let x = data(&[64, 3], 9);
    let s = x.shard(&names(&devices), 0).unwrap();
    let rates: Vec<f64> = devices
        .iter()
        .map(|d| ferrograd::shard::split::device_rate(d).unwrap())
        .collect();
    assert!(rates.iter().all(|r| *r > 0.0), "{rates:?}");
    // Cached: asking again gives the same rate.
    assert_eq!(
        ferrograd::shard::split::device_rate(&devices[0]).unwrap(),
        rates[0]
    );
    let Layout::Split { sizes, .. } = s.layout() else {
        panic!("split")
    };
    assert_eq!(sizes.iter().sum::<usize>(), 64);
    let expected = split_sizes("test", &[64], 64, &rates, &[usize::MAX; 2]);
    assert_eq!(sizes, &expected);
    assert_close("measured split", &s.to_tensor(), &x);
}

#[test]
fn split_sizes_follow_weights_memory_and_give_every_device_a_row() {
    assert_eq!(split_sizes("t", &[10], 10, &[1.0, 1.0], &[99, 99]), [5, 5]);
    assert_eq!(split_sizes("t", &[10], 10, &[3.0, 1.0], &[99, 99]), [7, 3]);
    assert_eq!(
        split_sizes("t", &[3], 3, &[1.0, 1e9, 1.0], &[9, 9, 9]),
        [1, 1, 1]
    );
    assert_eq!(split_sizes("t", &[7], 7, &[1e-9, 1.0], &[9, 9]), [1, 6]);
    // Memory caps the fast device; the rest moves to the others by weight.
    assert_eq!(
        split_sizes("t", &[10], 10, &[8.0, 1.0, 1.0], &[2, 99, 99]),
        [2, 4, 4]
    );
    assert_eq!(split_sizes("t", &[1], 1, &[1.0], &[1]), [1]);
}

#[test]
#[should_panic(
    expected = "shard: axis of size 2 of shape [2, 3] cannot give each of 3 devices a row"
)]
fn more_devices_than_rows_panics_naming_op_and_shape() {
    let _workers = workers_shared();
    let devices = worker_devices();
    let _ = data(&[2, 3], 10).shard_weighted(&names(&devices), 0, &[1.0, 1.0, 1.0]);
}

#[test]
#[should_panic(expected = "do not fit the devices' memory")]
fn rows_beyond_the_devices_memory_panic() {
    split_sizes("shard", &[10], 10, &[1.0, 1.0], &[3, 3]);
}

#[test]
#[should_panic(expected = "matmul: sharded shapes [7, 5] and [4, 3] do not fit")]
fn sharded_matmul_shape_mismatch_panics_naming_shapes() {
    let _workers = workers_shared();
    let devices = worker_devices();
    let s = data(&[7, 5], 11)
        .shard_weighted(&names(&devices), 0, &[1.0; 3])
        .unwrap();
    let _ = s.matmul(&data(&[4, 3], 12));
}

/// Per-device partial values of `shape` and their naive f64 sum / max.
fn partials(devices: &[&str], shape: &[usize]) -> (Vec<Tensor>, Vec<f64>, Vec<f64>) {
    let parts: Vec<Tensor> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| data(shape, 100 + i as u64).to(d).unwrap())
        .collect();
    let values: Vec<Vec<f64>> = parts.iter().map(|p| p.to_f64_vec().unwrap()).collect();
    let n: usize = shape.iter().product();
    let sum = (0..n).map(|j| values.iter().map(|v| v[j]).sum()).collect();
    let max = (0..n)
        .map(|j| {
            values
                .iter()
                .map(|v| v[j])
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    (parts, sum, max)
}

fn check_all_reduce(devices: &[&str], shape: &[usize]) {
    let (parts, sum, max) = partials(devices, shape);
    for algorithm in [Algorithm::Direct, Algorithm::Ring, Algorithm::Auto] {
        for (op, want) in [(ReduceOp::Sum, &sum), (ReduceOp::Max, &max)] {
            let out = all_reduce(&parts, op, algorithm);
            Tensor::realize_all(&out).unwrap();
            let first = out[0].to_f64_vec().unwrap();
            for (o, d) in out.iter().zip(devices) {
                assert_eq!(&*o.device(), *d);
                assert_eq!(o.shape(), shape);
                // Bitwise the same on every device.
                assert_eq!(
                    o.to_f64_vec().unwrap(),
                    first,
                    "{algorithm:?} {op:?} on {d}"
                );
            }
            for (j, (a, b)) in first.iter().zip(want.iter()).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{algorithm:?} {op:?} {shape:?} element {j}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn all_reduce_and_all_gather_equal_a_naive_reduction_on_workers() {
    let _workers = workers_shared();
    let devices = worker_devices();
    let devices = names(&devices);
    // Fewer elements than devices (ring falls back to direct), odd sizes, 0-d, and one large
    // enough for Auto to pick the ring.
    for shape in [&[][..], &[2], &[7, 3], &[181, 183]] {
        check_all_reduce(&devices, shape);
    }
    let parts: Vec<Tensor> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| data(&[i + 1, 3], 200 + i as u64).to(d).unwrap())
        .collect();
    let whole = Tensor::cat(
        &parts
            .iter()
            .map(|p| p.to("cpu").unwrap())
            .collect::<Vec<_>>(),
        0,
    );
    for (g, d) in all_gather(&parts, 0).iter().zip(&devices) {
        assert_eq!(&*g.device(), *d);
        assert_eq!(g.to_f64_vec().unwrap(), whole.to_f64_vec().unwrap());
    }
}

#[test]
fn all_reduce_on_local_devices() {
    let _workers = workers_shared();
    let devices = local_devices();
    check_all_reduce(&names(&devices), &[5, 9]);
}

#[test]
fn copies_between_workers_go_worker_to_worker() {
    let _workers = workers_alone();
    let devices = worker_devices();
    let (a, b) = (&devices[0], &devices[1]);
    let x = data(&[512, 256], 13); // 512 KiB
    let on_a = x.to(a).unwrap();
    on_a.realize().unwrap();
    ferrograd::device::canonical_device(b).unwrap(); // opens it
    let (ra, rb) = (
        remote::opened(a).expect("opened"),
        remote::opened(b).expect("opened"),
    );
    let before = ra.host_bytes() + rb.host_bytes();
    let on_b = on_a.to(b).unwrap();
    let total = on_b.sum(All);
    total.realize().unwrap();
    let moved = ra.host_bytes() + rb.host_bytes() - before;
    assert!(
        moved < 1024,
        "{moved} bytes passed through the client for a 512 KiB copy"
    );
    // Exact: the bytes arrive unchanged.
    assert_eq!(on_b.to_bytes().unwrap(), x.to_bytes().unwrap());
    // Sharded work across the workers moves no tensor data through the client either, except
    // the inputs going out and the result coming back.
    let devs = names(&devices);
    let s: ShardedTensor = on_a.shard_weighted(&devs, 1, &[1.0, 1.0, 1.0]).unwrap();
    let before: u64 = devices
        .iter()
        .map(|d| remote::opened(d).unwrap().host_bytes())
        .sum();
    let out = s.sum(1);
    out.realize().unwrap();
    let after: u64 = devices
        .iter()
        .map(|d| remote::opened(d).unwrap().host_bytes())
        .sum();
    assert!(
        after - before < 1024,
        "{} bytes through the client",
        after - before
    );
    assert_close("w2w sum", &out.to_tensor(), &x.sum(1));
}

#[test]
fn index_ops_build_their_indices_on_the_operands_device() {
    let _workers = workers_shared();
    // gather, argmax, one_hot and cumsum make index tensors internally; on a device other than
    // the default they must make them there (a loss on a replica's device needs gather).
    let device = worker_devices()[2].clone();
    let x = data(&[4, 6], 14);
    let idx = Tensor::from_slice(&[5i32, 0, 3, 1], &[4, 1]);
    let (xr, ir) = (x.to(&device).unwrap(), idx.to(&device).unwrap());
    assert_close("gather", &xr.gather(1, &ir), &x.gather(1, &idx));
    assert_close("argmax", &xr.argmax(1), &x.argmax(1));
    assert_close("one_hot", &ir.one_hot(6), &idx.one_hot(6));
    assert_close("cumsum", &xr.cumsum(1), &x.cumsum(1));
    assert_eq!(&*xr.gather(1, &ir).device(), device.as_str());
}
