//! The few operations on `[f32; N]` the samplers share, written once.

/// `y + a·x`, elementwise.
#[inline]
pub(crate) fn axpy<const N: usize>(a: f32, x: &[f32; N], y: &[f32; N]) -> [f32; N] {
    core::array::from_fn(|d| y[d] + a * x[d])
}

/// `a·x`, elementwise.
#[inline]
pub(crate) fn scale<const N: usize>(a: f32, x: &[f32; N]) -> [f32; N] {
    x.map(|v| a * v)
}

/// Whether every element is finite.
#[inline]
pub(crate) fn all_finite<const N: usize>(x: &[f32; N]) -> bool {
    x.iter().all(|v| v.is_finite())
}
