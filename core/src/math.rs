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
//! | [`exp`] | [`exp_kernel`] | micromath | 1 ULP; fast-math: 2.5·10⁻³ relative |
//! | [`sin`], [`cos`] | `libm::sinf`/`cosf` | micromath | < 1 ULP; fast-math: 1.2·10⁻³ absolute |
//! | [`expm1`] | own f32 kernel | same | 1 ULP (0.93) |
//! | [`ln`], [`log1p`], [`asinh`] | libm | libm | < 1 ULP (ln 0.71) |
//! | [`sin_cos_turns`] | own f32 kernel | own f32 kernel | 1.5 ULP of max(\|sin\|, \|cos\|) |
//! | [`sin_cos`] | own f32 kernel (\|x\| ≤ 8192) | same | 1.5·10⁻⁷ absolute |
//! | [`ln_unit`] | libm's algorithm, inlined | same | bit-identical to `libm::logf` on (0, 1] |
//!
//! `fast-math` keeps `ln`, `sqrt` and `log1p` on libm and `expm1` on its own kernel:
//! measured against f64, micromath 2.1's `ln` is wrong by up to 0.118 for some arguments
//! below 1 (e.g. 0.7506), its `sqrt` is an approximation, and the schedules need
//! `expm1`/`log1p` accurate near 0.
//! `libm::sinf`/`cosf` compute in f64 internally (emulated in software on a Cortex-M4F); the
//! Box–Muller hot path therefore uses [`sin_cos_turns`], a native-f32 kernel for `sin 2πu`,
//! `cos 2πu` with exact range reduction, and [`ln_unit`], libm's pure-f32 `logf` inlined.

/// Square root, correctly rounded. With the `std` feature through `f32::sqrt`, which the
/// compiler sees (libm's is an opaque instruction), so loops of it vectorise; both are
/// IEEE 754's correctly rounded square root, the same bits.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    return x.sqrt();
    #[cfg(not(feature = "std"))]
    return libm::sqrtf(x);
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

/// `eˣ`: [`exp_kernel`] by default, micromath with `fast-math`.
#[inline]
pub fn exp(x: f32) -> f32 {
    #[cfg(not(feature = "fast-math"))]
    return exp_kernel(x);
    #[cfg(feature = "fast-math")]
    return micromath::F32Ext::exp(x);
}

/// `eˣ` in f32 arithmetic only, inlined and free of library calls (`libm::expf` costs 11 ns
/// per call on the host, this 2 ns; the softmax of a mixture score calls it once per
/// component).
///
/// `x = k·ln 2 + r` with `k` rounded to nearest by the 1.5·2²³ trick and `r` reduced with a
/// two-part ln 2 (Cody–Waite; `k·LN2_HI` is exact), then Cephes' degree-7 polynomial for
/// `eʳ` on |r| ≤ ln2/2 (evaluated by Estrin's scheme: 1.2–1.4× faster than Horner's in
/// vectorised loops; worst error over 1.2·10⁸ arguments 0.972 ULP, Horner's 0.974) and the
/// scale `2ᵏ` built from its bits. Measured error ≤ 1 ULP (see `tests/math_accuracy.rs`).
/// Results below 2⁻¹²⁵ (x < −86.64) flush to 0; x > 88.72 gives +∞; NaN stays NaN.
/// Branch-free, so loops of it vectorise.
#[inline]
#[allow(clippy::excessive_precision)] // coefficients as published (Cephes expf)
pub fn exp_kernel(x: f32) -> f32 {
    const LOWEST: f32 = -86.643; // below: 2ᵏ would need a subnormal scale; the result is 0

    // No branch anywhere, so loops over it vectorise: the clamp's top, 89, is just past
    // overflow, where 2¹²⁸·eʳ rounds to +∞ by itself; underflow is masked to 0 at the end.
    // NaN stays NaN through the clamp.
    let (r, _, half_scale) = ln2_reduction(x.clamp(LOWEST, 89.0));
    // Estrin's scheme: three independent pairs, so the chain of dependent operations is half
    // of Horner's and more exponentials overlap in a vectorised loop.
    let r2 = r * r;
    let low = 1.666_666_5e-1 * r + 5.000_000_1e-1;
    let mid = 8.333_452e-3 * r + 4.166_579_6e-2;
    let high = 1.987_569_1e-4 * r + 1.398_199_9e-3;
    let p = low + r2 * (mid + r2 * high);
    let e_r = p * r2 + r + 1.0;
    let value = e_r * half_scale * 2.0;
    let keep = ((x < LOWEST) as u32).wrapping_sub(1); // all ones unless x < LOWEST; NaN keeps
    f32::from_bits(value.to_bits() & keep)
}

/// Adding and subtracting 1.5·2²³ rounds an f32 below 2²² in magnitude to an integer.
const ROUND: f32 = 12_582_912.0;

