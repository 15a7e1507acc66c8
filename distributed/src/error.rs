//! Typed errors of the distributed runtime: everything here comes from outside (peers, files,
//! the network), so nothing panics.

use std::path::PathBuf;
use std::time::Duration;

/// A distributed-runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a socket failed.
    #[error("i/o with {peer}: {source}")]
    Io {
        /// The peer's address.
        peer: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake or configuration failed (unknown CA, missing client certificate, ...).
    #[error("TLS with {peer}: {reason}")]
    Tls {
        /// The peer's address (or `config` for local configuration).
        peer: String,
        /// What rustls said.
        reason: String,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch with {peer}: this build speaks version {ours}, the peer speaks version {theirs}; run the same ferrograd release on both sides")]
    VersionMismatch {
        /// The peer's address.
        peer: String,
        /// Our [`crate::protocol::PROTOCOL_VERSION`].
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// A frame announced more bytes than the limit.
    #[error("frame from {peer} announces {len} bytes, above the limit of {limit}")]
    FrameTooLarge {
        /// The peer's address.
        peer: String,
        /// Announced length.
        len: u64,
        /// The limit.
        limit: u32,
    },
    /// A frame could not be decoded or was not expected here.
    #[error("malformed frame from {peer}: {reason}")]
    Malformed {
        /// The peer's address.
        peer: String,
        /// What is wrong.
        reason: String,
    },
    /// A request or handshake did not finish in time.
    #[error("{what} with {peer} missed its deadline of {deadline:?}")]
    Deadline {
        /// The peer's address.
        peer: String,
        /// What timed out.
        what: &'static str,
        /// The deadline.
        deadline: Duration,
    },
    /// The worker stopped answering (connection closed or heartbeats missing).
    #[error("worker {peer} lost: {reason}")]
    WorkerLost {
        /// The worker's address.
        peer: String,
        /// How it was detected.
        reason: String,
    },
    /// The worker refused a session or a command.
    #[error("worker {peer} refused: {reason}")]
    Refused {
        /// The worker's address.
        peer: String,
        /// The worker's reason.
        reason: String,
    },
    /// A certificate or key could not be made or used.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A join token is malformed or expired.
    #[error("join token: {0}")]
    Token(String),
    /// A file of the cluster or worker state could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An address or remote device name is unusable.
    #[error("invalid address `{addr}`: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Plaintext was asked for on an address that is not loopback.
    #[error("refusing plaintext on {addr}: without TLS a worker only listens (and a client only connects) on a loopback address")]
    InsecureNotLoopback {
        /// The address.
        addr: String,
    },
    /// Multicast DNS discovery failed (no usable network interface, ...).
    #[error("discovery: {0}")]
    Discovery(String),
    /// The local runtime failed (opening the device, ...).
    #[error(transparent)]
    Runtime(#[from] ferrograd_runtime::Error),
}

/// Result with the distributed [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with `peer`.
    pub(crate) fn io(peer: &str, source: std::io::Error) -> Self {
        Error::Io {
            peer: peer.to_string(),
            source,
        }
    }

    /// A file error.
    pub(crate) fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
