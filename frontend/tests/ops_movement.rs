//! Movement ops: reshape, permute, transpose, expand, squeeze, unsqueeze, flatten, pad, slice
//! (Python semantics, negative steps), select, flip, cat, stack, split, chunk, repeat,
//! contiguous, and random chains of them. Movement only moves values, so every result is
//! compared exactly, both with the reference evaluator and with a host-side model written here.

mod common;

use common::*;
use ferrograd::testing::check;
use ferrograd::{All, DType, Tensor};
use proptest::prelude::*;

// ---- host model ---------------------------------------------------------------------------------

/// A row-major host array: the independent model of every movement op.
#[derive(Clone, Debug, PartialEq)]
struct H {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

impl H {
    fn of(t: &Tensor) -> H {
        H {
            shape: t.shape(),
            data: f64s(t),
        }
    }
    fn new(shape: &[usize], data: Vec<f64>) -> H {
        assert_eq!(numel(shape), data.len());
        H {
            shape: shape.to_vec(),
            data,
        }
    }
    fn at(&self, idx: &[usize]) -> f64 {
        let mut flat = 0;
        for (d, &i) in idx.iter().enumerate() {
            flat = flat * self.shape[d] + i;
        }
        self.data[flat]
    }
    /// A new array of `shape` whose element at `idx` is `f(idx)`.
    fn gen(shape: &[usize], f: impl Fn(&[usize]) -> f64) -> H {
        H {
            shape: shape.to_vec(),
            data: (0..numel(shape)).map(|i| f(&unravel(i, shape))).collect(),
        }
    }
    fn reshape(&self, shape: &[usize]) -> H {
        H::new(shape, self.data.clone())
    }
    fn permute(&self, perm: &[usize]) -> H {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        H::gen(&shape, |i| {
            let mut src = vec![0; i.len()];
            for (k, &p) in perm.iter().enumerate() {
                src[p] = i[k];
            }
            self.at(&src)
        })
    }
    fn flip(&self, axis: usize) -> H {
        H::gen(&self.shape, |i| {
            let mut s = i.to_vec();
            s[axis] = self.shape[axis] - 1 - i[axis];
            self.at(&s)
        })
    }
    fn take(&self, axis: usize, idx: &[usize]) -> H {
        let mut shape = self.shape.clone();
        shape[axis] = idx.len();
        H::gen(&shape, |i| {
            let mut s = i.to_vec();
            s[axis] = idx[i[axis]];
            self.at(&s)
        })
    }
    fn pad(&self, padding: &[(usize, usize)], value: f64) -> H {
        let shape: Vec<usize> = self
            .shape
            .iter()
            .zip(padding)
            .map(|(&d, &(b, a))| d + b + a)
            .collect();
        H::gen(&shape, |i| {
            let mut s = Vec::with_capacity(i.len());
            for (d, (&x, &(b, _))) in i.iter().zip(padding).enumerate() {
                if x < b || x - b >= self.shape[d] {
                    return value;
                }
                s.push(x - b);
            }
            self.at(&s)
        })
    }
    fn expand(&self, shape: &[usize]) -> H {
        H::gen(shape, |i| {
            let s: Vec<usize> = i
                .iter()
                .zip(&self.shape)
                .map(|(&x, &d)| if d == 1 { 0 } else { x })
                .collect();
            self.at(&s)
        })
    }
    fn repeat(&self, reps: &[usize]) -> H {
        let shape: Vec<usize> = self.shape.iter().zip(reps).map(|(&d, &r)| d * r).collect();
        H::gen(&shape, |i| {
            let s: Vec<usize> = i.iter().zip(&self.shape).map(|(&x, &d)| x % d).collect();
            self.at(&s)
        })
    }
}

/// Python's `range(*slice(start, stop, step).indices(n))`, written from the language reference.
fn py_slice(n: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<usize> {
    let n = n as i64;
    let adjust = |v: i64, lo: i64, hi: i64| -> i64 {
        if v < 0 {
            (v + n).max(lo)
        } else {
            v.min(hi)
        }
    };
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let s = start.map_or(if step > 0 { 0 } else { n - 1 }, |v| adjust(v, lo, hi));
    let e = stop.map_or(if step > 0 { n } else { -1 }, |v| adjust(v, lo, hi));
    let mut out = Vec::new();
    let mut i = s;
    while (step > 0 && i < e) || (step < 0 && i > e) {
        out.push(i as usize);
        i += step;
    }
    out
}

fn assert_same(t: &Tensor, h: &H, what: &str) {
    assert_eq!(t.shape(), h.shape, "{what}: shape");
    assert_close_f64(&f64s(t), &h.data, 0.0, 0.0, what);
}

// ---- random chains ------------------------------------------------------------------------------

/// One movement op, with parameters resolved against the current shape when applied.
#[derive(Clone, Debug)]
enum Move {
    Permute(u64),
    Transpose(usize, usize),
    Flip(usize),
    Slice {
        axis: usize,
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
    },
    Pad {
        axis: usize,
        before: usize,
        after: usize,
        value: f64,
    },
    ExpandNew(usize),
    Reshape(usize),
    Repeat(usize, usize),
    Contiguous,
}

fn moves() -> impl Strategy<Value = Move> {
    prop_oneof![
        any::<u64>().prop_map(Move::Permute),
        (0usize..4, 0usize..4).prop_map(|(a, b)| Move::Transpose(a, b)),
        (0usize..4).prop_map(Move::Flip),
        (
            0usize..4,
            proptest::option::of(-9i64..9),
            proptest::option::of(-9i64..9),
            prop::sample::select(vec![-3i64, -2, -1, 1, 2, 3])
        )
            .prop_map(|(axis, start, stop, step)| Move::Slice {
                axis,
                start,
                stop,
                step
            }),
        (
            0usize..4,
            0usize..3,
            0usize..3,
            prop::sample::select(vec![0.0, -7.5, f64::INFINITY])
        )
            .prop_map(|(axis, before, after, value)| Move::Pad {
                axis,
                before,
                after,
                value
            }),
        (1usize..4).prop_map(Move::ExpandNew),
        (0usize..4).prop_map(Move::Reshape),
        (0usize..4, 1usize..4).prop_map(|(a, r)| Move::Repeat(a, r)),
        Just(Move::Contiguous),
    ]
}

fn apply(m: &Move, t: &Tensor, h: &H) -> (Tensor, H) {
    let s = t.shape();
    let nd = s.len();
    if nd == 0 {
        return (t.unsqueeze(0), h.reshape(&[1]));
    }
    match *m {
        Move::Permute(seed) => {
            let mut perm: Vec<usize> = (0..nd).collect();
            let mut r = seed;
            for i in (1..nd).rev() {
                perm.swap(i, (r % (i as u64 + 1)) as usize);
                r /= i as u64 + 1;
            }
            (t.permute(perm.clone()), h.permute(&perm))
        }
        Move::Transpose(a, b) => {
            let (a, b) = (a % nd, b % nd);
            let mut perm: Vec<usize> = (0..nd).collect();
            perm.swap(a, b);
            // Negative axis numbers for the tensor.
            (t.transpose(a as i64 - nd as i64, b), h.permute(&perm))
        }
        Move::Flip(a) => (t.flip(a % nd), h.flip(a % nd)),
        Move::Slice {
            axis,
            start,
            stop,
            step,
        } => {
            let ax = axis % nd;
            let idx = py_slice(s[ax], start, stop, step);
            (t.slice(ax, start, stop, step), h.take(ax, &idx))
        }
        Move::Pad {
            axis,
            before,
            after,
            value,
        } => {
            let mut p = vec![(0, 0); nd];
            p[axis % nd] = (before, after);
            (t.pad(&p, value), h.pad(&p, value))
        }
        Move::ExpandNew(k) => {
            let mut shape = vec![k];
            shape.extend(&s);
            let mut one = vec![1];
            one.extend(&s);
            (t.expand(shape.clone()), h.reshape(&one).expand(&shape))
        }
        Move::Reshape(kind) => {
            let n = numel(&s);
            let target: Vec<i64> = match kind % 4 {
                0 => vec![-1],
                1 => vec![1, -1],
                2 if n.is_multiple_of(3) => vec![3, -1],
                3 if nd >= 2 => vec![-1, s[nd - 1] as i64],
                _ => vec![n as i64, 1],
            };
            let r = t.reshape(target);
            let shape = r.shape();
            (r, h.reshape(&shape))
        }
        Move::Repeat(a, k) => {
            let mut reps = vec![1; nd];
            reps[a % nd] = k;
            (t.repeat(&reps), h.repeat(&reps))
        }
        Move::Contiguous => (t.contiguous(), h.clone()),
    }
}

const M_SHAPES: &[&[usize]] = &[
    &[],
    &[1],
    &[5],
    &[7],
    &[3, 5],
    &[1, 4],
    &[2, 3, 5],
    &[7, 1, 3],
    &[4, 8],
    &[16],
];

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn random_movement_chains(c in case(M_SHAPES, f32_special), ops in proptest::collection::vec(moves(), 1..4)) {
        let mut t = c.tensor();
        let mut h = H::new(&c.shape, c.values().iter().map(|&v| v as f64).collect());
        for m in &ops {
            let (t2, h2) = apply(m, &t, &h);
            t = t2;
            h = h2;
            if numel(&h.shape) > 4096 {
                break;
            }
        }
        let what = format!("{:?} {:?} then {ops:?}", c.shape, c.layout);
        // The view alone, and the view feeding a computation (fused into the kernel).
        check(&t, 0.0, 0.0, &what);
        assert_same(&t, &h, &what);
        let y = &t * 2.0 + 1.0;
        let hy = H::new(&h.shape, h.data.iter().map(|&v| (v as f32 * 2.0 + 1.0) as f64).collect());
        assert_same(&y, &hy, &format!("{what}, then * 2 + 1"));
    }

    #[test]
    fn slices_follow_python(n in 1usize..12, start in proptest::option::of(-14i64..14), stop in proptest::option::of(-14i64..14),
                            step in prop::sample::select(vec![-4i64, -3, -2, -1, 1, 2, 3, 5]), flip_first: bool) {
        let v: Vec<i32> = (0..n as i32).map(|i| i * 10).collect();
        let base = if flip_first {
            Tensor::from_slice(&v.iter().rev().copied().collect::<Vec<_>>(), &[n]).flip(0)
        } else {
            Tensor::from_slice(&v, &[n])
        };
        let s = base.slice(0, start, stop, step);
        let expect: Vec<i32> = py_slice(n, start, stop, step).iter().map(|&i| v[i]).collect();
        prop_assert_eq!(s.shape(), vec![expect.len()]);
        prop_assert_eq!(s.to_vec::<i32>().unwrap(), expect);
    }
}

// ---- hand-written expectations --------------------------------------------------------------------

fn arange_f32(shape: &[usize]) -> Tensor {
    let n = numel(shape);
    Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<f32>>(), shape)
}

