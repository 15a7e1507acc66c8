//! The backend conformance suite: Program-level tests written once and run by every backend.
//!
//! A backend implements [`Harness`] (how to open its device and the few ways backends may
//! legitimately differ, as data) in its own test crate and invokes [`suite!`], which expands
//! every shared case into its own `#[test]` function, `GROUP::CASE`, so `cargo test` lists,
//! filters and reports each case by name:
//!
//! ```text
//! struct Cpu;
//! impl ferrograd_conformance::Harness for Cpu { /* ... */ }
//! ferrograd_conformance::suite!(Cpu, [kernels, casts, float_ops, int_ops, math, errors, launch]);
//! ```
//!
//! Groups (each a module of [`suites`]): `kernels`, `casts`, `float_ops`, `int_ops`, `math`,
//! `errors`, `launch`, and `workgroups` for backends that run workgroup programs; `gpu_grids`,
//! `gpu_limits`, `workgroup_reduce` and `packed_storage` need a [`GpuHarness`] (a backend that can be opened
//! with its grid-stride, no-subgroup and packed-storage fallbacks forced). The helpers
//! the cases use ([`upload`], [`run`], [`map_program`], ...) are public for backend-specific
//! tests.

mod device;
mod elem;
mod harness;
mod programs;
mod rounding;
pub mod suites;

pub use device::{
    compile_err, device, download, eval_binary, eval_cast, eval_unary, run, upload, TestDevice,
};
pub use elem::Elem;
pub use harness::{GpuHarness, Harness};
pub use programs::{
    int, map_program, param, program, rows_program, rows_want, workgroup_sum, BINARY_OPS,
};
pub use rounding::{round_to_format, to_bf16, to_f16};

/// Expands the named groups of shared cases into `#[test]` functions for a harness:
/// `suite!(MyHarness, [kernels, launch, ...])` defines `mod kernels { #[test] fn CASE() }` and so
/// on in the invoking file, each running `suites::GROUP::CASE::<MyHarness>()`. The harness must
/// be nameable from those modules (defined or imported at the invoking file's top level).
#[macro_export]
macro_rules! suite {
    ($harness:ty, [$($group:ident),+ $(,)?]) => {
        $( $crate::__suite_group!($group => __suite_tests, $harness); )+
    };
}

/// Defines one module of `#[test]` functions, one per case. (Used by [`suite!`].)
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    ($harness:ty; $group:ident: $($case:ident),+) => {
        mod $group {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::suites::$group::$case::<$harness>();
                }
            )+
        }
    };
}

/// The single list of the cases of each group: calls `$crate::$callback! { $arg; group: cases }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_group {
    (kernels => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; kernels:
            elementwise_add_on_a_2d_grid,
            reductions_with_loops_and_accumulators,
            integer_accumulator_wraps_and_if_blocks_execute_conditionally,
            gated_loads_and_stores_do_not_touch_memory,
            where_with_vector_conditions,
            reduce_lanes,
            vectorize_extract_and_mul_acc,
            f16_and_bf16_round_after_every_op
        }
    };
    (casts => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; casts:
            every_cast_pair_matches_rust_as,
            bitcasts_reinterpret_bits
        }
    };
    (float_ops => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; float_ops:
            f32_and_f64_binary_ops,
            trunc_is_exact_at_every_magnitude,
            value_changing_float_rewrites_are_blocked
        }
    };
    (int_ops => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; int_ops:
            i32_ops,
            u32_ops,
            i64_ops,
            i8_ops,
            u8_ops,
            vector_shifts_by_constants,
            bool_ops
        }
    };
    (math => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; math:
            exp2_is_within_the_ulp_bound,
            log2_is_within_the_ulp_bound,
            sin_is_within_the_ulp_bound_up_to_1e5,
            f64_transcendentals_are_within_the_ulp_bound,
            sqrt_recip_trunc_neg_are_exact
        }
    };
    (errors => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; errors:
            malformed_programs_give_compile_errors,
            random_well_typed_programs_compile_and_run
        }
    };
    (launch => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; launch:
            one_dimensional_grids_of_any_size,
            three_dimensional_grid_visits_every_point_once,
            batched_dependent_launches_see_each_others_writes,
            writes_while_work_is_pending_are_ordered_after_it,
            offset_writes_and_reads_touch_only_their_range,
            launch_checks_buffers,
            memory_errors_are_typed,
            thousands_of_small_buffers_do_not_overlap
        }
    };
    (workgroups => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; workgroups:
            workgroup_programs_use_local_memory_and_barriers
        }
    };
    (gpu_grids => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; gpu_grids:
            grids_beyond_the_workgroup_count_limit_use_a_grid_stride_loop,
            grids_beyond_one_dimension_of_workgroups_use_two,
            workgroup_programs_run_in_grid_stride_loops
        }
    };
    (gpu_limits => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; gpu_limits:
            tensors_beyond_the_storage_buffer_range_are_compile_errors,
            device_info_describes_the_device
        }
    };
    (workgroup_reduce => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; workgroup_reduce:
            workgroup_reductions_of_every_op_and_dtype,
            workgroup_reduce_needs_uniform_control_flow
        }
    };
    (packed_storage => $callback:ident, $arg:ty) => {
        $crate::$callback! { $arg; packed_storage:
            small_types_round_trip_through_packed_words,
            packed_casts_agree_with_native_storage
        }
    };
}

#[cfg(test)]
mod case_lists;
#[cfg(test)]
pub(crate) use case_lists::__case_names;
