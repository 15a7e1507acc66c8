//! Linear algebra and neural-network ops: matmul (2-D, batched, broadcast batch, 1-D operands,
//! odd sizes, 64x64 for the vectorized / register-tiled path), dot, conv2d (stride, padding,
//! dilation, groups, bias), max_pool2d, avg_pool2d, one_hot and gather. Results are compared with
//! the reference evaluator and with naive host loops written here.
//!
//! Tolerances: dot products of k terms in [-1, 1] accumulate in f32 on the device (in any order,
//! possibly with fused multiply-adds) and in f64 in the reference: atol 2e-6 * k.

mod common;

use common::*;
use ferrograd::testing::check;
use ferrograd::{All, Conv2dOptions, DType, Tensor};
use ferrograd_ir::program::Inst;
use proptest::prelude::*;

fn dot_atol(k: usize) -> f64 {
    2e-6 * k as f64 + 1e-6
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Naive (m, k) x (k, n) on the host in f64.
fn matmul_host(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                .sum();
        }
    }
    out
}

// ---- matmul -------------------------------------------------------------------------------------

const DIMS: &[usize] = &[1, 3, 5, 7, 8, 16, 33, 64];

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn matmul_matches_reference(m in prop::sample::select(DIMS), k in prop::sample::select(DIMS), n in prop::sample::select(DIMS),
                                batch in prop::sample::select(vec![vec![], vec![1], vec![3], vec![2, 1]]),
                                a_t: bool, b_t: bool, seed in 0u64..1000) {
        // Operands may be transposed views of their buffers.
        let mut sa = batch.clone();
        sa.extend(if a_t { [k, m] } else { [m, k] });
        // The right operand has the same batch or size-1 batch axes (broadcast).
        let mut sb = if seed % 2 == 0 { batch.clone() } else { batch.iter().map(|_| 1).collect::<Vec<usize>>() };
        sb.extend(if b_t { [n, k] } else { [k, n] });
        let a = Tensor::from_slice(&values(numel(&sa), seed), &sa);
        let b = Tensor::from_slice(&values(numel(&sb), seed + 1), &sb);
        let a = if a_t { a.t() } else { a };
        let b = if b_t { b.t() } else { b };
        let y = a.matmul(&b);
        let mut want = batch.clone();
        want.extend([m, n]);
        prop_assert_eq!(y.shape(), want);
        check(&y, 1e-5, dot_atol(k), &format!("matmul batch {batch:?} ({m}x{k}{}) @ ({k}x{n}{})",
            if a_t { " as a transpose" } else { "" }, if b_t { " as a transpose" } else { "" }));
    }
}

#[test]
fn matmul_2d_odd_sizes_host_values() {
    let (m, k, n) = (3, 5, 7);
    let av = values(m * k, 1);
    let bv = values(k * n, 2);
    let a = Tensor::from_slice(&av, &[m, k]);
    let b = Tensor::from_slice(&bv, &[k, n]);
    let y = a.matmul(&b);
    assert_eq!(y.shape(), vec![m, n]);
    assert_close_f64(
        &f64s(&y),
        &matmul_host(&av, &bv, m, k, n),
        1e-5,
        dot_atol(k),
        "3x5 @ 5x7",
    );
    // The transpose identity (AB)^T = B^T A^T on views.
    let yt = b.t().matmul(&a.t());
    assert_close_f64(&f64s(&yt), &f64s(&y.t()), 1e-5, dot_atol(k), "B^T A^T");
    // dot is matmul.
    assert_close_f64(&f64s(&a.dot(&b)), &f64s(&y), 0.0, 0.0, "dot");
}

#[test]
fn matmul_64_tiled_host_values() {
    // 64x64 is a multiple of every vector width and register tile: the optimized path.
    let n = 64;
    let av = values(n * n, 3);
    let bv = values(n * n, 4);
    let a = Tensor::from_slice(&av, &[n, n]);
    let b = Tensor::from_slice(&bv, &[n, n]);
    let expect = matmul_host(&av, &bv, n, n, n);
    assert_close_f64(&f64s(&a.matmul(&b)), &expect, 1e-5, dot_atol(n), "64x64");
    check(&a.matmul(&b), 1e-5, dot_atol(n), "64x64 vs reference");
    // With the right operand as a transposed view of its transpose's buffer.
    let bt: Vec<f32> = (0..n * n).map(|i| bv[(i % n) * n + i / n]).collect();
    let btt = Tensor::from_slice(&bt, &[n, n]).t();
    assert_close_f64(
        &f64s(&a.matmul(&btt)),
        &expect,
        1e-5,
        dot_atol(n),
        "64x64 with a transposed operand",
    );
    // Fused epilogue: bias and relu on the tiled result.
    let bias = Tensor::from_slice(&values(n, 5), &[n]);
    check(
        &(a.matmul(&b) + &bias).relu(),
        1e-5,
        dot_atol(n),
        "64x64 + bias, relu",
    );
    // Non-square, sizes around the tile: 65 x 64 @ 64 x 67.
    let c = Tensor::from_slice(&values(65 * 64, 6), &[65, 64]);
    let d = Tensor::from_slice(&values(64 * 67, 7), &[64, 67]);
    check(&c.matmul(&d), 1e-5, dot_atol(64), "65x64 @ 64x67");
}

