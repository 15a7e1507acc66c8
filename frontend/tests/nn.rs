//! Layers: forward passes against hand-written f64 loops, gradients against central finite
//! differences (`check_gradients`), initialization, dropout statistics, causal attention and
//! misuse panics. (BatchNorm2d is in `nn_batch_norm.rs`, seeded determinism in `nn_seed.rs`,
//! state dicts in `nn_state.rs`.)

mod common;

use common::{assert_close_f64, f64s, Rng};
use ferrograd::nn::{
    scaled_dot_product_attention, Conv2d, Dropout, Embedding, LayerNorm, Linear, Module,
    MultiheadAttention, RMSNorm,
};
use ferrograd::runtime::rewrite::{with_mode, Mode};
use ferrograd::testing::check_gradients;
use ferrograd::{All, Conv2dOptions, DType, Tensor};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

fn grads(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, what: &str) {
    check_gradients(inputs, f, RTOL, ATOL, what);
}

/// `y = x @ w^T + b` for row-major `x` `[rows, i]`, `w` `[o, i]`.
fn linear_ref(x: &[f64], w: &[f64], b: Option<&[f64]>, i: usize, o: usize) -> Vec<f64> {
    let rows = x.len() / i;
    let mut y = vec![0.0; rows * o];
    for r in 0..rows {
        for c in 0..o {
            let dot: f64 = (0..i).map(|k| x[r * i + k] * w[c * i + k]).sum();
            y[r * o + c] = dot + b.map_or(0.0, |b| b[c]);
        }
    }
    y
}

// ---- Linear -------------------------------------------------------------------------------------

#[test]
fn linear_forward_matches_loops() {
    let mut rng = Rng::new(1);
    let layer = Linear::new(4, 5);
    let (w, b) = (f64s(&layer.weight), f64s(layer.bias.as_ref().unwrap()));
    for shape in [vec![4], vec![3, 4], vec![2, 3, 4]] {
        let x = rng.tensor(&shape, -2.0, 2.0, 0.0);
        let y = layer.forward(&x);
        let mut out_shape = shape.clone();
        *out_shape.last_mut().unwrap() = 5;
        assert_eq!(y.shape(), out_shape);
        let expected = linear_ref(&f64s(&x), &w, Some(&b), 4, 5);
        assert_close_f64(
            &f64s(&y),
            &expected,
            1e-6,
            1e-6,
            &format!("linear {shape:?}"),
        );
    }
    let plain = Linear::no_bias(4, 2);
    assert!(plain.bias.is_none());
    let x = rng.tensor(&[3, 4], -2.0, 2.0, 0.0);
    let expected = linear_ref(&f64s(&x), &f64s(&plain.weight), None, 4, 2);
    assert_close_f64(&f64s(&plain.forward(&x)), &expected, 1e-6, 1e-6, "no_bias");
}

