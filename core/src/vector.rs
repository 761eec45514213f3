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

/// The first vector with a non-finite element, if any. All-finite batches — every batch but
/// a diverging one — are decided by one pass with no early exit, which vectorises: the
/// largest magnitude's bits are below those of infinity exactly when every element is finite.
#[inline]
pub(crate) fn first_non_finite<const N: usize>(xs: &[[f32; N]]) -> Option<usize> {
    const INFINITY_BITS: u32 = 0x7f80_0000;
    let largest = xs
        .as_flattened()
        .iter()
        .fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
    if largest < INFINITY_BITS {
        return None;
    }
    xs.iter().position(|x| !all_finite(x))
}
