//! The graph rewrite step of [`crate::realize()`]: the unrealized graph below the targets is
//! rewritten by equality saturation (`ferrograd_ir::rewrite`) before it is scheduled.
//!
//! Rewrites are cached by graph structure (ops, parameters, shapes, dtypes, devices; realized
//! nodes are numbered leaves), so a training loop that builds the same graph on new buffers
//! every step runs egg once. The rewritten graph is instantiated on the current leaves, and the
//! buffers it computes are recorded on the original nodes that have the same value (the
//! targets the caller holds, and intermediates that later graphs may reuse).
//!
//! The same cache keeps each structure's launch plans (`runtime/src/plan.rs`) in every mode, the
//! e-graph off included, so an A/B comparison of the modes compares only the rewrite.
//!
//! **Tiered** (the default): a structure with a reduction is optimized on first sight, any
//! other the second time it is realized. An elementwise graph realized once (random
//! initialization, loading, a one-shot conversion) is not worth an e-graph: it pays one lift
//! and hash and runs as built (the integer hashing of random initialization matches the
//! strength rules: ~16 ms of egg per process when it was optimized). A graph that reduces is
//! what a model's step is made of; optimizing it only at its second realize compiled its
//! changed kernels twice (the transformer block's first three steps, against the optimizer
//! off: 25-70 ms more deferred, -11 to +12 ms on first sight). A repeated elementwise
//! structure is optimized from its second realize on.
//! `FERROGRAD_EGRAPH=0` turns the step off (for A/B comparisons), `=eager` optimizes every
//! graph on first sight (tests, inspection); [`with_mode`] overrides the variable per thread.
//! `FERROGRAD_FAST_MATH=1` allows the rules that change float results (see
//! `ferrograd_ir::rewrite`). A structure no rule can change (most steady-state graphs of the
//! frontend, which builds lean graphs) costs one linear pre-scan, once per structure, and is
//! realized as it is.

use crate::plan::Plans;
use ferrograd_ir::rewrite::{optimize, Lifted, RewriteConfig, RuleOptions, Structure, Template};
use ferrograd_ir::schedule::{schedule_with_leaves, ScheduleItem};
use ferrograd_ir::{Node, NodeRef, Op};
use parking_lot::Mutex;
use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Templates kept at most; the cache is emptied when it is full.
const CACHE_CAPACITY: usize = 1024;

/// A rewrite that saves less than this share of the graph's estimated cost is not applied:
/// the estimate's error is larger than such a gain, while switching to the rewritten graph
/// certainly lowers and compiles its changed kernels again (a transformer block's folded
/// permute pairs: -0.06% estimated, 41 kernels lowered and 13 compiled anew, no measurable
/// gain).
const MIN_GAIN: f64 = 0.005;

/// What is known of a structure.
struct Entry {
    /// Realizes of it so far (tiered mode optimizes from the second).
    seen: u32,
    /// Its rewrite, once made.
    template: Option<Arc<Template>>,
    /// Its launch plans.
    plans: Arc<Plans>,
}

/// Keyed by the whole structure (equality checked on every hit, so no collision can pick a
/// wrong template); Fx hashing, as structures are long.
type Cache = HashMap<(Structure, RewriteConfig), Entry>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::default()))
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
    /// Graphs realized as built because their structure was seen for the first time (tiered
    /// mode).
    pub deferred: u64,
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
    deferred: 0,
    unchanged: 0,
    egg_time: Duration::ZERO,
    overhead_time: Duration::ZERO,
});

/// What the rewrite step did so far in this process.
pub fn rewrite_stats() -> RewriteStats {
    *STATS.lock()
}

/// When the graph rewrite step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Never (`FERROGRAD_EGRAPH=0`).
    Off,
    /// On first sight for a structure with a reduction, from its second realize for any other
    /// (the default).
    Tiered,
    /// On every graph, from its first realize (`FERROGRAD_EGRAPH=eager`).
    Eager,
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Mode>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the rewrite step in `mode` on this thread, whatever `FERROGRAD_EGRAPH` says
/// (for A/B tests inside one process).
pub fn with_mode<R>(mode: Mode, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Mode>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(mode))));
    f()
}

