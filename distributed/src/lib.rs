//! ferrograd-distributed: the worker daemon, remote devices and the cluster's security.
//!
//! - [`protocol`] + [`frame`]: the versioned wire protocol (length-delimited postcard frames).
//! - [`transport`]: mutual TLS (rustls' handshake, [`tls`]' record layer) or plaintext on
//!   loopback.
//! - [`tls`]: the TLS 1.3 record layer after rustls' handshake (key updates included).
//! - [`pool`]: reuse of the large buffers bulk transfers pass through.
//! - [`cluster`]: the cluster CA, join tokens, identities.
//! - [`placement`]: which worker runs which layers of a pipeline.
//! - [`discovery`]: mDNS announcements and static peer lists.
//! - [`worker`]: `ferrograd worker`, serving the local devices of the runtime registry.
//! - [`remote`]: `remote:HOST:PORT/DEVICE`, a worker's device as an ordinary runtime device.

mod blocking;
pub mod cluster;
pub mod discovery;
pub mod error;
pub mod frame;
pub mod placement;
pub mod pool;
pub mod protocol;
pub mod remote;
pub mod tls;
pub mod transport;
pub mod worker;

pub use error::{Error, Result};
pub use placement::{place, place_with, LayerCost, Placement, PlacementError, WorkerCapacity};
pub use transport::Security;
