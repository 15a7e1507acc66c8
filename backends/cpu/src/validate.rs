//! The CPU backend's check of a [`Program`] before code generation: the shared checks of
//! [`ferrograd_ir::validate`], after refusing workgroup features (the CPU runs one invocation per
//! grid point and has no local memory or barriers).

use ferrograd_ir::{Program, VType};

/// The message for programs that need workgroups.
pub(crate) const WORKGROUP_ERROR: &str = "the CPU backend runs no workgroup programs";

/// The checked program's value types (`None` for instructions without a value).
pub(crate) fn check(program: &Program) -> Result<Vec<Option<VType>>, String> {
    if program.uses_workgroups() {
        return Err(WORKGROUP_ERROR.to_string());
    }
    ferrograd_ir::validate::check(program)
}
