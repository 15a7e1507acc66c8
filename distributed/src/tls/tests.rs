//! The record layer against itself (every record size, reads split at every byte, tampering,
//! key updates) and against plain rustls on the other end, both directions.

use super::handshake::{drive, Established};
use super::record::{ALERT, APPLICATION_DATA, HANDSHAKE, HEADER, MAX_PLAINTEXT, TAG};
use super::{split, RecordError, TlsReader, TlsWriter};
use crate::cluster::{self, Identity, WORKER_NAME};
use crate::transport;
use rustls::client::UnbufferedClientConnection;
use rustls::crypto::CryptoProvider;
use rustls::server::UnbufferedServerConnection;
use rustls_pki_types::ServerName;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A cluster's client and worker identities.
struct Ids {
    _dir: tempfile::TempDir,
    client: Identity,
    worker: Identity,
}

fn ids() -> Ids {
    let dir = tempfile::tempdir().expect("temp dir");
    cluster::init(dir.path()).expect("cluster");
    let token = cluster::token(dir.path(), Duration::from_secs(600)).expect("token");
    Ids {
        client: Identity::load_client(dir.path()).expect("client identity"),
        worker: cluster::redeem(&token).expect("worker identity"),
        _dir: dir,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The ring provider restricted to one TLS 1.3 suite.
fn only(suite: rustls::SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    Arc::new(provider)
}

/// Both ends of a handshake over loopback TCP: (client, server).
async fn handshake_pair(
    ids: &Ids,
    provider: Arc<CryptoProvider>,
) -> ((Established, TcpStream), (Established, TcpStream)) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let client = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let config = transport::client_config_with(&ids.client, provider.clone()).expect("config");
        let name = ServerName::try_from(WORKER_NAME).expect("name");
        let conn = UnbufferedClientConnection::new(config, name).expect("client");
        let established = drive(conn, &mut tcp, "server")
            .await
            .expect("client handshake");
        (established, tcp)
    };
    let server = async {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let config = transport::server_config_with(&ids.worker, provider.clone()).expect("config");
        let conn = UnbufferedServerConnection::new(config).expect("server");
        let established = drive(conn, &mut tcp, "client")
            .await
            .expect("server handshake");
        (established, tcp)
    };
    tokio::join!(client, server)
}

/// A transport that hands out at most `chunk` bytes per read.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let n = this
            .chunk
            .min(this.data.len() - this.pos)
            .min(out.remaining());
        out.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// A writer sealing into memory (the client's) and a reader opening what `stream` delivers in
/// `chunk`-byte reads (the server's), keyed by one real handshake.
async fn memory_pair(
    ids: &Ids,
    records_per_key: u64,
) -> (
    TlsWriter<Vec<u8>>,
    impl FnOnce(Vec<u8>, usize) -> TlsReader<Chunked>,
) {
    let ((client, _c), (server, _s)) = handshake_pair(ids, transport::provider()).await;
    let (_, writer) =
        split(client, tokio::io::empty(), Vec::new(), records_per_key).expect("split");
    let reader = move |data, chunk| {
        let (reader, _) = split(
            server,
            Chunked {
                data,
                pos: 0,
                chunk,
            },
            tokio::io::sink(),
            u64::MAX,
        )
        .expect("split");
        reader
    };
    (writer, reader)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// The record error inside an I/O error.
fn record_error(e: &std::io::Error) -> RecordError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<RecordError>())
        .unwrap_or_else(|| panic!("not a record error: {e}"))
        .clone()
}

#[test]
fn a_write_becomes_records_of_at_most_two_to_the_fourteen_bytes() {
    let ids = ids();
    runtime().block_on(async {
        let (mut writer, _) = memory_pair(&ids, u64::MAX).await;
        let mut sizes = Vec::new();
        for len in [0usize, 1, MAX_PLAINTEXT, MAX_PLAINTEXT + 1] {
            let before = writer.transport().len();
            if len == 0 {
                writer.seal_raw(APPLICATION_DATA, &[]);
            } else {
                writer.write_all(&pattern(len, 1)).await.unwrap();
            }
            writer.flush().await.unwrap();
            sizes.push(writer.transport().len() - before);
        }
        let record = |content: usize| HEADER + content + 1 + TAG;
        assert_eq!(
            sizes,
            [
                record(0),
                record(1),
                record(MAX_PLAINTEXT),
                record(MAX_PLAINTEXT) + record(1)
            ]
        );
    });
}

