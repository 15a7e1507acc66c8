//! Rendering a checked [`Program`] as a WGSL compute shader (text).
//!
//! * **Values.** Every kernel value is held lane by lane: a `VType` of `n` lanes is `n` scalar
//!   `let`s (WGSL vectors stop at 4 components and GPUs are scalar per invocation anyway).
//!   Register types: `bool`; `i32` for i8/i32 (i8 sign-extended and re-wrapped after every op);
//!   `u32` for u8/u32 (u8 masked); `i64`; `f32` for f16/bf16/f32 (16-bit values rounded to their
//!   format after every op, in integer arithmetic, exactly like the CPU and Vulkan backends);
//!   `f64`. i64 and f64 need wgpu's `SHADER_INT64` / `SHADER_F64` features (native WebGPU has
//!   neither); a program using them elsewhere is a compile error naming the feature.
//! * **Memory.** Param `i` is `@group(0) @binding(i)`, a runtime-sized storage array. WGSL has no
//!   8-bit and (without `shader-f16`) no 16-bit storage, so bool/i8/u8 and bf16 (and f16 without
//!   the feature) are packed into 32-bit words: see [`memory`].
//! * **Control flow.** `Loop` is a WGSL `loop` with a `continuing` block, `If` an `if`, and
//!   registers (`DefineAcc`) are function-scope `var`s.
//! * **Functions.** Semantics that need more than an operator (saturating casts, 16-bit
//!   rounding, division by zero, NaN-propagating max, exp2/log2/sin) are WGSL functions in
//!   [`helpers`], emitted once per shader and only when used.
//! * **Launch.** See [`launch`]: the grid is linearized and walked by a grid-stride loop.

mod cast;
mod helpers;
mod launch;
mod memory;
mod ops;
mod reduce;

pub(crate) use launch::Dispatch;

use ferrograd_ir::{DType, Inst, Program, Scalar, VType, ValueId};
use helpers::Helpers;
use std::fmt::Write as _;

/// What the adapter lets a shader use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Features {
    /// `shader-f16`: f16 buffers are `array<f16>` instead of packed words.
    pub(crate) native_f16: bool,
    /// `SHADER_INT64` (wgpu native): i64 values and buffers.
    pub(crate) int64: bool,
    /// `SHADER_F64` (wgpu native): f64 values and buffers.
    pub(crate) float64: bool,
    /// `SUBGROUP`: workgroup reductions combine subgroups first.
    pub(crate) subgroups: bool,
    /// `maxComputeWorkgroupsPerDimension`.
    pub(crate) max_groups: u32,
    /// `maxComputeWorkgroupSizeX/Y/Z`.
    pub(crate) max_local: [u32; 3],
    /// `maxComputeInvocationsPerWorkgroup`.
    pub(crate) max_invocations: u32,
    /// `maxComputeWorkgroupStorageSize` in bytes.
    pub(crate) max_shared_bytes: u32,
}

/// A rendered shader: WGSL source and how to dispatch it.
#[derive(Clone, Debug)]
pub(crate) struct Shader {
    /// The module's text (entry point `main`).
    pub(crate) source: String,
    /// Workgroups and local size.
    pub(crate) dispatch: Dispatch,
}

/// Renders `program` (checked; `types` are its value types) for an adapter with `features`.
pub(crate) fn render(
    program: &Program,
    types: &[Option<VType>],
    features: &Features,
) -> Result<Shader, String> {
    let dispatch = launch::plan(program, features)?;
    let mut g = Gen::new(program, types, features)?;
    g.local_count = dispatch.local.iter().product();
    g.main(&dispatch)?;
    Ok(Shader {
        source: g.finish(&dispatch),
        dispatch,
    })
}

