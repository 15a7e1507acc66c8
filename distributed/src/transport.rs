//! Connections: mutual TLS (rustls, ring provider) or, on loopback only and when asked for
//! explicitly, plaintext TCP. Under TLS, rustls runs the handshake and [`crate::tls`] the
//! record layer.

use crate::cluster::{Identity, WORKER_NAME};
use crate::error::{Error, Result};
use crate::tls;
use rustls::client::UnbufferedClientConnection;
use rustls::server::{UnbufferedServerConnection, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The receiving half of a connection to a peer (TLS or plaintext).
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// The sending half of a connection to a peer (TLS or plaintext).
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// How long a TCP connect plus TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Records sent under one key before a key update, below the suite's confidentiality limit
/// (which applies anyway): none, the suite's limit is the only one.
const RECORDS_PER_KEY: u64 = u64::MAX;

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

/// The ring provider, TLS 1.3 suites only, AES-128-GCM first (the cheapest on CPUs with AES
/// instructions; both ends use this order, so it is the suite negotiated).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
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

/// A server configuration that requires a client certificate signed by the cluster CA: TLS
/// 1.3 only, secrets handed over to our record layer after the handshake, no session tickets
/// (connections are not resumed).
pub fn server_config(id: &Identity) -> Result<Arc<ServerConfig>> {
    server_config_with(id, provider())
}

/// [`server_config`] with the cipher suites of `provider`.
pub(crate) fn server_config_with(
    id: &Identity,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<ServerConfig>> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(id)?, provider.clone())
        .build()
        .map_err(tls_config_error)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(tls_config_error)?;
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A client configuration that trusts only the cluster CA and presents our certificate: TLS
/// 1.3 only, secrets handed over to our record layer after the handshake.
pub fn client_config(id: &Identity) -> Result<Arc<ClientConfig>> {
    client_config_with(id, provider())
}

/// [`client_config`] with the cipher suites of `provider`.
pub(crate) fn client_config_with(
    id: &Identity,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_config_error)?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(tls_config_error)?;
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// Splits a plaintext TCP stream.
fn plain_halves(tcp: TcpStream) -> (Reader, Writer) {
    let (rd, wr) = tcp.into_split();
    (Box::new(rd), Box::new(wr))
}

/// Splits a connection whose handshake is done into our record layer's halves.
fn tls_halves(
    established: tls::handshake::Established,
    tcp: TcpStream,
    peer: &str,
) -> Result<(Reader, Writer)> {
    let (rd, wr) = tcp.into_split();
    let (rd, wr) = tls::split(established, rd, wr, RECORDS_PER_KEY).map_err(|e| Error::Tls {
        peer: peer.to_string(),
        reason: e.to_string(),
    })?;
    Ok((Box::new(rd), Box::new(wr)))
}

/// Connects to a worker at `addr` and secures the connection as `security` says.
pub async fn connect(addr: SocketAddr, security: &Security) -> Result<(Reader, Writer)> {
    let peer = addr.to_string();
    let deadline = |what| Error::Deadline {
        peer: peer.clone(),
        what,
        deadline: HANDSHAKE_TIMEOUT,
    };
    if matches!(security, Security::InsecureLoopback) && !addr.ip().is_loopback() {
        return Err(Error::InsecureNotLoopback { addr: peer });
    }
    let mut tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| deadline("TCP connect"))?
        .map_err(|e| Error::io(&peer, e))?;
    tcp.set_nodelay(true).map_err(|e| Error::io(&peer, e))?;
    match security {
        Security::InsecureLoopback => Ok(plain_halves(tcp)),
        Security::MutualTls(id) => {
            let name = ServerName::try_from(WORKER_NAME).expect("a valid DNS name");
            let conn = UnbufferedClientConnection::new(client_config(id)?, name).map_err(|e| {
                Error::Tls {
                    peer: peer.clone(),
                    reason: e.to_string(),
                }
            })?;
            let established = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                tls::handshake::drive(conn, &mut tcp, &peer),
            )
            .await
            .map_err(|_| deadline("TLS handshake"))??;
            tls_halves(established, tcp, &peer)
        }
    }
}

/// Accepts the server side of a connection from `peer`: mutual TLS with `config`, or plaintext
/// without one.
pub async fn accept(
    mut tcp: TcpStream,
    peer: &str,
    config: Option<&Arc<ServerConfig>>,
) -> Result<(Reader, Writer)> {
    tcp.set_nodelay(true).map_err(|e| Error::io(peer, e))?;
    let Some(config) = config else {
        return Ok(plain_halves(tcp));
    };
    let conn = UnbufferedServerConnection::new(config.clone()).map_err(|e| Error::Tls {
        peer: peer.to_string(),
        reason: e.to_string(),
    })?;
    let established = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tls::handshake::drive(conn, &mut tcp, peer),
    )
    .await
    .map_err(|_| Error::Deadline {
        peer: peer.to_string(),
        what: "TLS handshake",
        deadline: HANDSHAKE_TIMEOUT,
    })??;
    tls_halves(established, tcp, peer)
}
