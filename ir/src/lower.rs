//! Lowering: one scheduled [`Kernel`] becomes a [`Program`].
//!
//! 1. *Analysis* walks the kernel's expression with one index variable per axis of its
//!    iteration space and collects every load's flat index and gate. An axis those indices
//!    read only through `v / k` and `v % k` is split there (`lower/split.rs`) and the walk
//!    repeated, so every index is affine in the axes planned.
//! 2. *Planning* merges adjacent axes that every access walks linearly, picks a vector axis
//!    (stride 1 for the stores or loads that matter, stride 0 or 1 for the rest), and unrolls
//!    output axes with data reuse into register tiles (a matmul becomes a 4x8 tile of
//!    accumulators fed by broadcast and vector loads).
//! 3. *Emission* writes the Program: launch dimensions for the output axes, loops for the
//!    reduction axes, accumulators per tile element, the reduction input per tile element, then
//!    the epilogue and the stores. Movement ops become index expressions ([`crate::view`]).

use crate::dtype::{DType, Scalar};
use crate::graph::{numel, NodeRef};
use crate::index::{Atom, Gate, Idx, IdxCtx};
use crate::ops::{BinaryOp, Op, ReduceOp, TernaryOp};
use crate::program::{Inst, Memory, Param, Program, ProgramBuilder, VType, ValueId};
use crate::schedule::Kernel;
use crate::view::{flat_index, source_index};
use split::Split;
use std::collections::HashMap;

mod split;

/// What the lowering may assume about the device.
#[derive(Clone, Copy, Debug)]
pub struct LoweringTarget {
    /// Vector lanes for 32-bit element types (1 disables vectors).
    pub lanes32: u8,
    /// Apply axis merging, vectors and register tiles (off gives the plainest loops).
    pub optimize: bool,
    /// Use 64-bit indices even when 32 bits suffice (cheaper addressing on 64-bit CPUs).
    pub wide_index: bool,
    /// Simplify load indices with the e-graph ([`crate::index_egraph`]).
    pub index_egraph: bool,
}

impl Default for LoweringTarget {
    fn default() -> Self {
        LoweringTarget {
            lanes32: 4,
            optimize: true,
            wide_index: false,
            index_egraph: true,
        }
    }
}

/// One axis of the kernel's iteration space after planning: one or more merged original axes.
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    /// Original axes, outermost first.
    dims: Vec<usize>,
    size: usize,
    reduce: bool,
    /// Vector lanes along this axis (1 = none).
    vector: usize,
    /// Unrolled copies (register tile) along this axis.
    unroll: usize,
}

impl Axis {
    /// Iterations of the axis' outer part: the last vector of an overlapping output axis
    /// included, a reduction axis' tail not.
    fn outer(&self) -> usize {
        if self.reduce {
            self.size / (self.vector * self.unroll)
        } else {
            self.size.div_ceil(self.vector * self.unroll)
        }
    }

    /// A vector output axis whose size is not a multiple of its lanes: its last vector starts
    /// at `size - vector`, overlapping the one before, and the lanes they share are computed
    /// and stored twice (the same values: every output element is computed on its own).
    fn overlaps(&self) -> bool {
        !self.reduce && self.vector > 1 && !self.size.is_multiple_of(self.vector)
    }

    /// Elements of a vector reduction axis past its last whole vector, added after its loop as
    /// one masked vector (an unrolled axis divides evenly: it has none).
    fn tail(&self) -> usize {
        if self.reduce {
            self.size % (self.vector * self.unroll)
        } else {
            0
        }
    }
}

/// The iteration space: full shape and which axes reduce.
struct Space {
    full: Vec<usize>,
    reduce: Vec<bool>,
}

fn iteration_space(kernel: &Kernel) -> Space {
    match &kernel.reduce {
        Some(r) => {
            let Op::Reduce(_, axes) = r.op() else {
                unreachable!("reduce node")
            };
            let full = r.src()[0].shape().to_vec();
            let reduce = (0..full.len()).map(|d| axes.contains(&d)).collect();
            Space { full, reduce }
        }
        None => Space {
            full: kernel.output.shape().to_vec(),
            reduce: vec![false; kernel.output.shape().len()],
        },
    }
}

/// Index of each axis of `shape` (whose non-1 axes equal the non-reduced non-1 axes of the
/// space) given the space's per-axis indices.
fn output_index(space: &Space, shape: &[usize], full_idx: &[Idx]) -> Vec<Idx> {
    let mut outer = space
        .full
        .iter()
        .zip(&space.reduce)
        .zip(full_idx)
        .filter(|((&n, &r), _)| !r && n != 1)
        .map(|(_, i)| i.clone());
    shape
        .iter()
        .map(|&n| {
            if n == 1 {
                Idx::konst(0)
            } else {
                outer.next().expect("output axes match")
            }
        })
        .collect()
}

/// Facts gathered by walking the kernel's expression once.
#[derive(Default)]
struct Analysis {
    loads: Vec<(Idx, Gate)>,
    all_32bit: bool,
    int_div_or_shift: bool,
    /// Per index variable: the reduction input's ALU ops whose index mentions it (computed
    /// once per lane when that variable's axis is the vector axis, once per vector otherwise).
    reduce_alu_along: Vec<usize>,
}

struct Walker<'a> {
    kernel: &'a Kernel,
    ctx: IdxCtx,
    seen: std::collections::HashSet<(u64, Vec<Idx>, Gate)>,
    out: Analysis,
    /// Walking the fused reduction's input (its ALU ops are counted per variable).
    in_reduction: bool,
}

