//! A worker's device used through the runtime: graphs realized on `remote:` agree with the
//! local CPU, launches are batched, bulk data moves in chunks, bad commands fail with reasons
//! and leave the session usable.

mod common;

use common::*;
use ferrograd_distributed::pool::BufferPool;
use ferrograd_distributed::protocol::program::WireProgram;
use ferrograd_distributed::protocol::Command;
use ferrograd_distributed::remote::{self, CHUNK_BYTES};
use ferrograd_distributed::Security;
use ferrograd_ir::{BinaryOp, DType, Node, NodeRef, Program, ReduceOp, UnaryOp};
use ferrograd_runtime::Device;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One plaintext loopback worker for this test binary, opened through the registry.
fn remote_name() -> Arc<str> {
    static NAME: OnceLock<(ferrograd_distributed::worker::RunningWorker, Arc<str>)> =
        OnceLock::new();
    NAME.get_or_init(|| {
        let worker = insecure_worker();
        remote::set_client_security(Security::InsecureLoopback);
        remote::register();
        let name: Arc<str> = Arc::from(format!("remote:{}/cpu", worker.addr()));
        (worker, name)
    })
    .1
    .clone()
}

fn upload(values: &[f32], shape: &[usize], device: &Arc<str>) -> NodeRef {
    let dev = ferrograd_runtime::device(device).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let handle = ferrograd_runtime::upload(&dev, &bytes).unwrap();
    Node::buffer(handle, DType::F32, shape, device)
}

fn values(node: &NodeRef) -> Vec<f32> {
    ferrograd_runtime::download(node)
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// `sum(exp2(a) * b + a, axis 1)` and a permuted, flipped view of `a * b`.
fn graphs(a: &NodeRef, b: &NodeRef) -> Vec<NodeRef> {
    let prod = Node::binary(BinaryOp::Mul, &Node::unary(UnaryOp::Exp2, a), b);
    let sum = Node::reduce(ReduceOp::Sum, &Node::binary(BinaryOp::Add, &prod, a), &[1]);
    let view = Node::flip(
        &Node::permute(&Node::binary(BinaryOp::Mul, a, b), &[1, 0]),
        &[0],
    );
    vec![sum, Node::contiguous(&view)]
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0
        })
        .collect()
}

#[test]
fn graphs_on_a_remote_device_match_the_local_cpu() {
    let remote = remote_name();
    let cpu: Arc<str> = Arc::from("cpu");
    for &(rows, cols) in &[(1usize, 1usize), (3, 7), (17, 33), (64, 1), (1, 129)] {
        let (x, y) = (data(rows * cols, 1), data(rows * cols, 2));
        let local = graphs(
            &upload(&x, &[rows, cols], &cpu),
            &upload(&y, &[rows, cols], &cpu),
        );
        let far = graphs(
            &upload(&x, &[rows, cols], &remote),
            &upload(&y, &[rows, cols], &remote),
        );
        ferrograd_runtime::realize(&far).unwrap();
        for (l, f) in local.iter().zip(&far) {
            assert_eq!(values(l), values(f), "{rows}x{cols}");
        }
    }
    // 0-d and empty tensors.
    let scalar = upload(&[3.5], &[], &remote);
    let doubled = Node::binary(BinaryOp::Add, &scalar, &scalar);
    assert_eq!(values(&doubled), vec![7.0]);
    let empty = upload(&[], &[0, 3], &remote);
    assert_eq!(
        values(&Node::unary(UnaryOp::Neg, &empty)),
        Vec::<f32>::new()
    );
}

#[test]
fn a_realize_and_its_read_cost_two_round_trips_once_kernels_are_compiled() {
    let remote = remote_name();
    ferrograd_runtime::device(&remote).unwrap();
    let conn = remote::opened(&remote)
        .expect("opened")
        .connection()
        .clone();
    let run = |seed| {
        let a = upload(&data(40, seed), &[5, 8], &remote);
        let b = upload(&data(40, seed + 1), &[5, 8], &remote);
        let out = graphs(&a, &b);
        ferrograd_runtime::realize(&out).unwrap();
        values(&out[0])
    };
    run(10);
    let before = conn.round_trips();
    let got = run(20);
    // Uploads, two kernels and the read: one batch at the read's synchronize, one read.
    assert_eq!(conn.round_trips() - before, 2);
    assert_eq!(got.len(), 5);
}

