//! The TLS 1.3 handshake, driven through rustls' unbuffered API over a tokio `TcpStream`, up
//! to the point where rustls hands the traffic secrets over (`dangerous_into_kernel_connection`).

use super::Kernel;
use crate::error::{Error, Result};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::ExtractedSecrets;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read from the socket at once during the handshake (certificates fit comfortably).
const HANDSHAKE_READ: usize = 16 << 10;
/// Most bytes of one handshake flight held at once (rustls refuses far smaller messages).
const HANDSHAKE_LIMIT: usize = 1 << 20;

/// What a finished handshake leaves behind.
pub(crate) struct Established {
    /// The traffic secrets and their sequence numbers.
    pub(crate) secrets: ExtractedSecrets,
    /// rustls' remaining state: key updates, session tickets.
    pub(crate) kernel: Kernel,
    /// Application data rustls already decrypted while finishing the handshake.
    pub(crate) plaintext: Vec<u8>,
    /// Received bytes past the handshake (the peer's first records), still encrypted.
    pub(crate) ciphertext: Vec<u8>,
}

/// A client or server unbuffered connection.
pub(crate) trait Unbuffered: Send {
    /// Client or server data.
    type Data;
    /// `process_tls_records` of the connection.
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// Whether the handshake still runs.
    fn handshaking(&self) -> bool;
    /// Hands the secrets over.
    fn into_kernel(self) -> std::result::Result<(ExtractedSecrets, Kernel), rustls::Error>;
}

/// Implements [`Unbuffered`] for one side's connection type (rustls gives both sides the same
/// inherent methods, not a trait).
macro_rules! unbuffered {
    ($connection:ty, $data:ty, $kernel:path) => {
        impl Unbuffered for $connection {
            type Data = $data;
            fn process<'c, 'i>(
                &'c mut self,
                incoming: &'i mut [u8],
            ) -> UnbufferedStatus<'c, 'i, Self::Data> {
                self.process_tls_records(incoming)
            }
            fn handshaking(&self) -> bool {
                self.is_handshaking()
            }
            fn into_kernel(self) -> std::result::Result<(ExtractedSecrets, Kernel), rustls::Error> {
                self.dangerous_into_kernel_connection()
                    .map(|(s, k)| (s, $kernel(k)))
            }
        }
    };
}

unbuffered!(
    UnbufferedClientConnection,
    ClientConnectionData,
    Kernel::Client
);
unbuffered!(
    UnbufferedServerConnection,
    ServerConnectionData,
    Kernel::Server
);

/// What the socket must do after one step of the state machine.
enum Next {
    /// Process again (the state machine has more to say).
    Continue,
    /// Send the encoded handshake bytes.
    Transmit,
    /// Wait for more bytes from the peer.
    Read,
    /// The handshake is over.
    Done,
}

fn tls_error(peer: &str, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        peer: peer.to_string(),
        reason: reason.to_string(),
    }
}

/// Runs the handshake of `conn` over `tcp` until the traffic secrets can be extracted.
pub(crate) async fn drive<C: Unbuffered>(
    mut conn: C,
    tcp: &mut TcpStream,
    peer: &str,
) -> Result<Established> {
    let mut incoming = vec![0u8; HANDSHAKE_READ];
    let mut filled = 0usize;
    let mut outgoing: Vec<u8> = Vec::new();
    let mut plaintext = Vec::new();
    loop {
        let status = conn.process(&mut incoming[..filled]);
        let mut discard = status.discard;
        let next = match status.state {
            Err(e) => {
                let reason = e.to_string();
                send_alert(&mut conn, tcp).await;
                return Err(tls_error(peer, reason));
            }
            Ok(ConnectionState::EncodeTlsData(mut data)) => {
                let start = outgoing.len();
                outgoing.resize(start + 4096, 0);
                loop {
                    match data.encode(&mut outgoing[start..]) {
                        Ok(n) => {
                            outgoing.truncate(start + n);
                            break;
                        }
                        Err(EncodeError::InsufficientSize(e)) => {
                            outgoing.resize(start + e.required_size, 0)
                        }
                        Err(e) => return Err(tls_error(peer, e)),
                    }
                }
                Next::Continue
            }
            Ok(ConnectionState::TransmitTlsData(data)) => {
                data.done();
                Next::Transmit
            }
            Ok(ConnectionState::BlockedHandshake) => Next::Read,
            Ok(ConnectionState::ReadTraffic(mut records)) => {
                // The peer's first data, right behind its last handshake message.
                while let Some(record) = records.next_record() {
                    let record = record.map_err(|e| tls_error(peer, e))?;
                    discard += record.discard;
                    plaintext.extend_from_slice(record.payload);
                }
                Next::Continue
            }
            // A server may send from its Finished on, before the client's certificate has been
            // checked: wait for the client's Finished.
            Ok(ConnectionState::WriteTraffic(_)) => Next::Done,
            Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                return Err(tls_error(
                    peer,
                    "the peer closed the connection during the handshake",
                ))
            }
            Ok(other) => {
                return Err(tls_error(
                    peer,
                    format!("unexpected handshake state {other:?}"),
                ))
            }
        };
        incoming.copy_within(discard..filled, 0);
        filled -= discard;
        match next {
            Next::Continue => {}
            Next::Transmit => {
                tcp.write_all(&outgoing)
                    .await
                    .map_err(|e| Error::io(peer, e))?;
                outgoing.clear();
            }
            Next::Done if !conn.handshaking() => break,
            Next::Read | Next::Done => {
                if filled == incoming.len() {
                    if incoming.len() >= HANDSHAKE_LIMIT {
                        return Err(tls_error(peer, "handshake messages too large"));
                    }
                    incoming.resize(incoming.len() * 2, 0);
                }
                let n = tcp
                    .read(&mut incoming[filled..])
                    .await
                    .map_err(|e| Error::io(peer, e))?;
                if n == 0 {
                    return Err(tls_error(
                        peer,
                        "the peer closed the connection during the handshake",
                    ));
                }
                filled += n;
            }
        }
    }
    let (secrets, kernel) = conn.into_kernel().map_err(|e| tls_error(peer, e))?;
    incoming.truncate(filled);
    Ok(Established {
        secrets,
        kernel,
        plaintext,
        ciphertext: incoming,
    })
}

/// After a handshake error rustls has queued an alert for the peer (unknown CA, bad
/// certificate, ...): send it, so the peer learns why. Best effort.
async fn send_alert<C: Unbuffered>(conn: &mut C, tcp: &mut TcpStream) {
    let mut alert = vec![0u8; 64];
    let n = match conn.process(&mut []).state {
        Ok(ConnectionState::EncodeTlsData(mut data)) => data.encode(&mut alert).unwrap_or(0),
        _ => 0,
    };
    if n > 0 {
        let _ = tcp.write_all(&alert[..n]).await;
    }
}
