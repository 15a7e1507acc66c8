//! Optimizers against hand-computed reference steps (torch's update rules) and schedules.
//! (That later steps compile nothing new is checked in `optim_recompile.rs`.)

use ferrograd::optim::{
    Adam, AdamConfig, CosineSchedule, LrSchedule, Optimizer, Sgd, SgdConfig, WarmupSchedule,
};
use ferrograd::{All, Tensor};

const P0: [f64; 4] = [0.5, -1.5, 2.0, 0.0];
/// Gradients fed at steps 1, 2, 3.
const GRADS: [[f64; 4]; 3] = [
    [0.1, -0.2, 0.3, 0.0],
    [-0.4, 0.5, 0.25, 1.0],
    [0.05, 0.0, -0.3, -2.0],
];

fn param() -> Tensor {
    Tensor::from_slice(&P0, &[4]).requires_grad(true)
}

/// Runs three steps feeding `GRADS` and returns the parameter after each.
fn run(opt: &mut dyn Optimizer, p: &Tensor) -> Vec<Vec<f64>> {
    GRADS
        .iter()
        .map(|g| {
            p.set_grad(Some(Tensor::from_slice(g, &[4])));
            opt.step().unwrap();
            assert!(p.grad().is_none(), "step clears the gradients");
            p.to_vec::<f64>().unwrap()
        })
        .collect()
}

fn assert_close(got: &[Vec<f64>], want: &[Vec<f64>], what: &str) {
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{what}: step {} element {i}: got {a}, want {b}",
                step + 1
            );
        }
    }
}

/// torch.optim.SGD's rule, written out.
fn sgd_reference(c: SgdConfig) -> Vec<Vec<f64>> {
    let mut p = P0.to_vec();
    let mut buf: Option<Vec<f64>> = None;
    let mut out = Vec::new();
    for g in GRADS {
        let mut d: Vec<f64> = (0..4).map(|i| g[i] + c.weight_decay * p[i]).collect();
        if c.momentum != 0.0 {
            let b: Vec<f64> = match &buf {
                None => d.clone(),
                Some(b) => (0..4)
                    .map(|i| c.momentum * b[i] + (1.0 - c.dampening) * d[i])
                    .collect(),
            };
            d = if c.nesterov {
                (0..4).map(|i| d[i] + c.momentum * b[i]).collect()
            } else {
                b.clone()
            };
            buf = Some(b);
        }
        for i in 0..4 {
            p[i] -= c.lr * d[i];
        }
        out.push(p.clone());
    }
    out
}

/// torch.optim.Adam / AdamW's rule, written out.
fn adam_reference(c: AdamConfig) -> Vec<Vec<f64>> {
    let mut p = P0.to_vec();
    let (mut m, mut v) = (vec![0.0; 4], vec![0.0; 4]);
    let mut out = Vec::new();
    for (step, g) in GRADS.iter().enumerate() {
        let t = step as i32 + 1;
        for i in 0..4 {
            let mut gi = g[i];
            if c.weight_decay != 0.0 {
                if c.decoupled {
                    p[i] *= 1.0 - c.lr * c.weight_decay;
                } else {
                    gi += c.weight_decay * p[i];
                }
            }
            m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
            v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
            let mhat = m[i] / (1.0 - c.beta1.powi(t));
            let vhat = v[i] / (1.0 - c.beta2.powi(t));
            p[i] -= c.lr * mhat / (vhat.sqrt() + c.eps);
        }
        out.push(p.clone());
    }
    out
}

#[test]
fn sgd_matches_the_reference_rule() {
    for c in [
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        },
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.3,
            weight_decay: 0.01,
            ..Default::default()
        },
        SgdConfig {
            lr: 0.1,
            momentum: 0.8,
            nesterov: true,
            weight_decay: 0.1,
            ..Default::default()
        },
    ] {
        let p = param();
        let mut opt = Sgd::new(vec![p.clone()], c);
        assert_close(&run(&mut opt, &p), &sgd_reference(c), &format!("{c:?}"));
    }
}

#[test]
fn adam_and_adamw_match_the_reference_rule() {
    for c in [
        AdamConfig::adam(0.01),
        AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::adam(0.02)
        },
        AdamConfig::adamw(0.01),
        AdamConfig {
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-3,
            ..AdamConfig::adamw(0.1)
        },
    ] {
        let p = param();
        let mut opt = Adam::new(vec![p.clone()], c);
        assert_close(&run(&mut opt, &p), &adam_reference(c), &format!("{c:?}"));
    }
}

#[test]
fn a_parameter_without_gradient_is_left_alone() {
    let a = param();
    let b = param();
    let mut opt = Adam::new(vec![a.clone(), b.clone()], AdamConfig::adam(0.1));
    a.set_grad(Some(Tensor::from_slice(&GRADS[0], &[4])));
    opt.step().unwrap();
    assert_eq!(b.to_vec::<f64>().unwrap(), P0.to_vec());
    assert_ne!(a.to_vec::<f64>().unwrap(), P0.to_vec());
}

#[test]
fn training_with_backward_reduces_a_quadratic_loss() {
    // Minimize |w - target|^2 with gradients from backward; f32 parameters.
    let target = Tensor::from_slice(&[1.0f32, -2.0, 3.0], &[3]);
    let w = Tensor::zeros(&[3]).requires_grad(true);
    let mut opt = Adam::new(vec![w.clone()], AdamConfig::adam(0.1));
    let mut last = f32::MAX;
    for _ in 0..200 {
        let loss = (&w - &target).square().sum(All);
        loss.backward();
        opt.step_with(&[&loss]).unwrap();
        last = loss.item::<f32>().unwrap();
    }
    assert!(last < 1e-3, "loss after 200 Adam steps: {last}");
}

#[test]
fn schedules_follow_their_formulas() {
    let cos = CosineSchedule {
        base: 1.0,
        min: 0.1,
        total: 100,
    };
    assert_eq!(cos.lr(0), 1.0);
    assert!((cos.lr(50) - 0.55).abs() < 1e-12);
    assert_eq!(cos.lr(100), 0.1);
    assert_eq!(cos.lr(1000), 0.1);
    let warm = WarmupSchedule {
        warmup: 10,
        inner: cos,
    };
    assert!((warm.lr(0) - 0.1).abs() < 1e-12);
    assert!((warm.lr(4) - 0.5).abs() < 1e-12);
    assert_eq!(warm.lr(10), 1.0);
    assert!((warm.lr(60) - 0.55).abs() < 1e-12);
}

#[test]
#[should_panic(
    expected = "Adam::new: parameter 0 (f32 tensor of shape [2]) must be a float tensor with requires_grad(true)"
)]
fn parameters_must_require_grad() {
    Adam::new(vec![Tensor::zeros(&[2])], AdamConfig::adam(0.1));
}

#[test]
#[should_panic(expected = "Nesterov momentum needs momentum > 0")]
fn nesterov_needs_momentum() {
    Sgd::new(
        vec![param()],
        SgdConfig {
            nesterov: true,
            ..Default::default()
        },
    );
}
