//! A compiled kernel: the native entry point and the JIT memory that holds it.

use cranelift_jit::JITModule;
use ferrograd_ir::Param;
use parking_lot::Mutex;

/// The native signature of every kernel: param base pointers, then the `[start, end)` range of
/// launch dimension 0 to run.
pub(crate) type KernelFn = unsafe extern "C" fn(args: *const *mut u8, start: i64, end: i64);

/// A kernel ready to launch.
pub(crate) struct CpuKernel {
    /// The program's name, for errors and traces.
    pub(crate) name: String,
    /// The machine code's entry point.
    pub(crate) entry: KernelFn,
    /// The buffers the kernel expects, in argument order.
    pub(crate) params: Vec<Param>,
    /// Size of launch dimension 0 (the one split across threads).
    pub(crate) rows: usize,
    /// Estimated work of the whole launch (instructions executed), to decide on threading.
    pub(crate) work: u64,
    /// Owner of the executable memory `entry` points into. Only touched on drop; the mutex makes
    /// the (non-`Sync`) module shareable and is never locked on the launch path.
    code: Mutex<Option<JITModule>>,
}

impl CpuKernel {
    /// Wraps a finalized module whose function `entry` implements the program.
    pub(crate) fn new(
        name: String,
        entry: KernelFn,
        params: Vec<Param>,
        rows: usize,
        work: u64,
        code: JITModule,
    ) -> Self {
        CpuKernel {
            name,
            entry,
            params,
            rows,
            work,
            code: Mutex::new(Some(code)),
        }
    }
}

impl Drop for CpuKernel {
    fn drop(&mut self) {
        if let Some(module) = self.code.get_mut().take() {
            // SAFETY: `entry` is the only pointer into this module's memory, and it is only
            // called by `launch` while it borrows this kernel; with the kernel being dropped no
            // call is running and none can start.
            unsafe { module.free_memory() };
        }
    }
}
