//! Counter-based random numbers: Threefry-2x32 (20 rounds) evaluated inside the kernels, keyed
//! by a global seed and a per-call counter, so results depend only on (seed, call, index).

use crate::tensor::{Tensor, DEFAULT_FLOAT};
use ferrograd_ir::{DType, Node, Scalar};
use std::sync::atomic::{AtomicU64, Ordering};

static SEED: AtomicU64 = AtomicU64::new(0x5eed);
static CALLS: AtomicU64 = AtomicU64::new(0);

const ROTATIONS: [u32; 8] = [13, 15, 26, 6, 17, 29, 16, 24];
const PARITY: u32 = 0x1BD1_1BDA;

/// Threefry-2x32-20 on the host (the reference the graph version is tested against).
pub fn threefry2x32(key: [u32; 2], ctr: [u32; 2]) -> [u32; 2] {
    let ks = [key[0], key[1], key[0] ^ key[1] ^ PARITY];
    let mut x = [ctr[0].wrapping_add(ks[0]), ctr[1].wrapping_add(ks[1])];
    for round in 0..20 {
        x[0] = x[0].wrapping_add(x[1]);
        x[1] = x[1].rotate_left(ROTATIONS[round % 8]) ^ x[0];
        if round % 4 == 3 {
            let j = round / 4 + 1;
            x[0] = x[0].wrapping_add(ks[j % 3]);
            x[1] = x[1].wrapping_add(ks[(j + 1) % 3]).wrapping_add(j as u32);
        }
    }
    x
}

fn u32_const(like: &Tensor, v: u32) -> Tensor {
    Tensor::from_node(Node::constant(
        Scalar::Int(v as i64),
        DType::U32,
        &[],
        &like.device(),
    ))
}

/// Threefry-2x32-20 as graph ops on u32 tensors (`c0`, `c1` of the same shape).
pub fn threefry_tensor(key: [u32; 2], c0: &Tensor, c1: &Tensor) -> [Tensor; 2] {
    let ks = [key[0], key[1], key[0] ^ key[1] ^ PARITY];
    let mut x0 = c0.add(u32_const(c0, ks[0]));
    let mut x1 = c1.add(u32_const(c1, ks[1]));
    for round in 0..20 {
        x0 = x0.add(&x1);
        let r = ROTATIONS[round % 8];
        let rot = x1
            .shl(u32_const(&x1, r))
            .bitor(x1.shr(u32_const(&x1, 32 - r)));
        x1 = rot.bitxor(&x0);
        if round % 4 == 3 {
            let j = round / 4 + 1;
            x0 = x0.add(u32_const(&x0, ks[j % 3]));
            x1 = x1.add(u32_const(&x1, ks[(j + 1) % 3].wrapping_add(j as u32)));
        }
    }
    [x0, x1]
}

/// 32 random bits per element of `shape` (u32), from the next counter block.
fn random_bits(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    assert!(
        n < u32::MAX as usize,
        "rand: {n} elements exceed the 2^32 counter space"
    );
    let seed = SEED.load(Ordering::Relaxed);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let key = [seed as u32, (seed >> 32) as u32];
    let idx = Tensor::indices(&[n], 0).cast(DType::U32);
    let block = Tensor::from_node(Node::constant(
        Scalar::Int(call as u32 as i64),
        DType::U32,
        &[n],
        &idx.device(),
    ));
    let [bits, _] = threefry_tensor(key, &idx, &block);
    bits.reshape(shape.to_vec())
}

impl Tensor {
    /// Sets the global seed and restarts the call counter (results are then reproducible).
    pub fn manual_seed(seed: u64) {
        SEED.store(seed, Ordering::Relaxed);
        CALLS.store(0, Ordering::Relaxed);
    }

    /// Uniform samples in [0, 1) (default float dtype).
    pub fn rand(shape: &[usize]) -> Tensor {
        // 23 random mantissa bits under exponent 0: a float in [1, 2), minus one.
        let bits = random_bits(shape).shr(9i64).bitor(0x3f80_0000i64);
        bits.bitcast(DType::F32).sub(1.0).cast(DEFAULT_FLOAT)
    }

    /// Standard normal samples (Box-Muller).
    pub fn randn(shape: &[usize]) -> Tensor {
        let u1 = Tensor::rand(shape);
        let u2 = Tensor::rand(shape);
        let r = u1.neg().add(1.0).log().mul(-2.0).sqrt();
        r.mul(u2.mul(2.0 * std::f64::consts::PI).cos())
    }

    /// Uniform integers in [low, high) (i32).
    pub fn randint(low: i32, high: i32, shape: &[usize]) -> Tensor {
        assert!(
            low < high,
            "randint: empty range [{low}, {high}) for shape {shape:?}"
        );
        let span = (high as i64 - low as i64) as f64;
        // The offset can exceed i32::MAX (span up to 2^32 - 1): add it to `low` in i64.
        let offset = Tensor::rand(shape)
            .cast(DType::F64)
            .mul(span)
            .floor()
            .cast(DType::I64);
        offset.add(low as i64).cast(DType::I32)
    }

    /// Uniform samples in [0, 1) with `self`'s shape.
    pub fn rand_like(&self) -> Tensor {
        Tensor::rand(&self.shape()).cast(if self.dtype().is_float() {
            self.dtype()
        } else {
            DEFAULT_FLOAT
        })
    }

    /// Standard normal samples with `self`'s shape.
    pub fn randn_like(&self) -> Tensor {
        Tensor::randn(&self.shape()).cast(if self.dtype().is_float() {
            self.dtype()
        } else {
            DEFAULT_FLOAT
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threefry_known_answers() {
        // Random123 known-answer vectors for threefry2x32_20.
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(
            threefry2x32([0xffff_ffff, 0xffff_ffff], [0xffff_ffff, 0xffff_ffff]),
            [0x1cb9_96fc, 0xbb00_2be7]
        );
        assert_eq!(
            threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]),
            [0xc492_3a9c, 0x483d_f7a0]
        );
    }
}
