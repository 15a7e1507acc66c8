//! Grids of every shape (empty, 1-D of any size, 3-D), batches of dependent launches, writes
//! ordered after pending work, and typed errors for bad launch arguments and memory requests.
use crate::*;
use ferrograd_ir::{BinaryOp, DType, Inst, Memory, ProgramBuilder, Scalar, VType};
use ferrograd_runtime::{Device, Error};

/// 1-D grids of tiny, odd, power-of-two-adjacent and empty sizes run every invocation once.
pub fn one_dimensional_grids_of_any_size<H: Harness>() {
    let dev = device::<H>();
    for rows in [1usize, 2, 3, 29, 63, 64, 65, 1000, 0] {
        let p = rows_program(rows);
        let out = dev.allocate(rows * 4).unwrap();
        dev.write(&out, &vec![0xAB; rows * 4]).unwrap();
        run(&dev, &p, &[&out]);
        assert_eq!(
            download::<H, i32>(&dev, &out, rows),
            rows_want(rows),
            "{rows} rows"
        );
    }
}

/// Launches 600 kernels without waiting (more than one submission on batching backends), each
/// reading the previous one's output, then checks the chain.
pub fn dependent_launches<H: Harness>(dev: &TestDevice<H>) {
    let n = 1000;
    let p = map_program(
        "inc",
        &[DType::I32, DType::I32],
        DType::I32,
        n,
        1,
        |b, v| {
            b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: v[0],
                b: v[1],
            })
        },
    );
    H::check_program(dev, &p);
    let kernel = dev.compile(&p).unwrap();
    let ones = upload(dev, &vec![1i32; n]);
    let mut a = upload(dev, &(0..n as i32).collect::<Vec<_>>());
    let mut b = dev.allocate(n * 4).unwrap();
    for _ in 0..600 {
        dev.launch(&kernel, &[&a, &ones, &b]).unwrap();
        std::mem::swap(&mut a, &mut b);
    }
    dev.synchronize().unwrap();
    assert_eq!(
        download::<H, i32>(dev, &a, n),
        (0..n as i32).map(|i| i + 600).collect::<Vec<_>>()
    );
}

/// Launches recorded back to back see each other's writes.
pub fn batched_dependent_launches_see_each_others_writes<H: Harness>() {
    dependent_launches(&device::<H>());
}

/// A host write issued after a launch (before synchronizing) lands after the kernel's stores.
pub fn writes_while_work_is_pending_are_ordered_after_it<H: Harness>() {
    let dev = device::<H>();
    let p = rows_program(1000);
    H::check_program(&dev, &p);
    let kernel = dev.compile(&p).unwrap();
    let out = dev.allocate(4000).unwrap();
    dev.launch(&kernel, &[&out]).unwrap();
    dev.write(&out, &[1u8; 16]).unwrap();
    let got: Vec<i32> = download(&dev, &out, 1000);
    assert_eq!(&got[..4], &[0x0101_0101; 4]);
    assert_eq!(&got[4..], &rows_want(1000)[4..]);
}

