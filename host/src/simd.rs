//! The host's hot loops on its widest vectors: the score network ([`neural_score`]), the
//! exact mixture score ([`exact_mixture`]) and the noise ([`particle_noises`]) run their full
//! batches through a copy compiled for AVX-512 or AVX2, whichever is the widest the CPU has
//! ([`Vectors`]), and training its time
//! features ([`time_features`]), SiLU ([`bias_silu_with_slope`]) and thin output layer
//! ([`thin_forward`], [`thin_backward`]) through an AVX2 copy (all checked at run time, so the
//! binary still runs on any x86-64).
//!
//! The sampling kernels and the time features are scalar f32 and integer operations, which
//! wider vectors do not change (Rust never fuses a multiply and an add on its own), so the
//! bits are the baseline build's and the firmware's; `tests/tests/simd_lanes.rs` checks it.
//! Training's SiLU is the exception: its AVX2 copy uses fused multiply–adds (see
//! [`bias_silu_with_slope`]).

use std::ops::Range;
use tinyscore::model::{LanesForward, LANES, MAX_WIDTH};
use tinyscore::{
    box_muller_lanes, particle_noise, BoxMullerLanes, Component, DefaultRng, GaussianMixture,
    GaussianStream, MixtureLanes, Model, ModelError, NeuralScore, ParamError, MIXTURE_LANES,
    NOISE_LANES,
};

/// Whether this CPU runs AVX2 code.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The vector instructions a copy of the batch scores is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vectors {
    /// The x86-64 baseline (SSE2), or any other architecture's.
    Baseline,
    /// AVX2: 8 f32 lanes.
    Avx2,
    /// AVX-512 (`avx512f`): 16 f32 lanes, one register for a batch of 16 points (≈ 1.2× the
    /// AVX2 copy's throughput for both scores on an AMD EPYC of this project's machines).
    Avx512,
}

impl Vectors {
    /// The widest this CPU runs.
    pub fn widest() -> Vectors {
        *Vectors::supported().last().unwrap_or(&Vectors::Baseline)
    }

    /// Every copy this CPU runs, narrowest first (the tests compare them all).
    pub fn supported() -> Vec<Vectors> {
        let mut all = vec![Vectors::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Vectors::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Vectors::Avx512);
            }
        }
        all
    }
}

/// The score of `model` (of dimension `N`), with the fastest batch evaluation this CPU runs.
pub fn neural_score<const N: usize>(model: Model<'_>) -> Result<NeuralScore<'_, N>, ModelError> {
    neural_score_on(Vectors::widest(), model)
}

/// The score of `model` with its batches evaluated by the copy for `vectors`, which must be
/// one of [`Vectors::supported`] (the baseline otherwise).
pub fn neural_score_on<const N: usize>(
    vectors: Vectors,
    model: Model<'_>,
) -> Result<NeuralScore<'_, N>, ModelError> {
    let score = NeuralScore::new(model)?;
    Ok(match lanes_on(vectors) {
        Some(forward) => score.with_lanes(forward),
        None => score,
    })
}

/// Of a kernel's copies for AVX2 and AVX-512, the one for `vectors` if this CPU runs it;
/// `None` for the baseline (the caller's own build) and for copies the CPU cannot run.
fn copy_for<K>(vectors: Vectors, avx2: K, avx512: K) -> Option<K> {
    if !Vectors::supported().contains(&vectors) {
        return None;
    }
    match vectors {
        Vectors::Baseline => None,
        Vectors::Avx2 => Some(avx2),
        Vectors::Avx512 => Some(avx512),
    }
}

/// The network's batch evaluation compiled for `vectors`, when it is not the baseline one.
fn lanes_on(vectors: Vectors) -> Option<LanesForward> {
    // SAFETY (both): `copy_for` picks a copy only on a CPU with the feature it is built for.
    #[cfg(target_arch = "x86_64")]
    return copy_for::<LanesForward>(
        vectors,
        |model, a, t| unsafe { forward_lanes_avx2(model, a, t) },
        |model, a, t| unsafe { forward_lanes_avx512(model, a, t) },
    );
    #[cfg(not(target_arch = "x86_64"))]
    return copy_for(vectors, None, None).flatten(); // no wider copies off x86-64
}

/// [`Model::forward_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_lanes_avx2(model: &Model<'_>, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
    model.forward_lanes(a, t)
}

/// [`Model::forward_lanes`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_lanes_avx512(model: &Model<'_>, a: &mut [[f32; LANES]; MAX_WIDTH], t: f32) {
    model.forward_lanes(a, t)
}

/// The mixture of `components` with the fastest batch score this CPU runs.
pub fn exact_mixture<const N: usize>(
    components: &[Component<N>],
) -> Result<GaussianMixture<'_, N>, ParamError> {
    exact_mixture_on(Vectors::widest(), components)
}

