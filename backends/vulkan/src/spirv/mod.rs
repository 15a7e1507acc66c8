//! Translation of a checked [`Program`] into a SPIR-V compute shader (SPIR-V 1.3, Vulkan 1.1).
//!
//! * **Values.** Every kernel value is held lane by lane: a `VType` of `n` lanes is `n` scalar
//!   SPIR-V ids (SPIR-V vectors stop at 4 components; GPUs are scalar per invocation anyway).
//!   Register types: bool is `OpTypeBool`; i8/u8/i32/u32 a 32-bit int (i8 sign-extended, u8
//!   zero-extended, re-wrapped after every op); i64 a 64-bit int; f16/bf16/f32 an f32 (16-bit
//!   values rounded after every op, as on the CPU backend); f64 an f64. Integer types are
//!   declared unsigned; signedness lives in the opcodes.
//! * **Memory.** Param `i` is a storage buffer at set 0, binding `i`, a runtime array of its
//!   storage type (bool/i8/u8: 8-bit, f16/bf16: 16-bit words, the rest native; without 8/16-bit
//!   storage the small types are packed into 32-bit words). Workgroup memory holds register
//!   types.
//! * **Control flow.** `Loop`/`If` become structured SPIR-V loops and selections; induction
//!   variables and `DefineAcc` registers are function variables.
//! * **Launch.** See [`launch`]: the program's grid is linearized and walked by a grid-stride
//!   loop, so any grid fits the device's workgroup-count limits.

mod alu;
mod cast;
mod float16;
mod launch;
mod math;
mod memory;
mod reduce;

pub(crate) use launch::Dispatch;

use ferrograd_ir::{DType, Inst, Program, Scalar, VType, ValueId};
use rspirv::binary::Assemble;
use rspirv::dr::{Builder, InsertPoint, Instruction, Operand};
use rspirv::spirv::{self, Capability, Op, StorageClass, Word};
use std::collections::HashMap;

/// What the device lets a shader use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Features {
    /// `shaderInt64`.
    pub(crate) int64: bool,
    /// `shaderFloat64`.
    pub(crate) float64: bool,
    /// `storageBuffer8BitAccess`.
    pub(crate) storage8: bool,
    /// `storageBuffer16BitAccess`.
    pub(crate) storage16: bool,
    /// `maxComputeWorkGroupCount`.
    pub(crate) max_groups: [u32; 3],
    /// `maxComputeWorkGroupSize`.
    pub(crate) max_local: [u32; 3],
    /// `maxComputeWorkGroupInvocations`.
    pub(crate) max_invocations: u32,
    /// `maxComputeSharedMemorySize` in bytes.
    pub(crate) max_shared_bytes: u32,
    /// `maxStorageBufferRange` in bytes.
    pub(crate) max_buffer_range: u64,
    /// `shaderSignedZeroInfNanPreserveFloat32` (with `VK_KHR_shader_float_controls`).
    pub(crate) preserve_nan32: bool,
    /// `shaderSignedZeroInfNanPreserveFloat64`.
    pub(crate) preserve_nan64: bool,
    /// Subgroup arithmetic operations in compute shaders.
    pub(crate) subgroup_arith: bool,
}

/// A compiled shader: SPIR-V words and how to dispatch it.
pub(crate) struct Shader {
    /// The module.
    pub(crate) words: Vec<u32>,
    /// Workgroups and local size.
    pub(crate) dispatch: Dispatch,
}

/// Translates `program` (checked; `types` are its value types) for a device with `features`.
pub(crate) fn translate(
    program: &Program,
    types: &[Option<VType>],
    features: &Features,
) -> Result<Shader, String> {
    let dispatch = launch::plan(program, features)?;
    let mut g = Gen::new(program, types, features)?;
    g.module(&dispatch)?;
    Ok(Shader {
        words: g.b.module().assemble(),
        dispatch,
    })
}

/// An open structured region.
enum Frame {
    /// A loop: its induction variable, continue and merge blocks.
    Loop {
        var: Word,
        header: Word,
        cont: Word,
        merge: Word,
    },
    /// A selection: its merge block.
    If { merge: Word },
}

