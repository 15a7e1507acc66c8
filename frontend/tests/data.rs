//! IDX / MNIST loading: the vendored dataset and every kind of bad file.

use ferrograd::data::{DataError, Mnist, Split};
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::Path;

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tiny dataset: `n` train and `m` test images of 2x3.
fn write_dataset(dir: &Path, n: u32, m: u32, compress: bool) {
    let files = [
        (
            "train-images-idx3-ubyte",
            idx(&[n, 2, 3], &vec![7; 6 * n as usize]),
        ),
        ("train-labels-idx1-ubyte", idx(&[n], &vec![3; n as usize])),
        (
            "t10k-images-idx3-ubyte",
            idx(&[m, 2, 3], &vec![255; 6 * m as usize]),
        ),
        ("t10k-labels-idx1-ubyte", idx(&[m], &vec![9; m as usize])),
    ];
    for (name, bytes) in files {
        if compress {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn the_vendored_mnist_has_the_known_sizes_and_first_labels() {
    let m = Mnist::vendored().unwrap();
    assert_eq!(m.len(Split::Train), 60_000);
    assert_eq!(m.len(Split::Test), 10_000);
    assert_eq!(m.image_size(), (28, 28));
    // The first training digit of MNIST is a 5, the first test digit a 7.
    assert_eq!(m.label(Split::Train, 0), 5);
    assert_eq!(m.label(Split::Test, 0), 7);
    let (x, y) = m.batch(Split::Test, &[0, 1]);
    assert_eq!(x.shape(), vec![2, 1, 28, 28]);
    assert_eq!(y.to_vec::<i32>().unwrap(), vec![7, 2]);
    let px = x.to_vec::<f32>().unwrap();
    assert!(px.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(px.contains(&1.0) && px.contains(&0.0));
}

#[test]
fn plain_and_gzipped_files_load_alike() {
    for compress in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), 4, 2, compress);
        let m = Mnist::load(dir.path()).unwrap();
        assert_eq!((m.len(Split::Train), m.len(Split::Test)), (4, 2));
        assert_eq!(m.image_size(), (2, 3));
        let (x, y) = m.batch(Split::Train, &[3, 0]);
        assert_eq!(x.to_vec::<f32>().unwrap(), vec![7.0 / 255.0; 12]);
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![3, 3]);
    }
}

fn load_err(setup: impl Fn(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 4, 2, false);
    setup(dir.path());
    let err: DataError = Mnist::load(dir.path()).unwrap_err();
    err.to_string()
}

#[test]
fn bad_files_are_typed_errors_naming_the_problem() {
    let e = load_err(|d| std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap());
    assert!(e.contains("no `t10k-labels-idx1-ubyte`"), "{e}");
    let e = load_err(|d| {
        let p = d.join("train-images-idx3-ubyte");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 5]).unwrap();
    });
    assert!(
        e.contains("promises 24 bytes of data, the file holds 19"),
        "{e}"
    );
    let e = load_err(|d| {
        std::fs::write(d.join("train-labels-idx1-ubyte"), [0x50, 0x4b, 3, 4, 0, 0]).unwrap()
    });
    assert!(e.contains("magic"), "{e}");
    let e = load_err(|d| {
        std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[3], &[1, 2, 3])).unwrap()
    });
    assert!(e.contains("4 images") && e.contains("3 labels"), "{e}");
    let e = load_err(|d| {
        std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[4], &[1, 2, 10, 3])).unwrap()
    });
    assert!(e.contains("label 2 is 10"), "{e}");
    let e = load_err(|d| {
        std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(&[2, 3, 2], &[0; 12])).unwrap()
    });
    assert!(e.contains("2x3") && e.contains("3x2"), "{e}");
    let e = load_err(|d| {
        std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(&[2, 6], &[0; 12])).unwrap()
    });
    assert!(e.contains("must have 3"), "{e}");
    let e = load_err(|d| {
        // A gzip stream cut in the middle.
        let full = gz(&idx(&[2], &[1, 2]));
        std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
        std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), &full[..full.len() / 2]).unwrap();
    });
    assert!(e.contains("t10k-labels-idx1-ubyte.gz"), "{e}");
}
