//! Index expressions simplified by equality saturation, with an interval analysis over the
//! loop variables' ranges.
//!
//! [`crate::index`] keeps every index in a canonical affine form and simplifies eagerly
//! (`(4i + j) / 4 -> i` when `0 <= j < 4`). That form is where extraction starts: the e-graph
//! adds what a single canonical form cannot see, e.g. `(x % 12) % 4 -> x % 4`,
//! `(x % 8) / 4 -> (x / 4) % 2` when that merges with another term, re-association that lets a
//! div/mod pair cancel, coefficients reduced past the divisor (`(oh + 14*kh) % 13 -> oh + kh`,
//! a convolution's unfolded rows), and bounds that only hold after re-association. Extraction minimizes ALU
//! operations (divisions and modulos weigh more); the result is converted back through
//! [`IdxCtx`]'s own operations and only kept when it needs fewer operations.
//!
//! Every division and modulo the rules create has an operand that the interval analysis proves
//! non-negative, so truncating (backend) and flooring (this module) semantics agree, as in
//! [`crate::index`].

use crate::index::{Atom, Idx, IdxCtx};
use egg::{define_language, rewrite as rw, Analysis, CostFunction, DidMerge, Id, RecExpr, Runner};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

define_language! {
    /// Integer index arithmetic over loop variables `v0, v1, ...`.
    pub enum IndexLang {
        "+" = Add([Id; 2]),
        "*" = Mul([Id; 2]),
        "/" = Div([Id; 2]),
        "%" = Mod([Id; 2]),
        Num(i64),
        Var(egg::Symbol),
    }
}

/// Interval analysis: the inclusive range of every e-class (and its value when constant).
#[derive(Clone, Debug, Default)]
pub struct Intervals {
    ranges: HashMap<egg::Symbol, (i64, i64)>,
}

type IndexEGraph = egg::EGraph<IndexLang, Intervals>;

fn range_of(eg: &IndexEGraph, id: Id) -> (i64, i64) {
    eg[id].data
}

impl Analysis<IndexLang> for Intervals {
    type Data = (i64, i64);