/// Code generation state for one program.
pub(crate) struct Gen<'a> {
    b: Builder,
    program: &'a Program,
    features: Features,
    uses_f64: bool,
    /// Function variable of the grid-stride loop's linear index.
    lin_var: Word,
    /// A u32 zero the driver's compiler cannot prove to be zero (set by the launch code inside
    /// the grid-stride loop): float constants are ORed with it (see [`Gen::opaque_float`]).
    opaque_zero: Option<Word>,
    /// Invocations per workgroup (set from the dispatch before the body is translated).
    local_count: u32,
    /// Builtins of `WorkgroupReduce` (loaded at the start of the shader when used).
    reduce_builtins: reduce::ReduceBuiltins,
    types: &'a [Option<VType>],
    glsl: Word,
    /// Cached type ids (`ty_*`).
    type_ids: HashMap<(u8, u32), Word>,
    /// Cached pointer types by (storage class, pointee).
    ptr_types: HashMap<(u32, Word), Word>,
    /// Cached scalar constants by (type, bits).
    consts: HashMap<(Word, u64), Word>,
    /// Per value: one id per lane (empty for instructions without a value).
    values: Vec<Vec<Word>>,
    /// Function variables of each `DefineAcc` (one per lane) and `Loop` (the induction variable).
    vars: HashMap<u32, Vec<Word>>,
    /// Storage buffer variable of each param.
    params: Vec<Word>,
    /// Workgroup variable of each `DefineLocal`.
    locals: HashMap<u32, Word>,
    /// Value of `GroupId(d)` and `LocalId(d)` per dimension (set by the launch code).
    group_ids: Vec<Word>,
    local_ids: Vec<Word>,
    frames: Vec<Frame>,
}

/// Type-cache keys.
const K_BOOL: u8 = 0;
const K_INT: u8 = 1;
const K_FLOAT: u8 = 2;
const K_VOID: u8 = 3;
const K_UVEC: u8 = 4;

impl<'a> Gen<'a> {
    fn new(
        program: &'a Program,
        types: &'a [Option<VType>],
        features: &Features,
    ) -> Result<Self, String> {
        let mut b = Builder::new();
        b.set_version(1, 3);
        b.capability(Capability::Shader);
        let uses = Uses::of(program, types);
        if uses.int64 {
            if !features.int64 {
                return Err("the program uses 64-bit integers (i64 values or indices); the device lacks shaderInt64".into());
            }
            b.capability(Capability::Int64);
        }
        if uses.float64 {
            if !features.float64 {
                return Err("the program uses f64; the device lacks shaderFloat64".into());
            }
            b.capability(Capability::Float64);
        }
        // Without 8/16-bit storage those buffers are packed into 32-bit words (see `memory`).
        if uses.storage8 && features.storage8 {
            b.capability(Capability::StorageBuffer8BitAccess);
            b.extension("SPV_KHR_8bit_storage");
        }
        if uses.storage16 && features.storage16 {
            b.capability(Capability::StorageBuffer16BitAccess);
            b.extension("SPV_KHR_16bit_storage");
        }
        // Without this mode drivers may assume floats are never NaN/inf and fold `x * 0` or
        // `isnan`; the reference semantics need IEEE behaviour.
        if features.preserve_nan32 {
            b.capability(Capability::SignedZeroInfNanPreserve);
            b.extension("SPV_KHR_float_controls");
        }
        let glsl = b.ext_inst_import("GLSL.std.450");
        b.memory_model(spirv::AddressingModel::Logical, spirv::MemoryModel::GLSL450);
        Ok(Gen {
            b,
            program,
            features: *features,
            uses_f64: uses.float64,
            lin_var: 0,
            opaque_zero: None,
            local_count: 1,
            reduce_builtins: reduce::ReduceBuiltins::default(),
            types,
            glsl,
            type_ids: HashMap::new(),
            ptr_types: HashMap::new(),
            consts: HashMap::new(),
            values: Vec::with_capacity(program.insts.len()),
            vars: HashMap::new(),
            params: Vec::new(),
            locals: HashMap::new(),
            group_ids: Vec::new(),
            local_ids: Vec::new(),
            frames: Vec::new(),
        })
    }

