//! Training's hot loops beside the GEMM: the time features ([`time_features`]), SiLU with its
//! slope ([`bias_silu_with_slope`], and through the int8 grids
//! [`bias_quantized_silu_with_slope`]) and a thin output layer ([`thin_forward`],
//! [`thin_backward`]), the hottest through an AVX2 copy where the CPU has it (checked at run
//! time).

use crate::quantize::ActivationWidth;
use tinyscore::model::quant::{silu_int16, silu_table_int16};
use tinyscore::model::QuantParams;

/// Whether this CPU runs AVX2 code.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Adds `bias` to every row of `z` (rows of `bias.len()`), then applies SiLU in place,
/// `z ← z·σ(z)`, with its derivative at the biased `z` in `slope`:
/// `SiLU'(z) = σ(z)(1 + z(1 − σ(z)))`.
///
/// Training's, so unlike the sampling kernels it need not give the chip's bits: on a CPU with
/// AVX2 and FMA it runs a copy written with AVX2 intrinsics, whose fused multiply–adds round
/// differently (as the GEMM's FMA kernels already make training's products do), within
/// a few units in the last place of the formula; elsewhere the formula with the core's `exp`.
pub fn bias_silu_with_slope(z: &mut [f32], bias: &[f32], slope: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, the features the copy is built for.
        return unsafe { bias_silu_with_slope_fma(z, bias, slope) };
    }
    bias_silu_with_slope_formula(z, bias, slope)
}

/// [`bias_silu_with_slope`] as written, with the core's branch-free `exp` (so it vectorises).
fn bias_silu_with_slope_formula(z: &mut [f32], bias: &[f32], slope: &mut [f32]) {
    if bias.is_empty() {
        return;
    }
    let rows = z.chunks_exact_mut(bias.len());
    for (z, slope) in rows.zip(slope.chunks_exact_mut(bias.len())) {
        for ((v, d), b) in z.iter_mut().zip(slope.iter_mut()).zip(bias) {
            let biased = *v + b;
            let s = 1.0 / (1.0 + tinyscore::math::exp(-biased));
            *d = s * (1.0 + biased * (1.0 - s));
            *v = biased * s;
        }
    }
}

/// [`bias_silu_with_slope`] on eight values per AVX2 register with fused multiply–adds: `eˣ`
/// by the core's reduction and polynomial (Cephes'), evaluated with FMA; a row's last
/// `len mod 8` values by the formula.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::excessive_precision)] // the core's `exp` coefficients (Cephes), as published
unsafe fn bias_silu_with_slope_fma(z: &mut [f32], bias: &[f32], slope: &mut [f32]) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    if bias.is_empty() {
        return;
    }
    let whole = bias.len() - bias.len() % LANES;
    let splat = |v: f32| _mm256_set1_ps(v);
    let rows = z.chunks_exact_mut(bias.len());
    for (z, slope) in rows.zip(slope.chunks_exact_mut(bias.len())) {
        let (z_vectors, z_rest) = z.split_at_mut(whole);
        let (slope_vectors, slope_rest) = slope.split_at_mut(whole);
        let vectors = z_vectors
            .chunks_exact_mut(LANES)
            .zip(slope_vectors.chunks_exact_mut(LANES))
            .zip(bias.chunks_exact(LANES));
        for ((z, slope), bias) in vectors {
            // SAFETY: every chunk holds exactly eight f32, which the unaligned loads and
            // stores read and write.
            let v = unsafe {
                _mm256_add_ps(_mm256_loadu_ps(z.as_ptr()), _mm256_loadu_ps(bias.as_ptr()))
            };
            // e^(−v) with −v clamped to [−87, 88]: 2ᵏ stays a normal number, and σ still
            // rounds to 1 and to below 10⁻³⁸ at the ends.
            let x = _mm256_min_ps(
                _mm256_max_ps(_mm256_sub_ps(splat(0.0), v), splat(-87.0)),
                splat(88.0),
            );
            let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(x, splat(std::f32::consts::LOG2_E)),
            );
            let r = _mm256_fnmadd_ps(k, splat(0.693_145_75), x);
            let r = _mm256_fnmadd_ps(k, splat(1.428_606_8e-6), r);
            let mut p = splat(1.987_569_1e-4);
            for c in [
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                5.000_000_1e-1,
            ] {
                p = _mm256_fmadd_ps(p, r, splat(c));
            }
            let e_r = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, splat(1.0)));
            let two_k = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(k),
                _mm256_set1_epi32(127),
            )));
            let e = _mm256_mul_ps(e_r, two_k);
            // σ = 1/(1 + e): the 12-bit reciprocal estimate and one Newton step (≈ 2⁻²²
            // relative), a quarter of a division's time.
            let denominator = _mm256_add_ps(splat(1.0), e);
            let estimate = _mm256_rcp_ps(denominator);
            let sigma = _mm256_mul_ps(
                estimate,
                _mm256_fnmadd_ps(denominator, estimate, splat(2.0)),
            );
            let d = _mm256_mul_ps(
                sigma,
                _mm256_fmadd_ps(v, _mm256_sub_ps(splat(1.0), sigma), splat(1.0)),
            );
            // SAFETY: as above.
            unsafe {
                _mm256_storeu_ps(z.as_mut_ptr(), _mm256_mul_ps(v, sigma));
                _mm256_storeu_ps(slope.as_mut_ptr(), d);
            }
        }
        bias_silu_with_slope_formula(z_rest, &bias[whole..], slope_rest);
    }
}