    fn make(eg: &mut IndexEGraph, n: &IndexLang, _id: Id) -> (i64, i64) {
        let r = |id: &Id| range_of(eg, *id);
        match n {
            IndexLang::Num(c) => (*c, *c),
            IndexLang::Var(v) => eg.analysis.ranges.get(v).copied().unwrap_or((0, 0)),
            IndexLang::Add([a, b]) => {
                let (a, b) = (r(a), r(b));
                (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
            }
            IndexLang::Mul([a, b]) => {
                let (a, b) = (r(a), r(b));
                let p = [
                    a.0.saturating_mul(b.0),
                    a.0.saturating_mul(b.1),
                    a.1.saturating_mul(b.0),
                    a.1.saturating_mul(b.1),
                ];
                (*p.iter().min().unwrap(), *p.iter().max().unwrap())
            }
            IndexLang::Div([a, d]) => {
                let (a, d) = (r(a), r(d));
                if d.0 == d.1 && d.0 > 0 {
                    (a.0.div_euclid(d.0), a.1.div_euclid(d.0))
                } else {
                    (i64::MIN / 4, i64::MAX / 4)
                }
            }
            IndexLang::Mod([a, d]) => {
                let (a, d) = (r(a), r(d));
                if d.0 == d.1 && d.0 > 0 {
                    if a.0 >= 0 && a.1 < d.0 {
                        a
                    } else {
                        (0, d.0 - 1)
                    }
                } else {
                    (i64::MIN / 4, i64::MAX / 4)
                }
            }
        }
    }

    fn merge(&mut self, a: &mut (i64, i64), b: (i64, i64)) -> DidMerge {
        // Both are sound bounds of one value: keep their intersection.
        let new = (a.0.max(b.0), a.1.min(b.1));
        let changed = new != *a;
        let b_changed = new != b;
        *a = new;
        DidMerge(changed, b_changed)
    }

    fn modify(eg: &mut IndexEGraph, id: Id) {
        let (lo, hi) = eg[id].data;
        if lo == hi {
            let c = eg.add(IndexLang::Num(lo));
            eg.union(id, c);
        }
    }
}

fn var(s: &str) -> egg::Var {
    s.parse().expect("pattern variable")
}

/// `?d` is a positive constant and `?a`'s range lies in `lo..hi` relative to it.
fn cond(
    f: impl Fn((i64, i64), i64) -> bool,
    a: &'static str,
    d: &'static str,
) -> impl Fn(&mut IndexEGraph, Id, &egg::Subst) -> bool {
    let (a, d) = (var(a), var(d));
    move |eg, _, s| {
        let dr = range_of(eg, s[d]);
        dr.0 == dr.1 && dr.0 > 0 && f(range_of(eg, s[a]), dr.0)
    }
}

fn rules() -> Vec<egg::Rewrite<IndexLang, Intervals>> {
    let nonneg = |r: (i64, i64), _: i64| r.0 >= 0;
    let below = |r: (i64, i64), d: i64| r.0 >= 0 && r.1 < d;
    vec![
        rw!("add-comm"; "(+ ?a ?b)" => "(+ ?b ?a)"),
        rw!("add-assoc"; "(+ (+ ?a ?b) ?c)" => "(+ ?a (+ ?b ?c))"),
        rw!("mul-comm"; "(* ?a ?b)" => "(* ?b ?a)"),
        rw!("add-zero"; "(+ ?a 0)" => "?a"),
        rw!("mul-one"; "(* ?a 1)" => "?a"),
        rw!("distribute"; "(* (+ ?a ?b) ?c)" => "(+ (* ?a ?c) (* ?b ?c))"),
        rw!("factor"; "(+ (* ?a ?c) (* ?b ?c))" => "(* (+ ?a ?b) ?c)"),
        rw!("div-small"; "(/ ?a ?d)" => "0" if cond(below, "?a", "?d")),
        rw!("mod-small"; "(% ?a ?d)" => "?a" if cond(below, "?a", "?d")),
        rw!("div-split"; "(/ (+ (* ?x ?d) ?r) ?d)" => "(+ ?x (/ ?r ?d))"
            if cond(nonneg, "?r", "?d") if cond(nonneg, "?x", "?d")),
        rw!("mod-split"; "(% (+ (* ?x ?d) ?r) ?d)" => "(% ?r ?d)"
            if cond(nonneg, "?r", "?d") if cond(nonneg, "?x", "?d")),
        rw!("mod-mod"; "(% (% ?x ?a) ?b)" => "(% ?x ?b)"
            if cond(nonneg, "?x", "?b") if divides("?b", "?a")),
        rw!("div-div"; "(/ (/ ?x ?a) ?b)" => "(/ ?x (* ?a ?b))"
            if cond(nonneg, "?x", "?a") if cond(nonneg, "?x", "?b")),
        rw!("div-mod-pair"; "(+ (* (/ ?x ?d) ?d) (% ?x ?d))" => "?x" if cond(nonneg, "?x", "?d")),
        rw!("mod-pair"; "(+ (* (/ (% ?x ?a) ?d) ?d) (% ?x ?d))" => "(% ?x ?a)"
            if cond(nonneg, "?x", "?d") if divides("?d", "?a")),
        rw!("mod-of-div"; "(/ (% ?x ?a) ?b)" => "(% (/ ?x ?b) (/ ?a ?b))"
            if cond(nonneg, "?x", "?b") if divides("?b", "?a")),
        rw!("mod-coefficient"; "(% (+ (* ?x ?c) ?r) ?d)" => { ReduceCoefficient { div: false } }),
        rw!("div-coefficient"; "(/ (+ (* ?x ?c) ?r) ?d)" => { ReduceCoefficient { div: true } }),
    ]
}

/// A coefficient at least the divisor, reduced: `(x*c + r) % d -> (x*(c % d) + r) % d` and
/// `(x*c + r) / d -> x*(c / d) + (x*(c % d) + r) / d`, for constants `c >= d > 0` and
/// non-negative `x` and `r` (so both operands are non-negative and truncating and flooring
/// semantics agree). The unfold of a convolution's windows leaves `(oh + 14*kh) % 13` in its
/// loads; reduced to `(oh + kh) % 13`, the bounds then drop the modulo.
struct ReduceCoefficient {
    div: bool,
}

impl egg::Applier<IndexLang, Intervals> for ReduceCoefficient {
    fn apply_one(
        &self,
        eg: &mut IndexEGraph,
        eclass: Id,
        subst: &egg::Subst,
        _ast: Option<&egg::PatternAst<IndexLang>>,
        _rule: egg::Symbol,
    ) -> Vec<Id> {
        let [x, c, r, d] = ["?x", "?c", "?r", "?d"].map(|v| subst[var(v)]);
        let (cr, dr) = (range_of(eg, c), range_of(eg, d));
        let (c, d) = (cr.0, dr.0);
        if cr.0 != cr.1 || dr.0 != dr.1 || d <= 0 || c < d {
            return Vec::new();
        }
        if range_of(eg, x).0 < 0 || range_of(eg, r).0 < 0 {
            return Vec::new();
        }
        let low = eg.add(IndexLang::Num(c % d));
        let scaled = eg.add(IndexLang::Mul([x, low]));
        let rest = eg.add(IndexLang::Add([scaled, r]));
        let divisor = eg.add(IndexLang::Num(d));
        let reduced = if self.div {
            let quotient = eg.add(IndexLang::Num(c / d));
            let whole = eg.add(IndexLang::Mul([x, quotient]));
            let part = eg.add(IndexLang::Div([rest, divisor]));
            eg.add(IndexLang::Add([whole, part]))
        } else {
            eg.add(IndexLang::Mod([rest, divisor]))
        };
        if eg.union(eclass, reduced) {
            vec![eclass]
        } else {
            Vec::new()
        }
    }
}

/// `?b` and `?a` are positive constants and `?b` divides `?a`.
fn divides(b: &'static str, a: &'static str) -> impl Fn(&mut IndexEGraph, Id, &egg::Subst) -> bool {
    let (a, b) = (var(a), var(b));
    move |eg, _, s| {
        let (ra, rb) = (range_of(eg, s[a]), range_of(eg, s[b]));
        ra.0 == ra.1 && rb.0 == rb.1 && rb.0 > 0 && ra.0 > 0 && ra.0 % rb.0 == 0
    }
}

/// ALU operations, divisions and modulos weighing four.
struct OpCost;

impl CostFunction<IndexLang> for OpCost {
    type Cost = u64;
    fn cost<C: FnMut(Id) -> u64>(&mut self, n: &IndexLang, mut costs: C) -> u64 {
        let own = match n {
            IndexLang::Num(_) | IndexLang::Var(_) => 0,
            IndexLang::Add(_) | IndexLang::Mul(_) => 10,
            IndexLang::Div(_) | IndexLang::Mod(_) => 40,
        };
        // +1 per node keeps the cost strictly monotonic.
        egg::Language::fold(n, own + 1, |acc, c| acc + costs(c))
    }
}

fn add_idx(e: &Idx, expr: &mut RecExpr<IndexLang>) -> Id {
    let mut acc: Option<Id> = None;
    for (atom, c) in e.terms() {
        let a = match atom {
            Atom::Var(v) => expr.add(IndexLang::Var(format!("v{v}").into())),
            Atom::Div(inner, d) => {
                let x = add_idx(inner, expr);
                let d = expr.add(IndexLang::Num(*d));
                expr.add(IndexLang::Div([x, d]))
            }
            Atom::Mod(inner, d) => {
                let x = add_idx(inner, expr);
                let d = expr.add(IndexLang::Num(*d));
                expr.add(IndexLang::Mod([x, d]))
            }
        };
        let term = if *c == 1 {
            a
        } else {
            let k = expr.add(IndexLang::Num(*c));
            expr.add(IndexLang::Mul([a, k]))
        };
        acc = Some(match acc {
            None => term,
            Some(s) => expr.add(IndexLang::Add([s, term])),
        });
    }
    match (acc, e.constant()) {
        (None, k) => expr.add(IndexLang::Num(k)),
        (Some(s), 0) => s,
        (Some(s), k) => {
            let k = expr.add(IndexLang::Num(k));
            expr.add(IndexLang::Add([s, k]))
        }
    }
}

/// Converts an extracted expression back through `ctx` (None if it multiplies two
/// non-constants or divides by a non-positive or non-constant value).
fn to_idx(
    ctx: &IdxCtx,
    vars: &HashMap<egg::Symbol, Idx>,
    expr: &RecExpr<IndexLang>,
) -> Option<Idx> {
    let mut vals: Vec<Idx> = Vec::with_capacity(expr.len());
    for n in expr.as_ref() {
        let v = |id: &Id| &vals[usize::from(*id)];
        let out = match n {
            IndexLang::Num(c) => Idx::konst(*c),
            IndexLang::Var(s) => vars.get(s)?.clone(),
            IndexLang::Add([a, b]) => ctx.add(v(a), v(b)),
            IndexLang::Mul([a, b]) => match (v(a).as_const(), v(b).as_const()) {
                (_, Some(c)) => ctx.mul(v(a), c),
                (Some(c), _) => ctx.mul(v(b), c),
                _ => return None,
            },
            IndexLang::Div([a, d]) => match v(d).as_const() {
                Some(d) if d > 0 => ctx.div(v(a), d),
                _ => return None,
            },
            IndexLang::Mod([a, d]) => match v(d).as_const() {
                Some(d) if d > 0 => ctx.modulo(v(a), d),
                _ => return None,
            },
        };
        vals.push(out);
    }
    vals.pop()
}

fn has_div_mod(e: &Idx) -> bool {
    e.terms()
        .iter()
        .any(|(a, _)| matches!(a, Atom::Div(..) | Atom::Mod(..)))
}

/// True when the e-graph can find something the canonical form has not. Every rule that lowers
/// the cost relates two divisions/modulos: one inside the other (`mod-mod`, `div-div`,
/// `mod-of-div`, `mod-pair`) or two of the same operand side by side. A division or modulo of
/// an affine expression on its own is already split, bounded and reduced by [`IdxCtx`] itself
/// (`div-split`, `div-small`, common factors) — except where the canonical form could not split
/// off a part of the operand because the remainder may be negative (`(5*i - j + 5) / 5`), which
/// the e-graph's intervals can still do, or where a coefficient is at least the divisor
/// (`(oh + 14*kh) % 13`, reduced by `mod-coefficient`): a coefficient or constant at least as
/// large as the divisor lets it try. The quotient and remainder of one operand by one divisor
/// (`2048*(x/4) + 16*(x%4)`, an unraveled dimension read with other strides) are not a pair
/// it can improve: [`IdxCtx`] already folds the one combination that cancels,
/// `k*d*(x/d) + k*(x%d)`.
fn can_win(e: &Idx) -> bool {
    let parts: Vec<(&Idx, i64, bool)> = e
        .terms()
        .iter()
        .filter_map(|(a, _)| match a {
            Atom::Var(_) => None,
            Atom::Div(inner, d) => Some((&**inner, *d, true)),
            Atom::Mod(inner, d) => Some((&**inner, *d, false)),
        })
        .collect();
    // Two parts of one operand that the e-graph may relate: not a quotient and remainder by
    // the same divisor.
    let related = |(x, dx, div_x): (&Idx, i64, bool), (y, dy, div_y): (&Idx, i64, bool)| {
        x == y && !(dx == dy && div_x != div_y)
    };
    parts.iter().any(|(x, _, _)| has_div_mod(x))
        || parts
            .iter()
            .enumerate()
            .any(|(i, &p)| parts[i + 1..].iter().any(|&q| related(p, q)))
        || e.terms().iter().any(|(atom, _)| match atom {
            Atom::Var(_) => false,
            Atom::Div(inner, d) | Atom::Mod(inner, d) => {
                inner.constant().abs() >= *d || inner.terms().iter().any(|(_, c)| c.abs() >= *d)
            }
        })
}

static LOADS: AtomicU64 = AtomicU64::new(0);
static RUNS: AtomicU64 = AtomicU64::new(0);
static SIMPLIFIED: AtomicU64 = AtomicU64::new(0);
static EGG_NANOS: AtomicU64 = AtomicU64::new(0);

/// What the index simplification did so far in this process (all threads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Load indices with a division or modulo seen by [`simplify_cached`] (cache hits included).
    pub loads: u64,
    /// E-graphs built and saturated (expressions that `can_win` passes and missed the cache).
    pub runs: u64,
    /// Runs that found a cheaper expression.
    pub simplified: u64,
    /// Time spent in those runs.
    pub egg_time: Duration,
}

