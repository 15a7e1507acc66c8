//! Memory reuse: a loop in a steady state takes all its buffers from the pool.
//! (One test per binary: the pool is shared by every thread of the process.)

use ferrograd::Tensor;

#[test]
fn a_repeated_expression_reuses_pooled_buffers() {
    ferrograd::device::init();
    let dev = ferrograd::runtime::device("cpu").unwrap();
    let a = Tensor::randn(&[1 << 20]);
    let b = Tensor::randn(&[1 << 20]);
    Tensor::realize_all(&[a.clone(), b.clone()]).unwrap();
    for _ in 0..3 {
        (&a + &b).exp().sum(-1).realize().unwrap();
    }
    let before = dev.fresh_allocations();
    for i in 0..200 {
        let y = (&a + &b).exp().sum(-1);
        y.realize().unwrap();
        if i % 50 == 0 {
            // Reading values back must not pin memory either.
            y.item::<f32>().unwrap();
        }
    }
    assert_eq!(
        dev.fresh_allocations(),
        before,
        "a steady loop allocated new device memory: dropped values are not returning to the pool"
    );
}