#[test]
fn matmul_large_packed_host_values() {
    // Large right operands (k * n >= 2^16, n a multiple of 8) are packed into column panels
    // first: one extra kernel, then a matmul that reads the panels.
    let (m, k, n) = (40, 256, 264);
    let av = values(m * k, 40);
    let bv = values(k * n, 41);
    let a = Tensor::from_slice(&av, &[m, k]);
    let b = Tensor::from_slice(&bv, &[k, n]);
    let expect = matmul_host(&av, &bv, m, k, n);
    assert_close_f64(
        &f64s(&a.matmul(&b)),
        &expect,
        1e-5,
        dot_atol(k),
        "40x256 @ 256x264",
    );
    check(
        &(a.matmul(&b) + 1.0).relu(),
        1e-5,
        dot_atol(k),
        "packed matmul, + 1, relu vs reference",
    );
    // The right operand as a transposed view, and a broadcast batch on the left.
    let bt: Vec<f32> = (0..k * n).map(|i| bv[(i % k) * n + i / k]).collect();
    let b_view = Tensor::from_slice(&bt, &[n, k]).t();
    assert_close_f64(
        &f64s(&a.matmul(&b_view)),
        &expect,
        1e-5,
        dot_atol(k),
        "packed matmul of a transposed view",
    );
    let a2 = Tensor::from_slice(&values(2 * m * k, 42), &[2, 1, m, k]);
    let y = a2.matmul(&b.unsqueeze(0).expand([3, k, n]));
    assert_eq!(y.shape(), vec![2, 3, m, n]);
    check(&y, 1e-5, dot_atol(k), "batched packed matmul vs reference");
}

#[test]
fn matmul_batched_and_broadcast_host_values() {
    let (m, k, n) = (3, 5, 7);
    let av = values(2 * m * k, 8);
    let bv = values(2 * k * n, 9);
    let a = Tensor::from_slice(&av, &[2, m, k]);
    let b = Tensor::from_slice(&bv, &[2, k, n]);
    let y = a.matmul(&b);
    assert_eq!(y.shape(), vec![2, m, n]);
    let mut expect = matmul_host(&av[..m * k], &bv[..k * n], m, k, n);
    expect.extend(matmul_host(&av[m * k..], &bv[k * n..], m, k, n));
    assert_close_f64(&f64s(&y), &expect, 1e-5, dot_atol(k), "batched");
    // Broadcast batch: (2, 1, m, k) @ (4, k, n) -> (2, 4, m, n).
    let cv = values(4 * k * n, 10);
    let c = Tensor::from_slice(&cv, &[4, k, n]);
    let z = a.unsqueeze(1).matmul(&c);
    assert_eq!(z.shape(), vec![2, 4, m, n]);
    let mut expect = Vec::new();
    for i in 0..2 {
        for j in 0..4 {
            expect.extend(matmul_host(
                &av[i * m * k..(i + 1) * m * k],
                &cv[j * k * n..(j + 1) * k * n],
                m,
                k,
                n,
            ));
        }
    }
    assert_close_f64(&f64s(&z), &expect, 1e-5, dot_atol(k), "broadcast batch");
    // A 2-D left operand against a batch.
    let w = a.select(0, 1).matmul(&c);
    assert_eq!(w.shape(), vec![4, m, n]);
    check(&w, 1e-5, dot_atol(k), "2-D @ batch");
}

#[test]
fn matmul_vector_operands() {
    let (k, n) = (5, 7);
    let xv = values(k, 11);
    let bv = values(k * n, 12);
    let x = Tensor::from_slice(&xv, &[k]);
    let b = Tensor::from_slice(&bv, &[k, n]);
    let v = x.matmul(&b);
    assert_eq!(v.shape(), vec![n], "(k) @ (k, n)");
    assert_close_f64(
        &f64s(&v),
        &matmul_host(&xv, &bv, 1, k, n),
        1e-5,
        dot_atol(k),
        "vector @ matrix",
    );
    let bt = b.t(); // (n, k)
    let u = bt.matmul(&x);
    assert_eq!(u.shape(), vec![n], "(n, k) @ (k)");
    assert_close_f64(
        &f64s(&u),
        &matmul_host(&xv, &bv, 1, k, n),
        1e-5,
        dot_atol(k),
        "matrix @ vector",
    );
    let s = x.dot(&x);
    assert_eq!(s.shape(), Vec::<usize>::new(), "(k) @ (k)");
    let e: f64 = xv.iter().map(|&v| (v as f64) * (v as f64)).sum();
    assert_close_f64(&f64s(&s), &[e], 1e-5, dot_atol(k), "dot");
    // Batched matrix @ vector.
    let bb = Tensor::from_slice(&values(3 * n * k, 13), &[3, n, k]);
    assert_eq!(bb.matmul(&x).shape(), vec![3, n]);
    check(&bb.matmul(&x), 1e-5, dot_atol(k), "batch @ vector");
    // A 33-element dot product of a strided view.
    let long = Tensor::from_slice(&values(66, 14), &[66]).slice(0, Some(1), None, 2);
    check(&long.dot(&long.flip(0)), 1e-5, dot_atol(33), "strided dot");
}