fn vals(t: &Tensor) -> Vec<f64> {
    f64s(t)
}

#[test]
fn slice_hand_written() {
    let a = arange_f32(&[10]);
    let s = |start: Option<i64>, stop: Option<i64>, step: i64| vals(&a.slice(0, start, stop, step));
    assert_eq!(s(Some(2), Some(8), 3), vec![2.0, 5.0], "[2:8:3]");
    assert_eq!(
        s(None, None, -1),
        (0..10).rev().map(|i| i as f64).collect::<Vec<_>>(),
        "[::-1]"
    );
    assert_eq!(s(Some(8), Some(2), -2), vec![8.0, 6.0, 4.0], "[8:2:-2]");
    assert_eq!(s(Some(-3), None, 1), vec![7.0, 8.0, 9.0], "[-3:]");
    assert_eq!(s(None, Some(-7), -3), vec![9.0, 6.0], "[:-7:-3]");
    assert_eq!(s(Some(100), None, 1), Vec::<f64>::new(), "[100:]");
    assert_eq!(s(Some(-100), Some(3), 1), vec![0.0, 1.0, 2.0], "[-100:3]");
    assert_eq!(s(Some(5), Some(5), 1), Vec::<f64>::new(), "[5:5]");
    assert_eq!(s(None, None, 4), vec![0.0, 4.0, 8.0], "[::4]");
    assert_eq!(s(Some(1), None, -1), vec![1.0, 0.0], "[1::-1]");
    assert_eq!(
        s(Some(-1), Some(-11), -4),
        vec![9.0, 5.0, 1.0],
        "[-1:-11:-4]"
    );
    assert_eq!(s(None, Some(-1), -1), Vec::<f64>::new(), "[:-1:-1]");
    assert_eq!(
        s(Some(3), Some(100), 2),
        vec![3.0, 5.0, 7.0, 9.0],
        "[3:100:2]"
    );
    // On an inner axis of a 2-D tensor, and after a transpose.
    let m = arange_f32(&[3, 4]);
    assert_eq!(
        vals(&m.slice(1, Some(3), None, -2)),
        vec![3.0, 1.0, 7.0, 5.0, 11.0, 9.0],
        "m[:, 3::-2]"
    );
    assert_eq!(
        vals(&m.slice(-2, None, None, 2)),
        vec![0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0],
        "m[::2]"
    );
    assert_eq!(
        vals(&m.t().slice(0, Some(1), Some(3), 1)),
        vec![1.0, 5.0, 9.0, 2.0, 6.0, 10.0],
        "m.T[1:3]"
    );
    // Slicing integers keeps the dtype.
    let i = Tensor::from_vec(vec![1i64, 2, 3, 4, 5], &[5]).slice(0, None, None, -2);
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![5, 3, 1]);
}

