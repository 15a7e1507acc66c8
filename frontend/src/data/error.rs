//! Errors of dataset loading: everything here comes from files, so it is a typed error.

use std::path::PathBuf;

/// Why a dataset file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read (or gunzipped).
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// None of the accepted names of a required file exists in the directory.
    #[error("{dir}: no `{name}` (nor `{name}.gz`)")]
    Missing {
        /// The dataset directory.
        dir: PathBuf,
        /// The file name looked for.
        name: String,
    },
    /// The file is not an IDX file of the expected kind.
    #[error("{what}: bad IDX header: {reason}")]
    BadHeader {
        /// Which file.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is shorter or longer than its header says.
    #[error("{what}: the header promises {expected} bytes of data, the file holds {found}")]
    WrongSize {
        /// Which file.
        what: String,
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The files of a dataset disagree with each other or with the expected layout.
    #[error("{0}")]
    Inconsistent(String),
}