#[test]
fn matmul_other_dtypes() {
    let av: Vec<i32> = (0..15).map(|i| i * 7 % 11 - 5).collect();
    let bv: Vec<i32> = (0..20).map(|i| i * 5 % 9 - 4).collect();
    let a = Tensor::from_slice(&av, &[3, 5]);
    let b = Tensor::from_slice(&bv, &[5, 4]);
    let y = a.matmul(&b);
    assert_eq!(y.dtype(), DType::I32);
    let mut expect = vec![0i32; 12];
    for i in 0..3 {
        for j in 0..4 {
            expect[i * 4 + j] = (0..5).map(|p| av[i * 5 + p] * bv[p * 4 + j]).sum();
        }
    }
    assert_eq!(y.to_vec::<i32>().unwrap(), expect, "i32 matmul is exact");
    // f64 keeps double precision; f16 inputs with f16 accumulation are loose.
    let (m, k, n) = (5, 33, 3);
    let av = values(m * k, 15);
    let bv = values(k * n, 16);
    let a64 = Tensor::from_slice(&av.iter().map(|&v| v as f64).collect::<Vec<_>>(), &[m, k]);
    let b64 = Tensor::from_slice(&bv.iter().map(|&v| v as f64).collect::<Vec<_>>(), &[k, n]);
    assert_close_f64(
        &f64s(&a64.matmul(&b64)),
        &matmul_host(&av, &bv, m, k, n),
        1e-12,
        1e-13,
        "f64 matmul",
    );
    let a16 = Tensor::from_slice(&av, &[m, k])
        .cast(DType::F16)
        .realize()
        .unwrap()
        .clone();
    let b16 = Tensor::from_slice(&bv, &[k, n])
        .cast(DType::F16)
        .realize()
        .unwrap()
        .clone();
    let y16 = a16.matmul(&b16);
    assert_eq!(y16.dtype(), DType::F16);
    assert_close_f64(
        &f64s(&y16),
        &matmul_host(&av, &bv, m, k, n),
        1e-2,
        5e-2,
        "f16 matmul (host)",
    );
    check(&y16, 1e-2, 5e-2, "f16 matmul vs reference");
    let ybf = a16.cast(DType::BF16).matmul(&b16.cast(DType::BF16));
    check(&ybf, 2e-2, 2e-1, "bf16 matmul vs reference");
}

// ---- conv2d -------------------------------------------------------------------------------------