#[test]
fn records_of_every_size_round_trip_with_reads_split_at_every_byte() {
    let ids = ids();
    let sizes = [
        0usize,
        1,
        7,
        4096,
        MAX_PLAINTEXT - 1,
        MAX_PLAINTEXT,
        MAX_PLAINTEXT + 1,
        100_003,
    ];
    // 1-byte reads split every record at every byte boundary.
    for chunk in [1usize, 5, HEADER + MAX_PLAINTEXT + 17, 1 << 20] {
        runtime().block_on(async {
            let (mut writer, reader) = memory_pair(&ids, u64::MAX).await;
            let mut expected = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                let data = pattern(len, i as u8);
                if len == 0 {
                    writer.seal_raw(APPLICATION_DATA, &[]);
                } else {
                    writer.write_all(&data).await.unwrap();
                }
                expected.extend_from_slice(&data);
            }
            writer.shutdown().await.unwrap();
            let stream = std::mem::take(writer.transport());
            // Reads into a growing vector (small ones first: records opened in the reader's
            // buffer) ...
            let mut reader = reader(stream, chunk);
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.unwrap();
            assert!(got == expected, "chunk {chunk}: data differs");
        });
        runtime().block_on(async {
            // ... and one read of everything (records opened in the caller's buffer).
            let (mut writer, reader) = memory_pair(&ids, u64::MAX).await;
            let mut expected = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                let data = pattern(len, i as u8);
                writer.write_all(&data).await.unwrap();
                expected.extend_from_slice(&data);
            }
            writer.shutdown().await.unwrap();
            let mut reader = reader(std::mem::take(writer.transport()), chunk);
            let mut got = vec![0u8; expected.len()];
            reader.read_exact(&mut got).await.unwrap();
            assert!(got == expected, "chunk {chunk}, one read: data differs");
            assert_eq!(
                reader.read_u8().await.expect_err("the end").kind(),
                std::io::ErrorKind::UnexpectedEof
            );
        });
    }
}

#[test]
fn tampered_records_are_refused_with_a_typed_error() {
    let ids = ids();
    let record_len = HEADER + 100 + 1 + TAG;
    // (byte to change, how, the error expected)
    let cases: [(usize, u8, RecordError); 6] = [
        (0, 0x01, RecordError::UnexpectedContentType(0x16)),
        (2, 0x01, RecordError::BadRecordMac),
        (4, 0x01, RecordError::BadRecordMac),
        (HEADER + 10, 0x80, RecordError::BadRecordMac),
        (record_len - 1, 0x01, RecordError::BadRecordMac),
        (3, 0x50, RecordError::RecordOverflow { len: 0x5075 }),
    ];
    for (at, flip, expected) in cases {
        runtime().block_on(async {
            let (mut writer, reader) = memory_pair(&ids, u64::MAX).await;
            writer.write_all(&pattern(100, 3)).await.unwrap();
            writer.flush().await.unwrap();
            let mut stream = std::mem::take(writer.transport());
            assert_eq!(stream.len(), record_len);
            stream[at] ^= flip;
            let mut reader = reader(stream, 1 << 20);
            let mut got = Vec::new();
            let err = reader.read_to_end(&mut got).await.expect_err("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
            assert_eq!(record_error(&err), expected, "byte {at}");
            assert!(got.is_empty());
        });
    }
}

#[test]
fn hostile_contents_and_truncation_are_errors_and_close_notify_is_the_end() {
    let ids = ids();
    let cases: [(u8, Vec<u8>, RecordError); 5] = [
        (ALERT, vec![2, 40], RecordError::Alert(40)),
        (0x14, vec![1], RecordError::UnexpectedInnerType(0x14)),
        (
            HANDSHAKE,
            vec![1, 0, 0, 0],
            RecordError::UnexpectedHandshake(1),
        ),
        (
            HANDSHAKE,
            vec![24, 0, 0, 1, 7],
            RecordError::MalformedHandshake("KeyUpdate request"),
        ),
        (
            APPLICATION_DATA,
            vec![0; MAX_PLAINTEXT + 1],
            RecordError::RecordOverflow {
                len: MAX_PLAINTEXT + 1,
            },
        ),
    ];
    for (content_type, content, expected) in cases {
        runtime().block_on(async {
            let (mut writer, reader) = memory_pair(&ids, u64::MAX).await;
            writer.write_all(b"before").await.unwrap();
            // Nonzero content so the content type is not taken for padding.
            let content: Vec<u8> = match content_type {
                APPLICATION_DATA => vec![1; content.len()],
                _ => content,
            };
            writer.seal_raw(content_type, &content);
            writer.flush().await.unwrap();
            let mut reader = reader(std::mem::take(writer.transport()), 1 << 20);
            let mut before = [0u8; 6];
            reader.read_exact(&mut before).await.unwrap();
            assert_eq!(&before, b"before");
            let err = reader.read_u8().await.expect_err("refused");
            assert_eq!(record_error(&err), expected);
        });
    }
    runtime().block_on(async {
        // A stream cut inside a record is an unexpected end, not a clean one.
        let (mut writer, reader) = memory_pair(&ids, u64::MAX).await;
        writer.write_all(b"cut").await.unwrap();
        writer.flush().await.unwrap();
        let mut stream = std::mem::take(writer.transport());
        stream.pop();
        let err = reader(stream, 1 << 20).read_u8().await.expect_err("cut");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    });
}

/// Sends `data` in many small writes and flushes: each becomes records of its own.
async fn send_in_parts(writer: &mut TlsWriter, data: &[u8]) {
    for part in data.chunks(MAX_PLAINTEXT / 2 + 3) {
        writer.write_all(part).await.unwrap();
        writer.flush().await.unwrap();
    }
}

async fn receive_exact(reader: &mut TlsReader, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    reader.read_exact(&mut got).await.unwrap();
    got
}

#[test]
fn key_updates_keep_traffic_flowing_both_ways() {
    let ids = ids();
    runtime().block_on(async {
        let ((client, ctcp), (server, stcp)) = handshake_pair(&ids, transport::provider()).await;
        // Three records per key: a key update every other data record.
        let (crd, cwr) = ctcp.into_split();
        let (srd, swr) = stcp.into_split();
        let (mut c_reader, mut c_writer) = split(client, crd, cwr, 3).unwrap();
        let (mut s_reader, mut s_writer) = split(server, srd, swr, 3).unwrap();
        let up = pattern(40 * MAX_PLAINTEXT + 5, 1);
        let down = pattern(30 * MAX_PLAINTEXT + 9, 2);
        let (_, _, got_up, got_down) = tokio::join!(
            send_in_parts(&mut c_writer, &up),
            send_in_parts(&mut s_writer, &down),
            receive_exact(&mut s_reader, up.len()),
            receive_exact(&mut c_reader, down.len()),
        );
        assert!(got_up == up && got_down == down, "data differs");
        // ~81 data records, a key update every other one.
        assert!(c_writer.key_updates() >= 35, "{}", c_writer.key_updates());
        assert_eq!(s_reader.key_updates(), c_writer.key_updates());
        assert_eq!(c_reader.key_updates(), s_writer.key_updates());

        // A requested update is answered before the peer's next record.
        let (c_sent, s_sent) = (c_writer.key_updates(), s_writer.key_updates());
        c_writer.request_key_update();
        c_writer.write_all(b"ping").await.unwrap();
        c_writer.flush().await.unwrap();
        let mut ping = [0u8; 4];
        s_reader.read_exact(&mut ping).await.unwrap();
        s_writer.write_all(b"pong").await.unwrap();
        s_writer.flush().await.unwrap();
        c_reader.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"pong");
        assert_eq!(c_writer.key_updates(), c_sent + 1);
        assert!(s_writer.key_updates() > s_sent);
        assert_eq!(c_reader.key_updates(), s_writer.key_updates());

        // close_notify: the peer's reader sees a clean end.
        c_writer.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s_reader.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    });
}