/// Offset writes and reads of odd sizes at odd offsets (the worker's chunked transfers use
/// them) touch exactly their range, are ordered after pending launches like whole writes, and
/// refuse ranges past the buffer's end with a typed error.
pub fn offset_writes_and_reads_touch_only_their_range<H: Harness>() {
    let dev = device::<H>();
    let len = 1003;
    let buf = dev.allocate(len).unwrap();
    let mut want: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    dev.write(&buf, &want).unwrap();
    // (offset, length) pairs: aligned, unaligned at either end, one byte, empty, the tail.
    let ranges = [
        (0usize, 4usize),
        (1, 1),
        (3, 6),
        (5, 1),
        (8, 400),
        (13, 0),
        (101, 333),
        (998, 5),
        (1002, 1),
        (0, 1003),
        (6, 2),
    ];
    for (round, &(offset, n)) in ranges.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|i| (i * 13 + round * 29 + 1) as u8).collect();
        dev.write_at(&buf, offset, &data).unwrap();
        want[offset..offset + n].copy_from_slice(&data);
        let mut all = vec![0u8; len];
        dev.read(&buf, &mut all).unwrap();
        assert!(all == want, "after writing {n} bytes at {offset}");
        for &(at, m) in &ranges {
            let mut part = vec![0u8; m];
            dev.read_at(&buf, at, &mut part).unwrap();
            assert_eq!(part, want[at..at + m], "{m} bytes at {at}");
        }
    }

    // Ordered after pending work: a launch filling the buffer, then an offset write into it.
    let p = rows_program(1000);
    H::check_program(&dev, &p);
    let kernel = dev.compile(&p).unwrap();
    let out = dev.allocate(4000).unwrap();
    dev.launch(&kernel, &[&out]).unwrap();
    dev.write_at(&out, 6, &[0xEE; 7]).unwrap();
    let mut expect: Vec<u8> = rows_want(1000)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    expect[6..13].fill(0xEE);
    let mut tail = vec![0u8; 3990];
    dev.read_at(&out, 10, &mut tail).unwrap();
    assert!(
        tail[..] == expect[10..],
        "an offset read after an offset write"
    );

    for (offset, n) in [(len, 1usize), (len - 2, 3), (usize::MAX, 1)] {
        let write = dev.write_at(&buf, offset, &vec![0u8; n]);
        assert!(write.is_err(), "write of {n} bytes at {offset}");
        let read = dev.read_at(&buf, offset, &mut vec![0u8; n]);
        assert!(read.is_err(), "read of {n} bytes at {offset}");
    }
}

/// 3-D grids (including empty ones) with i32 and i64 indices visit every point once.
pub fn three_dimensional_grid_visits_every_point_once<H: Harness>() {
    let dev = device::<H>();
    for index in [DType::I32, DType::I64] {
        for (gx, gy, gz) in [(5usize, 4usize, 3usize), (3, 0, 2), (1, 1, 1), (0, 2, 2)] {
            let mut b = ProgramBuilder::new();
            let k = |b: &mut ProgramBuilder, v: usize| {
                b.push(Inst::Const {
                    ty: VType::scalar(index),
                    value: Scalar::Int(v as i64),
                })
            };
            let x = b.push(Inst::GroupId(0));
            let y = b.push(Inst::GroupId(1));
            let z = b.push(Inst::GroupId(2));
            let sy = k(&mut b, gy);
            let sz = k(&mut b, gz);
            let i = b.push(Inst::Binary {
                op: BinaryOp::Mul,
                a: x,
                b: sy,
            });
            let i = b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: i,
                b: y,
            });
            let i = b.push(Inst::Binary {
                op: BinaryOp::Mul,
                a: i,
                b: sz,
            });
            let i = b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: i,
                b: z,
            });
            let old = b.push(Inst::Load {
                mem: Memory::Global(0),
                index: i,
                gate: None,
                ty: VType::scalar(index),
            });
            let hundred = k(&mut b, 100);
            let v = b.push(Inst::Binary {
                op: BinaryOp::Add,
                a: old,
                b: hundred,
            });
            b.push(Inst::Store {
                mem: Memory::Global(0),
                index: i,
                value: v,
                gate: None,
            });
            let n = gx * gy * gz;
            let mut p = program(
                "grid3",
                vec![param(index, n, true)],
                vec![gx, gy, gz],
                b.finish(),
            );
            p.index_dtype = index;
            let got: Vec<i64> = if index == DType::I32 {
                let buf = upload(&dev, &(0..n as i32).collect::<Vec<_>>());
                run(&dev, &p, &[&buf]);
                download::<_, i32>(&dev, &buf, n)
                    .into_iter()
                    .map(|v| v as i64)
                    .collect()
            } else {
                let buf = upload(&dev, &(0..n as i64).collect::<Vec<_>>());
                run(&dev, &p, &[&buf]);
                download::<_, i64>(&dev, &buf, n)
            };
            assert_eq!(
                got,
                (0..n as i64).map(|k| k + 100).collect::<Vec<_>>(),
                "{gx}x{gy}x{gz} {index}"
            );
        }
    }
}

