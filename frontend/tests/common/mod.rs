//! Shared helpers of the op test suite: proptest configuration, input shapes, value strategies
//! and input layouts (contiguous and non-contiguous views of realized buffers).
#![allow(dead_code)]

use ferrograd::{All, Element, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::fmt::Debug;

/// A proptest configuration with `cases` cases, a fixed seed (every run tests the same inputs)
/// and no regression files. For a longer, randomly seeded soak run set
/// `FERROGRAD_SOAK_CASES=<cases>`.
pub fn config(cases: u32) -> Config {
    let soak = std::env::var("FERROGRAD_SOAK_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    Config {
        cases: soak.unwrap_or(cases),
        failure_persistence: None,
        max_shrink_iters: 64,
        rng_seed: if soak.is_some() {
            RngSeed::Random
        } else {
            RngSeed::Fixed(0x5eed_f00d)
        },
        ..Config::default()
    }
}

/// Shapes for unary ops: 0-d, size 1, odd sizes, several ranks.
pub const SHAPES: &[&[usize]] = &[
    &[],
    &[1],
    &[3],
    &[5],
    &[7],
    &[33],
    &[1, 1],
    &[3, 5],
    &[5, 7],
    &[4, 33],
    &[2, 3, 5],
    &[7, 1, 3],
    // Multiples of the vector widths (vectorized and unrolled paths).
    &[8],
    &[16, 8],
    &[3, 64],
];

/// Pairs of shapes that broadcast against each other.
pub const PAIRS: &[(&[usize], &[usize])] = &[
    (&[], &[]),
    (&[], &[3, 5]),
    (&[7], &[]),
    (&[1], &[7]),
    (&[5], &[5]),
    (&[33], &[33]),
    (&[3, 5], &[3, 5]),
    (&[3, 1, 5], &[4, 1]),
    (&[2, 3, 5], &[5]),
    (&[4, 1], &[1, 3]),
    (&[7, 1, 3], &[7, 5, 1]),
    (&[1, 1], &[]),
    (&[8, 16], &[16]),
    (&[4, 1, 8], &[3, 8]),
    (&[64], &[64]),
    (&[16, 1], &[16, 4]),
];

/// How an input tensor of a given logical shape is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A contiguous buffer.
    Contig,
    /// A buffer of the reversed shape, permuted back.
    Permuted,
    /// A contiguous buffer with every axis flipped.
    Flipped,
    /// Every other element of a buffer twice as long on the last axis (`[1::2]`).
    Stepped,
    /// The same with a negative step (`[::-2]`).
    NegStepped,
    /// A buffer with a size-1 first axis, expanded (stride 0).
    Expanded,
    /// Rows `1..` of a buffer with one more row (an offset view).
    Shrunk,
}

pub const LAYOUTS: &[Layout] = &[
    Layout::Contig,
    Layout::Permuted,
    Layout::Flipped,
    Layout::Stepped,
    Layout::NegStepped,
    Layout::Expanded,
    Layout::Shrunk,
];

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A tensor of logical shape `shape` holding (a view of) `data` in `layout`. `data` must hold at
/// least `2 * numel(shape)` values (at least 1 for 0-d).
pub fn input<T: Element>(data: &[T], shape: &[usize], layout: Layout) -> Tensor {
    let n = numel(shape);
    let nd = shape.len();
    assert!(
        data.len() >= 2 * n,
        "input: {} values for shape {shape:?}",
        data.len()
    );
    if nd == 0 {
        return Tensor::from_slice(&data[..1], &[]);
    }
    let t = match layout {
        Layout::Contig => Tensor::from_slice(&data[..n], shape),
        Layout::Permuted => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            let perm: Vec<usize> = (0..nd).rev().collect();
            Tensor::from_slice(&data[..n], &rev).permute(perm)
        }
        Layout::Flipped => Tensor::from_slice(&data[..n], shape).flip(All),
        Layout::Stepped | Layout::NegStepped => {
            let mut s = shape.to_vec();
            s[nd - 1] *= 2;
            let base = Tensor::from_slice(&data[..2 * n], &s);
            if layout == Layout::Stepped {
                base.slice(-1, Some(1), None, 2)
            } else {
                base.slice(-1, None, None, -2)
            }
        }
        Layout::Expanded => {
            let mut s = shape.to_vec();
            let m = n / s[0];
            s[0] = 1;
            Tensor::from_slice(&data[..m], &s).expand(shape.to_vec())
        }
        Layout::Shrunk => {
            let mut s = shape.to_vec();
            let m = n / s[0];
            s[0] += 1;
            Tensor::from_slice(&data[..n + m], &s).slice(0, Some(1), None, 1)
        }
    };
    assert_eq!(t.shape(), shape, "input: layout {layout:?}");
    t
}

