//! Gradient rules, one per primitive op: given the gradient `g` of a result, the gradients of its
//! sources, built as ordinary graph nodes (so the backward pass is scheduled and fused like any
//! other graph). Ops that are piecewise constant in a source (comparisons, integer ops, `Trunc`,
//! `Bitcast`, the condition of `Where`) give that source no gradient.

use ferrograd_ir::{BinaryOp, Node, NodeRef, Op, ReduceOp, Scalar, TernaryOp, UnaryOp};
use std::f64::consts::{FRAC_2_SQRT_PI, FRAC_PI_2, LN_2, LOG2_E};

/// Gradients of `out = op(src)` with respect to every source `i` with `wanted[i]`, given the
/// gradient `g` of `out` (same shape and dtype as `out`). Each gradient has its source's shape
/// and dtype; `None` where not wanted or where the op has no gradient for that source.
pub(crate) fn vjp(
    out: &NodeRef,
    src: &[NodeRef],
    g: &NodeRef,
    wanted: &[bool],
) -> Vec<Option<NodeRef>> {
    let x = || &src[0];
    match out.op() {
        Op::Unary(op) => each(wanted, &[&|| unary(*op, x(), out, g)]),
        Op::Cast => each(
            wanted,
            &[&|| x().dtype().is_float().then(|| Node::cast(g, x().dtype()))],
        ),
        Op::Bitcast => vec![None],
        Op::Binary(op) => binary(*op, x(), &src[1], g, wanted),
        Op::Ternary(TernaryOp::Where) => each(
            wanted,
            &[
                &|| None,
                &|| Some(Node::where_(x(), g, &konst(g, 0.0))),
                &|| Some(Node::where_(x(), &konst(g, 0.0), g)),
            ],
        ),
        Op::Ternary(TernaryOp::MulAcc) => each(
            wanted,
            &[&|| Some(mul(g, &src[1])), &|| Some(mul(g, x())), &|| {
                Some(g.clone())
            }],
        ),
        Op::Reduce(op, axes) => each(wanted, &[&|| Some(reduce(*op, axes, x(), out, g))]),
        Op::Reshape => each(wanted, &[&|| Some(Node::reshape(g, x().shape()))]),
        Op::Permute(perm) => each(
            wanted,
            &[&|| {
                let mut inverse = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                Some(Node::permute(g, &inverse))
            }],
        ),
        Op::Expand => each(
            wanted,
            &[&|| {
                let axes: Vec<usize> = (0..out.shape().len())
                    .filter(|&i| x().shape()[i] != out.shape()[i])
                    .collect();
                Some(Node::reduce(ReduceOp::Sum, g, &axes))
            }],
        ),
        Op::Pad(padding) => each(
            wanted,
            &[&|| {
                let keep: Vec<(usize, usize)> = padding
                    .iter()
                    .zip(x().shape())
                    .map(|(&(b, _), &n)| (b, b + n))
                    .collect();
                Some(Node::shrink(g, &keep))
            }],
        ),
        Op::Shrink(bounds) => each(
            wanted,
            &[&|| {
                let padding: Vec<(usize, usize)> = bounds
                    .iter()
                    .zip(x().shape())
                    .map(|(&(s, e), &n)| (s, n - e))
                    .collect();
                Some(Node::pad(g, &padding))
            }],
        ),
        Op::Flip(axes) => each(wanted, &[&|| Some(Node::flip(g, axes))]),
        Op::Contiguous => each(wanted, &[&|| Some(g.clone())]),
        Op::Copy => each(wanted, &[&|| Some(Node::copy_to(g, x().device()))]),
        // Leaves have no sources, so there is nothing to differentiate.
        Op::Buffer(_) | Op::Const(_) | Op::Arange(_) => Vec::new(),
    }
}

/// Runs the rule of every wanted source.
fn each(wanted: &[bool], rules: &[&dyn Fn() -> Option<NodeRef>]) -> Vec<Option<NodeRef>> {
    debug_assert_eq!(wanted.len(), rules.len(), "one rule per source");
    wanted
        .iter()
        .zip(rules)
        .map(|(&w, rule)| if w { rule() } else { None })
        .collect()
}

