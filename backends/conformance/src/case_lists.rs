//! Every case defined in a suite module is listed in [`crate::__suite_group`], so no case is
//! silently left out of the tests a backend's `suite!` expands.

use std::collections::BTreeSet;

/// Lists a group's cases as `(group, names)`.
macro_rules! __case_names {
    ($unused:ty; $group:ident: $($case:ident),+) => {
        (stringify!($group), vec![$(stringify!($case)),+])
    };
}
pub(crate) use __case_names;

/// The case names a suite's source defines: `pub fn NAME<H: Harness>()` and, in `int_ops`,
/// the functions its `int_test!` invocations define.
fn defined(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("pub fn ") {
            let name = rest
                .strip_suffix("<H: Harness>() {")
                .or_else(|| rest.strip_suffix("<H: GpuHarness>() {"));
            if let Some(name) = name {
                names.insert(name.to_string());
            }
        }
        if line == "int_test!(" {
            let name = lines.next().unwrap().trim().trim_end_matches(',');
            names.insert(name.to_string());
        }
    }
    names
}

#[test]
fn every_defined_case_is_listed_once() {
    let sources = [
        ("kernels", include_str!("suites/kernels.rs")),
        ("casts", include_str!("suites/casts.rs")),
        ("float_ops", include_str!("suites/float_ops.rs")),
        ("int_ops", include_str!("suites/int_ops.rs")),
        ("math", include_str!("suites/math.rs")),
        ("errors", include_str!("suites/errors.rs")),
        ("launch", include_str!("suites/launch.rs")),
        ("workgroups", include_str!("suites/workgroups.rs")),
        ("gpu_grids", include_str!("suites/gpu_grids.rs")),
        ("gpu_limits", include_str!("suites/gpu_limits.rs")),
        (
            "workgroup_reduce",
            include_str!("suites/workgroup_reduce.rs"),
        ),
        ("packed_storage", include_str!("suites/packed_storage.rs")),
    ];
    let lists = [
        crate::__suite_group!(kernels => __case_names, ()),
        crate::__suite_group!(casts => __case_names, ()),
        crate::__suite_group!(float_ops => __case_names, ()),
        crate::__suite_group!(int_ops => __case_names, ()),
        crate::__suite_group!(math => __case_names, ()),
        crate::__suite_group!(errors => __case_names, ()),
        crate::__suite_group!(launch => __case_names, ()),
        crate::__suite_group!(workgroups => __case_names, ()),
        crate::__suite_group!(gpu_grids => __case_names, ()),
        crate::__suite_group!(gpu_limits => __case_names, ()),
        crate::__suite_group!(workgroup_reduce => __case_names, ()),
        crate::__suite_group!(packed_storage => __case_names, ()),
    ];
    assert_eq!(sources.len(), lists.len(), "a group without its source");
    for ((group, source), (listed_group, listed)) in sources.iter().zip(lists) {
        assert_eq!(*group, listed_group);
        let listed_set: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            listed_set.len(),
            listed.len(),
            "{group}: a case is listed twice"
        );
        assert_eq!(
            defined(source),
            listed_set,
            "{group}: defined vs listed cases"
        );
    }
}
