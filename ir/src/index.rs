//! Symbolic index arithmetic with range analysis.
//!
//! Movement ops turn into index expressions over a kernel's loop variables. An [`Idx`] is a
//! canonical sum `Σ coef·atom + konst` where an atom is a loop variable or a floor division /
//! modulo of another sum by a positive constant. Every operation simplifies using the variables'
//! ranges, so `(i*4 + j) / 4` becomes `i` when `0 <= j < 4`, and `(i*4 + j) % 4` becomes `j`.
//!
//! Division and modulo are only split when the operand is known non-negative, so truncating
//! (C-style) and flooring semantics agree on every expression a backend receives.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// A leaf of an index sum.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// A loop variable.
    Var(u32),
    /// `floor(inner / d)`, d > 1.
    Div(Box<Idx>, i64),
    /// `inner mod d`, d > 1.
    Mod(Box<Idx>, i64),
}

/// A canonical index expression: sorted terms with non-zero coefficients plus a constant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Idx {
    terms: Vec<(Atom, i64)>,
    konst: i64,
}

/// Inclusive value ranges of the loop variables (indexed by variable number).
#[derive(Clone, Debug, Default)]
pub struct IdxCtx {
    ranges: Vec<(i64, i64)>,
}

impl Idx {
    /// The constant `c`.
    pub fn konst(c: i64) -> Idx {
        Idx {
            terms: Vec::new(),
            konst: c,
        }
    }
    /// The loop variable `v` (its range lives in the [`IdxCtx`] that declared it).
    pub fn of_var(v: u32) -> Idx {
        Idx {
            terms: vec![(Atom::Var(v), 1)],
            konst: 0,
        }
    }
    /// The constant value, if this expression has no variables.
    pub fn as_const(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.konst)
    }
    /// The terms `(atom, coefficient)`.
    pub fn terms(&self) -> &[(Atom, i64)] {
        &self.terms
    }
    /// The constant part.
    pub fn constant(&self) -> i64 {
        self.konst
    }
    /// Coefficient of variable `v` if the expression is affine in it (it appears only as a plain
    /// term, not inside a div or mod); `Some(0)` if it does not appear at all.
    pub fn affine_coef(&self, v: u32) -> Option<i64> {
        let mut coef = 0;
        for (atom, c) in &self.terms {
            match atom {
                Atom::Var(x) if *x == v => coef = *c,
                Atom::Var(_) => {}
                Atom::Div(inner, _) | Atom::Mod(inner, _) => {
                    if inner.mentions(v) {
                        return None;
                    }
                }
            }
        }
        Some(coef)
    }
    /// True if variable `v` occurs anywhere in the expression.
    pub fn mentions(&self, v: u32) -> bool {
        self.terms.iter().any(|(atom, _)| match atom {
            Atom::Var(x) => *x == v,
            Atom::Div(inner, _) | Atom::Mod(inner, _) => inner.mentions(v),
        })
    }
    /// Evaluates with concrete variable values.
    pub fn eval(&self, vars: &[i64]) -> i64 {
        let mut acc = self.konst;
        for (atom, c) in &self.terms {
            let a = match atom {
                Atom::Var(v) => vars[*v as usize],
                Atom::Div(inner, d) => inner.eval(vars).div_euclid(*d),
                Atom::Mod(inner, d) => inner.eval(vars).rem_euclid(*d),
            };
            acc += c * a;
        }
        acc
    }
    /// Counts the ALU operations needed to compute this expression (adds, muls, divs, mods).
    pub fn op_count(&self) -> usize {
        let mut n = 0;
        for (i, (atom, c)) in self.terms.iter().enumerate() {
            if i > 0 {
                n += 1;
            }
            if *c != 1 {
                n += 1;
            }
            if let Atom::Div(inner, _) | Atom::Mod(inner, _) = atom {
                n += 1 + inner.op_count();
            }
        }
        if self.konst != 0 && !self.terms.is_empty() {
            n += 1;
        }
        n
    }
    fn from_terms(map: BTreeMap<Atom, i64>, konst: i64) -> Idx {
        Idx {
            terms: map.into_iter().filter(|(_, c)| *c != 0).collect(),
            konst,
        }
    }
}

