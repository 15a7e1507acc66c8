//! Axis and shape arguments: negative axes count from the end, `-1` in a reshape is inferred.

/// Integer types accepted as axes.
pub trait AxisInt: Copy {
    /// The value as i64.
    fn as_i64(self) -> i64;
}
macro_rules! axis_int {
    ($($t:ty),*) => {$(impl AxisInt for $t { fn as_i64(self) -> i64 { self as i64 } })*};
}
axis_int!(i32, i64, isize, usize, u32);

/// Every axis (for reductions over the whole tensor).
#[derive(Clone, Copy, Debug)]
pub struct All;

/// One or several axes.
pub trait IntoAxes {
    /// The axes as signed numbers (negative counts from the end); `None` means all axes.
    fn raw_axes(self) -> Option<Vec<i64>>;
}
impl IntoAxes for All {
    fn raw_axes(self) -> Option<Vec<i64>> {
        None
    }
}
impl<T: AxisInt> IntoAxes for T {
    fn raw_axes(self) -> Option<Vec<i64>> {
        Some(vec![self.as_i64()])
    }
}
impl<T: AxisInt, const N: usize> IntoAxes for [T; N] {
    fn raw_axes(self) -> Option<Vec<i64>> {
        Some(self.iter().map(|a| a.as_i64()).collect())
    }
}
impl<T: AxisInt> IntoAxes for &[T] {
    fn raw_axes(self) -> Option<Vec<i64>> {
        Some(self.iter().map(|a| a.as_i64()).collect())
    }
}
impl<T: AxisInt> IntoAxes for Vec<T> {
    fn raw_axes(self) -> Option<Vec<i64>> {
        Some(self.iter().map(|a| a.as_i64()).collect())
    }
}

/// Resolves one possibly negative axis against `ndim`, panicking with the op name if invalid.
pub fn resolve_axis(op: &str, axis: i64, shape: &[usize]) -> usize {
    let n = shape.len() as i64;
    let a = if axis < 0 { axis + n } else { axis };
    assert!(
        (0..n).contains(&a),
        "{op}: axis {axis} out of range for shape {shape:?}"
    );
    a as usize
}

/// Resolves axes (all axes for `None`), sorted and deduplicated.
pub fn resolve_axes(op: &str, axes: Option<Vec<i64>>, shape: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = match axes {
        None => (0..shape.len()).collect(),
        Some(list) => list
            .into_iter()
            .map(|a| resolve_axis(op, a, shape))
            .collect(),
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// A shape argument that may contain one `-1`.
pub trait IntoShape {
    /// The dimensions as signed numbers.
    fn raw_shape(self) -> Vec<i64>;
}
impl<T: AxisInt, const N: usize> IntoShape for [T; N] {
    fn raw_shape(self) -> Vec<i64> {
        self.iter().map(|a| a.as_i64()).collect()
    }
}
impl<T: AxisInt> IntoShape for &[T] {
    fn raw_shape(self) -> Vec<i64> {
        self.iter().map(|a| a.as_i64()).collect()
    }
}
impl<T: AxisInt> IntoShape for Vec<T> {
    fn raw_shape(self) -> Vec<i64> {
        self.iter().map(|a| a.as_i64()).collect()
    }
}
impl<T: AxisInt, const N: usize> IntoShape for &[T; N] {
    fn raw_shape(self) -> Vec<i64> {
        self.iter().map(|a| a.as_i64()).collect()
    }
}

/// Resolves a reshape target with at most one `-1` for a tensor of `numel` elements.
pub fn resolve_shape(op: &str, raw: &[i64], from: &[usize]) -> Vec<usize> {
    let numel: usize = from.iter().product();
    let unknown: Vec<usize> = raw
        .iter()
        .enumerate()
        .filter(|(_, &d)| d == -1)
        .map(|(i, _)| i)
        .collect();
    assert!(
        unknown.len() <= 1,
        "{op}: more than one -1 in {raw:?} (from {from:?})"
    );
    assert!(
        raw.iter().all(|&d| d >= -1),
        "{op}: negative size in {raw:?} (from {from:?})"
    );
    let known: usize = raw
        .iter()
        .filter(|&&d| d != -1)
        .map(|&d| d as usize)
        .product();
    let mut shape: Vec<usize> = raw.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(&u) = unknown.first() {
        assert!(
            known != 0 && numel.is_multiple_of(known),
            "{op}: cannot infer -1 in {raw:?} for shape {from:?}"
        );
        shape[u] = numel / known;
    }
    assert_eq!(
        shape.iter().product::<usize>(),
        numel,
        "{op}: cannot reshape {from:?} to {raw:?}"
    );
    shape
}

/// The broadcast shape of two shapes (numpy rules), panicking with `op` and both shapes.
pub fn broadcast_shape(op: &str, a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let db = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => panic!("{op}: shapes {a:?} and {b:?} cannot broadcast"),
            }
        })
        .collect()
}
