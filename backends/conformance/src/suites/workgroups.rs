//! Workgroup programs (local memory, barriers, local ids), for backends that run them.
use crate::*;
use ferrograd_runtime::Device;

/// A tree reduction through local memory with a barrier after every step sums each row.
pub fn workgroup_programs_use_local_memory_and_barriers<H: Harness>() {
    let dev = device::<H>();
    for rows in [1usize, 3, 100] {
        let p = workgroup_sum(rows, 64);
        let data: Vec<f32> = (0..rows * 64).map(|i| (i % 97) as f32 * 0.5).collect();
        let (out, inp) = (dev.allocate(rows * 4).unwrap(), upload(&dev, &data));
        run(&dev, &p, &[&out, &inp]);
        let want: Vec<f32> = data.chunks(64).map(|c| c.iter().sum()).collect();
        assert_eq!(download::<H, f32>(&dev, &out, rows), want, "{rows} rows");
    }
}
