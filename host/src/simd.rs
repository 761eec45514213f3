//! The sampling's hot loops on the host's widest vectors: the score network
//! ([`neural_score`]), the exact mixture score ([`exact_mixture`]) and the noise
//! ([`particle_noises`]) run their full batches through a copy compiled for AVX-512 or AVX2,
//! whichever is the widest the CPU has ([`Vectors`], checked at run time, so the binary still
//! runs on any x86-64).
//!
//! The kernels are scalar f32 and integer operations, which wider vectors do not change (Rust
//! never fuses a multiply and an add on its own), so the bits are the baseline build's and
//! the firmware's; `tests/tests/simd_lanes.rs` checks it. (Training's kernels, which need not
//! give the chip's bits, are in `train::kernels`.)

use std::ops::Range;
use tinyscore::model::{LanesForward, LANES, MAX_WIDTH};
use tinyscore::{
    box_muller_lanes, particle_noise, BoxMullerLanes, Component, DefaultRng, GaussianMixture,
    GaussianStream, MixtureLanes, Model, ModelError, NeuralScore, ParamError, MIXTURE_LANES,
    NOISE_LANES,
};

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

/// The score of `model` on states of `N` coordinates (its dimension, or padded beyond it: see
/// [`crate::dims`]), with the fastest batch evaluation this CPU runs.
pub fn neural_score<const N: usize>(model: Model<'_>) -> Result<NeuralScore<'_, N>, ModelError> {
    neural_score_on(Vectors::widest(), model)
}

/// The score of `model` with its batches evaluated by the copy for `vectors`, which must be
/// one of [`Vectors::supported`] (the baseline otherwise).
pub fn neural_score_on<const N: usize>(
    vectors: Vectors,
    model: Model<'_>,
) -> Result<NeuralScore<'_, N>, ModelError> {
    let score = NeuralScore::padded(model)?;
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
