//! The compile driver: host ISA setup, Program -> Cranelift function -> machine code.

use crate::codegen::{self, Config};
use crate::helpers::Helper;
use crate::kernel::{CpuKernel, KernelFn};
use crate::launch::work_estimate;
use crate::validate;
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use ferrograd_ir::Program;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Symbol name of the kernel function inside its module.
const KERNEL_SYMBOL: &str = "ferrograd_kernel";

/// Compiles programs for the host CPU.
pub(crate) struct Jit {
    isa: OwnedTargetIsa,
    has_fma: bool,
}

impl Jit {
    /// The host's ISA with every extension Cranelift detects, optimizing for speed.
    pub(crate) fn host() -> Result<Jit, String> {
        let mut flags = settings::builder();
        for (name, value) in [
            ("opt_level", "speed"),
            ("is_pic", "false"),
            ("use_colocated_libcalls", "false"),
            // Cranelift's IR verifier checks what we build: on in debug builds (every test),
            // off in release builds, where it was ~10% of the compile time.
            (
                "enable_verifier",
                if cfg!(debug_assertions) {
                    "true"
                } else {
                    "false"
                },
            ),
        ] {
            flags
                .set(name, value)
                .map_err(|e| format!("setting {name}={value}: {e}"))?;
        }
        let isa = cranelift_native::builder()
            .map_err(|e| format!("this host is not supported by Cranelift: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| format!("configuring the host ISA: {e}"))?;
        let has_fma = isa
            .isa_flags()
            .iter()
            .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
        Ok(Jit { isa, has_fma })
    }

    /// The target the code is generated for.
    pub(crate) fn isa(&self) -> &dyn TargetIsa {
        &*self.isa
    }

    /// Compiles `program` into a launchable kernel.
    pub(crate) fn compile(&self, program: &Program, libm_f32: bool) -> Result<CpuKernel, String> {
        let (mut module, id, _) = self.build(program, libm_f32, false)?;
        module
            .finalize_definitions()
            .map_err(|e| format!("finalizing machine code: {e}"))?;
        let code = module.get_finalized_function(id);
        // SAFETY: `code` is the finalized entry of a function built with the `KernelFn`
        // signature (three pointer-sized integer arguments, no results, the host's C calling
        // convention); it stays valid while `module` lives, which the kernel owns.
        let entry = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
        let rows = program.global.first().copied().unwrap_or(1);
        Ok(CpuKernel::new(
            program.name.clone(),
            entry,
            program.params.clone(),
            rows,
            work_estimate(program),
            module,
        ))
    }

    /// The machine code Cranelift generates for `program`, as text.
    pub(crate) fn disassemble(&self, program: &Program, libm_f32: bool) -> Result<String, String> {
        let (module, _, text) = self.build(program, libm_f32, true)?;
        // SAFETY: nothing of this module was finalized, so no pointer into its memory exists.
        unsafe { module.free_memory() };
        text.ok_or_else(|| "Cranelift produced no disassembly".to_string())
    }

    /// Checks, translates and compiles `program` into a fresh module (not yet finalized).
    fn build(
        &self,
        program: &Program,
        libm_f32: bool,
        disasm: bool,
    ) -> Result<(JITModule, FuncId, Option<String>), String> {
        let types = validate::check(program)?;
        let config = Config {
            has_fma: self.has_fma,
            libm_f32,
        };
        let mut builder = JITBuilder::with_isa(self.isa.clone(), default_libcall_names());
        for helper in Helper::ALL {
            builder.symbol(helper.name(), helper.address());
        }
        let mut module = JITModule::new(builder);
        // Cranelift reports what it cannot lower as errors; a panic would be a Cranelift bug,
        // which is still turned into a compile error here rather than unwinding into the caller.
        let built = catch_unwind(AssertUnwindSafe(
            || -> Result<(FuncId, Option<String>), String> {
                let mut ctx = module.make_context();
                let mut fctx = FunctionBuilderContext::new();
                codegen::translate(
                    program,
                    &types,
                    &mut ctx.func,
                    &mut fctx,
                    &mut module,
                    config,
                )?;
                let id = module
                    .declare_function(KERNEL_SYMBOL, Linkage::Local, &ctx.func.signature)
                    .map_err(|e| format!("declaring the kernel: {e}"))?;
                ctx.func.name = UserFuncName::user(0, id.as_u32());
                ctx.set_disasm(disasm);
                module
                    .define_function(id, &mut ctx)
                    .map_err(|e| format!("Cranelift: {e:?}"))?;
                let text = ctx.compiled_code().and_then(|c| c.vcode.clone());
                Ok((id, text))
            },
        ));
        match built {
            Ok(Ok((id, text))) => Ok((module, id, text)),
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                Err(format!("internal code generator failure: {what}"))
            }
        }
    }
}