/// Code generation state for one program.
pub(crate) struct Gen<'a> {
    program: &'a Program,
    types: &'a [Option<VType>],
    features: Features,
    /// Helper functions the shader calls.
    helpers: Helpers,
    /// Module-scope declarations (workgroup arrays).
    globals: String,
    /// The entry point's body.
    body: String,
    indent: usize,
    /// Per value: one expression (a `let` name) per lane; empty for instructions without one.
    values: Vec<Vec<String>>,
    /// Counter for temporaries.
    temps: u32,
    /// Invocations per workgroup.
    local_count: u32,
    /// Open `Loop`s (their instruction ids), innermost last; `None` marks an open `If`.
    frames: Vec<Option<u32>>,
    /// Expressions of `GroupId(d)` and `LocalId(d)` (set by the launch code).
    group_ids: Vec<String>,
    local_ids: Vec<String>,
}

/// The WGSL register type of one lane of `dtype`.
pub(crate) fn reg_ty(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "bool",
        DType::I8 | DType::I32 => "i32",
        DType::U8 | DType::U32 => "u32",
        DType::I64 => "i64",
        DType::F16 | DType::BF16 | DType::F32 => "f32",
        DType::F64 => "f64",
    }
}

/// An exact f32 literal (by its bits, so no decimal rounding is involved).
pub(crate) fn f32_lit(v: f32) -> String {
    format!("bitcast<f32>({:#010x}u)", v.to_bits())
}

/// An exact f64 literal (by its bits).
pub(crate) fn f64_lit(v: f64) -> String {
    format!("bitcast<f64>({:#018x}lu)", v.to_bits())
}

/// A float literal of register width (f64 when `wide`).
pub(crate) fn float_lit(v: f64, wide: bool) -> String {
    if wide {
        f64_lit(v)
    } else {
        f32_lit(v as f32)
    }
}

/// An integer literal in the register form of integer or bool `dtype` (wrapped to its width).
pub(crate) fn int_lit(dtype: DType, v: i64) -> String {
    match dtype {
        DType::Bool => (v != 0).to_string(),
        DType::I64 if v == i64::MIN => "(-9223372036854775807li - 1li)".into(),
        DType::I64 => format!("{v}li"),
        DType::U8 => format!("{}u", v as u8),
        DType::U32 => format!("{}u", v as u32),
        DType::I8 => format!("{}i", v as i8),
        _ if v as i32 == i32::MIN => "(-2147483647i - 1i)".into(),
        _ => format!("{}i", v as i32),
    }
}

/// The literal of `value` converted to `dtype` as a `Cast` of the constant would convert it.
pub(crate) fn scalar_lit(dtype: DType, value: Scalar) -> String {
    match value.cast(dtype) {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => int_lit(dtype, i),
        Scalar::Float(f) => float_lit(f, dtype == DType::F64),
    }
}

impl<'a> Gen<'a> {
    fn new(
        program: &'a Program,
        types: &'a [Option<VType>],
        features: &Features,
    ) -> Result<Self, String> {
        let mut dtypes: Vec<DType> = types.iter().flatten().map(|t| t.dtype).collect();
        dtypes.push(program.index_dtype);
        dtypes.extend(program.params.iter().map(|p| p.dtype));
        dtypes.extend(program.insts.iter().filter_map(|i| match i {
            Inst::DefineLocal { dtype, .. } => Some(*dtype),
            _ => None,
        }));
        if dtypes.contains(&DType::I64) && !features.int64 {
            return Err(
                "the program uses 64-bit integers (i64 values or indices); the adapter lacks \
                 the SHADER_INT64 feature"
                    .into(),
            );
        }
        if dtypes.contains(&DType::F64) && !features.float64 {
            return Err("the program uses f64; the adapter lacks the SHADER_F64 feature".into());
        }
        Ok(Gen {
            program,
            types,
            features: *features,
            helpers: Helpers::default(),
            globals: String::new(),
            body: String::new(),
            indent: 1,
            values: Vec::with_capacity(program.insts.len()),
            temps: 0,
            local_count: 1,
            frames: Vec::new(),
            group_ids: Vec::new(),
            local_ids: Vec::new(),
        })
    }