#[test]
fn linear_init_is_uniform_within_one_over_sqrt_fan_in() {
    let layer = Linear::new(32, 64);
    let bound = 1.0 / 32f64.sqrt();
    for (name, t, n) in [
        ("weight", &layer.weight, 64 * 32),
        ("bias", layer.bias.as_ref().unwrap(), 64),
    ] {
        assert_eq!(t.dtype(), DType::F32);
        assert!(t.is_requires_grad(), "{name} must require grad");
        assert!(t.node().realized().is_some(), "{name} must be realized");
        let v = f64s(t);
        assert_eq!(v.len(), n);
        assert!(
            v.iter().all(|x| x.abs() <= bound),
            "{name} exceeds the bound"
        );
        let (lo, hi) = v
            .iter()
            .fold((0.0f64, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(
            lo < -0.5 * bound && hi > 0.5 * bound,
            "{name} is not spread over the range: [{lo}, {hi}]"
        );
    }
    let w = f64s(&layer.weight);
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / w.len() as f64;
    // U(-b, b) has variance b^2 / 3.
    assert!(mean.abs() < 0.05 * bound, "mean {mean}");
    assert!(
        (var / (bound * bound / 3.0) - 1.0).abs() < 0.1,
        "variance {var}"
    );
}

#[test]
fn linear_gradients() {
    let mut rng = Rng::new(2);
    let x = rng.tensor(&[2, 3, 4], -2.0, 2.0, 0.0);
    let w = rng.tensor(&[5, 4], -1.0, 1.0, 0.0);
    let b = rng.tensor(&[5], -1.0, 1.0, 0.0);
    grads(
        &[x.clone(), w.clone(), b],
        |t| {
            Linear {
                weight: t[1].clone(),
                bias: Some(t[2].clone()),
            }
            .forward(&t[0])
        },
        "linear",
    );
    grads(
        &[x, w],
        |t| {
            Linear {
                weight: t[1].clone(),
                bias: None,
            }
            .forward(&t[0])
            .relu()
        },
        "linear without bias, relu",
    );
}

// ---- Conv2d -------------------------------------------------------------------------------------

/// Direct 2-D convolution with loops.
fn conv2d_ref(
    x: &[f64],
    [n, cin, h, w]: [usize; 4],
    wt: &[f64],
    [cout, cin_g, kh, kw]: [usize; 4],
    bias: Option<&[f64]>,
    o: Conv2dOptions,
) -> (Vec<f64>, Vec<usize>) {
    let g = o.groups;
    let oh = (h + 2 * o.padding.0 - o.dilation.0 * (kh - 1) - 1) / o.stride.0 + 1;
    let ow = (w + 2 * o.padding.1 - o.dilation.1 * (kw - 1) - 1) / o.stride.1 + 1;
    let cout_g = cout / g;
    let mut out = vec![0.0; n * cout * oh * ow];
    for b in 0..n {
        for co in 0..cout {
            let grp = co / cout_g;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bias.map_or(0.0, |bs| bs[co]);
                    for ci in 0..cin_g {
                        let c = grp * cin_g + ci;
                        for a in 0..kh {
                            for e in 0..kw {
                                let r =
                                    (i * o.stride.0 + a * o.dilation.0) as i64 - o.padding.0 as i64;
                                let s =
                                    (j * o.stride.1 + e * o.dilation.1) as i64 - o.padding.1 as i64;
                                if r < 0 || s < 0 || r >= h as i64 || s >= w as i64 {
                                    continue;
                                }
                                let xv = x[((b * cin + c) * h + r as usize) * w + s as usize];
                                acc += xv * wt[((co * cin_g + ci) * kh + a) * kw + e];
                            }
                        }
                    }
                    out[((b * cout + co) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    (out, vec![n, cout, oh, ow])
}

#[test]
fn conv2d_forward_matches_loops() {
    let mut rng = Rng::new(3);
    let cases = [
        (4, 6, (3, 3), Conv2dOptions::default()),
        (
            4,
            6,
            (3, 2),
            Conv2dOptions::default()
                .stride(2, 1)
                .padding(1, 0)
                .dilation(1, 2)
                .groups(2),
        ),
        (3, 3, (1, 1), Conv2dOptions::default().groups(3)),
    ];
    for (cin, cout, k, opts) in cases {
        let layer = Conv2d::new(cin, cout, k, opts);
        assert_eq!(
            layer.weight.shape(),
            vec![cout, cin / opts.groups, k.0, k.1]
        );
        let bound = 1.0 / ((cin / opts.groups * k.0 * k.1) as f64).sqrt();
        assert!(f64s(&layer.weight)
            .iter()
            .chain(&f64s(layer.bias.as_ref().unwrap()))
            .all(|v| v.abs() <= bound));
        let xs = [2, cin, 5, 6];
        let x = rng.tensor(&xs, -2.0, 2.0, 0.0);
        let (expected, shape) = conv2d_ref(
            &f64s(&x),
            xs,
            &f64s(&layer.weight),
            [cout, cin / opts.groups, k.0, k.1],
            Some(&f64s(layer.bias.as_ref().unwrap())),
            opts,
        );
        let y = layer.forward(&x);
        assert_eq!(y.shape(), shape);
        assert_close_f64(&f64s(&y), &expected, 1e-6, 1e-6, &format!("{opts:?}"));
    }
    let plain = Conv2d::no_bias(2, 2, (2, 2), Conv2dOptions::default());
    assert!(plain.bias.is_none());
    let x = rng.tensor(&[1, 2, 3, 3], -2.0, 2.0, 0.0);
    let (expected, _) = conv2d_ref(
        &f64s(&x),
        [1, 2, 3, 3],
        &f64s(&plain.weight),
        [2, 2, 2, 2],
        None,
        Conv2dOptions::default(),
    );
    assert_close_f64(&f64s(&plain.forward(&x)), &expected, 1e-6, 1e-6, "no_bias");
}

#[test]
fn conv2d_gradients() {
    let mut rng = Rng::new(4);
    let opts = Conv2dOptions::default()
        .stride(2, 1)
        .padding(1, 1)
        .groups(2);
    let x = rng.tensor(&[1, 4, 4, 3], -2.0, 2.0, 0.0);
    let w = rng.tensor(&[4, 2, 2, 2], -1.0, 1.0, 0.0);
    let b = rng.tensor(&[4], -1.0, 1.0, 0.0);
    grads(
        &[x, w, b],
        |t| {
            Conv2d {
                weight: t[1].clone(),
                bias: Some(t[2].clone()),
                options: opts,
            }
            .forward(&t[0])
        },
        "conv2d",
    );
}

// ---- LayerNorm and RMSNorm ----------------------------------------------------------------------

#[test]
fn layer_norm_forward_matches_loops() {
    let mut rng = Rng::new(5);
    let ln = LayerNorm::new(&[3, 4]);
    assert_eq!(f64s(&ln.weight), vec![1.0; 12]);
    assert_eq!(f64s(&ln.bias), vec![0.0; 12]);
    let w: Vec<f32> = (0..12).map(|_| rng.uniform(0.5, 1.5) as f32).collect();
    let b: Vec<f32> = (0..12).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    ln.weight.assign(&Tensor::from_slice(&w, &[3, 4]));
    ln.bias.assign(&Tensor::from_slice(&b, &[3, 4]));
    let x = rng.tensor(&[2, 3, 4], -3.0, 3.0, 0.0).cast(DType::F32);
    let xv = f64s(&x);
    let mut expected = vec![0.0; 24];
    for s in 0..2 {
        let row = &xv[s * 12..(s + 1) * 12];
        let mean = row.iter().sum::<f64>() / 12.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0;
        for k in 0..12 {
            expected[s * 12 + k] =
                (row[k] - mean) / (var + 1e-5).sqrt() * w[k] as f64 + b[k] as f64;
        }
    }
    let y = ln.forward(&x);
    assert_eq!((y.shape(), y.dtype()), (vec![2, 3, 4], DType::F32));
    assert_close_f64(&f64s(&y), &expected, 1e-5, 1e-5, "layer_norm");
}

#[test]
fn rms_norm_forward_matches_loops() {
    let mut rng = Rng::new(6);
    let mut norm = RMSNorm::new(5);
    let w: Vec<f32> = (0..5).map(|_| rng.uniform(0.5, 1.5) as f32).collect();
    norm.weight.assign(&Tensor::from_slice(&w, &[5]));
    let x = rng.tensor(&[2, 3, 5], -3.0, 3.0, 0.0).cast(DType::F32);
    let xv = f64s(&x);
    let expected = |eps: f64| -> Vec<f64> {
        let mut out = vec![0.0; 30];
        for r in 0..6 {
            let row = &xv[r * 5..(r + 1) * 5];
            let ms = row.iter().map(|v| v * v).sum::<f64>() / 5.0;
            for k in 0..5 {
                out[r * 5 + k] = row[k] / (ms + eps).sqrt() * w[k] as f64;
            }
        }
        out
    };
    // Default eps: the machine epsilon of the input dtype.
    let y = norm.forward(&x);
    assert_close_f64(
        &f64s(&y),
        &expected(f32::EPSILON as f64),
        1e-5,
        1e-6,
        "rms_norm",
    );
    // A large explicit eps shows that it is used.
    norm.eps = Some(0.5);
    assert_close_f64(
        &f64s(&norm.forward(&x)),
        &expected(0.5),
        1e-5,
        1e-6,
        "rms_norm eps 0.5",
    );
}

#[test]
fn norm_gradients() {
    let mut rng = Rng::new(7);
    let x = rng.tensor(&[2, 3, 4], -2.0, 2.0, 0.0);
    let w = rng.tensor(&[3, 4], 0.5, 1.5, 0.0);
    let b = rng.tensor(&[3, 4], -1.0, 1.0, 0.0);
    grads(
        &[x.clone(), w, b],
        |t| {
            LayerNorm {
                weight: t[1].clone(),
                bias: t[2].clone(),
                normalized_shape: vec![3, 4],
                eps: 1e-5,
            }
            .forward(&t[0])
        },
        "layer_norm",
    );
    let w = rng.tensor(&[4], 0.5, 1.5, 0.0);
    grads(
        &[x, w],
        |t| {
            RMSNorm {
                weight: t[1].clone(),
                eps: Some(1e-3),
            }
            .forward(&t[0])
        },
        "rms_norm",
    );
}

// ---- Embedding ----------------------------------------------------------------------------------

#[test]
fn embedding_looks_up_rows() {
    let emb = Embedding::new(5, 3);
    let table = f64s(&emb.weight);
    let idx = [0i32, 4, 2, 2, 2, 1];
    let y = emb.forward(&Tensor::from_slice(&idx, &[2, 3]));
    assert_eq!(y.shape(), vec![2, 3, 3]);
    let expected: Vec<f64> = idx
        .iter()
        .flat_map(|&i| table[i as usize * 3..i as usize * 3 + 3].to_vec())
        .collect();
    assert_eq!(f64s(&y), expected);
    // i64 indices, a 0-d index, and the documented out-of-range behaviour (zero rows).
    let y = emb.forward(&Tensor::from_slice(&[3i64, 7, -1], &[3]));
    assert_eq!(f64s(&y), [table[9..12].to_vec(), vec![0.0; 6]].concat());
    assert_eq!(emb.forward(&Tensor::scalar(1i32)).shape(), vec![3]);
}

#[test]
fn embedding_gradient_reaches_the_rows_looked_up() {
    let emb = Embedding::new(4, 2);
    let idx = Tensor::from_slice(&[1i32, 3, 1], &[3]);
    let g = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let loss = emb
        .forward(&idx)
        .mul(Tensor::from_slice(&g, &[3, 2]))
        .sum(All);
    loss.backward();
    let grad = emb.weight.grad().expect("weight gradient");
    // Row 1 collects positions 0 and 2; row 3 position 1; rows 0 and 2 nothing.
    assert_eq!(
        grad.to_vec::<f32>().unwrap(),
        vec![0.0, 0.0, 6.0, 8.0, 0.0, 0.0, 3.0, 4.0]
    );
    let mut rng = Rng::new(8);
    let w = rng.tensor(&[4, 2], -1.0, 1.0, 0.0);
    grads(
        &[w],
        |t| {
            Embedding {
                weight: t[0].clone(),
            }
            .forward(&Tensor::from_slice(&[2i32, 0, 2, 3], &[2, 2]))
        },
        "embedding",
    );
}

// ---- Dropout ------------------------------------------------------------------------------------

#[test]
fn dropout_zeroes_a_fraction_p_and_scales_the_rest() {
    let n = 200_000;
    let x = Tensor::ones(&[n]);
    for p in [0.1, 0.3, 0.75] {
        let d = Dropout::new(p);
        let y = d.forward(&x).to_vec::<f32>().unwrap();
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        // The binomial standard deviation is below 0.0011; allow 5 of them.
        assert!((zeros - p).abs() < 0.0055, "p {p}: zeroed {zeros}");
        let scale = (1.0 / (1.0 - p)) as f32;
        assert!(
            y.iter().all(|&v| v == 0.0 || v == scale),
            "p {p}: kept values must be scaled by {scale}"
        );
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "p {p}: mean {mean}");
    }
}

#[test]
fn dropout_masks_differ_between_calls_and_are_identity_in_eval() {
    let d = Dropout::new(0.5);
    let x = Tensor::ones(&[64]);
    let a = d.forward(&x).to_vec::<f32>().unwrap();
    let b = d.forward(&x).to_vec::<f32>().unwrap();
    assert_ne!(a, b, "two calls drew the same mask");
    let mut rng = Rng::new(9);
    let x = rng.tensor(&[3, 5], -2.0, 2.0, 0.0).cast(DType::F32);
    d.eval();
    assert!(!d.is_training());
    assert_eq!(
        d.forward(&x).to_vec::<f32>().unwrap(),
        x.to_vec::<f32>().unwrap()
    );
    d.train();
    assert_ne!(
        d.forward(&x).to_vec::<f32>().unwrap(),
        x.to_vec::<f32>().unwrap()
    );
    assert_eq!(
        Dropout::new(0.0).forward(&x).to_vec::<f32>().unwrap(),
        x.to_vec::<f32>().unwrap()
    );
    assert_eq!(
        Dropout::new(1.0).forward(&x).to_vec::<f32>().unwrap(),
        vec![0.0; 15]
    );
}

#[test]
fn dropout_gradient_is_the_scaled_mask() {
    let mut rng = Rng::new(10);
    let x = rng.tensor(&[4, 6], -2.0, 2.0, 0.0);
    let d = Dropout::new(0.4);
    grads(&[x], |t| d.forward(&t[0]), "dropout");
}

// ---- attention ----------------------------------------------------------------------------------

/// Attention for one batch element: q `[l, d]`, k `[s, d]`, v `[s, dv]`.
fn attention_ref(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    (l, s, d, dv): (usize, usize, usize, usize),
    causal: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; l * dv];
    for i in 0..l {
        let keys = if causal { (i + 1).min(s) } else { s };
        let scores: Vec<f64> = (0..keys)
            .map(|j| (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() / (d as f64).sqrt())
            .collect();
        let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        for c in 0..dv {
            out[i * dv + c] = (0..keys).map(|j| e[j] / z * v[j * dv + c]).sum();
        }
    }
    out
}

#[test]
fn scaled_dot_product_attention_matches_loops() {
    let mut rng = Rng::new(11);
    let (b, l, s, d, dv) = (2, 3, 5, 4, 2);
    let q = rng.tensor(&[b, l, d], -2.0, 2.0, 0.0);
    let k = rng.tensor(&[b, s, d], -2.0, 2.0, 0.0);
    let v = rng.tensor(&[b, s, dv], -2.0, 2.0, 0.0);
    let (qv, kv, vv) = (f64s(&q), f64s(&k), f64s(&v));
    for causal in [false, true] {
        let y = scaled_dot_product_attention(&q, &k, &v, causal);
        assert_eq!(y.shape(), vec![b, l, dv]);
        let expected: Vec<f64> = (0..b)
            .flat_map(|i| {
                attention_ref(
                    &qv[i * l * d..(i + 1) * l * d],
                    &kv[i * s * d..(i + 1) * s * d],
                    &vv[i * s * dv..(i + 1) * s * dv],
                    (l, s, d, dv),
                    causal,
                )
            })
            .collect();
        assert_close_f64(
            &f64s(&y),
            &expected,
            1e-9,
            1e-12,
            &format!("causal {causal}"),
        );
    }
}

#[test]
fn multihead_attention_matches_loops() {
    let mut rng = Rng::new(12);
    let (b, l, s, e, h) = (2, 3, 4, 6, 3);
    let mha = MultiheadAttention::new(e, h);
    for bias in [
        &mha.q_proj.bias,
        &mha.k_proj.bias,
        &mha.v_proj.bias,
        &mha.out_proj.bias,
    ] {
        assert_eq!(
            f64s(bias.as_ref().unwrap()),
            vec![0.0; e],
            "biases start at zero"
        );
        // Give the biases values so the test sees them.
        let values: Vec<f32> = (0..e).map(|_| rng.uniform(-0.5, 0.5) as f32).collect();
        bias.as_ref()
            .unwrap()
            .assign(&Tensor::from_slice(&values, &[e]));
    }
    let xavier = (6.0 / (4 * e) as f64).sqrt();
    for p in [&mha.q_proj, &mha.k_proj, &mha.v_proj] {
        assert!(f64s(&p.weight).iter().all(|w| w.abs() <= xavier));
    }
    let q = rng.tensor(&[b, l, e], -2.0, 2.0, 0.0);
    let kv = rng.tensor(&[b, s, e], -2.0, 2.0, 0.0);
    let proj = |lin: &Linear, x: &[f64]| {
        linear_ref(
            x,
            &f64s(&lin.weight),
            Some(&f64s(lin.bias.as_ref().unwrap())),
            e,
            e,
        )
    };
    for causal in [false, true] {
        let y = mha.forward(&q, &kv, &kv, causal);
        assert_eq!(y.shape(), vec![b, l, e]);
        let (pq, pk, pv) = (
            proj(&mha.q_proj, &f64s(&q)),
            proj(&mha.k_proj, &f64s(&kv)),
            proj(&mha.v_proj, &f64s(&kv)),
        );
        let dh = e / h;
        let head = |x: &[f64], bi: usize, hi: usize, len: usize| -> Vec<f64> {
            (0..len)
                .flat_map(|t| {
                    x[(bi * len + t) * e + hi * dh..(bi * len + t) * e + (hi + 1) * dh].to_vec()
                })
                .collect()
        };
        let mut joined = vec![0.0; b * l * e];
        for bi in 0..b {
            for hi in 0..h {
                let o = attention_ref(
                    &head(&pq, bi, hi, l),
                    &head(&pk, bi, hi, s),
                    &head(&pv, bi, hi, s),
                    (l, s, dh, dh),
                    causal,
                );
                for t in 0..l {
                    for c in 0..dh {
                        joined[(bi * l + t) * e + hi * dh + c] = o[t * dh + c];
                    }
                }
            }
        }
        let expected = proj(&mha.out_proj, &joined);
        assert_close_f64(
            &f64s(&y),
            &expected,
            1e-5,
            1e-5,
            &format!("causal {causal}"),
        );
    }
}

#[test]
fn causal_attention_ignores_the_future() {
    let mut rng = Rng::new(13);
    let (b, l, e) = (2, 5, 8);
    let mha = MultiheadAttention::new(e, 2);
    let x = rng.tensor(&[b, l, e], -2.0, 2.0, 0.0);
    let mut changed = f64s(&x);
    // Change the key and value at position 3 of every batch element.
    for bi in 0..b {
        for c in 0..e {
            changed[(bi * l + 3) * e + c] += 1.5;
        }
    }
    let kv2 = Tensor::from_slice(&changed, &[b, l, e]);
    let rows = |y: &Tensor, range: std::ops::Range<usize>| -> Vec<f64> {
        let v = f64s(y);
        (0..b)
            .flat_map(|bi| v[(bi * l + range.start) * e..(bi * l + range.end) * e].to_vec())
            .collect()
    };
    let before = mha.forward(&x, &x, &x, true);
    let after = mha.forward(&x, &kv2, &kv2, true);
    assert_eq!(
        rows(&before, 0..3),
        rows(&after, 0..3),
        "the past saw the future"
    );
    assert_ne!(
        rows(&before, 3..5),
        rows(&after, 3..5),
        "the change had no effect"
    );
    // Without the mask the change reaches every position.
    let before = mha.forward(&x, &x, &x, false);
    let after = mha.forward(&x, &kv2, &kv2, false);
    assert_ne!(rows(&before, 0..1), rows(&after, 0..1));
}

#[test]
fn attention_gradients() {
    let mut rng = Rng::new(14);
    let q = rng.tensor(&[2, 3, 2], -1.5, 1.5, 0.0);
    let k = rng.tensor(&[2, 4, 2], -1.5, 1.5, 0.0);
    let v = rng.tensor(&[2, 4, 3], -1.5, 1.5, 0.0);
    for causal in [false, true] {
        grads(
            &[q.clone(), k.clone(), v.clone()],
            |t| scaled_dot_product_attention(&t[0], &t[1], &t[2], causal),
            &format!("sdpa causal {causal}"),
        );
    }
    let e = 4;
    let x = rng.tensor(&[2, 3, e], -1.5, 1.5, 0.0);
    let mut inputs = vec![x];
    for _ in 0..4 {
        inputs.push(rng.tensor(&[e, e], -0.7, 0.7, 0.0));
        inputs.push(rng.tensor(&[e], -0.5, 0.5, 0.0));
    }
    let lin = |t: &[Tensor], i: usize| Linear {
        weight: t[1 + 2 * i].clone(),
        bias: Some(t[2 + 2 * i].clone()),
    };
    grads(
        &inputs,
        |t| {
            MultiheadAttention {
                q_proj: lin(t, 0),
                k_proj: lin(t, 1),
                v_proj: lin(t, 2),
                out_proj: lin(t, 3),
                num_heads: 2,
            }
            .forward(&t[0], &t[0], &t[0], true)
        },
        "multihead attention (self, causal)",
    );
}

#[test]
fn layers_without_state_or_with_skipped_config_visit_only_tensors() {
    let mha = MultiheadAttention::new(4, 2);
    let names: Vec<String> = mha.state_dict().keys().cloned().collect();
    assert_eq!(
        names,
        [
            "k_proj.bias",
            "k_proj.weight",
            "out_proj.bias",
            "out_proj.weight",
            "q_proj.bias",
            "q_proj.weight",
            "v_proj.bias",
            "v_proj.weight"
        ]
    );
    assert!(Dropout::new(0.5).state_dict().is_empty());
    let ln = LayerNorm::new(&[2]);
    assert_eq!(
        ln.state_dict().keys().collect::<Vec<_>>(),
        ["bias", "weight"]
    );
}

// ---- fusion and thread safety -------------------------------------------------------------------

fn kernels_for(t: &Tensor) -> usize {
    let before = ferrograd::runtime::stats().kernels;
    t.realize().expect("realize");
    ferrograd::runtime::stats().kernels - before
}

#[test]
fn forward_passes_fuse() {
    let x = Tensor::randn(&[32, 48]);
    x.realize().unwrap();
    let fc = Linear::new(48, 16);
    assert_eq!(kernels_for(&fc.forward(&x).relu()), 1, "linear + relu");
    // Dropout costs what drawing its mask costs (the generator's own kernels: threefry is
    // split where shared subexpressions exceed the scheduler's recompute limit); the linear
    // layer and the scaling fuse into the mask's last kernel. Both are counted with the graph
    // optimizer on first sight: tiered mode would rewrite only the one with a reduction.
    let drop = Dropout::new(0.3);
    let (mask, dropped) = with_mode(Mode::Eager, || {
        (
            kernels_for(&Tensor::rand(&[32, 16]).ge(0.3)),
            kernels_for(&drop.forward(&fc.forward(&x)).relu()),
        )
    });
    assert_eq!(dropped, mask, "linear + dropout + relu");
    let images = Tensor::randn(&[4, 3, 5, 5]);
    images.realize().unwrap();
    let bn = ferrograd::nn::BatchNorm2d::new(3);
    bn.eval();
    assert_eq!(
        kernels_for(&bn.forward(&images).relu()),
        1,
        "batch norm (eval) + relu"
    );
    let ln = LayerNorm::new(&[48]);
    // Like softmax: the mean, the variance, the normalization.
    let n = kernels_for(&ln.forward(&x));
    assert!(n <= 3, "layer norm: {n} kernels");
}

#[test]
fn layers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Linear>();
    check::<Conv2d>();
    check::<ferrograd::nn::BatchNorm2d>();
    check::<LayerNorm>();
    check::<RMSNorm>();
    check::<Embedding>();
    check::<Dropout>();
    check::<MultiheadAttention>();
}

// ---- misuse -------------------------------------------------------------------------------------

#[test]
#[should_panic(
    expected = "Linear: input [2, 3] does not end in the 4 input features of weight [5, 4]"
)]
fn linear_wrong_features() {
    Linear::new(4, 5).forward(&Tensor::zeros(&[2, 3]));
}

#[test]
#[should_panic(expected = "Conv2d::new: groups 4 must divide in_channels 6 and out_channels 6")]
fn conv2d_bad_groups() {
    Conv2d::new(6, 6, (3, 3), Conv2dOptions::default().groups(4));
}

#[test]
#[should_panic(expected = "conv2d: weight [4, 2, 3, 3] expects 2 input channels per group")]
fn conv2d_wrong_channels() {
    Conv2d::new(2, 4, (3, 3), Conv2dOptions::default()).forward(&Tensor::zeros(&[1, 3, 5, 5]));
}

#[test]
#[should_panic(
    expected = "LayerNorm: input f32[2, 5] must be a float tensor ending in the normalized shape [4]"
)]
fn layer_norm_wrong_shape() {
    LayerNorm::new(&[4]).forward(&Tensor::zeros(&[2, 5]));
}

