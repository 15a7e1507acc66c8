//! Criterion benches of the spine workloads (`cargo bench -p ferrograd-benches`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("spine");
    group.sample_size(20);
    for mut w in ferrograd_benches::workloads() {
        if w.flops > 0.0 {
            group.throughput(Throughput::Elements(w.flops as u64));
        } else {
            group.throughput(Throughput::Bytes(w.bytes as u64));
        }
        (w.run)(); // compile outside the measurement
        group.bench_function(w.name, |b| b.iter(&mut w.run));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
