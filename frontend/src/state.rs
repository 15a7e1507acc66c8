//! State dicts (named tensors) saved and loaded as safetensors files. Loading memory-maps the
//! file; every problem with a file is a typed [`StateError`], never a panic.

use crate::Tensor;
use ferrograd_ir::DType;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Named tensors, sorted by name (a model's parameters and buffers).
pub type StateDict = BTreeMap<String, Tensor>;

/// Why a state dict could not be saved, loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be opened, mapped or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (bad header, truncated data, ...).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser found wrong.
        reason: String,
    },
    /// A tensor in the file has a dtype ferrograd does not have.
    #[error("{path}: tensor `{key}` has dtype {dtype}, which ferrograd does not support")]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        key: String,
        /// Its dtype as the file names it.
        dtype: String,
    },
    /// The model has a tensor the state dict lacks.
    #[error("state dict has no entry `{0}`")]
    MissingKey(String),
    /// The state dict has a tensor the model lacks.
    #[error("state dict entry `{0}` matches nothing in the model")]
    UnexpectedKey(String),
    /// Same name, different shape.
    #[error("state dict entry `{key}` has shape {found:?}; the model expects {expected:?}")]
    ShapeMismatch {
        /// The name.
        key: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The state dict's shape.
        found: Vec<usize>,
    },
    /// Same name, different dtype.
    #[error("state dict entry `{key}` has dtype {found}; the model expects {expected}")]
    DTypeMismatch {
        /// The name.
        key: String,
        /// The model's dtype.
        expected: DType,
        /// The state dict's dtype.
        found: DType,
    },
    /// Reading a tensor's value from its device failed.
    #[error(transparent)]
    Device(#[from] crate::Error),
}

fn to_safetensors(d: DType) -> Dtype {
    match d {
        DType::Bool => Dtype::BOOL,
        DType::I8 => Dtype::I8,
        DType::U8 => Dtype::U8,
        DType::I32 => Dtype::I32,
        DType::U32 => Dtype::U32,
        DType::I64 => Dtype::I64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

fn from_safetensors(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::BOOL => DType::Bool,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::I32 => DType::I32,
        Dtype::U32 => DType::U32,
        Dtype::I64 => DType::I64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        _ => return None,
    })
}

/// One tensor's bytes, as the safetensors writer wants them.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes `dict` to `path` as safetensors (values are read from their devices).
pub fn save_safetensors(dict: &StateDict, path: &Path) -> Result<(), StateError> {
    let tensors: Vec<Tensor> = dict.values().cloned().collect();
    Tensor::realize_all(&tensors)?;
    let mut host = Vec::with_capacity(dict.len());
    for (name, t) in dict {
        host.push((
            name.clone(),
            HostTensor {
                dtype: to_safetensors(t.dtype()),
                shape: t.shape(),
                bytes: t.to_bytes()?,
            },
        ));
    }
    safetensors::serialize_to_file(host.iter().map(|(n, h)| (n, h)), None, path).map_err(
        |e| match e {
            safetensors::SafeTensorError::IoError(source) => StateError::Io {
                path: path.to_path_buf(),
                source,
            },
            other => StateError::Format {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        },
    )
}

/// Reads a safetensors file (memory-mapped) into a state dict on the default device.
pub fn load_safetensors(path: &Path) -> Result<StateDict, StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and lives only in this function; the bytes are copied into
    // device buffers before it is dropped. A concurrent writer truncating the file could fault
    // the process, as with any memory-mapped read; state files are not written while loaded.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let parsed = SafeTensors::deserialize(&map).map_err(|e| StateError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut dict = StateDict::new();
    for (name, view) in parsed.tensors() {
        let dtype = from_safetensors(view.dtype()).ok_or_else(|| StateError::UnsupportedDType {
            path: path.to_path_buf(),
            key: name.clone(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        let t = Tensor::try_from_bytes_on(
            view.data(),
            dtype,
            view.shape(),
            &crate::device::default_device_name(),
        )?;
        dict.insert(name, t);
    }
    Ok(dict)
}