/// The reduction of [`exp_kernel`] and [`expm1`]: `x = k·ln 2 + r` with k the nearest
/// integer and |r| ≤ ln2/2 (Cody–Waite: `k·LN2_HI` is exact, so `r = x` when k = 0). Returns
/// `r`, k (as the bits of a two's-complement integer) and the scale 2^(k−1), built from
/// integer operations only (no float-to-int conversion, so loops vectorise). For
/// `x ∈ [−86.643, 89]`, k is in −125..=128 and the scale's exponent field k + 126 in 1..=254.
#[inline(always)]
fn ln2_reduction(x: f32) -> (f32, u32, f32) {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // 0x3f317200: 16 significant bits, k·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN2_HI
    let shifted = x * LOG2E + ROUND; // ROUND + k: k sits in the low mantissa bits
    let k = shifted - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let half_scale = f32::from_bits(k_bits.wrapping_add(126) << 23);
    (r, k_bits, half_scale)
}

/// `eˣ − 1`, accurate near 0 where `exp(x) − 1` cancels: f32 arithmetic only and inlined like
/// [`exp_kernel`], its cases selects that loops of it vectorise (libm's `expm1f` is a call
/// that branches on the argument's range, so a loop over the schedules' σ(t) did not).
///
/// The same reduction as [`exp_kernel`], `x = k·ln 2 + r` with |r| ≤ ln2/2 (`r = x` exactly
/// when k = 0, so nothing cancels near 0), then `eʳ − 1 = r + r²·P(r)` with `P` the Taylor
/// series of `(eʳ − 1 − r)/r²` to r⁶ (truncation below 2·10⁻¹⁰ relative), and
/// `eˣ − 1 = 2ᵏ·(eʳ − 1) + (2ᵏ − 1)`, summed in an order chosen by `k` so that the error
/// stays within 1 ULP (measured: 0.93; see `tests/math_accuracy.rs`). Below x = −86.64 the
/// result is −1 (as it is from −17.4 on); x > 88.72 gives +∞; NaN stays NaN.
#[inline]
pub fn expm1(x: f32) -> f32 {
    // 2^(k−1) stays a normal number: k ≥ −125. NaN stays NaN through the clamp.
    let (r, k_bits, half_scale) = ln2_reduction(x.clamp(-86.643, 89.0));
    let r2 = r * r;
    // P(r) = 1/2 + r/6 + r²/24 + … + r⁶/40320, by Estrin's scheme.
    let p01 = (1.0 / 6.0) * r + 0.5;
    let p23 = (1.0 / 120.0) * r + 1.0 / 24.0;
    let p45 = (1.0 / 5040.0) * r + 1.0 / 720.0;
    let r4 = r2 * r2;
    let p = p01 + r2 * p23 + r4 * (p45 + r2 * (1.0 / 40320.0));
    let tail = r2 * p;
    // eˣ − 1 = 2^k·q + (2^k − 1) with q = eʳ − 1: both terms are exact when k ≤ 24, then one
    // rounding; but at k = 1 that sum cancels (to 0.15 from q near −0.29), so there r + ½
    // comes first, exact where it cancels (Sterbenz), and from k = 25 on 2^k − 1 is not
    // exact, so there eˣ − 1 = 2^k·((q − 2^−k) + 1).
    let q = r + tail;
    let k_int = k_bits as i32; // in −125..=128
    let sum = if k_int == 1 {
        (r + 0.5) + tail
    } else if k_int >= 25 {
        let inverse_scale = f32::from_bits(((127 - k_int.min(100)) as u32) << 23);
        ((q - inverse_scale) + 1.0) * half_scale
    } else {
        q * half_scale + (half_scale - 0.5)
    };
    2.0 * sum
}

/// Natural logarithm (libm with or without `fast-math`: see the table above).
#[inline]
pub fn ln(x: f32) -> f32 {
    libm::logf(x)
}