#[test]
fn bulk_data_crosses_in_chunks_exactly() {
    let worker = insecure_worker();
    let device = connect(worker.addr(), &Security::InsecureLoopback).unwrap();
    let n = 2 * CHUNK_BYTES + 12345;
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let buf = device.allocate(n).unwrap();
    device.write(&buf, &data).unwrap();
    let mut out = vec![0u8; n];
    device.read(&buf, &mut out).unwrap();
    assert!(out == data, "bulk data differs");
}

/// Several threads using one device over mutual TLS at once (each writes its requests to the
/// socket itself): every thread reads back exactly its own data, small and multi-frame.
#[test]
fn threads_sharing_one_device_over_tls_each_read_their_own_data() {
    let cluster = Cluster::new();
    let worker = cluster.worker();
    let device = connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4usize {
            let device = &device;
            scope.spawn(move || {
                for round in 0..40usize {
                    // Mostly activations, every tenth round a transfer of several frames.
                    let n = match round % 10 {
                        9 => CHUNK_BYTES + 1 + thread * 4099,
                        r => (16 << 10) + r * 1031 + thread,
                    };
                    let data: Vec<u8> = (0..n)
                        .map(|i| (i * 13 + thread * 7 + round) as u8)
                        .collect();
                    let buf = device.allocate(n).unwrap();
                    device.write(&buf, &data).unwrap();
                    let mut out = vec![0u8; n];
                    device.read(&buf, &mut out).unwrap();
                    assert!(out == data, "thread {thread}, round {round}: data differs");
                }
            });
        }
    });
}

/// Offset writes and reads spanning several frames, at odd offsets and of odd sizes, over
/// mutual TLS: byte for byte what was written, the bytes around them untouched; the second
/// round reuses pooled frame buffers.
#[test]
fn multi_frame_offset_transfers_of_odd_sizes_are_exact_over_tls() {
    let cluster = Cluster::new();
    let worker = cluster.worker();
    let device = connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap();
    let size = 2 * CHUNK_BYTES + 4099;
    let buf = device.allocate(size).unwrap();
    let base: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    let (offset, n) = (1001, CHUNK_BYTES + 65_537);
    let patch: Vec<u8> = (0..n).map(|i| (i * 31 % 241) as u8 ^ 0x5a).collect();
    let mut want = base.clone();
    want[offset..offset + n].copy_from_slice(&patch);
    for round in 0..2 {
        let reused = BufferPool::global().reused();
        device.write(&buf, &base).unwrap();
        device.write_at(&buf, offset, &patch).unwrap();
        let mut all = vec![0u8; size];
        device.read(&buf, &mut all).unwrap();
        assert!(all == want, "round {round}: whole read differs");
        let mut part = vec![0u8; n + 6];
        device.read_at(&buf, offset - 3, &mut part).unwrap();
        assert!(
            part[..] == want[offset - 3..offset + n + 3],
            "round {round}"
        );
        if round == 1 {
            assert!(
                BufferPool::global().reused() > reused,
                "no frame buffer reused"
            );
        }
    }
    assert!(device.write_at(&buf, size - 1, &[0, 0]).is_err());
    assert!(device.read_at(&buf, usize::MAX, &mut [0]).is_err());
}