#[test]
fn every_suite_of_the_provider_round_trips() {
    use rustls::crypto::ring::cipher_suite::*;
    let ids = ids();
    for suite in [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
    ] {
        runtime().block_on(async {
            let ((client, ctcp), (server, stcp)) = handshake_pair(&ids, only(suite)).await;
            let (crd, cwr) = ctcp.into_split();
            let (srd, swr) = stcp.into_split();
            let (_, mut writer) = split(client, crd, cwr, 4).unwrap();
            let (mut reader, _) = split(server, srd, swr, 4).unwrap();
            let data = pattern(10 * MAX_PLAINTEXT + 1, 9);
            let receive = async {
                let mut got = vec![0u8; data.len()];
                reader.read_exact(&mut got).await.unwrap();
                got
            };
            let send = async {
                writer.write_all(&data).await.unwrap();
                writer.flush().await.unwrap();
            };
            let (got, ()) = tokio::join!(receive, send);
            assert!(got == data, "{:?}: data differs", suite.suite());
            assert!(reader.key_updates() >= 3);
        });
    }
}

/// Writes everything rustls wants to send in one write.
fn flush_rustls(conn: &mut rustls::Connection, tcp: &mut std::net::TcpStream) {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("encode");
    }
    tcp.write_all(&out).expect("send");
}

/// Reads and processes one batch of records; false at the end of the stream.
fn receive_rustls(conn: &mut rustls::Connection, tcp: &mut std::net::TcpStream) -> bool {
    if conn.read_tls(tcp).expect("receive") == 0 {
        return false;
    }
    conn.process_new_packets()
        .expect("rustls accepts our records");
    true
}

