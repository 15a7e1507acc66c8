//! `#[derive(Module)]` on real structs: names, kinds and order of the visited state, nesting,
//! containers, generics, `#[module(skip)]`, `#[module(buffer)]` and train/eval forwarding.
//! (Compile errors for enums, tuple structs, unions and bad attributes are unit tests of the
//! macro crate.)

use ferrograd::nn::{BatchNorm2d, Dropout, Linear, Module, StateKind};
use ferrograd::Tensor;

/// Every visited tensor as (name, kind, shape), in visiting order.
fn entries(m: &dyn Module) -> Vec<(String, StateKind, Vec<usize>)> {
    let mut out = Vec::new();
    m.visit_state(&mut |name, t, kind| out.push((name.to_string(), kind, t.shape())));
    out
}

fn names_and_kinds(m: &dyn Module) -> Vec<(String, StateKind)> {
    entries(m).into_iter().map(|(n, k, _)| (n, k)).collect()
}

use StateKind::{Buffer, Parameter};

fn owned(list: &[(&str, StateKind)]) -> Vec<(String, StateKind)> {
    list.iter().map(|&(n, k)| (n.to_string(), k)).collect()
}

#[derive(Module)]
struct Block {
    linear: Linear,
    #[module(buffer)]
    scale: Tensor,
    #[module(skip)]
    #[allow(dead_code)]
    depth: usize,
}

impl Block {
    fn new(i: usize, o: usize) -> Block {
        Block {
            linear: Linear::new(i, o),
            scale: Tensor::ones(&[o]),
            depth: 7,
        }
    }
}

#[derive(Module)]
struct Net {
    stem: Tensor,
    blocks: Vec<Block>,
    head: Option<Linear>,
    missing: Option<Linear>,
    boxed: Box<Block>,
    #[module(skip)]
    #[allow(dead_code)]
    activation: fn(&Tensor) -> Tensor,
}

fn net() -> Net {
    Net {
        stem: Tensor::zeros(&[2, 3]),
        blocks: vec![Block::new(3, 4), Block::new(4, 5)],
        head: Some(Linear::no_bias(5, 2)),
        missing: None,
        boxed: Box::new(Block::new(2, 2)),
        activation: Tensor::relu,
    }
}

#[test]
fn nested_fields_are_visited_in_declaration_order_with_dotted_names() {
    let net = net();
    assert_eq!(
        entries(&net),
        vec![
            ("stem".to_string(), Parameter, vec![2, 3]),
            ("blocks.0.linear.weight".to_string(), Parameter, vec![4, 3]),
            ("blocks.0.linear.bias".to_string(), Parameter, vec![4]),
            ("blocks.0.scale".to_string(), Buffer, vec![4]),
            ("blocks.1.linear.weight".to_string(), Parameter, vec![5, 4]),
            ("blocks.1.linear.bias".to_string(), Parameter, vec![5]),
            ("blocks.1.scale".to_string(), Buffer, vec![5]),
            ("head.weight".to_string(), Parameter, vec![2, 5]),
            ("boxed.linear.weight".to_string(), Parameter, vec![2, 2]),
            ("boxed.linear.bias".to_string(), Parameter, vec![2]),
            ("boxed.scale".to_string(), Buffer, vec![2]),
        ]
    );
}

#[test]
fn parameters_and_buffers_follow_the_kinds() {
    let net = net();
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "stem",
            "blocks.0.linear.weight",
            "blocks.0.linear.bias",
            "blocks.1.linear.weight",
            "blocks.1.linear.bias",
            "head.weight",
            "boxed.linear.weight",
            "boxed.linear.bias"
        ]
    );
    assert_eq!(net.parameters().len(), 8);
    let buffer_shapes: Vec<Vec<usize>> = net.buffers().iter().map(Tensor::shape).collect();
    assert_eq!(buffer_shapes, [vec![4], vec![5], vec![2]]);
    // The visited tensors are the fields themselves, not copies.
    let head = net.head.as_ref().unwrap();
    let visited = &net.named_parameters()[5].1;
    visited.assign(&Tensor::full(&[2, 5], 3.0f32));
    assert_eq!(head.weight.to_vec::<f32>().unwrap(), vec![3.0; 10]);
}

