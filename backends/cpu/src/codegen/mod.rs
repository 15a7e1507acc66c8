//! Translation of a checked [`Program`] into one Cranelift function.
//!
//! The function has the signature `extern "C" fn(args: *const *mut u8, start: i64, end: i64)`:
//! `args` holds one base pointer per param, and the body loops launch dimension 0 over
//! `[start, end)` and every other launch dimension over its full range, running the program's
//! instructions once per grid point.

mod alu;
mod cast;
mod math;
mod memory;
mod value;

use crate::helpers::Helper;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I32;
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, FuncRef, Function, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{Linkage, Module};
use ferrograd_ir::{Inst, Program, VType};
use std::collections::HashMap;
use value::{scalar_type, whole_type, Repr};

/// Code generation choices that do not come from the program.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// The target has fused multiply-add instructions.
    pub(crate) has_fma: bool,
    /// Compute f32 `exp2`/`log2`/`sin` with per-lane libm calls instead of inline polynomials.
    pub(crate) libm_f32: bool,
}

/// Builds the kernel function for `program` (already checked; `types` are its value types).
pub(crate) fn translate(
    program: &Program,
    types: &[Option<VType>],
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    module: &mut dyn Module,
    config: Config,
) -> Result<(), String> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(ptr); 3]);
    func.signature = sig;
    let b = FunctionBuilder::new(func, fctx);
    let mut t = Translator {
        b,
        module,
        config,
        program,
        types,
        ptr,
        index: scalar_type(program.index_dtype),
        values: vec![None; program.insts.len()],
        accs: HashMap::new(),
        helpers: HashMap::new(),
        params: Vec::new(),
        grid: Vec::new(),
        frames: Vec::new(),
    };
    t.body()?;
    let target = t.module.target_config();
    t.b.finalize(target);
    Ok(())
}

/// An open structured region.
enum Frame {
    /// A counted loop: its header (taking the induction variable), exit block and variable.
    Loop {
        header: Block,
        exit: Block,
        iv: Value,
    },
    /// The block after an `If`.
    If { merge: Block },
}

/// State while translating one program.
pub(crate) struct Translator<'a> {
    b: FunctionBuilder<'a>,
    module: &'a mut dyn Module,
    config: Config,
    program: &'a Program,
    types: &'a [Option<VType>],
    /// Pointer type.
    ptr: Type,
    /// Cranelift type of index values.
    index: Type,
    /// Code of every value defined so far.
    values: Vec<Option<Repr>>,
    /// Variables of each `DefineAcc` register (one, or one per lane).
    accs: HashMap<u32, Vec<Variable>>,
    /// Helper functions imported so far.
    helpers: HashMap<Helper, FuncRef>,
    /// Base pointer of every param.
    params: Vec<Value>,
    /// Induction variable (i64) of every launch dimension.
    grid: Vec<Value>,
    /// Open loops and ifs, innermost last.
    frames: Vec<Frame>,
}