/// Runs `f` with the rewrite step on every graph ([`Mode::Eager`]) or off on this thread.
pub fn with_egraph<R>(on: bool, f: impl FnOnce() -> R) -> R {
    with_mode(if on { Mode::Eager } else { Mode::Off }, f)
}

/// The mode of this thread: [`with_mode`]'s override, else `FERROGRAD_EGRAPH` (`0` or `off`:
/// off; `eager`: eager; unset or anything else: tiered).
pub fn mode() -> Mode {
    OVERRIDE.with(|o| o.get()).unwrap_or_else(|| {
        match std::env::var("FERROGRAD_EGRAPH").as_deref() {
            Ok("0") | Ok("off") => Mode::Off,
            Ok("eager") => Mode::Eager,
            _ => Mode::Tiered,
        }
    })
}

/// True unless the rewrite step is off on this thread.
pub fn enabled() -> bool {
    mode() != Mode::Off
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
pub struct Rewritten<'a> {
    /// The rewritten targets (same order as the originals).
    pub targets: Vec<NodeRef>,
    original_targets: Vec<NodeRef>,
    originals: &'a [NodeRef],
    built: Vec<NodeRef>,
    template: Arc<Template>,
}

impl Rewritten<'_> {
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

/// What the rewrite step found for one realize: the graph taken apart, the rewrite to run
/// (if any) and the structure's launch plans.
pub struct Found {
    /// The caller's graph by structure position ([`Lifted::nodes`]).
    pub nodes: Vec<NodeRef>,
    /// Its realized leaves by slot ([`Lifted::leaves`]).
    pub leaves: Vec<NodeRef>,
    /// The rewrite of the structure, unless the graph is to be realized as built (the step is
    /// off, there is nothing to rewrite, the rewrite is the identity, or, tiered, the
    /// structure is new).
    pub template: Option<Arc<Template>>,
    /// The launch plans of the structure (`runtime/src/plan.rs`).
    pub(crate) plans: Arc<Plans>,
}

impl Found {
    fn as_built(nodes: Vec<NodeRef>, leaves: Vec<NodeRef>, plans: Arc<Plans>) -> Found {
        Found {
            nodes,
            leaves,
            template: None,
            plans,
        }
    }

    /// The schedule of `graph` (the caller's targets or their rewrite) reading this realize's
    /// leaves and computing everything else. Its launch plans were made for that cut; a node
    /// another thread realized since (interned nodes are shared) is still computed here.
    pub fn schedule(&self, graph: &[NodeRef]) -> Vec<ScheduleItem> {
        let leaves: FxHashSet<u64> = self.leaves.iter().map(|n| n.id()).collect();
        schedule_with_leaves(graph, |n| leaves.contains(&n.id()))
    }

    /// The rewritten graph on this realize's leaves (`None` when the graph is realized as
    /// built). Its time counts as the rewrite step's overhead.
    pub fn instantiate(&self, targets: &[NodeRef]) -> Option<Rewritten<'_>> {
        let template = self.template.clone()?;
        let start = Instant::now();
        let built = template.instantiate(&self.nodes, &self.leaves);
        let rewritten = Rewritten {
            // A target folded to a constant is computed into its own buffer (`Contiguous`):
            // were the hash-consed `Const` node itself realized, every later graph using that
            // constant would read a buffer instead of inlining it, and compile different
            // kernels.
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
            originals: &self.nodes,
            built,
            template,
        };
        STATS.lock().overhead_time += start.elapsed();
        Some(rewritten)
    }
}