/// The gradient of `erf` (a composite op, `Tensor::erf`): `g * 2/sqrt(pi) * exp(-x^2)`, the
/// derivative of the function itself rather than of the polynomial that approximates it (whose
/// derivative is off by up to 1e-3), in one small elementwise graph.
pub(crate) fn erf(src: &[NodeRef], g: &NodeRef, wanted: &[bool]) -> Vec<Option<NodeRef>> {
    each(
        wanted,
        &[&|| {
            let x = &src[0];
            let minus_x2_log2e = mul(&mul(x, x), &konst(x, -LOG2_E));
            let exp = Node::unary(UnaryOp::Exp2, &minus_x2_log2e);
            Some(mul(g, &mul(&exp, &konst(x, FRAC_2_SQRT_PI))))
        }],
    )
}

/// A float constant with `like`'s dtype, shape and device.
fn konst(like: &NodeRef, value: f64) -> NodeRef {
    Node::constant(
        Scalar::Float(value),
        like.dtype(),
        like.shape(),
        like.device(),
    )
}

fn mul(a: &NodeRef, b: &NodeRef) -> NodeRef {
    Node::binary(BinaryOp::Mul, a, b)
}

fn recip(a: &NodeRef) -> NodeRef {
    Node::unary(UnaryOp::Recip, a)
}

fn neg(a: &NodeRef) -> NodeRef {
    Node::unary(UnaryOp::Neg, a)
}

fn unary(op: UnaryOp, x: &NodeRef, out: &NodeRef, g: &NodeRef) -> Option<NodeRef> {
    Some(match op {
        // d 2^x = 2^x ln 2
        UnaryOp::Exp2 => mul(g, &mul(out, &konst(out, LN_2))),
        // d log2 x = 1 / (x ln 2)
        UnaryOp::Log2 => mul(g, &mul(&recip(x), &konst(x, LOG2_E))),
        // d sin x = cos x = sin(x + pi/2)
        UnaryOp::Sin => {
            let shifted = Node::binary(BinaryOp::Add, x, &konst(x, FRAC_PI_2));
            mul(g, &Node::unary(UnaryOp::Sin, &shifted))
        }
        // d sqrt x = 1 / (2 sqrt x)
        UnaryOp::Sqrt => mul(g, &mul(&recip(out), &konst(out, 0.5))),
        // d (1/x) = -1/x^2
        UnaryOp::Recip => neg(&mul(g, &mul(out, out))),
        UnaryOp::Neg => neg(g),
        UnaryOp::Trunc => return None,
    })
}

fn binary(
    op: BinaryOp,
    a: &NodeRef,
    b: &NodeRef,
    g: &NodeRef,
    wanted: &[bool],
) -> Vec<Option<NodeRef>> {
    match op {
        BinaryOp::Add => each(wanted, &[&|| Some(g.clone()), &|| Some(g.clone())]),
        BinaryOp::Mul => each(wanted, &[&|| Some(mul(g, b)), &|| Some(mul(g, a))]),
        BinaryOp::Max => {
            // The larger operand takes the gradient; on a tie each takes half (NaN: neither).
            let tie = || {
                Node::where_(
                    &Node::binary(BinaryOp::CmpNe, a, b),
                    &konst(g, 0.0),
                    &mul(g, &konst(g, 0.5)),
                )
            };
            let wins = |x: &NodeRef, y: &NodeRef| {
                Node::where_(&Node::binary(BinaryOp::CmpLt, y, x), g, &tie())
            };
            each(wanted, &[&|| Some(wins(a, b)), &|| Some(wins(b, a))])
        }
        BinaryOp::CmpLt
        | BinaryOp::CmpNe
        | BinaryOp::IDiv
        | BinaryOp::Mod
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor
        | BinaryOp::Shl
        | BinaryOp::Shr => vec![None, None],
    }
}