impl Walker<'_> {
    fn is_input(&self, n: &NodeRef) -> bool {
        !std::sync::Arc::ptr_eq(n, &self.kernel.output)
            && self.kernel.inputs.iter().any(|i| i.id() == n.id())
    }
    fn walk(&mut self, n: &NodeRef, idx: Vec<Idx>, gate: Gate) {
        if gate.is_never() || !self.seen.insert((n.id(), idx.clone(), gate.clone())) {
            return;
        }
        let size_ok = n.dtype().size() == 4 || n.dtype() == DType::Bool;
        self.out.all_32bit &= size_ok;
        if self.is_input(n) {
            let flat = flat_index(&self.ctx, n.shape(), &idx);
            self.out.loads.push((flat, gate));
            return;
        }
        match n.op() {
            op if op.is_movement() => {
                let (si, sg) = source_index(&self.ctx, n, &idx, &gate);
                self.walk(&n.src()[0].clone(), si, sg);
            }
            Op::Reduce(..) => {} // the fused reduction: its input is walked separately
            op => {
                if let Op::Binary(BinaryOp::IDiv | BinaryOp::Mod | BinaryOp::Shl | BinaryOp::Shr) =
                    op
                {
                    self.out.int_div_or_shift = true;
                }
                if matches!(op, Op::Cast | Op::Bitcast) {
                    self.out.all_32bit &=
                        n.src()[0].dtype().size() == 4 || n.src()[0].dtype() == DType::Bool;
                }
                if self.in_reduction && op.is_elementwise() {
                    for (v, count) in self.out.reduce_alu_along.iter_mut().enumerate() {
                        *count += usize::from(idx.iter().any(|i| i.mentions(v as u32)));
                    }
                }
                for s in n.src().to_vec() {
                    self.walk(&s, idx.clone(), gate.clone());
                }
            }
        }
    }
}

/// Walks `kernel` over `split`'s space (whose original axes are `orig`): its loads and facts,
/// and one variable per split axis.
fn analyze(kernel: &Kernel, orig: &Space, split: &Split) -> (Analysis, Vec<Idx>, IdxCtx) {
    let mut ctx = IdxCtx::new();
    let vars: Vec<Idx> = split.space.full.iter().map(|&n| ctx.var(n)).collect();
    let orig_vars = split.original(&ctx, &vars);
    let mut w = Walker {
        kernel,
        seen: Default::default(),
        out: Analysis {
            all_32bit: true,
            reduce_alu_along: vec![0; ctx.num_vars()],
            ..Default::default()
        },
        ctx,
        in_reduction: true,
    };
    if let Some(r) = &kernel.reduce {
        w.walk(&r.src()[0].clone(), orig_vars.clone(), Gate::always());
    }
    w.in_reduction = false;
    let root_idx = output_index(orig, kernel.output.shape(), &orig_vars);
    w.walk(&kernel.output.clone(), root_idx, Gate::always());
    (w.out, vars, w.ctx)
}

/// Per-load coefficient of one original axis variable (None = not affine or gated).
fn coefs(an: &Analysis, vars: &[Idx], d: usize) -> Vec<Option<i64>> {
    let Some(v) = vars[d].terms().first().map(|t| match t.0 {
        Atom::Var(v) => v,
        _ => unreachable!("plain variable"),
    }) else {
        return vec![Some(0); an.loads.len()];
    };
    an.loads
        .iter()
        .map(|(flat, gate)| {
            if gate.mentions(v) {
                None
            } else {
                flat.affine_coef(v)
            }
        })
        .collect()
}