/// The structure of `targets`, its rewrite (from the cache when the structure was seen) and
/// its launch plans; `None` when nothing is left to compute. In tiered mode a structure seen
/// for the first time is realized as built.
pub fn rewrite(targets: &[NodeRef]) -> Option<Found> {
    if targets.iter().all(|t| t.realized().is_some()) {
        return None;
    }
    let start = Instant::now();
    let Lifted {
        structure,
        leaves,
        nodes,
    } = Lifted::new(targets);
    if structure.nodes.len() == leaves.len() {
        return None;
    }
    let mode = mode();
    let key = (structure, config());
    let known = cache().lock().get_mut(&key).map(|e| {
        e.seen = e.seen.saturating_add(1);
        (e.seen, e.template.clone(), e.plans.clone())
    });
    let (seen, template, plans) = match known {
        Some(k) => k,
        None if mode == Mode::Eager || (mode == Mode::Tiered && has_reduction(&key.0)) => {
            (1, None, Arc::new(Plans::default()))
        }
        None => {
            let plans = Arc::new(Plans::default());
            insert(
                key,
                Entry {
                    seen: 1,
                    template: None,
                    plans: plans.clone(),
                },
            );
            if mode == Mode::Tiered {
                record(Outcome::Deferred, false, Duration::ZERO, start);
            }
            return Some(Found::as_built(nodes, leaves, plans));
        }
    };
    if mode == Mode::Off {
        return Some(Found::as_built(nodes, leaves, plans));
    }
    let mut egg_time = Duration::ZERO;
    let mut outcome = Outcome::CacheHit;
    let template = match template {
        Some(t) => t,
        None => {
            let egg_start = Instant::now();
            let (template, report) = optimize(&key.0, &key.1);
            egg_time = egg_start.elapsed();
            let template = if template.is_identity
                || report.cost_after <= report.cost_before * (1.0 - MIN_GAIN)
            {
                template
            } else {
                Template::identity(&key.0)
            };
            outcome = if report.skipped {
                Outcome::Skipped
            } else {
                Outcome::Ran
            };
            tracing::debug!(
                nodes = key.0.nodes.len(),
                iterations = report.iterations,
                egraph_nodes = report.egraph_nodes,
                stop = %report.stop_reason,
                cost_before = report.cost_before,
                cost_after = report.cost_after,
                applied = ?report.applied,
                "graph rewrite"
            );
            let template = Arc::new(template);
            let mut cache = cache().lock();
            if let Some(e) = cache.get_mut(&key) {
                e.template = Some(template.clone());
            } else {
                drop(cache);
                insert(
                    key,
                    Entry {
                        seen,
                        template: Some(template.clone()),
                        plans: plans.clone(),
                    },
                );
            }
            template
        }
    };
    record(outcome, template.is_identity, egg_time, start);
    if template.is_identity {
        return Some(Found::as_built(nodes, leaves, plans));
    }
    Some(Found {
        nodes,
        leaves,
        template: Some(template),
        plans,
    })
}

/// True when `structure` reduces: what a model's step is made of, optimized on first sight in
/// tiered mode (see the module doc).
fn has_reduction(structure: &Structure) -> bool {
    structure
        .nodes
        .iter()
        .any(|n| matches!(n.op, ferrograd_ir::rewrite::EOp::Reduce(..)))
}

/// Adds a structure to the cache (emptied first when full).
fn insert(key: (Structure, RewriteConfig), entry: Entry) {
    let mut cache = cache().lock();
    if cache.len() >= CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(key, entry);
}

/// How a structure's rewrite was obtained.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    CacheHit,
    Deferred,
    Skipped,
    Ran,
}

fn record(outcome: Outcome, identity: bool, egg_time: Duration, start: Instant) {
    let mut s = STATS.lock();
    match outcome {
        Outcome::CacheHit => s.cache_hits += 1,
        Outcome::Deferred => s.deferred += 1,
        Outcome::Skipped => s.skipped += 1,
        Outcome::Ran => s.runs += 1,
    }
    s.unchanged += u64::from(identity);
    s.egg_time += egg_time;
    s.overhead_time += start.elapsed().saturating_sub(egg_time);
}
