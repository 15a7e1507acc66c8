//! Remote-device transport figures on loopback, over mutual TLS (or plaintext with
//! `--plaintext`): bulk transfer to and from a worker's buffer, and the round trip of a 16 KB
//! activation (written to the worker and read back: one batch each way).
//!
//! `cargo run --release -p ferrograd-distributed --example remote_bench [-- --plaintext]
//! [--round-trip-only]`; `-- --suites` measures the TLS 1.3 AEADs alone instead (seal and
//! open of 16 KiB records, as the record layer does them).

use ferrograd_distributed::cluster::{self, Identity};
use ferrograd_distributed::remote::{RemoteDevice, RemoteOptions};
use ferrograd_distributed::worker::{Worker, WorkerConfig};
use ferrograd_distributed::Security;
use ferrograd_runtime::{register_backend, Backend, Device};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn open(&self) -> ferrograd_runtime::Result<Vec<Arc<dyn Device>>> {
        Ok(vec![Arc::new(ferrograd_cpu::CpuDevice::new()?)])
    }
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux; 10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the command name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Plain TCP on loopback, no protocol: the machine's ceiling at the moment of the run.
fn raw_tcp_gbps(bytes: usize) -> f64 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < bytes {
            got += s.read(&mut buf).unwrap();
        }
        s.write_all(&[1]).unwrap();
    });
    let data = vec![7u8; bytes];
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    s.write_all(&data).unwrap();
    let mut ack = [0u8];
    s.read_exact(&mut ack).unwrap();
    let took = t.elapsed();
    sink.join().unwrap();
    bytes as f64 / took.as_secs_f64() / 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plaintext = std::env::args().any(|a| a == "--plaintext");
    let round_trip_only = std::env::args().any(|a| a == "--round-trip-only");
    if std::env::args().any(|a| a == "--suites") {
        suites();
        return Ok(());
    }
    register_backend(Box::new(Cpu));
    let dir = tempfile::tempdir()?;
    cluster::init(dir.path())?;
    let token = cluster::token(dir.path(), Duration::from_secs(600))?;
    let (worker_security, client_security) = if plaintext {
        (Security::InsecureLoopback, Security::InsecureLoopback)
    } else {
        (
            Security::MutualTls(cluster::redeem(&token)?),
            Security::MutualTls(Identity::load_client(dir.path())?),
        )
    };
    let worker =
        Worker::bind(WorkerConfig::new("127.0.0.1:0".parse()?, worker_security))?.spawn()?;
    let device = RemoteDevice::connect(
        "remote:bench/cpu",
        worker.addr(),
        "cpu",
        &client_security,
        RemoteOptions::default(),
    )?;
    let mode = if plaintext { "plaintext" } else { "mutual TLS" };

    if !round_trip_only {
        bulk(&device, mode)?;
    }
    round_trip(&device, mode)
}

/// Bulk: 256 MiB each way, best of 5.
fn bulk(device: &RemoteDevice, mode: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = 256 << 20;
    let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; bytes];
    let buf = device.allocate(bytes)?;
    let (mut best_write, mut best_read) = (Duration::MAX, Duration::MAX);
    let rounds = 5;
    let cpu_before = cpu_time();
    for _ in 0..rounds {
        let t = Instant::now();
        device.write(&buf, &data)?;
        device.synchronize()?;
        best_write = best_write.min(t.elapsed());
        let t = Instant::now();
        device.read(&buf, &mut back)?;
        best_read = best_read.min(t.elapsed());
    }
    let cpu = cpu_time() - cpu_before;
    assert!(back == data, "bulk data differs");
    let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    println!(
        "bulk 256 MiB over {mode}: client->worker {:.2} GB/s, worker->client {:.2} GB/s (best of {rounds}); \
         {:.2} CPU-s per GB moved (client + worker); raw TCP loopback now: {:.2} GB/s",
        gbps(best_write),
        gbps(best_read),
        cpu.as_secs_f64() / (2.0 * rounds as f64 * bytes as f64 / 1e9),
        raw_tcp_gbps(bytes)
    );
    Ok(())
}

/// 16 KB activation: write + read back = one batch, one round trip.
fn round_trip(device: &RemoteDevice, mode: &str) -> Result<(), Box<dyn std::error::Error>> {
    let act = vec![1u8; 16 << 10];
    let mut out = vec![0u8; 16 << 10];
    let small = device.allocate(act.len())?;
    let mut times = Vec::with_capacity(2000);
    for i in 0..2200 {
        let t = Instant::now();
        device.write(&small, &act)?;
        device.read(&small, &mut out)?;
        if i >= 200 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "16 KB activation round trip over {mode}: median {:.0} us, p10 {:.0} us, p90 {:.0} us ({} samples)",
        pct(0.5),
        pct(0.1),
        pct(0.9),
        times.len()
    );
    Ok(())
}

/// Seal + open throughput of each TLS 1.3 AEAD on 16 KiB records (in place, like the record
/// layer), best of 5 passes over 256 MiB.
fn suites() {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    let algorithms: [(&str, &'static ring::aead::Algorithm); 3] = [
        ("AES-128-GCM", &ring::aead::AES_128_GCM),
        ("AES-256-GCM", &ring::aead::AES_256_GCM),
        ("CHACHA20-POLY1305", &ring::aead::CHACHA20_POLY1305),
    ];
    let record = 16 << 10;
    let records = (256 << 20) / record;
    for (name, algorithm) in algorithms {
        let key =
            LessSafeKey::new(UnboundKey::new(algorithm, &vec![7u8; algorithm.key_len()]).unwrap());
        let aad = || Aad::from([0x17, 0x03, 0x03, 0x40, 0x11]);
        let mut data = vec![3u8; record + 1];
        let (mut seal, mut open) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            let t = Instant::now();
            for i in 0..records {
                let nonce = Nonce::assume_unique_for_key(nonce_of(i));
                let tag = key
                    .seal_in_place_separate_tag(nonce, aad(), &mut data)
                    .unwrap();
                let _ = std::hint::black_box(tag);
            }
            seal = seal.min(t.elapsed());
            // One sealed record opened again and again (decryption is in place: a fresh copy
            // of the ciphertext each time).
            let mut sealed = vec![3u8; record + 1];
            let nonce = Nonce::assume_unique_for_key(nonce_of(0));
            let tag = key
                .seal_in_place_separate_tag(nonce, aad(), &mut sealed)
                .unwrap();
            sealed.extend_from_slice(tag.as_ref());
            let mut work = sealed.clone();
            let t = Instant::now();
            for _ in 0..records {
                work.copy_from_slice(&sealed);
                let nonce = Nonce::assume_unique_for_key(nonce_of(0));
                key.open_in_place(nonce, aad(), &mut work).unwrap();
            }
            open = open.min(t.elapsed());
        }
        let gbps = |d: Duration| (records * record) as f64 / d.as_secs_f64() / 1e9;
        println!(
            "{name}: seal {:.2} GB/s, open {:.2} GB/s (16 KiB records; open includes a 16 KiB copy)",
            gbps(seal),
            gbps(open)
        );
    }
}

fn nonce_of(i: usize) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
    nonce
}