    // ---- types and constants ------------------------------------------------------------------

    fn cached(&mut self, key: (u8, u32), make: impl FnOnce(&mut Builder) -> Word) -> Word {
        if let Some(&t) = self.type_ids.get(&key) {
            return t;
        }
        let t = make(&mut self.b);
        self.type_ids.insert(key, t);
        t
    }
    pub(crate) fn ty_void(&mut self) -> Word {
        self.cached((K_VOID, 0), |b| b.type_void())
    }
    pub(crate) fn ty_bool(&mut self) -> Word {
        self.cached((K_BOOL, 0), |b| b.type_bool())
    }
    pub(crate) fn ty_int(&mut self, bits: u32) -> Word {
        self.cached((K_INT, bits), |b| b.type_int(bits, 0))
    }
    pub(crate) fn ty_float(&mut self, bits: u32) -> Word {
        self.cached((K_FLOAT, bits), |b| b.type_float(bits, None))
    }
    /// A vector of `n` u32.
    pub(crate) fn ty_uvec(&mut self, n: u32) -> Word {
        let u = self.ty_int(32);
        self.cached((K_UVEC, n), |b| b.type_vector(u, n))
    }
    pub(crate) fn ty_ptr(&mut self, class: StorageClass, pointee: Word) -> Word {
        let key = (class as u32, pointee);
        if let Some(&t) = self.ptr_types.get(&key) {
            return t;
        }
        let t = self.b.type_pointer(None, class, pointee);
        self.ptr_types.insert(key, t);
        t
    }

    /// The register type of one lane of `dtype`.
    pub(crate) fn reg_ty(&mut self, dtype: DType) -> Word {
        match dtype {
            DType::Bool => self.ty_bool(),
            DType::I8 | DType::U8 | DType::I32 | DType::U32 => self.ty_int(32),
            DType::I64 => self.ty_int(64),
            DType::F16 | DType::BF16 | DType::F32 => self.ty_float(32),
            DType::F64 => self.ty_float(64),
        }
    }

    /// The register type of indices.
    pub(crate) fn idx_ty(&mut self) -> Word {
        self.reg_ty(self.program.index_dtype)
    }

    fn constant(&mut self, ty: Word, bits: u64, wide: bool) -> Word {
        if let Some(&c) = self.consts.get(&(ty, bits)) {
            return c;
        }
        let c = if wide {
            self.b.constant_bit64(ty, bits)
        } else {
            self.b.constant_bit32(ty, bits as u32)
        };
        self.consts.insert((ty, bits), c);
        c
    }
    pub(crate) fn c_u32(&mut self, v: u32) -> Word {
        let t = self.ty_int(32);
        self.constant(t, v as u64, false)
    }
    pub(crate) fn c_u64(&mut self, v: u64) -> Word {
        let t = self.ty_int(64);
        self.constant(t, v, true)
    }
    pub(crate) fn c_f32(&mut self, v: f32) -> Word {
        let t = self.ty_float(32);
        self.constant(t, v.to_bits() as u64, false)
    }
    pub(crate) fn c_f64(&mut self, v: f64) -> Word {
        let t = self.ty_float(64);
        self.constant(t, v.to_bits(), true)
    }
    pub(crate) fn c_bool(&mut self, v: bool) -> Word {
        let t = self.ty_bool();
        if let Some(&c) = self.consts.get(&(t, v as u64)) {
            return c;
        }
        let c = if v {
            self.b.constant_true(t)
        } else {
            self.b.constant_false(t)
        };
        self.consts.insert((t, v as u64), c);
        c
    }
    /// An integer constant in the register form of integer `dtype` (wrapped to its width and
    /// sign- or zero-extended like a register).
    pub(crate) fn c_int(&mut self, dtype: DType, v: i64) -> Word {
        match dtype {
            DType::I64 => self.c_u64(v as u64),
            DType::I8 => self.c_u32(v as i8 as i32 as u32),
            DType::U8 => self.c_u32(v as u8 as u32),
            _ => self.c_u32(v as u32),
        }
    }
    /// A float constant of float `dtype` (f64 registers for f64, f32 otherwise).
    pub(crate) fn c_float(&mut self, dtype: DType, v: f64) -> Word {
        if dtype == DType::F64 {
            self.c_f64(v)
        } else {
            self.c_f32(v as f32)
        }
    }
    /// The scalar constant `value` of `dtype`, converted like a `Cast` of the constant.
    pub(crate) fn scalar_const(&mut self, dtype: DType, value: Scalar) -> Word {
        match value.cast(dtype) {
            Scalar::Bool(b) => self.c_bool(b),
            Scalar::Int(i) => self.c_int(dtype, i),
            Scalar::Float(f) => self.c_float(dtype, f),
        }
    }

