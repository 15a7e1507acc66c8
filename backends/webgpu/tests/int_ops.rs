//! Every BinaryOp on i32/u32/i64/i8/u8, scalar and vector, against Rust's wrapping semantics
//! (x / 0 == 0, x % 0 == 0, MIN / -1 == MIN, shift amounts modulo the width).
mod common;
use common::*;
use ferrograd_ir::BinaryOp;
use ferrograd_runtime::Device;

const OPS: [BinaryOp; 12] = [
    BinaryOp::Add,
    BinaryOp::Mul,
    BinaryOp::Max,
    BinaryOp::CmpLt,
    BinaryOp::CmpNe,
    BinaryOp::IDiv,
    BinaryOp::Mod,
    BinaryOp::And,
    BinaryOp::Or,
    BinaryOp::Xor,
    BinaryOp::Shl,
    BinaryOp::Shr,
];

/// All pairs of `edges`, padded to a multiple of 16 lanes.
fn pairs<T: Copy>(edges: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for &x in edges {
        for &y in edges {
            a.push(x);
            b.push(y);
        }
    }
    while !a.len().is_multiple_of(16) {
        a.push(edges[0]);
        b.push(edges[1]);
    }
    (a, b)
}

macro_rules! int_test {
    ($name:ident, $t:ty, [$($lanes:expr),*], $edges:expr) => {
        #[test]
        fn $name() {
            let dev = device();
            let edges: Vec<$t> = $edges;
            let (a, b) = pairs(&edges);
            for lanes in [$($lanes),*] {
                for op in OPS {
                    let want_bool = |f: fn($t, $t) -> bool| a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect::<Vec<bool>>();
                    if op.is_comparison() {
                        let got: Vec<bool> = eval_binary(&dev, op, &a, &b, lanes);
                        let want = if op == BinaryOp::CmpLt { want_bool(|x, y| x < y) } else { want_bool(|x, y| x != y) };
                        assert_eq!(got, want, "{op:?} {} lanes {lanes}", stringify!($t));
                        continue;
                    }
                    let f: fn($t, $t) -> $t = match op {
                        BinaryOp::Add => |x, y| x.wrapping_add(y),
                        BinaryOp::Mul => |x, y| x.wrapping_mul(y),
                        BinaryOp::Max => |x, y| x.max(y),
                        BinaryOp::IDiv => |x, y| if y == 0 { 0 } else { x.wrapping_div(y) },
                        BinaryOp::Mod => |x, y| if y == 0 { 0 } else { x.wrapping_rem(y) },
                        BinaryOp::And => |x, y| x & y,
                        BinaryOp::Or => |x, y| x | y,
                        BinaryOp::Xor => |x, y| x ^ y,
                        BinaryOp::Shl => |x, y| x.wrapping_shl(y as u32),
                        _ => |x, y| x.wrapping_shr(y as u32),
                    };
                    let got: Vec<$t> = eval_binary(&dev, op, &a, &b, lanes);
                    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
                        assert_eq!(got[i], f(x, y), "{op:?}({x}, {y}) on {} with {lanes} lanes", stringify!($t));
                    }
                }
            }
        }
    };
}

int_test!(
    i32_ops,
    i32,
    [1, 4, 8],
    vec![
        0,
        1,
        -1,
        2,
        -7,
        31,
        32,
        33,
        100,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        -100_000
    ]
);
int_test!(
    u32_ops,
    u32,
    [1, 4],
    vec![
        0,
        1,
        2,
        7,
        31,
        32,
        33,
        100,
        u32::MAX,
        1 << 31,
        u32::MAX - 1,
        123_456_789
    ]
);
int_test!(
    i64_ops,
    i64,
    [1, 2],
    vec![
        0,
        1,
        -1,
        3,
        -9,
        63,
        64,
        65,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        1 << 40,
        -(1 << 33)
    ]
);
int_test!(
    i8_ops,
    i8,
    [1, 16],
    vec![
        0,
        1,
        -1,
        3,
        -7,
        7,
        8,
        9,
        100,
        i8::MAX,
        i8::MIN,
        i8::MIN + 1,
        -100
    ]
);
int_test!(
    u8_ops,
    u8,
    [1, 16],
    vec![0, 1, 2, 3, 7, 8, 9, 100, 128, 200, u8::MAX, 254]
);