/// The gradient of `out = reduce(op, x, axes)` (reduced axes kept as size 1).
fn reduce(op: ReduceOp, axes: &[usize], x: &NodeRef, out: &NodeRef, g: &NodeRef) -> NodeRef {
    let spread = |n: &NodeRef| Node::expand(n, x.shape());
    let (zero, one) = (konst(x, 0.0), konst(x, 1.0));
    match op {
        ReduceOp::Sum => spread(g),
        ReduceOp::Max => {
            // Split equally among the elements equal to the maximum.
            let hit = Node::where_(&Node::binary(BinaryOp::CmpNe, x, &spread(out)), &zero, &one);
            let count = Node::reduce(ReduceOp::Sum, &hit, axes);
            mul(&hit, &spread(&mul(g, &recip(&count))))
        }
        ReduceOp::Prod => {
            // The product of the other elements, exact with zeros: with no zero it is
            // prod / x; with one zero only that element gets the product of the rest; with two
            // or more every gradient is zero.
            let nonzero = Node::binary(BinaryOp::CmpNe, x, &zero);
            let zeros = spread(&Node::reduce(
                ReduceOp::Sum,
                &Node::where_(&nonzero, &zero, &one),
                axes,
            ));
            let rest = spread(&Node::reduce(
                ReduceOp::Prod,
                &Node::where_(&nonzero, x, &one),
                axes,
            ));
            let no_zero = Node::binary(BinaryOp::CmpLt, &zeros, &konst(x, 0.5));
            let other_zero = Node::binary(BinaryOp::CmpNe, &zeros, &one);
            let others = Node::where_(
                &nonzero,
                &Node::where_(&no_zero, &mul(&rest, &recip(x)), &zero),
                &Node::where_(&other_zero, &zero, &rest),
            );
            mul(&spread(g), &others)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every rule against central finite differences (through `check_gradients`), on tensors
    //! tracked by building each primitive node directly.
    use super::*;
    use crate::testing::check_gradients;
    use crate::{All, DType, Tensor};
    use std::sync::Arc;

    /// Deterministic values in [lo, hi).
    fn input(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        Tensor::from_slice(&v, shape)
    }

    fn one(x: &Tensor, f: impl FnOnce(&NodeRef) -> NodeRef) -> Tensor {
        Tensor::apply([x], |[n]| f(n))
    }

    const RTOL: f64 = 1e-6;
    const ATOL: f64 = 1e-7;

    #[test]
    fn unary() {
        let cases = [
            (UnaryOp::Exp2, -2.0, 2.0),
            (UnaryOp::Log2, 0.2, 3.0),
            (UnaryOp::Sin, -3.0, 3.0),
            (UnaryOp::Sqrt, 0.2, 3.0),
            (UnaryOp::Recip, 0.3, 3.0),
            (UnaryOp::Recip, -3.0, -0.3),
            (UnaryOp::Neg, -2.0, 2.0),
            // Piecewise constant: zero gradient away from the integers.
            (UnaryOp::Trunc, 0.1, 0.9),
        ];
        for (i, (op, lo, hi)) in cases.into_iter().enumerate() {
            let x = input(&[2, 3], i as u64, lo, hi);
            check_gradients(
                &[x],
                |t| one(&t[0], |n| Node::unary(op, n)),
                RTOL,
                ATOL,
                &format!("{op:?}"),
            );
        }
    }

    #[test]
    fn binary() {
        for op in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Max] {
            let (a, b) = (input(&[3, 4], 1, -2.0, 2.0), input(&[3, 4], 2, -2.0, 2.0));
            let f = |t: &[Tensor]| Tensor::apply([&t[0], &t[1]], |[a, b]| Node::binary(op, a, b));
            check_gradients(&[a, b], f, RTOL, ATOL, &format!("{op:?}"));
        }
        // A tie splits the gradient equally (what a central difference measures for two).
        let a = input(&[5], 3, -2.0, 2.0);
        let f = |t: &[Tensor]| {
            Tensor::apply([&t[0], &t[1]], |[a, b]| Node::binary(BinaryOp::Max, a, b))
        };
        check_gradients(&[a.clone(), a], f, RTOL, ATOL, "Max with ties");
    }

    #[test]
    fn ternary() {
        let cond = input(&[4, 3], 4, -1.0, 1.0).lt(0.0);
        let (a, b, c) = (
            input(&[4, 3], 5, -2.0, 2.0),
            input(&[4, 3], 6, -2.0, 2.0),
            input(&[4, 3], 7, -2.0, 2.0),
        );
        let f =
            |t: &[Tensor]| Tensor::apply([&cond, &t[0], &t[1]], |[c, a, b]| Node::where_(c, a, b));
        check_gradients(&[a.clone(), b.clone()], f, RTOL, ATOL, "Where");
        let f =
            |t: &[Tensor]| Tensor::apply([&t[0], &t[1], &t[2]], |[a, b, c]| Node::mulacc(a, b, c));
        check_gradients(&[a, b, c], f, RTOL, ATOL, "MulAcc");
    }

    #[test]
    fn reductions() {
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Prod] {
            for axes in [vec![0], vec![1, 2], vec![0, 1, 2], vec![2]] {
                let x = input(&[3, 4, 2], 8, 0.5, 1.5);
                let f = |t: &[Tensor]| one(&t[0], |n| Node::reduce(op, n, &axes));
                check_gradients(&[x], f, RTOL, ATOL, &format!("{op:?} over {axes:?}"));
            }
        }
        // Products with one zero and with two zeros in a group are smooth: exact there too.
        let x = Tensor::from_slice(&[0.0f64, 2.0, 3.0, 0.5, 0.0, 0.0, 1.5, -2.0, 4.0], &[3, 3]);
        let f = |t: &[Tensor]| one(&t[0], |n| Node::reduce(ReduceOp::Prod, n, &[1]));
        check_gradients(&[x], f, RTOL, ATOL, "Prod with zeros");
    }

    #[test]
    fn max_reduction_splits_ties_equally() {
        let x = Tensor::from_slice(&[1.0f64, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 0.0], &[2, 4])
            .requires_grad(true);
        let m = one(&x, |n| Node::reduce(ReduceOp::Max, n, &[1]));
        let g = m.sum(All).gradient(&[&x]).remove(0);
        let third = 1.0 / 3.0;
        assert_eq!(
            g.to_vec::<f64>().unwrap(),
            vec![0.0, 0.5, 0.5, 0.0, third, third, third, 0.0]
        );
    }

    #[test]
    fn movement() {
        type Build = fn(&NodeRef) -> NodeRef;
        let cases: [(&str, &[usize], Build); 7] = [
            ("Reshape", &[2, 3, 4], |n| Node::reshape(n, &[6, 4])),
            ("Permute", &[2, 3, 4], |n| Node::permute(n, &[2, 0, 1])),
            ("Expand", &[1, 3, 1], |n| Node::expand(n, &[5, 3, 2])),
            ("Pad", &[2, 3, 4], |n| {
                Node::pad(n, &[(1, 0), (0, 2), (3, 1)])
            }),
            ("Shrink", &[2, 3, 4], |n| {
                Node::shrink(n, &[(1, 2), (0, 2), (1, 4)])
            }),
            ("Flip", &[2, 3, 4], |n| Node::flip(n, &[0, 2])),
            ("Contiguous", &[2, 3, 4], Node::contiguous),
        ];
        for (i, (name, shape, build)) in cases.into_iter().enumerate() {
            let x = input(shape, 9 + i as u64, -2.0, 2.0);
            check_gradients(&[x], |t| one(&t[0], build), RTOL, ATOL, name);
        }
    }

    #[test]
    fn cast_returns_the_gradient_in_the_source_dtype() {
        let x = input(&[4], 10, -2.0, 2.0).requires_grad(true);
        let w = Tensor::from_slice(&[1.5f32, -2.0, 0.25, 3.0], &[4]);
        let y = one(&x, |n| Node::cast(n, DType::F32));
        let g = (&y * &w).sum(All).gradient(&[&x]).remove(0);
        assert_eq!(g.dtype(), DType::F64);
        assert_eq!(g.to_vec::<f64>().unwrap(), vec![1.5, -2.0, 0.25, 3.0]);
    }

    #[test]
    fn bitcast_has_no_gradient() {
        let x = input(&[3], 11, -2.0, 2.0)
            .cast(DType::F16)
            .requires_grad(true);
        let y = one(&x, |n| Node::bitcast(n, DType::BF16));
        assert!(y.is_requires_grad(), "a float result is tracked");
        let g = y.sum(All).gradient(&[&x]).remove(0);
        assert_eq!(g.cast(DType::F32).to_vec::<f32>().unwrap(), vec![0.0; 3]);
    }

    #[test]
    fn copy_sends_the_gradient_back_to_the_source_device() {
        let x = input(&[3], 12, -2.0, 2.0).node();
        let out = Node::copy_to(&x, &Arc::from("elsewhere"));
        let g = Node::constant(Scalar::Float(1.0), out.dtype(), out.shape(), out.device());
        let d = vjp(&out, std::slice::from_ref(&x), &g, &[true])
            .remove(0)
            .expect("a gradient");
        assert!(
            matches!(d.op(), Op::Copy) && d.device() == x.device() && Arc::ptr_eq(&d.src()[0], &g)
        );
    }
}