#[test]
fn reshape_permute_transpose_hand_written() {
    let a = arange_f32(&[2, 3, 4]);
    let r = a.reshape([4, -1]);
    assert_eq!(r.shape(), vec![4, 6]);
    assert_eq!(vals(&r), (0..24).map(|i| i as f64).collect::<Vec<_>>());
    assert_eq!(a.reshape([-1]).shape(), vec![24]);
    assert_eq!(a.reshape(vec![2, -1, 2]).shape(), vec![2, 6, 2]);
    let p = a.permute([2, 0, 1]);
    assert_eq!(p.shape(), vec![4, 2, 3]);
    assert_eq!(vals(&p)[..8], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0, 5.0]);
    let t = a.transpose(0, -1);
    assert_eq!(t.shape(), vec![4, 3, 2]);
    assert_eq!(vals(&t)[..6], [0.0, 12.0, 4.0, 16.0, 8.0, 20.0]);
    let m = arange_f32(&[2, 3]);
    assert_eq!(vals(&m.t()), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // Reshape of a non-contiguous view (must not reinterpret the buffer).
    assert_eq!(
        vals(&m.t().reshape([6])),
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    assert_eq!(
        vals(&m.t().reshape([2, 3])),
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    check(
        &m.t().reshape([3, 2]).t(),
        0.0,
        0.0,
        "transpose-reshape-transpose",
    );
    // 0-d reshapes.
    let s = Tensor::scalar(7i32);
    assert_eq!(s.reshape([1, 1]).to_vec::<i32>().unwrap(), vec![7]);
    assert_eq!(
        s.reshape([1, 1]).reshape(Vec::<usize>::new()).shape(),
        Vec::<usize>::new()
    );
}

#[test]
fn expand_squeeze_unsqueeze_flatten_hand_written() {
    let c = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3, 1]);
    let e = c.expand([2, 3, 4]);
    assert_eq!(e.shape(), vec![2, 3, 4]);
    let expect: Vec<f64> = (0..24).map(|i| ((i / 4) % 3 + 1) as f64).collect();
    assert_eq!(vals(&e), expect);
    assert_eq!(c.expand([-1, 5]).shape(), vec![3, 5]);
    assert_eq!(vals(&Tensor::scalar(4.0f32).expand([2, 2])), vec![4.0; 4]);
    let u = c.unsqueeze(0);
    assert_eq!(u.shape(), vec![1, 3, 1]);
    assert_eq!(c.unsqueeze(-1).shape(), vec![3, 1, 1]);
    assert_eq!(c.unsqueeze(1).shape(), vec![3, 1, 1]);
    assert_eq!(u.squeeze(All).shape(), vec![3]);
    assert_eq!(u.squeeze(0).shape(), vec![3, 1]);
    assert_eq!(u.squeeze(-1).shape(), vec![1, 3]);
    assert_eq!(
        u.squeeze(1).shape(),
        vec![1, 3, 1],
        "squeezing a non-unit axis is a no-op"
    );
    assert_eq!(vals(&u.squeeze(All)), vec![1.0, 2.0, 3.0]);
    let a = arange_f32(&[2, 3, 4, 5]);
    assert_eq!(a.flatten(0, -1).shape(), vec![120]);
    assert_eq!(a.flatten(1, 2).shape(), vec![2, 12, 5]);
    assert_eq!(a.flatten(-2, -1).shape(), vec![2, 3, 20]);
    assert_eq!(Tensor::scalar(1.0f32).flatten(0, 0).shape(), vec![1]);
    let f = a.permute([3, 2, 1, 0]).flatten(1, 2);
    check(&f, 0.0, 0.0, "flatten of a permuted view");
    let h = H::of(&a).permute(&[3, 2, 1, 0]).reshape(&[5, 12, 2]);
    assert_same(&f, &h, "flatten of a permuted view (host)");
}