    /// The whole module: enables, params, workgroup arrays, helpers and `main`.
    fn finish(self, dispatch: &Dispatch) -> String {
        let mut out = String::new();
        if self.uses_native_f16() {
            out.push_str("enable f16;\n");
        }
        out.push_str(&self.param_decls());
        out.push_str(&self.globals);
        out.push_str(&self.helpers.text());
        let [x, y, z] = dispatch.local;
        let subgroup_args = if self.uses_subgroups() {
            ", @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_id) sg_id: u32, \
             @builtin(subgroup_invocation_id) sg_lane: u32"
        } else {
            ""
        };
        let _ = write!(
            out,
            "@compute @workgroup_size({x}, {y}, {z})\nfn main(@builtin(workgroup_id) wg: vec3<u32>, \
             @builtin(local_invocation_id) lid: vec3<u32>, \
             @builtin(local_invocation_index) flat: u32{subgroup_args}) {{\n{}}}\n",
            self.body
        );
        out
    }

    // ---- emission -----------------------------------------------------------------------------

    /// Appends one statement line to the body.
    pub(crate) fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.body.push_str("    ");
        }
        self.body.push_str(s);
        self.body.push('\n');
    }

    /// Opens a block (`header {`).
    pub(crate) fn open(&mut self, header: &str) {
        self.line(&format!("{header} {{"));
        self.indent += 1;
    }

    /// Closes the innermost block.
    pub(crate) fn close(&mut self) {
        self.indent -= 1;
        self.line("}");
    }

    /// Binds `expr` (of WGSL type `ty`) to a new temporary and returns its name.
    pub(crate) fn bind(&mut self, ty: &str, expr: &str) -> String {
        let name = format!("t{}", self.temps);
        self.temps += 1;
        self.line(&format!("let {name}: {ty} = {expr};"));
        name
    }

    /// `e` (of register type for `dtype`) passed through an OR with a zero only known at run
    /// time, for floats. WGSL has no float-controls mode, so without it drivers apply
    /// value-changing float rewrites (lavapipe folds `x + -x` to 0 and `x * 0` to 0, wrong for
    /// NaN and inf); an operand the compiler cannot see through blocks them. Float constants
    /// and negations are laundered this way.
    pub(crate) fn opaque(&self, dtype: DType, e: &str) -> String {
        match reg_ty(dtype) {
            "f32" => format!("bitcast<f32>(bitcast<u32>({e}) | opq)"),
            "f64" => format!("bitcast<f64>(bitcast<u64>({e}) | u64(opq))"),
            _ => e.to_string(),
        }
    }

    /// Requests helper function `name` and returns its name (for a call).
    pub(crate) fn helper(&mut self, name: &str) -> String {
        self.helpers.require(name);
        name.to_string()
    }

    // ---- values -------------------------------------------------------------------------------

    /// The lanes of a checked operand.
    fn lanes(&self, v: ValueId) -> Result<Vec<String>, String> {
        match self.values.get(v.0 as usize) {
            Some(l) if !l.is_empty() => Ok(l.clone()),
            _ => Err(format!("internal: %{} has no code", v.0)),
        }
    }

    /// The single lane of a scalar operand.
    fn scalar(&self, v: ValueId) -> Result<String, String> {
        Ok(self.lanes(v)?.swap_remove(0))
    }

    /// The type of a checked operand.
    fn ty(&self, v: ValueId) -> Result<VType, String> {
        self.types
            .get(v.0 as usize)
            .copied()
            .flatten()
            .ok_or_else(|| format!("internal: %{} has no type", v.0))
    }

    /// The WGSL type of indices.
    pub(crate) fn idx_ty(&self) -> &'static str {
        reg_ty(self.program.index_dtype)
    }

    /// An index literal.
    pub(crate) fn idx_lit(&self, v: i64) -> String {
        int_lit(self.program.index_dtype, v)
    }

    // ---- instructions -------------------------------------------------------------------------

    /// Renders every instruction (inside the launch loop).
    fn body_insts(&mut self) -> Result<(), String> {
        for (i, inst) in self.program.insts.iter().enumerate() {
            let lanes = self
                .inst(i as u32, inst)
                .map_err(|e| format!("instruction {i} ({inst:?}): {e}"))?;
            self.values.push(lanes);
        }
        if !self.frames.is_empty() {
            return Err("internal: unclosed Loop/If".into());
        }
        Ok(())
    }

    /// Binds per-lane results `exprs` of `dtype` as the lets of value `id`.
    fn define(&mut self, id: u32, dtype: DType, exprs: Vec<String>) -> Vec<String> {
        let ty = reg_ty(dtype);
        let single = exprs.len() == 1;
        exprs
            .into_iter()
            .enumerate()
            .map(|(l, e)| {
                let name = if single {
                    format!("v{id}")
                } else {
                    format!("v{id}_{l}")
                };
                self.line(&format!("let {name}: {ty} = {e};"));
                name
            })
            .collect()
    }

    fn inst(&mut self, id: u32, inst: &Inst) -> Result<Vec<String>, String> {
        let result_dtype = self.types[id as usize].map(|t| t.dtype);
        let exprs: Vec<String> = match inst {
            Inst::Const { ty, value } => {
                let lit = scalar_lit(ty.dtype, *value);
                vec![self.opaque(ty.dtype, &lit); ty.lanes as usize]
            }
            Inst::GroupId(d) => vec![self
                .group_ids
                .get(*d as usize)
                .ok_or("internal: launch dimension")?
                .clone()],
            Inst::LocalId(d) => vec![self
                .local_ids
                .get(*d as usize)
                .ok_or("internal: local dimension")?
                .clone()],
            Inst::Loop { start, end } => {
                let (start, end) = (self.scalar(*start)?, self.scalar(*end)?);
                let ity = self.idx_ty();
                self.line(&format!("var iv{id}: {ity} = {start};"));
                self.open("loop");
                self.line(&format!("if !(iv{id} < {end}) {{ break; }}"));
                self.frames.push(Some(id));
                vec![format!("iv{id}")]
            }
            Inst::EndLoop => {
                let Some(Some(lp)) = self.frames.pop() else {
                    return Err("internal: EndLoop without Loop".into());
                };
                let one = self.idx_lit(1);
                self.line(&format!("continuing {{ iv{lp} = iv{lp} + {one}; }}"));
                self.close();
                return Ok(vec![]);
            }
            Inst::If { cond } => {
                let c = self.scalar(*cond)?;
                self.open(&format!("if {c}"));
                self.frames.push(None);
                return Ok(vec![]);
            }
            Inst::EndIf => {
                let Some(None) = self.frames.pop() else {
                    return Err("internal: EndIf without If".into());
                };
                self.close();
                return Ok(vec![]);
            }
            Inst::DefineAcc { ty, init } => {
                let c = scalar_lit(ty.dtype, *init);
                let wty = reg_ty(ty.dtype);
                return Ok((0..ty.lanes)
                    .map(|l| {
                        let name = format!("a{id}_{l}");
                        self.line(&format!("var {name}: {wty} = {c};"));
                        name
                    })
                    .collect());
            }
            Inst::ReadAcc(acc) => self.lanes(*acc)?,
            Inst::WriteAcc { acc, value } => {
                let vars = self.lanes(*acc)?;
                for (v, l) in vars.iter().zip(self.lanes(*value)?) {
                    self.line(&format!("{v} = {l};"));
                }
                return Ok(vec![]);
            }
            Inst::Unary { op, arg } => {
                let dtype = self.ty(*arg)?.dtype;
                self.lanes(*arg)?
                    .iter()
                    .map(|x| self.unary(*op, dtype, x))
                    .collect::<Result<_, _>>()?
            }
            Inst::Binary { op, a, b } => {
                let dtype = self.ty(*a)?.dtype;
                let (la, lb) = (self.lanes(*a)?, self.lanes(*b)?);
                la.iter()
                    .zip(&lb)
                    .map(|(x, y)| self.binary(*op, dtype, x, y))
                    .collect::<Result<_, _>>()?
            }
            Inst::Where { cond, a, b } => {
                let (lc, la, lb) = (self.lanes(*cond)?, self.lanes(*a)?, self.lanes(*b)?);
                (0..la.len())
                    .map(|i| format!("select({}, {}, {})", lb[i], la[i], lc[i]))
                    .collect()
            }
            Inst::MulAcc { a, b, c } => {
                let dtype = self.ty(*a)?.dtype;
                let (la, lb, lc) = (self.lanes(*a)?, self.lanes(*b)?, self.lanes(*c)?);
                (0..la.len())
                    .map(|i| self.mul_acc(dtype, &la[i], &lb[i], &lc[i]))
                    .collect()
            }
            Inst::Cast { to, arg } => {
                let from = self.ty(*arg)?.dtype;
                self.lanes(*arg)?
                    .iter()
                    .map(|x| self.cast(from, to.dtype, x))
                    .collect::<Result<_, _>>()?
            }
            Inst::Bitcast { to, arg } => {
                let from = self.ty(*arg)?.dtype;
                self.lanes(*arg)?
                    .iter()
                    .map(|x| self.bitcast(from, to.dtype, x))
                    .collect::<Result<_, _>>()?
            }
            Inst::ReduceLanes { op, arg } => {
                let dtype = self.ty(*arg)?.dtype;
                let lanes = self.lanes(*arg)?;
                let mut acc = lanes[0].clone();
                for l in &lanes[1..] {
                    let e = self.binary(op.combine(), dtype, &acc, l)?;
                    acc = self.bind(reg_ty(dtype), &e);
                }
                vec![acc]
            }
            Inst::Vectorize(parts) => parts
                .iter()
                .map(|p| self.scalar(*p))
                .collect::<Result<_, _>>()?,
            Inst::Extract { vec, lane } => vec![self
                .lanes(*vec)?
                .get(*lane as usize)
                .ok_or("internal: lane out of range")?
                .clone()],
            Inst::Load {
                mem,
                index,
                gate,
                ty,
            } => self.load(*mem, *index, *gate, *ty)?,
            Inst::Store {
                mem,
                index,
                value,
                gate,
            } => {
                self.store(*mem, *index, *value, *gate)?;
                return Ok(vec![]);
            }
            Inst::DefineLocal { dtype, len } => {
                self.declare_local(id, *dtype, *len);
                return Ok(vec![]);
            }
            Inst::Barrier => {
                self.line("workgroupBarrier();");
                return Ok(vec![]);
            }
            Inst::WorkgroupReduce { op, arg } => {
                let dtype = self.ty(*arg)?.dtype;
                let x = self.scalar(*arg)?;
                vec![self.workgroup_reduce(id, *op, dtype, &x)?]
            }
        };
        let dtype = result_dtype.ok_or("internal: value without a type")?;
        Ok(self.define(id, dtype, exprs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact_and_in_range() {
        assert_eq!(int_lit(DType::I32, i32::MIN as i64), "(-2147483647i - 1i)");
        assert_eq!(int_lit(DType::U8, 300), "44u");
        assert_eq!(int_lit(DType::I8, 200), "-56i");
        assert_eq!(int_lit(DType::I64, -5), "-5li");
        assert_eq!(f32_lit(1.0), "bitcast<f32>(0x3f800000u)");
        assert_eq!(
            scalar_lit(DType::F16, Scalar::Float(0.1)),
            f32_lit(half::f16::from_f64(0.1).to_f32())
        );
        assert_eq!(scalar_lit(DType::Bool, Scalar::Float(f64::NAN)), "true");
    }
}