/// The process-wide [`IndexStats`].
pub fn stats() -> IndexStats {
    IndexStats {
        loads: LOADS.load(Ordering::Relaxed),
        runs: RUNS.load(Ordering::Relaxed),
        simplified: SIMPLIFIED.load(Ordering::Relaxed),
        egg_time: Duration::from_nanos(EGG_NANOS.load(Ordering::Relaxed)),
    }
}

fn collect_vars(e: &Idx, out: &mut Vec<u32>) {
    for (atom, _) in e.terms() {
        match atom {
            Atom::Var(v) => out.push(*v),
            Atom::Div(inner, _) | Atom::Mod(inner, _) => collect_vars(inner, out),
        }
    }
}

/// E-nodes at most per index expression (commutativity and distribution grow e-graphs fast;
/// the rewrites that pay are a few steps deep).
const NODE_LIMIT: usize = 400;
/// Saturation iterations at most per index expression.
const ITER_LIMIT: usize = 5;
/// Time at most per index expression: a guard only. The node and iteration limits stop every
/// run first (well under a millisecond), so the result does not depend on the machine's load
/// (a timing-dependent result would give one kernel two Programs, compiled twice).
const TIME_LIMIT: Duration = Duration::from_millis(50);

/// `e` simplified by equality saturation over `ctx`'s variable ranges; `e` itself when nothing
/// cheaper is found. Affine expressions (no division or modulo) are returned as they are: the
/// canonical form is already minimal for them. Bounded by node, iteration and time limits.
pub fn simplify(ctx: &IdxCtx, e: &Idx) -> Idx {
    if !has_div_mod(e) {
        return e.clone();
    }
    let start = Instant::now();
    let out = saturate(ctx, e);
    RUNS.fetch_add(1, Ordering::Relaxed);
    SIMPLIFIED.fetch_add(u64::from(out != *e), Ordering::Relaxed);
    EGG_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

fn saturate(ctx: &IdxCtx, e: &Idx) -> Idx {
    let mut used = Vec::new();
    collect_vars(e, &mut used);
    let mut ranges = HashMap::new();
    let mut vars = HashMap::new();
    for v in used {
        let s: egg::Symbol = format!("v{v}").into();
        ranges.insert(s, ctx.var_bounds(v));
        vars.insert(s, Idx::of_var(v));
    }
    let mut expr = RecExpr::default();
    add_idx(e, &mut expr);
    let runner = Runner::default()
        .with_egraph(egg::EGraph::new(Intervals { ranges }))
        .with_expr(&expr)
        .with_node_limit(NODE_LIMIT)
        .with_iter_limit(ITER_LIMIT)
        .with_time_limit(TIME_LIMIT)
        .run(&rules());
    let extractor = egg::Extractor::new(&runner.egraph, OpCost);
    let (_, best) = extractor.find_best(runner.roots[0]);
    match to_idx(ctx, &vars, &best) {
        Some(s) if s.op_count() < e.op_count() => s,
        _ => e.clone(),
    }
}

type CacheKey = (Idx, Vec<(u32, (i64, i64))>);

thread_local! {
    static CACHE: std::cell::RefCell<HashMap<CacheKey, Idx>> = Default::default();
}

/// [`simplify`] where `can_win` says it may help (elsewhere `e` itself), memoized per thread by the expression and its
/// variables' ranges (lowering runs on every realize; the same kernels come back every
/// training step).
pub fn simplify_cached(ctx: &IdxCtx, e: &Idx) -> Idx {
    if !has_div_mod(e) {
        return e.clone();
    }
    LOADS.fetch_add(1, Ordering::Relaxed);
    if !can_win(e) {
        return e.clone();
    }
    let mut used = Vec::new();
    collect_vars(e, &mut used);
    used.sort_unstable();
    used.dedup();
    let key = (
        e.clone(),
        used.iter().map(|&v| (v, ctx.var_bounds(v))).collect(),
    );
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let out = simplify(ctx, e);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 4096 {
            c.clear();
        }
        c.insert(key, out.clone());
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_values(ctx: &IdxCtx, a: &Idx, b: &Idx, sizes: &[usize]) {
        let total: usize = sizes.iter().product();
        for flat in 0..total {
            let mut rest = flat;
            let vals: Vec<i64> = sizes
                .iter()
                .map(|&n| {
                    let v = rest % n;
                    rest /= n;
                    v as i64
                })
                .collect();
            assert_eq!(a.eval(&vals), b.eval(&vals), "{a:?} vs {b:?} at {vals:?}");
        }
        let _ = ctx;
    }

    #[test]
    fn finds_mod_of_mod() {
        let mut ctx = IdxCtx::new();
        let m = ctx.var(48);
        let e = ctx.modulo(&ctx.modulo(&m, 12), 4);
        assert!(can_win(&e), "{e:?}");
        let s = simplify(&ctx, &e);
        assert_eq!(s, ctx.modulo(&m, 4), "from {e:?}");
        assert!(s.op_count() < e.op_count());
        all_values(&ctx, &e, &s, &[48]);
    }

    #[test]
    fn finds_div_of_mod_merging_with_a_neighbour() {
        // ((x % 8) / 4) * 4 + (x % 4) == x % 8
        let mut ctx = IdxCtx::new();
        let x = ctx.var(64);
        let hi = ctx.mul(&ctx.div(&ctx.modulo(&x, 8), 4), 4);
        let e = ctx.add(&hi, &ctx.modulo(&x, 4));
        assert!(can_win(&e), "{e:?}");
        let s = simplify(&ctx, &e);
        assert!(s.op_count() < e.op_count(), "{e:?} -> {s:?}");
        all_values(&ctx, &e, &s, &[64]);
    }

    #[test]
    fn reduces_a_coefficient_past_the_divisor() {
        // A convolution's unfolded rows: (oh + 14*kh) % 13. With oh < 11 the canonical form is
        // already oh + kh (`index::tests::sliding_window_indices_are_affine`), nothing to win;
        // with oh < 13, oh + kh can reach 13: the modulo stays, on the reduced coefficient.
        let mut ctx = IdxCtx::new();
        let oh = ctx.var(11);
        let kh = ctx.var(3);
        let e = ctx.modulo(&ctx.add(&oh, &ctx.mul(&kh, 14)), 13);
        assert_eq!(e, ctx.add(&oh, &kh));
        assert!(!can_win(&e));
        let mut ctx = IdxCtx::new();
        let oh = ctx.var(13);
        let kh = ctx.var(3);
        let e = ctx.modulo(&ctx.add(&oh, &ctx.mul(&kh, 14)), 13);
        assert!(can_win(&e), "{e:?}");
        let s = simplify(&ctx, &e);
        assert!(s.op_count() < e.op_count(), "{e:?} -> {s:?}");
        all_values(&ctx, &e, &s, &[13, 3]);
    }

    #[test]
    fn does_not_reduce_a_coefficient_of_a_possibly_negative_operand() {
        let mut ctx = IdxCtx::new();
        let i = ctx.var(11);
        let j = ctx.var(4);
        let k = ctx.var(3);
        // The rest of the operand, i - j, can be negative: (i - j + 14k) % 13 is kept.
        let rest = ctx.add(&i, &ctx.mul(&j, -1));
        let e = ctx.modulo(&ctx.add(&rest, &ctx.mul(&k, 14)), 13);
        assert_eq!(simplify(&ctx, &e), e);
    }

    #[test]
    fn does_not_split_possibly_negative_operands() {
        let mut ctx = IdxCtx::new();
        let j = ctx.var(4);
        let e = ctx.div(&ctx.add_const(&j, -1), 4); // -1..=2: kept whole
        let s = simplify(&ctx, &e);
        assert_eq!(s, e);
        let m = ctx.modulo(&ctx.add_const(&j, -3), 2);
        assert_eq!(simplify(&ctx, &m), m);
    }

    #[test]
    fn affine_expressions_are_left_alone() {
        let mut ctx = IdxCtx::new();
        let i = ctx.var(8);
        let j = ctx.var(4);
        let e = ctx.add(&ctx.mul(&i, 4), &j);
        assert_eq!(simplify(&ctx, &e), e);
    }

    proptest! {
        /// The ground for `can_win`: divisions and modulos of affine expressions that are
        /// neither nested nor share an operand (other than as the quotient and remainder by
        /// one divisor) leave the e-graph nothing to improve, so skipping it loses nothing.
        #[test]
        fn unrelated_divisions_and_modulos_are_already_minimal(
            a in 1usize..9, b in 1usize..9, ca in -6i64..7, cb in -6i64..7, k in -5i64..9,
            d1 in 1i64..13, d2 in 1i64..13,
        ) {
            let mut ctx = IdxCtx::new();
            let x = ctx.var(a);
            let y = ctx.var(b);
            let lin = ctx.add_const(&ctx.add(&ctx.mul(&x, ca), &ctx.mul(&y, cb)), k);
            let other = ctx.add(&ctx.mul(&x, cb), &y);
            let candidates = [
                ctx.div(&lin, d1),
                ctx.modulo(&lin, d1),
                ctx.add(&ctx.div(&lin, d1), &ctx.modulo(&other, d2)),
                ctx.add(&ctx.modulo(&lin, d1), &ctx.mul(&ctx.div(&other, d2), 3)),
                // An unraveled dimension read with other strides.
                ctx.add(
                    &ctx.mul(&ctx.div(&lin, d1), cb.abs() + 1),
                    &ctx.mul(&ctx.modulo(&lin, d1), ca.abs() + 1),
                ),
            ];
            for e in candidates {
                if !can_win(&e) {
                    prop_assert_eq!(simplify(&ctx, &e).op_count(), e.op_count(), "{:?}", e);
                }
            }
        }

        #[test]
        fn simplification_keeps_values_and_never_costs_more(
            a in 1usize..9, b in 1usize..9, ca in 1i64..6, cb in 1i64..6, k in 0i64..5,
            d1 in 1i64..9, d2 in 1i64..9, m1 in 1i64..13, m2 in 1i64..5,
        ) {
            let mut ctx = IdxCtx::new();
            let x = ctx.var(a);
            let y = ctx.var(b);
            let lin = ctx.add_const(&ctx.add(&ctx.mul(&x, ca), &ctx.mul(&y, cb)), k);
            let e1 = ctx.modulo(&ctx.modulo(&lin, m1), m2);
            let e2 = ctx.div(&ctx.modulo(&lin, m1), d1);
            let e3 = ctx.add(&ctx.mul(&ctx.div(&lin, d2), d2), &ctx.modulo(&ctx.div(&lin, d1), m1));
            for e in [e1, e2, e3] {
                let s = simplify(&ctx, &e);
                prop_assert!(s.op_count() <= e.op_count());
                for vx in 0..a as i64 { for vy in 0..b as i64 {
                    let vars: Vec<i64> = [(a, vx), (b, vy)].iter().filter(|(n, _)| *n > 1).map(|(_, v)| *v).collect();
                    prop_assert_eq!(s.eval(&vars), e.eval(&vars), "{:?} -> {:?}", e, s);
                }}
            }
        }
    }
}