#[test]
fn pad_hand_written() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let p = a.pad(&[(1, 0), (0, 2)], 0.0);
    assert_eq!(p.shape(), vec![3, 4]);
    assert_eq!(
        vals(&p),
        vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]
    );
    let q = a.pad(&[(0, 1), (1, 1)], -1.5);
    assert_eq!(
        vals(&q),
        vec![-1.5, 1.0, 2.0, -1.5, -1.5, 3.0, 4.0, -1.5, -1.5, -1.5, -1.5, -1.5]
    );
    let inf = a.t().pad(&[(1, 1), (0, 0)], f64::NEG_INFINITY);
    let ni = f64::NEG_INFINITY;
    assert_eq!(vals(&inf), vec![ni, ni, 1.0, 3.0, 2.0, 4.0, ni, ni]);
    // Integers pad with the value converted; padding a padded view.
    let i = Tensor::from_vec(vec![5i32, 6], &[2]);
    let ip = i.pad(&[(2, 1)], 9.0).pad(&[(1, 0)], -1.0);
    assert_eq!(ip.dtype(), DType::I32);
    assert_eq!(ip.to_vec::<i32>().unwrap(), vec![-1, 9, 9, 5, 6, 9]);
    // A pad whose value is NaN keeps NaN only outside.
    let n = a.pad(&[(0, 0), (0, 1)], f64::NAN).sum(1);
    assert!(vals(&n).iter().all(|v| v.is_nan()));
    check(
        &a.pad(&[(2, 3), (1, 0)], 0.25).exp(),
        1e-5,
        0.0,
        "pad then exp",
    );
}