/// `a` as `c·q + rest`: `q` holds the terms whose coefficients `c` divides (divided by `c`)
/// and the constant's quotient, `rest` the other terms and the constant's remainder (in
/// `0..c`).
fn split_multiples(a: &Idx, c: i64) -> (Idx, Idx) {
    let mut quot = BTreeMap::new();
    let mut rest = BTreeMap::new();
    for (atom, k) in &a.terms {
        if k % c == 0 {
            quot.insert(atom.clone(), k / c);
        } else {
            rest.insert(atom.clone(), *k);
        }
    }
    (
        Idx::from_terms(quot, a.konst.div_euclid(c)),
        Idx::from_terms(rest, a.konst.rem_euclid(c)),
    )
}

/// `a` as `d·q + rest` with every coefficient of `rest` the nearest remainder of `a`'s modulo
/// `d` (in `-d/2..=d/2`) and its constant in `0..d`.
fn split_remainders(a: &Idx, d: i64) -> (Idx, Idx) {
    let mut quot = BTreeMap::new();
    let mut rest = BTreeMap::new();
    for (atom, k) in &a.terms {
        let mut r = k.rem_euclid(d);
        if 2 * r > d {
            r -= d;
        }
        quot.insert(atom.clone(), (k - r) / d);
        rest.insert(atom.clone(), r);
    }
    (
        Idx::from_terms(quot, a.konst.div_euclid(d)),
        Idx::from_terms(rest, a.konst.rem_euclid(d)),
    )
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl IdxCtx {
    /// A context with no variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a new variable ranging over `0..size` and returns it (a size-1 variable is the
    /// constant 0).
    pub fn var(&mut self, size: usize) -> Idx {
        self.var_range(0, size as i64 - 1)
    }

    /// Declares a variable with the inclusive range `lo..=hi`.
    pub fn var_range(&mut self, lo: i64, hi: i64) -> Idx {
        if lo == hi {
            return Idx::konst(lo);
        }
        let v = self.ranges.len() as u32;
        self.ranges.push((lo, hi));
        Idx {
            terms: vec![(Atom::Var(v), 1)],
            konst: 0,
        }
    }

    /// The variable number of the last declared variable.
    pub fn num_vars(&self) -> usize {
        self.ranges.len()
    }

    /// The inclusive range of variable `v`.
    pub fn var_bounds(&self, v: u32) -> (i64, i64) {
        self.ranges[v as usize]
    }

    /// The inclusive range of values `e` can take.
    pub fn range(&self, e: &Idx) -> (i64, i64) {
        let (mut lo, mut hi) = (e.konst, e.konst);
        for (atom, c) in &e.terms {
            let (alo, ahi) = self.atom_range(atom);
            let (x, y) = (alo.saturating_mul(*c), ahi.saturating_mul(*c));
            lo = lo.saturating_add(x.min(y));
            hi = hi.saturating_add(x.max(y));
        }
        (lo, hi)
    }

    fn atom_range(&self, atom: &Atom) -> (i64, i64) {
        match atom {
            Atom::Var(v) => self.ranges[*v as usize],
            Atom::Div(inner, d) => {
                let (lo, hi) = self.range(inner);
                (lo.div_euclid(*d), hi.div_euclid(*d))
            }
            Atom::Mod(inner, d) => {
                let (lo, hi) = self.range(inner);
                if lo >= 0 && hi < *d {
                    (lo, hi)
                } else {
                    (0, d - 1)
                }
            }
        }
    }

    /// `a + b`.
    pub fn add(&self, a: &Idx, b: &Idx) -> Idx {
        let mut map: BTreeMap<Atom, i64> = a.terms.iter().cloned().collect();
        for (atom, c) in &b.terms {
            *map.entry(atom.clone()).or_insert(0) += c;
        }
        self.fold_div_mod_pairs(map, a.konst + b.konst)
    }

    /// `a + c`.
    pub fn add_const(&self, a: &Idx, c: i64) -> Idx {
        Idx {
            terms: a.terms.clone(),
            konst: a.konst + c,
        }
    }

    /// `a * c`.
    pub fn mul(&self, a: &Idx, c: i64) -> Idx {
        if c == 0 {
            return Idx::konst(0);
        }
        Idx {
            terms: a
                .terms
                .iter()
                .map(|(atom, k)| (atom.clone(), k * c))
                .collect(),
            konst: a.konst * c,
        }
    }

    /// Rewrites `k·n·(x / n) + k·(x % n)` into `k·x` (the pair that merged dimensions produce),
    /// with `x / n` in its canonical form: for `x = y / m + j` that is `(y + j·m) / (m·n)`, so
    /// the three parts of a flattened `[c, h, w]` fold back in two steps, for every lane.
    fn fold_div_mod_pairs(&self, mut map: BTreeMap<Atom, i64>, mut konst: i64) -> Idx {
        loop {
            let pair = map.iter().find_map(|(atom, &c)| {
                let Atom::Mod(inner, n) = atom else {
                    return None;
                };
                let quotient = self.div(inner, *n);
                let [(div, 1)] = quotient.terms.as_slice() else {
                    return None;
                };
                (map.get(div) == Some(&(c * n))).then(|| {
                    let rest = inner.konst * c - c * n * quotient.konst;
                    (atom.clone(), div.clone(), (**inner).clone(), c, rest)
                })
            });
            let Some((mod_atom, div_atom, inner, c, rest)) = pair else {
                break;
            };
            map.remove(&mod_atom);
            map.remove(&div_atom);
            for (atom, k) in inner.terms {
                *map.entry(atom).or_insert(0) += k * c;
            }
            konst += rest;
        }
        Idx::from_terms(map, konst)
    }

    /// `floor(a / d)` for d > 0.
    pub fn div(&self, a: &Idx, d: i64) -> Idx {
        assert!(d > 0, "index division by {d}");
        if d == 1 {
            return a.clone();
        }
        let (lo, hi) = self.range(a);
        if lo.div_euclid(d) == hi.div_euclid(d) {
            return Idx::konst(lo.div_euclid(d));
        }
        if let Some((q, _)) = self.remainders_below(a, d) {
            return q;
        }
        // Split off the multiples of d when the remainder is provably non-negative.
        let (q, rest) = split_multiples(a, d);
        let (rlo, rhi) = self.range(&rest);
        if (!q.terms.is_empty() || q.konst > 0) && rlo >= 0 {
            let tail = if rhi < d {
                Idx::konst(0)
            } else {
                self.div(&rest, d)
            };
            return self.add(&q, &tail);
        }
        if lo < 0 {
            return Idx {
                terms: vec![(Atom::Div(Box::new(a.clone()), d), 1)],
                konst: 0,
            };
        }
        if let Some((x, _, c)) = self.split_aligned(a, d) {
            return self.div(&x, d / c);
        }
        // Common factor: (g·x) / d == x / (d/g) when g divides d.
        let g = a.terms.iter().fold(gcd(a.konst, d), |g, (_, c)| gcd(g, *c));
        if g > 1 {
            return self.div(&self.exact_div(a, g), d / g);
        }
        // Nested division: (x / m + j) / d == (x + j·m) / (m·d).
        if let [(Atom::Div(inner, m), 1)] = a.terms.as_slice() {
            return self.div(&self.add_const(inner, a.konst * m), m * d);
        }
        Idx {
            terms: vec![(Atom::Div(Box::new(a.clone()), d), 1)],
            konst: 0,
        }
    }

    /// `a mod d` for d > 0.
    pub fn modulo(&self, a: &Idx, d: i64) -> Idx {
        assert!(d > 0, "index modulo by {d}");
        if d == 1 {
            return Idx::konst(0);
        }
        let (lo, hi) = self.range(a);
        if lo >= 0 && hi < d {
            return a.clone();
        }
        if lo.div_euclid(d) == hi.div_euclid(d) {
            return self.add_const(a, -lo.div_euclid(d) * d);
        }
        if let Some((_, rest)) = self.remainders_below(a, d) {
            return rest;
        }
        let (_, rest) = split_multiples(a, d);
        let (rlo, _) = self.range(&rest);
        if rlo >= 0 && rest != *a {
            return self.modulo(&rest, d);
        }
        if lo < 0 {
            return Idx {
                terms: vec![(Atom::Mod(Box::new(a.clone()), d), 1)],
                konst: 0,
            };
        }
        if let Some((x, rest, c)) = self.split_aligned(a, d) {
            return self.add(&self.mul(&self.modulo(&x, d / c), c), &rest);
        }
        let g = a.terms.iter().fold(gcd(a.konst, d), |g, (_, c)| gcd(g, *c));
        if g > 1 {
            return self.mul(&self.modulo(&self.exact_div(a, g), d / g), g);
        }
        Idx {
            terms: vec![(Atom::Mod(Box::new(a.clone()), d), 1)],
            konst: 0,
        }
    }

    /// `a` as `d·q + rest` ([`split_remainders`]) where `0 <= rest < d`: then `a / d == q` and
    /// `a % d == rest`. A sliding window's index into a row padded to `d + 1` and read as rows
    /// of `d`: `(x + 14·k) / 13 == k` and `(x + 14·k) % 13 == x + k` for `0 <= x + k < 13`.
    fn remainders_below(&self, a: &Idx, d: i64) -> Option<(Idx, Idx)> {
        let (q, rest) = split_remainders(a, d);
        let (rlo, rhi) = self.range(&rest);
        (rlo >= 0 && rhi < d).then_some((q, rest))
    }

    /// Splits non-negative `a` as `c·x + rest` with `c` a proper divisor of `d` (> 1),
    /// `x >= 0` and `0 <= rest < c`, taking the largest such `c`. Then `a / d == x / (d/c)` and
    /// `a % d == c·(x % (d/c)) + rest`: the index of a dimension that was merged with smaller
    /// ones, `(256·r + 4·g + u) / 8192 == r / 32` for `0 <= 4·g + u < 256`.
    fn split_aligned(&self, a: &Idx, d: i64) -> Option<(Idx, Idx, i64)> {
        let mut candidates: Vec<i64> = a
            .terms
            .iter()
            .map(|(_, c)| gcd(*c, d))
            .filter(|&c| c > 1 && c < d)
            .collect();
        candidates.sort_unstable_by(|x, y| y.cmp(x));
        candidates.dedup();
        candidates.into_iter().find_map(|c| {
            let (x, rest) = split_multiples(a, c);
            let (rlo, rhi) = self.range(&rest);
            (rlo >= 0 && rhi < c && self.range(&x).0 >= 0).then_some((x, rest, c))
        })
    }

    fn exact_div(&self, a: &Idx, g: i64) -> Idx {
        Idx {
            terms: a
                .terms
                .iter()
                .map(|(atom, c)| (atom.clone(), c / g))
                .collect(),
            konst: a.konst / g,
        }
    }

    /// Replaces every variable `v` by `subst[v]` and re-simplifies in `self` (the context of the
    /// substituted expressions).
    pub fn substitute(&self, e: &Idx, subst: &[Idx]) -> Idx {
        let mut acc = Idx::konst(e.konst);
        for (atom, c) in &e.terms {
            let a = match atom {
                Atom::Var(v) => subst[*v as usize].clone(),
                Atom::Div(inner, d) => self.div(&self.substitute(inner, subst), *d),
                Atom::Mod(inner, d) => self.modulo(&self.substitute(inner, subst), *d),
            };
            acc = self.add(&acc, &self.mul(&a, *c));
        }
        acc
    }

    /// `self` with every variable that one of `gate`'s bounds pins (`lo <= ±v + k < hi`) cut
    /// to what that bound allows. An index read only where `gate` holds (a padded tensor's
    /// source index) may be simplified in it: where the gate fails, nothing is read.
    pub fn narrowed(&self, gate: &Gate) -> Cow<'_, IdxCtx> {
        let mut out: Option<IdxCtx> = None;
        for (e, lo, hi) in gate.bounds() {
            let &[(Atom::Var(v), c)] = e.terms() else {
                continue;
            };
            let k = e.konst;
            let (vlo, vhi) = match c {
                1 => (lo - k, hi - 1 - k),
                -1 => (k - hi + 1, k - lo),
                _ => continue,
            };
            let ctx = out.get_or_insert_with(|| self.clone());
            let range = &mut ctx.ranges[v as usize];
            let cut = (range.0.max(vlo), range.1.min(vhi));
            if cut.0 <= cut.1 {
                *range = cut;
            }
        }
        out.map_or(Cow::Borrowed(self), Cow::Owned)
    }
}

