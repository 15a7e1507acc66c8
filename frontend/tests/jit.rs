//! JIT capture and replay: replayed steps give bit-identical results to running the closure,
//! pick up learning-rate changes, compile and allocate nothing, and reject mismatched inputs.

mod common;

use common::deterministic_values;
use ferrograd::jit::Jit;
use ferrograd::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ferrograd::{All, Tensor};
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Kernel-cache and allocation counters are per process: tests that read them run alone.
static COUNTERS: Mutex<()> = Mutex::new(());

const BATCH: usize = 4;
const IN: usize = 8;
const HIDDEN: usize = 16;
const CLASSES: usize = 4;

/// A two-layer MLP: `relu(x @ w1 + b1) @ w2 + b2`.
struct Mlp {
    params: Vec<Tensor>,
}

impl Mlp {
    fn new() -> Mlp {
        let p = |shape: &[usize], seed| {
            let n = shape.iter().product();
            let v: Vec<f32> = deterministic_values(n, seed)
                .iter()
                .map(|x| x * 0.5)
                .collect();
            Tensor::from_slice(&v, shape).requires_grad(true)
        };
        Mlp {
            params: vec![
                p(&[IN, HIDDEN], 1),
                Tensor::zeros(&[HIDDEN]).requires_grad(true),
                p(&[HIDDEN, CLASSES], 2),
                Tensor::zeros(&[CLASSES]).requires_grad(true),
            ],
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let [w1, b1, w2, b2] = &self.params[..] else {
            unreachable!()
        };
        let h = (&x.matmul(w1) + b1).relu();
        &h.matmul(w2) + b2
    }
}

/// Cross-entropy of the logits against one-hot targets `y`, backward, optimizer step.
fn train_step(model: &Mlp, opt: &mut dyn Optimizer, x: &Tensor, y: &Tensor) -> Tensor {
    let logp = model.forward(x).log_softmax(-1);
    let loss = &(&logp * y).sum(All) * (-1.0 / BATCH as f64);
    loss.backward();
    opt.step_with(&[&loss]).unwrap();
    loss
}

/// Batch `i`: inputs and one-hot targets.
fn batch(i: usize) -> [Tensor; 2] {
    let x = Tensor::from_slice(
        &deterministic_values(BATCH * IN, 100 + i as u64),
        &[BATCH, IN],
    );
    let mut y = vec![0.0f32; BATCH * CLASSES];
    for b in 0..BATCH {
        y[b * CLASSES + (i + 3 * b) % CLASSES] = 1.0;
    }
    [x, Tensor::from_slice(&y, &[BATCH, CLASSES])]
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn adam_config() -> AdamConfig {
    AdamConfig {
        weight_decay: 0.01,
        ..AdamConfig::adamw(0.01)
    }
}

#[test]
fn replayed_training_matches_eager_bit_for_bit_and_compiles_and_allocates_nothing() {
    let _lock = COUNTERS.lock();
    ferrograd::device::init();
    let dev = ferrograd::runtime::device("cpu").unwrap();
    const STEPS: usize = 8;

    let eager = Mlp::new();
    let mut opt = Adam::new(eager.params.clone(), adam_config());
    let mut eager_losses = Vec::new();
    for i in 0..STEPS {
        let [x, y] = batch(i);
        eager_losses.push(bits(&train_step(&eager, &mut opt, &x, &y)));
    }

    let model = Rc::new(Mlp::new());
    let mut opt = Adam::new(model.params.clone(), adam_config());
    let mut state = model.params.clone();
    state.extend(opt.state_tensors());
    let calls = Rc::new(Cell::new(0));
    let (m, c) = (model.clone(), calls.clone());
    let mut jit = Jit::new(state, move |inputs: &[Tensor]| {
        c.set(c.get() + 1);
        vec![train_step(&m, &mut opt, &inputs[0], &inputs[1])]
    });
    let mut counters = None;
    for (i, want) in eager_losses.iter().enumerate() {
        if i == 4 {
            counters = Some((dev.compiled_kernels(), dev.fresh_allocations()));
        }
        let out = jit.call(&batch(i)).unwrap();
        assert_eq!(&bits(&out[0]), want, "loss of step {i}");
    }
    assert!(jit.is_captured());
    assert!(jit.captured_kernels().unwrap() > 5);
    assert_eq!(calls.get(), 2, "replays must not call the closure");
    assert_eq!(
        counters.unwrap(),
        (dev.compiled_kernels(), dev.fresh_allocations()),
        "replays compiled kernels or allocated device memory"
    );
    for (j, (a, b)) in model.params.iter().zip(&eager.params).enumerate() {
        assert_eq!(bits(a), bits(b), "parameter {j} after {STEPS} steps");
    }
}

#[test]
fn replayed_inference_matches_eager_on_new_inputs() {
    let model = Mlp::new();
    let mut jit = Jit::new(vec![], |x: &[Tensor]| {
        vec![model.forward(&x[0]).softmax(-1), x[0].sum(All)]
    });
    for i in 0..5 {
        let [x, _] = batch(i);
        let got = jit.call(std::slice::from_ref(&x)).unwrap();
        let probs = model.forward(&x).softmax(-1);
        assert_eq!(bits(&got[0]), bits(&probs), "call {i}");
        assert_eq!(bits(&got[1]), bits(&x.sum(All)), "call {i}");
    }
    assert!(jit.is_captured());
}

#[test]
fn learning_rate_changes_take_effect_under_replay() {
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        ..Default::default()
    };
    let lr_of = |i: usize| if i < 3 { 0.1 } else { 0.5 / i as f64 };

    let eager = Mlp::new();
    let mut opt = Sgd::new(eager.params.clone(), config);
    let mut want = Vec::new();
    for i in 0..7 {
        opt.set_learning_rate(lr_of(i));
        let [x, y] = batch(i);
        want.push(bits(&train_step(&eager, &mut opt, &x, &y)));
    }

    let model = Rc::new(Mlp::new());
    let opt = Rc::new(RefCell::new(Sgd::new(model.params.clone(), config)));
    let mut state = model.params.clone();
    state.extend(opt.borrow().state_tensors());
    let (m, o) = (model.clone(), opt.clone());
    let mut jit = Jit::new(state, move |inputs: &[Tensor]| {
        vec![train_step(&m, &mut *o.borrow_mut(), &inputs[0], &inputs[1])]
    });
    for (i, want) in want.iter().enumerate() {
        opt.borrow_mut().set_learning_rate(lr_of(i));
        let out = jit.call(&batch(i)).unwrap();
        assert_eq!(&bits(&out[0]), want, "loss of step {i}");
    }
    for (j, (a, b)) in model.params.iter().zip(&eager.params).enumerate() {
        assert_eq!(bits(a), bits(b), "parameter {j}");
    }

    // A learning rate of zero freezes the parameters under replay.
    opt.borrow_mut().set_learning_rate(0.0);
    let before: Vec<Vec<u32>> = model.params.iter().map(bits).collect();
    jit.call(&batch(9)).unwrap();
    let after: Vec<Vec<u32>> = model.params.iter().map(bits).collect();
    assert_eq!(before, after);
}

#[test]
fn reset_recaptures() {
    let scale = Tensor::from_slice(&[2.0f32], &[1]);
    let calls = Cell::new(0);
    let mut jit = Jit::new(vec![], |x: &[Tensor]| {
        calls.set(calls.get() + 1);
        vec![&x[0] * &scale]
    });
    let x = || Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]);
    for _ in 0..3 {
        jit.call(&[x()]).unwrap();
    }
    jit.reset();
    assert!(!jit.is_captured());
    for _ in 0..3 {
        let y = jit.call(&[x()]).unwrap();
        assert_eq!(y[0].to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
    }
    assert_eq!(calls.get(), 4, "two calls before each capture replays");
}

#[test]
#[should_panic(
    expected = "Jit: input 0 is f32[3, 8] on cpu, the captured step takes f32[4, 8] on cpu"
)]
fn a_replay_with_another_shape_panics() {
    let model = Mlp::new();
    let mut jit = Jit::new(vec![], |x: &[Tensor]| vec![model.forward(&x[0])]);
    for i in 0..2 {
        jit.call(&[batch(i)[0].clone()]).unwrap();
    }
    jit.call(&[Tensor::zeros(&[3, IN])]).unwrap();
}

#[test]
#[should_panic(expected = "Jit: called with 2 inputs, the captured step takes 1")]
fn a_replay_with_another_input_count_panics() {
    let mut jit = Jit::new(vec![], |x: &[Tensor]| vec![x[0].exp()]);
    for _ in 0..2 {
        jit.call(&[Tensor::ones(&[2])]).unwrap();
    }
    jit.call(&[Tensor::ones(&[2]), Tensor::ones(&[2])]).unwrap();
}