#[test]
fn bad_commands_fail_with_reasons_and_the_session_goes_on() {
    let worker = insecure_worker();
    let device = connect(worker.addr(), &Security::InsecureLoopback).unwrap();
    let conn = device.connection();
    let deadline = Duration::from_secs(10);
    let program = {
        let a = upload(&[1.0, 2.0, 3.0], &[3], &Arc::from("cpu"));
        let neg = Node::unary(UnaryOp::Neg, &a);
        ferrograd_runtime::programs(&[neg]).unwrap().remove(0)
    };
    let mut broken: Program = program.clone();
    broken.insts.truncate(1);
    broken.insts.push(ferrograd_ir::Inst::Unary {
        op: UnaryOp::Neg,
        arg: ferrograd_ir::ValueId(99),
    });
    let cases: Vec<(Vec<Command>, &str)> = vec![
        (vec![Command::Free { buffer: 9 }], "no buffer #9"),
        (
            vec![Command::Launch {
                kernel: 1,
                buffers: vec![],
            }],
            "no kernel",
        ),
        (
            vec![
                Command::Alloc {
                    buffer: 100,
                    bytes: 8,
                },
                Command::Write {
                    buffer: 100,
                    offset: 0,
                    bytes: 9,
                },
            ],
            "write of bytes",
        ),
        (
            vec![Command::Write {
                buffer: 100,
                offset: u64::MAX,
                bytes: 2,
            }],
            "write of bytes",
        ),
        (
            vec![Command::Read {
                buffer: 100,
                offset: 4,
                bytes: 8,
            }],
            "read of bytes",
        ),
        (
            vec![Command::Alloc {
                buffer: 100,
                bytes: 8,
            }],
            "already exists",
        ),
        (
            vec![Command::Alloc {
                buffer: 101,
                bytes: u64::MAX,
            }],
            "limit",
        ),
        (
            vec![Command::Compile {
                kernel: 2,
                program: WireProgram::from(&broken),
            }],
            "",
        ),
        (
            vec![
                Command::Compile {
                    kernel: 3,
                    program: WireProgram::from(&program),
                },
                Command::Launch {
                    kernel: 3,
                    buffers: vec![100],
                },
            ],
            "takes 2 buffers",
        ),
        (
            vec![
                Command::Alloc {
                    buffer: 102,
                    bytes: 4,
                },
                Command::Launch {
                    kernel: 3,
                    buffers: vec![102, 100],
                },
            ],
            "needs 12",
        ),
        (
            vec![Command::Receive {
                buffer: 100,
                ticket: 7,
                bytes: 8,
            }],
            "no parcel",
        ),
        (
            vec![
                Command::Deposit {
                    ticket: 8,
                    offset: 0,
                    total: 8,
                    bytes: 4,
                },
                Command::Receive {
                    buffer: 100,
                    ticket: 8,
                    bytes: 8,
                },
            ],
            "holds 4 of 8 bytes",
        ),
        (
            vec![Command::Deposit {
                ticket: 8,
                offset: 2,
                total: 8,
                bytes: 2,
            }],
            "out of order",
        ),
        (
            vec![Command::Deposit {
                ticket: 9,
                offset: 0,
                total: u64::MAX,
                bytes: 0,
            }],
            "inbox limit",
        ),
        (
            vec![Command::Send {
                buffer: 100,
                bytes: 8,
                peer: "127.0.0.1:1".into(),
                device: "cpu".into(),
                ticket: 10,
            }],
            "connecting to peer 127.0.0.1:1",
        ),
        (
            vec![Command::Send {
                buffer: 100,
                bytes: 16,
                peer: "127.0.0.1:1".into(),
                device: "cpu".into(),
                ticket: 11,
            }],
            "read of bytes",
        ),
    ];
    for (commands, expected) in cases {
        let payload = commands
            .iter()
            .filter_map(|c| match c {
                Command::Write { bytes, .. } | Command::Deposit { bytes, .. } => {
                    Some(bytes::Bytes::from(vec![1; *bytes as usize]))
                }
                _ => None,
            })
            .collect();
        let err = conn
            .request(commands.clone(), payload, deadline)
            .err()
            .unwrap_or_else(|| panic!("{commands:?} succeeded"));
        assert!(
            matches!(err, ferrograd_distributed::Error::Refused { .. })
                && err.to_string().contains(expected),
            "{commands:?}: {err}"
        );
    }
    // The session still works.
    let buf = device.allocate(4).unwrap();
    device.write(&buf, &[1, 2, 3, 4]).unwrap();
    let mut out = [0u8; 4];
    device.read(&buf, &mut out).unwrap();
    assert_eq!(out, [1, 2, 3, 4]);
}

#[test]
fn an_unknown_or_remote_device_is_refused_at_the_handshake() {
    let worker = insecure_worker();
    for device in ["tpu:3", "remote:127.0.0.1:1/cpu"] {
        let err = remote::RemoteDevice::connect(
            "x",
            worker.addr(),
            device,
            &Security::InsecureLoopback,
            options(),
        )
        .err()
        .expect("refused");
        assert!(
            matches!(err, ferrograd_distributed::Error::Refused { .. }),
            "{err}"
        );
    }
}

#[test]
fn remote_names_parse_and_bad_ones_are_typed_errors() {
    let n = remote::RemoteName::parse("remote:[::1]:7070/vulkan:0").unwrap();
    assert_eq!(
        (n.host_port.as_str(), n.device.as_str()),
        ("[::1]:7070", "vulkan:0")
    );
    for bad in [
        "remote:host/cpu",
        "remote:host:99999/cpu",
        "remote::7/cpu",
        "remote:h:7/",
        "cpu",
    ] {
        assert!(
            matches!(
                remote::RemoteName::parse(bad),
                Err(ferrograd_distributed::Error::Address { .. })
            ),
            "{bad}"
        );
    }
}
