//! The device under test and the typed helpers every case uses: upload, download, run (with
//! the harness's program checks) and elementwise evaluation of one instruction.

use crate::elem::Elem;
use crate::harness::Harness;
use crate::programs::map_program;
use ferrograd_ir::{BinaryOp, Inst, Program, UnaryOp, VType};
use ferrograd_runtime::{Device, Error, RawBuffer};
use std::ops::Deref;

/// A device of harness `H`. Dereferences to the backend's device, so backend-specific tests
/// can call its own methods; the helpers of this crate take it to know which harness checks
/// to apply.
pub struct TestDevice<H: Harness> {
    device: H::Device,
}

impl<H: Harness> TestDevice<H> {
    /// Wraps a device the backend opened itself (with non-default options).
    pub fn wrap(device: H::Device) -> Self {
        Self { device }
    }
}

impl<H: Harness> Deref for TestDevice<H> {
    type Target = H::Device;
    fn deref(&self) -> &H::Device {
        &self.device
    }
}

/// The default device of harness `H`.
pub fn device<H: Harness>() -> TestDevice<H> {
    TestDevice::wrap(H::open())
}

/// A new buffer holding `data`.
pub fn upload<H: Harness, T: Elem>(dev: &TestDevice<H>, data: &[T]) -> RawBuffer {
    let mut bytes = Vec::with_capacity(data.len() * T::DTYPE.size());
    for &x in data {
        x.put(&mut bytes);
    }
    let buf = dev.allocate(bytes.len()).unwrap();
    dev.write(&buf, &bytes).unwrap();
    buf
}

/// The first `n` elements of `buf`.
pub fn download<H: Harness, T: Elem>(dev: &TestDevice<H>, buf: &RawBuffer, n: usize) -> Vec<T> {
    let size = T::DTYPE.size();
    let mut bytes = vec![0u8; n * size];
    dev.read(buf, &mut bytes).unwrap();
    bytes.chunks(size).map(T::get).collect()
}

/// Checks `program` with the harness, compiles it, launches it on `buffers` and waits.
pub fn run<H: Harness>(dev: &TestDevice<H>, program: &Program, buffers: &[&RawBuffer]) {
    H::check_program(dev, program);
    let kernel = dev.compile(program).unwrap_or_else(|e| panic!("{e}"));
    dev.launch(&kernel, buffers).unwrap();
    dev.synchronize().unwrap();
}

/// The message of the compile error `program` must give on `dev`; panics when it compiles or
/// fails with another kind of error.
pub fn compile_err<H: Harness>(dev: &TestDevice<H>, program: &Program) -> String {
    match dev.compile(program) {
        Err(e @ Error::Compile { .. }) => e.to_string(),
        Err(e) => panic!("expected a compile error, got {e}"),
        Ok(_) => panic!("program {} compiled", program.name),
    }
}

/// Runs a binary op elementwise over `a`, `b`, `lanes` at a time.
pub fn eval_binary<H: Harness, T: Elem, R: Elem>(
    dev: &TestDevice<H>,
    op: BinaryOp,
    a: &[T],
    b: &[T],
    lanes: u8,
) -> Vec<R> {
    let n = a.len();
    let p = map_program(
        "binary",
        &[T::DTYPE, T::DTYPE],
        R::DTYPE,
        n,
        lanes,
        |bld, v| {
            bld.push(Inst::Binary {
                op,
                a: v[0],
                b: v[1],
            })
        },
    );
    let (ba, bb, bo) = (
        upload(dev, a),
        upload(dev, b),
        dev.allocate(n * R::DTYPE.size()).unwrap(),
    );
    run(dev, &p, &[&ba, &bb, &bo]);
    download(dev, &bo, n)
}

/// Runs a unary op elementwise, `lanes` at a time.
pub fn eval_unary<H: Harness, T: Elem>(
    dev: &TestDevice<H>,
    op: UnaryOp,
    a: &[T],
    lanes: u8,
) -> Vec<T> {
    let n = a.len();
    let p = map_program("unary", &[T::DTYPE], T::DTYPE, n, lanes, |bld, v| {
        bld.push(Inst::Unary { op, arg: v[0] })
    });
    let (ba, bo) = (upload(dev, a), dev.allocate(n * T::DTYPE.size()).unwrap());
    run(dev, &p, &[&ba, &bo]);
    download(dev, &bo, n)
}

/// Runs a cast (or, with `bitcast`, a bitcast) elementwise, `lanes` at a time.
pub fn eval_cast<H: Harness, T: Elem, R: Elem>(
    dev: &TestDevice<H>,
    a: &[T],
    lanes: u8,
    bitcast: bool,
) -> Vec<R> {
    let n = a.len();
    let p = map_program("cast", &[T::DTYPE], R::DTYPE, n, lanes, |bld, v| {
        let to = VType::vec(R::DTYPE, lanes);
        if bitcast {
            bld.push(Inst::Bitcast { to, arg: v[0] })
        } else {
            bld.push(Inst::Cast { to, arg: v[0] })
        }
    });
    let (ba, bo) = (upload(dev, a), dev.allocate(n * R::DTYPE.size()).unwrap());
    run(dev, &p, &[&ba, &bo]);
    download(dev, &bo, n)
}