/// Launches with missing, extra, too small or foreign buffers, or a foreign kernel, are typed
/// device errors; a correct launch still works afterwards.
pub fn launch_checks_buffers<H: Harness>() {
    let dev = device::<H>();
    let p = rows_program(10);
    let kernel = dev.compile(&p).unwrap();
    let small = dev.allocate(39).unwrap();
    let ok = dev.allocate(40).unwrap();
    assert!(matches!(
        dev.launch(&kernel, &[]),
        Err(Error::Device { .. })
    ));
    assert!(matches!(
        dev.launch(&kernel, &[&ok, &ok]),
        Err(Error::Device { .. })
    ));
    let err = dev.launch(&kernel, &[&small]).unwrap_err();
    assert!(
        matches!(err, Error::Device { .. }) && err.to_string().contains("39 bytes"),
        "{err}"
    );
    let foreign: ferrograd_runtime::RawBuffer = Box::new(vec![0u8; 40]);
    assert!(matches!(
        dev.launch(&kernel, &[&foreign]),
        Err(Error::Device { .. })
    ));
    let not_a_kernel: ferrograd_runtime::CompiledKernel = std::sync::Arc::new(5u32);
    assert!(matches!(
        dev.launch(&not_a_kernel, &[&ok]),
        Err(Error::Device { .. })
    ));
    dev.launch(&kernel, &[&ok]).unwrap();
}

/// Impossible allocations, out-of-range writes and foreign buffers are typed errors; empty
/// buffers work.
pub fn memory_errors_are_typed<H: Harness>() {
    let dev = device::<H>();
    assert!(matches!(
        dev.allocate(usize::MAX),
        Err(Error::OutOfMemory {
            bytes: usize::MAX,
            ..
        })
    ));
    let empty = dev.allocate(0).unwrap();
    dev.write(&empty, &[]).unwrap();
    dev.read(&empty, &mut []).unwrap();
    assert!(matches!(dev.write(&empty, &[1]), Err(Error::Device { .. })));
    let foreign: ferrograd_runtime::RawBuffer = Box::new(0u8);
    assert!(matches!(
        dev.read(&foreign, &mut [0]),
        Err(Error::Device { .. })
    ));
}

pub fn thousands_of_small_buffers_do_not_overlap<H: Harness>() {
    // More buffers than drivers' usual maxMemoryAllocationCount (4096): a GPU backend must
    // share memory blocks between them without overlap.
    for (label, dev) in H::memory_variants() {
        let sizes = |i: usize| 4 + (i * 37) % 300;
        let bufs: Vec<_> = (0..5000)
            .map(|i| {
                let b = dev.allocate(sizes(i)).unwrap();
                dev.write(&b, &vec![(i % 251) as u8; sizes(i)]).unwrap();
                b
            })
            .collect();
        for (i, b) in bufs.iter().enumerate().step_by(7) {
            let mut out = vec![0u8; sizes(i)];
            dev.read(b, &mut out).unwrap();
            assert!(
                out.iter().all(|&x| x == (i % 251) as u8),
                "{label}: buffer {i}"
            );
        }
        drop(bufs);
        // Freed ranges are reused, and a large buffer gets memory of its own.
        let big = dev.allocate(40 << 20).unwrap();
        dev.write(&big, &[9u8; 1000]).unwrap();
        let mut out = [0u8; 1000];
        dev.read(&big, &mut out).unwrap();
        assert_eq!(out, [9u8; 1000], "{label}");
    }
}
