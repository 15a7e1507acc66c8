//! Connections: mutual TLS (rustls, ring provider) or, on loopback only and when asked for
//! explicitly, plaintext TCP.

use crate::cluster::{Identity, WORKER_NAME};
use crate::error::{Error, Result};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to a peer (TLS or plaintext).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How long a TCP connect plus TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from the socket at once under TLS. rustls asks its transport for at most 4 KiB
/// per read; without this buffer every 4 KiB of a bulk transfer cost a system call. (A larger
/// rustls write buffer, 1 MiB instead of 64 KiB, was measured too: it cost ~0.4 CPU-s per GB
/// more, so rustls keeps its default.)
const TLS_READ_BUFFER: usize = 256 << 10;

/// The TCP stream TLS runs over: reads go through a [`TLS_READ_BUFFER`]-byte buffer, writes
/// straight to the socket.
type TlsTransport = tokio::io::BufReader<TcpStream>;

fn tls_transport(tcp: TcpStream) -> TlsTransport {
    tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, tcp)
}

/// How connections are secured.
#[derive(Clone)]
pub enum Security {
    /// Mutual TLS: present our identity, trust only the cluster CA.
    MutualTls(Identity),
    /// Plaintext, allowed only when every address involved is loopback.
    InsecureLoopback,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::MutualTls(_) => f.write_str("MutualTls"),
            Security::InsecureLoopback => f.write_str("InsecureLoopback"),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config_error(e: impl std::fmt::Display) -> Error {
    Error::Tls {
        peer: "config".into(),
        reason: e.to_string(),
    }
}

fn roots(id: &Identity) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots.add(id.ca.clone()).map_err(tls_config_error)?;
    Ok(Arc::new(roots))
}

/// A server configuration that requires a client certificate signed by the cluster CA.
pub fn server_config(id: &Identity) -> Result<Arc<ServerConfig>> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(id)?, provider())
        .build()
        .map_err(tls_config_error)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(tls_config_error)?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts only the cluster CA and presents our certificate.
pub fn client_config(id: &Identity) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(tls_config_error)?;
    Ok(Arc::new(config))
}

/// Connects to a worker at `addr` and secures the stream as `security` says.
pub async fn connect(addr: SocketAddr, security: &Security) -> Result<Box<dyn Stream>> {
    let peer = addr.to_string();
    let deadline = |what| Error::Deadline {
        peer: peer.clone(),
        what,
        deadline: HANDSHAKE_TIMEOUT,
    };
    if matches!(security, Security::InsecureLoopback) && !addr.ip().is_loopback() {
        return Err(Error::InsecureNotLoopback { addr: peer });
    }
    let tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| deadline("TCP connect"))?
        .map_err(|e| Error::io(&peer, e))?;
    tcp.set_nodelay(true).map_err(|e| Error::io(&peer, e))?;
    match security {
        Security::InsecureLoopback => Ok(Box::new(tcp)),
        Security::MutualTls(id) => {
            let connector = tokio_rustls::TlsConnector::from(client_config(id)?);
            let name = ServerName::try_from(WORKER_NAME).expect("a valid DNS name");
            let connect = connector.connect(name, tls_transport(tcp));
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect)
                .await
                .map_err(|_| deadline("TLS handshake"))?
                .map_err(|e| Error::Tls {
                    peer: peer.clone(),
                    reason: e.to_string(),
                })?;
            Ok(Box::new(tls))
        }
    }
}

/// Accepts the server side of a connection from `peer` as `acceptor` says.
pub async fn accept(
    tcp: TcpStream,
    peer: &str,
    acceptor: Option<&tokio_rustls::TlsAcceptor>,
) -> Result<Box<dyn Stream>> {
    tcp.set_nodelay(true).map_err(|e| Error::io(peer, e))?;
    match acceptor {
        None => Ok(Box::new(tcp)),
        Some(acceptor) => {
            let accept = acceptor.accept(tls_transport(tcp));
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
                .await
                .map_err(|_| Error::Deadline {
                    peer: peer.to_string(),
                    what: "TLS handshake",
                    deadline: HANDSHAKE_TIMEOUT,
                })?
                .map_err(|e| Error::Tls {
                    peer: peer.to_string(),
                    reason: e.to_string(),
                })?;
            Ok(Box::new(tls))
        }
    }
}
