//! The wire protocol: the decoder survives arbitrary bytes (proptest fuzz), messages and
//! Programs round-trip, oversized and malformed frames close only their own connection, and a
//! version mismatch is a clear error on both sides.

mod common;

use bytes::Bytes;
use common::*;
use ferrograd_distributed::frame::{read_frame, DEFAULT_MAX_FRAME};
use ferrograd_distributed::protocol::program::WireProgram;
use ferrograd_distributed::protocol::{
    decode, decode_handshake, decode_message, encode, encode_handshake, encode_handshake_as,
    encode_message, Batch, ClientMsg, Command, Hello, HelloReply, OutFrame, WorkerMsg,
    PROTOCOL_VERSION,
};
use ferrograd_distributed::{Error, Security};
use ferrograd_ir::{BinaryOp, DType, Node, Program, ReduceOp, Scalar, UnaryOp};
use ferrograd_runtime::Device;
use proptest::prelude::*;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A command and, for a write or a deposit, its data.
fn command() -> impl Strategy<Value = (Command, Option<Vec<u8>>)> {
    let plain = |c: Command| (c, None);
    prop_oneof![
        (any::<u64>(), any::<u64>())
            .prop_map(|(buffer, bytes)| Command::Alloc { buffer, bytes })
            .prop_map(plain),
        any::<u64>()
            .prop_map(|buffer| Command::Free { buffer })
            .prop_map(plain),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(buffer, offset, data)| (
                Command::Write {
                    buffer,
                    offset,
                    bytes: data.len() as u64,
                },
                Some(data)
            )),
        (any::<u64>(), proptest::collection::vec(any::<u64>(), 0..8))
            .prop_map(|(kernel, buffers)| Command::Launch { kernel, buffers })
            .prop_map(plain),
        (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(buffer, offset, bytes)| Command::Read {
                buffer,
                offset,
                bytes,
            })
            .prop_map(plain),
        Just(Command::Synchronize).prop_map(plain),
        (
            any::<u64>(),
            any::<u64>(),
            ".{0,24}",
            ".{0,12}",
            any::<u64>()
        )
            .prop_map(|(buffer, bytes, peer, device, ticket)| Command::Send {
                buffer,
                bytes,
                peer,
                device,
                ticket
            })
            .prop_map(plain),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(ticket, offset, total, data)| (
                Command::Deposit {
                    ticket,
                    offset,
                    total,
                    bytes: data.len() as u64,
                },
                Some(data)
            )),
        (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(buffer, ticket, bytes)| Command::Receive {
                buffer,
                ticket,
                bytes,
            })
            .prop_map(plain),
    ]
}

/// The body of an encoded frame (everything after the length prefix), in one buffer.
fn body(frame: &OutFrame) -> Vec<u8> {
    let mut out = frame.head[4..].to_vec();
    for s in &frame.segments {
        out.extend_from_slice(s);
    }
    assert_eq!(out.len(), frame.body_len());
    assert_eq!(frame.head[..4], (out.len() as u32).to_le_bytes());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_message::<ClientMsg>(Bytes::copy_from_slice(&bytes), "fuzz");
        let _ = decode_message::<WorkerMsg>(Bytes::copy_from_slice(&bytes), "fuzz");
        let _ = decode_handshake::<Hello>(&bytes, "fuzz");
        let _ = decode_handshake::<HelloReply>(&bytes, "fuzz");
    }

    #[test]
    fn mutated_valid_messages_decode_or_fail_cleanly(
        commands in proptest::collection::vec(command(), 0..8),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let payload = commands.iter().filter_map(|(_, d)| d.clone().map(Bytes::from)).collect();
        let commands = commands.into_iter().map(|(c, _)| c).collect();
        let msg = ClientMsg::Batch(Batch { id: 1, deadline_ms: 5, commands, payload });
        let bytes = body(&encode_message(&msg));
        prop_assert_eq!(decode_message::<ClientMsg>(Bytes::from(bytes.clone()), "fuzz").unwrap(), msg);
        let mut mutated = bytes.clone();
        for (at, x) in flips {
            let i = at % mutated.len();
            mutated[i] ^= x;
        }
        let _ = decode_message::<ClientMsg>(Bytes::from(mutated), "fuzz");
        let cut = cut % bytes.len();
        let truncated = decode_message::<ClientMsg>(Bytes::copy_from_slice(&bytes[..cut]), "fuzz");
        prop_assert!(truncated.is_err(), "a frame cut to {} of {} bytes decoded", cut, bytes.len());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(decode_message::<ClientMsg>(Bytes::from(longer), "fuzz").is_err());
    }

    #[test]
    fn answers_carry_their_reads_after_the_value(
        reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..5),
    ) {
        let reads: Vec<Bytes> = reads.into_iter().map(Bytes::from).collect();
        let msg = WorkerMsg::Done {
            id: 7,
            read_bytes: reads.iter().map(|r| r.len() as u64).collect(),
            reads,
        };
        let bytes = body(&encode_message(&msg));
        prop_assert_eq!(decode_message::<WorkerMsg>(Bytes::from(bytes), "fuzz").unwrap(), msg);
    }

    #[test]
    fn the_frame_reader_refuses_oversized_and_truncated_frames(
        len in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut stream = len.to_le_bytes().to_vec();
        stream.extend_from_slice(&body);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let limit = 128;
        let got = rt.block_on(read_frame(&mut stream.as_slice(), limit, "fuzz"));
        if len > limit {
            prop_assert!(matches!(got, Err(Error::FrameTooLarge { .. })), "{:?}", got);
        } else if (len as usize) > body.len() {
            prop_assert!(matches!(got, Err(Error::Io { .. })), "{:?}", got);
        } else {
            prop_assert_eq!(&got.unwrap().unwrap()[..], &body[..len as usize]);
        }
    }
}

