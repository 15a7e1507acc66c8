//! State dicts of a derived model: names and kinds, a safetensors round trip giving
//! bit-identical predictions, typed errors for bad files and for state dicts that do not fit.

use ferrograd::nn::{
    take_pending_updates, BatchNorm2d, Conv2d, Dropout, Linear, Module, StateKind,
};
use ferrograd::state::{load_safetensors, save_safetensors, StateDict, StateError};
use ferrograd::{Conv2dOptions, DType, Tensor};
use std::path::Path;

#[derive(Module)]
struct Net {
    conv1: Conv2d,
    bn: BatchNorm2d,
    drop: Dropout,
    fc: Linear,
    #[module(skip)]
    classes: usize,
}

impl Net {
    fn new() -> Net {
        Net {
            conv1: Conv2d::new(1, 3, (3, 3), Conv2dOptions::default()),
            bn: BatchNorm2d::new(3),
            drop: Dropout::new(0.2),
            fc: Linear::new(27, 4),
            classes: 4,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.bn.forward(&self.conv1.forward(x)).relu();
        let y = self.fc.forward(&self.drop.forward(&h.flatten(1, -1)));
        assert_eq!(y.shape()[1], self.classes);
        y
    }
}

fn input(seed: f32) -> Tensor {
    let v: Vec<f32> = (0..50)
        .map(|i| (i as f32 * 0.37 + seed).sin() * 2.0)
        .collect();
    Tensor::from_slice(&v, &[2, 1, 5, 5])
}

/// A model whose parameters and running statistics moved away from their initial values.
fn trained() -> Net {
    let net = Net::new();
    for step in 0..2 {
        net.forward(&input(step as f32));
        Tensor::realize_all(&take_pending_updates()).unwrap();
    }
    net.fc.weight.assign(&net.fc.weight.mul(1.5));
    net.eval();
    net
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn state_dict_names_and_kinds() {
    let net = Net::new();
    let mut kinds = Vec::new();
    net.visit_state(&mut |name, _, kind| kinds.push((name.to_string(), kind)));
    let p = StateKind::Parameter;
    let b = StateKind::Buffer;
    let expected: Vec<(String, StateKind)> = [
        ("conv1.weight", p),
        ("conv1.bias", p),
        ("bn.weight", p),
        ("bn.bias", p),
        ("bn.running_mean", b),
        ("bn.running_var", b),
        ("fc.weight", p),
        ("fc.bias", p),
    ]
    .iter()
    .map(|&(n, k)| (n.to_string(), k))
    .collect();
    assert_eq!(kinds, expected);
    let dict = net.state_dict();
    assert_eq!(
        dict.keys().collect::<Vec<_>>(),
        [
            "bn.bias",
            "bn.running_mean",
            "bn.running_var",
            "bn.weight",
            "conv1.bias",
            "conv1.weight",
            "fc.bias",
            "fc.weight"
        ]
    );
    assert_eq!(dict["conv1.weight"].shape(), vec![3, 1, 3, 3]);
    assert_eq!(net.parameters().len(), 6);
    assert_eq!(net.buffers().len(), 2);
}

#[test]
fn save_and_load_give_bit_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let a = trained();
    let x = input(7.0);
    let expected = bits(&a.forward(&x));
    save_safetensors(&a.state_dict(), &path).unwrap();

    let b = Net::new();
    b.eval();
    assert_ne!(
        bits(&b.forward(&x)),
        expected,
        "a fresh model predicts the same"
    );
    let loaded = load_safetensors(&path).unwrap();
    assert_eq!(loaded.len(), 8);
    b.load_state_dict(&loaded).unwrap();
    assert_eq!(bits(&b.forward(&x)), expected);
    assert_eq!(bits(&b.bn.running_var), bits(&a.bn.running_var));
    assert!(
        b.fc.weight.is_requires_grad() && !b.bn.running_mean.is_requires_grad(),
        "loading keeps parameters trainable and buffers not"
    );
}

fn format_error(path: &Path) -> String {
    match load_safetensors(path) {
        Err(StateError::Format { path: p, reason }) => {
            assert_eq!(p, path);
            reason
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn bad_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    save_safetensors(&trained().state_dict(), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    format_error(&truncated);

    let header_only = dir.path().join("header.safetensors");
    std::fs::write(&header_only, &bytes[..5]).unwrap();
    format_error(&header_only);

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file, just some text").unwrap();
    format_error(&garbage);

    let missing = dir.path().join("missing.safetensors");
    assert!(matches!(
        load_safetensors(&missing),
        Err(StateError::Io { path, .. }) if path == missing
    ));

    // A valid file with a dtype ferrograd lacks.
    let header = br#"{"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}  "#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0, 0]);
    let fp8 = dir.path().join("fp8.safetensors");
    std::fs::write(&fp8, file).unwrap();
    match load_safetensors(&fp8) {
        Err(e @ StateError::UnsupportedDType { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("`x`") && msg.contains("F8_E4M3"), "{msg}");
        }
        other => panic!("expected an unsupported dtype error, got {other:?}"),
    }
}

/// Loads `dict` into a fresh model, expecting an error; checks that nothing changed.
fn load_error(dict: &StateDict) -> StateError {
    let net = Net::new();
    let before: Vec<Vec<u32>> = net.state_dict().values().map(bits).collect();
    let err = net
        .load_state_dict(dict)
        .expect_err("the state dict does not fit");
    let after: Vec<Vec<u32>> = net.state_dict().values().map(bits).collect();
    assert_eq!(before, after, "a failed load changed the model");
    err
}

#[test]
fn mismatched_state_dicts_name_the_key() {
    let good = trained().state_dict();

    let mut dict = good.clone();
    dict.remove("fc.bias");
    let e = load_error(&dict);
    assert!(matches!(&e, StateError::MissingKey(k) if k == "fc.bias"));
    assert_eq!(e.to_string(), "state dict has no entry `fc.bias`");

    let mut dict = good.clone();
    dict.insert("fc.weight".into(), Tensor::zeros(&[4, 26]));
    let e = load_error(&dict);
    assert!(matches!(&e, StateError::ShapeMismatch { key, .. } if key == "fc.weight"));
    assert_eq!(
        e.to_string(),
        "state dict entry `fc.weight` has shape [4, 26]; the model expects [4, 27]"
    );

    let mut dict = good.clone();
    dict.insert(
        "bn.running_var".into(),
        Tensor::zeros(&[3]).cast(DType::F64),
    );
    let e = load_error(&dict);
    assert_eq!(
        e.to_string(),
        "state dict entry `bn.running_var` has dtype f64; the model expects f32"
    );

    let mut dict = good.clone();
    dict.insert("fc.scale".into(), Tensor::zeros(&[1]));
    let e = load_error(&dict);
    assert!(matches!(&e, StateError::UnexpectedKey(k) if k == "fc.scale"));
    assert_eq!(
        e.to_string(),
        "state dict entry `fc.scale` matches nothing in the model"
    );
}