/// Shifts by a constant take the SIMD path with one amount for all lanes.
#[test]
fn vector_shifts_by_constants() {
    use ferrograd_ir::{DType, Inst, Scalar, VType};
    let dev = device();
    let a: Vec<i32> = vec![1, -1, i32::MIN, 12345, -8, 7, 0, i32::MAX];
    for (op, amount) in [
        (BinaryOp::Shl, 3i64),
        (BinaryOp::Shr, 3),
        (BinaryOp::Shl, 35),
        (BinaryOp::Shr, -1),
    ] {
        let p = map_program("shift", &[DType::I32], DType::I32, a.len(), 4, |b, v| {
            let k = b.push(Inst::Const {
                ty: VType::vec(DType::I32, 4),
                value: Scalar::Int(amount),
            });
            b.push(Inst::Binary { op, a: v[0], b: k })
        });
        let (ba, bo) = (upload(&dev, &a), dev.allocate(a.len() * 4).unwrap());
        run(&dev, &p, &[&ba, &bo]);
        let got: Vec<i32> = download(&dev, &bo, a.len());
        let want: Vec<i32> = a
            .iter()
            .map(|&x| {
                if op == BinaryOp::Shl {
                    x.wrapping_shl(amount as u32)
                } else {
                    x.wrapping_shr(amount as u32)
                }
            })
            .collect();
        assert_eq!(got, want, "{op:?} by {amount}");
        let ua: Vec<u32> = a.iter().map(|&x| x as u32).collect();
        let p = map_program("ushift", &[DType::U32], DType::U32, a.len(), 4, |b, v| {
            let k = b.push(Inst::Const {
                ty: VType::vec(DType::U32, 4),
                value: Scalar::Int(amount),
            });
            b.push(Inst::Binary { op, a: v[0], b: k })
        });
        let (ba, bo) = (upload(&dev, &ua), dev.allocate(a.len() * 4).unwrap());
        run(&dev, &p, &[&ba, &bo]);
        let got: Vec<u32> = download(&dev, &bo, a.len());
        let want: Vec<u32> = ua
            .iter()
            .map(|&x| {
                if op == BinaryOp::Shl {
                    x.wrapping_shl(amount as u32)
                } else {
                    x.wrapping_shr(amount as u32)
                }
            })
            .collect();
        assert_eq!(got, want, "u32 {op:?} by {amount}");
    }
}

/// Bool operands: logic ops and comparisons on truth values, scalar and 4-lane masks.
#[test]
fn bool_ops() {
    let dev = device();
    let a = vec![false, false, true, true];
    let b = vec![false, true, false, true];
    for lanes in [1, 4] {
        for (op, f) in [
            (BinaryOp::And, (|x, y| x & y) as fn(bool, bool) -> bool),
            (BinaryOp::Or, |x, y| x | y),
            (BinaryOp::Xor, |x, y| x ^ y),
            (BinaryOp::Add, |x, y| x | y),
            (BinaryOp::Mul, |x, y| x & y),
            (BinaryOp::Max, |x, y| x | y),
            (BinaryOp::CmpLt, |x, y| !x & y),
            (BinaryOp::CmpNe, |x, y| x != y),
            // As integer ops on 0/1 whose result is != 0.
            (BinaryOp::IDiv, |x, y| x & y),
            (BinaryOp::Mod, |_, _| false),
            (BinaryOp::Shl, |x, _| x),
            (BinaryOp::Shr, |x, y| x & !y),
        ] {
            let got: Vec<bool> = eval_binary(&dev, op, &a, &b, lanes);
            let want: Vec<bool> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
            assert_eq!(got, want, "{op:?} lanes {lanes}");
        }
    }
}