#[test]
fn programs_round_trip_through_the_wire_with_the_same_hash() {
    init();
    let cpu: Arc<str> = Arc::from("cpu");
    let a = Node::cast(&Node::arange(1, DType::I32, &[7, 9], &cpu), DType::F32);
    let b = Node::constant(Scalar::Float(f64::NAN), DType::F32, &[7, 9], &cpu);
    let m = Node::binary(BinaryOp::Max, &Node::unary(UnaryOp::Sin, &a), &b);
    let targets = [
        Node::reduce(ReduceOp::Sum, &m, &[1]),
        Node::cast(&Node::flip(&a, &[0]), DType::F16),
        Node::reduce(ReduceOp::Max, &Node::cast(&a, DType::I64), &[0, 1]),
    ];
    let programs = ferrograd_runtime::programs(&targets).unwrap();
    assert_eq!(programs.len(), 3);
    for p in programs {
        let bytes = encode(&WireProgram::from(&p));
        let back = Program::try_from(&decode::<WireProgram>(&bytes, "test").unwrap()).unwrap();
        assert_eq!(back, p);
    }
}

async fn raw(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

async fn send(stream: &mut tokio::net::TcpStream, body: &[u8]) {
    stream
        .write_all(&(body.len() as u32).to_le_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
}

/// Reads until the worker closes the connection; true if it did within 5 s.
async fn closed_by_worker(stream: &mut tokio::net::TcpStream) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut sink),
    )
    .await
    .is_ok()
}

#[test]
fn hostile_frames_close_their_connection_and_nothing_else() {
    let worker = insecure_worker();
    let device = connect(worker.addr(), &Security::InsecureLoopback).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Not a ferrograd peer.
        let mut s = raw(worker.addr()).await;
        send(&mut s, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(closed_by_worker(&mut s).await);
        // A handshake frame announcing 4 GiB.
        let mut s = raw(worker.addr()).await;
        s.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        assert!(closed_by_worker(&mut s).await);
        // A good handshake, then garbage, then an oversized frame.
        for evil in [vec![0xFFu8; 40], Vec::new()] {
            let mut s = raw(worker.addr()).await;
            send(
                &mut s,
                &encode_handshake(&Hello {
                    device: "cpu".into(),
                }),
            )
            .await;
            let welcome = read_frame(&mut s, DEFAULT_MAX_FRAME, "w")
                .await
                .unwrap()
                .unwrap();
            assert!(matches!(
                decode_handshake::<HelloReply>(&welcome, "w").unwrap(),
                HelloReply::Welcome(_)
            ));
            if evil.is_empty() {
                s.write_all(&(DEFAULT_MAX_FRAME + 1).to_le_bytes())
                    .await
                    .unwrap();
            } else {
                send(&mut s, &evil).await;
            }
            assert!(closed_by_worker(&mut s).await);
        }
    });
    // The well-behaved session is untouched.
    let buf = device.allocate(3).unwrap();
    device.write(&buf, &[1, 2, 3]).unwrap();
    let mut out = [0u8; 3];
    device.read(&buf, &mut out).unwrap();
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn a_worker_refuses_another_protocol_version_with_a_clear_error() {
    let worker = insecure_worker();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = rt.block_on(async {
        let mut s = raw(worker.addr()).await;
        send(
            &mut s,
            &encode_handshake_as(
                PROTOCOL_VERSION + 1,
                &Hello {
                    device: "cpu".into(),
                },
            ),
        )
        .await;
        read_frame(&mut s, DEFAULT_MAX_FRAME, "w")
            .await
            .unwrap()
            .unwrap()
    });
    // An old client sees the worker's version first and stops there.
    let err = decode_handshake::<HelloReply>(&reply, "w");
    assert!(
        matches!(err, Ok(HelloReply::Refused(ref r)) if r.contains("version")),
        "{err:?}"
    );
}

#[test]
fn a_client_reports_a_worker_of_another_version() {
    // A fake worker that answers every hello with version + 1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut hello = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut hello).unwrap();
        let reply = encode_handshake_as(PROTOCOL_VERSION + 1, &HelloReply::Refused("x".into()));
        s.write_all(&(reply.len() as u32).to_le_bytes()).unwrap();
        s.write_all(&reply).unwrap();
    });
    let err = connect(addr, &Security::InsecureLoopback)
        .err()
        .expect("mismatch");
    match &err {
        Error::VersionMismatch { ours, theirs, .. } => {
            assert_eq!((*ours, *theirs), (PROTOCOL_VERSION, PROTOCOL_VERSION + 1))
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("same ferrograd release"), "{err}");
    fake.join().unwrap();
}

#[test]
fn a_request_past_its_deadline_is_a_typed_error() {
    let worker = insecure_worker();
    let device = connect(worker.addr(), &Security::InsecureLoopback).unwrap();
    let conn = device.connection();
    // A zero deadline: the worker refuses to start, or the client gives up first.
    let err = conn
        .request(
            vec![Command::Synchronize],
            Vec::new(),
            std::time::Duration::ZERO,
        )
        .expect_err("missed");
    assert!(
        matches!(err, Error::Deadline { .. }) || err.to_string().contains("deadline"),
        "{err}"
    );
    let _ = device.synchronize();
}
