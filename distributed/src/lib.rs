//! ferrograd-distributed: the worker daemon, remote devices and the cluster's security.
//!
//! - [`protocol`] + [`frame`]: the versioned wire protocol (length-delimited postcard frames).
//! - [`transport`]: mutual TLS (rustls) or plaintext on loopback.
//! - [`cluster`]: the cluster CA, join tokens, identities.
//! - [`worker`]: `ferrograd worker`, serving the local devices of the runtime registry.
//! - [`remote`]: `remote:HOST:PORT/DEVICE`, a worker's device as an ordinary runtime device.

pub mod cluster;
pub mod error;
pub mod frame;
pub mod protocol;
pub mod remote;
pub mod transport;
pub mod worker;

pub use error::{Error, Result};
pub use transport::Security;