    /// Float register `x` of `dtype` with its bits ORed with the opaque zero. Drivers apply
    /// rewrites that are wrong for NaN and infinity to constants they can see (lavapipe folds
    /// `x * 0` to 0 even under `SignedZeroInfNanPreserve`); a constant only known at run time
    /// blocks them. Before the launch code has defined the zero, `x` is returned unchanged.
    pub(crate) fn opaque_float(&mut self, dtype: DType, x: Word) -> Word {
        let Some(zero) = self.opaque_zero else {
            return x;
        };
        let ty = self.reg_ty(dtype);
        if dtype == DType::F64 {
            // As two u32 words, so shaders without 64-bit integers need no Int64 capability.
            let (u32t, uvec2) = (self.ty_int(32), self.ty_uvec(2));
            let words = self.op(Op::Bitcast, uvec2, &[x]);
            let [low, high] = [0, 1].map(|i| {
                self.b
                    .composite_extract(u32t, None, words, [i])
                    .expect("inside a block")
            });
            let low = self.op(Op::BitwiseOr, u32t, &[low, zero]);
            let words = self.op(Op::CompositeConstruct, uvec2, &[low, high]);
            self.op(Op::Bitcast, ty, &[words])
        } else {
            let u32t = self.ty_int(32);
            let bits = self.op(Op::Bitcast, u32t, &[x]);
            let ored = self.op(Op::BitwiseOr, u32t, &[bits, zero]);
            self.op(Op::Bitcast, ty, &[ored])
        }
    }

    // ---- instructions ----------------------------------------------------------------------

    /// Appends `code` with result type `ty` and id operands `args`; returns the result id.
    pub(crate) fn op(&mut self, code: Op, ty: Word, args: &[Word]) -> Word {
        let id = self.b.id();
        let operands = args.iter().map(|&a| Operand::IdRef(a)).collect();
        self.push(Instruction::new(code, Some(ty), Some(id), operands));
        id
    }
    /// Appends a prepared instruction to the current block.
    pub(crate) fn push_inst(&mut self, inst: Instruction) {
        self.push(inst);
    }

    fn push(&mut self, inst: Instruction) {
        self.b
            .insert_into_block(InsertPoint::End, inst)
            .expect("an instruction is emitted inside a block");
    }
    /// A GLSL.std.450 extended instruction.
    pub(crate) fn glsl(&mut self, inst: spirv::GlslStd450Op, ty: Word, args: &[Word]) -> Word {
        let set = self.glsl;
        self.b
            .ext_inst(
                ty,
                None,
                set,
                inst as u32,
                args.iter().map(|&a| Operand::IdRef(a)),
            )
            .expect("an instruction is emitted inside a block")
    }
    /// `cond ? a : b` on scalars of register type `ty`.
    pub(crate) fn select(&mut self, ty: Word, cond: Word, a: Word, b: Word) -> Word {
        self.op(Op::Select, ty, &[cond, a, b])
    }
    /// Loads a pointer.
    pub(crate) fn load_ptr(&mut self, ty: Word, ptr: Word) -> Word {
        self.b
            .load(ty, None, ptr, None, [])
            .expect("inside a block")
    }
    /// Stores through a pointer.
    pub(crate) fn store_ptr(&mut self, ptr: Word, value: Word) {
        self.b.store(ptr, value, None, []).expect("inside a block");
    }
    /// Ends the current block with a branch and starts the block `next`.
    fn branch_to(&mut self, target: Word, next: Option<Word>) {
        self.b.branch(target).expect("inside a block");
        if let Some(next) = next {
            self.b.begin_block(Some(next)).expect("inside a function");
        }
    }