fn plan(space: &Space, an: &Analysis, vars: &[Idx], target: &LoweringTarget) -> Vec<Axis> {
    let n = space.full.len();
    let mut axes: Vec<Axis> = Vec::new();
    for d in 0..n {
        if space.full[d] == 1 {
            continue;
        }
        let single = Axis {
            dims: vec![d],
            size: space.full[d],
            reduce: space.reduce[d],
            vector: 1,
            unroll: 1,
        };
        let merge = target.optimize
            && axes.last().is_some_and(|last: &Axis| {
                let l = *last.dims.last().expect("axis has dims");
                last.reduce == space.reduce[d]
                    && l + 1 == d
                    && coefs(an, vars, l)
                        .iter()
                        .zip(coefs(an, vars, d))
                        .all(|(cl, cd)| matches!((cl, cd), (Some(a), Some(b)) if *a == b * space.full[d] as i64))
            });
        if merge {
            let last = axes.last_mut().expect("checked");
            last.dims.push(d);
            last.size *= space.full[d];
        } else {
            axes.push(single);
        }
    }
    if !target.optimize {
        return axes;
    }
    // Coefficients per axis = those of its innermost original axis.
    let axis_coefs: Vec<Vec<Option<i64>>> = axes
        .iter()
        .map(|a| coefs(an, vars, *a.dims.last().expect("dims")))
        .collect();
    let is_reduce_kernel = space.reduce.iter().any(|&r| r);
    let lanes = target.lanes32 as usize;
    let inner_output = axes.iter().rposition(|a| !a.reduce);
    if lanes > 1 && an.all_32bit && !an.int_div_or_shift {
        let unit = |c: &[Option<i64>]| c.iter().all(|x| matches!(x, Some(0) | Some(1)));
        let whole_unit_output = |i: usize| {
            !axes[i].reduce && axes[i].size.is_multiple_of(lanes) && unit(&axis_coefs[i])
        };
        let alu_along = |i: usize| match vars[*axes[i].dims.last().expect("dims")].terms() {
            [(Atom::Var(v), _)] => an.reduce_alu_along[*v as usize],
            _ => 0,
        };
        // A reduction computes the ops of its input that vary along the vector axis once per
        // vector and the others once per lane: an output axis along which more of them vary
        // than along the innermost one is the better vector axis (its stores, once per
        // output, go lane by lane). A linear layer's weight gradient read its fused ReLU
        // gradient lane by lane: ~0.85 ms per MNIST step, against ~0.5 transposed.
        let inner_alu = inner_output.map_or(0, alu_along);
        let busier = (0..axes.len())
            .filter(|&i| is_reduce_kernel && whole_unit_output(i) && alu_along(i) > inner_alu)
            .max_by_key(|&i| (alu_along(i), i));
        let chosen = busier
            .or_else(|| inner_output.filter(|&i| whole_unit_output(i)))
            .or_else(|| {
                axes.iter().enumerate().rev().find_map(|(i, a)| {
                    (a.reduce
                        && a.size % lanes == 0
                        && unit(&axis_coefs[i])
                        && axis_coefs[i].contains(&Some(1)))
                    .then_some(i)
                })
            })
            .or_else(|| {
                // Overlapping last vector: a 13- or 26-wide image row. Elementwise, strided
                // operands are gathered lane by lane (a max-pool window's stride-2 reads), as
                // for the rows a multiple of the vector wide below.
                inner_output.filter(|&i| {
                    axes[i].size > lanes && (!is_reduce_kernel || unit(&axis_coefs[i]))
                })
            })
            .or_else(|| {
                // The innermost reduction axis, its tail a masked vector: a convolution's
                // weight gradient summed over 11-wide rows.
                axes.iter().rposition(|a| a.reduce).filter(|&i| {
                    axes[i].size > lanes && unit(&axis_coefs[i]) && axis_coefs[i].contains(&Some(1))
                })
            })
            .or_else(|| {
                inner_output.filter(|&i| !is_reduce_kernel && axes[i].size.is_multiple_of(lanes))
            })
            .or_else(|| {
                // Elementwise with an innermost axis narrower than a vector (a 2x2 window's
                // column): the next output axis out, its stores and strided loads lane by lane
                // (a max-pool's gradient written back into 26-wide rows).
                let inner = inner_output.filter(|&i| !is_reduce_kernel && axes[i].size < lanes)?;
                (0..inner)
                    .rev()
                    .find(|&i| !axes[i].reduce && axes[i].size > lanes)
            });
        if let Some(i) = chosen {
            axes[i].vector = lanes;
        }
    }
    // Register tiles: unroll output axes whose data some operand reuses (stride 0), from 8
    // reduced elements per output on (a 3x3 single-channel convolution has 9: tiled, it ran
    // ~9x faster than as scalar loops).
    let reduce_len: usize = axes.iter().filter(|a| a.reduce).map(|a| a.size).product();
    if is_reduce_kernel && reduce_len >= 8 {
        let reuse = |i: usize| {
            !axes[i].reduce
                && axes[i].size.is_multiple_of(axes[i].vector * 2)
                && axis_coefs[i].contains(&Some(0))
                && axis_coefs[i].iter().any(|c| c.is_some_and(|c| c != 0))
        };
        let zeros = |i: usize| axis_coefs[i].iter().filter(|c| **c == Some(0)).count();
        // First a scalar axis (its loads broadcast), unrolled 4x; then preferably the vector
        // axis (adjacent vectors share cache lines), unrolled 2x.
        let first = (0..axes.len())
            .filter(|&i| reuse(i) && axes[i].vector == 1)
            .max_by_key(|&i| (zeros(i), std::cmp::Reverse(i)));
        let second = (0..axes.len())
            .filter(|&i| reuse(i) && Some(i) != first)
            .max_by_key(|&i| (axes[i].vector > 1, zeros(i), i));
        for (i, want) in [(first, 4usize), (second, 2)]
            .into_iter()
            .filter_map(|(i, w)| i.map(|i| (i, w)))
        {
            let mut f = want;
            while f > 1 && !axes[i].size.is_multiple_of(axes[i].vector * f) {
                f /= 2;
            }
            axes[i].unroll = f;
        }
    }
    // Independent accumulators along a reduction axis hide the combine latency when the tile
    // alone gives few of them.
    let tile: usize = axes
        .iter()
        .filter(|a| !a.reduce)
        .map(|a| a.unroll)
        .product();
    let inner_reduce = axes
        .iter()
        .rposition(|a| a.reduce && a.vector > 1)
        .or_else(|| axes.iter().rposition(|a| a.reduce));
    if let Some(i) = inner_reduce {
        if tile < 4 && reduce_len >= 64 {
            let mut f = 4 / tile;
            while f > 1
                && (!axes[i].size.is_multiple_of(axes[i].vector * f) || axes[i].outer() < 2 * f)
            {
                f /= 2;
            }
            axes[i].unroll = f;
        }
    }
    axes
}

/// A lowered value: a scalar (uniform over the vector lanes) or a vector of `lanes`.
#[derive(Clone, Copy, Debug)]
struct LVal {
    id: ValueId,
    lanes: u8,
}

/// Per-lane indices of a node and the gate under which each lane is valid.
type Lanes = Vec<(Vec<Idx>, Gate)>;

struct Emitter<'a> {
    kernel: &'a Kernel,
    b: ProgramBuilder,
    ctx: IdxCtx,
    var_values: Vec<ValueId>,
    index_dtype: DType,
    params: HashMap<u64, u32>,
    node_memo: Vec<HashMap<(u64, Lanes), LVal>>,
    idx_memo: Vec<HashMap<Idx, ValueId>>,
    reduce_value: Option<LVal>,
    index_egraph: bool,
}

