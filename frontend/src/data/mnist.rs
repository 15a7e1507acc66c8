//! MNIST-layout datasets: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each optionally `.gz`) in one directory.
//! MNIST itself is vendored in the repository (`frontend/data/mnist`); Fashion-MNIST and other
//! datasets of the same layout load the same way.

use super::{read_idx, DataError, IdxArray};
use crate::Tensor;
use std::path::{Path, PathBuf};

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training images.
    Train,
    /// The test images.
    Test,
}

/// Images (unsigned bytes) and labels of one split.
#[derive(Clone, Debug)]
struct Part {
    images: Vec<u8>,
    labels: Vec<u8>,
}

/// An image-classification dataset in the MNIST layout, held in memory as bytes.
#[derive(Clone, Debug)]
pub struct Mnist {
    train: Part,
    test: Part,
    rows: usize,
    cols: usize,
    classes: usize,
}

/// Number of classes of MNIST-layout datasets (digits; Fashion-MNIST's ten kinds).
const CLASSES: usize = 10;

impl Mnist {
    /// The MNIST copy vendored with ferrograd (`frontend/data/mnist`).
    pub fn vendored() -> Result<Mnist, DataError> {
        Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist"))
    }

    /// Loads the four IDX files from `dir`, checking magic numbers, sizes, that images and
    /// labels agree in count, that both splits have the same image size, and that every label
    /// is below 10.
    pub fn load(dir: &Path) -> Result<Mnist, DataError> {
        let (train, tr_shape) = load_part(dir, "train")?;
        let (test, te_shape) = load_part(dir, "t10k")?;
        if tr_shape != te_shape {
            return Err(DataError::Inconsistent(format!(
                "{}: training images are {}x{}, test images {}x{}",
                dir.display(),
                tr_shape.0,
                tr_shape.1,
                te_shape.0,
                te_shape.1
            )));
        }
        Ok(Mnist {
            train,
            test,
            rows: tr_shape.0,
            cols: tr_shape.1,
            classes: CLASSES,
        })
    }

    fn part(&self, split: Split) -> &Part {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Number of examples in `split`.
    pub fn len(&self, split: Split) -> usize {
        self.part(split).labels.len()
    }

    /// True if `split` holds no example.
    pub fn is_empty(&self, split: Split) -> bool {
        self.len(split) == 0
    }

    /// Image height and width.
    pub fn image_size(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The label of example `i` of `split`.
    pub fn label(&self, split: Split, i: usize) -> u8 {
        self.part(split).labels[i]
    }

    /// The examples `indices` of `split`: images as f32 `[n, 1, rows, cols]` scaled to [0, 1],
    /// and labels as i32 `[n]`, on the default device. Panics on an index out of range.
    pub fn batch(&self, split: Split, indices: &[usize]) -> (Tensor, Tensor) {
        let part = self.part(split);
        let pixels = self.rows * self.cols;
        let mut images = Vec::with_capacity(indices.len() * pixels);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            assert!(
                i < part.labels.len(),
                "Mnist::batch: index {i} out of range for {} examples",
                part.labels.len()
            );
            let img = &part.images[i * pixels..(i + 1) * pixels];
            images.extend(img.iter().map(|&p| p as f32 / 255.0));
            labels.push(part.labels[i] as i32);
        }
        (
            Tensor::from_vec(images, &[indices.len(), 1, self.rows, self.cols]),
            Tensor::from_vec(labels, &[indices.len()]),
        )
    }
}

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    [name.to_string(), format!("{name}.gz")]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Missing {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
}

fn expect_rank(a: &IdxArray, rank: usize, path: &Path) -> Result<(), DataError> {
    if a.dims.len() != rank {
        return Err(DataError::BadHeader {
            what: path.display().to_string(),
            reason: format!(
                "{} dimensions {:?}; this file must have {rank}",
                a.dims.len(),
                a.dims
            ),
        });
    }
    Ok(())
}

/// Loads `{prefix}-images-idx3-ubyte` and `{prefix}-labels-idx1-ubyte`.
fn load_part(dir: &Path, prefix: &str) -> Result<(Part, (usize, usize)), DataError> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    expect_rank(&images, 3, &images_path)?;
    expect_rank(&labels, 1, &labels_path)?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::Inconsistent(format!(
            "{} holds {} images but {} holds {} labels",
            images_path.display(),
            images.dims[0],
            labels_path.display(),
            labels.dims[0]
        )));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        return Err(DataError::Inconsistent(format!(
            "{}: label {i} is {l}; labels must be below {CLASSES}",
            labels_path.display()
        )));
    }
    let shape = (images.dims[1], images.dims[2]);
    Ok((
        Part {
            images: images.data,
            labels: labels.data,
        },
        shape,
    ))
}