/// The mixture of `components` with its batches scored by the copy for `vectors`, which must
/// be one of [`Vectors::supported`] (the baseline otherwise).
pub fn exact_mixture_on<const N: usize>(
    vectors: Vectors,
    components: &[Component<N>],
) -> Result<GaussianMixture<'_, N>, ParamError> {
    let mixture = GaussianMixture::new(components)?;
    Ok(match mixture_lanes_on(vectors) {
        Some(lanes) => mixture.with_lanes(lanes),
        None => mixture,
    })
}

/// The mixture's batch score compiled for `vectors`, when it is not the baseline one.
fn mixture_lanes_on<const N: usize>(vectors: Vectors) -> Option<MixtureLanes<N>> {
    // SAFETY (both): `copy_for` picks a copy only on a CPU with the feature it is built for.
    #[cfg(target_arch = "x86_64")]
    return copy_for::<MixtureLanes<N>>(
        vectors,
        |mixture, xs, alpha, sigma, out| unsafe {
            mixture_lanes_avx2(mixture, xs, alpha, sigma, out)
        },
        |mixture, xs, alpha, sigma, out| unsafe {
            mixture_lanes_avx512(mixture, xs, alpha, sigma, out)
        },
    );
    #[cfg(not(target_arch = "x86_64"))]
    return copy_for(vectors, None, None).flatten(); // no wider copies off x86-64
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

/// [`GaussianMixture::score_lanes`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn mixture_lanes_avx512<const N: usize>(
    mixture: &GaussianMixture<'_, N>,
    xs: &[[f32; N]; MIXTURE_LANES],
    alpha: f32,
    sigma: f32,
    out: &mut [[f32; N]; MIXTURE_LANES],
) {
    mixture.score_lanes(xs, alpha, sigma, out)
}

/// The noise streams of `particles` in the run seeded with `seed`, their batches' Box–Muller
/// on the widest copy this CPU runs.
pub fn particle_noises(seed: u64, particles: Range<u64>) -> Vec<GaussianStream<DefaultRng>> {
    particle_noises_on(Vectors::widest(), seed, particles)
}

/// [`particle_noises`] with the Box–Muller copy for `vectors`, which must be one of
/// [`Vectors::supported`] (the baseline otherwise).
pub fn particle_noises_on(
    vectors: Vectors,
    seed: u64,
    particles: Range<u64>,
) -> Vec<GaussianStream<DefaultRng>> {
    let lanes = box_muller_on(vectors);
    particles
        .map(|i| match lanes {
            Some(lanes) => particle_noise(seed, i).with_lanes(lanes),
            None => particle_noise(seed, i),
        })
        .collect()
}

/// Box–Muller on a group of streams compiled for `vectors`, when it is not the baseline one.
fn box_muller_on(vectors: Vectors) -> Option<BoxMullerLanes> {
    // SAFETY (both): `copy_for` picks a copy only on a CPU with the feature it is built for.
    #[cfg(target_arch = "x86_64")]
    return copy_for::<BoxMullerLanes>(
        vectors,
        |word1, word2| unsafe { box_muller_avx2(word1, word2) },
        |word1, word2| unsafe { box_muller_avx512(word1, word2) },
    );
    #[cfg(not(target_arch = "x86_64"))]
    return copy_for(vectors, None, None).flatten(); // no wider copies off x86-64
}

/// [`box_muller_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn box_muller_avx2(
    word1: &[u32; NOISE_LANES],
    word2: &[u32; NOISE_LANES],
) -> ([f32; NOISE_LANES], [f32; NOISE_LANES]) {
    box_muller_lanes(word1, word2)
}

/// [`box_muller_lanes`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn box_muller_avx512(
    word1: &[u32; NOISE_LANES],
    word2: &[u32; NOISE_LANES],
) -> ([f32; NOISE_LANES], [f32; NOISE_LANES]) {
    box_muller_lanes(word1, word2)
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

/// Single-precision floating-point operations per second one core reaches at best: twelve
/// independent chains of 8-lane fused multiply–adds (enough to keep both FMA units of a
/// Zen or Skylake core busy through the FMA's latency), run `iterations` times. `None` on a
/// CPU without AVX2 and FMA.
pub fn fma_peak_flops(iterations: u64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && std::arch::is_x86_feature_detected!("fma") {
        let start = std::time::Instant::now();
        // SAFETY: the CPU has AVX2 and FMA, the features the loop is built for.
        std::hint::black_box(unsafe { fma_chains(std::hint::black_box(iterations)) });
        let flops = iterations as f64 * (FMA_CHAINS * 8 * 2) as f64;
        return Some(flops / start.elapsed().as_secs_f64());
    }
    let _ = iterations;
    None
}

/// Independent FMA chains in [`fma_chains`].
const FMA_CHAINS: usize = 12;

/// [`fma_peak_flops`]'s loop: `acc ← acc·a + b` on [`FMA_CHAINS`] registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); FMA_CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, v| _mm256_add_ps(s, *v));
    _mm256_cvtss_f32(sum)
}