/// [`bias_silu_with_slope`] through the integer model's quantization at `width`, for
/// quantization-aware training: the biased sum is rounded to the pre-activation tensor's
/// grid `pre`, SiLU's value to the post-activation grid `post` (what the integer layer's
/// requantization and SiLU table compute), and the slope is SiLU's at the rounded sum, or 0
/// where either grid clips it (straight-through gradients, cut where the value saturates).
/// At int8 the rounded sum takes one of 256 levels, so value and slope come from a table made
/// once per call; at int16 the value is the interpolated table's, as the model computes it.
pub fn bias_quantized_silu_with_slope(
    z: &mut [f32],
    bias: &[f32],
    pre: QuantParams,
    post: QuantParams,
    width: ActivationWidth,
    slope: &mut [f32],
) {
    if bias.is_empty() {
        return;
    }
    if width == ActivationWidth::Int16 {
        return bias_int16_silu_with_slope(z, bias, pre, post, slope);
    }
    // Beyond half a step outside its ends a grid clamps the value.
    let limits = |q: QuantParams| {
        let half = 0.5 * q.scale;
        (q.dequantize(-128) - half, q.dequantize(127) + half)
    };
    let ((pre_lo, pre_hi), (post_lo, post_hi)) = (limits(pre), limits(post));
    let table: Vec<(f32, f32)> = (-128..=127)
        .map(|level| {
            let rounded = pre.dequantize(level as i8);
            let s = 1.0 / (1.0 + tinyscore::math::exp(-rounded));
            let silu = rounded * s;
            let d = if (post_lo..=post_hi).contains(&silu) {
                s * (1.0 + rounded * (1.0 - s))
            } else {
                0.0
            };
            (post.dequantize(post.quantize(silu)), d)
        })
        .collect();
    let rows = z.chunks_exact_mut(bias.len());
    for (z, slope) in rows.zip(slope.chunks_exact_mut(bias.len())) {
        for ((v, d), b) in z.iter_mut().zip(slope.iter_mut()).zip(bias) {
            let biased = *v + b;
            let (value, level_slope) = table[(pre.quantize(biased) as u8 ^ 0x80) as usize];
            *d = if (pre_lo..=pre_hi).contains(&biased) {
                level_slope
            } else {
                0.0
            };
            *v = value;
        }
    }
}

/// [`bias_quantized_silu_with_slope`] at int16: the level of the biased sum through the
/// interpolated SiLU table `quantize` writes, SiLU's slope at the level (0 where either
/// tensor's range clips).
fn bias_int16_silu_with_slope(
    z: &mut [f32],
    bias: &[f32],
    pre: QuantParams,
    post: QuantParams,
    slope: &mut [f32],
) {
    let knots: Vec<u8> = silu_table_int16(pre, post)
        .iter()
        .flat_map(|k| k.to_le_bytes())
        .collect();
    let pre_limit = pre.scale * (i16::MAX as f32 + 0.5);
    let post_limit = post.scale * (i16::MAX as f32 + 0.5);
    let rows = z.chunks_exact_mut(bias.len());
    for (z, slope) in rows.zip(slope.chunks_exact_mut(bias.len())) {
        for ((v, d), b) in z.iter_mut().zip(slope.iter_mut()).zip(bias) {
            let biased = *v + b;
            let level = pre.quantize_int16(biased);
            let rounded = pre.scale * level as f32;
            let s = 1.0 / (1.0 + tinyscore::math::exp(-rounded));
            let silu = rounded * s;
            *d = if biased.abs() <= pre_limit && silu.abs() <= post_limit {
                s * (1.0 + rounded * (1.0 - s))
            } else {
                0.0
            };
            *v = post.scale * silu_int16(&knots, level) as f32;
        }
    }
}

/// Each row's time features, as the model computes them (`quant::time_feature`): in rows of
/// `width` values, `row[first..first + F]` gets `sin(2π·t·w)` and the next `F` values
/// `cos(2π·t·w)`, for the row's time `t` from `times` and the `F` `frequencies` `w`.
pub fn time_features(
    rows: &mut [f32],
    width: usize,
    first: usize,
    times: &[f32],
    frequencies: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, the only feature the copy is built for.
        return unsafe { time_features_avx2(rows, width, first, times, frequencies) };
    }
    time_features_inline(rows, width, first, times, frequencies)
}

