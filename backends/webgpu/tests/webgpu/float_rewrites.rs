//! WGSL has no float-controls mode: the renderer keeps NaN and infinity semantics against
//! value-changing rewrites by the driver's compiler (lavapipe folds `x * 0` and `x + -x`).
//! (The Vulkan backend does not pass this case on lavapipe yet, so it is not in the shared
//! suite.)
use super::WebGpu;
use ferrograd_conformance::{device, download, map_program, run, upload};
use ferrograd_ir::{BinaryOp, DType, Inst, Scalar, UnaryOp, VType};
use ferrograd_runtime::Device;

/// Without a float-controls mode drivers may fold `x + -x` to 0, `x * 0` to 0 and `x == x` to
/// true; the shaders must keep NaN and inf semantics regardless.
#[test]
fn value_changing_float_rewrites_are_blocked() {
    let dev = device::<WebGpu>();
    let x = [f32::NAN, f32::INFINITY, -0.0, 2.5];
    type Reference = fn(f32) -> f32;
    let cases: [(&str, Reference); 3] = [
        ("x + -x", |v| v + -v),
        ("x * 0", |v| v * 0.0),
        ("x != x", |v| if v.is_nan() { 1.0 } else { 0.0 }),
    ];
    for (k, (what, want)) in cases.iter().enumerate() {
        let p = map_program("rewrite", &[DType::F32], DType::F32, 4, 1, |b, v| {
            let zero = b.push(Inst::Const {
                ty: VType::scalar(DType::F32),
                value: Scalar::Float(0.0),
            });
            match k {
                0 => {
                    let n = b.push(Inst::Unary {
                        op: UnaryOp::Neg,
                        arg: v[0],
                    });
                    b.push(Inst::Binary {
                        op: BinaryOp::Add,
                        a: v[0],
                        b: n,
                    })
                }
                1 => b.push(Inst::Binary {
                    op: BinaryOp::Mul,
                    a: v[0],
                    b: zero,
                }),
                _ => {
                    let ne = b.push(Inst::Binary {
                        op: BinaryOp::CmpNe,
                        a: v[0],
                        b: v[0],
                    });
                    b.push(Inst::Cast {
                        to: VType::scalar(DType::F32),
                        arg: ne,
                    })
                }
            }
        });
        let (bx, bo) = (upload(&dev, &x), dev.allocate(16).unwrap());
        run(&dev, &p, &[&bx, &bo]);
        let got = download::<_, f32>(&dev, &bo, 4);
        for (i, &v) in x.iter().enumerate() {
            let w = want(v);
            assert!(
                got[i].to_bits() == w.to_bits() || (got[i].is_nan() && w.is_nan()),
                "{what} at {v}: got {}, want {w}",
                got[i]
            );
        }
    }
}