    // ---- values -------------------------------------------------------------------------------

    /// The lanes of a checked operand.
    pub(crate) fn lanes(&self, v: ValueId) -> Result<Vec<Word>, String> {
        match self.values.get(v.0 as usize) {
            Some(l) if !l.is_empty() => Ok(l.clone()),
            _ => Err(format!("internal: %{} has no code", v.0)),
        }
    }
    /// The single lane of a scalar operand.
    pub(crate) fn scalar(&self, v: ValueId) -> Result<Word, String> {
        Ok(self.lanes(v)?[0])
    }
    /// The type of a checked operand.
    pub(crate) fn ty(&self, v: ValueId) -> Result<VType, String> {
        self.types
            .get(v.0 as usize)
            .copied()
            .flatten()
            .ok_or_else(|| format!("internal: %{} has no type", v.0))
    }

    // ---- the module ---------------------------------------------------------------------------

    fn module(&mut self, dispatch: &Dispatch) -> Result<(), String> {
        self.local_count = dispatch.local.iter().product();
        self.declare_params();
        self.declare_locals()?;
        let (wg_var, lid_var) = self.declare_builtins();
        let reduces = self
            .program
            .insts
            .iter()
            .any(|i| matches!(i, Inst::WorkgroupReduce { .. }));
        let subgroups = self.uses_subgroups();
        let mut interface = vec![wg_var, lid_var];
        let mut scalar_input = |g: &mut Self, builtin: spirv::BuiltIn| {
            let u32t = g.ty_int(32);
            let ptr = g.ty_ptr(StorageClass::Input, u32t);
            let v = g.b.variable(ptr, None, StorageClass::Input, None);
            g.b.decorate(v, spirv::Decoration::BuiltIn, [Operand::BuiltIn(builtin)]);
            interface.push(v);
            v
        };
        let flat_var = reduces.then(|| scalar_input(self, spirv::BuiltIn::LocalInvocationIndex));
        let subgroup_vars = subgroups.then(|| {
            (
                scalar_input(self, spirv::BuiltIn::SubgroupId),
                scalar_input(self, spirv::BuiltIn::NumSubgroups),
                scalar_input(self, spirv::BuiltIn::SubgroupSize),
            )
        });
        if subgroups {
            self.b.capability(Capability::GroupNonUniform);
            self.b.capability(Capability::GroupNonUniformArithmetic);
        }
        let void = self.ty_void();
        let fn_ty = self.b.type_function(void, vec![]);
        let main = self
            .b
            .begin_function(void, None, spirv::FunctionControl::NONE, fn_ty)
            .map_err(|e| format!("internal: {e:?}"))?;
        self.b
            .begin_block(None)
            .map_err(|e| format!("internal: {e:?}"))?;
        self.declare_function_variables();
        let u32t = self.ty_int(32);
        if let Some(v) = flat_var {
            self.reduce_builtins.flat = self.load_ptr(u32t, v);
        }
        if let Some((sid, count, size)) = subgroup_vars {
            let loaded = (
                self.load_ptr(u32t, sid),
                self.load_ptr(u32t, count),
                self.load_ptr(u32t, size),
            );
            self.reduce_builtins.subgroup = Some(loaded);
        }
        self.launch(dispatch, wg_var, lid_var, |g| g.body())?;
        self.b.ret().map_err(|e| format!("internal: {e:?}"))?;
        self.b
            .end_function()
            .map_err(|e| format!("internal: {e:?}"))?;
        self.b
            .entry_point(spirv::ExecutionModel::GLCompute, main, "main", interface);
        self.b
            .execution_mode(main, spirv::ExecutionMode::LocalSize, dispatch.local);
        if self.features.preserve_nan32 {
            self.b
                .execution_mode(main, spirv::ExecutionMode::SignedZeroInfNanPreserve, [32]);
            if self.uses_f64 && self.features.preserve_nan64 {
                self.b
                    .execution_mode(main, spirv::ExecutionMode::SignedZeroInfNanPreserve, [64]);
            }
        }
        Ok(())
    }