/// `ln u` for a normal `u ∈ (0, 1]`: FreeBSD's `logf` (libm's) without its branches for zero,
/// negative, subnormal, infinite and NaN inputs, so it inlines into Box–Muller. Over all
/// `u = m·2⁻²⁴`, m = 1..=2²⁴, it gives the same bits as `libm::logf` (tested).
#[inline]
#[allow(clippy::excessive_precision)] // constants as in FreeBSD's e_logf.c
pub fn ln_unit(u: f32) -> f32 {
    const LN2_HI: f32 = 6.931_381_2e-1; // 0x3f317180
    const LN2_LO: f32 = 9.058_001e-6; // 0x3717f7d1
    const LG1: f32 = 0.666_666_6; // 0xaaaaaa.0p-24
    const LG2: f32 = 0.400_009_72; // 0xccce13.0p-25
    const LG3: f32 = 0.284_987_87; // 0x91e9ee.0p-25
    const LG4: f32 = 0.242_790_79; // 0xf89e26.0p-26
                                   // Reduce u to m·2^k with m in [√2/2, √2).
    let bits = u.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = ((bits >> 23) as i32) - 0x7f;
    let m = f32::from_bits((bits & 0x007f_ffff) + 0x3f35_04f3);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI
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

/// `(sin x, cos x)` in f32 arithmetic only, for |x| ≤ 8192 (beyond, and for NaN, through
/// libm). Cephes' reduction by a three-part π/4 (its first part has 8 significant bits, so the
/// products with the octant index are exact) and the polynomials of [`sin_cos_turns`].
/// Measured error over |x| ≤ 8192 against f64: 7.7·10⁻⁸ absolute, tested bound 1.5·10⁻⁷ (see
/// `tests/math_accuracy.rs`). The network's Fourier features use it, as PyTorch's `sin`, on
/// the f32 angle `t·W·2·π`, so no f64 is needed on a chip.
#[inline]
pub fn sin_cos(x: f32) -> (f32, f32) {
    if x.is_nan() || x.abs() > 8192.0 {
        return (libm::sinf(x), libm::cosf(x));
    }
    sin_cos_reduced(x)
}

/// The f32 path of [`sin_cos`], for |x| ≤ 8192 (other inputs give wrong but finite values).
#[inline]
#[allow(clippy::excessive_precision)] // constants as published (Cephes sinf)
fn sin_cos_reduced(x: f32) -> (f32, f32) {
    const FOUR_OVER_PI: f32 = 1.273_239_5;
    const DP1: f32 = 0.785_156_25;
    const DP2: f32 = 2.418_756_5e-4;
    const DP3: f32 = 3.774_895e-8;
    let magnitude = x.abs();
    // The nearest quarter turn q (|x|·2/π rounded, ties to even) and r = |x| − 2q·π/4 in
    // [−π/4, π/4]. The rounding by adding 1.5·2²³ is integer-free, so loops of it vectorise
    // (a float-to-integer conversion does not on x86); callers keep |x| ≤ 8192, so 2q < 2¹⁴.
    // NaN stays NaN in r, and q is then arbitrary.
    let shifted = magnitude * (0.5 * FOUR_OVER_PI) + ROUND;
    let quadrant = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let y = (shifted - ROUND) * 2.0;
    let r = ((magnitude - y * DP1) - y * DP2) - y * DP3;
    let (sin, cos) = rotate(r, quadrant);
    (if x < 0.0 { -sin } else { sin }, cos)
}

/// [`sin_cos`] on its f32-only domain: `x` is clamped to ±8192 first (NaN gives NaN), so no
/// libm or f64 code is linked — 6 KB of flash on a Cortex-M. Equal to [`sin_cos`] for
/// |x| ≤ 8192; the network's time features use it, whose angles stay within ±6434 for
/// t ∈ [0, 1] and the format's |W| ≤ 1024.
#[inline]
pub fn sin_cos_bounded(x: f32) -> (f32, f32) {
    const LIMIT: f32 = 8192.0;
    // No branch, so loops of it vectorise: a NaN stays NaN through the clamp and the
    // reduction (its octant converts to 0), and the polynomials give NaN.
    sin_cos_reduced(x.clamp(-LIMIT, LIMIT))
}

/// `(sin, cos)` of `θ + quadrant·π/2` for |θ| ≤ π/4: Cephes' minimax polynomials, then the
/// exact quarter-turn rotation.
#[inline]
#[allow(clippy::excessive_precision)] // coefficients as published (Cephes sinf/cosf)
fn rotate(theta: f32, quadrant: u32) -> (f32, f32) {
    let z = theta * theta;
    let sin = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * theta + theta;
    let cos = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    // (sin, cos), (cos, −sin), (−sin, −cos), (−cos, sin) for quadrants 0..3. On a chip a
    // branch is cheap and the selects below cost 13 more instructions on a Cortex-M4; on a
    // host a random quadrant mispredicts three times in four and a branch stops loops from
    // vectorising. Both give the same bits (negation flips the sign bit); the QEMU tests
    // compare the chip's samples with the host's.
    #[cfg(target_os = "none")]
    return match quadrant & 3 {
        0 => (sin, cos),
        1 => (cos, -sin),
        2 => (-sin, -cos),
        _ => (-cos, sin),
    };
    #[cfg(not(target_os = "none"))]
    rotate_without_branches(sin, cos, quadrant)
}

/// [`rotate`]'s quarter turns for a host: swap on odd quadrants, then flip sign bits.
#[cfg(not(target_os = "none"))]
#[inline]
fn rotate_without_branches(sin: f32, cos: f32, quadrant: u32) -> (f32, f32) {
    let odd = quadrant & 1 == 1;
    let (first, second) = if odd { (cos, sin) } else { (sin, cos) };
    let first_sign = (quadrant & 2) << 30;
    let second_sign = ((quadrant ^ (quadrant >> 1)) & 1) << 31;
    (
        f32::from_bits(first.to_bits() ^ first_sign),
        f32::from_bits(second.to_bits() ^ second_sign),
    )
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
    rotate(
        remainder as f32 * (core::f32::consts::FRAC_PI_2 / QUARTER as f32),
        quadrant,
    )
}