#[inline(always)]
fn time_features_inline(
    rows: &mut [f32],
    width: usize,
    first: usize,
    times: &[f32],
    frequencies: &[f32],
) {
    let f = frequencies.len();
    if width < first + 2 * f {
        return;
    }
    for (row, t) in rows.chunks_exact_mut(width).zip(times) {
        let (sines, cosines) = row[first..first + 2 * f].split_at_mut(f);
        // Branch-free, so this loop vectorises.
        for ((w, sin), cos) in frequencies.iter().zip(sines).zip(cosines) {
            (*sin, *cos) = tinyscore::model::quant::time_feature(*t, *w);
        }
    }
}

/// [`time_features`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn time_features_avx2(
    rows: &mut [f32],
    width: usize,
    first: usize,
    times: &[f32],
    frequencies: &[f32],
) {
    time_features_inline(rows, width, first, times, frequencies)
}

/// The widest output layer [`thin_forward`] and [`thin_backward`] are for (the GEMM runs the
/// 2-wide products of a 2-D model at a tenth of its speed; wider layers stay on the GEMM).
pub const THIN_OUTPUTS: usize = 4;

/// A thin layer's forward product: `out[r][o] = w_o·x_r + b_o` for rows `x_r` of `x` and
/// outputs `o < bias.len() ≤ THIN_OUTPUTS` (`weights` holds one row `w_o` per output).
pub fn thin_forward(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, the only feature the copy is built for.
        return unsafe { thin_forward_avx2(x, weights, bias, out) };
    }
    thin_forward_inline(x, weights, bias, out)
}

/// [`thin_forward`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn thin_forward_avx2(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
    thin_forward_inline(x, weights, bias, out)
}

/// The body of [`thin_forward`]: each dot product in eight partial sums, so a block of eight
/// is one vector operation in the AVX2 copy (the same operations in the same order as the
/// baseline build, so the same bits).
#[inline(always)]
fn thin_forward_inline(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
    const BLOCK: usize = 8;
    let outputs = bias.len();
    assert!(
        outputs <= THIN_OUTPUTS,
        "{outputs} outputs: not a thin layer"
    );
    if outputs == 0 {
        return;
    }
    let width = weights.len() / outputs;
    let whole = width - width % BLOCK;
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(outputs)) {
        for ((out, w), b) in out.iter_mut().zip(weights.chunks_exact(width)).zip(bias) {
            let mut partial = [0.0f32; BLOCK];
            for (x, w) in x.chunks_exact(BLOCK).zip(w.chunks_exact(BLOCK)) {
                for l in 0..BLOCK {
                    partial[l] += x[l] * w[l];
                }
            }
            let tail: f32 = x[whole..].iter().zip(&w[whole..]).map(|(x, w)| x * w).sum();
            *out = partial.iter().sum::<f32>() + tail + b;
        }
    }
}

/// A thin layer's backward signal for the hidden layer below:
/// `below[r] = (Σ_o g[r][o]·w_o) ⊙ slope[r]`, with `g` the gradient at the thin layer's
/// `outputs ≤ THIN_OUTPUTS` outputs and `slope` SiLU's derivative at the hidden layer's
/// pre-activation.
pub fn thin_backward(g: &[f32], outputs: usize, weights: &[f32], slope: &[f32], below: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, the only feature the copy is built for.
        return unsafe { thin_backward_avx2(g, outputs, weights, slope, below) };
    }
    thin_backward_inline(g, outputs, weights, slope, below)
}

/// [`thin_backward`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn thin_backward_avx2(
    g: &[f32],
    outputs: usize,
    weights: &[f32],
    slope: &[f32],
    below: &mut [f32],
) {
    thin_backward_inline(g, outputs, weights, slope, below)
}

/// The body of [`thin_backward`], for each count of outputs.
#[inline(always)]
fn thin_backward_inline(
    g: &[f32],
    outputs: usize,
    weights: &[f32],
    slope: &[f32],
    below: &mut [f32],
) {
    match outputs {
        0 => {}
        1 => thin_backward_of::<1>(g, weights, slope, below),
        2 => thin_backward_of::<2>(g, weights, slope, below),
        3 => thin_backward_of::<3>(g, weights, slope, below),
        4 => thin_backward_of::<4>(g, weights, slope, below),
        _ => panic!("{outputs} outputs: not a thin layer"),
    }
}

/// [`thin_backward`] for `D` outputs: one sweep over each row, whose loop vectorises.
#[inline(always)]
fn thin_backward_of<const D: usize>(g: &[f32], weights: &[f32], slope: &[f32], below: &mut [f32]) {
    let width = weights.len() / D;
    let w: [&[f32]; D] = core::array::from_fn(|o| &weights[o * width..(o + 1) * width]);
    let rows = below
        .chunks_exact_mut(width)
        .zip(slope.chunks_exact(width))
        .zip(g.chunks_exact(D));
    for ((below, slope), g) in rows {
        for (j, (b, s)) in below.iter_mut().zip(slope).enumerate() {
            let mut sum = g[0] * w[0][j];
            for o in 1..D {
                sum += g[o] * w[o][j];
            }
            *b = sum * s;
        }
    }
}
