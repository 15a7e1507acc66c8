//! Grids a GPU cannot dispatch as they are: more workgroups than the device allows per
//! dimension go through the backend's grid-stride loop, and more than one dimension's limit
//! through a 2-D dispatch, for plain and workgroup (barrier) programs alike.

use crate::{
    download, rows_program, rows_want, run, upload, workgroup_sum, GpuHarness, TestDevice,
};
use ferrograd_runtime::Device;

/// Runs [`rows_program`] over `rows` rows on a buffer first filled with junk.
fn run_rows<H: GpuHarness>(dev: &TestDevice<H>, rows: usize) -> Vec<i32> {
    let p = rows_program(rows);
    let out = dev.allocate(rows * 4).unwrap();
    dev.write(&out, &vec![0xAB; rows * 4]).unwrap();
    run(dev, &p, &[&out]);
    download(dev, &out, rows)
}

pub fn grids_beyond_the_workgroup_count_limit_use_a_grid_stride_loop<H: GpuHarness>() {
    // A device limited to 3 x 3 workgroups: every grid larger than 9 workgroups is walked by the
    // grid-stride loop.
    let dev = TestDevice::<H>::wrap(H::open_with_max_workgroup_count(3));
    for rows in [1usize, 255, 256 * 9, 256 * 9 + 1, 100_000] {
        assert_eq!(run_rows(&dev, rows), rows_want(rows), "{rows} rows");
    }
}

pub fn grids_beyond_one_dimension_of_workgroups_use_two<H: GpuHarness>() {
    let dev = crate::device::<H>();
    // More than 65535 workgroups of 256 invocations: a 2-D dispatch.
    let rows = 65_535 * 256 + 4099;
    assert_eq!(run_rows(&dev, rows), rows_want(rows));
}

pub fn workgroup_programs_run_in_grid_stride_loops<H: GpuHarness>() {
    let dev = TestDevice::<H>::wrap(H::open_with_max_workgroup_count(2));
    let rows = 11;
    let p = workgroup_sum(rows, 64);
    let data: Vec<f32> = (0..rows * 64).map(|i| (i % 13) as f32).collect();
    let (out, inp) = (dev.allocate(rows * 4).unwrap(), upload(&dev, &data));
    run(&dev, &p, &[&out, &inp]);
    let want: Vec<f32> = data.chunks(64).map(|c| c.iter().sum()).collect();
    assert_eq!(download::<_, f32>(&dev, &out, rows), want);
}