impl Emitter<'_> {
    fn konst(&mut self, dtype: DType, v: Scalar) -> ValueId {
        self.b.push(Inst::Const {
            ty: VType::scalar(dtype),
            value: v.cast(dtype),
        })
    }

    fn push_scope(&mut self) {
        self.node_memo.push(HashMap::new());
        self.idx_memo.push(HashMap::new());
    }
    fn pop_scope(&mut self) {
        self.node_memo.pop();
        self.idx_memo.pop();
    }

    /// The index of a load, simplified in the e-graph first when enabled.
    fn emit_load_index(&mut self, e: &Idx) -> ValueId {
        if self.index_egraph {
            let s = crate::index_egraph::simplify_cached(&self.ctx, e);
            self.emit_idx(&s)
        } else {
            self.emit_idx(e)
        }
    }

    fn emit_idx(&mut self, e: &Idx) -> ValueId {
        if let Some(v) = self.idx_memo.iter().rev().find_map(|m| m.get(e)) {
            return *v;
        }
        let it = self.index_dtype;
        let mut acc: Option<ValueId> = None;
        // Terms of outer loops' variables first: the partial sum before an inner loop's term
        // is invariant in that loop, and the backend hoists it out.
        let mut terms = e.terms().to_vec();
        terms.sort_by_key(|(atom, _)| newest_var(atom));
        for (atom, c) in terms {
            let a = match &atom {
                Atom::Var(v) => self.var_values[*v as usize],
                Atom::Div(inner, d) => {
                    let x = self.emit_idx(inner);
                    let dv = self.konst(it, Scalar::Int(*d));
                    self.b.push(Inst::Binary {
                        op: BinaryOp::IDiv,
                        a: x,
                        b: dv,
                    })
                }
                Atom::Mod(inner, d) => {
                    let x = self.emit_idx(inner);
                    let dv = self.konst(it, Scalar::Int(*d));
                    self.b.push(Inst::Binary {
                        op: BinaryOp::Mod,
                        a: x,
                        b: dv,
                    })
                }
            };
            let term = if c == 1 {
                a
            } else {
                let cv = self.konst(it, Scalar::Int(c));
                self.b.push(Inst::Binary {
                    op: BinaryOp::Mul,
                    a,
                    b: cv,
                })
            };
            acc = Some(match acc {
                None => term,
                Some(s) => self.b.push(Inst::Binary {
                    op: BinaryOp::Add,
                    a: s,
                    b: term,
                }),
            });
        }
        let k = e.constant();
        let v = match acc {
            None => self.konst(it, Scalar::Int(k)),
            Some(s) if k == 0 => s,
            Some(s) => {
                let kv = self.konst(it, Scalar::Int(k));
                self.b.push(Inst::Binary {
                    op: BinaryOp::Add,
                    a: s,
                    b: kv,
                })
            }
        };
        self.idx_memo
            .last_mut()
            .expect("scope")
            .insert(e.clone(), v);
        v
    }

    /// A scalar bool that holds where `gate` holds (None = always).
    fn emit_gate(&mut self, gate: &Gate) -> Option<ValueId> {
        if gate.is_always() {
            return None;
        }
        let it = self.index_dtype;
        let mut acc: Option<ValueId> = None;
        for (e, lo, hi) in gate.bounds().to_vec() {
            let (elo, ehi) = self.ctx.range(&e);
            let v = self.emit_idx(&e);
            let mut conds = Vec::new();
            if elo < lo {
                let l = self.konst(it, Scalar::Int(lo - 1));
                conds.push(self.b.push(Inst::Binary {
                    op: BinaryOp::CmpLt,
                    a: l,
                    b: v,
                }));
            }
            if ehi >= hi {
                let h = self.konst(it, Scalar::Int(hi));
                conds.push(self.b.push(Inst::Binary {
                    op: BinaryOp::CmpLt,
                    a: v,
                    b: h,
                }));
            }
            for c in conds {
                acc = Some(match acc {
                    None => c,
                    Some(a) => self.b.push(Inst::Binary {
                        op: BinaryOp::And,
                        a,
                        b: c,
                    }),
                });
            }
        }
        Some(acc.unwrap_or_else(|| self.konst(DType::Bool, Scalar::Bool(true))))
    }

    fn splat(&mut self, v: LVal, lanes: u8) -> ValueId {
        if v.lanes == lanes {
            v.id
        } else {
            self.b.push(Inst::Vectorize(vec![v.id; lanes as usize]))
        }
    }

    /// Builds a vector from per-lane scalars, or keeps a scalar when all lanes agree.
    fn gather(&mut self, vals: Vec<ValueId>) -> LVal {
        if vals.iter().all(|v| *v == vals[0]) {
            LVal {
                id: vals[0],
                lanes: 1,
            }
        } else {
            let lanes = vals.len() as u8;
            LVal {
                id: self.b.push(Inst::Vectorize(vals)),
                lanes,
            }
        }
    }

    fn is_input(&self, n: &NodeRef) -> Option<u32> {
        self.params
            .get(&n.id())
            .copied()
            .filter(|_| !std::sync::Arc::ptr_eq(n, &self.kernel.output))
    }

    fn load(&mut self, param: u32, n: &NodeRef, lanes: &Lanes) -> LVal {
        let dtype = n.dtype();
        let flats: Vec<Idx> = lanes
            .iter()
            .map(|(idx, _)| flat_index(&self.ctx, n.shape(), idx))
            .collect();
        let consecutive = lanes.len() > 1
            && lanes.iter().all(|(_, g)| *g == lanes[0].1)
            && flats
                .iter()
                .enumerate()
                .all(|(l, f)| self.ctx.add_const(&flats[0], l as i64) == *f);
        if consecutive {
            if lanes[0].1.is_never() {
                return LVal {
                    id: self.konst(dtype, Scalar::Int(0)),
                    lanes: 1,
                };
            }
            let index = self.emit_load_index(&flats[0]);
            let gate = self.emit_gate(&lanes[0].1);
            let ty = VType::vec(dtype, lanes.len() as u8);
            return LVal {
                id: self.b.push(Inst::Load {
                    mem: Memory::Global(param),
                    index,
                    gate,
                    ty,
                }),
                lanes: ty.lanes,
            };
        }
        let mut vals = Vec::with_capacity(lanes.len());
        for (flat, (_, g)) in flats.iter().zip(lanes) {
            if g.is_never() {
                vals.push(self.konst(dtype, Scalar::Int(0)));
                continue;
            }
            let index = self.emit_load_index(flat);
            let gate = self.emit_gate(g);
            vals.push(self.b.push(Inst::Load {
                mem: Memory::Global(param),
                index,
                gate,
                ty: VType::scalar(dtype),
            }));
        }
        self.gather(vals)
    }

    fn lower(&mut self, n: &NodeRef, lanes: Lanes) -> LVal {
        let lanes = if lanes.iter().all(|l| *l == lanes[0]) {
            vec![lanes[0].clone()]
        } else {
            lanes
        };
        if lanes.iter().all(|(_, g)| g.is_never()) {
            return LVal {
                id: self.konst(n.dtype(), Scalar::Int(0)),
                lanes: 1,
            };
        }
        let key = (n.id(), lanes);
        if let Some(v) = self.node_memo.iter().rev().find_map(|m| m.get(&key)) {
            return *v;
        }
        let lanes = key.1.clone();
        let v = self.lower_uncached(n, &lanes);
        self.node_memo.last_mut().expect("scope").insert(key, v);
        v
    }

    fn lower_uncached(&mut self, n: &NodeRef, lanes: &Lanes) -> LVal {
        if let Some(p) = self.is_input(n) {
            return self.load(p, n, lanes);
        }
        let dtype = n.dtype();
        match n.op() {
            Op::Const(v) => LVal {
                id: self.konst(dtype, *v),
                lanes: 1,
            },
            Op::Arange(axis) => {
                let vals: Vec<ValueId> = lanes
                    .iter()
                    .map(|(idx, _)| {
                        let i = self.emit_idx(&idx[*axis]);
                        if dtype == self.index_dtype {
                            i
                        } else {
                            self.b.push(Inst::Cast {
                                to: VType::scalar(dtype),
                                arg: i,
                            })
                        }
                    })
                    .collect();
                self.gather(vals)
            }
            Op::Reduce(..) => self
                .reduce_value
                .expect("fused reduction is read only in the epilogue"),
            op if op.is_movement() => {
                let src = n.src()[0].clone();
                let moved: Lanes = lanes
                    .iter()
                    .map(|(idx, g)| source_index(&self.ctx, n, idx, g))
                    .collect();
                let gated = moved.iter().zip(lanes).any(|((_, ng), (_, g))| ng != g);
                let v = self.lower(&src, moved.clone());
                if !gated || self.is_input(&src).is_some() {
                    return v;
                }
                // Padding: outside the valid region the value is zero, whatever the source computes.
                let conds: Vec<ValueId> = moved
                    .iter()
                    .map(|(_, g)| {
                        if g.is_never() {
                            self.konst(DType::Bool, Scalar::Bool(false))
                        } else {
                            self.emit_gate(g)
                                .unwrap_or_else(|| self.konst(DType::Bool, Scalar::Bool(true)))
                        }
                    })
                    .collect();
                let cond = self.gather(conds);
                let width = cond.lanes.max(v.lanes);
                let c = self.splat(cond, width);
                let a = self.splat(v, width);
                let z = self.konst(dtype, Scalar::Int(0));
                let z = self.splat(LVal { id: z, lanes: 1 }, width);
                LVal {
                    id: self.b.push(Inst::Where { cond: c, a, b: z }),
                    lanes: width,
                }
            }
            Op::Contiguous => self.lower(&n.src()[0].clone(), lanes.clone()),
            Op::Unary(op) => {
                let a = self.lower(&n.src()[0].clone(), lanes.clone());
                LVal {
                    id: self.b.push(Inst::Unary { op: *op, arg: a.id }),
                    lanes: a.lanes,
                }
            }
            Op::Cast | Op::Bitcast => {
                let a = self.lower(&n.src()[0].clone(), lanes.clone());
                let to = VType::vec(dtype, a.lanes);
                let inst = if matches!(n.op(), Op::Cast) {
                    Inst::Cast { to, arg: a.id }
                } else {
                    Inst::Bitcast { to, arg: a.id }
                };
                LVal {
                    id: self.b.push(inst),
                    lanes: a.lanes,
                }
            }
            Op::Binary(op) => {
                let a = self.lower(&n.src()[0].clone(), lanes.clone());
                let b = self.lower(&n.src()[1].clone(), lanes.clone());
                let w = a.lanes.max(b.lanes);
                let (a, b) = (self.splat(a, w), self.splat(b, w));
                LVal {
                    id: self.b.push(Inst::Binary { op: *op, a, b }),
                    lanes: w,
                }
            }
            Op::Ternary(op) => {
                let vs: Vec<LVal> = n
                    .src()
                    .to_vec()
                    .iter()
                    .map(|s| self.lower(s, lanes.clone()))
                    .collect();
                let w = vs.iter().map(|v| v.lanes).max().unwrap_or(1);
                let ids: Vec<ValueId> = vs.iter().map(|v| self.splat(*v, w)).collect();
                let inst = match op {
                    TernaryOp::Where => Inst::Where {
                        cond: ids[0],
                        a: ids[1],
                        b: ids[2],
                    },
                    TernaryOp::MulAcc => Inst::MulAcc {
                        a: ids[0],
                        b: ids[1],
                        c: ids[2],
                    },
                };
                LVal {
                    id: self.b.push(inst),
                    lanes: w,
                }
            }
            other => panic!(
                "lower: unexpected {other:?} inside kernel {}",
                self.kernel.output.id()
            ),
        }
    }
}

