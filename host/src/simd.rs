//! The host's hot loops on its widest vectors: the score network ([`neural_score`]) and the
//! exact mixture score ([`exact_mixture`]) run their full batches, and training its SiLU
//! ([`bias_silu_with_slope`]), through a copy compiled for AVX2 when the CPU has it (checked at
//! run time, so the binary still runs on any x86-64).
//!
//! The kernels are scalar f32 and integer operations, which wider vectors do not change
//! (Rust never fuses a multiply and an add on its own), so the bits are the baseline build's
//! and the firmware's; `tests/tests/simd_lanes.rs` checks it.

use tinyscore::model::{LanesForward, LANES, MAX_WIDTH};
use tinyscore::{
    Component, GaussianMixture, MixtureLanes, Model, ModelError, NeuralScore, ParamError,
    MIXTURE_LANES,
};

/// Whether this CPU runs AVX2 code.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The score of `model` (of dimension `N`), with the fastest batch evaluation this CPU runs.
pub fn neural_score<const N: usize>(model: Model<'_>) -> Result<NeuralScore<'_, N>, ModelError> {
    Ok(NeuralScore::new(model)?.with_lanes(fastest_lanes()))
}

/// The network's batch evaluation for this CPU.
pub fn fastest_lanes() -> LanesForward {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return |model, a, t| {
            // SAFETY: chosen only on a CPU with AVX2, the only feature the copy is built for.
            unsafe { forward_lanes_avx2(model, a, t) }
        };
    }
    |model, a, t| model.forward_lanes(a, t)
}

/// [`Model::forward_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_lanes_avx2(model: &Model<'_>, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
    model.forward_lanes(a, t)
}

/// The mixture of `components` with the fastest batch score this CPU runs.
pub fn exact_mixture<const N: usize>(
    components: &[Component<N>],
) -> Result<GaussianMixture<'_, N>, ParamError> {
    let mixture = GaussianMixture::new(components)?;
    Ok(match fastest_mixture_lanes() {
        Some(lanes) => mixture.with_lanes(lanes),
        None => mixture,
    })
}

/// The mixture's batch score for this CPU, when it is not the baseline one.
fn fastest_mixture_lanes<const N: usize>() -> Option<MixtureLanes<N>> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return Some(|mixture, xs, alpha, sigma, out| {
            // SAFETY: chosen only on a CPU with AVX2, the only feature the copy is built for.
            unsafe { mixture_lanes_avx2(mixture, xs, alpha, sigma, out) }
        });
    }
    None
}

/// [`GaussianMixture::score_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mixture_lanes_avx2<const N: usize>(
    mixture: &GaussianMixture<'_, N>,
    xs: &[[f32; N]; MIXTURE_LANES],
    alpha: f32,
    sigma: f32,
    out: &mut [[f32; N]; MIXTURE_LANES],
) {
    mixture.score_lanes(xs, alpha, sigma, out)
}

/// Adds `bias` to every row of `z` (rows of `bias.len()`), then applies SiLU in place,
/// `z ← z·σ(z)`, with its derivative at the biased `z` in `slope`:
/// `SiLU'(z) = σ(z)(1 + z(1 − σ(z)))`. σ uses the core's branch-free `exp`, so the loop
/// vectorises.
pub fn bias_silu_with_slope(z: &mut [f32], bias: &[f32], slope: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, the only feature the copy is built for.
        return unsafe { bias_silu_with_slope_avx2(z, bias, slope) };
    }
    bias_silu_with_slope_inline(z, bias, slope)
}

#[inline(always)]
fn bias_silu_with_slope_inline(z: &mut [f32], bias: &[f32], slope: &mut [f32]) {
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

/// [`bias_silu_with_slope`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bias_silu_with_slope_avx2(z: &mut [f32], bias: &[f32], slope: &mut [f32]) {
    bias_silu_with_slope_inline(z, bias, slope)
}
