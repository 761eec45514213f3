//! Every float function the core uses, in one place, so host and chip compute the same bits.
//!
//! `std`'s `f32::ln`, `sin`, `exp` call the platform's maths library, which differs between an
//! x86 host and a Cortex-M (75,630 of 10⁶ `ln` results differ): the core never uses them. It
//! calls these functions instead, which are pure f32 arithmetic with a fixed order of
//! operations, so the results are the same bits on every target.
//!
//! | function | default | with `fast-math` | bound (tested in `tests/math_accuracy.rs`) |
//! |---|---|---|---|
//! | [`sqrt`] | `libm::sqrtf` | `libm::sqrtf` | correctly rounded |
//! | [`exp`] | `libm::expf` | micromath | 0.86 ULP; fast-math: 2.5·10⁻³ relative |
//! | [`sin`], [`cos`] | `libm::sinf`/`cosf` | micromath | < 1 ULP; fast-math: 1.2·10⁻³ absolute |
//! | [`ln`], [`expm1`], [`log1p`], [`asinh`] | libm | libm | < 1 ULP (ln 0.71, expm1 0.78) |
//! | [`sin_cos_turns`] | own f32 kernel | own f32 kernel | 1.5 ULP of max(\|sin\|, \|cos\|) |
//!
//! `fast-math` keeps `ln`, `sqrt`, `expm1` and `log1p` on libm: measured against f64,
//! micromath 2.1's `ln` is wrong by up to 0.118 for some arguments below 1 (e.g. 0.7506),
//! its `sqrt` is an approximation, and the schedules need `expm1`/`log1p` accurate near 0.
//! `libm::sinf`/`cosf` compute in f64 internally (emulated in software on a Cortex-M4F); the
//! Box–Muller hot path therefore uses [`sin_cos_turns`], a native-f32 kernel for `sin 2πu`,
//! `cos 2πu` with exact range reduction, and `libm::logf`, which is pure f32.

/// Square root, correctly rounded.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// `eˣ − 1`, accurate near 0.
#[inline]
pub fn expm1(x: f32) -> f32 {
    libm::expm1f(x)
}

/// `ln(1 + x)`, accurate near 0.
#[inline]
pub fn log1p(x: f32) -> f32 {
    libm::log1pf(x)
}

/// Inverse hyperbolic sine.
#[inline]
pub fn asinh(x: f32) -> f32 {
    libm::asinhf(x)
}

/// `eˣ`.
#[inline]
pub fn exp(x: f32) -> f32 {
    #[cfg(not(feature = "fast-math"))]
    return libm::expf(x);
    #[cfg(feature = "fast-math")]
    return micromath::F32Ext::exp(x);
}

/// Natural logarithm (libm with or without `fast-math`: see the table above).
#[inline]
pub fn ln(x: f32) -> f32 {
    libm::logf(x)
}

/// Sine (radians).
#[inline]
pub fn sin(x: f32) -> f32 {
    #[cfg(not(feature = "fast-math"))]
    return libm::sinf(x);
    #[cfg(feature = "fast-math")]
    return micromath::F32Ext::sin(x);
}

/// Cosine (radians).
#[inline]
pub fn cos(x: f32) -> f32 {
    #[cfg(not(feature = "fast-math"))]
    return libm::cosf(x);
    #[cfg(feature = "fast-math")]
    return micromath::F32Ext::cos(x);
}

/// `x^y` for `x > 0`, as `exp(y·ln x)`.
#[inline]
pub fn powf(x: f32, y: f32) -> f32 {
    exp(y * ln(x))
}

/// The angle 2π·m/2²⁴ for a 24-bit turn fraction `m` as `(sin, cos)`, in f32 arithmetic only.
///
/// The range reduction is exact (integer arithmetic on `m`): the quadrant is the nearest
/// multiple of 2²², the remainder `r ∈ [−½, ½)` quarter-turns becomes the angle `r·π/2` with
/// one rounding, and Cephes' minimax polynomials for |θ| ≤ π/4 finish. Measured over all 2²⁴
/// inputs against f64: at most 1.07 ULP of the larger of |sin|, |cos| (tested bound 1.5 ULP).
/// Bits above the 24th of `m` are ignored.
#[inline]
pub fn sin_cos_turns(m: u32) -> (f32, f32) {
    const QUARTER: u32 = 1 << 22;
    let m = m & 0x00FF_FFFF;
    let quadrant = (m + QUARTER / 2) >> 22; // 0..=4, nearest quarter turn
    let remainder = m as i32 - (quadrant * QUARTER) as i32; // exactly, in [−2²¹, 2²¹)
    let theta = remainder as f32 * (core::f32::consts::FRAC_PI_2 / QUARTER as f32);
    let z = theta * theta;
    let sin = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * theta + theta;
    let cos = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    match quadrant & 3 {
        0 => (sin, cos),
        1 => (cos, -sin),
        2 => (-sin, -cos),
        _ => (-cos, sin),
    }
}
