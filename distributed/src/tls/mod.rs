//! Mutual TLS 1.3 with our own record layer, the way kernel TLS does it.
//!
//! rustls runs the handshake (certificates, the cluster CA, the key schedule) through its
//! unbuffered API (`handshake`) and then hands the traffic secrets over
//! (`dangerous_into_kernel_connection`). From there [`TlsReader`] and [`TlsWriter`] protect
//! records themselves (`record`, `ring::aead`): the reader decrypts in place in one large
//! reused buffer and copies each byte once, into the caller's buffer; the writer seals batches
//! of records into one reused buffer and sends a batch with one system call. The two halves
//! share no lock on the data path; the rustls [`KernelConnection`] that derives new keys sits
//! behind a mutex touched only on key updates.
//!
//! **Key updates.** Each half counts the records sent or received under its key. Before the
//! writer's count reaches the suite's confidentiality limit (or a lower configured one) it
//! sends a KeyUpdate and switches to `update_tx_secret`; the reader switches with
//! `update_rx_secret` on a received KeyUpdate and, when the peer asked for it, makes the writer
//! send its own update before its next record. A peer exceeding the limit is an error.
//!
//! A close_notify alert is a clean end of stream; any other alert, a bad tag, an unexpected
//! content type or an oversized record is a [`RecordError`] (as the `InvalidData` source of the
//! `std::io::Error` the halves return) that ends that connection only.

pub(crate) mod handshake;
pub(crate) mod record;
mod stream;

pub use stream::{TlsReader, TlsWriter};

use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;

/// A record-layer failure. Every one ends the connection it happened on.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The negotiated cipher suite has no implementation here.
    #[error("unsupported cipher suite")]
    UnsupportedSuite,
    /// A traffic key could not be set up.
    #[error("unusable traffic key")]
    BadKey,
    /// 2^64 records under one key.
    #[error("record sequence number exhausted")]
    SequenceExhausted,
    /// A record failed authentication (tampered ciphertext, tag or header, or a wrong key).
    #[error("bad record MAC: the record failed authentication")]
    BadRecordMac,
    /// A decrypted record held only zero bytes.
    #[error("a record without a content type")]
    NoContentType,
    /// A record longer than TLS allows.
    #[error("record overflow: {len} bytes")]
    RecordOverflow {
        /// The length announced or found.
        len: usize,
    },
    /// A record whose outer content type is not application data.
    #[error("unexpected record content type {0:#04x}")]
    UnexpectedContentType(u8),
    /// A protected record whose inner content type is not data, handshake or alert.
    #[error("unexpected inner content type {0:#04x}")]
    UnexpectedInnerType(u8),
    /// The peer sent an alert other than close_notify.
    #[error("the peer sent alert {0}")]
    Alert(u8),
    /// A post-handshake message this connection does not accept.
    #[error("unexpected post-handshake message type {0}")]
    UnexpectedHandshake(u8),
    /// A post-handshake message that does not parse.
    #[error("malformed post-handshake message: {0}")]
    MalformedHandshake(&'static str),
    /// The peer sent more records under one key than the suite's confidentiality limit.
    #[error("the peer exceeded the key's record limit")]
    KeyLimitExceeded,
    /// rustls refused a key update or a session ticket.
    #[error("rustls: {0}")]
    Rustls(String),
}

impl From<rustls::Error> for RecordError {
    fn from(e: rustls::Error) -> Self {
        RecordError::Rustls(e.to_string())
    }
}

impl From<RecordError> for std::io::Error {
    fn from(e: RecordError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// rustls' part of an established connection: deriving the next traffic secrets and keeping
/// session tickets.
pub(crate) enum Kernel {
    /// We are the client.
    Client(KernelConnection<ClientConnectionData>),
    /// We are the server.
    Server(KernelConnection<ServerConnectionData>),
}

impl Kernel {
    /// Records the negotiated suite may protect under one key (TLS 1.3 suites only).
    fn confidentiality_limit(&self) -> Result<u64, RecordError> {
        let suite = match self {
            Kernel::Client(k) => k.negotiated_cipher_suite(),
            Kernel::Server(k) => k.negotiated_cipher_suite(),
        };
        let suite = suite.tls13().ok_or(RecordError::UnsupportedSuite)?;
        Ok(suite.common.confidentiality_limit)
    }

    fn update_tx(&mut self) -> Result<record::RecordKey, RecordError> {
        let (seq, secrets) = match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
        }?;
        record::RecordKey::new(seq, secrets)
    }

    fn update_rx(&mut self) -> Result<record::RecordKey, RecordError> {
        let (seq, secrets) = match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
        }?;
        record::RecordKey::new(seq, secrets)
    }

    fn new_session_ticket(&mut self, payload: &[u8]) -> Result<(), RecordError> {
        match self {
            Kernel::Client(k) => Ok(k.handle_new_session_ticket(payload)?),
            // Only servers send tickets.
            Kernel::Server(_) => Err(RecordError::UnexpectedHandshake(NEW_SESSION_TICKET)),
        }
    }
}

/// Handshake message type of a NewSessionTicket.
const NEW_SESSION_TICKET: u8 = 4;
/// Handshake message type of a KeyUpdate.
const KEY_UPDATE: u8 = 24;
/// Alert description of close_notify.
const CLOSE_NOTIFY: u8 = 0;

/// Splits an established connection into its halves. `records_per_key` lowers the number of
/// records sent under one key (the suite's confidentiality limit applies anyway).
pub(crate) fn split<R, W>(
    established: handshake::Established,
    rd: R,
    wr: W,
    records_per_key: u64,
) -> Result<(TlsReader<R>, TlsWriter<W>), RecordError> {
    stream::split(established, rd, wr, records_per_key)
}

#[cfg(test)]
mod tests;