/// Naive grouped 2-D convolution on the host.
#[allow(clippy::too_many_arguments)]
fn conv_host(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    bias: Option<&[f32]>,
    o: Conv2dOptions,
) -> (Vec<f64>, [usize; 4]) {
    let [n, c, h, wd] = xs;
    let [co, cg, kh, kw] = ws;
    let g = o.groups;
    let oh = (h + 2 * o.padding.0 - o.dilation.0 * (kh - 1) - 1) / o.stride.0 + 1;
    let ow = (wd + 2 * o.padding.1 - o.dilation.1 * (kw - 1) - 1) / o.stride.1 + 1;
    let mut out = vec![0.0f64; n * co * oh * ow];
    for b in 0..n {
        for oc in 0..co {
            let grp = oc / (co / g);
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bias.map_or(0.0, |bb| bb[oc] as f64);
                    for ic in 0..cg {
                        let cin = grp * cg + ic;
                        for p in 0..kh {
                            for q in 0..kw {
                                let y =
                                    (i * o.stride.0 + p * o.dilation.0) as i64 - o.padding.0 as i64;
                                let z =
                                    (j * o.stride.1 + q * o.dilation.1) as i64 - o.padding.1 as i64;
                                if y < 0 || z < 0 || y >= h as i64 || z >= wd as i64 {
                                    continue;
                                }
                                let xv =
                                    x[((b * c + cin) * h + y as usize) * wd + z as usize] as f64;
                                let wv = w[((oc * cg + ic) * kh + p) * kw + q] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    out[((b * co + oc) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    (out, [n, co, oh, ow])
}

fn conv_case(xs: [usize; 4], ws: [usize; 4], with_bias: bool, o: Conv2dOptions, seed: u64) {
    let xv = values(xs.iter().product(), seed);
    let wv = values(ws.iter().product(), seed + 100);
    let bv = values(ws[0], seed + 200);
    let x = Tensor::from_slice(&xv, &xs);
    let w = Tensor::from_slice(&wv, &ws);
    let b = Tensor::from_slice(&bv, &[ws[0]]);
    let y = x.conv2d(&w, if with_bias { Some(&b) } else { None }, o);
    let (expect, shape) = conv_host(
        &xv,
        xs,
        &wv,
        ws,
        if with_bias { Some(&bv) } else { None },
        o,
    );
    let what = format!("conv2d x {xs:?} w {ws:?} bias {with_bias} {o:?}");
    assert_eq!(y.shape(), shape.to_vec(), "{what}: shape");
    let k = ws[1] * ws[2] * ws[3];
    check(&y, 1e-5, dot_atol(k), &what);
    assert_close_f64(
        &f64s(&y),
        &expect,
        1e-5,
        dot_atol(k),
        &format!("{what} (host)"),
    );
}

#[test]
fn conv2d_host_values() {
    let d = Conv2dOptions::default();
    conv_case([1, 2, 5, 5], [4, 2, 3, 3], false, d, 1);
    conv_case([2, 3, 7, 6], [5, 3, 3, 3], true, d, 2);
    conv_case([1, 2, 7, 7], [3, 2, 3, 3], true, d.stride(2, 2), 3);
    conv_case([1, 2, 5, 5], [3, 2, 3, 3], false, d.padding(1, 1), 4);
    conv_case([1, 1, 9, 9], [2, 1, 3, 3], false, d.dilation(2, 2), 5);
    conv_case([1, 4, 6, 6], [6, 2, 3, 3], true, d.groups(2), 6);
    conv_case(
        [2, 3, 5, 5],
        [3, 1, 3, 3],
        false,
        d.groups(3).padding(1, 1),
        7,
    );
    conv_case(
        [1, 2, 7, 8],
        [4, 2, 2, 3],
        true,
        d.stride(2, 1).padding(0, 2).dilation(1, 2),
        8,
    );
    conv_case([1, 3, 4, 4], [2, 3, 1, 1], false, d, 9);
    conv_case([1, 1, 1, 1], [1, 1, 1, 1], true, d, 10);
    conv_case([1, 2, 5, 5], [2, 2, 5, 5], false, d, 11);
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn conv2d_random_options(n in 1usize..3, g in 1usize..3, cg in 1usize..3, og in 1usize..3, h in 3usize..9, w in 3usize..9,
                             kh in 1usize..4, kw in 1usize..4, s in (1usize..3, 1usize..3), p in (0usize..3, 0usize..3),
                             dl in (1usize..3, 1usize..3), bias: bool, seed in 0u64..100) {
        let o = Conv2dOptions::default().stride(s.0, s.1).padding(p.0, p.1).dilation(dl.0, dl.1).groups(g);
        let fits = h + 2 * p.0 > dl.0 * (kh - 1) && w + 2 * p.1 > dl.1 * (kw - 1);
        prop_assume!(fits);
        conv_case([n, g * cg, h, w], [g * og, cg, kh, kw], bias, o, seed);
    }
}

#[test]
fn conv2d_on_a_permuted_input() {
    // NHWC data viewed as NCHW.
    let xv = values(2 * 6 * 5 * 3, 21);
    let x = Tensor::from_slice(&xv, &[2, 6, 5, 3]).permute([0, 3, 1, 2]);
    let w = Tensor::from_slice(&values(4 * 3 * 3 * 3, 22), &[4, 3, 3, 3]);
    let y = x.conv2d(&w, None, Conv2dOptions::default().padding(1, 1));
    assert_eq!(y.shape(), vec![2, 4, 6, 5]);
    check(&y, 1e-5, dot_atol(27), "conv2d of a permuted input");
    let xc: Vec<f32> = f64s(&x).iter().map(|&v| v as f32).collect();
    let (expect, _) = conv_host(
        &xc,
        [2, 3, 6, 5],
        &f64s(&w).iter().map(|&v| v as f32).collect::<Vec<_>>(),
        [4, 3, 3, 3],
        None,
        Conv2dOptions::default().padding(1, 1),
    );
    assert_close_f64(
        &f64s(&y),
        &expect,
        1e-5,
        dot_atol(27),
        "conv2d of a permuted input (host)",
    );
}

// ---- pooling ------------------------------------------------------------------------------------

fn pool_host(
    x: &[f32],
    xs: [usize; 4],
    k: (usize, usize),
    o: Conv2dOptions,
    max: bool,
) -> (Vec<f64>, Vec<usize>) {
    let [n, c, h, w] = xs;
    let oh = (h + 2 * o.padding.0 - o.dilation.0 * (k.0 - 1) - 1) / o.stride.0 + 1;
    let ow = (w + 2 * o.padding.1 - o.dilation.1 * (k.1 - 1) - 1) / o.stride.1 + 1;
    let mut out = Vec::new();
    for b in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                for p in 0..k.0 {
                    for q in 0..k.1 {
                        let y = (i * o.stride.0 + p * o.dilation.0) as i64 - o.padding.0 as i64;
                        let z = (j * o.stride.1 + q * o.dilation.1) as i64 - o.padding.1 as i64;
                        let v = if y < 0 || z < 0 || y >= h as i64 || z >= w as i64 {
                            if max {
                                f64::NEG_INFINITY
                            } else {
                                0.0
                            }
                        } else {
                            x[(b * h + y as usize) * w + z as usize] as f64
                        };
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.push(if max { acc } else { acc / (k.0 * k.1) as f64 });
            }
        }
    }
    (out, vec![n, c, oh, ow])
}

#[test]
fn pooling_host_values() {
    let d = Conv2dOptions::default();
    let cases = [
        ([1, 1, 4, 4], (2, 2), d.stride(2, 2)),
        ([2, 3, 7, 5], (3, 3), d),
        ([1, 2, 7, 7], (3, 3), d.stride(2, 2).padding(1, 1)),
        ([1, 1, 9, 8], (2, 3), d.stride(1, 2).dilation(2, 1)),
        ([1, 1, 5, 5], (5, 5), d),
        ([1, 2, 3, 3], (2, 2), d.padding(1, 1).stride(2, 2)),
    ];
    for (i, (xs, k, o)) in cases.into_iter().enumerate() {
        let xv = values(xs.iter().product(), 30 + i as u64);
        let x = Tensor::from_slice(&xv, &xs);
        for max in [true, false] {
            let y = if max {
                x.max_pool2d(k, o)
            } else {
                x.avg_pool2d(k, o)
            };
            let (expect, shape) = pool_host(&xv, xs, k, o, max);
            let what = format!(
                "{} {xs:?} kernel {k:?} {o:?}",
                if max { "max_pool2d" } else { "avg_pool2d" }
            );
            assert_eq!(y.shape(), shape, "{what}: shape");
            assert_close_f64(&f64s(&y), &expect, 1e-5, 1e-6, &what);
            check(&y, 1e-5, 1e-6, &what);
        }
    }
    // A known 4x4 example.
    let x = Tensor::from_vec((0..16).map(|i| i as f32).collect::<Vec<_>>(), &[1, 1, 4, 4]);
    assert_eq!(
        f64s(&x.max_pool2d((2, 2), d.stride(2, 2))),
        vec![5.0, 7.0, 13.0, 15.0]
    );
    assert_eq!(
        f64s(&x.avg_pool2d((2, 2), d.stride(2, 2))),
        vec![2.5, 4.5, 10.5, 12.5]
    );
    // Max pooling of negative values with padding: the padding never wins.
    let neg = Tensor::from_vec(vec![-5.0f32, -4.0, -3.0, -2.0], &[1, 1, 2, 2]);
    assert_eq!(
        f64s(&neg.max_pool2d((2, 2), d.padding(1, 1).stride(2, 2))),
        vec![-5.0, -4.0, -3.0, -2.0]
    );
    // NaN propagates through max pooling.
    let nan = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, 4.0], &[1, 1, 2, 2]);
    assert!(f64s(&nan.max_pool2d((2, 2), d))[0].is_nan());
}

/// A 2x2 max-pool window is four elements: with the graph optimizer on, its maximum and its
/// gradient's tie count are elementwise kernels (`unroll/small-reduce`), not reductions with
/// two-element loops (~2x slower). Ties still share the gradient equally and NaN propagates.
#[test]
fn a_two_by_two_max_pool_runs_as_elementwise_kernels() {
    use ferrograd::runtime::rewrite::{with_mode, Mode};
    let d = Conv2dOptions::default().stride(2, 2);
    // Windows: one maximum; three tied at 3; four tied at 0; a NaN.
    #[rustfmt::skip]
    let xv = [
        1.0f32, 7.0, 3.0, 3.0, //
        2.0, 4.0, 1.0, 3.0, //
        0.0, 0.0, f32::NAN, 1.0, //
        0.0, 0.0, 2.0, 5.0,
    ];
    let kinds = |mode: Mode| {
        with_mode(mode, || {
            let x = Tensor::from_slice(&xv, &[1, 1, 4, 4]);
            let y = x.max_pool2d((2, 2), d);
            let names: Vec<String> = ferrograd::runtime::programs(&[y.node()])
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect();
            (names, f64s(&y))
        })
    };
    let (on, on_values) = kinds(Mode::Eager);
    let (off, off_values) = kinds(Mode::Off);
    assert!(
        on.iter().all(|n| n.starts_with("e_")),
        "optimizer on: {on:?}"
    );
    assert!(
        off.iter().any(|n| n.starts_with("r_max")),
        "optimizer off: {off:?}"
    );
    for values in [&on_values, &off_values] {
        assert_eq!(values[..3], [7.0, 3.0, 0.0]);
        assert!(values[3].is_nan());
    }
    for mode in [Mode::Eager, Mode::Off] {
        let grad = with_mode(mode, || {
            let x = Tensor::from_slice(&xv, &[1, 1, 4, 4]).requires_grad(true);
            let w = Tensor::from_slice(&[6.0f32, 6.0, 8.0, 1.0], &[1, 1, 2, 2]);
            (&x.max_pool2d((2, 2), d) * &w).sum(All).backward();
            f64s(&x.grad().expect("x has a gradient"))
        });
        // A NaN window has no element equal to its maximum: 0 hits, 0/0 in all four.
        let nan = f64::NAN;
        let expected = [
            0.0, 6.0, 2.0, 2.0, //
            0.0, 0.0, 0.0, 2.0, //
            2.0, 2.0, nan, nan, //
            2.0, 2.0, nan, nan,
        ];
        let same = |g: &f64, e: &f64| g == e || (g.is_nan() && e.is_nan());
        assert!(
            grad.iter().zip(&expected).all(|(g, e)| same(g, e)),
            "{mode:?}: gradient {grad:?}, expected {expected:?}"
        );
    }
}

// ---- one_hot and gather -------------------------------------------------------------------------

#[test]
fn one_hot_host_values() {
    let i = Tensor::from_vec(vec![2i32, 0, 1, 3, -1, 4], &[2, 3]);
    let o = i.one_hot(4);
    assert_eq!(o.shape(), vec![2, 3, 4]);
    assert_eq!(o.dtype(), DType::I32);
    let expect: Vec<i32> = [2i32, 0, 1, 3, -1, 4]
        .iter()
        .flat_map(|&c| (0..4).map(move |k| (k == c) as i32))
        .collect();
    assert_eq!(
        o.to_vec::<i32>().unwrap(),
        expect,
        "out-of-range classes give all-zero rows"
    );
    let u = Tensor::from_vec(vec![1u8, 0], &[2]).one_hot(3);
    assert_eq!(u.to_vec::<i32>().unwrap(), vec![0, 1, 0, 1, 0, 0]);
    let l = Tensor::from_vec(vec![4i64], &[]).one_hot(5);
    assert_eq!(l.shape(), vec![5]);
    assert_eq!(l.to_vec::<i32>().unwrap(), vec![0, 0, 0, 0, 1]);
    check(&i.t().one_hot(5), 0.0, 0.0, "one_hot of a transposed view");
}

#[test]
fn gather_host_values() {
    let xv: Vec<f32> = (0..12).map(|i| i as f32 * 1.5).collect();
    let x = Tensor::from_slice(&xv, &[3, 4]);
    // Along axis 1: out[i][j] = x[i][idx[i][j]].
    let idx = vec![3i32, 0, 0, 2, 1, 1, 3, 3, 2];
    let it = Tensor::from_slice(&idx, &[3, 3]);
    let g = x.gather(1, &it);
    assert_eq!(g.shape(), vec![3, 3]);
    let expect: Vec<f64> = (0..9)
        .map(|p| xv[(p / 3) * 4 + idx[p] as usize] as f64)
        .collect();
    assert_eq!(f64s(&g), expect, "gather(1)");
    // Along axis 0 with fewer columns than the input: out[i][j] = x[idx[i][j]][j].
    let idx0 = vec![2i64, 0, 1, 1, 0, 2];
    let g0 = x.gather(0, &Tensor::from_slice(&idx0, &[2, 3]));
    let expect0: Vec<f64> = (0..6)
        .map(|p| xv[idx0[p] as usize * 4 + p % 3] as f64)
        .collect();
    assert_eq!(f64s(&g0), expect0, "gather(0)");
    // Integer data, negative axis, transposed input.
    let xi = Tensor::from_vec(
        (0..12).map(|i| i * 100 - 550).collect::<Vec<i32>>(),
        &[4, 3],
    )
    .t();
    let gi = xi.gather(-1, &Tensor::from_vec(vec![3i32, 1, 0, 2], &[2, 2]));
    assert_eq!(gi.dtype(), DType::I32);
    // xi[i][j] = (j * 3 + i) * 100 - 550
    assert_eq!(gi.to_vec::<i32>().unwrap(), vec![350, -250, -450, 150]);
    check(&x.gather(1, &it).exp(), 1e-5, 0.0, "gather then exp");
}

/// The name of the (first) kernel of kind `kind` (`r_sum`, `e`) that computes `t`: it spells
/// the kernel's plan (`u`: unrolled register tile, `v`: vector lanes).
fn kernel_name(t: &Tensor, kind: &str) -> String {
    ferrograd::runtime::programs(&[t.node()])
        .unwrap()
        .into_iter()
        .find(|p| p.name.starts_with(kind))
        .expect("a kernel of that kind")
        .name
}

/// The name of the (first) sum kernel that computes `t`.
fn reduction_kernel_name(t: &Tensor) -> String {
    kernel_name(t, "r_sum")
}

/// A single-channel 3x3 convolution (9 taps per output, the first layer of a convnet) gets a
/// register tile: weights shared across the batch and inputs across output channels are
/// loaded once per tile (it ran as scalar loops, ~10x slower, when tiles needed 16 taps).
#[test]
fn a_nine_tap_convolution_is_register_tiled() {
    let x = Tensor::randn(&[8, 1, 12, 12]);
    let w = Tensor::randn(&[8, 1, 3, 3]);
    x.realize().unwrap();
    w.realize().unwrap();
    let y = x.conv2d(&w, None, Conv2dOptions::default());
    let conv = reduction_kernel_name(&y);
    assert!(
        conv.contains('u'),
        "{conv}: no register tile (unrolled axis)"
    );
    check(&y, 1e-5, 1e-5, "9-tap conv");
}

#[test]
fn a_reduction_over_head_merged_rows_is_vectorized() {
    // A weight gradient read through attention's head merge: o = 16h + d is not affine in the
    // [b, h, t, d] buffer, so the reduction vectorizes along o only once o is split into (h, d).
    let dq = Tensor::randn(&[4, 4, 32, 16]);
    let x = Tensor::randn(&[4, 32, 64]);
    Tensor::realize_all(&[dq.clone(), x.clone()]).unwrap();
    let dy = dq.permute([0, 2, 1, 3]).reshape([4, 32, 64]);
    let products = &x.reshape([4, 32, 64, 1]).expand([4, 32, 64, 64])
        * &dy.reshape([4, 32, 1, 64]).expand([4, 32, 64, 64]);
    let dw = products.sum([0, 1]);
    let reduction = reduction_kernel_name(&dw);
    assert!(reduction.contains('v'), "{reduction}: not vectorized");
    check(&dw, 1e-4, 1e-4, "head-merged weight gradient");
}

/// Rows whose width is not a multiple of the vector lanes (13, 11: a convnet's feature maps)
/// vectorize with an overlapping last vector: its shared lanes are computed twice and stored
/// twice, with the same values. Every element is checked, the overlapped ones included.
#[test]
fn odd_width_rows_vectorize_with_an_overlapping_last_vector() {
    let x = Tensor::randn(&[3, 2, 13, 13]);
    let w = Tensor::randn(&[5, 2, 3, 3]);
    Tensor::realize_all(&[x.clone(), w.clone()]).unwrap();
    // Windows read as rows padded to 14 and cut into rows of 13: affine once the index's
    // coefficients are reduced modulo 13 (`(ow + 14·kw) % 13 == ow + kw`).
    let y = x.conv2d(&w, None, Conv2dOptions::default());
    assert_eq!(y.shape(), vec![3, 5, 11, 11]);
    let conv = reduction_kernel_name(&y);
    assert!(conv.contains("11v4"), "{conv}: output rows not vectorized");
    check(&y, 1e-5, 1e-5, "conv with 11-wide output rows");
    // Elementwise over 5 rows of 13 (one merged axis of 65).
    let a = Tensor::randn(&[5, 13]);
    a.realize().unwrap();
    let e = (&a * 2.0).exp();
    let name = kernel_name(&e, "e");
    assert!(name.contains("v4"), "{name}: not vectorized");
    check(&e, 1e-5, 1e-5, "65 elements, overlapping last vector");
    // Every other column of 26-wide rows (a 2x2 max-pool window's stride-2 reads): the
    // strided operands are gathered lane by lane (39 outputs: an overlapping last vector).
    let r = Tensor::randn(&[3, 26]);
    r.realize().unwrap();
    let column = |j: usize| {
        r.reshape([3, 13, 2])
            .shrink(&[(0, 3), (0, 13), (j, j + 1)])
            .reshape([3, 13])
    };
    let pooled = column(0).maximum(column(1)).relu();
    let name = kernel_name(&pooled, "e");
    assert!(name.contains("v4"), "{name}: strided reads not vectorized");
    check(&pooled, 1e-6, 1e-6, "stride-2 reads into 13-wide rows");
    // And back: each of 39 values spread over two columns of 26-wide rows (a max-pool's
    // gradient). The innermost axis (2) is narrower than a vector, so the one outside it is
    // the vector axis, its stores and stride-2 reads lane by lane.
    let g = Tensor::randn(&[3, 13]);
    g.realize().unwrap();
    let spread = (&r.reshape([3, 13, 2]) * &g.reshape([3, 13, 1])).reshape([3, 26]);
    let name = kernel_name(&spread, "e");
    assert!(
        name.contains("v4_2"),
        "{name}: not vectorized outside the 2-wide axis"
    );
    check(&spread, 1e-6, 1e-6, "13 values spread over 26-wide rows");
    // Too narrow to vectorize at all: fewer elements than lanes.
    let narrow = Tensor::randn(&[3]);
    narrow.realize().unwrap();
    check(&(&narrow * 2.0).exp(), 1e-5, 1e-5, "3 elements");
}

/// A convolution with padding and overlapping windows pads its input once into a buffer of
/// its own: the windows are then read without a bounds check per element and vectorize
/// (the transposed convolution of a convnet's input gradient ran ~2x slower guarded).
#[test]
fn a_padded_convolution_reads_its_windows_unguarded() {
    let x = Tensor::randn(&[2, 3, 9, 9]);
    let w = Tensor::randn(&[4, 3, 3, 3]);
    Tensor::realize_all(&[x.clone(), w.clone()]).unwrap();
    let y = x.conv2d(&w, None, Conv2dOptions::default().padding(1, 1));
    assert_eq!(y.shape(), vec![2, 4, 9, 9]);
    let programs = ferrograd::runtime::programs(&[y.node()]).unwrap();
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names.len(),
        2,
        "{names:?}: the padded input, then the convolution"
    );
    assert!(names[1].contains('v'), "{names:?}: windows not vectorized");
    check(&y, 1e-5, 1e-5, "padded conv");
}

/// A reduction axis whose length is not a multiple of the vector lanes vectorizes its whole
/// vectors, then adds its tail as one more vector ending at the axis' end: the lanes that
/// vector shares with the last whole one contribute the identity (0 for a sum, -inf for a
/// max; both factors 0 for a multiply-add), so nothing is counted twice and no special
/// value in a shared lane leaks. No element is loaded on its own.
#[test]
fn odd_length_reductions_vectorize_with_a_masked_last_vector() {
    let mut values: Vec<f32> = (0..66).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
    values[21] = f32::NAN; // in row 1's tail
    values[32] = f32::INFINITY; // in row 2's tail
    values[33..44].fill(f32::NEG_INFINITY); // row 3: all -inf
    values[44 + 7] = 1000.0; // row 4: in the lane the tail vector shares (counted once)
    values[55 + 7] = f32::INFINITY; // row 5: likewise
    let x = Tensor::from_vec(values, &[6, 11]);
    x.realize().unwrap();
    let sum = x.sum(-1);
    let name = kernel_name(&sum, "r_sum");
    assert!(name.contains("11rv4"), "{name}: not vectorized");
    assert_eq!(scalar_loads(&sum, "r_sum"), 0, "{name}: a scalar tail");
    check(&sum, 1e-5, 1e-5, "sum over 11");
    let max = x.max(-1);
    let name = kernel_name(&max, "r_max");
    assert!(name.contains("11rv4"), "{name}: not vectorized");
    check(&max, 0.0, 0.0, "max over 11");
    check(&(-&x).max(-1), 0.0, 0.0, "max over 11 of the negated rows");
    // A product accumulates with multiply-adds. An infinite factor in a shared lane: zeroing
    // only the other factor would add inf * 0 = NaN.
    let mut a = values_for(5 * 11, 3);
    a[7] = f32::INFINITY;
    a[11 + 7] = f32::NEG_INFINITY;
    let mut b = values_for(11 * 3, 4);
    b[7 * 3 + 2] = f32::INFINITY;
    let a = Tensor::from_vec(a, &[5, 11]);
    let b = Tensor::from_vec(b, &[11, 3]);
    Tensor::realize_all(&[a.clone(), b.clone()]).unwrap();
    let p = a.matmul(&b.t().contiguous().t());
    assert_eq!(
        scalar_loads(&p, "r_sum"),
        0,
        "matmul over k = 11: a scalar tail"
    );
    check(&p, 1e-5, 1e-5, "matmul over k = 11");
    let f = Tensor::randn(&[5, 11]);
    f.realize().unwrap();
    check(&f.exp().sum(-1), 1e-5, 1e-5, "sum of exp over 11");
    // Shorter than a vector: no vector, the elements one by one.
    let short = Tensor::randn(&[5, 3]);
    short.realize().unwrap();
    check(&short.sum(-1), 1e-5, 1e-5, "sum over 3");
}

/// Deterministic values in [-1, 1) with a few exact zeros.
fn values_for(n: usize, seed: u64) -> Vec<f32> {
    values(n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, v)| if i % 7 == 3 { 0.0 } else { v })
        .collect()
}

/// How many single-element loads the (first) kernel of kind `kind` computing `t` makes.
fn scalar_loads(t: &Tensor, kind: &str) -> usize {
    let programs = ferrograd::runtime::programs(&[t.node()]).unwrap();
    let program = programs
        .iter()
        .find(|p| p.name.starts_with(kind))
        .expect("a kernel of that kind");
    program
        .insts
        .iter()
        .filter(|i| matches!(i, Inst::Load { ty, .. } if ty.lanes == 1))
        .count()
}

/// A reduction vectorizes along the output axis its fused operand varies along: in
/// `dW[o, i] = Σ_b relu(h)[b, o]·g[b, o]·x[b, i]` the fused `relu(h)·g` is computed four
/// outputs at a time and `x` broadcast, instead of `relu(h)·g` lane by lane for a vector of
/// `i` (the stores, once per output, go lane by lane).
#[test]
fn a_reduction_vectorizes_along_its_fused_operand() {
    let h = Tensor::randn(&[8, 16]);
    let g = Tensor::randn(&[8, 16]);
    let x = Tensor::randn(&[8, 24]);
    Tensor::realize_all(&[h.clone(), g.clone(), x.clone()]).unwrap();
    let dy = &g * &h.relu();
    let products =
        &dy.reshape([8, 16, 1]).expand([8, 16, 24]) * &x.reshape([8, 1, 24]).expand([8, 16, 24]);
    let dw = products.sum(0);
    let name = reduction_kernel_name(&dw);
    assert!(
        name.contains("16v4"),
        "{name}: the fused operand is not the vector one"
    );
    check(&dw, 1e-5, 1e-5, "reduction with a fused operand");
}