/// The logical row-major values of `input(data, shape, layout)` computed on the host.
pub fn input_values<T: Copy>(data: &[T], shape: &[usize], layout: Layout) -> Vec<T> {
    let n = numel(shape);
    let nd = shape.len();
    if nd == 0 {
        return vec![data[0]];
    }
    let strides = |s: &[usize]| {
        let mut st = vec![1usize; s.len()];
        for i in (0..s.len().saturating_sub(1)).rev() {
            st[i] = st[i + 1] * s[i + 1];
        }
        st
    };
    (0..n)
        .map(|flat| {
            let mut idx = vec![0usize; nd];
            let mut r = flat;
            for d in (0..nd).rev() {
                idx[d] = r % shape[d];
                r /= shape[d];
            }
            let at = |s: &[usize], i: &[usize]| -> usize {
                strides(s).iter().zip(i).map(|(a, b)| a * b).sum()
            };
            match layout {
                Layout::Contig => data[flat],
                Layout::Permuted => {
                    let rev: Vec<usize> = shape.iter().rev().copied().collect();
                    let ri: Vec<usize> = idx.iter().rev().copied().collect();
                    data[at(&rev, &ri)]
                }
                Layout::Flipped => {
                    let fi: Vec<usize> = idx.iter().zip(shape).map(|(&i, &d)| d - 1 - i).collect();
                    data[at(shape, &fi)]
                }
                Layout::Stepped | Layout::NegStepped => {
                    let mut s = shape.to_vec();
                    s[nd - 1] *= 2;
                    let mut i2 = idx.clone();
                    i2[nd - 1] = if layout == Layout::Stepped {
                        1 + 2 * idx[nd - 1]
                    } else {
                        s[nd - 1] - 1 - 2 * idx[nd - 1]
                    };
                    data[at(&s, &i2)]
                }
                Layout::Expanded => {
                    let mut s = shape.to_vec();
                    s[0] = 1;
                    let mut i2 = idx.clone();
                    i2[0] = 0;
                    data[at(&s, &i2)]
                }
                Layout::Shrunk => {
                    let mut s = shape.to_vec();
                    s[0] += 1;
                    let mut i2 = idx.clone();
                    i2[0] += 1;
                    data[at(&s, &i2)]
                }
            }
        })
        .collect()
}

/// One random input: logical shape, layout and backing values.
#[derive(Clone, Debug)]
pub struct Case<T> {
    pub shape: Vec<usize>,
    pub layout: Layout,
    pub data: Vec<T>,
}

impl<T: Element + Debug> Case<T> {
    pub fn tensor(&self) -> Tensor {
        input(&self.data, &self.shape, self.layout)
    }
    pub fn values(&self) -> Vec<T> {
        input_values(&self.data, &self.shape, self.layout)
    }
}

/// A random case with a shape from `shapes`, any layout and values from `vals`.
pub fn case<T, S>(
    shapes: &'static [&'static [usize]],
    vals: fn() -> S,
) -> impl Strategy<Value = Case<T>>
where
    T: Debug + Clone + 'static,
    S: Strategy<Value = T> + 'static,
{
    (prop::sample::select(shapes), prop::sample::select(LAYOUTS)).prop_flat_map(
        move |(s, layout)| {
            let n = (2 * numel(s)).max(1);
            proptest::collection::vec(vals(), n).prop_map(move |data| Case {
                shape: s.to_vec(),
                layout,
                data,
            })
        },
    )
}