/// A conjunction of bounds `lo <= expr < hi`: where an index is valid (inside padding bounds).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Gate {
    bounds: Vec<(Idx, i64, i64)>,
    never: bool,
}

impl Gate {
    /// Always true.
    pub fn always() -> Gate {
        Gate::default()
    }
    /// True if the gate can never hold.
    pub fn is_never(&self) -> bool {
        self.never
    }
    /// True if the gate always holds.
    pub fn is_always(&self) -> bool {
        !self.never && self.bounds.is_empty()
    }
    /// The bounds `(expr, lo, hi)` meaning `lo <= expr < hi`.
    pub fn bounds(&self) -> &[(Idx, i64, i64)] {
        &self.bounds
    }
    /// True if the gate mentions variable `v`.
    pub fn mentions(&self, v: u32) -> bool {
        self.bounds.iter().any(|(e, _, _)| e.mentions(v))
    }
    /// Adds `lo <= e < hi`, dropping it when the ranges prove it.
    pub fn and(&self, ctx: &IdxCtx, e: &Idx, lo: i64, hi: i64) -> Gate {
        let mut g = self.clone();
        if g.never {
            return g;
        }
        let (elo, ehi) = ctx.range(e);
        if elo >= lo && ehi < hi {
            return g;
        }
        if ehi < lo || elo >= hi {
            return Gate {
                bounds: Vec::new(),
                never: true,
            };
        }
        if !g.bounds.iter().any(|b| b.0 == *e && b.1 == lo && b.2 == hi) {
            g.bounds.push((e.clone(), lo, hi));
        }
        g
    }
    /// Both gates.
    pub fn and_gate(&self, ctx: &IdxCtx, other: &Gate) -> Gate {
        if other.never {
            return other.clone();
        }
        other
            .bounds
            .iter()
            .fold(self.clone(), |g, (e, lo, hi)| g.and(ctx, e, *lo, *hi))
    }
    /// Substitutes variables in every bound (see [`IdxCtx::substitute`]).
    pub fn substitute(&self, ctx: &IdxCtx, subst: &[Idx]) -> Gate {
        if self.never {
            return self.clone();
        }
        self.bounds.iter().fold(Gate::always(), |g, (e, lo, hi)| {
            g.and(ctx, &ctx.substitute(e, subst), *lo, *hi)
        })
    }
    /// Evaluates with concrete variable values.
    pub fn eval(&self, vars: &[i64]) -> bool {
        !self.never
            && self
                .bounds
                .iter()
                .all(|(e, lo, hi)| (*lo..*hi).contains(&e.eval(vars)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_and_merge_simplify() {
        let mut ctx = IdxCtx::new();
        let i = ctx.var(8);
        let j = ctx.var(4);
        let lin = ctx.add(&ctx.mul(&i, 4), &j);
        assert_eq!(ctx.div(&lin, 4), i);
        assert_eq!(ctx.modulo(&lin, 4), j);
        // merged dims: 4*(m/4) + m%4 == m
        let m = ctx.var(32);
        let back = ctx.add(&ctx.mul(&ctx.div(&m, 4), 4), &ctx.modulo(&m, 4));
        assert_eq!(back, m);
    }

    #[test]
    fn three_merged_dimensions_fold_back() {
        // The flat index of a contiguous [16, 5, 5] buffer read as [400]: c·25 + h·5 + w.
        let mut ctx = IdxCtx::new();
        let f = ctx.var(400);
        let c = ctx.div(&f, 25);
        let h = ctx.modulo(&ctx.div(&f, 5), 5);
        let w = ctx.modulo(&f, 5);
        let flat = ctx.add(&ctx.add(&ctx.mul(&c, 25), &ctx.mul(&h, 5)), &w);
        assert_eq!(flat, f);
        // The same for every lane and unrolled copy of a vectorized axis: f = 8·g + k.
        let g = ctx.var(50);
        for k in 0..8 {
            let f = ctx.add_const(&ctx.mul(&g, 8), k);
            let c = ctx.div(&f, 25);
            let h = ctx.modulo(&ctx.div(&f, 5), 5);
            let w = ctx.modulo(&f, 5);
            let flat = ctx.add(&ctx.add(&ctx.mul(&c, 25), &ctx.mul(&h, 5)), &w);
            assert_eq!(flat, f, "lane offset {k}");
        }
    }

    #[test]
    fn merged_dimensions_divide_by_their_stride() {
        let mut ctx = IdxCtx::new();
        let r = ctx.var(128);
        let g = ctx.var(64);
        // (256·r + 4·g + 1) / 8192 == r / 32, and the remainder keeps the low part.
        let e = ctx.add_const(&ctx.add(&ctx.mul(&r, 256), &ctx.mul(&g, 4)), 1);
        assert_eq!(ctx.div(&e, 8192), ctx.div(&r, 32));
        let low = ctx.add_const(&ctx.mul(&g, 4), 1);
        let expected = ctx.add(&ctx.mul(&ctx.modulo(&r, 32), 256), &low);
        assert_eq!(ctx.modulo(&e, 8192), expected);
        // must not: the low part can reach the next multiple of 256.
        let wide = ctx.add(&ctx.mul(&r, 256), &ctx.mul(&g, 5));
        assert!(matches!(ctx.div(&wide, 8192).terms()[0].0, Atom::Div(..)));
    }

    #[test]
    fn sliding_window_indices_are_affine() {
        let mut ctx = IdxCtx::new();
        let x = ctx.var(11);
        let k = ctx.var(3);
        // (x + 14·k) over rows of 13: row k, column x + k.
        let e = ctx.add(&x, &ctx.mul(&k, 14));
        assert_eq!(ctx.div(&e, 13), k);
        assert_eq!(ctx.modulo(&e, 13), ctx.add(&x, &k));
        // must not: x + k can reach 13 when x runs to 11.
        let x12 = ctx.var(12);
        let wide = ctx.add(&x12, &ctx.mul(&k, 14));
        assert!(matches!(ctx.modulo(&wide, 13).terms()[0].0, Atom::Mod(..)));
        // A coefficient past half the divisor reduces to a negative remainder:
        // (x + 12·k + 2) % 13 == x - k + 2, which stays in 0..13 here.
        let x10 = ctx.var(10);
        let back = ctx.add_const(&ctx.add(&x10, &ctx.mul(&k, 12)), 2);
        let r = ctx.modulo(&back, 13);
        assert!(
            r.terms().iter().all(|(a, _)| matches!(a, Atom::Var(_))),
            "{r:?}"
        );
    }

    #[test]
    fn gates_narrow_the_ranges_of_the_variables_they_pin() {
        let mut ctx = IdxCtx::new();
        let (h, w, k) = (ctx.var(11), ctx.var(11), ctx.var(3));
        let gate = Gate::always()
            .and(&ctx, &ctx.add_const(&h, -1), 0, 9) // 1 <= h < 10
            .and(&ctx, &ctx.add_const(&ctx.mul(&w, -1), 12), 3, 20) // w <= 9
            .and(&ctx, &ctx.add(&h, &k), 2, 12); // pins no single variable
        let narrowed = ctx.narrowed(&gate);
        assert_eq!(narrowed.var_bounds(0), (1, 9));
        assert_eq!(narrowed.var_bounds(1), (0, 9));
        assert_eq!(narrowed.var_bounds(2), (0, 2));
        assert!(matches!(ctx.narrowed(&Gate::always()), Cow::Borrowed(_)));
    }

    #[test]
    fn does_not_split_possibly_negative_operands() {
        let mut ctx = IdxCtx::new();
        let j = ctx.var(4);
        let e = ctx.add_const(&j, -1); // -1..=2
        let d = ctx.div(&e, 4);
        assert!(matches!(d.terms()[0].0, Atom::Div(..)), "kept whole: {d:?}");
        let v = ctx.var(3);
        assert_eq!(ctx.modulo(&v, 3), v);
    }

    #[test]
    fn gates_drop_proven_bounds() {
        let mut ctx = IdxCtx::new();
        let i = ctx.var(5);
        assert!(Gate::always().and(&ctx, &i, 0, 5).is_always());
        assert!(Gate::always().and(&ctx, &i, 5, 9).is_never());
        let g = Gate::always().and(&ctx, &i, 1, 5);
        assert_eq!(g.bounds().len(), 1);
        assert!(!g.eval(&[0]) && g.eval(&[3]));
    }

    proptest! {
        #[test]
        fn divisions_of_strided_sums_keep_their_values(
            a in 1usize..9, b in 1usize..9, c in 1usize..9,
            ca in 0i64..70, cb in -20i64..40, cc in 0i64..9, k in 20i64..29, d in 1i64..130,
        ) {
            let mut ctx = IdxCtx::new();
            let (x, y, z) = (ctx.var(a), ctx.var(b), ctx.var(c));
            let e = ctx.add_const(
                &ctx.add(&ctx.add(&ctx.mul(&x, ca), &ctx.mul(&y, cb)), &ctx.mul(&z, cc)),
                k,
            );
            let (q, r) = (ctx.div(&e, d), ctx.modulo(&e, d));
            // Unflattened into [_, m, d] and flattened again.
            let m = k - 19;
            let parts = [
                ctx.mul(&ctx.div(&e, d * m), d * m),
                ctx.mul(&ctx.modulo(&ctx.div(&e, d), m), d),
                r.clone(),
            ];
            let back = parts.iter().fold(Idx::konst(0), |acc, p| ctx.add(&acc, p));
            for vx in 0..a as i64 { for vy in 0..b as i64 { for vz in 0..c as i64 {
                let vars: Vec<i64> = [(a, vx), (b, vy), (c, vz)].iter().filter(|(n, _)| *n > 1).map(|(_, v)| *v).collect();
                let ev = ca * vx + cb * vy + cc * vz + k;
                prop_assert_eq!(q.eval(&vars), ev.div_euclid(d));
                prop_assert_eq!(r.eval(&vars), ev.rem_euclid(d));
                prop_assert_eq!(back.eval(&vars), ev);
            }}}
        }

        #[test]
        fn simplification_preserves_values(
            a in 1usize..7, b in 1usize..7, c in 1usize..7,
            ca in -5i64..6, cb in -5i64..6, k in 0i64..9, d in 1i64..9, m in 1i64..9,
        ) {
            let mut ctx = IdxCtx::new();
            let x = ctx.var(a);
            let y = ctx.var(b);
            let z = ctx.var(c);
            // a non-negative expression
            let e = ctx.add(&ctx.add(&ctx.mul(&x, ca.abs()), &ctx.mul(&y, cb.abs())), &ctx.add_const(&z, k));
            let q = ctx.div(&e, d);
            let r = ctx.modulo(&q, m);
            let back = ctx.add(&ctx.mul(&ctx.div(&e, m), m), &ctx.modulo(&e, m));
            for vx in 0..a as i64 { for vy in 0..b as i64 { for vz in 0..c as i64 {
                let vars: Vec<i64> = [(a, vx), (b, vy), (c, vz)].iter().filter(|(n, _)| *n > 1).map(|(_, v)| *v).collect();
                let ev = ca.abs() * vx + cb.abs() * vy + vz + k;
                prop_assert_eq!(e.eval(&vars), ev);
                prop_assert_eq!(q.eval(&vars), ev.div_euclid(d));
                prop_assert_eq!(r.eval(&vars), ev.div_euclid(d).rem_euclid(m));
                prop_assert_eq!(back.eval(&vars), ev);
            }}}
        }
    }
}
