//! The graph rewrite step of [`crate::realize`]: the unrealized graph below the targets is
//! rewritten by equality saturation (`ferrograd_ir::rewrite`) before it is scheduled.
//!
//! Rewrites are cached by graph structure (ops, parameters, shapes, dtypes, devices; realized
//! nodes are numbered leaves), so a training loop that builds the same graph on new buffers
//! every step runs egg once. The rewritten graph is instantiated on the current leaves, and the
//! buffers it computes are recorded on the original nodes that have the same value (the
//! targets the caller holds, and intermediates that later graphs may reuse).
//!
//! The step is off by default for now; `FERROGRAD_EGRAPH=1` turns it on (`=0` off, for A/B
//! comparisons): on the quiet machine its per-step cost made the MNIST step slower (see
//! docs/BENCHMARKS.md).
//! `FERROGRAD_FAST_MATH=1` allows the rules that change float results (see
//! `ferrograd_ir::rewrite`). A structure no rule can change (most steady-state graphs of the
//! frontend, which builds lean graphs) costs one linear pre-scan, once per structure, and is
//! realized as it is.

use ferrograd_ir::rewrite::{optimize, Lifted, RewriteConfig, RuleOptions, Structure, Template};
use ferrograd_ir::{Node, NodeRef, Op};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Templates kept at most; the cache is emptied when it is full.
const CACHE_CAPACITY: usize = 1024;

type Cache = HashMap<(Structure, RewriteConfig), Arc<Template>>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Counters of the rewrite step (process-wide).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// Graphs rewritten by egg (cache misses).
    pub runs: u64,
    /// Graphs whose rewrite came from the cache.
    pub cache_hits: u64,
    /// Graphs the pre-scan found nothing to rewrite in (no e-graph built; cache misses).
    pub skipped: u64,
    /// Graphs realized as they are because their rewrite is the identity (skipped or not
    /// cheaper; cache hits included).
    pub unchanged: u64,
    /// Time spent in egg (saturation and extraction).
    pub egg_time: Duration,
    /// Time spent taking graphs apart, looking them up and rebuilding them.
    pub overhead_time: Duration,
}

static STATS: Mutex<RewriteStats> = Mutex::new(RewriteStats {
    runs: 0,
    cache_hits: 0,
    skipped: 0,
    unchanged: 0,
    egg_time: Duration::ZERO,
    overhead_time: Duration::ZERO,
});

/// What the rewrite step did so far in this process.
pub fn rewrite_stats() -> RewriteStats {
    *STATS.lock()
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the rewrite step on or off on this thread, whatever `FERROGRAD_EGRAPH` says
/// (for A/B tests inside one process).
pub fn with_egraph<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(on))));
    f()
}

/// True when `FERROGRAD_EGRAPH` is set to anything but `0` (or [`with_egraph`] says so on
/// this thread).
pub fn enabled() -> bool {
    OVERRIDE.with(|o| o.get()).unwrap_or_else(|| {
        std::env::var("FERROGRAD_EGRAPH")
            .map(|v| v != "0")
            .unwrap_or(false)
    })
}

/// The configuration realizes use (`FERROGRAD_FAST_MATH=1` enables fast-math rules).
pub fn config() -> RewriteConfig {
    let fast_math = std::env::var("FERROGRAD_FAST_MATH")
        .map(|v| v == "1")
        .unwrap_or(false);
    RewriteConfig {
        options: RuleOptions { fast_math },
        ..RewriteConfig::default()
    }
}

/// A rewritten graph and the way back to the original nodes.
pub struct Rewritten {
    /// The rewritten targets (same order as the originals).
    pub targets: Vec<NodeRef>,
    original_targets: Vec<NodeRef>,
    originals: Vec<NodeRef>,
    built: Vec<NodeRef>,
    template: Arc<Template>,
}

impl Rewritten {
    /// Records the buffers computed for the rewritten graph on the original nodes with the
    /// same value.
    pub fn record_on_originals(&self) {
        for (orig, target) in self.original_targets.iter().zip(&self.targets) {
            if let (None, Some(buf)) = (orig.realized(), target.realized()) {
                orig.set_realized(buf.clone());
            }
        }
        for (orig, alias) in self.originals.iter().zip(&self.template.alias) {
            if orig.realized().is_some() {
                continue;
            }
            if let Some(buf) = alias.and_then(|a| self.built[a as usize].realized()) {
                orig.set_realized(buf.clone());
            }
        }
    }
}

/// The rewritten graph of `targets` (from the cache when its structure was seen), or `None`
/// when the step is off or there is nothing to rewrite.
pub fn rewrite(targets: &[NodeRef]) -> Option<Rewritten> {
    if !enabled() || targets.iter().all(|t| t.realized().is_some()) {
        return None;
    }
    let start = Instant::now();
    let lifted = Lifted::new(targets);
    if lifted.structure.nodes.len() == lifted.leaves.len() {
        return None;
    }
    let config = config();
    let key = (lifted.structure, config);
    let cached = cache().lock().get(&key).cloned();
    let hit = cached.is_some();
    let mut egg_time = Duration::ZERO;
    let mut skipped = false;
    let template = match cached {
        Some(t) => t,
        None => {
            let egg_start = Instant::now();
            let (template, report) = optimize(&key.0, &key.1);
            egg_time = egg_start.elapsed();
            skipped = report.skipped;
            tracing::debug!(
                nodes = key.0.nodes.len(),
                iterations = report.iterations,
                egraph_nodes = report.egraph_nodes,
                stop = %report.stop_reason,
                cost_before = report.cost_before,
                cost_after = report.cost_after,
                "graph rewrite"
            );
            let template = Arc::new(template);
            let mut c = cache().lock();
            if c.len() >= CACHE_CAPACITY {
                c.clear();
            }
            c.insert(key, template.clone());
            template
        }
    };
    let is_identity = template.is_identity;
    let record = |s: &mut RewriteStats| {
        match (hit, skipped) {
            (true, _) => s.cache_hits += 1,
            (false, true) => s.skipped += 1,
            (false, false) => s.runs += 1,
        }
        s.unchanged += u64::from(is_identity);
        s.egg_time += egg_time;
        s.overhead_time += start.elapsed().saturating_sub(egg_time);
    };
    if is_identity {
        record(&mut STATS.lock());
        return None;
    }
    let built = template.instantiate(&lifted.leaves);
    let rewritten = Rewritten {
        // A target folded to a constant is computed into its own buffer (`Contiguous`): were
        // the hash-consed `Const` node itself realized, every later graph using that constant
        // would read a buffer instead of inlining it, and compile different kernels.
        targets: template
            .roots
            .iter()
            .map(|&r| {
                let t = &built[r as usize];
                if matches!(t.op(), Op::Const(_)) && t.realized().is_none() {
                    Node::contiguous(t)
                } else {
                    t.clone()
                }
            })
            .collect(),
        original_targets: targets.to_vec(),
        originals: lifted.nodes,
        built,
        template,
    };
    record(&mut STATS.lock());
    Some(rewritten)
}
