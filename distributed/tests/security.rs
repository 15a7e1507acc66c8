//! Mutual TLS: a worker accepts only clients with a certificate of its cluster, a client
//! accepts only workers of its cluster, plaintext only on loopback, tokens expire.

mod common;

use common::*;
use ferrograd_distributed::cluster::{self, Identity};
use ferrograd_distributed::worker::{Worker, WorkerConfig};
use ferrograd_distributed::{Error, Security};
use ferrograd_runtime::Device;
use std::time::Duration;

fn round_trip_works(device: &dyn Device) {
    let buf = device.allocate(16).unwrap();
    device.write(&buf, &[7u8; 16]).unwrap();
    let mut out = [0u8; 16];
    device.read(&buf, &mut out).unwrap();
    assert_eq!(out, [7u8; 16]);
}

#[test]
fn a_client_of_the_cluster_is_served_over_mutual_tls() {
    let cluster = Cluster::new();
    let worker = cluster.worker();
    let device = connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap();
    round_trip_works(&device);
}

#[test]
fn a_worker_refuses_a_client_certificate_of_a_foreign_cluster() {
    let cluster = Cluster::new();
    let foreign = Cluster::new();
    let worker = cluster.worker();
    // The foreign client trusts our CA (so it would accept the worker) but its own
    // certificate is signed by another CA.
    let mut id = foreign.client();
    id.ca = cluster.client().ca;
    let err = connect(worker.addr(), &Security::MutualTls(id))
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Tls { .. } | Error::Io { .. }), "{err}");
    // The worker still serves its own clients.
    round_trip_works(&connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap());
}

#[test]
fn a_client_refuses_a_worker_of_a_foreign_cluster() {
    let cluster = Cluster::new();
    let foreign = Cluster::new();
    let worker = foreign.worker();
    let err = connect(worker.addr(), &Security::MutualTls(cluster.client()))
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// rustls' own client with `config` connected to the worker at `addr`, its session hello sent.
async fn rustls_client_hello(
    addr: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use tokio::io::AsyncWriteExt;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from(cluster::WORKER_NAME).unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let hello = ferrograd_distributed::protocol::encode_handshake(
        &ferrograd_distributed::protocol::Hello {
            device: "cpu".into(),
        },
    );
    tls.write_all(&(hello.len() as u32).to_le_bytes()).await?;
    tls.write_all(&hello).await?;
    tls.flush().await?;
    Ok(tls)
}

/// A TLS client that presents no certificate at all.
async fn hello_without_certificate(
    addr: std::net::SocketAddr,
    ca: Identity,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tls = rustls_client_hello(addr, std::sync::Arc::new(config)).await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    Ok(answer)
}

#[test]
fn a_worker_refuses_a_client_without_a_certificate() {
    let cluster = Cluster::new();
    let worker = cluster.worker();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(hello_without_certificate(worker.addr(), cluster.client()));
    // The worker aborts the handshake (TLS 1.3: the client sees it as an alert, a reset or a
    // broken pipe once it writes); it never answers the hello.
    if let Ok(answer) = result {
        assert!(
            answer.is_empty(),
            "a client without a certificate got {} bytes",
            answer.len()
        );
    }
}

#[test]
fn a_plaintext_client_gets_nothing_from_a_tls_worker() {
    let cluster = Cluster::new();
    let worker = cluster.worker();
    let err = connect(worker.addr(), &Security::InsecureLoopback)
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            Error::Refused { .. }
                | Error::Io { .. }
                | Error::Malformed { .. }
                | Error::FrameTooLarge { .. }
        ),
        "{err}"
    );
}

#[test]
fn plaintext_is_refused_off_loopback() {
    let config = WorkerConfig::new("0.0.0.0:0".parse().unwrap(), Security::InsecureLoopback);
    let err = Worker::bind(config).err().expect("refused");
    assert!(matches!(err, Error::InsecureNotLoopback { .. }), "{err}");
    let err = connect(
        "10.255.255.1:7070".parse().unwrap(),
        &Security::InsecureLoopback,
    )
    .err()
    .expect("refused");
    assert!(matches!(err, Error::InsecureNotLoopback { .. }), "{err}");
}

#[test]
fn a_plaintext_loopback_worker_serves_when_asked_explicitly() {
    let worker = insecure_worker();
    round_trip_works(&connect(worker.addr(), &Security::InsecureLoopback).unwrap());
}

#[test]
fn expired_and_malformed_tokens_are_refused() {
    let cluster = Cluster::new();
    let token = cluster::token(cluster.dir.path(), Duration::ZERO).unwrap();
    let err = cluster::redeem(&token).expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(matches!(cluster::redeem("fgt1.!!!"), Err(Error::Token(_))));
    assert!(matches!(cluster::redeem("hello"), Err(Error::Token(_))));
    let good = cluster::token(cluster.dir.path(), Duration::from_secs(60)).unwrap();
    let truncated = &good[..good.len() / 2];
    assert!(matches!(cluster::redeem(truncated), Err(Error::Token(_))));
}

#[test]
fn init_refuses_to_overwrite_a_cluster_and_keys_are_private() {
    let cluster = Cluster::new();
    let err = cluster::init(cluster.dir.path()).expect_err("refused");
    assert!(err.to_string().contains("already exists"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "client.key"] {
            let mode = std::fs::metadata(cluster.dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
}

#[test]
fn a_token_round_trips_through_the_worker_state_directory() {
    let cluster = Cluster::new();
    let state = tempfile::tempdir().unwrap();
    cluster
        .worker_identity()
        .save(state.path(), "worker")
        .unwrap();
    let id = Identity::load(state.path(), "worker").unwrap();
    init();
    let worker = Worker::bind(WorkerConfig::new(loopback(), Security::MutualTls(id)))
        .unwrap()
        .spawn()
        .unwrap();
    round_trip_works(&connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap());
}

/// A member of the cluster (rustls' own client) opens a session, then forges a record on the
/// raw socket: the worker's record layer refuses it and closes that connection only.
async fn forged_record_after_hello(
    addr: std::net::SocketAddr,
    id: Identity,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ferrograd_distributed::transport::client_config(&id).unwrap();
    let mut tls = rustls_client_hello(addr, config).await?;
    // The welcome: the session is open.
    let mut len = [0u8; 4];
    tls.read_exact(&mut len).await?;
    let mut welcome = vec![0u8; u32::from_le_bytes(len) as usize];
    tls.read_exact(&mut welcome).await?;
    // An application-data record whose ciphertext and tag are not from the session's key.
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    forged.extend((0..0x40u8).map(|i| i.wrapping_mul(37)));
    tls.get_mut().0.write_all(&forged).await?;
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await?;
    Ok(rest)
}

#[test]
fn a_forged_record_closes_only_its_connection() {
    let cluster = Cluster::new();
    let worker = cluster.worker();
    let served = connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        // Well below the worker's 10 s idle timeout, which would close the session as well.
        tokio::time::timeout(
            Duration::from_secs(5),
            forged_record_after_hello(worker.addr(), cluster.client()),
        )
        .await
    });
    // The worker closed the connection (a clean end, an unexpected one or a reset) and
    // answered nothing.
    match result.expect("the worker closed the forged connection in time") {
        Ok(rest) => assert!(
            rest.is_empty(),
            "{} bytes after a forged record",
            rest.len()
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    // Sessions opened before and after are untouched.
    round_trip_works(&served);
    round_trip_works(&connect(worker.addr(), &Security::MutualTls(cluster.client())).unwrap());
}