#[derive(Module)]
struct Wrapper<M> {
    inner: M,
    more: Vec<M>,
    #[module(skip)]
    #[allow(dead_code)]
    tag: &'static str,
}

#[test]
fn generic_structs_visit_their_parameters() {
    let of_tensors = Wrapper {
        inner: Tensor::zeros(&[1]),
        more: vec![Tensor::zeros(&[2]), Tensor::zeros(&[3])],
        tag: "t",
    };
    assert_eq!(
        names_and_kinds(&of_tensors),
        owned(&[
            ("inner", Parameter),
            ("more.0", Parameter),
            ("more.1", Parameter)
        ])
    );
    let of_layers = Wrapper {
        inner: Linear::no_bias(2, 2),
        more: vec![],
        tag: "l",
    };
    assert_eq!(
        names_and_kinds(&of_layers),
        owned(&[("inner.weight", Parameter)])
    );
}

#[derive(Module)]
struct Stats {
    #[module(buffer)]
    history: Vec<Tensor>,
    #[module(buffer)]
    frozen: Linear,
    #[module(buffer)]
    maybe: Option<Tensor>,
    r#type: Tensor,
}

#[test]
fn buffer_fields_make_every_tensor_inside_a_buffer() {
    let s = Stats {
        history: vec![Tensor::zeros(&[1]), Tensor::zeros(&[1])],
        frozen: Linear::new(1, 1),
        maybe: Some(Tensor::zeros(&[1])),
        r#type: Tensor::zeros(&[1]),
    };
    assert_eq!(
        names_and_kinds(&s),
        owned(&[
            ("history.0", Buffer),
            ("history.1", Buffer),
            ("frozen.weight", Buffer),
            ("frozen.bias", Buffer),
            ("maybe", Buffer),
            ("type", Parameter),
        ])
    );
    assert!(s.parameters().len() == 1 && s.buffers().len() == 5);
}

#[derive(Module)]
struct Stateless;

#[test]
fn unit_structs_have_no_state() {
    assert!(entries(&Stateless).is_empty());
    Stateless.eval();
}

#[derive(Module)]
struct Modes {
    dropout: Dropout,
    norms: Vec<BatchNorm2d>,
    nested: Option<Box<Modes>>,
    #[module(skip)]
    ignored: Dropout,
}

#[test]
fn train_and_eval_reach_every_field_except_skipped_ones() {
    let m = Modes {
        dropout: Dropout::new(0.5),
        norms: vec![BatchNorm2d::new(2), BatchNorm2d::new(3)],
        nested: Some(Box::new(Modes {
            dropout: Dropout::new(0.1),
            norms: vec![BatchNorm2d::new(1)],
            nested: None,
            ignored: Dropout::new(0.2),
        })),
        ignored: Dropout::new(0.3),
    };
    let modes = |m: &Modes| {
        let inner = m.nested.as_ref().unwrap();
        vec![
            m.dropout.is_training(),
            m.norms[0].is_training(),
            m.norms[1].is_training(),
            inner.dropout.is_training(),
            inner.norms[0].is_training(),
            m.ignored.is_training(),
            inner.ignored.is_training(),
        ]
    };
    assert_eq!(modes(&m), vec![true; 7]);
    m.eval();
    assert_eq!(
        modes(&m),
        vec![false, false, false, false, false, true, true]
    );
    m.train();
    assert_eq!(modes(&m), vec![true; 7]);
    assert_eq!(
        names_and_kinds(&m)
            .into_iter()
            .filter(|(_, k)| *k == Buffer)
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [
            "norms.0.running_mean",
            "norms.0.running_var",
            "norms.1.running_mean",
            "norms.1.running_var",
            "nested.norms.0.running_mean",
            "nested.norms.0.running_var"
        ]
    );
}