    /// `WorkgroupId` and `LocalInvocationId` input variables.
    fn declare_builtins(&mut self) -> (Word, Word) {
        let uvec3 = self.ty_uvec(3);
        let ptr = self.ty_ptr(StorageClass::Input, uvec3);
        let var = |g: &mut Self, builtin: spirv::BuiltIn| {
            let v = g.b.variable(ptr, None, StorageClass::Input, None);
            g.b.decorate(v, spirv::Decoration::BuiltIn, [Operand::BuiltIn(builtin)]);
            v
        };
        let wg = var(self, spirv::BuiltIn::WorkgroupId);
        let lid = var(self, spirv::BuiltIn::LocalInvocationId);
        (wg, lid)
    }

    /// One function variable per `DefineAcc` lane and per `Loop` (all in the entry block, as
    /// SPIR-V requires).
    fn declare_function_variables(&mut self) {
        let ity = self.idx_ty();
        let lin_ptr = self.ty_ptr(StorageClass::Function, ity);
        self.lin_var = self.b.variable(lin_ptr, None, StorageClass::Function, None);
        for (i, inst) in self.program.insts.iter().enumerate() {
            let (dtype, lanes) = match inst {
                Inst::DefineAcc { ty, .. } => (ty.dtype, ty.lanes as usize),
                Inst::Loop { .. } => (self.program.index_dtype, 1),
                Inst::WorkgroupReduce { arg, .. } => {
                    // The running total and the loop counter of the subgroup path.
                    let dtype = self.types[arg.0 as usize].map_or(DType::U32, |t| t.dtype);
                    let (ty, u32t) = (self.reg_ty(dtype), self.ty_int(32));
                    let (p, pu) = (
                        self.ty_ptr(StorageClass::Function, ty),
                        self.ty_ptr(StorageClass::Function, u32t),
                    );
                    let vars = vec![
                        self.b.variable(p, None, StorageClass::Function, None),
                        self.b.variable(pu, None, StorageClass::Function, None),
                    ];
                    self.vars.insert(i as u32, vars);
                    continue;
                }
                _ => continue,
            };
            let ty = self.reg_ty(dtype);
            let ptr = self.ty_ptr(StorageClass::Function, ty);
            let vars = (0..lanes)
                .map(|_| self.b.variable(ptr, None, StorageClass::Function, None))
                .collect();
            self.vars.insert(i as u32, vars);
        }
    }

    /// Translates the program's instructions (inside the launch loop).
    fn body(&mut self) -> Result<(), String> {
        for (i, inst) in self.program.insts.iter().enumerate() {
            let lanes = self
                .inst(i as u32, inst)
                .map_err(|e| format!("instruction {i} ({inst:?}): {e}"))?;
            self.values.push(lanes);
        }
        Ok(())
    }