/// Enumerates the unrolled copies: every combination of `0..unroll` per axis.
fn combos(axes: &[&Axis]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|c| (0..a.unroll).map(move |u| [c.clone(), vec![u]].concat()))
            .collect();
    }
    out
}

/// The most recently defined loop variable `atom` reads (variables are numbered as their
/// loops open), or `None` for none.
fn newest_var(atom: &Atom) -> Option<u32> {
    match atom {
        Atom::Var(v) => Some(*v),
        Atom::Div(inner, _) | Atom::Mod(inner, _) => inner
            .terms()
            .iter()
            .filter_map(|(a, _)| newest_var(a))
            .max(),
    }
}

fn accumulate_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    }
}

/// Turns a scheduled kernel into a Program. Parameter 0 is the output, then `kernel.inputs`.
pub fn lower(kernel: &Kernel, target: &LoweringTarget) -> Program {
    let orig = iteration_space(kernel);
    let whole = Split::whole(&orig);
    let (mut an, mut vars, _) = analyze(kernel, &orig, &whole);
    let mut split = whole;
    if target.optimize {
        let indices: Vec<&Idx> = an
            .loads
            .iter()
            .flat_map(|(flat, gate)| {
                std::iter::once(flat).chain(gate.bounds().iter().map(|b| &b.0))
            })
            .collect();
        let found = Split::new(&orig, &indices, &vars);
        if !found.is_identity() {
            (an, vars, _) = analyze(kernel, &orig, &found);
            split = found;
        }
    }
    let space = &split.space;
    let axes = plan(space, &an, &vars, target);

    let out = &kernel.output;
    let mut params = vec![Param {
        dtype: out.dtype(),
        len: out.numel(),
        writable: true,
    }];
    let mut param_ids = HashMap::new();
    for (i, inp) in kernel.inputs.iter().enumerate() {
        params.push(Param {
            dtype: inp.dtype(),
            len: inp.numel(),
            writable: false,
        });
        param_ids.insert(inp.id(), i as u32 + 1);
    }
    let big = params
        .iter()
        .map(|p| p.len)
        .chain([numel(&space.full)])
        .max()
        .unwrap_or(0)
        >= (1usize << 31) - 16;
    let index_dtype = if big || target.wide_index {
        DType::I64
    } else {
        DType::I32
    };

    let out_axes: Vec<&Axis> = axes.iter().filter(|a| !a.reduce).collect();
    let red_axes: Vec<&Axis> = axes.iter().filter(|a| a.reduce).collect();
    // Launch: output axes' outer parts; more than three are merged into the first dimension.
    let outer_sizes: Vec<usize> = out_axes.iter().map(|a| a.outer()).collect();
    let global: Vec<usize> = if outer_sizes.is_empty() {
        vec![1]
    } else if outer_sizes.len() <= 3 {
        outer_sizes.clone()
    } else {
        let k = outer_sizes.len() - 2;
        [
            vec![outer_sizes[..k].iter().product()],
            outer_sizes[k..].to_vec(),
        ]
        .concat()
    };

    let mut em = Emitter {
        kernel,
        b: ProgramBuilder::new(),
        ctx: IdxCtx::new(),
        var_values: Vec::new(),
        index_dtype,
        params: param_ids,
        node_memo: vec![HashMap::new()],
        idx_memo: vec![HashMap::new()],
        reduce_value: None,
        index_egraph: target.index_egraph,
    };
    // Launch variables and each output axis' outer index.
    let mut launch = Vec::new();
    for (d, &g) in global.iter().enumerate() {
        let v = em.b.push(Inst::GroupId(d as u8));
        let var = em.ctx.var(g);
        if !var.terms().is_empty() {
            em.var_values.push(v);
        }
        launch.push(var);
    }
    let mut outer_idx: Vec<Idx> = Vec::new();
    if outer_sizes.len() <= 3 {
        outer_idx = launch.clone();
    } else {
        let k = outer_sizes.len() - 2;
        let lead = crate::view::unravel(&em.ctx, &outer_sizes[..k], &launch[0]);
        outer_idx.extend(lead);
        outer_idx.extend(launch[1..].iter().cloned());
    }
    if out_axes.is_empty() {
        outer_idx.clear();
    }
    // Where each output axis' block starts: its outer index times the block, or for an
    // overlapping axis `min(outer * vector, size - vector)`, a variable of its own.
    let out_origin: Vec<Idx> = out_axes
        .iter()
        .zip(&outer_idx)
        .map(|(a, outer)| {
            if !a.overlaps() {
                return em.ctx.mul(outer, (a.vector * a.unroll) as i64);
            }
            let last = (a.size - a.vector) as i64;
            let start = em.emit_idx(&em.ctx.mul(outer, a.vector as i64));
            let limit = em.konst(index_dtype, Scalar::Int(last));
            let before = em.b.push(Inst::Binary {
                op: BinaryOp::CmpLt,
                a: start,
                b: limit,
            });
            let value = em.b.push(Inst::Where {
                cond: before,
                a: start,
                b: limit,
            });
            em.var_values.push(value);
            em.ctx.var_range(0, last)
        })
        .collect();
    // Original-axis index for an axis given where its block starts, unroll copy and lane.
    let axis_index = |ctx: &IdxCtx,
                      a: &Axis,
                      origin: &Idx,
                      u: usize,
                      lane: usize,
                      full: &[usize]|
     -> Vec<(usize, Idx)> {
        let value = ctx.add_const(origin, (u * a.vector + lane) as i64);
        let sizes: Vec<usize> = a.dims.iter().map(|&d| full[d]).collect();
        let parts = crate::view::unravel(ctx, &sizes, &value);
        a.dims.iter().copied().zip(parts).collect()
    };
    let vec_axis = axes.iter().position(|a| a.vector > 1);
    let lanes_n = vec_axis.map_or(1, |i| axes[i].vector);
    let out_combos = combos(&out_axes);
    let red_combos = combos(&red_axes);

    // Builds the full indices of `lanes` lanes for an output combo, a reduce combo and where
    // each reduction axis' block starts.
    let full_lanes = |ctx: &IdxCtx,
                      oc: &[usize],
                      rc: &[usize],
                      red_origin: &[Idx],
                      lanes: usize|
     -> Vec<Vec<Idx>> {
        (0..lanes)
            .map(|lane| {
                let mut full = vec![Idx::konst(0); space.full.len()];
                for (k, a) in out_axes.iter().enumerate() {
                    let l = if a.vector > 1 { lane } else { 0 };
                    for (d, e) in axis_index(ctx, a, &out_origin[k], oc[k], l, &space.full) {
                        full[d] = e;
                    }
                }
                for (k, a) in red_axes.iter().enumerate() {
                    let l = if a.vector > 1 { lane } else { 0 };
                    for (d, e) in axis_index(ctx, a, &red_origin[k], rc[k], l, &space.full) {
                        full[d] = e;
                    }
                }
                split.original(ctx, &full)
            })
            .collect()
    };

    let vector_on_reduce = vec_axis.is_some_and(|i| axes[i].reduce);
    let mut results: Vec<Option<LVal>> = vec![None; out_combos.len()];
    if let Some(r) = &kernel.reduce {
        let Op::Reduce(rop, _) = r.op() else {
            unreachable!("reduce")
        };
        let rop = *rop;
        let acc_dtype = accumulate_dtype(r.dtype());
        let acc_lanes = if vec_axis.is_some() { lanes_n as u8 } else { 1 };
        let acc_ty = VType::vec(acc_dtype, acc_lanes);
        // One accumulator per (tile element, reduction unroll copy); copies combine at the end.
        let accs: Vec<Vec<ValueId>> = out_combos
            .iter()
            .map(|_| {
                red_combos
                    .iter()
                    .map(|_| {
                        em.b.push(Inst::DefineAcc {
                            ty: acc_ty,
                            init: rop.identity(acc_dtype),
                        })
                    })
                    .collect()
            })
            .collect();
        // Loops over the reduction axes' outer parts.
        let mut red_outer = Vec::new();
        for a in &red_axes {
            let start = em.konst(index_dtype, Scalar::Int(0));
            let end = em.konst(index_dtype, Scalar::Int(a.outer() as i64));
            let lv = em.b.push(Inst::Loop { start, end });
            em.push_scope();
            let var = em.ctx.var(a.outer());
            if !var.terms().is_empty() {
                em.var_values.push(lv);
            }
            red_outer.push(var);
        }
        let src = r.src()[0].clone();
        // A sum of products accumulates with multiply-add.
        let product = match src.op() {
            Op::Binary(BinaryOp::Mul)
                if rop == ReduceOp::Sum
                    && em.is_input(&src).is_none()
                    && acc_dtype == src.dtype() =>
            {
                Some((src.src()[0].clone(), src.src()[1].clone()))
            }
            _ => None,
        };
        // Adds the reduction input at `red_origin` (`lanes_n` lanes) to every accumulator.
        // Lanes below `from_lane` were added before and contribute the identity instead.
        let lanes = lanes_n;
        let accumulate = |em: &mut Emitter, red_origin: &[Idx], from_lane: usize| {
            let mask = (from_lane > 0).then(|| {
                let parts: Vec<ValueId> = (0..lanes)
                    .map(|l| em.konst(DType::Bool, Scalar::Bool(l >= from_lane)))
                    .collect();
                em.b.push(Inst::Vectorize(parts))
            });
            let masked = |em: &mut Emitter, v: ValueId, dtype: DType, fill: Scalar| match mask {
                Some(cond) => {
                    let fill = em.konst(dtype, fill);
                    let fill = em.splat(LVal { id: fill, lanes: 1 }, lanes as u8);
                    em.b.push(Inst::Where {
                        cond,
                        a: v,
                        b: fill,
                    })
                }
                None => v,
            };
            for (ci, oc) in out_combos.iter().enumerate() {
                for (ri, rc) in red_combos.iter().enumerate() {
                    let acc = accs[ci][ri];
                    let at: Lanes = full_lanes(&em.ctx, oc, rc, red_origin, lanes)
                        .into_iter()
                        .map(|f| (f, Gate::always()))
                        .collect();
                    let cur = em.b.push(Inst::ReadAcc(acc));
                    let new = match &product {
                        Some((x, y)) => {
                            let x = em.lower(x, at.clone());
                            let y = em.lower(y, at);
                            let (x, y) = (em.splat(x, acc_lanes), em.splat(y, acc_lanes));
                            // Both factors zeroed: an infinite factor in a masked lane must
                            // not turn into a NaN product.
                            let zero = Scalar::Float(0.0);
                            let x = masked(em, x, acc_dtype, zero);
                            let y = masked(em, y, acc_dtype, zero);
                            em.b.push(Inst::MulAcc { a: x, b: y, c: cur })
                        }
                        _ => {
                            let mut v = em.lower(&src, at);
                            if acc_dtype != src.dtype() {
                                v = LVal {
                                    id: em.b.push(Inst::Cast {
                                        to: VType::vec(acc_dtype, v.lanes),
                                        arg: v.id,
                                    }),
                                    lanes: v.lanes,
                                };
                            }
                            let v = em.splat(v, acc_lanes);
                            let v = masked(em, v, acc_dtype, rop.identity(acc_dtype));
                            em.b.push(Inst::Binary {
                                op: rop.combine(),
                                a: cur,
                                b: v,
                            })
                        }
                    };
                    em.b.push(Inst::WriteAcc { acc, value: new });
                }
            }
        };
        let red_origin: Vec<Idx> = red_axes
            .iter()
            .zip(&red_outer)
            .map(|(a, outer)| em.ctx.mul(outer, (a.vector * a.unroll) as i64))
            .collect();
        accumulate(&mut em, &red_origin, 0);
        if let Some(last) = red_axes.last() {
            em.b.push(Inst::EndLoop);
            em.pop_scope();
            // The innermost axis' tail, after its loop, inside the others: one vector ending at
            // the axis' end, the lanes it shares with the last whole vector masked (an 11-wide
            // row's 3 leftover elements one at a time cost more than its 2 whole vectors, in a
            // convolution's weight gradient). Only a vector axis has a tail.
            let tail = last.tail();
            if tail > 0 {
                debug_assert!(
                    last.vector == lanes && last.unroll == 1 && tail < last.vector,
                    "{last:?}"
                );
                let mut origin = red_origin.clone();
                *origin.last_mut().expect("a reduction axis") =
                    Idx::konst((last.size - last.vector) as i64);
                accumulate(&mut em, &origin, last.vector - tail);
            }
        }
        for _ in 1..red_axes.len() {
            em.b.push(Inst::EndLoop);
            em.pop_scope();
        }
        for (ci, _) in out_combos.iter().enumerate() {
            let mut parts: Vec<ValueId> = accs[ci]
                .iter()
                .map(|&a| em.b.push(Inst::ReadAcc(a)))
                .collect();
            while parts.len() > 1 {
                let pairs: Vec<ValueId> = parts
                    .chunks(2)
                    .map(|c| {
                        if c.len() == 2 {
                            em.b.push(Inst::Binary {
                                op: rop.combine(),
                                a: c[0],
                                b: c[1],
                            })
                        } else {
                            c[0]
                        }
                    })
                    .collect();
                parts = pairs;
            }
            let mut v = parts[0];
            let mut lanes = acc_lanes;
            if vector_on_reduce {
                v = em.b.push(Inst::ReduceLanes { op: rop, arg: v });
                lanes = 1;
            }
            if acc_dtype != r.dtype() {
                v = em.b.push(Inst::Cast {
                    to: VType::vec(r.dtype(), lanes),
                    arg: v,
                });
            }
            results[ci] = Some(LVal { id: v, lanes });
        }
    }

    // Epilogue and stores, one per output combo.
    let store_lanes = if vector_on_reduce { 1 } else { lanes_n };
    for (ci, oc) in out_combos.iter().enumerate() {
        em.reduce_value = results[ci];
        let rc0 = vec![0; red_axes.len()];
        let zero_red: Vec<Idx> = red_axes.iter().map(|_| Idx::konst(0)).collect();
        let fulls: Vec<Vec<Idx>> = full_lanes(&em.ctx, oc, &rc0, &zero_red, store_lanes);
        let value = if matches!(out.op(), Op::Reduce(..)) {
            results[ci].expect("reduce kernel has results")
        } else {
            let lanes: Lanes = fulls
                .iter()
                .map(|f| (output_index(&orig, out.shape(), f), Gate::always()))
                .collect();
            em.lower(&out.clone(), lanes)
        };
        let flats: Vec<Idx> = fulls
            .iter()
            .map(|f| flat_index(&em.ctx, out.shape(), &output_index(&orig, out.shape(), f)))
            .collect();
        let consecutive = flats
            .iter()
            .enumerate()
            .all(|(l, f)| em.ctx.add_const(&flats[0], l as i64) == *f);
        if flats.len() > 1 && consecutive {
            let index = em.emit_idx(&flats[0]);
            let v = em.splat(value, flats.len() as u8);
            em.b.push(Inst::Store {
                mem: Memory::Global(0),
                index,
                value: v,
                gate: None,
            });
        } else {
            for (l, f) in flats.iter().enumerate() {
                let index = em.emit_idx(f);
                let v = if value.lanes > 1 {
                    em.b.push(Inst::Extract {
                        vec: value.id,
                        lane: l as u8,
                    })
                } else {
                    value.id
                };
                em.b.push(Inst::Store {
                    mem: Memory::Global(0),
                    index,
                    value: v,
                    gate: None,
                });
            }
        }
    }
    let local = vec![1; global.len()];
    Program {
        name: kernel_name(kernel, &axes),
        params,
        global,
        local,
        index_dtype,
        insts: em.b.finish(),
    }
}

fn kernel_name(kernel: &Kernel, axes: &[Axis]) -> String {
    let kind = match &kernel.reduce {
        Some(r) => match r.op() {
            Op::Reduce(op, _) => format!("r_{op:?}").to_lowercase(),
            _ => "r".into(),
        },
        None => "e".into(),
    };
    let dims: Vec<String> = axes
        .iter()
        .map(|a| {
            let mut s = a.size.to_string();
            if a.reduce {
                s.push('r');
            }
            if a.vector > 1 {
                s.push_str(&format!("v{}", a.vector));
            }
            if a.unroll > 1 {
                s.push_str(&format!("u{}", a.unroll));
            }
            s
        })
        .collect();
    format!("{kind}_{}", dims.join("_"))
}
