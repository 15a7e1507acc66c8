//! API misuse: panics that name the op and the shapes involved, and typed errors for what comes
//! from outside the API (devices).

use ferrograd::{Conv2dOptions, Tensor};

fn t(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(vec![1.0f32; n], shape)
}

#[test]
#[should_panic(expected = "add: shapes [2, 3] and [4] cannot broadcast")]
fn add_incompatible_shapes() {
    let _ = &t(&[2, 3]) + &t(&[4]);
}

#[test]
#[should_panic(expected = "mul: shapes [3, 1, 5] and [4, 2] cannot broadcast")]
fn mul_incompatible_shapes() {
    let _ = t(&[3, 1, 5]) * t(&[4, 2]);
}

#[test]
#[should_panic(expected = "sub: shapes [2] and [3] cannot broadcast")]
fn sub_incompatible_shapes() {
    let _ = t(&[2]).sub(t(&[3]));
}

#[test]
#[should_panic(expected = "where: shapes [2] and [3] cannot broadcast")]
fn where_incompatible_shapes() {
    let _ = t(&[2]).gt(0.0).where_(t(&[3]), 0.0);
}

#[test]
#[should_panic(expected = "reshape: cannot reshape [2, 3] to [4, 2]")]
fn reshape_to_wrong_size() {
    let _ = t(&[2, 3]).reshape([4, 2]);
}

#[test]
#[should_panic(expected = "reshape: cannot infer -1 in [4, -1] for shape [2, 3]")]
fn reshape_cannot_infer() {
    let _ = t(&[2, 3]).reshape([4, -1]);
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ for shapes [2, 3] and [4, 5]")]
fn matmul_inner_dimension_mismatch() {
    let _ = t(&[2, 3]).matmul(&t(&[4, 5]));
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ for shapes [3] and [4]")]
fn dot_length_mismatch() {
    let _ = t(&[3]).dot(&t(&[4]));
}

#[test]
#[should_panic(expected = "sum: axis 5 out of range for shape [2, 3]")]
fn sum_over_bad_axis() {
    let _ = t(&[2, 3]).sum(5);
}

#[test]
#[should_panic(expected = "max: axis -3 out of range for shape [2, 3]")]
fn max_over_bad_negative_axis() {
    let _ = t(&[2, 3]).max(-3);
}

#[test]
#[should_panic(expected = "transpose: axis 2 out of range for shape [2, 3]")]
fn transpose_bad_axis() {
    let _ = t(&[2, 3]).transpose(0, 2);
}

#[test]
#[should_panic(
    expected = "conv2d: weight [4, 2, 3, 3] expects 2 input channels per group, input [1, 3, 8, 8] has 3"
)]
fn conv2d_channel_mismatch() {
    let _ = t(&[1, 3, 8, 8]).conv2d(&t(&[4, 2, 3, 3]), None, Conv2dOptions::default());
}

#[test]
#[should_panic(expected = "conv2d: groups 2 must divide C_in 3 and C_out 4")]
fn conv2d_bad_groups() {
    let _ = t(&[1, 3, 8, 8]).conv2d(&t(&[4, 1, 3, 3]), None, Conv2dOptions::default().groups(2));
}

#[test]
#[should_panic(expected = "to_vec: tensor of shape [2] has dtype f32, asked for i32")]
fn to_vec_wrong_element_type() {
    let _ = t(&[2]).to_vec::<i32>();
}

#[test]
#[should_panic(expected = "item: tensor of shape [3] has 3 elements")]
fn item_of_many_elements() {
    let _ = t(&[3]).item::<f32>();
}

#[test]
#[should_panic(expected = "from_slice: 12 bytes do not fill shape [2, 2] of f32")]
fn from_vec_wrong_length() {
    let _ = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[2, 2]);
}

#[test]
#[should_panic(expected = "cat: shape [2, 4] does not match [2, 3] outside axis 0")]
fn cat_mismatched_shapes() {
    let _ = Tensor::cat(&[t(&[2, 3]), t(&[2, 4])], 0);
}

#[test]
#[should_panic(expected = "slice: step is zero (axis 0 of shape [5])")]
fn slice_step_zero() {
    let _ = t(&[5]).slice(0, None, None, 0);
}

#[test]
#[should_panic(expected = "select: index 5 out of range for axis 0 of shape [5]")]
fn select_out_of_range() {
    let _ = t(&[5]).select(0, 5);
}

#[test]
#[should_panic(expected = "broadcast_to: axis 1 of [3] cannot become 4 (target [2, 4])")]
fn expand_incompatible() {
    let _ = t(&[3]).expand([2, 4]);
}

#[test]
#[should_panic(expected = "permute: [1, 0, 2] does not fit shape [2, 3]")]
fn permute_wrong_rank() {
    let _ = t(&[2, 3]).permute([1, 0, 2]);
}

#[test]
#[should_panic(expected = "gather: index must be integer, got f32")]
fn gather_float_index() {
    let _ = t(&[2, 3]).gather(1, &t(&[2, 3]));
}

#[test]
#[should_panic(expected = "one_hot: needs integer indices, got f32 (shape [2])")]
fn one_hot_float() {
    let _ = t(&[2]).one_hot(3);
}

#[test]
#[should_panic(expected = "clamp: lower bound 2 exceeds upper bound 1 (shape [2])")]
fn clamp_inverted_bounds() {
    let _ = t(&[2]).clamp(2.0, 1.0);
}

#[test]
#[should_panic(expected = "neg: not defined for bool tensors (shape [2])")]
fn neg_of_bool() {
    let _ = t(&[2]).gt(0.0).neg();
}

#[test]
#[should_panic(expected = "arange: step is zero (start 0, stop 5)")]
fn arange_step_zero() {
    let _ = Tensor::arange(0.0, 5.0, 0.0);
}

#[test]
fn unknown_device_is_a_typed_error() {
    let x = t(&[2]);
    let err = x
        .to("nosuchdevice")
        .expect_err("nosuchdevice does not exist");
    match &err {
        ferrograd::Error::UnknownDevice { name, available } => {
            assert_eq!(name, "nosuchdevice");
            assert!(
                available.split(", ").any(|d| d == "cpu"),
                "available devices: {available}"
            );
        }
        other => panic!("expected UnknownDevice, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("nosuchdevice") && msg.contains("available devices") && msg.contains("cpu"),
        "message: {msg}"
    );
    // Indexed names of missing devices are errors too; the tensor is still usable.
    assert!(matches!(
        x.to("cpu:7"),
        Err(ferrograd::Error::UnknownDevice { .. })
    ));
    assert!(matches!(
        x.to("vulkan:3"),
        Err(ferrograd::Error::UnknownDevice { .. })
    ));
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
}