impl Translator<'_> {
    fn body(&mut self) -> Result<(), String> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        self.b.seal_block(entry);
        let [args, start, end] = *self.b.block_params(entry) else {
            return Err("internal: kernel signature".to_string());
        };
        let pointer_bytes = self.ptr.bytes() as i32;
        for i in 0..self.program.params.len() {
            let flags = MemFlagsData::trusted().with_readonly();
            let p = self
                .b
                .ins()
                .load(self.ptr, flags, args, i as i32 * pointer_bytes);
            self.params.push(p);
        }
        for dim in 0..self.program.global.len() {
            let (lo, hi) = if dim == 0 {
                (start, end)
            } else {
                let size = self.program.global[dim] as i64;
                (self.iconst(self.ptr, 0), self.iconst(self.ptr, size))
            };
            let iv = self.open_loop(lo, hi);
            self.grid.push(iv);
        }
        for (i, inst) in self.program.insts.iter().enumerate() {
            let repr = self
                .inst(i as u32, inst)
                .map_err(|e| format!("instruction {i} ({inst:?}): {e}"))?;
            self.values[i] = repr;
        }
        for _ in 0..self.program.global.len() {
            self.close_loop()?;
        }
        self.b.ins().return_(&[]);
        Ok(())
    }

    fn inst(&mut self, id: u32, inst: &Inst) -> Result<Option<Repr>, String> {
        Ok(Some(match inst {
            Inst::Const { ty, value } => self.constant(*ty, *value),
            Inst::GroupId(dim) => {
                let iv = *self
                    .grid
                    .get(*dim as usize)
                    .ok_or("internal: launch dimension")?;
                Repr::Whole(if self.index == I32 {
                    self.b.ins().ireduce(I32, iv)
                } else {
                    iv
                })
            }
            Inst::Loop { start, end } => {
                let (lo, hi) = (self.whole(*start)?, self.whole(*end)?);
                Repr::Whole(self.open_loop(lo, hi))
            }
            Inst::EndLoop => {
                self.close_loop()?;
                return Ok(None);
            }
            Inst::If { cond } => {
                let cond = self.whole(*cond)?;
                let merge = self.open_if(cond);
                self.frames.push(Frame::If { merge });
                return Ok(None);
            }
            Inst::EndIf => {
                let Some(Frame::If { merge }) = self.frames.pop() else {
                    return Err("internal: EndIf without If".to_string());
                };
                self.close_if(merge);
                return Ok(None);
            }
            Inst::DefineAcc { ty, init } => {
                let init = self.constant(*ty, *init);
                let parts = self.parts(*ty, &init);
                let vars: Vec<Variable> = parts
                    .iter()
                    .map(|&part| {
                        let var = self.b.declare_var(self.b.func.dfg.value_type(part));
                        self.b.def_var(var, part);
                        var
                    })
                    .collect();
                self.accs.insert(id, vars);
                init
            }
            Inst::ReadAcc(acc) => {
                let vt = self.ty(*acc)?;
                let vars = self
                    .accs
                    .get(&acc.0)
                    .ok_or("internal: unknown register")?
                    .clone();
                let parts: Vec<Value> = vars.into_iter().map(|v| self.b.use_var(v)).collect();
                self.join_parts(vt, parts)
            }
            Inst::WriteAcc { acc, value } => {
                let vt = self.ty(*value)?;
                let repr = self.val(*value)?;
                let parts = self.parts(vt, &repr);
                let vars = self
                    .accs
                    .get(&acc.0)
                    .ok_or("internal: unknown register")?
                    .clone();
                for (var, part) in vars.into_iter().zip(parts) {
                    self.b.def_var(var, part);
                }
                return Ok(None);
            }
            Inst::Unary { op, arg } => self.unary(*op, *arg)?,
            Inst::Binary { op, a, b } => self.binary(*op, *a, *b)?,
            Inst::Where { cond, a, b } => self.select(*cond, *a, *b)?,
            Inst::MulAcc { a, b, c } => self.mul_acc(*a, *b, *c)?,
            Inst::Cast { to, arg } => self.cast(*arg, *to)?,
            Inst::Bitcast { to, arg } => self.bitcast(*arg, *to)?,
            Inst::ReduceLanes { op, arg } => self.reduce(*op, *arg)?,
            Inst::Vectorize(parts) => {
                let first = *parts.first().ok_or("internal: empty Vectorize")?;
                let vt = VType::vec(self.ty(first)?.dtype, parts.len() as u8);
                let mut lanes = Vec::with_capacity(parts.len());
                for part in parts {
                    lanes.push(self.whole(*part)?);
                }
                self.pack(vt, lanes)
            }
            Inst::Extract { vec, lane } => {
                let vt = self.ty(*vec)?;
                match self.val(*vec)? {
                    Repr::Whole(v) if vt.lanes == 1 => Repr::Whole(v),
                    Repr::Whole(v) => Repr::Whole(self.extract_lane(vt, v, *lane)),
                    Repr::Lanes(lanes) => Repr::Whole(
                        *lanes
                            .get(*lane as usize)
                            .ok_or("internal: lane out of range")?,
                    ),
                }
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
                return Ok(None);
            }
            Inst::LocalId(_)
            | Inst::DefineLocal { .. }
            | Inst::Barrier
            | Inst::WorkgroupReduce { .. } => {
                return Err(crate::validate::WORKGROUP_ERROR.to_string())
            }
        }))
    }

    /// The code of a scalar (or SIMD) operand.
    fn whole(&self, v: ferrograd_ir::ValueId) -> Result<Value, String> {
        match self.val(v)? {
            Repr::Whole(x) => Ok(x),
            Repr::Lanes(_) => Err(format!("internal: %{} is not a whole value", v.0)),
        }
    }

    /// The Cranelift values making up a value of type `vt`: the whole value, or every lane.
    fn parts(&mut self, vt: VType, repr: &Repr) -> Vec<Value> {
        match (whole_type(vt), repr) {
            (Some(_), Repr::Whole(v)) => vec![*v],
            _ => self.lanes_of(vt, repr),
        }
    }

    /// The inverse of [`Self::parts`].
    fn join_parts(&mut self, vt: VType, parts: Vec<Value>) -> Repr {
        match whole_type(vt) {
            Some(_) if parts.len() == 1 => Repr::Whole(parts[0]),
            _ => self.pack(vt, parts),
        }
    }

    /// Starts a counted loop from `lo` to `hi` (exclusive); returns the induction variable.
    fn open_loop(&mut self, lo: Value, hi: Value) -> Value {
        let ty = self.b.func.dfg.value_type(lo);
        let header = self.b.create_block();
        let iv = self.b.append_block_param(header, ty);
        let body = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[BlockArg::Value(lo)]);
        self.b.switch_to_block(header);
        // The exit is the branch's first target: Cranelift's elaborator walks the dominator
        // tree in CFG reverse post-order and forgets a loop once it visits a block outside
        // it. With the body first, the exit came first in that order and no pure value was
        // hoisted out of any loop (a convolution recomputed its whole index per trip).
        let done = self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, iv, hi);
        self.b.ins().brif(done, exit, &[], body, &[]);
        self.b.seal_block(body);
        self.b.switch_to_block(body);
        self.frames.push(Frame::Loop { header, exit, iv });
        iv
    }

    /// Closes the innermost loop.
    fn close_loop(&mut self) -> Result<(), String> {
        let Some(Frame::Loop { header, exit, iv }) = self.frames.pop() else {
            return Err("internal: EndLoop without Loop".to_string());
        };
        let next = self.b.ins().iadd_imm_u(iv, 1);
        self.b.ins().jump(header, &[BlockArg::Value(next)]);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        Ok(())
    }

    /// Branches into a new block when `cond` (an `i8` 0/1) holds; returns the join block.
    fn open_if(&mut self, cond: Value) -> Block {
        let then = self.b.create_block();
        let merge = self.b.create_block();
        self.b.ins().brif(cond, then, &[], merge, &[]);
        self.b.seal_block(then);
        self.b.switch_to_block(then);
        merge
    }

    /// Ends the conditional block opened by [`Self::open_if`].
    fn close_if(&mut self, merge: Block) {
        self.b.ins().jump(merge, &[]);
        self.b.seal_block(merge);
        self.b.switch_to_block(merge);
    }

    /// Calls a one-argument helper function.
    fn call(&mut self, helper: Helper, arg: Value) -> Result<Value, String> {
        let func = match self.helpers.get(&helper) {
            Some(f) => *f,
            None => {
                let (param, ret) = helper.signature();
                let mut sig = self.module.make_signature();
                sig.params.push(AbiParam::new(param));
                sig.returns.push(AbiParam::new(ret));
                let id = self
                    .module
                    .declare_function(helper.name(), Linkage::Import, &sig)
                    .map_err(|e| format!("declaring {}: {e}", helper.name()))?;
                let f = self.module.declare_func_in_func(id, self.b.func);
                self.helpers.insert(helper, f);
                f
            }
        };
        let call = self.b.ins().call(func, &[arg]);
        Ok(self.b.inst_results(call)[0])
    }
}