    fn inst(&mut self, id: u32, inst: &Inst) -> Result<Vec<Word>, String> {
        Ok(match inst {
            Inst::Const { ty, value } => {
                let c = self.scalar_const(ty.dtype, *value);
                let c = if ty.dtype.is_float() {
                    self.opaque_float(ty.dtype, c)
                } else {
                    c
                };
                vec![c; ty.lanes as usize]
            }
            Inst::GroupId(d) => vec![*self
                .group_ids
                .get(*d as usize)
                .ok_or("internal: launch dimension")?],
            Inst::LocalId(d) => vec![*self
                .local_ids
                .get(*d as usize)
                .ok_or("internal: local dimension")?],
            Inst::Loop { start, end } => vec![self.open_loop(id, *start, *end)?],
            Inst::EndLoop => {
                self.close_loop()?;
                vec![]
            }
            Inst::If { cond } => {
                let c = self.scalar(*cond)?;
                let then = self.b.id();
                let merge = self.b.id();
                self.b
                    .selection_merge(merge, spirv::SelectionControl::NONE)
                    .map_err(|e| format!("internal: {e:?}"))?;
                self.b
                    .branch_conditional(c, then, merge, [])
                    .map_err(|e| format!("internal: {e:?}"))?;
                self.b
                    .begin_block(Some(then))
                    .map_err(|e| format!("internal: {e:?}"))?;
                self.frames.push(Frame::If { merge });
                vec![]
            }
            Inst::EndIf => {
                let Some(Frame::If { merge }) = self.frames.pop() else {
                    return Err("internal: EndIf without If".into());
                };
                self.branch_to(merge, Some(merge));
                vec![]
            }
            Inst::DefineAcc { ty, init } => {
                let c = self.scalar_const(ty.dtype, *init);
                let vars = self
                    .vars
                    .get(&id)
                    .ok_or("internal: register variable")?
                    .clone();
                for v in &vars {
                    self.store_ptr(*v, c);
                }
                vec![c; ty.lanes as usize]
            }
            Inst::ReadAcc(acc) => {
                let vt = self.ty(*acc)?;
                let ty = self.reg_ty(vt.dtype);
                let vars = self
                    .vars
                    .get(&acc.0)
                    .ok_or("internal: register variable")?
                    .clone();
                vars.iter().map(|v| self.load_ptr(ty, *v)).collect()
            }
            Inst::WriteAcc { acc, value } => {
                let lanes = self.lanes(*value)?;
                let vars = self
                    .vars
                    .get(&acc.0)
                    .ok_or("internal: register variable")?
                    .clone();
                for (v, l) in vars.iter().zip(lanes) {
                    self.store_ptr(*v, l);
                }
                vec![]
            }
            Inst::Unary { op, arg } => {
                let dtype = self.ty(*arg)?.dtype;
                let lanes = self.lanes(*arg)?;
                lanes
                    .into_iter()
                    .map(|x| self.unary(*op, dtype, x))
                    .collect::<Result<_, _>>()?
            }
            Inst::Binary { op, a, b } => {
                let dtype = self.ty(*a)?.dtype;
                let (la, lb) = (self.lanes(*a)?, self.lanes(*b)?);
                la.into_iter()
                    .zip(lb)
                    .map(|(x, y)| self.binary(*op, dtype, x, y))
                    .collect::<Result<_, _>>()?
            }
            Inst::Where { cond, a, b } => {
                let ty = self.reg_ty(self.ty(*a)?.dtype);
                let (lc, la, lb) = (self.lanes(*cond)?, self.lanes(*a)?, self.lanes(*b)?);
                (0..la.len())
                    .map(|i| self.select(ty, lc[i], la[i], lb[i]))
                    .collect()
            }
            Inst::MulAcc { a, b, c } => {
                let dtype = self.ty(*a)?.dtype;
                let (la, lb, lc) = (self.lanes(*a)?, self.lanes(*b)?, self.lanes(*c)?);
                (0..la.len())
                    .map(|i| self.mul_acc(dtype, la[i], lb[i], lc[i]))
                    .collect::<Result<_, _>>()?
            }
            Inst::Cast { to, arg } => {
                let from = self.ty(*arg)?.dtype;
                let lanes = self.lanes(*arg)?;
                lanes
                    .into_iter()
                    .map(|x| self.cast(from, to.dtype, x))
                    .collect::<Result<_, _>>()?
            }
            Inst::Bitcast { to, arg } => {
                let from = self.ty(*arg)?.dtype;
                let lanes = self.lanes(*arg)?;
                lanes
                    .into_iter()
                    .map(|x| self.bitcast(from, to.dtype, x))
                    .collect::<Result<_, _>>()?
            }
            Inst::ReduceLanes { op, arg } => {
                let dtype = self.ty(*arg)?.dtype;
                let lanes = self.lanes(*arg)?;
                let mut acc = lanes[0];
                for &l in &lanes[1..] {
                    acc = self.binary(op.combine(), dtype, acc, l)?;
                }
                vec![acc]
            }
            Inst::Vectorize(parts) => parts
                .iter()
                .map(|p| self.scalar(*p))
                .collect::<Result<_, _>>()?,
            Inst::Extract { vec, lane } => {
                vec![*self
                    .lanes(*vec)?
                    .get(*lane as usize)
                    .ok_or("internal: lane out of range")?]
            }
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
                vec![]
            }
            Inst::DefineLocal { .. } => vec![],
            Inst::WorkgroupReduce { op, arg } => {
                let dtype = self.ty(*arg)?.dtype;
                let x = self.scalar(*arg)?;
                vec![self.workgroup_reduce(id, *op, dtype, x)?]
            }
            Inst::Barrier => {
                let wg = self.c_u32(spirv::Scope::Workgroup as u32);
                let sem = self.c_u32(
                    (spirv::MemorySemantics::ACQUIRE_RELEASE
                        | spirv::MemorySemantics::WORKGROUP_MEMORY)
                        .bits(),
                );
                self.b
                    .control_barrier(wg, wg, sem)
                    .map_err(|e| format!("internal: {e:?}"))?;
                vec![]
            }
        })
    }

    /// Opens a structured loop `for iv in start..end`; returns the induction variable's value.
    fn open_loop(&mut self, id: u32, start: ValueId, end: ValueId) -> Result<Word, String> {
        let var = self.vars.get(&id).ok_or("internal: loop variable")?[0];
        let (start, end) = (self.scalar(start)?, self.scalar(end)?);
        self.store_ptr(var, start);
        let (header, body, cont, merge) = (self.b.id(), self.b.id(), self.b.id(), self.b.id());
        self.branch_to(header, Some(header));
        let ty = self.idx_ty();
        let iv = self.load_ptr(ty, var);
        let bool_ty = self.ty_bool();
        let more = self.op(Op::SLessThan, bool_ty, &[iv, end]);
        self.b
            .loop_merge(merge, cont, spirv::LoopControl::NONE, [])
            .map_err(|e| format!("internal: {e:?}"))?;
        self.b
            .branch_conditional(more, body, merge, [])
            .map_err(|e| format!("internal: {e:?}"))?;
        self.b
            .begin_block(Some(body))
            .map_err(|e| format!("internal: {e:?}"))?;
        self.frames.push(Frame::Loop {
            var,
            header,
            cont,
            merge,
        });
        Ok(iv)
    }

    /// Closes the innermost loop: the continue block increments the induction variable.
    fn close_loop(&mut self) -> Result<(), String> {
        let Some(Frame::Loop {
            var,
            header,
            cont,
            merge,
        }) = self.frames.pop()
        else {
            return Err("internal: EndLoop without Loop".into());
        };
        self.branch_to(cont, Some(cont));
        let ty = self.idx_ty();
        let iv = self.load_ptr(ty, var);
        let one = self.c_int(self.program.index_dtype, 1);
        let next = self.op(Op::IAdd, ty, &[iv, one]);
        self.store_ptr(var, next);
        self.branch_to(header, Some(merge));
        Ok(())
    }
}

/// Which optional capabilities a program needs.
struct Uses {
    int64: bool,
    float64: bool,
    storage8: bool,
    storage16: bool,
}

impl Uses {
    fn of(program: &Program, types: &[Option<VType>]) -> Uses {
        let mut dtypes: Vec<DType> = types.iter().flatten().map(|t| t.dtype).collect();
        dtypes.push(program.index_dtype);
        dtypes.extend(program.params.iter().map(|p| p.dtype));
        for inst in &program.insts {
            if let Inst::DefineLocal { dtype, .. } = inst {
                dtypes.push(*dtype);
            }
        }
        let params = |f: fn(DType) -> bool| program.params.iter().any(|p| f(p.dtype));
        Uses {
            int64: dtypes.contains(&DType::I64),
            float64: dtypes.contains(&DType::F64),
            storage8: params(|d| d.size() == 1),
            storage16: params(|d| d.size() == 2),
        }
    }
}