/// Two random cases with broadcast-compatible shapes from [`PAIRS`] (either order).
pub fn pair<T, S>(vals: fn() -> S) -> impl Strategy<Value = (Case<T>, Case<T>)>
where
    T: Debug + Clone + 'static,
    S: Strategy<Value = T> + 'static,
{
    (
        prop::sample::select(PAIRS),
        any::<bool>(),
        prop::sample::select(LAYOUTS),
        prop::sample::select(LAYOUTS),
    )
        .prop_flat_map(move |((a, b), swap, la, lb)| {
            let (a, b) = if swap { (b, a) } else { (a, b) };
            let na = (2 * numel(a)).max(1);
            let nb = (2 * numel(b)).max(1);
            (
                proptest::collection::vec(vals(), na),
                proptest::collection::vec(vals(), nb),
            )
                .prop_map(move |(da, db)| {
                    (
                        Case {
                            shape: a.to_vec(),
                            layout: la,
                            data: da,
                        },
                        Case {
                            shape: b.to_vec(),
                            layout: lb,
                            data: db,
                        },
                    )
                })
        })
}

/// f32 values: mostly moderate, some large, plus NaN, ±inf, ±0 and exact halves.
pub fn f32_special() -> impl Strategy<Value = f32> {
    prop_oneof![
        12 => -8.0f32..8.0,
        2 => -100.0f32..100.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(0.5f32),
        1 => Just(-1.5f32),
        1 => Just(2.5f32),
    ]
}

/// Finite f32 values in [-4, 4].
pub fn f32_small() -> impl Strategy<Value = f32> {
    -4.0f32..4.0
}

/// Finite f32 values in [-1, 1].
pub fn f32_unit() -> impl Strategy<Value = f32> {
    -1.0f32..1.0
}

/// i32 values: small ones (including 0 and negatives) and the extremes.
pub fn i32_special() -> impl Strategy<Value = i32> {
    prop_oneof![
        10 => -20i32..20,
        2 => any::<i32>(),
        1 => Just(0i32),
        1 => Just(-1i32),
        1 => Just(i32::MIN),
        1 => Just(i32::MAX),
    ]
}

/// Asserts that `actual` matches `expected` elementwise (NaN matches NaN).
pub fn assert_close_f64(actual: &[f64], expected: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if a.is_nan() || e.is_nan() {
            a.is_nan() && e.is_nan()
        } else {
            a == e || (a - e).abs() <= atol + rtol * e.abs()
        };
        assert!(ok, "{what}: element {i}: got {a:?}, expected {e:?} (rtol {rtol}, atol {atol})\n got {actual:?}\n expected {expected:?}");
    }
}

/// The tensor's values as f64.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec().expect("realize")
}

/// A small deterministic generator (xorshift) for gradient-test inputs and shapes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
    /// One of `items`.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    /// A shape of rank `lo..=hi` with sizes from {1, 2, 3, 4, 5}.
    pub fn shape(&mut self, lo: usize, hi: usize) -> Vec<usize> {
        let rank = lo + self.below(hi - lo + 1);
        (0..rank).map(|_| 1 + self.below(5)).collect()
    }
    /// An f64 tensor of `shape` with values in [lo, hi) whose magnitude is at least `min_abs`.
    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64, min_abs: f64) -> Tensor {
        let values: Vec<f64> = (0..numel(shape))
            .map(|_| loop {
                let v = self.uniform(lo, hi);
                if v.abs() >= min_abs {
                    break v;
                }
            })
            .collect();
        Tensor::from_slice(&values, shape)
    }
}

/// Deterministic values in [-1, 1) from `seed` (no global random counter, so two runs, or two
/// processes, see equal data).
pub fn deterministic_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