/// Reads what we echo until `echo` holds `len` bytes.
fn read_echo(
    conn: &mut rustls::Connection,
    tcp: &mut std::net::TcpStream,
    echo: &mut Vec<u8>,
    len: usize,
) {
    let mut buf = vec![0u8; 1 << 16];
    while echo.len() < len {
        flush_rustls(conn, tcp);
        assert!(receive_rustls(conn, tcp), "closed before the echo");
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => echo.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("rustls read: {e}"),
            }
        }
    }
}

/// A plain rustls peer: sends the first half of `data` queued before the handshake ends (so
/// it travels right behind the peer's last handshake message), reads its echo, updates its
/// keys, sends the second half, reads the rest of the echo and closes with close_notify.
/// Returns the echo.
fn rustls_peer(
    mut conn: rustls::Connection,
    mut tcp: std::net::TcpStream,
    data: Vec<u8>,
) -> Vec<u8> {
    let half = data.len() / 2;
    conn.set_buffer_limit(None);
    conn.writer().write_all(&data[..half]).unwrap();
    while conn.is_handshaking() {
        flush_rustls(&mut conn, &mut tcp);
        assert!(
            receive_rustls(&mut conn, &mut tcp),
            "closed in the handshake"
        );
    }
    flush_rustls(&mut conn, &mut tcp);
    let mut echo = Vec::new();
    read_echo(&mut conn, &mut tcp, &mut echo, half);
    conn.refresh_traffic_keys().expect("key update");
    conn.writer().write_all(&data[half..]).unwrap();
    read_echo(&mut conn, &mut tcp, &mut echo, data.len());
    conn.send_close_notify();
    flush_rustls(&mut conn, &mut tcp);
    echo
}

/// Our end: reads everything the rustls peer sends until close_notify and echoes it back with
/// a key update every few records.
async fn echo(reader: &mut TlsReader, writer: &mut TlsWriter) -> usize {
    let mut buf = vec![0u8; 40_000];
    let mut total = 0;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .expect("our reader accepts rustls' records");
        if n == 0 {
            return total;
        }
        total += n;
        writer.write_all(&buf[..n]).await.unwrap();
        writer.flush().await.unwrap();
    }
}

/// Echoes through our TLS stream what the rustls `peer` thread sends (`data`, with forced key
/// updates on our side), and checks what the peer got back.
async fn echo_with_rustls(
    established: Established,
    tcp: TcpStream,
    peer: std::thread::JoinHandle<Vec<u8>>,
    data: &[u8],
) {
    let (rd, wr) = tcp.into_split();
    let (mut reader, mut writer) = split(established, rd, wr, 3).unwrap();
    let echoed = echo(&mut reader, &mut writer).await;
    assert_eq!(echoed, data.len());
    assert!(reader.key_updates() >= 1, "rustls' key update");
    assert!(writer.key_updates() >= 3, "{}", writer.key_updates());
    let got = tokio::task::spawn_blocking(move || peer.join().unwrap())
        .await
        .unwrap();
    assert!(got == data, "echo differs");
}

#[test]
fn our_server_speaks_tls_1_3_with_a_rustls_client() {
    let ids = ids();
    let data = pattern(12 * MAX_PLAINTEXT + 77, 5);
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = transport::client_config(&ids.client).unwrap();
        let sent = data.clone();
        let peer = std::thread::spawn(move || {
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            let name = ServerName::try_from(WORKER_NAME).unwrap();
            let conn = rustls::ClientConnection::new(config, name).unwrap();
            rustls_peer(conn.into(), tcp, sent)
        });
        let (mut tcp, _) = listener.accept().await.unwrap();
        let conn = UnbufferedServerConnection::new(transport::server_config(&ids.worker).unwrap())
            .unwrap();
        let established = drive(conn, &mut tcp, "rustls client").await.unwrap();
        // The client's first data came right behind its Finished.
        assert!(!established.plaintext.is_empty() || !established.ciphertext.is_empty());
        echo_with_rustls(established, tcp, peer, &data).await;
    });
}

#[test]
fn our_client_speaks_tls_1_3_with_a_rustls_server_that_sends_tickets() {
    let ids = ids();
    let data = pattern(12 * MAX_PLAINTEXT + 77, 6);
    runtime().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // rustls' own server, with its default of two session tickets after the handshake.
        let mut config = (*transport::server_config(&ids.worker).unwrap()).clone();
        config.send_tls13_tickets = 2;
        config.enable_secret_extraction = false;
        let sent = data.clone();
        let peer = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            rustls_peer(conn.into(), tcp, sent)
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(WORKER_NAME).unwrap();
        let conn =
            UnbufferedClientConnection::new(transport::client_config(&ids.client).unwrap(), name)
                .unwrap();
        let established = drive(conn, &mut tcp, "rustls server").await.unwrap();
        echo_with_rustls(established, tcp, peer, &data).await;
    });
}