#[test]
#[should_panic(
    expected = "RMSNorm: input i32[2, 4] must be a float tensor ending in the normalized shape [4]"
)]
fn rms_norm_integer_input() {
    RMSNorm::new(4).forward(&Tensor::full(&[2, 4], 1i32));
}

#[test]
#[should_panic(
    expected = "Embedding: indices must be an integer tensor, got f32[3] (table [5, 2])"
)]
fn embedding_float_indices() {
    Embedding::new(5, 2).forward(&Tensor::zeros(&[3]));
}

#[test]
#[should_panic(expected = "Dropout::new: probability 1.5 is outside [0, 1]")]
fn dropout_bad_probability() {
    Dropout::new(1.5);
}

#[test]
#[should_panic(expected = "MultiheadAttention::new: num_heads 4 must divide embed_dim 6")]
fn attention_heads_must_divide_embed_dim() {
    MultiheadAttention::new(6, 4);
}

#[test]
#[should_panic(
    expected = "MultiheadAttention: query [2, 3, 4], key [2, 5, 4] and value [2, 4, 4] must be [batch, L, 4], [batch, S, 4] and [batch, S, 4]"
)]
fn attention_key_value_mismatch() {
    MultiheadAttention::new(4, 2).forward(
        &Tensor::zeros(&[2, 3, 4]),
        &Tensor::zeros(&[2, 5, 4]),
        &Tensor::zeros(&[2, 4, 4]),
        false,
    );
}

#[test]
#[should_panic(
    expected = "scaled_dot_product_attention: query [3, 4], key [5, 3] and value [5, 2] must be [..., L, d], [..., S, d] and [..., S, dv]"
)]
fn sdpa_feature_mismatch() {
    scaled_dot_product_attention(
        &Tensor::zeros(&[3, 4]),
        &Tensor::zeros(&[5, 3]),
        &Tensor::zeros(&[5, 2]),
        true,
    );
}
