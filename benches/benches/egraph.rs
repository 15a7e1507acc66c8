//! Criterion bench of the graph rewrite: saturating and extracting a 2,000-node graph
//! (`cargo bench -p ferrograd-benches --bench egraph`; the target is <= 50 ms).

use criterion::{criterion_group, criterion_main, Criterion};
use ferrograd_benches::graphs::mixed_graph;
use ferrograd_ir::rewrite::{optimize, Lifted, RewriteConfig};

fn bench(c: &mut Criterion) {
    let targets = mixed_graph(2000);
    let lifted = Lifted::new(&targets);
    let n = lifted.structure.nodes.len();
    let config = RewriteConfig::default();
    let (_, report) = optimize(&lifted.structure, &config);
    println!("graph: {n} nodes; {report:?}");
    let mut group = c.benchmark_group("egraph");
    group.sample_size(20);
    group.bench_function(format!("rewrite_{n}_nodes"), |b| {
        b.iter(|| optimize(&lifted.structure, &config))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