#[test]
fn select_flip_hand_written() {
    let a = arange_f32(&[3, 4]);
    assert_eq!(vals(&a.select(0, 1)), vec![4.0, 5.0, 6.0, 7.0]);
    assert_eq!(vals(&a.select(1, -1)), vec![3.0, 7.0, 11.0]);
    assert_eq!(a.select(1, 0).shape(), vec![3]);
    assert_eq!(vals(&a.select(0, 2).select(0, 3)), vec![11.0]);
    assert_eq!(a.select(0, 2).select(0, 3).shape(), Vec::<usize>::new());
    assert_eq!(
        vals(&a.flip(0)),
        vec![8.0, 9.0, 10.0, 11.0, 4.0, 5.0, 6.0, 7.0, 0.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(
        vals(&a.flip(-1)),
        vec![3.0, 2.0, 1.0, 0.0, 7.0, 6.0, 5.0, 4.0, 11.0, 10.0, 9.0, 8.0]
    );
    assert_eq!(
        vals(&a.flip(All)),
        (0..12).rev().map(|i| i as f64).collect::<Vec<_>>()
    );
    assert_eq!(vals(&a.flip([0, 1])), vals(&a.flip(All)));
    assert_eq!(vals(&a.flip(0).flip(0)), vals(&a));
    assert_eq!(vals(&a.t().flip(0).select(0, 0)), vec![3.0, 7.0, 11.0]);
}

#[test]
fn cat_stack_hand_written() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let b = Tensor::from_vec(vec![5.0f32, 6.0], &[1, 2]);
    let c = Tensor::cat(&[a.clone(), b.clone()], 0);
    assert_eq!(c.shape(), vec![3, 2]);
    assert_eq!(vals(&c), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let d = Tensor::cat(&[a.clone(), b.t(), a.t()], -1);
    assert_eq!(d.shape(), vec![2, 5]);
    assert_eq!(
        vals(&d),
        vec![1.0, 2.0, 5.0, 1.0, 3.0, 3.0, 4.0, 6.0, 2.0, 4.0]
    );
    // Values that do not survive `x + 0` naively: NaN and inf stay where they are.
    let s = Tensor::from_vec(vec![f32::NAN, f32::INFINITY], &[2]);
    let t = Tensor::from_vec(vec![f32::NEG_INFINITY, 1.0], &[2]);
    let st = vals(&Tensor::cat(&[s.clone(), t.clone()], 0));
    assert!(
        st[0].is_nan() && st[1] == f64::INFINITY && st[2] == f64::NEG_INFINITY && st[3] == 1.0,
        "{st:?}"
    );
    // Mixed dtypes promote; ints and bools join exactly.
    let i = Tensor::from_vec(vec![1i32, 2], &[2]);
    let f = Tensor::from_vec(vec![0.5f32], &[1]);
    let m = Tensor::cat(&[i.clone(), f], 0);
    assert_eq!(m.dtype(), DType::F32);
    assert_eq!(vals(&m), vec![1.0, 2.0, 0.5]);
    let j = Tensor::from_vec(vec![i32::MIN, i32::MAX], &[2]);
    assert_eq!(
        Tensor::cat(&[j.clone(), i.clone(), j.clone()], 0)
            .to_vec::<i32>()
            .unwrap(),
        vec![i32::MIN, i32::MAX, 1, 2, i32::MIN, i32::MAX]
    );
    let bt = Tensor::from_vec(vec![true, false], &[2]);
    let bc = Tensor::cat(&[bt.clone(), bt.logical_not()], 0);
    assert_eq!(bc.dtype(), DType::Bool);
    assert_eq!(bc.to_vec::<bool>().unwrap(), vec![true, false, false, true]);
    // Stack along a new first, middle and last axis.
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    let y = Tensor::from_vec(vec![4.0f32, 5.0, 6.0], &[3]);
    let s0 = Tensor::stack(&[x.clone(), y.clone()], 0);
    assert_eq!(s0.shape(), vec![2, 3]);
    assert_eq!(vals(&s0), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let s1 = Tensor::stack(&[x.clone(), y.clone()], -1);
    assert_eq!(s1.shape(), vec![3, 2]);
    assert_eq!(vals(&s1), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let s2 = Tensor::stack(&[a.clone(), a.t()], 1);
    assert_eq!(s2.shape(), vec![2, 2, 2]);
    assert_eq!(vals(&s2), vec![1.0, 2.0, 1.0, 3.0, 3.0, 4.0, 2.0, 4.0]);
    let z = Tensor::stack(&[Tensor::scalar(1i32), Tensor::scalar(2i32)], 0);
    assert_eq!(z.to_vec::<i32>().unwrap(), vec![1, 2]);
    check(
        &Tensor::cat(&[a.exp(), b.flip(1)], 0),
        1e-5,
        0.0,
        "cat of a computed and a flipped view",
    );
}

#[test]
fn split_chunk_hand_written() {
    let a = arange_f32(&[7, 2]);
    let parts = a.split(&[2, 4, 1], 0);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].shape(), vec![2, 2]);
    assert_eq!(
        vals(&parts[1]),
        (4..12).map(|i| i as f64).collect::<Vec<_>>()
    );
    assert_eq!(vals(&parts[2]), vec![12.0, 13.0]);
    let cols = a.split(&[1, 1], -1);
    assert_eq!(
        vals(&cols[1]),
        (0..7).map(|i| (2 * i + 1) as f64).collect::<Vec<_>>()
    );
    let ch = a.chunk(3, 0);
    assert_eq!(
        ch.iter().map(|c| c.shape()[0]).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(vals(&ch[2]), vec![12.0, 13.0]);
    let ch = arange_f32(&[6]).chunk(4, 0);
    assert_eq!(
        ch.iter().map(|c| c.shape()[0]).collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
    assert_eq!(vals(&ch[1]), vec![2.0, 3.0]);
    let ch = arange_f32(&[2, 5]).chunk(2, 1);
    assert_eq!(vals(&ch[0]), vec![0.0, 1.0, 2.0, 5.0, 6.0, 7.0]);
    assert_eq!(vals(&ch[1]), vec![3.0, 4.0, 8.0, 9.0]);
    // Splitting and joining back is the identity.
    let back = Tensor::cat(&a.chunk(3, 0), 0);
    assert_eq!(vals(&back), vals(&a));
}

#[test]
fn repeat_contiguous_hand_written() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[1, 3]);
    let r = a.repeat(&[2, 2]);
    assert_eq!(r.shape(), vec![2, 6]);
    assert_eq!(
        vals(&r),
        vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    );
    let r3 = a.repeat(&[2, 1, 1]);
    assert_eq!(r3.shape(), vec![2, 1, 3]);
    let m = Tensor::from_vec(vec![1i32, 2, 3, 4], &[2, 2]);
    let mr = m.t().repeat(&[1, 2]);
    assert_eq!(mr.to_vec::<i32>().unwrap(), vec![1, 3, 1, 3, 2, 4, 2, 4]);
    // contiguous() materializes the same values; later ops read the new buffer.
    let c = m.t().contiguous();
    let c2 = &c * 10i32;
    assert_eq!(c2.to_vec::<i32>().unwrap(), vec![10, 30, 20, 40]);
    assert_eq!(c.to_vec::<i32>().unwrap(), vec![1, 3, 2, 4]);
    let x = arange_f32(&[3, 5])
        .slice(1, None, None, -2)
        .contiguous()
        .t()
        .contiguous();
    assert_eq!(x.shape(), vec![3, 3]);
    assert_eq!(
        vals(&x),
        vec![4.0, 9.0, 14.0, 2.0, 7.0, 12.0, 0.0, 5.0, 10.0]
    );
}

#[test]
fn long_chain_hand_written() {
    // (2, 3, 4) -> permute -> slice with a negative step -> pad -> reshape -> expand -> sum.
    let a = arange_f32(&[2, 3, 4]);
    let t = a
        .permute([1, 2, 0])
        .slice(1, None, None, -3)
        .pad(&[(0, 0), (1, 0), (0, 0)], 100.0)
        .reshape([3, 6]);
    let h = H::of(&a)
        .permute(&[1, 2, 0])
        .take(1, &[3, 0])
        .pad(&[(0, 0), (1, 0), (0, 0)], 100.0)
        .reshape(&[3, 6]);
    assert_same(&t, &h, "chain");
    let e = t.unsqueeze(0).expand([2, 3, 6]).sum(0);
    let he = H::gen(&[3, 6], |i| 2.0 * h.at(i));
    assert_same(&e, &he, "chain, expand, sum");
    check(&e, 0.0, 0.0, "chain vs reference");
    // The same chain on u8 and f16 data.
    let u = Tensor::from_vec((0..24u8).collect::<Vec<_>>(), &[2, 3, 4]);
    let tu = u
        .permute([1, 2, 0])
        .slice(1, None, None, -3)
        .pad(&[(0, 0), (1, 0), (0, 0)], 100.0)
        .reshape([3, 6]);
    assert_eq!(tu.dtype(), DType::U8);
    assert_eq!(tu.to_f64_vec().unwrap(), h.data);
    let hf = a.cast(DType::F16).flip(All).t();
    check(&hf, 0.0, 0.0, "f16 flip transpose");
}

#[test]
fn one_buffer_read_through_several_views() {
    // The same buffer read through different views in one kernel.
    let m = arange_f32(&[5, 5]);
    let h = H::of(&m);
    assert_same(
        &(&m + &m.t()),
        &H::gen(&[5, 5], |i| h.at(i) + h.at(&[i[1], i[0]])),
        "m + m^T",
    );
    assert_same(
        &(&m * &m.flip(0)),
        &H::gen(&[5, 5], |i| h.at(i) * h.at(&[4 - i[0], i[1]])),
        "m * flip(m)",
    );
    let v = arange_f32(&[8]);
    let s = &v.slice(0, None, None, 2) - &v.slice(0, Some(1), None, 2);
    assert_eq!(vals(&s), vec![-1.0; 4]);
    check(
        &(&m.t() * 3.0 - &m.expand([2, 5, 5]).sum(0)),
        0.0,
        0.0,
        "transpose, expand and sum of one buffer",
    );
    // Several outputs realized together share their inputs.
    let a = m.exp();
    let b = m.t().exp().sum(0);
    let c = &a * 2.0;
    Tensor::realize_all(&[a.clone(), b.clone(), c.clone()]).unwrap();
    let e: Vec<f64> = h.data.iter().map(|&x| (x as f32).exp() as f64).collect();
    // exp(x) = exp2(x * log2 e) with the product rounded to f32: relative error up to ~|x| * 1e-7.
    assert_close_f64(&vals(&a), &e, 1e-5, 0.0, "realize_all a");
    assert_close_f64(
        &vals(&c),
        &e.iter().map(|x| x * 2.0).collect::<Vec<_>>(),
        1e-5,
        0.0,
        "realize_all c",
    );
    let bs: Vec<f64> = (0..5).map(|j| (0..5).map(|i| e[j * 5 + i]).sum()).collect();
    assert_close_f64(&vals(&b), &bs, 1e-5, 0.0, "realize_all b");
}

#[test]
fn zero_size_views() {
    let a = arange_f32(&[5]);
    let e = a.slice(0, Some(3), Some(3), 1);
    assert_eq!(e.shape(), vec![0]);
    assert!(vals(&e).is_empty());
    // Padding an empty view gives only padding.
    let p = e.pad(&[(1, 2)], 7.0);
    assert_eq!(vals(&p), vec![7.0; 3]);
    let m = arange_f32(&[2, 3]).slice(1, Some(5), None, 1);
    assert_eq!(m.shape(), vec![2, 0]);
    let c = Tensor::cat(&[m.clone(), arange_f32(&[2, 1])], 1);
    assert_eq!(vals(&c), vec![0.0, 1.0]);
}
